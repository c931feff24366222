/**
 * Redis Cluster under load: browsers read, write and sign in through a Tessera application on a
 * private cluster of three primaries and three replicas (test/support/redis-cluster.ts) while
 *
 * - `failover`: the primary holding the most keys is killed (SIGKILL) and its replica takes
 *   over. Checked: every answer is a 200 or the documented 503, and every request that starts
 *   1 s or more after the takeover succeeds. Measured: the error window, and the acknowledged
 *   writes the takeover lost (replication is asynchronous, so some loss is possible: counted,
 *   not a violation);
 * - `migrate`: every slot holding a key when the move begins is moved to another primary, key
 *   by key, with pauses, so that requests meet `ASK` during each move and `MOVED` after it.
 *   Checked: no request fails, no acknowledged write is lost;
 * - `migrate-tagged`: the same with a hash-tagged prefix and `cluster: false`, so that every key
 *   is in one slot and a session and its user's index are written by one script: during the
 *   move such a script can meet `TRYAGAIN`.
 */
import type { Agent } from 'node:http';
import { createCluster } from 'redis';
import { SessionManager } from '../src/manager.js';
import { RedisStore } from '../src/stores/redis.js';
import { ReplicatedRedisCluster } from '../test/support/redis-cluster.js';
import { createStressApp, close, listen, type Counters } from './app.js';
import { newAgent } from './client.js';
import { Checker, finalReads, prepareCrowd, runLoad, sleep, type Violation } from './load.js';

/** The cluster phases. */
export type ClusterPhase = 'failover' | 'migrate' | 'migrate-tagged';

/** Every phase, in the order a run visits them. */
export const CLUSTER_PHASES: readonly ClusterPhase[] = ['failover', 'migrate', 'migrate-tagged'];

/** Options of {@link runClusterPhase}. */
export interface ClusterOptions {
  /** Browsers sending requests at once. @defaultValue 8 */
  clients?: number;
  /** Load before the failover or the move, in ms. @defaultValue 1_000 */
  before?: number;
  /** Load after the takeover or the move, in ms. @defaultValue 3_000 */
  after?: number;
  /** The manager's `storeTimeout`. @defaultValue 5_000 */
  storeTimeout?: number;
  /** Pause between a browser's requests, in ms. @defaultValue 5 */
  thinkMs?: number;
  /** A read by a probe browser this often, in ms (0: none). @defaultValue 50 */
  probeEvery?: number;
  /** The cluster's `cluster-node-timeout`, in ms. @defaultValue 2_000 */
  nodeTimeout?: number;
  /**
   * Whether the client asks the cluster for its slots again while a node's connection is down
   * ({@link refreshSlotsOnReconnect}). @defaultValue true
   */
  refresh?: boolean;
  /**
   * The cluster's `cluster-require-full-coverage`: with `true` (Redis's default) every node
   * refuses commands (`CLUSTERDOWN`) from the moment the dead primary is flagged until its
   * replica takes over; with `false` only its slots fail. @defaultValue true
   */
  fullCoverage?: boolean;
  /** Pause between the steps of a slot's move (keys move one at a time), in ms. @defaultValue 20 */
  movePauseMs?: number;
}

/** What one phase found; times in ms from the kill or from the start of the move. */
export interface ClusterResult {
  phase: ClusterPhase;
  nodeTimeout: number;
  fullCoverage: boolean;
  refresh: boolean;
  requests: number;
  ok: number;
  unavailable: number;
  /** Start of the first failed request and end of the last, or null without failures. */
  errorWindow: { first: number; last: number } | null;
  /** Failover: when a running node first reported the replica as the slots' primary. */
  takeoverAt: number | null;
  /** Failover: the latest start of a failed request, relative to the takeover. */
  lastFailedStartAfterTakeover: number | null;
  /** Migration: how long moving every slot took. */
  moveMs: number | null;
  slotsMoved: number;
  keysMoved: number;
  /** Error replies the servers counted during the phase, by kind (`MOVED`, `ASK`, `TRYAGAIN`). */
  redirections: Record<string, number>;
  /** Why store calls failed, by the first words of the client's error, with counts. */
  storeErrors: Record<string, number>;
  /** Acknowledged increments found missing afterwards (summed over every browser). */
  lostIncrements: number;
  /** Browsers that found their session lowered, replaced or signed out (not after a failed sign-in). */
  sessionsHit: number;
  /** Sessions gone after a sign-in answered 503 (see docs/reliability.md). */
  lostAfterFailedLogin: number;
  violations: Violation[];
}

