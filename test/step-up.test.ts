/**
 * Step-up re-authentication (security checklist 20 and 28): `requireRecentAuth` refuses with
 * `REAUTH_REQUIRED` unless the user authenticated recently enough, on the server's clock;
 * `reauthenticate` records a fresh authentication under a new ID, and the old ID dies.
 */
import { describe, expect, it } from 'vitest';
import { isSessionError } from '../src/errors.js';
import type { SessionManager } from '../src/index.js';
import { cookiePair, rawIdOf, setup } from './support/fixtures.js';

const MINUTE = 60_000;

async function signedIn(manager: SessionManager<any>, user = 'alice') {
  const session = await manager.load({});
  await session.login(user);
  session.set('draft', 'kept');
  return cookiePair((await manager.commit(session)).setCookie);
}

function reauthError(run: () => void): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('requireRecentAuth', () => {
  it('passes within the age asked and refuses after it, on the server clock', async () => {
    const { manager, clock } = setup();
    const cookie = await signedIn(manager);
    const seen: unknown[] = [];
    manager.on('reauthRequired', (event) => seen.push(event));
    clock.advance(5 * MINUTE);
    const session = await manager.load({ cookie, ip: '192.0.2.4', userAgent: 'agent' });
    expect(() => session.requireRecentAuth(5 * MINUTE)).not.toThrow();
    clock.advance(1);
    const error = reauthError(() => session.requireRecentAuth(5 * MINUTE));
    expect(isSessionError(error, 'REAUTH_REQUIRED')).toBe(true);
    expect((error as { status: number }).status).toBe(401);
    expect(seen).toEqual([
      {
        reason: 'stale',
        handle: expect.stringMatching(/^[\w-]{43}$/),
        userId: 'alice',
        ip: '192.0.2.4',
        userAgent: 'agent',
        maxAgeMs: 5 * MINUTE,
      },
    ]);
    const [listed] = await manager.listUserSessions('alice');
    expect(seen[0]).toMatchObject({ handle: listed!.handle });
  });

  it('refuses an anonymous session', async () => {
    const { manager } = setup();
    const seen: string[] = [];
    manager.on('reauthRequired', ({ reason }) => seen.push(reason));
    const anonymous = await manager.load({});
    expect(isSessionError(reauthError(() => anonymous.requireRecentAuth(MINUTE)))).toBe(true);
    expect(seen).toEqual(['anonymous']);
  });

  it('takes only a finite age from 0', async () => {
    const { manager } = setup();
    const session = await manager.load({ cookie: await signedIn(manager) });
    for (const bad of [-1, Number.NaN, Infinity, '5', undefined]) {
      expect(() => session.requireRecentAuth(bad as never)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION' }),
      );
    }
    expect(() => session.requireRecentAuth(0)).not.toThrow();
  });
});

describe('reauthenticate', () => {
  it('records a fresh authentication under a new ID, keeping the data; the old ID dies', async () => {
    const { manager, clock } = setup();
    const cookie = await signedIn(manager);
    const events: string[] = [];
    manager.on('login', ({ reason }) => events.push(`login:${reason}`));
    manager.on('regenerated', ({ reason }) => events.push(`regenerated:${reason}`));
    clock.advance(20 * MINUTE);
    const session = await manager.load({ cookie });
    const before = session.authenticatedAt!;
    await session.reauthenticate();
    expect(session.authenticatedAt).toBe(before + 20 * MINUTE);
    expect(() => session.requireRecentAuth(MINUTE)).not.toThrow();
    const fresh = cookiePair((await manager.commit(session)).setCookie);
    expect(rawIdOf(fresh)).not.toBe(rawIdOf(cookie));
    expect((await manager.load({ cookie })).isNew).toBe(true);
    const resumed = await manager.load({ cookie: fresh });
    expect([resumed.userId, resumed.get('draft'), resumed.authenticatedAt]).toEqual([
      'alice',
      'kept',
      before + 20 * MINUTE,
    ]);
    expect(await manager.listUserSessions('alice')).toHaveLength(1);
    expect(events).toEqual(['regenerated:reauthenticate', 'login:reauthenticate']);
  });

  it('needs a signed-in user and a live session', async () => {
    const { manager } = setup();
    const anonymous = await manager.load({});
    await expect(anonymous.reauthenticate()).rejects.toMatchObject({ code: 'INVALID_USER_ID' });
    const session = await manager.load({ cookie: await signedIn(manager) });
    await session.destroy();
    await expect(session.reauthenticate()).rejects.toMatchObject({ code: 'SESSION_ENDED' });
  });
});
