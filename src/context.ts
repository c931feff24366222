/**
 * The per-request context of a session: what the manager knows of the request (its scheme, the
 * cookie's name, whether it sent one), of the session's record (its ID, key and version), and
 * the cookie the response owes. The {@link Session} sees none of it; it asks this context for
 * its lifecycle operations.
 *
 * @packageDocumentation
 */
import { clip } from './audit.js';
import { issueCsrfToken } from './csrf-token.js';
import type { RegenerateReason } from './events.js';
import type { RequestInfo } from './loading.js';
import type { MaybePromise } from './maybe.js';
import type { RegenerateOptions, Session, SessionHost, SessionState } from './session.js';
import { hostOf } from './session.js';

/** The lifecycle operations the saving layer carries out on a context. */
export interface Lifecycle {
  persist(context: RequestContext): MaybePromise<void>;
  regenerate(
    context: RequestContext,
    options: RegenerateOptions,
    reason?: RegenerateReason,
  ): MaybePromise<void>;
  destroy(context: RequestContext): MaybePromise<void>;
  reload(context: RequestContext): MaybePromise<void>;
  now(): number;
}

/** The authentication steps a context's session asks for (`authentication.ts`). */
export interface AuthenticationSteps {
  requireRecentAuth(context: RequestContext, maxAgeMs: number): void;
  reauthenticate(context: RequestContext): MaybePromise<void>;
  issueToken(context: RequestContext): MaybePromise<string>;
}

/** One request's session context. */
export class RequestContext implements SessionHost {
  /** The session ID, once the session is stored or was found; `null` otherwise. */
  id: string | null = null;
  /** The store key (SHA-256 of the ID), with the ID. */
  key: string | null = null;
  /** The stored record's version. */
  version = 0;
  /** When the record was last written (epoch ms). */
  lastWrite: number;
  /** The user agent and address kept with the stored session, for the session list. */
  userAgent: string | undefined = undefined;
  ip: string | undefined = undefined;
  /** The response must carry a newly signed cookie (a session was created). */
  issueCookie = false;
  /** The response must clear the cookie the request came with (regenerated or destroyed). */
  clearCookie = false;
  /**
   * The session goes by the header transport: the request carried the header, cookies are off,
   * or `issueToken()` was called. Its response sets no cookie; a new token goes in a header.
   */
  viaHeader = false;
  /** `issueToken()` asked for the session to be stored even while it holds nothing. */
  storeEmpty = false;
  /**
   * The key of the record a regenerate left behind: deleted once the new record is stored (or,
   * when nothing is to be stored, at the save), so a failed save leaves the old session whole.
   */
  retiring: string | null = null;
  /** The user of the stored record, to tell a save that unbinds it (`logout` event). */
  storedUserId: string | null = null;
  /** `reauthenticate()` was called since the last save (`login` event, reason `reauthenticate`). */
  reauthenticated = false;

  constructor(
    readonly state: SessionState,
    readonly lifecycle: Lifecycle,
    /** The manager behind this context. */
    readonly owner: object,
    /** Whether the request is HTTPS, as the manager decided. */
    readonly https: boolean,
    /** The cookie's name for this request's scheme. */
    readonly cookieName: string,
    /** Whether the request sent a cookie under that name. */
    readonly sentCookie: boolean,
    /** The request, whose user agent and address a new session keeps. */
    readonly request: RequestInfo,
    /** Step-up authentication and token issuing. */
    readonly authentication: AuthenticationSteps,
  ) {
    this.lastWrite = state.createdAt;
  }

  async regenerate(options: RegenerateOptions, reason?: RegenerateReason): Promise<void> {
    await this.lifecycle.regenerate(this, options, reason);
  }

  async destroy(): Promise<void> {
    await this.lifecycle.destroy(this);
  }

  async save(): Promise<void> {
    await this.lifecycle.persist(this);
  }

  async reload(): Promise<void> {
    await this.lifecycle.reload(this);
  }

  now(): number {
    return this.lifecycle.now();
  }

  csrfToken(): string {
    return issueCsrfToken(this.state, this.owner);
  }

  requireRecentAuth(maxAgeMs: number): void {
    this.authentication.requireRecentAuth(this, maxAgeMs);
  }

  async reauthenticate(): Promise<void> {
    await this.authentication.reauthenticate(this);
  }

  async issueToken(): Promise<string> {
    return this.authentication.issueToken(this);
  }

  /** Gives a new session the user agent and address of the request that makes it. */
  recordRequest(): void {
    this.userAgent = clip(this.request.userAgent, 256);
    this.ip = clip(this.request.ip, 64);
  }
}

/** The context behind a session; throws a TypeError for anything else. */
export function contextOf(session: Session<any>): RequestContext {
  const host = hostOf(session);
  if (!(host instanceof RequestContext)) throw new TypeError('not a Tessera session');
  return host;
}
