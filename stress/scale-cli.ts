/**
 * The `--scale` and `--soak` parts of the stress tool (stress/run.ts hands them over here).
 *
 *   npm run stress -- --scale                       every store at 10 k and 100 k sessions
 *   npm run stress -- --scale --sizes 10000,100000,1000000 --stores postgres
 *   npm run stress -- --soak                        SQLite and Redis, 10 minutes each
 *   npm run stress -- --soak --minutes 1 --stores sqlite
 *
 * Options:
 *   --stores LIST      --scale: memory,sqlite,postgres,mysql,redis,memcached (default all);
 *                      --soak: sqlite,redis (default both)
 *   --sizes LIST       --scale: session counts, ascending, each a multiple of 40 (default 10000,100000)
 *   --reads N          --scale: timed reads per size, 500 to 100000 (default 5000)
 *   --heap N           --scale: sessions made through a manager on Redis while the heap is
 *                      sampled (default: the largest size; 0 skips)
 *   --sqlite-defaults  --scale: SQLite without the settings docs/stores/sqlite.md recommends
 *   --mysql-shared     --scale: the shared MariaDB as configured, instead of a private server
 *                      with the buffer pool docs/stores/mysql.md recommends
 *   --minutes N        --soak: minutes per store, 1 to 120 (default 10)
 *   --json FILE        also write the results as JSON
 *
 * Answers the exit code: 0 when every check held, 1 when one broke, 2 on a usage error or a run
 * that overran its time limit.
 */
import { writeFileSync } from 'node:fs';
import { runHeap, type HeapFigures } from './scale-heap.js';
import { formatHeap, formatPlans, formatPrunes, formatScale } from './scale-report.js';
import { SCALE_KINDS, type ScaleKind } from './scale-stores.js';
import { runScale, type StoreScale } from './scale.js';
import { SOAK_KINDS, runSoak, type SoakKind, type SoakResult } from './soak.js';

class UsageError extends Error {}

