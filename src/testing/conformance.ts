/**
 * The store conformance suite's entry: its options, and {@link defineStoreConformance}, which
 * registers the tests of each topic file (records, the user index, synchronous answers).
 *
 * @packageDocumentation
 */
import type { SessionStore } from '../store.js';
import { defineUserIndexTests } from './user-index.js';
import { definePruneTests, defineRecordTests } from './records.js';
import { suiteHelpers, type Suite } from './suite.js';
import { defineSynchronousTests } from './synchronous.js';

export { randomStoreKey } from './suite.js';

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
   * Whether the store offers the optional user index (the `UserIndex` capability: `listByUser`
   * and `deleteByUser`). With `true` the suite tests it; with `false`, that both methods are
   * absent and that the manager refuses what needs them with `UNSUPPORTED`.
   * @defaultValue true
   */
  userIndex?: boolean;
  /** The runner's functions. */
  runner: TestRunner;
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
  const userIndex = options.userIndex ?? true;
  let store: SessionStore | undefined;
  let time = Date.now();
  const clock: ConformanceClock = {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
  };
  const current = (): SessionStore => {
    if (store === undefined) throw new Error('the store is made before each test');
    return store;
  };
  const suite: Suite = {
    runner,
    clock,
    get store() {
      return current();
    },
    injectedClock: options.injectedClock ?? true,
    largeDataBytes: options.largeDataBytes ?? 262_144,
    userIndex,
    ...suiteHelpers(clock, current, userIndex),
  };

  runner.describe(`store conformance: ${name}`, () => {
    runner.beforeEach(async () => {
      time = Date.now();
      store = await options.createStore(clock);
    });
    runner.afterEach(async () => {
      if (store !== undefined) await options.destroyStore?.(store);
      store = undefined;
    });
    defineRecordTests(suite);
    defineUserIndexTests(suite);
    if (options.synchronous === true) defineSynchronousTests(suite);
    if (options.prune ?? true) definePruneTests(suite);
  });
}
