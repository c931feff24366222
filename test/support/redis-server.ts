import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './services.js';

/**
 * Private redis-server processes for tests: one server, or a Redis Cluster of several masters,
 * on free loopback ports, in a temporary directory, without persistence. They never touch the
 * machine's shared server on port 6379.
 */

/** The redis-server binary; `REDIS_SERVER_BIN` overrides it. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
/** The redis-cli binary; `REDIS_CLI_BIN` overrides it. */
export const REDIS_CLI_BIN = process.env.REDIS_CLI_BIN ?? '/usr/bin/redis-cli';

/** `true` when both binaries can be run, otherwise the reason (for `requireService`). */
export async function redisBinariesAvailable(): Promise<true | string> {
  for (const bin of [REDIS_SERVER_BIN, REDIS_CLI_BIN]) {
    try {
      await access(bin, constants.X_OK);
    } catch {
      return `${bin} is not installed (Debian package redis-server)`;
    }
  }
  return true;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // Never leave a server behind when a test run dies half-way.
  for (const child of running) child.kill('SIGKILL');
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback port; with `busPort`, one whose cluster bus port (port + 10000) is free too.
 */
export async function freePort(busPort = false): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (!(await canListen(port))) continue;
    if (busPort && !(await canListen(port + 10_000))) continue;
    return port;
  }
  throw new Error('no free loopback port found');
}

/** Runs redis-cli against a local port and answers its standard output. */
export function redisCli(port: number, args: string[], timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      REDIS_CLI_BIN,
      ['-h', '127.0.0.1', '-p', String(port), ...args],
      { timeout: timeoutMs },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
  });
}

/** Options of {@link RedisServerProcess.start}. */
export interface RedisServerOptions {
  /** The port; a free one by default. */
  port?: number;
  /** Start with `cluster-enabled yes`, as a node of a Redis Cluster. */
  cluster?: boolean;
}

/** One private redis-server process. */
export class RedisServerProcess {
  readonly port: number;
  readonly dir: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port;
    this.dir = dir;
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    running.add(child);
    void this.#exited.then(() => running.delete(child));
  }

  /** Starts a server (`--save "" --appendonly no`, bound to 127.0.0.1) and waits for PONG. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
    const port = options.port ?? (await freePort(options.cluster === true));
    const dir = await mkdtemp(join(tmpdir(), `tessera-redis-${port}-`));
    const settings: [string, string][] = [
      ['port', String(port)],
      ['bind', '127.0.0.1'],
      ['save', ''],
      ['appendonly', 'no'],
      ['dir', dir],
      ['logfile', join(dir, 'redis.log')],
      ['daemonize', 'no'],
    ];
    if (options.cluster === true) {
      settings.push(
        ['cluster-enabled', 'yes'],
        ['cluster-config-file', join(dir, 'nodes.conf')],
        ['cluster-node-timeout', '5000'],
      );
    }
    const args = settings.flatMap(([name, value]) => [`--${name}`, value]);
    const child = spawn(REDIS_SERVER_BIN, args, { stdio: 'ignore' });
    const server = new RedisServerProcess(port, dir, child);
    try {
      await waitFor(
        `redis-server on port ${port}`,
        async () => (await redisCli(port, ['PING'])).trim() === 'PONG',
        10_000,
      );
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** The server's process ID. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** The `redis://` URL of the server. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing answers, data is kept. */
  pause(): void {
    this.#child.kill('SIGSTOP');
  }

  /** Thaws a paused process (SIGCONT). */
  resume(): void {
    this.#child.kill('SIGCONT');
  }

  /** Stops the server with `SHUTDOWN NOSAVE` (killing it if that fails) and removes its directory. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.resume();
      await redisCli(this.port, ['SHUTDOWN', 'NOSAVE'], 2_000).catch(() => undefined);
      const exited = await Promise.race([
        this.#exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3_000)),
      ]);
      if (!exited) {
        this.#child.kill('SIGKILL');
        await this.#exited;
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A private Redis Cluster of masters without replicas. */
export class RedisClusterProcesses {
  readonly nodes: RedisServerProcess[];

  private constructor(nodes: RedisServerProcess[]) {
    this.nodes = nodes;
  }

  /**
   * Starts `masters` cluster-enabled servers, joins them with
   * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and waits until every
   * node reports `cluster_state:ok`.
   */
  static async start(masters = 3): Promise<RedisClusterProcesses> {
    const nodes: RedisServerProcess[] = [];
    try {
      for (let i = 0; i < masters; i++)
        nodes.push(await RedisServerProcess.start({ cluster: true }));
      const first = nodes[0]!;
      await redisCli(
        first.port,
        [
          '--cluster',
          'create',
          ...nodes.map((node) => `127.0.0.1:${node.port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        30_000,
      );
      for (const node of nodes) {
        await waitFor(
          `cluster state ok on port ${node.port}`,
          async () => (await redisCli(node.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok'),
          20_000,
        );
      }
      return new RedisClusterProcesses(nodes);
    } catch (error) {
      await Promise.all(nodes.map((node) => node.stop()));
      throw error;
    }
  }

  /** Root nodes for node-redis's `createCluster`. */
  get rootNodes(): { url: string }[] {
    return this.nodes.map((node) => ({ url: node.url }));
  }

  /** Stops every node. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }
}
