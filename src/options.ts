/**
 * Option checks shared by the manager and every store, so that each option is refused the same
 * way: a `SessionError` with code `INVALID_OPTION` that names the owner and the option.
 *
 * @packageDocumentation
 */
import { SessionError } from './errors.js';

/** The longest delay, in milliseconds, that `setTimeout` and `setInterval` honour (2³¹ − 1). */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** The bounds a numeric option must respect. */
export interface NumberLimits {
  /** The smallest accepted value. @defaultValue 0 */
  min?: number;
  /** Whether `min` itself is refused (for options that must be positive). @defaultValue false */
  exclusiveMin?: boolean;
  /** The largest accepted value. @defaultValue `Number.MAX_SAFE_INTEGER` */
  max?: number;
  /** Whether only whole numbers are accepted. @defaultValue false */
  integer?: boolean;
}

/** Throws `INVALID_OPTION` with a message naming `owner` and the option. */
export function invalidOption(owner: string, message: string): never {
  throw new SessionError('INVALID_OPTION', `${owner}: ${message}`);
}

/**
 * Answers `value`, or `fallback` when it is `undefined`. Anything else that is not a finite
 * number within the limits (`NaN`, `Infinity`, a string, a negative count) is refused.
 *
 * @example
 * ```ts
 * const idle = numberOption('SessionManager', 'idleTimeout', options.idleTimeout, 1_800_000, {
 *   exclusiveMin: true,
 * });
 * ```
 */
export function numberOption(
  owner: string,
  name: string,
  value: unknown,
  fallback: number,
  limits: NumberLimits = {},
): number {
  if (value === undefined) return fallback;
  const min = limits.min ?? 0;
  const max = limits.max ?? Number.MAX_SAFE_INTEGER;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (limits.exclusiveMin === true ? value > min : value >= min) &&
    value <= max &&
    (limits.integer !== true || Number.isInteger(value));
  if (!ok) {
    const kind = limits.integer === true ? 'a whole number' : 'a finite number';
    const lower = limits.exclusiveMin === true ? `above ${min}` : `from ${min}`;
    const upper = max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`;
    invalidOption(owner, `${name} must be ${kind} ${lower}${upper} (got ${String(value)})`);
  }
  return value as number;
}

/** Answers `value`, or `fallback` when it is `undefined`; anything but a boolean is refused. */
export function booleanOption(
  owner: string,
  name: string,
  value: unknown,
  fallback: boolean,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') invalidOption(owner, `${name} must be true or false`);
  return value;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Answers `value`, or `Date.now` when it is `undefined`; anything but a function is refused. For
 * the `now` option of the manager and the stores: the clock, in epoch milliseconds, that tests
 * replace.
 */
export function clockOption(owner: string, value: unknown): () => number {
  if (value === undefined) return Date.now;
  if (typeof value !== 'function') {
    invalidOption(owner, 'now must be a function answering epoch milliseconds');
  }
  return value as () => number;
}
