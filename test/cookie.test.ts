import { serialize } from 'cookie';
import { describe, expect, it } from 'vitest';
import { resolveCookieOptions, serializeCookie, type CookieOptions } from '../src/cookie.js';

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
