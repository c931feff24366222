/**
 * The per-request session object.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';
import { booleanOption, numberOption } from './options.js';
import {
  CSRF_SECRET_KEY,
  dropCsrfSecret,
  markChanged,
  snapshotOf,
  writeData,
} from './session-data.js';
import { checkUserId } from './user-id.js';

export { CSRF_SECRET_KEY, markChanged, snapshotOf, writeData, checkUserId };

/**
 * The application's session data, declared once by augmenting this interface. Until it is
 * augmented, sessions hold `Record<string, unknown>`.
 *
 * @example
 * ```ts
 * declare module 'tessera-session' {
 *   interface SessionData {
 *     username: string;
 *     theme: 'light' | 'dark';
 *   }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SessionData {}

/** The data type of sessions: {@link SessionData} once augmented, otherwise a plain record. */
export type DefaultSessionData = keyof SessionData extends never
  ? Record<string, unknown>
  : SessionData;

/** What to carry into the new session on {@link Session.regenerate}. */
export interface RegenerateOptions {
  /**
   * `false` drops all data, `true` keeps all of it, a list keeps those keys.
   * @defaultValue false
   */
  keep?: boolean | readonly string[];
}

/** Per-session timeouts, for example a longer "remember me" session. */
export interface SessionTimeouts {
  /** Idle timeout in milliseconds. @defaultValue unchanged (the manager's `idleTimeout`) */
  idle?: number;
  /**
   * Absolute lifetime in milliseconds, counted from the session's creation.
   * @defaultValue unchanged (the manager's `absoluteTimeout`)
   */
  absolute?: number;
  /**
   * Whether this session's cookie is persistent, with a Max-Age reaching its absolute deadline
   * ("remember me"), or a browser-session cookie. Kept with the session, through later
   * regenerations too.
   * @defaultValue unchanged (the cookie's `persistent` option)
   */
  persistent?: boolean;
}

/**
 * What one session holds during one request: its data, the changes this request made, and the
 * attributes saved with it. The manager reads and settles it; HTTP facts (the cookie's name, the
 * scheme, the cookie to send) stay in the manager's per-request context.
 * @internal
 */
export interface SessionState {
  data: Record<string, unknown>;
  /**
   * The keys this request set or deleted in a stored session, for an update that merges with
   * concurrent writes; `null` until the first (most requests change none), and while the session
   * is not stored (its create writes all of its data).
   */
  changed: Set<string> | null;
  /** The JSON of object values read with `get`, to find changes made in place; `null` until one is read. */
  watched: Map<string, string> | null;
  userId: string | null;
  authenticatedAt: number | undefined;
  /** `setUser` was called: a stored session moves to a new ID when it is saved. */
  userChanged: boolean;
  createdAt: number;
  idle: number;
  absolute: number;
  /** This session's choice of a persistent cookie; `undefined` follows the cookie option. */
  persistent: boolean | undefined;
  /** `setTimeouts` was called since the last save. */
  timeoutsChanged: boolean;
  /** `setTimeouts` was called since the cookie was last sent: the cookie's lifetime changed. */
  lifetimeChanged: boolean;
  /** Whether the session has a record in the store. */
  stored: boolean;
  /** The stored record's expiry (epoch ms); meaningful while `stored`. */
  expiresAt: number;
  ended: boolean;
  /** `touch()` was called: extend the expiry with this response even inside the touch interval. */
  touchRequested: boolean;
}

/**
 * What a session asks of the request that holds it: the lifecycle operations, carried out by the
 * manager. @internal
 */
export interface SessionHost {
  regenerate(options: RegenerateOptions, reason?: 'login'): Promise<void>;
  destroy(): Promise<void>;
  save(): Promise<void>;
  reload(): Promise<void>;
  now(): number;
  /** A fresh synchronizer token (see `csrf-token.ts`). */
  csrfToken(): string;
  requireRecentAuth(maxAgeMs: number): void;
  reauthenticate(): Promise<void>;
  issueToken(): Promise<string>;
  /** The manager behind this host. */
  readonly owner: object;
}

let readState: (session: Session<any>) => SessionState;
let readHost: (session: Session<any>) => SessionHost | undefined;

/** The state behind a session. @internal */
export function stateOf(session: Session<any>): SessionState {
  return readState(session);
}

/** The host a session was made with; throws a TypeError for anything else. @internal */
export function hostOf(session: Session<any>): SessionHost {
  const host = typeof session === 'object' && session !== null ? readHost(session) : undefined;
  if (host === undefined) throw new TypeError('not a Tessera session');
  return host;
}

/** The manager that made a session, or undefined for anything that is not a Tessera session. @internal */
export function ownerOf(session: unknown): object | undefined {
  return typeof session === 'object' && session !== null
    ? readHost(session as Session<any>)?.owner
    : undefined;
}

function ended(): never {
  throw new SessionError(
    'SESSION_ENDED',
    'the session was destroyed; start a new one with regenerate()',
  );
}

