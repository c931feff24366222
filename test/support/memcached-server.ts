import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { probeTcp, waitFor } from './services.js';

/** The memcached binary: `$MEMCACHED_BIN`, or `memcached` on the PATH. */
export const memcachedBinary = process.env.MEMCACHED_BIN ?? 'memcached';

/** `true` when the memcached binary runs, or why it does not (for {@link requireService}). */
export function memcachedInstalled(): true | string {
  const result = spawnSync(memcachedBinary, ['-V'], { encoding: 'utf8', timeout: 5000 });
  if (result.error !== undefined)
    return `${memcachedBinary} cannot run (apt-get install memcached): ${result.error.message}`;
  return result.status === 0 ? true : `${memcachedBinary} -V exited with ${result.status}`;
}

/** A free TCP port on the loopback interface (free when asked; taken again right away by the caller). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The scheduler state letter of every thread of a process (Linux /proc). */
function threadStates(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((task) => {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  });
}

/**
 * A private memcached on a free loopback port, started and stopped by PID, so a test can pause
 * it (SIGSTOP: it stops answering, keeps its data), resume it, or kill and restart it, without
 * touching any other server on the machine.
 */
export class MemcachedServer {
  readonly port: number;
  readonly #args: string[];
  #child: ChildProcess | undefined;
  readonly #killOnExit = () => this.#child?.kill('SIGKILL');

  private constructor(port: number, args: string[]) {
    this.port = port;
    this.#args = args;
  }

  /** Starts a memcached (`-l 127.0.0.1 -p PORT -U 0 -m 64`, plus `extraArgs`) and waits until it accepts connections. */
  static async start(extraArgs: string[] = []): Promise<MemcachedServer> {
    const server = new MemcachedServer(await freePort(), extraArgs);
    await server.start();
    return server;
  }

  /** The process ID, while running. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process again on the same port (after {@link MemcachedServer.stop}). */
  async start(): Promise<void> {
    if (this.#child !== undefined) return;
    const args = ['-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-m', '64', ...this.#args];
    // memcached refuses to run as root unless told which user to run as.
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const child = spawn(memcachedBinary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    this.#child = child;
    process.once('exit', this.#killOnExit);
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code) =>
        reject(new Error(`memcached exited with ${code}: ${stderr.trim()}`)),
      );
    });
    exited.catch(() => undefined);
    await Promise.race([
      waitFor('memcached to listen', () => probeTcp('127.0.0.1', this.port, 200), 10_000, 25),
      exited,
    ]);
  }

  /**
   * Freezes the process: connections stay open and nothing answers. Resolves once every thread
   * is stopped, since a signal lands asynchronously and a request sent at once may still be served.
   */
  async pause(): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGSTOP');
    await waitFor(
      'memcached to stop',
      async () => threadStates(pid).every((state) => state === 'T'),
      5000,
      25,
    );
  }

  /** Lets a paused process run again. */
  resume(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, 'SIGCONT');
  }

  /** Stops the process (its data is gone) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    process.removeListener('exit', this.#killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.pid !== undefined) {
      process.kill(child.pid, 'SIGCONT');
      process.kill(child.pid, 'SIGTERM');
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Sends one text-protocol command and collects the reply until `done` says it is complete. */
function textCommand(
  port: number,
  command: string,
  done: (reply: Buffer) => boolean,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = Buffer.alloc(0);
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`memcached did not finish answering: ${command}`));
    });
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (done(reply)) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.write(`${command}\r\n`);
  });
}

/** Every key on the server, listed with `lru_crawler metadump all`. */
export async function metadumpKeys(port: number): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const reply = await textCommand(port, 'lru_crawler metadump all', (buffer) => {
      const text = buffer.toString('latin1');
      return text.endsWith('END\r\n') || text.startsWith('BUSY') || text.includes('ERROR');
    });
    const text = reply.toString('utf8');
    if (text.startsWith('BUSY')) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    if (text.includes('ERROR')) throw new Error(`lru_crawler metadump failed: ${text.trim()}`);
    return text
      .split('\n')
      .map((line) => /^key=(\S+)/.exec(line)?.[1])
      .filter((key): key is string => key !== undefined)
      .map((key) => decodeURIComponent(key));
  }
  throw new Error('the LRU crawler stayed busy');
}

/** The raw value under `key` (text-protocol GET), or `null`. */
export async function rawGet(port: number, key: string): Promise<Buffer | null> {
  const reply = await textCommand(port, `get ${key}`, (buffer) => {
    if (buffer.toString('latin1').startsWith('END\r\n')) return true;
    const header = /^VALUE \S+ \d+ (\d+)\r\n/.exec(buffer.toString('latin1'));
    return (
      header !== null &&
      buffer.length >= header[0].length + Number(header[1]) + '\r\nEND\r\n'.length
    );
  });
  const header = /^VALUE \S+ \d+ (\d+)\r\n/.exec(reply.toString('latin1'));
  if (header === null) return null;
  return reply.subarray(header[0].length, header[0].length + Number(header[1]));
}
