import { createClient } from 'redis';
import { RedisServerProcess, redisCli } from './redis-server.js';
import { probeTcp, waitFor } from './services.js';

/**
 * A private Redis Cluster with replicas, for the failover and resharding tests: primaries and as
 * many replicas, each a redis-server on a free loopback port (never 6379), joined with
 * `redis-cli --cluster create`. A primary can be killed (SIGKILL) so that its replica takes
 * over, and a slot can be moved from one primary to another by hand, as `redis-cli --cluster
 * reshard` does, with pauses so that clients meet the redirections. Every server is stopped by
 * its PID at the end.
 */

type AdminClient = ReturnType<typeof createClient>;

/** One node as `CLUSTER NODES` describes it. */
export interface ClusterNode {
  id: string;
  port: number;
  /** Whether the node serves slots (a replica promoted by a failover is one). */
  primary: boolean;
  /** The node reported down (`fail` or `fail?`) by the node asked. */
  failing: boolean;
  /** The ID of the primary it replicates, for a replica. */
  primaryId: string | null;
  /** The slot ranges it serves, inclusive. */
  slots: [number, number][];
}

/** Options of {@link ReplicatedRedisCluster.start}. */
export interface ReplicatedClusterOptions {
  /** Primaries, each with one replica. @defaultValue 3 */
  primaries?: number;
  /**
   * `cluster-node-timeout` in ms: how long a primary may stay silent before the others count it
   * down and its replica takes over. @defaultValue 2_000 (Redis's own default is 15_000)
   */
  nodeTimeout?: number;
  /**
   * `cluster-require-full-coverage`: whether every node stops serving while some slot has no
   * working primary (Redis's default), or only that slot's keys fail. @defaultValue true
   */
  fullCoverage?: boolean;
}

/** Parses the output of `CLUSTER NODES`. */
export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [id, address, flags, primaryId, , , , , ...slots] = line.trim().split(' ');
      const flagList = flags!.split(',');
      return {
        id: id!,
        port: Number(address!.split('@')[0]!.split(':')[1]),
        primary: flagList.includes('master'),
        failing: flagList.includes('fail') || flagList.includes('fail?'),
        primaryId: primaryId === '-' ? null : primaryId!,
        // Ranges only: "[slot->-id]" entries describe a slot being moved, not a served one.
        slots: slots
          .filter((entry) => !entry.startsWith('['))
          .map((entry) => {
            const [from, to] = entry.split('-').map(Number);
            return [from!, to ?? from!] as [number, number];
          }),
      };
    });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Redis Cluster of primaries with one replica each, on loopback. */
export class ReplicatedRedisCluster {
  readonly servers: RedisServerProcess[];
  readonly nodeTimeout: number;
  readonly #admins = new Map<number, AdminClient>();
  readonly #killed = new Set<number>();

  private constructor(servers: RedisServerProcess[], nodeTimeout: number) {
    this.servers = servers;
    this.nodeTimeout = nodeTimeout;
  }

