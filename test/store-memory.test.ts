import { describe, it, beforeEach, afterEach, expect, vi } from 'vitest';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { MemoryStore, type MemoryStoreOptions } from '../src/stores/memory.js';
import { SessionError } from '../src/errors.js';
import type { SessionRecord } from '../src/store.js';

defineStoreConformance({
  name: 'MemoryStore',
  createStore: (clock) => new MemoryStore({ now: clock.now, sweepInterval: 0 }),
  destroyStore: (store) => store.close?.(),
  synchronous: true,
  runner: { describe, it, beforeEach, afterEach },
});

const HOUR = 3_600_000;
const record = (data: string, userId: string | null = null): SessionRecord => ({
  data,
  expiresAt: Date.now() + HOUR,
  userId,
});
const keysOf = (rows: { key: string }[]) => rows.map((row) => row.key).sort();

describe('MemoryStore eviction', () => {
  it('evicts the least recently used session beyond maxSessions', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    const [a, b, c, d] = [randomStoreKey(), randomStoreKey(), randomStoreKey(), randomStoreKey()];
    await store.create(a, record('a'));
    await store.create(b, record('b'));
    await store.create(c, record('c'));
    await store.touch(a, Date.now() + HOUR);
    await store.create(d, record('d'));
    expect(store.size).toBe(3);
    expect(await store.get(b)).toBeNull();
    expect((await store.get(a))?.data).toBe('a');
    expect((await store.get(d))?.data).toBe('d');
  });

  it('counts a create, an update or a touch as a use, not a read', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'] as const;
    await store.create(a, record('a'));
    await store.create(b, record('b'));
    await store.create(c, record('c'));
    for (let i = 0; i < 3; i++) expect((await store.get(a))?.data).toBe('a');
    await store.create(d, record('d')); // b, c, d: the reads left a the least recently used
    expect(await store.get(a)).toBeNull();
    expect(await store.update(b, record('b2'), 1)).toEqual({ status: 'ok', version: 2 });
    await store.create(e, record('e')); // d, b, e
    expect(await store.get(c)).toBeNull();
    expect(
      keysOf(
        await Promise.all([b, d, e].map(async (key) => ({ key, ...(await store.get(key))! }))),
      ),
    ).toEqual([b, d, e]);
  });

  it('keeps signed-in sessions through a flood of anonymous ones', async () => {
    const store = new MemoryStore({ maxSessions: 1000, sweepInterval: 0 });
    const alice = randomStoreKey();
    await store.create(alice, record('alice', 'alice'));
    // Signed in after creation, as an anonymous session that logs in is.
    const bob = randomStoreKey();
    await store.create(bob, record('bob'));
    expect(await store.update(bob, record('bob', 'bob'), 1)).toEqual({ status: 'ok', version: 2 });
    const flood = Array.from({ length: 5_000 }, () => randomStoreKey());
    for (const key of flood) expect(await store.create(key, record('anonymous'))).toBe(true);

    expect(store.size).toBe(1000);
    expect((await store.get(alice))?.data).toBe('alice');
    expect((await store.get(bob))?.data).toBe('bob');
    expect(keysOf(await store.listByUser('alice'))).toEqual([alice]);
    // The anonymous sessions kept are the newest 998.
    expect(await store.get(flood[5_000 - 999]!)).toBeNull();
    for (const key of flood.slice(5_000 - 998)) expect(await store.get(key)).not.toBeNull();
  });

  it('evicts a signed-in session only when none is anonymous, least recently used first', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    const [a, b, c, d, e, f] = ['a', 'b', 'c', 'd', 'e', 'f'] as const;
    await store.create(a, record('a', 'user-a'));
    await store.create(b, record('b', 'user-b'));
    await store.create(c, record('c', 'user-c'));
    await store.touch(a, Date.now() + HOUR); // b, c, a
    await store.create(d, record('d', 'user-d')); // c, a, d
    expect(await store.get(b)).toBeNull();
    expect(await store.listByUser('user-b')).toEqual([]);
    expect(await store.update(c, record('c2', 'user-c'), 1)).toEqual({ status: 'ok', version: 2 });
    // a, d, c: an anonymous session, with none anonymous to take, evicts a.
    await store.create(e, record('e'));
    expect(await store.get(a)).toBeNull();
    // With one anonymous session held, the next one takes its place, not the older d.
    await store.create(f, record('f'));
    expect(await store.get(e)).toBeNull();
    expect(store.size).toBe(3);
    for (const [key, data] of [
      [d, 'd'],
      [c, 'c2'],
      [f, 'f'],
    ] as const) {
      expect((await store.get(key))?.data).toBe(data);
    }
  });

  it('evicts in least-recently-used order through any mix of reads, writes, touches and deletes', async () => {
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
      switch (pick() % 5) {
        case 0:
          expect(await store.create(key, record(key))).toBe(!held);
          if (!held) {
            if (model.length === 5) model.shift();
            model.push(key);
          }
          break;
        case 1:
          expect((await store.get(key))?.data ?? null).toBe(held ? key : null);
          break;
        case 3:
          expect(await store.touch(key, Date.now() + HOUR)).toBe(held);
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

  it('evicts in exact least-recently-used order across the shards of a large store', async () => {
    // 4,096 sessions make two shards; whichever holds the oldest session gives it up.
    const store = new MemoryStore({ maxSessions: 4_096, sweepInterval: 0 });
    const keys = Array.from({ length: 4_096 }, () => randomStoreKey());
    for (const key of keys) store.create(key, record(key));
    for (const key of keys.slice(0, 100)) await store.touch(key, Date.now() + HOUR);
    for (const key of keys.slice(100, 200))
      expect(store.update(key, record(key), 1).status).toBe('ok');
    for (const key of keys.slice(200, 300)) expect(store.get(key)?.data).toBe(key);
    const added = Array.from({ length: 200 }, () => randomStoreKey());
    for (const key of added) store.create(key, record(key));
    expect(store.size).toBe(4_096);
    // The reads did not count: the 200 sessions created first and neither touched nor updated went.
    for (const [i, key] of keys.entries()) {
      expect(store.get(key) === null).toBe(i >= 200 && i < 400);
    }
    for (const key of added) expect(store.get(key)?.data).toBe(key);
  });

  it('stays at maxSessions through a million cookieless sessions', () => {
    const store = new MemoryStore({ maxSessions: 1000, sweepInterval: 0 });
    const alice = randomStoreKey();
    store.create(alice, record('alice', 'alice'));
    const anonymous = record('anonymous');
    let largest = 0;
    // create answers at once, as the manager calls it for a new anonymous session.
    for (let i = 0; i < 1_000_000; i++) {
      store.create(`flood-${i}`, anonymous);
      largest = Math.max(largest, store.size);
    }
    expect(largest).toBe(1000);
    expect(store.get(alice)?.data).toBe('alice');
    expect(store.get('flood-999999')?.data).toBe('anonymous');
    expect(store.get('flood-0')).toBeNull();
  });
});

describe('MemoryStore sweeping', () => {
  it('sweeps expired sessions in slices, with requests served between slices', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    const expired = Array.from({ length: 2_500 }, (_, i) => `expired-${i}`);
    for (const key of expired) store.create(key, { data: 'x', expiresAt: now + 10, userId: null });
    const live = Array.from({ length: 6 }, (_, i) => `live-${i}`);
    for (const [i, key] of live.entries()) {
      store.create(key, { data: key, expiresAt: now + HOUR, userId: i < 3 ? 'u' : null });
    }
    now += 100;

    const sweep = store.prune();
    // The first slice ran within the call, at most 1,000 sessions; the rest waits for later turns.
    expect(store.size).toBeLessThan(2_506);
    expect(store.size).toBeGreaterThanOrEqual(2_506 - 1_000);
    // Between slices the store serves requests, and the sweep carries on around their changes.
    expect(store.prune()).toBe(sweep);
    await store.delete(expired[2_000]!);
    expect(store.get('live-3')?.data).toBe('live-3');
    expect(store.update('live-4', { data: 'in', expiresAt: now + HOUR, userId: 'u' }, 1)).toEqual({
      status: 'ok',
      version: 2,
    });
    expect(store.create('new', { data: 'new', expiresAt: now + HOUR, userId: null })).toBe(true);
    expect(await sweep).toBe(2_499);

    expect(store.size).toBe(7);
    for (const key of expired) expect(store.get(key)).toBeNull();
    for (const key of [...live, 'new']) expect(store.get(key)).not.toBeNull();
    expect(keysOf(await store.listByUser('u'))).toEqual(['live-0', 'live-1', 'live-2', 'live-4']);
    expect(await store.prune()).toBe(0);
  });

  it('removes at most 1,000 sessions between two turns of the event loop', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    for (let i = 0; i < 5_500; i++) {
      const userId = i % 3 === 0 ? `user-${i % 7}` : null;
      store.create(`expired-${i}`, { data: 'x', expiresAt: now + 10, userId });
    }
    now += 100;
    const sizes = [store.size];
    let sweeping = true;
    const watch = () => {
      sizes.push(store.size);
      if (sweeping) setImmediate(watch);
    };
    setImmediate(watch);
    expect(await store.prune()).toBe(5_500);
    sweeping = false;
    const removedPerTurn = sizes.slice(1).map((size, i) => sizes[i]! - size);
    expect(Math.max(...removedPerTurn)).toBeLessThanOrEqual(1_000);
    expect(removedPerTurn.filter((removed) => removed > 0).length).toBeGreaterThanOrEqual(5);
    expect(store.size).toBe(0);
    for (let u = 0; u < 7; u++) expect(await store.listByUser(`user-${u}`)).toEqual([]);
  });

  it('sweeps on its timer, every sweepInterval', async () => {
    // Only the interval is faked: the sweep's own pauses between slices stay real.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      let now = 1_000_000;
      const store = new MemoryStore({ now: () => now, sweepInterval: 60_000 });
      for (let i = 0; i < 1_500; i++) {
        store.create(`expired-${i}`, { data: 'x', expiresAt: now + 10, userId: 'u' });
      }
      store.create('live', { data: 'live', expiresAt: now + HOUR, userId: 'u' });
      now += 100;
      vi.advanceTimersByTime(59_999);
      expect(store.size).toBe(1_501);
      vi.advanceTimersByTime(1);
      expect(store.size).toBeLessThan(1_501);
      expect(store.size).toBeGreaterThanOrEqual(501);
      // A prune called meanwhile finishes the timer's sweep rather than starting another.
      expect(await store.prune()).toBe(1_500);
      expect(store.size).toBe(1);
      expect(keysOf(await store.listByUser('u'))).toEqual(['live']);
      await store.close();
      store.create('late', { data: 'x', expiresAt: now + 10, userId: null });
      now += 100;
      vi.advanceTimersByTime(600_000);
      expect(store.size).toBe(2);
    } finally {
      vi.useRealTimers();
    }
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
});