/**
 * Makes a node-redis cluster client ask the cluster for its slots again whenever a node's
 * connection is being re-established. node-redis reads the slots only at start and on a `MOVED`
 * or `ASK` reply; a primary that died never sends one, so without this its slots stay routed
 * to it after its replica has taken over. The client's own reconnect attempts pace the asking,
 * and node-redis runs one rediscovery at a time.
 */
export function refreshSlotsOnReconnect(cluster: ReturnType<typeof createCluster>): void {
  cluster.on('node-reconnecting', () => {
    const live = cluster.masters.find((node) => node.client?.isReady === true);
    if (live?.client !== undefined) {
      cluster._slots.rediscover(live.client).catch(() => undefined);
    }
  });
}

/** The cluster client as docs/stores/redis.md constructs it. */
function clusterClient(
  rootNodes: { url: string }[],
  refresh: boolean,
): ReturnType<typeof createCluster> {
  const cluster = createCluster({
    rootNodes,
    defaults: {
      disableOfflineQueue: true,
      pingInterval: 5_000,
      socket: {
        connectTimeout: 2_000,
        socketTimeout: 10_000,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 250),
      },
    },
  });
  cluster.on('error', () => undefined);
  if (refresh) refreshSlotsOnReconnect(cluster);
  return cluster;
}

/** The keys under `prefix` on every running primary, with their slot and its primary's port. */
async function liveSlots(
  redis: ReplicatedRedisCluster,
  prefix: string,
): Promise<Map<number, number>> {
  const slots = new Map<number, number>();
  for (const node of await redis.nodes()) {
    if (!node.primary || node.failing) continue;
    const admin = await redis.admin(node.port);
    for await (const keys of admin.scanIterator({ MATCH: `${prefix}*`, COUNT: 1_000 })) {
      for (const key of keys) slots.set(await redis.slotOf(key), node.port);
    }
  }
  return slots;
}

/** The running primary holding the most keys. */
async function busiestPrimary(redis: ReplicatedRedisCluster): Promise<number> {
  let best = { port: 0, keys: -1 };
  for (const node of await redis.nodes()) {
    if (!node.primary) continue;
    const keys = Number(await (await redis.admin(node.port)).dbSize());
    if (keys > best.keys) best = { port: node.port, keys };
  }
  return best.port;
}

