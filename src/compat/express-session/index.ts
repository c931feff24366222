/**
 * `tessera-session/express-session`: a drop-in replacement for the `express-session` package. Change the
 * import and keep the rest: the options, `req.session` and its methods, the cookie format (so
 * existing cookies stay valid), the `Store`/`MemoryStore`/`Session`/`Cookie` exports and every
 * express-session store. On top, Tessera's safety where it does not change documented behaviour:
 * concurrent requests no longer overwrite each other's keys, a logged-out session is not written
 * back by a slow request, store calls are bounded, a disconnected store answers 503, a cookie
 * planted by a sibling site cannot choose the session, empty or mistyped secrets fail at
 * start-up, and the MemoryStore is bounded and evicts anonymous sessions first.
 *
 * Also the store bridges: {@link fromExpressSessionStore} runs Tessera's manager on an
 * express-session store, {@link toExpressSessionStore} runs express-session on a Tessera store.
 *
 * @example
 * ```ts
 * // before: import session from 'express-session';
 * import session from 'tessera-session/express-session';
 *
 * app.use(session({ secret: process.env.SESSION_SECRET!, resave: false, saveUninitialized: false }));
 * ```
 *
 * @packageDocumentation
 */
import { ExpressStoreBridge, fromExpressSessionStore } from './from-express-store.js';
import { TesseraStoreAdapter, toExpressSessionStore } from './to-express-store.js';
import { Cookie } from './cookie.js';
import { MemoryStore } from './memory.js';
import { session as createMiddleware } from './middleware.js';
import type { SessionMiddleware, SessionOptions } from './options.js';
import { Session } from './session.js';
import { Store } from './store.js';

export { Cookie, MemoryStore, Session };
export { ExpressStoreBridge, TesseraStoreAdapter, fromExpressSessionStore, toExpressSessionStore };
export type { CookieData, CookieOptions, SameSiteOption } from './cookie.js';
export type { MemoryStoreConstructor, MemoryStoreOptions } from './memory.js';
export type {
  CookieOptionsFunction,
  SessionMiddleware,
  SessionOptions,
  StoreLike,
} from './options.js';
// A star export, so that `declare module 'tessera-session/express-session'` merges into
// SessionData (TypeScript merges an augmentation through `export *`, not through a named re-export).
export * from './store.js';
export type { Callback, SessionRequest } from './context.js';
export type { Secret } from './signature.js';
export type { ExpressStoreBridgeOptions } from './from-express-store.js';
export type { TesseraStoreAdapterOptions } from './to-express-store.js';

/** The default export: the middleware factory, carrying the constructors as express-session's does. */
export interface SessionFactory {
  (options?: SessionOptions): SessionMiddleware;
  Store: typeof Store;
  MemoryStore: typeof MemoryStore;
  Session: typeof Session;
  Cookie: typeof Cookie;
  fromExpressSessionStore: typeof fromExpressSessionStore;
  toExpressSessionStore: typeof toExpressSessionStore;
}

/**
 * Creates the session middleware, exactly as express-session's `session(options)` does; see
 * {@link SessionOptions}. `session.Store`, `session.MemoryStore`, `session.Session` and
 * `session.Cookie` are the constructors, as on express-session's export.
 *
 * @example
 * ```ts
 * import session from 'tessera-session/express-session';
 * app.use(session({ secret: [newSecret, oldSecret], cookie: { maxAge: 3_600_000, sameSite: 'lax' }, resave: false, saveUninitialized: false }));
 * ```
 */
export const session: SessionFactory = Object.assign(
  function session(options?: SessionOptions): SessionMiddleware {
    return createMiddleware(options);
  },
  { Store, MemoryStore, Session, Cookie, fromExpressSessionStore, toExpressSessionStore },
);

export default session;
