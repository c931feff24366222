/**
 * Saving: what a request changed goes to the store, and the response gets its headers. A new
 * session is created once it holds data or a user; a stored one is updated by compare-and-set,
 * re-applying only this request's changes when another request wrote first; a read-only one is
 * touched at most once per touch interval. Also the lifecycle operations a session asks for:
 * regenerate, destroy, reload. The response's headers come from `headers`.
 *
 * @packageDocumentation
 */
import { auditEvent } from './audit.js';
import type { Lifecycle, RequestContext } from './context.js';
import { SessionError } from './errors.js';
import type { RegenerateReason } from './events.js';
import type { ResponseHeaders } from './headers.js';
import { headersFor, holdsAnyKey } from './headers.js';
import type { Tools } from './manager-options.js';
import type { MaybePromise } from './maybe.js';
import { andThen } from './maybe.js';
import { delay } from './options.js';
import type { Core } from './records.js';
import { adopt, expiryOf, markEnded, readLive, rebase, recordFor } from './records.js';
import type { RegenerateOptions, SessionState } from './session.js';
import { snapshotOf, writeData } from './session.js';
import type { SessionRecord } from './store.js';
import { generateSessionId, storeKeyFor } from './token.js';
import type { Users } from './users.js';

/** Collects the changes made in place to objects read with `get`. */
function collectInPlaceChanges(state: SessionState): void {
  const watched = state.watched;
  if (watched === null) return;
  for (const [key, before] of watched) {
    if (snapshotOf(state.data[key]) !== before) (state.changed ??= new Set()).add(key);
  }
  state.watched = null;
}

/** Nothing is left to save. */
function settled(state: SessionState): void {
  state.changed = null;
  state.userChanged = false;
  state.timeoutsChanged = false;
  state.touchRequested = false;
}

/** Saves sessions and carries out their lifecycle operations. */
export class Saving implements Lifecycle {
  readonly #core: Core;
  readonly #users: Users;

  constructor(core: Core, users: Users) {
    this.#core = core;
    this.#users = users;
  }

  now(): number {
    return this.#core.settings.clock();
  }

