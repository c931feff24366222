/**
 * The manager's options: their documentation, their checks (each refused at start-up with
 * `INVALID_OPTION`), and the crypto tools built from them.
 *
 * @packageDocumentation
 */
import type { CookieOptions, ResolvedCookieOptions } from './cookie.js';
import { resolveCookieOptions } from './cookie.js';
import type { CryptoProvider } from './crypto.js';
import { defaultCryptoProvider } from './crypto.js';
import type { EncryptionOptions } from './codec.js';
import type { CsrfSettings, CsrfTokenOptions } from './csrf-token.js';
import { csrfSettingsOf } from './csrf-token.js';
import { Codec } from './codec.js';
import type { CrossOriginOptions } from './cross-origin.js';
import { CrossOriginGuard } from './cross-origin.js';
import { SessionError, isSessionError } from './errors.js';
import type { HeaderTransport, HeaderTransportOptions } from './header-transport.js';
import { headerTransportOf } from './header-transport.js';
import type { MaybePromise } from './maybe.js';
import { booleanOption, clockOption, numberOption } from './options.js';
import { hasUserIndex, type SessionStore } from './store.js';
import { CookieSigner } from './token.js';

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
   * A store that answers a value rather than a promise has answered already and is not bounded.
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
   * session binds to the user beyond it. Needs a store with a user index.
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
  /**
   * Session-bound synchronizer tokens: `session.csrfToken()` gives them, and every adapter
   * refuses an unsafe request (any method but GET, HEAD and OPTIONS) without a valid one with
   * 403 (`CSRF_TOKEN_INVALID`). The token is read from the header, else from the form field of
   * a body parsed before the session layer. `true` uses the defaults; an object names the field
   * and the header.
   * @defaultValue false; with `true`, field `_csrf` and header `x-csrf-token`
   */
  csrfTokens?: boolean | CsrfTokenOptions;
  /**
   * Cross-origin protection: every adapter refuses an unsafe request (any method but GET, HEAD
   * and OPTIONS) that a browser marks as sent from another origin (`Sec-Fetch-Site`), or, from
   * browsers without that header, whose `Origin` differs from its `Host`; 403 with code
   * `CROSS_ORIGIN_REFUSED`, before its session is read. Requests with neither header pass, and
   * so do requests that use the header transport. `false` turns it off; an object lists trusted
   * origins and bypassed paths.
   * @defaultValue on, with no trusted origin and no bypassed path
   */
  crossOrigin?: boolean | CrossOriginOptions;
  /**
   * The header transport for API and mobile clients: the signed token in
   * `Authorization: Bearer <token>` (or a header of your choice), beside the cookie or instead
   * of it. A request that carries the header is read from it alone, gets no Set-Cookie, and its
   * new tokens go out in the `Session-Token` response header. `true` uses the defaults.
   * @defaultValue off: sessions go by cookie only
   */
  headerTransport?: boolean | HeaderTransportOptions;
}

/** The checked options. */
export interface Settings {
  readonly store: SessionStore;
  readonly cookie: ResolvedCookieOptions;
  readonly idle: number;
  readonly absolute: number;
  readonly touchInterval: number;
  readonly trustProxy: boolean;
  readonly storeTimeout: number;
  readonly maxRetries: number;
  readonly maxPerUser: number | undefined;
  readonly maxDataBytes: number;
  readonly clock: () => number;
  /** Whether records are sealed: then the user and expiry inside are checked against the columns. */
  readonly sealed: boolean;
  /** The synchronizer-token names, `undefined` when tokens are off. */
  readonly csrf: CsrfSettings | undefined;
  /** The cross-origin protection, `undefined` when off. */
  readonly crossOrigin: CrossOriginGuard | undefined;
  /** The header transport, `undefined` when off. */
  readonly transport: HeaderTransport | undefined;
}

/** What signs cookies and encodes records, once the crypto provider is known. */
export interface Tools {
  readonly crypto: CryptoProvider;
  readonly signer: CookieSigner;
  readonly codec: Codec;
}

const OWNER = 'SessionManager';
const MINUTE = 60_000;
const POSITIVE = { exclusiveMin: true };

