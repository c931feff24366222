/**
 * The longest the memory store holds the event loop at a given size: each build's store is
 * filled to each size in a fresh process, and every call is timed, through the filling, reads,
 * updates and touches, creates that evict, and a sweep of expired sessions while reads go on.
 *
 * A line gives, per phase, the calls made and the longest single call, in wall time and in the
 * main thread's own time: wall time less the time the thread sat ready while the machine ran
 * other processes (Linux's `/proc/thread-self/schedstat`), with the garbage collection inside
 * that call (from V8's `gc` performance entries): a store's own pause is the own time less the
 * collection. Reads are random
 * sessions of the table; updates rewrite a random session's data; creates into the full store
 * each evict one. For the sweep, a fifth of the sessions were stored already expired, and
 * `prune()` runs while reads go on one after another, each timed from the moment it was due,
 * before a turn of the event loop, as stress/scale.ts times them: the line gives the longest turn
 * of the loop (from a `setImmediate` loop beside it, in wall and own time) and the reads' p50 /
 * p99 against the same reads without a sweep. Wall times count the machine's other work: give
 * the load average beside them.
 *
 * @example
 * ```sh
 * node --import tsx bench/memory-store-pauses.ts                      # the store in src/
 * npx tsc -p tsconfig.json --outDir .tmp/before                        # on the older code
 * node --import tsx bench/memory-store-pauses.ts .tmp/before src --sizes 100000,1000000
 * ```
 *
 * @packageDocumentation
 */
import { fork } from 'node:child_process';
import { openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { MemoryStore as Store } from '../src/stores/memory.js';

const DATA = '[{"theme":"dark","locale":"en-GB","cart":3},1795729492993,1,1800000,43200000,1]';

/**
 * One phase's calls: how many, the longest in wall time, the longest in the main thread's own
 * time (wall time less the time it sat ready while other processes ran) and the garbage
 * collection within that call, and how many took over 1 ms of own time. The `Cpu` names hold own
 * time.
 */
interface Calls {
  count: number;
  longestMs: number;
  longestCpuMs: number;
  gcMs: number;
  over1ms: number;
}

interface SweepFigures {
  removed: number;
  ms: number;
  /** The longest turn of the event loop during the sweep: wall and CPU time, in ms. */
  longestTurnMs: number;
  longestTurnCpuMs: number;
  /** Reads during the sweep, and the same reads without one, in µs. */
  reads: { count: number; p50: number; p99: number };
  readsWithout: { count: number; p50: number; p99: number };
}

interface Result {
  build: string;
  size: number;
  phases: Record<string, Calls>;
  sweep: SweepFigures;
  load: number;
}

const schedstat = openSync('/proc/thread-self/schedstat', 'r');
const schedstatBuffer = Buffer.alloc(128);

/**
 * How long the main thread has sat ready while the machine ran other processes, in ms: the
 * second field of Linux's schedstat, in ns, brought up to date whenever the thread runs again.
 */
function waitedMs(): number {
  const length = readSync(schedstat, schedstatBuffer, 0, 128, 0);
  return Number(schedstatBuffer.toString('latin1', 0, length).split(' ')[1]) / 1e6;
}

/** The main thread's own time since `started` (a `performance.now()`), less what it waited. */
function ownSince(started: number, waited: number): number {
  return performance.now() - started - (waitedMs() - waited);
}

/** Garbage collections seen so far: start and duration, in ms of `performance.now()`. */
const collections: { start: number; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    collections.push({ start: entry.startTime, ms: entry.duration });
  }
}).observe({ entryTypes: ['gc'] });

