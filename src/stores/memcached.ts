/**
 * A session store on Memcached, through a `memjs` client the application creates.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { Client, Response } from 'memjs';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../store.js';
import { clockOption, delay, invalidOption, numberOption } from '../options.js';
import { clientOption, indexMarginOption, optionsObject } from './shared.js';

/**
 * What the store needs of a `memjs` client: its generic request path. The store speaks the
 * binary protocol itself through it (memjs 1.3 has no compare-and-set of its own), and so it
 * uses the client's connections, timeouts, retries and reconnection as configured. Any
 * `memjs.Client`, whatever its serializer, fits.
 */
export type MemcachedClient = Pick<Client, 'perform' | 'incrSeq' | 'seq'>;

/** Options of {@link MemcachedStore}. */
export interface MemcachedStoreOptions {
  /**
   * A `memjs` client the application created and owns (servers, timeouts, SASL credentials);
   * the store never closes it. Keep memjs's `failover` off: a failed-over request reads another
   * server, where every session looks missing.
   *
   * @example
   * ```ts
   * import memjs from 'memjs';
   * const client = memjs.Client.create('127.0.0.1:11211', { timeout: 0.5, retries: 2, keepAlive: true });
   * ```
   */
  client: MemcachedClient;
  /**
   * Prepended to every key, so that several applications (or tests) can share a server.
   * Printable ASCII without spaces, at most 200 characters.
   * @defaultValue `'tessera:'`
   */
  prefix?: string;
  /**
   * How far past a session's expiry its entry in the user index reaches, in milliseconds: a whole
   * number from 0 to 365 days. A touch or update rewrites the index only when the session would
   * outlive its entry, so a larger margin means fewer index writes and a longer-lived entry after
   * the session ends.
   * @defaultValue 3_600_000 (one hour)
   */
  indexMargin?: number;
  /**
   * How many CAS tokens, from the last read or write of a key, this store keeps, so that an
   * update right after a read costs one round trip instead of two. The server still checks
   * every token, so a stale one only costs the second round trip. `0` turns this off.
   * @defaultValue 10_000
   */
  casCacheSize?: number;
  /**
   * The longest one request may take, in milliseconds, before the store call rejects. memjs
   * fails requests on its own timeouts; this is a backstop for the requests memjs 1.3 can leave
   * unanswered after an outage (when an old connection closes after a new one opened). Keep it
   * above memjs's own worst case, `retries × (conntimeout + timeout)` plus the retry delays.
   * @defaultValue 5_000
   */
  requestTimeout?: number;
  /**
   * The clock, in epoch milliseconds. Memcached drops items on its own clock, with one-second
   * granularity; reads also compare `expiresAt` with this clock, to the millisecond.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/** What the store keeps of a record besides its data, with the CAS token it was read with. */
interface Snapshot {
  cas: Buffer;
  version: number;
  expiresAt: number;
  userId: string | null;
  /** Until when the record's entry in its user's index reaches (0 without a user). */
  indexedUntil: number;
}

interface Decoded extends Omit<Snapshot, 'cas'> {
  data: string;
}

interface Item {
  value: Buffer;
  flags: number;
  cas: Buffer;
}

type WriteOutcome = { status: 'ok'; cas: Buffer } | { status: 'exists' } | { status: 'missing' };

/** Binary-protocol opcodes the store sends. */
const Opcode = { Get: 0x00, Set: 0x01, Add: 0x02, Delete: 0x04 } as const;
type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Binary-protocol response statuses the store expects; any other is an error. */
const Status = { Ok: 0x0000, NotFound: 0x0001, Exists: 0x0002 } as const;

/** Item flags marking Tessera's two value formats, so a foreign value is never misread. */
const RECORD_FLAGS = 0x54530001;
const INDEX_FLAGS = 0x54530002;

/** Memcached reads an expiration above 30 days of seconds as an absolute Unix time. */
const RELATIVE_LIMIT = 60 * 60 * 24 * 30;
/** An absolute expiration long past: the server treats the item as already expired. */
const ALREADY_EXPIRED = RELATIVE_LIMIT + 1;
const MAX_EXPIRATION = 0xffff_ffff;

const OWNER = 'MemcachedStore';

/** How many times a compare-and-set loop re-reads a key that keeps changing under it. */
const MAX_ATTEMPTS = 32;

/** The longest delay `setTimeout` honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const PREFIX_PATTERN = /^[\x21-\x7e]{0,200}$/;

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

function isZero(cas: Buffer): boolean {
  return cas.every((byte) => byte === 0);
}

function corrupt(what: string): Error {
  return new Error(`MemcachedStore: the value under a ${what} key is not in Tessera's format`);
}

function encodeRecord(record: Decoded): Buffer {
  const header = JSON.stringify({
    v: record.version,
    e: record.expiresAt,
    u: record.userId,
    i: record.indexedUntil,
  });
  return Buffer.from(`${header}\n${record.data}`, 'utf8');
}

function decodeRecord(item: Item): Decoded {
  if (item.flags !== RECORD_FLAGS) throw corrupt('session');
  const text = item.value.toString('utf8');
  const newline = text.indexOf('\n');
  let header: unknown;
  try {
    header = newline < 0 ? null : JSON.parse(text.slice(0, newline));
  } catch {
    header = null;
  }
  if (typeof header !== 'object' || header === null) throw corrupt('session');
  const { v, e, u, i } = header as Record<string, unknown>;
  if (
    !Number.isInteger(v) ||
    typeof e !== 'number' ||
    typeof i !== 'number' ||
    (u !== null && typeof u !== 'string')
  ) {
    throw corrupt('session');
  }
  return {
    data: text.slice(newline + 1),
    version: v as number,
    expiresAt: e,
    userId: u,
    indexedUntil: i,
  };
}

function encodeIndex(members: Map<string, number>): Buffer {
  return Buffer.from(JSON.stringify(Object.fromEntries(members)), 'utf8');
}

function decodeIndex(item: Item): Map<string, number> {
  if (item.flags !== INDEX_FLAGS) throw corrupt('user index');
  let parsed: unknown;
  try {
    parsed = JSON.parse(item.value.toString('utf8'));
  } catch {
    parsed = null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw corrupt('user index');
  const members = new Map<string, number>();
  for (const [key, until] of Object.entries(parsed)) {
    if (typeof until !== 'number') throw corrupt('user index');
    members.set(key, until);
  }
  return members;
}

/**
 * Keeps sessions in Memcached, which expires them natively. Each session is one item,
 * `{prefix}s:{key}`, holding its version, expiry, user and data; every write is an ADD or a
 * compare-and-set (binary protocol, CAS token), so concurrent writers never lose each other's
 * work and an update never brings back a deleted session. A user's sessions are listed in one
 * more item, `{prefix}u:{SHA-256 of the user ID}`, kept with compare-and-set too.
 *
 * Round trips: `get` one; `create` one for an anonymous session, three with a user; `update`
 * one right after this store read the key (two otherwise), two more when the user index must
 * change; `touch` two (two more when the index must reach further); `delete` one.
 *
 * Memcached is a cache: under memory pressure it may evict a session (the user is signed out)
 * or a user index (the user's sessions no longer show up in `listByUser` and escape
 * `deleteByUser`). Where ending every session of a user must be guaranteed, use the Redis or an
 * SQL store.
 *
 * @example
 * ```ts
 * import memjs from 'memjs';
 * import { SessionManager } from 'tessera-session';
 * import { MemcachedStore } from 'tessera-session/stores/memcached';
 *
 * const client = memjs.Client.create('127.0.0.1:11211', { timeout: 0.5, retries: 2, keepAlive: true });
 * const store = new MemcachedStore({ client, prefix: 'myapp:' });
 * const manager = new SessionManager({ store, secrets: [process.env.SESSION_SECRET!] });
 * ```
 */
export class MemcachedStore implements SessionStore {
  readonly #client: MemcachedClient;
  readonly #prefix: string;
  readonly #indexMargin: number;
  readonly #casCacheSize: number;
  readonly #requestTimeout: number;
  readonly #now: () => number;
  readonly #snapshots = new Map<string, Snapshot>();

