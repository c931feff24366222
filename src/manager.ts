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
import { booleanOption, clockOption, delay, numberOption } from './options.js';
import type {
  DefaultSessionData,
  RegenerateOptions,
  SessionHost,
  SessionState,
} from './session.js';
import { Session, checkUserId, stateOf, writeData } from './session.js';
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
   * Idle timeout in milliseconds: a session unused this long expires. A finite number above 0.
   * @defaultValue 1_800_000 (30 minutes)
   */
  idleTimeout?: number;
  /**
   * Absolute timeout in milliseconds, from creation; activity never extends it. A finite number
   * above 0.
   * @defaultValue 43_200_000 (12 hours)
   */
  absoluteTimeout?: number;
  /**
   * A read-only request extends the stored expiry at most once per this many milliseconds. A
   * finite number from 0, below `idleTimeout`.
   * @defaultValue `min(60_000, idleTimeout / 10)`: one touch a minute with the default idle
   * timeout, and proportionally more often for short ones, so an active session never idles out.
   */
  touchInterval?: number;
  /**
   * The session cookie. Unlike {@link CookieOptions}' own default, the manager makes it a
   * browser-session cookie unless `persistent: true` is given here or a session asks for it
   * with `setTimeouts({ persistent: true })`.
   */
  cookie?: CookieOptions;
  /**
   * Believe the first value of `X-Forwarded-Proto` when deciding whether a request is HTTPS.
   * Only enable behind a proxy that sets it. While it is off, the first request that says
   * `X-Forwarded-Proto: https` over plain HTTP emits a `warning` event and a process warning
   * (once per manager) when the cookie's `secure` is `'auto'`: its cookie goes out without
   * Secure and without `__Host-`.
   * @defaultValue false
   */
  trustProxy?: boolean;
  /**
   * Encrypt session data at rest with AES-256-GCM. The user ID and the expiry are sealed too and
   * compared with the store's columns on every read: a record whose columns were edited is
   * rejected (`rejected` event, reason `tampered`). Without encryption the store is trusted.
   * @defaultValue none: records are plain JSON
   */
  encryption?: EncryptionOptions;
  /**
   * How long one store call may take before it fails with `STORE_UNAVAILABLE`, in milliseconds.
   * A store's synchronous `getNow`, `createNow` and `updateNow` cannot be cut short and are not bounded by it.
   * @defaultValue 5_000
   */
  storeTimeout?: number;
  /**
   * How many times a save that meets a newer version is re-applied before `WRITE_CONFLICT`. A
   * whole number from 0.
   * @defaultValue 16
   */
  maxRetries?: number;
  /**
   * The most live sessions one user may have, a whole number from 1; the oldest are ended when a
   * session binds to the user beyond it.
   * @defaultValue none: unlimited
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
  /**
   * `'no-store'` when the response sets or clears a session cookie, or its session holds data
   * or a user (anonymous sessions included), so that no shared cache keeps it.
   */
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

/**
 * Why a cookie was not accepted.
 *
 * - `malformed`: not a signed session cookie at all.
 * - `signature`: signed, but not by a current secret.
 * - `unknown`: no live record under it (never issued, ended, or dropped by the store at expiry).
 * - `undecodable`: its record cannot be read: malformed, sealed under an unknown key, moved from
 *   another record, plain while encryption is on, or sealed before Tessera sealed the user and
 *   expiry.
 * - `tampered`: with encryption on, the record's `userId` or `expiresAt` column differs from the
 *   sealed values (someone edited the store). Also reported when `listUserSessions` or
 *   `revokeUserSession` meets such a record, which they skip.
 * - `ambiguous`: the request carried more than one live session under the cookie's name (a
 *   cookie tossed in from a sibling subdomain, say), or more than four distinct validly signed
 *   ones (which are not read): none is adopted.
 */
export type RejectReason =
  'malformed' | 'signature' | 'unknown' | 'undecodable' | 'tampered' | 'ambiguous';

/**
 * How many distinct validly signed session cookies one request may carry before the manager
 * calls it ambiguous without reading any of them. Signed values are only ones this server
 * issued, so this bounds the store reads a request can cause; a browser holds more than one only
 * after a cookie's Path or Domain changed, or when one was tossed in.
 */
