/**
 * The framework-agnostic session manager: it takes what a request carries (the Cookie header,
 * whether the request is HTTPS) and answers the session and, at the end, the headers to send.
 *
 * @packageDocumentation
 */
import type { CookieOptions, ResolvedCookieOptions } from './cookie.js';
import {
  cookieNameFor,
  readCookieValues,
  resolveCookieOptions,
  serializeClearingCookie,
  serializeCookie,
} from './cookie.js';
import type { CryptoProvider } from './crypto.js';
import { defaultCryptoProvider } from './crypto.js';
import type { Envelope, EncryptionOptions } from './codec.js';
import { Codec } from './codec.js';
import { SessionError } from './errors.js';
import type {
  DefaultSessionData,
  RegenerateOptions,
  SessionHost,
  SessionState,
} from './session.js';
import { Session, stateOf, writeData } from './session.js';
import type { SessionRecord, SessionStore, StoredRecord, UpdateResult } from './store.js';
import { CookieSigner, generateSessionId, storeKeyFor, storeKeyForNow } from './token.js';

/** What the manager builds once its crypto provider is known. */
interface Resolved {
  crypto: CryptoProvider;
  signer: CookieSigner;
  codec: Codec;
}

/** Options of {@link SessionManager}. */
export interface SessionManagerOptions {
  /** Where sessions are kept. */
  store: SessionStore;
  /**
   * Cookie signing secrets, each at least 32 bytes. The first signs; all verify, so a new secret
   * goes first and an old one stays listed until its cookies have expired.
   */
  secrets: ReadonlyArray<string | Uint8Array>;
  /**
   * Idle timeout in milliseconds: a session unused this long expires.
   * @defaultValue 1_800_000 (30 minutes)
   */
  idleTimeout?: number;
  /**
   * Absolute timeout in milliseconds, from creation; activity never extends it.
   * @defaultValue 43_200_000 (12 hours)
   */
  absoluteTimeout?: number;
  /**
   * A read-only request extends the stored expiry at most once per this many milliseconds.
   * @defaultValue `min(60_000, idleTimeout / 10)`: one touch a minute with the default idle
   * timeout, and proportionally more often for short ones, so an active session never idles out.
   */
  touchInterval?: number;
  /** The session cookie. */
  cookie?: CookieOptions;
  /**
   * Believe the first value of `X-Forwarded-Proto` when deciding whether a request is HTTPS.
   * Only enable behind a proxy that sets it.
   * @defaultValue false
   */
  trustProxy?: boolean;
  /** Encrypt session data at rest with AES-256-GCM. */
  encryption?: EncryptionOptions;
  /**
   * How long one store call may take before it fails with `STORE_UNAVAILABLE`, in milliseconds.
   * A store's synchronous `getNow`, `createNow` and `updateNow` cannot be cut short and are not bounded by it.
   * @defaultValue 5_000
   */
  storeTimeout?: number;
  /**
   * How many times a save that meets a newer version is re-applied before `WRITE_CONFLICT`.
   * @defaultValue 16
   */
  maxRetries?: number;
  /**
   * The most live sessions one user may have; the oldest are ended when a session binds to the
   * user beyond it.
   * @defaultValue Infinity
   */
  maxSessionsPerUser?: number;
  /**
   * The largest encoded session, in bytes; a larger save fails with `DATA_TOO_LARGE`.
   * @defaultValue 262_144
   */
  maxDataBytes?: number;
  /** The clock, epoch milliseconds. Tests inject one. @defaultValue `Date.now` */
  now?: () => number;
  /** Cryptographic primitives. @defaultValue `node:crypto` on Node.js, Web Crypto elsewhere */
  crypto?: CryptoProvider;
}

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
}

/**
 * The headers a response must carry for its session. Read-only: responses that set no cookie
 * share one frozen answer.
 */
export interface ResponseHeaders {
  /** Set-Cookie values, possibly none. */
  readonly setCookie: readonly string[];
  /** `'no-store'` when the response sets a session cookie or belongs to a signed-in user. */
  readonly cacheControl: 'no-store' | undefined;
}

/** One live session of a user, as listed by {@link SessionManager.listUserSessions}. */
export interface SessionInfo {
  /** An opaque handle for {@link SessionManager.revokeUserSession}; not the session ID. */
  handle: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  authenticatedAt: number | undefined;
  userAgent: string | undefined;
  ip: string | undefined;
  /** Whether this is the session of the request passed in. */
  current: boolean;
}

/** Why a cookie was not accepted. */
export type RejectReason = 'malformed' | 'signature' | 'unknown' | 'undecodable';

/** A stored record that is live, with its decoded envelope. */
interface Live {
  record: StoredRecord;
  envelope: Envelope;
}

