/**
 * Every store call the manager makes goes through {@link StoreCalls.call}: one way to fail
 * (`STORE_UNAVAILABLE`), and one bound on how long a call that answers a promise may take.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';
import type { MaybePromise } from './maybe.js';
import { isPromiseLike } from './maybe.js';

interface PendingCall {
  deadline: number;
  operation: string;
  reject: (error: SessionError) => void;
}

/** The error of a failed store call: the store's own `SessionError`, or `STORE_UNAVAILABLE`. */
function storeFailure(operation: string, cause: unknown): SessionError {
  return cause instanceof SessionError
    ? cause
    : new SessionError('STORE_UNAVAILABLE', `store ${operation} failed`, { cause });
}

/** Runs store calls within the store timeout. */
export class StoreCalls {
  readonly #timeout: number;
  readonly #pending = new Set<PendingCall>();
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(timeout: number) {
    this.#timeout = timeout;
  }

  /**
   * Runs one store call. A value (or a throw) is answered at once, since the store has already
   * answered; a promise is bounded by the timeout. Any failure becomes `STORE_UNAVAILABLE`.
   */
  call<T>(operation: string, run: () => T | PromiseLike<T>): MaybePromise<T> {
    let answer: T | PromiseLike<T>;
    try {
      answer = run();
    } catch (cause) {
      throw storeFailure(operation, cause);
    }
    return isPromiseLike(answer) ? this.#bounded(operation, answer) : answer;
  }

  #bounded<T>(operation: string, answer: PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCall = {
        deadline: performance.now() + this.#timeout,
        operation,
        reject,
      };
      this.#pending.add(pending);
      this.#armSweep();
      answer.then(
        (value) => {
          if (this.#pending.delete(pending)) resolve(value);
        },
        (cause: unknown) => {
          if (this.#pending.delete(pending)) reject(storeFailure(operation, cause));
        },
      );
    });
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
        pending.reject(
          new SessionError(
            'STORE_UNAVAILABLE',
            `store ${pending.operation} did not answer within ${this.#timeout} ms`,
          ),
        );
      }
      if (this.#pending.size === 0) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
    }, period);
    this.#sweep.unref?.();
  }
}
