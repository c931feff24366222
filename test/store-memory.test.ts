import { describe, it, beforeEach, afterEach, expect, vi } from 'vitest';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { MemoryStore } from '../src/stores/memory.js';

defineStoreConformance({
  name: 'MemoryStore',
  createStore: (clock) => new MemoryStore({ now: clock.now, sweepInterval: 0 }),
  destroyStore: (store) => store.close?.(),
  runner: { describe, it, beforeEach, afterEach },
});

describe('MemoryStore limits', () => {
  const record = (data: string) => ({ data, expiresAt: Date.now() + 60_000, userId: null });

  it('evicts the least recently used session beyond maxSessions', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    const [a, b, c, d] = [randomStoreKey(), randomStoreKey(), randomStoreKey(), randomStoreKey()];
    await store.create(a, record('a'));
    await store.create(b, record('b'));
    await store.create(c, record('c'));
    await store.get(a);
    await store.create(d, record('d'));
    expect(store.size).toBe(3);
    expect(await store.get(b)).toBeNull();
    expect((await store.get(a))?.data).toBe('a');
    expect((await store.get(d))?.data).toBe('d');
  });

  it('evicts in least-recently-used order through any mix of reads, writes and deletes', async () => {
    const store = new MemoryStore({ maxSessions: 5, sweepInterval: 0 });
    // The reference: an array ordered from least to most recently used.
    const model: string[] = [];
    const keys = Array.from({ length: 12 }, () => randomStoreKey());
    let seed = 7;
    const pick = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed;
    };
    const use = (key: string) => {
      model.splice(model.indexOf(key), 1);
      model.push(key);
    };
    for (let step = 0; step < 3_000; step++) {
      const key = keys[pick() % keys.length]!;
      const held = model.includes(key);
      switch (pick() % 4) {
        case 0:
          expect(await store.create(key, record(key))).toBe(!held);
          if (!held) {
            if (model.length === 5) model.shift();
            model.push(key);
          }
          break;
        case 1:
          expect((await store.get(key))?.data ?? null).toBe(held ? key : null);
          if (held) use(key);
          break;
        case 2: {
          const found = await store.get(key);
          if (found !== null) {
            use(key);
            const result = await store.update(key, record(key), found.version);
            expect(result.status).toBe('ok');
          }
          break;
        }
        default:
          await store.delete(key);
          if (held) model.splice(model.indexOf(key), 1);
      }
      expect(store.size).toBe(model.length);
    }
    for (const key of keys) expect((await store.get(key)) !== null).toBe(model.includes(key));
  });

  it('stays bounded under a flood of creations', async () => {
    const store = new MemoryStore({ maxSessions: 1000, sweepInterval: 0 });
    for (let i = 0; i < 20_000; i++) await store.create(randomStoreKey(), record('x'));
    expect(store.size).toBe(1000);
  });

  it('sweeps expired sessions on prune', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    await store.create(randomStoreKey(), { data: 'x', expiresAt: now + 10, userId: 'u' });
    await store.create(randomStoreKey(), { data: 'y', expiresAt: now + 1000, userId: 'u' });
    now += 100;
    expect(await store.prune()).toBe(1);
    expect(store.size).toBe(1);
  });

  it('gives back every key, user ID, expiry and data exactly as stored', async () => {
    const now = 1_000_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    const digest = randomStoreKey();
    const keys = [digest, `${digest.slice(0, 42)}=`, '\u0100'.repeat(32), 'k,1,2,', 'ключ 🔑', ''];
    const users = [null, '', 'a,b', '1,x', 'ü🙂', 'u'.repeat(300)];
    const expiries = [now + 1, now + 0.5, now + 2 ** 40, Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300];
    const written = keys.map((key, i) => ({
      key,
      data: i % 2 === 0 ? `[{"k":"v,${i}"},1]` : `,,${i},é`,
      expiresAt: expiries[i % expiries.length]!,
      userId: users[i % users.length]!,
    }));
    for (const { key, ...record } of written) expect(await store.create(key, record)).toBe(true);
    expect(store.size).toBe(keys.length);
    for (const { key, ...record } of written) {
      expect(await store.get(key)).toEqual({ ...record, version: 1 });
    }
    for (const userId of users.filter((user): user is string => user !== null)) {
      const listed = await store.listByUser(userId);
      const expected = written.filter((record) => record.userId === userId);
      expect(listed.map((record) => record.key).sort()).toEqual(
        expected.map((record) => record.key).sort(),
      );
      for (const record of listed) expect(record.version).toBe(1);
    }
    const [first, second] = written;
    expect(await store.update(first!.key, { ...second!, userId: 'a,b' }, 1)).toEqual({
      status: 'ok',
      version: 2,
    });
    expect(await store.touch(first!.key, now + 7)).toBe(true);
    expect(await store.get(first!.key)).toEqual({
      data: second!.data,
      expiresAt: now + 7,
      userId: 'a,b',
      version: 2,
    });
    const others = written.filter((record) => record.userId === 'a,b').map((record) => record.key);
    expect((await store.listByUser('a,b')).map((record) => record.key).sort()).toEqual(
      [first!.key, ...others].sort(),
    );
    expect(await store.deleteByUser('a,b', first!.key)).toBe(others.length);
    for (const key of others) expect(await store.get(key)).toBeNull();
    expect(await store.get(first!.key)).not.toBeNull();
  });

  it('keeps apart users whose IDs fall into the same slot of the user index', async () => {
    const seed = 0x5eed_1234;
    const random = vi
      .spyOn(globalThis.crypto, 'getRandomValues')
      .mockImplementation(<T extends ArrayBufferView | null>(array: T): T => {
        (array as unknown as Uint32Array)[0] = seed;
        return array;
      });
    const store = new MemoryStore({ sweepInterval: 0 });
    random.mockRestore();
    // The store's slot function (FNV-1a, 32 bits, seeded): search for two IDs that share a slot.
    const slotOf = (userId: string) => {
      let hash = seed ^ 0x811c9dc5;
      for (let i = 0; i < userId.length; i++) {
        hash = Math.imul(hash ^ userId.charCodeAt(i), 0x01000193);
      }
      return hash | 0;
    };
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const userId = `user-${i}`;
      const earlier = seen.get(slotOf(userId));
      if (earlier === undefined) seen.set(slotOf(userId), userId);
      else pair = [earlier, userId];
    }
    const [alice, bob] = pair;
    const expiresAt = Date.now() + 60_000;
    const [a1, a2, b1] = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
    await store.create(a1, { data: 'a1', expiresAt, userId: alice });
    await store.create(b1, { data: 'b1', expiresAt, userId: bob });
    await store.create(a2, { data: 'a2', expiresAt, userId: alice });
    expect((await store.listByUser(alice)).map((record) => record.data).sort()).toEqual([
      'a1',
      'a2',
    ]);
    expect((await store.listByUser(bob)).map((record) => record.data)).toEqual(['b1']);
    expect(await store.deleteByUser(bob)).toBe(1);
    expect(await store.get(a1)).not.toBeNull();
    expect(await store.update(a2, { data: 'a2', expiresAt, userId: bob }, 1)).toEqual({
      status: 'ok',
      version: 2,
    });
    expect((await store.listByUser(alice)).map((record) => record.key)).toEqual([a1]);
    expect(await store.deleteByUser(alice)).toBe(1);
    expect((await store.listByUser(bob)).map((record) => record.key)).toEqual([a2]);
  });

  it('reads back records whose expiry lies before the epoch', async () => {
    let now = -10_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    const key = randomStoreKey();
    await store.create(key, { data: 'd', expiresAt: -5_000, userId: null });
    expect((await store.get(key))?.expiresAt).toBe(-5_000);
    now = -5_000;
    expect(await store.get(key)).toBeNull();
  });

  it('rejects a bad option with a typed error', () => {
    expect(() => new MemoryStore({ maxSessions: 0 })).toThrow(/maxSessions/);
  });
});
