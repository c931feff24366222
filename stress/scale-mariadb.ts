/**
 * A private MariaDB server for the scale run: a new data directory, a free loopback port, root
 * without a password, and the InnoDB buffer pool and redo log docs/stores/mysql.md recommends for
 * the number of sessions. Stopped by its PID, its directory removed. The shared server is left
 * alone.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../test/support/memcached-server.js';
import { probeTcp, waitFor } from '../test/support/services.js';

const run = promisify(execFile);

/** The binaries, from Debian's mariadb-server package. */
const INSTALL_DB = process.env.MARIADB_INSTALL_DB_BIN ?? 'mariadb-install-db';
const SERVER = process.env.MARIADBD_BIN ?? '/usr/sbin/mariadbd';

/** The redo log docs/stores/mysql.md recommends for large tables (MariaDB's default: 96 MiB). */
const REDO_LOG = '1G';

/** The buffer pool docs/stores/mysql.md recommends: 1 KiB per session, at least 128 MiB. */
export function bufferPoolFor(sessions: number): number {
  const mib = Math.max(128, Math.ceil((sessions * 1_024) / 1_048_576 / 128) * 128);
  return mib * 1_048_576;
}

export class PrivateMariadb {
  readonly port: number;
  readonly #dir: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  /** A run that dies half-way still kills the server and removes its data (up to gigabytes). */
  readonly #killOnExit = () => {
    this.#child.kill('SIGKILL');
    rmSync(this.#dir, { recursive: true, force: true });
  };

  private constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port;
    this.#dir = dir;
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.once('exit', this.#killOnExit);
  }

  /** Creates a data directory, starts the server with `bufferPool` bytes and a `test` database. */
  static async start(bufferPool: number): Promise<PrivateMariadb> {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-scale-mariadb-'));
    const data = join(dir, 'data');
    await run(INSTALL_DB, [
      '--no-defaults',
      `--datadir=${data}`,
      '--user=root',
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ]);
    const port = await freePort();
    const child = spawn(
      SERVER,
      [
        '--no-defaults',
        `--datadir=${data}`,
        '--user=root',
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(dir, 'mysqld.sock')}`,
        `--innodb-buffer-pool-size=${bufferPool}`,
        `--innodb-log-file-size=${REDO_LOG}`,
        '--skip-log-bin',
      ],
      { stdio: 'ignore' },
    );
    const server = new PrivateMariadb(port, dir, child);
    try {
      await waitFor(`mariadbd on port ${port}`, () => probeTcp('127.0.0.1', port), 30_000);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** Kills the server (nothing in it is kept) and removes its directory. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
    process.removeListener('exit', this.#killOnExit);
    await rm(this.#dir, { recursive: true, force: true });
  }
}
