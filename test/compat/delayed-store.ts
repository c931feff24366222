import { MemoryStore } from '../../src/compat/express-session/index.js';
import type { SessionData } from '../../src/compat/express-session/index.js';

type Method = 'get' | 'set' | 'destroy';
type Answer = (...args: unknown[]) => void;

/**
 * The drop-in's real MemoryStore behind latency the test opens by hand, as a remote store's:
 * a held method's calls either reach the store at once and their answer waits (`'answer'`, a slow
 * reply: a read sees the data of the moment it was asked), or reach the store only when let go
 * (`'call'`, a write that lands late). It has no `touch`, so the middleware only saves.
 */
export class DelayedStore {
  readonly inner = new MemoryStore({ sweepInterval: 0 });
  readonly #holds = new Map<Method, 'answer' | 'call'>();
  #gate: { promise: Promise<void>; open: () => void } | undefined;
  readonly #arrivals = new Map<Method, (() => void)[]>();

  /** Holds the calls of `method` from now on, until {@link DelayedStore.release}. */
  hold(method: Method, how: 'answer' | 'call'): void {
    this.#holds.set(method, how);
    if (this.#gate === undefined) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      this.#gate = { promise, open };
    }
  }

  /** Lets every held call and answer go, in the order they were held, and holds nothing more. */
  release(): void {
    this.#holds.clear();
    this.#gate?.open();
    this.#gate = undefined;
  }

  /** Resolves when the next call of `method` arrives. */
  arrival(method: Method): Promise<void> {
    return new Promise((resolve) => {
      const list = this.#arrivals.get(method) ?? [];
      list.push(resolve);
      this.#arrivals.set(method, list);
    });
  }

  get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.#run('get', (answer) => this.inner.get(sid, answer), callback as Answer);
  }

  set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
    // Copied now: what a remote store would have been sent at this moment.
    const sent = JSON.parse(JSON.stringify(session)) as SessionData;
    this.#run('set', (answer) => this.inner.set(sid, sent, answer), callback as Answer);
  }

  destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.#run('destroy', (answer) => this.inner.destroy(sid, answer), callback as Answer);
  }

  #run(method: Method, call: (answer: Answer) => void, callback: Answer | undefined): void {
    for (const resolve of this.#arrivals.get(method)?.splice(0) ?? []) resolve();
    const answer: Answer = (...args) => callback?.(...args);
    const how = this.#holds.get(method);
    const gate = this.#gate;
    if (how === undefined || gate === undefined) call(answer);
    else if (how === 'call') void gate.promise.then(() => call(answer));
    else call((...args) => void gate.promise.then(() => answer(...args)));
  }
}
