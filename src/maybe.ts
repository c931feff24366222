/**
 * One idiom for work that may or may not wait. A step answers a value or a promise of one, and
 * the next step runs at once on a value: with the memory or SQLite store and `node:crypto`, which
 * answer values, a request never waits a turn of the event loop; other stores answer promises.
 *
 * @packageDocumentation
 */

/** A value, or a promise of one. `await` works on both. */
export type MaybePromise<T> = T | Promise<T>;

/** Whether an answer is a promise (or any thenable) rather than a value. */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/**
 * Calls `next` with the answer: at once for a value, once it settles for a promise. (Not named
 * `then`: a module exporting `then` is itself a thenable to a dynamic `import()`.)
 */
export function andThen<T, R>(
  value: T | PromiseLike<T>,
  next: (value: T) => MaybePromise<R>,
): MaybePromise<R> {
  return isPromiseLike(value) ? Promise.resolve(value).then(next) : next(value);
}

/** Runs `step` on each item in turn, waiting only where a step answers a promise. */
export function each<T, R>(
  items: readonly T[],
  step: (item: T) => MaybePromise<R>,
): MaybePromise<R[]> {
  const answers: R[] = [];
  const from = (start: number): MaybePromise<R[]> => {
    for (let i = start; i < items.length; i++) {
      const answer = step(items[i]!);
      if (isPromiseLike(answer)) {
        return Promise.resolve(answer).then((value) => {
          answers.push(value);
          return from(i + 1);
        });
      }
      answers.push(answer);
    }
    return answers;
  };
  return from(0);
}

/** Runs `work`, answering a synchronous throw as a rejected promise, so callers see one way to fail. */
export function settle<T>(work: () => MaybePromise<T>): MaybePromise<T> {
  try {
    return work();
  } catch (error) {
    return Promise.reject(error);
  }
}
