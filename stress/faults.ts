/**
 * Faults under load: browsers keep reading, writing and signing in through a Tessera
 * application while one store's server is stopped, cut off, slowed or reset, then comes back.
 * Every exchange is checked against the guarantees:
 *
 * - every answer is a 200 or the documented 503 (with `Retry-After: 1`);
 * - no 503 sets or clears a cookie;
 * - every request that starts 1 s or more after the store returns succeeds;
 * - no acknowledged write is lost, and a signed-in browser stays signed in, on a store that keeps
 *   its data through the fault (all but Memcached's restart);
 * - no write appears that was never sent.
 */
import type { Agent } from 'node:http';
import { SessionManager } from '../src/manager.js';
import { MemcachedServer } from '../test/support/memcached-server.js';
import { createStressApp, close, listen, type Counters } from './app.js';
import { newAgent, type Browser } from './client.js';
import { Checker, finalReads, prepareCrowd, runLoad, sleep, type Violation } from './load.js';
import { FaultRelay } from './relay.js';
import { DurableRedis } from './servers.js';
import {
  MARIADB,
  POSTGRES,
  openStore,
  runName,
  type OpenStore,
  type Profile,
  type StoreKind,
} from './stores.js';

/** The faults the tool injects. */
export type FaultKind = 'restart' | 'cut' | 'partition' | 'stale' | 'slow' | 'reset';

/**
 * - `restart`: the private server is killed (SIGKILL) and started again on its port.
 * - `cut`: the relay cuts every connection and refuses new ones, then accepts them again.
 * - `partition`: the relay holds every byte (nothing refused, nothing answered), then lets them through.
 * - `stale`: a partition after which the connections open during it stay silent for good (the
 *   network came back, but a NAT, firewall or proxy forgot them); new connections work.
 * - `slow`: the relay delays every chunk by the store timeout plus 500 ms, then stops delaying.
 * - `reset`: the relay resets the connection of every third answer (the server did the work).
 */
export const FAULTS: readonly FaultKind[] = [
  'restart',
  'cut',
  'partition',
  'stale',
  'slow',
  'reset',
];

/** The faults that apply to a store: a restart only for the servers the tool starts itself. */
export function faultsFor(kind: StoreKind): FaultKind[] {
  return kind === 'redis' || kind === 'memcached'
    ? [...FAULTS]
    : FAULTS.filter((f) => f !== 'restart');
}

/** How long each phase lasts and how hard the browsers push. */
export interface ScenarioOptions {
  /** Browsers sending requests at once. @defaultValue 8 */
  clients?: number;
  /** Load before the fault, in ms. @defaultValue 1_000 */
  before?: number;
  /** How long the fault is held, in ms. @defaultValue 3_000 */
  duration?: number;
  /** Load after the store returns, in ms: at least the store timeout plus 1 s. @defaultValue 3_000 */
  after?: number;
  /** The manager's `storeTimeout`. @defaultValue 5_000 (the manager's default) */
  storeTimeout?: number;
  /** Client settings. @defaultValue 'docs' */
  profile?: Profile;
  /** Driver settings laid over the profile's (`StoreSpec.client` in stores.ts). */
  client?: Record<string, unknown>;
  /** Pause between a browser's requests, in ms. @defaultValue 5 */
  thinkMs?: number;
  /** Share of a signed-in browser's requests that sign in again (a new session ID). @defaultValue 0.02 */
  loginRate?: number;
  /** A read is sent this often (ms) by signed-in probe browsers, answered or not. @defaultValue 50 */
  probeEvery?: number;
  /** Concurrent reads sent once before the load, as a traffic peak. @defaultValue 16 */
  burst?: number;
  /** Sessions stored before the round-trip probe's second pass; 0 skips the probe. @defaultValue 0 */
  probeSessions?: number;
}

export type { Violation } from './load.js';

