import { serialize } from 'cookie';
import { describe, expect, it } from 'vitest';
import {
  readCookieValues,
  resolveCookieOptions,
  serializeCookie,
  type CookieOptions,
} from '../src/cookie.js';

const VALUE =
  'u1Zc3pP0m8xQy7Rk2WvNn5LsBq4TfYhJ6aDgEoC9iK0.Xb2Vn8Lq1Zs5Wd7Rf3Tg9Yh4Uj6Ik0Ol2Pm8Qn1Ro5Sp';

describe('serializeCookie', () => {
  const variants: CookieOptions[] = [
    {},
    { sameSite: 'strict', httpOnly: false },
    { sameSite: 'none', secure: true, partitioned: true },
    { domain: 'example.com', path: '/app', secure: false },
    { name: 'app_session', persistent: false },
  ];

  it.each(variants)('writes what the cookie library writes for %j', (variant) => {
    const options = resolveCookieOptions(variant);
    for (const https of [false, true]) {
      for (const maxAge of [undefined, 0, 43_200]) {
        const secure = options.secure === 'auto' ? https : options.secure;
        // Twice: the second call uses the remembered attributes.
        for (let round = 0; round < 2; round++) {
          expect(serializeCookie(options, options.name, VALUE, https, maxAge)).toBe(
            serialize(options.name, VALUE, {
              path: options.path,
              domain: options.domain,
              sameSite: options.sameSite,
              secure,
              httpOnly: options.httpOnly,
              partitioned: options.partitioned,
              maxAge,
            }),
          );
        }
      }
    }
  });

  it('leaves values outside the session ID alphabet to the cookie library, which encodes them', () => {
    const options = resolveCookieOptions({});
    expect(serializeCookie(options, 'sid', 'a;b', false, undefined)).toMatch(/^sid=a%3Bb; /);
    expect(serializeCookie(options, 'sid', 'a b', false, 60)).toBe(
      serialize('sid', 'a b', { path: '/', sameSite: 'lax', httpOnly: true, maxAge: 60 }),
    );
  });
});

