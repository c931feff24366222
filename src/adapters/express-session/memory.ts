/**
 * express-session's `MemoryStore`, bounded.
 *
 * @packageDocumentation
 */
import { SessionError } from '../../errors.js';
import type { SessionData } from './store.js';
import { Store } from './store.js';

/** Options of {@link MemoryStore}. express-session's MemoryStore takes none; these are additions. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once; storing one more evicts the least recently used.
   * @defaultValue 100_000
   */
  maxSessions?: number;
  /**
   * How often expired sessions are swept, in milliseconds; `0` disables the timer (expired
   * sessions are still never returned). The timer never holds the process open.
   * @defaultValue 60_000
   */
  sweepInterval?: number;
  /** The clock, in epoch milliseconds. Tests inject one. @defaultValue `Date.now` */
  now?: () => number;
}

interface Entry {
  json: string;
  /** Epoch ms, or Infinity for a browser-session cookie. */
  expires: number;
}

interface MemoryState {
  entries: Map<string, Entry>;
  max: number;
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
export interface MemoryStoreConstructor {
  new (options?: MemoryStoreOptions): MemoryStore;
  (this: object, options?: MemoryStoreOptions): void;
  readonly prototype: MemoryStore;
}

const STATE = Symbol('tessera.express-session.memory');

function stateOf(store: MemoryStore): MemoryState {
  return (store as unknown as Record<symbol, MemoryState>)[STATE]!;
}

function MemoryStoreFunction(this: MemoryStore, options: MemoryStoreOptions = {}): void {
  Store.call(this);
  const max = options.maxSessions ?? 100_000;
  if (!Number.isInteger(max) || max < 1) {
    throw new SessionError('INVALID_OPTION', 'MemoryStore: maxSessions must be a positive integer');
  }
  const sweepInterval = options.sweepInterval ?? 60_000;
  if (!(sweepInterval >= 0))
    throw new SessionError('INVALID_OPTION', 'MemoryStore: sweepInterval must be 0 or more');
  const state: MemoryState = {
    entries: new Map(),
    max,
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

function expiryOf(session: SessionData): number {
  const cookie = session.cookie as { expires?: unknown } | undefined;
  const expires = cookie?.expires;
  if (expires === undefined || expires === null || expires === false) return Infinity;
  const instant = new Date(expires as string | Date).valueOf();
  // An unreadable expiry counts as expired rather than as never expiring.
  return Number.isNaN(instant) ? -Infinity : instant;
}

/** The live entry under `sid`; an expired one is dropped. */
function live(state: MemoryState, sid: string): Entry | undefined {
  const entry = state.entries.get(sid);
  if (entry === undefined) return undefined;
  if (entry.expires <= state.now()) {
    state.entries.delete(sid);
    return undefined;
  }
  return entry;
}

function entryOf(session: SessionData): Entry {
  return { json: JSON.stringify(session), expires: expiryOf(session) };
}

function later(callback: ((...args: any[]) => void) | undefined, ...args: unknown[]): void {
  if (typeof callback === 'function') setImmediate(callback, ...args);
}

const proto = MemoryStoreFunction.prototype as MemoryStore;

proto.get = function get(sid, callback) {
  const state = stateOf(this);
  const entry = live(state, sid);
  if (entry !== undefined) {
    // Re-inserting moves the entry to the young end of the map's order: that order is the LRU.
    state.entries.delete(sid);
    state.entries.set(sid, entry);
  }
  later(callback, null, entry === undefined ? undefined : (JSON.parse(entry.json) as SessionData));
};

proto.set = function set(sid, session, callback) {
  const state = stateOf(this);
  const entry = entryOf(session);
  state.entries.delete(sid);
  while (state.entries.size >= state.max) {
    const oldest = state.entries.keys().next();
    if (oldest.done === true) break;
    state.entries.delete(oldest.value);
  }
  state.entries.set(sid, entry);
  later(callback);
};

proto.destroy = function destroy(sid, callback) {
  stateOf(this).entries.delete(sid);
  later(callback);
};

proto.touch = function touch(sid, session, callback) {
  const state = stateOf(this);
  const entry = live(state, sid);
  if (entry !== undefined) {
    const current = JSON.parse(entry.json) as SessionData;
    current.cookie = session.cookie;
    state.entries.set(sid, entryOf(current));
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
  stateOf(this).entries.clear();
  later(callback);
};

proto.prune = function prune() {
  const state = stateOf(this);
  const now = state.now();
  let removed = 0;
  for (const [sid, entry] of state.entries) {
    if (entry.expires <= now) {
      state.entries.delete(sid);
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
 * Unlike express-session's, it is bounded: at most `maxSessions` sessions (least recently used
 * evicted first), expired ones swept on a timer that never holds the process open.
 *
 * @example
 * ```ts
 * app.use(session({ secret, store: new MemoryStore({ maxSessions: 10_000 }), resave: false, saveUninitialized: false }));
 * ```
 */
export const MemoryStore = MemoryStoreFunction as unknown as MemoryStoreConstructor;
