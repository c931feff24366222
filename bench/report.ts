/**
 * The Markdown report: the machine, the method, the targets with what was measured against them,
 * one table per scenario, store counts, and memory.
 *
 * @packageDocumentation
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { bareOf, CALIBRATION_WORK_MICROS, type Contender, type Framework } from './contenders.js';
import type { BenchReport, Row, RunResult } from './harness.js';
import { ROOT } from './options.js';
import { SCENARIO_TITLES, type ScenarioId } from './protocol.js';
import { calibrationNoise, instructionSection, instructionTargets } from './report-instructions.js';

const require = createRequire(import.meta.url);

/** Where the numbers were taken. */
export interface Environment {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  /** Installed versions of the measured and measuring packages. */
  packages: Record<string, string>;
  /** The commit the working tree is on, and whether it has uncommitted changes. */
  commit: string | undefined;
  dirty: boolean;
}

const PACKAGES = [
  'express',
  'fastify',
  'express-session',
  '@fastify/session',
  '@fastify/cookie',
  'memorystore',
  'connect-redis',
  'connect-pg-simple',
  'express-mysql-session',
  'better-sqlite3-session-store',
  'redis',
  'pg',
  'mysql2',
  'better-sqlite3',
  'memjs',
  'autocannon',
  'tsx',
];

// The bench's own packages first (bench/package.json), then the repository's (tsx, the drivers
// Tessera's stores load): where the bench's files resolve them.
const MODULE_DIRS = [join(ROOT, 'bench', 'node_modules'), join(ROOT, 'node_modules')];

function packageVersion(name: string): string {
  for (const dir of MODULE_DIRS) {
    try {
      const file = join(dir, name, 'package.json');
      return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    } catch {
      // Not installed there.
    }
  }
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

/** Describes this machine and the installed packages. */
export function collectEnvironment(): Environment {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: totalmem() / 2 ** 30,
    os: `${type()} ${release()} ${arch()}`,
    node: process.version,
    packages: Object.fromEntries(PACKAGES.map((name) => [name, packageVersion(name)])),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
  };
}

/* ------------------------------------------------------------------------- formatting ------ */

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–';
}

/** `get 1.00, update 1.00`, largest first; counts below 0.005 per request are left out. */
export function formatCounts(counts: Record<string, number> | null): string {
  if (counts === null) return '–';
  const entries = Object.entries(counts)
    .filter(([, value]) => value >= 0.005)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) return 'none';
  return entries.map(([name, value]) => `${name} ${value.toFixed(2)}`).join(', ');
}

function total(counts: Record<string, number> | null): number {
  if (counts === null) return Number.NaN;
  return Object.values(counts).reduce((sum, value) => sum + value, 0);
}

function formatTrips(counts: Record<string, number> | null): string {
  if (counts === null) return '–';
  const keys = Object.keys(counts).filter((key) => (counts[key] ?? 0) >= 0.005);
  if (keys.length <= 1) return fixed(total(counts), 2);
  return `${fixed(total(counts), 2)} (${formatCounts(counts)})`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function find(report: BenchReport, id: string | undefined, scenario: ScenarioId): Row | undefined {
  if (id === undefined) return undefined;
  return report.rows.find(
    (row) => row.contender.id === id && row.scenario === scenario && row.error === undefined,
  );
}

/* ---------------------------------------------------------------------------- targets ------ */

/** One target, and what was measured against it. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** `information`: a figure reported beside the targets that is no longer one. */
  status: 'met' | 'missed' | 'not measured' | 'information';
}

function check(
  target: string,
  measured: string | undefined,
  met: boolean | undefined,
): TargetCheck {
  if (measured === undefined || met === undefined)
    return { target, measured: measured ?? '–', status: 'not measured' };
  return { target, measured, status: met ? 'met' : 'missed' };
}

const WRITES = ['create', 'update', 'touch', 'delete'];

