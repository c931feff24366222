/**
 * express-session's cookie value and session IDs, on the core's `node:crypto` provider.
 *
 * The value is `s:` followed by the session ID, a dot and the HMAC-SHA256 of the ID in base64
 * without padding (the format of the `cookie-signature` package). The core signs with the same
 * HMAC but writes it in base64url: the same bits, with `+` and `/` spelt `-` and `_`, so the
 * core's HMAC is reused and only those two letters are swapped.
 *
 * @packageDocumentation
 */
import type { CipherKey } from 'node:crypto';
import { KeyObject } from 'node:crypto';
import { toBase64Url } from '../../crypto.js';
import { nodeCryptoProvider } from '../../crypto-node.js';

/** A signing secret: what express-session takes (a string, bytes or a secret `KeyObject`). */
export type Secret = CipherKey;

/**
 * Bytes of randomness in a session ID made by default: 24, as express-session's `uid-safe(24)`,
 * so that IDs are 32 characters and fit where express-session's did (a store column of 36
 * characters, for instance). 192 bits leave guessing out of reach; the core keeps 256.
 */
export const ID_BYTES = 24;

const crypto = nodeCryptoProvider();

/** A new session ID: {@link ID_BYTES} bytes from the CSPRNG in base64url (32 characters). */
export function newSessionId(): string {
  return crypto.randomBase64Url?.(ID_BYTES) ?? toBase64Url(crypto.randomBytes(ID_BYTES));
}

/**
 * The key bytes of a secret (copied, so that a caller wiping its buffer later changes nothing),
 * or `undefined` when `secret` is not one: a string (as UTF-8), a Buffer, typed array or
 * DataView, or a `KeyObject` of type `'secret'`.
 */
export function secretKey(secret: unknown): Uint8Array | undefined {
  if (typeof secret === 'string') return Buffer.from(secret, 'utf8');
  if (ArrayBuffer.isView(secret)) {
    return new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength).slice();
  }
  if (secret instanceof KeyObject && secret.type === 'secret') return secret.export();
  return undefined;
}

/** `value.SIGNATURE`: the base64 HMAC-SHA256 of `value` under `key`, without `=` padding. */
export function signValue(value: string, key: Uint8Array): string {
  const mac = crypto.hmacSha256(key, value) as string;
  return `${value}.${mac.replaceAll('-', '+').replaceAll('_', '/')}`;
}

/**
 * The value inside `input` (`value.SIGNATURE`) when one of `keys` signed it, else `false`. The
 * whole input is compared with the expected one in constant time, lengths first, so a valid
 * signature followed by anything else never verifies. Every key is tried, so timing does not
 * tell which one matched.
 */
export function unsignValue(input: string, keys: readonly Uint8Array[]): string | false {
  const dot = input.lastIndexOf('.');
  if (dot < 0) return false;
  const value = input.slice(0, dot);
  let match = false;
  for (const key of keys) {
    if (crypto.timingSafeEqual(signValue(value, key), input)) match = true;
  }
  return match ? value : false;
}
