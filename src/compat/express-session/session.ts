/**
 * The `Session` of express-session: `req.session`, data as plain properties and a few methods.
 *
 * @packageDocumentation
 */
import type { Callback, SessionRequest } from './context.js';
import { contextOf, noop } from './context.js';
import type { Cookie } from './cookie.js';
import { makeCookie } from './cookie.js';
import type { SessionData } from './store.js';

/**
 * A request's session. Data lives in plain properties (`req.session.views = 1`), kept as JSON by
 * the store; the methods are not enumerable, and stored keys that collide with them (or with
 * `id`, `req`, `__proto__`...) are ignored when the session is loaded.
 *
 * @example
 * ```ts
 * app.get('/', (req, res) => {
 *   req.session.views = (req.session.views ?? 0) + 1;
 *   res.send(`views: ${req.session.views}`);
 * });
 * ```
 */
export class Session {
  /** The session ID (the same as `req.sessionID` when the session was made); read-only. */
  declare readonly id: string;
  /** The request the session belongs to; not enumerable. */
  declare readonly req: SessionRequest;
  /** The session cookie's settings. */
  declare cookie: Cookie;
  /** Session data. */
  [key: string]: any;

  /**
   * Makes a session for `req` (with ID `req.sessionID`) and copies `data`'s properties into it.
   * `req` is any request object (typed loosely, as @types/express-session's `Express.Request`).
   */
  constructor(req: object, data?: object | null) {
    Object.defineProperty(this, 'req', { value: req });
    Object.defineProperty(this, 'id', { value: (req as SessionRequest).sessionID });
    if (typeof data === 'object' && data !== null) {
      const source = data as Record<string, unknown>;
      for (const prop in source) {
        if (!(prop in this)) this[prop] = source[prop];
      }
    }
  }

  /** Resets `cookie.maxAge` to `cookie.originalMaxAge`; the middleware calls it for each response. */
  touch(): this {
    return this.resetMaxAge();
  }

  /** Resets `cookie.maxAge` to `cookie.originalMaxAge`. */
  resetMaxAge(): this {
    this.cookie.maxAge = this.cookie.originalMaxAge;
    return this;
  }

  /**
   * Saves the session to the store now. The middleware saves at the end of the response anyway;
   * call this before a redirect, or in a long-lived request. Through the middleware, a session
   * loaded from the store is saved key by key (see the `mergeWrites` option).
   */
  save(callback?: Callback): this {
    const context = contextOf(this.req);
    if (context !== undefined) context.save(this, callback ?? noop);
    else this.req.sessionStore!.set(this.id, this, callback ?? noop);
    return this;
  }

  /**
   * Reads the session again from the store, replacing `req.session`; calls back with an error
   * `failed to load session` when it is gone.
   */
  reload(callback: Callback): this {
    const context = contextOf(this.req);
    if (context !== undefined) {
      context.reload(this, callback);
      return this;
    }
    const req = this.req;
    const store = req.sessionStore!;
    store.get(this.id, (err, data) => {
      if (err) return callback(err);
      if (!data) return callback(new Error('failed to load session'));
      createSessionFrom(req, data, Date.now);
      callback();
    });
    return this;
  }

  /** Deletes the session from the store and removes `req.session`. */
  destroy(callback?: Callback): this {
    const context = contextOf(this.req);
    if (context !== undefined) {
      context.destroy(this, callback ?? noop);
      return this;
    }
    delete this.req.session;
    this.req.sessionStore!.destroy(this.id, callback ?? noop);
    return this;
  }

  /**
   * Deletes the session from the store and puts a new, empty session with a new ID on
   * `req.session`. Call it at login, and at every privilege change.
   */
  regenerate(callback: Callback): this {
    const context = contextOf(this.req);
    if (context !== undefined) context.regenerate(this.req, callback ?? noop);
    else this.req.sessionStore!.regenerate(this.req, callback ?? noop);
    return this;
  }
}

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
  const stored = data.cookie as unknown as Record<string, unknown>;
  const expires = stored.expires;
  const originalMaxAge = stored.originalMaxAge as number | null;
  const cookie = makeCookie(stored, clock);
  if (typeof expires === 'string') cookie.expires = new Date(expires);
  cookie.originalMaxAge = originalMaxAge;
  data.cookie = cookie;
  const session = new Session(req, data);
  req.session = session;
  return session;
}
