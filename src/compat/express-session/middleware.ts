/**
 * The middleware: express-session's options, cookie format and request lifecycle, with Tessera's
 * additions (key-level merge on save, bounded store calls, no session when the store is down).
 *
 * @packageDocumentation
 */
import { KeyObject, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { readCookieValues } from '../../cookie.js';
import { SessionError } from '../../errors.js';
import type { Callback, RequestContext, SessionRequest } from './context.js';
import { attachContext } from './context.js';
import type { CookieData, CookieOptions } from './cookie.js';
import { makeCookie, serializeCookie } from './cookie.js';
import { destroysOf, holdSession, inLane, markDestroyed, unholdSession } from './lanes.js';
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
   * Signs the cookie: a string, bytes, a secret `KeyObject`, or a list whose first entry signs and
   * all of which verify (rotation). Without it, `req.secret` (set by cookie-parser) is used, and a
   * request with neither fails with `secret option required for sessions`. An empty secret, an
   * empty list or a value of another type throws a `SessionError` `INVALID_OPTION` at start-up; a
   * secret shorter than 32 bytes works but emits a process warning (once per process). Use at
   * least 32 random bytes.
   * @defaultValue none
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
   * deleted), so concurrent requests writing different keys keep each other's writes.
   * `false` writes the whole in-memory session, as express-session does. Either way, within this
   * process a session's saves, touches and destroys reach the store one at a time, in the order
   * asked, and a session destroyed by another request (a logout) is never written back.
   * @defaultValue true
   */
  mergeWrites?: boolean;
  /**
   * Tessera: how long one store operation may take, in milliseconds, before it fails with a
   * `SessionError` `STORE_UNAVAILABLE` (status 503); for a save, touch or destroy this includes
   * waiting for the session's earlier writes. A save or touch whose time ran out before it wrote
   * is dropped; a destroy still runs when its turn comes. `0` waits forever, as express-session does.
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
 * `answer` with a deadline: called once, with the store's answer or, when `timeout` ms pass first
 * (`0` never), with a `STORE_UNAVAILABLE` error. `late()` tells whether the deadline passed.
 */
function withDeadline(
  timeout: number,
  method: StoreMethod,
  answer: StoreAnswer,
): { reply: StoreAnswer; late: () => boolean } {
  let done = false;
  let late = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reply: StoreAnswer = (err, value) => {
    if (done) return;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    answer(err, value);
  };
  if (timeout > 0 && Number.isFinite(timeout)) {
    timer = setTimeout(() => {
      late = true;
      reply(
        new SessionError(
          'STORE_UNAVAILABLE',
          `the session store did not answer ${method}() within ${timeout} ms`,
        ),
      );
    }, timeout);
    timer.unref?.();
  }
  return { reply, late: () => late };
}

