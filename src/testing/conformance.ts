import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { SessionRecord, SessionStore, UserRecord } from '../store.js';

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
   * Whether `get`, `create` and `update` answer values rather than promises (a store in memory,
   * or on a synchronous driver). With `true` the suite checks that they do.
   * @defaultValue false: they may answer either
   */
  synchronous?: boolean;
  /**
   * Whether the store keeps the optional user index ({@link SessionStore.listByUser} and
   * {@link SessionStore.deleteByUser}). With `true` the suite tests it; with `false`, that both
   * methods are absent, so that the manager refuses what needs them.
   * @defaultValue true
   */
  userIndex?: boolean;
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
  const userIndex = options.userIndex ?? true;

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
  /** The store's user index, which the tests that use it require. */
  const index = () => {
    assert.equal(typeof store.listByUser, 'function', 'the store has no listByUser()');
    assert.equal(typeof store.deleteByUser, 'function', 'the store has no deleteByUser()');
    return store as SessionStore & {
      listByUser(userId: string): UserRecord[] | Promise<UserRecord[]>;
      deleteByUser(userId: string, exceptKey?: string): number | Promise<number>;
    };
  };
  /** The keys the user index lists for `userId`, sorted; `undefined` without a user index. */
  const indexed = async (userId: string) =>
    userIndex ? keysOf(await index().listByUser(userId)) : undefined;
  /** Answers a store call that must have answered a value, not a promise. */
  const valueOf = <T>(answer: T | Promise<T>, what: string): T => {
    assert.ok(!(answer instanceof Promise), `${what} answered a promise`);
    return answer as T;
  };
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
        if (userIndex) assert.deepEqual(await indexed('u1'), []);
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

    if (userIndex) {
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

          const listed = await index().listByUser(alice);
          assert.deepEqual(keysOf(listed), [...keys].sort());
          for (const row of listed) {
            assert.equal(row.data, `a-${row.key}`);
            assert.equal(row.userId, alice);
            assert.equal(row.version, 1);
          }
          assert.deepEqual(keysOf(await index().listByUser(bob)), [bobKey]);
          assert.deepEqual(await index().listByUser(user()), []);
        });

        it("deletes all of a user's records, or all but one", async () => {
          const alice = user();
          const keys = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
          for (const key of keys) await store.create(key, record('a', alice));
          const bobKey = randomStoreKey();
          await store.create(bobKey, record('b', user()));

          assert.equal(await index().deleteByUser(alice, keys[0]), 2);
          assert.deepEqual(keysOf(await index().listByUser(alice)), [keys[0]]);
          assert.equal(await store.get(keys[1]!), null);
          assert.equal(await store.get(keys[2]!), null);
          assert.equal((await store.get(keys[0]!))?.data, 'a');

          assert.equal(await index().deleteByUser(alice), 1);
          assert.equal(await store.get(keys[0]!), null);
          assert.equal((await store.get(bobKey))?.data, 'b');
          assert.equal(await index().deleteByUser(alice), 0);
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
          assert.deepEqual(keysOf(await index().listByUser(alice)), [key]);
          await store.update(key, record('x', bob), 2);
          assert.deepEqual(await index().listByUser(alice), []);
          assert.deepEqual(keysOf(await index().listByUser(bob)), [key]);
          await store.update(key, record('x', null), 3);
          assert.deepEqual(await index().listByUser(bob), []);
        });

        it('drops deleted records from the index', async () => {
          const alice = user();
          const key = randomStoreKey();
          await store.create(key, record('x', alice));
          await store.delete(key);
          assert.deepEqual(await index().listByUser(alice), []);
          assert.equal(await index().deleteByUser(alice), 0);
        });

        it('takes user IDs with any characters', async () => {
          const odd = `ユーザー:{slot} "quoted" ${randomBytes(4).toString('hex')}%_*`;
          const key = randomStoreKey();
          await store.create(key, record('x', odd));
          assert.deepEqual(keysOf(await index().listByUser(odd)), [key]);
          assert.equal(await index().deleteByUser(odd), 1);
        });
      });
    } else {
      it('offers no user index, as declared', () => {
        const declare = 'the store has it: pass userIndex: true';
        assert.equal(store.listByUser, undefined, `listByUser: ${declare}`);
        assert.equal(store.deleteByUser, undefined, `deleteByUser: ${declare}`);
      });
    }

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
      describe('answers without promises', () => {
        it('get answers a value, and never an expired record', async () => {
          const key = randomStoreKey();
          assert.equal(valueOf(store.get(key), 'get'), null);
          await store.create(key, record('{"a":1}', 'u-now'));
          assert.deepEqual(valueOf(store.get(key), 'get'), {
            ...record('{"a":1}', 'u-now'),
            version: 1,
          });
          await store.update(key, record('{"a":2}', null), 1);
          assert.deepEqual(valueOf(store.get(key), 'get'), {
            ...record('{"a":2}', null),
            version: 2,
          });
          await store.delete(key);
          assert.equal(valueOf(store.get(key), 'get'), null);
          const old = randomStoreKey();
          await store.create(old, past('old'));
          assert.equal(valueOf(store.get(old), 'get'), null);
          if (injectedClock) {
            const timed = randomStoreKey();
            await store.create(timed, record('data', null, minute));
            clock.advance(minute - 1);
            assert.equal(valueOf(store.get(timed), 'get')?.data, 'data');
            clock.advance(2);
            assert.equal(valueOf(store.get(timed), 'get'), null);
          }
        });

        it('create answers a value, over an expired record too', async () => {
          const key = randomStoreKey();
          const written = record('{"a":1}', 'u-create-now');
          assert.equal(valueOf(store.create(key, written), 'create'), true);
          assert.deepEqual(await store.get(key), { ...written, version: 1 });
          if (userIndex) assert.deepEqual(await indexed('u-create-now'), [key]);
          assert.equal(valueOf(store.create(key, record('second')), 'create'), false);
          assert.deepEqual(await store.get(key), { ...written, version: 1 });
          const expired = randomStoreKey();
          await store.create(expired, past('old'));
          assert.equal(valueOf(store.create(expired, record('new')), 'create'), true);
          assert.deepEqual(await store.get(expired), { ...record('new'), version: 1 });
        });

        it('update answers a value: ok, conflict or missing', async () => {
          const key = randomStoreKey();
          await store.create(key, record('v1', 'u-now'));
          assert.deepEqual(valueOf(store.update(key, record('v2', 'u-other'), 1), 'update'), {
            status: 'ok',
            version: 2,
          });
          assert.deepEqual(valueOf(store.update(key, record('stale'), 1), 'update'), {
            status: 'conflict',
          });
          assert.deepEqual(await store.get(key), { ...record('v2', 'u-other'), version: 2 });
          if (userIndex) {
            assert.deepEqual(await indexed('u-other'), [key]);
            assert.deepEqual(await indexed('u-now'), []);
          }
          const missing = randomStoreKey();
          assert.deepEqual(valueOf(store.update(missing, record('x'), 1), 'update'), {
            status: 'missing',
          });
          const expired = randomStoreKey();
          await store.create(expired, past('old'));
          assert.deepEqual(valueOf(store.update(expired, record('new'), 1), 'update'), {
            status: 'missing',
          });
          assert.equal(await store.get(expired), null);
        });
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
          if (userIndex) assert.deepEqual(await indexed('pruned-user'), [live]);
        });
      });
    }
  });
}
