/**
 * The SQLite prune under a microscope, on a copy of one file of live and expired sessions: where
 * the time of each prune batch goes, what holds the event loop, and how a prune on a worker
 * thread compares with one on the event loop. A study tool, run by hand; not part of CI.
 * docs/reliability.md ("Against the goals for pruning", SQLite) and docs/stores/sqlite.md
 * ("Large tables") quote its figures. Linux only: it reads /proc.
 *
 *   npx tsx stress/prune-study/sqlite.ts [--study timeline|compare] [flags]
 *
 * First it builds a template file with the settings docs/stores/sqlite.md recommends:
 * `--sessions` live sessions (default 1000000) and `--expired` expired ones (default a fifth as
 * many; the stress tool's synthetic sessions), analysed and checkpointed. With `--template DIR`
 * the template is kept in DIR and reused by later runs with the same sizes; otherwise it is
 * built in a temporary directory and removed. Each run prunes a fresh copy of it, with the
 * recommended settings and a worker thread that checkpoints every second (`--checkpointer off`
 * drops it), and removes the copy at the end (its WAL reaches gigabytes at a million sessions),
 * or on Ctrl-C (with `node --import tsx` in place of `npx tsx`, whose own process kills a busy
 * one 30 ms after passing the signal on).
 *
 * `--study timeline` (the default) prunes on the event loop with the store's prune loop
 * (src/pruning.ts) and statement, batches sized to `--budget` ms (default 2), while reading one
 * session after another (`--reads off`: no reads). Every batch is timed: its wall time, its own
 * time (the wall time less the time the thread sat ready for a core, from
 * /proc/thread-self/schedstat), its CPU time, page faults and voluntary context switches
 * (getrusage); garbage collections, checkpoints and `SQLITE_BUSY` errors are recorded
 * (`--busy-timeout MS`, default 5000, sets the busy handler). It prints one JSON line of totals
 * (rate, rate per CPU second, batch times, reads before and during the prune, the event loop's
 * longest delay, the WAL's largest size, dirty pages), a `SPLIT` line (batches that blocked in
 * the kernel apart from those that did not), the collections over 5 ms, up to 30 stalls (reads
 * over 10 ms that no batch explains, batches over 8 ms of their own) each with the checkpoints,
 * collections and busy errors that overlapped it, and the first checkpoints.
 *
 * `--study compare` prunes with `--prune loop` (the default: on the event loop, as above) or
 * `--prune worker` (a worker thread with a connection of its own, taking turns with the event
 * loop's writes through a `SharedArrayBuffer` flag and `Atomics.wait`), while the event loop
 * reads sessions and updates one in ten. It prints one JSON line: the rate, the process's CPU
 * per row, the batches' wall times, and reads and writes before and during the prune (µs).
 *
 * It prints the load average first and last. Run it under `nice -n 5` on a shared machine, and
 * read every figure beside its load average.
 */
import Database from 'better-sqlite3';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Pruner, type PruneBatch } from '../../src/pruning.js';
import { sqliteSchema } from '../../src/stores/sqlite.js';
import { latencyOf, scaleKey } from '../scale-measure.js';
import { SQLITE_TUNING, loadSqlite, runQueueMs } from '../scale-sqlite.js';
import { flags, loadLine, numberFlag, onInterrupt, picker, say } from './common.js';

const USAGE = `npx tsx stress/prune-study/sqlite.ts [flags]
  --study timeline|compare  every batch timed (default), or event loop against worker
  --sessions N              live sessions in the template (default 1000000)
  --expired N               expired sessions in the template (default a fifth of --sessions)
  --template DIR            keep the template in DIR and reuse it (default: a temporary one)
  --budget MS               the prune's time budget per batch (default 2)
  --checkpointer on|off     checkpoint on a worker thread every second (default on)
  --busy-timeout MS         timeline: the busy handler's timeout (default 5000)
  --reads on|off            timeline: read sessions during the prune (default on)
  --prune loop|worker       compare: where the prune runs (default loop)`;

const TABLE = 'tessera_prune_study';

/** The store's prune statement (src/stores/sqlite.ts). */
const PRUNE_SQL = `DELETE FROM ${TABLE} WHERE rowid IN (SELECT rowid FROM ${TABLE} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`;