  /** Validates the options; a bad one throws `SessionError` with code `INVALID_OPTION`. */
  constructor(options: MemcachedStoreOptions) {
    optionsObject(OWNER, options, 'a memjs client');
    this.#client = clientOption<MemcachedClient>(
      OWNER,
      'client',
      options.client,
      ['perform', 'incrSeq'],
      'a memjs Client',
    );
    const prefix = options.prefix ?? 'tessera:';
    if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
      invalidOption(OWNER, 'prefix must be printable ASCII without spaces, at most 200 characters');
    }
    this.#prefix = prefix;
    this.#indexMargin = indexMarginOption(OWNER, 'indexMargin', options.indexMargin);
    this.#casCacheSize = numberOption(OWNER, 'casCacheSize', options.casCacheSize, 10_000, {
      integer: true,
    });
    this.#requestTimeout = numberOption(OWNER, 'requestTimeout', options.requestTimeout, 5_000, {
      exclusiveMin: true,
      max: MAX_TIMER_MS,
    });
    this.#now = clockOption(OWNER, options.now);
  }

  #recordKey(key: string): string {
    return `${this.#prefix}s:${key}`;
  }

  #indexKey(userId: string): string {
    return `${this.#prefix}u:${hashOf(userId)}`;
  }

  /** The memcached expiration for an instant: absolute seconds, or "already expired". */
  #expiration(expiresAt: number): number {
    if (!(expiresAt > this.#now())) return ALREADY_EXPIRED;
    const seconds = Math.ceil(expiresAt / 1000);
    if (seconds <= RELATIVE_LIMIT) return ALREADY_EXPIRED;
    return Math.min(seconds, MAX_EXPIRATION);
  }

  /** Sends one binary-protocol request through the client and answers the response. */
  #send(
    opcode: Opcode,
    key: string,
    extras: Buffer,
    value: Buffer,
    cas?: Buffer,
  ): Promise<Response> {
    const client = this.#client;
    const keyBytes = Buffer.from(key, 'utf8');
    const request = Buffer.alloc(24 + extras.length + keyBytes.length + value.length);
    client.incrSeq();
    // memjs 1.3 can leave its sequence number negative past 2^31; the wire wants it unsigned.
    const opaque = client.seq >>> 0;
    request.writeUInt8(0x80, 0);
    request.writeUInt8(opcode, 1);
    request.writeUInt16BE(keyBytes.length, 2);
    request.writeUInt8(extras.length, 4);
    request.writeUInt32BE(extras.length + keyBytes.length + value.length, 8);
    request.writeUInt32BE(opaque, 12);
    cas?.copy(request, 16);
    extras.copy(request, 24);
    keyBytes.copy(request, 24 + extras.length);
    value.copy(request, 24 + extras.length + keyBytes.length);
    const timeout = this.#requestTimeout;
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`MemcachedStore: memcached did not answer within ${timeout} ms`)),
        timeout,
      );
      timer.unref?.();
      try {
        client.perform(key, request, opaque, (error: unknown, response?: Response) => {
          clearTimeout(timer);
          if (error !== null && error !== undefined) {
            reject(error instanceof Error ? error : new Error(`MemcachedStore: ${String(error)}`));
          } else if (response === undefined || response === null) {
            reject(new Error('MemcachedStore: the client answered without a response'));
          } else {
            resolve(response);
          }
        });
      } catch (error) {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  #unexpected(response: Response): Error {
    const status = response.header.status;
    const text = response.val.toString('utf8').slice(0, 100);
    return new Error(
      `MemcachedStore: memcached answered status 0x${status.toString(16)}${text ? ` (${text})` : ''}`,
    );
  }

  #checkedCas(cas: Buffer): Buffer {
    // A server without CAS (memcached -C) answers 0, which a write would read as "no check".
    if (isZero(cas))
      throw new Error('MemcachedStore: memcached answered no CAS value; run it without -C');
    return Buffer.from(cas);
  }

  async #fetch(key: string): Promise<Item | null> {
    const response = await this.#send(Opcode.Get, key, Buffer.alloc(0), Buffer.alloc(0));
    if (response.header.status === Status.NotFound) return null;
    if (response.header.status !== Status.Ok) throw this.#unexpected(response);
    const flags = response.extras.length >= 4 ? response.extras.readUInt32BE(0) : 0;
    return { value: response.val, flags, cas: this.#checkedCas(response.header.cas) };
  }

  async #write(
    opcode: typeof Opcode.Add | typeof Opcode.Set,
    key: string,
    value: Buffer,
    flags: number,
    expiresAt: number,
    cas?: Buffer,
  ): Promise<WriteOutcome> {
    const extras = Buffer.alloc(8);
    extras.writeUInt32BE(flags, 0);
    extras.writeUInt32BE(this.#expiration(expiresAt), 4);
    const response = await this.#send(opcode, key, extras, value, cas);
    switch (response.header.status) {
      case Status.Ok:
        return { status: 'ok', cas: this.#checkedCas(response.header.cas) };
      case Status.Exists:
        return { status: 'exists' };
      case Status.NotFound:
        return { status: 'missing' };
      default:
        throw this.#unexpected(response);
    }
  }

  async #remove(key: string, cas?: Buffer): Promise<'ok' | 'exists' | 'missing'> {
    const response = await this.#send(Opcode.Delete, key, Buffer.alloc(0), Buffer.alloc(0), cas);
    switch (response.header.status) {
      case Status.Ok:
        return 'ok';
      case Status.Exists:
        return 'exists';
      case Status.NotFound:
        return 'missing';
      default:
        throw this.#unexpected(response);
    }
  }

  #remember(key: string, snapshot: Snapshot): void {
    if (this.#casCacheSize === 0) return;
    this.#snapshots.delete(key);
    this.#snapshots.set(key, snapshot);
    while (this.#snapshots.size > this.#casCacheSize) {
      const oldest = this.#snapshots.keys().next();
      if (oldest.done === true) break;
      this.#snapshots.delete(oldest.value);
    }
  }

  #forget(key: string): void {
    this.#snapshots.delete(key);
  }

  /** Reads the record under `key` if it is live on this store's clock. */
  async #readLive(key: string): Promise<(Decoded & { cas: Buffer }) | null> {
    const item = await this.#fetch(this.#recordKey(key));
    const record = item === null ? null : decodeRecord(item);
    if (item === null || record === null || !(record.expiresAt > this.#now())) {
      this.#forget(key);
      return null;
    }
    const { data: _data, ...snapshot } = record;
    this.#remember(key, { ...snapshot, cas: item.cas });
    return { ...record, cas: item.cas };
  }

  /**
   * Applies `edit` to a user's index with compare-and-set, dropping members whose reach has
   * passed, and retries while other writers change the index first.
   */
  async #editIndex(userId: string, edit: (members: Map<string, number>) => void): Promise<void> {
    const indexKey = this.#indexKey(userId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await delay(Math.random() * Math.min(20, 2 ** attempt));
      const item = await this.#fetch(indexKey);
      const members = item === null ? new Map<string, number>() : decodeIndex(item);
      const before = encodeIndex(members);
      edit(members);
      const now = this.#now();
      for (const [key, until] of members) if (!(until > now)) members.delete(key);
      const after = encodeIndex(members);
      const reach = Math.max(0, ...members.values());
      if (item === null) {
        if (members.size === 0) return;
        const added = await this.#write(Opcode.Add, indexKey, after, INDEX_FLAGS, reach);
        if (added.status === 'ok') return;
        continue;
      }
      if (after.equals(before)) return;
      if (members.size === 0) {
        if ((await this.#remove(indexKey, item.cas)) !== 'exists') return;
        continue;
      }
      const written = await this.#write(Opcode.Set, indexKey, after, INDEX_FLAGS, reach, item.cas);
      if (written.status === 'ok') return;
    }
    throw new Error('MemcachedStore: the user index kept changing under concurrent writers');
  }

  /** Makes the user index list `key` until at least `expiresAt` plus the margin; answers that instant. */
  async #cover(userId: string, key: string, expiresAt: number): Promise<number> {
    const until = expiresAt + this.#indexMargin;
    await this.#editIndex(userId, (members) => {
      if (!((members.get(key) ?? 0) >= until)) members.set(key, until);
    });
    return until;
  }

  /** The index reach a record written with `userId` and `expiresAt` needs, extending the index first if short. */
  async #indexFor(
    key: string,
    userId: string | null,
    expiresAt: number,
    before: Snapshot | null,
  ): Promise<number> {
    if (userId === null || !(expiresAt > this.#now())) return 0;
    if (before !== null && before.userId === userId && expiresAt <= before.indexedUntil)
      return before.indexedUntil;
    return this.#cover(userId, key, expiresAt);
  }

  /** Compare-and-set of a whole record over `before`. */
  async #replace(key: string, before: Snapshot, next: Decoded): Promise<WriteOutcome> {
    const outcome = await this.#write(
      Opcode.Set,
      this.#recordKey(key),
      encodeRecord(next),
      RECORD_FLAGS,
      next.expiresAt,
      before.cas,
    );
    if (outcome.status === 'ok') {
      const { data: _data, ...snapshot } = next;
      this.#remember(key, { ...snapshot, cas: outcome.cas });
    } else if (outcome.status === 'missing') {
      this.#forget(key);
    }
    return outcome;
  }

  async get(key: string): Promise<StoredRecord | null> {
    const record = await this.#readLive(key);
    if (record === null) return null;
    return {
      data: record.data,
      expiresAt: record.expiresAt,
      userId: record.userId,
      version: record.version,
    };
  }

  async create(key: string, record: SessionRecord): Promise<boolean> {
    // The index entry goes first: a live record is then always reachable through its user.
    const indexedUntil = await this.#indexFor(key, record.userId, record.expiresAt, null);
    const next: Decoded = { ...record, version: 1, indexedUntil };
    const { data: _data, ...snapshot } = next;
    const value = encodeRecord(next);
    const recordKey = this.#recordKey(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const added = await this.#write(Opcode.Add, recordKey, value, RECORD_FLAGS, record.expiresAt);
      if (added.status === 'ok') {
        this.#remember(key, { ...snapshot, cas: added.cas });
        return true;
      }
      // Memcached counts whole seconds: an item this clock finds expired may still be there.
      const item = await this.#fetch(recordKey);
      if (item === null) continue;
      if (decodeRecord(item).expiresAt > this.#now()) return false;
      const replaced = await this.#write(
        Opcode.Set,
        recordKey,
        value,
        RECORD_FLAGS,
        record.expiresAt,
        item.cas,
      );
      if (replaced.status === 'ok') {
        this.#remember(key, { ...snapshot, cas: replaced.cas });
        return true;
      }
    }
    throw new Error('MemcachedStore: create kept racing with other writers of the key');
  }

  async update(key: string, record: SessionRecord, expectedVersion: number): Promise<UpdateResult> {
    const cached = this.#snapshots.get(key);
    let before: Snapshot | null =
      cached !== undefined && cached.version === expectedVersion && cached.expiresAt > this.#now()
        ? cached
        : null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (before === null) {
        const current = await this.#readLive(key);
        if (current === null) return { status: 'missing' };
        if (current.version !== expectedVersion) return { status: 'conflict' };
        before = current;
      }
      const indexedUntil = await this.#indexFor(key, record.userId, record.expiresAt, before);
      const next: Decoded = { ...record, version: expectedVersion + 1, indexedUntil };
      const outcome = await this.#replace(key, before, next);
      if (outcome.status === 'ok') return { status: 'ok', version: next.version };
      if (outcome.status === 'missing') return { status: 'missing' };
      // The item changed since it was read: a newer version (a conflict) or only a touch.
      before = null;
    }
    throw new Error('MemcachedStore: update kept racing with other writers of the key');
  }

  async touch(key: string, expiresAt: number): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#readLive(key);
      if (current === null) return false;
      const indexedUntil = await this.#indexFor(key, current.userId, expiresAt, current);
      const outcome = await this.#replace(key, current, { ...current, expiresAt, indexedUntil });
      if (outcome.status === 'ok') return true;
      if (outcome.status === 'missing') return false;
    }
    throw new Error('MemcachedStore: touch kept racing with other writers of the key');
  }

  async delete(key: string): Promise<void> {
    this.#forget(key);
    await this.#remove(this.#recordKey(key));
  }

  async listByUser(userId: string): Promise<UserRecord[]> {
    const item = await this.#fetch(this.#indexKey(userId));
    if (item === null) return [];
    const now = this.#now();
    const keys = [...decodeIndex(item)].filter(([, until]) => until > now).map(([key]) => key);
    const records = await Promise.all(keys.map((key) => this.#readLive(key)));
    const rows: UserRecord[] = [];
    records.forEach((record, i) => {
      if (record === null || record.userId !== userId) return;
      rows.push({
        key: keys[i]!,
        data: record.data,
        expiresAt: record.expiresAt,
        userId,
        version: record.version,
      });
    });
    return rows;
  }

  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    const item = await this.#fetch(this.#indexKey(userId));
    if (item === null) return 0;
    const keys = [...decodeIndex(item).keys()].filter((key) => key !== exceptKey);
    const outcomes = await Promise.all(keys.map((key) => this.#deleteOwned(key, userId)));
    const deleted = keys.filter((_, i) => outcomes[i] !== 'kept');
    if (deleted.length > 0) {
      // Only what was deleted here leaves the index: a member without a record may be a
      // create in progress, whose record must stay reachable.
      await this.#editIndex(userId, (members) => {
        for (const key of deleted) members.delete(key);
      }).catch(() => undefined);
    }
    return outcomes.filter((outcome) => outcome === 'live').length;
  }

  /** Deletes the record under `key` if it still belongs to `userId`; answers what it removed. */
  async #deleteOwned(key: string, userId: string): Promise<'live' | 'expired' | 'kept'> {
    const recordKey = this.#recordKey(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const item = await this.#fetch(recordKey);
      if (item === null) return 'kept';
      const record = decodeRecord(item);
      if (record.userId !== userId) return 'kept';
      const removed = await this.#remove(recordKey, item.cas);
      if (removed === 'missing') return 'kept';
      if (removed === 'ok') {
        this.#forget(key);
        return record.expiresAt > this.#now() ? 'live' : 'expired';
      }
    }
    throw new Error('MemcachedStore: a session kept changing while its user was being signed out');
  }

  /** Forgets the CAS tokens this store kept. It does not close the client, which the application owns. */
  async close(): Promise<void> {
    this.#snapshots.clear();
  }
}
