import { describe, it, expect } from 'vitest';
import { Pruner, resolvePruning } from '../src/pruning.js';

/** A table of `rows` expired rows whose batches answer at once; it records each batch's limit. */
function backlog(rows: number) {
  const limits: number[] = [];
  let left = rows;
  const batch = (_now: number, limit: number) => {
    limits.push(limit);
    const deleted = Math.min(limit, left);
    left -= deleted;
    return deleted;
  };
  return { limits, batch };
}

const settings = (batchSize: number) =>
  resolvePruning('Test', { pruneInterval: 0, pruneBatchSize: batchSize, now: () => 0 });

describe('Pruner', () => {
  it('deletes in batches of pruneBatchSize until one comes back short', async () => {
    const { limits, batch } = backlog(2_500);
    expect(await new Pruner(settings(1_000), batch).prune()).toBe(2_500);
    expect(limits).toEqual([1_000, 1_000, 1_000]);
  });

  it('with a time budget, starts small and at most doubles the batch while batches stay within it, up to pruneBatchSize', async () => {
    const { limits, batch } = backlog(5_000);
    // A batch that answers at once is far within 1,000 ms: each next one doubles.
    expect(await new Pruner(settings(1_000), batch, { batchMs: 1_000 }).prune()).toBe(5_000);
    expect(limits).toEqual([50, 100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000]);
  });

  it('with a time budget, never asks for more than pruneBatchSize, however small', async () => {
    const { limits, batch } = backlog(10);
    expect(await new Pruner(settings(3), batch, { batchMs: 1_000 }).prune()).toBe(10);
    expect(limits).toEqual([3, 3, 3, 3]);
  });

  it('shares a prune in progress with calls made meanwhile', async () => {
    const { batch } = backlog(3);
    const pruner = new Pruner(settings(2), batch);
    const [a, b] = await Promise.all([pruner.prune(), pruner.prune()]);
    expect([a, b]).toEqual([3, 3]);
  });
});
