/**
 * The middleware: express-session's options, cookie format and request lifecycle, with Tessera's
 * additions (key-level merge on save, bounded store calls, no session when the store is down).
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { readCookieValues } from '../../cookie.js';
import { SessionError } from '../../errors.js';
import type { Callback, RequestContext, SessionRequest } from './context.js';
import { attachContext } from './context.js';
import type { CookieData, CookieOptions } from './cookie.js';
import { makeCookie, serializeCookie } from './cookie.js';
import { MemoryStore } from './memory.js';
import { Session } from './session.js';
import type { Secret } from './signature.js';
import { signValue, unsignValue } from './signature.js';
import type { SessionData, Store } from './store.js';
import { createSessionFrom } from './store.js';

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
 * Options of {@link session}: express-session's, with the same names, defaults and meaning, and
 * four additions (`mergeWrites`, `storeTimeout`, `whenDisconnected`, `now`).
 */
export interface SessionOptions {
  /**
   * Signs the cookie: a string, bytes, or a list whose first entry signs and all of which verify
   * (rotation). Without it, `req.secret` (set by cookie-parser) is used. Use at least 32 random bytes.
   */
  secret?: Secret | readonly Secret[];
  /** The cookie name. @defaultValue `'connect.sid'` */
  name?: string;
  /** The former name of {@link SessionOptions.name}. @deprecated */
  key?: string;
  /**
   * The cookie's settings, or a function answering them for each request.
   * @defaultValue `{ path: '/', httpOnly: true, secure: false, maxAge: null }`
   */
  cookie?: CookieOptions | ((req: SessionRequest) => CookieOptions);
  /** Makes a new session ID. @defaultValue 32 random bytes as base64url (256 bits) */
  genid?: (req: SessionRequest) => string;
  /**
   * Save the session at the end of every request, even unmodified. express-session deprecates
   * relying on the default; `false` is what you want with a store that implements `touch`.
   * @defaultValue true
   */
  resave?: boolean;
  /** Set the cookie on every response, restarting its `maxAge`. @defaultValue false */
  rolling?: boolean;
  /**
   * Store new sessions (and set their cookie) even when nothing was put in them. `false` is what
   * login sessions and cookie-consent rules want.
   * @defaultValue true
   */
  saveUninitialized?: boolean;
  /** Where sessions are kept. @defaultValue a new (bounded) {@link MemoryStore} */
  store?: StoreLike;
  /**
   * What `req.session = null` (or `delete req.session`) does: `'destroy'` deletes the session at
   * the end of the response, `'keep'` leaves it stored and ignores this request's changes.
   * @defaultValue `'keep'`
   */
  unset?: 'destroy' | 'keep';
  /**
   * Whether the request is secure, for `cookie.secure` (and `'auto'`): `true` believes the first
   * `X-Forwarded-Proto`, `false` only a direct TLS connection, `undefined` Express's `req.secure`
   * (its "trust proxy" setting).
   */
  proxy?: boolean;
  /**
   * Tessera: save a session loaded from the store key by key. The save reads the stored session
   * again and writes it back with only the top-level keys this request changed (added, replaced or
   * deleted), so concurrent requests writing different keys keep each other's writes; and a
   * session that was destroyed meanwhile (a logout in another request) is not written back.
   * `false` writes the whole in-memory session, as express-session does.
   * @defaultValue true
   */
  mergeWrites?: boolean;
  /**
   * Tessera: how long one store call may take, in milliseconds, before it fails with a
   * `SessionError` `STORE_UNAVAILABLE` (status 503). `0` waits forever, as express-session does.
   * @defaultValue 5_000
   */
  storeTimeout?: number;
  /**
   * Tessera: what a request gets while the store has emitted `disconnect` (and not `connect`
   * since). `'fail'` passes a `SessionError` `STORE_UNAVAILABLE` (status 503) to `next`;
   * `'skip'` continues without `req.session`, as express-session does.
   * @defaultValue `'fail'`
   */
  whenDisconnected?: 'fail' | 'skip';
  /** Tessera: the clock, in epoch milliseconds, for cookie expiry. Tests inject one. @defaultValue `Date.now` */
  now?: () => number;
}

