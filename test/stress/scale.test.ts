/**
 * A small run of the scale tool (stress/scale.ts) on the in-process stores, so that the tool
 * keeps working: every store answers through its API at each size, a prune removes the whole
 * expired backlog, and every statement SQLite prepared uses an index. Timings are not checked
 * here: `npm run stress -- --scale` judges them (docs/reliability.md, "Scale").
 */
import { describe, expect, it } from 'vitest';
import { runScale } from '../../stress/scale.js';
import { requireService } from '../support/services.js';

const sqlite = await requireService('better-sqlite3', async () => {
  await import('better-sqlite3');
  return true;
});

describe('the scale tool', () => {
  it.skipIf(!sqlite.available)(
    `measures the memory and SQLite stores at two sizes${sqlite.label}`,
    async () => {
      const results = await runScale({
        stores: ['memory', 'sqlite'],
        sizes: [400, 4_000],
        reads: 500,
        sqliteTuned: true,
        mysqlShared: false,
        progress: () => undefined,
      });
      expect(results.map((result) => result.kind)).toEqual(['memory', 'sqlite']);
      for (const result of results) {
        expect(result.sizes.map((figures) => figures.size)).toEqual([400, 4_000]);
        for (const figures of result.sizes) {
          expect(figures.get.count).toBe(500);
          expect(figures.revoke.count).toBe(50);
          expect(figures.prune?.removed).toBe(figures.size / 5);
        }
      }
      const plans = results[1]!.plans;
      expect(plans.length).toBeGreaterThanOrEqual(8);
      expect(plans.filter((plan) => !plan.indexed)).toEqual([]);
    },
  );
});
