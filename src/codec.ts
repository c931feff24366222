/**
 * How a session is written into the store's opaque `data` string: a JSON envelope of the
 * session's data and metadata, optionally sealed with AES-256-GCM under a key ring.
 *
 * Plain form: a JSON array, `[data, createdAt, lastWrite - createdAt, idle, deadline - createdAt,
 * authenticatedAt - createdAt, userAgent, ip, persistent]`, times in milliseconds, absent
 * trailing fields left out and absent inner ones `null`. Times after the first are offsets from
 * it: they are short numbers, which keeps a small session's record about 40 % smaller than named
 * fields with epoch times. Records written as a JSON object with those names (`d`, `c`, `w`, `i`,
 * `x`, `a`, `ua`, `ip`, `p`, all times absolute) are read too. The plain form leaves the user and
 * the expiry to the store's columns: without encryption the store is trusted.
 *
 * Sealed form: `e1.KEYID.IV.CIPHERTEXT` (base64url) of the plain form followed by two more
 * fields, always present: the user ID (`null` when anonymous) and `expiresAt - createdAt`, the
 * expiry the record was written with. The manager compares them with the record's `userId` and
 * `expiresAt` columns on every read, so that a database writer cannot reassign a session or
 * stretch its life. The store key is bound in as additional data so that a blob cannot be moved
 * to another record. A sealed record without the two fields (written before Tessera sealed
 * them) cannot be checked against its columns and decodes as nothing.
 *
 * @packageDocumentation
 */
import type { CryptoProvider } from './crypto.js';
import { base64UrlDigit, fromBase64Url, toBase64Url, utf8 } from './crypto.js';
import { SessionError } from './errors.js';
import type { MaybePromise } from './maybe.js';
import { andThen } from './maybe.js';

/** What the store's `data` holds for one session. */
export interface Envelope {
  /** The application's data: top-level keys to JSON values. */
  d: Record<string, unknown>;
  /** Created at (epoch ms). */
  c: number;
  /** Last write at (epoch ms). */
  w: number;
  /** Idle timeout of this session (ms). */
  i: number;
  /** Absolute deadline (epoch ms): never extended. */
  x: number;
  /** When the user last authenticated (epoch ms), if bound to a user. */
  a?: number;
  /** User agent at creation. */
  ua?: string;
  /** Client IP at creation. */
  ip?: string;
  /**
   * Whether this session's cookie is persistent (has a Max-Age), when the session chose it with
   * `setTimeouts`; absent, the cookie option decides.
   */
  p?: boolean;
  /**
   * The user the session belongs to (`null` when anonymous). Written and read only in the
   * sealed form, where it must equal the record's `userId` column.
   */
  u?: string | null;
  /**
   * The record's expiry (epoch ms) as the manager wrote it. Written and read only in the sealed
   * form, where it must equal the record's `expiresAt` column.
   */
  e?: number;
}

/** A key of the encryption ring. */
export interface EncryptionKey {
  /** A short label stored with each blob, 1 to 16 characters of `[A-Za-z0-9_-]`. */
  id: string;
  /** 32 bytes: a Uint8Array, or base64/base64url text of 32 bytes. */
  key: string | Uint8Array;
}

/** Encryption at rest. The first key encrypts; every key decrypts. */
export interface EncryptionOptions {
  keys: readonly EncryptionKey[];
}

const KEY_ID = /^[A-Za-z0-9_-]{1,16}$/;
const decoder = new TextDecoder('utf-8', { fatal: true });

function keyBytes(key: string | Uint8Array, id: string): Uint8Array {
  // Bytes are copied: a caller that wipes its array after start-up must not change the key.
  const bytes =
    key instanceof Uint8Array
      ? new Uint8Array(key)
      : typeof key === 'string'
        ? fromBase64Url(key.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''))
        : null;
  if (bytes === null || bytes.length !== 32) {
    throw new SessionError('INVALID_OPTION', `encryption key "${id}" must be exactly 32 bytes`);
  }
  return bytes;
}

function isOptional(value: unknown, type: 'number' | 'string' | 'boolean'): boolean {
  return value === undefined || value === null || typeof value === type;
}

/** How many fields the plain compact form has at most; the sealed form adds the user and expiry. */
const PLAIN_FIELDS = 9;
const SEALED_FIELDS = PLAIN_FIELDS + 2;

/**
 * The compact form of an envelope (see the module comment). Sealed, it ends with the user and
 * the expiry, which must then be present.
 */
