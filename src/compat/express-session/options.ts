/**
 * The middleware's options: express-session's, Tessera's additions, and their checks at start-up.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CrossOriginOptions } from '../../cross-origin.js';
import { CrossOriginGuard } from '../../cross-origin.js';
import { SessionError } from '../../errors.js';
import type { SessionRequest } from './context.js';
import type { CookieOptions } from './cookie.js';
import { MemoryStore } from './memory.js';
import type { Secret } from './signature.js';
import { newSessionId, secretKey } from './signature.js';

/**
 * Any express-session store: Tessera's {@link Store} and {@link MemoryStore}, or a third party's
 * (connect-redis, connect-pg-simple, ...).
 */
export interface StoreLike {
  get(sid: string, callback: (err: any, session?: any) => void): unknown;
  set(sid: string, session: any, callback?: (err?: any) => void): unknown;
  destroy(sid: string, callback?: (err?: any) => void): unknown;
  touch?(sid: string, session: any, callback?: (err?: any) => void): unknown;
  on?(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * The `cookie` option as a function of the request. Written as a method's type so that a function
 * typed for Express's request (as @types/express-session types it) is accepted too.
 */
export type CookieOptionsFunction = {
  cookieOptions(req: SessionRequest): CookieOptions;
}['cookieOptions'];

/**
 * Options of {@link session}: express-session's, with the same names, defaults and meaning, and
 * six additions (`mergeWrites`, `storeTimeout`, `whenDisconnected`, `onLateError`, `now`,
 * `crossOrigin`).
 */
export interface SessionOptions {
  /**
   * Signs the cookie: a string, bytes (a Buffer, typed array or DataView), a secret `KeyObject`,
   * or a list whose first entry signs and all of which verify (rotation). Without it,
   * `req.secret` (set by cookie-parser) is used, and a request with neither fails with
   * `secret option required for sessions`. An empty secret, an empty list or a value of another
   * type throws a `SessionError` `INVALID_OPTION` at start-up; a secret shorter than 32 bytes
   * works but emits a process warning (once per process). Use at least 32 random bytes.
   * @defaultValue none
   */
  secret?: Secret | readonly Secret[] | undefined;
  /** The cookie name. @defaultValue `'connect.sid'` */
  name?: string | undefined;
  /** The former name of {@link SessionOptions.name}. @deprecated */
  key?: string | undefined;
  /**
   * The cookie's settings, or a function answering them for each request.
   * @defaultValue `{ path: '/', httpOnly: true, secure: false, maxAge: null }`
   */
  cookie?: CookieOptions | CookieOptionsFunction | undefined;
  /**
   * Makes a new session ID.
   * @defaultValue 24 random bytes as base64url: 32 characters (192 bits), as express-session's
   */
  genid?(req: SessionRequest): string;
  /**
   * Save the session at the end of every request, even unmodified. express-session deprecates
   * relying on the default; `false` is what you want with a store that implements `touch`.
   * @defaultValue true
   */
  resave?: boolean | undefined;
  /** Set the cookie on every response, restarting its `maxAge`. @defaultValue false */
  rolling?: boolean | undefined;
  /**
   * Store new sessions (and set their cookie) even when nothing was put in them. `false` is what
   * login sessions and cookie-consent rules want.
   * @defaultValue true
   */
  saveUninitialized?: boolean | undefined;
  /** Where sessions are kept. @defaultValue a new (bounded) {@link MemoryStore} */
  store?: StoreLike | undefined;
  /**
   * What `req.session = null` (or `delete req.session`) does: `'destroy'` deletes the session at
   * the end of the response, `'keep'` leaves it stored and ignores this request's changes.
   * @defaultValue `'keep'`
   */
  unset?: 'destroy' | 'keep' | undefined;
  /**
   * Whether the request is secure, for `cookie.secure` (and `'auto'`): `true` believes the first
   * `X-Forwarded-Proto`, `false` only a direct TLS connection, `undefined` Express's `req.secure`
   * (its "trust proxy" setting).
   * @defaultValue undefined
   */
  proxy?: boolean | undefined;
  /**
   * Tessera: save a session loaded from the store key by key. The save reads the stored session
   * again and writes it back with only the top-level keys this request changed (added, replaced or
   * deleted), so concurrent requests writing different keys keep each other's writes.
   * `false` writes the whole in-memory session, as express-session does. Either way, within this
   * process a session's saves, touches and destroys reach the store one at a time, in the order
   * asked, and a session destroyed by another request (a logout) is never written back.
   * @defaultValue true
   */
  mergeWrites?: boolean | undefined;
  /**
   * Tessera: how long one store operation may take, in milliseconds, before it fails with a
   * `SessionError` `STORE_UNAVAILABLE` (status 503); for a save, touch or destroy this includes
   * waiting for the session's earlier writes. A save or touch whose time ran out before it wrote
   * is dropped; a destroy still runs when its turn comes. `0` waits forever, as express-session does.
   * @defaultValue 5_000
   */
  storeTimeout?: number | undefined;
  /**
   * Tessera: what a request gets while the store has emitted `disconnect` (and not `connect`
   * since). `'fail'` passes a `SessionError` `STORE_UNAVAILABLE` (status 503) to `next`;
   * `'skip'` continues without `req.session`, as express-session does.
   * @defaultValue `'fail'`
   */
  whenDisconnected?: 'fail' | 'skip' | undefined;
  /**
   * Tessera: called when the session could not be kept after the response's status and headers
   * had gone out: the save, touch or destroy at the end of the response failed (the store's
   * error), or the session cookie could not be written. The client already has its status and
   * the session's changes are lost, so the application is told here. The error also goes to
   * `next`, as in express-session, where an error handler often cannot tell it from others.
   * A throw from this function is ignored.
   * @defaultValue a process warning (code `TESSERA_SESSION_LOST`, naming the error's class and
   * code but not its message, which may hold the session ID), which Node prints to stderr
   */
  onLateError?: ((error: unknown, req: SessionRequest) => void) | undefined;
  /** Tessera: the clock, in epoch milliseconds, for cookie expiry. Tests inject one. @defaultValue `Date.now` */
  now?: (() => number) | undefined;
  /**
   * Tessera: cross-origin protection, as `SessionManager`'s `crossOrigin` option decides it
   * (`Sec-Fetch-Site`, else `Origin` against `Host`), but off unless asked, as express-session
   * has none. `true` or an options object turns it on: an unsafe request a browser sent from
   * another origin goes to `next` with a `SessionError` `CROSS_ORIGIN_REFUSED` (status 403)
   * before its session is read.
   * @defaultValue false
   */
  crossOrigin?: boolean | CrossOriginOptions | undefined;
}

/** The middleware: mount it with `app.use()`, or call it from a plain node:http handler. */
export type SessionMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

/** The options after defaults and checks. @internal */
export interface Config {
  store: StoreLike;
  cookie: CookieOptions | ((req: SessionRequest) => CookieOptions);
  genid: (req: SessionRequest) => string;
  name: string;
  proxy: boolean | undefined;
  resave: boolean;
  rolling: boolean;
  saveUninitialized: boolean;
  unsetDestroy: boolean;
  /** The secrets' key bytes, the signing one first; `undefined`: `req.secret` per request. */
  keys: Uint8Array[] | undefined;
  mergeWrites: boolean;
  storeTimeout: number;
  whenDisconnected: 'fail' | 'skip';
  onLateError: (error: unknown, req: SessionRequest) => void;
  now: () => number;
  crossOrigin: CrossOriginGuard | undefined;
}

let warnedShortSecret = false;

/** Short secrets keep working (express-session accepts them), with one warning per process. */
function warnShortSecret(): void {
  if (warnedShortSecret) return;
  warnedShortSecret = true;
  process.emitWarning(
    'tessera-session/express-session: a session secret is shorter than 32 bytes, which makes ' +
      'session cookies easier to forge; use at least 32 random bytes ' +
      "(for example crypto.randomBytes(32).toString('base64')).",
    { code: 'TESSERA_SHORT_SECRET' },
  );
}

/**
 * The `secret` option as key bytes, refused at start-up when empty or not a secret (otherwise an
 * empty key would sign cookies, and a wrong type would fail only once a response is under way).
 */
function secretKeys(secret: unknown): Uint8Array[] {
  if (Array.isArray(secret) && secret.length === 0) {
    throw new TypeError('secret option array must contain one or more strings');
  }
  const list: unknown[] = Array.isArray(secret) ? [...secret] : [secret];
  return list.map((entry) => {
    const key = secretKey(entry);
    if (key === undefined) {
      throw new SessionError(
        'INVALID_OPTION',
        'secret must be a string, a Buffer, typed array or DataView, a secret KeyObject, or a list of them',
      );
    }
    if (key.length === 0) throw new SessionError('INVALID_OPTION', 'secret must not be empty');
    if (key.length < 32) warnShortSecret();
    return key;
  });
}

/** `req.secret` (cookie-parser's) as key bytes when it is a usable secret; a short one warns. */
export function requestKey(req: SessionRequest): Uint8Array | undefined {
  const key = secretKey(req.secret);
  if (key === undefined || key.length === 0) return undefined;
  if (key.length < 32) warnShortSecret();
  return key;
}

/** What a late error looks like by default: its class and code, never its message. */
function warnLateError(error: unknown): void {
  // The class's name: some drivers' errors leave `name` as plain 'error'.
  const name = error instanceof Error ? error.constructor.name || error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  process.emitWarning(
    `tessera-session/express-session: the session could not be kept after the response had ` +
      `started (${name}${typeof code === 'string' ? ` ${code}` : ''}); its changes are lost. ` +
      'Set the onLateError option to handle this.',
    { code: 'TESSERA_SESSION_LOST' },
  );
}

/** Checks the options and applies the defaults; throws at start-up for a bad one. @internal */
export function resolveConfig(options: SessionOptions | undefined): Config {
  const opts: SessionOptions = options ?? {};
  const genid = opts.genid ?? newSessionId;
  if (typeof genid !== 'function') throw new TypeError('genid option must be a function');
  if (opts.unset && opts.unset !== 'destroy' && opts.unset !== 'keep') {
    throw new TypeError('unset option must be "destroy" or "keep"');
  }
  const keys = opts.secret === undefined ? undefined : secretKeys(opts.secret);
  const storeTimeout = opts.storeTimeout ?? 5_000;
  if (typeof storeTimeout !== 'number' || !(storeTimeout >= 0)) {
    throw new SessionError(
      'INVALID_OPTION',
      'storeTimeout must be 0 or a positive number of milliseconds',
    );
  }
  const whenDisconnected = opts.whenDisconnected ?? 'fail';
  if (whenDisconnected !== 'fail' && whenDisconnected !== 'skip') {
    throw new SessionError('INVALID_OPTION', 'whenDisconnected must be "fail" or "skip"');
  }
  const onLateError = opts.onLateError ?? warnLateError;
  if (typeof onLateError !== 'function') {
    throw new SessionError('INVALID_OPTION', 'onLateError must be a function');
  }
  return {
    store: opts.store ?? new MemoryStore(),
    cookie: opts.cookie ?? {},
    genid,
    name: opts.name || opts.key || 'connect.sid',
    proxy: opts.proxy,
    resave: opts.resave === undefined ? true : Boolean(opts.resave),
    rolling: Boolean(opts.rolling),
    saveUninitialized:
      opts.saveUninitialized === undefined ? true : Boolean(opts.saveUninitialized),
    unsetDestroy: opts.unset === 'destroy',
    keys,
    mergeWrites: opts.mergeWrites ?? true,
    storeTimeout,
    whenDisconnected,
    onLateError,
    now: opts.now ?? Date.now,
    crossOrigin:
      opts.crossOrigin === undefined || opts.crossOrigin === false
        ? undefined
        : new CrossOriginGuard(opts.crossOrigin === true ? {} : opts.crossOrigin, 'session'),
  };
}