/** The error of a failed store call: the store's own `SessionError`, or `STORE_UNAVAILABLE`. */
function storeFailure(operation: string, cause: unknown): SessionError {
  return cause instanceof SessionError
    ? cause
    : new SessionError('STORE_UNAVAILABLE', `store ${operation} failed`, { cause });
}

/**
 * Lifecycle events. None carries a session ID.
 *
 * `expired` fires when the manager finds a stored record past its expiry. Stores drop expired
 * records themselves (Redis and Memcached natively, the others on read), so a cookie whose
 * session expired there is reported as `rejected` with reason `unknown`.
 */
export interface SessionEvents {
  created: { userId: string | null };
  regenerated: { userId: string | null };
  destroyed: { userId: string | null; reason: 'destroy' | 'revoked' | 'cap' };
  expired: { userId: string | null; reason: 'idle' | 'absolute' };
  rejected: { reason: RejectReason };
}

const MINUTE = 60_000;
/** How many verified cookie values are remembered, sparing their HMAC and hash on later requests. */
const VERIFIED_CACHE_SIZE = 10_000;

interface PendingCall {
  deadline: number;
  operation: string;
  reject: (error: SessionError) => void;
}

function positive(
  name: string,
  value: number | undefined,
  fallback: number,
  allowZero = false,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    Number.isNaN(value) ||
    value < 0 ||
    (!allowZero && value === 0)
  ) {
    throw new SessionError(
      'INVALID_OPTION',
      `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`,
    );
  }
  return value;
}

/** The headers of a signed-in user's response that sets no cookie: Cache-Control only. */
const NO_STORE_ONLY: ResponseHeaders = Object.freeze({
  setCookie: Object.freeze([]) as readonly string[],
  cacheControl: 'no-store',
});
/** The headers of a response that sets no cookie and belongs to no user: none. */
const NO_SESSION_HEADERS: ResponseHeaders = Object.freeze({
  setCookie: NO_STORE_ONLY.setCookie,
  cacheControl: undefined,
});

/** Whether session data holds a key, without listing its keys. */
function holdsAnyKey(data: Record<string, unknown>): boolean {
  for (const key in data) if (Object.hasOwn(data, key)) return true;
  return false;
}

function emptyData(): Record<string, unknown> {
  return {};
}

function truncate(value: string | null | undefined, length: number): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, length) : undefined;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Creates, finds, saves, expires and ends sessions on a {@link SessionStore}. One manager serves
 * a whole application; framework adapters wrap it.
 *
 * @typeParam Data - the session data type; see {@link SessionData}
 *
 * @example
 * ```ts
 * const manager = new SessionManager({ store: new MemoryStore(), secrets: [process.env.SESSION_SECRET!] });
 * const session = await manager.load({ cookie: req.headers.cookie, https: false });
 * session.set('visits', (session.get('visits') ?? 0) + 1);
 * const { setCookie } = await manager.commit(session);
 * ```
 */
export class SessionManager<Data extends object = DefaultSessionData> {
  /** The store sessions are kept in. */
  readonly store: SessionStore;
  /** Resolved cookie options. */
  readonly cookie: ResolvedCookieOptions;
  readonly #idle: number;
  readonly #absolute: number;
  readonly #touchInterval: number;
  readonly #trustProxy: boolean;
  readonly #storeTimeout: number;
  readonly #maxRetries: number;
  readonly #maxPerUser: number;
  readonly #maxDataBytes: number;
  readonly #clock: () => number;
  readonly #ready: Promise<{ crypto: CryptoProvider; signer: CookieSigner; codec: Codec }>;
  #resolved: Resolved | undefined;
  readonly #listeners = new Map<keyof SessionEvents, Set<(event: any) => void>>();
  readonly #pending = new Set<PendingCall>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  readonly #verified = new Map<string, { id: string; key: string }>();
  readonly #host: SessionHost;

