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
 * With `--instructions`, each contender instead runs under callgrind (valgrind) and the report is
 * its instructions per request over the measured window after the warm-up (see `instructions.ts`).
 * That count does not move with the machine's load, only with what GC and JIT work the window
 * holds, so it settles differences that CPU time on a shared machine cannot; `--repeats 3` counts
 * each contender three times and gives the median and range. It is slow: about 10 ms per Express
 * request under valgrind.
 *
 * `--instructions --http` counts the same over real HTTP: the contender's app listens on
 * loopback, under callgrind, and a separate process (not under valgrind, so not counted) sends
 * the requests with autocannon over 8 keep-alive connections, each with a session of its own.
 * The count then includes Node's HTTP parser and socket writes, and shows how much of a
 * difference in CPU time per request comes from executing more instructions and how much from
 * executing them more slowly.
 *
 * The memory-store, Redis and sessionless contenders run here. The Redis ones use
 * `BENCH_REDIS_URL` (default the machine's Redis at 127.0.0.1:6379) under a key prefix of this run's
 * own, and every key under it is deleted after each count. `--keep <dir>` keeps each count's
 * callgrind output of the measured window, for `callgrind_annotate`.
 *
 * @example
 * ```sh
 * npx tsx bench/inprocess.ts bare-express tessera-express-memory --rounds 8
 * npx tsx bench/inprocess.ts bare-express layer-express tessera-express-memory --instructions
 * npx tsx bench/inprocess.ts bare-express tessera-express-memory --instructions --http --requests 1000 --warmup 2000 --repeats 3
 * npx tsx bench/inprocess.ts tessera-express-redis connect-redis --instructions --http --keep /tmp/cg
 * npx tsc -p tsconfig.json --outDir /tmp/before   # on the older commit
 * npx tsx bench/inprocess.ts tessera-node-memory@/tmp/before tessera-node-memory@dist
 * ```
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { fork } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { IncomingMessage, ServerResponse, get } from 'node:http';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { askChild } from './children.js';
import {
  countInstructions,
  idOf,
  SERVICES_ENV,
  spread,
  type ChildServices,
} from './instructions.js';

const BATCH = 500;
const IN_FLIGHT = 16;

interface ChildResult {
  spec: string;
  /** CPU µs per request: the 25th percentile of the batches (NaN when instructions are counted). */
  p25: number;
}

/**
 * How a child measures: CPU time over batches, or (under callgrind) the instructions of the
 * measured window on in-memory sockets or over HTTP.
 */
export type MeasureMode = 'cpu' | 'instructions' | 'http';

/**
 * Marks an end of the measured window. Under callgrind (`--dump-before=uv_getrusage`, see
 * `instructions.ts`) reading the CPU usage dumps the counts so far.
 */
function markWindow(): void {
  process.cpuUsage();
}

/** The services the parent handed this child, or the defaults of a run on its own. */
function childServices(): ChildServices {
  const raw = process.env[SERVICES_ENV];
  if (raw !== undefined && raw !== '') return JSON.parse(raw) as ChildServices;
  return {
    redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    namespace: `tessera_inprocess_${randomBytes(4).toString('hex')}`,
  };
}

/** Measures one contender in this process and answers its CPU µs per request. */
export async function measureHere(
  spec: string,
  scenario: string,
  requests: number,
  warmup = Math.min(20_000, requests),
  mode: MeasureMode = 'cpu',
): Promise<ChildResult> {
  const [id, dir] = spec.split('@') as [string, string | undefined];
  if (dir !== undefined) process.env.BENCH_TESSERA_DIR = resolve(dir);
  const { contenderById } = await import('./contenders.js');
  const { startApp } = await import('./servers/apps.js');
  const { storesFor } = await import('./servers/stores.js');
  const contender = contenderById(id);
  if (!['none', 'memory', 'redis'].includes(contender.store)) {
    throw new Error(
      `${id}: only the sessionless, memory-store and Redis contenders run in-process`,
    );
  }
  const services = childServices();
  const secret = 'inprocess-secret-that-is-at-least-32-bytes';
  // Built as the bench's servers build them, without the counting wrappers.
  const stores = await storesFor(
    contender,
    {
      contender: id,
      services: services.redisUrl === undefined ? {} : { redisUrl: services.redisUrl },
      namespace: services.namespace,
      workDir: tmpdir(),
      secret,
    },
    undefined,
  );
  const input: Parameters<typeof startApp>[0] = { contender, secret };
  if (stores.tesseraStore !== undefined) input.tesseraStore = stores.tesseraStore;
  if (stores.peerStore !== undefined) input.peerStore = stores.peerStore;
  // Under valgrind on a busy machine the process can stand still for longer than the default
  // 5 s store timeout, whose timer would then fire before the waiting answer is read.
  if (mode !== 'cpu') input.storeTimeout = 600_000;
  const app = await startApp(input);
  try {
    // node:http rather than fetch: under valgrind on a busy machine, loading and running fetch's
    // client in this process can outlast its 10 s connect timeout.
    const logIn = (user: number) =>
      new Promise<string>((resolve, reject) => {
        get(`http://127.0.0.1:${app.port}/login?u=${user}`, (login) => {
          login.resume();
          login.once('end', () =>
            resolve(
              (login.headers['set-cookie'] ?? []).map((line) => line.split(';')[0]).join('; '),
            ),
          );
        }).once('error', reject);
      });
    const cookie = await logIn(0);
    const path = `/${scenario}`;
    if (mode === 'http') {
      // Under valgrind on a busy machine the process can stand still for seconds; Node's default
      // 5 s keep-alive timeout would then close connections the driver is about to use.
      app.server.keepAliveTimeout = 600_000;
      const url = `http://127.0.0.1:${app.port}${path}`;
      // One session per connection, as in the bench's HTTP runs.
      const cookies = [cookie];
      while (scenario !== 'new' && cookies.length < DRIVER_CONNECTIONS) {
        cookies.push(await logIn(cookies.length));
      }
      await driveOverHttp(url, scenario === 'new' ? [] : cookies, warmup, requests);
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
    if (mode === 'instructions') {
      markWindow();
      await run(requests);
      markWindow();
      return { spec, p25: Number.NaN };
    }
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
    await stores.close();
  }
}

/** The HTTP driver's keep-alive connections, each with a session of its own. */
const DRIVER_CONNECTIONS = 8;

/** What the HTTP driver and the measured process say to each other. */
type DriverMessage = { type: 'warm' } | { type: 'go' } | { type: 'done' };

/**
 * Sends `warmup` and then `amount` requests to `url` from a separate Node process (which
 * callgrind does not follow) over 8 keep-alive connections. Between the two it waits for this
 * process to mark the start of the measured window; the end is marked when the driver reports
 * its last answer, before it exits.
 */
function driveOverHttp(
  url: string,
  cookies: readonly string[],
  warmup: number,
  amount: number,
): Promise<void> {
  return new Promise((done, fail) => {
    const child = fork(
      fileURLToPath(import.meta.url),
      ['--drive', url, cookies.join('\n'), String(warmup), String(amount)],
      { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    let finished = false;
    child.on('message', (message: DriverMessage) => {
      if (message.type === 'warm') {
        markWindow();
        child.send({ type: 'go' } satisfies DriverMessage);
      } else if (message.type === 'done') {
        markWindow();
        finished = true;
      }
    });
    child.once('exit', (code) =>
      code === 0 && finished
        ? done()
        : fail(new Error(`the HTTP driver exited with ${code} before it was done`)),
    );
  });
}

/** The driver's side of {@link driveOverHttp}. */
async function drive(url: string, cookies: string, warmup: number, amount: number): Promise<void> {
  const { cannonCount } = await import('./harness.js');
  const sent = cookies === '' ? [] : cookies.split('\n');
  if (warmup > 0) await cannonCount(url, sent, warmup, DRIVER_CONNECTIONS);
  const go = new Promise<void>((resolve) =>
    process.on('message', (message: DriverMessage) => {
      if (message.type === 'go') resolve();
    }),
  );
  process.send!({ type: 'warm' } satisfies DriverMessage);
  await go;
  await cannonCount(url, sent, amount, DRIVER_CONNECTIONS);
  await new Promise<void>((resolve) => process.send!({ type: 'done' }, () => resolve()));
}

function runChild(spec: string, scenario: string, requests: number): Promise<ChildResult> {
  return askChild<ChildResult>(
    fileURLToPath(import.meta.url),
    [spec, scenario, String(requests)],
    spec,
  );
}

function median(values: number[]): number {
  return spread(values).median;
}

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

async function main(): Promise<void> {
  if (process.argv[2] === '--drive') {
    const [url, cookie, warmup, amount] = process.argv.slice(3) as [string, string, string, string];
    await drive(url, cookie, Number(warmup), Number(amount));
    process.exit(0);
  }
  if (process.argv[2] === '--child') {
    const [spec, scenario, requests, warmup, mode] = process.argv.slice(3) as [
      string,
      string,
      string,
      string | undefined,
      MeasureMode | undefined,
    ];
    let message: ChildResult | { error: string };
    try {
      message = await measureHere(
        spec,
        scenario,
        Number(requests),
        warmup === undefined ? undefined : Number(warmup),
        mode ?? 'cpu',
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
      repeats: { type: 'string', default: '1' },
      keep: { type: 'string' },
    },
  });
  if (positionals.length === 0) {
    console.log(
      'npx tsx bench/inprocess.ts [--rounds 8] [--scenario read|write|new] [--requests 30000] <contender>[@<compiled dir>] ...\n' +
        'npx tsx bench/inprocess.ts --instructions [--http] [--scenario read|write|new] [--requests 4000] [--warmup 4000] [--repeats 1] [--keep <dir>] <contender>[@<compiled dir>] ...',
    );
    return;
  }
  if (values.instructions) {
    const requests = Number(values.requests ?? '4000');
    const repeats = Math.max(1, Number(values.repeats));
    const services = childServices();
    if (values.keep !== undefined) await mkdir(values.keep, { recursive: true });
    for (const spec of positionals) {
      const counts: number[] = [];
      const compiled: number[] = [];
      const loaders: number[] = [];
      for (let repeat = 1; repeat <= repeats; repeat++) {
        const keep =
          values.keep === undefined
            ? undefined
            : join(values.keep, `${idOf(spec)}-${values.scenario}-${repeat}.callgrind`);
        const { total, compiler, loader } = await countInstructions({
          spec,
          scenario: values.scenario,
          requests,
          warmup: Number(values.warmup),
          overHttp: values.http,
          services,
          ...(keep === undefined ? {} : { keep }),
        });
        counts.push(total);
        compiled.push(compiler);
        loaders.push(loader);
      }
      const { median: middle, min, max } = spread(counts);
      const range = repeats > 1 ? ` (${formatCount(min)}–${formatCount(max)} over ${repeats})` : '';
      console.log(
        `${spec.padEnd(48)} ${formatCount(middle).padStart(9)} instructions/req${range}, ` +
          `of them ${formatCount(spread(compiled).median)} in the optimizing compiler and ${formatCount(spread(loaders).median)} on the module loader's thread   ` +
          `(callgrind, ${values.scenario}, ${values.http ? 'over HTTP, ' : ''}${values.warmup} warm-up + ${requests} requests)`,
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
