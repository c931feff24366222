/**
 * Server CPU per request without sockets: each contender's application (the bench's own, from
 * `bench/servers/apps.ts`) is handed requests built on an in-memory socket, and the process's CPU
 * time is read over batches of 500. With no kernel, network or load generator in the way, the
 * figure holds only the JavaScript work of the framework and the session layer, which makes small
 * differences between two builds of Tessera visible on a noisy machine.
 *
 * Each contender runs in a fresh child process; the rounds alternate between the contenders, and
 * the report gives, per contender, the median and the lowest over the rounds of each process's
 * 25th-percentile batch. A contender may name a directory of compiled Tessera after `@`, to
 * compare two builds side by side.
 *
 * With `--instructions`, each contender instead runs twice under callgrind (valgrind), after the
 * same warm-up, with N and 2N measured requests; the difference of the two instruction totals,
 * divided by N, is its instructions per request. That count does not move with the machine's
 * load, only with GC and JIT timing, so it settles differences that CPU time on a shared machine
 * cannot. V8 runs with `--predictable` there (no concurrent GC or compiler threads). Even so, a
 * run's window of requests may or may not hold a major GC: of three counts of each of two
 * builds, all but one agreed within 3 %, and that one was 27 % higher (at 4,000 requests). Use `--requests 16000` and
 * repeat a count before trusting a difference of a few percent. It is slow: about 10 ms per Express request under valgrind, some 3 minutes per
 * contender at the default 4,000 requests.
 *
 * `--instructions --http` counts the same over real HTTP: the contender's app listens on
 * loopback, under callgrind, and a separate process (not under valgrind, so not counted) sends
 * the requests with autocannon over 8 keep-alive connections. The count then includes Node's
 * HTTP parser and socket writes, and shows how much of a difference in CPU time per request
 * comes from executing more instructions and how much from executing them more slowly.
 *
 * @example
 * ```sh
 * npx tsx bench/inprocess.ts bare-express tessera-express-memory --rounds 8
 * npx tsx bench/inprocess.ts bare-express layer-express tessera-express-memory --instructions
 * npx tsx bench/inprocess.ts bare-express tessera-express-memory --instructions --http --requests 8000 --warmup 8000
 * npx tsc -p tsconfig.json --outDir /tmp/before   # on the older commit
 * npx tsx bench/inprocess.ts tessera-node-memory@/tmp/before tessera-node-memory@dist
 * ```
 *
 * @packageDocumentation
 */
import { execFile, fork } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { askChild } from './children.js';

const BATCH = 500;
const IN_FLIGHT = 16;

interface ChildResult {
  spec: string;
  /** CPU µs per request: the 25th percentile of the batches. */
  p25: number;
}

/** Measures one contender in this process and answers its CPU µs per request. */
export async function measureHere(
  spec: string,
  scenario: string,
  requests: number,
  warmup = Math.min(20_000, requests),
  overHttp = false,
): Promise<ChildResult> {
  const [id, dir] = spec.split('@') as [string, string | undefined];
  if (dir !== undefined) process.env.BENCH_TESSERA_DIR = resolve(dir);
  const { contenderById } = await import('./contenders.js');
  const { startApp } = await import('./servers/apps.js');
  const { loadSource, ExpressSession } = await import('./servers/modules.js');
  const contender = contenderById(id);
  if (contender.store !== 'none' && contender.store !== 'memory') {
    throw new Error(`${id}: only the bare, calibration and memory-store contenders run in-process`);
  }
  const input: Parameters<typeof startApp>[0] = {
    contender,
    secret: 'inprocess-secret-that-is-at-least-32-bytes',
  };
  if (contender.library === 'tessera') {
    input.tesseraStore = new (await loadSource('stores/memory.js')).MemoryStore();
  } else if (contender.library === 'express-session') {
    input.peerStore = new ExpressSession.MemoryStore();
  } else if (contender.library === 'fastify-session') {
    throw new Error(`${id}: @fastify/session is not measured in-process`);
  }
  const app = await startApp(input);
  try {
    const login = await fetch(`http://127.0.0.1:${app.port}/login?u=0`);
    const cookie = login.headers
      .getSetCookie()
      .map((line) => line.split(';')[0])
      .join('; ');
    const path = `/${scenario}`;
    if (overHttp) {
      const url = `http://127.0.0.1:${app.port}${path}`;
      const sent = scenario === 'new' ? '' : cookie;
      await driveOverHttp(url, sent, warmup);
      await driveOverHttp(url, sent, requests);
      return { spec, p25: Number.NaN };
    }
    const one = () =>
      new Promise<void>((done) => {
        const socket = new Duplex({
          read() {},
          write(_chunk, _encoding, callback) {
            callback();
          },
        });
        Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' });
        const req = new IncomingMessage(socket as never);
        req.method = 'GET';
        req.url = path;
        req.httpVersionMajor = 1;
        req.httpVersionMinor = 1;
        req.httpVersion = '1.1';
        req.headers = scenario === 'new' ? { host: 'bench' } : { host: 'bench', cookie };
        req.push(null);
        const res = new ServerResponse(req);
        res.assignSocket(socket as never);
        res.on('finish', () => done());
        app.server.emit('request', req, res);
      });
    const run = async (count: number) => {
      let started = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (started++ < count) await one();
        }),
      );
    };
    await run(warmup);
    const batches: number[] = [];
    for (let done = 0; done < requests; done += BATCH) {
      const before = process.cpuUsage();
      await run(BATCH);
      const used = process.cpuUsage(before);
      batches.push((used.user + used.system) / BATCH);
    }
    batches.sort((a, b) => a - b);
    return { spec, p25: batches[Math.floor((batches.length - 1) / 4)]! };
  } finally {
    await app.close();
  }
}