describe('readCookieValues', () => {
  it('answers no value for a missing, empty or unrelated header', () => {
    expect(readCookieValues(undefined, 'sid')).toEqual([]);
    expect(readCookieValues(null, 'sid')).toEqual([]);
    expect(readCookieValues('', 'sid')).toEqual([]);
    expect(readCookieValues('theme=dark; lang=en', 'sid')).toEqual([]);
  });

  it('answers the one value of a cookie sent once, wherever it stands', () => {
    expect(readCookieValues('sid=abc', 'sid')).toEqual(['abc']);
    expect(readCookieValues('theme=dark; sid=abc; lang=en', 'sid')).toEqual(['abc']);
    expect(readCookieValues('theme=dark;sid= abc ', 'sid')).toEqual(['abc']);
  });

  it('matches the exact name only: not a longer name, a prefix of it, nor the name inside a value', () => {
    expect(readCookieValues('xsid=1; sid2=2; a=sid=3; sid=4', 'sid')).toEqual(['4']);
    expect(readCookieValues('SID=1', 'sid')).toEqual([]);
  });

  it('answers every value of a cookie sent several times, in the order sent, with no limit', () => {
    expect(readCookieValues('sid=one; other=x; sid=two; sid=three', 'sid')).toEqual([
      'one',
      'two',
      'three',
    ]);
    expect(readCookieValues('sid=1; sid=2; sid=3; sid=4; sid=5', 'sid')).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
    ]);
  });

  it('keeps a tossed cookie from hiding the real one, whichever comes first', () => {
    // A sibling subdomain can set many cookies under the same name; the real one stays in reach.
    const tossed = Array.from({ length: 50 }, (_, i) => `sid=tossed${i}`).join('; ');
    const fromSibling = readCookieValues(`${tossed}; sid=${VALUE}`, 'sid');
    expect(fromSibling).toHaveLength(51);
    expect(fromSibling.at(-1)).toBe(VALUE);
    expect(readCookieValues(`sid=${VALUE}; ${tossed}`, 'sid')[0]).toBe(VALUE);
    expect(readCookieValues(`sid=a; sid=b`, 'sid')).toEqual(['a', 'b']);
    expect(readCookieValues(`sid=b; sid=a`, 'sid')).toEqual(['b', 'a']);
  });

  it('answers all of 1,000 cookies, and one among 1,000 others', () => {
    const many = Array.from({ length: 1000 }, (_, i) => `sid=v${i}`).join('; ');
    expect(readCookieValues(many, 'sid')).toEqual(Array.from({ length: 1000 }, (_, i) => `v${i}`));
    const others = Array.from({ length: 1000 }, (_, i) => `c${i}=v${i}`);
    others.splice(500, 0, `sid=${VALUE}`);
    expect(readCookieValues(others.join('; '), 'sid')).toEqual([VALUE]);
    expect(readCookieValues(others.join('; '), 'c999')).toEqual(['v999']);
  });

  it('reads through 5,000 semicolons and empty pairs', () => {
    const semicolons = ';'.repeat(5000);
    expect(readCookieValues(semicolons, 'sid')).toEqual([]);
    expect(readCookieValues(`${semicolons}sid=x${semicolons}`, 'sid')).toEqual(['x']);
    expect(readCookieValues(`sid=x${semicolons}sid=y`, 'sid')).toEqual(['x', 'y']);
    expect(readCookieValues(' ; ;sid=;; =; sid', 'sid')).toEqual(['']);
  });

  it('ignores pairs without `=` and names not followed directly by `=`', () => {
    expect(readCookieValues('sid; sid=1; sid', 'sid')).toEqual(['1']);
    expect(readCookieValues('sid', 'sid')).toEqual([]);
    expect(readCookieValues('sid =1; s id=2; sid\t=3', 'sid')).toEqual([]);
    expect(readCookieValues('sid'.repeat(5000), 'sid')).toEqual([]);
    expect(readCookieValues(`a=${'sid'.repeat(5000)}; sid=ok`, 'sid')).toEqual(['ok']);
    expect(readCookieValues(`${'sid;'.repeat(2000)}sid=ok`, 'sid')).toEqual(['ok']);
    expect(readCookieValues('sid sid=1; d d=2; ddd=3; sidd=4', 'sid')).toEqual([]);
    expect(readCookieValues('sid sid=1; d d=2; ddd=3; sidd=4', 'd')).toEqual([]);
  });

  it('reads an empty name like any other, and comes to an end', () => {
    // Not a name resolveCookieOptions accepts; still no endless loop and no throw.
    expect(readCookieValues('=x; a=b;=y', '')).toEqual(['x', 'y']);
    expect(readCookieValues('a=b', '')).toEqual([]);
  });

  it('allows any white space before a name and trims it around a value', () => {
    expect(readCookieValues('\t sid=1;\n\r\u00a0\u3000\ufeffsid=2', 'sid')).toEqual(['1', '2']);
    expect(readCookieValues('sid=\t 1 \u2028', 'sid')).toEqual(['1']);
    expect(readCookieValues('sid= a b ', 'sid')).toEqual(['a b']);
    // Characters that look blank but that trim keeps are part of the name.
    expect(readCookieValues('\u200bsid=1; \u0085sid=2', 'sid')).toEqual([]);
  });

  it('returns values as sent: percent signs, broken percent-encoding and quotes untouched', () => {
    expect(readCookieValues('sid=%; sid=%E0%A4%A; sid=%zz; sid=%41', 'sid')).toEqual([
      '%',
      '%E0%A4%A',
      '%zz',
      '%41',
    ]);
    expect(readCookieValues('sid="abc"; sid="; sid=a"b', 'sid')).toEqual(['"abc"', '"', 'a"b']);
    // A quoted value ends at the next `;` like any other.
    expect(readCookieValues('sid="a;b"', 'sid')).toEqual(['"a']);
    expect(readCookieValues('sid=a=b=c', 'sid')).toEqual(['a=b=c']);
  });

  it('answers values of 4 KB and more whole', () => {
    const big = 'a'.repeat(8192);
    expect(readCookieValues(`sid=${big}`, 'sid')).toEqual([big]);
    expect(readCookieValues(`x=${big}; sid=${big}x; y=${big}`, 'sid')).toEqual([`${big}x`]);
  });

  it('treats __proto__, constructor and hasOwnProperty as ordinary names', () => {
    const header = '__proto__=1; constructor=2; hasOwnProperty=3; toString=4; sid=5';
    expect(readCookieValues(header, '__proto__')).toEqual(['1']);
    expect(readCookieValues(header, 'constructor')).toEqual(['2']);
    expect(readCookieValues(header, 'hasOwnProperty')).toEqual(['3']);
    const values = readCookieValues(header, 'sid');
    expect(values).toEqual(['5']);
    expect(Object.getPrototypeOf(values)).toBe(Array.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads non-ASCII names and values, lone surrogates included, without throwing', () => {
    expect(readCookieValues('sid=café; ñ=1; sid=😀; sid=\ud800', 'sid')).toEqual([
      'café',
      '😀',
      '\ud800',
    ]);
    expect(readCookieValues('ñ=1; sid=2', 'ñ')).toEqual(['1']);
    expect(readCookieValues('\udc00sid=1', 'sid')).toEqual([]);
  });

  it('answers no value for a header that is not a string', () => {
    expect(readCookieValues(42 as unknown as string, 'sid')).toEqual([]);
    expect(readCookieValues({} as unknown as string, 'sid')).toEqual([]);
  });

  it('examines each character of a hostile header a bounded number of times', () => {
    // Counted, not timed: the characters its string searches examine stay within a small
    // multiple of the header's length, where a reader that looks back from every occurrence
    // of the name examines a number growing with the square of the length.
    const shapes: Record<string, (size: number) => string> = {
      'name inside one value': (size) => `a=${'sid'.repeat(size)}`.slice(0, size),
      'name repeated without =': (size) => 'sid'.repeat(size).slice(0, size),
      'name repeated with ;': (size) => 'sid;'.repeat(size).slice(0, size),
      semicolons: (size) => `${';'.repeat(size - 5)}sid=x`,
      'many cookies': (size) => 'ab=cd; '.repeat(size).slice(0, size),
      'the value at the end': (size) => `${'x=y; '.repeat(size).slice(0, size - 5)}sid=x`,
      'white space, then the name repeated': (size) =>
        `${' '.repeat(size / 2)}x${' sid'.repeat(size)}`.slice(0, size),
    };
    for (const [shape, make] of Object.entries(shapes)) {
      const header = make(16_384);
      expect(header.length, shape).toBe(16_384);
      const examined = charactersExamined(() => readCookieValues(header, 'sid'));
      expect(examined, shape).toBeLessThanOrEqual(3 * header.length);
    }
  });
});

