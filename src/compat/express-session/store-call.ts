/**
 * Calling an express-session store: one answer per call, whichever way the store gives it, and a
 * deadline.
 *
 * @packageDocumentation
 */
import { SessionError } from '../../errors.js';

/** A store method's callback. @internal */
export type StoreAnswer = (err?: any, value?: any) => void;

/**
 * Calls `target[method](...args, callback)` and answers once: through the callback, the promise
 * the method returns (stores such as connect-redis return one), or a synchronous throw. After the
 * answer, a throw or a rejection is the caller's own error and is left to propagate.
 * @internal
 */
export function callStore(
  target: object,
  method: string,
  args: readonly unknown[],
  answer: StoreAnswer,
): void {
  let done = false;
  const finish: StoreAnswer = (err, value) => {
    if (done) return;
    done = true;
    answer(err, value);
  };
  try {
    const fn = (target as Record<string, (...a: unknown[]) => unknown>)[method]!;
    const result = fn.apply(target, [...args, finish]) as Promise<unknown> | undefined;
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      result.then(undefined, (error: unknown) => {
        if (done) throw error;
        finish(error);
      });
    }
  } catch (error) {
    if (done) throw error;
    finish(error);
  }
}

/**
 * `answer` with a deadline: called once, with the store's answer or, when `timeout` ms pass first
 * (`0` never), with a `STORE_UNAVAILABLE` error. `late()` tells whether the deadline passed.
 * @internal
 */
export function withDeadline(
  timeout: number,
  method: string,
  answer: StoreAnswer,
): { reply: StoreAnswer; late: () => boolean } {
  let done = false;
  let late = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reply: StoreAnswer = (err, value) => {
    if (done) return;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    answer(err, value);
  };
  if (timeout > 0 && Number.isFinite(timeout)) {
    timer = setTimeout(() => {
      late = true;
      reply(
        new SessionError(
          'STORE_UNAVAILABLE',
          `the session store did not answer ${method}() within ${timeout} ms`,
        ),
      );
    }, timeout);
    timer.unref?.();
  }
  return { reply, late: () => late };
}