/** The middleware: mount it with `app.use()`, or call it from a plain node:http handler. */
export type SessionMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

interface Config {
  store: StoreLike;
  cookie: CookieOptions | ((req: SessionRequest) => CookieOptions);
  genid: (req: SessionRequest) => string;
  name: string;
  proxy: boolean | undefined;
  resave: boolean;
  rolling: boolean;
  saveUninitialized: boolean;
  unsetDestroy: boolean;
  secrets: Secret[] | undefined;
  mergeWrites: boolean;
  storeTimeout: number;
  now: () => number;
}

type Snapshot = Map<string, string>;
type StoreMethod = 'get' | 'set' | 'destroy' | 'touch';
type StoreAnswer = (err?: any, value?: any) => void;

/**
 * Per store and session ID, the merge-saves waiting their turn: within this process a merge's read
 * and write are never interleaved with another's on the same session.
 */
const mergeQueues = new WeakMap<object, Map<string, (() => void)[]>>();

function exclusive(store: object, sid: string, task: (release: () => void) => void): void {
  let queues = mergeQueues.get(store);
  if (queues === undefined) mergeQueues.set(store, (queues = new Map()));
  const waiting = queues.get(sid);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    const next = queues.get(sid)?.shift();
    if (next !== undefined) next();
    else queues.delete(sid);
  };
  if (waiting !== undefined) waiting.push(() => task(release));
  else {
    queues.set(sid, []);
    task(release);
  }
}

/** Each top-level key but `cookie`, as JSON: what "modified" is measured against. */
function snapshotOf(session: object): Snapshot {
  const snapshot: Snapshot = new Map();
  for (const key of Object.keys(session)) {
    if (key === 'cookie') continue;
    const json = JSON.stringify((session as Record<string, unknown>)[key]);
    if (json !== undefined) snapshot.set(key, json);
  }
  return snapshot;
}

function sameSnapshot(a: Snapshot, b: Snapshot): boolean {
  if (a.size !== b.size) return false;
  for (const [key, json] of a) if (b.get(key) !== json) return false;
  return true;
}

/**
 * The stored session with this request's changes laid over it: keys that changed between `base`
 * (what this request last read or wrote) and `now` are taken from `session`, the others kept as
 * stored. The cookie is always this request's.
 */
function mergeData(
  stored: Record<string, unknown>,
  base: Snapshot,
  now: Snapshot,
  session: Session,
): SessionData {
  const merged: Record<string, unknown> = {};
  for (const key of Object.keys(stored)) {
    if (key !== '__proto__' && key !== 'cookie') merged[key] = stored[key];
  }
  for (const key of new Set([...base.keys(), ...now.keys()])) {
    if (base.get(key) === now.get(key)) continue;
    if (now.has(key)) merged[key] = session[key];
    else delete merged[key];
  }
  merged.cookie = session.cookie;
  return merged as SessionData;
}

function defaultGenid(): string {
  return randomBytes(32).toString('base64url');
}

function isSecure(req: SessionRequest, proxy: boolean | undefined): boolean {
  if ((req.socket as TLSSocket | undefined)?.encrypted === true) return true;
  if (proxy === false) return false;
  if (proxy !== true) return req.secure === true;
  const header = req.headers['x-forwarded-proto'];
  const value = (Array.isArray(header) ? header[0] : header) ?? '';
  return value.split(',')[0]!.trim().toLowerCase() === 'https';
}

function originalPathname(req: SessionRequest): string {
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : req.url;
  if (typeof url !== 'string' || url.length === 0) return '/';
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    try {
      path = new URL(url).pathname;
    } catch {
      path = url;
    }
  }
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  return path.length > 0 ? path : '/';
}

