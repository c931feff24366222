/**
 * Session IDs and their signed cookie form.
 *
 * An ID is 32 bytes from the CSPRNG in base64url (43 characters, 256 bits) and carries no
 * meaning. The cookie holds `ID.SIGNATURE`, the signature being HMAC-SHA256 of the ID under the
 * first secret; every secret of the list verifies, so secrets rotate without logging anyone out.
 * The store sees only SHA-256(ID).
 *
 * @packageDocumentation
 */
import type { CryptoProvider } from './crypto.js';
import { toBase64Url, utf8 } from './crypto.js';
import { SessionError } from './errors.js';
import type { MaybePromise } from './maybe.js';
import { each, andThen } from './maybe.js';

/** Bytes of randomness in a session ID. */
export const ID_BYTES = 32;
/** Characters of a base64url session ID (and of a SHA-256 or HMAC-SHA256 in base64url). */
export const ID_LENGTH = 43;
/** The least length, in bytes, of a signing secret. */
export const MIN_SECRET_BYTES = 32;

const WELL_FORMED = /^[A-Za-z0-9_-]{43}$/;

/** A fresh session ID: 256 bits from the CSPRNG, as 43 characters of base64url. */
export function generateSessionId(crypto: CryptoProvider): string {
  return crypto.randomBase64Url?.(ID_BYTES) ?? toBase64Url(crypto.randomBytes(ID_BYTES));
}

/** The store key for an ID: SHA-256 in base64url. The store never sees the ID itself. */
export function storeKeyFor(crypto: CryptoProvider, id: string): MaybePromise<string> {
  return crypto.sha256(id);
}

/**
 * Signs and verifies cookie values with a list of secrets: the first signs, all verify.
 * Throws `INVALID_OPTION` for an empty list or a secret shorter than 32 bytes.
 */
export class CookieSigner {
  readonly #keys: Uint8Array[];
  readonly #crypto: CryptoProvider;

  constructor(crypto: CryptoProvider, secrets: ReadonlyArray<string | Uint8Array>) {
    if (!Array.isArray(secrets) || secrets.length === 0) {
      throw new SessionError(
        'INVALID_OPTION',
        'secrets: give at least one secret of 32 bytes or more',
      );
    }
    this.#keys = secrets.map((secret, index) => {
      // Bytes are copied: a caller that wipes its array after start-up must not change the key.
      const bytes =
        typeof secret === 'string'
          ? utf8(secret)
          : secret instanceof Uint8Array
            ? new Uint8Array(secret)
            : null;
      if (bytes === null || bytes.length < MIN_SECRET_BYTES) {
        throw new SessionError(
          'INVALID_OPTION',
          `secrets[${index}]: a secret must be a string or bytes of at least ${MIN_SECRET_BYTES} bytes`,
        );
      }
      return bytes;
    });
    this.#crypto = crypto;
  }

  /** A signer with the same secrets (as they were when this one was made) on another provider. */
  withCrypto(crypto: CryptoProvider): CookieSigner {
    return new CookieSigner(crypto, this.#keys);
  }

  /** `ID.SIGNATURE` for the cookie. */
  sign(id: string): MaybePromise<string> {
    return andThen(this.#crypto.hmacSha256(this.#keys[0]!, id), (mac) => `${id}.${mac}`);
  }

  /**
   * The ID inside a cookie value, or `null` when the value is malformed or no secret's
   * signature matches. Exact length and alphabet are checked first, so a valid signature
   * followed by anything else is rejected.
   */
  verify(value: string): MaybePromise<string | null> {
    if (value.length !== ID_LENGTH * 2 + 1 || value.charCodeAt(ID_LENGTH) !== 46 /* . */)
      return null;
    const id = value.slice(0, ID_LENGTH);
    const signature = value.slice(ID_LENGTH + 1);
    if (!WELL_FORMED.test(id) || !WELL_FORMED.test(signature)) return null;
    const crypto = this.#crypto;
    return andThen(
      each(this.#keys, (key) => crypto.hmacSha256(key, id)),
      (macs) => {
        // Every key is compared even after a match, so timing does not reveal which key signed.
        let match = false;
        for (const mac of macs) if (crypto.timingSafeEqual(mac, signature)) match = true;
        return match ? id : null;
      },
    );
  }
}
