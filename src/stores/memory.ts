import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { base64UrlDigit, toBase64Url } from '../crypto.js';
import { SessionError } from '../errors.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most sessions kept at once; creating one more evicts the least recently used. At most
   * 16,777,214: the store numbers its slots in 24 bits.
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

/**
 * The bytes of the key `decodeDigest` last accepted, and their hash. A plain array: the packed
 * record is built with `String.fromCharCode.apply`, which reads one about three times faster than
 * a Uint8Array.
 */
const digest: number[] = new Array<number>(32).fill(0);
let digestHash = 0;

function sextet(text: string, at: number): number {
  return base64UrlDigit(text.charCodeAt(at));
}

/** One step of the digest hash: a group of three bytes (the last group has two). */
function mix(hash: number, group: number): number {
  hash = Math.imul(hash ^ group, 0x9e3779b1);
  return hash ^ (hash >>> 15);
}

/**
 * Decodes a key that is the unpadded base64url form of exactly 32 bytes (what the manager's
 * SHA-256 store keys are) into `digest`, and hashes them into `digestHash`. Answers false for a
 * key of any other form, including a 43-character one whose last character carries bits a
 * 32-byte value cannot have. The hash mixes the bytes three at a time: they come out of SHA-256,
 * so nobody can choose them to collide.
 */
function decodeDigest(key: string, seed: number): boolean {
  if (key.length !== 43) return false;
  let hash = seed;
  let at = 0;
  for (let i = 0; i < 40; i += 4) {
    const a = sextet(key, i);
    const b = sextet(key, i + 1);
    const c = sextet(key, i + 2);
    const d = sextet(key, i + 3);
    if ((a | b | c | d) < 0) return false;
    const group = (a << 18) | (b << 12) | (c << 6) | d;
    digest[at++] = group >> 16;
    digest[at++] = (group >> 8) & 255;
    digest[at++] = group & 255;
    hash = mix(hash, group);
  }
  const a = sextet(key, 40);
  const b = sextet(key, 41);
  const c = sextet(key, 42);
  if ((a | b | c) < 0 || (c & 3) !== 0) return false;
  const last = (a << 10) | (b << 4) | (c >> 2);
  digest[30] = last >> 8;
  digest[31] = last & 255;
  digestHash = mix(hash, last);
  return true;
}

/** `digestHash` of the key a packed record holds in the digest form (from its character 1). */
function hashDigestIn(seed: number, packed: string): number {
  let hash = seed;
  for (let i = 1; i < 31; i += 3) {
    hash = mix(
      hash,
      (packed.charCodeAt(i) << 16) | (packed.charCodeAt(i + 1) << 8) | packed.charCodeAt(i + 2),
    );
  }
  return mix(hash, (packed.charCodeAt(31) << 8) | packed.charCodeAt(32));
}

/** The base64url form of the 32 one-byte characters of `packed` from `from` on. */
function encodeDigest(packed: string, from: number): string {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = packed.charCodeAt(from + i);
  return toBase64Url(bytes);
}

/** Seeded FNV-1a over the characters `text[from..to)`. */
function hashText(seed: number, text: string, from: number, to: number): number {
  let hash = seed ^ 0x811c9dc5;
  for (let i = from; i < to; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash | 0;
}

function base36(text: string, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    value = value * 36 + (code <= 0x39 ? code - 0x30 : code - 0x57);
  }
  return value;
}

/** Makes V8 store the string as one flat sequence rather than the tree of parts it was built from. */
function flatten(text: string): string {
  text.charCodeAt(0);
  return text;
}

const DIGEST_KEY = 0x23; // '#'

/** Where a packed record's key ends (see `MemoryStore`). */
function keyEndOf(packed: string): number {
  if (packed.charCodeAt(0) === DIGEST_KEY) return 33;
  const comma = packed.indexOf(',', 1);
  return comma + 1 + base36(packed, 1, comma);
}

/** The key's part of a packed record, for a key `decodeDigest` has (or has not) accepted. */
function keyPart(key: string, isDigest: boolean): string {
  return isDigest
    ? `#${String.fromCharCode.apply(null, digest)}`
    : `$${key.length.toString(36)},${key}`;
}

/** Where the parts of a packed record after its key are; `userStart` is -1 without a user. */
interface Layout {
  version: number;
  userStart: number;
  userEnd: number;
}

