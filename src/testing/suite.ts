/**
 * What the conformance suite's topic files share: the store under test, its clock, and the
 * helpers that make records and read answers.
 *
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hasUserIndex, type SessionRecord, type SessionStore, type UserIndex } from '../store.js';
import type { ConformanceClock, TestRunner } from './conformance.js';

/** One minute, in milliseconds. */
export const MINUTE = 60_000;

/** The suite's settings, defaults applied, and what every test uses. */
export interface Suite {
  runner: TestRunner;
  clock: ConformanceClock;
  /** The store of the running test, made afresh before each. */
  readonly store: SessionStore;
  injectedClock: boolean;
  largeDataBytes: number;
  userIndex: boolean;
  /** A record that expires `ttl` (default ten minutes) from now on the suite's clock. */
  record(data: string, userId?: string | null, ttl?: number): SessionRecord;
  /** A record whose expiry passed a minute ago. */
  past(data: string, userId?: string | null): SessionRecord;
  /** The store's user index; fails the test when the store has none. */
  index(): SessionStore & UserIndex;
  /** The keys the user index lists for `userId`, sorted; `undefined` without a user index. */
  indexed(userId: string): Promise<string[] | undefined>;
}

/** A fresh key shaped like the ones the manager uses: 43 characters of base64url. */
export function randomStoreKey(): string {
  return randomBytes(32).toString('base64url');
}

/** A fresh user ID, so that tests sharing a store never share a user. */
export function randomUser(): string {
  return `user-${randomBytes(6).toString('hex')}`;
}

/** The keys of listed rows, sorted. */
export function keysOf(rows: { key: string }[]): string[] {
  return rows.map((row) => row.key).sort();
}

/** Answers a store call that must have answered a value, not a promise. */
export function valueOf<T>(answer: T | Promise<T>, what: string): T {
  assert.ok(!(answer instanceof Promise), `${what} answered a promise`);
  return answer as T;
}

/** Builds the record helpers of a {@link Suite} on its clock and current store. */
export function suiteHelpers(
  clock: ConformanceClock,
  current: () => SessionStore,
  userIndex: boolean,
): Pick<Suite, 'record' | 'past' | 'index' | 'indexed'> {
  const index = () => {
    const store = current();
    assert.ok(hasUserIndex(store), 'the store has no user index (listByUser and deleteByUser)');
    return store;
  };
  return {
    record: (data, userId = null, ttl = 10 * MINUTE) => ({
      data,
      expiresAt: clock.now() + ttl,
      userId,
    }),
    past: (data, userId = null) => ({ data, expiresAt: clock.now() - MINUTE, userId }),
    index,
    indexed: async (userId) => (userIndex ? keysOf(await index().listByUser(userId)) : undefined),
  };
}
