/**
 * How a session is written into the store's opaque `data` string: a JSON envelope of the
 * session's data and metadata, optionally sealed with AES-256-GCM under a key ring.
 *
 * Plain form: a JSON array, `[data, createdAt, lastWrite - createdAt, idle, deadline - createdAt,
 * authenticatedAt - createdAt, userAgent, ip]`, times in milliseconds, absent trailing fields left
 * out and absent inner ones `null`. Times after the first are offsets from it: they are short
 * numbers, which keeps a small session's record about 40 % smaller than named fields with epoch
 * times. Records written as a JSON object with those names (`d`, `c`, `w`, `i`, `x`, `a`, `ua`,
 * `ip`, all times absolute) are read too.
 *
 * Sealed form: `e1.KEYID.IV.CIPHERTEXT` (base64url) of the plain form, the store key bound in as
 * additional data so that a blob cannot be moved to another record.
 *
 * @packageDocumentation
 */
import type { CryptoProvider } from './crypto.js';
import { fromBase64Url, toBase64Url, utf8 } from './crypto.js';
import { SessionError } from './errors.js';

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
  const bytes =
    key instanceof Uint8Array
      ? key
      : typeof key === 'string'
        ? fromBase64Url(key.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''))
        : null;
  if (bytes === null || bytes.length !== 32) {
    throw new SessionError('INVALID_OPTION', `encryption key "${id}" must be exactly 32 bytes`);
  }
  return bytes;
}

function isOptional(value: unknown, type: 'number' | 'string'): boolean {
  return value === undefined || value === null || typeof value === type;
}

/** The compact form of an envelope (see the module comment). */
function toArray(envelope: Envelope): unknown[] {
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
  ];
  let length = fields.length;
  while (fields[length - 1] === null) length--;
  fields.length = length;
  return fields;
}

function fromArray(fields: unknown[]): Envelope | null {
  const [d, c, w, i, x, a, ua, ip] = fields;
  if (
    fields.length < 5 ||
    fields.length > 8 ||
    typeof d !== 'object' ||
    d === null ||
    Array.isArray(d) ||
    typeof c !== 'number' ||
    typeof w !== 'number' ||
    typeof i !== 'number' ||
    typeof x !== 'number' ||
    !isOptional(a, 'number') ||
    !isOptional(ua, 'string') ||
    !isOptional(ip, 'string')
  ) {
    return null;
  }
  const envelope: Envelope = { d: d as Record<string, unknown>, c, w: c + w, i, x: c + x };
  if (typeof a === 'number') envelope.a = c + a;
  if (typeof ua === 'string') envelope.ua = ua;
  if (typeof ip === 'string') envelope.ip = ip;
  return envelope;
}

/** The named form that earlier records use: every time absolute. */
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
    typeof v.x === 'number'
  );
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

  /** Whether data is sealed. */
  get encrypted(): boolean {
    return this.#keys.length > 0;
  }

  /** Encodes an envelope for the record stored under `storeKey`. */
  async encode(envelope: Envelope, storeKey: string): Promise<string> {
    return this.encodeNow(envelope, storeKey);
  }

  /**
   * {@link Codec.encode}, answered synchronously whenever {@link Codec.synchronous} holds (and
   * with a promise only when sealing needs an asynchronous crypto provider). Throws
   * `INVALID_DATA` for data that is not JSON.
   */
  encodeNow(envelope: Envelope, storeKey: string): string | Promise<string> {
    let json: string;
    try {
      json = JSON.stringify(toArray(envelope));
    } catch (cause) {
      throw new SessionError('INVALID_DATA', 'session data cannot be stored as JSON', { cause });
    }
    if (this.#keys.length === 0) return json;
    const { id, bytes } = this.#keys[0]!;
    const iv = this.#crypto.randomBytes(12);
    const sealed = this.#crypto.encrypt(bytes, iv, utf8(json), utf8(storeKey));
    const format = (ciphertext: Uint8Array) =>
      `e1.${id}.${toBase64Url(iv)}.${toBase64Url(ciphertext)}`;
    return sealed instanceof Uint8Array ? format(sealed) : Promise.resolve(sealed).then(format);
  }

  /**
   * Whether {@link Codec.encodeNow} and {@link Codec.decodeNow} answer without a promise: records
   * are plain, or the crypto provider is synchronous.
   */
  get synchronous(): boolean {
    return this.#keys.length === 0 || this.#crypto.synchronous === true;
  }

  /**
   * Decodes store data, or answers `null` when it is malformed, sealed under an unknown key,
   * tampered with, moved from another record, or plain while encryption is on.
   */
  async decode(data: string, storeKey: string): Promise<Envelope | null> {
    return this.decodeNow(data, storeKey);
  }

  /**
   * {@link Codec.decode}, answered synchronously whenever {@link Codec.synchronous} holds (and
   * with a promise only when a sealed record needs an asynchronous crypto provider).
   */
  decodeNow(data: string, storeKey: string): Envelope | null | Promise<Envelope | null> {
    if (this.#keys.length === 0) return parseEnvelope(data);
    const parts = data.split('.');
    if (parts.length !== 4 || parts[0] !== 'e1') return null;
    const key = this.#keys.find((candidate) => candidate.id === parts[1]);
    const iv = fromBase64Url(parts[2]!);
    const sealed = fromBase64Url(parts[3]!);
    if (key === undefined || iv === null || iv.length !== 12 || sealed === null) return null;
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

/** The envelope in decrypted bytes, or `null` when they are not UTF-8 JSON of one. */
function parseSealed(plain: Uint8Array): Envelope | null {
  let json: string;
  try {
    json = decoder.decode(plain);
  } catch {
    return null;
  }
  return parseEnvelope(json);
}

/** The envelope in plain store data (either form), or `null` when it holds none. */
function parseEnvelope(json: string): Envelope | null {
  try {
    const parsed: unknown = JSON.parse(json);
    if (Array.isArray(parsed)) return fromArray(parsed);
    return isEnvelope(parsed) ? parsed : null;
  } catch {
    return null;
  }
}
