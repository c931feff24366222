import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { randomStoreKey } from '../src/testing/index.js';
import {
  RedisStore,
  RedisWatchdog,
  type RedisWatchdogReason,
  type WatchableRedisClient,
} from '../src/stores/redis.js';
import { SessionError } from '../src/errors.js';
import { eventually, requireService } from './support/services.js';
import { RedisServerProcess, redisBinariesAvailable, redisCli } from './support/redis-server.js';
import { FaultRelay } from '../stress/relay.js';

const gate = await requireService('redis-server binaries', redisBinariesAvailable);

const LOOPBACK = '127.0.0.1';
/** Short settings, so that a replacement takes a fraction of a second. */
const INTERVAL = 50;
const TIMEOUT = 200;
const MINUTE = 60_000;

const testPrefix = () => `tessera-watchdog:${randomBytes(6).toString('hex')}:`;
const record = (data: string) => ({ data, expiresAt: Date.now() + MINUTE, userId: null });

/** Every client a test made, destroyed after it (one already closed is skipped). */
const made: { destroy(): void }[] = [];
afterEach(() => {
  for (const client of made.splice(0)) {
    try {
      client.destroy();
    } catch {
      // Already closed.
    }
  }
});

/** A factory of clients for `port`, with the store's recommended settings, counting its calls. */
function clientsFor(
  port: number,
  reconnectAfter = (retries: number) => Math.min(50 * 2 ** retries, 250),
) {
  const factory = {
    calls: 0,
    /** Called with the number of clients made so far, after each. */
    onCreate: (_calls: number) => undefined as void,
    create: () => {
      const client = createClient({
        disableOfflineQueue: true,
        socket: { host: LOOPBACK, port, connectTimeout: 1_000, reconnectStrategy: reconnectAfter },
      });
      client.on('error', () => undefined);
      made.push(client);
      factory.calls++;
      factory.onCreate(factory.calls);
      return client;
    },
  };
  return factory;
}

/** A promise of the next replacement's reason. */
function nextReplacement(): {
  reason: Promise<RedisWatchdogReason>;
  onReplace: (r: RedisWatchdogReason) => void;
} {
  let onReplace!: (reason: RedisWatchdogReason) => void;
  const reason = new Promise<RedisWatchdogReason>((resolve) => (onReplace = resolve));
  return { reason, onReplace };
}

describe('RedisWatchdog options', () => {
  const invalid = async (open: () => Promise<unknown>, pattern: RegExp) => {
    const attempt = open();
    await expect(attempt).rejects.toBeInstanceOf(SessionError);
    await expect(attempt).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(attempt).rejects.toThrow(pattern);
  };
  const never = (): WatchableRedisClient => {
    throw new Error('no client should be made');
  };

  it('refuses a create that is not a function, and options that are not an object', async () => {
    await invalid(() => RedisWatchdog.open(undefined as never), /^RedisWatchdog: create /);
    await invalid(() => RedisWatchdog.open(never, null as never), /^RedisWatchdog: options /);
  });

  const refused: [option: string, value: unknown][] = ['interval', 'timeout'].flatMap((option) =>
    [0, -1, Infinity, Number.NaN, '5', 2 ** 31].map((value): [string, unknown] => [option, value]),
  );
  it.each(refused)('refuses %s: %o, naming the option', async (option, value) => {
    await invalid(
      () => RedisWatchdog.open(never, { [option]: value }),
      new RegExp(`^RedisWatchdog: ${option} `),
    );
  });

  it('refuses an onReplace that is not a function, and a cluster client', async () => {
    await invalid(
      () => RedisWatchdog.open(never, { onReplace: 'log' as never }),
      /^RedisWatchdog: onReplace /,
    );
    const cluster = {
      masters: [],
      connect: () => Promise.resolve(),
    } as unknown as WatchableRedisClient;
    await invalid(() => RedisWatchdog.open(() => cluster), /not a cluster/);
  });
});

