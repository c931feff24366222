/**
 * Hole 2: with encryption on, the user and the expiry the manager trusts are sealed in the
 * record and checked against the store's columns on every read. These tests play a database
 * writer by rewriting a record's columns through the memory store, keeping its sealed data.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SessionError, type Session, type SessionManager } from '../../src/index.js';
import { nodeCryptoProvider } from '../../src/crypto-node.js';
import { toBase64Url, utf8 } from '../../src/crypto.js';
import type { SessionRecord } from '../../src/store.js';
import { cookiePair, rawIdOf, setup, sha256 } from '../support/fixtures.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const KEY = new Uint8Array(32).fill(9);
const encryption = { keys: [{ id: 'k1', key: KEY }] };

/** A signed-in session of `user` holding a secret; answers its cookie and store key. */
async function signIn(manager: SessionManager<any>, user: string) {
  const session = await manager.load({});
  await session.login(user);
  session.set('secret', `${user}'s`);
  const cookie = cookiePair((await manager.commit(session)).setCookie);
  return { cookie, key: sha256(rawIdOf(cookie)) };
}

/** Everything the manager reports, as `event:reason` lines. */
function recorder(manager: SessionManager<any>) {
  const seen: string[] = [];
  manager.on('rejected', ({ reason }) => seen.push(`rejected:${reason}`));
  manager.on('expired', ({ reason }) => seen.push(`expired:${reason}`));
  return seen;
}

/** Rewrites a stored record's columns the way an UPDATE statement would, data untouched. */
async function editColumns(
  store: ReturnType<typeof setup>['memory'],
  key: string,
  edit: Partial<SessionRecord>,
): Promise<void> {
  const record = (await store.get(key))!;
  const result = await store.update(key, { ...record, ...edit }, record.version);
  expect(result.status).toBe('ok');
}

