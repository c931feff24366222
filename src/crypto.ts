/**
 * The few cryptographic primitives the manager needs, behind one interface so that the core
 * runs on Node's `node:crypto` (fast, synchronous) and on any runtime with Web Crypto.
 *
 * @packageDocumentation
 */

/**
 * Cryptographic primitives. Hashing, signing and AES-GCM may answer a value or a promise: the
 * manager goes on at once on a value (as `node:crypto` answers), and waits on a promise (as Web
 * Crypto answers).
 */
export interface CryptoProvider {
  /** `length` bytes from the CSPRNG. */
  randomBytes(length: number): Uint8Array;
  /**
   * `length` bytes from the CSPRNG as unpadded base64url, where the provider can encode them
   * without handing out the bytes first (session IDs are made this way when it can).
   * @defaultValue absent: IDs are `randomBytes` encoded with {@link toBase64Url}
   */
  randomBase64Url?(length: number): string;
  /** SHA-256 of the UTF-8 text, as base64url. */
  sha256(text: string): string | Promise<string>;
  /** HMAC-SHA256 of the UTF-8 text under `key`, as base64url. */
  hmacSha256(key: Uint8Array, text: string): string | Promise<string>;
  /** Compares two strings in constant time (length first). */
  timingSafeEqual(a: string, b: string): boolean;
  /** AES-256-GCM; answers the ciphertext with its 16-byte tag appended. */
  encrypt(
    key: Uint8Array,
    iv: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array | Promise<Uint8Array>;
  /** AES-256-GCM; throws when the tag does not verify. */
  decrypt(
    key: Uint8Array,
    iv: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array | Promise<Uint8Array>;
}

const encoder = new TextEncoder();
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const lookup = new Int16Array(128).fill(-1);
for (let i = 0; i < alphabet.length; i++) lookup[alphabet.charCodeAt(i)] = i;

/** Node's Buffer, where the runtime has one: its native base64url beats the portable loop. */
const NodeBuffer = (
  globalThis as {
    Buffer?: {
      from(
        data: ArrayBufferLike,
        offset: number,
        length: number,
      ): { toString(encoding: string): string };
    };
  }
).Buffer;

/** Encodes bytes as unpadded base64url. */
export function toBase64Url(bytes: Uint8Array): string {
  if (NodeBuffer !== undefined) {
    return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
  }
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out +=
      alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]!;
  }
  return out;
}

/** The value (0 to 63) of a base64url character's code, or -1 for a code outside the alphabet. */
export function base64UrlDigit(code: number): number {
  return code < 128 ? lookup[code]! : -1;
}

/** Decodes unpadded base64url; answers `null` for any character outside the alphabet. */
export function fromBase64Url(text: string): Uint8Array | null {
  if (text.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = base64UrlDigit(text.charCodeAt(i));
    if (digit < 0) return null;
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A provider on the Web Crypto API (`globalThis.crypto`), for runtimes without `node:crypto`. */
export function webCryptoProvider(
  webCrypto: typeof globalThis.crypto = globalThis.crypto,
): CryptoProvider {
  const subtle = webCrypto.subtle;
  const hmacKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();
  const aesKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();
  const hmacKey = (raw: Uint8Array) => {
    let key = hmacKeys.get(raw);
    if (key === undefined) {
      key = subtle.importKey('raw', raw as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, [
        'sign',
      ]);
      hmacKeys.set(raw, key);
    }
    return key;
  };
  const aesKey = (raw: Uint8Array) => {
    let key = aesKeys.get(raw);
    if (key === undefined) {
      key = subtle.importKey('raw', raw as BufferSource, 'AES-GCM', false, ['encrypt', 'decrypt']);
      aesKeys.set(raw, key);
    }
    return key;
  };
  return {
    randomBytes: (length) => webCrypto.getRandomValues(new Uint8Array(length)),
    sha256: async (text) =>
      toBase64Url(new Uint8Array(await subtle.digest('SHA-256', utf8(text) as BufferSource))),
    hmacSha256: async (key, text) =>
      toBase64Url(
        new Uint8Array(await subtle.sign('HMAC', await hmacKey(key), utf8(text) as BufferSource)),
      ),
    timingSafeEqual: (a, b) => {
      if (a.length !== b.length) return false;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
      return diff === 0;
    },
    encrypt: async (key, iv, plaintext, aad) =>
      new Uint8Array(
        await subtle.encrypt(
          { name: 'AES-GCM', iv: iv as BufferSource, additionalData: aad as BufferSource },
          await aesKey(key),
          plaintext as BufferSource,
        ),
      ),
    decrypt: async (key, iv, sealed, aad) =>
      new Uint8Array(
        await subtle.decrypt(
          { name: 'AES-GCM', iv: iv as BufferSource, additionalData: aad as BufferSource },
          await aesKey(key),
          sealed as BufferSource,
        ),
      ),
  };
}

let defaultProvider: Promise<CryptoProvider> | undefined;

/**
 * The provider used when none is configured: `node:crypto` on Node.js (and runtimes that offer
 * it), Web Crypto elsewhere.
 */
export function defaultCryptoProvider(): Promise<CryptoProvider> {
  defaultProvider ??= (async () => {
    const isNode =
      typeof globalThis.process === 'object' && globalThis.process?.versions?.node !== undefined;
    if (isNode) {
      try {
        return (await import('./crypto-node.js')).nodeCryptoProvider();
      } catch {
        // A runtime that reports itself as Node but lacks node:crypto falls through to Web Crypto.
      }
    }
    return webCryptoProvider();
  })();
  return defaultProvider;
}
