import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { SessionError } from '../errors.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once; creating one more evicts the least recently used.
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
   * The clock, in epoch milliseconds. Tests inject one to move time without sleeping.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/** Makes V8 store the string as one flat sequence rather than the tree of parts it was built from. */
function flatten(text: string): string {
  text.charCodeAt(0);
  return text;
}

interface Entry {
  data: string;
  expiresAt: number;
  userId: string | null;
  version: number;
}

/**
 * Keeps sessions in this process: for tests, development and single-process apps.
 * Bounded (least-recently-used eviction), swept on a timer that never holds the process
 * open, and complete, user index included. Sessions are lost when the process exits.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxSessions: 50_000 });
 * ```
 */
export class MemoryStore implements SessionStore {
  readonly #entries = new Map<string, Entry>();
  /** A user's store keys: one key as a plain string (the usual case), several as a Set. */
  readonly #byUser = new Map<string, string | Set<string>>();
  readonly #maxSessions: number;
  #evictionCursor: Iterator<string> | undefined;
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    const maxSessions = options.maxSessions ?? 100_000;
    if (!Number.isInteger(maxSessions) || maxSessions < 1) {
      throw new SessionError(
        'INVALID_OPTION',
        'MemoryStore: maxSessions must be a positive integer',
      );
    }
    const sweepInterval = options.sweepInterval ?? 60_000;
    if (!(sweepInterval >= 0)) {
      throw new SessionError('INVALID_OPTION', 'MemoryStore: sweepInterval must be 0 or more');
    }
    this.#maxSessions = maxSessions;
    this.#now = options.now ?? Date.now;
    if (sweepInterval > 0) {
      this.#timer = setInterval(() => void this.prune(), sweepInterval);
      this.#timer.unref?.();
    }
  }

  /** How many records are held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#remove(key, entry);
      return undefined;
    }
    return entry;
  }

  /**
   * The least recently used key. One iterator is kept from call to call: everything before it
   * was evicted, so it never walks those slots again. A fresh `keys()` per eviction would step
   * over every slot the evictions emptied (until V8 compacts the table), about 50 µs per new
   * session at 100,000 sessions.
   */
  #oldestKey(): string | undefined {
    let next = this.#evictionCursor?.next();
    if (next === undefined || next.done === true) {
      this.#evictionCursor = this.#entries.keys();
      next = this.#evictionCursor.next();
    }
    return next.done === true ? undefined : next.value;
  }

  #remove(key: string, entry: Entry): void {
    this.#entries.delete(key);
    if (entry.userId !== null) this.#unindex(entry.userId, key);
  }

  #index(userId: string, key: string): void {
    const keys = this.#byUser.get(userId);
    if (keys === undefined) this.#byUser.set(userId, key);
    else if (typeof keys === 'string') {
      if (keys !== key) this.#byUser.set(userId, new Set([keys, key]));
    } else keys.add(key);
  }

  #unindex(userId: string, key: string): void {
    const keys = this.#byUser.get(userId);
    if (keys === undefined) return;
    if (typeof keys === 'string') {
      if (keys === key) this.#byUser.delete(userId);
      return;
    }
    keys.delete(key);
    if (keys.size === 1) this.#byUser.set(userId, keys.values().next().value!);
  }

  #keysOf(userId: string): string[] {
    const keys = this.#byUser.get(userId);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : [...keys];
  }

  async get(key: string): Promise<StoredRecord | null> {
    const entry = this.#live(key);
    if (entry === undefined) return null;
    // Re-inserting moves the key to the young end of the map's order: that order is the LRU.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return {
      data: entry.data,
      expiresAt: entry.expiresAt,
      userId: entry.userId,
      version: entry.version,
    };
  }

  async create(key: string, record: SessionRecord): Promise<boolean> {
    if (this.#live(key) !== undefined) return false;
    while (this.#entries.size >= this.#maxSessions) {
      const oldest = this.#oldestKey();
      if (oldest === undefined) break;
      this.#remove(oldest, this.#entries.get(oldest)!);
    }
    // A literal (not a spread) keeps the entry a small fixed-shape object, and flattening the data
    // string drops the pieces JSON.stringify built it from: together they halve what a session
    // costs in memory.
    this.#entries.set(key, {
      data: flatten(record.data),
      expiresAt: record.expiresAt,
      userId: record.userId,
      version: 1,
    });
    if (record.userId !== null) this.#index(record.userId, key);
    return true;
  }

  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const entry = this.#live(key);
    if (entry === undefined) return { status: 'missing' };
    if (entry.version !== expectedVersion) return { status: 'conflict' };
    if (entry.userId !== record.userId) {
      if (entry.userId !== null) this.#unindex(entry.userId, key);
      if (record.userId !== null) this.#index(record.userId, key);
    }
    entry.data = flatten(record.data);
    entry.expiresAt = record.expiresAt;
    entry.userId = record.userId;
    entry.version = expectedVersion + 1;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return { status: 'ok', version: entry.version };
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    const entry = this.#live(key);
    if (entry === undefined) return false;
    entry.expiresAt = expiresAt;
    return true;
  }

  async delete(key: string): Promise<void> {
    const entry = this.#entries.get(key);
    if (entry !== undefined) this.#remove(key, entry);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const records: UserRecord[] = [];
    for (const key of this.#keysOf(userId)) {
      const entry = this.#live(key);
      if (entry !== undefined) records.push({ key, ...entry });
    }
    return records;
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    let removed = 0;
    for (const key of this.#keysOf(userId)) {
      if (key === exceptKey) continue;
      const entry = this.#entries.get(key);
      if (entry === undefined) continue;
      if (entry.expiresAt > this.#now()) removed++;
      this.#remove(key, entry);
    }
    return removed;
  }

  async prune(): Promise<number> {
    const now = this.#now();
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#remove(key, entry);
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
