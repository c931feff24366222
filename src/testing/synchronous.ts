/**
 * The conformance tests of a store that answers values: `get`, `create` and `update` answer at
 * once, without a promise, so that a request on it never waits a turn of the event loop.
 *
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { MINUTE, randomStoreKey, valueOf, type Suite } from './suite.js';

/** Registers the tests that `get`, `create` and `update` answer values. */
export function defineSynchronousTests(suite: Suite): void {
  const { runner, clock, record, past, injectedClock, userIndex, indexed } = suite;
  const { describe, it } = runner;

  describe('answers without promises', () => {
    it('get answers a value, and never an expired record', async () => {
      const key = randomStoreKey();
      assert.equal(valueOf(suite.store.get(key), 'get'), null);
      await suite.store.create(key, record('{"a":1}', 'u-now'));
      assert.deepEqual(valueOf(suite.store.get(key), 'get'), {
        ...record('{"a":1}', 'u-now'),
        version: 1,
      });
      await suite.store.update(key, record('{"a":2}', null), 1);
      assert.deepEqual(valueOf(suite.store.get(key), 'get'), {
        ...record('{"a":2}', null),
        version: 2,
      });
      await suite.store.delete(key);
      assert.equal(valueOf(suite.store.get(key), 'get'), null);
      const old = randomStoreKey();
      await suite.store.create(old, past('old'));
      assert.equal(valueOf(suite.store.get(old), 'get'), null);
      if (injectedClock) {
        const timed = randomStoreKey();
        await suite.store.create(timed, record('data', null, MINUTE));
        clock.advance(MINUTE - 1);
        assert.equal(valueOf(suite.store.get(timed), 'get')?.data, 'data');
        clock.advance(2);
        assert.equal(valueOf(suite.store.get(timed), 'get'), null);
      }
    });

    it('create answers a value, over an expired record too', async () => {
      const key = randomStoreKey();
      const written = record('{"a":1}', 'u-create-now');
      assert.equal(valueOf(suite.store.create(key, written), 'create'), true);
      assert.deepEqual(await suite.store.get(key), { ...written, version: 1 });
      if (userIndex) assert.deepEqual(await indexed('u-create-now'), [key]);
      assert.equal(valueOf(suite.store.create(key, record('second')), 'create'), false);
      assert.deepEqual(await suite.store.get(key), { ...written, version: 1 });
      const expired = randomStoreKey();
      await suite.store.create(expired, past('old'));
      assert.equal(valueOf(suite.store.create(expired, record('new')), 'create'), true);
      assert.deepEqual(await suite.store.get(expired), { ...record('new'), version: 1 });
    });

    it('update answers a value: ok, conflict or missing', async () => {
      const key = randomStoreKey();
      await suite.store.create(key, record('v1', 'u-now'));
      assert.deepEqual(valueOf(suite.store.update(key, record('v2', 'u-other'), 1), 'update'), {
        status: 'ok',
        version: 2,
      });
      assert.deepEqual(valueOf(suite.store.update(key, record('stale'), 1), 'update'), {
        status: 'conflict',
      });
      assert.deepEqual(await suite.store.get(key), { ...record('v2', 'u-other'), version: 2 });
      if (userIndex) {
        assert.deepEqual(await indexed('u-other'), [key]);
        assert.deepEqual(await indexed('u-now'), []);
      }
      const missing = randomStoreKey();
      assert.deepEqual(valueOf(suite.store.update(missing, record('x'), 1), 'update'), {
        status: 'missing',
      });
      const expired = randomStoreKey();
      await suite.store.create(expired, past('old'));
      assert.deepEqual(valueOf(suite.store.update(expired, record('new'), 1), 'update'), {
        status: 'missing',
      });
      assert.equal(await suite.store.get(expired), null);
    });
  });
}