/** Times each call of `op(n)`, n = 0 … count − 1, synchronously, one after another. */
async function each(count: number, op: (n: number) => unknown): Promise<Calls> {
  const calls: Calls = { count, longestMs: 0, longestCpuMs: 0, gcMs: 0, over1ms: 0 };
  let longest = { start: 0, end: 0 };
  for (let n = 0; n < count; n++) {
    const waited = waitedMs();
    const started = performance.now();
    op(n);
    const ended = performance.now();
    const cpuTaken = ended - started - (waitedMs() - waited);
    if (cpuTaken > 1) calls.over1ms++;
    if (ended - started > calls.longestMs) calls.longestMs = ended - started;
    if (cpuTaken > calls.longestCpuMs) {
      calls.longestCpuMs = cpuTaken;
      longest = { start: started, end: ended };
    }
  }
  // The observer hears of collections on a later turn.
  await new Promise((resolve) => setTimeout(resolve, 10));
  for (const { start, ms } of collections) {
    const overlap = Math.min(longest.end, start + ms) - Math.max(longest.start, start);
    if (overlap > 0) calls.gcMs += overlap;
  }
  return calls;
}

const key = (i: number, tag = 's') =>
  createHash('sha256').update(`${tag}:${i}`).digest('base64url');

/** Every other session is signed in, four to a user, as in stress/scale-measure.ts. */
const userOf = (i: number) => (i % 2 === 1 ? null : `user-${Math.floor(i / 8)}`);

function picker(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state % below;
  };
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function percentiles(samples: number[]): { count: number; p50: number; p99: number } {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    count: sorted.length,
    p50: Math.round(at(0.5) * 1000),
    p99: Math.round(at(0.99) * 1000),
  };
}

/** Reads one at a time, each timed from when it was due, until `count` or `until()`. */
async function timedReads(
  store: Store,
  keys: string[],
  count: number,
  until?: () => boolean,
): Promise<number[]> {
  const pick = picker(count);
  const samples: number[] = [];
  for (let n = 0; n < count && (until === undefined || !until()); n++) {
    const due = performance.now();
    await yieldTurn();
    store.get(keys[pick(keys.length)]!);
    samples.push(performance.now() - due);
  }
  return samples;
}

async function measure(build: string, size: number): Promise<Result> {
  const path =
    build === 'src'
      ? '../src/stores/memory.js'
      : pathToFileURL(resolve(build, 'stores/memory.js')).href;
  const { MemoryStore } = (await import(path)) as { MemoryStore: typeof Store };
  let time = 1_800_000_000_000;
  const store = new MemoryStore({ maxSessions: size, sweepInterval: 0, now: () => time });
  const expired = size / 5;
  const live = size - expired;
  const keys = Array.from({ length: live }, (_, i) => key(i));
  const expiredKeys = Array.from({ length: expired }, (_, i) => key(i, 'expired'));
  const phases: Record<string, Calls> = {};
  let loadHigh = loadavg()[0]!;
  const load = () => (loadHigh = Math.max(loadHigh, loadavg()[0]!));

  // The filling: the expired fifth spread among the live sessions, as a sweep finds them.
  phases.create = await each(size, (n) => {
    if (n % 5 === 4) {
      const i = (n - 4) / 5;
      store.create(expiredKeys[i]!, { data: DATA, expiresAt: time + 1_000, userId: userOf(i) });
    } else {
      const i = n - Math.floor(n / 5);
      store.create(keys[i]!, { data: DATA, expiresAt: time + 86_400_000, userId: userOf(i) });
    }
  });
  if (store.size !== size) throw new Error(`the store holds ${store.size} of ${size}`);
  load();
  const pick = picker(size);
  phases.get = await each(size, () => store.get(keys[pick(live)]!));
  load();
  const versions = new Map<number, number>();
  phases.update = await each(size / 2, () => {
    const i = pick(live);
    const version = versions.get(i) ?? 1;
    const record = { data: `${DATA} `, expiresAt: time + 86_400_000, userId: userOf(i) };
    if (store.update(keys[i]!, record, version).status !== 'ok') throw new Error('update');
    versions.set(i, version + 1);
  });
  load();
  phases.touch = await each(size / 2, () => void store.touch(keys[pick(live)]!, time + 86_400_000));
  load();

  // Reads without a sweep, then the sweep with reads going on.
  const readsWithout = await timedReads(store, keys, 5_000);
  time += 2_000;
  let longestTurn = 0;
  let longestTurnCpu = 0;
  let running = true;
  let last = performance.now();
  let lastWaited = waitedMs();
  const tick = () => {
    if (!running) return;
    longestTurn = Math.max(longestTurn, performance.now() - last);
    longestTurnCpu = Math.max(longestTurnCpu, ownSince(last, lastWaited));
    last = performance.now();
    lastWaited = waitedMs();
    setImmediate(tick);
  };
  setImmediate(tick);
  let done = false;
  const started = performance.now();
  const sweeping = store.prune().finally(() => (done = true));
  const during = await timedReads(store, keys, 10_000_000, () => done);
  const removed = await sweeping;
  const sweepMs = performance.now() - started;
  running = false;
  load();
  if (removed !== expired) throw new Error(`the sweep removed ${removed} of ${expired}`);

  // Creates that fill the store again, then each evict one.
  phases['create (evicts)'] = await each(expired + size / 2, (n) => {
    store.create(key(n, 'more'), { data: DATA, expiresAt: time + 86_400_000, userId: null });
  });
  load();
  return {
    build,
    size,
    phases,
    sweep: {
      removed,
      ms: Math.round(sweepMs),
      longestTurnMs: longestTurn,
      longestTurnCpuMs: longestTurnCpu,
      reads: percentiles(during),
      readsWithout: percentiles(readsWithout),
    },
    load: Math.round(load() * 10) / 10,
  };
}

