/**
 * Instructions per request, counted by callgrind (valgrind). The contender runs in a child of
 * `inprocess.ts` under callgrind; after its warm-up it reads `process.cpuUsage()` (Node's
 * `uv_getrusage`), and again after the measured requests. Callgrind, started with
 * `--dump-before=uv_getrusage`, writes the counts so far at each of those calls, so the second
 * dump holds exactly the measured window: its total divided by the requests is the figure.
 *
 * That count does not move with the machine's load, only with what the window holds of GC and
 * JIT work, so a count is repeated and reported as its median and range. V8 runs with
 * `--predictable` (no concurrent GC or compiler threads), which keeps repeats close.
 *
 * @packageDocumentation
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { contenderById, type Contender } from './contenders.js';
import type { ScenarioId } from './protocol.js';
import { deleteKeys } from './services.js';

const CHILD = fileURLToPath(new URL('./inprocess.ts', import.meta.url));

/** The services a counted contender's store connects to (handed to the child in its environment). */
export interface ChildServices {
  /** The Redis the Redis contenders use. */
  redisUrl?: string;
  /** The prefix of every key the child's store writes; the count deletes them afterwards. */
  namespace: string;
}

/** The environment variable that carries {@link ChildServices} to the child. */
export const SERVICES_ENV = 'BENCH_CHILD_SERVICES';

/** What one instruction count measures. */
export interface CountSpec {
  /** A contender id, optionally with `@<compiled Tessera dir>`. */
  spec: string;
  scenario: string;
  /** Measured requests. */
  requests: number;
  /** Requests sent before the measured window. */
  warmup: number;
  /** Over real HTTP on loopback (true) or on in-memory sockets. */
  overHttp: boolean;
  /** Where the child's store connects; `namespace` is made unique per count. */
  services: ChildServices;
  /** A file to keep the measured window's callgrind output in, for `callgrind_annotate`. */
  keep?: string;
}