/** A difference in µs with its sign, one decimal; a dash when it could not be measured. */
function signed(value: number): string {
  return `${value >= 0 ? '+' : ''}${fixed(value, 1)}`;
}

/**
 * Whether a per-request count is the expected one. Requests still in flight when a run stops
 * were counted but have not all reached the store, which moves counts by a few hundredths for
 * slow stores; 0.05 leaves room for that and none for an extra call.
 */
function near(value: number | undefined, expected: number): boolean {
  return Math.abs((value ?? 0) - expected) < 0.05;
}

/** One figure of a run, and the same figure as the row's median over its runs. */
interface Measure {
  ofRun(run: RunResult): number;
  ofRow(row: Row): number;
}

const CPU_PER_REQUEST: Measure = {
  ofRun: (run) => run.cpuMicros / Math.max(1, run.requests),
  ofRow: (row) => row.cpuPerRequest,
};
const REQUESTS_PER_SECOND: Measure = { ofRun: (run) => run.rps, ofRow: (row) => row.rps };

function medianOf(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Compares two rows run by run: the median over the rounds of `combine(a's figure, b's figure)`.
 * Both runs of a round went back to back, so the machine's drift from round to round cancels
 * out. Rows with different numbers of runs (one failed midway) compare their medians instead.
 */
function paired(
  a: Row,
  b: Row,
  measure: Measure,
  combine: (x: number, y: number) => number,
): number {
  if (a.runs.length === 0 || a.runs.length !== b.runs.length) {
    return combine(measure.ofRow(a), measure.ofRow(b));
  }
  return medianOf(
    a.runs.map((run, index) => combine(measure.ofRun(run), measure.ofRun(b.runs[index]!))),
  );
}

const difference = (x: number, y: number) => x - y;
const quotient = (x: number, y: number) => x / y;

/** Evaluates the project's targets against the measurements (nothing is asserted). */
export function evaluateTargets(report: BenchReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const [scenario, limit] of [
    ['read', 10],
    ['write', 25],
  ] as const) {
    const parts: string[] = [];
    let met: boolean | undefined;
    for (const framework of ['express', 'fastify', 'node']) {
      const tessera = find(report, `tessera-${framework}-memory`, scenario);
      const bare = find(report, `bare-${framework}`, scenario);
      if (tessera === undefined || bare === undefined) continue;
      const added = paired(tessera, bare, CPU_PER_REQUEST, difference);
      const calibration = find(report, `work-${framework}`, scenario);
      // What `limit` µs of plain handler work costs in this run, scaled from the calibration row.
      const allowance =
        calibration === undefined
          ? limit
          : (paired(calibration, bare, CPU_PER_REQUEST, difference) * limit) /
            CALIBRATION_WORK_MICROS;
      const layer = find(report, `layer-${framework}`, scenario);
      const floor = find(report, `floor-${framework}`, scenario);
      const context = [
        calibration === undefined
          ? undefined
          : `${limit} µs of handler work: ${signed(allowance)} µs`,
        layer === undefined
          ? undefined
          : `an empty middleware: ${signed(paired(layer, bare, CPU_PER_REQUEST, difference))} µs`,
        floor === undefined
          ? undefined
          : `the floor: ${signed(paired(floor, bare, CPU_PER_REQUEST, difference))} µs`,
      ].filter((part) => part !== undefined);
      parts.push(
        `${framework} ${signed(added)} µs` + (context.length > 0 ? ` (${context.join('; ')})` : ''),
      );
      met = (met ?? true) && added <= allowance;
    }
    checks.push(
      check(
        `The session layer adds at most ${limit} µs of server CPU per ${scenario === 'read' ? 'read-only' : 'read+write'} request (memory store), held against what ${limit} µs of work in a bare handler adds in the same run`,
        parts.length > 0 ? parts.join('; ') : undefined,
        met,
      ),
    );
  }

  for (const scenario of ['read', 'write'] as const) {
    const expected: Record<string, number> =
      scenario === 'read' ? { get: 1 } : { get: 1, update: 1 };
    const good: string[] = [];
    const bad: string[] = [];
    for (const row of report.rows) {
      if (
        row.contender.library !== 'tessera' ||
        row.scenario !== scenario ||
        row.error !== undefined
      )
        continue;
      // The synchronous forms (`getNow`, `createNow`, `updateNow`: memory and SQLite) are the same calls.
      const {
        getNow = 0,
        createNow = 0,
        updateNow = 0,
        ...others
      } = row.storeCallsPerRequest ?? {};
      const calls: Record<string, number> = {
        ...others,
        get: (others.get ?? 0) + getNow,
        create: (others.create ?? 0) + createNow,
        update: (others.update ?? 0) + updateNow,
      };
      const callsOk =
        Object.entries(expected).every(([name, value]) => near(calls[name], value)) &&
        WRITES.filter((name) => !(name in expected)).every((name) => near(calls[name], 0));
      // A read served from the client-side cache makes no round trip: that is what it is for.
      const expectedTrips =
        scenario === 'read' && row.contender.clientSideCache === true ? 0 : total(expected);
      const tripsOk =
        row.roundTripsPerRequest === null || near(total(row.roundTripsPerRequest), expectedTrips);
      const name = `${row.contender.store}/${row.contender.framework}`;
      if (callsOk && tripsOk) good.push(name);
      else
        bad.push(
          `${name}: ${formatCounts(row.storeCallsPerRequest)}; round trips ${formatTrips(row.roundTripsPerRequest)}`,
        );
    }
    const measured =
      good.length + bad.length === 0
        ? undefined
        : bad.length === 0
          ? `all ${good.length} Tessera rows`
          : `${good.length} rows as expected; ${bad.join(' | ')}`;
    checks.push(
      check(
        scenario === 'read'
          ? 'Read-only: one store round trip, no write'
          : 'Read+write: one read and one conditional write (get + update)',
        measured,
        good.length + bad.length === 0 ? undefined : bad.length === 0,
      ),
    );
  }

  /**
   * A throughput target: the paired ratio of two rows against `minimum`. Each of `alongside` adds
   * the same ratio for another pair of rows after the figure, for context (it does not count).
   */
  const ratioCheck = (
    target: string,
    id: string,
    versus: string,
    scenario: ScenarioId,
    minimum: number,
    alongside: { words: string; id: string; versus: string }[] = [],
  ) => {
    const a = find(report, id, scenario);
    const b = find(report, versus, scenario);
    if (a === undefined || b === undefined) return check(target, undefined, undefined);
    const value = paired(a, b, REQUESTS_PER_SECOND, quotient);
    let measured = `${ratio(value)} (medians ${integer(a.rps)} vs ${integer(b.rps)} req/s)`;
    for (const context of alongside) {
      const other = find(report, context.id, scenario);
      const otherVersus = find(report, context.versus, scenario);
      if (other !== undefined && otherVersus !== undefined) {
        const otherValue = paired(other, otherVersus, REQUESTS_PER_SECOND, quotient);
        measured += `; ${context.words} ${ratio(otherValue)}`;
      }
    }
    return check(target, measured, value >= minimum);
  };
  const floorKeeps = (framework: Framework, versus: string) => ({
    words: 'the floor keeps',
    id: `floor-${framework}`,
    versus,
  });
  checks.push(
    ratioCheck(
      'Express + Tessera ≥ 0.85× bare Express, read-only, memory',
      'tessera-express-memory',
      'bare-express',
      'read',
      0.85,
      [
        { words: 'an empty middleware keeps', id: 'layer-express', versus: 'bare-express' },
        floorKeeps('express', 'bare-express'),
      ],
    ),
  );
  checks.push(
    ratioCheck(
      'Express + Tessera ≥ 0.80× bare Express, read-only, Redis',
      'tessera-express-redis',
      'bare-express',
      'read',
      0.8,
    ),
  );
  for (const scenario of ['read', 'write', 'new'] as const) {
    const fastify = ratioCheck(
      `Fastify + Tessera ≥ 2× @fastify/session (${scenario}, memory)`,
      'tessera-fastify-memory',
      'fastify-session-memory',
      scenario,
      2,
      [floorKeeps('fastify', 'fastify-session-memory')],
    );
    // Retired for new sessions, where the floor itself stays below 2×; still reported.
    if (scenario === 'new' && fastify.status !== 'not measured') {
      fastify.target = 'Fastify + Tessera vs @fastify/session (new, memory), formerly ≥ 2×';
      fastify.status = 'information';
    }
    checks.push(fastify);
  }
  checks.push(
    ratioCheck(
      'Tessera/PostgreSQL ≥ 2× connect-pg-simple, read-only',
      'tessera-express-postgres',
      'connect-pg-simple',
      'read',
      2,
    ),
  );
  checks.push(
    ratioCheck(
      'Tessera/SQLite ≥ 2× better-sqlite3-session-store, read-only',
      'tessera-express-sqlite',
      'better-sqlite3-session-store',
      'read',
      2,
    ),
  );

  const memoryOf = (mode: string) =>
    report.memory.find((entry) => entry.result?.mode === mode)?.result;
  const memory = memoryOf('tessera');
  const peerPayload = memoryOf('tessera-peer-payload');
  const express = memoryOf('express-session');
  checks.push(
    check(
      '≤ 200 heap bytes per small session in the memory store (held against the session bound to its user)',
      memory === undefined
        ? undefined
        : `${Math.round(memory.bytesPerSession)} bytes with the user bound (\`setUser\`, indexed)` +
            (peerPayload === undefined
              ? ''
              : `; ${Math.round(peerPayload.bytesPerSession)} bytes with the user ID as a data key, as the peers keep it`) +
            (express === undefined
              ? ''
              : `; express-session's MemoryStore: ${Math.round(express.bytesPerSession)} bytes`),
      memory === undefined ? undefined : memory.bytesPerSession <= 200,
    ),
  );
  const flood = report.memory.find((entry) => entry.result?.mode === 'tessera-flood')?.result;
  checks.push(
    check(
      `The memory store stays bounded: ${flood === undefined ? '1,000,000' : flood.sessions.toLocaleString('en-US')} new sessions into maxSessions 100,000`,
      flood === undefined
        ? undefined
        : `holds ${flood.held.toLocaleString('en-US')}; heap ${mib(flood.heapAfter)}, RSS ${mib(flood.rssAfter)}`,
      flood === undefined ? undefined : flood.held <= 100_000,
    ),
  );
  checks.push(...instructionTargets(report));
  return checks;
}

