/**
 * express-session's `MemoryStore`, bounded.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { SessionError } from '../../errors.js';
import type { EventEmitterStatics, SessionData } from './store.js';
import { Store } from './store.js';

/** Options of {@link MemoryStore}. express-session's MemoryStore takes none; these are additions. */
export interface MemoryStoreOptions {
  /**
   * EventEmitter's option, which the store (an EventEmitter) passes on: listeners' rejected
   * promises become `'error'` events.
   * @defaultValue false
   */
  captureRejections?: boolean | undefined;
  /**
   * The most sessions kept at once; storing one more evicts one (the least recently used of the
   * lowest rank, see {@link MemoryStoreOptions.userIdOf}).
   * @defaultValue 100_000
   */
  maxSessions?: number;
  /**
   * How often expired sessions are swept, in milliseconds; `0` disables the timer (expired
   * sessions are still never returned). The timer never holds the process open.
   * @defaultValue 60_000
   */
  sweepInterval?: number;
  /**
   * Tells which user a session belongs to (`undefined` or `null`: nobody signed in). When the
   * store is full, sessions that hold nothing but their cookie are evicted first, then sessions
   * with data but no user, and signed-in sessions last, so that a flood of anonymous requests
   * cannot sign users out. Give it when the application keeps the user elsewhere than Passport
   * does, e.g. `(session) => session.userId`.
   * @defaultValue Passport's `session.passport?.user`
   */
  userIdOf?: (session: SessionData) => unknown;
  /** The clock, in epoch milliseconds. Tests inject one. @defaultValue `Date.now` */
  now?: () => number;
}

/** Who goes first when the store is full: 0 (nothing but a cookie), then 1 (data), then 2 (a user). */
type Rank = 0 | 1 | 2;

interface Entry {
  json: string;
  /** Epoch ms, or Infinity for a browser-session cookie. */
  expires: number;
  rank: Rank;
}

interface MemoryState {
  entries: Map<string, Entry>;
  /** Per rank, the session IDs from least to most recently used. */
  order: [Set<string>, Set<string>, Set<string>];
  max: number;
  userIdOf: (session: SessionData) => unknown;
  now: () => number;
  timer: ReturnType<typeof setInterval> | undefined;
}

/** A bounded in-process store, compatible with express-session's. */
export interface MemoryStore extends Store {
  get(sid: string, callback: (err: any, session?: SessionData | null) => void): void;
  set(sid: string, session: SessionData, callback?: (err?: any) => void): void;
  destroy(sid: string, callback?: (err?: any) => void): void;
  touch(sid: string, session: SessionData, callback?: (err?: any) => void): void;
  /** Every live session, as an object keyed by session ID. */
  all(callback: (err: any, sessions?: Record<string, SessionData>) => void): void;
  length(callback: (err: any, length?: number) => void): void;
  clear(callback?: (err?: any) => void): void;
  /** Removes expired sessions now and answers how many. */
  prune(): number;
  /** Stops the sweep timer. */
  close(): void;
}

/** The `MemoryStore` constructor; like {@link Store}, it can also be called on an existing object. */
export interface MemoryStoreConstructor extends EventEmitterStatics {
  new (options?: MemoryStoreOptions): MemoryStore;
  (this: object, options?: MemoryStoreOptions): void;
  readonly prototype: MemoryStore;
}

const STATE = Symbol('tessera.express-session.memory');

function stateOf(store: MemoryStore): MemoryState {
  return (store as unknown as Record<symbol, MemoryState>)[STATE]!;
}

function MemoryStoreFunction(this: MemoryStore, options: MemoryStoreOptions = {}): void {
  // What Store.call(this) does, with EventEmitter's own option passed on.
  EventEmitter.call(this, { captureRejections: options.captureRejections === true });
  const max = options.maxSessions ?? 100_000;
  if (!Number.isInteger(max) || max < 1) {
    throw new SessionError('INVALID_OPTION', 'MemoryStore: maxSessions must be a positive integer');
  }
  const sweepInterval = options.sweepInterval ?? 60_000;
  if (!(sweepInterval >= 0))
    throw new SessionError('INVALID_OPTION', 'MemoryStore: sweepInterval must be 0 or more');
  const userIdOf = options.userIdOf ?? passportUser;
  if (typeof userIdOf !== 'function')
    throw new SessionError('INVALID_OPTION', 'MemoryStore: userIdOf must be a function');
  const state: MemoryState = {
    entries: new Map(),
    order: [new Set(), new Set(), new Set()],
    max,
    userIdOf,
    now: options.now ?? Date.now,
    timer: undefined,
  };
  Object.defineProperty(this, STATE, { value: state });
  if (sweepInterval > 0) {
    // A weak reference, so that a store the application dropped is collected with its timer.
    const ref = new WeakRef(this);
    state.timer = setInterval(() => {
      const store = ref.deref();
      if (store === undefined) clearInterval(state.timer);
      else store.prune();
    }, sweepInterval);
    state.timer.unref?.();
  }
}

Object.setPrototypeOf(MemoryStoreFunction.prototype, Store.prototype);
Object.setPrototypeOf(MemoryStoreFunction, Store);

