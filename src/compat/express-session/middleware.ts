/**
 * The middleware: express-session's options, cookie format and request lifecycle, with Tessera's
 * additions (key-level merge on save, bounded store calls, no session when the store is down).
 *
 * @packageDocumentation
 */
import { crossOriginError } from '../../cross-origin.js';
import { SessionError } from '../../errors.js';
import type { SessionRequest } from './context.js';
import { attachContext } from './context.js';
import type { CookieOptions } from './cookie.js';
import type { SessionMiddleware, SessionOptions } from './options.js';
import { requestKey, resolveConfig } from './options.js';
import { originalPathname, readSessionIds } from './request.js';
import { RequestSession } from './request-session.js';
import { beforeEnd, beforeHeaders } from './response.js';
import type { Store } from './store.js';

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
  const config = resolveConfig(options);
  const store = config.store;

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
    const refused = config.crossOrigin?.check({
      method: req.method,
      url: originalPathname(req),
      header: (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
    });
    if (refused !== undefined) {
      next(crossOriginError(refused));
      return;
    }
    if (!storeReady) {
      if (config.whenDisconnected === 'skip') next();
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
    const fromRequest = config.keys === undefined ? requestKey(req) : undefined;
    const keys = config.keys ?? (fromRequest === undefined ? undefined : [fromRequest]);
    if (keys === undefined) {
      next(new SessionError('INVALID_OPTION', 'secret option required for sessions'));
      return;
    }
    const handler = new RequestSession(config, req, res, next, cookieOptions, keys);
    attachContext(req, handler);
    req.sessionStore = store as Store;
    res.once('close', () => handler.finish());
    const ids = readSessionIds(req, config.name, keys);
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