/* ----------------------------------------------------------------------------- render ------ */

function scenarioTable(report: BenchReport, scenario: ScenarioId): string[] {
  const rows = report.rows.filter((row) => row.scenario === scenario);
  if (rows.length === 0) return [];
  const lines = [
    `### ${SCENARIO_TITLES[scenario]}`,
    '',
    "| Contender | req/s | × bare | × peer | p50 ms | p99 ms | CPU µs/req (runs' range) | CPU vs bare | of it kernel (vs bare) | store calls/req | round trips/req |",
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|',
  ];
  for (const row of rows) {
    const contender: Contender = row.contender;
    if (row.error !== undefined) {
      lines.push(
        `| ${contender.label} | not measured: ${row.error.replace(/\|/g, '\\|')} | | | | | | | | | |`,
      );
      continue;
    }
    const bare =
      contender.kind === 'ceiling' ? undefined : find(report, bareOf(contender), scenario);
    const peer = find(report, contender.peer, scenario);
    const added = bare === undefined ? Number.NaN : row.cpuPerRequest - bare.cpuPerRequest;
    const cpuVsBare = bare === undefined ? '–' : signed(added);
    const cpu = `${fixed(row.cpuPerRequest, 1)} (${fixed(row.cpuRange[0], 0)}–${fixed(row.cpuRange[1], 0)})`;
    const kernel =
      bare === undefined
        ? fixed(row.systemPerRequest, 1)
        : `${fixed(row.systemPerRequest, 1)} (${signed(row.systemPerRequest - bare.systemPerRequest)})`;
    const failures = row.failures > 0 ? ` (${row.failures} failed)` : '';
    const label = contender.kind === 'tessera' ? `**${contender.label}**` : contender.label;
    lines.push(
      `| ${label} | ${integer(row.rps)}${failures} | ${bare === undefined ? '–' : ratio(row.rps / bare.rps)} | ` +
        `${peer === undefined ? '–' : ratio(row.rps / peer.rps)} | ${fixed(row.p50, 0)} | ${fixed(row.p99, 0)} | ` +
        `${cpu} | ${cpuVsBare} | ${kernel} | ${formatCounts(row.storeCallsPerRequest)} | ${formatTrips(row.roundTripsPerRequest)} |`,
    );
  }
  lines.push('');
  return lines;
}

