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
import type { Cookie } from './cookie.js';
import type { Session } from './session.js';
import { createSessionFrom } from './session.js';

/**
 * A session's data, as a store keeps it: `cookie` and the application's keys. Declare those keys
 * by merging into this interface; `req.session` is then typed with them:
 *
 * ```ts
 * declare module 'tessera-session/express-session' {
 *   interface SessionData {
 *     views: number;
 *   }
 * }
 * ```
 *
 * Where @types/express-session is installed, keys declared for `'express-session'` apply too.
 * A store's `get` answers the data as JSON gave it back: `cookie` is then a plain object whose
 * `expires` is a string, turned back into a {@link Cookie} when the session is loaded.
 */
export interface SessionData {
  /** The session cookie's settings. */
  cookie: Cookie;
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
  load(sid: string, callback: (err: any, session?: Session & SessionData) => void): void;
  /** Turns stored data into `req.session`, a {@link Session} with a {@link Cookie}. */
  createSession(req: SessionRequest, session: SessionData): Session & SessionData;
  /**
   * Puts a new session with a new ID on a request the middleware is handling (any request
   * object: Express's global `Express.Request` type is accepted, as express-session's is).
   */
  generate(req: object): void;
}

/** EventEmitter's static members, which the `Store` constructor inherits as an ES class would. */
export type EventEmitterStatics = Omit<typeof EventEmitter, 'prototype'>;

/**
 * The `Store` constructor: callable with `new`, extendable by an ES class, and callable on an
 * existing object (`Store.call(this)`) as stores written for express-session do.
 */
export interface StoreConstructor extends EventEmitterStatics {
  new (): Store;
  (this: object): void;
  readonly prototype: Store;
}

function StoreFunction(this: EventEmitter): void {
  EventEmitter.call(this);
}

// Instances inherit EventEmitter's methods, and the constructor its static members (as
// `class Store extends EventEmitter` would give, and as @types/express-session declares).
Object.setPrototypeOf(StoreFunction.prototype, EventEmitter.prototype);
Object.setPrototypeOf(StoreFunction, EventEmitter);

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
    if (!data) return callback(null);
    const req = { sessionID: sid, sessionStore: this } as unknown as SessionRequest;
    callback(null, this.createSession(req, data));
  });
};

proto.createSession = function createSession(req, data) {
  return createSessionFrom(req, data, contextOf(req)?.now ?? Date.now) as Session & SessionData;
};

proto.generate = function generate(req) {
  const context = contextOf(req);
  if (context === undefined)
    throw new Error('store.generate() needs a request handled by the session middleware');
  context.generate(req as SessionRequest);
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
