/**
 * What store-calls.ts reports. The `storeError` event: every failed store call (a throw, a
 * rejection, no answer within `storeTimeout`) is reported once, with the operation, the store's
 * name and the error, and never with a store key or a session ID. The store call observer
 * (`manager.observeStoreCalls`, which `tessera-session/opentelemetry` is built on).
 */
import { createServer, type AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SessionError, SessionManager, type SessionStore } from '../src/index.js';
import type { StoreFailure } from '../src/store-calls.js';
import { MemoryStore } from '../src/stores/memory.js';
import { PostgresStore } from '../src/stores/postgres.js';
import type { SessionRecord } from '../src/store.js';
import { FakeClock, InstrumentedStore, SECRET, cookiePair, rawIdOf } from './support/fixtures.js';

/** An instrumented memory store that gives its name and remembers every key it was asked about. */
class WatchedStore extends InstrumentedStore {
  readonly name = 'memory';
  readonly keys = new Set<string>();
  override get(key: string) {
    this.keys.add(key);
    return super.get(key);
  }
  override create(key: string, record: SessionRecord) {
    this.keys.add(key);
    return super.create(key, record);
  }
  override update(key: string, record: SessionRecord, version: number) {
    this.keys.add(key);
    return super.update(key, record, version);
  }
  override touch(key: string, expiresAt: number) {
    this.keys.add(key);
    return super.touch(key, expiresAt);
  }
  override delete(key: string) {
    this.keys.add(key);
    return super.delete(key);
  }
}

function setup(options: { synchronous?: boolean; storeTimeout?: number } = {}) {
  const clock = new FakeClock();
  const store = new WatchedStore(new MemoryStore({ now: clock.now, sweepInterval: 0 }), {
    synchronous: options.synchronous === true,
  });
  const manager = new SessionManager({
    store,
    secrets: [SECRET],
    now: clock.now,
    storeTimeout: options.storeTimeout ?? 5_000,
  });
  const failures: StoreFailure[] = [];
  manager.on('storeError', (failure) => failures.push(failure));
  return { clock, store, manager, failures };
}

/** A session stored for `alice`; answers its cookie and session ID. */
async function login(manager: SessionManager) {
  const session = await manager.load({});
  session.setUser('alice');
  session.set('theme', 'dark');
  const cookie = cookiePair((await manager.commit(session)).setCookie);
  return { cookie, id: rawIdOf(cookie) };
}

/**
 * The payload as a logger would write it: `util.inspect` (the error's stack and its cause chain)
 * and JSON with the errors spelled out.
 */
function serialized(failure: StoreFailure): string {
  const json = JSON.stringify(failure, (_key, value: unknown) =>
    value instanceof Error
      ? {
          ...value,
          name: value.name,
          message: value.message,
          stack: value.stack,
          cause: value.cause,
        }
      : value,
  );
  return `${inspect(failure, { depth: null })}\n${json}`;
}