describe('encrypted records: the user and expiry columns are checked against the sealed copy', () => {
  it("rejects a session whose user column was changed: it is never adopted or listed as the new user's", async () => {
    const { manager, memory } = setup({ encryption });
    const seen = recorder(manager);
    const mallory = await signIn(manager, 'mallory');
    await editColumns(memory, mallory.key, { userId: 'alice' });

    const session = await manager.load({ cookie: mallory.cookie });
    expect(session.isNew).toBe(true);
    expect(session.userId).toBeNull();
    expect(session.get('secret')).toBeUndefined();
    expect(seen).toEqual(['rejected:tampered']);
    expect(await manager.listUserSessions('alice')).toEqual([]);
    expect(await manager.listUserSessions('mallory')).toEqual([]);
    expect(await manager.revokeUserSession('alice', mallory.key)).toBe(false);
    expect(await memory.get(mallory.key)).not.toBeNull();
  });

  it('rejects an anonymous session given a user, and a signed-in one whose user was removed', async () => {
    const { manager, memory } = setup({ encryption });
    const seen = recorder(manager);
    const anonymous = await manager.load({});
    anonymous.set('cart', 3);
    const cookie = cookiePair((await manager.commit(anonymous)).setCookie);
    await editColumns(memory, sha256(rawIdOf(cookie)), { userId: 'alice' });
    expect((await manager.load({ cookie })).get('cart')).toBeUndefined();
    expect(await manager.listUserSessions('alice')).toEqual([]);

    const bob = await signIn(manager, 'bob');
    await editColumns(memory, bob.key, { userId: null });
    expect((await manager.load({ cookie: bob.cookie })).isNew).toBe(true);
    expect(seen).toEqual(['rejected:tampered', 'rejected:tampered', 'rejected:tampered']);
  });

  it('rejects a session whose expiry column was moved, later or earlier', async () => {
    const { manager, memory, clock } = setup({ encryption });
    const seen = recorder(manager);
    const later = await signIn(manager, 'mallory');
    const expiresAt = (await memory.get(later.key))!.expiresAt;
    await editColumns(memory, later.key, { expiresAt: expiresAt + 10 * HOUR });
    clock.advance(5 * MINUTE);
    expect((await manager.load({ cookie: later.cookie })).isNew).toBe(true);
    expect(await manager.listUserSessions('mallory')).toEqual([]);

    const earlier = await signIn(manager, 'carol');
    await editColumns(memory, earlier.key, { expiresAt: clock.now() + MINUTE });
    expect((await manager.load({ cookie: earlier.cookie })).isNew).toBe(true);
    expect(seen).toEqual(['rejected:tampered', 'rejected:tampered', 'rejected:tampered']);
  });

  it('checks a read answered at once too', async () => {
    const { manager, memory } = setup({ encryption }, { synchronous: true });
    const seen = recorder(manager);
    const mallory = await signIn(manager, 'mallory');
    expect((await manager.load({ cookie: mallory.cookie })).userId).toBe('mallory');
    await editColumns(memory, mallory.key, { userId: 'alice' });
    const session = manager.load({ cookie: mallory.cookie });
    expect(session).not.toBeInstanceOf(Promise);
    expect((session as Session).isNew).toBe(true);
    expect((session as Session).userId).toBeNull();
    expect(seen).toEqual(['rejected:tampered']);
  });

  it('ends a session on reload, or on the re-read after a write conflict, when its columns were edited', async () => {
    const { manager, memory } = setup({ encryption });
    const seen = recorder(manager);
    const reloaded = await signIn(manager, 'mallory');
    const first = await manager.load({ cookie: reloaded.cookie });
    await editColumns(memory, reloaded.key, { userId: 'alice' });
    await expect(first.reload()).rejects.toMatchObject({ code: 'SESSION_ENDED' });
    expect(first.userId).toBeNull();

    const conflicted = await signIn(manager, 'mallory');
    const writer = await manager.load({ cookie: conflicted.cookie });
    // The edit bumps the stored version: the writer's save conflicts and reads the record again.
    await editColumns(memory, conflicted.key, { userId: 'alice' });
    writer.set('late', 'write');
    const headers = await manager.commit(writer);
    expect(writer.isEnded).toBe(true);
    expect(writer.userId).not.toBe('alice');
    expect(headers.setCookie).toEqual([]);
    expect(seen).toEqual(['rejected:tampered', 'rejected:tampered']);
    expect(await manager.listUserSessions('alice')).toEqual([]);
  });

  it('re-seals a due touch with a compare-and-set update, and keeps the bare touch without encryption', async () => {
    for (const sealed of [true, false]) {
      const { manager, store, clock } = setup(sealed ? { encryption } : {});
      const { cookie } = await signIn(manager, 'alice');
      store.reset();
      clock.advance(2 * MINUTE);
      await manager.commit(await manager.load({ cookie }));
      expect(store.calls).toEqual(sealed ? { get: 1, update: 1 } : { get: 1, touch: 1 });
      // Still alive past the first idle deadline: the touch took, and the columns still match.
      clock.advance(29 * MINUTE);
      const session = await manager.load({ cookie });
      expect(session.userId).toBe('alice');
      expect(session.get('secret')).toBe("alice's");
    }
  });

  it('re-seals a due touch at once too, on a store that answers at once', async () => {
    const { manager, store, clock } = setup({ encryption }, { synchronous: true });
    const { cookie } = await signIn(manager, 'alice');
    await manager.load({ cookie });
    clock.advance(2 * MINUTE);
    store.reset();
    const session = manager.load({ cookie });
    expect(session).not.toBeInstanceOf(Promise);
    expect(manager.commit(session as Session)).not.toBeInstanceOf(Promise);
    expect(store.calls).toEqual({ get: 1, update: 1 });
    clock.advance(29 * MINUTE);
    expect((manager.load({ cookie }) as Session).userId).toBe('alice');
  });

  it('treats a record sealed before the user and expiry were sealed as undecodable', async () => {
    const { manager, memory } = setup({ encryption });
    const seen = recorder(manager);
    const { cookie, key } = await signIn(manager, 'alice');
    const record = (await memory.get(key))!;
    const crypto = nodeCryptoProvider();
    const iv = new Uint8Array(12).fill(1);
    const old = [{ user: 'alice' }, record.expiresAt - HOUR, 0, 30 * MINUTE, 12 * HOUR, 0];
    const blob = crypto.encrypt(KEY, iv, utf8(JSON.stringify(old)), utf8(key)) as Uint8Array;
    await editColumns(memory, key, { data: `e1.k1.${toBase64Url(iv)}.${toBase64Url(blob)}` });
    expect((await manager.load({ cookie })).isNew).toBe(true);
    expect(seen).toEqual(['rejected:undecodable']);
  });

  it('rejects any single edit of a trusted column, and any bit flip in the sealed data', async () => {
    const { manager, memory, clock } = setup({ encryption });
    const seen = recorder(manager);
    const edit = fc.oneof(
      fc.record({ column: fc.constant('userId' as const), user: fc.option(fc.string()) }),
      fc.record({
        column: fc.constant('expiresAt' as const),
        shift: fc.integer({ min: -29 * MINUTE, max: 100 * HOUR }).filter((n) => n !== 0),
      }),
      fc.record({
        column: fc.constant('data' as const),
        at: fc.nat(),
        bit: fc.integer({ min: 0, max: 15 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.boolean(), edit, async (signedIn, change) => {
        seen.length = 0;
        clock.advance(HOUR);
        const session = await manager.load({});
        if (signedIn) await session.login('alice');
        session.set('secret', 'kept');
        const cookie = cookiePair((await manager.commit(session)).setCookie);
        const key = sha256(rawIdOf(cookie));
        const record = (await memory.get(key))!;
        let columns: Partial<SessionRecord>;
        if (change.column === 'userId') {
          const user = change.user === record.userId ? `${change.user ?? ''}x` : change.user;
          columns = { userId: user };
        } else if (change.column === 'expiresAt') {
          columns = { expiresAt: record.expiresAt + change.shift };
        } else {
          const i = change.at % record.data.length;
          const code = record.data.charCodeAt(i) ^ (1 << change.bit);
          columns = {
            data: record.data.slice(0, i) + String.fromCharCode(code) + record.data.slice(i + 1),
          };
        }
        await editColumns(memory, key, columns);
        const loaded = await manager.load({ cookie });
        expect(loaded.isNew).toBe(true);
        expect(loaded.get('secret')).toBeUndefined();
        expect(seen).toEqual([
          change.column === 'data' ? 'rejected:undecodable' : 'rejected:tampered',
        ]);
        // Listed under neither the sealed user nor the column's (which may not be a valid ID).
        for (const user of new Set(['alice', columns.userId])) {
          if (typeof user !== 'string') continue;
          const listed = await manager.listUserSessions(user).catch((error: unknown) => error);
          if (listed instanceof SessionError) expect(listed.code).toBe('INVALID_USER_ID');
          else expect(listed).toEqual([]);
        }
        await memory.delete(key);
      }),
      { numRuns: 200 },
    );
  });
});
