/**
 * Every failure Tessera reports is a {@link SessionError} with one of these codes.
 *
 * - `INVALID_OPTION`: a configuration value was rejected at start-up (a short secret,
 *   `SameSite=None` without `Secure`, a `__Host-` cookie with a Domain, ...).
 * - `STORE_UNAVAILABLE`: the store failed or did not answer within the store timeout.
 *   Adapters answer 503 by default and never replace a valid cookie during an outage.
 * - `WRITE_CONFLICT`: a save kept meeting newer versions and gave up after the retry bound.
 * - `SESSION_ENDED`: the session was destroyed; it can no longer be read or changed.
 * - `INVALID_DATA`: a value cannot be stored as JSON (a function, a BigInt, a cycle).
 * - `DATA_TOO_LARGE`: the encoded session exceeds `maxDataBytes`.
 * - `INVALID_USER_ID`: a user ID given to `setUser`, `login`, `listUserSessions`,
 *   `revokeUserSessions` or `revokeUserSession` is not 1 to 255 UTF-16 code units of
 *   well-formed text free of control characters (U+0000 to U+001F and U+007F). It is refused
 *   before any store sees it, so every store accepts the same user IDs.
 * - `UNSUPPORTED`: the store lacks what the call needs: listing or revoking a user's sessions
 *   on a store without the `UserIndex` capability (`listByUser` and `deleteByUser`; see
 *   `hasUserIndex`), such as Memcached without `userIndex: 'best-effort'`.
 * - `CSRF_TOKEN_INVALID`: with the manager's `csrfTokens` on, an unsafe request carried no
 *   token of its session's secret (none, another session's, an old or a tampered one).
 *   Adapters answer 403.
 * - `REAUTH_REQUIRED`: `Session.requireRecentAuth` found no authentication recent enough (or no
 *   user). Adapters answer 401 with a JSON body carrying the code.
 * - `CROSS_ORIGIN_REFUSED`: cross-origin protection refused an unsafe request before its session
 *   was loaded. Adapters answer 403 with a JSON body carrying the code.
 */
export type SessionErrorCode =
  | 'INVALID_OPTION'
  | 'STORE_UNAVAILABLE'
  | 'WRITE_CONFLICT'
  | 'SESSION_ENDED'
  | 'INVALID_DATA'
  | 'DATA_TOO_LARGE'
  | 'INVALID_USER_ID'
  | 'UNSUPPORTED'
  | 'CSRF_TOKEN_INVALID'
  | 'REAUTH_REQUIRED'
  | 'CROSS_ORIGIN_REFUSED';

/**
 * The one error class Tessera throws. Branch on {@link SessionError.code}, never on the message.
 * Messages never contain a session ID.
 *
 * @example
 * ```ts
 * try {
 *   await session.save();
 * } catch (err) {
 *   if (err instanceof SessionError && err.code === 'STORE_UNAVAILABLE') retryLater();
 *   else throw err;
 * }
 * ```
 */
export class SessionError extends Error {
  /** What went wrong, as a stable machine-readable code. */
  readonly code: SessionErrorCode;

  /**
   * @param code - the stable code
   * @param message - a human-readable explanation, free of session IDs
   * @param options - `cause`, the underlying error if any
   */
  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionError';
    this.code = code;
  }

  /**
   * The HTTP status an adapter answers with by default: 401 for `REAUTH_REQUIRED`, 403 for
   * `CSRF_TOKEN_INVALID` and `CROSS_ORIGIN_REFUSED`, 503 for store trouble, 500 otherwise.
   * Frameworks that read an error's `status` (Express, Fastify, Koa) answer it too; one that
   * writes it back (Koa does) may.
   */
  get status(): number {
    if (this.#status !== undefined) return this.#status;
    switch (this.code) {
      case 'REAUTH_REQUIRED':
        return 401;
      case 'CSRF_TOKEN_INVALID':
      case 'CROSS_ORIGIN_REFUSED':
        return 403;
      case 'STORE_UNAVAILABLE':
      case 'WRITE_CONFLICT':
        return 503;
      default:
        return 500;
    }
  }

  set status(value: number) {
    this.#status = value;
  }

  #status: number | undefined = undefined;
}

/** True when `value` is a {@link SessionError}, optionally with the given code. */
export function isSessionError(value: unknown, code?: SessionErrorCode): value is SessionError {
  return value instanceof SessionError && (code === undefined || value.code === code);
}

/** The response an adapter sends by default for an error: status, headers and body. */
export interface ErrorAnswer {
  readonly status: number;
  /** `Content-Type`, `Cache-Control: no-store`, and `Retry-After: 1` for a 503. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

function answer(status: number, type: string, body: string, retry = false): ErrorAnswer {
  const headers: Record<string, string> = { 'Content-Type': type, 'Cache-Control': 'no-store' };
  if (retry) headers['Retry-After'] = '1';
  return Object.freeze({ status, headers: Object.freeze(headers), body });
}

/** The default answers, made once: an error answer tells nothing of the error's details. */
const REAUTH = answer(
  401,
  JSON_TYPE,
  '{"error":"Recent authentication required","code":"REAUTH_REQUIRED"}\n',
);
const CROSS_ORIGIN = answer(
  403,
  JSON_TYPE,
  '{"error":"Cross-origin request refused","code":"CROSS_ORIGIN_REFUSED"}\n',
);
const CSRF = answer(403, TEXT, 'Forbidden: missing or invalid CSRF token\n');
const UNAVAILABLE = answer(503, TEXT, 'Service Unavailable\n', true);
const INTERNAL = answer(500, TEXT, 'Internal Server Error\n');

/**
 * The answer every adapter gives by default for an error: for `REAUTH_REQUIRED` a 401 and for
 * `CROSS_ORIGIN_REFUSED` a 403, each with a JSON body `{ error, code }`; for
 * `CSRF_TOKEN_INVALID` a plain-text 403; for store trouble a plain-text 503 with
 * `Retry-After: 1`; a plain-text 500 for anything else. Never the error's message.
 */
export function errorAnswerOf(error: unknown): ErrorAnswer {
  if (!(error instanceof SessionError)) return INTERNAL;
  switch (error.code) {
    case 'REAUTH_REQUIRED':
      return REAUTH;
    case 'CROSS_ORIGIN_REFUSED':
      return CROSS_ORIGIN;
    case 'CSRF_TOKEN_INVALID':
      return CSRF;
    default:
      return error.status === 503 ? UNAVAILABLE : INTERNAL;
  }
}

/**
 * Whether an error thrown by a handler is one an adapter answers itself rather than leaving it
 * to the framework: a {@link SessionError} about the request (`REAUTH_REQUIRED`,
 * `CROSS_ORIGIN_REFUSED`, `CSRF_TOKEN_INVALID`), not about the server.
 */
export function isRequestRefusal(error: unknown): error is SessionError {
  return error instanceof SessionError && error.status < 500;
}