/** Checks every option but the secrets and keys (see {@link toolsOf}); throws `INVALID_OPTION`. */
export function settingsOf(options: SessionManagerOptions): Settings {
  if (typeof options !== 'object' || options === null) {
    throw new SessionError('INVALID_OPTION', 'SessionManager needs an options object');
  }
  const store = options.store;
  if (typeof store !== 'object' || store === null || typeof store.get !== 'function') {
    throw new SessionError('INVALID_OPTION', 'store: give a SessionStore');
  }
  // A browser-session cookie unless asked otherwise; CookieOptions' own default is older.
  const cookie = resolveCookieOptions({
    ...options.cookie,
    persistent: options.cookie?.persistent ?? false,
  });
  const idle = numberOption(OWNER, 'idleTimeout', options.idleTimeout, 30 * MINUTE, POSITIVE);
  const absolute = numberOption(
    OWNER,
    'absoluteTimeout',
    options.absoluteTimeout,
    12 * 60 * MINUTE,
    POSITIVE,
  );
  const touchInterval = numberOption(
    OWNER,
    'touchInterval',
    options.touchInterval,
    Math.min(MINUTE, idle / 10),
  );
  if (touchInterval >= idle) {
    throw new SessionError('INVALID_OPTION', 'touchInterval must be shorter than idleTimeout');
  }
  const trustProxy = booleanOption(OWNER, 'trustProxy', options.trustProxy, false);
  const storeTimeout = numberOption(OWNER, 'storeTimeout', options.storeTimeout, 5_000, POSITIVE);
  const maxRetries = numberOption(OWNER, 'maxRetries', options.maxRetries, 16, { integer: true });
  const maxPerUser =
    options.maxSessionsPerUser === undefined
      ? undefined
      : numberOption(OWNER, 'maxSessionsPerUser', options.maxSessionsPerUser, 1, {
          min: 1,
          integer: true,
        });
  if (maxPerUser !== undefined && !hasUserIndex(store)) {
    throw new SessionError(
      'INVALID_OPTION',
      'maxSessionsPerUser needs a store with a user index (the UserIndex capability: listByUser and deleteByUser)',
    );
  }
  const maxDataBytes = numberOption(OWNER, 'maxDataBytes', options.maxDataBytes, 262_144, POSITIVE);
  return {
    store,
    cookie,
    idle,
    absolute,
    touchInterval,
    trustProxy,
    storeTimeout,
    maxRetries,
    maxPerUser,
    maxDataBytes,
    clock: clockOption(OWNER, options.now),
    sealed: options.encryption !== undefined,
    csrf: csrfSettingsOf(options.csrfTokens),
    crossOrigin: crossOriginOf(options.crossOrigin),
    transport: headerTransportOf(options.headerTransport),
  };
}

/** The protection the `crossOrigin` option asks for: on unless `false`. */
function crossOriginOf(
  option: boolean | CrossOriginOptions | undefined,
): CrossOriginGuard | undefined {
  if (option === false) return undefined;
  return new CrossOriginGuard(option === undefined || option === true ? {} : option);
}

/** A shell command that prints a new signing secret: 32 random bytes in base64url. */
export const SECRET_COMMAND = `node -p "require('node:crypto').randomBytes(32).toString('base64url')"`;

/** The signer of `secrets`; a missing or short secret's error says how to make a good one. */
function signerOf(crypto: CryptoProvider, secrets: SessionManagerOptions['secrets']): CookieSigner {
  try {
    return new CookieSigner(crypto, secrets);
  } catch (error) {
    if (!isSessionError(error, 'INVALID_OPTION')) throw error;
    throw new SessionError('INVALID_OPTION', `${error.message}. Make one with: ${SECRET_COMMAND}`);
  }
}

/**
 * The crypto tools, or a function answering them or the promise of them while the default
 * provider loads. Secrets and keys are checked and copied now, so a bad one fails at start-up
 * and a caller that wipes its arrays afterwards changes nothing.
 */
export function toolsOf(options: SessionManagerOptions): () => MaybePromise<Tools> {
  if (options.crypto !== undefined) {
    const crypto = options.crypto;
    const tools: Tools = {
      crypto,
      signer: signerOf(crypto, options.secrets),
      codec: new Codec(crypto, options.encryption),
    };
    return () => tools;
  }
  const pending = { randomBytes: () => new Uint8Array(0) } as unknown as CryptoProvider;
  const signer = signerOf(pending, options.secrets);
  const codec = new Codec(pending, options.encryption);
  let tools: Tools | undefined;
  const ready = defaultCryptoProvider().then(
    (crypto) =>
      (tools = { crypto, signer: signer.withCrypto(crypto), codec: codec.withCrypto(crypto) }),
  );
  ready.catch(() => undefined);
  return () => tools ?? ready;
}