function toArray(envelope: Envelope, sealed: boolean): unknown[] {
  const { c } = envelope;
  const fields: unknown[] = [
    envelope.d,
    c,
    envelope.w - c,
    envelope.i,
    envelope.x - c,
    envelope.a === undefined ? null : envelope.a - c,
    envelope.ua ?? null,
    envelope.ip ?? null,
    envelope.p ?? null,
  ];
  if (sealed) {
    if (envelope.e === undefined) throw new TypeError('a sealed envelope needs its expiry');
    fields.push(envelope.u ?? null, envelope.e - c);
    return fields;
  }
  let length = PLAIN_FIELDS;
  while (fields[length - 1] === null) length--;
  // A copy rather than a shorter `length`, whose setter is a call into V8's runtime.
  return length === PLAIN_FIELDS ? fields : fields.slice(0, length);
}

function fromArray(fields: unknown[], sealed: boolean): Envelope | null {
  // Read by index: destructuring an array goes through its iterator.
  const d = fields[0],
    c = fields[1],
    w = fields[2],
    i = fields[3],
    x = fields[4],
    a = fields[5],
    ua = fields[6],
    ip = fields[7],
    p = fields[8],
    u = fields[9],
    e = fields[10];
  const sizeFits = sealed
    ? fields.length === SEALED_FIELDS
    : fields.length >= 5 && fields.length <= PLAIN_FIELDS;
  if (
    !sizeFits ||
    typeof d !== 'object' ||
    d === null ||
    Array.isArray(d) ||
    typeof c !== 'number' ||
    typeof w !== 'number' ||
    typeof i !== 'number' ||
    typeof x !== 'number' ||
    !isOptional(a, 'number') ||
    !isOptional(ua, 'string') ||
    !isOptional(ip, 'string') ||
    !isOptional(p, 'boolean') ||
    (sealed && (!isOptional(u, 'string') || typeof e !== 'number'))
  ) {
    return null;
  }
  // Every field present, in one order, as recordFor() writes them: one shape for every envelope.
  return {
    d: d as Record<string, unknown>,
    c,
    w: c + w,
    i,
    x: c + x,
    a: typeof a === 'number' ? c + a : undefined,
    ua: typeof ua === 'string' ? ua : undefined,
    ip: typeof ip === 'string' ? ip : undefined,
    p: typeof p === 'boolean' ? p : undefined,
    u: sealed ? (typeof u === 'string' ? u : null) : undefined,
    e: sealed ? c + (e as number) : undefined,
  };
}

/** The named form that earlier plain records use: every time absolute. */
function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.d === 'object' &&
    v.d !== null &&
    !Array.isArray(v.d) &&
    typeof v.c === 'number' &&
    typeof v.w === 'number' &&
    typeof v.i === 'number' &&
    typeof v.x === 'number' &&
    isOptional(v.p, 'boolean')
  );
}

/** Throws `INVALID_DATA`: session data cannot hold `what`, under `key` (an array's index). */
function refuse(what: string, key: string | number): never {
  throw new SessionError('INVALID_DATA', `session data cannot hold ${what} (key "${key}")`);
}

/**
 * Refuses what `JSON.stringify` would silently change: functions, symbols and `undefined` in
 * arrays (dropped or turned into `null`), non-finite numbers (`null`), and objects other than
 * plain objects and arrays (a Map or a class instance would lose its contents). Values with
 * `toJSON`, such as Dates, are checked after it ran. Called once `JSON.stringify` has succeeded,
 * so the value holds no cycle. A walk of its own, because a replacer makes `JSON.stringify` call
 * back into JavaScript for every key, which costs more than the walk and the stringify together.
 */
function refuseWhatJsonChanges(value: unknown, key: string | number, inArray: boolean): void {
  if (typeof value === 'object' && value !== null && 'toJSON' in value) {
    const { toJSON } = value as { toJSON: unknown };
    if (typeof toJSON === 'function') value = toJSON.call(value, String(key));
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) refuse(String(value), key);
      return;
    case 'undefined':
      if (inArray) refuse('undefined in an array', key);
      return;
    case 'object': {
      if (value === null) return;
      const prototype = Object.getPrototypeOf(value);
      if (prototype === Array.prototype) {
        const array = value as unknown[];
        for (let i = 0; i < array.length; i++) refuseWhatJsonChanges(array[i], i, true);
      } else if (prototype === Object.prototype || prototype === null) {
        // The keys JSON.stringify writes: own, enumerable, string-named.
        const object = value as Record<string, unknown>;
        for (const name of Object.keys(object)) refuseWhatJsonChanges(object[name], name, false);
      } else {
        refuse('an object that is not a plain object or an array', key);
      }
      return;
    }
    default:
      refuse(`a ${typeof value}`, key);
  }
}

/** Turns envelopes into store data and back. */
export class Codec {
  readonly #crypto: CryptoProvider;
  readonly #keys: { id: string; bytes: Uint8Array }[];