const MODULE = createRequire(import.meta.url).resolve('better-sqlite3');

/** What a template holds; `base` is the time its sessions' expiries were computed from. */
interface Template {
  file: string;
  sessions: number;
  expired: number;
  base: number;
}

/** Reuses the template in `dir` if it has these sizes, or builds it there. */
async function template(dir: string, sessions: number, expired: number): Promise<Template> {
  const file = join(dir, 'template.db');
  const meta = join(dir, 'template.json');
  if (existsSync(meta)) {
    const found = JSON.parse(readFileSync(meta, 'utf8')) as Template;
    if (found.sessions !== sessions || found.expired !== expired) {
      throw new Error(
        `${dir} holds ${found.sessions} + ${found.expired} sessions, not ${sessions} + ${expired}`,
      );
    }
    return { ...found, file };
  }
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const db = new Database(file);
  // The settings of a large table, but the build's own WAL is checkpointed as it goes.
  for (const pragma of SQLITE_TUNING.filter((p) => !p.startsWith('wal_autocheckpoint')))
    db.pragma(pragma);
  db.pragma('journal_mode = WAL');
  db.exec(sqliteSchema(TABLE));
  await loadSqlite(db, TABLE, 0, sessions, started, false);
  await loadSqlite(db, TABLE, 0, expired, started, true);
  db.exec('ANALYZE');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const built: Template = { file, sessions, expired, base: started };
  writeFileSync(meta, JSON.stringify(built));
  say(`built ${sessions} live and ${expired} expired sessions in ${Date.now() - started} ms`);
  return built;
}

/** A checkpoint the worker ran: when (on this thread's clock), how long, and SQLite's answer. */
interface Checkpoint {
  at: number;
  dur: number;
  res: unknown;
}

/** Checkpoints every second on a connection of its own and reports each one. */
const CHECKPOINTER = `
const { workerData, parentPort } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const Database = require(workerData.module);
const db = new Database(workerData.file);
setInterval(() => {
  const at = performance.timeOrigin + performance.now();
  const res = db.pragma('wal_checkpoint(PASSIVE)');
  parentPort.postMessage({ at, dur: performance.timeOrigin + performance.now() - at, res });
}, 1000);
`;

/**
 * A copy of the template in `dir` with the recommended settings, and the checkpointer if asked
 * for; `close()` removes the copy and its WAL.
 */
function openCopy(tpl: Template, dir: string, busyTimeout: number, checkpointer: boolean) {
  const file = join(dir, 'run.db');
  copyFileSync(tpl.file, file);
  const db = new Database(file);
  const pragmas = [...SQLITE_TUNING, `busy_timeout = ${busyTimeout}`];
  for (const pragma of pragmas) db.pragma(pragma);
  db.pragma('journal_mode = WAL');
  const checkpoints: Checkpoint[] = [];
  const worker = checkpointer
    ? new Worker(CHECKPOINTER, { eval: true, workerData: { file, module: MODULE } })
    : undefined;
  worker?.on('message', (m: Checkpoint) =>
    checkpoints.push({ ...m, at: m.at - performance.timeOrigin }),
  );
  return {
    db,
    file,
    pragmas,
    checkpoints,
    walBytes: () => statSync(`${file}-wal`).size,
    async close() {
      await worker?.terminate();
      db.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    },
  };
}

/** The thread's time on a CPU, in ms (the first field of /proc/thread-self/schedstat). */
function onCpuMs(): number {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
}

/** The machine's dirty and under-writeback pages (/proc/vmstat). */
function dirtyPages(): { dirty: number; wb: number } {
  const text = readFileSync('/proc/vmstat', 'utf8');
  const get = (key: string) => Number(new RegExp(`^${key} (\\d+)`, 'm').exec(text)![1]);
  return { dirty: get('nr_dirty'), wb: get('nr_writeback') };
}