/** Runs one phase on a fresh cluster and checks every exchange. */
export async function runClusterPhase(
  phase: ClusterPhase,
  options: ClusterOptions = {},
): Promise<ClusterResult> {
  const clients = options.clients ?? 8;
  const before = options.before ?? 1_000;
  const after = options.after ?? 3_000;
  const nodeTimeout = options.nodeTimeout ?? 2_000;
  const refresh = options.refresh ?? true;
  const fullCoverage = options.fullCoverage ?? true;
  const tagged = phase === 'migrate-tagged';
  const prefix = tagged ? '{tessera-stress}:' : 'tessera-stress:';

  const redis = await ReplicatedRedisCluster.start({ nodeTimeout, fullCoverage });
  const cluster = clusterClient(redis.rootNodes, refresh);
  const agent: Agent = newAgent();
  let server: ReturnType<typeof createStressApp> | undefined;
  try {
    await cluster.connect();
    const store = new RedisStore({ client: cluster, prefix, cluster: !tagged });
    const manager = new SessionManager<Counters>({
      store,
      secrets: ['stress-secret-that-is-at-least-32-bytes'],
      storeTimeout: options.storeTimeout ?? 5_000,
    });
    const storeErrors: Record<string, number> = {};
    manager.on('storeError', ({ error }) => {
      const cause = error.cause instanceof Error ? error.cause.message : error.message;
      const kind = cause.split(' ').slice(0, 4).join(' ');
      storeErrors[kind] = (storeErrors[kind] ?? 0) + 1;
    });
    server = createStressApp(manager);
    const base = await listen(server);
    const t0 = performance.now();
    const clock = () => performance.now() - t0;
    // A failover may lose what the replica had not received: counted, not a violation.
    const checker = new Checker(phase !== 'failover');
    const crowd = await prepareCrowd(base, agent, clock, checker, clients, 16);
    checker.exchanges.length = 0;

    let running = true;
    const load = runLoad(crowd, checker, () => running, {
      thinkMs: options.thinkMs ?? 5,
      loginRate: 0.02,
      probeEvery: options.probeEvery ?? 50,
    });
    await sleep(before);
    await redis.resetStats();
    const origin = clock();
    let takeoverAt: number | null = null;
    let moveMs: number | null = null;
    let slotsMoved = 0;
    let keysMoved = 0;
    try {
      if (phase === 'failover') {
        const victim = await busiestPrimary(redis);
        const primary = (await redis.nodes()).find((node) => node.port === victim)!;
        await redis.crash(victim);
        const slot = primary.slots[0]![0];
        await redis.waitForTakeover(victim, slot, 10 * nodeTimeout + 10_000);
        takeoverAt = clock() - origin;
      } else {
        const slots = await liveSlots(redis, prefix);
        const primaries = (await redis.nodes()).filter((node) => node.primary).map((n) => n.port);
        for (const [slot, port] of slots) {
          const to = primaries[(primaries.indexOf(port) + 1) % primaries.length]!;
          keysMoved += await redis.migrateSlot(slot, port, to, { pauseMs: options.movePauseMs });
          slotsMoved++;
        }
        moveMs = clock() - origin;
      }
      await sleep(after);
    } finally {
      running = false;
      await load;
    }
    const redirections = await redis.errorStats();
    await finalReads(crowd, checker);

    const failed = checker.exchanges.filter((e) => e.status !== 200);
    if (phase !== 'failover') {
      for (const e of failed) {
        checker.violate(
          'no error while slots move',
          `${e.method} ${e.path} at ${Math.round(e.start - origin)} ms: status ${e.status}`,
        );
      }
    } else if (takeoverAt !== null) {
      const graceEnds = origin + takeoverAt + 1_000;
      for (const e of failed) {
        if (e.start >= graceEnds) {
          checker.violate(
            'back within 1 s',
            `${e.method} ${e.path} started ${Math.round(e.start - origin - takeoverAt)} ms after the takeover: status ${e.status}`,
          );
        }
      }
    }
    return {
      phase,
      nodeTimeout,
      fullCoverage,
      refresh,
      requests: checker.exchanges.length,
      ok: checker.exchanges.filter((e) => e.status === 200).length,
      unavailable: checker.exchanges.filter((e) => e.status === 503).length,
      errorWindow:
        failed.length === 0
          ? null
          : {
              first: Math.min(...failed.map((e) => e.start)) - origin,
              last: Math.max(...failed.map((e) => e.end)) - origin,
            },
      takeoverAt,
      lastFailedStartAfterTakeover:
        takeoverAt === null || failed.length === 0
          ? null
          : Math.max(...failed.map((e) => e.start)) - origin - takeoverAt,
      moveMs,
      slotsMoved,
      keysMoved,
      redirections,
      storeErrors,
      lostIncrements: checker.lostIncrements,
      sessionsHit: checker.sessionsHit,
      lostAfterFailedLogin: checker.lostAfterFailedLogin,
      violations: [...checker.violations.values()],
    };
  } finally {
    agent.destroy();
    if (server !== undefined) await close(server);
    cluster.destroy();
    await redis.stop();
  }
}