/**
 * Sends `amount` requests to `url` from a separate Node process (which callgrind does not follow)
 * over 8 keep-alive connections, and waits for them.
 */
function driveOverHttp(url: string, cookie: string, amount: number): Promise<void> {
  return new Promise((done, fail) => {
    const child = fork(fileURLToPath(import.meta.url), ['--drive', url, cookie, String(amount)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('exit', (code) =>
      code === 0 ? done() : fail(new Error(`the HTTP driver exited with ${code}`)),
    );
  });
}

function runChild(spec: string, scenario: string, requests: number): Promise<ChildResult> {
  return askChild<ChildResult>(
    fileURLToPath(import.meta.url),
    [spec, scenario, String(requests)],
    spec,
  );
}

/** What one instruction count measures. */
interface CountSpec {
  spec: string;
  scenario: string;
  requests: number;
  warmup: number;
  overHttp: boolean;
}

/** The instructions callgrind counted in one run of a contender's child (all its threads). */
async function instructionsOfRun({
  spec,
  scenario,
  requests,
  warmup,
  overHttp,
}: CountSpec): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-callgrind-'));
  const out = join(dir, 'callgrind.out');
  try {
    await new Promise<void>((done, fail) => {
      execFile(
        'valgrind',
        [
          '--tool=callgrind',
          // V8 writes machine code at run time; callgrind must see those writes.
          '--smc-check=all-non-file',
          `--callgrind-out-file=${out}`,
          process.execPath,
          // No concurrent GC or compiler threads: repeated counts of one build agree more closely.
          '--predictable',
          '--import',
          'tsx',
          fileURLToPath(import.meta.url),
          '--child',
          spec,
          scenario,
          String(requests),
          String(warmup),
          ...(overHttp ? ['http'] : []),
        ],
        { maxBuffer: 64 * 1024 * 1024 },
        (error) => (error === null ? done() : fail(error)),
      );
    });
    const totals = /^(?:summary|totals): (\d+)/m.exec(await readFile(out, 'utf8'));
    if (totals === null) throw new Error(`${spec}: no instruction total in the callgrind output`);
    return Number(totals[1]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Instructions per request: two runs with N and 2N measured requests after the same warm-up. */
async function instructionsPerRequest(count: CountSpec): Promise<number> {
  const [once, twice] = await Promise.all([
    instructionsOfRun(count),
    instructionsOfRun({ ...count, requests: 2 * count.requests }),
  ]);
  return (twice - once) / count.requests;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--drive') {
    const [url, cookie, amount] = process.argv.slice(3) as [string, string, string];
    const { cannonCount } = await import('./harness.js');
    await cannonCount(url, cookie === '' ? undefined : cookie, Number(amount), 8);
    process.exit(0);
  }
  if (process.argv[2] === '--child') {
    const [spec, scenario, requests, warmup, mode] = process.argv.slice(3) as [
      string,
      string,
      string,
      string | undefined,
      string | undefined,
    ];
    let message: ChildResult | { error: string };
    try {
      message = await measureHere(
        spec,
        scenario,
        Number(requests),
        warmup === undefined ? undefined : Number(warmup),
        mode === 'http',
      );
    } catch (error) {
      message = { error: error instanceof Error ? error.message : String(error) };
    }
    // Under callgrind there is no parent channel: the instruction count is the result.
    if (process.send === undefined) {
      if ('error' in message) throw new Error(message.error);
    } else process.send(message, () => process.disconnect());
    return;
  }
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '8' },
      scenario: { type: 'string', default: 'read' },
      requests: { type: 'string' },
      warmup: { type: 'string', default: '4000' },
      instructions: { type: 'boolean', default: false },
      http: { type: 'boolean', default: false },
    },
  });
  if (positionals.length === 0) {
    console.log(
      'npx tsx bench/inprocess.ts [--rounds 8] [--scenario read|write|new] [--requests 30000] <contender>[@<compiled dir>] ...\n' +
        'npx tsx bench/inprocess.ts --instructions [--http] [--scenario read|write|new] [--requests 4000] [--warmup 4000] <contender>[@<compiled dir>] ...',
    );
    return;
  }
  if (values.instructions) {
    const requests = Number(values.requests ?? '4000');
    for (const spec of positionals) {
      const perRequest = await instructionsPerRequest({
        spec,
        scenario: values.scenario,
        requests,
        warmup: Number(values.warmup),
        overHttp: values.http,
      });
      console.log(
        `${spec.padEnd(48)} ${Math.round(perRequest).toLocaleString('en-US').padStart(9)} instructions/req   (callgrind, ${values.scenario}, ${values.http ? 'over HTTP, ' : ''}${values.warmup} warm-up + ${requests} requests)`,
      );
    }
    return;
  }
  const results = new Map<string, number[]>(positionals.map((spec) => [spec, []]));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const spec of positionals) {
      const result = await runChild(spec, values.scenario, Number(values.requests ?? '30000'));
      results.get(spec)!.push(result.p25);
    }
    console.log(`round ${round}/${values.rounds} done`);
  }
  for (const [spec, p25s] of results) {
    console.log(
      `${spec.padEnd(48)} median ${median(p25s).toFixed(1).padStart(6)} µs/req   lowest ${Math.min(
        ...p25s,
      )
        .toFixed(1)
        .padStart(6)}   (${p25s.length} processes, ${values.scenario})`,
    );
  }
}

if (process.argv[1] !== undefined && /inprocess\.ts$/.test(process.argv[1])) await main();
