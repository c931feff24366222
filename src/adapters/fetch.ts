/**
 * `tessera-session/fetch`: sessions for handlers written against the Fetch API's `Request` and
 * `Response` (Deno, Bun, Cloudflare Workers, Node's `@hono/node-server`, service workers...).
 *
 * Nothing here imports a `node:` module: it runs wherever Web Crypto and the Fetch types exist.
 * Pass `crypto: webCryptoProvider()` to the manager on runtimes without `node:crypto`.
 *
 * @packageDocumentation
 */
import type { RequestInfo, SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import { SessionError } from '../errors.js';

/**
 * Answers a request whose session could not be loaded or saved. The default is
 * {@link sessionErrorResponse}.
 */
export type FetchErrorHandler = (error: unknown, request: Request) => Response | Promise<Response>;

/** Options of {@link loadSession}. */
export interface LoadSessionOptions {
  /**
   * The client's address, kept with new sessions for the session list. A `Request` does not
   * carry it; runtimes hand it to the handler separately (Deno's `info.remoteAddr.hostname`,
   * Bun's `server.requestIP(request)?.address`, the `CF-Connecting-IP` header on Cloudflare).
   */
  ip?: string | null;
  /**
   * What {@link LoadedSession.finish} answers when the session cannot be saved.
   * @defaultValue {@link sessionErrorResponse}
   */
  onError?: FetchErrorHandler;
}

/** A request's session, and the function that saves it onto the response. */
export interface LoadedSession<Data extends object = DefaultSessionData> {
  /** The request's session. */
  session: Session<Data>;
  /**
   * Saves the session and answers `response` with its Set-Cookie and Cache-Control headers
   * added (as a new `Response`, since a response's headers may be immutable). When the store
   * fails, the original body is cancelled and the error response is answered instead, without
   * a session cookie. Call it once, with the response the handler returns.
   */
  finish(response: Response): Promise<Response>;
}

/**
 * The default error answer: 503 with `Retry-After: 1` for store trouble (500 for anything
 * else), a short plain-text body, `Cache-Control: no-store`, and never a session cookie or the
 * error's details.
 */
export function sessionErrorResponse(error: unknown): Response {
  const status = error instanceof SessionError ? error.status : 500;
  const headers = new Headers({
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  if (status === 503) headers.set('Retry-After', '1');
  return new Response(status === 503 ? 'Service Unavailable\n' : 'Internal Server Error\n', {
    status,
    headers,
  });
}

/**
 * What a Fetch `Request` carries that matters to its session. Whether it is HTTPS comes from
 * the request's URL; `X-Forwarded-Proto` is passed along and believed only when the manager's
 * `trustProxy` is on.
 */
export function requestInfoOfRequest(request: Request, ip?: string | null): RequestInfo {
  let https = false;
  try {
    https = new URL(request.url).protocol === 'https:';
  } catch {
    // A relative or malformed URL gives no evidence of TLS.
  }
  return {
    cookie: request.headers.get('cookie'),
    https,
    forwardedProto: request.headers.get('x-forwarded-proto'),
    userAgent: request.headers.get('user-agent'),
    ip: ip ?? undefined,
  };
}

/**
 * Answers `response` as a new `Response` with the session headers added. The body stream is
 * handed over, not copied.
 */
export function withSessionHeaders(
  response: Response,
  setCookie: readonly string[],
  cacheControl: string | undefined,
): Response {
  if (setCookie.length === 0 && cacheControl === undefined) return response;
  const headers = new Headers(response.headers);
  for (const value of setCookie) headers.append('Set-Cookie', value);
  if (cacheControl !== undefined) headers.set('Cache-Control', cacheControl);
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

/** Cancels a response body that will never be sent, so its producer stops. */
export function discardBody(response: Response): void {
  if (response.body !== null && !response.bodyUsed) response.body.cancel().catch(() => undefined);
}

/**
 * Loads the session of a Fetch `Request`. Rejects with a `SessionError` (`STORE_UNAVAILABLE`)
 * when the store fails; answer {@link sessionErrorResponse} then.
 *
 * @example
 * ```ts
 * export default {
 *   async fetch(request: Request): Promise<Response> {
 *     let loaded;
 *     try {
 *       loaded = await loadSession(manager, request, { ip: request.headers.get('cf-connecting-ip') });
 *     } catch (error) {
 *       return sessionErrorResponse(error);
 *     }
 *     const visits = ((loaded.session.get('visits') as number) ?? 0) + 1;
 *     loaded.session.set('visits', visits);
 *     return loaded.finish(new Response(`visit ${visits}`));
 *   },
 * };
 * ```
 */
export async function loadSession<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  request: Request,
  options: LoadSessionOptions = {},
): Promise<LoadedSession<Data>> {
  const onError = options.onError ?? sessionErrorResponse;
  const info = requestInfoOfRequest(request, options.ip);
  const session = await manager.load(info);
  const finish = async (response: Response): Promise<Response> => {
    let headers;
    try {
      headers = await manager.commit(session);
    } catch (error) {
      discardBody(response);
      return onError(error, request);
    }
    return withSessionHeaders(response, headers.setCookie, headers.cacheControl);
  };
  return { session, finish };
}

/** A Fetch handler that receives the session; extra arguments (`env`, `ctx`, `info`) pass through. */
export type FetchSessionHandler<Data extends object, Args extends unknown[]> = (
  request: Request,
  session: Session<Data>,
  ...args: Args
) => Response | Promise<Response>;

/** Options of {@link withSession}. */
export interface FetchSessionOptions<Args extends unknown[]> {
  /**
   * Finds the client's address from the request and the runtime's extra handler arguments.
   * @defaultValue none: sessions are listed without an address
   * @example Deno: `clientIp: (_request, info) => info.remoteAddr.hostname`
   */
  clientIp?: (request: Request, ...args: Args) => string | null | undefined;
  /**
   * What to answer when the store fails at load or at save.
   * @defaultValue {@link sessionErrorResponse}
   */
  onError?: FetchErrorHandler;
}

/**
 * Wraps a Fetch handler so it receives the request's session; the session is saved and its
 * cookie added to the response the handler returns. A handler that throws propagates its error
 * to the runtime, and its session changes are not saved.
 *
 * @example
 * ```ts
 * import { SessionManager, webCryptoProvider } from 'tessera-session';
 * import { withSession } from 'tessera-session/fetch';
 *
 * const manager = new SessionManager({ store, secrets: [SECRET], crypto: webCryptoProvider() });
 * export default {
 *   fetch: withSession(manager, (request, session) => {
 *     const visits = ((session.get('visits') as number) ?? 0) + 1;
 *     session.set('visits', visits);
 *     return new Response(`visit ${visits}`);
 *   }),
 * };
 * ```
 */
export function withSession<Data extends object = DefaultSessionData, Args extends unknown[] = []>(
  manager: SessionManager<Data>,
  handler: FetchSessionHandler<Data, Args>,
  options: FetchSessionOptions<Args> = {},
): (request: Request, ...args: Args) => Promise<Response> {
  const onError = options.onError ?? sessionErrorResponse;
  return async (request, ...args) => {
    let loaded: LoadedSession<Data>;
    try {
      loaded = await loadSession(manager, request, {
        ip: options.clientIp?.(request, ...args),
        onError,
      });
    } catch (error) {
      return onError(error, request);
    }
    return loaded.finish(await handler(request, loaded.session, ...args));
  };
}
