/**
 * `tessera-session/opentelemetry` against the real OpenTelemetry SDK, read through its in-memory
 * exporters: every counter, the store call histogram and the store call spans; failures; the
 * synchronous fast path kept; no ID, key or user in any attribute. Also the core's independence
 * from `@opentelemetry/api`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  metrics,
  trace,
  type Context,
  type ContextManager,
} from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
  type Histogram,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SessionError, SessionManager } from '../src/index.js';
import { INSTRUMENTATION_SCOPE, instrument } from '../src/opentelemetry.js';
import { MemoryStore } from '../src/stores/memory.js';
import {
  FakeClock,
  InstrumentedStore,
  SECRET,
  cookiePair,
  rawIdOf,
  sha256,
} from './support/fixtures.js';

const MINUTE = 60_000;

/** Context propagation as the SDK's async-hooks manager gives it, on AsyncLocalStorage. */
class LocalContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    active: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(active, () => fn.call(thisArg, ...args));
  }
  bind<T>(_context: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

/** An instrumented memory store that gives its name, as Tessera's own stores do. */
class NamedStore extends InstrumentedStore {
  readonly name = 'memory';
}

let spans: InMemorySpanExporter;
let tracerProvider: BasicTracerProvider;
let metricExporter: InMemoryMetricExporter;
let meterProvider: MeterProvider;

beforeAll(() => {
  context.setGlobalContextManager(new LocalContextManager());
});
afterAll(() => {
  context.disable();
});

beforeEach(() => {
  spans = new InMemorySpanExporter();
  tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: metricExporter,
        exportIntervalMillis: 3_600_000,
      }),
    ],
  });
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
});

function setup(storeOptions: { synchronous?: boolean } = {}, storeTimeout = 5_000) {
  const clock = new FakeClock();
  // The store's clock lags a day, so the manager finds expired records itself (`expired`).
  const memory = new MemoryStore({ now: () => clock.now() - 24 * 60 * MINUTE, sweepInterval: 0 });
  const store = new NamedStore(memory, storeOptions);
  const manager = new SessionManager({
    store,
    secrets: [SECRET],
    now: clock.now,
    idleTimeout: 30 * MINUTE,
    storeTimeout,
  });
  const stop = instrument(manager, { meterProvider, tracerProvider });
  return { clock, store, manager, stop };
}

async function login(manager: SessionManager, userId = 'alice') {
  const session = await manager.load({});
  session.setUser(userId);
  const cookie = cookiePair((await manager.commit(session)).setCookie);
  return { cookie, id: rawIdOf(cookie) };
}

/** Every data point of each metric exported so far, by metric name. */
async function collected(): Promise<Map<string, { unit: string; points: DataPoint<unknown>[] }>> {
  await meterProvider.forceFlush();
  const found = new Map<string, { unit: string; points: DataPoint<unknown>[] }>();
  const last = metricExporter.getMetrics().at(-1);
  for (const scope of last?.scopeMetrics ?? []) {
    expect(scope.scope.name).toBe(INSTRUMENTATION_SCOPE);
    for (const metric of scope.metrics) {
      found.set(metric.descriptor.name, {
        unit: metric.descriptor.unit,
        points: metric.dataPoints as DataPoint<unknown>[],
      });
    }
  }
  return found;
}

/** A counter's values, as `attributes → value` with the attributes in JSON. */
async function counter(name: string): Promise<Record<string, number>> {
  const metric = (await collected()).get(name);
  return Object.fromEntries(
    (metric?.points ?? []).map((point) => [
      JSON.stringify(point.attributes),
      point.value as number,
    ]),
  );
}

const storeCall = (operation: string, extra: Record<string, string> = {}) =>
  JSON.stringify({ 'db.system.name': 'memory', 'db.operation.name': operation, ...extra });