/** The callgrind parts of one run: their trigger and instruction total, by part number. */
function partsOf(texts: readonly string[]): { part: number; trigger: string; total: number }[] {
  return texts.map((text) => {
    const part = Number(/^part: (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    const trigger = /^desc: Trigger: (.*)$/m.exec(text)?.[1] ?? '';
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    return { part, trigger, total };
  });
}

/** One count, per request of its window. */
export interface Count {
  /** Every instruction of the process. */
  total: number;
  /**
   * Of those, the optimizing compiler's (TurboFan, which `--predictable` runs on the main thread):
   * JIT work still going on after the warm-up, which a server that has run for a while no longer
   * does.
   */
  compiler: number;
  /**
   * Of those, the threads Node runs as workers: here only the module loader's thread, on which
   * tsx's hooks run (the bench's children start with `--import tsx`). It wakes on its own
   * schedule, not per request, so a slow window collects more of it.
   */
  loader: number;
}

/** The function whose calls (and everything under them) are the optimizing compiler's work. */
const COMPILER = 'v8::internal::Compiler::CompileOptimized(';
/** The function a Node worker thread (the module loader's) runs in. */
const WORKER = 'node::worker::Worker::Run(';

/** The instructions spent inside {@link COMPILER} and {@link WORKER}, inclusive, from a callgrind output. */
function excludedInstructions(file: string): Promise<{ compiler: number; loader: number }> {
  return new Promise((done, fail) => {
    execFile(
      'callgrind_annotate',
      ['--inclusive=yes', '--threshold=100', '--auto=no', file],
      { maxBuffer: 256 * 1024 * 1024 },
      (error, stdout) => {
        if (error !== null) return fail(error);
        const sums = { compiler: 0, loader: 0 };
        for (const line of stdout.split('\n')) {
          const match = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\?\?\?:(.*)$/.exec(line);
          if (match === null) continue;
          const value = Number(match[1]!.replace(/,/g, ''));
          if (match[2]!.startsWith(COMPILER)) sums.compiler += value;
          else if (match[2]!.startsWith(WORKER)) sums.loader += value;
        }
        done(sums);
      },
    );
  });
}

/** Instructions per request of one count (one process under callgrind). */
export async function countInstructions(count: CountSpec): Promise<Count> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-callgrind-'));
  const out = join(dir, 'callgrind.out');
  const services: ChildServices = {
    ...count.services,
    namespace: `${count.services.namespace}:c${randomBytes(3).toString('hex')}`,
  };
  try {
    await new Promise<void>((done, fail) => {
      execFile(
        'valgrind',
        [
          '--tool=callgrind',
          // V8 writes machine code at run time; callgrind must see those writes.
          '--smc-check=all-non-file',
          // The child reads its CPU usage exactly at the two ends of the measured window.
          '--dump-before=uv_getrusage',
          `--callgrind-out-file=${out}`,
          process.execPath,
          // No concurrent GC or compiler threads: repeated counts of one build agree more closely.
          '--predictable',
          '--import',
          'tsx',
          CHILD,
          '--child',
          count.spec,
          count.scenario,
          String(count.requests),
          String(count.warmup),
          count.overHttp ? 'http' : 'instructions',
        ],
        {
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, [SERVICES_ENV]: JSON.stringify(services) },
        },
        (error, _stdout, stderr) => {
          if (error === null) return done();
          // What the child wrote (valgrind's own lines start with ==pid==) says why: its error
          // message, not only the last frames of its stack.
          const said = stderr
            .split('\n')
            .filter((line) => line.trim() !== '' && !/^==\d+==/.test(line) && !/^\s+at /.test(line))
            .slice(-8)
            .join(' / ');
          fail(new Error(`exited with ${error.code ?? error.signal}: ${said.slice(0, 1500)}`));
        },
      );
    });
    const files = (await readdir(dir)).filter((name) => name.startsWith('callgrind.out.'));
    const texts = await Promise.all(files.map((name) => readFile(join(dir, name), 'utf8')));
    const dumps = partsOf(texts)
      .map((part, index) => ({ ...part, file: files[index]! }))
      .filter((part) => part.trigger.startsWith('--dump-before'))
      .sort((a, b) => a.part - b.part);
    // Part 1 is start-up and warm-up, part 2 the window; any other call of uv_getrusage in the
    // process would cut the window in pieces, so more parts are refused rather than guessed at.
    if (dumps.length !== 2 || !Number.isFinite(dumps[1]!.total)) {
      throw new Error(
        `${count.spec}: expected 2 callgrind dumps (before and after the measured requests), found ${dumps.length}`,
      );
    }
    const window = join(dir, dumps[1]!.file);
    if (count.keep !== undefined) await copyFile(window, count.keep);
    const { compiler, loader } = await excludedInstructions(window);
    return {
      total: dumps[1]!.total / count.requests,
      compiler: compiler / count.requests,
      loader: loader / count.requests,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (services.redisUrl !== undefined && contenderById(idOf(count.spec)).store === 'redis') {
      await withRedis(services.redisUrl, (client) => deleteKeys(client, services.namespace));
    }
  }
}

/** The contender id of a spec (`id` or `id@dir`). */
export function idOf(spec: string): string {
  return spec.split('@')[0]!;
}

async function withRedis(
  url: string,
  use: (client: ReturnType<typeof createClient>) => Promise<void>,
): Promise<void> {
  const client = createClient({ url, socket: { reconnectStrategy: false } });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await use(client);
  } finally {
    client.destroy();
  }
}

