/**
 * Step-up authentication and token issuing: what a session asks for when an action needs a
 * recent authentication (`requireRecentAuth`), when the user proves it again
 * (`reauthenticate`), and when an API client is handed its token (`issueToken`).
 *
 * @packageDocumentation
 */
import { auditEvent } from './audit.js';
import type { AuthenticationSteps, Lifecycle, RequestContext } from './context.js';
import { SessionError } from './errors.js';
import type { MaybePromise } from './maybe.js';
import { andThen } from './maybe.js';
import { invalidOption, numberOption } from './options.js';
import type { Core } from './records.js';

function ended(): never {
  throw new SessionError('SESSION_ENDED', 'the session was destroyed');
}

/** Carries out the authentication steps of sessions. */
export class Authentication implements AuthenticationSteps {
  readonly #core: Core;
  readonly #lifecycle: Lifecycle;

  constructor(core: Core, lifecycle: Lifecycle) {
    this.#core = core;
    this.#lifecycle = lifecycle;
  }

  /**
   * Throws `REAUTH_REQUIRED` unless the session's user authenticated at most `maxAgeMs` ago
   * (see `Session.requireRecentAuth`). A time in the future (another server's clock ahead of
   * this one) counts as recent.
   */
  requireRecentAuth(context: RequestContext, maxAgeMs: number): void {
    if (maxAgeMs === undefined) invalidOption('requireRecentAuth', 'maxAgeMs is required');
    const maxAge = numberOption('requireRecentAuth', 'maxAgeMs', maxAgeMs, 0);
    const state = context.state;
    const at = state.authenticatedAt;
    const reason =
      state.userId === null
        ? 'anonymous'
        : at === undefined
          ? 'never'
          : this.#lifecycle.now() - at > maxAge
            ? 'stale'
            : undefined;
    if (reason === undefined) return;
    this.#core.events.emit('reauthRequired', {
      ...auditEvent(reason, context.key, state.userId, context.request),
      maxAgeMs: maxAge,
    });
    throw new SessionError(
      'REAUTH_REQUIRED',
      reason === 'anonymous'
        ? 'no user is signed in'
        : 'this action needs a more recent authentication',
    );
  }

  /**
   * A fresh authentication of the session's user and a new ID, the data kept (see
   * `Session.reauthenticate`).
   */
  reauthenticate(context: RequestContext): MaybePromise<void> {
    const state = context.state;
    if (state.ended) ended();
    if (state.userId === null) {
      throw new SessionError(
        'INVALID_USER_ID',
        'reauthenticate() needs a signed-in user; call login() instead',
      );
    }
    return andThen(this.#lifecycle.regenerate(context, { keep: true }, 'reauthenticate'), () => {
      state.authenticatedAt = this.#lifecycle.now();
      context.reauthenticated = true;
    });
  }

  /**
   * Stores the session (even an empty one) and answers its signed token; the response then goes
   * by the header transport (see `Session.issueToken`).
   */
  issueToken(context: RequestContext): MaybePromise<string> {
    if (this.#core.settings.transport === undefined) {
      throw new SessionError(
        'INVALID_OPTION',
        'issueToken() needs the manager option headerTransport',
      );
    }
    if (context.state.ended) ended();
    context.viaHeader = true;
    context.storeEmpty = true;
    return andThen(this.#lifecycle.persist(context), () => {
      const id = context.id;
      if (id === null || context.state.ended) ended();
      return andThen(this.#core.tools(), (tools) => tools.signer.sign(id));
    });
  }
}
