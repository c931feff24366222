import { describe, it, beforeEach, afterEach, expect, vi } from 'vitest';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { MemoryStore } from '../src/stores/memory.js';

defineStoreConformance({
  name: 'MemoryStore',
  createStore: (clock) => new MemoryStore({ now: clock.now, sweepInterval: 0 }),
  destroyStore: (store) => store.close?.(),
  synchronous: true,
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

  it('agrees with a plain reference model through a long mix of every operation', async () => {
    // Small capacities keep the tables crowded: probe runs, removals inside runs, growth from
    // 16 slots, eviction, users with many sessions and users sharing nothing but a table bucket.
    let now = 1_000_000;
    const store = new MemoryStore({ maxSessions: 60, now: () => now, sweepInterval: 0 });
    interface Held {
      data: string;
      expiresAt: number;
      userId: string | null;
      version: number;
    }
    const model = new Map<string, Held>(); // insertion order = least recently used first
    const keys = [
      ...Array.from({ length: 70 }, () => randomStoreKey()),
      ...Array.from({ length: 20 }, (_, i) => `text-key-${i}`),
    ];
    const users = [null, ...Array.from({ length: 12 }, (_, i) => `user-${i}`), ''];
    let seed = 11;
    const pick = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const live = (key: string) => {
      const held = model.get(key);
      if (held !== undefined && held.expiresAt <= now) model.delete(key);
      return held !== undefined && held.expiresAt > now ? held : undefined;
    };
    const use = (key: string, held: Held) => {
      model.delete(key);
      model.set(key, held);
    };
    const listed = (userId: string) =>
      [...model]
        .filter(([, held]) => held.userId === userId && held.expiresAt > now)
        .map(([key, held]) => ({ key, ...held }))
        .sort((x, y) => x.key.localeCompare(y.key));
    for (let step = 0; step < 6_000; step++) {
      const key = keys[pick(keys.length)]!;
      const userId = users[pick(users.length)]!;
      const expiresAt = now + 1 + pick(400);
      switch (pick(9)) {
        case 0:
        case 1: {
          const held = live(key);
          expect(await store.create(key, { data: `d${step}`, expiresAt, userId })).toBe(
            held === undefined,
          );
          if (held === undefined) {
            model.delete(key);
            if (model.size === 60) model.delete(model.keys().next().value!);
            model.set(key, { data: `d${step}`, expiresAt, userId, version: 1 });
          }
          break;
        }
        case 2: {
          const held = live(key);
          expect(await store.get(key)).toEqual(
            held === undefined ? null : { ...held, version: held.version },
          );
          if (held !== undefined) use(key, held);
          break;
        }
        case 3: {
          const held = live(key);
          const expected = held?.version ?? 1;
          const result = await store.update(key, { data: `u${step}`, expiresAt, userId }, expected);
          expect(result).toEqual(
            held === undefined ? { status: 'missing' } : { status: 'ok', version: expected + 1 },
          );
          if (held !== undefined) {
            use(key, { data: `u${step}`, expiresAt, userId, version: expected + 1 });
          }
          break;
        }
        case 4: {
          const held = live(key);
          expect(await store.touch(key, expiresAt)).toBe(held !== undefined);
          if (held !== undefined) held.expiresAt = expiresAt;
          break;
        }
        case 5:
          await store.delete(key);
          model.delete(key);
          break;
        case 6: {
          if (userId === null) break;
          const got = (await store.listByUser(userId)).sort((x, y) => x.key.localeCompare(y.key));
          expect(got).toEqual(listed(userId));
          for (const [k, held] of [...model]) {
            if (held.userId === userId && held.expiresAt <= now) model.delete(k);
          }
          break;
        }
        case 7: {
          if (userId === null) break;
          const except = pick(2) === 0 ? key : undefined;
          const expected = listed(userId).filter((held) => held.key !== except).length;
          expect(await store.deleteByUser(userId, except)).toBe(expected);
          for (const [k, held] of [...model]) {
            if (held.userId === userId && k !== except) model.delete(k);
          }
          break;
        }
        default:
          now += pick(40);
          if (pick(10) === 0) {
            const expired = [...model].filter(([, held]) => held.expiresAt <= now).length;
            expect(await store.prune()).toBe(expired);
            for (const [k, held] of [...model]) if (held.expiresAt <= now) model.delete(k);
          }
      }
      expect(store.size).toBe(model.size);
    }
    for (const key of keys) {
      const held = live(key);
      expect(await store.get(key)).toEqual(held === undefined ? null : held);
    }
  });

  it('finds every session and user when hundreds share one home bucket', async () => {
    // Fixed seeds make the hashes known, so that keys and user IDs can be chosen to pile up in
    // one bucket: the run grows longer than the 15 steps an entry can record, and removals
    // inside it must still move the rest back correctly.
    const random = vi
      .spyOn(globalThis.crypto, 'getRandomValues')
      .mockImplementation(<T extends ArrayBufferView | null>(array: T): T => array);
    const maxSessions = 400;
    const store = new MemoryStore({ maxSessions, sweepInterval: 0 });
    random.mockRestore();
    // The store's hash of text keys and user IDs (FNV-1a, seed 0), and its bucket in a full table.
    const buckets = Math.ceil(maxSessions / 0.75) + 1;
    const homeOf = (text: string) => {
      let hash = 0x811c9dc5;
      for (let i = 0; i < text.length; i++) {
        hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
      }
      return Math.min(Math.floor((hash >>> 0) * (buckets / 4_294_967_296)), buckets - 1);
    };
    const piled: string[] = [];
    for (let i = 0; piled.length < 300; i++) if (homeOf(`k${i}`) === 7) piled.push(`k${i}`);
    const expiresAt = Date.now() + 60_000;
    const others = Array.from({ length: 100 }, () => randomStoreKey());
    for (const key of others) await store.create(key, { data: key, expiresAt, userId: 'u' });
    // Each piled key is also its session's user ID, so both tables get the pile.
    for (const key of piled) await store.create(key, { data: key, expiresAt, userId: key });
    const gone = (i: number) => i % 3 === 0;
    for (const [i, key] of piled.entries()) if (gone(i)) await store.delete(key);
    for (const [i, key] of piled.entries()) {
      expect((await store.get(key))?.data ?? null).toBe(gone(i) ? null : key);
      expect((await store.listByUser(key)).map((record) => record.key)).toEqual(
        gone(i) ? [] : [key],
      );
    }
    for (const key of others) expect((await store.get(key))?.data).toBe(key);
    expect(await store.deleteByUser('u')).toBe(100);
    for (const [i, key] of piled.entries()) {
      if (i % 2 === 0) expect(await store.deleteByUser(key)).toBe(gone(i) ? 0 : 1);
    }
    for (const [i, key] of piled.entries()) {
      const held = !gone(i) && i % 2 === 1;
      expect((await store.get(key))?.userId ?? null).toBe(held ? key : null);
      expect((await store.listByUser(key)).length).toBe(held ? 1 : 0);
    }
    expect(store.size).toBe(piled.filter((_, i) => !gone(i) && i % 2 === 1).length);
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
    expect(() => new MemoryStore({ maxSessions: 2 ** 24 })).toThrow(/maxSessions/);
    expect(() => new MemoryStore({ maxSessions: 1.5 })).toThrow(/maxSessions/);
  });
});
