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
 * @example
 * ```sh
 * npx tsx bench/inprocess.ts bare-express tessera-express-memory --rounds 8
 * npx tsc -p tsconfig.json --outDir /tmp/before   # on the older commit
 * npx tsx bench/inprocess.ts tessera-node-memory@/tmp/before tessera-node-memory@dist
 * ```
 *
 * @packageDocumentation
 */
import { fork } from 'node:child_process';
import { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BATCH = 500;
const IN_FLIGHT = 16;

interface ChildResult {
  spec: string;
  /** CPU µs per request: the 25th percentile of the batches. */
  p25: number;
}

/** Measures one contender in this process and answers its CPU µs per request. */
async function measureHere(spec: string, scenario: string, requests: number): Promise<ChildResult> {
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
    await run(Math.min(20_000, requests));
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

function runChild(spec: string, scenario: string, requests: number): Promise<ChildResult> {
  return new Promise((done, fail) => {
    const child = fork(
      fileURLToPath(import.meta.url),
      ['--child', spec, scenario, String(requests)],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    child.once('message', (message: ChildResult | { error: string }) =>
      'error' in message ? fail(new Error(message.error)) : done(message),
    );
    child.once('exit', (code) => {
      if (code !== 0) fail(new Error(`${spec} exited with ${code}`));
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [spec, scenario, requests] = process.argv.slice(3) as [string, string, string];
    let message: ChildResult | { error: string };
    try {
      message = await measureHere(spec, scenario, Number(requests));
    } catch (error) {
      message = { error: error instanceof Error ? error.message : String(error) };
    }
    process.send!(message, () => process.disconnect());
    return;
  }
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '8' },
      scenario: { type: 'string', default: 'read' },
      requests: { type: 'string', default: '30000' },
    },
  });
  if (positionals.length === 0) {
    console.log(
      'npx tsx bench/inprocess.ts [--rounds 8] [--scenario read|write|new] [--requests 30000] <contender>[@<compiled dir>] ...',
    );
    return;
  }
  const results = new Map<string, number[]>(positionals.map((spec) => [spec, []]));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const spec of positionals) {
      const result = await runChild(spec, values.scenario, Number(values.requests));
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

await main();
