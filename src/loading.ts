/**
 * Loading: from what a request carries to its session. The request's scheme decides the cookie's
 * name; each value under that name is verified (HMAC) and turned into a store key (SHA-256);
 * the records behind them are read and checked; the one live session is adopted, or a fresh
 * anonymous one is made.
 *
 * @packageDocumentation
 */
import { auditEvent, clip } from './audit.js';
import { cookieNameFor, readCookieValues } from './cookie.js';
import type { AuthenticationSteps, Lifecycle } from './context.js';
import { RequestContext } from './context.js';
import { crossOriginError } from './cross-origin.js';
import type { RejectReason } from './events.js';
import type { Tools } from './manager-options.js';
import type { MaybePromise } from './maybe.js';
import { each, andThen } from './maybe.js';
import type { Core, Found, Live } from './records.js';
import { adopt, readLive } from './records.js';
import type { SessionState } from './session.js';
import { Session } from './session.js';
import { storeKeyFor } from './token.js';

/** What a request carries that matters to its session. */
export interface RequestInfo {
  /** The Cookie header. */
  cookie?: string | null | undefined;
  /** Whether the connection is TLS. */
  https?: boolean;
  /** The X-Forwarded-Proto header, used only with `trustProxy`. */
  forwardedProto?: string | null | undefined;
  /** The User-Agent header, kept with new sessions for the session list. */
  userAgent?: string | null | undefined;
  /**
   * The client address, kept with new sessions for the session list. Read only when a session
   * is created or regenerated, so an adapter may give a getter for an address that is costly to
   * work out.
   */
  ip?: string | null | undefined;
  /**
   * The request's method. Given, an unsafe method is checked by the cross-origin protection
   * before anything else; absent, the request is not checked.
   */
  method?: string | undefined;
  /** The request target (`/path?query`, or an absolute URL), for the bypassed paths. */
  url?: string | null | undefined;
  /**
   * Reads a request header by its lower-case name (the first value of a repeated one). Called
   * only for what a request needs: `Sec-Fetch-Site`, `Origin` and `Host` of an unsafe request,
   * and the header transport's header.
   */
  header?(name: string): string | null | undefined;
}

/** No values: a request that goes by its header carries no cookie the manager reads. */
const NONE: readonly string[] = Object.freeze([]);

/**
 * How many distinct validly signed session cookies one request may carry before the manager
 * calls it ambiguous without reading any of them. Signed values are only ones this server
 * issued, so this bounds the store reads a request can cause; a browser holds more than one only
 * after a cookie's Path or Domain changed, or when one was tossed in.
 */
const MAX_SESSION_CANDIDATES = 4;

/**
 * How many verified cookie values are remembered. Verifying a value (HMAC) and hashing its ID
 * cost more than the rest of loading a session from memory (callgrind), and a session's cookie
 * comes back on every request.
 */
const VERIFIED_CACHE_SIZE = 10_000;

/** A cookie value whose signature verified: the session ID and its store key. */
interface Verified {
  id: string;
  key: string;
}

/** Whether one of `candidates` has the store key `key`. */
function hasKey(candidates: readonly Verified[], key: string): boolean {
  for (const candidate of candidates) if (candidate.key === key) return true;
  return false;
}

/** Finds the sessions of requests. */
export class Loading {
  readonly #core: Core;
  readonly #lifecycle: Lifecycle;
  readonly #authentication: AuthenticationSteps;
  /** Cookie values verified before, oldest first. */
  readonly #verified = new Map<string, Verified>();
  #warnedForwardedProto = false;

  constructor(core: Core, lifecycle: Lifecycle, authentication: AuthenticationSteps) {
    this.#core = core;
    this.#lifecycle = lifecycle;
    this.#authentication = authentication;
  }

