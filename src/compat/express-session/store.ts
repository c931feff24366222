/**
 * The `Store` base of express-session: an EventEmitter constructor that old-style stores call
 * (`Store.call(this)`) and inherit from (`util.inherits(MyStore, Store)`), and that ES classes
 * extend.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import type { SessionRequest } from './context.js';
import { contextOf } from './context.js';
import type { CookieData } from './cookie.js';
import { makeCookie } from './cookie.js';
import { Session } from './session.js';

/** A session as a store keeps it: data properties and `cookie`. */
export interface SessionData {
  /** The cookie's settings ({@link Cookie.data} once serialized). */
  cookie: Partial<CookieData> | Record<string, unknown>;
  [key: string]: any;
}

/**
 * A session store. `get`, `set` and `destroy` are required; `touch` is recommended (with it,
 * `resave: false` is safe); `all`, `length` and `clear` are optional. Every callback is
 * `callback(error, ...)`. A store emits `disconnect` and `connect` when its backend goes away and
 * comes back.
 */
export interface Store extends EventEmitter {
  /** Answers the session stored under `sid`, or `null`/`undefined`. An error with `code: 'ENOENT'` counts as not found. */
  get(sid: string, callback: (err: any, session?: SessionData | null) => void): void;
  /** Inserts or replaces the session stored under `sid`. */
  set(sid: string, session: SessionData, callback?: (err?: any) => void): void;
  /** Removes the session stored under `sid`. */
  destroy(sid: string, callback?: (err?: any) => void): void;
  /** Signals that the session is active: moves its expiry to `session.cookie.expires`. */
  touch?(sid: string, session: SessionData, callback?: (err?: any) => void): void;
  /** Every live session. */
  all?(
    callback: (err: any, sessions?: SessionData[] | Record<string, SessionData> | null) => void,
  ): void;
  /** How many live sessions there are. */
  length?(callback: (err: any, length?: number) => void): void;
  /** Removes every session. */
  clear?(callback?: (err?: any) => void): void;
  /** Destroys the request's session and puts a new one on `req.session`. */
  regenerate(req: SessionRequest, callback: (err?: any) => void): void;
  /** Reads the session stored under `sid` as a {@link Session} (not bound to a live request). */
  load(sid: string, callback: (err?: any, session?: Session) => void): void;
  /** Turns stored data into `req.session`, a {@link Session} with a {@link Cookie}. */
  createSession(req: SessionRequest, session: SessionData): Session;
  /** Puts a new session with a new ID on a request the middleware is handling. */
  generate(req: SessionRequest): void;
}

/**
 * The `Store` constructor: callable with `new`, extendable by an ES class, and callable on an
 * existing object (`Store.call(this)`) as stores written for express-session do.
 */
export interface StoreConstructor {
  new (): Store;
  (this: object): void;
  readonly prototype: Store;
}

function StoreFunction(this: EventEmitter): void {
  EventEmitter.call(this);
}

Object.setPrototypeOf(StoreFunction.prototype, EventEmitter.prototype);

const proto = StoreFunction.prototype as Store;

proto.regenerate = function regenerate(this: Store, req, callback) {
  // Through the middleware, so the destroy joins the session's lane (see the middleware's save).
  const context = contextOf(req);
  if (context !== undefined) return context.regenerate(req, callback);
  this.destroy(req.sessionID!, (err) => {
    this.generate(req);
    callback(err);
  });
};

proto.load = function load(this: Store, sid, callback) {
  this.get(sid, (err, data) => {
    if (err) return callback(err);
    if (!data) return callback();
    const req = { sessionID: sid, sessionStore: this } as unknown as SessionRequest;
    callback(null, this.createSession(req, data));
  });
};

proto.createSession = function createSession(req, data) {
  return createSessionFrom(req, data, contextOf(req)?.now ?? Date.now);
};

proto.generate = function generate(req) {
  const context = contextOf(req);
  if (context === undefined)
    throw new Error('store.generate() needs a request handled by the session middleware');
  context.generate(req);
};

/**
 * The base of session stores.
 *
 * @example An old-style store:
 * ```js
 * const util = require('node:util');
 * const { Store } = require('tessera-session/express-session');
 * function MyStore() { Store.call(this); this.sessions = new Map(); }
 * util.inherits(MyStore, Store);
 * MyStore.prototype.get = function (sid, cb) { setImmediate(cb, null, this.sessions.get(sid)); };
 * ```
 */
export const Store = StoreFunction as unknown as StoreConstructor;

/**
 * Makes `req.session` from stored data: its `cookie` becomes a {@link Cookie} whose `expires` is a
 * Date again and whose `originalMaxAge` is kept. Throws a `TypeError` when the data has no
 * `cookie`, as express-session does.
 * @internal
 */
export function createSessionFrom(
  req: SessionRequest,
  data: SessionData,
  clock: () => number,
): Session {
  const stored = data.cookie as Record<string, unknown>;
  const expires = stored.expires;
  const originalMaxAge = stored.originalMaxAge as number | null | undefined;
  const cookie = makeCookie(stored, clock);
  if (typeof expires === 'string') cookie.expires = new Date(expires);
  cookie.originalMaxAge = originalMaxAge;
  data.cookie = cookie;
  const session = new Session(req, data);
  req.session = session;
  return session;
}
