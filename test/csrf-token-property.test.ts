/**
 * The token codec parses untrusted input: property tests (fast-check) that masking round-trips,
 * that no change of a token verifies, and that no input throws or reads past its length check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  csrfSecretBytes,
  csrfTokenMatches,
  maskCsrfSecret,
  newCsrfSecret,
  unmaskCsrfToken,
} from '../src/csrf-token.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const base64UrlChar = fc.constantFrom(...ALPHABET);

/** What `run` answers, and how many characters it read with `charCodeAt` (the codec's only read). */
function countReads<T>(run: () => T): { reads: number; answer: T } {
  let reads = 0;
  const original = String.prototype.charCodeAt;
  String.prototype.charCodeAt = function (this: string, index: number) {
    reads++;
    return original.call(this, index);
  };
  let answer: T;
  try {
    answer = run();
  } finally {
    String.prototype.charCodeAt = original;
  }
  return { reads, answer };
}

/** A secret and a token of it, under a mask fast-check chooses. */
const tokened = fc
  .tuple(bytes32, bytes32)
  .map(([secret, mask]) => ({ secret, mask, token: maskCsrfSecret(secret, mask) }));

describe('token codec (property)', () => {
  it('round-trips: a token unmasks to its secret, whatever the mask', () => {
    fc.assert(
      fc.property(tokened, ({ secret, token }) => {
        expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/);
        expect(unmaskCsrfToken(token)).toEqual(secret);
        expect(csrfTokenMatches(secret, token)).toBe(true);
      }),
    );
  });

  it('refuses every single-character change of a token', () => {
    fc.assert(
      fc.property(tokened, fc.nat(85), base64UrlChar, ({ secret, token }, at, char) => {
        fc.pre(token[at] !== char);
        const changed = token.slice(0, at) + char + token.slice(at + 1);
        expect(csrfTokenMatches(secret, changed)).toBe(false);
      }),
    );
  });

  it('refuses a token cut short, lengthened, or with a character outside base64url', () => {
    fc.assert(
      fc.property(
        tokened,
        fc.nat(85),
        fc.string({ minLength: 1, maxLength: 4 }),
        fc.constantFrom('=', '+', '/', '.', ' ', '\n', '\u0000', 'é', '\ud83d'),
        ({ secret, token }, at, extra, bad) => {
          expect(csrfTokenMatches(secret, token.slice(0, at))).toBe(false);
          expect(csrfTokenMatches(secret, token + extra)).toBe(false);
          expect(csrfTokenMatches(secret, extra + token)).toBe(false);
          expect(csrfTokenMatches(secret, token.slice(0, at) + bad + token.slice(at + 1))).toBe(
            false,
          );
        },
      ),
    );
  });

  it('gives each byte string one spelling: unused trailing bits must be zero', () => {
    fc.assert(
      fc.property(tokened, fc.integer({ min: 1, max: 15 }), ({ secret, token }, bits) => {
        const last = ALPHABET.indexOf(token[85]!);
        const spelled = token.slice(0, 85) + ALPHABET[last ^ bits]!;
        expect(unmaskCsrfToken(spelled)).toBeNull();
        expect(csrfTokenMatches(secret, spelled)).toBe(false);
      }),
    );
  });

  it("refuses another secret's tokens", () => {
    fc.assert(
      fc.property(tokened, bytes32, ({ secret, token }, other) => {
        fc.pre(other.some((byte, i) => byte !== secret[i]));
        expect(csrfTokenMatches(other, token)).toBe(false);
      }),
    );
  });

  it('never throws on arbitrary input, and matches none of it', () => {
    const secret = csrfSecretBytes(newCsrfSecret())!;
    const inputs = fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme', maxLength: 120 }),
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.string({ unit: base64UrlChar, minLength: 86, maxLength: 86 }),
      fc.anything(),
    );
    fc.assert(
      fc.property(inputs, (input) => {
        expect(csrfTokenMatches(secret, input)).toBe(false);
        const carried = unmaskCsrfToken(input);
        expect(carried === null || carried.length === 32).toBe(true);
      }),
    );
  });

  it('reads no character of input of another length, however long', () => {
    const secret = csrfSecretBytes(newCsrfSecret())!;
    const huge = 'A'.repeat(4_000_000);
    const { reads, answer } = countReads(() => [
      unmaskCsrfToken(huge),
      csrfTokenMatches(secret, huge),
    ]);
    expect(answer).toEqual([null, false]);
    expect(reads).toBe(0);
  });

  it('reads a token of the right length in one pass', () => {
    const secret = csrfSecretBytes(newCsrfSecret())!;
    const token = maskCsrfSecret(secret);
    const { reads, answer } = countReads(() => csrfTokenMatches(secret, token));
    expect(answer).toBe(true);
    // Each character once, and the last once more for its trailing bits.
    expect(reads).toBe(87);
  });

  it('makes 256-bit secrets that decode, and refuses stored values that are not one', () => {
    const secrets = new Set(Array.from({ length: 1000 }, newCsrfSecret));
    expect(secrets.size).toBe(1000);
    for (const secret of secrets) {
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(csrfSecretBytes(secret)).toHaveLength(32);
    }
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const decoded = csrfSecretBytes(value);
        expect(decoded === null || typeof value === 'string').toBe(true);
      }),
    );
    const one = [...secrets][0]!;
    expect(csrfSecretBytes(one.slice(0, 42) + (one[42] === 'B' ? 'C' : 'B'))).toBeNull();
    expect(() => maskCsrfSecret(new Uint8Array(31))).toThrow(TypeError);
  });
});
