/**
 * express-session's cookie value: `s:` followed by the session ID, a dot and the base64
 * HMAC-SHA256 of the ID without padding (the format of the `cookie-signature` package).
 *
 * @packageDocumentation
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** A signing secret: anything `crypto.createHmac` takes as a key. */
export type Secret = string | Uint8Array | KeyObject;

/** `value.SIGNATURE`, the signature being base64 HMAC-SHA256 of `value` with its `=` padding removed. */
export function signValue(value: string, secret: Secret): string {
  const mac = createHmac('sha256', secret).update(value).digest('base64');
  let end = mac.length;
  while (end > 0 && mac.charCodeAt(end - 1) === 61 /* = */) end--;
  return `${value}.${mac.slice(0, end)}`;
}

/**
 * The value inside `input` (`value.SIGNATURE`) when one of `secrets` signed it, else `false`.
 * The whole input is compared with the expected one in constant time, lengths first, so a valid
 * signature followed by anything else never verifies. Every secret is tried, so timing does not
 * tell which one matched.
 */
export function unsignValue(input: string, secrets: readonly Secret[]): string | false {
  const dot = input.lastIndexOf('.');
  if (dot < 0) return false;
  const value = input.slice(0, dot);
  const given = Buffer.from(input);
  let match = false;
  for (const secret of secrets) {
    const expected = Buffer.from(signValue(value, secret));
    if (expected.length === given.length && timingSafeEqual(expected, given)) match = true;
  }
  return match ? value : false;
}
