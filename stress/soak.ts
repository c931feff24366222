/**
 * The soak run (`npm run stress -- --soak`): the stress application (stress/app.ts) in this
 * process, on an SQLite file or a private redis-server, under a mixed workload for a bounded
 * time: browsers read, write, sign in, sign out and revoke their user's sessions. Checked: every
 * answer is a 200, no acknowledged write is lost, and the heap (after a full collection), the
 * RSS and the open file descriptors are as large at the end as a third of the way in.
 * See docs/reliability.md, "Soak".
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionManager } from '../src/manager.js';
import type { SessionStore } from '../src/store.js';
import { RedisServerProcess } from '../test/support/redis-server.js';
import { close, createStressApp, listen, type Counters } from './app.js';
import { Browser, newAgent, type Exchange } from './client.js';
import { footprint, type Footprint } from './scale-measure.js';

/** The stores the soak runs on. */
export type SoakKind = 'sqlite' | 'redis';

export const SOAK_KINDS: readonly SoakKind[] = ['sqlite', 'redis'];

/** Options of {@link runSoak}. */
export interface SoakOptions {
  /** How long the workload runs, in milliseconds. */
  durationMs: number;
  /** Browsers at once. @defaultValue 8 */
  browsers?: number;
  /** Footprint samples over the run (the first after the workload's first tenth). @defaultValue 10 */
  samples?: number;
}

/** What one soak found. */
export interface SoakResult {
  store: SoakKind;
  seconds: number;
  requests: Record<'read' | 'write' | 'login' | 'logout' | 'revoke', number>;
  errors: number;
  lostWrites: number;
  samples: (Footprint & { second: number })[];
  violations: string[];
}

/** Heap, RSS and descriptors may grow this much from a third of the way to the end. */
export const FLAT = { heapFraction: 0.1, heapMiB: 2, rssFraction: 0.2, rssMiB: 16, fds: 2 };

async function openSoakStore(
  kind: SoakKind,
): Promise<{ store: SessionStore; close(): Promise<void> }> {
  if (kind === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    const { SqliteStore } = await import('../src/stores/sqlite.js');
    const dir = await mkdtemp(join(tmpdir(), 'tessera-soak-'));
    const db = new Database(join(dir, 'sessions.db'));
    db.pragma('synchronous = NORMAL');
    const store = new SqliteStore({ db, pruneInterval: 5_000 });
    return {
      store,
      async close() {
        await store.close();
        db.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const { createClient } = await import('redis');
  const { RedisStore } = await import('../src/stores/redis.js');
  const server = await RedisServerProcess.start();
  const client = createClient({
    disableOfflineQueue: true,
    socket: { host: '127.0.0.1', port: server.port },
  });
  client.on('error', () => undefined);
  await client.connect();
  return {
    store: new RedisStore({ client, prefix: 'tessera_soak:' }),
    async close() {
      await client.close();
      await server.stop();
    },
  };
}

type Action = keyof SoakResult['requests'];

/** Picks the next action: mostly reads and writes, now and then a sign-in, sign-out or revoke. */
function nextAction(roll: number, signedIn: boolean): Action {
  if (roll < 0.5) return 'read';
  if (roll < 0.85) return 'write';
  if (roll < 0.93) return signedIn ? 'read' : 'login';
  if (roll < 0.97) return 'logout';
  return 'revoke';
}

/** Runs the mixed workload on `kind` for `options.durationMs`. */
export async function runSoak(kind: SoakKind, options: SoakOptions): Promise<SoakResult> {
  const browsers = options.browsers ?? 8;
  const sampleCount = options.samples ?? 10;
  const opened = await openSoakStore(kind);
  const manager = new SessionManager<Counters>({
    store: opened.store,
    secrets: [randomBytes(32).toString('hex')],
    maxSessionsPerUser: 2,
  });
  const server = createStressApp(manager);
  const base = await listen(server);
  const agent = newAgent();
  const started = Date.now();
  const clock = () => Date.now() - started;
  const result: SoakResult = {
    store: kind,
    seconds: 0,
    requests: { read: 0, write: 0, login: 0, logout: 0, revoke: 0 },
    errors: 0,
    lostWrites: 0,
    samples: [],
    violations: [],
  };
  const report = (what: string) => {
    if (result.violations.length < 20) result.violations.push(what);
  };
  let stop = false;

  const drive = async (b: number) => {
    const browser = new Browser(base, agent, clock);
    const user = `soak-${b}`;
    let acked = 0;
    let signedIn = false;
    while (!stop) {
      const action = nextAction(Math.random(), signedIn);
      result.requests[action]++;
      const exchange: Exchange =
        action === 'read'
          ? await browser.send('GET', '/')
          : action === 'write'
            ? await browser.send('POST', '/inc')
            : action === 'login'
              ? await browser.send('POST', `/login?u=${user}`)
              : action === 'logout'
                ? await browser.send('POST', '/logout')
                : await browser.send('POST', `/revoke?u=${user}`);
      if (exchange.status !== 200 || exchange.body === undefined) {
        result.errors++;
        report(`${action} answered ${exchange.status} ${exchange.error ?? ''}`.trim());
        continue;
      }
      if (action === 'logout') {
        // The answer shows the ended session, empty.
        acked = 0;
        signedIn = false;
        continue;
      }
      const seen = exchange.body.data.n ?? 0;
      if (action === 'write') acked++;
      if (seen !== acked) {
        if (seen < acked) result.lostWrites++;
        report(`${action} by browser ${b} saw ${seen}, expected ${acked}`);
        acked = seen;
      }
      if (action === 'login') signedIn = true;
      // A revocation of the user this browser is signed in as ends its session.
      if (action === 'revoke' && signedIn) {
        acked = 0;
        signedIn = false;
        browser.cookie = undefined;
      }
    }
  };

  const sample = () => result.samples.push({ second: Math.round(clock() / 1000), ...footprint() });
  // Samples at each nth of the run; the last once the workload has stopped.
  const sampler = (async () => {
    for (let n = 1; n < sampleCount && !stop; n++) {
      const due = (options.durationMs * n) / sampleCount;
      while (!stop && clock() < due) await new Promise((resolve) => setTimeout(resolve, 50));
      if (stop) break;
      sample();
    }
  })();
  const timer = setTimeout(() => (stop = true), options.durationMs);
  try {
    await Promise.all(Array.from({ length: browsers }, (_, b) => drive(b)));
    await sampler;
    sample();
  } finally {
    clearTimeout(timer);
    agent.destroy();
    await close(server);
    await opened.close();
  }
  result.seconds = Math.round(clock() / 1000);
  checkFlat(result);
  return result;
}

/** Compares the sample a third of the way in with the last one. */
function checkFlat(result: SoakResult): void {
  const samples = result.samples;
  const third = samples[Math.max(0, Math.floor(samples.length / 3) - 1)];
  const last = samples[samples.length - 1];
  if (third === undefined || last === undefined || third === last) {
    result.violations.push('too few footprint samples to judge');
    return;
  }
  const grew = (what: string, from: number, to: number, bound: number) => {
    if (to > bound) result.violations.push(`${what} grew from ${from} to ${to}`);
  };
  grew(
    'heap (MiB)',
    third.heapMiB,
    last.heapMiB,
    third.heapMiB * (1 + FLAT.heapFraction) + FLAT.heapMiB,
  );
  grew('RSS (MiB)', third.rssMiB, last.rssMiB, third.rssMiB * (1 + FLAT.rssFraction) + FLAT.rssMiB);
  grew('open descriptors', third.fds, last.fds, third.fds + FLAT.fds);
}
