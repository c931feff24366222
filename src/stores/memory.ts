import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { MAX_TIMER_DELAY, clockOption, numberOption } from '../options.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once. Creating one more evicts the least recently used anonymous
   * session; a signed-in session is evicted only when no anonymous one is left. A whole number
   * from 1 to 16,777,216 (2^24, the most entries a JavaScript `Map` holds in V8).
   * @defaultValue 100_000
   */
  maxSessions?: number;
  /**
   * How often expired sessions are swept, in milliseconds, up to 2,147,483,647 (the longest
   * timer delay); `0` disables the timer (expired sessions are still never returned). The timer
   * never holds the process open.
   * @defaultValue 60_000
   */
  sweepInterval?: number;
  /**
   * The clock, in epoch milliseconds. Tests inject one to move time without sleeping.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/** The most entries one V8 `Map` holds: beyond it `set` throws. */
const MOST_SESSIONS = 2 ** 24;

/** How many sessions a sweep examines before it yields, so that it never holds up requests. */
const SWEEP_SLICE = 1_000;

/** Resolves on a later turn of the event loop, after pending I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A stored record. Never handed out: callers get copies, so they cannot change it. */
interface Entry {
  data: string;
  expiresAt: number;
  userId: string | null;
  version: number;
}

function entryOf(record: SessionRecord, version: number): Entry {
  // Reading a character makes the engine join a string built in parts (as JSON.stringify builds
  // long ones) into one piece, which holds the same text in less memory.
  record.data.charCodeAt(0);
  return {
    data: record.data,
    expiresAt: record.expiresAt,
    userId: record.userId,
    version,
  };
}

function copyOf(entry: Entry): StoredRecord {
  return {
    data: entry.data,
    expiresAt: entry.expiresAt,
    userId: entry.userId,
    version: entry.version,
  };
}

