/**
 * The Redis store's invalidation window: how long after another process writes a session this
 * process's client-side cache still holds the old copy. This process reads through the store's
 * `clientSideCache` (a client with `RESP: 3` and `emitInvalidate`); a child process, another instance of the application,
 * updates the session through a client of its own. Each sample times, on the machine's clock,
 * the child sending the write, the child receiving its acknowledgement, and this process's cache
 * receiving the invalidation. Keys live under a prefix of this run's own and are deleted at the
 * end.
 *
 * @example
 * ```sh
 * npx tsx bench/cache-window.ts                       # 2,000 samples on 127.0.0.1:6379
 * npx tsx bench/cache-window.ts --samples 5000 --url redis://127.0.0.1:6380
 * ```
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';
import { RedisStore } from '../src/stores/redis.js';

/** A wall-clock instant in microseconds, comparable between processes on one machine. */
const stamp = () => (performance.timeOrigin + performance.now()) * 1000;

interface WriteRequest {
  key: string;
  version: number;
}
interface WriteDone {
  sent: number;
  acknowledged: number;
}

const record = (data: string) => ({ data, expiresAt: Date.now() + 600_000, userId: null });

/** The child: updates the session it is told to, and reports when it sent and was answered. */
async function writer(url: string, prefix: string): Promise<void> {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  const store = new RedisStore({ client, prefix });
  process.on('message', (message: WriteRequest | 'stop') => {
    if (message === 'stop') {
      void client.close().then(() => process.exit(0));
      return;
    }
    const sent = stamp();
    void store.update(message.key, record(`"${message.version}"`), message.version).then(() => {
      const done: WriteDone = { sent, acknowledged: stamp() };
      process.send!(done);
    });
  });
  process.send!('ready');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(name: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const ms = (us: number) => `${(us / 1000).toFixed(3)} ms`;
  return `${name}: median ${ms(percentile(sorted, 50))}, p99 ${ms(percentile(sorted, 99))}, max ${ms(sorted.at(-1)!)} (min ${ms(sorted[0]!)})`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      samples: { type: 'string', default: '2000' },
      url: { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
      writer: { type: 'string' },
    },
  });
  const url = values.url;
  if (values.writer !== undefined) return writer(url, values.writer);

  const samples = Number(values.samples);
  const prefix = `tessera-cache-window:${randomBytes(4).toString('hex')}:`;
  const client = createClient({ url, RESP: 3, emitInvalidate: true });
  client.on('error', () => undefined);
  await client.connect();
  const store = new RedisStore({ client, prefix, clientSideCache: true });
  const key = randomBytes(32).toString('base64url');
  await store.create(key, record('"0"'));

  const child: ChildProcess = fork(
    fileURLToPath(import.meta.url),
    ['--url', url, '--writer', prefix],
    {
      execArgv: process.execArgv,
    },
  );
  await new Promise((resolve) => child.once('message', resolve));

  const fromSent: number[] = [];
  const fromAcknowledged: number[] = [];
  let afterAcknowledgement = 0;
  for (let version = 1; version <= samples; version++) {
    const read = await store.get(key);
    if (read?.version !== version) throw new Error(`read version ${read?.version}, not ${version}`);
    if (store.get(key) instanceof Promise) throw new Error('the read was not cached');
    // Listened to after the store's own listener, which has dropped the key by then.
    const invalidated = new Promise<number>((resolve) => {
      const listener = (invalidatedKey: unknown) => {
        if (String(invalidatedKey) !== store.sessionKey(key)) return;
        client.off('invalidate', listener);
        resolve(stamp());
      };
      client.on('invalidate', listener);
    });
    const done = new Promise<WriteDone>((resolve) => child.once('message', resolve));
    child.send({ key, version } satisfies WriteRequest);
    const [at, write] = await Promise.all([invalidated, done]);
    fromSent.push(at - write.sent);
    fromAcknowledged.push(at - write.acknowledged);
    if (at > write.acknowledged) afterAcknowledgement++;
  }
  child.send('stop');

  console.log(`${samples} writes by another process, Redis at ${url}`);
  console.log(summary('invalidation received, from the write sent', fromSent));
  console.log(summary('invalidation received, from the write acknowledged', fromAcknowledged));
  console.log(
    `received after the writer's acknowledgement in ${afterAcknowledgement} of ${samples} samples`,
  );
  await store.delete(key);
  await client.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
