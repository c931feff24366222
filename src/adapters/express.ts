/**
 * `tessera-session/express`: Express middleware that gives each request `req.session`.
 *
 * @packageDocumentation
 */
import type { IncomingMessage } from 'node:http';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { isRequestRefusal } from '../errors.js';
import type { SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import { ownerOf } from '../session.js';
import { attachSession, hasPendingGate, sendSessionError } from './node.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The request's session, set by Tessera's middleware. */
      session: Session<DefaultSessionData>;
      /** The manager that loaded `req.session`, for listing and revoking a user's sessions. */
      sessionManager: SessionManager<DefaultSessionData>;
    }
  }
}

/**
 * Answers a request whose session could not be loaded or saved, or that was refused before its
 * session was read (`CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`: branch on `error.code`). Call
 * `next(error)` to hand it to the application's own error handler instead of the default answer.
 */
export type ExpressErrorHandler = (
  error: unknown,
  req: Request,
  res: Response,
  next: NextFunction,
) => void;

/** Options of {@link session}. */
export interface ExpressSessionOptions {
  /**
   * What to answer when the store fails or does not answer, and for a refused request.
   * @defaultValue `sendSessionError`: a plain 503 with `Retry-After: 1` and no session cookie;
   * 403 with a JSON body `{ error, code }` for a cross-origin refusal
   */
  onError?: ExpressErrorHandler;
}

/**
 * The prototype Express gives every request or response of one application (`app.request`,
 * `app.response`: each carries its own `app`), or undefined for an object that did not come
 * through Express.
 *
 * Express swaps each request's and response's prototype, and a property added to such an object
 * afterwards costs tens of thousands of instructions (callgrind). So the middleware adds one
 * property per request (`req.session`) and none to the response: the response's gate goes on
 * `app.response` and `req.sessionManager` is a getter on `app.request`, both the application's
 * own prototypes (never Express's shared ones, nor Node's).
 */
function applicationPrototypeOf(message: Request | Response): object | undefined {
  const prototype: unknown = Object.getPrototypeOf(message);
  return typeof prototype === 'object' && prototype !== null && Object.hasOwn(prototype, 'app')
    ? prototype
    : undefined;
}

/**
 * The session middleware. Mount it before the routes that use `req.session`.
 *
 * The session is saved, and its cookie set, before the response's headers go out, whether the
 * handler sends, redirects, streams or ends early. A store outage answers 503 by default.
 *
 * With the manager's `csrfTokens`, an unsafe request without a valid token (its header, or the
 * form field of `req.body`) answers 403 and runs no route: mount `express.urlencoded()` before
 * this middleware so that a form's field is there to read.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { SessionManager } from 'tessera-session';
 * import { session } from 'tessera-session/express';
 * import { MemoryStore } from 'tessera-session/stores/memory';
 *
 * const manager = new SessionManager({ store: new MemoryStore(), secrets: [process.env.SESSION_SECRET!] });
 * const app = express();
 * app.use(session(manager));
 * app.get('/', (req, res) => {
 *   req.session.set('visits', ((req.session.get('visits') as number) ?? 0) + 1);
 *   res.send(`visit ${req.session.get('visits')}`);
 * });
 * ```
 */
export function session<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  options: ExpressSessionOptions = {},
): RequestHandler {
  const onError: ExpressErrorHandler =
    options.onError ?? ((error, req, res) => sendSessionError(error, req, res));
  return (req, res, next) => {
    // A session layer mounted earlier for this request (this one twice, or in a parent app).
    if (hasPendingGate(res)) {
      next();
      return;
    }
    const ownManager = derivesSessionManager(req) ? undefined : manager;
    const loaded = attachSession(
      manager,
      req,
      res,
      (error) => onError(error, req, res, next),
      addressOf,
      applicationPrototypeOf(res),
    );
    if (loaded instanceof Promise) {
      loaded.then(
        (session) => {
          giveSession(req, session, ownManager);
          next();
        },
        (error: unknown) => onError(error, req, res, next),
      );
    } else {
      giveSession(req, loaded, ownManager);
      next();
    }
  };
}

/**
 * Error middleware for Tessera's refusals thrown by routes: mount it after them. A
 * `SessionError` with code `REAUTH_REQUIRED` (from `req.session.requireRecentAuth`) answers 401,
 * and one with code `CROSS_ORIGIN_REFUSED` or `CSRF_TOKEN_INVALID` 403, each as the adapters'
 * default answer (a JSON body `{ error, code }` for the first two); anything else goes on to the
 * next error handler. The session is still saved with the answer.
 *
 * @example
 * ```ts
 * app.post('/account/delete', (req, res) => {
 *   req.session.requireRecentAuth(5 * 60_000);
 *   res.send('deleted');
 * });
 * app.use(sessionErrors());
 * ```
 */
export function sessionErrors(): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (!isRequestRefusal(error) || res.headersSent) {
      next(error);
      return;
    }
    sendSessionError(error, req, res);
  };
}

/** The client address as Express works it out (its `trust proxy` setting applies). */
function addressOf(req: IncomingMessage): string | undefined {
  return (req as Request).ip;
}

/** Sets `req.session`, and `req.sessionManager` where the prototype does not derive it. */
function giveSession<Data extends object>(
  req: Request,
  loaded: Session<Data>,
  manager: SessionManager<Data> | undefined,
): void {
  req.session = loaded as unknown as Session<DefaultSessionData>;
  if (manager !== undefined) {
    req.sessionManager = manager as unknown as SessionManager<DefaultSessionData>;
  }
}

/** Application request prototypes whose `sessionManager` getter this module defined. */
const derivingPrototypes = new WeakSet<object>();

/**
 * Makes `req.sessionManager` a getter on the application's `app.request`, answering the manager
 * of `req.session`, so that each request gets one added property instead of two. Answers false
 * for a request that did not come through Express (or whose prototype has a `sessionManager` of
 * its own), which then gets both as its own properties.
 */
function derivesSessionManager(req: Request): boolean {
  const application = applicationPrototypeOf(req);
  if (application === undefined) return false;
  if (derivingPrototypes.has(application)) return true;
  if (Object.hasOwn(application, 'sessionManager')) return false;
  Object.defineProperty(application, 'sessionManager', {
    configurable: true,
    enumerable: false,
    get(this: Request) {
      return ownerOf(this.session);
    },
    set(this: Request, value: unknown) {
      Object.defineProperty(this, 'sessionManager', {
        configurable: true,
        enumerable: true,
        writable: true,
        value,
      });
    },
  });
  derivingPrototypes.add(application);
  return true;
}
