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
 *   on a store without a user index (`listByUser` and `deleteByUser`).
 */
export type SessionErrorCode =
  | 'INVALID_OPTION'
  | 'STORE_UNAVAILABLE'
  | 'WRITE_CONFLICT'
  | 'SESSION_ENDED'
  | 'INVALID_DATA'
  | 'DATA_TOO_LARGE'
  | 'INVALID_USER_ID'
  | 'UNSUPPORTED';

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

  /** The HTTP status an adapter answers with by default: 503 for store trouble, 500 otherwise. */
  get status(): number {
    return this.code === 'STORE_UNAVAILABLE' || this.code === 'WRITE_CONFLICT' ? 503 : 500;
  }
}

/** True when `value` is a {@link SessionError}, optionally with the given code. */
export function isSessionError(value: unknown, code?: SessionErrorCode): value is SessionError {
  return value instanceof SessionError && (code === undefined || value.code === code);
}
