/**
 * A private, durable redis-server for the stress tool: a free loopback port, its own directory,
 * an append-only file synced on every write (`appendfsync always`), so that a write Redis
 * acknowledged survives a crash. It can be killed (SIGKILL, a crash) and started again on the
 * same port and directory. It never touches the machine's shared server on port 6379.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REDIS_SERVER_BIN, freePort, redisCli } from '../test/support/redis-server.js';
import { waitFor } from '../test/support/services.js';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // Never leave a server behind when the tool dies half-way.
  for (const child of running) child.kill('SIGKILL');
});

export class DurableRedis {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** Starts a server on a free port in a new temporary directory. */
  static async start(): Promise<DurableRedis> {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), `tessera-stress-redis-${port}-`));
    const server = new DurableRedis(port, dir);
    await server.launch();
    return server;
  }

  /** Starts the process (again), reloading its append-only file, and waits for PONG. */
  async launch(): Promise<void> {
    if (this.#child !== undefined) return;
    const settings: [string, string][] = [
      ['port', String(this.port)],
      ['bind', '127.0.0.1'],
      ['save', ''],
      ['appendonly', 'yes'],
      ['appendfsync', 'always'],
      ['dir', this.dir],
      ['logfile', join(this.dir, 'redis.log')],
      ['daemonize', 'no'],
    ];
    const child = spawn(
      REDIS_SERVER_BIN,
      settings.flatMap(([name, value]) => [`--${name}`, value]),
      { stdio: 'ignore' },
    );
    this.#child = child;
    running.add(child);
    child.once('exit', () => {
      running.delete(child);
      if (this.#child === child) this.#child = undefined;
    });
    await waitFor(
      `redis-server on port ${this.port}`,
      async () => (await redisCli(this.port, ['PING'], 1_000)).trim() === 'PONG',
      10_000,
      20,
    );
  }

  /** Kills the process (SIGKILL: a crash) and waits for it to exit. */
  async crash(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills the process and removes its directory. */
  async stop(): Promise<void> {
    await this.crash();
    await rm(this.dir, { recursive: true, force: true });
  }
}