/** How many bytes of key a secret gives HMAC, or `undefined` when it is not a usable secret. */
function secretBytes(secret: unknown): number | undefined {
  if (typeof secret === 'string') return Buffer.byteLength(secret);
  if (secret instanceof Uint8Array) return secret.byteLength;
  if (secret instanceof KeyObject && secret.type === 'secret') return secret.symmetricKeySize ?? 0;
  return undefined;
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
 * The `secret` option as a list, refused at start-up when empty or not a secret (otherwise an
 * empty key would sign cookies, and a wrong type would fail only once a response is under way).
 */
function secretList(secret: unknown): Secret[] {
  if (Array.isArray(secret) && secret.length === 0) {
    throw new TypeError('secret option array must contain one or more strings');
  }
  const list: unknown[] = Array.isArray(secret) ? [...secret] : [secret];
  for (const entry of list) {
    const bytes = secretBytes(entry);
    if (bytes === undefined) {
      throw new SessionError(
        'INVALID_OPTION',
        'secret must be a string, a Buffer or Uint8Array, a secret KeyObject, or a list of them',
      );
    }
    if (bytes === 0) throw new SessionError('INVALID_OPTION', 'secret must not be empty');
    if (bytes < 32) warnShortSecret();
  }
  return list as Secret[];
}

/** `req.secret` (cookie-parser's) when it is a usable secret; a short one warns like the option. */
function requestSecret(req: SessionRequest): Secret | undefined {
  const bytes = secretBytes(req.secret);
  if (bytes === undefined || bytes === 0) return undefined;
  if (bytes < 32) warnShortSecret();
  return req.secret;
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
 * The distinct session IDs whose signature verifies among the request's cookies of this name:
 * every value in the Cookie header, in order; when none verifies, cookie-parser's
 * `req.signedCookies`, else a signed value in its `req.cookies`. Unsigned values are never used.
 */
function readSessionIds(req: SessionRequest, name: string, secrets: readonly Secret[]): string[] {
  const ids = new Set<string>();
  const header = req.headers.cookie;
  if (typeof header === 'string') {
    for (const raw of readCookieValues(header, name)) {
      const value = decodeCookieValue(raw);
      if (!value.startsWith('s:')) continue;
      const id = unsignValue(value.slice(2), secrets);
      if (id !== false && id.length > 0) ids.add(id);
    }
  }
  if (ids.size > 0) return [...ids];
  const signed = ownString(req.signedCookies, name);
  if (signed !== undefined) return [signed];
  const raw = ownString(req.cookies, name);
  if (raw !== undefined && raw.startsWith('s:')) {
    const id = unsignValue(raw.slice(2), secrets);
    if (id !== false && id.length > 0) return [id];
  }
  return [];
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
  /** The sessions this request holds (see `holdSession`), each with the destroys known then. */
  readonly held = new Map<string, number>();
  /** Set once the response is over: the request then holds nothing. */
  finished = false;

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

  /** One store call, answered once: by its callback, its promise, or a synchronous throw. */
  invoke(method: StoreMethod, args: unknown[], answer: StoreAnswer): void {
    const store = this.config.store as unknown as Record<
      StoreMethod,
      (...args: unknown[]) => unknown
    >;
    let done = false;
    const finish: StoreAnswer = (err, value) => {
      if (done) return;
      done = true;
      answer(err, value);
    };
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

  /** A store read, answered within the store timeout. */
  call(method: StoreMethod, args: unknown[], answer: StoreAnswer): void {
    this.invoke(method, args, withDeadline(this.config.storeTimeout, method, answer).reply);
  }

  /** Holds session `sid` until the response is over, so that a destroy meanwhile stays known. */
  hold(sid: string): void {
    if (this.finished || this.held.has(sid)) return;
    this.held.set(sid, holdSession(this.config.store, sid));
  }

  /** The response is over: lets go of every session held. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const sid of this.held.keys()) unholdSession(this.config.store, sid);
    this.held.clear();
  }

  /**
   * A save or touch of session `sid`, in its lane: after this process's earlier writes of it have
   * been answered. `callback` is answered within the store timeout. `write` runs only while the
   * write may still go ahead (`mayWrite`): not when the deadline passed while it waited, nor when
   * the session was destroyed since this request loaded or made it (the callback then gets no
   * error, as for a session found gone). `write` calls `done` once the store answered its last call.
   */
  write(
    sid: string,
    method: StoreMethod,
    callback: Callback,
    write: (mayWrite: () => boolean, done: Callback) => void,
  ): void {
    const store = this.config.store;
    const seen = this.held.get(sid) ?? destroysOf(store, sid);
    const { reply, late } = withDeadline(this.config.storeTimeout, method, callback);
    inLane(store, sid, (lane, release) => {
      const mayWrite = () => !late() && lane.destroys === seen;
      const done: Callback = (err) => {
        release();
        reply(err);
      };
      if (mayWrite()) write(mayWrite, done);
      else done();
    });
  }

  /**
   * Deletes session `sid`, in its lane: after this process's earlier writes of it have landed, and
   * before its later ones, which will not write. Counted as destroyed at once; the store call runs
   * when its turn comes, even past the deadline, since a late delete only completes the logout.
   */
  remove(sid: string, callback: Callback): void {
    const store = this.config.store;
    markDestroyed(store, sid);
    const { reply } = withDeadline(this.config.storeTimeout, 'destroy', callback);
    inLane(store, sid, (_lane, release) => {
      this.invoke('destroy', [sid], (err) => {
        release();
        reply(err);
      });
    });
  }

  /**
   * The one live session among the IDs the cookies carry: `undefined` when none is live, or when
   * more than one is (a cookie tossed in from a sibling site must not pick the session). A session
   * a destroy was asked for while it was held counts as gone.
   */
  find(
    ids: readonly string[],
    callback: (err: unknown, found?: { id: string; data: SessionData }) => void,
  ): void {
    for (const id of ids) this.hold(id);
    let found: { id: string; data: SessionData } | undefined;
    const look = (index: number): void => {
      if (index === ids.length) return callback(null, found);
      const id = ids[index]!;
      this.call('get', [id], (err, data) => {
        if (err && err.code !== 'ENOENT') return callback(err);
        if (!err && data && destroysOf(this.config.store, id) === 0) {
          if (found !== undefined) return callback(null, undefined);
          found = { id, data: data as SessionData };
        }
        look(index + 1);
      });
    };
    look(0);
  }

  /** A new session with a new ID on `req.session` (express-session's `store.generate`). */
  generate(): void {
    const req = this.req;
    req.sessionID = this.config.genid(req);
    this.hold(req.sessionID);
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
    const merge = this.config.mergeWrites && this.loadedId !== undefined && sid === this.loadedId;
    this.write(sid, 'set', callback, (mayWrite, done) => {
      if (!merge) {
        this.invoke('set', [sid, session], (err) => done(err));
        return;
      }
      this.invoke('get', [sid], (err, stored) => {
        if (err && err.code !== 'ENOENT') return done(err);
        // Gone since it was loaded (destroyed, or expired): writing it would bring it back.
        if (err || !stored || typeof stored !== 'object') return done();
        // Checked again right before the write: a destroy or the deadline may have come meanwhile.
        if (!mayWrite()) return done();
        const merged = mergeData(
          stored as Record<string, unknown>,
          this.base ?? new Map(),
          snapshot,
          session,
        );
        this.invoke('set', [sid, merged], (error) => {
          if (!error) this.base = snapshot;
          done(error);
        });
      });
    });
  }

  touch(sid: string, session: Session, callback: Callback): void {
    this.write(sid, 'touch', callback, (_mayWrite, done) =>
      this.invoke('touch', [sid, session], (err) => done(err)),
    );
  }

  reload(session: Session, callback: Callback): void {
    const req = this.req;
    const sid = session.id;
    const seen = this.held.get(sid) ?? destroysOf(this.config.store, sid);
    this.call('get', [sid], (err, data) => {
      if (err) return callback(err);
      if (!data || destroysOf(this.config.store, sid) !== seen) {
        return callback(new Error('failed to load session'));
      }
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
    this.remove(session.id, callback);
  }

  regenerate(req: SessionRequest, callback: Callback): void {
    this.remove(req.sessionID!, (err) => {
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
      return (done) => this.remove(req.sessionID!, done);
    }
    const session = this.current();
    if (session === undefined) return undefined;
    if (!this.touched) {
      session.touch();
      this.touched = true;
    }
    if (this.shouldSave(session)) return (done) => session.save(done);
    if (typeof this.config.store.touch === 'function' && this.shouldTouch(session)) {
      return (done) => this.touch(req.sessionID!, session, done);
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
  const secrets = opts.secret === undefined ? undefined : secretList(opts.secret);
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
    secrets,
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
    const fromRequest = config.secrets === undefined ? requestSecret(req) : undefined;
    const secrets = config.secrets ?? (fromRequest === undefined ? undefined : [fromRequest]);
    if (secrets === undefined) {
      next(new SessionError('INVALID_OPTION', 'secret option required for sessions'));
      return;
    }
    const handler = new RequestSession(config, req, res, next, cookieOptions, secrets);
    attachContext(req, handler);
    req.sessionStore = store as Store;
    res.once('close', () => handler.finish());
    const ids = readSessionIds(req, config.name, secrets);
    handler.cookieId = ids.length === 1 ? ids[0] : undefined;
    req.sessionID = handler.cookieId;
    beforeHeaders(res, () => handler.onHeaders());
    beforeEnd(res, handler);

    if (ids.length === 0) {
      try {
        handler.start();
      } catch (error) {
        next(error);
        return;
      }
      next();
      return;
    }
    handler.find(ids, (err, found) => {
      if (err) {
        next(err);
        return;
      }
      try {
        if (found === undefined) handler.start();
        else {
          handler.cookieId = found.id;
          req.sessionID = found.id;
          handler.inflate(found.data);
        }
      } catch (error) {
        next(error);
        return;
      }
      next();
    });
  };
}
