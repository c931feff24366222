/**
 * Every store call the manager makes goes through {@link StoreCalls.call}: one way to fail
 * (`STORE_UNAVAILABLE`, reported as a `storeError` event), one bound on how long a call that
 * answers a promise may take, and one place an observer (metrics, traces) watches calls from.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';
import type { EventBus } from './events.js';
import type { MaybePromise } from './maybe.js';
import { isPromiseLike } from './maybe.js';

/** The store methods the manager calls, by their names in `SessionStore`. */
export type StoreOperation =
  'get' | 'create' | 'update' | 'touch' | 'delete' | 'listByUser' | 'deleteByUser';

/**
 * A store call that failed, as the `storeError` event carries it. It never holds a store key or
 * a session ID.
 */
export interface StoreFailure {
  /** The store method that failed. */
  operation: StoreOperation;
  /** The store's `name` (`'redis'`, `'postgresql'`, ...), or `'custom'` for a store without one. */
  store: string;
  /**
   * What the caller got: `STORE_UNAVAILABLE` with the store's own error as its `cause`, or a
   * `SessionError` the store threw itself.
   */
  error: SessionError;
  /** Whether the store did not answer within `storeTimeout` (rather than answering an error). */
  timedOut: boolean;
}

/**
 * Watches every store call, for metrics and traces (`tessera-session/opentelemetry` is one).
 * `start` runs synchronously where the call is made, so it sees the caller's context (an
 * OpenTelemetry span, an AsyncLocalStorage store); `end` runs once per call, when the store
 * answered, failed or timed out. A throw from either is ignored.
 *
 * @typeParam Token - what `start` answers and `end` is handed back, such as a start time or a span
 *
 * @example
 * ```ts
 * manager.observeStoreCalls({
 *   start: () => performance.now(),
 *   end: (started, failure) => record(performance.now() - started, failure?.operation),
 * });
 * ```
 */
export interface StoreCallObserver<Token = unknown> {
  /** A call is about to go to the store. */
  start(operation: StoreOperation, store: string): Token;
  /** The call answered (`failure` undefined), or failed. */
  end(token: Token, failure?: StoreFailure): void;
}

interface PendingCall {
  deadline: number;
  operation: StoreOperation;
  reject: (error: SessionError) => void;
  observer: StoreCallObserver | undefined;
  token: unknown;
}

/** The error of a failed store call: the store's own `SessionError`, or `STORE_UNAVAILABLE`. */
function storeFailure(operation: string, cause: unknown): SessionError {
  return cause instanceof SessionError
    ? cause
    : new SessionError('STORE_UNAVAILABLE', `store ${operation} failed`, { cause });
}

/** Runs store calls within the store timeout, and reports each failure. */
export class StoreCalls {
  readonly #timeout: number;
  readonly #events: EventBus;
  readonly #store: string;
  readonly #pending = new Set<PendingCall>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #observer: StoreCallObserver | undefined;

  /**
   * @param timeout - the store timeout, in milliseconds
   * @param events - where `storeError` goes
   * @param storeName - the store's `name`; `'custom'` when it gives none
   */
  constructor(timeout: number, events: EventBus, storeName: unknown) {
    this.#timeout = timeout;
    this.#events = events;
    this.#store = typeof storeName === 'string' && storeName !== '' ? storeName : 'custom';
  }

  /**
   * Has `observer` watch every call from now on; answers a function that stops it. One observer
   * at a time: a second throws `INVALID_OPTION`.
   */
  observe(observer: StoreCallObserver): () => void {
    if (this.#observer !== undefined) {
      throw new SessionError('INVALID_OPTION', 'the store calls already have an observer');
    }
    this.#observer = observer;
    return () => {
      if (this.#observer === observer) this.#observer = undefined;
    };
  }

  /**
   * Runs one store call. A value (or a throw) is answered at once, since the store has already
   * answered; a promise is bounded by the timeout. Any failure becomes `STORE_UNAVAILABLE`.
   */
  call<T>(operation: StoreOperation, run: () => T | PromiseLike<T>): MaybePromise<T> {
    // Without an observer, the one extra cost is this check.
    const observer = this.#observer;
    if (observer !== undefined) return this.#observed(observer, operation, run);
    let answer: T | PromiseLike<T>;
    try {
      answer = run();
    } catch (cause) {
      throw this.#failed(operation, storeFailure(operation, cause), false, undefined, undefined);
    }
    return isPromiseLike(answer) ? this.#bounded(operation, answer, undefined, undefined) : answer;
  }

  #observed<T>(
    observer: StoreCallObserver,
    operation: StoreOperation,
    run: () => T | PromiseLike<T>,
  ): MaybePromise<T> {
    let token: unknown;
    try {
      token = observer.start(operation, this.#store);
    } catch {
      // A broken observer must not break the request it watches.
    }
    let answer: T | PromiseLike<T>;
    try {
      answer = run();
    } catch (cause) {
      throw this.#failed(operation, storeFailure(operation, cause), false, observer, token);
    }
    if (isPromiseLike(answer)) return this.#bounded(operation, answer, observer, token);
    this.#ended(observer, token, undefined);
    return answer;
  }

  #bounded<T>(
    operation: StoreOperation,
    answer: PromiseLike<T>,
    observer: StoreCallObserver | undefined,
    token: unknown,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCall = {
        deadline: performance.now() + this.#timeout,
        operation,
        reject,
        observer,
        token,
      };
      this.#pending.add(pending);
      this.#armSweep();
      answer.then(
        (value) => {
          if (!this.#pending.delete(pending)) return;
          if (observer !== undefined) this.#ended(observer, token, undefined);
          resolve(value);
        },
        (cause: unknown) => {
          if (!this.#pending.delete(pending)) return;
          reject(this.#failed(operation, storeFailure(operation, cause), false, observer, token));
        },
      );
    });
  }

  /** Reports a failed call (the `storeError` event, the observer's `end`); answers its error. */
  #failed(
    operation: StoreOperation,
    error: SessionError,
    timedOut: boolean,
    observer: StoreCallObserver | undefined,
    token: unknown,
  ): SessionError {
    const failure: StoreFailure = { operation, store: this.#store, error, timedOut };
    this.#events.emit('storeError', failure);
    if (observer !== undefined) this.#ended(observer, token, failure);
    return error;
  }

  #ended(observer: StoreCallObserver, token: unknown, failure: StoreFailure | undefined): void {
    try {
      observer.end(token, failure);
    } catch {
      // As in #observed: the observer's trouble is not the request's.
    }
  }

  /**
   * One timer serves every call in flight, instead of a timer per call: it wakes a few times per
   * timeout period while calls are pending and stops when none are.
   */
  #armSweep(): void {
    if (this.#sweep !== undefined) return;
    const period = Math.max(5, Math.min(250, this.#timeout / 5));
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const pending of this.#pending) {
        if (pending.deadline > now) continue;
        this.#pending.delete(pending);
        const { operation, observer, token } = pending;
        const error = new SessionError(
          'STORE_UNAVAILABLE',
          `store ${operation} did not answer within ${this.#timeout} ms`,
        );
        pending.reject(this.#failed(operation, error, true, observer, token));
      }
      if (this.#pending.size === 0) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
    }, period);
    this.#sweep.unref?.();
  }
}