function layoutOf(packed: string): Layout {
  const keyEnd = keyEndOf(packed);
  const versionEnd = packed.indexOf(',', keyEnd);
  const lengthEnd = packed.indexOf(',', versionEnd + 1);
  const version = base36(packed, keyEnd, versionEnd);
  if (lengthEnd === versionEnd + 1) return { version, userStart: -1, userEnd: lengthEnd + 1 };
  const userStart = lengthEnd + 1;
  return { version, userStart, userEnd: userStart + base36(packed, versionEnd + 1, lengthEnd) };
}

/** Whether the record belongs to `userId` (`null`: to no user), without copying its user ID out. */
function holdsUser(packed: string, layout: Layout, userId: string | null): boolean {
  if (userId === null) return layout.userStart < 0;
  return (
    layout.userStart >= 0 &&
    layout.userEnd - layout.userStart === userId.length &&
    packed.startsWith(userId, layout.userStart)
  );
}

function userIn(packed: string, layout: Layout): string | null {
  return layout.userStart < 0 ? null : packed.slice(layout.userStart, layout.userEnd);
}

function keyIn(packed: string): string {
  if (packed.charCodeAt(0) === DIGEST_KEY) return encodeDigest(packed, 1);
  const comma = packed.indexOf(',', 1);
  return packed.slice(comma + 1, keyEndOf(packed));
}

/** Whether the packed record is stored under `key` (decoded into `digest` when `isDigest`). */
function holdsKey(packed: string, key: string, isDigest: boolean): boolean {
  if (isDigest) {
    if (packed.charCodeAt(0) !== DIGEST_KEY) return false;
    for (let i = 0; i < 32; i++) if (packed.charCodeAt(i + 1) !== digest[i]) return false;
    return true;
  }
  if (packed.charCodeAt(0) === DIGEST_KEY) return false;
  const comma = packed.indexOf(',', 1);
  return base36(packed, 1, comma) === key.length && packed.startsWith(key, comma + 1);
}

function packAfterKey(data: string, userId: string | null, version: number): string {
  const user = userId === null ? ',' : `${userId.length.toString(36)},${userId}`;
  return `${version.toString(36)},${user}${data}`;
}

/** Buckets for `capacity` entries: at most 75 % full, so that probe runs stay short. */
function bucketsFor(capacity: number): number {
  return Math.ceil(capacity / 0.75) + 1;
}

const NONE = -1;

/**
 * A table entry holds the slot + 1 in its low 24 bits (0 is an empty bucket), four bits of its
 * key's hash in the next four (its tag), and in its high four bits how far the entry sits from its
 * home bucket (15: that far or farther). A probe rejects the entries of other homes on the
 * distance, and most other keys of its own home on the tag, without reading their records (in a
 * table of 100,000 sessions each such read is a cache miss); a removal moves entries back
 * without hashing their keys again.
 */
const SLOT_MASK = 0xffffff;
const TAG_MASK = 0xf000000;
const DISTANCE_SHIFT = 28;
const FAR = 15;

/** The most sessions a store can hold: slot numbers fit the entries' 24 bits. */
const MOST_SESSIONS = SLOT_MASK - 1;

function slotIn(entry: number): number {
  return (entry & SLOT_MASK) - 1;
}

/** The tag bits of an entry for a key or user ID with this hash. */
function tagOf(hash: number): number {
  return (hash & 0xf) << 24;
}

/** A table entry for the slot and tag in `entry`'s low bits, `distance` from its home bucket. */
function entryAt(entry: number, distance: number): number {
  return (Math.min(distance, FAR) << DISTANCE_SHIFT) | (entry & (SLOT_MASK | TAG_MASK));
}

/** How far from its home bucket an entry sits, as recorded (`FAR`: that far or farther). */
function recordedDistance(entry: number): number {
  return entry >>> DISTANCE_SHIFT;
}

/** Whether an entry met `distance` steps into a probe with this tag can be the one it seeks. */
function fromHome(entry: number, distance: number, tag: number): boolean {
  return (entry & TAG_MASK) === tag && recordedDistance(entry) === Math.min(distance, FAR);
}