/** Checks that no key the store saw, no session ID and nothing shaped like either is in the payload. */
function expectNoSecrets(failure: StoreFailure, store: WatchedStore, ids: string[]): void {
  const text = serialized(failure);
  for (const secret of [...store.keys, ...ids]) expect(text).not.toContain(secret);
  // IDs and keys are 43 base64url characters; nothing in a payload comes near that length.
  expect(text).not.toMatch(/[A-Za-z0-9_-]{32,}/);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the storeError event', () => {
  it('reports a store that throws at once, and the caller gets the same error', async () => {
    const { store, manager, failures } = setup({ synchronous: true });
    const { cookie, id } = await login(manager);
    store.failing.add('get');
    const error = await Promise.resolve(manager.load({ cookie })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect(failures).toHaveLength(1);
    const [failure] = failures;
    expect(failure).toMatchObject({ operation: 'get', store: 'memory', timedOut: false });
    expect(failure!.error).toBe(error);
    expect(failure!.error.code).toBe('STORE_UNAVAILABLE');
    expect((failure!.error.cause as Error).message).toBe('connect ECONNREFUSED 127.0.0.1:6379');
    expect(Object.keys(failure!).sort()).toEqual(['error', 'operation', 'store', 'timedOut']);
    expectNoSecrets(failure!, store, [id]);
  });

  it('reports a rejected call of each operation the manager makes', async () => {
    const { store, manager, failures } = setup();
    const { cookie, id } = await login(manager);
    const ids = [id];

    store.failing.add('update');
    const changed = await manager.load({ cookie });
    changed.set('theme', 'light');
    await expect(manager.commit(changed)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failing.clear();

    store.failing.add('delete');
    await expect((await manager.load({ cookie })).destroy()).rejects.toThrow(SessionError);
    store.failing.clear();

    store.failing.add('create');
    const fresh = await manager.load({});
    fresh.set('a', 1);
    await expect(manager.commit(fresh)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.failing.clear();

    store.failing.add('listByUser');
    await expect(manager.listUserSessions('alice')).rejects.toThrow(SessionError);
    store.failing.clear();

    store.failing.add('deleteByUser');
    await expect(manager.revokeUserSessions('alice')).rejects.toThrow(SessionError);
    store.failing.clear();

    expect(failures.map((failure) => failure.operation)).toEqual([
      'update',
      'delete',
      'create',
      'listByUser',
      'deleteByUser',
    ]);
    for (const failure of failures) {
      expect(failure).toMatchObject({ store: 'memory', timedOut: false });
      expect(failure.error.code).toBe('STORE_UNAVAILABLE');
      expectNoSecrets(failure, store, ids);
    }
  });

  it('reports a touch that fails', async () => {
    const { clock, store, manager, failures } = setup();
    const { cookie, id } = await login(manager);
    store.failing.add('touch');
    clock.advance(10 * 60_000); // past the touch interval: the read-only request touches
    await expect(manager.commit(await manager.load({ cookie }))).rejects.toThrow(SessionError);
    expect(failures.map((failure) => failure.operation)).toEqual(['touch']);
    expectNoSecrets(failures[0]!, store, [id]);
  });

  it('reports a call that does not answer within storeTimeout, once, as timed out', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
    const { store, manager, failures } = setup({ storeTimeout: 1_000 });
    const { cookie, id } = await login(manager);
    store.hanging.add('get');
    const loading = Promise.resolve(manager.load({ cookie }));
    const outcome = loading.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(999);
    expect(failures).toEqual([]);
    await vi.advanceTimersByTimeAsync(300);
    const error = await outcome;
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ operation: 'get', store: 'memory', timedOut: true });
    expect(failures[0]!.error).toBe(error);
    expect(failures[0]!.error.message).toBe('store get did not answer within 1000 ms');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(failures).toHaveLength(1);
    expectNoSecrets(failures[0]!, store, [id]);
  });

  it("passes on a store's own SessionError, and reports it", async () => {
    const { store, manager, failures } = setup();
    const refused = new SessionError('INVALID_DATA', 'the store refused the record');
    store.update = async () => {
      throw refused;
    };
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    session.set('theme', 'light');
    await expect(manager.commit(session)).rejects.toBe(refused);
    expect(failures).toEqual([
      { operation: 'update', store: 'memory', error: refused, timedOut: false },
    ]);
  });

  it('names a store that gives no name "custom", and reports nothing when every call succeeds', async () => {
    const clock = new FakeClock();
    const inner = new MemoryStore({ now: clock.now, sweepInterval: 0 });
    const store = new InstrumentedStore(inner);
    const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now });
    const failures: StoreFailure[] = [];
    manager.on('storeError', (failure) => failures.push(failure));
    const { cookie } = await login(manager);
    await manager.commit(await manager.load({ cookie }));
    expect(failures).toEqual([]);
    store.failing.add('get');
    await expect(manager.load({ cookie })).rejects.toThrow(SessionError);
    expect(failures.map(({ store: name }) => name)).toEqual(['custom']);
  });

  it('keeps the request failing with STORE_UNAVAILABLE when a listener throws', async () => {
    const { store, manager } = setup();
    manager.on('storeError', () => {
      throw new Error('a broken logger');
    });
    const { cookie } = await login(manager);
    store.failing.add('get');
    await expect(manager.load({ cookie })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('reports a PostgreSQL server that cannot be reached, by its name and the refusal', async () => {
    const port = await freePort();
    const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'test' });
    pool.on('error', () => undefined);
    const store: SessionStore = new PostgresStore({ pool, pruneInterval: 0 });
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const failures: StoreFailure[] = [];
    manager.on('storeError', (failure) => failures.push(failure));
    try {
      const session = await manager.load({});
      session.set('a', 1);
      await expect(manager.commit(session)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({
        operation: 'create',
        store: 'postgresql',
        timedOut: false,
      });
      expect(failures[0]!.error.cause).toMatchObject({ code: 'ECONNREFUSED' });
      expect(serialized(failures[0]!)).not.toMatch(/[A-Za-z0-9_-]{32,}/);
    } finally {
      await store.close?.();
      await pool.end();
    }
  });
});

describe('the store call observer', () => {
  it('sees each call start where it is made and end once; a broken observer breaks nothing', async () => {
    const store = new WatchedStore(new MemoryStore({ sweepInterval: 0 }));
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const seen: string[] = [];
    const stop = manager.observeStoreCalls({
      start: (operation, name) => {
        seen.push(`start ${operation} ${name}`);
        return operation;
      },
      end: (operation, failure) => seen.push(`end ${operation} ${failure?.error.code ?? 'ok'}`),
    });
    const { cookie } = await login(manager);
    store.failing.add('get');
    await expect(manager.load({ cookie })).rejects.toThrow(SessionError);
    stop();
    expect(seen).toEqual([
      'start create memory',
      'end create ok',
      'start get memory',
      'end get STORE_UNAVAILABLE',
    ]);

    manager.observeStoreCalls({
      start: () => {
        throw new Error('broken start');
      },
      end: () => {
        throw new Error('broken end');
      },
    });
    store.failing.clear();
    expect((await manager.load({ cookie })).isNew).toBe(false);
    store.failing.add('get');
    await expect(manager.load({ cookie })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});

/** A loopback port nothing listens on: one the system just handed out and took back. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
