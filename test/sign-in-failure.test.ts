/**
 * A move to a new ID stores the new record first and deletes the old one after, so a store that
 * fails during a sign-in, a re-authentication or a regenerate leaves the old session whole
 * (security checklist 25): the request answers 503 and the user is still signed in as before.
 */
import { describe, expect, it } from 'vitest';
import { isSessionError } from '../src/errors.js';
import type { SessionManager } from '../src/index.js';
import { cookiePair, rawIdOf, setup, sha256 } from './support/fixtures.js';

async function stored(manager: SessionManager<any>, user?: string) {
  const session = await manager.load({});
  if (user !== undefined) await session.login(user);
  session.set('cart', ['apple']);
  return cookiePair((await manager.commit(session)).setCookie);
}

const unavailable = (error: unknown) => isSessionError(error, 'STORE_UNAVAILABLE');

describe('a store failure while moving to a new ID', () => {
  const moves = {
    'login()': (s: any) => s.login('alice'),
    'setUser()': (s: any) => s.setUser('bob'),
    'reauthenticate()': (s: any) => s.reauthenticate(),
    'regenerate()': (s: any) => s.regenerate({ keep: true }),
  };

  for (const [name, move] of Object.entries(moves)) {
    it(`${name}: a failed create leaves the old session as it was`, async () => {
      for (const synchronous of [false, true]) {
        const { manager, store } = setup({}, { synchronous });
        const cookie = await stored(manager, 'carol');
        const session = await manager.load({ cookie });
        await move(session);
        store.failing.add('create');
        await expect(Promise.resolve().then(() => manager.commit(session))).rejects.toSatisfy(
          unavailable,
        );
        expect(store.count('delete')).toBe(0);
        store.failing.clear();
        const again = await manager.load({ cookie });
        expect([again.isNew, again.userId, again.get('cart')]).toEqual([false, 'carol', ['apple']]);
      }
    });
  }

  it('a failed delete of the old record, after the new one is stored, ends neither', async () => {
    const { manager, store, memory } = setup();
    const cookie = await stored(manager);
    const session = await manager.load({ cookie });
    await session.login('dave');
    store.failing.add('delete');
    await expect(manager.commit(session)).rejects.toSatisfy(unavailable);
    expect(store.count('create')).toBe(2);
    // The old session is whole; the new record, whose cookie never went out, expires unused.
    expect((await manager.load({ cookie })).get('cart')).toEqual(['apple']);
    expect(memory.size).toBe(2);
  });

  it('on success, the old record is gone before the response carries the new cookie', async () => {
    const { manager, memory } = setup();
    const cookie = await stored(manager);
    const session = await manager.load({ cookie });
    await session.login('erin');
    const next = cookiePair((await manager.commit(session)).setCookie);
    expect(memory.get(sha256(rawIdOf(cookie)))).toBeNull();
    expect(memory.get(sha256(rawIdOf(next)))).not.toBeNull();
    expect(memory.size).toBe(1);
  });

  it('regenerate then destroy in one request deletes the old record', async () => {
    const { manager, memory } = setup();
    const cookie = await stored(manager, 'frank');
    const session = await manager.load({ cookie });
    await session.regenerate();
    await session.destroy();
    await manager.commit(session);
    expect(memory.size).toBe(0);
    expect((await manager.load({ cookie })).isNew).toBe(true);
  });
});
