/**
 * The manager's lifecycle events and the small bus that delivers them.
 *
 * @packageDocumentation
 */

/**
 * Why a cookie was not accepted.
 *
 * - `malformed`: not a signed session cookie at all.
 * - `signature`: signed, but not by a current secret.
 * - `unknown`: no live record under it (never issued, ended, or dropped by the store at expiry).
 * - `undecodable`: its record cannot be read: malformed, sealed under an unknown key, moved from
 *   another record, plain while encryption is on, or sealed before Tessera sealed the user and
 *   expiry.
 * - `tampered`: with encryption on, the record's `userId` or `expiresAt` column differs from the
 *   sealed values (someone edited the store). Also reported when `listUserSessions` or
 *   `revokeUserSession` meets such a record, which they skip.
 * - `ambiguous`: the request carried more than one live session under the cookie's name (a
 *   cookie tossed in from a sibling subdomain, say), or more than four distinct validly signed
 *   ones (which are not read): none is adopted.
 */
export type RejectReason =
  'malformed' | 'signature' | 'unknown' | 'undecodable' | 'tampered' | 'ambiguous';

/** Codes of the {@link SessionEvents} `warning` event. */
export type WarningCode = 'UNTRUSTED_FORWARDED_PROTO';

/**
 * Lifecycle events. None carries a session ID.
 *
 * `expired` fires when the manager finds a stored record past its expiry. Stores drop expired
 * records themselves (Redis and Memcached natively, the others on read), so a cookie whose
 * session expired there is reported as `rejected` with reason `unknown`.
 *
 * `regenerated` fires when a session moves to a new ID: at `regenerate()`, and at the save that
 * follows `setUser()` on a stored session.
 *
 * `warning` reports a configuration that is probably wrong, once per manager and code: with
 * `UNTRUSTED_FORWARDED_PROTO`, a request said `X-Forwarded-Proto: https` over plain HTTP while
 * `trustProxy` is off, so its cookie went out without Secure and `__Host-`.
 */
export interface SessionEvents {
  created: { userId: string | null };
  regenerated: { userId: string | null };
  destroyed: { userId: string | null; reason: 'destroy' | 'revoked' | 'cap' };
  expired: { userId: string | null; reason: 'idle' | 'absolute' };
  rejected: { reason: RejectReason };
  warning: { code: WarningCode; message: string };
}

/** Delivers events to their listeners; a listener that throws is ignored. */
export class EventBus {
  readonly #listeners = new Map<keyof SessionEvents, Set<(event: any) => void>>();

  /** Subscribes; answers a function that unsubscribes. */
  on<E extends keyof SessionEvents>(
    event: E,
    listener: (payload: SessionEvents[E]) => void,
  ): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<E extends keyof SessionEvents>(event: E, payload: SessionEvents[E]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        listener(payload);
      } catch {
        // A broken listener must not break the request it observes.
      }
    }
  }
}