/** What one scenario found; times in ms, relative to the moment the fault began. */
export interface ScenarioResult {
  store: StoreKind;
  fault: FaultKind;
  profile: Profile;
  storeTimeout: number;
  requests: number;
  ok: number;
  unavailable: number;
  /** Whether the store keeps its data through this fault (all but Memcached's restart). */
  durable: boolean;
  /** When the store came back. */
  restoredAt: number;
  /** Start of the first failed request and end of the last, or null without failures. */
  errorWindow: { first: number; last: number } | null;
  /** The latest start of a failed request, relative to `restoredAt` (negative: all failed before). */
  lastFailedStartAfterRestore: number | null;
  /** The first success that started after `restoredAt`, its end relative to `restoredAt`. */
  firstSuccessAfterRestore: number | null;
  /** Failed requests that started after `restoredAt`: start and end, relative to `restoredAt`. */
  failedAfterRestore: { start: number; end: number }[];
  /** The longest answer (ms) among requests that started 1 s or more after `restoredAt`. */
  slowestAfterGrace: number | null;
  /** Acknowledged writes found missing on a durable store (a violation when above 0). */
  lostWrites: number;
  /** Signed-in browsers found signed out on a durable store (a violation when above 0). */
  signedOut: number;
  /** Sessions gone after a login answered 503 (the old record deleted, the new one not stored). */
  lostAfterFailedLogin: number;
  /** Sessions gone where the store keeps nothing through the fault (Memcached's restart). */
  expectedLosses: number;
  /** Round trips per read-only request: with the browsers' sessions, then with `probeSessions` more. */
  roundTripsPerRead: [number, number] | null;
  violations: Violation[];
}

/** A store behind a relay, with the fault's switches. */
interface Harness {
  open: OpenStore;
  relay: FaultRelay;
  inject(fault: FaultKind, storeTimeout: number): Promise<void>;
  /** Ends the fault; resolves when the store is reachable again. */
  restore(fault: FaultKind): Promise<void>;
  close(): Promise<void>;
}

async function harness(
  kind: StoreKind,
  profile: Profile,
  client: Record<string, unknown> | undefined,
): Promise<Harness> {
  let server:
    { crash(): Promise<void>; launch(): Promise<void>; stop(): Promise<void> } | undefined;
  let target: { host: string; port: number };
  if (kind === 'postgres') target = POSTGRES;
  else if (kind === 'mysql') target = MARIADB;
  else if (kind === 'redis') {
    const redis = await DurableRedis.start();
    server = redis;
    target = { host: '127.0.0.1', port: redis.port };
  } else if (kind === 'memcached') {
    const memcached = await MemcachedServer.start();
    server = {
      crash: () => memcached.stop(),
      launch: () => memcached.start(),
      stop: () => memcached.stop(),
    };
    target = { host: '127.0.0.1', port: memcached.port };
  } else throw new Error(`no fault harness for ${kind}`);
  const relay = new FaultRelay(target.host, target.port);
  const port = await relay.start();
  const name = runName();
  const open = await openStore({
    kind,
    endpoint: { host: '127.0.0.1', port },
    name,
    profile,
    client,
  });
  return {
    open,
    relay,
    async inject(fault, storeTimeout) {
      if (fault === 'restart') await server!.crash();
      else if (fault === 'cut') await relay.refuse();
      else if (fault === 'partition' || fault === 'stale') relay.partition();
      else if (fault === 'slow') relay.latency = storeTimeout + 500;
      else relay.resetEvery = 3;
    },
    async restore(fault) {
      if (fault === 'restart') await server!.launch();
      else if (fault === 'cut') await relay.reopen();
      else if (fault === 'partition') relay.heal();
      else if (fault === 'stale') relay.heal(true);
      else if (fault === 'slow') relay.latency = 0;
      else relay.resetEvery = 0;
    },
    async close() {
      // A pool with a client stuck on a silent connection never ends by itself: cutting the
      // relay's connections ends it.
      const closed = open.close().catch(() => undefined);
      await Promise.race([closed, sleep(2_000)]);
      await relay.close();
      await Promise.race([closed, sleep(5_000)]);
      await open.drop().catch(() => undefined);
      await server?.stop();
    },
  };
}

/** Round trips per read: the relay's client→server bursts over `reads` sequential GETs. */
async function roundTrips(browser: Browser, relay: FaultRelay, reads: number): Promise<number> {
  await browser.send('GET', '/');
  const before = relay.turns;
  for (let i = 0; i < reads; i++) await browser.send('GET', '/');
  return (relay.turns - before) / reads;
}

/** Stores `count` anonymous sessions with data, straight through the manager. */
async function seed(manager: SessionManager<Counters>, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < count) {
        next++;
        const session = await manager.load({});
        session.set('seed', 1);
        await manager.commit(session);
      }
    }),
  );
}

