/**
 * Hole 4: binding a user to a session, or changing its user, always gives the session a new ID,
 * whatever method does it.
 */
import { describe, expect, it } from 'vitest';
import type { SessionManager } from '../../src/index.js';
import { cookiePair, rawIdOf, setup, sha256 } from '../support/fixtures.js';

async function anonymousWithCart(manager: SessionManager<any>) {
  const session = await manager.load({});
  session.set('cart', ['apple']);
  return cookiePair((await manager.commit(session)).setCookie);
}

describe('setUser moves a stored session to a new ID', () => {
  it('binding a user to a stored anonymous session issues a new cookie; the old one replays to nothing', async () => {
    for (const synchronous of [false, true]) {
      const { manager, memory } = setup({}, { synchronous });
      const events: string[] = [];
      manager.on('regenerated', ({ userId }) => events.push(`regenerated:${userId}`));
      const planted = await anonymousWithCart(manager);
      const session = await manager.load({ cookie: planted });
      session.setUser('alice');
      // The old record is deleted first: the save waits on the store.
      const saving = manager.commit(session);
      expect(saving).toBeInstanceOf(Promise);
      const headers = await saving;
      expect(headers.setCookie).toHaveLength(1);
      const issued = cookiePair(headers.setCookie);
      expect(rawIdOf(issued)).not.toBe(rawIdOf(planted));
      expect(await memory.get(sha256(rawIdOf(planted)))).toBeNull();

      const replay = await manager.load({ cookie: planted });
      expect(replay.isNew).toBe(true);
      expect(replay.userId).toBeNull();
      expect(replay.get('cart')).toBeUndefined();
      // The data stays with the session, under its new ID.
      const resumed = await manager.load({ cookie: issued });
      expect(resumed.userId).toBe('alice');
      expect(resumed.get('cart')).toEqual(['apple']);
      expect(events).toEqual(['regenerated:alice']);
    }
  });

  it('changing the user, or unbinding it, issues a new ID too', async () => {
    const { manager } = setup();
    const first = await manager.load({});
    await first.login('alice');
    first.set('theme', 'dark');
    const alice = cookiePair((await manager.commit(first)).setCookie);

    const changing = await manager.load({ cookie: alice });
    changing.setUser('bob');
    const bob = cookiePair((await manager.commit(changing)).setCookie);
    expect(rawIdOf(bob)).not.toBe(rawIdOf(alice));
    expect((await manager.load({ cookie: alice })).isNew).toBe(true);
    expect((await manager.load({ cookie: bob })).userId).toBe('bob');
    expect(await manager.listUserSessions('alice')).toEqual([]);

    const unbinding = await manager.load({ cookie: bob });
    unbinding.setUser(null);
    const anonymous = cookiePair((await manager.commit(unbinding)).setCookie);
    expect(rawIdOf(anonymous)).not.toBe(rawIdOf(bob));
    expect((await manager.load({ cookie: bob })).isNew).toBe(true);
    const resumed = await manager.load({ cookie: anonymous });
    expect([resumed.isNew, resumed.userId, resumed.get('theme')]).toEqual([false, null, 'dark']);
  });

  it('unbinding the user of a session that holds nothing else stores nothing and clears the cookie', async () => {
    const { manager, memory } = setup();
    const first = await manager.load({});
    await first.login('alice');
    const alice = cookiePair((await manager.commit(first)).setCookie);
    const session = await manager.load({ cookie: alice });
    session.setUser(null);
    const headers = await manager.commit(session);
    expect(headers.setCookie).toHaveLength(1);
    expect(headers.setCookie[0]).toMatch(/^sid=; /);
    expect(memory.size).toBe(0);
  });

  it('does it at save(), before the response, and session.save() then commit sends the new cookie', async () => {
    const { manager } = setup();
    const planted = await anonymousWithCart(manager);
    const session = await manager.load({ cookie: planted });
    session.setUser('alice');
    await session.save();
    expect((await manager.load({ cookie: planted })).isNew).toBe(true);
    const headers = await manager.commit(session);
    expect((await manager.load({ cookie: cookiePair(headers.setCookie) })).userId).toBe('alice');
  });

  it('login() rotates once: one delete, one create, one new cookie', async () => {
    const { manager, store } = setup();
    const planted = await anonymousWithCart(manager);
    const session = await manager.load({ cookie: planted });
    store.reset();
    await session.login('alice');
    const headers = await manager.commit(session);
    expect(store.count('delete')).toBe(1);
    expect(store.count('create')).toBe(1);
    expect(store.count('update')).toBe(0);
    expect(headers.setCookie).toHaveLength(1);
    expect((await manager.load({ cookie: planted })).isNew).toBe(true);
  });

  it('setUser twice in one request, or after regenerate, still gives one new ID', async () => {
    const { manager, store } = setup();
    const planted = await anonymousWithCart(manager);
    const session = await manager.load({ cookie: planted });
    session.setUser('alice');
    session.setUser('bob');
    await session.regenerate({ keep: true });
    session.setUser('carol');
    store.reset();
    const headers = await manager.commit(session);
    // One new record, then the planted one deleted.
    expect(store.calls).toEqual({ create: 1, delete: 1 });
    expect((await manager.load({ cookie: planted })).isNew).toBe(true);
    const resumed = await manager.load({ cookie: cookiePair(headers.setCookie) });
    expect([resumed.userId, resumed.get('cart')]).toEqual(['carol', ['apple']]);
  });
});
