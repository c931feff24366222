/**
 * `tessera-session/koa`: Koa middleware that gives each request `ctx.session`.
 *
 * @packageDocumentation
 */
import type { Middleware, ParameterizedContext } from 'koa';
import type { ResponseHeaders, SessionManager } from '../manager.js';
import type { MaybePromise } from '../maybe.js';
import type { DefaultSessionData, Session } from '../session.js';
import { csrfRefusal } from '../csrf-token.js';
import { errorAnswerOf, isRequestRefusal } from '../errors.js';
import { commitBeforeHeaders, requestInfoOf, sendSessionError } from './node.js';

declare module 'koa' {
  interface DefaultContext {
    /** The request's session, set by Tessera's middleware. */
    session: Session<DefaultSessionData>;
  }
}

/** The Koa context the error handler receives. */
export type KoaSessionContext = ParameterizedContext<any, any, any>;

/**
 * Answers a request whose session could not be loaded or saved, or that was refused before its
 * session was read (`CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`: branch on `error.code`),
 * through the context (`ctx.status`, `ctx.body`); Koa then responds.
 */
export type KoaErrorHandler = (error: unknown, ctx: KoaSessionContext) => void | Promise<void>;

/** Options of {@link session}. */
export interface KoaSessionOptions {
  /**
   * What to answer when the store fails or does not answer.
   * @defaultValue {@link sendKoaSessionError}: a plain 503 with `Retry-After: 1` and no cookie
   */
  onError?: KoaErrorHandler;
}

/**
 * The default error answer (see `errorAnswerOf`): every header set so far is dropped, then 503
 * with `Retry-After: 1` for store trouble, 401 or 403 with a JSON body `{ error, code }` for a
 * refusal, 500 otherwise; always `Cache-Control: no-store` and a body that tells nothing about
 * the error.
 */
export function sendKoaSessionError(error: unknown, ctx: KoaSessionContext): void {
  const { status, headers, body } = errorAnswerOf(error);
  for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
  ctx.status = status;
  ctx.set(headers);
  ctx.body = body;
}

const NO_HEADERS: ResponseHeaders = { setCookie: [], cacheControl: undefined };

/**
 * The session middleware. Mount it before the middleware and routes that use `ctx.session`.
 *
 * The session is saved when the downstream middleware has finished (`await next()`), before Koa
 * responds: its Set-Cookie and Cache-Control are set on `ctx`, so upstream middleware sees them,
 * and a store failure becomes `ctx.status = 503` with a neutral body. Two cases are saved
 * later, just before the headers go out: a handler that writes to `ctx.res` itself (with
 * `ctx.respond = false`), and an error thrown downstream, so that the cookie survives Koa's
 * error handler, which clears all headers. A store failure there is answered with a plain 503
 * written to `ctx.res` directly.
 *
 * With the manager's `csrfTokens`, an unsafe request without a valid token (its header, or the
 * form field of `ctx.request.body`) answers 403 and runs nothing downstream: mount the body
 * parser before this middleware so that a form's field is there to read.
 *
 * A `SessionError` thrown downstream for the request, such as `REAUTH_REQUIRED` from
 * `ctx.session.requireRecentAuth`, is answered here as {@link sendKoaSessionError} does (401
 * with a JSON body carrying the code), and the session is saved with that answer; every other
 * error goes on to Koa.
 *
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { session } from 'tessera-session/koa';
 *
 * const app = new Koa();
 * app.use(session(manager));
 * app.use((ctx) => {
 *   ctx.session.set('visits', ((ctx.session.get('visits') as number) ?? 0) + 1);
 *   ctx.body = `visit ${ctx.session.get('visits')}`;
 * });
 * ```
 */
export function session<Data extends object = DefaultSessionData>(
  manager: SessionManager<Data>,
  options: KoaSessionOptions = {},
): Middleware {
  const onError = options.onError ?? sendKoaSessionError;
  return async (ctx, next) => {
    if (ctx.session !== undefined) {
      await next();
      return;
    }
    let loaded: Session<Data>;
    try {
      loaded = await manager.load(requestInfoOf(ctx.req, ctx.ip));
    } catch (error) {
      await onError(error, ctx);
      return;
    }
    // A body parser mounted before this middleware leaves the form on `ctx.request.body`.
    const refused =
      manager.csrfTokens === undefined
        ? undefined
        : csrfRefusal(
            loaded,
            ctx.method,
            (name) => ctx.req.headers[name],
            (ctx.request as { body?: unknown }).body,
          );
    if (refused !== undefined) {
      await onError(refused, ctx);
      return;
    }
    ctx.session = loaded as unknown as Session<DefaultSessionData>;

    // Saved before the headers go out only when they go out before `next()` settles.
    let early: MaybePromise<ResponseHeaders> | undefined;
    let handledHere = false;
    commitBeforeHeaders(
      ctx.res,
      () => (handledHere ? NO_HEADERS : (early ??= manager.commit(loaded))),
      (error) => sendSessionError(error, ctx.req, ctx.res),
    );

    try {
      await next();
    } catch (error) {
      if (!isRequestRefusal(error) || ctx.res.headersSent) throw error;
      sendKoaSessionError(error, ctx);
    }
    if (early !== undefined || ctx.res.headersSent) return;
    handledHere = true;
    let headers: ResponseHeaders;
    try {
      headers = await manager.commit(loaded);
    } catch (error) {
      await onError(error, ctx);
      return;
    }
    for (const value of headers.setCookie) ctx.append('Set-Cookie', value);
    if (headers.cacheControl !== undefined) ctx.set('Cache-Control', headers.cacheControl);
    if (headers.token !== undefined) ctx.set(headers.token.header, headers.token.value);
  };
}
