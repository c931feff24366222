/**
 * Property tests of session data through the public API: `set`, `commit`, then a later `load`
 * with the cookie, on the memory store with an injected clock.
 *
 * The contract: JSON values come back exactly; keys named like methods or like `__proto__`
 * never change behaviour or pollute `Object.prototype`; a value that is not JSON fails `commit`
 * with `SessionError` `INVALID_DATA` rather than crashing or being stored changed.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionError, SessionManager } from '../../src/index.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { FakeClock, SECRET, cookiePair, rawIdOf, sha256 } from '../support/fixtures.js';

const SEED = 20_261_203;

/** A manager on its own memory store and clock. */
function setup(maxDataBytes?: number) {
  const clock = new FakeClock();
  const store = new MemoryStore({ now: clock.now, sweepInterval: 0 });
  const manager = new SessionManager({ store, secrets: [SECRET], now: clock.now, maxDataBytes });
  return { clock, store, manager };
}

/** Stores `data` in a new session; answers its cookie. */
async function stored(manager: SessionManager, data: [string, unknown][]): Promise<string> {
  const session = await manager.load({});
  for (const [key, value] of data) session.set(key, value);
  const { setCookie } = await manager.commit(session);
  return cookiePair(setCookie);
}

/** `value` as JSON reads it back: -0 is 0, since JSON has no negative zero. */
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      Object.defineProperty(out, key, {
        value: withoutNegativeZero(inner),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/** What a `SessionError` rejection carries, or the error itself when it is something else. */
async function failureOf(promise: unknown): Promise<string | unknown> {
  try {
    await promise;
  } catch (error) {
    return error instanceof SessionError ? error.code : error;
  }
  return 'resolved';
}

const METHOD_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
  'toJSON',
  'save',
  'regenerate',
  'destroy',
  'reload',
  'login',
  'get',
  'set',
  'keys',
  'delete',
  'clear',
];

/** Top-level keys: the names above and arbitrary text, the empty string included. */
const key = fc.oneof(
  fc.constantFrom(...METHOD_NAMES),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** JSON values with object keys drawn from the method names too. */
const json = fc.oneof(
  fc.jsonValue(),
  fc.jsonValue({ stringUnit: 'binary' }),
  fc.dictionary(fc.constantFrom(...METHOD_NAMES), fc.jsonValue(), { maxKeys: 4 }),
);

/** The own property names of `Object.prototype` and their values, to see that none changes. */
function prototypeSnapshot(): [string | symbol, unknown][] {
  return Reflect.ownKeys(Object.prototype).map((name) => [
    name,
    Object.getOwnPropertyDescriptor(Object.prototype, name)!.value,
  ]);
}

let before: ReturnType<typeof prototypeSnapshot>;
beforeAll(() => {
  before = prototypeSnapshot();
});
afterAll(() => {
  // Every test of this file, taken together, left Object.prototype as it was.
  expect(prototypeSnapshot()).toEqual(before);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

describe('JSON values round-trip exactly', () => {
  it('through commit and a later load, under any key (1,000 runs)', async () => {
    const { manager } = setup();
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(key, json), { selector: ([k]) => k, maxLength: 5 }),
        async (entries) => {
          fc.pre(entries.length > 0);
          const cookie = await stored(manager, entries);
          const again = await manager.load({ cookie });
          expect(again.isNew).toBe(false);
          expect(again.keys().sort()).toEqual(entries.map(([k]) => k).sort());
          for (const [k, value] of entries) {
            expect(again.has(k)).toBe(true);
            expect(JSON.stringify(again.get(k))).toBe(JSON.stringify(value));
            expect(again.get(k)).toEqual(withoutNegativeZero(value));
          }
          expect(Object.getPrototypeOf(again.toJSON())).toBe(Object.prototype);
        },
      ),
      { numRuns: 1_000, seed: SEED },
    );
  });

  it('through a second save that changes another key, and one that changes a value in place (500 runs)', async () => {
    const { manager } = setup();
    await fc.assert(
      fc.asyncProperty(key, json, key, json, async (k1, v1, k2, v2) => {
        fc.pre(k1 !== k2);
        const cookie = await stored(manager, [[k1, v1]]);
        const second = await manager.load({ cookie });
        second.set(k2, v2);
        await manager.commit(second);
        // A change in place to an object read with get is saved too.
        const third = await manager.load({ cookie });
        const box = third.get(k2);
        if (typeof box === 'object' && box !== null && !Array.isArray(box)) {
          (box as Record<string, unknown>).added = v1;
        }
        await manager.commit(third);
        const last = await manager.load({ cookie });
        expect(JSON.stringify(last.get(k1))).toBe(JSON.stringify(v1));
        expect(JSON.stringify(last.get(k2))).toBe(JSON.stringify(box));
      }),
      { numRuns: 500, seed: SEED },
    );
  });

  it('through two concurrent saves that merge (the rebase path), under method-like keys (300 runs)', async () => {
    const { manager } = setup();
    await fc.assert(
      fc.asyncProperty(key, json, key, json, async (k1, v1, k2, v2) => {
        fc.pre(k1 !== k2);
        const cookie = await stored(manager, [['base', 1]]);
        const first = await manager.load({ cookie });
        const second = await manager.load({ cookie });
        first.set(k1, v1);
        second.set(k2, v2);
        await manager.commit(first);
        await manager.commit(second);
        const merged = await manager.load({ cookie });
        expect(merged.get('base' as string)).toBe(1);
        expect(JSON.stringify(merged.get(k1))).toBe(JSON.stringify(v1));
        expect(JSON.stringify(merged.get(k2))).toBe(JSON.stringify(v2));
      }),
      { numRuns: 300, seed: SEED },
    );
  });

  it('nested 1,000 deep in any mix of arrays and objects, read with get and changed in place (20 runs)', async () => {
    const { manager } = setup();
    const path = fc.array(
      fc.oneof(fc.constant(null), fc.constantFrom(...METHOD_NAMES), fc.string({ maxLength: 3 })),
      {
        minLength: 1_000,
        maxLength: 1_000,
      },
    );
    await fc.assert(
      fc.asyncProperty(path, fc.jsonValue({ maxDepth: 2 }), async (steps, leaf) => {
        let value: unknown = leaf;
        for (const step of steps) {
          if (step === null) value = [value];
          else {
            const wrapper: Record<string, unknown> = {};
            Object.defineProperty(wrapper, step, {
              value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
            value = wrapper;
          }
        }
        const cookie = await stored(manager, [['deep', value]]);
        const again = await manager.load({ cookie });
        const read = again.get('deep');
        expect(JSON.stringify(read)).toBe(JSON.stringify(value));
        (read as Record<string, unknown>).touched = true;
        await manager.commit(again);
        const last = await manager.load({ cookie });
        expect(JSON.stringify(last.get('deep'))).toBe(JSON.stringify(read));
      }),
      { numRuns: 20, seed: SEED },
    );
  });
});

describe('keys named like methods', () => {
  it.each(METHOD_NAMES)(
    '%s: stored as data, never overriding a method or polluting a prototype',
    async (name) => {
      const { manager } = setup();
      const hostile = JSON.parse(
        '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
      );
      const cookie = await stored(manager, [
        [name, hostile],
        ['other', 1],
      ]);
      const session = await manager.load({ cookie });
      expect(session.get(name)).toEqual(hostile);
      expect(session.keys()).toContain(name);
      for (const method of [
        'get',
        'set',
        'save',
        'regenerate',
        'destroy',
        'reload',
        'toJSON',
        'keys',
      ] as const) {
        expect(session[method]).toBe(Session.prototype[method]);
      }
      expect(Object.getPrototypeOf(session.toJSON())).toBe(Object.prototype);
      expect(Object.hasOwn(session.toJSON(), name)).toBe(true);
      // The session's methods still work, and carry the key along.
      session.set('more', 2);
      await session.save();
      await session.regenerate({ keep: [name, 'more'] });
      const moved = cookiePair((await manager.commit(session)).setCookie);
      const after = await manager.load({ cookie: moved });
      expect(after.get(name)).toEqual(hostile);
      expect(after.get('more')).toBe(2);
      expect(after.has('other')).toBe(false);
      await after.destroy();
      await manager.commit(after);
      expect((await manager.load({ cookie: moved })).isNew).toBe(true);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
    },
  );

  it('an inherited name that was never set is not data', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    for (const name of METHOD_NAMES) {
      expect(session.get(name)).toBeUndefined();
      expect(session.has(name)).toBe(false);
    }
    expect(session.keys()).toEqual([]);
  });
});

describe('large values near maxDataBytes', () => {
  const LIMIT = 4_096;
  /** Text of one-, two-, three- and four-byte UTF-8 characters around the limit's size. */
  const text = fc.oneof(
    fc.string({ minLength: 1_300, maxLength: 4_200, size: 'max' }),
    fc.string({
      unit: fc.constantFrom('é', '界', '\u{1F511}', 'a', '"', '\\', '\n'),
      minLength: 500,
      maxLength: 2_200,
      size: 'max',
    }),
  );

  it('refuses a session one byte over the limit with DATA_TOO_LARGE and stores one exactly at it (300 runs)', async () => {
    // The encoded size is learnt from a manager without a tight limit, on the same clock.
    const measure = setup();
    await fc.assert(
      fc.asyncProperty(text, async (value) => {
        const cookie = await stored(measure.manager, [['v', value]]);
        const record = await measure.store.get(sha256(rawIdOf(cookie)));
        const bytes = Buffer.byteLength(record!.data);
        const exact = setup(bytes);
        const fits = await stored(exact.manager, [['v', value]]);
        expect((await exact.manager.load({ cookie: fits })).get('v')).toBe(value);
        const over = setup(bytes - 1);
        const session = await over.manager.load({});
        session.set('v', value);
        expect(await failureOf(over.manager.commit(session))).toBe('DATA_TOO_LARGE');
        expect(over.store.size).toBe(0);
      }),
      { numRuns: 300, seed: SEED },
    );
  });

  it('keeps the stored session as it was when an update is refused as too large (200 runs)', async () => {
    const { manager } = setup(LIMIT);
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 100 }), text, async (small, big) => {
        fc.pre(Buffer.byteLength(JSON.stringify(big)) > LIMIT);
        const cookie = await stored(manager, [['small', small]]);
        const session = await manager.load({ cookie });
        session.set('big', big);
        expect(await failureOf(manager.commit(session))).toBe('DATA_TOO_LARGE');
        const again = await manager.load({ cookie });
        expect(again.get('small')).toBe(small);
        expect(again.has('big')).toBe(false);
      }),
      { numRuns: 200, seed: SEED },
    );
  });
});

