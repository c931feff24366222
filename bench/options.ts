/**
 * The harness's options, from the command line and the environment.
 *
 * @packageDocumentation
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCENARIOS, type ScenarioId } from './protocol.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What to measure and how. */
export interface BenchOptions {
  /**
   * Seconds per measured run.
   * @defaultValue 5 (1 with `smoke`)
   */
  duration: number;
  /**
   * Measured runs per contender and scenario; the report shows their median.
   * @defaultValue 3 (1 with `smoke`)
   */
  runs: number;
  /**
   * Seconds of unmeasured load before a scenario's runs, so the JIT has settled.
   * @defaultValue 1 (0.25 with `smoke`)
   */
  warmup: number;
  /** Concurrent connections; each has its own logged-in session. @defaultValue 50 */
  connections: number;
  /** Requests in flight per connection. @defaultValue 1 */
  pipelining: number;
  /**
   * Which contenders run: comma-separated ids or `*` globs, `!` to exclude (see `contenders.ts`).
   * @defaultValue every contender (with `smoke`: bare Express, alone, with an empty middleware and with the inline floor; Tessera/Express/memory; express-session)
   */
  filter: string | undefined;
  /** Which scenarios run. @defaultValue all: `read`, `write`, `new` */
  scenarios: ScenarioId[];
  /** One short run per scenario, a few contenders, the report in a temporary file. @defaultValue false */
  smoke: boolean;
  /** Whether the memory measurements run. @defaultValue true (false with `smoke`) */
  memory: boolean;
  /** Sessions per heap measurement. @defaultValue 100_000 */
  memorySessions: number;
  /** New sessions in the bounded-store flood. @defaultValue 1_000_000 */
  floodSessions: number;
  /**
   * Whether instructions per request are counted under callgrind, over HTTP, for the memory-store,
   * Redis and sessionless contenders (see `instructions.ts`). The slow part of a full run.
   * @defaultValue true (false with `smoke`)
   */
  instructions: boolean;
  /** Measured requests per instruction count. @defaultValue 1000 */
  instructionRequests: number;
  /** Requests before each count's measured window. @defaultValue 2000 */
  instructionWarmup: number;
  /** Counts per contender and scenario; the report gives their median and range. @defaultValue 3 */
  instructionRepeats: number;
  /** Counts run at once, each one process under valgrind. @defaultValue 2 */
  instructionJobs: number;
  /** Where the Markdown report goes. @defaultValue `docs/benchmarks.md` (a temporary file with `smoke`) */
  out: string;
  /**
   * Run Tessera from `src/` through tsx instead of compiling it first (tsx adds a `__name()` call
   * to every function it creates, so this measures more than Tessera).
   * @defaultValue false
   */
  fromSource: boolean;
  /**
   * A directory for CPU profiles of the Tessera servers, one per measured run (sampling costs
   * CPU, so the figures of such a run are a little high); none when undefined.
   */
  profileDir: string | undefined;
  /** The command line shown in the report. */
  command: string;
  /** Progress output. @defaultValue `console.log` */
  log: (line: string) => void;
}

/** The contenders a smoke run measures unless a filter says otherwise. */
export const SMOKE_FILTER =
  'bare-express,layer-express,floor-express,tessera-express-memory,express-session-memory';

function number(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`${name} must be a number of at least ${min}, not "${raw}"`);
  return value;
}

function scenarios(raw: string | undefined): ScenarioId[] {
  if (raw === undefined || raw.trim() === '') return [...SCENARIOS];
  const list = raw.split(',').map((part) => part.trim()) as ScenarioId[];
  for (const id of list) {
    if (!SCENARIOS.includes(id))
      throw new Error(`unknown scenario "${id}"; known: ${SCENARIOS.join(', ')}`);
  }
  return SCENARIOS.filter((id) => list.includes(id));
}

