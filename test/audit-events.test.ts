/**
 * Audit events (security checklist 24 and 30): a scripted flow through every event, each
 * serialized as a logger would; no session ID, token, signature or session data appears in any
 * of them, and every session event names the session's handle, its user, the reason, and the
 * request's address and User-Agent.
 */
import { describe, expect, it, vi } from 'vitest';
import { SessionManager, type SessionEvents } from '../src/index.js';
import type { RequestInfo } from '../src/loading.js';
import { MemoryStore } from '../src/stores/memory.js';
import { cookiePair, FakeClock, InstrumentedStore, SECRET } from './support/fixtures.js';

/** Every event, so that one added to `SessionEvents` must be added here. */
const EVENTS = {
  created: true,
  regenerated: true,
  destroyed: true,
  expired: true,
  rejected: true,
  warning: true,
  storeError: true,
  saveConflict: true,
  saveRetry: true,
  login: true,
  logout: true,
  revoked: true,
  crossOriginRefused: true,
  reauthRequired: true,
} satisfies Record<keyof SessionEvents, true>;

/** Events about the operation of the manager rather than a session. */
const OPERATIONAL = new Set(['warning', 'storeError', 'saveConflict', 'saveRetry']);

const MINUTE = 60_000;
const SECRET_DATA = ['data-marker-7f3a', 'data-marker-91bc', 'data-marker-c0de'];

/** Serializes as a logger would, errors with their message and cause. */
function serialize(value: unknown): string {
  return JSON.stringify(value, (_key, field: unknown) =>
    field instanceof Error
      ? { ...field, name: field.name, message: field.message, cause: field.cause }
      : field,
  );
}

describe('audit events', () => {
  it('carry handle, user, reason, address and browser, and never an ID, a token or data', async () => {
    // The untrusted X-Forwarded-Proto below also makes a process warning; keep it off the output.
    vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const clock = new FakeClock();
    // The store's own clock stands still, so that the manager, not the store, finds the expiry.
    const frozen = clock.time;
    const store = new InstrumentedStore(new MemoryStore({ now: () => frozen, sweepInterval: 0 }));
    const manager = new SessionManager({
      store,
      secrets: [SECRET],
      now: clock.now,
      headerTransport: true,
      maxSessionsPerUser: 2,
      idleTimeout: 30 * MINUTE,
    });
    const seen: { name: string; payload: any }[] = [];
    for (const name of Object.keys(EVENTS) as (keyof SessionEvents)[]) {
      manager.on(name, (payload) => seen.push({ name, payload }));
    }
    const secrets: string[] = [];
    const keep = (cookieOrToken: string) => {
      const value = cookieOrToken.slice(cookieOrToken.indexOf('=') + 1);
      secrets.push(value, ...value.split('.'));
      return cookieOrToken;
    };
    const from = (extra: RequestInfo = {}): RequestInfo => ({
      ip: '203.0.113.5',
      userAgent: 'audit-agent/2',
      ...extra,
    });
    const commitCookie = async (session: any) =>
      keep(cookiePair((await manager.commit(session)).setCookie));

    // An anonymous session with data, then a login that keeps it.
    const first = await manager.load(from());
    first.set('note', SECRET_DATA[0]);
    const anonymous = await commitCookie(first);
    const login = await manager.load(from({ cookie: anonymous }));
    await login.login('alice', { keep: true });
    login.set('more', SECRET_DATA[1]);
    const alice = await commitCookie(login);

    // A stale authentication, refused, then re-authenticated.
    clock.advance(10 * MINUTE);
    const stale = await manager.load(from({ cookie: alice }));
    expect(() => stale.requireRecentAuth(MINUTE)).toThrow();
    await stale.reauthenticate();
    const reauthenticated = await commitCookie(stale);

    // A bearer token, used and moved to a new one.
    const api = await manager.load(from());
    await api.login('alice');
    api.set('secret', SECRET_DATA[2]);
    const token = keep(await api.issueToken());
    await manager.commit(api);
    const bearer = await manager.load(
      from({ header: (name) => (name === 'authorization' ? `Bearer ${token}` : undefined) }),
    );
    await bearer.regenerate({ keep: true });
    keep((await manager.commit(bearer)).token!.value);

    // A cross-origin refusal carrying a cookie; a tampered and a malformed cookie.
    await expect(
      manager.load(
        from({
          cookie: reauthenticated,
          method: 'POST',
          header: (name) => (name === 'sec-fetch-site' ? 'cross-site' : undefined),
        }),
      ),
    ).rejects.toThrow();
    await manager.load(from({ cookie: reauthenticated.slice(0, -2) + 'xx' }));
    await manager.load(from({ cookie: 'sid=not-a-cookie' }));

    // A third session of alice (the cap ends the oldest), a revocation by handle and of all others.
    const third = await manager.load(from());
    await third.login('alice');
    const thirdCookie = await commitCookie(third);
    const current = await manager.load(from({ cookie: thirdCookie }));
    const [other] = (await manager.listUserSessions('alice', current)).filter((s) => !s.current);
    if (other !== undefined) {
      expect(await manager.revokeUserSession('alice', other.handle, { by: current })).toBe(true);
    }
    await manager.revokeUserSessions('alice', { except: current });

    // Unbinding the user, a logout, an expiry, a store failure and an untrusted proxy header.
    const unbind = await manager.load(from({ cookie: thirdCookie }));
    unbind.setUser(null);
    unbind.set('left', 'x');
    const unbound = await commitCookie(unbind);
    const bob = await manager.load(from());
    await bob.login('bob');
    const bobCookie = await commitCookie(bob);
    await (await manager.load(from({ cookie: bobCookie }))).destroy();
    clock.advance(31 * MINUTE);
    await manager.load(from({ cookie: unbound }));
    store.failing.add('get');
    await expect(manager.load(from({ cookie: unbound }))).rejects.toThrow();
    store.failing.clear();
    await manager.load(from({ forwardedProto: 'https' }));

    vi.restoreAllMocks();
    const names = new Set(seen.map((event) => event.name));
    const missing = Object.keys(EVENTS).filter(
      (name) => !names.has(name) && name !== 'saveConflict' && name !== 'saveRetry',
    );
    expect(missing).toEqual([]);

    const text = seen.map((event) => serialize(event.payload)).join('\n');
    for (const secret of [...secrets, ...SECRET_DATA]) {
      expect(secret.length).toBeGreaterThan(8);
      expect(text).not.toContain(secret);
    }

    for (const { name, payload } of seen) {
      if (OPERATIONAL.has(name)) continue;
      expect([name, Object.keys(payload)]).toEqual([
        name,
        expect.arrayContaining(['handle', 'userId', 'reason', 'ip', 'userAgent']),
      ]);
      if (name !== 'revoked' && name !== 'destroyed') {
        expect([name, payload.ip, payload.userAgent]).toEqual([
          name,
          '203.0.113.5',
          'audit-agent/2',
        ]);
      }
    }
    const byName = (name: string) => seen.filter((event) => event.name === name);
    expect(byName('login').map((event) => event.payload.reason)).toEqual([
      'login',
      'reauthenticate',
      'login',
      'login',
      'login',
    ]);
    expect(byName('logout').map((event) => event.payload.reason)).toEqual(['unbind', 'destroy']);
    expect(byName('revoked').map((event) => event.payload.reason)).toEqual(
      expect.arrayContaining(['cap', 'others']),
    );
    for (const event of byName('revoked')) {
      expect(event.payload.handle === null).toBe(event.payload.reason === 'others');
    }
  });
});
