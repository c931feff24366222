/**
 * The header transport (security checklist 11 and 29): the token read only from the configured
 * header, never a Set-Cookie for a request that uses it, new tokens in a response header, and
 * the cookie's signing, hashing, expiry and revocation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerToken, HeaderTransport } from '../src/header-transport.js';
import type { RequestInfo } from '../src/loading.js';
import type { SessionManager } from '../src/index.js';
import { cookiePair, rawIdOf, setup, sha256 } from './support/fixtures.js';

const MINUTE = 60_000;

/** A request whose headers are given by lower-case name. */
function withHeaders(headers: Record<string, string>, extra: RequestInfo = {}): RequestInfo {
  return { ...extra, header: (name) => headers[name] };
}

const bearer = (token: string) => withHeaders({ authorization: `Bearer ${token}` });

describe('bearerToken', () => {
  it('reads the Bearer scheme in any case; other schemes are not the transport', () => {
    expect(bearerToken('Bearer abc.def')).toBe('abc.def');
    expect(bearerToken('bearer \t abc.def  ')).toBe('abc.def');
    expect(bearerToken('  BEARER abc')).toBe('abc');
    expect(bearerToken('Bearer')).toBeNull();
    expect(bearerToken('Bearer    ')).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken('Bearer a, Bearer b')).toBeNull();
    expect(bearerToken(`Bearer ${'x'.repeat(600)}`)).toBeNull();
    expect(bearerToken('Basic dXNlcjpwYXNz')).toBeUndefined();
    expect(bearerToken('Bearerabc')).toBeUndefined();
    expect(bearerToken('')).toBeUndefined();
  });

  it('never throws, answers a token free of white space, and takes linear time', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.string({ unit: 'binary', maxLength: 80 }),
          fc.string({ maxLength: 60 }).map((rest) => `Bearer ${rest}`),
        ),
        (value) => {
          const token = bearerToken(value);
          if (typeof token === 'string') {
            expect(token).toMatch(/^[^\s,]+$/);
            expect(token.length).toBeLessThanOrEqual(512);
          }
        },
      ),
      { numRuns: 3000 },
    );
    const started = process.hrtime.bigint();
    for (const shape of [' '.repeat(100_000) + 'x', `Bearer ${' \t'.repeat(100_000)}x`]) {
      for (let i = 0; i < 20; i++) bearerToken(shape);
    }
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(2);
  });
});

describe('options', () => {
  it('checks header names at start-up', () => {
    for (const options of [
      { header: 'cookie' },
      { header: 'bad header' },
      { responseHeader: 'set-cookie' },
      { responseHeader: '' },
      { cookie: 'no' },
    ]) {
      expect(() => new HeaderTransport(options as never)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION' }),
      );
    }
    expect(() => setup({ headerTransport: 'yes' as never })).toThrow(/headerTransport/);
    const transport = new HeaderTransport({ header: 'X-Auth-Token', responseHeader: 'X-New' });
    expect([transport.header, transport.responseHeader, transport.cookie]).toEqual([
      'x-auth-token',
      'x-new',
      true,
    ]);
  });
});

/** Signs in `user` through the header transport; answers the token. */
async function tokenFor(manager: SessionManager<any>, user: string) {
  const session = await manager.load({});
  await session.login(user);
  session.set('note', 'hello');
  const token = await session.issueToken();
  const headers = await manager.commit(session);
  expect(headers.setCookie).toEqual([]);
  return { token, headers };
}