/**
 * How busy the rest of the machine was while contenders without a database server were measured
 * (with a database, the database's own CPU would count as "other").
 */
function otherActivity(report: BenchReport): string {
  const shares = report.rows
    .filter((row) => ['none', 'memory', 'sqlite'].includes(row.contender.store))
    .flatMap((row) => row.runs.map((run) => run.otherCpuShare))
    .filter((share): share is number => share !== null)
    .sort((a, b) => a - b);
  if (shares.length === 0) return '- Other activity on the machine: not measured (no /proc/stat)';
  const middle = shares[Math.floor(shares.length / 2)]!;
  const worst = shares[shares.length - 1]!;
  const busy = middle > 0.1;
  return (
    `- Other processes used a median of ${Math.round(100 * middle)} % (at most ${Math.round(100 * worst)} %) of the machine's CPU ` +
    'during the runs of contenders without a database server' +
    (busy ? ' (**the machine was shared with other work: treat absolute numbers with care**)' : '')
  );
}

/** How much the machine's speed moved during the bench, from the harness's calibration. */
function machineSpeed(report: BenchReport): string {
  const values = report.calibration.filter(Number.isFinite).sort((a, b) => a - b);
  if (values.length < 2) return '- Machine speed: not calibrated';
  const low = values[0]!;
  const high = values[values.length - 1]!;
  const middle = values[Math.floor(values.length / 2)]!;
  return (
    `- Machine speed: a fixed piece of work took between ${(low / 1000).toFixed(0)} and ${(high / 1000).toFixed(0)} ms of CPU ` +
    `(median ${(middle / 1000).toFixed(0)} ms) across ${values.length} rounds of runs; every CPU figure below moves with it, ` +
    'so differences smaller than that spread are not significant'
  );
}