/** Runs one store under one fault and checks every exchange. */
export async function runScenario(
  kind: StoreKind,
  fault: FaultKind,
  options: ScenarioOptions = {},
): Promise<ScenarioResult> {
  const clients = options.clients ?? 8;
  const before = options.before ?? 1_000;
  const duration = options.duration ?? 3_000;
  const storeTimeout = options.storeTimeout ?? 5_000;
  const after = Math.max(options.after ?? 3_000, storeTimeout + 1_000);
  const profile = options.profile ?? 'docs';
  const thinkMs = options.thinkMs ?? 5;
  const loginRate = options.loginRate ?? 0.02;
  const durable = !(kind === 'memcached' && fault === 'restart');

  const h = await harness(kind, profile, options.client);
  const manager = new SessionManager<Counters>({
    store: h.open.store,
    secrets: ['stress-secret-that-is-at-least-32-bytes'],
    storeTimeout,
  });
  const server = createStressApp(manager);
  const agent: Agent = newAgent();
  try {
    const base = await listen(server);
    const t0 = performance.now();
    const clock = () => performance.now() - t0;
    const checker = new Checker(durable);
    const crowd = await prepareCrowd(base, agent, clock, checker, clients, options.burst ?? 16);
    let roundTripsPerRead: [number, number] | null = null;
    if ((options.probeSessions ?? 0) > 0) {
      const few = await roundTrips(crowd.browsers[0]!, h.relay, 50);
      await seed(manager, options.probeSessions!);
      roundTripsPerRead = [few, await roundTrips(crowd.browsers[0]!, h.relay, 50)];
    }
    checker.exchanges.length = 0;

    // A partition shorter than the store timeout only delays requests: hold it long enough to fail some.
    const hold = fault === 'partition' ? Math.max(duration, storeTimeout + 1_000) : duration;
    const faultAt = clock() + before;
    const end = faultAt + hold + after;
    const running = () => clock() < end;
    const load = runLoad(crowd, checker, running, {
      thinkMs,
      loginRate,
      probeEvery: options.probeEvery ?? 50,
    });
    await sleep(faultAt - clock());
    const injectedAt = clock();
    await h.inject(fault, storeTimeout);
    await sleep(Math.max(0, injectedAt + hold - clock()));
    await h.restore(fault);
    const restoredAt = clock();
    await load;

    await finalReads(crowd, checker);

    const graceEnds = restoredAt + 1_000;
    const failed = checker.exchanges.filter((e) => e.status !== 200);
    for (const e of failed) {
      if (e.start >= graceEnds) {
        checker.violate(
          'back within 1 s',
          `${e.method} ${e.path} started ${Math.round(e.start - restoredAt)} ms after the store returned: status ${e.status}`,
        );
      }
    }
    const okAfter = checker.exchanges.filter((e) => e.status === 200 && e.start >= restoredAt);
    const afterGrace = checker.exchanges.filter((e) => e.start >= graceEnds);
    return {
      store: kind,
      fault,
      profile,
      storeTimeout,
      requests: checker.exchanges.length,
      ok: checker.exchanges.filter((e) => e.status === 200).length,
      unavailable: checker.exchanges.filter((e) => e.status === 503).length,
      durable,
      restoredAt: restoredAt - injectedAt,
      errorWindow:
        failed.length === 0
          ? null
          : {
              first: Math.min(...failed.map((e) => e.start)) - injectedAt,
              last: Math.max(...failed.map((e) => e.end)) - injectedAt,
            },
      lastFailedStartAfterRestore:
        failed.length === 0 ? null : Math.max(...failed.map((e) => e.start)) - restoredAt,
      firstSuccessAfterRestore:
        okAfter.length === 0 ? null : Math.min(...okAfter.map((e) => e.end)) - restoredAt,
      failedAfterRestore: failed
        .filter((e) => e.start >= restoredAt)
        .map((e) => ({ start: e.start - restoredAt, end: e.end - restoredAt })),
      slowestAfterGrace:
        afterGrace.length === 0 ? null : Math.max(...afterGrace.map((e) => e.end - e.start)),
      lostWrites: checker.lostWrites,
      signedOut: checker.signedOut,
      lostAfterFailedLogin: checker.lostAfterFailedLogin,
      expectedLosses: checker.expectedLosses,
      roundTripsPerRead,
      violations: [...checker.violations.values()],
    };
  } finally {
    agent.destroy();
    await close(server);
    await h.close();
  }
}
