/**
 * The conformance tests of the store contract's required methods: reads and creates, the
 * compare-and-set update, touch, delete, expiry, data kept exactly, and pruning.
 *
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { MINUTE, randomStoreKey, type Suite } from './suite.js';

/** Registers the tests of `get`, `create`, `update`, `touch`, `delete`, expiry and data. */
export function defineRecordTests(suite: Suite): void {
  const { runner, clock, record, past, injectedClock, largeDataBytes, userIndex, indexed } = suite;
  const { describe, it } = runner;

  describe('get and create', () => {
    it('answers null for a key never written', async () => {
      assert.equal(await suite.store.get(randomStoreKey()), null);
    });

    it('creates a record at version 1 and reads back exactly what was written', async () => {
      const key = randomStoreKey();
      const written = record('{"a":1}', 'u1');
      assert.equal(await suite.store.create(key, written), true);
      assert.deepEqual(await suite.store.get(key), { ...written, version: 1 });
    });

    it('refuses to create over a live record and leaves it unchanged', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('first'));
      assert.equal(await suite.store.create(key, record('second')), false);
      const read = await suite.store.get(key);
      assert.equal(read?.data, 'first');
      assert.equal(read?.version, 1);
    });

    it('lets exactly one of many concurrent creates of one key win', async () => {
      const key = randomStoreKey();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => suite.store.create(key, record(`writer-${i}`))),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.equal((await suite.store.get(key))?.data, `writer-${winner}`);
    });

    it('keeps keys apart', async () => {
      const a = randomStoreKey();
      const b = randomStoreKey();
      await suite.store.create(a, record('A'));
      await suite.store.create(b, record('B'));
      assert.equal((await suite.store.get(a))?.data, 'A');
      assert.equal((await suite.store.get(b))?.data, 'B');
    });
  });

  describe('update (compare-and-set)', () => {
    it('writes when the version matches and increments it by one', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('v1'));
      const next = record('v2', 'u9');
      assert.deepEqual(await suite.store.update(key, next, 1), { status: 'ok', version: 2 });
      assert.deepEqual(await suite.store.get(key), { ...next, version: 2 });
      assert.deepEqual(await suite.store.update(key, record('v3'), 2), {
        status: 'ok',
        version: 3,
      });
      assert.equal((await suite.store.get(key))?.version, 3);
    });

    it('answers conflict on a stale version and writes nothing', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('v1'));
      await suite.store.update(key, record('v2'), 1);
      assert.deepEqual(await suite.store.update(key, record('stale'), 1), { status: 'conflict' });
      const read = await suite.store.get(key);
      assert.equal(read?.data, 'v2');
      assert.equal(read?.version, 2);
    });

    it('answers missing for a key never written, and creates nothing', async () => {
      const key = randomStoreKey();
      assert.deepEqual(await suite.store.update(key, record('ghost'), 1), { status: 'missing' });
      assert.equal(await suite.store.get(key), null);
    });

    it('never brings a deleted record back', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('alive', 'u1'));
      await suite.store.delete(key);
      assert.deepEqual(await suite.store.update(key, record('zombie', 'u1'), 1), {
        status: 'missing',
      });
      assert.equal(await suite.store.get(key), null);
      if (userIndex) assert.deepEqual(await indexed('u1'), []);
    });

    it('answers an update racing a delete with ok or missing, and leaves nothing behind', async () => {
      for (let round = 0; round < 25; round++) {
        const key = randomStoreKey();
        await suite.store.create(key, record('alive', 'racer'));
        const [, result] = await Promise.all([
          suite.store.delete(key),
          suite.store.update(key, record('late', 'racer'), 1),
        ]);
        assert.ok(result.status === 'ok' || result.status === 'missing', `got ${result.status}`);
        assert.equal(await suite.store.get(key), null);
      }
    });

    it('lets exactly one of many concurrent updates at one version win', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('base'));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => suite.store.update(key, record(`writer-${i}`), 1)),
      );
      const winners = results.flatMap((result, i) => (result.status === 'ok' ? [i] : []));
      assert.equal(winners.length, 1);
      assert.ok(results.every((r) => r.status === 'ok' || r.status === 'conflict'));
      const read = await suite.store.get(key);
      assert.equal(read?.data, `writer-${winners[0]}`);
      assert.equal(read?.version, 2);
    });
  });

  describe('touch', () => {
    it('moves the expiry and leaves data and version alone', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('data', 'u1'));
      const later = clock.now() + 30 * MINUTE;
      assert.equal(await suite.store.touch(key, later), true);
      assert.deepEqual(await suite.store.get(key), {
        data: 'data',
        expiresAt: later,
        userId: 'u1',
        version: 1,
      });
    });

    it('answers false for a missing record and creates nothing', async () => {
      const key = randomStoreKey();
      assert.equal(await suite.store.touch(key, clock.now() + MINUTE), false);
      assert.equal(await suite.store.get(key), null);
    });
  });

  describe('delete', () => {
    it('removes the record', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('data'));
      await suite.store.delete(key);
      assert.equal(await suite.store.get(key), null);
      assert.equal(await suite.store.touch(key, clock.now() + MINUTE), false);
    });

    it('accepts a key that is not there', async () => {
      await suite.store.delete(randomStoreKey());
    });
  });

  describe('expiry', () => {
    it('never returns, updates or touches a record whose expiry has passed', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, past('old', 'u-exp'));
      assert.equal(await suite.store.get(key), null);
      assert.deepEqual(await suite.store.update(key, record('new'), 1), { status: 'missing' });
      assert.equal(await suite.store.touch(key, clock.now() + MINUTE), false);
      assert.equal(await suite.store.get(key), null);
    });

    it('lets a new record be created over an expired one', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, past('old'));
      assert.equal(await suite.store.create(key, record('new')), true);
      const read = await suite.store.get(key);
      assert.equal(read?.data, 'new');
      assert.equal(read?.version, 1);
    });

    it('expires a record whose expiry was touched into the past', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('data'));
      await suite.store.touch(key, clock.now() - MINUTE);
      assert.equal(await suite.store.get(key), null);
    });

    if (injectedClock) {
      it('expires a record once its instant passes on the store clock', async () => {
        const key = randomStoreKey();
        await suite.store.create(key, record('data', null, MINUTE));
        clock.advance(MINUTE - 1);
        assert.equal((await suite.store.get(key))?.data, 'data');
        clock.advance(2);
        assert.equal(await suite.store.get(key), null);
      });

      it('keeps a touched record alive past its first expiry', async () => {
        const key = randomStoreKey();
        await suite.store.create(key, record('data', null, MINUTE));
        clock.advance(MINUTE / 2);
        await suite.store.touch(key, clock.now() + MINUTE);
        clock.advance(MINUTE / 2 + 1);
        assert.equal((await suite.store.get(key))?.data, 'data');
      });
    }
  });

  describe('data', () => {
    it('round-trips large data', async () => {
      const key = randomStoreKey();
      const big = JSON.stringify({ blob: 'x'.repeat(largeDataBytes - 20) });
      await suite.store.create(key, record(big));
      assert.equal((await suite.store.get(key))?.data, big);
      const bigger = big.replace('x', 'y');
      await suite.store.update(key, record(bigger), 1);
      assert.equal((await suite.store.get(key))?.data, bigger);
    });

    it('round-trips unicode, quotes and backslashes exactly', async () => {
      const key = randomStoreKey();
      const text = JSON.stringify({
        text: 'héllo wörld — 日本語 — עברית — 🦄👩‍👩‍👧 — "quoted" \\back\\ \'single\' %s $1 \n\t',
      });
      await suite.store.create(key, record(text, 'ü'));
      assert.deepEqual(await suite.store.get(key), {
        data: text,
        expiresAt: clock.now() + 10 * MINUTE,
        userId: 'ü',
        version: 1,
      });
    });
  });
}

/** Registers the test of `prune`, for stores without native expiry. */
export function definePruneTests(suite: Suite): void {
  const { runner, clock, record, injectedClock, userIndex, indexed } = suite;
  const { describe, it } = runner;

  describe('prune', () => {
    it('removes expired records only and answers how many', async () => {
      assert.equal(typeof suite.store.prune, 'function', 'the store has no prune()');
      const live = randomStoreKey();
      const gone = [randomStoreKey(), randomStoreKey()];
      await suite.store.create(live, record('live', 'pruned-user'));
      for (const key of gone) await suite.store.create(key, record('soon', 'pruned-user', MINUTE));
      if (injectedClock) clock.advance(MINUTE + 1);
      else for (const key of gone) await suite.store.touch(key, Date.now() - MINUTE);
      const removed = await suite.store.prune!();
      assert.ok(removed >= (injectedClock ? 2 : 0));
      assert.equal((await suite.store.get(live))?.data, 'live');
      if (userIndex) assert.deepEqual(await indexed('pruned-user'), [live]);
    });
  });
}
