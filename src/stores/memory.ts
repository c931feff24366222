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
   * session; a signed-in session is evicted only when no anonymous one is left. A session counts
   * as used when it is created, updated or touched, not when it is read: the manager touches a
   * session that requests only read at most once per `touchInterval` (a minute by default). A
   * whole number from 1 to 16,777,216 (2^24, the most entries a JavaScript `Map` holds in V8).
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

/**
 * About how many sessions one shard holds when the store is full. V8 rehashes a `Map` in one
 * step as it grows, shrinks or clears the holes deletions leave; a small map does it in well
 * under a millisecond.
 */
const SHARD_SESSIONS = 2_048;

/** The most shards of each kind: 12 bits, taken from the top of a 32-bit hash. */
const MOST_SHARDS = 4_096;

/**
 * How long one slice of a sweep runs before it yields, in milliseconds: a read waits that long.
 * Short enough that reads during a sweep keep their p99 (docs/reliability.md, "Scale"); the
 * yields cost the sweep CPU, which a timer once a minute affords.
 */
const SWEEP_SLICE_MS = 0.005;

/** The most sessions one slice examines, however fast the clock says it went. */
const SWEEP_SLICE_MOST = 1_000;

/** How many sessions a sweep examines between two looks at the clock. */
const SWEEP_CLOCK_EVERY = 16;

/** A shard's head (the use stamp of its first session) that must be looked up again. */
const STALE = -1;

/** Resolves on a later turn of the event loop, after pending I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Mixes the last three characters of a session key into 12 bits. Keys are random IDs or their
 * hashes, random at the end; any other string works too, only less evenly spread.
 */
function keyHash(key: string): number {
  const n = key.length;
  const tail = key.charCodeAt(n - 1) ^ (key.charCodeAt(n - 2) << 8) ^ (key.charCodeAt(n - 3) << 16);
  return Math.imul(tail, 0x9e3779b1) >>> 20;
}

/** Mixes every character of a user ID into 12 bits: user IDs often share a prefix or suffix. */
function userHash(userId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) hash = Math.imul(hash ^ userId.charCodeAt(i), 0x01000193);
  return Math.imul(hash, 0x9e3779b1) >>> 20;
}

/**
 * A stored record. Never handed out: callers get copies, so they cannot change it. An anonymous
 * session's has no `userId` field at all, which pays for the `used` stamp.
 */
interface Entry {
  data: string;
  expiresAt: number;
  version: number;
  /** When the session was last used: the store's count of uses, unique and rising. */
  used: number;
  userId?: string;
}

function entryOf(record: SessionRecord, version: number, used: number): Entry {
  // Reading a character makes the engine join a string built in parts (as JSON.stringify builds
  // long ones) into one piece, which holds the same text in less memory.
  record.data.charCodeAt(0);
  const { data, expiresAt, userId } = record;
  return userId === null
    ? { data, expiresAt, version, used }
    : { data, expiresAt, version, used, userId };
}

function copyOf(entry: Entry): StoredRecord {
  return {
    data: entry.data,
    expiresAt: entry.expiresAt,
    userId: entry.userId ?? null,
    version: entry.version,
  };
}

/** The use stamp of `shard`'s first session, or `Infinity` for an empty shard. */
function headOf(shard: Map<string, Entry>): number {
  for (const entry of shard.values()) return entry.used;
  return Infinity;
}

/** Sessions of one kind (anonymous or signed-in), spread over shards by key. */
class Kind {
  /** Each shard in least-recently-used order: a use moves the session to the end. */
  readonly shards: Map<string, Entry>[];
  /** Per shard, the use stamp of its first session, `Infinity` when empty, or {@link STALE}. */
  readonly heads: Float64Array;
  size = 0;

  constructor(count: number) {
    this.shards = Array.from({ length: count }, () => new Map<string, Entry>());
    this.heads = new Float64Array(count).fill(Infinity);
  }

  /** The shard holding the least recently used session of this kind. */
  oldest(): number {
    const { heads, shards } = this;
    let oldest = 0;
    let stamp = Infinity;
    for (let s = 0; s < heads.length; s++) {
      let head = heads[s]!;
      if (head === STALE) head = heads[s] = headOf(shards[s]!);
      if (head < stamp) {
        stamp = head;
        oldest = s;
      }
    }
    return oldest;
  }
}

