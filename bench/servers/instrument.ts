/**
 * Counting inside a server process: calls of the session store's methods, and round trips the
 * store's client sends to its server. Counting is a plain increment in a wrapper, cheap enough
 * not to move the CPU figures; the same wrappers are installed for Tessera and for its peers.
 *
 * @packageDocumentation
 */
import type { RunCounters } from '../protocol.js';

/** Running totals in this process. */
export class Counters {
  readonly storeCalls = new Map<string, number>();
  readonly roundTrips = new Map<string, number>();
  /** Requests received so far. */
  requests = 0;
  /** Whether the contender's store has a client whose round trips are counted. */
  hasClient = false;
  #mark:
    | {
        cpu: NodeJS.CpuUsage;
        requests: number;
        store: Map<string, number>;
        trips: Map<string, number>;
      }
    | undefined;

  storeCall(name: string): void {
    this.storeCalls.set(name, (this.storeCalls.get(name) ?? 0) + 1);
  }

  roundTrip(name: string): void {
    this.roundTrips.set(name, (this.roundTrips.get(name) ?? 0) + 1);
  }

  /** Starts a measured run. */
  begin(): void {
    this.#mark = {
      cpu: process.cpuUsage(),
      requests: this.requests,
      store: new Map(this.storeCalls),
      trips: new Map(this.roundTrips),
    };
  }

  /** Ends a measured run and answers what happened since {@link Counters.begin}. */
  end(): RunCounters {
    const cpu = process.cpuUsage(this.#mark?.cpu);
    const delta = (now: Map<string, number>, before: Map<string, number> | undefined) => {
      const out: Record<string, number> = {};
      for (const [name, count] of now) {
        const diff = count - (before?.get(name) ?? 0);
        if (diff > 0) out[name] = diff;
      }
      return out;
    };
    const result: RunCounters = {
      requests: this.requests - (this.#mark?.requests ?? 0),
      cpuMicros: cpu.user + cpu.system,
      systemMicros: cpu.system,
      storeCalls: delta(this.storeCalls, this.#mark?.store),
      roundTrips: this.hasClient ? delta(this.roundTrips, this.#mark?.trips) : null,
    };
    this.#mark = undefined;
    return result;
  }
}

type AnyFunction = (...args: any[]) => any;

/**
 * Replaces the named methods on `target` itself (not its prototype) with wrappers that count
 * each call under `prefix + name`, then call the original with `target` as `this`. Methods that
 * do not exist are left alone, so libraries that test for an optional method (`touch`) see the
 * same shape as before.
 */
export function countMethods(
  target: object,
  names: readonly string[],
  counters: Counters,
  prefix = '',
): void {
  const record = target as Record<string, unknown>;
  for (const name of names) {
    const original = record[name];
    if (typeof original !== 'function') continue;
    const call = original as AnyFunction;
    const label = prefix + name;
    record[name] = function counted(this: unknown, ...args: unknown[]) {
      counters.storeCall(label);
      return call.apply(target, args);
    };
  }
}

const patched = new WeakSet<object>();

/**
 * Wraps methods on a prototype (shared by every instance in this process), counting each call
 * as one round trip of the given kind. Patching a prototype twice is a no-op.
 */
export function countPrototype(
  proto: object,
  kinds: Record<string, string>,
  counters: Counters,
): void {
  if (patched.has(proto)) return;
  patched.add(proto);
  const record = proto as Record<string, unknown>;
  for (const [method, kind] of Object.entries(kinds)) {
    const original = record[method];
    if (typeof original !== 'function')
      throw new Error(`cannot count round trips: no method ${method}`);
    const call = original as AnyFunction;
    record[method] = function counted(this: unknown, ...args: unknown[]) {
      counters.roundTrip(kind);
      return call.apply(this, args);
    };
  }
  counters.hasClient = true;
}

/** The first object on `value`'s prototype chain that owns `method`. */
export function ownerOf(value: object, method: string): object {
  for (
    let proto: object | null = value;
    proto !== null;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    if (Object.prototype.hasOwnProperty.call(proto, method)) return proto;
  }
  throw new Error(`no ${method} on the prototype chain`);
}
