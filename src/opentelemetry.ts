/**
 * OpenTelemetry metrics and traces for a {@link SessionManager}, through `@opentelemetry/api`
 * alone (an optional peer dependency: install it to use this subpath; the rest of Tessera never
 * loads it). Without an OpenTelemetry SDK registered, the API's providers record nothing.
 *
 * docs/operations.md lists every metric, span and attribute, with output from a run.
 *
 * @packageDocumentation
 */
import type {
  Attributes,
  Counter,
  Histogram,
  MeterProvider,
  Span,
  TracerProvider,
} from '@opentelemetry/api';
import { SpanKind, SpanStatusCode, metrics, trace } from '@opentelemetry/api';
import type { SessionManager } from './manager.js';
import type { StoreFailure, StoreOperation } from './store-calls.js';

/** The instrumentation scope of every meter and tracer {@link instrument} makes. */
export const INSTRUMENTATION_SCOPE = 'tessera-session';

/** What {@link instrument} reports to. */
export interface InstrumentOptions {
  /**
   * Where the metrics go. @defaultValue the global provider (`metrics.getMeterProvider()`),
   * as it is when `instrument` is called: start the SDK first
   */
  meterProvider?: MeterProvider;
  /** Where the spans go. @defaultValue the global provider (`trace.getTracerProvider()`) */
  tracerProvider?: TracerProvider;
}

/** One store call in flight: its span and when it started. */
interface Call {
  span: Span;
  started: number;
  attributes: Attributes;
}

/**
 * The `error.type` of a failed call: `timeout`, else the store's error code (`ECONNREFUSED`, a
 * SQLSTATE, a `SessionError` code), else the error's class name. Never its message, which may
 * hold anything.
 */
function errorType(failure: StoreFailure): string {
  if (failure.timedOut) return 'timeout';
  const error = failure.error;
  const cause: unknown = error.code === 'STORE_UNAVAILABLE' ? (error.cause ?? error) : error;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code !== '') return code;
  return cause instanceof Error ? cause.name : '_OTHER';
}

/**
 * Reports a manager's sessions and store calls to OpenTelemetry: counters of sessions created,
 * regenerated, destroyed, expired and rejected, of compare-and-set conflicts and retries and of
 * store failures; a histogram of store call durations; and a `CLIENT` span per store call,
 * named after the operation and made a child of the context active when the call was made.
 * Attributes carry operations, store names, reasons and error types: never a session ID, a store
 * key or a user ID.
 *
 * Answers a function that stops the reporting. A manager takes one `instrument` at a time (its
 * one store call observer, see `SessionManager.observeStoreCalls`).
 *
 * @param manager - the manager to watch
 * @param options - the providers; by default the global ones
 *
 * @example
 * ```ts
 * import { instrument } from 'tessera-session/opentelemetry';
 *
 * // After the OpenTelemetry SDK has started (its global providers registered):
 * const stop = instrument(manager);
 * ```
 */
export function instrument<Data extends object>(
  manager: SessionManager<Data>,
  options: InstrumentOptions = {},
): () => void {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(
    INSTRUMENTATION_SCOPE,
  );
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(
    INSTRUMENTATION_SCOPE,
  );
  const sessions = (event: string, description: string): Counter =>
    meter.createCounter(`tessera.sessions.${event}`, { description, unit: '{session}' });
  const created = sessions('created', 'Sessions stored for the first time');
  const regenerated = sessions('regenerated', 'Sessions moved to a new ID');
  const destroyed = sessions('destroyed', 'Sessions ended by destroy, revocation or the cap');
  const expired = sessions('expired', 'Sessions found past their idle or absolute deadline');
  const rejected = sessions('rejected', 'Session cookies not accepted');
  const conflicts = meter.createCounter('tessera.save.conflicts', {
    description: 'Compare-and-set saves that met a version another request wrote',
    unit: '{conflict}',
  });
  const retries = meter.createCounter('tessera.save.retries', {
    description: 'Saves written again on top of a newer version',
    unit: '{retry}',
  });
  const failures = meter.createCounter('tessera.store.failures', {
    description: 'Store calls that failed or timed out',
    unit: '{failure}',
  });
  const duration: Histogram = meter.createHistogram('tessera.store.operation.duration', {
    description: 'Duration of store calls, failed ones included',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10] },
  });

  // The observer first: when the manager already has one, this throws before subscribing.
  const stops = [
    manager.observeStoreCalls<Call>({
      start(operation: StoreOperation, store: string): Call {
        const attributes: Attributes = {
          'db.system.name': store,
          'db.operation.name': operation,
        };
        const span = tracer.startSpan(operation, {
          kind: SpanKind.CLIENT,
          // db.system is the name before the stable conventions, which some back ends still read.
          attributes: { ...attributes, 'db.system': store },
        });
        return { span, started: performance.now(), attributes };
      },
      end({ span, started, attributes }: Call, failure?: StoreFailure): void {
        if (failure !== undefined) {
          const type = errorType(failure);
          attributes['error.type'] = type;
          failures.add(1, attributes);
          span.setAttribute('error.type', type);
          span.setStatus({ code: SpanStatusCode.ERROR, message: failure.error.message });
        }
        duration.record((performance.now() - started) / 1000, attributes);
        span.end();
      },
    }),
    manager.on('created', () => created.add(1)),
    manager.on('regenerated', () => regenerated.add(1)),
    manager.on('destroyed', ({ reason }) => destroyed.add(1, { 'tessera.reason': reason })),
    manager.on('expired', ({ reason }) => expired.add(1, { 'tessera.reason': reason })),
    manager.on('rejected', ({ reason }) => rejected.add(1, { 'tessera.reason': reason })),
    manager.on('saveConflict', () => conflicts.add(1)),
    manager.on('saveRetry', () => retries.add(1)),
  ];
  return () => {
    for (const stop of stops) stop();
  };
}
