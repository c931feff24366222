/**
 * How a read's latency on the shared PostgreSQL and MariaDB servers moves when the machine's
 * cores are busy with work that is not the database's: the baseline against which the reads
 * made during a prune are read (docs/reliability.md, "Reads during a prune on two cores"). A
 * study tool, run by hand; not part of CI.
 *
 *   npx tsx stress/prune-study/cpu-contention.ts [--hogs 0,1,2] [--reads 5000]
 *
 * For each number of hogs (processes that only spin, at the tool's own niceness), it starts
 * them, waits 300 ms, then reads one session after another through each store's `get`
 * (`--reads` of them, after 500 not counted; each after a turn of the event loop, as the scale
 * run times its reads), and prints the reads' p50, p99 and longest in µs,
 * with the load average first and last. Each store gets a table of its own, dropped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { SessionStore } from '../../src/store.js';
import { MysqlStore } from '../../src/stores/mysql.js';
import { PostgresStore } from '../../src/stores/postgres.js';
import { latencyOf, scaleKey, scaleRecord, timed } from '../scale-measure.js';
import { MARIADB, POSTGRES } from '../stores.js';
import { flags, loadLine, numberFlag, onInterrupt, say } from './common.js';

const USAGE = 'npx tsx stress/prune-study/cpu-contention.ts [--hogs 0,1,2] [--reads 5000]';
const WARMUP_READS = 500;
const SESSIONS = 1_000;

const options = flags({ hogs: '0,1,2', reads: '5000' }, USAGE);
const hogCounts = options.hogs.split(',').map((n) => numberFlag(n, 'hogs', 0));
const reads = numberFlag(options.reads, 'reads');

/** Processes that spin until killed. */
function startHogs(count: number): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }),
  );
}

/** p50, p99 and the longest of `reads` serial `get`s of the store's sessions, in µs. */
async function readLatency(store: SessionStore): Promise<string> {
  await timed(WARMUP_READS, (n) => store.get(scaleKey(n % SESSIONS)));
  const { p50, p99, max } = latencyOf(await timed(reads, (n) => store.get(scaleKey(n % SESSIONS))));
  return `p50 ${p50} p99 ${p99} max ${max} µs`;
}

const name = `tessera_contention_${randomBytes(4).toString('hex')}`;
const pgPool = new pg.Pool({ ...POSTGRES, max: 2 });
const mysqlPool = mysql.createPool({ ...MARIADB, connectionLimit: 2 });
const stores: [string, SessionStore & { createTable(): Promise<void> }][] = [
  ['postgres', new PostgresStore({ pool: pgPool, table: name, pruneInterval: 0 })],
  ['mariadb', new MysqlStore({ pool: mysqlPool, table: name, pruneInterval: 0 })],
];
let hogs: ChildProcess[] = [];

async function cleanUp(): Promise<void> {
  for (const hog of hogs) hog.kill('SIGKILL');
  await pgPool.query(`DROP TABLE IF EXISTS "${name}"`).catch(() => undefined);
  await mysqlPool.query(`DROP TABLE IF EXISTS \`${name}\``).catch(() => undefined);
  await pgPool.end();
  await mysqlPool.end();
}
const stopWatching = onInterrupt(cleanUp);

try {
  say(loadLine());
  const base = Date.now();
  for (const [, store] of stores) {
    await store.createTable();
    for (let i = 0; i < SESSIONS; i++) await store.create(scaleKey(i), scaleRecord(i, base));
  }
  for (const count of hogCounts) {
    hogs = startHogs(count);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const [label, store] of stores) {
      say(`${label.padEnd(8)} hogs ${count}: ${await readLatency(store)}`);
    }
    for (const hog of hogs) hog.kill('SIGKILL');
    hogs = [];
  }
  say(loadLine());
} finally {
  stopWatching();
  await cleanUp();
}
