/**
 * A user's sessions: listing them, revoking them, and capping how many one user may have. All
 * but revoking one by its handle need the store's optional user index.
 *
 * @packageDocumentation
 */
import { auditEvent } from './audit.js';
import type { RequestContext } from './context.js';
import { SessionError } from './errors.js';
import type { RequestInfo } from './loading.js';
import type { MaybePromise } from './maybe.js';
import type { Core } from './records.js';
import { liveness, readLive } from './records.js';
import { checkUserId } from './session.js';
import { hasUserIndex, type UserIndex } from './store.js';

/** One live session of a user, as listed by `SessionManager.listUserSessions`. */
export interface SessionInfo {
  /** An opaque handle for `SessionManager.revokeUserSession`; not the session ID. */
  handle: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  authenticatedAt: number | undefined;
  userAgent: string | undefined;
  ip: string | undefined;
  /** Whether this is the session of the request passed in. */
  current: boolean;
}

/** The shape of a store key (base64url SHA-256), which a session handle is. */
const STORE_KEY = /^[A-Za-z0-9_-]{43}$/;

/** The error for a user-index operation on a store without the `UserIndex` capability. */
export function unsupported(operation: string): SessionError {
  return new SessionError(
    'UNSUPPORTED',
    `${operation} needs a store with a user index (the UserIndex capability: listByUser and deleteByUser)`,
  );
}

/** Lists, revokes and caps a user's sessions. */
export class Users {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** The store's user index; throws `UNSUPPORTED` when the store does not offer one. */
  #index(operation: string): UserIndex {
    const store = this.#core.settings.store;
    if (!hasUserIndex(store)) throw unsupported(operation);
    return store;
  }

  /** A user's live sessions, most recently seen first (see `SessionManager.listUserSessions`). */
  async list(userId: string, currentKey: string | null): Promise<SessionInfo[]> {
    checkUserId(userId);
    const index = this.#index('listUserSessions');
    const { codec } = await this.#core.tools();
    const records = await this.#core.calls.call('listByUser', () => index.listByUser(userId));
    const sessions: SessionInfo[] = [];
    for (const record of records) {
      if (record.userId !== userId) continue;
      const decoded = await codec.decode(record.data, record.key);
      const found = liveness(this.#core, record, decoded, record.key);
      if (typeof found === 'string') continue;
      const { envelope } = found;
      const idleDerived =
        record.expiresAt < envelope.x ? record.expiresAt - envelope.i : envelope.w;
      sessions.push({
        handle: record.key,
        createdAt: envelope.c,
        lastSeenAt: Math.max(envelope.w, idleDerived),
        expiresAt: record.expiresAt,
        authenticatedAt: envelope.a,
        userAgent: envelope.ua,
        ip: envelope.ip,
        current: record.key === currentKey,
      });
    }
    return sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt);
  }

  /**
   * Ends all of a user's sessions but `exceptKey`'s; answers how many. `request` is the request
   * that asked, named in the events.
   */
  async revokeAll(
    userId: string,
    exceptKey: string | undefined,
    request?: RequestInfo,
  ): Promise<number> {
    checkUserId(userId);
    const index = this.#index('revokeUserSessions');
    const removed = await this.#core.calls.call('deleteByUser', () =>
      index.deleteByUser(userId, exceptKey),
    );
    const events = this.#core.events;
    for (let i = 0; i < removed; i++) {
      events.emit('destroyed', auditEvent('revoked', null, userId, request));
    }
    const reason = exceptKey === undefined ? 'all' : 'others';
    events.emit('revoked', { ...auditEvent(reason, null, userId, request), count: removed });
    return removed;
  }

  /** Ends one of a user's sessions by its handle; needs no user index. */
  async revokeOne(userId: string, handle: string, request?: RequestInfo): Promise<boolean> {
    checkUserId(userId);
    if (typeof handle !== 'string' || !STORE_KEY.test(handle)) return false;
    const tools = await this.#core.tools();
    const found = await readLive(this.#core, tools, handle, request);
    if (typeof found === 'string' || found.record.userId !== userId) return false;
    const store = this.#core.settings.store;
    await this.#core.calls.call('delete', () => store.delete(handle));
    this.#revoked('one', handle, userId, request);
    return true;
  }

  /** Reports one session ended by a revocation or the cap. */
  #revoked(reason: 'one' | 'cap', handle: string, userId: string, request?: RequestInfo): void {
    const events = this.#core.events;
    events.emit(
      'destroyed',
      auditEvent(reason === 'one' ? 'revoked' : 'cap', handle, userId, request),
    );
    events.emit('revoked', { ...auditEvent(reason, handle, userId, request), count: 1 });
  }

  /** Ends the oldest sessions of the context's user beyond `maxSessionsPerUser`. */
  enforceCap(context: RequestContext): MaybePromise<void> {
    const cap = this.#core.settings.maxPerUser;
    const userId = context.state.userId;
    if (cap === undefined || userId === null) return;
    return this.#cap(userId, context.key, cap, context.request);
  }

  async #cap(userId: string, key: string | null, cap: number, request: RequestInfo): Promise<void> {
    const sessions = await this.list(userId, null);
    const others = sessions
      .filter((info) => info.handle !== key)
      .sort((a, b) => b.createdAt - a.createdAt);
    const store = this.#core.settings.store;
    for (const info of others.slice(Math.max(0, cap - 1))) {
      await this.#core.calls.call('delete', () => store.delete(info.handle));
      this.#revoked('cap', info.handle, userId, request);
    }
  }
}
