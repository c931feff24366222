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
import { Cookie } from './express-session/cookie.js';
import { MemoryStore } from './express-session/memory.js';
import type { SessionMiddleware, SessionOptions } from './express-session/middleware.js';
import { session as createMiddleware } from './express-session/middleware.js';
import { Session } from './express-session/session.js';
import { Store } from './express-session/store.js';
import {
  ExpressStoreBridge,
  TesseraStoreAdapter,
  fromExpressSessionStore,
  toExpressSessionStore,
} from './express-session/bridges.js';

export { Cookie, MemoryStore, Session, Store };
export { ExpressStoreBridge, TesseraStoreAdapter, fromExpressSessionStore, toExpressSessionStore };
export type { CookieData, CookieOptions, SameSiteOption } from './express-session/cookie.js';
export type { MemoryStoreConstructor, MemoryStoreOptions } from './express-session/memory.js';
export type { SessionMiddleware, SessionOptions, StoreLike } from './express-session/middleware.js';
export type { SessionData, StoreConstructor } from './express-session/store.js';
export type { Callback, SessionRequest } from './express-session/context.js';
export type { Secret } from './express-session/signature.js';
export type {
  ExpressStoreBridgeOptions,
  TesseraStoreAdapterOptions,
} from './express-session/bridges.js';

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
