/**
 * The manager's lifecycle events and the small bus that delivers them.
 *
 * @packageDocumentation
 */
import type { AuditEvent } from './audit.js';
import type { CrossOriginReason } from './cross-origin.js';
import type { StoreFailure } from './store-calls.js';

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

/**
 * Why a session moved to a new ID: `regenerate()`, `login()`, `setUser()` on a stored session,
 * or `reauthenticate()`.
 */
export type RegenerateReason = 'regenerate' | 'login' | 'user' | 'reauthenticate';

/** Codes of the {@link SessionEvents} `warning` event. */
export type WarningCode = 'UNTRUSTED_FORWARDED_PROTO';

/**
 * Lifecycle and audit events. None carries a session ID, a token or session data. The session
 * events (all but `warning`, `storeError`, `saveConflict` and `saveRetry`) carry the
 * `AuditFields`: the session's handle, its user, the reason, and the request's address
 * and User-Agent where the adapter knows them.
 *
 * `created` fires when a session is stored under a new ID, with the handle it replaces, if any
 * (`previousHandle`). `login` fires when a session bound to a user by `login()`/`setUser()`, or
 * re-authenticated, is stored; `logout` at `destroy()` of a signed-in session, and when a save
 * unbinds its user. `revoked` fires once per revocation: one session by its handle, all or all
 * other sessions of a user (`handle` null, `count` how many), or the oldest beyond
 * `maxSessionsPerUser`. `crossOriginRefused` fires for a request refused before its session was
 * read (`handle` and `userId` null), with the method, the `Origin` and the `Sec-Fetch-Site`;
 * `reauthRequired` when `requireRecentAuth` refuses.
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
 *
 * `storeError` reports every failed store call (a throw, a rejection, or no answer within
 * `storeTimeout`), with the operation, the store's name and the error; never a key or an ID.
 *
 * `saveConflict` fires when a save's compare-and-set meets a version another request wrote
 * (`attempt`: 1 for the first write); `saveRetry` when the save, re-applied on that version, is
 * written again (`attempt`: 2 for the first retry). A conflict that no retry follows gave up
 * (`WRITE_CONFLICT`) or found the session ended.
 */
export interface SessionEvents {
  created: AuditEvent<'new' | 'regenerate'> & { previousHandle: string | null };
  regenerated: AuditEvent<RegenerateReason>;
  destroyed: AuditEvent<'destroy' | 'revoked' | 'cap'>;
  expired: AuditEvent<'idle' | 'absolute'>;
  rejected: AuditEvent<RejectReason>;
  login: AuditEvent<'login' | 'reauthenticate'>;
  logout: AuditEvent<'destroy' | 'unbind'>;
  revoked: AuditEvent<'one' | 'all' | 'others' | 'cap'> & { count: number };
  crossOriginRefused: AuditEvent<CrossOriginReason> & {
    method: string;
    origin: string | undefined;
    site: string | undefined;
  };
  reauthRequired: AuditEvent<'anonymous' | 'never' | 'stale'> & { maxAgeMs: number };
  warning: { code: WarningCode; message: string };
  storeError: StoreFailure;
  saveConflict: { attempt: number };
  saveRetry: { attempt: number };
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