/**
 * Keeps sessions in this process: for tests, development and single-process apps.
 * Bounded (least-recently-used eviction), swept on a timer that never holds the process
 * open, and complete, user index included. Sessions are lost when the process exits.
 *
 * Each session takes one slot of a set of parallel arrays: its packed record (one string:
 * the key, the version, the user ID and the data), its expiry, and its neighbours in the
 * least-recently-used order and in its user's list of sessions. Two open-addressing tables of
 * 32-bit integers find a slot by key, and the first slot of a user's list by user ID. A key in
 * the manager's form (the base64url SHA-256 of a session ID) is kept as its 32 bytes, any other
 * key as given. A small session bound to a user takes about 191 bytes, against about 260 when
 * the store was a `Map` of strings with a second map for users.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxSessions: 50_000 });
 * ```
 */
export class MemoryStore implements SessionStore {
  readonly #maxSessions: number;
  readonly #now: () => number;
  /** Random per store, so that keys or user IDs chosen to collide in the tables cannot be prepared. */
  readonly #keySeed: number;
  readonly #userSeed: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #foundHash = 0;
  #foundDigest = false;

  #capacity = 0;
  #count = 0;
  /** Slots from here on have never been used. */
  #unused = 0;
  /** The first slot given back, chained through `#newer`. */
  #freed = NONE;
  /**
   * Each slot's record: `#` and the key's 32 bytes, or `$`, the key's length in base 36, `,`
   * and the key; then the version in base 36, `,`, the user ID's length in base 36 (empty for no
   * user), `,`, the user ID and the data.
   */
  #records: (string | undefined)[] = [];
  #expiresAt = new Float64Array(0);
  #older = new Int32Array(0);
  #newer = new Int32Array(0);
  #oldest = NONE;
  #newest = NONE;
  #prevOfUser = new Int32Array(0);
  #nextOfUser = new Int32Array(0);
  /** Key hash to slot (see `SLOT_MASK`), linear probing. */
  #sessionTable = new Int32Array(0);
  /** User ID hash to the first slot of that user's list. */
  #userTable = new Int32Array(0);

  constructor(options: MemoryStoreOptions = {}) {
    const maxSessions = options.maxSessions ?? 100_000;
    if (!Number.isInteger(maxSessions) || maxSessions < 1 || maxSessions > MOST_SESSIONS) {
      throw new SessionError(
        'INVALID_OPTION',
        `MemoryStore: maxSessions must be an integer from 1 to ${MOST_SESSIONS}`,
      );
    }
    const sweepInterval = options.sweepInterval ?? 60_000;
    if (!(sweepInterval >= 0)) {
      throw new SessionError('INVALID_OPTION', 'MemoryStore: sweepInterval must be 0 or more');
    }
    this.#maxSessions = maxSessions;
    this.#now = options.now ?? Date.now;
    const seeds = globalThis.crypto.getRandomValues(new Int32Array(2));
    this.#keySeed = seeds[0]!;
    this.#userSeed = seeds[1]!;
    this.#grow(Math.min(maxSessions, 16));
    if (sweepInterval > 0) {
      this.#timer = setInterval(() => void this.prune(), sweepInterval);
      this.#timer.unref?.();
    }
  }

  /** How many records are held, expired ones not yet swept included. */
  get size(): number {
    return this.#count;
  }

