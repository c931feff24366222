/**
 * What every session event tells for an audit trail: the session's opaque handle, its user, the
 * reason, and the client's address and browser as the adapter knows them. Never a session ID, a
 * token or session data.
 *
 * @packageDocumentation
 */
import type { RequestInfo } from './loading.js';

/** The fields every session event carries (see `SessionEvents`). */
export interface AuditFields {
  /**
   * The session's opaque handle: the one `listUserSessions` shows and `revokeUserSession` takes
   * (the store key, a SHA-256 of the session ID, which cannot be turned back into the ID).
   * `null` when the event concerns no stored session (a refused request, a cookie that led to
   * none, a revocation of several sessions at once).
   */
  readonly handle: string | null;
  /** The session's user, or `null`. */
  readonly userId: string | null;
  /** The client's address, when the adapter knows it; at most 64 characters. */
  readonly ip: string | undefined;
  /** The request's User-Agent, when it sent one; at most 256 characters. */
  readonly userAgent: string | undefined;
}

/** A session event: the {@link AuditFields} and why it happened. */
export type AuditEvent<Reason extends string> = AuditFields & { readonly reason: Reason };

/** A header value cut to `length`, or undefined for a missing or empty one. */
export function clip(value: string | null | undefined, length: number): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, length) : undefined;
}

/**
 * An event's fields: the handle and user given, the address and browser of `request` (none
 * without a request, as when the application revokes sessions outside one).
 */
export function auditEvent<Reason extends string>(
  reason: Reason,
  handle: string | null,
  userId: string | null,
  request: RequestInfo | undefined,
): AuditEvent<Reason> {
  return {
    handle,
    userId,
    reason,
    ip: request === undefined ? undefined : clip(request.ip, 64),
    userAgent: request === undefined ? undefined : clip(request.userAgent, 256),
  };
}