  /** Validates every option; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: SessionManagerOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new SessionError('INVALID_OPTION', 'SessionManager needs an options object');
    }
    const store = options.store;
    if (typeof store !== 'object' || store === null || typeof store.get !== 'function') {
      throw new SessionError('INVALID_OPTION', 'store: give a SessionStore');
    }
    this.store = store;
    this.cookie = resolveCookieOptions(options.cookie);
    this.#idle = positive('idleTimeout', options.idleTimeout, 30 * MINUTE);
    this.#absolute = positive('absoluteTimeout', options.absoluteTimeout, 12 * 60 * MINUTE);
    this.#touchInterval = positive(
      'touchInterval',
      options.touchInterval,
      Math.min(MINUTE, this.#idle / 10),
      true,
    );
    if (this.#touchInterval >= this.#idle) {
      throw new SessionError('INVALID_OPTION', 'touchInterval must be shorter than idleTimeout');
    }
    this.#trustProxy = options.trustProxy ?? false;
    this.#storeTimeout = positive('storeTimeout', options.storeTimeout, 5_000);
    this.#maxRetries = positive('maxRetries', options.maxRetries, 16, true);
    this.#maxPerUser = positive('maxSessionsPerUser', options.maxSessionsPerUser, Infinity);
    this.#maxDataBytes = positive('maxDataBytes', options.maxDataBytes, 262_144);
    this.#clock = options.now ?? Date.now;
    const build = (crypto: CryptoProvider) => ({
      crypto,
      signer: new CookieSigner(crypto, options.secrets),
      codec: new Codec(crypto, options.encryption),
    });
    if (options.crypto !== undefined) {
      this.#resolved = build(options.crypto);
      this.#ready = Promise.resolve(this.#resolved);
    } else {
      // Secrets and keys are checked synchronously so that a bad configuration fails at start-up.
      const check = { randomBytes: () => new Uint8Array(0) } as unknown as CryptoProvider;
      build(check);
      this.#ready = defaultCryptoProvider().then((crypto) => (this.#resolved = build(crypto)));
    }
    this.#ready.catch(() => undefined);
    this.#host = {
      regenerate: (state, opts) => this.#regenerate(state, opts),
      destroy: (state) => this.#destroy(state),
      persist: (state) => this.#persist(state),
      reload: (state) => this.#reload(state),
      now: () => this.#clock(),
      owner: this,
    };
  }

  /** The idle timeout, in milliseconds. */
  get idleTimeout(): number {
    return this.#idle;
  }

  /** The absolute timeout, in milliseconds. */
  get absoluteTimeout(): number {
    return this.#absolute;
  }