  /**
   * Starts `2 × primaries` cluster-enabled servers, sets their node timeout, joins them with
   * `redis-cli --cluster create ... --cluster-replicas 1`, and waits until every node reports
   * `cluster_state:ok` and every replica is in sync with its primary.
   */
  static async start(options: ReplicatedClusterOptions = {}): Promise<ReplicatedRedisCluster> {
    const primaries = options.primaries ?? 3;
    const nodeTimeout = options.nodeTimeout ?? 2_000;
    const servers: RedisServerProcess[] = [];
    const cluster = new ReplicatedRedisCluster(servers, nodeTimeout);
    try {
      for (let i = 0; i < 2 * primaries; i++) {
        servers.push(await RedisServerProcess.start({ cluster: true }));
      }
      for (const server of servers) {
        await redisCli(server.port, [
          'CONFIG',
          'SET',
          'cluster-node-timeout',
          String(nodeTimeout),
          'cluster-require-full-coverage',
          options.fullCoverage === false ? 'no' : 'yes',
          // A replica's first sync starts at once instead of after Redis's 5 s wait for others.
          'repl-diskless-sync-delay',
          '0',
        ]);
      }
      await redisCli(
        servers[0]!.port,
        [
          '--cluster',
          'create',
          ...servers.map((server) => `127.0.0.1:${server.port}`),
          '--cluster-replicas',
          '1',
          '--cluster-yes',
        ],
        60_000,
      );
      for (const server of servers) {
        await waitFor(
          `cluster state ok on port ${server.port}`,
          async () =>
            (await redisCli(server.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok'),
          30_000,
        );
      }
      await waitFor(
        'every replica in sync',
        async () => {
          const nodes = await cluster.nodes();
          const replicas = nodes.filter((node) => !node.primary);
          if (replicas.length !== primaries) return false;
          for (const replica of replicas) {
            const info = await redisCli(replica.port, ['INFO', 'replication']);
            if (!info.includes('master_link_status:up')) return false;
          }
          return true;
        },
        30_000,
        100,
      );
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Root nodes for node-redis's `createCluster`: every server. */
  get rootNodes(): { url: string }[] {
    return this.servers.map((server) => ({ url: server.url }));
  }

  /** A connected admin client of one node, kept until {@link stop}. */
  async admin(port: number): Promise<AdminClient> {
    let client = this.#admins.get(port);
    if (client === undefined) {
      client = createClient({
        socket: { host: '127.0.0.1', port, reconnectStrategy: false, connectTimeout: 2_000 },
        disableOfflineQueue: true,
      });
      client.on('error', () => undefined);
      this.#admins.set(port, client);
      await client.connect();
    }
    return client;
  }

  /** The nodes, as seen by the first node that is still running (or by `port`). */
  async nodes(port?: number): Promise<ClusterNode[]> {
    const asked = port ?? this.servers.find((server) => !this.#killed.has(server.port))!.port;
    const text = await (await this.admin(asked)).sendCommand<string>(['CLUSTER', 'NODES']);
    return parseClusterNodes(String(text));
  }

  /** The node serving `slot`, as seen by a running node. */
  async ownerOf(slot: number): Promise<ClusterNode> {
    const owner = (await this.nodes()).find(
      (node) => node.primary && node.slots.some(([from, to]) => slot >= from && slot <= to),
    );
    if (owner === undefined) throw new Error(`no node serves slot ${slot}`);
    return owner;
  }

  /** The slot of a key (`CLUSTER KEYSLOT`). */
  async slotOf(key: string): Promise<number> {
    return Number(
      await (await this.admin(this.servers[0]!.port)).sendCommand(['CLUSTER', 'KEYSLOT', key]),
    );
  }

  #server(port: number): RedisServerProcess {
    const server = this.servers.find((candidate) => candidate.port === port);
    if (server === undefined) throw new Error(`no server on port ${port}`);
    return server;
  }

  /** Kills a server with SIGKILL, as a crash would, and waits until its port is closed. */
  async crash(port: number): Promise<void> {
    const server = this.#server(port);
    if (server.pid === undefined) throw new Error(`no process on port ${port}`);
    this.#killed.add(port);
    const admin = this.#admins.get(port);
    this.#admins.delete(port);
    admin?.destroy();
    process.kill(server.pid, 'SIGKILL');
    await waitFor(
      `port ${port} closed`,
      async () => !(await probeTcp('127.0.0.1', port)),
      5_000,
      10,
    );
  }

  /**
   * Waits until a running node reports that another node has taken over the slots the crashed
   * server on `port` served, and answers the new primary's port.
   */
  async waitForTakeover(port: number, slot: number, timeoutMs = 60_000): Promise<number> {
    let taken = 0;
    await waitFor(
      `a replica taking over from port ${port}`,
      async () => {
        const owner = await this.ownerOf(slot);
        taken = owner.port;
        return owner.port !== port;
      },
      timeoutMs,
      10,
    );
    return taken;
  }

  /**
   * Starts moving `slot` from the primary on port `from` to the one on port `to`:
   * `SETSLOT IMPORTING` on the target, then `MIGRATING` on the source. From then on the source
   * answers `ASK` for a key of the slot it does not hold, and `TRYAGAIN` for a command on
   * several keys of which it holds only some.
   */
  async beginMove(slot: number, from: number, to: number): Promise<void> {
    const source = await this.admin(from);
    const target = await this.admin(to);
    const sourceId = String(await source.sendCommand(['CLUSTER', 'MYID']));
    const targetId = String(await target.sendCommand(['CLUSTER', 'MYID']));
    await target.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId]);
    await source.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId]);
  }