/** The whole report, in Markdown. */
export function renderReport(report: BenchReport): string {
  const { options, environment: env } = report;
  const minutes = (report.finishedAt.getTime() - report.startedAt.getTime()) / 60_000;
  const lines: string[] = [
    '# Benchmarks',
    '',
    `Generated by \`bench/run.ts\`; do not edit by hand, run it again. ${options.smoke ? '**Smoke run: the numbers mean nothing.**' : ''}`.trim(),
    '',
    `- Date: ${report.startedAt.toISOString()} (${minutes.toFixed(1)} min)`,
    `- Command: \`${options.command}\``,
    `- Machine: ${env.cpuModel}, ${env.cores} cores, ${env.memoryGiB.toFixed(1)} GiB memory, ${env.os}`,
    `- Node ${env.node}; Tessera ${env.commit ?? 'unknown commit'}${env.dirty ? ' with uncommitted changes' : ''}`,
    `- Packages: ${Object.entries(env.packages)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}`,
    `- Load: autocannon in the harness process, ${options.connections} connections, pipelining ${options.pipelining}; ` +
      `per scenario ${options.warmup} s of warm-up, then ${options.runs} run${options.runs === 1 ? '' : 's'} of ${options.duration} s; medians reported`,
    `- Tessera: ${report.tesseraNote}`,
    ...(report.redisNote === '' ? [] : [`- Redis: ${report.redisNote}`]),
    `- Load average (1, 5, 15 min) before the bench started: ${report.loadAverage.start.map((v) => v.toFixed(2)).join(', ')}`,
    otherActivity(report),
    machineSpeed(report),
    `- Machine noise: ${calibrationNoise(report)}`,
    '',
    '## How it is measured',
    '',
    '- Each contender runs in its own Node process (`bench/servers/server.ts`, started with `--import tsx`) with identical handlers: ' +
      "`/read` answers the session's user and one key, `/write` increments one key, `/new` writes one key into a fresh session. " +
      'The bare frameworks answer the same JSON without a session. Tessera is loaded compiled (see "Tessera" above), as an application runs it; ' +
      "tsx's transform would add a `__name()` call to every closure Tessera creates per request.",
    '- All servers are started first; then, scenario by scenario, each contender is logged in, checked (a read sees the user, a write persists, a new session gets a cookie) ' +
      'and warmed up, and the measured runs go round-robin (run 1 of every contender, then run 2, ...), so a slow moment of the machine hits several contenders once ' +
      'rather than one contender every time; the tables show medians. Within a round, the two sides of each target (Tessera and the bare framework, its calibration row, or its peer) run back to back.',
    '- Before the read and write scenarios the harness logs in one session per connection (`/login`: a user and three small keys), ' +
      'so every connection is one client with its own cookie; the new-session scenario sends no cookie.',
    "- Server CPU is the server process's own `process.cpuUsage()` difference around each run (all its threads, GC included), divided by the requests it received; " +
      'the harness asks for it over IPC, outside the measured HTTP load. "CPU vs bare" is the difference to the bare framework: the cost of the session layer. ' +
      '"Of it kernel" is the system-time part of that CPU (socket reads and writes, waking the load generator, page faults), with its difference to the bare framework: ' +
      "time the session layer's own JavaScript does not spend, but that grows when a server answers more slowly or writes more bytes.",
    `- Calibration rows (\`work-*\`) are the bare framework whose handlers also do ${CALIBRATION_WORK_MICROS} µs of fixed CPU work (an integer loop sized against the process's own CPU clock at start-up). ` +
      'A server that spends longer on each request also pays more per request outside its own code (the event loop wakes for fewer requests at a time, socket writes wake an idle load generator), ' +
      `so "CPU vs bare" of a calibration row is more than ${CALIBRATION_WORK_MICROS} µs; the per-request CPU targets are held against it (scaled linearly for the 25 µs target).`,
    '- "bare Express + an empty middleware" (`layer-express`) mounts one middleware that only calls `next()`. Express gives every request and response a hidden class of its own (it swaps their prototypes), ' +
      "so each middleware layer costs Express's router several property accesses that miss V8's inline caches; that row shows what any Express session middleware pays before its own work, and the targets show it beside Tessera's figure (it is not subtracted).",
    '- Floor rows (`floor-*`) do the work a server-side session must do, written inline in the handlers with no session library (`bench/servers/floor.ts`): ' +
      'a 256-bit ID signed with HMAC-SHA256, only its SHA-256 stored, an envelope with its timestamps checked on every read, a version compared on every write, a bounded store, ' +
      '`Cache-Control: no-store` for signed-in responses. They leave out what makes a session layer a library (cookie parsing, the user index, touches, events, error handling, LRU order), ' +
      "so they cost less than any real session layer that keeps the same guarantees: a target the floor misses is out of reach of the session work itself, not of Tessera's code. " +
      "The targets show the floor beside Tessera's figure.",
    "- Store calls are the session store's methods (Tessera: `get`, `create`, `update`, `touch`, `delete`, and with the memory and SQLite stores the synchronous `getNow`, `createNow` and `updateNow`, which count as `get`, `create` and `update` in the targets; express-session and @fastify/session: `get`, `set`, `touch`, `destroy`), " +
      "counted by a wrapper in the server. Round trips are counted at the store's client in the server: node-postgres queries, mysql2 queries and executions, " +
      'better-sqlite3 statement executions, node-redis commands (a MULTI or pipeline counts once), memjs requests. ' +
      "`pg_stat_statements` is not used: the machine's PostgreSQL does not preload it, and the client-side count covers exactly the bench's connections.",
    "- × bare divides by the bare framework's req/s in the same scenario; × peer by the established library on the same framework and store.",
    `- Load generator, server and database share this machine's ${env.cores} cores, so req/s is bounded by the machine as much as by the server; ` +
      'CPU µs per request is the steadier figure for comparing session layers.',
    '- Peer configuration: express-session with `resave: false, saveUninitialized: false` (what its documentation recommends) and its other defaults ' +
      '(it touches the store on every unmodified request); @fastify/session with `saveUninitialized: false` and `cookie.secure: false` (plain HTTP) and its other defaults ' +
      '(`rolling: true` saves the session on every request). Tessera with its defaults (a read-only request touches the store at most once a minute).',
    '',
    '## Targets',
    '',
    'Targets are reported, not asserted. Each is judged run by run: the median over the rounds of the difference (CPU) or ratio (req/s) between two runs made back to back, ' +
      "so the machine's drift between rounds cancels out; the tables below show each row's own medians, which can differ from these paired figures. " +
      'A CPU or throughput target whose margin is inside the spread of the runs (see "Machine speed" above) is still not settled by one bench run.',
    '',
    '| Target | Measured | Status |',
    '|---|---|---|',
  ];
  for (const item of evaluateTargets(report)) {
    const status = {
      met: 'met',
      missed: '**missed**',
      'not measured': 'not measured',
      information: 'information, not a target',
    }[item.status];
    lines.push(`| ${item.target} | ${item.measured.replace(/\|/g, '\\|')} | ${status} |`);
  }
  lines.push('', '## Throughput, latency and cost per request', '');
  for (const scenario of options.scenarios) lines.push(...scenarioTable(report, scenario));
  lines.push(...instructionSection(report));

  const redisRows = report.rows.filter((row) => row.redisCommandsPerRequest !== null);
  if (redisRows.length > 0) {
    lines.push(
      '## Redis commands per request, counted by the server',
      '',
      '`INFO commandstats` differences over the runs (`info` itself left out). Commands a Lua script runs are counted too, next to the `evalsha` that ran them.',
      '',
      '| Contender | Scenario | commands/req |',
      '|---|---|---|',
    );
    for (const row of redisRows) {
      lines.push(
        `| ${row.contender.label} | ${row.scenario} | ${formatCounts(row.redisCommandsPerRequest)} |`,
      );
    }
    lines.push('');
  }

  if (report.memory.length > 0) {
    lines.push(
      '## Memory',
      '',
      'Each line runs in a fresh process with `--expose-gc`: heap used plus ArrayBuffer memory (which V8 keeps outside its heap, and where typed arrays keep their contents) ' +
        'after forced collections, before and after creating the sessions, with the store kept alive. ' +
        "Every session holds the same small payload: a user ID and three keys (`theme`, `locale`, `cart`). Tessera's sessions are made through the manager, so the stored form " +
        '(the encoded envelope, its key and, for a bound user, the user index) is what an application stores; the user is bound with `setUser` unless the line says otherwise. ' +
        "express-session's and memorystore's get the object express-session hands them (the user ID as a data key); @fastify/session's are made by requests.",
      '',
      '| Store | sessions created | held | bytes per session held (heap and ArrayBuffers) | heap and ArrayBuffers after | RSS after | time |',
      '|---|--:|--:|--:|--:|--:|--:|',
    );
    for (const entry of report.memory) {
      if (entry.result === undefined) {
        lines.push(
          `| ${entry.label} | failed: ${(entry.error ?? '').replace(/\|/g, '\\|')} | | | | | |`,
        );
        continue;
      }
      const r = entry.result;
      lines.push(
        `| ${entry.label} | ${r.sessions.toLocaleString('en-US')} | ${r.held.toLocaleString('en-US')} | ${integer(r.bytesPerSession)} | ` +
          `${mib(r.heapAfter)} | ${mib(r.rssAfter)} | ${r.seconds.toFixed(1)} s |`,
      );
    }
    lines.push('');
    for (const entry of report.memory) if (entry.note !== undefined) lines.push(`- ${entry.note}`);
    lines.push('');
  }

  lines.push(
    '## Reproducing and digging in',
    '',
    '- The bench is its own package (`bench/package.json`: the peers, frameworks and autocannon, at the versions listed above): install the repository first ' +
      '(`npm ci`; the bench also uses its tsx, TypeScript, vitest and better-sqlite3), then the bench (`npm ci --prefix bench`). ' +
      'The commands below run from the repository root, to which a compiled directory after `@` is relative. ' +
      "`npm run test:bench` runs the bench's own tests: its typecheck, the floor's session work, and the harness in smoke mode.",
    '- `npm run bench` runs everything (`npm run bench -- --help` lists the options); `--filter` and `--scenarios` narrow it, `--smoke` checks the harness in half a minute.',
    '- `npx tsx bench/profile.ts <contender> <scenario> --versus <other>` profiles two contenders over a measured window and lists where the CPU time per request differs, ' +
      'for example `npx tsx bench/profile.ts tessera-node-memory read --versus bare-node`.',
    '- `npx tsx bench/inprocess.ts <contender>[@<compiled dir>] ...` measures CPU per request with no sockets: requests on an in-memory socket go straight to the application, ' +
      'each contender in fresh processes, rounds alternating. It holds only JavaScript work, so it shows differences between two builds of Tessera that the HTTP runs bury in noise ' +
      '(for example `npx tsx bench/inprocess.ts tessera-express-memory@/tmp/before tessera-express-memory@dist`, each directory compiled by `tsc`). ' +
      "With `--instructions` it counts instructions per request under callgrind instead, which the machine's load does not move; `--instructions --http` counts them over real HTTP on loopback " +
      '(memory-store, Redis and sessionless contenders; `--repeats 3` gives the median and range, `--keep <dir>` keeps the callgrind output of each measured window for `callgrind_annotate`).',
    '- `npx tsx bench/callgrind-diff.ts <a.callgrind> <b.callgrind> --requests 1000` lists, function by function, where two such windows differ per request; a full run keeps the first count of each row in `bench/results/<run>-callgrind/`.',
    "- `npx tsx bench/allocations.ts <contender>[@<compiled dir>] ...` counts the bytes each contender allocates per request, by function, in-process under V8's sampling heap profiler (short-lived objects included), " +
      'and the difference to the first one named: over HTTP every byte allocated per request costs the collector CPU, most of all under Express.',
    '- `npx tsx bench/store-ops.ts [<compiled dir> ...]` measures the memory store alone, CPU µs per `get`, `get` + `update` and evicting `create` at 100,000 sessions, ' +
      'several builds side by side in one process (`src` is the store in `src/`).',
    '- Each full run saves its raw results in `bench/results/` (not committed); `npm run bench -- --render <file.json>` renders this page again from them.',
    '',
  );

  if (report.skipped.length > 0) {
    lines.push('## Not measured', '');
    for (const { contender, reason } of report.skipped)
      lines.push(`- ${contender.label} (\`${contender.id}\`): ${reason}`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