  #grow(capacity: number): void {
    const widen = <T extends Int32Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const array = make(capacity);
      array.set(old);
      return array;
    };
    const ints = (n: number) => new Int32Array(n);
    for (let slot = this.#capacity; slot < capacity; slot++) this.#records.push(undefined);
    // A copy holds exactly `capacity` elements; the pushes leave room for growth we never use.
    this.#records = this.#records.slice();
    this.#expiresAt = widen(this.#expiresAt, (n) => new Float64Array(n));
    this.#older = widen(this.#older, ints);
    this.#newer = widen(this.#newer, ints);
    this.#prevOfUser = widen(this.#prevOfUser, ints);
    this.#nextOfUser = widen(this.#nextOfUser, ints);
    this.#capacity = capacity;
    this.#sessionTable = new Int32Array(bucketsFor(capacity));
    this.#userTable = new Int32Array(bucketsFor(capacity));
    for (let slot = this.#oldest; slot !== NONE; slot = this.#newer[slot]!) {
      const packed = this.#records[slot]!;
      this.#placeAt(this.#sessionTable, this.#keyHashOf(packed), slot);
      const layout = layoutOf(packed);
      if (layout.userStart >= 0 && this.#prevOfUser[slot] === NONE) {
        this.#placeAt(this.#userTable, this.#userHashIn(packed, layout), slot);
      }
    }
  }

  #bucketOf(table: Int32Array, hash: number): number {
    const bucket = Math.floor((hash >>> 0) * (table.length / 4294967296));
    return bucket < table.length ? bucket : table.length - 1;
  }

  /** Puts `slot` into the first empty bucket from `hash`'s home on. */
  #placeAt(table: Int32Array, hash: number, slot: number): void {
    let bucket = this.#bucketOf(table, hash);
    let distance = 0;
    while (table[bucket] !== 0) {
      if (++bucket === table.length) bucket = 0;
      distance++;
    }
    table[bucket] = entryAt((slot + 1) | tagOf(hash), distance);
  }

  /**
   * Empties a bucket and moves later entries of its probe run back, so that every entry stays
   * reachable from its home bucket without tombstones. `distanceOf` says how far the entry at a
   * bucket sits from its home.
   */
  #vacate(
    table: Int32Array,
    bucket: number,
    distanceOf: (entry: number, at: number) => number,
  ): void {
    const size = table.length;
    let hole = bucket;
    let next = bucket;
    for (;;) {
      if (++next === size) next = 0;
      const entry = table[next]!;
      if (entry === 0) break;
      const distance = distanceOf(entry, next);
      const gap = next >= hole ? next - hole : next + size - hole;
      if (distance < gap) continue;
      table[hole] = entryAt(entry, distance - gap);
      hole = next;
    }
    table[hole] = 0;
  }

  #distanceFrom(table: Int32Array, hash: number, at: number): number {
    const home = this.#bucketOf(table, hash);
    return at >= home ? at - home : at + table.length - home;
  }

  readonly #sessionDistance = (entry: number, at: number): number => {
    const recorded = recordedDistance(entry);
    if (recorded < FAR) return recorded;
    const packed = this.#records[slotIn(entry)]!;
    return this.#distanceFrom(this.#sessionTable, this.#keyHashOf(packed), at);
  };

  readonly #userDistance = (entry: number, at: number): number => {
    const recorded = recordedDistance(entry);
    if (recorded < FAR) return recorded;
    const packed = this.#records[slotIn(entry)]!;
    return this.#distanceFrom(this.#userTable, this.#userHashIn(packed, layoutOf(packed)), at);
  };

  #userHashOf(userId: string): number {
    return hashText(this.#userSeed, userId, 0, userId.length);
  }

  #userHashIn(packed: string, layout: Layout): number {
    return hashText(this.#userSeed, packed, layout.userStart, layout.userEnd);
  }

  #keyHashOf(packed: string): number {
    if (packed.charCodeAt(0) === DIGEST_KEY) return hashDigestIn(this.#keySeed, packed);
    const comma = packed.indexOf(',', 1);
    return hashText(this.#keySeed, packed, comma + 1, keyEndOf(packed));
  }

  /**
   * The slot under `key`, or `NONE`. Leaves the key's hash in `#foundHash`, whether it has the
   * digest form in `#foundDigest`, and then its bytes in `digest`, for `create`.
   */
  #find(key: string): number {
    const isDigest = decodeDigest(key, this.#keySeed);
    const hash = isDigest ? digestHash : hashText(this.#keySeed, key, 0, key.length);
    this.#foundHash = hash;
    this.#foundDigest = isDigest;
    const table = this.#sessionTable;
    const tag = tagOf(hash);
    let bucket = this.#bucketOf(table, hash);
    for (let distance = 0; ; distance++) {
      const entry = table[bucket]!;
      if (entry === 0) return NONE;
      if (
        fromHome(entry, distance, tag) &&
        holdsKey(this.#records[slotIn(entry)]!, key, isDigest)
      ) {
        return slotIn(entry);
      }
      if (++bucket === table.length) bucket = 0;
    }
  }

  /** The slot under `key` if its record is live; an expired one is removed on the way. */
  #findLive(key: string): number {
    const slot = this.#find(key);
    if (slot === NONE) return NONE;
    if (this.#expiresAt[slot]! <= this.#now()) {
      this.#remove(slot);
      return NONE;
    }
    return slot;
  }

  /** The first slot of `userId`'s list, `NONE` if it has none. */
  #userHead(userId: string, hash = this.#userHashOf(userId)): number {
    const table = this.#userTable;
    const tag = tagOf(hash);
    let bucket = this.#bucketOf(table, hash);
    for (let distance = 0; ; distance++) {
      const entry = table[bucket]!;
      if (entry === 0) return NONE;
      if (fromHome(entry, distance, tag)) {
        const packed = this.#records[slotIn(entry)]!;
        if (holdsUser(packed, layoutOf(packed), userId)) return slotIn(entry);
      }
      if (++bucket === table.length) bucket = 0;
    }
  }

  #userSlots(userId: string): number[] {
    const slots: number[] = [];
    for (let slot = this.#userHead(userId); slot !== NONE; slot = this.#nextOfUser[slot]!) {
      slots.push(slot);
    }
    return slots;
  }

  /** Adds `slot` to `userId`'s list, as its second entry if it has one, so the head stays. */
  #linkUser(slot: number, userId: string): void {
    const hash = this.#userHashOf(userId);
    const head = this.#userHead(userId, hash);
    if (head === NONE) {
      this.#prevOfUser[slot] = NONE;
      this.#nextOfUser[slot] = NONE;
      this.#placeAt(this.#userTable, hash, slot);
      return;
    }
    const next = this.#nextOfUser[head]!;
    this.#prevOfUser[slot] = head;
    this.#nextOfUser[slot] = next;
    if (next !== NONE) this.#prevOfUser[next] = slot;
    this.#nextOfUser[head] = slot;
  }

  /** Takes `slot`, whose record is `packed`, out of its user's list. */
  #unlinkUser(slot: number, packed: string, layout: Layout): void {
    const prev = this.#prevOfUser[slot]!;
    const next = this.#nextOfUser[slot]!;
    if (next !== NONE) this.#prevOfUser[next] = prev;
    if (prev !== NONE) {
      this.#nextOfUser[prev] = next;
      return;
    }
    const table = this.#userTable;
    const bucket = this.#bucketHolding(table, this.#userHashIn(packed, layout), slot);
    // The next session of the same user has the same home and tag: it takes the head's place.
    const head = table[bucket]!;
    if (next !== NONE)
      table[bucket] = entryAt((next + 1) | (head & TAG_MASK), recordedDistance(head));
    else this.#vacate(table, bucket, this.#userDistance);
  }

  /** The bucket that holds `slot`, which is in the table under `hash`. */
  #bucketHolding(table: Int32Array, hash: number, slot: number): number {
    let bucket = this.#bucketOf(table, hash);
    for (let step = 0; step < table.length; step++) {
      if (slotIn(table[bucket]!) === slot) return bucket;
      if (++bucket === table.length) bucket = 0;
    }
    // Unreachable while the tables agree with the slots; a loud error beats a silent loop.
    throw new SessionError('STORE_UNAVAILABLE', 'MemoryStore: its index lost a session');
  }

  #unlinkAge(slot: number): void {
    const older = this.#older[slot]!;
    const newer = this.#newer[slot]!;
    if (older === NONE) this.#oldest = newer;
    else this.#newer[older] = newer;
    if (newer === NONE) this.#newest = older;
    else this.#older[newer] = older;
  }

  #appendAge(slot: number): void {
    this.#older[slot] = this.#newest;
    this.#newer[slot] = NONE;
    if (this.#newest === NONE) this.#oldest = slot;
    else this.#newer[this.#newest] = slot;
    this.#newest = slot;
  }

  #makeNewest(slot: number): void {
    if (slot === this.#newest) return;
    this.#unlinkAge(slot);
    this.#appendAge(slot);
  }

  #remove(slot: number): void {
    const packed = this.#records[slot]!;
    const layout = layoutOf(packed);
    if (layout.userStart >= 0) this.#unlinkUser(slot, packed, layout);
    const table = this.#sessionTable;
    this.#vacate(
      table,
      this.#bucketHolding(table, this.#keyHashOf(packed), slot),
      this.#sessionDistance,
    );
    this.#unlinkAge(slot);
    this.#records[slot] = undefined;
    this.#newer[slot] = this.#freed;
    this.#freed = slot;
    this.#count--;
  }

  #allocate(): number {
    if (this.#freed !== NONE) {
      const slot = this.#freed;
      this.#freed = this.#newer[slot]!;
      return slot;
    }
    if (this.#unused === this.#capacity) {
      this.#grow(Math.min(this.#maxSessions, this.#capacity * 2));
    }
    return this.#unused++;
  }

  #unpack(slot: number): StoredRecord {
    const packed = this.#records[slot]!;
    const layout = layoutOf(packed);
    return {
      data: packed.slice(layout.userEnd),
      expiresAt: this.#expiresAt[slot]!,
      userId: userIn(packed, layout),
      version: layout.version,
    };
  }

  async get(key: string): Promise<StoredRecord | null> {
    return this.getNow(key);
  }

  /** {@link MemoryStore.get}, answered synchronously: the manager reads through it. */
  getNow(key: string): StoredRecord | null {
    const slot = this.#findLive(key);
    if (slot === NONE) return null;
    this.#makeNewest(slot);
    return this.#unpack(slot);
  }

  async create(key: string, record: SessionRecord): Promise<boolean> {
    return this.createNow(key, record);
  }

  /** {@link MemoryStore.create}, answered synchronously: the manager creates sessions through it. */
  createNow(key: string, record: SessionRecord): boolean {
    const existing = this.#find(key);
    if (existing !== NONE && this.#expiresAt[existing]! > this.#now()) return false;
    const hash = this.#foundHash;
    const packed = flatten(
      keyPart(key, this.#foundDigest) + packAfterKey(record.data, record.userId, 1),
    );
    if (existing !== NONE) this.#remove(existing);
    while (this.#count >= this.#maxSessions && this.#oldest !== NONE) this.#remove(this.#oldest);
    const slot = this.#allocate();
    this.#records[slot] = packed;
    this.#expiresAt[slot] = record.expiresAt;
    this.#placeAt(this.#sessionTable, hash, slot);
    this.#appendAge(slot);
    if (record.userId !== null) this.#linkUser(slot, record.userId);
    this.#count++;
    return true;
  }

  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    return this.updateNow(key, record, expectedVersion);
  }

  /** {@link MemoryStore.update}, answered synchronously: the manager saves through it. */
  updateNow(key: string, record: SessionRecord, expectedVersion: number): UpdateResult {
    const slot = this.#findLive(key);
    if (slot === NONE) return { status: 'missing' };
    const packed = this.#records[slot]!;
    const layout = layoutOf(packed);
    if (layout.version !== expectedVersion) return { status: 'conflict' };
    const { userId } = record;
    const moves = !holdsUser(packed, layout, userId);
    if (moves && layout.userStart >= 0) this.#unlinkUser(slot, packed, layout);
    const version = expectedVersion + 1;
    this.#records[slot] = flatten(
      packed.slice(0, keyEndOf(packed)) + packAfterKey(record.data, userId, version),
    );
    if (moves && userId !== null) this.#linkUser(slot, userId);
    this.#expiresAt[slot] = record.expiresAt;
    this.#makeNewest(slot);
    return { status: 'ok', version };
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    const slot = this.#findLive(key);
    if (slot === NONE) return false;
    // Only the expiry changes; the record keeps its place in the LRU order.
    this.#expiresAt[slot] = expiresAt;
    return true;
  }

  async delete(key: string): Promise<void> {
    const slot = this.#find(key);
    if (slot !== NONE) this.#remove(slot);
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const records: UserRecord[] = [];
    const now = this.#now();
    for (const slot of this.#userSlots(userId)) {
      if (this.#expiresAt[slot]! <= now) this.#remove(slot);
      else records.push({ key: keyIn(this.#records[slot]!), ...this.#unpack(slot) });
    }
    return records;
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const now = this.#now();
    const kept = exceptKey === undefined ? NONE : this.#find(exceptKey);
    let removed = 0;
    for (const slot of this.#userSlots(userId)) {
      if (slot === kept) continue;
      if (this.#expiresAt[slot]! > now) removed++;
      this.#remove(slot);
    }
    return removed;
  }

  async prune(): Promise<number> {
    const now = this.#now();
    let removed = 0;
    let slot = this.#oldest;
    while (slot !== NONE) {
      const newer = this.#newer[slot]!;
      if (this.#expiresAt[slot]! <= now) {
        this.#remove(slot);
        removed++;
      }
      slot = newer;
    }
    return removed;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