/** Fills in defaults, smoke-mode defaults included. */
export function resolveOptions(partial: Partial<BenchOptions> = {}): BenchOptions {
  const smoke = partial.smoke ?? false;
  return {
    duration: partial.duration ?? (smoke ? 1 : 5),
    runs: partial.runs ?? (smoke ? 1 : 3),
    warmup: partial.warmup ?? (smoke ? 0.25 : 1),
    connections: partial.connections ?? 50,
    pipelining: partial.pipelining ?? 1,
    filter: partial.filter ?? (smoke ? SMOKE_FILTER : undefined),
    scenarios: partial.scenarios ?? [...SCENARIOS],
    smoke,
    memory: partial.memory ?? !smoke,
    memorySessions: partial.memorySessions ?? 100_000,
    instructions: partial.instructions ?? !smoke,
    instructionRequests: partial.instructionRequests ?? 1000,
    instructionWarmup: partial.instructionWarmup ?? 2000,
    instructionRepeats: partial.instructionRepeats ?? 3,
    instructionJobs: partial.instructionJobs ?? 2,
    floodSessions: partial.floodSessions ?? 1_000_000,
    out:
      partial.out ??
      (smoke
        ? join(tmpdir(), `tessera-bench-smoke-${process.pid}-${Date.now()}.md`)
        : join(ROOT, 'docs', 'benchmarks.md')),
    fromSource: partial.fromSource ?? false,
    profileDir: partial.profileDir,
    command: partial.command ?? 'runBench()',
    log: partial.log ?? ((line) => console.log(line)),
  };
}

/**
 * Reads options from `argv` (`--duration=5` or `--duration 5`) and the environment
 * (`BENCH_DURATION`...); the command line wins.
 *
 * Flags: `--duration`, `--runs`, `--warmup`, `--connections`, `--pipelining`, `--filter`,
 * `--scenarios`, `--smoke`, `--memory` / `--no-memory`, `--memory-sessions`, `--flood-sessions`,
 * `--instructions` / `--no-instructions`, `--instruction-requests`, `--instruction-warmup`,
 * `--instruction-repeats`, `--instruction-jobs`, `--out`, `--profile[=dir]`, `--help`.
 */
export function parseOptions(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Partial<BenchOptions> & { help?: boolean } {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    if (eq !== -1) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (
      [
        'smoke',
        'memory',
        'no-memory',
        'instructions',
        'no-instructions',
        'help',
        'profile',
        'source',
      ].includes(arg.slice(2))
    )
      flags.set(arg.slice(2), 'true');
    else {
      const value = argv[i + 1];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      flags.set(arg.slice(2), value);
      i++;
    }
  }
  const known = new Set([
    'duration',
    'runs',
    'warmup',
    'connections',
    'pipelining',
    'filter',
    'scenarios',
    'smoke',
    'memory',
    'no-memory',
    'memory-sessions',
    'flood-sessions',
    'instructions',
    'no-instructions',
    'instruction-requests',
    'instruction-warmup',
    'instruction-repeats',
    'instruction-jobs',
    'out',
    'profile',
    'source',
    'help',
  ]);
  for (const name of flags.keys())
    if (!known.has(name)) throw new Error(`unknown option --${name}`);
  const pick = (flag: string, envName: string) => flags.get(flag) ?? env[envName];
  const options: Partial<BenchOptions> & { help?: boolean } = {};
  if (flags.has('help')) options.help = true;
  const smoke = pick('smoke', 'BENCH_SMOKE');
  if (smoke === 'true' || smoke === '1') options.smoke = true;
  const duration = pick('duration', 'BENCH_DURATION');
  if (duration !== undefined) options.duration = number('duration', duration, 5, 0.5);
  const runs = pick('runs', 'BENCH_RUNS');
  if (runs !== undefined) options.runs = Math.round(number('runs', runs, 3, 1));
  const warmup = pick('warmup', 'BENCH_WARMUP');
  if (warmup !== undefined) options.warmup = number('warmup', warmup, 1, 0);
  const connections = pick('connections', 'BENCH_CONNECTIONS');
  if (connections !== undefined)
    options.connections = Math.round(number('connections', connections, 50, 1));
  const pipelining = pick('pipelining', 'BENCH_PIPELINING');
  if (pipelining !== undefined)
    options.pipelining = Math.round(number('pipelining', pipelining, 1, 1));
  const filter = pick('filter', 'BENCH_FILTER');
  if (filter !== undefined) options.filter = filter;
  const scenarioList = pick('scenarios', 'BENCH_SCENARIOS');
  if (scenarioList !== undefined) options.scenarios = scenarios(scenarioList);
  if (flags.has('no-memory') || env.BENCH_MEMORY === '0') options.memory = false;
  else if (flags.has('memory') || env.BENCH_MEMORY === '1') options.memory = true;
  const memorySessions = pick('memory-sessions', 'BENCH_MEMORY_SESSIONS');
  if (memorySessions !== undefined)
    options.memorySessions = Math.round(number('memory-sessions', memorySessions, 100_000, 1_000));
  const floodSessions = pick('flood-sessions', 'BENCH_FLOOD_SESSIONS');
  if (floodSessions !== undefined)
    options.floodSessions = Math.round(number('flood-sessions', floodSessions, 1_000_000, 1_000));
  if (flags.has('no-instructions') || env.BENCH_INSTRUCTIONS === '0') options.instructions = false;
  else if (flags.has('instructions') || env.BENCH_INSTRUCTIONS === '1') options.instructions = true;
  const counts = [
    ['instruction-requests', 'instructionRequests', 1000, 10],
    ['instruction-warmup', 'instructionWarmup', 2000, 0],
    ['instruction-repeats', 'instructionRepeats', 3, 1],
    ['instruction-jobs', 'instructionJobs', 2, 1],
  ] as const;
  for (const [flag, key, fallback, min] of counts) {
    const raw = flags.get(flag);
    if (raw !== undefined) options[key] = Math.round(number(flag, raw, fallback, min));
  }
  if (flags.has('source') || env.BENCH_SOURCE === '1') options.fromSource = true;
  const out = pick('out', 'BENCH_OUT');
  if (out !== undefined) options.out = out;
  const profile = pick('profile', 'BENCH_PROFILE');
  if (profile !== undefined)
    options.profileDir =
      profile === 'true' ? join(tmpdir(), `tessera-bench-profiles-${Date.now()}`) : profile;
  return options;
}

