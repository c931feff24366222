import * as nodeCrypto from 'node:crypto';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { CryptoProvider } from './crypto.js';

/**
 * Node's one-shot digest (Node 20.12 and later), cheaper than a `Hash` object; every request
 * with a cookie hashes its session ID into the store key.
 */
const oneShotHash: typeof nodeCrypto.hash | undefined =
  typeof nodeCrypto.hash === 'function' ? nodeCrypto.hash : undefined;

function sha256(text: string): string {
  return oneShotHash === undefined
    ? createHash('sha256').update(text).digest('base64url')
    : oneShotHash('sha256', text, 'base64url');
}

/** Bytes fetched from the CSPRNG at once: one call serves 128 session IDs. */
const POOL_BYTES = 4096;

/**
 * Random bytes served from a pool refilled 4 KiB at a time, since a call to the system's
 * generator costs more than the rest of making a session. The bytes are the same CSPRNG output;
 * those handed out are copied and wiped from the pool, so none is given twice or lingers.
 */
class RandomPool {
  #pool = randomBytes(0);
  #offset = 0;

  /** Where the next `length` bytes start, the pool refilled first when it has too few. */
  #take(length: number): number {
    if (this.#offset + length > this.#pool.length) {
      this.#pool = randomBytes(POOL_BYTES);
      this.#offset = 0;
    }
    const start = this.#offset;
    this.#offset += length;
    return start;
  }

  bytes(length: number): Uint8Array {
    if (length > POOL_BYTES / 8) return randomBytes(length);
    const start = this.#take(length);
    const out = new Uint8Array(length);
    out.set(this.#pool.subarray(start, start + length));
    this.#pool.fill(0, start, start + length);
    return out;
  }

  /** `length` bytes as base64url, encoded straight from the pool. */
  base64Url(length: number): string {
    if (length > POOL_BYTES / 8) return randomBytes(length).toString('base64url');
    const start = this.#take(length);
    const text = this.#pool.toString('base64url', start, start + length);
    this.#pool.fill(0, start, start + length);
    return text;
  }
}

/** The `node:crypto` provider: every method answers at once, and it is the fastest on Node.js. */
export function nodeCryptoProvider(): CryptoProvider {
  const pool = new RandomPool();
  return {
    randomBytes: (length) => pool.bytes(length),
    randomBase64Url: (length) => pool.base64Url(length),
    sha256,
    hmacSha256: (key, text) => createHmac('sha256', key).update(text).digest('base64url'),
    timingSafeEqual: (a, b) => {
      const left = Buffer.from(a);
      const right = Buffer.from(b);
      return left.length === right.length && timingSafeEqual(left, right);
    },
    encrypt: (key, iv, plaintext, aad) => {
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(aad);
      return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    },
    decrypt: (key, iv, sealed, aad) => {
      if (sealed.length < 16) throw new Error('sealed data too short');
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return Buffer.concat([
        decipher.update(sealed.subarray(0, sealed.length - 16)),
        decipher.final(),
      ]);
    },
  };
}
