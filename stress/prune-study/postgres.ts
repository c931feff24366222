/**
 * PostgreSQL prune variants side by side, on one table of the shared server: which way of
 * deleting expired rows keeps the rate (rows a second) and the latency of reads made meanwhile.
 * A study tool, run by hand; not part of CI. docs/reliability.md ("Against the goals for
 * pruning") quotes its figures.
 *
 *   npx tsx stress/prune-study/postgres.ts [--sessions N] [--rounds N] [--variants LIST]
 *
 * It loads `--sessions` live sessions (default 1000000; the stress tool's synthetic sessions)
 * into a table of its own (`tessera_prune_study_<random>`), then, `--rounds` times (default 2),
 * tries each variant in turn, in reverse order on odd rounds: it adds a fifth of `--sessions`
 * expired sessions, runs `VACUUM ANALYZE`, times 5,000 reads by key, and prunes them all with
 * the variant while reading one session after another. The table is dropped at the end, or on
 * Ctrl-C. (Interrupt a run started with `node --import tsx` instead of `npx tsx`: tsx's own
 * process kills a busy one 30 ms after passing the signal on, before it has cleaned up.)
 *
 * A variant is a name of parts joined by `-` (default `base,cursor,cursor-async,cursor-pace1`):
 *   base      the store's statement: `DELETE ... WHERE key = ANY (ARRAY(SELECT key ... WHERE
 *             expires_at <= $1 ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED))`
 *   cursor    each batch reads from the expiry where the last ended (`expires_at BETWEEN`)
 *   async     `synchronous_commit = off` for the prune's transactions
 *   bN        batches of N rows (default 1000)
 *   paceN     after each batch, a pause N times as long as the batch took
 *
 * It prints the load average first and last, "loaded N in T ms", and a line per try: rows
 * removed, time and rate; reads' p50 and p99 (µs) just before the prune and during it, with
 * their ratio; the CPU time the prune's backend used (read from /proc, so with the server on
 * this machine); and the reads made while a prune statement was on the server ("in-statement")
 * apart from those made between statements ("between"). Run it under `nice -n 5` on a shared
 * machine, and read every figure beside its load average.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { PostgresStore } from '../../src/stores/postgres.js';
import { loadPostgres } from '../scale-stores.js';
import { POSTGRES } from '../stores.js';
import { runServerStudy, variantParts, type InFlight } from './common.js';

interface Variant {
  cursor: boolean;
  async: boolean;
  batch: number;
  pace: number;
}

function parseVariant(name: string): Variant {
  const { words, numbers } = variantParts(name, ['base', 'cursor', 'async'], ['b', 'pace']);
  return {
    cursor: words.has('cursor'),
    async: words.has('async'),
    batch: numbers.get('b') ?? 1_000,
    pace: numbers.get('pace') ?? 0,
  };
}

/** The prune statement of `v` on `table`: $1 is now, and with a cursor $2 the last expiry seen. */
function pruneSql(v: Variant, table: string): string {
  const async = v.async
    ? ` AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'`
    : '';
  const range = v.cursor ? 'expires_at BETWEEN $2 AND $1' : 'expires_at <= $1';
  return `WITH gone AS (DELETE FROM ${table} WHERE key = ANY (ARRAY(
        SELECT key FROM ${table} WHERE ${range}${async}
        ORDER BY expires_at LIMIT ${v.batch} FOR UPDATE SKIP LOCKED)) RETURNING expires_at)
       SELECT count(*)::int AS n, max(expires_at) AS last FROM gone`;
}

/** CPU time (user and system) of server process `pid`, in ms; undefined when /proc lacks it. */
function backendCpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Prunes `table` with `v` on a connection of its own, one batch after the other. */
async function prune(v: Variant, table: string, now: number, flag: InFlight) {
  const text = pruneSql(v, table);
  const name = `tessera_prune_study_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client(POSTGRES);
  await client.connect();
  try {
    const { rows: pidRows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = Number(pidRows[0]!.pid);
    const cpuBefore = backendCpuMs(pid);
    let after = Number.MIN_SAFE_INTEGER;
    let removed = 0;
    for (;;) {
      const started = performance.now();
      flag.inFlight = true;
      const { rows } = await client.query<{ n: number; last: string | null }>({
        name,
        text,
        values: v.cursor ? [now, after] : [now],
      });
      flag.inFlight = false;
      const n = Number(rows[0]!.n);
      removed += n;
      if (n < v.batch) {
        const cpuAfter = backendCpuMs(pid);
        const cpu =
          cpuBefore === undefined || cpuAfter === undefined ? 'n/a' : String(cpuAfter - cpuBefore);
        return { removed, note: `backend cpu ${cpu} ms` };
      }
      after = Number(rows[0]!.last);
      const took = performance.now() - started;
      await new Promise((resolve) =>
        v.pace > 0 ? setTimeout(resolve, took * v.pace) : setImmediate(resolve),
      );
    }
  } finally {
    await client.end();
  }
}

await runServerStudy({
  file: 'postgres.ts',
  parts: 'base, cursor, async, bN, paceN',
  variants: 'base,cursor,cursor-async,cursor-pace1',
  check: parseVariant,
  async open() {
    const name = `tessera_prune_study_${randomBytes(4).toString('hex')}`;
    const table = `"${name}"`;
    const pool = new pg.Pool({ ...POSTGRES, max: 10 });
    pool.on('error', () => undefined);
    const store = new PostgresStore({ pool, table: name, pruneInterval: 0 });
    const base = Date.now();
    return {
      store,
      load: (from, to, expired) => loadPostgres(pool, table, from, to, base, expired),
      analyze: async () => void (await pool.query(`VACUUM ANALYZE ${table}`)),
      prune: (variant, now, flag) => prune(parseVariant(variant), table, now, flag),
      async close() {
        await store.close();
        await pool.query(`DROP TABLE IF EXISTS ${table}`);
        await pool.end();
      },
    };
  },
});
