import { describe, expect, it } from 'vitest';
import { FloorSessions, floorRoute } from '../servers/floor.js';

// The bench's floor rows are only worth reading if the inline session work they time is real:
// these check that it signs, verifies, expires, compares versions and stays bounded.
describe('bench floor: the inline session work', () => {
  const secret = 'floor-test-secret-that-is-at-least-32-bytes';
  const request = { userAgent: 'test', ip: () => '127.0.0.1', u: 'user-1' };
  const cookieOf = (setCookie: string) => setCookie.split(';')[0]!;

  it('logs in, reads, writes and issues new sessions with signed cookies and no-store', async () => {
    const calls: string[] = [];
    const floor = await FloorSessions.create(secret, (call) => calls.push(call));
    const login = floorRoute(floor, '/login', { ...request, cookie: undefined })!;
    expect(login.setCookie).toMatch(
      /^sid=[\w-]{43}\.[\w-]{43}; Max-Age=43200; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    expect(login.noStore).toBe(true);
    const cookie = cookieOf(login.setCookie!);

    const read = floorRoute(floor, '/read', { ...request, cookie: `other=1; ${cookie}` })!;
    expect(read.body).toEqual({ user: 'user-1', theme: 'dark' });
    expect(read.noStore).toBe(true);
    expect(read.setCookie).toBeUndefined();

    expect(floorRoute(floor, '/write', { ...request, cookie })!.body).toEqual({ n: 1 });
    expect(floorRoute(floor, '/write', { ...request, cookie })!.body).toEqual({ n: 2 });

    const fresh = floorRoute(floor, '/new', { ...request, cookie: undefined })!;
    expect(fresh.body).toEqual({ n: 1 });
    expect(cookieOf(fresh.setCookie!)).not.toBe(cookie);
    expect(calls).toEqual(['create', 'get', 'get', 'update', 'get', 'update', 'create']);
  });

  it('rejects a tampered, unsigned or foreign cookie, and a write that lost a race', async () => {
    const floor = await FloorSessions.create(secret);
    const cookie = cookieOf(
      floorRoute(floor, '/login', { ...request, cookie: undefined })!.setCookie!,
    );
    const value = cookie.slice('sid='.length);
    const flipped = `${value.slice(0, 10)}${value[10] === 'A' ? 'B' : 'A'}${value.slice(11)}`;
    expect(floor.read(`sid=${flipped}`)).toBeUndefined();
    expect(floor.read(`sid=${value.slice(0, 43)}`)).toBeUndefined();
    const other = await FloorSessions.create(`${secret}-other`);
    expect(other.read(cookie)).toBeUndefined();

    const first = floor.read(cookie)!;
    const second = floor.read(cookie)!;
    first.data.n = 1;
    second.data.n = 2;
    expect(floor.write(first)).toBe(true);
    expect(floor.write(second)).toBe(false);
  });

  it('expires sessions on the server after the idle timeout, whatever the cookie', async () => {
    const floor = await FloorSessions.create(secret);
    const now = 1_800_000_000_000;
    const setCookie = floor.create({ theme: 'dark' }, 'user-1', undefined, undefined, now);
    const cookie = cookieOf(setCookie);
    expect(floor.read(cookie, now + 29 * 60_000)?.data).toEqual({ theme: 'dark' });
    expect(floor.read(cookie, now + 30 * 60_000)).toBeUndefined();
  });

  it('stays bounded: the older half of the sessions goes when the newer half is full', async () => {
    const floor = await FloorSessions.create(secret, undefined, 4);
    const cookies = Array.from({ length: 10 }, () =>
      cookieOf(floor.create({}, null, undefined, undefined)),
    );
    const live = cookies.filter((cookie) => floor.read(cookie) !== undefined);
    expect(live.length).toBeLessThanOrEqual(4);
    expect(live).toEqual(cookies.slice(cookies.length - live.length));
    expect(live.length).toBeGreaterThanOrEqual(2);
  });
});
