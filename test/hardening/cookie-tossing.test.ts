/**
 * Hole 3: several values under the session cookie's name, some perhaps tossed in from a sibling
 * subdomain. Values that fail verification are ignored; more than one live session adopts none.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { SessionManager } from '../../src/index.js';
import { cookiePair, setup } from '../support/fixtures.js';

/** A stored session of `user` (or an anonymous one), as a `sid=...` pair. */
async function sessionOf(manager: SessionManager<any>, user: string | null, data = 'x') {
  const session = await manager.load({});
  if (user !== null) await session.login(user);
  session.set('data', data);
  return cookiePair((await manager.commit(session)).setCookie);
}

function rejections(manager: SessionManager<any>) {
  const reasons: string[] = [];
  manager.on('rejected', ({ reason }) => reasons.push(reason));
  return reasons;
}

describe('cookie tossing: several values under the session cookie name', () => {
  it("adopts neither the victim's session nor the attacker's signed-in one, in either order", async () => {
    for (const synchronous of [false, true]) {
      const { manager } = setup({}, { synchronous });
      const victim = await sessionOf(manager, null, 'victim cart');
      const attacker = await sessionOf(manager, 'mallory', 'attacker');
      const reasons = rejections(manager);
      for (const header of [`${victim}; ${attacker}`, `${attacker}; ${victim}`]) {
        // Twice: a second request with the same cookies meets the same refusal.
        for (let round = 0; round < 2; round++) {
          const session = await manager.load({ cookie: header });
          expect(session.isNew, header).toBe(true);
          expect(session.userId).toBeNull();
          expect(session.get('data')).toBeUndefined();
        }
      }
      expect(reasons).toEqual(['ambiguous', 'ambiguous', 'ambiguous', 'ambiguous']);
    }
  });

  it('counts an identical value sent twice once', async () => {
    const { manager } = setup();
    const victim = await sessionOf(manager, 'alice', 'mine');
    const session = await manager.load({ cookie: `${victim}; ${victim}; ${victim}` });
    expect(session.userId).toBe('alice');
    expect(session.get('data')).toBe('mine');
  });

  it('ignores dead sessions among the values: a logged-out or unknown one does not hide the live one', async () => {
    const { manager } = setup();
    const old = await sessionOf(manager, 'alice', 'old');
    await (await manager.load({ cookie: old })).destroy();
    const live = await sessionOf(manager, 'alice', 'live');
    for (const header of [`${old}; ${live}`, `${live}; ${old}`]) {
      expect((await manager.load({ cookie: header })).get('data')).toBe('live');
    }
  });

  it('calls more than four distinct signed values ambiguous without reading any', async () => {
    const { manager, store } = setup();
    const values = [];
    for (let i = 0; i < 5; i++) values.push(await sessionOf(manager, null, `s${i}`));
    const reasons = rejections(manager);
    store.reset();
    const session = await manager.load({ cookie: values.join('; ') });
    expect(session.isNew).toBe(true);
    expect(store.total()).toBe(0);
    expect(reasons).toEqual(['ambiguous']);
    // Four of them are read, and four live sessions are ambiguous too.
    store.reset();
    expect((await manager.load({ cookie: values.slice(0, 4).join('; ') })).isNew).toBe(true);
    expect(store.calls).toEqual({ get: 4 });
  });

  it("keeps the victim's session whatever junk surrounds it, however many values", async () => {
    const { manager } = setup();
    const victim = await sessionOf(manager, 'alice', 'kept');
    const signature = victim.slice(victim.indexOf('.') + 1);
    const junk = fc.oneof(
      fc.constant(`sid=${'Z'.repeat(43)}.${signature}`),
      fc.constant(`sid=${'A'.repeat(43)}.${'B'.repeat(43)}`),
      fc.constant(`sid=${victim.slice(4, 40)}`),
      fc.stringMatching(/^[A-Za-z0-9_.-]{0,100}$/).map((value) => `sid=${value}`),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/).map((name) => `${name}=x`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(junk, { maxLength: 60 }),
        fc.array(junk, { maxLength: 60 }),
        async (before, after) => {
          const header = [...before, victim, ...after].join('; ');
          const session = await manager.load({ cookie: header });
          expect(session.userId).toBe('alice');
          expect(session.get('data')).toBe('kept');
        },
      ),
      { numRuns: 100 },
    );
    const many = Array.from({ length: 200 }, (_, i) => `sid=junk${i}`);
    expect((await manager.load({ cookie: [...many, victim].join('; ') })).get('data')).toBe('kept');
  });
});