  /**
   * The request's session (see `SessionManager.load`): answered at once when the crypto tools,
   * the signature checks and the store all answer at once.
   */
  load<Data extends object>(info: RequestInfo): MaybePromise<Session<Data>> {
    const { transport, crossOrigin } = this.#core.settings;
    // A request that carries the transport's header has no ambient authority to protect.
    const token = transport === undefined ? undefined : transport.tokenOf(info);
    if (token === undefined && crossOrigin !== undefined) this.#screen(info);
    const viaHeader = token !== undefined || (transport !== undefined && !transport.cookie);
    return andThen(this.#core.tools(), (tools) => {
      const https = this.#isHttps(info);
      const cookieName = cookieNameFor(this.#core.settings.cookie, https);
      const values = viaHeader
        ? typeof token === 'string'
          ? [token]
          : NONE
        : readCookieValues(info.cookie, cookieName);
      // Each value once: a browser sends one; more come from a cookie with another Path or
      // Domain, or one tossed in.
      const distinct = values.length > 1 ? [...new Set(values)] : values;
      const context = new RequestContext(
        this.#freshState(),
        this.#lifecycle,
        this.#core.owner,
        https,
        cookieName,
        values.length > 0,
        info,
        this.#authentication,
      );
      context.viaHeader = viaHeader;
      if (token === null) return this.#anonymous<Data>(context, 'malformed');
      if (distinct.length === 0) return this.#anonymous<Data>(context, undefined);
      return andThen(
        each(distinct, (value) => this.#verify(tools, value)),
        (verified) => this.#read<Data>(tools, context, verified),
      );
    });
  }

  /**
   * Throws `CROSS_ORIGIN_REFUSED` for a request the cross-origin protection refuses, and reports
   * it; nothing of the session has been read. Costs a comparison for a safe method.
   */
  #screen(info: RequestInfo): void {
    const reason = this.#core.settings.crossOrigin!.check(info);
    if (reason === undefined) return;
    this.#core.events.emit('crossOriginRefused', {
      ...auditEvent(reason, null, null, info),
      method: info.method!,
      origin: clip(info.header?.('origin'), 256),
      site: clip(info.header?.('sec-fetch-site'), 64),
    });
    throw crossOriginError(reason);
  }

  /** A cookie value's session ID and store key, or why it is refused. */
  #verify(tools: Tools, value: string): MaybePromise<Verified | RejectReason> {
    const known = this.#verified.get(value);
    if (known !== undefined) return known;
    return andThen(tools.signer.verify(value), (id) =>
      id === null
        ? value.length === 87
          ? 'signature'
          : 'malformed'
        : andThen(storeKeyFor(tools.crypto, id), (key) => this.#remember(value, { id, key })),
    );
  }

  #remember(value: string, verified: Verified): Verified {
    if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
      this.#verified.delete(this.#verified.keys().next().value!);
    }
    this.#verified.set(value, verified);
    return verified;
  }

  /**
   * Reads the sessions among a request's verified cookies, each once (two values can sign one ID
   * under rotated secrets), and answers the one live session; a new anonymous one when none is
   * live, or when more than one is or there are too many to read (`ambiguous`: a tossed cookie
   * must not pick the session).
   */
  #read<Data extends object>(
    tools: Tools,
    context: RequestContext,
    verified: (Verified | RejectReason)[],
  ): MaybePromise<Session<Data>> {
    let reason: RejectReason | 'expired' | undefined;
    const candidates: Verified[] = [];
    for (const entry of verified) {
      if (typeof entry === 'string') reason = entry;
      else if (!hasKey(candidates, entry.key)) {
        if (candidates.length === MAX_SESSION_CANDIDATES) {
          return this.#anonymous(context, 'ambiguous');
        }
        candidates.push(entry);
      }
    }
    return andThen(
      each(candidates, ({ key }) => readLive(this.#core, tools, key, context.request)),
      (found: Found[]) => {
        let live = -1;
        for (let i = 0; i < found.length; i++) {
          const result = found[i]!;
          if (typeof result === 'string') reason = result;
          else if (live !== -1) return this.#anonymous(context, 'ambiguous');
          else live = i;
        }
        if (live === -1) return this.#anonymous(context, reason);
        const { id, key } = candidates[live]!;
        context.id = id;
        context.key = key;
        const { record, envelope } = found[live] as Live;
        adopt(context, record, envelope);
        context.storedUserId = context.state.userId;
        return new Session<Data>(context, context.state);
      },
    );
  }

  /**
   * A new anonymous session, for a request whose cookies (if any) led to no live session. The
   * reason is reported unless it already was (`expired`, `tampered`).
   */
  #anonymous<Data extends object>(
    context: RequestContext,
    reason: RejectReason | 'expired' | undefined,
  ): Session<Data> {
    if (reason !== undefined && reason !== 'expired' && reason !== 'tampered') {
      this.#core.events.emit('rejected', auditEvent(reason, null, null, context.request));
    }
    context.state.createdAt = this.#core.settings.clock();
    context.recordRequest();
    return new Session<Data>(context, context.state);
  }

  #freshState(): SessionState {
    const settings = this.#core.settings;
    return {
      data: {},
      changed: null,
      watched: null,
      userId: null,
      authenticatedAt: undefined,
      userChanged: false,
      // Set by adopt() from the record, or by #anonymous() for a new session.
      createdAt: 0,
      idle: settings.idle,
      absolute: settings.absolute,
      persistent: undefined,
      timeoutsChanged: false,
      lifetimeChanged: false,
      stored: false,
      expiresAt: 0,
      ended: false,
      touchRequested: false,
    };
  }

  #isHttps(info: RequestInfo): boolean {
    if (info.https === true) return true;
    if (typeof info.forwardedProto !== 'string') return false;
    const first = info.forwardedProto.split(',')[0]!.trim().toLowerCase();
    if (this.#core.settings.trustProxy) return first === 'https';
    // Only an 'auto' cookie loses Secure and __Host- here; a cookie always Secure keeps both.
    if (first === 'https' && this.#core.settings.cookie.secure === 'auto') this.#warnUntrusted();
    return false;
  }

  /**
   * Says once per manager that a request came through an HTTPS proxy the manager does not
   * trust: its cookie goes out without Secure and `__Host-`, which is rarely what was meant.
   */
  #warnUntrusted(): void {
    if (this.#warnedForwardedProto) return;
    this.#warnedForwardedProto = true;
    const message =
      'tessera-session: a request carried X-Forwarded-Proto: https over plain HTTP, but the ' +
      'trustProxy option is off, so session cookies go out without Secure and without the ' +
      '__Host- prefix. Set trustProxy: true if a proxy you control sets that header.';
    this.#core.events.emit('warning', { code: 'UNTRUSTED_FORWARDED_PROTO', message });
    globalThis.process?.emitWarning?.(message, {
      type: 'TesseraWarning',
      code: 'TESSERA_UNTRUSTED_FORWARDED_PROTO',
    });
  }
}