describe('instrument: counters', () => {
  it('counts sessions created, regenerated, destroyed, expired and rejected, with reasons', async () => {
    const { clock, manager } = setup();
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    await session.regenerate({ keep: true });
    const moved = cookiePair((await manager.commit(session)).setCookie);
    await (await manager.load({ cookie: moved })).destroy();
    await manager.load({ cookie: cookie.slice(0, -3) + 'abc' }); // signature
    await manager.load({ cookie: `${cookie.split('=')[0]}=nonsense` }); // malformed
    const { cookie: idle } = await login(manager, 'bob');
    clock.advance(31 * MINUTE);
    await manager.load({ cookie: idle }); // expired, idle

    const found = await collected();
    const total = (name: string) => found.get(name)?.points.map((p) => [p.attributes, p.value]);
    expect(total('tessera.sessions.created')).toEqual([[{}, 3]]);
    expect(total('tessera.sessions.regenerated')).toEqual([[{}, 1]]);
    expect(total('tessera.sessions.destroyed')).toEqual([[{ 'tessera.reason': 'destroy' }, 1]]);
    expect(total('tessera.sessions.expired')).toEqual([[{ 'tessera.reason': 'idle' }, 1]]);
    expect(total('tessera.sessions.rejected')).toEqual([
      [{ 'tessera.reason': 'signature' }, 1],
      [{ 'tessera.reason': 'malformed' }, 1],
    ]);
    for (const name of ['created', 'regenerated', 'destroyed', 'expired', 'rejected']) {
      expect(found.get(`tessera.sessions.${name}`)?.unit).toBe('{session}');
    }
  });

  it('counts compare-and-set conflicts and the retries that follow them', async () => {
    const { manager } = setup({ synchronous: true });
    const { cookie } = await login(manager);
    const first = await manager.load({ cookie });
    const second = await manager.load({ cookie });
    first.set('a', 1);
    second.set('b', 2);
    await manager.commit(first);
    await manager.commit(second); // meets the version `first` wrote, rebases, writes again
    expect(await counter('tessera.save.conflicts')).toEqual({ '{}': 1 });
    expect(await counter('tessera.save.retries')).toEqual({ '{}': 1 });
    const final = await manager.load({ cookie });
    expect([final.get('a'), final.get('b')]).toEqual([1, 2]);
  });

  it('counts a conflict that gives up without a retry', async () => {
    const clock = new FakeClock();
    const store = new NamedStore(new MemoryStore({ now: clock.now, sweepInterval: 0 }));
    store.update = async () => ({ status: 'conflict' });
    const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now, maxRetries: 0 });
    instrument(manager, { meterProvider, tracerProvider });
    const { cookie } = await login(manager);
    const session = await manager.load({ cookie });
    session.set('x', 1);
    await expect(manager.commit(session)).rejects.toMatchObject({ code: 'WRITE_CONFLICT' });
    expect(await counter('tessera.save.conflicts')).toEqual({ '{}': 1 });
    expect(await counter('tessera.save.retries')).toEqual({});
  });
});

describe('instrument: store calls', () => {
  it('records the duration of each store call in seconds, by operation and store', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const { manager, store } = setup();
    const get = store.get.bind(store);
    // A get that takes 20 ms of the (fake) clock performance.now() reads.
    store.get = (key) => {
      vi.advanceTimersByTime(20);
      return get(key);
    };
    const { cookie } = await login(manager);
    await manager.load({ cookie });
    await manager.load({ cookie });
    const histogram = (await collected()).get('tessera.store.operation.duration')!;
    expect(histogram.unit).toBe('s');
    const byCall = Object.fromEntries(
      histogram.points.map((point) => [JSON.stringify(point.attributes), point.value as Histogram]),
    );
    expect(Object.keys(byCall).sort()).toEqual([storeCall('create'), storeCall('get')].sort());
    expect(byCall[storeCall('get')]).toMatchObject({ count: 2, sum: 0.04 });
    expect(byCall[storeCall('create')]).toMatchObject({ count: 1 });
    // Bucket bounds of OpenTelemetry's db.client.operation.duration, in seconds.
    expect(byCall[storeCall('get')]!.buckets.boundaries).toEqual([
      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10,
    ]);
  });

  it('makes each call a CLIENT span in the context active when the call was made', async () => {
    const { manager } = setup();
    const { cookie } = await login(manager);
    const tracer = tracerProvider.getTracer('app');
    const request = tracer.startSpan('GET /');
    await context.with(trace.setSpan(context.active(), request), () => manager.load({ cookie }));
    request.end();
    const [create, get, parent] = spans.getFinishedSpans();
    expect(parent!.name).toBe('GET /');
    expect([create!.name, get!.name]).toEqual(['create', 'get']);
    for (const span of [create!, get!]) {
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.instrumentationScope.name).toBe(INSTRUMENTATION_SCOPE);
    }
    expect(get!.attributes).toEqual({
      'db.system': 'memory',
      'db.system.name': 'memory',
      'db.operation.name': 'get',
    });
    // The login ran outside any span; the load inside the request's.
    expect(create!.parentSpanContext).toBeUndefined();
    expect(get!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(get!.spanContext().traceId).toBe(request.spanContext().traceId);
  });

  it('keeps a store that answers values synchronous: the request does not wait', async () => {
    const { manager } = setup({ synchronous: true });
    const { cookie } = await login(manager);
    const session = manager.load({ cookie });
    expect(session).not.toBeInstanceOf(Promise);
    expect(spans.getFinishedSpans().map((span) => span.name)).toEqual(['create', 'get']);
  });

  it('marks a failed call: error status and error.type on its span, counted as a failure', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
    const { manager, store } = setup({ synchronous: true }, 1_000);
    const { cookie } = await login(manager);

    store.failing.add('get'); // throws at once
    await expect(Promise.resolve(manager.load({ cookie }))).rejects.toThrow(SessionError);
    store.failing.clear();

    store.update = async () => {
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    };
    const changed = await manager.load({ cookie });
    changed.set('a', 1);
    await expect(manager.commit(changed)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });

    store.hanging.add('delete');
    const ending = Promise.resolve((await manager.load({ cookie })).destroy()).catch((e) => e);
    await vi.advanceTimersByTimeAsync(1_300);
    expect(await ending).toBeInstanceOf(SessionError);

    expect(await counter('tessera.store.failures')).toEqual({
      [storeCall('get', { 'error.type': 'Error' })]: 1,
      [storeCall('update', { 'error.type': 'ECONNRESET' })]: 1,
      [storeCall('delete', { 'error.type': 'timeout' })]: 1,
    });
    const failed = spans
      .getFinishedSpans()
      .filter((span) => span.status.code !== SpanStatusCode.UNSET);
    expect(failed.map((span) => [span.name, span.status, span.attributes['error.type']])).toEqual([
      ['get', { code: SpanStatusCode.ERROR, message: 'store get failed' }, 'Error'],
      ['update', { code: SpanStatusCode.ERROR, message: 'store update failed' }, 'ECONNRESET'],
      [
        'delete',
        { code: SpanStatusCode.ERROR, message: 'store delete did not answer within 1000 ms' },
        'timeout',
      ],
    ]);
    // Failed calls are in the histogram too, with their error.type.
    const histogram = (await collected()).get('tessera.store.operation.duration')!;
    const timedOut = histogram.points.find((point) => point.attributes['error.type'] === 'timeout');
    expect((timedOut?.value as Histogram).count).toBe(1);
  });

  it("reports a store's own SessionError by its code", async () => {
    const { clock, manager, store } = setup();
    store.touch = async () => {
      throw new SessionError('INVALID_DATA', 'refused');
    };
    const { cookie } = await login(manager);
    clock.advance(10 * MINUTE); // a read-only request past the touch interval touches
    const session = await manager.load({ cookie });
    await expect(Promise.resolve(manager.commit(session))).rejects.toMatchObject({
      code: 'INVALID_DATA',
    });
    expect(await counter('tessera.store.failures')).toEqual({
      [storeCall('touch', { 'error.type': 'INVALID_DATA' })]: 1,
    });
  });

  it('puts no session ID, store key or user ID in any span, attribute or metric', async () => {
    const { manager, store } = setup();
    const secrets: string[] = ['alice', 'bob'];
    for (const user of ['alice', 'bob']) {
      const { cookie, id } = await login(manager, user);
      secrets.push(id, sha256(id), cookie);
      const session = await manager.load({ cookie });
      session.set('n', 1);
      await manager.commit(session);
      await manager.listUserSessions(user);
      store.failing.add('get');
      await expect(manager.load({ cookie })).rejects.toThrow(SessionError);
      store.failing.clear();
      await (await manager.load({ cookie })).destroy();
    }
    await manager.revokeUserSessions('alice');
    const exported = JSON.stringify({
      spans: spans
        .getFinishedSpans()
        .map((span: ReadableSpan) => [span.name, span.attributes, span.status, span.events]),
      metrics: [...(await collected())].map(([name, { points }]) => [
        name,
        points.map((point) => point.attributes),
      ]),
    });
    expect(exported).toContain('listByUser');
    for (const secret of secrets) expect(exported).not.toContain(secret);
  });
});

