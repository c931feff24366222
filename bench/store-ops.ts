/**
 * CPU per operation of the memory store (or, with `--store sqlite`, the SQLite store on a
 * database file of its own in WAL mode), one or more builds side by side in one process: each
 * build's store is filled with the same sessions (manager-style keys, a user each, the bench's
 * small envelope), then the rounds alternate between the builds, timing batches of `get`,
 * `get` + `update` (a read+write request) and `create` (into a full memory store, each one
 * evicts).
 * The report gives each build's median over the rounds, in µs per operation, from
 * `process.cpuUsage`. Fresh key strings are made for every call, as the manager hands over.
 *
 * @example
 * ```sh
 * npx tsx bench/store-ops.ts                       # the store in src/
 * git worktree add /tmp/old <commit> && npx tsc -p /tmp/old/tsconfig.json --outDir .tmp/old
 * npx tsx bench/store-ops.ts .tmp/old src           # an older build against src/
 * npx tsx bench/store-ops.ts --store sqlite --sessions 20000 .tmp/old src
 * npx tsx bench/store-ops.ts --store sqlite --exclusive  # SqliteStore's exclusive option
 * ```
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { SessionStore } from '../src/store.js';

const DATA = '[{"theme":"dark","locale":"en-GB","cart":3},1795729492993,1,1800000,43200000,1]';

type Operation = 'get' | 'get+update' | 'create (evicts)';
const OPERATIONS: Operation[] = ['get', 'get+update', 'create (evicts)'];

type StoreKind = 'memory' | 'sqlite';

/** The SQLite stores' database directories, removed when the run ends. */
const scratchDirs: string[] = [];

/** The store of a build: `src` (through tsx) or a directory of compiled Tessera. */
async function storeOf(
  build: string,
  kind: StoreKind,
  sessions: number,
  index: number,
  exclusive: boolean,
): Promise<SessionStore> {
  const file = build === 'src' ? `../src/stores/${kind}.ts` : resolve(build, `stores/${kind}.js`);
  const url = build === 'src' ? new URL(file, import.meta.url) : pathToFileURL(file);
  const module = (await import(url.href)) as Record<string, new (options: object) => SessionStore>;
  if (kind === 'memory') {
    return new module.MemoryStore!({ maxSessions: sessions, sweepInterval: 0 });
  }
  const dir = await mkdtemp(join(tmpdir(), 'tessera-store-ops-'));
  scratchDirs.push(dir);
  return new module.SqliteStore!({
    db: new Database(join(dir, `build-${index}.db`)),
    pruneInterval: 0,
    ...(exclusive ? { exclusive } : {}),
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      sessions: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '10' },
      ops: { type: 'string', default: '20000' },
      store: { type: 'string', default: 'memory' },
      exclusive: { type: 'boolean', default: false },
    },
  });
  const kind = values.store as StoreKind;
  if (kind !== 'memory' && kind !== 'sqlite') throw new Error('--store is memory or sqlite');
  const sessions = Number(values.sessions);
  const rounds = Number(values.rounds);
  const ops = Number(values.ops);
  const builds = positionals.length > 0 ? positionals : ['src'];
  const keys = Array.from({ length: sessions }, () => randomBytes(32).toString('base64url'));
  const expiresAt = Date.now() + 3_600_000;
  const stores: SessionStore[] = [];
  for (const [index, build] of builds.entries()) {
    const store = await storeOf(build, kind, sessions, index, values.exclusive);
    for (let i = 0; i < sessions; i++) {
      await store.create(keys[i]!, { data: DATA, expiresAt, userId: `user-${i}` });
    }
    stores.push(store);
  }
  const timings = builds.map(() => OPERATIONS.map((): number[] => []));
  const fresh = (i: number) => ` ${keys[i % sessions]}`.slice(1);
  for (let round = 0; round < rounds; round++) {
    // The same new keys for every build, so that each evicts the same sessions.
    const newKeys = Array.from({ length: ops }, () => randomBytes(32).toString('base64url'));
    const order = round % 2 === 0 ? builds.keys() : [...builds.keys()].reverse();
    for (const b of order) {
      const store = stores[b]!;
      const batches: (() => Promise<void>)[] = [
        async () => {
          for (let i = 0; i < ops; i++) await store.get(fresh(i * 7919 + round));
        },
        async () => {
          for (let i = 0; i < ops; i++) {
            const key = fresh(i * 7919 + round + 1);
            const found = await store.get(key);
            if (found !== null) await store.update(key, { ...found, data: DATA }, found.version);
          }
        },
        async () => {
          for (let i = 0; i < ops; i++) {
            const key = ` ${newKeys[i]}`.slice(1);
            await store.create(key, { data: DATA, expiresAt, userId: `new-${round}-${i}` });
          }
        },
      ];
      for (const [o, batch] of batches.entries()) {
        const start = process.cpuUsage();
        await batch();
        const used = process.cpuUsage(start);
        timings[b]![o]!.push((used.user + used.system) / ops);
      }
    }
  }
  console.log(
    `${kind} store${values.exclusive ? ' (exclusive locking)' : ''}, ${sessions.toLocaleString('en-US')} sessions, ${rounds} rounds of ${ops.toLocaleString('en-US')} operations; median CPU µs per operation`,
  );
  for (const [b, build] of builds.entries()) {
    const cells = OPERATIONS.map((name, o) => {
      const label = kind === 'memory' ? name : name.replace(' (evicts)', '');
      return `${label} ${median(timings[b]![o]!).toFixed(3)}`;
    });
    console.log(`${build.padEnd(24)} ${cells.join('   ')}`);
  }
}

try {
  await main();
} finally {
  for (const dir of scratchDirs) await rm(dir, { recursive: true, force: true });
}
