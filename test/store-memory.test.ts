import { describe, it, beforeEach, afterEach, expect } from 'vitest';
import { defineStoreConformance, randomStoreKey } from '../src/testing/index.js';
import { MemoryStore } from '../src/stores/memory.js';

defineStoreConformance({
  name: 'MemoryStore',
  createStore: (clock) => new MemoryStore({ now: clock.now, sweepInterval: 0 }),
  destroyStore: (store) => store.close?.(),
  runner: { describe, it, beforeEach, afterEach },
});

describe('MemoryStore limits', () => {
  const record = (data: string) => ({ data, expiresAt: Date.now() + 60_000, userId: null });

  it('evicts the least recently used session beyond maxSessions', async () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    const [a, b, c, d] = [randomStoreKey(), randomStoreKey(), randomStoreKey(), randomStoreKey()];
    await store.create(a, record('a'));
    await store.create(b, record('b'));
    await store.create(c, record('c'));
    await store.get(a);
    await store.create(d, record('d'));
    expect(store.size).toBe(3);
    expect(await store.get(b)).toBeNull();
    expect((await store.get(a))?.data).toBe('a');
    expect((await store.get(d))?.data).toBe('d');
  });

  it('stays bounded under a flood of creations', async () => {
    const store = new MemoryStore({ maxSessions: 1000, sweepInterval: 0 });
    for (let i = 0; i < 20_000; i++) await store.create(randomStoreKey(), record('x'));
    expect(store.size).toBe(1000);
  });

  it('sweeps expired sessions on prune', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now, sweepInterval: 0 });
    await store.create(randomStoreKey(), { data: 'x', expiresAt: now + 10, userId: 'u' });
    await store.create(randomStoreKey(), { data: 'y', expiresAt: now + 1000, userId: 'u' });
    now += 100;
    expect(await store.prune()).toBe(1);
    expect(store.size).toBe(1);
  });

  it('rejects a bad option with a typed error', () => {
    expect(() => new MemoryStore({ maxSessions: 0 })).toThrow(/maxSessions/);
  });
});
