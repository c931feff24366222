/**
 * The SQLite store of the scale run: a file of its own in a temporary directory, with the settings
 * docs/stores/sqlite.md recommends for large tables (unless `tuned` is false), a bulk loader, the
 * plans of the statements the store prepared, and the timing of each prune batch.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { latencyOf, scaleKey, scaleRecord } from './scale-measure.js';
import type { PruneSteps, ScaleStore } from './scale-stores.js';

/**
 * The SQLite settings docs/stores/sqlite.md recommends for a large table: a larger page cache, the
 * file mapped into memory, `synchronous = NORMAL` under WAL, and no automatic checkpoints on the
 * application's connection: {@link CHECKPOINTER} runs them on a thread of its own.
 */
export const SQLITE_TUNING = [
  'cache_size = -65536',
  'mmap_size = 1073741824',
  'synchronous = NORMAL',
  'wal_autocheckpoint = 0',
];

/**
 * A worker thread that checkpoints the WAL every second on its own connection, so that no
 * write on the event loop copies pages back to the database or waits for the disk.
 */
const CHECKPOINTER = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), 1000);
`;

/**
 * How long this thread has waited, ready to run, for a CPU the machine gave to another process,
 * in milliseconds (the second field of Linux's `/proc/thread-self/schedstat`); 0 elsewhere.
 */
export function runQueueMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return 0;
  }
}

/**
 * Stores sessions `from` … `to` − 1 (expired ones when `expired`) in table `name` of `db`,
 * 20,000 to a transaction, yielding to the event loop between transactions.
 */
export async function loadSqlite(
  db: BetterSqlite3.Database,
  name: string,
  from: number,
  to: number,
  base: number,
  expired = false,
): Promise<void> {
  const insert = db.prepare(
    `INSERT INTO "${name}" (key, data, expires_at, version, user_id) VALUES (?, ?, ?, 1, ?)`,
  );
  const step = 20_000;
  for (let start = from; start < to; start += step) {
    db.transaction(() => {
      for (let i = start; i < Math.min(to, start + step); i++) {
        const record = scaleRecord(i, base, expired);
        insert.run(scaleKey(i, expired), record.data, record.expiresAt, record.userId);
      }
    })();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Opens the SQLite store of the scale run on `name`. */
export async function openSqlite(name: string, tuned: boolean): Promise<ScaleStore> {
  const { default: Database } = await import('better-sqlite3');
  const { SqliteStore } = await import('../src/stores/sqlite.js');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-scale-sqlite-'));
  const file = join(dir, 'sessions.db');
  const db = new Database(file);
  if (tuned) for (const pragma of SQLITE_TUNING) db.pragma(pragma);
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const checkpointer = tuned
    ? new Worker(CHECKPOINTER, { eval: true, workerData: { file, module } })
    : undefined;
  const sent: string[] = [];
  let walls: number[] = [];
  let owns: number[] = [];
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    sent.push(sql);
    const statement = prepare(sql);
    if (/^DELETE .*expires_at <= \?/s.test(sql)) {
      // Times each prune batch: it runs on the event loop, so its length is the loop's hold.
      const run = statement.run.bind(statement);
      statement.run = (...params: unknown[]) => {
        const waited = runQueueMs();
        const started = performance.now();
        try {
          return run(...params);
        } finally {
          const wall = performance.now() - started;
          walls.push(wall);
          owns.push(wall - (runQueueMs() - waited));
        }
      };
    }
    return statement;
  }) as typeof db.prepare;
  const store = new SqliteStore({ db, table: name, pruneInterval: 0 });
  db.prepare = prepare;
  return {
    kind: 'sqlite',
    store,
    load: (from, to, base, expired = false) => loadSqlite(db, name, from, to, base, expired),
    async analyze() {
      db.exec('ANALYZE');
    },
    async plans() {
      return sent.map((sql) => {
        const holes = (sql.match(/\?/g) ?? []).length;
        const rows = db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all(...Array.from({ length: holes }, () => 0)) as { detail: string }[];
        const plan = rows.map((row) => row.detail);
        // A step that reads the table without an index is "SCAN <table>" with no index named.
        const indexed = !plan.some((step) => /^SCAN /.test(step) && !/USING/.test(step));
        return { sql, plan, indexed };
      });
    },
    pruneSteps(): PruneSteps {
      const inMs = (samples: number[]) => {
        const { p50, p99, max } = latencyOf(samples);
        const ms = (us: number) => Math.round(us / 100) / 10;
        return { p50: ms(p50), p99: ms(p99), max: ms(max) };
      };
      const value = { count: walls.length, wallMs: inMs(walls), ownMs: inMs(owns) };
      walls = [];
      owns = [];
      return value;
    },
    async size() {
      return statSync(file).size;
    },
    async close() {
      await store.close();
      await checkpointer?.terminate();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
