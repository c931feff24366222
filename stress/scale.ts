/**
 * The scale run (`npm run stress -- --scale`): each store filled to each size in turn (10 k, 100 k
 * and 1 M sessions by default in the docs, `--sizes` here), and at each size, through the store
 * API from one process: reads, updates, a user's sessions listed and revoked, and a prune of a
 * backlog of expired sessions (a fifth of the size) while reads go on. Then the statements'
 * query plans, and the application's heap across many sessions (stress/scale-heap.ts).
 * See docs/reliability.md, "Scale".
 */
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import {
  SESSIONS_PER_USER,
  latencyOf,
  loopWatch,
  scaleData,
  scaleExpiry,
  scaleKey,
  scaleUser,
  timed,
  type Latency,
} from './scale-measure.js';
import {
  openScaleStore,
  type Plan,
  type PruneSteps,
  type ScaleKind,
  type ScaleStore,
} from './scale-stores.js';

/** What one scale run does. */
export interface ScaleOptions {
  stores: readonly ScaleKind[];
  /** Table sizes, ascending: the store is filled to each in turn. */
  sizes: readonly number[];
  /** Timed reads per size (updates and the rest are a fraction of it). */
  reads: number;
  /** Apply the SQLite settings docs/stores/sqlite.md recommends (`--sqlite-defaults` turns off). */
  sqliteTuned: boolean;
  /** MariaDB: the shared server as configured (`--mysql-shared`), not a private tuned one. */
  mysqlShared: boolean;
  /** Reports each store's figures as they come. */
  progress(text: string): void;
}

/** A prune of `expired` sessions while reads went on. */
export interface PruneFigures {
  expired: number;
  removed: number;
  ms: number;
  perSecond: number;
  /** The event loop's longest delay during the prune, in milliseconds (timer lateness). */
  loopMaxMs: number;
  /** Its statements, for a store whose statements run on the event loop (SQLite). */
  steps: PruneSteps | undefined;
  /** Rows removed per second of this process's CPU time (the work of an in-process store). */
  perCpuSecond: number;
  /** Reads made during the prune. */
  reads: Latency;
}

/** Figures of one store at one size. */
export interface SizeFigures {
  size: number;
  loadSeconds: number;
  get: Latency;
  update: Latency;
  listByUser: Latency;
  /** `deleteByUser` of a user with {@link SESSIONS_PER_USER} sessions. */
  revoke: Latency;
  prune: PruneFigures | undefined;
  /** Bytes on the server per stored session, where the store reports a size. */
  bytesPerSession: number | undefined;
  /** The machine's highest one-minute load average while this size was measured. */
  load: number;
}

/** Figures of one store. */
export interface StoreScale {
  kind: ScaleKind;
  sizes: SizeFigures[];
  /** The plans at the largest size, with the expired backlog in place and analysed. */
  plans: Plan[];
  violations: string[];
  /** Checks left unjudged, and why. */
  notes: string[];
}

/** Samples the one-minute load average every second; `stop()` answers the highest seen. */
function sampleLoad(): { stop(): number } {
  let highest = loadavg()[0]!;
  const timer = setInterval(() => (highest = Math.max(highest, loadavg()[0]!)), 1_000);
  return {
    stop() {
      clearInterval(timer);
      return Math.round(Math.max(highest, loadavg()[0]!) * 10) / 10;
    },
  };
}

/** A small, seeded generator, so that every run reads the same sessions. */
function picker(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state % below;
  };
}