describe('instrument: set-up', () => {
  afterEach(() => {
    trace.disable();
    metrics.disable();
  });

  it('reports to the global providers by default', async () => {
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
    const manager = new SessionManager({ store: new MemoryStore(), secrets: [SECRET] });
    instrument(manager);
    await login(manager);
    expect(spans.getFinishedSpans().map((span) => span.name)).toEqual(['create']);
    expect(await counter('tessera.sessions.created')).toEqual({ '{}': 1 });
    expect((await collected()).get('tessera.store.operation.duration')?.points).toEqual([
      expect.objectContaining({
        attributes: { 'db.system.name': 'memory', 'db.operation.name': 'create' },
      }),
    ]);
  });

  it('stops reporting when stopped; a manager takes one instrument at a time', async () => {
    const { manager, stop } = setup();
    expect(() => instrument(manager, { meterProvider, tracerProvider })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    );
    await login(manager);
    stop();
    await login(manager);
    expect(spans.getFinishedSpans()).toHaveLength(1);
    expect(await counter('tessera.sessions.created')).toEqual({ '{}': 1 });
    // Stopped, the manager takes another.
    instrument(manager, { meterProvider, tracerProvider });
    await login(manager);
    expect(spans.getFinishedSpans()).toHaveLength(2);
  });
});

describe('the core without @opentelemetry/api', () => {
  it('has no module but src/opentelemetry.ts import it, and none imports that one', () => {
    const src = resolve(import.meta.dirname, '../src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter(
      (file) => file.endsWith('.ts') && file !== 'opentelemetry.ts',
    );
    expect(files.length).toBeGreaterThan(30);
    for (const file of files) {
      const { importedFiles } = ts.preProcessFile(
        readFileSync(join(src, file), 'utf8'),
        true,
        true,
      );
      for (const { fileName } of importedFiles) {
        expect(fileName.startsWith('@opentelemetry/'), `${file} imports ${fileName}`).toBe(false);
        expect(fileName.endsWith('/opentelemetry.js'), `${file} imports ${fileName}`).toBe(false);
      }
    }
  });
});
