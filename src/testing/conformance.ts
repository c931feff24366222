import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { SessionRecord, SessionStore } from '../store.js';

/** The test-runner functions the suite registers its tests with (vitest, mocha, node:test...). */
export interface TestRunner {
  describe: (name: string, body: () => void) => unknown;
  it: (name: string, body: () => Promise<void> | void) => unknown;
  beforeEach: (body: () => Promise<void> | void) => unknown;
  afterEach: (body: () => Promise<void> | void) => unknown;
}

/** A controllable clock handed to the store under test. */
export interface ConformanceClock {
  /** The current instant, in epoch milliseconds. Starts at the real time. */
  now: () => number;
  /** Moves the clock forward. */
  advance: (ms: number) => void;
}

/** How to run the store conformance suite against one store. */
export interface StoreConformanceOptions {
  /** The name shown in the test report. */
  name: string;
  /**
   * Makes a store for one test. Give it `clock.now` if the store accepts a clock; the store
   * should start empty (a fresh key prefix or table per call is the usual way).
   */
  createStore: (clock: ConformanceClock) => SessionStore | Promise<SessionStore>;
  /** Cleans up after one test (drop the table, delete the prefix's keys, close the store). */
  destroyStore?: (store: SessionStore) => Promise<void> | void;
  /**
   * Whether the store reads expiry against the injected clock. Stores whose server keeps time
   * (Redis, Memcached) set `false`; their expiry is then tested with instants in the past.
   * @defaultValue true
   */
  injectedClock?: boolean;
  /**
   * The largest `data` the suite writes, in bytes.
   * @defaultValue 262_144
   */
  largeDataBytes?: number;
  /**
   * Whether to test {@link SessionStore.prune}. Stores with native expiry, which need no
   * pruning, set `false`.
   * @defaultValue true
   */
  prune?: boolean;
  /**
   * Whether the store offers the synchronous {@link SessionStore.getNow},
   * {@link SessionStore.createNow} and {@link SessionStore.updateNow}. With `true` the suite
   * checks that they answer exactly what `get`, `create` and `update` answer; with `false`, that
   * they are absent.
   * @defaultValue false
   */
  synchronous?: boolean;
  /** The runner's functions. */
  runner: TestRunner;
}