/**
 * Keeps sessions in this process: for tests, development and single-process apps. Sessions are
 * lost when the process exits.
 *
 * Anonymous and signed-in sessions are kept apart, each spread by key over `Map`s (shards) of
 * about 2,000 sessions at `maxSessions`, so that V8 never rehashes more than a small map in one
 * step. Each shard is in least-recently-used order (creating, updating or touching a session
 * moves it to the end; reading it does not), and each session carries a stamp of its last use.
 * At `maxSessions`, creating a session evicts the least recently used anonymous one, found among
 * the shards' first sessions, and a signed-in one only when none is anonymous: a flood of
 * cookieless requests cannot sign anybody out. A third set of shards lists each user's session
 * keys (the user index): one key for a user with one session, the common case, and a `Set` only
 * beyond. Expiry is checked on every read; expired sessions are also swept on a timer that never
 * holds the process open, in slices of a few microseconds that yield to the event loop between
 * them.
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
  /** The shard count less one: a hash's low bits pick the shard. */
  readonly #mask: number;
  readonly #anonymous: Kind;
  readonly #signedIn: Kind;
  /** Per shard of user IDs, each user's session keys: one key, or a `Set` of several. */
  readonly #users: Map<string, string | Set<string>>[];
  /** The count of uses so far: the stamp of the latest. */
  #uses = 0;
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
    let shards = 1;
    while (shards < MOST_SHARDS && shards * SHARD_SESSIONS < this.#maxSessions) shards *= 2;
    this.#mask = shards - 1;
    this.#anonymous = new Kind(shards);
    this.#signedIn = new Kind(shards);
    this.#users = Array.from({ length: shards }, () => new Map<string, string | Set<string>>());
    if (sweepInterval > 0) {
      this.#timer = setInterval(() => void this.prune().catch(() => undefined), sweepInterval);
      this.#timer.unref?.();
    }
  }

  /** How many records are held, expired ones not yet swept included. */
  get size(): number {
    return this.#anonymous.size + this.#signedIn.size;
  }

  #kindOf(userId: string | undefined): Kind {
    return userId === undefined ? this.#anonymous : this.#signedIn;
  }

  #find(key: string, shard: number): Entry | undefined {
    return this.#anonymous.shards[shard]!.get(key) ?? this.#signedIn.shards[shard]!.get(key);
  }

  /** The live entry under `key`; an expired one is removed on the way. */
  #live(key: string, shard: number): Entry | undefined {
    const entry = this.#find(key, shard);
    if (entry === undefined || entry.expiresAt > this.#now()) return entry;
    this.#remove(key, shard, entry);
    return undefined;
  }

  /**
   * Stores `next` under `key` in place of `entry`, of the same user, as the most recently used.
   * `next` may be `entry` itself.
   */
  #use(key: string, shard: number, entry: Entry, next: Entry): void {
    const kind = this.#kindOf(entry.userId);
    const map = kind.shards[shard]!;
    if (kind.heads[shard] === entry.used) kind.heads[shard] = STALE;
    next.used = ++this.#uses;
    map.delete(key);
    map.set(key, next);
  }

  /** Stores `entry`, not held yet, as the most recently used, in its user's index too. */
  #insert(key: string, shard: number, entry: Entry): void {
    const userId = entry.userId;
    const kind = this.#kindOf(userId);
    if (kind.heads[shard] === Infinity) kind.heads[shard] = entry.used;
    kind.shards[shard]!.set(key, entry);
    kind.size++;
    if (userId === undefined) return;
    const users = this.#users[userHash(userId) & this.#mask]!;
    const keys = users.get(userId);
    if (keys === undefined) users.set(userId, key);
    else if (typeof keys === 'string') users.set(userId, new Set([keys, key]));
    else keys.add(key);
  }

  #remove(key: string, shard: number, entry: Entry): void {
    const userId = entry.userId;
    const kind = this.#kindOf(userId);
    if (kind.heads[shard] === entry.used) kind.heads[shard] = STALE;
    kind.shards[shard]!.delete(key);
    kind.size--;
    if (userId === undefined) return;
    const users = this.#users[userHash(userId) & this.#mask]!;
    const keys = users.get(userId);
    if (typeof keys === 'string') {
      if (keys === key) users.delete(userId);
    } else if (keys?.delete(key) === true && keys.size === 1) {
      // Back to one session: the key alone takes far less memory than a Set.
      users.set(userId, keys.values().next().value!);
    }
  }

  /** The keys of `userId`'s sessions, as a copy that removing sessions leaves alone. */
  #keysOf(userId: string): string[] {
    const keys = this.#users[userHash(userId) & this.#mask]!.get(userId);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : [...keys];
  }

  /** Evicts the least recently used anonymous session, or signed-in one if none is anonymous. */
  #evict(): void {
    const kind = this.#anonymous.size > 0 ? this.#anonymous : this.#signedIn;
    const shard = kind.oldest();
    const oldest = kind.shards[shard]!.entries().next();
    if (oldest.done !== true) this.#remove(oldest.value[0], shard, oldest.value[1]);
  }

  /** Answers at once, as do `create` and `update`: a request on this store never waits. */
  get(key: string): StoredRecord | null {
    const entry = this.#live(key, keyHash(key) & this.#mask);
    return entry === undefined ? null : copyOf(entry);
  }

  create(key: string, record: SessionRecord): boolean {
    const shard = keyHash(key) & this.#mask;
    if (this.#live(key, shard) !== undefined) return false;
    while (this.size >= this.#maxSessions) this.#evict();
    this.#insert(key, shard, entryOf(record, 1, ++this.#uses));
    return true;
  }

  update(key: string, record: SessionRecord, expectedVersion: number): UpdateResult {
    const shard = keyHash(key) & this.#mask;
    const entry = this.#live(key, shard);
    if (entry === undefined) return { status: 'missing' };
    if (entry.version !== expectedVersion) return { status: 'conflict' };
    if (record.userId === (entry.userId ?? null)) {
      this.#use(key, shard, entry, entryOf(record, expectedVersion + 1, 0));
    } else {
      this.#remove(key, shard, entry);
      this.#insert(key, shard, entryOf(record, expectedVersion + 1, ++this.#uses));
    }
    return { status: 'ok', version: expectedVersion + 1 };
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    const shard = keyHash(key) & this.#mask;
    const entry = this.#live(key, shard);
    if (entry === undefined) return false;
    entry.expiresAt = expiresAt;
    this.#use(key, shard, entry, entry);
    return true;
  }

  async delete(key: string): Promise<void> {
    const shard = keyHash(key) & this.#mask;
    const entry = this.#find(key, shard);
    if (entry !== undefined) this.#remove(key, shard, entry);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const records: UserRecord[] = [];
    for (const key of this.#keysOf(userId)) {
      const entry = this.#live(key, keyHash(key) & this.#mask);
      if (entry !== undefined) records.push({ key, ...copyOf(entry) });
    }
    return records;
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const now = this.#now();
    let removed = 0;
    for (const key of this.#keysOf(userId)) {
      if (key === exceptKey) continue;
      const shard = keyHash(key) & this.#mask;
      // The index holds only keys of signed-in sessions that are stored.
      const entry = this.#signedIn.shards[shard]!.get(key)!;
      if (entry.expiresAt > now) removed++;
      this.#remove(key, shard, entry);
    }
    return removed;
  }

  /**
   * Removes the sessions expired now and answers how many. It works in slices of a few
   * microseconds (at most 1,000 sessions) and yields to the event loop between them; a call made
   * while a sweep runs shares it.
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
    let ends = performance.now() + SWEEP_SLICE_MS;
    for (const kind of [this.#anonymous, this.#signedIn]) {
      for (let shard = 0; shard < kind.shards.length; shard++) {
        const map = kind.shards[shard]!;
        // Sessions used during the sweep move to the end of their shard: the size bounds the pass.
        let left = map.size;
        // Keys alone, looked up one by one, leave less garbage than the entries' pairs.
        for (const key of map.keys()) {
          if (left-- === 0) break;
          const entry = map.get(key)!;
          if (entry.expiresAt <= now) {
            this.#remove(key, shard, entry);
            removed++;
          }
          examined++;
          if (
            examined === SWEEP_SLICE_MOST ||
            (examined % SWEEP_CLOCK_EVERY === 0 && performance.now() >= ends)
          ) {
            await nextTurn();
            examined = 0;
            ends = performance.now() + SWEEP_SLICE_MS;
          }
        }
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
