import { createHash } from 'node:crypto';
import { SessionManager, type SessionManagerOptions } from '../../src/index.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserIndex,
  UserRecord,
} from '../../src/store.js';

export const SECRET = 'test-secret-that-is-at-least-32-bytes-long';

/** A clock tests move by hand. */
export class FakeClock {
  time = Date.UTC(2026, 0, 1);
  now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

/** The `name=value` pair of the first Set-Cookie, as a browser would send it back. */
export function cookiePair(setCookie: readonly string[]): string {
  const first = setCookie[0];
  if (first === undefined) throw new Error('no Set-Cookie');
  return first.split(';')[0]!;
}

/** The raw session ID inside a cookie pair `name=ID.SIG`. */
export function rawIdOf(pair: string): string {
  return pair.slice(pair.indexOf('=') + 1).split('.')[0]!;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

type Operation = keyof SessionStore | keyof UserIndex;

/**
 * Wraps a store to count calls per operation and to make operations fail or hang on demand,
 * as a real server that goes away would. Made `synchronous`, its `get`, `create` and `update`
 * answer values as the inner store does (and throw when failing); otherwise every operation
 * answers a promise.
 */
export class InstrumentedStore implements SessionStore {
  readonly calls: Record<string, number> = {};
  failing = new Set<Operation>();
  hanging = new Set<Operation>();
  readonly #synchronous: boolean;

  constructor(
    readonly inner: SessionStore & UserIndex,
    options: { synchronous?: boolean } = {},
  ) {
    this.#synchronous = options.synchronous === true;
  }

  reset(): void {
    for (const key of Object.keys(this.calls)) delete this.calls[key];
  }

  count(operation: Operation): number {
    return this.calls[operation] ?? 0;
  }

  total(): number {
    return Object.values(this.calls).reduce((sum, n) => sum + n, 0);
  }

  #run<T>(operation: Operation, run: () => T | Promise<T>): T | Promise<T> {
    this.calls[operation] = (this.calls[operation] ?? 0) + 1;
    if (this.hanging.has(operation)) return new Promise<T>(() => undefined);
    const fail = () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    };
    if (this.#synchronous && ['get', 'create', 'update'].includes(operation)) {
      if (this.failing.has(operation)) fail();
      return run();
    }
    return (async () => {
      if (this.failing.has(operation)) fail();
      return run();
    })();
  }

  get(key: string): StoredRecord | null | Promise<StoredRecord | null> {
    return this.#run('get', () => this.inner.get(key));
  }
  create(key: string, record: SessionRecord): boolean | Promise<boolean> {
    return this.#run('create', () => this.inner.create(key, record));
  }
  update(
    key: string,
    record: SessionRecord,
    version: number,
  ): UpdateResult | Promise<UpdateResult> {
    return this.#run('update', () => this.inner.update(key, record, version));
  }
  touch(key: string, expiresAt: number): Promise<boolean> {
    return this.#run('touch', async () => this.inner.touch(key, expiresAt)) as Promise<boolean>;
  }
  delete(key: string): Promise<void> {
    return this.#run('delete', async () => this.inner.delete(key)) as Promise<void>;
  }
  listByUser(userId: string): Promise<UserRecord[]> {
    return this.#run('listByUser', async () => this.inner.listByUser(userId)) as Promise<
      UserRecord[]
    >;
  }
  deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    return this.#run('deleteByUser', async () =>
      this.inner.deleteByUser(userId, exceptKey),
    ) as Promise<number>;
  }
}

/** A manager on an instrumented memory store with a fake clock. */
export function setup<Data extends object = Record<string, unknown>>(
  options: Partial<SessionManagerOptions> = {},
  storeOptions: { synchronous?: boolean } = {},
) {
  const clock = new FakeClock();
  const memory = new MemoryStore({ now: clock.now, sweepInterval: 0 });
  const store = new InstrumentedStore(memory, storeOptions);
  const manager = new SessionManager<Data>({
    store,
    secrets: [SECRET],
    now: clock.now,
    ...options,
  });
  return { clock, memory, store, manager };
}
