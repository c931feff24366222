/**
 * What every adapter test shares: how a test file starts its server, the store that fails or
 * waits on demand, the streamed body, and one request over real HTTP with what the suites look
 * at in its answer.
 */
import type { SessionManager, SessionManagerOptions } from '../../src/manager.js';
import type {
  SessionRecord,
  SessionStore,
  StoredRecord,
  UpdateResult,
  UserRecord,
} from '../../src/store.js';
import { MemoryStore } from '../../src/stores/memory.js';

/** A running server for one adapter. */
export interface RunningServer {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  close(): Promise<void>;
}

/** How the suite starts an adapter. */
export interface AdapterHarness {
  /** The framework's name, for test titles. */
  name: string;
  /** Starts a server implementing the route table with the given manager, on an ephemeral port. */
  start(manager: SessionManager): Promise<RunningServer>;
  /** Whether sessions created through this adapter record the client's address. @defaultValue true */
  knowsClientIp?: boolean;
  /** Options given to every manager of the suite (a crypto provider, say). */
  managerOptions?: Partial<SessionManagerOptions>;
}

/** The body of `POST /stream`, in the order its chunks are written. */
export const STREAM_CHUNKS = ['chunk one\n', 'chunk two\n', 'chunk three\n'];

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The stream body as Node chunks, one event-loop turn apart. */
export async function* nodeChunks(): AsyncGenerator<Buffer> {
  for (const chunk of STREAM_CHUNKS) {
    await turn();
    yield Buffer.from(chunk);
  }
}

/** The stream body as a Web `ReadableStream`, one event-loop turn apart. */
export function webChunks(): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let next = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      await turn();
      const chunk = STREAM_CHUNKS[next++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(encoder.encode(chunk));
    },
  });
}

type Method = 'get' | 'create' | 'update' | 'touch' | 'delete' | 'listByUser' | 'deleteByUser';

/**
 * A MemoryStore whose methods can be made to fail (an outage) or to wait at a gate (to order a
 * race deterministically).
 */
export class FlakyStore implements SessionStore {
  readonly inner: MemoryStore;
  /** Methods that reject as if the server were down. */
  readonly failing = new Set<Method>();
  readonly #gates = new Map<Method, { reached: () => void; released: Promise<void> }>();

  /**
   * Reads, saves and new sessions, counted by how they were answered: with a promise, or at once
   * (when made `synchronous`, `get`, `update` and `create` answer values, and throw when failing).
   */
  readonly reads = { promised: 0, atOnce: 0 };
  readonly saves = { promised: 0, atOnce: 0 };
  readonly creates = { promised: 0, atOnce: 0 };
  readonly #synchronous: boolean;

  constructor(now: () => number, options: { synchronous?: boolean } = {}) {
    this.inner = new MemoryStore({ now, sweepInterval: 0 });
    this.#synchronous = options.synchronous === true;
  }

  /**
   * Makes the next call of `method` wait. Answers a promise that settles when the call arrives,
   * and the function that lets it through.
   */
  hold(method: Method): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const arrived = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.#gates.set(method, { reached, released });
    return { reached: arrived, release };
  }

  async #enter(method: Method): Promise<void> {
    const gate = this.#gates.get(method);
    if (gate !== undefined) {
      this.#gates.delete(method);
      gate.reached();
      await gate.released;
    }
    if (this.failing.has(method)) throw new Error(`simulated outage in ${method}`);
  }

  /** Answers at once when made `synchronous`, else through a promise that may wait at a gate. */
  #answer<T>(
    method: Method,
    counts: { promised: number; atOnce: number },
    run: () => T,
  ): T | Promise<T> {
    if (this.#synchronous) {
      counts.atOnce++;
      if (this.failing.has(method)) throw new Error(`simulated outage in ${method}`);
      return run();
    }
    counts.promised++;
    return this.#enter(method).then(run);
  }

  get(key: string): StoredRecord | null | Promise<StoredRecord | null> {
    return this.#answer('get', this.reads, () => this.inner.get(key));
  }
  create(key: string, record: SessionRecord): boolean | Promise<boolean> {
    return this.#answer('create', this.creates, () => this.inner.create(key, record));
  }
  update(
    key: string,
    record: SessionRecord,
    expectedVersion: number,
  ): UpdateResult | Promise<UpdateResult> {
    return this.#answer('update', this.saves, () =>
      this.inner.update(key, record, expectedVersion),
    );
  }
  async touch(key: string, expiresAt: number): Promise<boolean> {
    await this.#enter('touch');
    return this.inner.touch(key, expiresAt);
  }
  async delete(key: string): Promise<void> {
    await this.#enter('delete');
    return this.inner.delete(key);
  }
  async listByUser(userId: string): Promise<UserRecord[]> {
    await this.#enter('listByUser');
    return this.inner.listByUser(userId);
  }
  async deleteByUser(userId: string, exceptKey?: string): Promise<number> {
    await this.#enter('deleteByUser');
    return this.inner.deleteByUser(userId, exceptKey);
  }
}

/** A secret of 32+ bytes, for tests only. */
export const TEST_SECRET = 'adapter-suite-secret-0123456789-abcdefghijklmnop';

/** One answer, with what the suite looks at. */
export interface Answer {
  status: number;
  body: string;
  json: any;
  setCookies: string[];
  headers: Headers;
}

/** Sends one request over real HTTP; `cookie` is the value of the `sid` cookie to send. */
export async function send(
  method: string,
  url: string,
  options: { cookie?: string | undefined; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie !== undefined) headers.cookie = `sid=${options.cookie}`;
  const response = await fetch(url, { method, headers });
  const body = await response.text();
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return {
    status: response.status,
    body,
    json,
    setCookies: response.headers.getSetCookie(),
    headers: response.headers,
  };
}

/** The value of the named cookie in a Set-Cookie line, or undefined. */
export function cookieValue(setCookie: string, name = 'sid'): string | undefined {
  const pair = setCookie.split(';', 1)[0]!;
  const equals = pair.indexOf('=');
  return pair.slice(0, equals) === name ? pair.slice(equals + 1) : undefined;
}

/** The attributes of a Set-Cookie line, lower-cased names. */
export function cookieAttributes(setCookie: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const part of setCookie.split(';').slice(1)) {
    const [name, ...rest] = part.trim().split('=');
    attributes.set(name!.toLowerCase(), rest.join('='));
  }
  return attributes;
}
