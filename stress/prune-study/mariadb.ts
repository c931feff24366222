/**
 * MariaDB prune variants side by side, on one table in a private server: how many deletes at
 * once, how many keys a delete, and pauses between batches change the rate (rows a second) and
 * the latency of reads made meanwhile. A study tool, run by hand; not part of CI.
 * docs/reliability.md ("Against the goals for pruning") quotes its figures.
 *
 *   npx tsx stress/prune-study/mariadb.ts [--sessions N] [--rounds N] [--variants LIST]
 *
 * It starts a private MariaDB server as the scale run does (stress/scale-mariadb.ts: the
 * buffer pool and redo log docs/stores/mysql.md recommends, sized for the sessions it will
 * hold; the shared server is left alone), loads `--sessions` live sessions (default 1000000;
 * the stress tool's synthetic sessions) into a table of its own, then, `--rounds` times
 * (default 2), tries each variant in turn, in reverse order on odd rounds: it adds a fifth of
 * `--sessions` expired sessions, runs `ANALYZE TABLE`, times 5,000 reads by key, and prunes
 * them all with the variant while reading one session after another. The server is stopped and
 * its directory removed at the end, or on Ctrl-C. (Interrupt a run started with
 * `node --import tsx` instead of `npx tsx`: tsx's own process kills a busy one 30 ms after
 * passing the signal on, before it has cleaned up.)
 *
 * Every variant prunes as the store does (docs/stores/mysql.md, "Expiry and pruning"): it reads
 * the keys of a batch from the expiry index, starting where the last read ended, then deletes
 * them by key, checking the expiry again. A variant is a name of parts joined by `-` (default
 * `c4-k1000,c1-k1000,c1-k1000-pace1,c2-k250`):
 *   cN     N deletes at once (each read takes N times the keys)
 *   kN     N keys a delete
 *   paceN  after each read and its deletes, a pause N times as long as they took
 *
 * It prints the load average first and last, "loaded N in T ms", and a line per try: rows
 * removed, time and rate; reads' p50 and p99 (µs) just before the prune and during it, with
 * their ratio; and the reads made while a prune statement was on the server ("in-statement")
 * apart from those made between statements ("between"). Run it under `nice -n 5` on a shared
 * machine, and read every figure beside its load average.
 */
import type { Pool } from 'mysql2/promise';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MysqlStore } from '../../src/stores/mysql.js';
import { loadMysql, openMariadbPool } from '../scale-stores.js';
import { runServerStudy, variantParts, type InFlight } from './common.js';

interface Variant {
  conc: number;
  keys: number;
  pace: number;
}

function parseVariant(name: string): Variant {
  const { numbers } = variantParts(name, [], ['c', 'k', 'pace']);
  return {
    conc: numbers.get('c') ?? 4,
    keys: numbers.get('k') ?? 1_000,
    pace: numbers.get('pace') ?? 0,
  };
}

/** Prunes `table` with `v`: a read of `conc` × `keys` expired keys, then `conc` deletes at once. */
async function prune(pool: Pool, table: string, v: Variant, now: number, flag: InFlight) {
  const select = `SELECT \`key\`, expires_at FROM ${table} WHERE expires_at BETWEEN ? AND ? ORDER BY expires_at LIMIT ${v.keys * v.conc}`;
  const del = `DELETE FROM ${table} WHERE \`key\` IN (${'?, '.repeat(v.keys - 1)}?) AND expires_at + 0 <= ? ORDER BY \`key\` LIMIT ${v.keys}`;
  let after = Number.MIN_SAFE_INTEGER;
  let removed = 0;
  for (;;) {
    const started = performance.now();
    flag.inFlight = true;
    const [rows] = (await pool.execute(select, [after, now])) as unknown as [
      { key: Buffer; expires_at: unknown }[],
    ];
    if (rows.length > 0) after = Number(rows[rows.length - 1]!.expires_at);
    const deletes = [];
    for (let from = 0; from < rows.length; from += v.keys) {
      const chunk = rows.slice(from, from + v.keys).map((r) => r.key);
      // A short chunk repeats its first key, so every delete has the same statement.
      const values: unknown[] = Array.from({ length: v.keys }, (_, i) => chunk[i] ?? chunk[0]);
      values.push(now);
      deletes.push(pool.execute(del, values as never));
    }
    for (const [result] of await Promise.all(deletes)) {
      removed += (result as { affectedRows: number }).affectedRows;
    }
    flag.inFlight = false;
    if (rows.length < v.keys * v.conc) return { removed };
    const took = performance.now() - started;
    await new Promise((resolve) =>
      v.pace > 0 ? setTimeout(resolve, took * v.pace) : setImmediate(resolve),
    );
  }
}

await runServerStudy({
  file: 'mariadb.ts',
  parts: 'cN, kN, paceN',
  variants: 'c4-k1000,c1-k1000,c1-k1000-pace1,c2-k250',
  check: parseVariant,
  async open(sessions) {
    const name = `tessera_prune_study_${randomBytes(4).toString('hex')}`;
    const table = `\`${name}\``;
    // Room for the live sessions, the expired ones of one try and the reads, as the scale run.
    const { pool, server } = await openMariadbPool(Math.ceil(sessions * 1.25) + 5_000, false);
    const store = new MysqlStore({ pool, table: name, pruneInterval: 0 });
    const base = Date.now();
    return {
      store,
      load: (from, to, expired) => loadMysql(pool, table, from, to, base, expired),
      analyze: async () => void (await pool.query(`ANALYZE TABLE ${table}`)),
      prune: (variant, now, flag) => prune(pool, table, parseVariant(variant), now, flag),
      async close() {
        await store.close();
        await pool.end();
        await server?.stop();
      },
    };
  },
});