/** A fresh key shaped like the ones the manager uses: 43 characters of base64url. */
export function randomStoreKey(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Registers the store conformance suite: every behaviour of the {@link SessionStore} contract,
 * checked against a real store. Any store, Tessera's or a third party's, runs it the same way.
 *
 * @example With vitest:
 * ```ts
 * import { describe, it, beforeEach, afterEach } from 'vitest';
 * import { defineStoreConformance } from 'tessera-session/testing';
 * defineStoreConformance({
 *   name: 'MyStore',
 *   createStore: (clock) => new MyStore({ now: clock.now }),
 *   runner: { describe, it, beforeEach, afterEach },
 * });
 * ```
 */
export function defineStoreConformance(options: StoreConformanceOptions): void {
  const { runner, name } = options;
  const { describe, it, beforeEach, afterEach } = runner;
  const injectedClock = options.injectedClock ?? true;
  const largeDataBytes = options.largeDataBytes ?? 262_144;

  let store: SessionStore;
  let time = Date.now();
  const clock: ConformanceClock = {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
  };
  const minute = 60_000;
  const record = (
    data: string,
    userId: string | null = null,
    ttl = 10 * minute,
  ): SessionRecord => ({
    data,
    expiresAt: clock.now() + ttl,
    userId,
  });
  const past = (data: string, userId: string | null = null): SessionRecord => ({
    data,
    expiresAt: clock.now() - minute,
    userId,
  });
  const keysOf = (rows: { key: string }[]) => rows.map((row) => row.key).sort();
  const user = () => `user-${randomBytes(6).toString('hex')}`;

  describe(`store conformance: ${name}`, () => {
    beforeEach(async () => {
      time = Date.now();
      store = await options.createStore(clock);
    });
    afterEach(async () => {
      await options.destroyStore?.(store);
    });

    describe('get and create', () => {
      it('answers null for a key never written', async () => {
        assert.equal(await store.get(randomStoreKey()), null);
      });

      it('creates a record at version 1 and reads back exactly what was written', async () => {
        const key = randomStoreKey();
        const written = record('{"a":1}', 'u1');
        assert.equal(await store.create(key, written), true);
        assert.deepEqual(await store.get(key), { ...written, version: 1 });
      });

      it('refuses to create over a live record and leaves it unchanged', async () => {
        const key = randomStoreKey();
        await store.create(key, record('first'));
        assert.equal(await store.create(key, record('second')), false);
        const read = await store.get(key);
        assert.equal(read?.data, 'first');
        assert.equal(read?.version, 1);
      });

      it('lets exactly one of many concurrent creates of one key win', async () => {
        const key = randomStoreKey();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.create(key, record(`writer-${i}`))),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = results.indexOf(true);
        assert.equal((await store.get(key))?.data, `writer-${winner}`);
      });

      it('keeps keys apart', async () => {
        const a = randomStoreKey();
        const b = randomStoreKey();
        await store.create(a, record('A'));
        await store.create(b, record('B'));
        assert.equal((await store.get(a))?.data, 'A');
        assert.equal((await store.get(b))?.data, 'B');
      });
    });

    describe('update (compare-and-set)', () => {
      it('writes when the version matches and increments it by one', async () => {
        const key = randomStoreKey();
        await store.create(key, record('v1'));
        const next = record('v2', 'u9');
        assert.deepEqual(await store.update(key, next, 1), { status: 'ok', version: 2 });
        assert.deepEqual(await store.get(key), { ...next, version: 2 });
        assert.deepEqual(await store.update(key, record('v3'), 2), { status: 'ok', version: 3 });
        assert.equal((await store.get(key))?.version, 3);
      });

      it('answers conflict on a stale version and writes nothing', async () => {
        const key = randomStoreKey();
        await store.create(key, record('v1'));
        await store.update(key, record('v2'), 1);
        assert.deepEqual(await store.update(key, record('stale'), 1), { status: 'conflict' });
        const read = await store.get(key);
        assert.equal(read?.data, 'v2');
        assert.equal(read?.version, 2);
      });

      it('answers missing for a key never written, and creates nothing', async () => {
        const key = randomStoreKey();
        assert.deepEqual(await store.update(key, record('ghost'), 1), { status: 'missing' });
        assert.equal(await store.get(key), null);
      });

      it('never brings a deleted record back', async () => {
        const key = randomStoreKey();
        await store.create(key, record('alive', 'u1'));
        await store.delete(key);
        assert.deepEqual(await store.update(key, record('zombie', 'u1'), 1), { status: 'missing' });
        assert.equal(await store.get(key), null);
        assert.deepEqual(await store.listByUser('u1').then(keysOf), []);
      });

      it('answers an update racing a delete with ok or missing, and leaves nothing behind', async () => {
        for (let round = 0; round < 25; round++) {
          const key = randomStoreKey();
          await store.create(key, record('alive', 'racer'));
          const [, result] = await Promise.all([
            store.delete(key),
            store.update(key, record('late', 'racer'), 1),
          ]);
          assert.ok(result.status === 'ok' || result.status === 'missing', `got ${result.status}`);
          assert.equal(await store.get(key), null);
        }
      });

      it('lets exactly one of many concurrent updates at one version win', async () => {
        const key = randomStoreKey();
        await store.create(key, record('base'));
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.update(key, record(`writer-${i}`), 1)),
        );
        const winners = results.flatMap((result, i) => (result.status === 'ok' ? [i] : []));
        assert.equal(winners.length, 1);
        assert.ok(results.every((r) => r.status === 'ok' || r.status === 'conflict'));
        const read = await store.get(key);
        assert.equal(read?.data, `writer-${winners[0]}`);
        assert.equal(read?.version, 2);
      });
    });

    describe('touch', () => {
      it('moves the expiry and leaves data and version alone', async () => {
        const key = randomStoreKey();
        await store.create(key, record('data', 'u1'));
        const later = clock.now() + 30 * minute;
        assert.equal(await store.touch(key, later), true);
        assert.deepEqual(await store.get(key), {
          data: 'data',
          expiresAt: later,
          userId: 'u1',
          version: 1,
        });
      });

      it('answers false for a missing record and creates nothing', async () => {
        const key = randomStoreKey();
        assert.equal(await store.touch(key, clock.now() + minute), false);
        assert.equal(await store.get(key), null);
      });
    });

    describe('delete', () => {
      it('removes the record', async () => {
        const key = randomStoreKey();
        await store.create(key, record('data'));
        await store.delete(key);
        assert.equal(await store.get(key), null);
        assert.equal(await store.touch(key, clock.now() + minute), false);
      });

      it('accepts a key that is not there', async () => {
        await store.delete(randomStoreKey());
      });
    });

    describe('expiry', () => {
      it('never returns, updates or touches a record whose expiry has passed', async () => {
        const key = randomStoreKey();
        await store.create(key, past('old', 'u-exp'));
        assert.equal(await store.get(key), null);
        assert.deepEqual(await store.update(key, record('new'), 1), { status: 'missing' });
        assert.equal(await store.touch(key, clock.now() + minute), false);
        assert.equal(await store.get(key), null);
      });

      it('lets a new record be created over an expired one', async () => {
        const key = randomStoreKey();
        await store.create(key, past('old'));
        assert.equal(await store.create(key, record('new')), true);
        const read = await store.get(key);
        assert.equal(read?.data, 'new');
        assert.equal(read?.version, 1);
      });

      it('expires a record whose expiry was touched into the past', async () => {
        const key = randomStoreKey();
        await store.create(key, record('data'));
        await store.touch(key, clock.now() - minute);
        assert.equal(await store.get(key), null);
      });

      if (injectedClock) {
        it('expires a record once its instant passes on the store clock', async () => {
          const key = randomStoreKey();
          await store.create(key, record('data', null, minute));
          clock.advance(minute - 1);
          assert.equal((await store.get(key))?.data, 'data');
          clock.advance(2);
          assert.equal(await store.get(key), null);
        });

        it('keeps a touched record alive past its first expiry', async () => {
          const key = randomStoreKey();
          await store.create(key, record('data', null, minute));
          clock.advance(minute / 2);
          await store.touch(key, clock.now() + minute);
          clock.advance(minute / 2 + 1);
          assert.equal((await store.get(key))?.data, 'data');
        });
      }
    });

    describe('user index', () => {
      it("lists a user's live records with their keys, and nobody else's", async () => {
        const alice = user();
        const bob = user();
        const keys = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
        for (const key of keys) await store.create(key, record(`a-${key}`, alice));
        const bobKey = randomStoreKey();
        await store.create(bobKey, record('b', bob));
        await store.create(randomStoreKey(), record('anonymous'));
        await store.create(randomStoreKey(), past('expired', alice));

        const listed = await store.listByUser(alice);
        assert.deepEqual(keysOf(listed), [...keys].sort());
        for (const row of listed) {
          assert.equal(row.data, `a-${row.key}`);
          assert.equal(row.userId, alice);
          assert.equal(row.version, 1);
        }
        assert.deepEqual(keysOf(await store.listByUser(bob)), [bobKey]);
        assert.deepEqual(await store.listByUser(user()), []);
      });

      it("deletes all of a user's records, or all but one", async () => {
        const alice = user();
        const keys = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
        for (const key of keys) await store.create(key, record('a', alice));
        const bobKey = randomStoreKey();
        await store.create(bobKey, record('b', user()));

        assert.equal(await store.deleteByUser(alice, keys[0]), 2);
        assert.deepEqual(keysOf(await store.listByUser(alice)), [keys[0]]);
        assert.equal(await store.get(keys[1]!), null);
        assert.equal(await store.get(keys[2]!), null);
        assert.equal((await store.get(keys[0]!))?.data, 'a');

        assert.equal(await store.deleteByUser(alice), 1);
        assert.equal(await store.get(keys[0]!), null);
        assert.equal((await store.get(bobKey))?.data, 'b');
        assert.equal(await store.deleteByUser(alice), 0);
      });

      it('follows a record from one user to another, and out of the index', async () => {
        const alice = user();
        const bob = user();
        const key = randomStoreKey();
        await store.create(key, record('x'));
        assert.deepEqual(await store.update(key, record('x', alice), 1), {
          status: 'ok',
          version: 2,
        });
        assert.deepEqual(keysOf(await store.listByUser(alice)), [key]);
        await store.update(key, record('x', bob), 2);
        assert.deepEqual(await store.listByUser(alice), []);
        assert.deepEqual(keysOf(await store.listByUser(bob)), [key]);
        await store.update(key, record('x', null), 3);
        assert.deepEqual(await store.listByUser(bob), []);
      });

      it('drops deleted records from the index', async () => {
        const alice = user();
        const key = randomStoreKey();
        await store.create(key, record('x', alice));
        await store.delete(key);
        assert.deepEqual(await store.listByUser(alice), []);
        assert.equal(await store.deleteByUser(alice), 0);
      });

      it('takes user IDs with any characters', async () => {
        const odd = `ユーザー:{slot} "quoted" ${randomBytes(4).toString('hex')}%_*`;
        const key = randomStoreKey();
        await store.create(key, record('x', odd));
        assert.deepEqual(keysOf(await store.listByUser(odd)), [key]);
        assert.equal(await store.deleteByUser(odd), 1);
      });
    });

    describe('data', () => {
      it('round-trips large data', async () => {
        const key = randomStoreKey();
        const big = JSON.stringify({ blob: 'x'.repeat(largeDataBytes - 20) });
        await store.create(key, record(big));
        assert.equal((await store.get(key))?.data, big);
        const bigger = big.replace('x', 'y');
        await store.update(key, record(bigger), 1);
        assert.equal((await store.get(key))?.data, bigger);
      });

      it('round-trips unicode, quotes and backslashes exactly', async () => {
        const key = randomStoreKey();
        const text = JSON.stringify({
          text: 'héllo wörld — 日本語 — עברית — 🦄👩‍👩‍👧 — "quoted" \\back\\ \'single\' %s $1 \n\t',
        });
        await store.create(key, record(text, 'ü'));
        assert.deepEqual(await store.get(key), {
          data: text,
          expiresAt: time + 10 * minute,
          userId: 'ü',
          version: 1,
        });
      });
    });

    if (options.synchronous === true) {
      describe('getNow, createNow and updateNow', () => {
        const getNow = (key: string) => {
          assert.equal(typeof store.getNow, 'function', 'the store has no getNow()');
          return store.getNow!(key);
        };
        const createNow = (key: string, written: SessionRecord) => {
          assert.equal(typeof store.createNow, 'function', 'the store has no createNow()');
          return store.createNow!(key, written);
        };
        const updateNow = (key: string, written: SessionRecord, version: number) => {
          assert.equal(typeof store.updateNow, 'function', 'the store has no updateNow()');
          return store.updateNow!(key, written, version);
        };

        it('getNow answers exactly what get answers, synchronously', async () => {
          const key = randomStoreKey();
          assert.equal(getNow(key), null);
          await store.create(key, record('{"a":1}', 'u-now'));
          const read = getNow(key);
          assert.ok(!(read instanceof Promise), 'getNow answered a promise');
          assert.deepEqual(read, await store.get(key));
          await store.update(key, record('{"a":2}', null), 1);
          assert.deepEqual(getNow(key), { ...record('{"a":2}', null), version: 2 });
          await store.delete(key);
          assert.equal(getNow(key), null);
        });

        it('getNow never answers an expired record', async () => {
          const key = randomStoreKey();
          await store.create(key, past('old'));
          assert.equal(getNow(key), null);
          const touched = randomStoreKey();
          await store.create(touched, record('data'));
          await store.touch(touched, clock.now() - minute);
          assert.equal(getNow(touched), null);
          if (injectedClock) {
            const timed = randomStoreKey();
            await store.create(timed, record('data', null, minute));
            clock.advance(minute - 1);
            assert.equal(getNow(timed)?.data, 'data');
            clock.advance(2);
            assert.equal(getNow(timed), null);
          }
        });

        it('createNow is the same insert as create, synchronously', async () => {
          const key = randomStoreKey();
          const written = record('{"a":1}', 'u-create-now');
          const created = createNow(key, written);
          assert.equal(created, true, 'createNow must answer true, synchronously');
          assert.deepEqual(await store.get(key), { ...written, version: 1 });
          assert.deepEqual(keysOf(await store.listByUser('u-create-now')), [key]);
          assert.equal(createNow(key, record('second')), false);
          assert.equal(await store.create(key, record('third')), false);
          assert.deepEqual(await store.get(key), { ...written, version: 1 });
          const expired = randomStoreKey();
          await store.create(expired, past('old'));
          assert.equal(createNow(expired, record('new')), true);
          assert.deepEqual(await store.get(expired), { ...record('new'), version: 1 });
        });

        it('updateNow is the same compare-and-set as update, synchronously', async () => {
          const key = randomStoreKey();
          await store.create(key, record('v1', 'u-now'));
          const written = updateNow(key, record('v2', 'u-other'), 1);
          assert.ok(!(written instanceof Promise), 'updateNow answered a promise');
          assert.deepEqual(written, { status: 'ok', version: 2 });
          assert.deepEqual(updateNow(key, record('stale'), 1), { status: 'conflict' });
          assert.deepEqual(await store.get(key), { ...record('v2', 'u-other'), version: 2 });
          assert.deepEqual(keysOf(await store.listByUser('u-other')), [key]);
          assert.deepEqual(await store.listByUser('u-now'), []);
          const missing = randomStoreKey();
          assert.deepEqual(updateNow(missing, record('x'), 1), { status: 'missing' });
          assert.equal(await store.get(missing), null);
          const expired = randomStoreKey();
          await store.create(expired, past('old'));
          assert.deepEqual(updateNow(expired, record('new'), 1), { status: 'missing' });
          assert.equal(await store.get(expired), null);
        });
      });
    } else {
      it('offers none of getNow, createNow and updateNow, as declared', () => {
        const declare = 'the store has it: pass synchronous: true';
        assert.equal(store.getNow, undefined, `getNow: ${declare}`);
        assert.equal(store.createNow, undefined, `createNow: ${declare}`);
        assert.equal(store.updateNow, undefined, `updateNow: ${declare}`);
      });
    }

    if (options.prune ?? true) {
      describe('prune', () => {
        it('removes expired records only and answers how many', async () => {
          assert.equal(typeof store.prune, 'function', 'the store has no prune()');
          const live = randomStoreKey();
          const gone = [randomStoreKey(), randomStoreKey()];
          await store.create(live, record('live', 'pruned-user'));
          for (const key of gone) await store.create(key, record('soon', 'pruned-user', minute));
          if (injectedClock) clock.advance(minute + 1);
          else for (const key of gone) await store.touch(key, Date.now() - minute);
          const removed = await store.prune!();
          assert.ok(removed >= (injectedClock ? 2 : 0));
          assert.equal((await store.get(live))?.data, 'live');
          assert.deepEqual(keysOf(await store.listByUser('pruned-user')), [live]);
        });
      });
    }
  });
}