/** Where Passport keeps the signed-in user: `req.session.passport.user`. */
function passportUser(session: SessionData): unknown {
  const passport = (session as unknown as Record<string, unknown>).passport as
    { user?: unknown } | null | undefined;
  return typeof passport === 'object' && passport !== null ? passport.user : undefined;
}

function rankOf(state: MemoryState, session: SessionData): Rank {
  const user = state.userIdOf(session);
  if (user !== undefined && user !== null) return 2;
  const data = session as unknown as Record<string, unknown>;
  for (const key of Object.keys(data)) {
    if (key !== 'cookie' && data[key] !== undefined) return 1;
  }
  return 0;
}

function expiryOf(session: SessionData): number {
  const cookie = session.cookie as { expires?: unknown } | undefined;
  const expires = cookie?.expires;
  if (expires === undefined || expires === null || expires === false) return Infinity;
  const instant = new Date(expires as string | Date).valueOf();
  // An unreadable expiry counts as expired rather than as never expiring.
  return Number.isNaN(instant) ? -Infinity : instant;
}

function drop(state: MemoryState, sid: string): void {
  const entry = state.entries.get(sid);
  if (entry === undefined) return;
  state.entries.delete(sid);
  state.order[entry.rank].delete(sid);
}

/** Stores `entry` as the most recently used of its rank. */
function put(state: MemoryState, sid: string, entry: Entry): void {
  state.entries.set(sid, entry);
  state.order[entry.rank].add(sid);
}

/** Makes room for one more: the least recently used session of the lowest rank goes. */
function evictOne(state: MemoryState): void {
  for (const ids of state.order) {
    const oldest = ids.values().next();
    if (oldest.done !== true) {
      drop(state, oldest.value);
      return;
    }
  }
}

/** The live entry under `sid`; an expired one is dropped. */
function live(state: MemoryState, sid: string): Entry | undefined {
  const entry = state.entries.get(sid);
  if (entry === undefined) return undefined;
  if (entry.expires <= state.now()) {
    drop(state, sid);
    return undefined;
  }
  return entry;
}

function entryOf(state: MemoryState, session: SessionData): Entry {
  return {
    json: JSON.stringify(session),
    expires: expiryOf(session),
    rank: rankOf(state, session),
  };
}

function later(callback: ((...args: any[]) => void) | undefined, ...args: unknown[]): void {
  if (typeof callback === 'function') setImmediate(callback, ...args);
}

const proto = MemoryStoreFunction.prototype as MemoryStore;

proto.get = function get(sid, callback) {
  const state = stateOf(this);
  const entry = live(state, sid);
  if (entry !== undefined) {
    // Re-inserting moves the ID to the young end of its rank's order: that order is the LRU.
    drop(state, sid);
    put(state, sid, entry);
  }
  later(callback, null, entry === undefined ? undefined : (JSON.parse(entry.json) as SessionData));
};

proto.set = function set(sid, session, callback) {
  const state = stateOf(this);
  const entry = entryOf(state, session);
  drop(state, sid);
  while (state.entries.size >= state.max) evictOne(state);
  put(state, sid, entry);
  later(callback);
};

proto.destroy = function destroy(sid, callback) {
  drop(stateOf(this), sid);
  later(callback);
};

proto.touch = function touch(sid, session, callback) {
  const state = stateOf(this);
  const entry = live(state, sid);
  if (entry !== undefined) {
    const current = JSON.parse(entry.json) as SessionData;
    current.cookie = session.cookie;
    drop(state, sid);
    put(state, sid, entryOf(state, current));
  }
  later(callback);
};

proto.all = function all(callback) {
  const state = stateOf(this);
  const sessions = Object.create(null) as Record<string, SessionData>;
  for (const sid of [...state.entries.keys()]) {
    const entry = live(state, sid);
    if (entry !== undefined) sessions[sid] = JSON.parse(entry.json) as SessionData;
  }
  later(callback, null, sessions);
};

proto.length = function length(callback) {
  this.all((err, sessions) => {
    if (err) return callback(err);
    callback(null, Object.keys(sessions ?? {}).length);
  });
};

proto.clear = function clear(callback) {
  const state = stateOf(this);
  state.entries.clear();
  for (const ids of state.order) ids.clear();
  later(callback);
};

proto.prune = function prune() {
  const state = stateOf(this);
  const now = state.now();
  let removed = 0;
  for (const [sid, entry] of state.entries) {
    if (entry.expires <= now) {
      drop(state, sid);
      removed++;
    }
  }
  return removed;
};

proto.close = function close() {
  const state = stateOf(this);
  if (state.timer !== undefined) clearInterval(state.timer);
  state.timer = undefined;
};

/**
 * An in-process store for development, tests and single-process apps, a drop-in for
 * express-session's `MemoryStore` (same callbacks, `all()` answers an object keyed by session ID).
 * Unlike express-session's, it is bounded: at most `maxSessions` sessions, expired ones swept on
 * a timer that never holds the process open. When it is full, sessions without a signed-in user
 * are evicted before signed-in ones (see {@link MemoryStoreOptions.userIdOf}), least recently
 * used first.
 *
 * @example
 * ```ts
 * app.use(session({ secret, store: new MemoryStore({ maxSessions: 10_000 }), resave: false, saveUninitialized: false }));
 * ```
 */
export const MemoryStore = MemoryStoreFunction as unknown as MemoryStoreConstructor;