function decodeCookieValue(raw: string): string {
  let value = raw;
  if (
    value.length >= 2 &&
    value.charCodeAt(0) === 34 &&
    value.charCodeAt(value.length - 1) === 34
  ) {
    value = value.slice(1, -1);
  }
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function ownString(record: Record<string, unknown> | undefined, name: string): string | undefined {
  if (
    typeof record !== 'object' ||
    record === null ||
    !Object.prototype.hasOwnProperty.call(record, name)
  )
    return undefined;
  const value = record[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * The session ID in the request's cookie, when its signature verifies: from the Cookie header
 * (each value of the name, in order, until one verifies), else from cookie-parser's
 * `req.signedCookies`, else from a signed value in its `req.cookies`. Unsigned values are never used.
 */
function readSessionId(
  req: SessionRequest,
  name: string,
  secrets: readonly Secret[],
): string | undefined {
  const header = req.headers.cookie;
  if (typeof header === 'string') {
    for (const raw of readCookieValues(header, name)) {
      const value = decodeCookieValue(raw);
      if (!value.startsWith('s:')) continue;
      const id = unsignValue(value.slice(2), secrets);
      if (id !== false && id.length > 0) return id;
    }
  }
  const signed = ownString(req.signedCookies, name);
  if (signed !== undefined) return signed;
  const raw = ownString(req.cookies, name);
  if (raw !== undefined && raw.startsWith('s:')) {
    const id = unsignValue(raw.slice(2), secrets);
    if (id !== false && id.length > 0) return id;
  }
  return undefined;
}

function appendSetCookie(res: ServerResponse, value: string): void {
  const previous = res.getHeader('Set-Cookie');
  const list =
    previous === undefined ? [] : Array.isArray(previous) ? previous : [String(previous)];
  res.setHeader('Set-Cookie', [...list, value]);
  // A response that sets a session cookie must not be stored by a shared cache; an explicit choice stays.
  if (!res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', 'no-store');
}

/** Applies the headers given to `writeHead` with `setHeader`, so a listener sees them all. */
function applyWriteHeadHeaders(res: ServerResponse, headers: unknown): void {
  if (Array.isArray(headers)) {
    const grouped = new Map<string, string[]>();
    const pairs: unknown[][] = Array.isArray(headers[0])
      ? (headers as unknown[][])
      : Array.from({ length: Math.floor(headers.length / 2) }, (_, i) => [
          headers[2 * i],
          headers[2 * i + 1],
        ]);
    for (const [key, value] of pairs) {
      const name = String(key);
      const list = grouped.get(name.toLowerCase()) ?? [];
      list.push(String(value));
      grouped.set(name.toLowerCase(), list);
    }
    for (const [key, values] of grouped)
      res.setHeader(key, values.length === 1 ? values[0]! : values);
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [key, value] of Object.entries(headers)) {
      if (value !== undefined) res.setHeader(key, value as string | number | string[]);
    }
  }
}

/** One request's session bookkeeping. */
class RequestSession implements RequestContext {
  cookieId: string | undefined;
  originalId: string | undefined;
  original: Snapshot = new Map();
  saved: Snapshot | undefined;
  /** The ID loaded from the store, whose saves merge. */
  loadedId: string | undefined;
  /** What this request last read from or wrote to the store, for the merge. */
  base: Snapshot | undefined;
  touched = false;

  constructor(
    readonly config: Config,
    readonly req: SessionRequest,
    readonly res: ServerResponse,
    readonly next: (err?: unknown) => void,
    readonly cookieOptions: CookieOptions,
    readonly secrets: Secret[],
  ) {}

  now(): number {
    return this.config.now();
  }

  /** One store call, answered once, within the store timeout; a synchronous throw is an answer. */
  call(method: StoreMethod, args: unknown[], answer: StoreAnswer): void {
    const store = this.config.store as unknown as Record<
      StoreMethod,
      (...args: unknown[]) => unknown
    >;
    const timeout = this.config.storeTimeout;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish: StoreAnswer = (err, value) => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      answer(err, value);
    };
    if (timeout > 0 && Number.isFinite(timeout)) {
      timer = setTimeout(
        () =>
          finish(
            new SessionError(
              'STORE_UNAVAILABLE',
              `the session store did not answer ${method}() within ${timeout} ms`,
            ),
          ),
        timeout,
      );
      timer.unref?.();
    }
    try {
      const result = store[method](...args, finish) as Promise<unknown> | undefined;
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        result.then(undefined, (error: unknown) => {
          // After the answer, a rejection is the caller's own error: leave it unhandled, as it was.
          if (done) throw error;
          finish(error);
        });
      }
    } catch (error) {
      if (done) throw error;
      finish(error);
    }
  }

  /** A new session with a new ID on `req.session` (express-session's `store.generate`). */
  generate(): void {
    const req = this.req;
    req.sessionID = this.config.genid(req);
    const session = new Session(req);
    const cookie = makeCookie(this.cookieOptions, this.config.now);
    if (this.cookieOptions.secure === 'auto' || this.cookieOptions.sameSite === 'auto') {
      const secure = isSecure(req, this.config.proxy);
      if (this.cookieOptions.secure === 'auto') cookie.secure = secure;
      if (this.cookieOptions.sameSite === 'auto') cookie.sameSite = secure ? 'none' : 'lax';
    }
    session.cookie = cookie;
    req.session = session;
  }

  start(): void {
    this.generate();
    this.originalId = this.req.sessionID;
    this.original = snapshotOf(this.req.session!);
  }

  inflate(data: SessionData): void {
    const session = createSessionFrom(this.req, data, this.config.now);
    this.originalId = this.req.sessionID;
    this.original = snapshotOf(session);
    if (!this.config.resave) this.saved = this.original;
    this.loadedId = this.req.sessionID;
    this.base = this.original;
  }

  save(session: Session, callback: Callback): void {
    const snapshot = snapshotOf(session);
    this.saved = snapshot;
    const sid = session.id;
    if (!this.config.mergeWrites || this.loadedId === undefined || sid !== this.loadedId) {
      this.call('set', [sid, session], (err) => callback(err));
      return;
    }
    exclusive(this.config.store, sid, (release) => {
      const done = (err?: unknown) => {
        release();
        callback(err);
      };
      this.call('get', [sid], (err, stored) => {
        if (err && err.code !== 'ENOENT') return done(err);
        // Gone since it was loaded (destroyed, or expired): writing it would bring it back.
        if (err || !stored || typeof stored !== 'object') return done();
        const merged = mergeData(
          stored as Record<string, unknown>,
          this.base ?? new Map(),
          snapshot,
          session,
        );
        this.call('set', [sid, merged], (error) => {
          if (!error) this.base = snapshot;
          done(error);
        });
      });
    });
  }

  reload(session: Session, callback: Callback): void {
    const req = this.req;
    this.call('get', [session.id], (err, data) => {
      if (err) return callback(err);
      if (!data) return callback(new Error('failed to load session'));
      try {
        const reloaded = createSessionFrom(req, data as SessionData, this.config.now);
        if (reloaded.id === this.loadedId) this.base = snapshotOf(reloaded);
      } catch (error) {
        return callback(error);
      }
      callback();
    });
  }

  destroy(session: Session, callback: Callback): void {
    delete this.req.session;
    this.call('destroy', [session.id], (err) => callback(err));
  }

  regenerate(req: SessionRequest, callback: Callback): void {
    this.call('destroy', [req.sessionID], (err) => {
      try {
        this.generate();
      } catch (error) {
        return callback(error);
      }
      callback(err);
    });
  }

  isModified(session: Session): boolean {
    return this.originalId !== session.id || !sameSnapshot(this.original, snapshotOf(session));
  }

  isSaved(session: Session): boolean {
    return (
      this.originalId === session.id &&
      this.saved !== undefined &&
      sameSnapshot(this.saved, snapshotOf(session))
    );
  }

  shouldSave(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return !this.config.saveUninitialized &&
      this.saved === undefined &&
      this.cookieId !== this.req.sessionID
      ? this.isModified(session)
      : !this.isSaved(session);
  }

  shouldTouch(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return this.cookieId === this.req.sessionID && !this.shouldSave(session);
  }

  shouldSetCookie(session: Session): boolean {
    if (typeof this.req.sessionID !== 'string') return false;
    return this.cookieId !== this.req.sessionID
      ? this.config.saveUninitialized || this.isModified(session)
      : this.config.rolling || (session.cookie.expires != null && this.isModified(session));
  }

  /** The live session on the request, if it is one this middleware can work with. */
  current(): Session | undefined {
    const session = this.req.session;
    if (typeof session !== 'object' || session === null) return undefined;
    if (
      typeof session.touch !== 'function' ||
      typeof session.cookie !== 'object' ||
      session.cookie === null
    ) {
      return undefined;
    }
    return session;
  }

  /** Runs as the response's headers are written: sets the cookie when due. */
  onHeaders(): void {
    const session = this.current();
    if (session === undefined || !this.shouldSetCookie(session)) return;
    if (session.cookie.secure && !isSecure(this.req, this.config.proxy)) return;
    if (!this.touched) {
      session.touch();
      this.touched = true;
    }
    try {
      const value = `s:${signValue(this.req.sessionID!, this.secrets[0]!)}`;
      appendSetCookie(
        this.res,
        serializeCookie(this.config.name, value, session.cookie.data as CookieData),
      );
    } catch (error) {
      setImmediate(this.next, error);
    }
  }

  /** What must happen in the store before the response may finish, if anything. */
  endOperation(): ((done: StoreAnswer) => void) | undefined {
    const req = this.req;
    if (this.config.unsetDestroy && req.sessionID && req.session == null) {
      return (done) => this.call('destroy', [req.sessionID], done);
    }
    const session = this.current();
    if (session === undefined) return undefined;
    if (!this.touched) {
      session.touch();
      this.touched = true;
    }
    if (this.shouldSave(session)) return (done) => session.save(done);
    if (typeof this.config.store.touch === 'function' && this.shouldTouch(session)) {
      return (done) => this.call('touch', [req.sessionID, session], done);
    }
    return undefined;
  }
}

type End = (...args: unknown[]) => ServerResponse;
type Write = (chunk: unknown, encoding?: unknown) => boolean;

/** Calls `listener` once, just before the response's headers are written. */
function beforeHeaders(res: ServerResponse, listener: () => void): void {
  const writeHead = res.writeHead as (...args: unknown[]) => ServerResponse;
  let fired = false;
  res.writeHead = function (
    this: ServerResponse,
    statusCode: number,
    ...rest: unknown[]
  ): ServerResponse {
    if (fired) return writeHead.call(this, statusCode, ...rest);
    fired = true;
    const reason = typeof rest[0] === 'string' ? rest[0] : undefined;
    applyWriteHeadHeaders(this, reason === undefined ? rest[0] : rest[1]);
    this.statusCode = statusCode;
    listener();
    return reason === undefined
      ? writeHead.call(this, this.statusCode)
      : writeHead.call(this, this.statusCode, reason);
  } as typeof res.writeHead;
}

/**
 * Holds back the end of the response until the store has answered: headers and all but the last
 * byte go out now (so `res.headersSent` and header errors behave as without sessions), the last
 * byte when the save, touch or destroy is done. A store error goes to `next` afterwards.
 */
function beforeEnd(res: ServerResponse, handler: RequestSession): void {
  const end = res.end as unknown as End;
  const write = res.write as unknown as Write;
  let ended = false;
  res.end = function (
    this: ServerResponse,
    chunk?: unknown,
    encoding?: unknown,
    callback?: unknown,
  ): ServerResponse {
    if (ended) return this;
    ended = true;
    let done: unknown = callback;
    if (typeof chunk === 'function') {
      done = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === 'function') {
      done = encoding;
      encoding = undefined;
    }
    const finalArgs = (rest: unknown[]) => (typeof done === 'function' ? [...rest, done] : rest);
    const operation = handler.endOperation();
    if (operation === undefined) {
      return end.apply(
        this,
        finalArgs(chunk === undefined ? [] : encoding === undefined ? [chunk] : [chunk, encoding]),
      );
    }
    if (!this.headersSent) this.writeHead(this.statusCode);
    let last: unknown[] = [];
    if (chunk !== undefined && chunk !== null) {
      const length = Number(this.getHeader('Content-Length'));
      let bytes: Buffer | undefined;
      if (!Number.isNaN(length) && length > 0) {
        bytes =
          typeof chunk === 'string'
            ? Buffer.from(chunk, encoding as BufferEncoding | undefined)
            : chunk instanceof Uint8Array
              ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
              : undefined;
      }
      if (bytes !== undefined && bytes.length > 0) {
        write.call(this, bytes.subarray(0, bytes.length - 1));
        last = [bytes.subarray(bytes.length - 1)];
      } else {
        write.call(this, chunk, encoding);
      }
    }
    operation((err) => {
      if (err) setImmediate(handler.next, err);
      end.apply(res, finalArgs(last));
    });
    return this;
  } as typeof res.end;
}

/**
 * Creates the session middleware: a drop-in for express-session's `session(options)`. Same
 * options, same `req.session` API, same cookie format (`s:<id>.<signature>`), same store
 * interface; see the migration guide for the few deliberate differences.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import session from 'tessera-session/express-session';
 *
 * const app = express();
 * app.use(session({ secret: process.env.SESSION_SECRET!, resave: false, saveUninitialized: false }));
 * app.get('/', (req, res) => {
 *   req.session.views = (req.session.views ?? 0) + 1;
 *   res.send(`views: ${req.session.views}`);
 * });
 * ```
 */
export function session(options?: SessionOptions): SessionMiddleware {
  const opts: SessionOptions = options ?? {};
  const genid = opts.genid ?? defaultGenid;
  if (typeof genid !== 'function') throw new TypeError('genid option must be a function');
  if (opts.unset && opts.unset !== 'destroy' && opts.unset !== 'keep') {
    throw new TypeError('unset option must be "destroy" or "keep"');
  }
  const secret = opts.secret;
  if (Array.isArray(secret) && secret.length === 0) {
    throw new TypeError('secret option array must contain one or more strings');
  }
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
  const store: StoreLike = opts.store ?? new MemoryStore();
  const config: Config = {
    store,
    cookie: opts.cookie ?? {},
    genid,
    name: opts.name || opts.key || 'connect.sid',
    proxy: opts.proxy,
    resave: opts.resave === undefined ? true : Boolean(opts.resave),
    rolling: Boolean(opts.rolling),
    saveUninitialized:
      opts.saveUninitialized === undefined ? true : Boolean(opts.saveUninitialized),
    unsetDestroy: opts.unset === 'destroy',
    secrets: secret
      ? Array.isArray(secret)
        ? [...(secret as Secret[])]
        : [secret as Secret]
      : undefined,
    mergeWrites: opts.mergeWrites ?? true,
    storeTimeout,
    now: opts.now ?? Date.now,
  };

  let storeReady = true;
  if (typeof store.on === 'function') {
    store.on('disconnect', () => {
      storeReady = false;
    });
    store.on('connect', () => {
      storeReady = true;
    });
  }

  return function sessionMiddleware(request, res, next) {
    const req = request as SessionRequest;
    if (req.session) {
      next();
      return;
    }
    if (!storeReady) {
      if (whenDisconnected === 'skip') next();
      else next(new SessionError('STORE_UNAVAILABLE', 'the session store is disconnected'));
      return;
    }
    let cookieOptions: CookieOptions;
    try {
      cookieOptions = typeof config.cookie === 'function' ? config.cookie(req) : config.cookie;
    } catch (error) {
      next(error);
      return;
    }
    if (!originalPathname(req).startsWith(cookieOptions?.path || '/')) {
      next();
      return;
    }
    const secrets = config.secrets ?? (req.secret ? [req.secret] : undefined);
    if (secrets === undefined) {
      next(new SessionError('INVALID_OPTION', 'secret option required for sessions'));
      return;
    }
    const handler = new RequestSession(config, req, res, next, cookieOptions, secrets);
    attachContext(req, handler);
    req.sessionStore = store as Store;
    const cookieId = readSessionId(req, config.name, secrets);
    handler.cookieId = cookieId;
    req.sessionID = cookieId;
    beforeHeaders(res, () => handler.onHeaders());
    beforeEnd(res, handler);

    if (cookieId === undefined) {
      try {
        handler.start();
      } catch (error) {
        next(error);
        return;
      }
      next();
      return;
    }
    handler.call('get', [cookieId], (err, data) => {
      if (err && err.code !== 'ENOENT') {
        next(err);
        return;
      }
      try {
        if (err || !data) handler.start();
        else handler.inflate(data as SessionData);
      } catch (error) {
        next(error);
        return;
      }
      next();
    });
  };
}
