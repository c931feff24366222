import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readCookieValues } from '../src/cookie.js';

/**
 * The plain reading of a Cookie header that `readCookieValues` must agree with: split on `;`,
 * cut each pair at its first `=`, drop leading white space from the name and compare it exactly,
 * trim the value.
 */
function referenceValues(header: string, name: string): string[] {
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals === -1) continue;
    if (pair.slice(0, equals).trimStart() === name) values.push(pair.slice(equals + 1).trim());
  }
  return values;
}

/** Every character `String.prototype.trim` removes. */
const TRIMMED = [
  ...'\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff',
  ...Array.from({ length: 11 }, (_, i) => String.fromCharCode(0x2000 + i)),
];

/** Characters that look blank but that `trim` keeps. */
const NOT_TRIMMED = ['\u0085', '\u180e', '\u200b', '\u200c', '\u2060', '\u0000'];

/** Cookie names: tokens, and names that are prefixes, suffixes or case variants of one another. */
const RELATED_NAMES = [
  'sid',
  'si',
  'id',
  'd',
  'ssid',
  'sidsid',
  'sid2',
  'Sid',
  'SID',
  '__Host-sid',
];
const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,8}$/);
const cookieName = fc.oneof(fc.constantFrom(...RELATED_NAMES), token);

/** Pieces that, joined, give headers biased to the shapes that trouble a reader. */
const piece = fc.oneof(
  fc.constant(';'),
  fc.constant('='),
  fc.constant('; '),
  fc.constantFrom(...RELATED_NAMES),
  fc.constantFrom(...RELATED_NAMES).map((name) => `${name}=`),
  fc.constantFrom(...RELATED_NAMES).map((name) => name.repeat(3)),
  fc.constantFrom(...TRIMMED, ...NOT_TRIMMED),
  fc
    .tuple(fc.constantFrom(...RELATED_NAMES), fc.constantFrom(...TRIMMED, ...NOT_TRIMMED))
    .chain(([name, space]) => fc.constantFrom(`${name}${space}`, `${space}${name}=`)),
  fc.constantFrom('%', '%E0%A4%A', '"', '__proto__', 'constructor', 'é', '😀', '\ud800'),
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
);
const hostileHeader = fc.array(piece, { maxLength: 40 }).map((pieces) => pieces.join(''));

/** Well-formed headers of pairs, some named like the cookie looked for. */
const pairHeader = fc
  .array(
    fc.tuple(
      fc.stringMatching(/^[ \t]{0,2}$/),
      cookieName,
      fc.string({ maxLength: 12 }).filter((value) => !value.includes(';')),
    ),
    { maxLength: 20 },
  )
  .map((pairs) => pairs.map(([space, name, value]) => `${space}${name}=${value}`).join(';'));

function agreesWithReference(header: string, name: string): void {
  expect(readCookieValues(header, name)).toEqual(referenceValues(header, name));
}

describe('readCookieValues against the plain reading', () => {
  it('agrees on arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), cookieName, agreesWithReference), {
      numRuns: 1000,
    });
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), cookieName, agreesWithReference),
      { numRuns: 1000 },
    );
  });

  it('agrees on headers built from hostile pieces', () => {
    fc.assert(fc.property(hostileHeader, cookieName, agreesWithReference), { numRuns: 4000 });
  });

  it('agrees on well-formed headers', () => {
    fc.assert(fc.property(pairHeader, cookieName, agreesWithReference), { numRuns: 1000 });
  });

  it('agrees on long headers of many repeated pieces', () => {
    const long = fc
      .tuple(fc.array(piece, { minLength: 1, maxLength: 8 }), fc.integer({ min: 50, max: 400 }))
      .map(([pieces, times]) => pieces.join('').repeat(times));
    fc.assert(fc.property(long, cookieName, agreesWithReference), { numRuns: 300 });
  });
});