  /** Moves some keys of a slot being moved, with one `MIGRATE`. */
  async moveKeys(from: number, to: number, keys: string[]): Promise<void> {
    await (
      await this.admin(from)
    ).sendCommand(['MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys]);
  }

  /** The keys of `slot` the node on `port` still holds, at most `count`. */
  async keysInSlot(port: number, slot: number, count: number): Promise<string[]> {
    return (await (
      await this.admin(port)
    ).sendCommand(['CLUSTER', 'GETKEYSINSLOT', String(slot), String(count)])) as string[];
  }

  /**
   * Ends a slot's move: `SETSLOT NODE` on the target, the source and every other running
   * primary. From then on every node but the target answers `MOVED` for the slot.
   */
  async endMove(slot: number, from: number, to: number): Promise<void> {
    const targetId = String(await (await this.admin(to)).sendCommand(['CLUSTER', 'MYID']));
    const assign = ['CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId];
    await (await this.admin(to)).sendCommand(assign);
    await (await this.admin(from)).sendCommand(assign);
    for (const node of await this.nodes(to)) {
      if (node.primary && !node.failing && node.port !== from && node.port !== to) {
        await (await this.admin(node.port)).sendCommand(assign);
      }
    }
  }

  /**
   * Moves `slot` from the primary on port `from` to the one on port `to` while clients use it,
   * as `redis-cli --cluster reshard` does: {@link beginMove}, the keys moved `batch` at a time
   * with `pauseMs` between the steps, {@link endMove}. Answers the number of keys moved.
   */
  async migrateSlot(
    slot: number,
    from: number,
    to: number,
    options: { pauseMs?: number; batch?: number } = {},
  ): Promise<number> {
    const pauseMs = options.pauseMs ?? 20;
    await this.beginMove(slot, from, to);
    await pause(pauseMs);
    let moved = 0;
    for (;;) {
      const keys = await this.keysInSlot(from, slot, options.batch ?? 1);
      if (keys.length === 0) break;
      await this.moveKeys(from, to, keys);
      moved += keys.length;
      await pause(pauseMs);
    }
    await this.endMove(slot, from, to);
    return moved;
  }

  /**
   * The error replies each running node has counted since its last `CONFIG RESETSTAT`, summed by
   * prefix (`MOVED`, `ASK`, `TRYAGAIN`...), from `INFO errorstats`.
   */
  async errorStats(): Promise<Record<string, number>> {
    const totals: Record<string, number> = {};
    for (const server of this.servers) {
      if (this.#killed.has(server.port)) continue;
      const info = String(
        await (await this.admin(server.port)).sendCommand(['INFO', 'errorstats']),
      );
      for (const match of info.matchAll(/^errorstat_([A-Z]+):count=(\d+)/gm)) {
        totals[match[1]!] = (totals[match[1]!] ?? 0) + Number(match[2]);
      }
    }
    return totals;
  }

  /** Clears every running node's statistics (`CONFIG RESETSTAT`). */
  async resetStats(): Promise<void> {
    for (const server of this.servers) {
      if (!this.#killed.has(server.port)) {
        await (await this.admin(server.port)).sendCommand(['CONFIG', 'RESETSTAT']);
      }
    }
  }

  /** Closes the admin clients and stops every server (by PID when it does not shut down). */
  async stop(): Promise<void> {
    for (const client of this.#admins.values()) client.destroy();
    this.#admins.clear();
    await Promise.all(this.servers.map((server) => server.stop()));
  }
}