/** The `--help` text. */
export const HELP = `npm run bench -- [options]

  --duration <s>          seconds per measured run (BENCH_DURATION; default 5)
  --runs <n>              measured runs per contender and scenario, median reported (BENCH_RUNS; default 3)
  --warmup <s>            unmeasured seconds before each scenario (BENCH_WARMUP; default 1)
  --connections <n>       concurrent connections, one session each (BENCH_CONNECTIONS; default 50)
  --pipelining <n>        requests in flight per connection (BENCH_PIPELINING; default 1)
  --filter <list>         contender ids or globs, comma-separated, '!' excludes (BENCH_FILTER)
                          e.g. 'bare-*,tessera-express-*,express-session-memory'
  --scenarios <list>      read,write,new (BENCH_SCENARIOS; default all)
  --smoke                 1 run of 1 s, three contenders, no memory section, report to a temp file
  --memory | --no-memory  run the heap measurements (default: yes, except with --smoke)
  --memory-sessions <n>   sessions per heap measurement (default 100000)
  --flood-sessions <n>    new sessions in the bounded-store flood (default 1000000)
  --instructions | --no-instructions
                          count instructions per request under callgrind, over HTTP, for the
                          memory-store, Redis and sessionless contenders (BENCH_INSTRUCTIONS;
                          default: yes, except with --smoke; the slow part of a full run)
  --instruction-requests <n>  measured requests per count (default 1000)
  --instruction-warmup <n>    requests before each count's measured window (default 2000)
  --instruction-repeats <n>   counts per contender and scenario, median and range shown (default 3)
  --instruction-jobs <n>      counts run at once, one valgrind process each (default 2)
  --out <file>            the Markdown report (BENCH_OUT; default docs/benchmarks.md)
  --profile[=<dir>]       write a CPU profile of each measured run of a Tessera server to <dir>
  --source                run Tessera from src/ through tsx instead of compiling it with tsc first
  --render <json>         render the report again from the raw results a run saved in bench/results/
`;
