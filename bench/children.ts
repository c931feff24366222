/**
 * Starting and talking to the child processes: a contender's server, and a memory measurement.
 *
 * @packageDocumentation
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ParentMessage, RunCounters, ServerConfig } from './protocol.js';
import type { MemoryResult } from './servers/memory.js';
import { ROOT } from './options.js';

const SERVER_ENTRY = fileURLToPath(new URL('./servers/server.ts', import.meta.url));
const MEMORY_ENTRY = fileURLToPath(new URL('./servers/memory.ts', import.meta.url));

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A contender's server process, controlled over IPC. */
export class ServerProcess {
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, port: number, exited: Promise<void>) {
    this.#child = child;
    this.port = port;
    this.#exited = exited;
  }

  /**
   * Forks `bench/servers/server.ts` and waits until it listens. `execArgv` adds Node flags;
   * `tesseraDir` is compiled Tessera to load instead of `src/` (see `build.ts`).
   */
  static async start(
    config: ServerConfig,
    execArgv: readonly string[] = [],
    tesseraDir?: string,
  ): Promise<ServerProcess> {
    const child = fork(SERVER_ENTRY, [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx', ...execArgv],
      env: {
        ...process.env,
        BENCH_SERVER: JSON.stringify(config),
        BENCH_TESSERA_DIR: tesseraDir ?? '',
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const ready = new Promise<number>((resolve, reject) => {
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') resolve(message.port);
        else if (message.type === 'failed') reject(new Error(message.message.split('\n')[0]));
      });
      child.once('exit', (code, signal) =>
        reject(new Error(`the server exited (${signal ?? code}) before it was ready`)),
      );
      child.once('error', reject);
    });
    try {
      const port = await withTimeout(ready, 60_000, `${config.contender} to start`);
      return new ServerProcess(child, port, exited);
    } catch (error) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      throw error;
    }
  }

  #ask<T extends ChildMessage['type']>(
    message: ParentMessage,
    answer: T,
  ): Promise<Extract<ChildMessage, { type: T }>> {
    const reply = new Promise<Extract<ChildMessage, { type: T }>>((resolve, reject) => {
      const onMessage = (received: ChildMessage) => {
        if (received.type !== answer) return;
        this.#child.off('message', onMessage);
        this.#child.off('exit', onExit);
        resolve(received as Extract<ChildMessage, { type: T }>);
      };
      const onExit = () => reject(new Error('the server exited'));
      this.#child.on('message', onMessage);
      this.#child.once('exit', onExit);
    });
    this.#child.send(message);
    return withTimeout(reply, 10_000, `the server's "${answer}"`);
  }

  /** The server's process ID. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Starts a measured run in the server; with `profile`, it samples its CPU into that file until {@link ServerProcess.end}. */
  async begin(profile?: string): Promise<void> {
    await this.#ask(
      profile === undefined ? { type: 'begin' } : { type: 'begin', profile },
      'begun',
    );
  }

  /** Ends the measured run and answers the server's own counts. */
  async end(): Promise<RunCounters> {
    const { requests, cpuMicros, systemMicros, storeCalls, roundTrips } = await this.#ask(
      { type: 'end' },
      'ended',
    );
    return { requests, cpuMicros, systemMicros, storeCalls, roundTrips };
  }

  /** Asks the server to close (so profiles are written), killing it if it does not exit in time. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    if (this.#child.connected) this.#child.send({ type: 'shutdown' } satisfies ParentMessage);
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
    ]);
    if (!exited) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
  }
}

/** Extra Node flags for the measured children, e.g. `BENCH_NODE_ARGS='--cpu-prof'` to profile them. */
function nodeArgs(): string[] {
  return process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
}

/**
 * Runs a bench script as a child (`node --import tsx <script> --child ...args`) and answers the
 * one message it sends back. A message with `error`, or an exit before the message, rejects.
 * `output` is where the child's stdout goes; its stderr is always shown.
 */
export function askChild<T extends object>(
  script: string,
  args: readonly string[],
  label: string,
  output: 'inherit' | 'ignore' = 'inherit',
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(script, ['--child', ...args], {
      execArgv: ['--import', 'tsx', ...nodeArgs()],
      stdio: ['ignore', output, 'inherit', 'ipc'],
    });
    child.once('message', (message: T | { error: string }) =>
      'error' in message ? reject(new Error(message.error)) : resolve(message as T),
    );
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${label} exited with ${code}`));
    });
  });
}

/** Runs one memory measurement in a fresh process with `--expose-gc`. */
export async function measureMemoryInChild(
  mode: string,
  sessions: number,
  tesseraDir?: string,
): Promise<MemoryResult> {
  const child = fork(MEMORY_ENTRY, [], {
    cwd: ROOT,
    execArgv: ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx'],
    env: {
      ...process.env,
      BENCH_MEMORY: `${mode}:${sessions}`,
      BENCH_TESSERA_DIR: tesseraDir ?? '',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const result = new Promise<MemoryResult>((resolve, reject) => {
    child.on(
      'message',
      (message: { type: 'memory'; result: MemoryResult } | { type: 'failed'; message: string }) => {
        if (message.type === 'memory') resolve(message.result);
        else reject(new Error(message.message.split('\n')[0]));
      },
    );
    child.once('exit', (code, signal) =>
      reject(new Error(`the memory measurement exited (${signal ?? code})`)),
    );
    child.once('error', reject);
  });
  try {
    return await withTimeout(result, 600_000, `the ${mode} memory measurement`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