function inChild(build: string, size: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = fork(process.argv[1]!, ['--only', build, '--sizes', String(size)], {
      execArgv: process.execArgv,
    });
    child.once('message', (message) => resolve(message as Result));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${build} at ${size}: the child exited with ${code}`));
    });
  });
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    only: { type: 'string' },
    sizes: { type: 'string', default: '100000,1000000' },
  },
});
const sizes = values.sizes.split(',').map(Number);

if (values.only !== undefined) {
  const result = await measure(values.only, sizes[0]!);
  process.send!(result, () => process.exit(0));
} else {
  const builds = positionals.length > 0 ? positionals : ['src'];
  const ms = (value: number) => value.toFixed(1);
  console.log(`Node ${process.version}`);
  console.log(
    '| build | sessions | phase | calls | longest call: wall ms | longest call: own ms (of which GC) | calls over 1 ms own | load |',
  );
  console.log('|---|--:|---|--:|--:|--:|--:|--:|');
  const sweeps: Result[] = [];
  for (const size of sizes) {
    for (const build of builds) {
      const result = await inChild(build, size);
      sweeps.push(result);
      for (const [phase, calls] of Object.entries(result.phases)) {
        console.log(
          `| ${build} | ${size.toLocaleString('en')} | ${phase} | ${calls.count.toLocaleString('en')} | ${ms(calls.longestMs)} | ${ms(calls.longestCpuMs)} (${ms(calls.gcMs)}) | ${calls.over1ms} | ${result.load} |`,
        );
      }
    }
  }
  console.log('');
  console.log(
    '| build | sessions | swept | sweep ms | longest turn, wall / own ms | reads during: count: p50 / p99 µs | reads without: p50 / p99 µs | load |',
  );
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const { build, size, sweep, load } of sweeps) {
    const { reads, readsWithout } = sweep;
    console.log(
      `| ${build} | ${size.toLocaleString('en')} | ${sweep.removed.toLocaleString('en')} | ${sweep.ms} | ${ms(sweep.longestTurnMs)} / ${ms(sweep.longestTurnCpuMs)} | ${reads.count.toLocaleString('en')}: ${reads.p50} / ${reads.p99} | ${readsWithout.p50} / ${readsWithout.p99} | ${load} |`,
    );
  }
}
