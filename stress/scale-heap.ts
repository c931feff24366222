/**
 * The application's heap across many distinct sessions on an external store: a SessionManager on
 * a private redis-server makes `count` sessions as cookieless requests would (load, set, commit),
 * and reads each back once with its cookie, so that the manager's cache of verified cookies
 * fills to its bound. The heap after a full collection is sampled ten times on the way.
 */
import { randomBytes } from 'node:crypto';
import { SessionManager } from '../src/manager.js';
import { RedisStore } from '../src/stores/redis.js';
import { RedisServerProcess } from '../test/support/redis-server.js';
import { footprint, inParallel, type Footprint } from './scale-measure.js';

/** The heap and RSS after each tenth of the sessions. */
export interface HeapFigures {
  sessions: number;
  seconds: number;
  samples: (Footprint & { sessions: number })[];
  violations: string[];
}

/** The heap may grow by this fraction between the first sample and the last, plus 2 MiB. */
const HEAP_TOLERANCE = 0.1;

/** Makes `count` sessions through a manager on a private Redis and samples the heap. */
export async function runHeap(count: number): Promise<HeapFigures> {
  const { createClient } = await import('redis');
  const server = await RedisServerProcess.start();
  const client = createClient({ socket: { host: '127.0.0.1', port: server.port } });
  client.on('error', () => undefined);
  await client.connect();
  const manager = new SessionManager<{ n: number }>({
    store: new RedisStore({ client, prefix: 'tessera_scale_heap:' }),
    secrets: [randomBytes(32).toString('hex')],
  });
  const samples: HeapFigures['samples'] = [];
  const violations: string[] = [];
  const started = Date.now();
  const step = Math.max(1, Math.floor(count / 10));
  try {
    for (let done = 0; done < count; done += step) {
      const batch = Math.min(step, count - done);
      await inParallel(batch, 64, async (n) => {
        const session = await manager.load({});
        session.set('n', done + n);
        const { setCookie } = await manager.commit(session);
        const cookie = setCookie[0]!.split(';')[0]!;
        const again = await manager.load({ cookie });
        if (again.get('n') !== done + n && violations.length < 5) {
          violations.push(`session ${done + n} read back ${String(again.get('n'))}`);
        }
      });
      samples.push({ sessions: done + batch, ...footprint() });
    }
  } finally {
    await client.close();
    await server.stop();
  }
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first !== undefined && last !== undefined) {
    const bound = first.heapMiB * (1 + HEAP_TOLERANCE) + 2;
    if (last.heapMiB > bound) {
      violations.push(
        `the heap grew from ${first.heapMiB} MiB to ${last.heapMiB} MiB across ${count} sessions`,
      );
    }
  }
  return {
    sessions: count,
    seconds: Math.round((Date.now() - started) / 1000),
    samples,
    violations,
  };
}