/**
 * Keeps sessions in this process: for tests, development and single-process apps. Sessions are
 * lost when the process exits.
 *
 * Anonymous and signed-in sessions are kept in two `Map`s, each in least-recently-used order (a
 * read or write moves the session to the end). At `maxSessions`, creating a session evicts the
 * oldest anonymous one, and a signed-in one only when none is anonymous: a flood of cookieless
 * requests cannot sign anybody out. A third map lists each user's session keys (the user index):
 * one key for a user with one session, the common case, and a `Set` only beyond. Expiry is checked
 * on every read; expired sessions are also swept on a timer that never holds the process open,
 * in slices of 1,000 sessions that yield to the event loop between them.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxSessions: 50_000 });
 * ```
 */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  readonly #maxSessions: number;
  readonly #now: () => number;
  readonly #anonymous = new Map<string, Entry>();
  readonly #signedIn = new Map<string, Entry>();
  /** Each user's session keys, for `listByUser` and `deleteByUser`: one key, or a `Set` of several. */
  readonly #users = new Map<string, string | Set<string>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxSessions = numberOption('MemoryStore', 'maxSessions', options.maxSessions, 100_000, {
      min: 1,
      max: MOST_SESSIONS,
      integer: true,
    });
    const sweepInterval = numberOption(
      'MemoryStore',
      'sweepInterval',
      options.sweepInterval,
      60_000,
      { max: MAX_TIMER_DELAY },
    );
    this.#now = clockOption('MemoryStore', options.now);
    if (sweepInterval > 0) {
      this.#timer = setInterval(() => void this.prune().catch(() => undefined), sweepInterval);
      this.#timer.unref?.();
    }
  }

  /** How many records are held, expired ones not yet swept included. */
  get size(): number {
    return this.#anonymous.size + this.#signedIn.size;
  }

  #mapOf(userId: string | null): Map<string, Entry> {
    return userId === null ? this.#anonymous : this.#signedIn;
  }

  #find(key: string): Entry | undefined {
    return this.#anonymous.get(key) ?? this.#signedIn.get(key);
  }

  /** The live entry under `key`; an expired one is removed on the way. */
  #live(key: string): Entry | undefined {
    const entry = this.#find(key);
    if (entry === undefined || entry.expiresAt > this.#now()) return entry;
    this.#remove(key, entry);
    return undefined;
  }

  /** Makes `entry`, already stored under `key` or replacing the one there, the most recent. */
  #use(key: string, entry: Entry): void {
    const map = this.#mapOf(entry.userId);
    map.delete(key);
    map.set(key, entry);
  }

  /** Stores `entry` as the most recently used, in its user's index too. */
  #insert(key: string, entry: Entry): void {
    const userId = entry.userId;
    this.#mapOf(userId).set(key, entry);
    if (userId === null) return;
    const keys = this.#users.get(userId);
    if (keys === undefined) this.#users.set(userId, key);
    else if (typeof keys === 'string') this.#users.set(userId, new Set([keys, key]));
    else keys.add(key);
  }

  #remove(key: string, entry: Entry): void {
    const userId = entry.userId;
    this.#mapOf(userId).delete(key);
    if (userId === null) return;
    const keys = this.#users.get(userId);
    if (typeof keys === 'string') {
      if (keys === key) this.#users.delete(userId);
    } else if (keys?.delete(key) === true && keys.size === 1) {
      // Back to one session: the key alone takes far less memory than a Set.
      this.#users.set(userId, keys.values().next().value!);
    }
  }

  /** The keys of `userId`'s sessions, as a copy that removing sessions leaves alone. */
  #keysOf(userId: string): string[] {
    const keys = this.#users.get(userId);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : [...keys];
  }

  /** Evicts the least recently used anonymous session, or signed-in one if none is anonymous. */
  #evict(): void {
    const map = this.#anonymous.size > 0 ? this.#anonymous : this.#signedIn;
    const oldest = map.entries().next();
    if (oldest.done !== true) this.#remove(...oldest.value);
  }

  /** Answers at once, as do `create` and `update`: a request on this store never waits. */
  get(key: string): StoredRecord | null {
    const entry = this.#live(key);
    if (entry === undefined) return null;
    this.#use(key, entry);
    return copyOf(entry);
  }

  create(key: string, record: SessionRecord): boolean {
    if (this.#live(key) !== undefined) return false;
    while (this.size >= this.#maxSessions) this.#evict();
    this.#insert(key, entryOf(record, 1));
    return true;
  }

  update(key: string, record: SessionRecord, expectedVersion: number): UpdateResult {
    const entry = this.#live(key);
    if (entry === undefined) return { status: 'missing' };
    if (entry.version !== expectedVersion) return { status: 'conflict' };
    const next = entryOf(record, expectedVersion + 1);
    if (next.userId === entry.userId) this.#use(key, next);
    else {
      this.#remove(key, entry);
      this.#insert(key, next);
    }
    return { status: 'ok', version: expectedVersion + 1 };
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    const entry = this.#live(key);
    if (entry === undefined) return false;
    // Only the expiry changes; the read that preceded the touch already moved the session.
    entry.expiresAt = expiresAt;
    return true;
  }

  async delete(key: string): Promise<void> {
    const entry = this.#find(key);
    if (entry !== undefined) this.#remove(key, entry);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const records: UserRecord[] = [];
    for (const key of this.#keysOf(userId)) {
      const entry = this.#live(key);
      if (entry !== undefined) records.push({ key, ...copyOf(entry) });
    }
    return records;
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const now = this.#now();
    let removed = 0;
    for (const key of this.#keysOf(userId)) {
      if (key === exceptKey) continue;
      // The index holds only keys of signed-in sessions that are stored.
      const entry = this.#signedIn.get(key)!;
      if (entry.expiresAt > now) removed++;
      this.#remove(key, entry);
    }
    return removed;
  }

  /**
   * Removes the sessions expired now and answers how many. It examines 1,000 sessions at a time
   * and yields to the event loop between slices; a call made while a sweep runs shares it.
   */
  prune(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    const now = this.#now();
    let removed = 0;
    let examined = 0;
    for (const map of [this.#anonymous, this.#signedIn]) {
      // Sessions used during the sweep move to the end of their map: the size bounds the pass.
      let left = map.size;
      // Keys alone, looked up one by one, leave less garbage than the entries' pairs.
      for (const key of map.keys()) {
        if (left-- === 0) break;
        const entry = map.get(key)!;
        if (entry.expiresAt <= now) {
          this.#remove(key, entry);
          removed++;
        }
        if (++examined % SWEEP_SLICE === 0) await nextTurn();
      }
    }
    return removed;
  }

  /** Stops the sweep timer and waits for a sweep in progress. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping?.catch(() => undefined);
  }
}