/** Median, lowest and highest of some counts. */
export function spread(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const middle = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** The valgrind version, for the report. */
export function valgrindVersion(): string {
  try {
    return execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'valgrind not found';
  }
}

/**
 * Why a contender's instructions are not counted, or undefined when they are: only the memory
 * and Redis stores are (and the rows without sessions they are held against).
 */
export function notCounted(contender: Contender): string | undefined {
  if (!['none', 'memory', 'redis'].includes(contender.store))
    return 'instructions are counted on the memory store and on Redis only';
  if (contender.library === 'bare-work') {
    return 'its fixed work is a loop sized against the CPU clock at start-up, which valgrind slows many times over, so under callgrind it is a different, smaller loop';
  }
  return undefined;
}

/** One contender's counts in one scenario. */
export interface InstructionRow {
  contender: Contender;
  scenario: ScenarioId;
  /** Instructions per request, one per count. */
  values: number[];
  /** Of each, the optimizing compiler's (see {@link Count}); missing in results saved before it was counted. */
  compiler?: number[];
  /** Of each, the module loader's thread's (see {@link Count}). */
  loader?: number[];
  error?: string;
}

/** How the counts were taken, and what they gave. */
export interface InstructionResults {
  requests: number;
  warmup: number;
  repeats: number;
  valgrind: string;
  /** Minutes the counts took. */
  minutes: number;
  rows: InstructionRow[];
  /** Contenders of the run that were not counted, and why. */
  skipped: { contender: Contender; reason: string }[];
}

/** The settings of the instruction phase. */
export interface InstructionSettings {
  requests: number;
  warmup: number;
  repeats: number;
  /** Counts run at once (each is one single-threaded process under valgrind). */
  jobs: number;
  /**
   * A directory to keep the first count of each row in (`<id>-<scenario>.callgrind`), for
   * `callgrind_annotate`; nothing is kept when undefined.
   */
  keepDir?: string;
}

/**
 * Counts every countable contender in every scenario over HTTP, `repeats` times each (all of
 * repeat 1 first, so an interrupted phase still has every row once). Failures are kept per row.
 */
export async function measureInstructions(
  contenders: readonly Contender[],
  scenarios: readonly ScenarioId[],
  settings: InstructionSettings,
  tesseraDir: string | undefined,
  services: ChildServices,
  log: (line: string) => void,
  onProgress?: (partial: InstructionResults) => Promise<void>,
): Promise<InstructionResults> {
  const started = Date.now();
  const skipped: InstructionResults['skipped'] = [];
  const counted: Contender[] = [];
  for (const contender of contenders) {
    const reason = notCounted(contender);
    if (reason === undefined) counted.push(contender);
    else skipped.push({ contender, reason });
  }
  const rows: InstructionRow[] = scenarios.flatMap((scenario) =>
    counted.map((contender) => ({ contender, scenario, values: [], compiler: [], loader: [] })),
  );
  const tasks = Array.from({ length: settings.repeats }, (_, repeat) =>
    rows.map((row) => ({ row, repeat })),
  ).flat();
  log(
    `Instructions: ${rows.length} counts × ${settings.repeats} repeats under callgrind, ` +
      `${settings.warmup} warm-up + ${settings.requests} measured requests each, ${settings.jobs} at a time`,
  );
  const valgrind = valgrindVersion();
  if (settings.keepDir !== undefined) await mkdir(settings.keepDir, { recursive: true });
  const results = (): InstructionResults => ({
    requests: settings.requests,
    warmup: settings.warmup,
    repeats: settings.repeats,
    valgrind,
    minutes: (Date.now() - started) / 60_000,
    rows,
    skipped,
  });
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const { row, repeat } = tasks[next++]!;
      if (row.error !== undefined) continue;
      const { id } = row.contender;
      const count = {
        spec: tesseraDir === undefined ? id : `${id}@${tesseraDir}`,
        scenario: row.scenario,
        requests: settings.requests,
        warmup: settings.warmup,
        overHttp: true,
        services,
        ...(settings.keepDir === undefined || repeat > 0
          ? {}
          : { keep: join(settings.keepDir, `${id}-${row.scenario}.callgrind`) }),
      };
      // A count that fails is tried once more before its row is given up.
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          const { total, compiler, loader } = await countInstructions(count);
          row.values.push(total);
          row.compiler?.push(compiler);
          row.loader?.push(loader);
          log(
            `  ${id} ${row.scenario} count ${repeat + 1}/${settings.repeats}: ${Math.round(total).toLocaleString('en-US')} instructions/req, ` +
              `of them ${Math.round(compiler).toLocaleString('en-US')} in the optimizing compiler and ${Math.round(loader).toLocaleString('en-US')} on the module loader's thread`,
          );
          break;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          log(`  ${id} ${row.scenario} count ${repeat + 1}, attempt ${attempt} failed: ${message}`);
          if (attempt === 2) row.error = message;
        }
      }
      await onProgress?.(results());
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, settings.jobs) }, worker));
  return results();
}