  /**
   * Saves what the request changed and answers the response's headers (see
   * `SessionManager.commit`).
   */
  commit(context: RequestContext): MaybePromise<ResponseHeaders> {
    return andThen(this.persist(context), () => headersFor(this.#core, context));
  }

  /** Saves the session now: whatever store work it needs, if any. */
  persist(context: RequestContext): MaybePromise<void> {
    const state = context.state;
    if (state.ended) return;
    const now = this.now();
    switch (this.#storeWork(context, now)) {
      case 'create':
        return andThen(this.#core.tools(), (tools) => this.#create(context, tools, now));
      case 'rotate':
        // setUser on a stored session: the data is stored under a new ID like any new session's
        // (and nothing is, if it holds neither data nor user), then the old record is deleted.
        return andThen(this.regenerate(context, { keep: true }, 'user'), () =>
          this.persist(context),
        );
      case 'save':
        return andThen(this.#core.tools(), (tools) => this.#save(context, tools, 0, now));
      case 'touch': {
        const target = expiryOf(state, now);
        const store = this.#core.settings.store;
        const key = context.key!;
        return andThen(
          this.#core.calls.call('touch', () => store.touch(key, target)),
          (found) => {
            if (found) state.expiresAt = target;
            else markEnded(context);
            state.touchRequested = false;
          },
        );
      }
      case 'none':
        if (!state.stored) state.changed = null;
        state.touchRequested = false;
        return this.#retire(context);
    }
  }

  /**
   * Deletes the record a regenerate left behind, once the session's new record is stored (or
   * found to need none); reports a user unbound by the move (`logout`, reason `unbind`).
   */
  #retire(context: RequestContext): MaybePromise<void> {
    const handle = context.retiring;
    if (handle === null) return;
    return andThen(this.#delete(handle), () => {
      const state = context.state;
      const before = context.storedUserId;
      context.retiring = null;
      context.storedUserId = state.stored ? state.userId : null;
      if (before !== null && before !== state.userId) {
        this.#core.events.emit('logout', auditEvent('unbind', handle, before, context.request));
      }
    });
  }

  /**
   * The store work that saving a live session takes, once in-place changes are collected. A new
   * session is stored only once it holds data or a user. A stored session whose user was set
   * moves to a new ID (`rotate`). A due touch of a sealed record rewrites it (`save`), since its
   * expiry is sealed inside.
   */
  #storeWork(
    context: RequestContext,
    now: number,
  ): 'create' | 'rotate' | 'save' | 'touch' | 'none' {
    const state = context.state;
    collectInPlaceChanges(state);
    if (!state.stored) {
      return state.userId !== null || holdsAnyKey(state.data) || context.storeEmpty
        ? 'create'
        : 'none';
    }
    if (state.userChanged) return 'rotate';
    if ((state.changed !== null && state.changed.size > 0) || state.timeoutsChanged) return 'save';
    const target = expiryOf(state, now);
    const due = state.touchRequested
      ? target > state.expiresAt
      : target - state.expiresAt >= this.#core.settings.touchInterval;
    if (!due) return 'none';
    return this.#core.settings.sealed ? 'save' : 'touch';
  }

  /**
   * Stores a new session under a new ID, then deletes the record it replaces, if any; with a
   * user, ends the user's sessions beyond the cap.
   */
  #create(context: RequestContext, tools: Tools, now: number): MaybePromise<void> {
    const { calls, settings } = this.#core;
    const attempt = (count: number): MaybePromise<void> => {
      const id = generateSessionId(tools.crypto);
      return andThen(storeKeyFor(tools.crypto, id), (key) =>
        andThen(recordFor(this.#core, tools, context, key, now), (record) =>
          andThen(
            calls.call('create', () => settings.store.create(key, record)),
            (stored): MaybePromise<void> => {
              if (stored) return this.#created(context, id, key, record, now);
              // 256 random bits do not collide; a store answering "exists" twice is broken.
              if (count >= 1) {
                throw new SessionError(
                  'STORE_UNAVAILABLE',
                  'the store refused to create a new session',
                );
              }
              return attempt(count + 1);
            },
          ),
        ),
      );
    };
    return andThen(attempt(0), () =>
      andThen(this.#retire(context), () =>
        context.state.userId === null ? undefined : this.#users.enforceCap(context),
      ),
    );
  }

  #created(
    context: RequestContext,
    id: string,
    key: string,
    record: SessionRecord,
    now: number,
  ): void {
    const state = context.state;
    const previous = context.retiring;
    const login =
      state.userId === null
        ? undefined
        : state.userChanged
          ? 'login'
          : context.reauthenticated
            ? 'reauthenticate'
            : undefined;
    context.id = id;
    context.key = key;
    context.version = 1;
    context.lastWrite = now;
    context.issueCookie = true;
    context.clearCookie = false;
    context.reauthenticated = false;
    if (previous === null) context.storedUserId = state.userId;
    state.stored = true;
    state.expiresAt = record.expiresAt;
    settled(state);
    const { events } = this.#core;
    const reason = previous === null ? 'new' : 'regenerate';
    events.emit('created', {
      ...auditEvent(reason, key, state.userId, context.request),
      previousHandle: previous,
    });
    if (login !== undefined) {
      events.emit('login', auditEvent(login, key, state.userId, context.request));
    }
  }

