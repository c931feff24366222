/**
 * The benchmark harness: starts each contender's server in its own process, loads it from this
 * process with autocannon (one scenario at a time, a warm-up and then a few measured runs),
 * collects the server's own CPU time and store counts, measures memory in fresh processes, and
 * writes a Markdown report.
 *
 * @packageDocumentation
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  byRunOrder,
  CONTENDERS,
  hasSessions,
  matchesFilter,
  type Contender,
  type StoreKind,
} from './contenders.js';
import { buildDirFor, compileTessera, removeBuild } from './build.js';
import { measureMemoryInChild, ServerProcess } from './children.js';
import { resolveOptions, ROOT, type BenchOptions } from './options.js';
import { SCENARIO_PATHS, type RunCounters, type ScenarioId } from './protocol.js';
import { collectEnvironment, renderReport, type Environment } from './report.js';
import { measureInstructions, type InstructionResults } from './instructions.js';
import { startServices, type Services } from './services.js';
import type { MemoryResult } from './servers/memory.js';
import { sourceExists } from './servers/modules.js';

const require = createRequire(import.meta.url);

/** The parts of autocannon's result the harness reads. */
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
}

interface CannonClient {
  setHeaders(headers: Record<string, string>): void;
  requestIterator?: { setHeaders(headers: Record<string, string>): void };
}

type Autocannon = (
  options: {
    url: string;
    connections: number;
    pipelining?: number;
    /** Seconds to run, or... */
    duration?: number;
    /** ...how many requests to send. */
    amount?: number;
    /** Seconds to wait for an answer. */
    timeout?: number;
    headers?: Record<string, string>;
    setupClient?: (client: CannonClient) => void;
  },
  done: (error: unknown, result: CannonResult) => void,
) => { stop(): void };

const autocannon = require('autocannon') as Autocannon;

/** One measured run. */
export interface RunResult extends RunCounters {
  /** Mean requests per second over the run (autocannon's per-second samples). */
  rps: number;
  /** Median latency, in milliseconds. */
  p50: number;
  /** 99th percentile latency, in milliseconds. */
  p99: number;
  /** Responses the load generator received (the server's own count is `requests`). */
  responses: number;
  non2xx: number;
  errors: number;
  /** Redis commands executed by the server during the run, by command (Redis contenders only). */
  redisCommands: Record<string, number> | null;
  /**
   * CPU that processes other than the server and the harness used during the run, as a share
   * of the whole machine (0.25 = a quarter of all cores); null where `/proc/stat` is missing.
   * Database servers count here too.
   */
  otherCpuShare: number | null;
}

/** One contender in one scenario. */
export interface Row {
  contender: Contender;
  scenario: ScenarioId;
  runs: RunResult[];
  /** Medians over the runs. */
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU time per request, in microseconds (median over runs). */
  cpuPerRequest: number;
  /** The lowest and highest CPU time per request of the runs. */
  cpuRange: [number, number];
  /** The kernel's part of the server CPU time per request, in microseconds (median over runs). */
  systemPerRequest: number;
  /** Session-store method calls per request, by method; null for the bare frameworks. */
  storeCallsPerRequest: Record<string, number> | null;
  /** Round trips to the store's server per request, by kind; null without a client. */
  roundTripsPerRequest: Record<string, number> | null;
  /** Redis commands per request, by command. */
  redisCommandsPerRequest: Record<string, number> | null;
  /** Non-2xx answers and connection errors over all runs. */
  failures: number;
  /** Why the scenario could not be measured. */
  error?: string;
}

/** The harness's result. */
export interface BenchReport {
  options: BenchOptions;
  environment: Environment;
  startedAt: Date;
  finishedAt: Date;
  rows: Row[];
  /** Contenders that did not run, and why. */
  skipped: { contender: Contender; reason: string }[];
  memory: { label: string; note?: string; result?: MemoryResult; error?: string }[];
  /** Instructions per request under callgrind, when they were counted (`--instructions`). */
  instructions?: InstructionResults;
  /** How Redis was provided. */
  redisNote: string;
  /** How the servers ran Tessera (compiled, or from source). */
  tesseraNote: string;
  /** The harness's CPU time for a fixed piece of work before each round of runs, in µs (see {@link calibrate}). */
  calibration: number[];
  /** The machine's 1, 5 and 15 minute load averages when the bench started and when it ended. */
  loadAverage: { start: number[]; end: number[] };
  /** Where the report was written. */
  outFile: string;
  markdown: string;
}

