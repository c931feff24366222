/**
 * The last step of a request: the headers its response carries for the session. A newly signed
 * cookie when one is owed (a new session, or a changed lifetime), a clearing cookie after a
 * regenerate or destroy, and `Cache-Control: no-store` whenever the session holds anything. A
 * session that goes by the header transport gets no cookie: a new token goes in its header.
 *
 * @packageDocumentation
 */
import { serializeClearingCookie, serializeCookie } from './cookie.js';
import type { RequestContext } from './context.js';
import type { MaybePromise } from './maybe.js';
import { andThen } from './maybe.js';
import type { Core } from './records.js';

/**
 * The headers a response must carry for its session. Read-only: responses that set no cookie
 * share one frozen answer.
 */
export interface ResponseHeaders {
  /** Set-Cookie values, possibly none. */
  readonly setCookie: readonly string[];
  /**
   * `'no-store'` when the response sets or clears a session cookie, or its session holds data
   * or a user (anonymous sessions included), so that no shared cache keeps it.
   */
  readonly cacheControl: 'no-store' | undefined;
  /**
   * For a session that goes by the header transport, the new token and the response header
   * that carries it (`session-token` by default), when the session got a new ID; absent
   * otherwise.
   */
  readonly token?: { readonly header: string; readonly value: string };
}

/** The headers of a response that sets no cookie but holds a session: Cache-Control only. */
const NO_STORE_ONLY: ResponseHeaders = Object.freeze({
  setCookie: Object.freeze([]) as readonly string[],
  cacheControl: 'no-store',
});
/** The headers of a response that sets no cookie and whose session holds nothing: none. */
const NO_SESSION_HEADERS: ResponseHeaders = Object.freeze({
  setCookie: NO_STORE_ONLY.setCookie,
  cacheControl: undefined,
});

/** Whether session data holds a key, without listing its keys. */
export function holdsAnyKey(data: Record<string, unknown>): boolean {
  for (const key in data) if (Object.hasOwn(data, key)) return true;
  return false;
}

/** The headers for a context's response, once its session is saved; signs a cookie if owed. */
export function headersFor(core: Core, context: RequestContext): MaybePromise<ResponseHeaders> {
  const state = context.state;
  const viaHeader = context.viaHeader;
  // A token does not change with the session's lifetime; a cookie's Max-Age does.
  const owesCookie =
    (context.issueCookie || (state.lifetimeChanged && state.stored && !viaHeader)) &&
    !state.ended &&
    context.id !== null;
  if (!owesCookie) return finish(core, context, undefined);
  const id = context.id!;
  return andThen(core.tools(), (tools) =>
    andThen(tools.signer.sign(id), (signed) =>
      viaHeader
        ? withToken(core, context, signed)
        : finish(core, context, sessionCookie(core, context, signed)),
    ),
  );
}

/** The headers of a response that hands its session's new token over in a header. */
function withToken(core: Core, context: RequestContext, signed: string): ResponseHeaders {
  finish(core, context, undefined);
  const header = core.settings.transport!.responseHeader;
  return {
    setCookie: NO_STORE_ONLY.setCookie,
    cacheControl: 'no-store',
    token: { header, value: signed },
  };
}

/**
 * The Set-Cookie value for a signed cookie value: a browser-session cookie, or for a persistent
 * one (the session's choice, else the cookie option) a Max-Age reaching the session's absolute
 * end.
 */
function sessionCookie(core: Core, context: RequestContext, signed: string): string {
  const { cookie, clock } = core.settings;
  const state = context.state;
  const maxAge =
    (state.persistent ?? cookie.persistent)
      ? Math.max(0, Math.ceil((state.createdAt + state.absolute - clock()) / 1000))
      : undefined;
  return serializeCookie(cookie, context.cookieName, signed, context.https, maxAge);
}

function finish(core: Core, context: RequestContext, cookie: string | undefined): ResponseHeaders {
  const state = context.state;
  const setCookie =
    cookie ??
    (context.clearCookie && !context.viaHeader
      ? serializeClearingCookie(core.settings.cookie, context.cookieName, context.https)
      : undefined);
  context.issueCookie = false;
  context.clearCookie = false;
  state.lifetimeChanged = false;
  if (setCookie !== undefined) return { setCookie: [setCookie], cacheControl: 'no-store' };
  // Most responses set no cookie: they share one of two frozen answers. A response whose
  // session holds anything, anonymous or not, must not sit in a shared cache.
  return state.userId !== null || holdsAnyKey(state.data) ? NO_STORE_ONLY : NO_SESSION_HEADERS;
}