describe('MemoryStore records', () => {
  it('keeps its own copy: changing a record passed in or handed out changes nothing stored', async () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    const key = randomStoreKey();
    const written = record('first', 'u');
    store.create(key, written);
    written.data = 'changed';
    written.userId = 'someone-else';
    written.expiresAt = 0;
    const read = store.get(key)!;
    read.data = 'changed';
    read.version = 7;
    const [listed] = await store.listByUser('u');
    listed!.data = 'changed';
    listed!.userId = null;
    expect(store.get(key)).toEqual({
      ...record('first', 'u'),
      expiresAt: read.expiresAt,
      version: 1,
    });

    const update = record('second', 'u');
    expect(store.update(key, update, 1)).toEqual({ status: 'ok', version: 2 });
    update.data = 'changed';
    update.userId = null;
    expect(store.get(key)).toMatchObject({ data: 'second', userId: 'u', version: 2 });
    expect(keysOf(await store.listByUser('u'))).toEqual([key]);
  });

  it("keeps a user's index through one session, several, and back to one", async () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    const [a, b, c] = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
    store.create(a, record('a', 'u'));
    expect(keysOf(await store.listByUser('u'))).toEqual([a]);
    store.create(b, record('b', 'u'));
    store.create(c, record('c', 'u'));
    expect(keysOf(await store.listByUser('u'))).toEqual(
      keysOf([{ key: a }, { key: b }, { key: c }]),
    );
    await store.delete(a);
    expect(store.update(b, record('b', 'other'), 1)).toEqual({ status: 'ok', version: 2 });
    expect(keysOf(await store.listByUser('u'))).toEqual([c]);
    expect(keysOf(await store.listByUser('other'))).toEqual([b]);
    expect(await store.deleteByUser('u', c)).toBe(0);
    expect(await store.deleteByUser('u')).toBe(1);
    expect(await store.listByUser('u')).toEqual([]);
    expect(store.get(c)).toBeNull();
    expect(store.get(b)?.userId).toBe('other');
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
    for (const { key, ...held } of written) expect(await store.create(key, held)).toBe(true);
    expect(store.size).toBe(keys.length);
    for (const { key, ...held } of written) {
      expect(await store.get(key)).toEqual({ ...held, version: 1 });
    }
    for (const userId of users.filter((user): user is string => user !== null)) {
      const expected = written.filter((held) => held.userId === userId);
      expect(keysOf(await store.listByUser(userId))).toEqual(keysOf(expected));
    }
  });

  // A capacity below the key pool keeps eviction busy, with anonymous and signed-in sessions
  // mixed, users with many sessions, expiry, pruning and sessions moving between users. The
  // larger store spreads its sessions over shards (one per 2,048 sessions), and starts full of
  // long-lived sessions, so that eviction picks its victims across them.
  it.each([
    { maxSessions: 60, pool: 150, steps: 6_000 },
    { maxSessions: 6_000, pool: 12_000, steps: 12_000 },
  ])(
    'agrees with a plain reference model through a long mix of every operation, $maxSessions sessions',
    async ({ maxSessions, pool, steps }) => {
      let now = 1_000_000;
      const store = new MemoryStore({ maxSessions, now: () => now, sweepInterval: 0 });
      interface Held {
        data: string;
        expiresAt: number;
        userId: string | null;
        version: number;
      }
      const model = new Map<string, Held>(); // insertion order = least recently used first
      const keys = [
        ...Array.from({ length: pool - 20 }, () => randomStoreKey()),
        ...Array.from({ length: 20 }, (_, i) => `text-key-${i}`),
      ];
      const users = [null, null, ...Array.from({ length: 12 }, (_, i) => `user-${i}`), ''];
      let seed = 11;
      // The high bits of a linear congruential generator: its low bits repeat with short periods.
      const pick = (n: number) => {
        seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0;
        return Math.floor((seed / 2 ** 32) * n);
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
      // The least recently used anonymous session, or the least recently used of all if none is.
      const victim = () => {
        for (const [key, held] of model) if (held.userId === null) return key;
        return model.keys().next().value!;
      };
      const listed = (userId: string) =>
        [...model]
          .filter(([, held]) => held.userId === userId && held.expiresAt > now)
          .map(([key, held]) => ({ key, ...held }))
          .sort((x, y) => x.key.localeCompare(y.key));
      let evicted = 0;
      if (maxSessions > 60) {
        for (const [i, key] of keys.slice(0, maxSessions).entries()) {
          const held = {
            data: `p${i}`,
            expiresAt: now + 1e9,
            userId: i % 2 === 0 ? null : `prefilled-${i % 1_000}`,
            version: 1,
          };
          store.create(key, { data: held.data, expiresAt: held.expiresAt, userId: held.userId });
          model.set(key, held);
        }
      }
      for (let step = 0; step < steps; step++) {
        const key = keys[pick(keys.length)]!;
        const userId = users[pick(users.length)]!;
        const expiresAt = now + 1 + pick(4_000);
        switch (Math.max(0, pick(12) - 3)) {
          case 0:
          case 1: {
            const held = live(key);
            expect(await store.create(key, { data: `d${step}`, expiresAt, userId })).toBe(
              held === undefined,
            );
            if (held === undefined) {
              if (model.size === maxSessions) {
                model.delete(victim());
                evicted++;
              }
              model.set(key, { data: `d${step}`, expiresAt, userId, version: 1 });
            }
            break;
          }
          case 2: {
            const held = live(key);
            expect(await store.get(key)).toEqual(held ?? null);
            break;
          }
          case 3: {
            const held = live(key);
            const expected = held?.version ?? 1;
            const result = await store.update(
              key,
              { data: `u${step}`, expiresAt, userId },
              expected,
            );
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
            if (held !== undefined) {
              held.expiresAt = expiresAt;
              use(key, held);
            }
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
            // Rarer than the rest: it removes a whole user's sessions, and eviction needs a full store.
            if (userId === null || pick(8) !== 0) break;
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
      for (const key of keys) expect(await store.get(key)).toEqual(live(key) ?? null);
      console.log('EVICTED', maxSessions, evicted, store.size);
    },
  );
});

describe('MemoryStore options', () => {
  it.each<[string, MemoryStoreOptions]>([
    ['maxSessions', { maxSessions: 0 }],
    ['maxSessions', { maxSessions: -1 }],
    ['maxSessions', { maxSessions: 1.5 }],
    ['maxSessions', { maxSessions: Number.NaN }],
    ['maxSessions', { maxSessions: Number.POSITIVE_INFINITY }],
    ['maxSessions', { maxSessions: 2 ** 24 + 1 }],
    ['maxSessions', { maxSessions: '1000' as unknown as number }],
    ['sweepInterval', { sweepInterval: -1 }],
    ['sweepInterval', { sweepInterval: Number.NaN }],
    ['sweepInterval', { sweepInterval: Number.POSITIVE_INFINITY }],
    ['sweepInterval', { sweepInterval: 2 ** 31 }],
    ['sweepInterval', { sweepInterval: '60000' as unknown as number }],
    ['now', { now: 'yesterday' as unknown as () => number }],
  ])('refuses a bad %s with INVALID_OPTION: %o', (name, options) => {
    let caught: unknown;
    try {
      new MemoryStore(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SessionError);
    expect((caught as SessionError).code).toBe('INVALID_OPTION');
    expect((caught as SessionError).message).toContain(`MemoryStore: ${name}`);
  });

  it('accepts the extremes of each option', async () => {
    const largest = new MemoryStore({ maxSessions: 2 ** 24, sweepInterval: 2 ** 31 - 1 });
    const smallest = new MemoryStore({ maxSessions: 1, sweepInterval: 0 });
    smallest.create('a', record('a'));
    smallest.create('b', record('b'));
    expect(smallest.size).toBe(1);
    await largest.close();
    await smallest.close();
  });
});
