/**
 * The conformance tests of the optional user index ({@link UserIndex}): for a store that offers
 * it, listing and removing a user's sessions; for one that does not, that it declares none and
 * that the manager refuses what needs it with `UNSUPPORTED`.
 *
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isSessionError } from '../errors.js';
import { SessionManager } from '../manager.js';
import { hasUserIndex, type UserIndex } from '../store.js';
import { keysOf, randomStoreKey, randomUser, type Suite } from './suite.js';

/** A secret for the managers the suite builds on the store. */
const SECRET = 'conformance-suite-secret-of-at-least-32-bytes';

/** Registers the user index tests, or, for a store without one, the tests of its absence. */
export function defineUserIndexTests(suite: Suite): void {
  if (suite.userIndex) defineIndexed(suite);
  else defineUnindexed(suite);
}

function defineIndexed(suite: Suite): void {
  const { runner, record, past, index } = suite;
  const { describe, it } = runner;

  describe('user index', () => {
    it("lists a user's live records with their keys, and nobody else's", async () => {
      const alice = randomUser();
      const bob = randomUser();
      const keys = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
      for (const key of keys) await suite.store.create(key, record(`a-${key}`, alice));
      const bobKey = randomStoreKey();
      await suite.store.create(bobKey, record('b', bob));
      await suite.store.create(randomStoreKey(), record('anonymous'));
      await suite.store.create(randomStoreKey(), past('expired', alice));

      const listed = await index().listByUser(alice);
      assert.deepEqual(keysOf(listed), [...keys].sort());
      for (const row of listed) {
        assert.equal(row.data, `a-${row.key}`);
        assert.equal(row.userId, alice);
        assert.equal(row.version, 1);
      }
      assert.deepEqual(keysOf(await index().listByUser(bob)), [bobKey]);
      assert.deepEqual(await index().listByUser(randomUser()), []);
    });

    it("deletes all of a user's records, or all but one", async () => {
      const alice = randomUser();
      const keys = [randomStoreKey(), randomStoreKey(), randomStoreKey()];
      for (const key of keys) await suite.store.create(key, record('a', alice));
      const bobKey = randomStoreKey();
      await suite.store.create(bobKey, record('b', randomUser()));

      assert.equal(await index().deleteByUser(alice, keys[0]), 2);
      assert.deepEqual(keysOf(await index().listByUser(alice)), [keys[0]]);
      assert.equal(await suite.store.get(keys[1]!), null);
      assert.equal(await suite.store.get(keys[2]!), null);
      assert.equal((await suite.store.get(keys[0]!))?.data, 'a');

      assert.equal(await index().deleteByUser(alice), 1);
      assert.equal(await suite.store.get(keys[0]!), null);
      assert.equal((await suite.store.get(bobKey))?.data, 'b');
      assert.equal(await index().deleteByUser(alice), 0);
    });

    it('follows a record from one user to another, and out of the index', async () => {
      const alice = randomUser();
      const bob = randomUser();
      const key = randomStoreKey();
      await suite.store.create(key, record('x'));
      assert.deepEqual(await suite.store.update(key, record('x', alice), 1), {
        status: 'ok',
        version: 2,
      });
      assert.deepEqual(keysOf(await index().listByUser(alice)), [key]);
      await suite.store.update(key, record('x', bob), 2);
      assert.deepEqual(await index().listByUser(alice), []);
      assert.deepEqual(keysOf(await index().listByUser(bob)), [key]);
      await suite.store.update(key, record('x', null), 3);
      assert.deepEqual(await index().listByUser(bob), []);
    });

    it('drops deleted records from the index', async () => {
      const alice = randomUser();
      const key = randomStoreKey();
      await suite.store.create(key, record('x', alice));
      await suite.store.delete(key);
      assert.deepEqual(await index().listByUser(alice), []);
      assert.equal(await index().deleteByUser(alice), 0);
    });

    it('takes user IDs with any characters', async () => {
      const odd = `ユーザー:{slot} "quoted" ${randomBytes(4).toString('hex')}%_*`;
      const key = randomStoreKey();
      await suite.store.create(key, record('x', odd));
      assert.deepEqual(keysOf(await index().listByUser(odd)), [key]);
      assert.equal(await index().deleteByUser(odd), 1);
    });
  });
}

function defineUnindexed(suite: Suite): void {
  const { describe, it } = suite.runner;

  describe('without a user index', () => {
    it('offers no user index, as declared', () => {
      const declared = 'the store has one: pass userIndex: true';
      assert.equal(hasUserIndex(suite.store), false, declared);
      const methods = suite.store as Partial<UserIndex>;
      assert.equal(methods.listByUser, undefined, `listByUser: ${declared}`);
      assert.equal(methods.deleteByUser, undefined, `deleteByUser: ${declared}`);
    });

    it("has the manager refuse to list, revoke or cap a user's sessions", async () => {
      const { store, clock } = suite;
      const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now });
      const unsupported = (error: unknown) => isSessionError(error, 'UNSUPPORTED');
      await assert.rejects(manager.listUserSessions(randomUser()), unsupported);
      await assert.rejects(manager.revokeUserSessions(randomUser()), unsupported);
      assert.throws(
        () => new SessionManager({ store, secrets: [SECRET], maxSessionsPerUser: 3 }),
        (error: unknown) => isSessionError(error, 'INVALID_OPTION'),
      );
    });
  });
}
