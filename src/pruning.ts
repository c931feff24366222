/**
 * Batched, bounded pruning of expired records, shared by the stores that have no native expiry
 * (the SQL stores): option checks, the timer that never holds the process open, and the loop
 * over batches.
 *
 * @packageDocumentation
 */
import { performance } from 'node:perf_hooks';
import { MAX_TIMER_DELAY, clockOption, numberOption } from './options.js';

/** Pruning options, common to the SQL stores. */
export interface PruningOptions {
  /**
   * How often expired sessions are pruned, in milliseconds; `0` disables the timer (expired
   * sessions are still never returned). The timer never holds the process open.
   * @defaultValue 300_000 (5 minutes)
   */
  pruneInterval?: number;
  /**
   * The most rows one prune statement deletes. Pruning loops over batches and yields to the
   * event loop between them, so a large backlog never holds a lock or the event loop for long.
   * The SQLite store, whose statements run on the event loop, sizes its batches to take about
   * 0.5 ms each, up to this.
   * @defaultValue 1_000
   */
  pruneBatchSize?: number;
  /**
   * The clock, in epoch milliseconds, that expiry is compared against. Tests inject one to move
   * time without sleeping.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/**
 * Deletes one batch of records that expired at or before `now`, at most `limit` of them, and
 * answers how many it deleted.
 */
export type PruneBatch = (now: number, limit: number) => Promise<number> | number;

/** Pruning options after defaults and checks. */
export interface PruningSettings {
  interval: number;
  batchSize: number;
  now: () => number;
}

/** Applies the defaults; a bad option throws `INVALID_OPTION` naming `storeName`. */
export function resolvePruning(storeName: string, options: PruningOptions): PruningSettings {
  return {
    interval: numberOption(storeName, 'pruneInterval', options.pruneInterval, 300_000, {
      max: MAX_TIMER_DELAY,
    }),
    batchSize: numberOption(storeName, 'pruneBatchSize', options.pruneBatchSize, 1_000, {
      min: 1,
      integer: true,
    }),
    now: clockOption(storeName, options.now),
  };
}

/** The first batch of a prune that adapts its batches to a time budget. */
const FIRST_TIMED_BATCH = 50;

/**
 * Runs a store's pruning: `prune()` loops over batches until one comes back short; calls made
 * while a prune runs share it; a timer (if enabled) prunes in the background and ignores
 * failures, since the store's own calls report outages.
 *
 * With `batchMs`, for a store whose statements run on the event loop (SQLite), each batch is
 * sized from the last one's duration to take about that long, within `batchSize`: the event
 * loop is then never held longer than that, whatever the table's size or the machine's speed.
 */
export class Pruner {
  readonly #settings: PruningSettings;
  readonly #batch: PruneBatch;
  readonly #batchMs: number | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<number> | undefined;

  /** Starts the timer: create it once the store can run `batch`. */
  constructor(settings: PruningSettings, batch: PruneBatch, options: { batchMs?: number } = {}) {
    this.#settings = settings;
    this.#batch = batch;
    this.#batchMs = options.batchMs;
    if (settings.interval > 0) {
      this.#timer = setInterval(() => void this.prune().catch(() => undefined), settings.interval);
      this.#timer.unref?.();
    }
  }

  /** Deletes every record expired now, batch by batch, and answers how many. */
  prune(): Promise<number> {
    this.#running ??= this.#loop().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #loop(): Promise<number> {
    const { now, batchSize } = this.#settings;
    const budget = this.#batchMs;
    const instant = now();
    let limit = budget === undefined ? batchSize : Math.min(batchSize, FIRST_TIMED_BATCH);
    let removed = 0;
    for (;;) {
      const started = performance.now();
      const deleted = await this.#batch(instant, limit);
      removed += deleted;
      if (deleted < limit) return removed;
      if (budget !== undefined) {
        // At most halves or doubles: one batch slowed by something else (the machine, a
        // checkpoint) should not set the pace of the rest.
        const took = Math.max(performance.now() - started, 0.01);
        const factor = Math.min(2, Math.max(0.5, budget / took));
        limit = Math.max(1, Math.min(batchSize, Math.floor(limit * factor)));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Stops the timer and waits for a prune in progress. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }
}
