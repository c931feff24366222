/**
 * Cross-origin protection (security checklist 27): the decision as a pure function, the guard's
 * trusted origins and bypassed paths, its options, and the manager refusing before it reads.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CrossOriginGuard,
  crossOriginVerdict,
  isSafeMethod,
  parseOrigin,
} from '../src/cross-origin.js';
import { isSessionError } from '../src/errors.js';
import type { RequestInfo } from '../src/loading.js';
import { setup } from './support/fixtures.js';

const HOST = 'app.example:8443';

/** A request as an adapter describes it, with its headers by lower-case name. */
function request(method: string, headers: Record<string, string>, url = '/form'): RequestInfo {
  return { method, url, header: (name) => headers[name] };
}

describe('crossOriginVerdict', () => {
  it('follows the rules: safe methods, Sec-Fetch-Site, then Origin against Host', () => {
    const cases: [string, string | undefined, string | undefined, string | undefined][] = [
      // method, Sec-Fetch-Site, Origin, expected
      ['GET', 'cross-site', 'https://evil.example', undefined],
      ['HEAD', 'cross-site', undefined, undefined],
      ['OPTIONS', 'cross-site', undefined, undefined],
      ['POST', 'same-origin', 'https://evil.example', undefined],
      ['POST', 'none', undefined, undefined],
      ['POST', 'cross-site', `https://${HOST}`, 'sec-fetch-site'],
      ['PUT', 'same-site', undefined, 'sec-fetch-site'],
      ['DELETE', 'Same-Origin', undefined, 'sec-fetch-site'],
      ['PATCH', 'whatever', undefined, 'sec-fetch-site'],
      ['POST', undefined, undefined, undefined],
      ['POST', '', '', undefined],
      ['POST', undefined, `https://${HOST}`, undefined],
      ['POST', undefined, `http://APP.example:8443`, undefined],
      ['POST', undefined, 'https://evil.example', 'origin-mismatch'],
      ['POST', undefined, 'https://app.example', 'origin-mismatch'],
      ['POST', undefined, 'https://app.example:8444', 'origin-mismatch'],
      ['POST', undefined, 'null', 'origin-invalid'],
      ['POST', undefined, `https://${HOST}/path`, 'origin-invalid'],
      ['POST', undefined, `https://user@${HOST}`, 'origin-invalid'],
      ['POST', undefined, `https://${HOST} `, 'origin-invalid'],
      ['post', undefined, 'null', 'origin-invalid'],
    ];
    for (const [method, site, origin, expected] of cases) {
      expect([method, site, origin, crossOriginVerdict(method, site, origin, HOST)]).toEqual([
        method,
        site,
        origin,
        expected,
      ]);
    }
  });

  it('counts a default port as absent on either side, and refuses without a Host', () => {
    expect(crossOriginVerdict('POST', undefined, 'https://a.example', 'a.example:443')).toBe(
      undefined,
    );
    expect(crossOriginVerdict('POST', undefined, 'http://a.example', 'a.example:80')).toBe(
      undefined,
    );
    expect(crossOriginVerdict('POST', undefined, 'http://a.example', 'a.example:443')).toBe(
      'origin-mismatch',
    );
    expect(crossOriginVerdict('POST', undefined, 'https://a.example', undefined)).toBe(
      'origin-mismatch',
    );
  });

  const header = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom('null', 'same-origin', 'none', 'cross-site', '://', 'https://', HOST),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.webUrl().map((url) => new URL(url).origin),
  );
  const method = fc.oneof(fc.constantFrom('GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'), fc.string());

  it('never throws, and answers only its three reasons', () => {
    fc.assert(
      fc.property(method, header, header, header, (m, site, origin, host) => {
        const verdict = crossOriginVerdict(m, site, origin, host);
        expect([undefined, 'sec-fetch-site', 'origin-mismatch', 'origin-invalid']).toContain(
          verdict,
        );
        if (isSafeMethod(m)) expect(verdict).toBeUndefined();
        if (!isSafeMethod(m) && site !== undefined && site !== '') {
          expect(verdict === undefined).toBe(site === 'same-origin' || site === 'none');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("allows an origin whose host is the request's, and refuses one whose host differs", () => {
    fc.assert(
      fc.property(fc.domain(), fc.domain(), fc.constantFrom('http', 'https'), (a, b, scheme) => {
        expect(crossOriginVerdict('POST', undefined, `${scheme}://${a}`, a)).toBeUndefined();
        const other = crossOriginVerdict('POST', undefined, `${scheme}://${a}`, b);
        expect(other === undefined).toBe(a.toLowerCase() === b.toLowerCase());
      }),
      { numRuns: 500 },
    );
  });

  it('reads an origin in one pass: hostile headers of 200 KB take linear time', () => {
    const shapes = [
      'https://'.repeat(25_000),
      ':'.repeat(200_000),
      'a'.repeat(200_000),
      `https://${'a.'.repeat(100_000)}`,
      `${'a+'.repeat(100_000)}://x`,
    ];
    const started = process.hrtime.bigint();
    for (const shape of shapes) {
      for (let i = 0; i < 20; i++) {
        crossOriginVerdict('POST', undefined, shape, shape);
        parseOrigin(shape);
        crossOriginVerdict('POST', shape, shape, shape);
      }
    }
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(2);
  });
});

describe('CrossOriginGuard', () => {
  const crossSite = { 'sec-fetch-site': 'cross-site', origin: 'https://partner.example' };

  it('reads no header for a safe method, and none without a method', () => {
    const read: string[] = [];
    const guard = new CrossOriginGuard();
    const info = (method: string | undefined): RequestInfo => ({
      method,
      header: (name) => {
        read.push(name);
        return undefined;
      },
    });
    for (const method of ['GET', 'HEAD', 'OPTIONS', undefined]) guard.check(info(method));
    expect(read).toEqual([]);
    guard.check(info('POST'));
    expect(read).toContain('sec-fetch-site');
  });

  it('allows trusted origins exactly, in the form browsers send them', () => {
    const guard = new CrossOriginGuard({
      trustedOrigins: ['https://Partner.example/', 'http://localhost:5173'],
    });
    expect(guard.check(request('POST', crossSite))).toBeUndefined();
    expect(guard.check(request('POST', { origin: 'http://localhost:5173' }))).toBeUndefined();
    expect(
      guard.check(request('POST', { ...crossSite, origin: 'https://partner.example:444' })),
    ).toBe('sec-fetch-site');
    expect(guard.check(request('POST', { origin: 'null' }))).toBe('origin-invalid');
  });

  it('bypasses listed paths and paths below them, never a path that hides its meaning', () => {
    const guard = new CrossOriginGuard({ bypass: ['/webhooks', /^\/api\/v\d+\/callback$/] });
    const at = (url: string) => guard.check(request('POST', crossSite, url));
    for (const url of [
      '/webhooks',
      '/webhooks/stripe?x=1',
      '/api/v2/callback',
      'https://app.example/webhooks/x',
    ]) {
      expect([url, at(url)]).toEqual([url, undefined]);
    }
    for (const url of [
      '/webhooksx',
      '/webhooks/../account',
      '/webhooks/%2e%2e/account',
      '/webhooks/x%2Fy',
      '/webhooks//x',
      '/webhooks\\x',
      '/api/v2/callback/more',
      'not a url',
    ]) {
      expect([url, at(url)]).toEqual([url, 'sec-fetch-site']);
    }
  });

  it('refuses bad options at start-up', () => {
    const bad: unknown[] = [
      { trustedOrigins: ['null'] },
      { trustedOrigins: ['https://a.example/path'] },
      { trustedOrigins: ['https://a.example?x'] },
      { trustedOrigins: ['https://user:pw@a.example'] },
      { trustedOrigins: ['a.example'] },
      { trustedOrigins: 'https://a.example' },
      { bypass: ['webhooks'] },
      { bypass: [42] },
      'on',
    ];
    for (const options of bad) {
      expect(() => new CrossOriginGuard(options as never)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION' }),
      );
    }
  });
});

describe('the manager', () => {
  it('refuses before reading the store, and reports it without any session detail', async () => {
    const { manager, store } = setup();
    const seen: unknown[] = [];
    manager.on('crossOriginRefused', (event) => seen.push(event));
    const loaded = manager.load({
      ...request('POST', { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }),
      cookie: 'sid=whatever',
      ip: '198.51.100.7',
      userAgent: 'agent',
    });
    await expect(loaded).rejects.toSatisfy((error) =>
      isSessionError(error, 'CROSS_ORIGIN_REFUSED'),
    );
    await expect(loaded).rejects.toMatchObject({ status: 403 });
    expect(store.total()).toBe(0);
    expect(seen).toEqual([
      {
        reason: 'sec-fetch-site',
        handle: null,
        userId: null,
        ip: '198.51.100.7',
        userAgent: 'agent',
        method: 'POST',
        origin: 'https://evil.example',
        site: 'cross-site',
      },
    ]);
  });

  it('is on by default, off with crossOrigin: false, and checks nothing without a method', async () => {
    const hostile = request('POST', { 'sec-fetch-site': 'cross-site' });
    await expect(setup().manager.load(hostile)).rejects.toThrow(/cross-origin/);
    expect((await setup({ crossOrigin: false }).manager.load(hostile)).isNew).toBe(true);
    expect((await setup().manager.load({ ...hostile, method: undefined })).isNew).toBe(true);
    expect(() => setup({ crossOrigin: 'yes' as never })).toThrow(/crossOrigin/);
  });
});