/** Why a contender cannot run here, or undefined when it can. */
function unavailableReason(
  contender: Contender,
  services: Services | undefined,
): string | undefined {
  if (contender.library === 'tessera') {
    if (contender.framework === 'fastify' && !sourceExists('adapters/fastify.js')) {
      return 'src/adapters/fastify.ts does not exist yet';
    }
    if (!sourceExists(`stores/${contender.store}.js`))
      return `src/stores/${contender.store}.ts does not exist yet`;
  }
  for (const name of contender.packages) {
    try {
      require.resolve(name);
    } catch {
      return `package ${name} is not installed`;
    }
  }
  const reason = services?.unavailable[contender.store];
  return reason;
}

/** Busy CPU time of the whole machine so far, in microseconds, from `/proc/stat`; null elsewhere. */
function machineCpu(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    // /proc/stat counts in USER_HZ ticks, 100 a second on Linux.
    return (
      ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) *
      10_000
    );
  } catch {
    return null;
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function perRequest(
  runs: readonly RunResult[],
  pick: (run: RunResult) => Record<string, number> | null,
): Record<string, number> | null {
  const totals: Record<string, number> = {};
  let requests = 0;
  let any = false;
  for (const run of runs) {
    const counts = pick(run);
    if (counts === null) continue;
    any = true;
    requests += run.requests;
    for (const [name, count] of Object.entries(counts)) totals[name] = (totals[name] ?? 0) + count;
  }
  if (!any || requests === 0) return null;
  const out: Record<string, number> = {};
  for (const [name, count] of Object.entries(totals)) out[name] = count / requests;
  return out;
}

function diffCounts(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, count] of Object.entries(after)) {
    // The harness's own INFO calls are not the server's work.
    if (name === 'info') continue;
    const diff = count - (before[name] ?? 0);
    if (diff > 0) out[name] = diff;
  }
  return out;
}

function cookiePairOf(response: Response): string | undefined {
  const cookies = response.headers.getSetCookie();
  for (let i = cookies.length - 1; i >= 0; i--) {
    const pair = cookies[i]!.split(';')[0]!;
    if (pair.slice(pair.indexOf('=') + 1) !== '') return pair;
  }
  return undefined;
}

/** Logs in `count` sessions (a few at a time) and answers their cookies. */
export async function logIn(port: number, count: number): Promise<string[]> {
  const cookies: string[] = new Array<string>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const response = await fetch(`http://127.0.0.1:${port}/login?u=${index}`);
      await response.arrayBuffer();
      const pair = cookiePairOf(response);
      if (response.status !== 200 || pair === undefined) {
        throw new Error(
          `login answered ${response.status} ${pair === undefined ? 'without a session cookie' : ''}`.trim(),
        );
      }
      cookies[index] = pair;
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, count) }, worker));
  return cookies;
}

/** Checks that a scenario does what it claims before it is measured. */
async function verify(
  port: number,
  scenario: ScenarioId,
  contender: Contender,
  cookie: string | undefined,
): Promise<void> {
  const get = async (path: string, withCookie: boolean) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      headers: withCookie && cookie !== undefined ? { cookie } : {},
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
    return { body, cookie: cookiePairOf(response) };
  };
  const hasSession = hasSessions(contender);
  switch (scenario) {
    case 'read': {
      const { body } = await get('/read', true);
      if (body.theme !== 'dark' || (hasSession && body.user !== 'user-0')) {
        throw new Error(`/read did not see the logged-in session: ${JSON.stringify(body)}`);
      }
      break;
    }
    case 'write': {
      const first = await get('/write', true);
      const second = await get('/write', true);
      if (hasSession && (second.body.n as number) !== (first.body.n as number) + 1) {
        throw new Error(
          `/write did not persist its change: ${JSON.stringify(first.body)} then ${JSON.stringify(second.body)}`,
        );
      }
      break;
    }
    case 'new': {
      const { body, cookie: issued } = await get('/new', false);
      if (body.n !== 1 || (hasSession && issued === undefined))
        throw new Error('/new did not issue a session cookie');
      break;
    }
  }
}

/**
 * Sends exactly `amount` requests to `url` over `connections` keep-alive connections, each with
 * one of `cookies` (none when empty); rejects on any error or non-2xx answer.
 */
