/**
 * Memory measurements, one per fresh process (forked by the harness with `--expose-gc` and the
 * mode in `BENCH_MEMORY`): the heap a store needs per session for many sessions of the same small
 * payload, and whether Tessera's memory store stays bounded under a flood of new sessions.
 *
 * Memory is measured with `process.memoryUsage()` (`heapUsed` plus `arrayBuffers`) after forced
 * collections, before and after filling the store, with the store kept reachable; the difference
 * divided by the number of sessions is the cost of one session, its key included.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { SessionManager } from '../../src/manager.js';
import { SESSION_KEYS } from './apps.js';
import { ExpressSession, loadCore } from './modules.js';

const require = createRequire(import.meta.url);
const SECRET = 'bench-memory-secret-that-is-at-least-32-bytes';

/** What a memory measurement answers. */
export interface MemoryResult {
  mode: string;
  sessions: number;
  /** Sessions the store holds at the end. */
  held: number;
  /** `heapUsed` after forced collections, before the sessions were made. */
  heapBefore: number;
  /** `heapUsed` after forced collections, with the store alive. */
  heapAfter: number;
  rssAfter: number;
  /** Heap growth divided by the sessions held. */
  bytesPerSession: number;
  seconds: number;
}

/** The modes, as `BENCH_MEMORY` names them. */
export type MemoryMode =
  | 'tessera'
  | 'tessera-peer-payload'
  | 'tessera-request-meta'
  | 'express-session'
  | 'memorystore'
  | 'fastify-session'
  | 'tessera-flood';

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) collect();
}

/**
 * The heap in use plus the memory of ArrayBuffers, whose contents V8 keeps outside its heap: a
 * store that keeps its tables in typed arrays is charged for them like one that keeps objects.
 */
function heap(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/** An express-session style ID: 24 random bytes, base64url (what uid-safe makes). */
function sid(): string {
  return randomBytes(24).toString('base64url');
}

function callback(resolve: () => void, reject: (error: unknown) => void) {
  return (error?: unknown) => (error === undefined || error === null ? resolve() : reject(error));
}

/**
 * How a measured session holds its user: bound with `setUser` (indexed, so "sign out everywhere"
 * can find it), or as a `userId` data key, the way express-session applications keep it.
 */
type UserForm = 'bound' | 'data-key';

async function fillTessera(
  manager: SessionManager,
  count: number,
  meta: boolean,
  user: UserForm = 'bound',
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const session = await manager.load(
      meta
        ? {
            cookie: undefined,
            ip: '203.0.113.17',
            userAgent:
              'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
          }
        : {},
    );
    if (user === 'bound') session.setUser(`user-${i}`);
    else session.set('userId', `user-${i}`);
    for (const [key, value] of Object.entries(SESSION_KEYS)) session.set(key, value);
    await manager.commit(session);
  }
}

/** Runs one measurement in this process. */
export async function measure(mode: MemoryMode, sessions: number): Promise<MemoryResult> {
  const started = performance.now();
  const { SessionManager, MemoryStore } = await loadCore();
  let held: () => number;
  let keep: unknown;
  let heapBefore: number;
  switch (mode) {
    case 'tessera':
    case 'tessera-peer-payload':
    case 'tessera-request-meta': {
      const store = new MemoryStore({ maxSessions: sessions + 10, sweepInterval: 0 });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      // Ten warm-up sessions first, so the measured difference holds no one-time allocations.
      await fillTessera(manager, 10, false);
      heapBefore = heap();
      await fillTessera(
        manager,
        sessions,
        mode === 'tessera-request-meta',
        mode === 'tessera-peer-payload' ? 'data-key' : 'bound',
      );
      held = () => store.size - 10;
      keep = manager;
      break;
    }
    case 'tessera-flood': {
      // A million cookieless requests that each write: the store must stay at its bound.
      const store = new MemoryStore({ maxSessions: 100_000, sweepInterval: 0 });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      heapBefore = heap();
      await fillTessera(manager, sessions, false);
      held = () => store.size;
      keep = manager;
      break;
    }
    case 'express-session':
    case 'memorystore': {
      const session = ExpressSession;
      const store =
        mode === 'express-session'
          ? (new session.MemoryStore() as {
              set(id: string, value: object, cb: (e?: unknown) => void): void;
              length(cb: (e: unknown, n: number) => void): void;
            })
          : (() => {
              const factory = require('memorystore') as (
                s: unknown,
              ) => new (options: object) => object;
              const Store = factory(session);
              return new Store({ checkPeriod: 0 }) as {
                set(id: string, value: object, cb: (e?: unknown) => void): void;
                length(cb: (e: unknown, n: number) => void): void;
              };
            })();
      heapBefore = heap();
      for (let i = 0; i < sessions; i++) {
        // The shape express-session hands its store: the cookie (serialized by its toJSON) and the data.
        const value = { cookie: new session.Cookie(), userId: `user-${i}`, ...SESSION_KEYS };
        await new Promise<void>((resolve, reject) =>
          store.set(sid(), value, callback(resolve, reject)),
        );
      }
      let count = 0;
      store.length((_error, n) => (count = n));
      await new Promise((resolve) => setImmediate(resolve));
      held = () => count;
      keep = store;
      break;
    }
    case 'fastify-session': {
      // @fastify/session keeps live Session objects in its store, so sessions are made the way
      // the plugin makes them: through requests (Fastify's inject, no sockets).
      const Fastify = (await import('fastify')).default;
      const cookie = require('@fastify/cookie') as object;
      const plugin = require('@fastify/session') as object & {
        MemoryStore: new () => { store: Map<string, unknown> };
      };
      const store = new plugin.MemoryStore();
      const app = Fastify({ logger: false });
      await app.register(cookie as never);
      await app.register(plugin as never, {
        secret: SECRET,
        cookieName: 'sid',
        cookie: { secure: false },
        store,
      });
      app.get<{ Querystring: { u: string } }>('/new', async (request) => {
        const session = (request as unknown as { session: { set(k: string, v: unknown): void } })
          .session;
        session.set('userId', `user-${request.query.u}`);
        for (const [key, value] of Object.entries(SESSION_KEYS)) session.set(key, value);
        return { ok: true };
      });
      await app.ready();
      for (let i = 0; i < 10; i++) await app.inject({ method: 'GET', url: `/new?u=w${i}` });
      heapBefore = heap();
      for (let i = 0; i < sessions; i++) await app.inject({ method: 'GET', url: `/new?u=${i}` });
      held = () => store.store.size - 10;
      keep = app;
      break;
    }
  }
  const heapAfter = heap();
  const count = held();
  const result: MemoryResult = {
    mode,
    sessions,
    held: count,
    heapBefore,
    heapAfter,
    rssAfter: process.memoryUsage().rss,
    // Per session held: after a flood, only the sessions still in the store occupy the heap.
    bytesPerSession: (heapAfter - heapBefore) / Math.max(1, count),
    seconds: (performance.now() - started) / 1000,
  };
  if (keep === undefined) throw new Error('nothing measured');
  return result;
}

if (process.env.BENCH_MEMORY !== undefined && process.send !== undefined) {
  const [mode, count] = process.env.BENCH_MEMORY.split(':') as [MemoryMode, string];
  measure(mode, Number(count)).then(
    (result) => process.send!({ type: 'memory', result }, () => process.exit(0)),
    (error: unknown) =>
      process.send!(
        {
          type: 'failed',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        },
        () => process.exit(1),
      ),
  );
}