function isObjectValue(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

/**
 * One user's session, as seen by one request. Reads are free; writes are tracked per
 * top-level key and saved when the response goes out (or at {@link Session.save}).
 *
 * Objects read with {@link Session.get} and changed in place are detected too: their JSON is
 * compared when the request ends.
 *
 * @typeParam Data - the shape of the data; see {@link SessionData}
 */
export class Session<Data extends object = DefaultSessionData> {
  readonly #host: SessionHost;
  readonly #state: SessionState;

  static {
    readState = (session) => {
      if (!(#state in session)) throw new TypeError('not a Tessera session');
      return session.#state;
    };
    readHost = (session) => (#host in session ? session.#host : undefined);
  }

  /** @internal Sessions are made by the manager. */
  constructor(host: SessionHost, state: SessionState) {
    this.#host = host;
    this.#state = state;
  }

  /** True until the session is first stored (a fresh, anonymous session). */
  get isNew(): boolean {
    return !this.#state.stored;
  }

  /** True after {@link Session.destroy}, or when another request ended the session. */
  get isEnded(): boolean {
    return this.#state.ended;
  }

  /** When the session was created (epoch ms). A regenerate starts a new session. */
  get createdAt(): number {
    return this.#state.createdAt;
  }

  /** When the session expires unless used again (epoch ms), as stored on the server. */
  get expiresAt(): number {
    const state = this.#state;
    return state.stored
      ? state.expiresAt
      : Math.min(this.#host.now() + state.idle, state.createdAt + state.absolute);
  }

  /** The absolute deadline (epoch ms), which activity never extends. */
  get absoluteExpiresAt(): number {
    return this.#state.createdAt + this.#state.absolute;
  }

  /** The user the session is bound to, or `null` (always `null` once the session has ended). */
  get userId(): string | null {
    return this.#state.userId;
  }

  /** When the user last authenticated in this session (epoch ms), for step-up checks. */
  get authenticatedAt(): number | undefined {
    return this.#state.authenticatedAt;
  }

  /** The value under `key`, or `undefined`. */
  get<K extends keyof Data & string>(key: K): Data[K] | undefined {
    const state = this.#state;
    // Only own keys: an inherited name such as `constructor` is not session data.
    const value =
      Object.hasOwn(state.data, key) && key !== CSRF_SECRET_KEY ? state.data[key] : undefined;
    if (
      isObjectValue(value) &&
      state.changed?.has(key) !== true &&
      state.watched?.has(key) !== true
    ) {
      (state.watched ??= new Map()).set(key, snapshotOf(value));
    }
    return value as Data[K] | undefined;
  }

  /** Whether `key` holds a value. */
  has(key: keyof Data & string): boolean {
    return Object.hasOwn(this.#state.data, key) && key !== CSRF_SECRET_KEY;
  }

  /** Stores `value` under `key`; `undefined` deletes the key. Values must be JSON. */
  set<K extends keyof Data & string>(key: K, value: Data[K] | undefined): void {
    const state = this.#state;
    if (state.ended) ended();
    if (typeof key !== 'string') throw new SessionError('INVALID_DATA', 'session keys are strings');
    if (value === undefined) {
      this.delete(key);
      return;
    }
    writeData(state.data, key, value);
    markChanged(state, key);
  }

  /** Removes `key`. */
  delete(key: keyof Data & string): void {
    const state = this.#state;
    if (state.ended) ended();
    if (Object.hasOwn(state.data, key)) {
      delete state.data[key];
      markChanged(state, key);
    }
  }

  /** Removes every key. */
  clear(): void {
    for (const key of Object.keys(this.#state.data)) this.delete(key as keyof Data & string);
  }

  /** The keys that hold values. */
  keys(): (keyof Data & string)[] {
    const data = this.#state.data;
    const keys = Object.keys(data);
    return (
      Object.hasOwn(data, CSRF_SECRET_KEY) ? keys.filter((key) => key !== CSRF_SECRET_KEY) : keys
    ) as (keyof Data & string)[];
  }

  /** A shallow copy of all data. */
  toJSON(): Partial<Data> {
    const copy: Record<string, unknown> = { ...this.#state.data };
    if (Object.hasOwn(copy, CSRF_SECRET_KEY)) delete copy[CSRF_SECRET_KEY];
    return copy as Partial<Data>;
  }

  /**
   * Binds the session to a user (for listing and revoking a user's sessions) and records the
   * time of authentication; `null` unbinds it. Whatever the call changes, the session moves to a
   * new ID when it is saved: a stored session's record is deleted and its data written under a
   * new ID, so the cookie the request came with is dead from then on (binding a user without a
   * new ID would be session fixation). Calling it again in the same request, or after
   * {@link Session.regenerate} (as {@link Session.login} does), still gives one new ID.
   *
   * The user ID must be 1 to 255 characters (UTF-16 code units) of well-formed text without
   * control characters (U+0000 to U+001F, U+007F); anything else throws `SessionError` with code
   * `INVALID_USER_ID`.
   */
  setUser(userId: string | null): void {
    const state = this.#state;
    if (state.ended) ended();
    if (userId !== null) checkUserId(userId);
    state.userId = userId;
    state.authenticatedAt = userId === null ? undefined : this.#host.now();
    state.userChanged = true;
    dropCsrfSecret(state);
  }

  /**
   * Gives this session its own timeouts, for example a "remember me" session: longer timeouts
   * and `persistent: true`, so that its cookie outlives the browser session with a Max-Age
   * reaching the absolute deadline. The absolute lifetime still counts from the session's
   * creation. Timeouts are finite positive numbers of milliseconds and `persistent` a boolean;
   * anything else throws `SessionError` with code `INVALID_OPTION`.
   */
  setTimeouts(timeouts: SessionTimeouts): void {
    const state = this.#state;
    if (state.ended) ended();
    const positive = { exclusiveMin: true };
    const idle = numberOption('setTimeouts', 'idle', timeouts.idle, state.idle, positive);
    const absolute = numberOption(
      'setTimeouts',
      'absolute',
      timeouts.absolute,
      state.absolute,
      positive,
    );
    const persistent =
      timeouts.persistent === undefined
        ? state.persistent
        : booleanOption('setTimeouts', 'persistent', timeouts.persistent, false);
    state.idle = idle;
    state.absolute = absolute;
    state.persistent = persistent;
    state.timeoutsChanged = true;
    state.lifetimeChanged = true;
  }

  /**
   * Moves the session to a new ID. The new record is stored first and the old one deleted right
   * after, when the session is saved (with the response, or at {@link Session.save}), so the old
   * cookie is dead before the new one reaches the client, and a store failure leaves the old
   * session whole. Data is dropped unless `keep` says otherwise; the user, the timeouts and the
   * cookie's persistence stay. Call it at login and at every privilege change.
   */
  regenerate(options: RegenerateOptions = {}): Promise<void> {
    if (!this.#state.ended) dropCsrfSecret(this.#state);
    return this.#host.regenerate(options);
  }

  /**
   * A new ID for the session, bound to `userId`: what a login does. The data is dropped unless
   * `keep` says otherwise. The user ID is checked first (see {@link Session.setUser}), so a bad
   * one changes nothing.
   */
  async login(userId: string, options: RegenerateOptions = {}): Promise<void> {
    checkUserId(userId);
    await this.#host.regenerate(options, 'login');
    this.setUser(userId);
  }

  /**
   * Throws `SessionError` with code `REAUTH_REQUIRED` (adapters answer 401) unless a user is
   * signed in and authenticated (logged in or re-authenticated) at most `maxAgeMs` milliseconds
   * ago; emits `reauthRequired` when it throws. Call it before a sensitive action.
   * @example `req.session.requireRecentAuth(5 * 60_000);`
   */
  requireRecentAuth(maxAgeMs: number): void {
    this.#host.requireRecentAuth(maxAgeMs);
  }

  /**
   * Records a fresh authentication of the signed-in user (after the application checked the
   * password again, say) and moves the session to a new ID, keeping its data (see
   * {@link Session.regenerate}). Throws `INVALID_USER_ID` when no user is signed in.
   */
  reauthenticate(): Promise<void> {
    return this.#host.reauthenticate();
  }

  /**
   * Stores the session now and answers its signed token for the manager's `headerTransport`
   * (`Authorization: Bearer <token>`); this response then sets no cookie. Call it after
   * {@link Session.login} to hand an API client its token. Throws `INVALID_OPTION` without
   * `headerTransport`.
   */
  issueToken(): Promise<string> {
    return this.#host.issueToken();
  }

  /** Deletes the session's record now and expires its cookie with the response. */
  destroy(): Promise<void> {
    return this.#host.destroy();
  }

  /** Saves changes now rather than when the response goes out. */
  save(): Promise<void> {
    return this.#host.save();
  }

  /** Drops this request's unsaved changes and reads the session again from the store. */
  reload(): Promise<void> {
    return this.#host.reload();
  }

  /** Extends the idle expiry with this response, even inside the touch interval. */
  touch(): void {
    this.#state.touchRequested = true;
  }

  /**
   * A synchronizer token for a form's hidden field (`_csrf`) or the `X-CSRF-Token` header,
   * checked on unsafe requests when the manager's `csrfTokens` is on (otherwise this throws
   * `INVALID_OPTION`). Each call answers a new string, masked afresh against BREACH; all verify
   * until the session moves to a new ID (`regenerate`, `login`, `setUser`). The secret is kept
   * with the data, so a new session is stored with this response.
   * @example `<input type="hidden" name="_csrf" value="${req.session.csrfToken()}">`
   */
  csrfToken(): string {
    return this.#host.csrfToken();
  }
}