/** Milliseconds, two decimals (batch times). */
const ms2 = (xs: number[], q: number) => {
  const sorted = Float64Array.from(xs).sort();
  return (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(2);
};
const msStats = (xs: number[]) => ({
  p50: ms2(xs, 0.5),
  p99: ms2(xs, 0.99),
  max: Math.max(0, ...xs).toFixed(1),
});

/**
 * Runs `prune` while `meanwhile` works until the prune has ended; answers what each answered,
 * when the prune started (`performance.now()`), how long it took, and the process's CPU time
 * meanwhile, all threads (µs).
 */
async function whilePruning<R, D>(
  prune: () => Promise<R>,
  meanwhile: (until: () => boolean) => Promise<D>,
) {
  let done = false;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const pruning = prune().finally(() => (done = true));
  const during = await meanwhile(() => done);
  const result = await pruning;
  const ms = performance.now() - t0;
  const { user, system } = process.cpuUsage(cpu0);
  return { result, during, t0, ms, cpuUs: user + system };
}

/** The store's prune loop on the event loop, batches sized to `budget` ms, at the template's time. */
function eventLoopPrune(tpl: Template, budget: number, batch: PruneBatch): Promise<number> {
  const settings = { interval: 0, batchSize: 1_000, now: () => tpl.base };
  return new Pruner(settings, batch, { batchMs: budget }).prune();
}

/** What every result line starts with: the load, the rows removed, the time and the rate. */
const totals = (removed: number, ms: number) => ({
  load: loadLine().split(' ')[0],
  removed,
  ms: Math.round(ms),
  perSec: Math.round((removed / ms) * 1000),
});

interface Batch {
  at: number;
  wall: number;
  own: number;
  cpuMs: number;
  rows: number;
  minflt: number;
  majflt: number;
  vcsw: number;
  /** The WAL's size, sampled every 50th batch (−1 between). */
  wal: number;
}

interface TimelineOptions {
  budget: number;
  checkpointer: boolean;
  busyTimeout: number;
  reads: boolean;
}

/** `--study timeline`: a prune on the event loop, every batch timed, its stalls explained. */
async function timeline(tpl: Template, dir: string, o: TimelineOptions): Promise<void> {
  const run = openCopy(tpl, dir, o.busyTimeout, o.checkpointer);
  const { db, checkpoints } = run;
  const gcs: { at: number; dur: number; kind: number | undefined }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      gcs.push({ at: e.startTime, dur: e.duration, kind });
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const get = db
    .prepare(
      `SELECT data, expires_at, version, user_id FROM ${TABLE} WHERE key = ? AND expires_at > ?`,
    )
    .raw(true);
  const del = db.prepare(PRUNE_SQL);
  const busyErrors: { at: number; what: string; code: string }[] = [];
  const retry = <T>(what: string, f: () => T): T => {
    for (;;) {
      try {
        return f();
      } catch (error) {
        const code = String((error as { code?: unknown }).code);
        if (!code.startsWith('SQLITE_BUSY')) throw error;
        busyErrors.push({ at: performance.now(), what, code });
      }
    }
  };
  const batches: Batch[] = [];
  const dirties: { at: number; dirty: number; wb: number }[] = [];
  const batch = (now: number, limit: number) => {
    const r0 = process.resourceUsage();
    const q0 = runQueueMs();
    const c0 = onCpuMs();
    const at = performance.now();
    const rows = retry('prune', () => del.run(now, limit).changes);
    const wall = performance.now() - at;
    const own = wall - (runQueueMs() - q0);
    const cpuMs = onCpuMs() - c0;
    const r1 = process.resourceUsage();
    const sampled = (batches.length + 1) % 50 === 0;
    if (sampled) dirties.push({ at, ...dirtyPages() });
    batches.push({
      at,
      wall,
      own,
      cpuMs,
      rows,
      minflt: r1.minorPageFault - r0.minorPageFault,
      majflt: r1.majorPageFault - r0.majorPageFault,
      vcsw: r1.voluntaryContextSwitches - r0.voluntaryContextSwitches,
      wal: sampled ? run.walBytes() : -1,
    });
    return rows;
  };
  const pick = picker(0);
  const readOnce = () => {
    const row = retry('read', () => get.get(scaleKey(pick(tpl.sessions)), Date.now()));
    if (row === undefined) throw new Error('a live session was not found');
  };
  const readLoop = async (until: () => boolean, max: number) => {
    const out: { due: number; lat: number; queued: number }[] = [];
    for (let n = 0; n < max && !until(); n++) {
      const q0 = runQueueMs();
      const due = performance.now();
      await new Promise((resolve) => setImmediate(resolve));
      readOnce();
      const lat = performance.now() - due;
      out.push({ due, lat, queued: lat > 5 ? runQueueMs() - q0 : 0 });
    }
    return out;
  };
  try {
    await readLoop(() => false, 5_000);
    const baseline = await readLoop(() => false, 20_000);
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const {
      result: removed,
      during,
      t0,
      ms,
      cpuUs,
    } = await whilePruning(
      () => eventLoopPrune(tpl, o.budget, batch),
      (until) => (o.reads ? readLoop(until, Number.MAX_SAFE_INTEGER) : Promise.resolve([])),
    );
    histogram.disable();
    const toMiB = (pages: number) => Math.round((pages * 4) / 1024);
    say(
      JSON.stringify({
        checkpointer: o.checkpointer,
        busyTimeout: o.busyTimeout,
        budget: o.budget,
        ...totals(removed, ms),
        cpuPerSec: Math.round(removed / (cpuUs / 1e6)),
        batches: batches.length,
        batchWall: msStats(batches.map((b) => b.wall)),
        batchOwn: msStats(batches.map((b) => b.own)),
        maxDirtyMB: toMiB(Math.max(0, ...dirties.map((d) => d.dirty))),
        maxWbMB: toMiB(Math.max(0, ...dirties.map((d) => d.wb))),
        batchCpuUsPerRow: +((batches.reduce((a, b) => a + b.cpuMs, 0) * 1000) / removed).toFixed(1),
        rowsPerBatch: Math.round(removed / batches.length),
        baseline: latencyOf(baseline.map((r) => r.lat)),
        during: latencyOf(during.map((r) => r.lat)),
        loopMaxMs: +(histogram.max / 1e6).toFixed(1),
        busyErrors: busyErrors.length,
        ckpts: checkpoints.length,
        gcs: gcs.length,
        gcMax: Math.max(0, ...gcs.map((g) => g.dur)).toFixed(1),
        walMax: Math.max(-1, ...batches.map((b) => b.wal)),
        majflt: batches.reduce((a, b) => a + b.majflt, 0),
        minflt: batches.reduce((a, b) => a + b.minflt, 0),
      }),
    );
    // Batches that blocked in the kernel (a voluntary context switch) apart from the others.
    const split = (xs: Batch[]) =>
      xs.length === 0
        ? {}
        : {
            n: xs.length,
            ...msStats(xs.map((b) => b.own)),
            over5: xs.filter((b) => b.own > 5).length,
          };
    const first = batches[0];
    say(
      `SPLIT ${JSON.stringify({
        blocked: split(batches.filter((b) => b.vcsw > 0)),
        unblocked: split(batches.filter((b) => b.vcsw === 0)),
        first: first && {
          own: +first.own.toFixed(1),
          rows: first.rows,
          vcsw: first.vcsw,
          minflt: first.minflt,
        },
      })}`,
    );
    const since = (at: number) => Math.round(at - t0);
    say(
      `gc>5 ${JSON.stringify(gcs.filter((g) => g.dur > 5).map((g) => ({ at: since(g.at), dur: +g.dur.toFixed(1), kind: g.kind })))}`,
    );
    // The stalls: reads over 10 ms that no batch as long explains, and batches over 8 ms of
    // their own, each with what overlapped it.
    const stalls = [
      ...during
        .filter(
          (r) =>
            r.lat > 10 &&
            !batches.some((b) => b.at >= r.due && b.at <= r.due + r.lat && b.wall > r.lat - 1),
        )
        .map((r) => ({
          kind: 'read',
          at: r.due,
          dur: r.lat,
          queued: +r.queued.toFixed(1),
          ownStall: +(
            r.lat -
            r.queued -
            (batches.find((b) => b.at >= r.due && b.at <= r.due + r.lat)?.own ?? 0)
          ).toFixed(1),
        })),
      ...batches
        .filter((b) => b.own > 8)
        .map((b) => ({
          kind: 'batch',
          at: b.at,
          dur: b.wall,
          own: +b.own.toFixed(1),
          rows: b.rows,
          vcsw: b.vcsw,
          minflt: b.minflt,
        })),
    ].sort((a, b) => a.at - b.at);
    const near = (at: number, dur: number, xs: { at: number; dur: number }[]) =>
      xs
        .filter((x) => x.at < at + dur + 1 && x.at + x.dur > at - 1)
        .map((x) => ({ ...x, at: Math.round(x.at - at), dur: +x.dur.toFixed(1) }));
    for (const s of stalls.slice(0, 30)) {
      say(
        JSON.stringify({
          ...s,
          at: since(s.at),
          dur: +s.dur.toFixed(1),
          ckpt: near(s.at, s.dur, checkpoints),
          gc: near(s.at, s.dur, gcs),
          busy: busyErrors
            .filter((b) => b.at >= s.at - 1 && b.at <= s.at + s.dur + 1)
            .map((b) => `${b.what}:${b.code}`),
        }),
      );
    }
    if (busyErrors.length > 0) {
      say(
        `busy ${JSON.stringify(busyErrors.slice(0, 20).map((b) => ({ ...b, at: since(b.at) })))}`,
      );
    }
    say(
      `ckpts ${JSON.stringify(checkpoints.slice(0, 12).map((c) => ({ at: since(c.at), dur: +c.dur.toFixed(1), res: c.res })))}`,
    );
  } finally {
    observer.disconnect();
    await run.close();
  }
}

/**
 * The worker prune of `--prune worker`: batches sized to the budget as the store sizes them,
 * each started only when the event loop does not want to write (`turn[1]`), and holding
 * `turn[0]` (0 free, 1 the worker's batch, 2 the event loop's write) while it runs.
 */
const WORKER_PRUNE = `
const { workerData, parentPort } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const Database = require(workerData.module);
const db = new Database(workerData.file);
for (const p of workerData.pragmas) db.pragma(p);
const del = db.prepare(workerData.sql);
const turn = workerData.turn;
let limit = 50, removed = 0;
const walls = [];
for (;;) {
  while (Atomics.load(turn, 1) !== 0) Atomics.wait(turn, 1, 1, 20);
  if (Atomics.compareExchange(turn, 0, 0, 1) !== 0) continue;
  const t = performance.now();
  let n;
  try { n = del.run(workerData.now, limit).changes; } finally { Atomics.store(turn, 0, 0); Atomics.notify(turn, 0); }
  const took = Math.max(performance.now() - t, 0.01);
  walls.push(took);
  removed += n;
  if (n < limit) break;
  limit = Math.max(1, Math.min(1000, Math.floor(limit * Math.min(2, Math.max(0.5, workerData.budget / took)))));
}
parentPort.postMessage({ removed, walls });
`;

/** `--study compare`: reads and writes on the event loop during a prune here or on a worker. */
async function compare(
  tpl: Template,
  dir: string,
  o: { budget: number; checkpointer: boolean; prune: 'loop' | 'worker' },
) {
  const run = openCopy(tpl, dir, 5_000, o.checkpointer);
  const { db } = run;
  const get = db
    .prepare(
      `SELECT data, expires_at, version, user_id FROM ${TABLE} WHERE key = ? AND expires_at > ?`,
    )
    .raw(true);
  const update = db.prepare(
    `UPDATE ${TABLE} SET version = version + 1 WHERE key = ? AND expires_at > ?`,
  );
  const turn = new Int32Array(new SharedArrayBuffer(8));
  let workerActive = false;
  // The event loop's write: it asks for its turn and waits for the worker's batch under way.
  const write = <T>(f: () => T): T => {
    if (!workerActive) return f();
    Atomics.store(turn, 1, 1);
    while (Atomics.compareExchange(turn, 0, 0, 2) !== 0) Atomics.wait(turn, 0, 1, 20);
    try {
      return f();
    } finally {
      Atomics.store(turn, 0, 0);
      Atomics.store(turn, 1, 0);
      Atomics.notify(turn, 1);
    }
  };
  const pick = picker(0);
  const ops = async (until: () => boolean, max: number) => {
    const reads: number[] = [];
    const writes: number[] = [];
    for (let n = 0; n < max && !until(); n++) {
      const due = performance.now();
      await new Promise((resolve) => setImmediate(resolve));
      if (n % 10 === 9) {
        const key = scaleKey(pick(tpl.sessions));
        write(() => update.run(key, tpl.base));
        writes.push(performance.now() - due);
      } else {
        if (get.get(scaleKey(pick(tpl.sessions)), tpl.base) === undefined) {
          throw new Error('a live session was not found');
        }
        reads.push(performance.now() - due);
      }
    }
    return { reads, writes };
  };
  try {
    await ops(() => false, 5_000);
    const before = await ops(() => false, 20_000);
    const loopPrune = async () => {
      const del = db.prepare(PRUNE_SQL);
      const walls: number[] = [];
      const removed = await eventLoopPrune(tpl, o.budget, (now, limit) => {
        const started = performance.now();
        try {
          return del.run(now, limit).changes;
        } finally {
          walls.push(performance.now() - started);
        }
      });
      return { removed, walls };
    };
    const workerPrune = () => {
      workerActive = true;
      const worker = new Worker(WORKER_PRUNE, {
        eval: true,
        workerData: {
          file: run.file,
          module: MODULE,
          pragmas: run.pragmas,
          sql: PRUNE_SQL,
          turn,
          now: tpl.base,
          budget: o.budget,
        },
      });
      return new Promise<{ removed: number; walls: number[] }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }).finally(() => {
        workerActive = false;
        return worker.terminate();
      });
    };
    const { result, during, ms, cpuUs } = await whilePruning(
      o.prune === 'loop' ? loopPrune : workerPrune,
      (until) => ops(until, Number.MAX_SAFE_INTEGER),
    );
    const { removed, walls } = result;
    say(
      JSON.stringify({
        prune: o.prune,
        budget: o.budget,
        ...totals(removed, ms),
        procCpuPerRowUs: +(cpuUs / removed).toFixed(1),
        batches: latencyOf(walls),
        readsBefore: latencyOf(before.reads),
        readsDuring: latencyOf(during.reads),
        writesBefore: latencyOf(before.writes),
        writesDuring: latencyOf(during.writes),
        walMB: Math.round(run.walBytes() / 1e6),
      }),
    );
  } finally {
    await run.close();
  }
}