  /**
   * Compare-and-set with rebase: on a newer version, re-apply only this request's changes. The
   * user never changes here (setting it moves the session to a new ID), so the cap is not checked.
   */
  #save(context: RequestContext, tools: Tools, attempt: number, now: number): MaybePromise<void> {
    const { calls, settings } = this.#core;
    const state = context.state;
    const key = context.key!;
    return andThen(recordFor(this.#core, tools, context, key, now), (record) =>
      andThen(
        calls.call('update', () => settings.store.update(key, record, context.version)),
        (result): MaybePromise<void> => {
          if (result.status === 'ok') {
            context.version = result.version;
            context.lastWrite = now;
            state.expiresAt = record.expiresAt;
            settled(state);
            return;
          }
          if (result.status === 'missing') return markEnded(context);
          this.#core.events.emit('saveConflict', { attempt: attempt + 1 });
          if (attempt >= settings.maxRetries) {
            throw new SessionError(
              'WRITE_CONFLICT',
              `the session changed under ${attempt + 1} attempts to save it`,
            );
          }
          return delay(Math.random() * Math.min(50, 2 ** attempt)).then(() =>
            andThen(readLive(this.#core, tools, key, context.request), (fresh) => {
              if (typeof fresh === 'string') return markEnded(context);
              rebase(context, fresh.record, fresh.envelope);
              this.#core.events.emit('saveRetry', { attempt: attempt + 2 });
              return this.#save(context, tools, attempt + 1, this.now());
            }),
          );
        },
      ),
    );
  }

  /**
   * Moves the session to a new ID (see `Session.regenerate`). The old record is only marked:
   * the save stores the new one first, then deletes it, so a failed save ends nothing.
   */
  regenerate(
    context: RequestContext,
    options: RegenerateOptions,
    reason: RegenerateReason = 'regenerate',
  ): MaybePromise<void> {
    const state = context.state;
    if (state.ended) throw new SessionError('SESSION_ENDED', 'the session was destroyed');
    collectInPlaceChanges(state);
    // A record left behind by an earlier move whose save failed goes first.
    const stale = state.stored ? context.retiring : null;
    return andThen(stale === null ? undefined : this.#delete(stale), () => {
      const handle = state.stored ? context.key : context.retiring;
      context.retiring = handle;
      const keep = options.keep ?? false;
      // Spreading defines properties, so a key named __proto__ stays a key.
      const data = keep === true ? { ...state.data } : {};
      if (Array.isArray(keep)) {
        for (const key of keep)
          if (Object.hasOwn(state.data, key)) writeData(data, key, state.data[key]);
      }
      const wasStored = state.stored || context.sentCookie;
      context.id = null;
      context.key = null;
      context.version = 0;
      context.issueCookie = false;
      context.clearCookie = wasStored;
      state.stored = false;
      state.createdAt = this.now();
      state.data = data;
      state.changed = null;
      state.watched = null;
      context.recordRequest();
      this.#core.events.emit(
        'regenerated',
        auditEvent(reason, handle, state.userId, context.request),
      );
    });
  }

  /** Deletes the session's record and has the response clear its cookie. */
  destroy(context: RequestContext): MaybePromise<void> {
    const state = context.state;
    if (state.ended) return;
    const handle = state.stored ? context.key : context.retiring;
    const deleted = state.stored ? this.#delete(context.key!) : undefined;
    return andThen(deleted, () =>
      andThen(context.retiring === null ? undefined : this.#delete(context.retiring), () => {
        const userId = state.userId;
        const wasStored = state.stored || context.sentCookie;
        context.retiring = null;
        markEnded(context);
        context.clearCookie = wasStored;
        const events = this.#core.events;
        events.emit('destroyed', auditEvent('destroy', handle, userId, context.request));
        if (userId !== null) {
          events.emit('logout', auditEvent('destroy', handle, userId, context.request));
        }
      }),
    );
  }

  /** Drops this request's changes and reads the session again. */
  reload(context: RequestContext): MaybePromise<void> {
    const state = context.state;
    if (state.ended) throw new SessionError('SESSION_ENDED', 'the session was destroyed');
    state.changed = null;
    state.watched = null;
    state.userChanged = false;
    state.timeoutsChanged = false;
    if (!state.stored) {
      state.data = {};
      return;
    }
    const key = context.key!;
    return andThen(this.#core.tools(), (tools) =>
      andThen(readLive(this.#core, tools, key, context.request), (found) => {
        if (typeof found === 'string') {
          markEnded(context);
          throw new SessionError('SESSION_ENDED', 'the session no longer exists');
        }
        adopt(context, found.record, found.envelope);
      }),
    );
  }

  #delete(key: string): MaybePromise<void> {
    const store = this.#core.settings.store;
    return this.#core.calls.call('delete', () => store.delete(key));
  }
}
