/**
 * One idiom for work that may or may not wait. A step answers a value or a promise of one, and
 * the next step runs at once on a value: with the memory or SQLite store and `node:crypto`, which
 * answer values, a request never waits a turn of the event loop; other stores answer promises.
 *
 * Inside the manager an answer is a value or a native `Promise`: `instanceof Promise` tells them
 * apart without reading a `then` property from every value that passes (which, over values of
 * many shapes, takes V8's slowest property lookup). Answers from outside that may be any thenable
 * (a store's, an application handler's) are checked with {@link isPromiseLike} where they enter.
 *
 * @packageDocumentation
 */

/** A value, or a promise of one. `await` works on both. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Whether an answer from outside the manager is a promise or any other thenable rather than a
 * value. Inside, {@link andThen} and {@link each} need only `instanceof Promise`.
 */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  if (value instanceof Promise) return true;
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Calls `next` with the answer: at once for a value, once it settles for a promise. (Not named
 * `then`: a module exporting `then` is itself a thenable to a dynamic `import()`.)
 */
export function andThen<T, R>(
  value: MaybePromise<T>,
  next: (value: T) => MaybePromise<R>,
): MaybePromise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Runs `step` on each item in turn, waiting only where a step answers a promise. */
export function each<T, R>(
  items: readonly T[],
  step: (item: T) => MaybePromise<R>,
): MaybePromise<R[]> {
  const answers: R[] = [];
  for (let i = 0; i < items.length; i++) {
    const answer = step(items[i]!);
    if (answer instanceof Promise) return eachAfter(items, step, answers, i, answer);
    answers.push(answer);
  }
  return answers;
}

/** The rest of {@link each} from the first step that answered a promise. */
async function eachAfter<T, R>(
  items: readonly T[],
  step: (item: T) => MaybePromise<R>,
  answers: R[],
  from: number,
  pending: Promise<R>,
): Promise<R[]> {
  answers.push(await pending);
  for (let i = from + 1; i < items.length; i++) answers.push(await step(items[i]!));
  return answers;
}

/** Runs `work`, answering a synchronous throw as a rejected promise, so callers see one way to fail. */
export function settle<T>(work: () => MaybePromise<T>): MaybePromise<T> {
  try {
    return work();
  } catch (error) {
    return Promise.reject(error);
  }
}
