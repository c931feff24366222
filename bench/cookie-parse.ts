/**
 * What reading the session cookie costs per byte of a hostile Cookie header. The reader runs
 * before any authentication, on whatever header a client sends, so its cost must stay linear in
 * the header's length whatever the header holds: the ratio column (the cost per byte against the
 * 100 B header of the same shape) stays near 1 or falls for a linear reader, and grows with the
 * size for one that is not.
 *
 * By default each header is read in batches of at least 5 ms, and the table gives the median
 * over the rounds of the time per header. With `--instructions`, each header is instead read
 * under callgrind (valgrind) twice, N and 2N times after the same warm-up, in separate processes
 * running this script bundled by esbuild; the difference of the two instruction totals divided by
 * N is the count per header, which does not move with the machine's load.
 *
 * Standalone: it needs nothing but `../src/cookie.js` (and esbuild, a development dependency, for
 * `--instructions`), so the same file run in a checkout of an older commit measures that
 * commit's reader.
 *
 * @example
 * ```sh
 * npx tsx bench/cookie-parse.ts
 * npx tsx bench/cookie-parse.ts --rounds 31
 * npx tsx bench/cookie-parse.ts --instructions
 * ```
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readCookieValues } from '../src/cookie.js';

const NAME = 'sid';
const SIZES = [100, 1024, 4096, 8192, 16_384];
/** A signed session ID as Tessera writes it: 43 characters, a dot, 43 of signature. */
const VALUE =
  'u1Zc3pP0m8xQy7Rk2WvNn5LsBq4TfYhJ6aDgEoC9iK0.Xb2Vn8Lq1Zs5Wd7Rf3Tg9Yh4Uj6Ik0Ol2Pm8Qn1Ro5Sp';
const FILLER = '_ga=GA1.2.1234567890.1234567890; ';

/** Header shapes, each built to exactly `size` characters. */
const SHAPES: { label: string; make: (size: number) => string }[] = [
  { label: '`a=sidsidsid…`', make: (size) => `a=${'sid'.repeat(size)}`.slice(0, size) },
  { label: '`sidsidsid…` (no `=`)', make: (size) => 'sid'.repeat(size).slice(0, size) },
  { label: '`sid;sid;…`', make: (size) => 'sid;'.repeat(size).slice(0, size) },
  { label: '`;;;…;sid=x`', make: (size) => `${';'.repeat(size - 5)}sid=x` },
  { label: 'many cookies `ab=cd; …`', make: (size) => 'ab=cd; '.repeat(size).slice(0, size) },
  {
    label: 'cookies, then `sid=<value>`',
    make: (size) => `${FILLER.repeat(size).slice(0, size - 6 - VALUE.length)}; sid=${VALUE}`,
  },
  { label: '`sid=v; sid=v; …`', make: (size) => 'sid=v; '.repeat(size).slice(0, size) },
];

/** Keeps the results alive, so the reads cannot be optimized away. */
let sink = 0;

function readMany(header: string, times: number): void {
  for (let i = 0; i < times; i++) sink += readCookieValues(header, NAME).length;
}

/** Nanoseconds per header over one batch of `times` reads. */
function timeBatch(header: string, times: number): number {
  const started = process.hrtime.bigint();
  readMany(header, times);
  return Number(process.hrtime.bigint() - started) / times;
}