describe.skipIf(!gate.available)(`RedisWatchdog on a private redis-server${gate.label}`, () => {
  let server: RedisServerProcess;
  let relay: FaultRelay;
  let port: number;

  beforeAll(async () => {
    server = await RedisServerProcess.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    server.resume();
    await relay?.close();
  });

  async function behindRelay(): Promise<number> {
    relay = new FaultRelay(LOOPBACK, server.port);
    port = await relay.start();
    return port;
  }

  it('replaces a client whose connection went silent: its waiting command fails at once, and the store works on the new one', async () => {
    const clients = clientsFor(await behindRelay());
    const { reason, onReplace } = nextReplacement();
    const watched = await RedisWatchdog.open(clients.create, {
      interval: INTERVAL,
      timeout: TIMEOUT,
      onReplace,
    });
    const store = new RedisStore({ client: watched, prefix: testPrefix() });
    const key = randomStoreKey();
    await store.create(key, record('kept'));
    const first = watched.client;

    // The open connection goes silent for good (a NAT or firewall forgot it); new ones work.
    relay.partition();
    relay.heal(true);
    const started = performance.now();
    const waiting = Promise.resolve(store.get(key));
    waiting.catch(() => undefined);
    expect(await reason).toBe('unanswered');
    await expect(waiting).rejects.toThrow();
    // One PING interval, the PING's timeout and a new connection (about 300 ms here), where
    // without the watchdog the command would wait until TCP gives up.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(watched.replacements).toBe(1);
    expect(watched.client).not.toBe(first);
    expect(first.isReady).toBe(false);
    expect((await store.get(key))?.data).toBe('kept');
    expect(await store.update(key, record('after'), 1)).toEqual({ status: 'ok', version: 2 });
    await watched.close();
  });

  it('keeps its client while the server is frozen, dropping each new client that cannot get ready', async () => {
    const clients = clientsFor(server.port);
    const replaced: RedisWatchdogReason[] = [];
    const watched = await RedisWatchdog.open(clients.create, {
      interval: INTERVAL,
      timeout: TIMEOUT,
      onReplace: (reason) => replaced.push(reason),
    });
    const store = new RedisStore({ client: watched, prefix: testPrefix() });
    const key = randomStoreKey();
    await store.create(key, record('kept'));
    const first = watched.client;

    const thirdClient = new Promise<void>((resolve) => {
      clients.onCreate = (calls) => {
        if (calls === 3) resolve();
      };
    });
    server.pause();
    await thirdClient;
    // Two new clients were tried one after the other, and neither took the frozen one's place.
    expect(replaced).toEqual([]);
    expect(watched.client).toBe(first);
    server.resume();

    expect((await store.get(key))?.data).toBe('kept');
    await watched.close();
    // Every client the watchdog tried and dropped is gone from the server: only redis-cli's own
    // connection is left.
    await eventually(async () => {
      const info = await redisCli(server.port, ['INFO', 'clients']);
      expect(info).toMatch(/connected_clients:1\r?\n/);
    }, 5_000);
  });

  it('replaces a client that stays not ready after a restart, when its own reconnection would wait longer', async () => {
    // node-redis would try again only after 10 s.
    const clients = clientsFor(server.port, () => 10_000);
    const { reason, onReplace } = nextReplacement();
    const watched = await RedisWatchdog.open(clients.create, {
      interval: INTERVAL,
      timeout: TIMEOUT,
      onReplace,
    });
    const store = new RedisStore({ client: watched, prefix: testPrefix() });
    await store.create(randomStoreKey(), record('gone'));
    const serverPort = server.port;
    await server.stop();
    server = await RedisServerProcess.start({ port: serverPort });
    expect(await reason).toBe('not-ready');
    const key = randomStoreKey();
    expect(await store.create(key, record('new'))).toBe(true);
    expect((await store.get(key))?.data).toBe('new');
    await watched.close();
  });

  it("keeps the store's client-side cache right across a replacement", async () => {
    await behindRelay();
    const create = () => {
      const client = createClient({
        RESP: 3,
        emitInvalidate: true,
        disableOfflineQueue: true,
        socket: { host: LOOPBACK, port, connectTimeout: 1_000, reconnectStrategy: () => 100 },
      });
      client.on('error', () => undefined);
      made.push(client);
      return client;
    };
    const { reason, onReplace } = nextReplacement();
    const watched = await RedisWatchdog.open(create, {
      interval: INTERVAL,
      timeout: TIMEOUT,
      onReplace,
    });
    const prefix = testPrefix();
    const store = new RedisStore({ client: watched, prefix, clientSideCache: true });
    // Another process, writing straight to the server.
    const other = createClient({ socket: { host: LOOPBACK, port: server.port } });
    other.on('error', () => undefined);
    made.push(other);
    await other.connect();
    const writer = new RedisStore({ client: other, prefix });
    const key = randomStoreKey();
    await writer.create(key, record('v1'));
    expect((await store.get(key))?.data).toBe('v1');

    // The connection goes silent: the invalidation of this write never reaches the old client.
    relay.partition();
    relay.heal(true);
    expect(await writer.update(key, record('v2'), 1)).toEqual({ status: 'ok', version: 2 });
    await reason;
    // The cache was emptied at the replacement, so the old copy is not answered.
    expect((await store.get(key))?.data).toBe('v2');
    // And tracking goes on through the new client: another write reaches this cache.
    expect(await writer.update(key, record('v3'), 2)).toEqual({ status: 'ok', version: 3 });
    await eventually(async () => expect((await store.get(key))?.data).toBe('v3'), 2_000, 20);
    await store.close();
    await watched.close();
  });

  it('closes within its timeout when the connection went silent, failing the command in flight', async () => {
    const clients = clientsFor(await behindRelay());
    // No PING during this test: close() alone must not wait for the silent connection.
    const watched = await RedisWatchdog.open(clients.create, {
      interval: MINUTE,
      timeout: TIMEOUT,
    });
    const store = new RedisStore({ client: watched, prefix: testPrefix() });
    await store.get(randomStoreKey());
    relay.partition();
    relay.heal(true);
    const waiting = Promise.resolve(store.get(randomStoreKey()));
    waiting.catch(() => undefined);
    const started = performance.now();
    await watched.close();
    expect(performance.now() - started).toBeLessThan(TIMEOUT + 1_000);
    await expect(waiting).rejects.toThrow();
    expect(watched.client.isReady).toBe(false);
    expect(watched.replacements).toBe(0);
  });
});