  /** Subscribes to an event; answers a function that unsubscribes. A listener that throws is ignored. */
  on<E extends keyof SessionEvents>(
    event: E,
    listener: (payload: SessionEvents[E]) => void,
  ): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  #emit<E extends keyof SessionEvents>(event: E, payload: SessionEvents[E]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        listener(payload);
      } catch {
        // A broken listener must not break the request it observes.
      }
    }
  }

  /** Runs one store call within the store timeout, turning any failure into STORE_UNAVAILABLE. */
  #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCall = {
        deadline: this.#clockForTimeouts() + this.#storeTimeout,
        operation,
        reject,
      };
      this.#pending.add(pending);
      this.#armTimeoutSweep();
      const settle = () => this.#pending.delete(pending);
      let started: Promise<T>;
      try {
        started = run();
      } catch (cause) {
        started = Promise.reject(cause);
      }
      started.then(
        (value) => {
          if (settle()) resolve(value);
        },
        (cause: unknown) => {
          if (!settle()) return;
          reject(storeFailure(operation, cause));
        },
      );
    });
  }

  #clockForTimeouts(): number {
    return performance.now();
  }

  /**
   * One timer serves every call in flight, instead of a timer per call: it wakes a few times per
   * timeout period while calls are pending and stops when none are.
   */
  #armTimeoutSweep(): void {
    if (this.#sweep !== undefined) return;
    const period = Math.max(5, Math.min(250, this.#storeTimeout / 5));
    this.#sweep = setInterval(() => {
      const now = this.#clockForTimeouts();
      for (const pending of this.#pending) {
        if (pending.deadline > now) continue;
        this.#pending.delete(pending);
        pending.reject(
          new SessionError(
            'STORE_UNAVAILABLE',
            `store ${pending.operation} did not answer within ${this.#storeTimeout} ms`,
          ),
        );
      }
      if (this.#pending.size === 0) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
    }, period);
    this.#sweep.unref?.();
  }

  #isHttps(info: RequestInfo): boolean {
    if (info.https === true) return true;
    if (!this.#trustProxy || typeof info.forwardedProto !== 'string') return false;
    const first = info.forwardedProto.split(',')[0]!.trim().toLowerCase();
    return first === 'https';
  }

  #freshState(
    https: boolean,
    cookieName: string,
    hadCookie: boolean,
    info: RequestInfo,
  ): SessionState {
    const now = this.#clock();
    return {
      id: null,
      key: null,
      persisted: false,
      version: 0,
      expiresAt: 0,
      createdAt: now,
      lastWrite: now,
      idle: this.#idle,
      absolute: this.#absolute,
      authenticatedAt: undefined,
      userId: null,
      userAgent: undefined,
      ip: undefined,
      request: info,
      data: emptyData(),
      changed: null,
      watched: null,
      userChanged: false,
      timeoutsChanged: false,
      ended: false,
      issueCookie: false,
      clearCookie: false,
      forceTouch: false,
      https,
      cookieName,
      hadCookie,
    };
  }

  /** Gives a new session the user agent and address of the request that makes it. */
  #recordRequest(state: SessionState): void {
    state.userAgent = truncate(state.request.userAgent, 256);
    state.ip = truncate(state.request.ip, 64);
  }

  #adopt(state: SessionState, record: StoredRecord, envelope: Envelope): void {
    state.version = record.version;
    state.expiresAt = record.expiresAt;
    state.userId = record.userId;
    state.createdAt = envelope.c;
    state.lastWrite = envelope.w;
    state.idle = envelope.i;
    state.absolute = envelope.x - envelope.c;
    state.authenticatedAt = envelope.a;
    state.userAgent = envelope.ua;
    state.ip = envelope.ip;
    // A fresh parse that only this request holds: no copy needed.
    state.data = envelope.d;
  }

  /**
   * Reads a stored record and checks it against the server's clock; answers its envelope, or a
   * reason it cannot be used.
   */
  async #readLive(key: string): Promise<Live | RejectReason | 'expired'> {
    const { codec } = this.#resolved ?? (await this.#ready);
    const record = await this.#call('get', () => this.store.get(key));
    if (record === null) return 'unknown';
    return this.#liveness(record, await codec.decode(record.data, key));
  }

  /**
   * {@link SessionManager.#readLive} through the store's `getNow`, for a codec that decodes at
   * once. A synchronous call cannot be cut short, so the store timeout does not apply.
   */
  #readLiveNow(
    key: string,
    getNow: (key: string) => StoredRecord | null,
    codec: Codec,
  ): Live | RejectReason | 'expired' {
    let record: StoredRecord | null;
    try {
      record = getNow.call(this.store, key);
    } catch (cause) {
      throw storeFailure('get', cause);
    }
    if (record === null) return 'unknown';
    return this.#liveness(record, codec.decodeNow(record.data, key) as Envelope | null);
  }

  #liveness(record: StoredRecord, envelope: Envelope | null): Live | RejectReason | 'expired' {
    if (envelope === null) return 'undecodable';
    const now = this.#clock();
    if (record.expiresAt <= now || envelope.x <= now) {
      this.#emit('expired', {
        userId: record.userId,
        reason: envelope.x <= now ? 'absolute' : 'idle',
      });
      return 'expired';
    }
    return { record, envelope };
  }

  /**
   * Finds the session a request belongs to. A missing, malformed, tampered, unknown or expired
   * cookie gives a fresh anonymous session (nothing is stored until it holds data). A store
   * failure rejects with `STORE_UNAVAILABLE`, never with an empty session.
   */
  async load(info: RequestInfo): Promise<Session<Data>> {
    const loaded = this.loadNow(info);
    if (loaded !== undefined) return loaded;
    const { signer, crypto, codec } = this.#resolved ?? (await this.#ready);
    const getNow = this.store.getNow;
    const https = this.#isHttps(info);
    const cookieName = cookieNameFor(this.cookie, https);
    const values = readCookieValues(info.cookie, cookieName);
    const state = this.#freshState(https, cookieName, values.length > 0, info);
    let reason: RejectReason | 'expired' | undefined;
    for (const value of values) {
      let verified = this.#verified.get(value);
      if (verified === undefined) {
        const id = await signer.verify(value);
        if (id === null) {
          reason = value.length === 87 ? 'signature' : 'malformed';
          continue;
        }
        verified = { id, key: await storeKeyFor(crypto, id) };
        if (this.#verified.size >= VERIFIED_CACHE_SIZE)
          this.#verified.delete(this.#verified.keys().next().value!);
        this.#verified.set(value, verified);
      }
      const found =
        getNow !== undefined && codec.synchronous
          ? this.#readLiveNow(verified.key, getNow, codec)
          : await this.#readLive(verified.key);
      if (typeof found === 'string') {
        reason = found;
        continue;
      }
      return this.#resumed(state, verified, found);
    }
    return this.#anonymous(state, reason);
  }

  /**
   * The synchronous form of {@link SessionManager.load}, which tries it first: answers the
   * request's session without waiting when nothing has to wait. That is when the store offers
   * `getNow`, its records decode at once (plain, or sealed with a synchronous crypto provider),
   * and every cookie value the request carries was verified recently or there is none. Answers
   * `undefined` otherwise, having read nothing: call `load` then. Throws a `SessionError` with
   * code `STORE_UNAVAILABLE` when the store fails.
   */
  loadNow(info: RequestInfo): Session<Data> | undefined {
    const resolved = this.#resolved;
    const getNow = this.store.getNow;
    if (resolved === undefined || getNow === undefined || !resolved.codec.synchronous) {
      return undefined;
    }
    const https = this.#isHttps(info);
    const cookieName = cookieNameFor(this.cookie, https);
    const values = readCookieValues(info.cookie, cookieName);
    for (const value of values) if (!this.#verified.has(value)) return undefined;
    const state = this.#freshState(https, cookieName, values.length > 0, info);
    let reason: RejectReason | 'expired' | undefined;
    for (const value of values) {
      const verified = this.#verified.get(value)!;
      const found = this.#readLiveNow(verified.key, getNow, resolved.codec);
      if (typeof found === 'string') {
        reason = found;
        continue;
      }
      return this.#resumed(state, verified, found);
    }
    return this.#anonymous(state, reason);
  }

  /** The stored session a verified cookie leads to. */
  #resumed(state: SessionState, verified: { id: string; key: string }, found: Live): Session<Data> {
    state.id = verified.id;
    state.key = verified.key;
    state.persisted = true;
    this.#adopt(state, found.record, found.envelope);
    return new Session<Data>(this.#host, state);
  }

  /** A new anonymous session, for a request whose cookies (if any) led to no live session. */
  #anonymous(state: SessionState, reason: RejectReason | 'expired' | undefined): Session<Data> {
    if (reason !== undefined && reason !== 'expired') this.#emit('rejected', { reason });
    this.#recordRequest(state);
    return new Session<Data>(this.#host, state);
  }

  /**
   * Saves what the request changed (or touches a read-only session when due) and answers the
   * headers for the response. Call it once, before the response's headers go out. Rejects with
   * `STORE_UNAVAILABLE` when the store fails: the response must then not carry a session cookie.
   */
  async commit(session: Session<Data>): Promise<ResponseHeaders> {
    const state = stateOf(session);
    if (!state.ended && !this.#saveNow(state)) await this.#persist(state);
    let cookie: string | undefined;
    if (this.#owesCookie(state)) {
      const { signer } = this.#resolved ?? (await this.#ready);
      cookie = this.#sessionCookie(state, await signer.sign(state.id!));
    }
    return this.#responseHeaders(state, cookie);
  }

  /** Whether the response must carry a newly signed cookie for the session. */
  #owesCookie(state: SessionState): boolean {
    return state.issueCookie && !state.ended && state.id !== null;
  }

  /** The Set-Cookie value for a signed cookie value, its Max-Age the session's absolute end. */
  #sessionCookie(state: SessionState, signed: string): string {
    const maxAge = this.cookie.persistent
      ? Math.max(0, Math.ceil((state.createdAt + state.absolute - this.#clock()) / 1000))
      : undefined;
    return serializeCookie(this.cookie, state.cookieName, signed, state.https, maxAge);
  }

  /**
   * The synchronous form of {@link SessionManager.commit}: answers the headers at once for a
   * session that needs neither the store nor a new cookie (a request that only read it, with no
   * touch due), for one whose changes it can save through the store's synchronous `updateNow`
   * (memory, SQLite), and for a new anonymous session it can store through `createNow` and sign
   * at once (with a synchronous crypto provider, as `node:crypto` is). Answers `undefined` when
   * there is other work to do, or data `commit` will refuse; call `commit` then. Never throws.
   */
  commitNow(session: Session<Data>): ResponseHeaders | undefined {
    const state = stateOf(session);
    let cookie: string | undefined;
    try {
      if (this.#needsWork(state)) {
        const signer = this.#resolved?.signer;
        if (this.#owesCookie(state) && signer?.synchronous !== true) return undefined;
        if (this.#storeWork(state, this.#clock()) !== 'none' && !this.#saveNow(state)) {
          return undefined;
        }
        if (this.#owesCookie(state))
          cookie = this.#sessionCookie(state, signer!.signNow(state.id!));
      }
    } catch {
      // Data that cannot be stored (not JSON, too large), or a failing store: `commit` reports it.
      return undefined;
    }
    if (!state.ended && !state.persisted) state.changed = null;
    state.forceTouch = false;
    return this.#responseHeaders(state, cookie);
  }

  /** Whether saving the session needs a store call or a newly signed cookie. */
  #needsWork(state: SessionState): boolean {
    if (state.ended) return false;
    const work = this.#storeWork(state, this.#clock());
    return work !== 'none' || (state.issueCookie && state.id !== null);
  }

  /**
   * The store call that saving a live session takes, once in-place changes are collected: the
   * one decision behind both `commit` and `commitNow`. A new session is stored only once it holds
   * data or a user.
   */
  #storeWork(state: SessionState, now: number): 'create' | 'save' | 'touch' | 'none' {
    this.#collectInPlaceChanges(state);
    if (!state.persisted) {
      return state.userId !== null || holdsAnyKey(state.data) ? 'create' : 'none';
    }
    if (
      (state.changed !== null && state.changed.size > 0) ||
      state.userChanged ||
      state.timeoutsChanged
    )
      return 'save';
    return this.#touchDue(state, now) ? 'touch' : 'none';
  }

  #touchDue(state: SessionState, now: number): boolean {
    const target = this.#expiryOf(state, now);
    return state.forceTouch
      ? target > state.expiresAt
      : target - state.expiresAt >= this.#touchInterval;
  }

  #responseHeaders(state: SessionState, cookie: string | undefined): ResponseHeaders {
    const setCookie =
      cookie ??
      (state.clearCookie
        ? serializeClearingCookie(this.cookie, state.cookieName, state.https)
        : undefined);
    state.issueCookie = false;
    state.clearCookie = false;
    if (setCookie !== undefined) return { setCookie: [setCookie], cacheControl: 'no-store' };
    // Most responses set no cookie: they share one of two frozen answers.
    return state.userId !== null ? NO_STORE_ONLY : NO_SESSION_HEADERS;
  }

  /** The headers for a response whose session could not be loaded or saved: none that touch the cookie. */
  static failureHeaders(): ResponseHeaders {
    return { setCookie: [], cacheControl: 'no-store' };
  }

  async #envelopeOf(state: SessionState, now: number): Promise<SessionRecord> {
    const { codec } = this.#resolved ?? (await this.#ready);
    return this.#recordOf(
      state,
      now,
      await codec.encode(this.#envelopeFor(state, now), state.key!),
    );
  }

  #envelopeFor(state: SessionState, now: number): Envelope {
    const envelope: Envelope = {
      d: state.data,
      c: state.createdAt,
      w: now,
      i: state.idle,
      x: state.createdAt + state.absolute,
    };
    if (state.authenticatedAt !== undefined) envelope.a = state.authenticatedAt;
    if (state.userAgent !== undefined) envelope.ua = state.userAgent;
    if (state.ip !== undefined) envelope.ip = state.ip;
    return envelope;
  }

  /** The record to store for encoded `data`; throws `DATA_TOO_LARGE` beyond `maxDataBytes`. */
  #recordOf(state: SessionState, now: number, data: string): SessionRecord {
    const tooLarge =
      data.length > this.#maxDataBytes ||
      (data.length * 3 > this.#maxDataBytes &&
        new TextEncoder().encode(data).length > this.#maxDataBytes);
    if (tooLarge) {
      throw new SessionError(
        'DATA_TOO_LARGE',
        `the session exceeds maxDataBytes (${this.#maxDataBytes} bytes)`,
      );
    }
    return { data, expiresAt: this.#expiryOf(state, now), userId: state.userId };
  }

  #expiryOf(state: SessionState, now: number): number {
    return Math.min(now + state.idle, state.createdAt + state.absolute);
  }

  #collectInPlaceChanges(state: SessionState): void {
    const watched = state.watched;
    if (watched === null) return;
    for (const [key, before] of watched) {
      if (JSON.stringify(state.data[key]) !== before) (state.changed ??= new Set()).add(key);
    }
    state.watched = null;
  }

  #markEnded(state: SessionState): void {
    state.ended = true;
    state.persisted = false;
    state.issueCookie = false;
    state.data = emptyData();
    state.changed = null;
  }

  async #persist(state: SessionState): Promise<void> {
    if (state.ended) return;
    const now = this.#clock();
    switch (this.#storeWork(state, now)) {
      case 'create':
        return this.#create(state);
      case 'save':
        return this.#save(state);
      case 'touch': {
        const target = this.#expiryOf(state, now);
        const found = await this.#call('touch', () => this.store.touch(state.key!, target));
        if (found) state.expiresAt = target;
        else this.#markEnded(state);
        break;
      }
      case 'none':
        if (!state.persisted) state.changed = null;
    }
    state.forceTouch = false;
  }

  async #create(state: SessionState): Promise<void> {
    const { crypto } = this.#resolved ?? (await this.#ready);
    const now = this.#clock();
    for (let attempt = 0; ; attempt++) {
      state.id = generateSessionId(crypto);
      state.key = await storeKeyFor(crypto, state.id);
      const record = await this.#envelopeOf(state, now);
      if (await this.#call('create', () => this.store.create(state.key!, record))) {
        this.#created(state, state.id, state.key, record, now);
        break;
      }
      // 256 random bits do not collide; a store answering "exists" twice is broken.
      if (attempt >= 1)
        throw new SessionError('STORE_UNAVAILABLE', 'the store refused to create a new session');
    }
    if (state.userId !== null) await this.#enforceCap(state);
  }

  /**
   * Stores a new anonymous session through the store's `createNow`, when the crypto provider and
   * the codec answer at once. Answers whether it stored it; on `false` the state is as it was,
   * and `#create` follows. A session with a user is left to `#create`, which caps the user's
   * sessions.
   */
  #createNow(state: SessionState, resolved: Resolved, now: number): boolean {
    const createNow = this.store.createNow;
    if (createNow === undefined || resolved.crypto.synchronous !== true || state.userId !== null) {
      return false;
    }
    const id = generateSessionId(resolved.crypto);
    const key = storeKeyForNow(resolved.crypto, id);
    const data = resolved.codec.encodeNow(this.#envelopeFor(state, now), key) as string;
    const record = this.#recordOf(state, now, data);
    let stored: boolean;
    try {
      stored = createNow.call(this.store, key, record);
    } catch (cause) {
      throw storeFailure('create', cause);
    }
    if (stored) this.#created(state, id, key, record, now);
    return stored;
  }

  #created(state: SessionState, id: string, key: string, record: SessionRecord, now: number): void {
    state.id = id;
    state.key = key;
    state.persisted = true;
    state.version = 1;
    state.expiresAt = record.expiresAt;
    state.lastWrite = now;
    this.#settled(state);
    state.issueCookie = true;
    state.clearCookie = false;
    this.#emit('created', { userId: state.userId });
  }

  #settled(state: SessionState): void {
    state.changed = null;
    state.userChanged = false;
    state.timeoutsChanged = false;
    state.forceTouch = false;
  }

  #saved(state: SessionState, version: number, record: SessionRecord, now: number): void {
    state.version = version;
    state.expiresAt = record.expiresAt;
    state.lastWrite = now;
    this.#settled(state);
  }

  /**
   * Stores a session synchronously when that is all its saving takes and the codec encodes at
   * once: a change through the store's `updateNow` (no user to bind), a new anonymous session
   * through `createNow`. Answers whether it stored; on `false` the state is as it was, and the
   * usual save follows. Throws what the usual save would (`DATA_TOO_LARGE`, `INVALID_DATA`,
   * `STORE_UNAVAILABLE`).
   */
  #saveNow(state: SessionState): boolean {
    const resolved = this.#resolved;
    if (resolved === undefined || !resolved.codec.synchronous) return false;
    if (state.ended || (state.userChanged && state.userId !== null)) return false;
    const now = this.#clock();
    const work = this.#storeWork(state, now);
    if (work === 'create') return this.#createNow(state, resolved, now);
    const updateNow = this.store.updateNow;
    if (work !== 'save' || updateNow === undefined) return false;
    const data = resolved.codec.encodeNow(this.#envelopeFor(state, now), state.key!) as string;
    const record = this.#recordOf(state, now, data);
    let result: UpdateResult;
    try {
      result = updateNow.call(this.store, state.key!, record, state.version);
    } catch (cause) {
      throw storeFailure('update', cause);
    }
    if (result.status !== 'ok') return false;
    this.#saved(state, result.version, record, now);
    return true;
  }

  /** Compare-and-set with rebase: on a newer version, re-apply only this request's changes. */
  async #save(state: SessionState): Promise<void> {
    const bindsUser = state.userChanged && state.userId !== null;
    for (let attempt = 0; ; attempt++) {
      const now = this.#clock();
      const record = await this.#envelopeOf(state, now);
      const result = await this.#call('update', () =>
        this.store.update(state.key!, record, state.version),
      );
      if (result.status === 'ok') {
        this.#saved(state, result.version, record, now);
        if (bindsUser) await this.#enforceCap(state);
        return;
      }
      if (result.status === 'missing') {
        this.#markEnded(state);
        return;
      }
      if (attempt >= this.#maxRetries) {
        throw new SessionError(
          'WRITE_CONFLICT',
          `the session changed under ${attempt + 1} attempts to save it`,
        );
      }
      await delay(Math.random() * Math.min(50, 2 ** attempt));
      const fresh = await this.#readLive(state.key!);
      if (typeof fresh === 'string') {
        this.#markEnded(state);
        return;
      }
      this.#rebase(state, fresh.record, fresh.envelope);
    }
  }

  #rebase(state: SessionState, record: StoredRecord, envelope: Envelope): void {
    const data = envelope.d;
    for (const key of state.changed ?? []) {
      if (Object.hasOwn(state.data, key)) writeData(data, key, state.data[key]);
      else delete data[key];
    }
    state.data = data;
    state.version = record.version;
    state.expiresAt = record.expiresAt;
    if (!state.userChanged) {
      state.userId = record.userId;
      state.authenticatedAt = envelope.a;
    }
    if (!state.timeoutsChanged) {
      state.idle = envelope.i;
      state.absolute = envelope.x - envelope.c;
    }
  }

  async #regenerate(state: SessionState, options: RegenerateOptions): Promise<void> {
    if (state.ended) throw new SessionError('SESSION_ENDED', 'the session was destroyed');
    const keep = options.keep ?? false;
    this.#collectInPlaceChanges(state);
    if (state.persisted) await this.#call('delete', () => this.store.delete(state.key!));
    // Spreading defines properties, so a key named __proto__ stays a key.
    const data = keep === true ? { ...state.data } : emptyData();
    if (Array.isArray(keep)) {
      for (const key of keep)
        if (Object.hasOwn(state.data, key)) writeData(data, key, state.data[key]);
    }
    const wasStored = state.persisted || state.hadCookie;
    state.id = null;
    state.key = null;
    state.persisted = false;
    state.version = 0;
    state.createdAt = this.#clock();
    this.#recordRequest(state);
    state.data = data;
    state.changed = null;
    state.watched = null;
    state.issueCookie = false;
    state.clearCookie = wasStored;
    this.#emit('regenerated', { userId: state.userId });
  }

  async #destroy(state: SessionState): Promise<void> {
    if (state.ended) return;
    if (state.persisted) await this.#call('delete', () => this.store.delete(state.key!));
    const userId = state.userId;
    const wasStored = state.persisted || state.hadCookie;
    this.#markEnded(state);
    state.clearCookie = wasStored;
    this.#emit('destroyed', { userId, reason: 'destroy' });
  }

  async #reload(state: SessionState): Promise<void> {
    if (state.ended) throw new SessionError('SESSION_ENDED', 'the session was destroyed');
    state.changed = null;
    state.watched = null;
    state.userChanged = false;
    state.timeoutsChanged = false;
    if (!state.persisted) {
      state.data = emptyData();
      return;
    }
    const found = await this.#readLive(state.key!);
    if (typeof found === 'string') {
      this.#markEnded(state);
      throw new SessionError('SESSION_ENDED', 'the session no longer exists');
    }
    this.#adopt(state, found.record, found.envelope);
  }

  async #enforceCap(state: SessionState): Promise<void> {
    if (!Number.isFinite(this.#maxPerUser) || state.userId === null) return;
    const sessions = await this.listUserSessions(state.userId);
    const others = sessions
      .filter((info) => info.handle !== state.key)
      .sort((a, b) => b.createdAt - a.createdAt);
    const excess = others.slice(Math.max(0, this.#maxPerUser - 1));
    for (const info of excess) {
      await this.#call('delete', () => this.store.delete(info.handle));
      this.#emit('destroyed', { userId: state.userId, reason: 'cap' });
    }
  }

  /**
   * A user's live sessions, most recently seen first, without session IDs. Pass the current
   * request's session to have it marked `current`.
   */
  async listUserSessions(userId: string, current?: Session<Data>): Promise<SessionInfo[]> {
    const { codec } = this.#resolved ?? (await this.#ready);
    const currentKey = current === undefined ? null : stateOf(current).key;
    const records = await this.#call('listByUser', () => this.store.listByUser(userId));
    const now = this.#clock();
    const sessions: SessionInfo[] = [];
    for (const record of records) {
      if (record.expiresAt <= now) continue;
      const envelope = await codec.decode(record.data, record.key);
      if (envelope === null || envelope.x <= now) continue;
      const idleDerived =
        record.expiresAt < envelope.x ? record.expiresAt - envelope.i : envelope.w;
      sessions.push({
        handle: record.key,
        createdAt: envelope.c,
        lastSeenAt: Math.max(envelope.w, idleDerived),
        expiresAt: record.expiresAt,
        authenticatedAt: envelope.a,
        userAgent: envelope.ua,
        ip: envelope.ip,
        current: record.key === currentKey,
      });
    }
    return sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt);
  }

  /**
   * Ends all of a user's sessions (logout everywhere, a password change), optionally all but
   * the given one. Answers how many were ended.
   */
  async revokeUserSessions(
    userId: string,
    options: { except?: Session<Data> } = {},
  ): Promise<number> {
    const exceptKey =
      options.except === undefined ? undefined : (stateOf(options.except).key ?? undefined);
    const removed = await this.#call('deleteByUser', () =>
      this.store.deleteByUser(userId, exceptKey),
    );
    for (let i = 0; i < removed; i++) this.#emit('destroyed', { userId, reason: 'revoked' });
    return removed;
  }

  /** Ends one of a user's sessions by the handle from {@link SessionManager.listUserSessions}. */
  async revokeUserSession(userId: string, handle: string): Promise<boolean> {
    const record = await this.#call('get', () => this.store.get(handle));
    if (record === null || record.userId !== userId) return false;
    await this.#call('delete', () => this.store.delete(handle));
    this.#emit('destroyed', { userId, reason: 'revoked' });
    return true;
  }
}
