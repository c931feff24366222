/**
 * The per-request session object.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';

/**
 * The application's session data, declared once by augmenting this interface. Until it is
 * augmented, sessions hold `Record<string, unknown>`.
 *
 * @example
 * ```ts
 * declare module 'tessera' {
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
export type DefaultSessionData = keyof SessionData extends never ? Record<string, unknown> : SessionData;

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
  /** Idle timeout in milliseconds. */
  idle?: number;
  /** Absolute lifetime in milliseconds, counted from the session's creation. */
  absolute?: number;
}

/**
 * The internal state of one session during one request. Adapters and the manager share it;
 * applications use the {@link Session} methods.
 * @internal
 */
export interface SessionState {
  id: string | null;
  key: string | null;
  persisted: boolean;
  version: number;
  expiresAt: number;
  createdAt: number;
  lastWrite: number;
  idle: number;
  absolute: number;
  authenticatedAt: number | undefined;
  userId: string | null;
  userAgent: string | undefined;
  ip: string | undefined;
  data: Record<string, unknown>;
  changed: Set<string>;
  watched: Map<string, string>;
  userChanged: boolean;
  timeoutsChanged: boolean;
  ended: boolean;
  issueCookie: boolean;
  clearCookie: boolean;
  forceTouch: boolean;
  https: boolean;
  cookieName: string;
  hadCookie: boolean;
}

/**
 * The lifecycle operations a session asks of its manager.
 * @internal
 */
export interface SessionHost {
  regenerate(state: SessionState, options: RegenerateOptions): Promise<void>;
  destroy(state: SessionState): Promise<void>;
  persist(state: SessionState): Promise<void>;
  reload(state: SessionState): Promise<void>;
  now(): number;
}

let readState: (session: Session<any>) => SessionState;

/** The state behind a session. @internal */
export function stateOf(session: Session<any>): SessionState {
  return readState(session);
}

function ended(): never {
  throw new SessionError('SESSION_ENDED', 'the session was destroyed; start a new one with regenerate()');
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
  }

  /** @internal Sessions are made by the manager. */
  constructor(host: SessionHost, state: SessionState) {
    this.#host = host;
    this.#state = state;
  }

  /** True until the session is first stored (a fresh, anonymous session). */
  get isNew(): boolean {
    return !this.#state.persisted;
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
    return state.persisted ? state.expiresAt : Math.min(this.#host.now() + state.idle, state.createdAt + state.absolute);
  }

  /** The absolute deadline (epoch ms), which activity never extends. */
  get absoluteExpiresAt(): number {
    return this.#state.createdAt + this.#state.absolute;
  }

  /** The user the session is bound to, or `null`. */
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
    const value = state.data[key];
    if (isObjectValue(value) && !state.changed.has(key) && !state.watched.has(key)) {
      state.watched.set(key, JSON.stringify(value));
    }
    return value as Data[K] | undefined;
  }

  /** Whether `key` holds a value. */
  has(key: keyof Data & string): boolean {
    return Object.prototype.hasOwnProperty.call(this.#state.data, key);
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
    state.data[key] = value;
    state.changed.add(key);
    state.watched.delete(key);
  }

  /** Removes `key`. */
  delete(key: keyof Data & string): void {
    const state = this.#state;
    if (state.ended) ended();
    if (Object.prototype.hasOwnProperty.call(state.data, key)) {
      delete state.data[key];
      state.changed.add(key);
      state.watched.delete(key);
    }
  }

  /** Removes every key. */
  clear(): void {
    for (const key of Object.keys(this.#state.data)) this.delete(key as keyof Data & string);
  }

  /** The keys that hold values. */
  keys(): (keyof Data & string)[] {
    return Object.keys(this.#state.data) as (keyof Data & string)[];
  }

  /** A shallow copy of all data. */
  toJSON(): Partial<Data> {
    return { ...this.#state.data } as Partial<Data>;
  }

  /**
   * Binds the session to a user (for listing and revoking a user's sessions) and records the
   * time of authentication; `null` unbinds it. Call it right after {@link Session.regenerate}
   * at login, or use {@link Session.login}.
   */
  setUser(userId: string | null): void {
    const state = this.#state;
    if (state.ended) ended();
    if (userId !== null && (typeof userId !== 'string' || userId.length === 0)) {
      throw new SessionError('INVALID_DATA', 'a user ID is a non-empty string');
    }
    state.userId = userId;
    state.authenticatedAt = userId === null ? undefined : this.#host.now();
    state.userChanged = true;
  }

  /**
   * Gives this session its own timeouts, for example a "remember me" session. The absolute
   * lifetime still counts from the session's creation.
   */
  setTimeouts(timeouts: SessionTimeouts): void {
    const state = this.#state;
    if (state.ended) ended();
    for (const [name, value] of Object.entries(timeouts)) {
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
        throw new SessionError('INVALID_OPTION', `setTimeouts: ${name} must be a positive number of milliseconds`);
      }
    }
    if (timeouts.idle !== undefined) state.idle = timeouts.idle;
    if (timeouts.absolute !== undefined) state.absolute = timeouts.absolute;
    state.timeoutsChanged = true;
    state.issueCookie = state.persisted;
  }

  /**
   * Moves the session to a new ID. The old record is deleted at once, so the old cookie is dead
   * from this moment. Data is dropped unless `keep` says otherwise. Call it at login and at every
   * privilege change.
   */
  regenerate(options: RegenerateOptions = {}): Promise<void> {
    return this.#host.regenerate(this.#state, options);
  }

  /** A new ID for the session, bound to `userId`: what a login does. */
  async login(userId: string, options: RegenerateOptions = {}): Promise<void> {
    await this.regenerate(options);
    this.setUser(userId);
  }

  /** Deletes the session's record now and expires its cookie with the response. */
  destroy(): Promise<void> {
    return this.#host.destroy(this.#state);
  }

  /** Saves changes now rather than when the response goes out. */
  save(): Promise<void> {
    return this.#host.persist(this.#state);
  }

  /** Drops this request's unsaved changes and reads the session again from the store. */
  reload(): Promise<void> {
    return this.#host.reload(this.#state);
  }

  /** Extends the idle expiry with this response, even inside the touch interval. */
  touch(): void {
    this.#state.forceTouch = true;
  }
}
