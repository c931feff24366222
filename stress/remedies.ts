/**
 * Client-side remedies for two findings of the stress tool (docs/reliability.md), used by the
 * `fixed` profile: connections that a network silently lost are never dropped, under load, by
 * mysql2's pool or by node-redis. Each remedy goes around the client through the interface the
 * store takes (`MysqlQueryable`, `RedisStoreClient`), so that no store changes.
 */
import type { MysqlQueryable } from '../src/stores/mysql.js';
import type { RedisScriptOptions, RedisStoreClient } from '../src/stores/redis.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The statement timeout of the `fixed` profile's MySQL pool, as PostgreSQL's `query_timeout`. */
export const MYSQL_STATEMENT_TIMEOUT = 5_000;

/** The part of a `mysql2/promise` pool {@link guardedMysqlPool} uses. */
export interface MysqlPoolLike {
  getConnection(): Promise<{
    execute(options: { sql: string; timeout: number }, values?: any[]): Promise<[unknown, unknown]>;
    query(options: { sql: string; timeout: number }): Promise<[unknown, unknown]>;
    release(): void;
    destroy(): void;
  }>;
}

/**
 * What `MysqlStore` needs (`execute` and `query`), each statement run on a connection checked out
 * of `pool` for it, with a timeout. When the timeout fires, the connection is destroyed instead
 * of released: mysql2 rejects a timed-out statement but leaves its connection busy for good, and
 * the pool's own `execute` and `query` release a connection only when its statement ends, so
 * silently dead connections pile up until the pool is full.
 */
export function guardedMysqlPool(pool: MysqlPoolLike, timeoutMs: number): MysqlQueryable {
  const run = async (sql: string, values: any[] | undefined, prepared: boolean) => {
    const connection = await pool.getConnection();
    let healthy = true;
    try {
      return prepared
        ? await connection.execute({ sql, timeout: timeoutMs }, values)
        : await connection.query({ sql, timeout: timeoutMs });
    } catch (error) {
      healthy = (error as { code?: unknown }).code !== 'PROTOCOL_SEQUENCE_TIMEOUT';
      throw error;
    } finally {
      if (healthy) connection.release();
      else connection.destroy();
    }
  };
  return {
    execute: (sql, values) => run(sql, values, true),
    query: (sql) => run(sql, undefined, false),
  };
}

/** The part of a node-redis client {@link WatchedRedis} uses. */
export interface RedisClientLike extends RedisStoreClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  ping(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** The watchdog's settings: a PING this often, and how long it may stay unanswered. */
export const REDIS_WATCHDOG = { everyMs: 250, timeoutMs: 1_000 };

/**
 * A node-redis client behind a watchdog, for `RedisStore`. Every `everyMs` the current client is
 * sent a PING; when it stays unanswered for `timeoutMs`, or the client has not been ready for
 * that long, a new client is connected beside it and, once ready, takes its place, and the old
 * one is destroyed (every command waiting on it fails at once). node-redis cannot do this
 * itself: under load its `socketTimeout` never fires, since its own writes count as activity,
 * and a command's `timeout` stops counting once the command is written.
 *
 * The old client is never connected again: calling `connect()` on a destroyed node-redis client
 * while its reconnection is under way leaves two connection loops feeding one reply queue, and
 * replies then reach the wrong commands (seen in the `restart` and `partition` faults: browsers
 * were served other browsers' sessions).
 */
export class WatchedRedis implements RedisStoreClient {
  #current: RedisClientLike;
  readonly #create: () => RedisClientLike;
  readonly #settings: { everyMs: number; timeoutMs: number };
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  #notReadySince: number | null = null;
  /** How many times the client was replaced. */
  replacements = 0;

  private constructor(
    first: RedisClientLike,
    create: () => RedisClientLike,
    settings: { everyMs: number; timeoutMs: number },
  ) {
    this.#current = first;
    this.#create = create;
    this.#settings = settings;
    this.#timer = setInterval(() => void this.#check(), settings.everyMs);
    this.#timer.unref();
  }

  /**
   * Connects a first client made by `create` (a new, unconnected node-redis client with an
   * `error` listener) and starts watching it.
   */
  static async open(
    create: () => RedisClientLike,
    settings = REDIS_WATCHDOG,
  ): Promise<WatchedRedis> {
    const first = create();
    await first.connect();
    return new WatchedRedis(first, create, settings);
  }

  evalSha(sha1: string, options: RedisScriptOptions): Promise<unknown> {
    return this.#current.evalSha(sha1, options);
  }

  eval(script: string, options: RedisScriptOptions): Promise<unknown> {
    return this.#current.eval(script, options);
  }

  hmGet(key: string, fields: string[]): Promise<unknown> {
    return this.#current.hmGet(key, fields);
  }

  /** Stops the watchdog and closes the current client. */
  close(): Promise<unknown> {
    clearInterval(this.#timer);
    return this.#current.close();
  }

  /** Stops the watchdog and destroys the current client. */
  destroy(): void {
    clearInterval(this.#timer);
    this.#current.destroy();
  }

  async #check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      if (await this.#healthy()) return;
      // A new client, bounded in time: one opened while the network is silent, or while the
      // server is down, is not ready in time and is dropped.
      const next = this.#create();
      const ready = await Promise.race([
        next.connect().then(
          () => true,
          () => false,
        ),
        pause(this.#settings.timeoutMs).then(() => false),
      ]);
      if (!ready) {
        next.destroy();
        return;
      }
      const old = this.#current;
      this.#current = next;
      this.#notReadySince = null;
      this.replacements++;
      old.destroy();
    } finally {
      this.#busy = false;
    }
  }

  async #healthy(): Promise<boolean> {
    const client = this.#current;
    if (!client.isReady) {
      this.#notReadySince ??= performance.now();
      return performance.now() - this.#notReadySince <= this.#settings.timeoutMs;
    }
    this.#notReadySince = null;
    const answered = client.ping().then(
      () => true,
      () => true,
    );
    return Promise.race([answered, pause(this.#settings.timeoutMs).then(() => false)]);
  }
}