function onOff(value: string, name: string): boolean {
  if (value !== 'on' && value !== 'off') throw new Error(`--${name} takes on or off`);
  return value === 'on';
}

async function main(): Promise<void> {
  const args = flags(
    {
      study: 'timeline',
      sessions: '1000000',
      expired: '',
      template: '',
      budget: '2',
      checkpointer: 'on',
      'busy-timeout': '5000',
      reads: 'on',
      prune: 'loop',
    },
    USAGE,
  );
  const sessions = numberFlag(args.sessions, 'sessions');
  const expired =
    args.expired === '' ? Math.floor(sessions / 5) : numberFlag(args.expired, 'expired');
  const budget = numberFlag(args.budget, 'budget', 0.01);
  const checkpointer = onOff(args.checkpointer, 'checkpointer');
  if (args.study !== 'timeline' && args.study !== 'compare')
    throw new Error('--study takes timeline or compare');
  if (args.prune !== 'loop' && args.prune !== 'worker')
    throw new Error('--prune takes loop or worker');
  const prune = args.prune;
  const busyTimeout = numberFlag(args['busy-timeout'], 'busy-timeout', 0);
  const reads = onOff(args.reads, 'reads');

  say(loadLine());
  // The run's copy, and the template unless --template keeps it elsewhere.
  const work = mkdtempSync(join(tmpdir(), 'tessera-prune-study-sqlite-'));
  const removeWork = async () => rmSync(work, { recursive: true, force: true });
  const stopWatching = onInterrupt(removeWork);
  try {
    const tpl = await template(args.template || join(work, 'template'), sessions, expired);
    if (args.study === 'timeline') {
      await timeline(tpl, work, { budget, checkpointer, busyTimeout, reads });
    } else {
      await compare(tpl, work, { budget, checkpointer, prune });
    }
  } finally {
    stopWatching();
    await removeWork();
  }
  say(loadLine());
}

await main();
