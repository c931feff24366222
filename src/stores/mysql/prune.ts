/**
 * The MySQL store's prune: expired keys read from the covering expiry index, then deleted by key,
 * one statement at a time, each re-checking the expiry.
 *
 * @packageDocumentation
 */

/**
 * The most keys one delete statement names: a prepared statement takes at most 65,535
 * placeholders, and the statement stays far below the server's `max_allowed_packet`.
 */
export const MAX_KEYS_PER_DELETE = 10_000;

/** The two statements of a prune, and the number of keys the delete always names. */
export interface PruneStatements {
  /**
   * Reads the keys and expiries of up to one delete's rows that expired between two instants,
   * oldest first.
   */
  select: string;
  /** Deletes the rows of `keysPerDelete` keys that are still expired. */
  delete: string;
  keysPerDelete: number;
}

/** The prune statements of `table` (already quoted), for deletes of at most `batchSize` rows. */
export function pruneStatements(table: string, batchSize: number): PruneStatements {
  const keysPerDelete = Math.min(batchSize, MAX_KEYS_PER_DELETE);
  const placeholders = `${'?, '.repeat(keysPerDelete - 1)}?`;
  return {
    // The index holds the primary key too, so the keys come from it alone (EXPLAIN: "Using
    // index"); the ORDER BY keeps it the optimizer's choice however many rows have expired. The
    // lower bound starts each read where the last one ended, past the entries of rows it deleted,
    // which stay in the index until InnoDB's purge removes them and would otherwise be read again.
    select: `SELECT \`key\`, expires_at FROM ${table} WHERE expires_at BETWEEN ? AND ? ORDER BY expires_at LIMIT ${keysPerDelete}`,
    // The expiry is checked again, so that a session renewed since the SELECT stays. Written as
    // `expires_at + 0` it offers the optimizer no index but the primary key, and the ORDER BY on
    // that key with a LIMIT keeps it the choice even in a small table, which would be scanned.
    delete: `DELETE FROM ${table} WHERE \`key\` IN (${placeholders}) AND expires_at + 0 <= ? ORDER BY \`key\` LIMIT ${keysPerDelete}`,
    keysPerDelete,
  };
}

/** What a prune runs its statements with: the store's reads and its deadlock-retrying writes. */
export interface PruneClient {
  rows(sql: string, values: unknown[]): Promise<{ key: unknown; expires_at: unknown }[]>;
  write(sql: string, values: unknown[]): Promise<{ affectedRows: number }>;
}

/**
 * Where a prune has got to: the expiry of the last key it read, for the prune at `instant`. Every
 * row expired before that was read (and deleted, or renewed) already.
 */
export interface PruneCursor {
  instant: number | undefined;
  after: number;
}

/** A cursor for a new prune. */
export function pruneCursor(): PruneCursor {
  return { instant: undefined, after: Number.MIN_SAFE_INTEGER };
}

/** Sends the cursor back to the oldest row, for a prune at `instant`. */
function restart(cursor: PruneCursor, instant: number | undefined): void {
  cursor.instant = instant;
  cursor.after = Number.MIN_SAFE_INTEGER;
}

/**
 * One prune batch: deletes rows expired at `now`, at least `limit` of them unless fewer are left,
 * and answers how many it deleted. Each round reads one delete's keys, then deletes them. One
 * delete at a time leaves the server's other cores to the requests: four at once pruned faster
 * but slowed reads made meanwhile several times more (docs/reliability.md).
 */
export async function pruneBatch(
  client: PruneClient,
  sql: PruneStatements,
  cursor: PruneCursor,
  now: number,
  limit: number,
): Promise<number> {
  if (cursor.instant !== now) restart(cursor, now);
  let removed = 0;
  try {
    for (;;) {
      const rows = await client.rows(sql.select, [cursor.after, now]);
      if (rows.length === 0) break;
      const keys = rows.map((row) => row.key);
      // Rows at this very expiry that the read did not reach come in the next read; those it
      // read are deleted or renewed by then, so the next read does not find them again.
      cursor.after = Number(rows[rows.length - 1]!.expires_at);
      // A short list is padded with its own first key, so that the delete is always the same
      // statement: one prepared statement per connection instead of one per list length.
      const values: unknown[] = Array.from(
        { length: sql.keysPerDelete },
        (_, i) => keys[i] ?? keys[0],
      );
      values.push(now);
      removed += (await client.write(sql.delete, values)).affectedRows;
      // A short read found every row left; a full one that deleted fewer than `limit` (rows
      // renewed or deleted meanwhile) reads again, so that the batch does not end the prune early.
      if (keys.length < sql.keysPerDelete || removed >= limit) break;
    }
  } catch (error) {
    restart(cursor, undefined);
    throw error;
  }
  // Fewer than `limit` ends the prune: the next one starts from the oldest row again.
  if (removed < limit) restart(cursor, undefined);
  return removed;
}