/** How many reads make a batch of at least `ms` milliseconds (reading as it goes, a warm-up). */
function readsFilling(header: string, ms: number): number {
  let times = 1;
  while (timeBatch(header, times) * times < ms * 1e6) times *= 2;
  return times;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * This script bundled by esbuild into one plain JavaScript file in `dir`, for the children run
 * under callgrind: started through tsx, each would count several times more instructions of
 * start-up than of reading.
 */
async function bundleForChildren(dir: string): Promise<string> {
  const { build } = await import('esbuild');
  const script = join(dir, 'cookie-parse.mjs');
  await build({
    entryPoints: [fileURLToPath(import.meta.url)],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    external: ['esbuild'],
    logLevel: 'error',
  });
  return script;
}

/** The instructions callgrind counts in a child that reads the header `warmup + times` times. */
async function instructionsOfRun(
  script: string,
  shape: number,
  size: number,
  warmup: number,
  times: number,
): Promise<number> {
  const out = join(dirname(script), `callgrind-${shape}-${size}-${times}.out`);
  const run = () =>
    new Promise<void>((done, fail) => {
      execFile(
        'valgrind',
        [
          '--tool=callgrind',
          // V8 writes machine code at run time; callgrind must see those writes.
          '--smc-check=all-non-file',
          `--callgrind-out-file=${out}`,
          process.execPath,
          // No concurrent GC or compiler threads: repeated counts agree more closely.
          '--predictable',
          script,
          '--child',
          String(shape),
          String(size),
          String(warmup),
          String(times),
        ],
        { maxBuffer: 64 * 1024 * 1024 },
        (error) => (error === null ? done() : fail(error)),
      );
    });
  // A shared machine may end a long run with a signal; such a run is started again, twice at most.
  for (let attempt = 1; ; attempt++) {
    try {
      await run();
      break;
    } catch (error) {
      if (attempt === 3 || (error as { signal?: unknown }).signal == null) throw error;
      console.error(
        `callgrind run ended by ${String((error as { signal: unknown }).signal)}; again`,
      );
    }
  }
  const totals = /^(?:summary|totals): (\d+)/m.exec(await readFile(out, 'utf8'));
  if (totals === null) throw new Error('no instruction total in the callgrind output');
  return Number(totals[1]);
}

/**
 * Instructions per header: (2N run − N run) / N, with N (at least 4) the reads that take some
 * 50 ms natively, so that the reads counted outweigh the noise of start-up, JIT and GC.
 */
async function instructionsPerHeader(script: string, shape: number, size: number): Promise<number> {
  const header = SHAPES[shape]!.make(size);
  const times = Math.max(4, readsFilling(header, 50));
  const [once, twice] = await Promise.all([
    instructionsOfRun(script, shape, size, times, times),
    instructionsOfRun(script, shape, size, times, 2 * times),
  ]);
  return (twice - once) / times;
}

/** Nanoseconds per header (or instructions with a bundled `script`) for one shape and size. */
async function costPerHeader(
  shape: number,
  size: number,
  rounds: number,
  script: string | undefined,
): Promise<number> {
  if (script !== undefined) return instructionsPerHeader(script, shape, size);
  const header = SHAPES[shape]!.make(size);
  const times = readsFilling(header, 5);
  return median(Array.from({ length: rounds }, () => timeBatch(header, times)));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [shape, size, warmup, times] = process.argv.slice(3).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    const header = SHAPES[shape]!.make(size);
    readMany(header, warmup);
    readMany(header, times);
    console.log(sink);
    return;
  }
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '15' },
      instructions: { type: 'boolean', default: false },
    },
  });
  const unit = values.instructions ? 'instructions' : 'ns';
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cookie-parse-'));
  try {
    const script = values.instructions ? await bundleForChildren(dir) : undefined;
    console.log(`| header | size | ${unit} per header | ${unit} per byte | per byte vs 100 B |`);
    console.log('|---|--:|--:|--:|--:|');
    for (const [shape, { label, make }] of SHAPES.entries()) {
      let firstPerByte: number | undefined;
      for (const size of SIZES) {
        if (make(size).length !== size) throw new Error(`${label}: not ${size} characters`);
        const perHeader = await costPerHeader(shape, size, Number(values.rounds), script);
        const perByte = perHeader / size;
        firstPerByte ??= perByte;
        console.log(
          `| ${label} | ${size.toLocaleString('en-US')} B | ${Math.round(perHeader).toLocaleString('en-US')} | ${perByte.toFixed(2)} | ${(perByte / firstPerByte).toFixed(2)} |`,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (sink < 0) console.log(sink);
}

await main();