const MAX_SESSION_CANDIDATES = 4;

/** Codes of the {@link SessionEvents} `warning` event. */
export type WarningCode = 'UNTRUSTED_FORWARDED_PROTO';

/** A stored record that is live, with its decoded envelope. */
interface Live {
  record: StoredRecord;
  envelope: Envelope;
}

/** A cookie value whose signature verified: the session ID and its store key. */
interface Verified {
  id: string;
  key: string;
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
 *
 * `regenerated` fires when a session moves to a new ID: at `regenerate()`, and at the save that
 * follows `setUser()` on a stored session.
 *
 * `warning` reports a configuration that is probably wrong, once per manager and code: with
 * `UNTRUSTED_FORWARDED_PROTO`, a request said `X-Forwarded-Proto: https` over plain HTTP while
 * `trustProxy` is off, so its cookie went out without Secure and `__Host-`.
 */
export interface SessionEvents {
  created: { userId: string | null };
  regenerated: { userId: string | null };
  destroyed: { userId: string | null; reason: 'destroy' | 'revoked' | 'cap' };
  expired: { userId: string | null; reason: 'idle' | 'absolute' };
  rejected: { reason: RejectReason };
  warning: { code: WarningCode; message: string };
}

const MINUTE = 60_000;
/** How many verified cookie values are remembered, sparing their HMAC and hash on later requests. */
const VERIFIED_CACHE_SIZE = 10_000;

interface PendingCall {
  deadline: number;
  operation: string;
  reject: (error: SessionError) => void;
}

/** The headers of a response that sets no cookie but holds a session: Cache-Control only. */
const NO_STORE_ONLY: ResponseHeaders = Object.freeze({
  setCookie: Object.freeze([]) as readonly string[],
  cacheControl: 'no-store',
});
/** The headers of a response that sets no cookie and whose session holds nothing: none. */
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

/** The shape of a store key (base64url SHA-256), which a session handle is. */
const STORE_KEY = /^[A-Za-z0-9_-]{43}$/;

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
  readonly #maxPerUser: number | undefined;
  readonly #maxDataBytes: number;
  readonly #clock: () => number;
  /** Whether records are sealed: then the user and expiry inside are checked against the columns. */
  readonly #sealed: boolean;
  #warnedForwardedProto = false;
  readonly #ready: Promise<{ crypto: CryptoProvider; signer: CookieSigner; codec: Codec }>;
  #resolved: Resolved | undefined;
  readonly #listeners = new Map<keyof SessionEvents, Set<(event: any) => void>>();
  readonly #pending = new Set<PendingCall>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  readonly #verified = new Map<string, Verified>();
  readonly #host: SessionHost;