async function measureSize(
  open: ScaleStore,
  size: number,
  base: number,
  reads: number,
  versions: Map<number, number>,
): Promise<SizeFigures> {
  const { store } = open;
  const pick = picker(size);
  const users = size / (2 * SESSIONS_PER_USER);
  const failures: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok && failures.length < 5) failures.push(what);
  };

  await timed(Math.min(1_000, reads), () => store.get(scaleKey(pick(size))));
  const get = await timed(reads, async () => {
    const i = pick(size);
    expect((await store.get(scaleKey(i))) !== null, `get ${i} found nothing`);
  });
  const update = await timed(Math.ceil(reads / 2), async () => {
    const i = pick(size);
    const version = versions.get(i) ?? 1;
    const record = {
      data: scaleData(i, version + 1),
      expiresAt: scaleExpiry(i, base),
      userId: scaleUser(i),
    };
    const result = await store.update(scaleKey(i), record, version);
    expect(result.status === 'ok', `update ${i} answered ${result.status}`);
    versions.set(i, version + 1);
  });
  const listByUser = await timed(Math.ceil(reads / 5), async () => {
    const user = `user-${pick(users)}`;
    const found = await store.listByUser(user);
    expect(found.length === SESSIONS_PER_USER, `listByUser ${user} found ${found.length}`);
  });
  // Revocation: users of their own, each with the loaded users' number of sessions.
  const revokes = Math.ceil(reads / 10);
  const revokeUser = (u: number) => `revoke-${size}-${u}`;
  for (let u = 0; u < revokes; u++) {
    for (let s = 0; s < SESSIONS_PER_USER; s++) {
      const key = randomBytes(32).toString('base64url');
      const record = { data: scaleData(u), expiresAt: scaleExpiry(u, base), userId: revokeUser(u) };
      await store.create(key, record);
    }
  }
  const revoke = await timed(revokes, async (u) => {
    const removed = await store.deleteByUser(revokeUser(u));
    expect(removed === SESSIONS_PER_USER, `deleteByUser ${revokeUser(u)} removed ${removed}`);
  });
  if (failures.length > 0) throw new Error(`${open.kind} at ${size}: ${failures.join('; ')}`);
  const bytes = await open.size();
  return {
    size,
    loadSeconds: 0,
    get: latencyOf(get),
    update: latencyOf(update),
    listByUser: latencyOf(listByUser),
    revoke: latencyOf(revoke),
    prune: undefined,
    bytesPerSession: bytes === undefined ? undefined : Math.round(bytes / size),
    load: 0,
  };
}

/** Loads a fifth of `size` expired sessions, then prunes them while reads go on. */
async function measurePrune(
  open: ScaleStore,
  size: number,
  base: number,
  expiredSoFar: { count: number },
  reads: number,
): Promise<{ prune: PruneFigures; plans: Plan[] }> {
  const { store } = open;
  const expired = size / 5;
  await open.load(expiredSoFar.count, expiredSoFar.count + expired, base, true);
  expiredSoFar.count += expired;
  await open.analyze();
  // Every request-path statement once, so that the plans cover them all.
  await store.touch(scaleKey(0), scaleExpiry(0, base));
  await store.delete(randomBytes(32).toString('base64url'));
  const plans = await open.plans();

  const pick = picker(size + 1);
  open.pruneSteps();
  let done = false;
  const watch = loopWatch();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const pruning = Promise.resolve(store.prune!()).finally(() => {
    done = true;
  });
  const during = await timed(
    reads * 100,
    () => store.get(scaleKey(pick(size))),
    () => done,
  );
  const removed = await pruning;
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const loop = watch.stop();
  return {
    prune: {
      expired,
      removed,
      ms: Math.round(ms),
      perSecond: Math.round((removed / ms) * 1000),
      loopMaxMs: loop.max,
      steps: open.pruneSteps(),
      perCpuSecond: Math.round((removed / (used.user + used.system)) * 1e6),
      reads: latencyOf(during),
    },
    plans,
  };
}

/**
 * The checks the scale run makes of one store's figures. A 99th percentile is judged only when
 * the machine had a core free for it (load average below the cores): otherwise it measures the
 * time spent waiting for the CPU, and the check is noted as unjudged.
 */
