/**
 * The CLI's reader of `SESSION_ENCRYPTION_KEYS` (`id:base64key,...`): any text gives keys or a
 * `CliError` that names the entry but never shows a key; well-formed lists read back as written.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import { parseEncryptionKeys } from '../../src/cli/keys.js';

const SEED = 20_261_207;

function attempt(text: string) {
  try {
    return parseEncryptionKeys(text, 'SESSION_ENCRYPTION_KEYS');
  } catch (error) {
    return error as Error;
  }
}

const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/);
const key = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Buffer.from(bytes).toString('base64'));

describe('parseEncryptionKeys', () => {
  it('answers keys or a CliError for any text, and no error shows a key', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        const result = attempt(text);
        if (result instanceof Error) {
          expect(result).toBeInstanceOf(CliError);
          expect(result.message).toMatch(
            /^SESSION_ENCRYPTION_KEYS: (entry \d+ is not id:base64key|no key in it)/,
          );
        } else {
          expect(result.length).toBeGreaterThan(0);
          for (const entry of result) {
            expect(entry.id).not.toBe('');
            expect(entry.key).not.toBe('');
          }
        }
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it('reads a ring written with commas or line breaks, in its order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(id, key), { minLength: 1, maxLength: 5, selector: ([i]) => i }),
        fc.constantFrom(',', '\n', ' ,\r\n ', ', '),
        (ring, separator) => {
          const text = ring.map(([i, k]) => `${i}:${k}`).join(separator);
          expect(parseEncryptionKeys(text, 'x')).toEqual(ring.map(([i, k]) => ({ id: i, key: k })));
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('names the entry that is wrong, not its key', () => {
    const secret = Buffer.alloc(32, 7).toString('base64');
    expect(() => parseEncryptionKeys(`k1:${secret},${secret}`, 'SESSION_ENCRYPTION_KEYS')).toThrow(
      /^SESSION_ENCRYPTION_KEYS: entry 2 is not id:base64key$/,
    );
    expect(() => parseEncryptionKeys(' , \n', 'keys.txt')).toThrow(/^keys.txt: no key in it/);
  });
});