export function cannonCount(
  url: string,
  cookies: readonly string[],
  amount: number,
  connections: number,
): Promise<CannonResult> {
  let index = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        amount,
        // A server under valgrind answers slowly: a long timeout keeps the count from failing.
        timeout: 300,
        // One session per connection, as in cannon(): concurrent writes to one session on a store
        // that answers later would conflict, and a conflict exhausting its retries is a 409.
        setupClient: (client) => {
          if (cookies.length > 0) client.setHeaders({ cookie: cookies[index++ % cookies.length]! });
        },
      },
      (error, result) => {
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else if (result.errors > 0 || result.non2xx > 0)
          reject(
            new Error(`${result.errors} errors, ${result.non2xx} non-2xx answers from ${url}`),
          );
        else resolve(result);
      },
    );
  });
}

/** Loads a server with one scenario for `seconds`, one cookie per connection. */
export function cannon(
  port: number,
  scenario: ScenarioId,
  options: BenchOptions,
  seconds: number,
  cookies: readonly string[],
): Promise<CannonResult> {
  let index = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}${SCENARIO_PATHS[scenario]}`,
        connections: options.connections,
        pipelining: options.pipelining,
        duration: seconds,
        // Each connection is one client with its own session, as real traffic is; concurrent
        // writes to one shared session would measure conflict handling instead.
        setupClient: (client) => {
          if (cookies.length === 0) return;
          const headers = { cookie: cookies[index++ % cookies.length]! };
          // With pipelining autocannon refuses setHeaders; setting up a client before its
          // first request is safe, so go to its request iterator directly.
          if (options.pipelining > 1 && client.requestIterator !== undefined)
            client.requestIterator.setHeaders(headers);
          else client.setHeaders(headers);
        },
      },
      (error, result) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(result),
    );
  });
}

function formatRate(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function emptyRow(contender: Contender, scenario: ScenarioId): Row {
  return {
    contender,
    scenario,
    runs: [],
    rps: Number.NaN,
    p50: Number.NaN,
    p99: Number.NaN,
    cpuPerRequest: Number.NaN,
    cpuRange: [Number.NaN, Number.NaN],
    systemPerRequest: Number.NaN,
    storeCallsPerRequest: null,
    roundTripsPerRequest: null,
    redisCommandsPerRequest: null,
    failures: 0,
  };
}

function summarize(row: Row): void {
  row.rps = median(row.runs.map((run) => run.rps));
  row.p50 = median(row.runs.map((run) => run.p50));
  row.p99 = median(row.runs.map((run) => run.p99));
  const cpu = row.runs.map((run) => run.cpuMicros / Math.max(1, run.requests));
  row.cpuPerRequest = median(cpu);
  row.cpuRange = [Math.min(...cpu), Math.max(...cpu)];
  row.systemPerRequest = median(
    row.runs.map((run) => run.systemMicros / Math.max(1, run.requests)),
  );
  row.storeCallsPerRequest = !hasSessions(row.contender)
    ? null
    : perRequest(row.runs, (run) => run.storeCalls);
  row.roundTripsPerRequest = perRequest(row.runs, (run) => run.roundTrips);
  row.redisCommandsPerRequest = perRequest(row.runs, (run) => run.redisCommands);
  row.failures = row.runs.reduce((sum, run) => sum + run.non2xx + run.errors, 0);
}

/**
 * CPU time, in microseconds, that this process takes for a fixed piece of work (hashing). Taken
 * before every round of runs, its spread shows how much the machine's speed moved during the
 * bench (on a shared virtual machine it does, and every CPU figure moves with it).
 */
export function calibrate(): number {
  const before = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < 20_000; i++)
    sink += createHash('sha256').update(`calibration ${i}`).digest()[0]!;
  const used = process.cpuUsage(before);
  return sink >= 0 ? used.user + used.system : Number.NaN;
}

/** A running contender. */
interface Entrant {
  contender: Contender;
  server: ServerProcess;
}

async function measureRun(
  entrant: Entrant,
  scenario: ScenarioId,
  cookies: readonly string[],
  options: BenchOptions,
  services: Services,
): Promise<RunResult> {
  const { contender, server } = entrant;
  const profile =
    options.profileDir !== undefined && contender.library === 'tessera'
      ? join(options.profileDir, `${contender.id}-${scenario}-${Date.now()}.cpuprofile`)
      : undefined;
  await server.begin(profile);
  const redisBefore = contender.store === 'redis' ? await services.redisCommandStats() : null;
  const machineBefore = machineCpu();
  const harnessBefore = process.cpuUsage();
  const started = performance.now();
  const result = await cannon(server.port, scenario, options, options.duration, cookies);
  const elapsed = (performance.now() - started) * 1000;
  const harness = process.cpuUsage(harnessBefore);
  const machineAfter = machineCpu();
  const redisAfter = contender.store === 'redis' ? await services.redisCommandStats() : null;
  const counters = await server.end();
  const otherCpuShare =
    machineBefore === null || machineAfter === null
      ? null
      : Math.max(
          0,
          (machineAfter - machineBefore - harness.user - harness.system - counters.cpuMicros) /
            (elapsed * cpus().length),
        );
  return {
    otherCpuShare,
    ...counters,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    responses: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    redisCommands:
      redisBefore !== null && redisAfter !== null ? diffCounts(redisAfter, redisBefore) : null,
  };
}

/**
 * Measures every running contender in every scenario. Within a scenario the runs go round-robin
 * (run 1 of every contender, then run 2...), so a burst of other activity on the machine lands
 * on several contenders' runs instead of all runs of one, and the median sets it aside. Within a
 * round, the contenders a target compares run back to back ({@link byRunOrder}).
 */
async function measureAll(
  entrants: readonly Entrant[],
  options: BenchOptions,
  services: Services,
  calibration: number[],
): Promise<Row[]> {
  const log = options.log;
  const rows: Row[] = [];
  for (const scenario of options.scenarios) {
    log(`Scenario ${scenario}: log-ins, checks and warm-up`);
    const ready: { entrant: Entrant; row: Row; cookies: string[] }[] = [];
    for (const entrant of entrants) {
      const { contender, server } = entrant;
      const row = emptyRow(contender, scenario);
      rows.push(row);
      try {
        const needsLogin = hasSessions(contender) && scenario !== 'new';
        const cookies = needsLogin ? await logIn(server.port, options.connections) : [];
        await verify(server.port, scenario, contender, cookies[0]);
        if (options.warmup > 0) {
          await cannon(server.port, scenario, options, options.warmup, cookies);
        }
        ready.push({ entrant, row, cookies });
      } catch (error) {
        row.error = error instanceof Error ? error.message : String(error);
        log(`  ${contender.id} ${scenario}: not measured: ${row.error}`);
      }
    }
    const inRunOrder = [...ready].sort((a, b) =>
      byRunOrder(a.entrant.contender, b.entrant.contender),
    );
    for (let run = 1; run <= options.runs; run++) {
      calibration.push(calibrate());
      for (const { entrant, row, cookies } of inRunOrder) {
        if (row.error !== undefined) continue;
        try {
          const result = await measureRun(entrant, scenario, cookies, options, services);
          row.runs.push(result);
          log(
            `  ${entrant.contender.id} ${scenario} run ${run}/${options.runs}: ${formatRate(result.rps)} req/s, ` +
              `p99 ${result.p99} ms, ${(result.cpuMicros / Math.max(1, result.requests)).toFixed(1)} µs CPU/req` +
              (result.otherCpuShare === null
                ? ''
                : `, other processes ${Math.round(100 * result.otherCpuShare)} % of the machine`) +
              (result.non2xx + result.errors > 0
                ? `, ${result.non2xx} non-2xx, ${result.errors} errors`
                : ''),
          );
        } catch (error) {
          row.error = error instanceof Error ? error.message : String(error);
          log(`  ${entrant.contender.id} ${scenario}: not measured: ${row.error}`);
        }
      }
    }
    for (const { row } of ready) if (row.error === undefined) summarize(row);
  }
  return rows;
}

/** The memory measurements, each in a fresh process. */
export const MEMORY_MODES: readonly {
  mode: string;
  label: string;
  flood?: boolean;
  note?: string;
}[] = [
  {
    mode: 'tessera',
    label: 'Tessera MemoryStore (through the manager), user bound with `setUser`',
  },
  {
    mode: 'tessera-peer-payload',
    label: 'Tessera MemoryStore, user ID as a data key (the same data as the peers)',
    note: 'Bound with `setUser`, the session is also linked into its user\'s list in the user index (for listing, "sign out everywhere" and the per-user cap), which none of the peers has. With the user ID as a data key, the index has nothing to hold but the data is longer by its `"userId"` key.',
  },
  {
    mode: 'tessera-request-meta',
    label: 'Tessera MemoryStore, sessions made by requests carrying a User-Agent and IP',
  },
  { mode: 'express-session', label: 'express-session MemoryStore' },
  { mode: 'memorystore', label: 'memorystore' },
  {
    mode: 'fastify-session',
    label: '@fastify/session default store (through requests, `inject`)',
    note: '@fastify/session keeps live `Session` objects in its default store, and each one holds the request that made it, so the store retains every such request.',
  },
  {
    mode: 'tessera-flood',
    label: 'Tessera MemoryStore, maxSessions 100,000',
    flood: true,
    note: 'The flood creates sessions through the manager into a store bounded at 100,000; heap bytes are per session held at the end.',
  },
];

/** Runs the memory measurements, each in a fresh process. */
async function measureMemory(
  options: BenchOptions,
  tesseraDir: string | undefined,
  memory: BenchReport['memory'],
): Promise<void> {
  const log = options.log;
  log('Memory');
  for (const { mode, label, flood, note } of MEMORY_MODES) {
    const count = flood === true ? options.floodSessions : options.memorySessions;
    try {
      const result = await measureMemoryInChild(mode, count, tesseraDir);
      memory.push({ label, ...(note === undefined ? {} : { note }), result });
      log(
        `  ${label}: ${flood === true ? `held ${result.held.toLocaleString('en-US')} after ${count.toLocaleString('en-US')}, ` : ''}` +
          `${Math.round(result.bytesPerSession)} heap bytes/session, heap ${(result.heapAfter / 2 ** 20).toFixed(1)} MiB, ` +
          `RSS ${(result.rssAfter / 2 ** 20).toFixed(1)} MiB`,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      memory.push({ label, error: message });
      log(`  ${label}: failed: ${message}`);
    }
  }
}

/**
 * Runs the benchmark and writes its report.
 *
 * @example
 * ```ts
 * const report = await runBench({ smoke: true });
 * console.log(report.outFile, report.rows.length);
 * ```
 */
export async function runBench(partial: Partial<BenchOptions> = {}): Promise<BenchReport> {
  const options = resolveOptions(partial);
  const log = options.log;
  const startedAt = new Date();
  const loadStart = loadavg();
  const selected = CONTENDERS.filter((contender) => matchesFilter(contender.id, options.filter));
  if (selected.length === 0 && !options.memory)
    throw new Error(`no contender matches "${options.filter}"`);
  const needed = new Set<StoreKind>(selected.map((contender) => contender.store));
  const namespace = `tessera_bench_${randomBytes(4).toString('hex')}`;
  const workDir = await mkdtemp(join(tmpdir(), 'tessera-bench-'));
  if (options.profileDir !== undefined) await mkdir(options.profileDir, { recursive: true });

  const perScenario = options.warmup + options.runs * options.duration;
  log(
    `Tessera bench: ${selected.length} contenders × ${options.scenarios.length} scenarios, ` +
      `${options.runs} × ${options.duration} s runs (+${options.warmup} s warm-up), ` +
      `${options.connections} connections, pipelining ${options.pipelining}; ` +
      `about ${Math.ceil((selected.length * options.scenarios.length * perScenario) / 60)} min of load`,
  );

  const rows: Row[] = [];
  const skipped: BenchReport['skipped'] = [];
  const calibration: number[] = [];
  const buildDir = buildDirFor(namespace);
  const build = options.fromSource
    ? { dir: undefined, note: 'run from src/ through tsx (--source)' }
    : await compileTessera(join(buildDir, 'tessera'));
  log(`Tessera: ${build.note}`);
  const services = await startServices(needed, log);
  const entrants: Entrant[] = [];
  let instructions: InstructionResults | undefined;
  const memory: BenchReport['memory'] = [];
  const reportSoFar = (): BenchReport => ({
    options,
    environment: collectEnvironment(),
    startedAt,
    finishedAt: new Date(),
    rows,
    skipped,
    memory,
    ...(instructions === undefined ? {} : { instructions }),
    redisNote: services.redisNote,
    tesseraNote: build.note,
    calibration,
    loadAverage: { start: loadStart, end: loadavg() },
    outFile: options.out,
    markdown: '',
  });
  // The raw results, so the report can be rendered again without measuring again (--render).
  // Saved after the HTTP runs and after each instruction count too, so an interrupted run keeps
  // what it measured.
  const rawFile = join(
    ROOT,
    'bench',
    'results',
    `benchmarks-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`,
  );
  const saveRaw = async (report: BenchReport) => {
    if (options.smoke) return;
    await mkdir(dirname(rawFile), { recursive: true });
    await writeFile(rawFile, serializeReport(report));
  };
  try {
    log('Starting the servers');
    const runnable: Contender[] = [];
    for (const contender of selected) {
      const reason = unavailableReason(contender, services);
      if (reason === undefined) runnable.push(contender);
      else {
        skipped.push({ contender, reason });
        log(`  skip ${contender.id}: ${reason}`);
      }
    }
    // A few at a time: start-up is mostly waiting for module loading and database connections.
    const started = new Array<Entrant | undefined>(runnable.length);
    let next = 0;
    const starter = async () => {
      while (next < runnable.length) {
        const index = next++;
        const contender = runnable[index]!;
        try {
          const server = await ServerProcess.start(
            {
              contender: contender.id,
              services: services.endpoints,
              namespace,
              workDir,
              secret: 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
            },
            [],
            build.dir,
          );
          started[index] = { contender, server };
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          skipped.push({ contender, reason: `failed to start: ${message}` });
          log(`  ${contender.id} failed to start: ${message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 3 }, starter));
    // Keep the report order whatever order the servers came up in.
    for (const entrant of started) if (entrant !== undefined) entrants.push(entrant);
    rows.push(...(await measureAll(entrants, options, services, calibration)));
    if (options.instructions) {
      // The HTTP servers are done; the counts run their own, a few at a time under valgrind.
      await Promise.all(entrants.map((entrant) => entrant.server.stop()));
      await saveRaw(reportSoFar());
      log(`Raw results so far written to ${rawFile}`);
      const { redisUrl } = services.endpoints;
      instructions = await measureInstructions(
        entrants.map((entrant) => entrant.contender),
        options.scenarios,
        {
          requests: options.instructionRequests,
          warmup: options.instructionWarmup,
          repeats: options.instructionRepeats,
          jobs: options.instructionJobs,
          ...(options.smoke ? {} : { keepDir: rawFile.replace(/\.json$/, '-callgrind') }),
        },
        build.dir,
        { ...(redisUrl === undefined ? {} : { redisUrl }), namespace: `${namespace}:instructions` },
        log,
        async (partial) => {
          instructions = partial;
          await saveRaw(reportSoFar());
        },
      );
    }
  } finally {
    await Promise.all(entrants.map((entrant) => entrant.server.stop()));
    await services.close(namespace);
    await rm(workDir, { recursive: true, force: true });
  }

  try {
    if (options.memory) await measureMemory(options, build.dir, memory);
  } finally {
    await removeBuild(namespace);
  }

  const report = reportSoFar();
  if (!options.smoke) {
    // Saved before rendering, so a rendering error loses no measurement.
    await saveRaw(report);
    log(`Raw results written to ${rawFile}`);
  }
  report.markdown = renderReport(report);
  if (!existsSync(dirname(options.out))) await mkdir(dirname(options.out), { recursive: true });
  await writeFile(options.out, report.markdown);
  log(`Report written to ${options.out}`);
  return report;
}

/** The report as JSON, without the Markdown and the log function. */
export function serializeReport(report: BenchReport): string {
  const { markdown: _markdown, options, ...rest } = report;
  const { log: _log, ...plainOptions } = options;
  return `${JSON.stringify({ ...rest, options: plainOptions }, null, 1)}\n`;
}

/**
 * Renders a report again from the raw results a run saved (`bench/results/*.json`) and writes it
 * to `out`; nothing is measured.
 */
export async function renderSaved(file: string, out: string): Promise<BenchReport> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as Omit<
    BenchReport,
    'startedAt' | 'finishedAt' | 'markdown'
  > & {
    startedAt: string;
    finishedAt: string;
  };
  const report: BenchReport = {
    ...raw,
    options: { ...raw.options, out, log: () => undefined },
    startedAt: new Date(raw.startedAt),
    finishedAt: new Date(raw.finishedAt),
    outFile: out,
    markdown: '',
  };
  report.markdown = renderReport(report);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, report.markdown);
  return report;
}