function check(result: StoreScale): void {
  const out = result.violations;
  const first = result.sizes[0];
  const last = result.sizes[result.sizes.length - 1];
  if (first === undefined || last === undefined) return;
  const cores = availableParallelism();
  const busy = (figures: SizeFigures[]) => figures.find((f) => f.load >= cores);
  const tail = (what: string, figures: SizeFigures[], judge: () => void) => {
    const loaded = busy(figures);
    if (loaded === undefined) judge();
    else
      result.notes.push(
        `${what}: not judged, load average ${loaded.load} on ${cores} cores at ${loaded.size}`,
      );
  };
  const grew = (what: string, a: Latency, b: Latency) =>
    tail(`${what} p99 from ${first.size} to ${last.size}`, [first, last], () => {
      if (b.p99 > 2 * a.p99) {
        out.push(
          `${what} p99 grew from ${a.p99} µs at ${first.size} to ${b.p99} µs at ${last.size}`,
        );
      }
    });
  if (first !== last) {
    grew('get', first.get, last.get);
    grew('revoke', first.revoke, last.revoke);
  }
  for (const figures of result.sizes) {
    const prune = figures.prune;
    if (prune === undefined) continue;
    if (prune.removed < prune.expired) {
      out.push(`prune at ${figures.size} removed ${prune.removed} of ${prune.expired}`);
    }
    // Measured over at least 20,000 rows; a smaller prune is over before it has a rate.
    if (result.kind !== 'memory' && prune.expired >= 20_000) {
      tail(`prune rate at ${figures.size}`, [figures], () => {
        if (prune.perSecond < 20_000) {
          out.push(`prune at ${figures.size} removed ${prune.perSecond} rows/s (< 20,000)`);
        }
      });
    }
    const steps = prune.steps;
    if (steps !== undefined) {
      tail(`the longest prune batch at ${figures.size}`, [figures], () => {
        if (steps.wallMs.max > 5) {
          out.push(`a prune batch at ${figures.size} held the event loop ${steps.wallMs.max} ms`);
        }
      });
      // What the store itself holds, without the time the machine gave to others: always judged.
      if (steps.ownMs.max > 5) {
        out.push(`a prune batch at ${figures.size} took ${steps.ownMs.max} ms of its own`);
      }
    }
    if (prune.reads.count >= 100) {
      tail(`reads during the prune at ${figures.size}`, [figures], () => {
        if (prune.reads.p99 > 2 * figures.get.p99) {
          out.push(`reads during the prune at ${figures.size}: p99 ${prune.reads.p99} µs`);
        }
      });
    }
  }
  for (const plan of result.plans) {
    if (!plan.indexed) out.push(`no index in the plan of: ${plan.sql.replace(/\s+/g, ' ')}`);
  }
}

/** Runs the scale measurements for every store in `options.stores`. */
export async function runScale(options: ScaleOptions): Promise<StoreScale[]> {
  const results: StoreScale[] = [];
  const largest = options.sizes[options.sizes.length - 1]!;
  for (const kind of options.stores) {
    const name = `tessera_scale_${randomBytes(4).toString('hex')}`;
    const open = await openScaleStore(kind, {
      name,
      capacity: Math.ceil(largest * 1.25) + options.reads,
      sqliteTuned: options.sqliteTuned,
      mysqlShared: options.mysqlShared,
    });
    const result: StoreScale = { kind, sizes: [], plans: [], violations: [], notes: [] };
    try {
      const base = Date.now();
      const versions = new Map<number, number>();
      const expiredSoFar = { count: 0 };
      let loaded = 0;
      for (const size of options.sizes) {
        const started = performance.now();
        await open.load(loaded, size, base);
        const loadSeconds = Math.round((performance.now() - started) / 100) / 10;
        loaded = size;
        const load = sampleLoad();
        const figures = await measureSize(open, size, base, options.reads, versions);
        figures.loadSeconds = loadSeconds;
        if (open.store.prune !== undefined) {
          const { prune, plans } = await measurePrune(
            open,
            size,
            base,
            expiredSoFar,
            options.reads,
          );
          figures.prune = prune;
          result.plans = plans;
        }
        figures.load = load.stop();
        result.sizes.push(figures);
        options.progress(`${kind} ${size}: ${JSON.stringify(figures)}`);
      }
    } finally {
      await open.close();
    }
    check(result);
    results.push(result);
  }
  return results;
}