/**
 * How many characters the string searches and trims (`indexOf`, `lastIndexOf`, `startsWith`,
 * `includes`, `trim`, `trimStart`, `trimEnd`) made during `run` examined, counted by wrapping
 * them for its duration.
 */
function charactersExamined(run: () => void): number {
  const proto = String.prototype;
  const { indexOf, lastIndexOf, startsWith, includes, trim, trimStart, trimEnd } = proto;
  let examined = 0;
  const forward = (text: string, search: string, from: number | undefined, found: number) => {
    const first = Math.min(Math.max(from ?? 0, 0), text.length);
    examined += (found === -1 ? text.length : found + search.length) - first;
  };
  proto.indexOf = function (this: string, search: string, from?: number) {
    const found = indexOf.call(this, search, from);
    forward(this, search, from, found);
    return found;
  };
  proto.includes = function (this: string, search: string, from?: number) {
    const found = indexOf.call(this, search, from);
    forward(this, search, from, found);
    return found !== -1;
  };
  proto.lastIndexOf = function (this: string, search: string, from?: number) {
    const found = lastIndexOf.call(this, search, from);
    const last = Math.min(Math.max(from ?? this.length, 0), this.length);
    examined += last - (found === -1 ? 0 : found) + search.length;
    return found;
  };
  proto.startsWith = function (this: string, search: string, from?: number) {
    examined += search.length;
    return startsWith.call(this, search, from);
  };
  // A trim examines what it removes and the character where it stops, at each end it trims.
  const trimming = (original: (this: string) => string, ends: number) =>
    function (this: string) {
      const trimmed = original.call(this);
      examined += this.length - trimmed.length + ends;
      return trimmed;
    };
  proto.trim = trimming(trim, 2);
  proto.trimStart = trimming(trimStart, 1);
  proto.trimEnd = trimming(trimEnd, 1);
  try {
    run();
  } finally {
    Object.assign(proto, { indexOf, lastIndexOf, startsWith, includes, trim, trimStart, trimEnd });
  }
  return examined;
}
