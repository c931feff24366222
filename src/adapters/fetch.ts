/**
 * `tessera-session/fetch`: sessions for handlers written against the Fetch API's `Request` and
 * `Response` (Deno, Bun, Cloudflare Workers, Node's `@hono/node-server`, service workers...).
 *
 * Nothing here imports a `node:` module: it runs wherever Web Crypto and the Fetch types exist.
 * Pass `crypto: webCryptoProvider()` to the manager on runtimes without `node:crypto`.
 *
 * @packageDocumentation
 */
import type { RequestInfo, ResponseHeaders, SessionManager } from '../manager.js';
import type { DefaultSessionData, Session } from '../session.js';
import { csrfCheckOf, csrfRefusal, isFormContentType } from '../csrf-token.js';
import { SessionError, errorAnswerOf, isRequestRefusal } from '../errors.js';

/**
 * Answers a request whose session could not be loaded or saved, or that was refused before its
 * session was read (`CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`: branch on `error.code`). The
 * default is {@link sessionErrorResponse}.
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
 * The default error answer (see `errorAnswerOf`): 503 with `Retry-After: 1` for store trouble,
 * 401 (`REAUTH_REQUIRED`) or 403 (`CROSS_ORIGIN_REFUSED`) with a JSON body `{ error, code }`, 500
 * for anything else; always `Cache-Control: no-store`, and never a session cookie or the
 * error's details.
 */
export function sessionErrorResponse(error: unknown): Response {
  const { status, headers, body } = errorAnswerOf(error);
  return new Response(body, { status, headers });
}

/** A Fetch request's session inputs; other headers are read only when the manager asks. */
class FetchRequestInfo implements RequestInfo {
  readonly cookie: string | null;
  https: boolean;
  readonly forwardedProto: string | null;
  readonly userAgent: string | null;
  readonly ip: string | undefined;
  readonly method: string;
  readonly url: string;
  readonly #headers: Headers;

  constructor(request: Request, ip: string | null | undefined) {
    const headers = request.headers;
    let https = false;
    try {
      https = new URL(request.url).protocol === 'https:';
    } catch {
      // A relative or malformed URL gives no evidence of TLS.
    }
    this.cookie = headers.get('cookie');
    this.https = https;
    this.forwardedProto = headers.get('x-forwarded-proto');
    this.userAgent = headers.get('user-agent');
    this.ip = ip ?? undefined;
    this.method = request.method;
    this.url = request.url;
    this.#headers = headers;
  }

  header(name: string): string | null {
    return this.#headers.get(name);
  }
}

/**
 * What a Fetch `Request` carries that matters to its session. Whether it is HTTPS comes from
 * the request's URL; `X-Forwarded-Proto` is passed along and believed only when the manager's
 * `trustProxy` is on.
 */
export function requestInfoOfRequest(request: Request, ip?: string | null): RequestInfo {
  return new FetchRequestInfo(request, ip);
}

/**
 * Answers `response` as a new `Response` with the session headers added: Set-Cookie,
 * Cache-Control, and the header transport's token. The body stream is handed over, not copied.
 */
export function withSessionHeaders(
  response: Response,
  setCookie: readonly string[],
  cacheControl: string | undefined,
  token?: ResponseHeaders['token'],
): Response {
  if (setCookie.length === 0 && cacheControl === undefined) return response;
  const headers = new Headers(response.headers);
  for (const value of setCookie) headers.append('Set-Cookie', value);
  if (cacheControl !== undefined) headers.set('Cache-Control', cacheControl);
  if (token !== undefined) headers.set(token.header, token.value);
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
 * The synchronizer-token check of a Fetch request (see the manager's `csrfTokens`): the token
 * header, else the field of a form body, read from a clone so that the handler can still read
 * the body. Answers the error to send, or `undefined` when the request passes. @internal
 */
export async function csrfRefusalOfRequest(
  session: Session<any>,
  request: Request,
): Promise<SessionError | undefined> {
  const settings = csrfCheckOf(session, request.method);
  if (settings === undefined) return undefined;
  const headers = request.headers;
  let form: FormData | undefined;
  if (!headers.has(settings.header) && isFormContentType(headers.get('content-type'))) {
    try {
      form = await request.clone().formData();
    } catch {
      // A body already read, or one that is not the form it claims: no field to read.
    }
  }
  return csrfRefusal(session, request.method, (name) => headers.get(name), form);
}

/**
 * Loads the session of a Fetch `Request`. Rejects with a `SessionError` (`STORE_UNAVAILABLE`)
 * when the store fails; answer {@link sessionErrorResponse} then. With the manager's
 * `csrfTokens`, an unsafe request without a valid token (its header, or the field of its form
 * body) rejects with `CSRF_TOKEN_INVALID`, which {@link sessionErrorResponse} answers with 403.
 * An unsafe request the cross-origin protection refuses rejects with `CROSS_ORIGIN_REFUSED`
 * (403 too) before anything is read.
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
  if (manager.csrfTokens !== undefined) {
    const refused = await csrfRefusalOfRequest(session, request);
    if (refused !== undefined) throw refused;
  }
  const finish = async (response: Response): Promise<Response> => {
    let headers;
    try {
      headers = await manager.commit(session);
    } catch (error) {
      discardBody(response);
      return onError(error, request);
    }
    return withSessionHeaders(response, headers.setCookie, headers.cacheControl, headers.token);
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
 * cookie added to the response the handler returns. A request the cross-origin protection
 * refuses gets `onError`'s answer (403 by default) and runs no handler. A handler that throws a
 * `SessionError` for the request, such as `REAUTH_REQUIRED` from `requireRecentAuth`, gets
 * {@link sessionErrorResponse}'s answer (401 with a JSON body carrying the code), its session
 * saved with it; any other error propagates to the runtime, and its session changes are not
 * saved.
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
    let response: Response;
    try {
      response = await handler(request, loaded.session, ...args);
    } catch (error) {
      if (!isRequestRefusal(error)) throw error;
      response = sessionErrorResponse(error);
    }
    return loaded.finish(response);
  };
}
