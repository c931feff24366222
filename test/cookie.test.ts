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

  it('answers every value of a cookie sent several times, in the order sent, up to the limit', () => {
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
    ]);
    expect(readCookieValues('sid=1; sid=2; sid=3', 'sid', 2)).toEqual(['1', '2']);
  });
});