  constructor(crypto: CryptoProvider, encryption?: EncryptionOptions) {
    this.#crypto = crypto;
    this.#keys = [];
    if (encryption !== undefined) {
      if (!Array.isArray(encryption.keys) || encryption.keys.length === 0) {
        throw new SessionError('INVALID_OPTION', 'encryption.keys: give at least one key');
      }
      const seen = new Set<string>();
      for (const { id, key } of encryption.keys) {
        if (typeof id !== 'string' || !KEY_ID.test(id)) {
          throw new SessionError(
            'INVALID_OPTION',
            'encryption key ids are 1 to 16 characters of [A-Za-z0-9_-]',
          );
        }
        if (seen.has(id))
          throw new SessionError('INVALID_OPTION', `encryption key id "${id}" is repeated`);
        seen.add(id);
        this.#keys.push({ id, bytes: keyBytes(key, id) });
      }
    }
  }

  /** A codec with the same keys (as they were when this one was made) on another provider. */
  withCrypto(crypto: CryptoProvider): Codec {
    const keys = this.#keys.map(({ id, bytes }) => ({ id, key: bytes }));
    return new Codec(crypto, keys.length === 0 ? undefined : { keys });
  }

  /**
   * Encodes an envelope for the record stored under `storeKey`: at once, unless sealing waits
   * on the crypto provider. Throws `INVALID_DATA` for data that is not JSON. The user (`u`) and
   * expiry (`e`) are written only when sealing, which requires `e`.
   */
  encode(envelope: Envelope, storeKey: string): MaybePromise<string> {
    const fields = toArray(envelope, this.#keys.length > 0);
    let json: string;
    try {
      json = JSON.stringify(fields);
      // The other fields are the manager's own numbers and strings.
      refuseWhatJsonChanges(envelope.d, '', false);
    } catch (cause) {
      if (cause instanceof SessionError) throw cause;
      // A cycle, a BigInt, nesting too deep, or a toJSON that threw.
      throw new SessionError('INVALID_DATA', 'session data cannot be stored as JSON', { cause });
    }
    if (this.#keys.length === 0) return json;
    const { id, bytes } = this.#keys[0]!;
    const iv = this.#crypto.randomBytes(12);
    return andThen(
      this.#crypto.encrypt(bytes, iv, utf8(json), utf8(storeKey)),
      (ciphertext) => `e1.${id}.${toBase64Url(iv)}.${toBase64Url(ciphertext)}`,
    );
  }

  /**
   * Decodes store data (at once, unless opening a sealed record waits on the crypto provider),
   * or answers `null` when it is malformed, sealed under an unknown key, tampered with, moved
   * from another record, plain while encryption is on, or sealed without the user and expiry.
   * A sealed envelope always has `u` and `e`, for the caller to compare with the record's
   * columns; a plain one has neither.
   */
  decode(data: string, storeKey: string): MaybePromise<Envelope | null> {
    if (this.#keys.length === 0) return parseEnvelope(data);
    const parts = data.split('.');
    if (parts.length !== 4 || parts[0] !== 'e1') return null;
    const key = this.#keys.find((candidate) => candidate.id === parts[1]);
    const iv = fromBase64Url(parts[2]!);
    const sealed = fromBase64Url(parts[3]!);
    if (
      key === undefined ||
      iv === null ||
      iv.length !== 12 ||
      sealed === null ||
      !isCanonical(parts[3]!)
    ) {
      return null;
    }
    let opened: Uint8Array | Promise<Uint8Array>;
    try {
      opened = this.#crypto.decrypt(key.bytes, iv, sealed, utf8(storeKey));
    } catch {
      return null;
    }
    return opened instanceof Uint8Array
      ? parseSealed(opened)
      : Promise.resolve(opened).then(parseSealed, () => null);
  }
}

/**
 * Whether base64url text is the only encoding of its bytes: the bits of its last character
 * beyond the last whole byte are zero. Otherwise several texts would open to one record, and an
 * edit of the stored text could go unnoticed.
 */
function isCanonical(text: string): boolean {
  const spare = (text.length * 6) % 8;
  return (
    spare === 0 || (base64UrlDigit(text.charCodeAt(text.length - 1)) & ((1 << spare) - 1)) === 0
  );
}

/** The sealed compact form in decrypted bytes, or `null` when they are not UTF-8 JSON of one. */
function parseSealed(plain: Uint8Array): Envelope | null {
  try {
    const parsed: unknown = JSON.parse(decoder.decode(plain));
    return Array.isArray(parsed) ? fromArray(parsed, true) : null;
  } catch {
    return null;
  }
}

/** The envelope in plain store data (either form), or `null` when it holds none. */
function parseEnvelope(json: string): Envelope | null {
  try {
    const parsed: unknown = JSON.parse(json);
    if (Array.isArray(parsed)) return fromArray(parsed, false);
    return isEnvelope(parsed) ? parsed : null;
  } catch {
    return null;
  }
}
