/**
 * Memcached's binary protocol, spoken through a `memjs` client's generic request path: get, add,
 * set and delete, each with the item's CAS token, so that every write can be a compare-and-set.
 *
 * @packageDocumentation
 */
import type { Client, Response } from 'memjs';

/**
 * What the store needs of a `memjs` client: its generic request path. The store speaks the
 * binary protocol itself through it (memjs 1.3 has no compare-and-set of its own), and so it
 * uses the client's connections, timeouts, retries and reconnection as configured. Any
 * `memjs.Client`, whatever its serializer, fits.
 */
export type MemcachedClient = Pick<Client, 'perform' | 'incrSeq' | 'seq'>;

/** Binary-protocol opcodes the store sends. */
export const Opcode = { Get: 0x00, Set: 0x01, Add: 0x02, Delete: 0x04 } as const;
type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Binary-protocol response statuses the store expects; any other is an error. */
const Status = { Ok: 0x0000, NotFound: 0x0001, Exists: 0x0002 } as const;

/** Memcached reads an expiration above 30 days of seconds as an absolute Unix time. */
const RELATIVE_LIMIT = 60 * 60 * 24 * 30;
/** An absolute expiration long past: the server treats the item as already expired. */
const ALREADY_EXPIRED = RELATIVE_LIMIT + 1;
const MAX_EXPIRATION = 0xffff_ffff;

/** How many times a compare-and-set loop re-reads a key that keeps changing under it. */
export const MAX_ATTEMPTS = 32;

/** An item as read, with its flags and CAS token. */
export interface Item {
  value: Buffer;
  flags: number;
  cas: Buffer;
}

/** What an add or a compare-and-set found: written (with the new token), changed, or absent. */
export type WriteOutcome =
  { status: 'ok'; cas: Buffer } | { status: 'exists' } | { status: 'missing' };

const EMPTY = Buffer.alloc(0);

function isZero(cas: Buffer): boolean {
  return cas.every((byte) => byte === 0);
}

/** Sends the store's requests through one client, each bounded by `requestTimeout`. */
export class MemcachedWire {
  readonly #client: MemcachedClient;
  readonly #requestTimeout: number;
  readonly #now: () => number;

  constructor(client: MemcachedClient, requestTimeout: number, now: () => number) {
    this.#client = client;
    this.#requestTimeout = requestTimeout;
    this.#now = now;
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
    if (isZero(cas)) {
      throw new Error('MemcachedStore: memcached answered no CAS value; run it without -C');
    }
    return Buffer.from(cas);
  }

  /** The item under `key`, or `null`. */
  async fetch(key: string): Promise<Item | null> {
    const response = await this.#send(Opcode.Get, key, EMPTY, EMPTY);
    if (response.header.status === Status.NotFound) return null;
    if (response.header.status !== Status.Ok) throw this.#unexpected(response);
    const flags = response.extras.length >= 4 ? response.extras.readUInt32BE(0) : 0;
    return { value: response.val, flags, cas: this.#checkedCas(response.header.cas) };
  }

  /** Adds an item, or sets one: unconditionally, or only over the token `cas`. */
  async write(
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

  /** Deletes an item: unconditionally, or only while its token is `cas`. */
  async remove(key: string, cas?: Buffer): Promise<'ok' | 'exists' | 'missing'> {
    const response = await this.#send(Opcode.Delete, key, EMPTY, EMPTY, cas);
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
}
