/**
 * `tessera-session/hono`: Hono middleware that puts the request's session in the context, reachable
 * as `c.get('session')`. Runtime-neutral: it imports nothing from `node:` and no Hono code
 * (only its types).
 *
 * @packageDocumentation
 */
import type { Context, MiddlewareHandler } from 'hono';
import { isRequestRefusal } from '../errors.js';
import type { ResponseHeaders, SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import {
  csrfRefusalOfRequest,
  discardBody,
  requestInfoOfRequest,
  sessionErrorResponse,
} from './fetch.js';

/**
 * The context variables the middleware sets. Use it in the app's type so that
 * `c.get('session')` is typed.
 *
 * @example
 * ```ts
 * const app = new Hono<{ Variables: SessionVariables }>();
 * ```
 */
export interface SessionVariables<Data extends object = DefaultSessionData> {
  /** The request's session. */
  session: Session<Data>;
}

/** The Hono environment of an app that uses the middleware: `new Hono<SessionEnv>()`. */
export interface SessionEnv<Data extends object = DefaultSessionData> {
  Variables: SessionVariables<Data>;
}

/**
 * Answers a request whose session could not be loaded or saved, or that was refused before its
 * session was read (`CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`: branch on `error.code`).
 * @defaultValue a plain 503 with `Retry-After: 1` and no session cookie
 */
export type HonoErrorHandler = (error: unknown, c: Context) => Response | Promise<Response>;

/** Options of {@link session}. */
export interface HonoSessionOptions {
  /**
   * What to answer when the store fails or does not answer. The handler's response, with all
   * its headers, is replaced by this one.
   * @defaultValue a plain 503 with `Retry-After: 1`, `Cache-Control: no-store` and no cookie
   */
  onError?: HonoErrorHandler;
  /**
   * Finds the client's address, kept with new sessions for the session list. The default reads
   * the socket of `@hono/node-server` (`c.env.incoming`); on other runtimes pass the runtime's
   * helper, e.g. `(c) => getConnInfo(c).remote.address` from `hono/bun` or `hono/deno`.
   */
  clientIp?: (c: Context) => string | null | undefined;
}

interface NodeServerSocket {
  remoteAddress?: unknown;
  encrypted?: unknown;
}

/** The socket behind the request when running on `@hono/node-server`, found without importing it. */
function nodeServerSocket(c: Context): NodeServerSocket | undefined {
  const env = c.env as { incoming?: { socket?: NodeServerSocket } } | undefined;
  const socket = env?.incoming?.socket;
  return typeof socket === 'object' && socket !== null ? socket : undefined;
}

function nodeServerAddress(c: Context): string | undefined {
  const address = nodeServerSocket(c)?.remoteAddress;
  return typeof address === 'string' ? address : undefined;
}

/** Replaces the context's response without Hono merging the old response's headers into it. */
function replaceResponse(c: Context, response: Response): void {
  c.res = undefined;
  c.res = response;
}

/** Adds the session's headers to the context's response, copying one whose headers are immutable. */
function applyHeaders(c: Context, headers: ResponseHeaders): void {
  const apply = (target: Headers) => {
    for (const value of headers.setCookie) target.append('Set-Cookie', value);
    if (headers.cacheControl !== undefined) target.set('Cache-Control', headers.cacheControl);
    if (headers.token !== undefined) target.set(headers.token.header, headers.token.value);
  };
  try {
    apply(c.res.headers);
  } catch {
    // The handler answered a response with immutable headers (one from fetch(), say): copy it.
    const copy = new Response(c.res.body, c.res);
    replaceResponse(c, copy);
    apply(copy.headers);
  }
}

/**
 * The session middleware. The session is loaded before the handlers run and saved after them,
 * its Set-Cookie appended to `c.res`, before Hono hands the response to the runtime. It is
 * saved with error responses too (Hono's `onError` answers inside the chain).
 *
 * HTTPS is read from the socket on `@hono/node-server` and from the request URL's protocol
 * elsewhere; `X-Forwarded-Proto` counts only with the manager's `trustProxy`.
 *
 * With the manager's `csrfTokens`, an unsafe request without a valid token (its header, or the
 * field of its form body, read from a clone of the request) answers 403 and runs no handler.
 *
 * A request the manager's cross-origin protection refuses gets `onError`'s answer (403 by
 * default) and runs no handler. A `SessionError` a handler throws for the request, such as
 * `REAUTH_REQUIRED` from `requireRecentAuth`, replaces the answer of Hono's `onError` with the
 * default one (401 with a JSON body carrying the code), and the session is saved with it.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { session, type SessionEnv } from 'tessera-session/hono';
 *
 * const app = new Hono<SessionEnv>();
 * app.use(session(manager));
 * app.get('/', (c) => {
 *   const s = c.get('session');
 *   s.set('visits', ((s.get('visits') as number) ?? 0) + 1);
 *   return c.text(`visit ${s.get('visits')}`);
 * });
 * ```
 */
export function session<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  options: HonoSessionOptions = {},
): MiddlewareHandler<SessionEnv<Data>> {
  const onError: HonoErrorHandler = options.onError ?? ((error) => sessionErrorResponse(error));
  const clientIp = options.clientIp ?? nodeServerAddress;
  return async (c, next) => {
    if (c.get('session') !== undefined) {
      await next();
      return;
    }
    let loaded: Session<Data>;
    try {
      const info = requestInfoOfRequest(c.req.raw, clientIp(c));
      // On Node, the socket says whether the connection is TLS; the URL could be taken from an
      // absolute-form request target the client chose.
      const socket = nodeServerSocket(c);
      if (socket !== undefined) info.https = socket.encrypted === true;
      loaded = await manager.load(info);
    } catch (error) {
      return onError(error, c);
    }
    if (manager.csrfTokens !== undefined) {
      const refused = await csrfRefusalOfRequest(loaded, c.req.raw);
      if (refused !== undefined) return onError(refused, c);
    }
    c.set('session', loaded);
    await next();
    if (isRequestRefusal(c.error)) {
      discardBody(c.res);
      replaceResponse(c, sessionErrorResponse(c.error));
    }
    let headers;
    try {
      headers = await manager.commit(loaded);
    } catch (error) {
      discardBody(c.res);
      replaceResponse(c, await onError(error, c));
      return;
    }
    if (headers.setCookie.length === 0 && headers.cacheControl === undefined) return;
    applyHeaders(c, headers);
  };
}