  /**
   * Validates every option; a bad one throws `SessionError` with code `INVALID_OPTION`. Numbers
   * must be finite (`Infinity` and `NaN` are refused) and within their ranges.
   */
  constructor(options: SessionManagerOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new SessionError('INVALID_OPTION', 'SessionManager needs an options object');
    }
    const store = options.store;
    if (typeof store !== 'object' || store === null || typeof store.get !== 'function') {
      throw new SessionError('INVALID_OPTION', 'store: give a SessionStore');
    }
    this.store = store;
    // A browser-session cookie unless asked otherwise; CookieOptions' own default is older.
    this.cookie = resolveCookieOptions({
      ...options.cookie,
      persistent: options.cookie?.persistent ?? false,
    });
    const owner = 'SessionManager';
    const positive = { exclusiveMin: true };
    this.#idle = numberOption(owner, 'idleTimeout', options.idleTimeout, 30 * MINUTE, positive);
    this.#absolute = numberOption(
      owner,
      'absoluteTimeout',
      options.absoluteTimeout,
      12 * 60 * MINUTE,
      positive,
    );
    this.#touchInterval = numberOption(
      owner,
      'touchInterval',
      options.touchInterval,
      Math.min(MINUTE, this.#idle / 10),
    );
    if (this.#touchInterval >= this.#idle) {
      throw new SessionError('INVALID_OPTION', 'touchInterval must be shorter than idleTimeout');
    }
    this.#trustProxy = booleanOption(owner, 'trustProxy', options.trustProxy, false);
    this.#storeTimeout = numberOption(owner, 'storeTimeout', options.storeTimeout, 5_000, positive);
    this.#maxRetries = numberOption(owner, 'maxRetries', options.maxRetries, 16, { integer: true });
    this.#maxPerUser =
      options.maxSessionsPerUser === undefined
        ? undefined
        : numberOption(owner, 'maxSessionsPerUser', options.maxSessionsPerUser, 1, {
            min: 1,
            integer: true,
          });
    this.#maxDataBytes = numberOption(
      owner,
      'maxDataBytes',
      options.maxDataBytes,
      262_144,
      positive,
    );
    this.#clock = clockOption(owner, options.now);
    this.#sealed = options.encryption !== undefined;
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
    if (typeof info.forwardedProto !== 'string') return false;
    const first = info.forwardedProto.split(',')[0]!.trim().toLowerCase();
    if (this.#trustProxy) return first === 'https';
    // Only an 'auto' cookie loses Secure and __Host- here; a cookie always Secure keeps both.
    if (first === 'https' && this.cookie.secure === 'auto') this.#warnUntrustedProxy();
    return false;
  }

  /**
   * Says once per manager that a request came through an HTTPS proxy the manager does not
   * trust: its cookie goes out without Secure and `__Host-`, which is rarely what was meant.
   */
  #warnUntrustedProxy(): void {
    if (this.#warnedForwardedProto) return;
    this.#warnedForwardedProto = true;
    const message =
      'tessera-session: a request carried X-Forwarded-Proto: https over plain HTTP, but the ' +
      'trustProxy option is off, so session cookies go out without Secure and without the ' +
      '__Host- prefix. Set trustProxy: true if a proxy you control sets that header.';
    this.#emit('warning', { code: 'UNTRUSTED_FORWARDED_PROTO', message });
    globalThis.process?.emitWarning?.(message, {
      type: 'TesseraWarning',
      code: 'TESSERA_UNTRUSTED_FORWARDED_PROTO',
    });
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
      persistent: undefined,
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
    state.persistent = envelope.p;
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

  /**
   * The one check of every record the manager reads (load, reload, the re-read after a write
   * conflict, a user's list, revoking by handle): decodable, its columns matching what is
   * sealed inside it, and not expired by the server's clock. Reports what it finds: an `expired`
   * event, or `rejected` with reason `tampered`.
   */
  #liveness(record: StoredRecord, envelope: Envelope | null): Live | RejectReason | 'expired' {
    if (envelope === null) return 'undecodable';
    if (!this.#trusted(record, envelope)) {
      this.#emit('rejected', { reason: 'tampered' });
      return 'tampered';
    }
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
   * Whether a record's `userId` and `expiresAt` columns say what is sealed inside it. Plain
   * records carry neither: without encryption the store is trusted.
   */
  #trusted(record: SessionRecord, envelope: Envelope): boolean {
    return !this.#sealed || (envelope.u === record.userId && envelope.e === record.expiresAt);
  }

  /**
   * The request's scheme and cookie name, and the values it sent under that name, each once:
   * a browser sends one; more come from a cookie with another Path or Domain, or one tossed in.
   */
  #cookiesOf(info: RequestInfo): {
    https: boolean;
    cookieName: string;
    values: Iterable<string>;
    sent: boolean;
  } {
    const https = this.#isHttps(info);
    const cookieName = cookieNameFor(this.cookie, https);
    const values = readCookieValues(info.cookie, cookieName);
    // A Set only when there is something to de-duplicate: nearly every request sends one value.
    const distinct = values.length > 1 ? new Set(values) : values;
    return { https, cookieName, values: distinct, sent: values.length > 0 };
  }

  /**
   * The sessions worth reading among a request's verified cookies, each once (two values can
   * sign one ID under rotated secrets), or `ambiguous` when there are too many to read.
   */
  #candidates(verified: Verified[]): Verified[] | 'ambiguous' {
    if (verified.length <= 1) return verified;
    const byKey = new Map<string, Verified>();
    for (const entry of verified) byKey.set(entry.key, entry);
    return byKey.size > MAX_SESSION_CANDIDATES ? 'ambiguous' : [...byKey.values()];
  }

  /**
   * The session a request gets once its candidates are read: the one live session among them;
   * a new anonymous one when none is live, or when more than one is (a tossed cookie must not
   * pick the session), reported as `ambiguous`.
   */
  #choose(
    state: SessionState,
    candidates: Verified[],
    found: (Live | RejectReason | 'expired')[],
    reason: RejectReason | 'expired' | undefined,
  ): Session<Data> {
    let live = -1;
    for (let i = 0; i < found.length; i++) {
      const result = found[i]!;
      if (typeof result === 'string') reason = result;
      else if (live !== -1) return this.#anonymous(state, 'ambiguous');
      else live = i;
    }
    if (live === -1) return this.#anonymous(state, reason);
    return this.#resumed(state, candidates[live]!, found[live] as Live);
  }

  /**
   * Finds the session a request belongs to. A missing, malformed, tampered, unknown or expired
   * cookie gives a fresh anonymous session (nothing is stored until it holds data). Every value
   * under the cookie's name is considered: those that fail verification are ignored, and when
   * more than one live session is presented none is adopted (`rejected`, reason `ambiguous`). A
   * store failure rejects with `STORE_UNAVAILABLE`, never with an empty session.
   */
  async load(info: RequestInfo): Promise<Session<Data>> {
    const loaded = this.loadNow(info);
    if (loaded !== undefined) return loaded;
    const { signer, crypto, codec } = this.#resolved ?? (await this.#ready);
    const getNow = this.store.getNow;
    const cookies = this.#cookiesOf(info);
    let reason: RejectReason | undefined;
    const verified: Verified[] = [];
    for (const value of cookies.values) {
      let entry = this.#verified.get(value);
      if (entry === undefined) {
        const id = await signer.verify(value);
        if (id === null) {
          reason = value.length === 87 ? 'signature' : 'malformed';
          continue;
        }
        entry = { id, key: await storeKeyFor(crypto, id) };
        if (this.#verified.size >= VERIFIED_CACHE_SIZE)
          this.#verified.delete(this.#verified.keys().next().value!);
        this.#verified.set(value, entry);
      }
      verified.push(entry);
    }
    const state = this.#freshState(cookies.https, cookies.cookieName, cookies.sent, info);
    const candidates = this.#candidates(verified);
    if (candidates === 'ambiguous') return this.#anonymous(state, 'ambiguous');
    const found: (Live | RejectReason | 'expired')[] = [];
    for (const { key } of candidates) {
      found.push(
        getNow !== undefined && codec.synchronous
          ? this.#readLiveNow(key, getNow, codec)
          : await this.#readLive(key),
      );
    }
    return this.#choose(state, candidates, found, reason);
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
    const cookies = this.#cookiesOf(info);
    const verified: Verified[] = [];
    for (const value of cookies.values) {
      const entry = this.#verified.get(value);
      if (entry === undefined) return undefined;
      verified.push(entry);
    }
    const state = this.#freshState(cookies.https, cookies.cookieName, cookies.sent, info);
    const candidates = this.#candidates(verified);
    if (candidates === 'ambiguous') return this.#anonymous(state, 'ambiguous');
    const found = candidates.map(({ key }) => this.#readLiveNow(key, getNow, resolved.codec));
    return this.#choose(state, candidates, found, undefined);
  }

  /** The stored session a verified cookie leads to. */
  #resumed(state: SessionState, verified: Verified, found: Live): Session<Data> {
    state.id = verified.id;
    state.key = verified.key;
    state.persisted = true;
    this.#adopt(state, found.record, found.envelope);
    return new Session<Data>(this.#host, state);
  }

  /**
   * A new anonymous session, for a request whose cookies (if any) led to no live session. The
   * reason is reported unless it already was (`expired`, `tampered`).
   */
  #anonymous(state: SessionState, reason: RejectReason | 'expired' | undefined): Session<Data> {
    if (reason !== undefined && reason !== 'expired' && reason !== 'tampered') {
      this.#emit('rejected', { reason });
    }
    this.#recordRequest(state);
    return new Session<Data>(this.#host, state);
  }

  /**
   * Saves what the request changed (or touches a read-only session when due) and answers the
   * headers for the response. Call it once, before the response's headers go out. A stored
   * session whose user was set in this request moves to a new ID here (see `Session.setUser`).
   * With encryption, a due touch re-seals the record with its new expiry (a compare-and-set
   * update) instead of a bare touch. Rejects with `STORE_UNAVAILABLE` when the store fails: the
   * response must then not carry a session cookie.
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

  /**
   * The Set-Cookie value for a signed cookie value: a browser-session cookie, or for a
   * persistent one (the session's choice, else the cookie option) a Max-Age reaching the
   * session's absolute end.
   */
  #sessionCookie(state: SessionState, signed: string): string {
    const maxAge =
      (state.persistent ?? this.cookie.persistent)
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
   * there is other work to do (a bare touch, a move to a new ID after `setUser`, a new session
   * with a user), or data `commit` will refuse; call `commit` then. Never throws.
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
   * The store work that saving a live session takes, once in-place changes are collected: the
   * one decision behind both `commit` and `commitNow`. A new session is stored only once it holds
   * data or a user. A stored session whose user was set moves to a new ID (`rotate`). A due touch
   * of a sealed record rewrites it (`save`), since its expiry is sealed inside.
   */
  #storeWork(state: SessionState, now: number): 'create' | 'rotate' | 'save' | 'touch' | 'none' {
    this.#collectInPlaceChanges(state);
    if (!state.persisted) {
      return state.userId !== null || holdsAnyKey(state.data) ? 'create' : 'none';
    }
    if (state.userChanged) return 'rotate';
    if ((state.changed !== null && state.changed.size > 0) || state.timeoutsChanged) return 'save';
    if (!this.#touchDue(state, now)) return 'none';
    return this.#sealed ? 'save' : 'touch';
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
    // Most responses set no cookie: they share one of two frozen answers. A response whose
    // session holds anything, anonymous or not, must not sit in a shared cache.
    return state.userId !== null || holdsAnyKey(state.data) ? NO_STORE_ONLY : NO_SESSION_HEADERS;
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

  /**
   * What is written for a session. The user and the expiry go in too: the codec seals them with
   * the rest when encryption is on (to be checked against the columns), and leaves them to the
   * columns otherwise.
   */
  #envelopeFor(state: SessionState, now: number): Envelope {
    const envelope: Envelope = {
      d: state.data,
      c: state.createdAt,
      w: now,
      i: state.idle,
      x: state.createdAt + state.absolute,
      u: state.userId,
      e: this.#expiryOf(state, now),
    };
    if (state.authenticatedAt !== undefined) envelope.a = state.authenticatedAt;
    if (state.userAgent !== undefined) envelope.ua = state.userAgent;
    if (state.ip !== undefined) envelope.ip = state.ip;
    if (state.persistent !== undefined) envelope.p = state.persistent;
    return envelope;
  }

  /**
   * The record to store for encoded `data`, with the same expiry as the envelope; throws
   * `DATA_TOO_LARGE` beyond `maxDataBytes`.
   */
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

  /**
   * The expiry a write at `now` gives the record: the idle deadline, never past the absolute
   * one. Whole milliseconds, the resolution every store keeps, so that a sealed copy compares
   * equal to the column.
   */
  #expiryOf(state: SessionState, now: number): number {
    return Math.floor(Math.min(now + state.idle, state.createdAt + state.absolute));
  }

  #collectInPlaceChanges(state: SessionState): void {
    const watched = state.watched;
    if (watched === null) return;
    for (const [key, before] of watched) {
      if (JSON.stringify(state.data[key]) !== before) (state.changed ??= new Set()).add(key);
    }
    state.watched = null;
  }

  /** An ended session holds nothing: no data, and no user for the application to believe. */
  #markEnded(state: SessionState): void {
    state.ended = true;
    state.persisted = false;
    state.issueCookie = false;
    state.data = emptyData();
    state.changed = null;
    state.userId = null;
    state.authenticatedAt = undefined;
  }

  async #persist(state: SessionState): Promise<void> {
    if (state.ended) return;
    const now = this.#clock();
    switch (this.#storeWork(state, now)) {
      case 'create':
        return this.#create(state);
      case 'rotate':
        // setUser on a stored session: the old record is deleted first, then the data is stored
        // under a new ID like any new session's (and nothing is, if it holds neither data nor user).
        await this.#regenerate(state, { keep: true });
        return this.#persist(state);
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
   * once: a change (or a sealed record's touch) through the store's `updateNow`, a new anonymous
   * session through `createNow`. A move to a new ID is left to the usual save, which deletes.
   * Answers whether it stored; on `false` the state is as it was, and the usual save follows.
   * Throws what the usual save would (`DATA_TOO_LARGE`, `INVALID_DATA`, `STORE_UNAVAILABLE`).
   */
  #saveNow(state: SessionState): boolean {
    const resolved = this.#resolved;
    if (resolved === undefined || !resolved.codec.synchronous) return false;
    if (state.ended) return false;
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

  /**
   * Compare-and-set with rebase: on a newer version, re-apply only this request's changes. The
   * user never changes here (setting it moves the session to a new ID), so the cap is not checked.
   */
  async #save(state: SessionState): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const now = this.#clock();
      const record = await this.#envelopeOf(state, now);
      const result = await this.#call('update', () =>
        this.store.update(state.key!, record, state.version),
      );
      if (result.status === 'ok') {
        this.#saved(state, result.version, record, now);
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
    state.userId = record.userId;
    state.authenticatedAt = envelope.a;
    if (!state.timeoutsChanged) {
      state.idle = envelope.i;
      state.absolute = envelope.x - envelope.c;
      state.persistent = envelope.p;
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
    const cap = this.#maxPerUser;
    if (cap === undefined || state.userId === null) return;
    const sessions = await this.listUserSessions(state.userId);
    const others = sessions
      .filter((info) => info.handle !== state.key)
      .sort((a, b) => b.createdAt - a.createdAt);
    const excess = others.slice(Math.max(0, cap - 1));
    for (const info of excess) {
      await this.#call('delete', () => this.store.delete(info.handle));
      this.#emit('destroyed', { userId: state.userId, reason: 'cap' });
    }
  }

  /**
   * A user's live sessions, most recently seen first, without session IDs. Pass the current
   * request's session to have it marked `current`. With encryption, a record whose columns
   * differ from what is sealed in it is left out and reported (`rejected`, reason `tampered`).
   * Throws `INVALID_USER_ID` for a user ID `setUser` would refuse.
   */
  async listUserSessions(userId: string, current?: Session<Data>): Promise<SessionInfo[]> {
    checkUserId(userId);
    const { codec } = this.#resolved ?? (await this.#ready);
    const currentKey = current === undefined ? null : stateOf(current).key;
    const records = await this.#call('listByUser', () => this.store.listByUser(userId));
    const sessions: SessionInfo[] = [];
    for (const record of records) {
      if (record.userId !== userId) continue;
      const found = this.#liveness(record, await codec.decode(record.data, record.key));
      if (typeof found === 'string') continue;
      const { envelope } = found;
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
   * the given one. Answers how many were ended. Throws `INVALID_USER_ID` for a user ID `setUser`
   * would refuse.
   */
  async revokeUserSessions(
    userId: string,
    options: { except?: Session<Data> } = {},
  ): Promise<number> {
    checkUserId(userId);
    const exceptKey =
      options.except === undefined ? undefined : (stateOf(options.except).key ?? undefined);
    const removed = await this.#call('deleteByUser', () =>
      this.store.deleteByUser(userId, exceptKey),
    );
    for (let i = 0; i < removed; i++) this.#emit('destroyed', { userId, reason: 'revoked' });
    return removed;
  }

  /**
   * Ends one of a user's sessions by the handle from {@link SessionManager.listUserSessions}.
   * Answers `false`, ending nothing, when the handle leads to no live session of that user (with
   * encryption, the user sealed in the record decides, not the column). Throws
   * `INVALID_USER_ID` for a user ID `setUser` would refuse.
   */
  async revokeUserSession(userId: string, handle: string): Promise<boolean> {
    checkUserId(userId);
    if (typeof handle !== 'string' || !STORE_KEY.test(handle)) return false;
    const found = await this.#readLive(handle);
    if (typeof found === 'string' || found.record.userId !== userId) return false;
    await this.#call('delete', () => this.store.delete(handle));
    this.#emit('destroyed', { userId, reason: 'revoked' });
    return true;
  }
}
