/**
 * The bookkeeping of a session's data object: writing a key safely, recording which keys a
 * request changed, snapshots of the objects it read, and the reserved key of the CSRF secret.
 *
 * @packageDocumentation
 */
import type { SessionState } from './session.js';

/** The data key of the token secret (`csrf-token.ts`), hidden from reads. @internal */
export const CSRF_SECRET_KEY = 'tessera:csrf';

/**
 * Drops the token secret: a session that moves to a new ID gets a new one when next asked.
 * @internal
 */
export function dropCsrfSecret(state: SessionState): void {
  if (Object.hasOwn(state.data, CSRF_SECRET_KEY)) {
    delete state.data[CSRF_SECRET_KEY];
    markChanged(state, CSRF_SECRET_KEY);
  }
}

/**
 * Stores a data key. Session data lives in plain objects, which engines keep faster than
 * prototype-less ones; a key named `__proto__` is defined rather than assigned, so that it stays
 * an ordinary key instead of replacing the object's prototype. @internal
 */
export function writeData(data: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(data, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  } else data[key] = value;
}

/** Records that this request set or deleted `key`. @internal */
export function markChanged(state: SessionState, key: string): void {
  // A session not stored yet is created with all its data: its changed keys are not needed.
  if (state.stored) (state.changed ??= new Set()).add(key);
  state.watched?.delete(key);
}

/**
 * The JSON of a value read with `get`, to find changes made in place. A value JSON cannot hold
 * (a BigInt, a cycle) gets a snapshot that matches nothing, so the key counts as changed and the
 * save refuses it with `INVALID_DATA`. @internal
 */
export function snapshotOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '\u0000not JSON';
  }
}