describe('the manager', () => {
  it('issues a token and hands it over in the response header, with no cookie', async () => {
    const { manager, memory } = setup({ headerTransport: true });
    const { token, headers } = await tokenFor(manager, 'alice');
    expect(token).toMatch(/^[\w-]{43}\.[\w-]{43}$/);
    expect(headers.token).toEqual({ header: 'session-token', value: token });
    expect(headers.cacheControl).toBe('no-store');
    expect(manager.headerTransport).toMatchObject({ header: 'authorization' });
    // Hashed at rest: the store holds the hash of the ID, never the ID.
    const id = token.split('.')[0]!;
    expect(memory.get(id)).toBeNull();
    expect(memory.get(sha256(id))).not.toBeNull();
  });

  it('reads the header alone: a request carrying it never uses its cookie, nor sets one', async () => {
    const { manager } = setup({ headerTransport: true });
    const { token } = await tokenFor(manager, 'alice');
    const browser = await manager.load({});
    await browser.login('mallory');
    const cookie = cookiePair((await manager.commit(browser)).setCookie);

    const session = await manager.load({ ...bearer(token), cookie });
    expect(session.userId).toBe('alice');
    session.set('more', 1);
    await session.regenerate({ keep: true });
    const headers = await manager.commit(session);
    expect(headers.setCookie).toEqual([]);
    expect(headers.token?.value).not.toBe(token);

    const unusable = await manager.load({ ...bearer('garbage'), cookie });
    expect(unusable.userId).toBeNull();
    await unusable.destroy();
    expect((await manager.commit(unusable)).setCookie).toEqual([]);
    // Another scheme leaves the request to its cookie.
    const basic = await manager.load({ ...withHeaders({ authorization: 'Basic x' }), cookie });
    expect(basic.userId).toBe('mallory');
  });

  it('expires and revokes a token as it would a cookie', async () => {
    const { manager, clock } = setup({ headerTransport: true, idleTimeout: 10 * MINUTE });
    const a = (await tokenFor(manager, 'alice')).token;
    const b = (await tokenFor(manager, 'alice')).token;
    expect((await manager.load(bearer(a))).get('note')).toBe('hello');
    expect(
      await manager.revokeUserSessions('alice', { except: await manager.load(bearer(b)) }),
    ).toBe(1);
    expect((await manager.load(bearer(a))).isNew).toBe(true);
    clock.advance(10 * MINUTE + 1);
    expect((await manager.load(bearer(b))).isNew).toBe(true);
  });

  it('with cookie: false, reads no cookie and sets none; every new session gets its token in a header', async () => {
    const { manager } = setup({ headerTransport: { cookie: false, header: 'x-auth-token' } });
    const session = await manager.load({});
    session.set('k', 'v');
    const headers = await manager.commit(session);
    expect(headers.setCookie).toEqual([]);
    const token = headers.token!.value;
    expect(headers.token!.header).toBe('session-token');
    expect((await manager.load(withHeaders({ 'x-auth-token': token }))).get('k')).toBe('v');
    const cookie = `sid=${token}`;
    expect((await manager.load({ cookie })).get('k')).toBeUndefined();
    // The configured header carries the bare token; Authorization is not read.
    expect((await manager.load(bearer(token))).get('k')).toBeUndefined();
  });

  it('issueToken needs the option, a live session, and stores even an empty session', async () => {
    const plain = setup();
    const session = await plain.manager.load({});
    await expect(session.issueToken()).rejects.toMatchObject({ code: 'INVALID_OPTION' });

    const { manager, memory } = setup({ headerTransport: true });
    const empty = await manager.load({});
    const token = await empty.issueToken();
    expect(memory.size).toBe(1);
    expect((await manager.load(bearer(token))).isNew).toBe(false);
    await empty.destroy();
    await expect(empty.issueToken()).rejects.toMatchObject({ code: 'SESSION_ENDED' });
  });

  it('gives a cookie session its token after login, and that response then sets no cookie', async () => {
    const { manager } = setup({ headerTransport: true });
    const anonymous = await manager.load({});
    anonymous.set('cart', 1);
    const cookie = cookiePair((await manager.commit(anonymous)).setCookie);
    const session = await manager.load({ cookie });
    await session.login('bob');
    const token = await session.issueToken();
    const headers = await manager.commit(session);
    expect(headers.setCookie).toEqual([]);
    expect(headers.token?.value).toBe(token);
    expect(rawIdOf(`sid=${token}`)).not.toBe(rawIdOf(cookie));
    expect((await manager.load({ cookie })).isNew).toBe(true);
    expect((await manager.load(bearer(token))).userId).toBe('bob');
  });
});