function numberArg(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} takes a whole number from ${min} to ${max}`);
  }
  return n;
}

function listArg<T extends string>(value: string | undefined, name: string, allowed: readonly T[]) {
  const items = (value ?? '').split(',').filter((item) => item !== '');
  if (items.length === 0 || items.some((item) => !allowed.includes(item as T))) {
    throw new UsageError(`${name} takes some of ${allowed.join(',')}`);
  }
  return items as T[];
}

interface ScaleArgs {
  mode: 'scale' | 'soak';
  stores: string[] | undefined;
  sizes: number[];
  reads: number;
  heap: number | undefined;
  sqliteTuned: boolean;
  mysqlShared: boolean;
  minutes: number;
  json: string | undefined;
}

function parse(argv: string[]): ScaleArgs {
  const args: ScaleArgs = {
    mode: argv.includes('--soak') ? 'soak' : 'scale',
    stores: undefined,
    sizes: [10_000, 100_000],
    reads: 5_000,
    heap: undefined,
    sqliteTuned: true,
    mysqlShared: false,
    minutes: 10,
    json: undefined,
  };
  if (argv.includes('--soak') && argv.includes('--scale')) {
    throw new UsageError('--scale and --soak run apart');
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => argv[++i];
    if (flag === '--scale' || flag === '--soak') continue;
    else if (flag === '--stores') {
      args.stores = listArg<string>(
        value(),
        '--stores',
        args.mode === 'scale' ? SCALE_KINDS : SOAK_KINDS,
      );
    } else if (flag === '--sizes') {
      args.sizes = (value() ?? '').split(',').map(Number);
      checkSizes(args.sizes);
    } else if (flag === '--reads') args.reads = numberArg(value(), '--reads', 500, 100_000);
    else if (flag === '--heap') args.heap = numberArg(value(), '--heap', 0, 10_000_000);
    else if (flag === '--sqlite-defaults') args.sqliteTuned = false;
    else if (flag === '--mysql-shared') args.mysqlShared = true;
    else if (flag === '--minutes') args.minutes = numberArg(value(), '--minutes', 1, 120);
    else if (flag === '--json') {
      args.json = value();
      if (args.json === undefined) throw new UsageError('--json takes a file');
    } else throw new UsageError(`unknown argument ${flag}`);
  }
  return args;
}

/** `--sizes`: whole multiples of 40 (so that users and the expired fifth come out whole), ascending. */
function checkSizes(sizes: number[]): void {
  const ok = sizes.every(
    (size, i) =>
      Number.isInteger(size) &&
      size >= 40 &&
      size % 40 === 0 &&
      size <= 10_000_000 &&
      (i === 0 || size > sizes[i - 1]!),
  );
  if (!ok) throw new UsageError('--sizes takes ascending multiples of 40, up to 10000000');
}

/** Runs `--scale` or `--soak` as `argv` asks; answers the exit code. */
export async function runScaleCli(argv: string[]): Promise<number> {
  let args: ScaleArgs;
  try {
    args = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(
      `stress: ${error.message}\n(see the comment at the top of stress/scale-cli.ts)\n`,
    );
    return 2;
  }
  const out = (text: string) => process.stdout.write(`${text}\n`);
  // Exiting (rather than dying of the signal) runs the 'exit' handlers that stop private servers.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(2));
  // A hard limit: a millisecond per session per store (loading 1 M rows into MariaDB takes
  // minutes on a busy machine), or each soak's minutes, plus set-up time.
  const stores = args.stores ?? (args.mode === 'scale' ? SCALE_KINDS : SOAK_KINDS);
  const largest = args.sizes[args.sizes.length - 1]!;
  const heapCount = args.heap ?? largest;
  const limit =
    args.mode === 'scale'
      ? 120_000 + stores.length * (largest * 1.5 + args.reads * 100) + heapCount * 2
      : stores.length * (args.minutes * 60_000 + 60_000) + 60_000;
  const watchdog = setTimeout(() => {
    process.stderr.write(`stress: the run overran its limit of ${Math.round(limit / 1000)} s\n`);
    process.exit(2);
  }, limit);
  watchdog.unref();

  const violations: string[] = [];
  let json: unknown;
  if (args.mode === 'scale') {
    out(
      `Scale: ${stores.join(', ')} at ${args.sizes.join(', ')} sessions, ${args.reads} reads each`,
    );
    const results: StoreScale[] = await runScale({
      stores: stores as ScaleKind[],
      sizes: args.sizes,
      reads: args.reads,
      sqliteTuned: args.sqliteTuned,
      mysqlShared: args.mysqlShared,
      progress: (text) => process.stderr.write(`${text}\n`),
    });
    out(`\n${formatScale(results)}\n\n${formatPrunes(results)}\n\n${formatPlans(results)}\n`);
    let heap: HeapFigures | undefined;
    if (heapCount > 0) {
      heap = await runHeap(heapCount);
      out(
        `Heap across ${heapCount} sessions on Redis (${heap.seconds} s)\n\n${formatHeap(heap)}\n`,
      );
      violations.push(...heap.violations.map((v) => `heap: ${v}`));
    }
    for (const result of results) {
      violations.push(...result.violations.map((v) => `${result.kind}: ${v}`));
      for (const note of result.notes) out(`NOTE ${result.kind}: ${note}`);
    }
    json = { args, scale: results, heap };
  } else {
    const results: SoakResult[] = [];
    for (const kind of stores as SoakKind[]) {
      const result = await runSoak(kind, { durationMs: args.minutes * 60_000 });
      results.push(result);
      out(formatSoak(result));
      violations.push(...result.violations.map((v) => `${kind}: ${v}`));
    }
    json = { args, soak: results };
  }
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(json, null, 2)}\n`);
  for (const violation of violations) out(`VIOLATION ${violation}`);
  out(violations.length > 0 ? 'Some check failed: see above.' : 'Every check held.');
  clearTimeout(watchdog);
  return violations.length > 0 ? 1 : 0;
}

/** One soak's figures as a few lines and a table of the footprint samples. */
export function formatSoak(result: SoakResult): string {
  const total = Object.values(result.requests).reduce((a, b) => a + b, 0);
  const mix = Object.entries(result.requests)
    .map(([action, n]) => `${action} ${n.toLocaleString('en-US')}`)
    .join(', ');
  const rows = result.samples.map((s) => `| ${s.second} | ${s.heapMiB} | ${s.rssMiB} | ${s.fds} |`);
  return [
    `Soak on ${result.store}: ${result.seconds} s, ${total.toLocaleString('en-US')} requests (${mix}), ` +
      `${result.errors} errors, ${result.lostWrites} lost writes`,
    '',
    '| second | heap MiB | RSS MiB | open fds |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