/** Commits `value` under `v` in a new session; answers the failure code, or what a load reads back. */
async function commitNew(value: unknown): Promise<{ failure: unknown; readBack?: unknown }> {
  const { manager } = setup();
  const session = await manager.load({});
  session.set('v', value);
  try {
    const { setCookie } = await manager.commit(session);
    const again = await manager.load({ cookie: cookiePair(setCookie) });
    return { failure: 'resolved', readBack: again.has('v') ? again.get('v') : '(absent)' };
  } catch (error) {
    return { failure: error instanceof SessionError ? error.code : error };
  }
}

/** Commits a change made in place to an object of a stored session. */
async function commitInPlace(change: (box: Record<string, unknown>) => void): Promise<unknown> {
  const { manager } = setup();
  const cookie = await stored(manager, [['box', { a: 1 }]]);
  const session = await manager.load({ cookie });
  change(session.get('box') as Record<string, unknown>);
  const failure = await failureOf(manager.commit(session));
  // Whatever happened, the stored session is as it was.
  expect((await manager.load({ cookie })).get('box')).toEqual({ a: 1 });
  return failure;
}

function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

function deeplyNested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe('values that are not JSON', () => {
  it('a BigInt fails commit with INVALID_DATA, and stores nothing', async () => {
    expect(await commitNew(10n)).toEqual({ failure: 'INVALID_DATA' });
    expect(await commitNew({ nested: [1n] })).toEqual({ failure: 'INVALID_DATA' });
  });

  it('a cycle fails commit with INVALID_DATA', async () => {
    expect(await commitNew(cyclic())).toEqual({ failure: 'INVALID_DATA' });
  });

  it('nesting deeper than the stack (100,000) fails commit with INVALID_DATA', async () => {
    expect(await commitNew(deeplyNested(100_000))).toEqual({ failure: 'INVALID_DATA' });
  });

  it('a BigInt or a cycle set into a stored session fails commit with INVALID_DATA and keeps the stored data', async () => {
    const { manager } = setup();
    const cookie = await stored(manager, [['kept', 'yes']]);
    for (const bad of [10n, cyclic()]) {
      const session = await manager.load({ cookie });
      session.set('bad', bad);
      expect(await failureOf(manager.commit(session))).toBe('INVALID_DATA');
      const again = await manager.load({ cookie });
      expect(again.get('kept')).toBe('yes');
      expect(again.has('bad')).toBe(false);
    }
  });

  // Accepted conversions: what JSON itself does to these, documented rather than refused.
  it('accepted: a Date is stored as its ISO string (its toJSON), as with any object that has toJSON', async () => {
    expect(await commitNew(new Date(0))).toEqual({
      failure: 'resolved',
      readBack: '1970-01-01T00:00:00.000Z',
    });
    expect(await commitNew({ toJSON: () => 'as JSON' })).toEqual({
      failure: 'resolved',
      readBack: 'as JSON',
    });
  });

  it('accepted: -0 is stored as 0 (JSON has no negative zero; the two compare equal)', async () => {
    expect(await commitNew(-0)).toEqual({ failure: 'resolved', readBack: 0 });
  });

  it('accepted: an object property holding undefined is absent, as set(key, undefined) deletes a key', async () => {
    expect(await commitNew({ gone: undefined, kept: 1 })).toEqual({
      failure: 'resolved',
      readBack: { kept: 1 },
    });
  });

  it('a function fails commit with INVALID_DATA', async () => {
    expect(await commitNew(() => 1)).toEqual({ failure: 'INVALID_DATA' });
  });

  it('a function inside an object fails commit', async () => {
    expect(await commitNew({ f: () => 1, x: 1 })).toEqual({ failure: 'INVALID_DATA' });
  });

  it('a symbol fails commit with INVALID_DATA', async () => {
    expect(await commitNew(Symbol('s'))).toEqual({ failure: 'INVALID_DATA' });
  });

  it('NaN and Infinity fail commit with INVALID_DATA', async () => {
    expect(await commitNew(Number.NaN)).toEqual({ failure: 'INVALID_DATA' });
    expect(await commitNew([Infinity])).toEqual({ failure: 'INVALID_DATA' });
  });

  it('undefined or a hole in an array fails commit with INVALID_DATA', async () => {
    expect(await commitNew([1, undefined, 2])).toEqual({ failure: 'INVALID_DATA' });
    // eslint-disable-next-line no-sparse-arrays
    expect(await commitNew([1, , 3])).toEqual({ failure: 'INVALID_DATA' });
  });

  it('a Map, a Set, a typed array, a RegExp, an Error or a class instance fails commit', async () => {
    class Point {
      constructor(readonly x: number) {}
      get double(): number {
        return this.x * 2;
      }
    }
    for (const value of [
      new Map([[1, 2]]),
      new Set([1]),
      new Uint8Array([1, 2]),
      /x/,
      new Error('e'),
      new Point(1),
    ]) {
      expect(await commitNew(value)).toEqual({ failure: 'INVALID_DATA' });
    }
  });

  it('get of an object holding a BigInt does not throw', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    session.set('v', { b: 1n });
    expect(() => session.get('v')).not.toThrow();
    expect(await failureOf(manager.commit(session))).toBe('INVALID_DATA');
  });

  it('get of a cyclic object does not throw', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    session.set('v', cyclic());
    expect(() => session.get('v')).not.toThrow();
    expect(await failureOf(manager.commit(session))).toBe('INVALID_DATA');
  });

  it('get of an object nested deeper than the stack does not throw', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    session.set('v', deeplyNested(100_000));
    expect(() => session.get('v')).not.toThrow();
    expect(await failureOf(manager.commit(session))).toBe('INVALID_DATA');
  });

  it('a BigInt put in place into a stored object fails commit with INVALID_DATA', async () => {
    expect(await commitInPlace((box) => (box.b = 1n))).toBe('INVALID_DATA');
  });

  it('a cycle put in place into a stored object fails commit with INVALID_DATA', async () => {
    expect(await commitInPlace((box) => (box.self = box))).toBe('INVALID_DATA');
  });
});
