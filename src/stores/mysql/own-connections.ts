/**
 * The MySQL store's statement timeout: each statement on a connection of its own, checked out of
 * the application's pool, and a connection whose statement timed out destroyed.
 *
 * @packageDocumentation
 */
import { SessionError } from '../../errors.js';
import type { MysqlPool, MysqlPoolConnection, MysqlQueryable } from '../mysql.js';

/**
 * Runs each statement on a connection checked out of `pool` for it, bounded by `timeout` from the
 * call, checkout included. mysql2's own `timeout` covers neither the checkout nor the `PREPARE`
 * that `execute` sends first on a connection, and the pool's `execute` and `query` give a
 * connection back only when its statement ends, which a statement on a dead connection never does.
 */
export function onOwnConnections(pool: MysqlPool, timeout: number): MysqlQueryable {
  const run = async (
    send: (connection: MysqlPoolConnection) => Promise<[unknown, unknown]>,
  ): Promise<[unknown, unknown]> => {
    let expired = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        reject(
          new SessionError(
            'STORE_UNAVAILABLE',
            `MysqlStore: a statement did not finish within statementTimeout (${timeout} ms)`,
          ),
        );
      }, timeout);
    });
    try {
      const checkout = pool.getConnection();
      let connection: MysqlPoolConnection;
      try {
        connection = await Promise.race([checkout, deadline]);
      } catch (error) {
        // Too late: the connection goes back unused, so the statement never runs after the call
        // was reported as failed.
        if (expired) checkout.then((late) => late.release()).catch(() => undefined);
        throw error;
      }
      let result: [unknown, unknown];
      try {
        const sent = send(connection);
        sent.catch(() => undefined);
        result = await Promise.race([sent, deadline]);
      } catch (error) {
        // A statement that outlived the timeout may be on a connection the network lost: the
        // pool must never hand that connection out again.
        if (expired) connection.destroy();
        else connection.release();
        throw error;
      }
      connection.release();
      return result;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    execute: (sql, values) => run((connection) => connection.execute(sql, values)),
    query: (sql) => run((connection) => connection.query(sql)),
  };
}
