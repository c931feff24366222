/**
 * A loopback TCP relay in front of a store's server that injects network faults on demand:
 * refused connections, a partition that holds every byte, added latency, and connections reset
 * in the middle of an answer. It also counts round trips (a client→server burst that follows an
 * answer) so that the cost of a read can be seen on the wire.
 *
 * It listens on 127.0.0.1 only and connects only to the target it was given.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** One direction of one relayed connection: chunks wait here while latency or a partition holds them. */
class Lane {
  readonly #to: Socket;
  readonly #queue: { due: number; sent: number; chunk: Buffer }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(to: Socket) {
    this.#to = to;
  }

  /** Sends `chunk` after `delay` ms (`Infinity`: until {@link Lane.release}), keeping the order. */
  push(chunk: Buffer, delay: number): void {
    if (delay === 0 && this.#queue.length === 0) {
      this.#to.write(chunk);
      return;
    }
    const now = performance.now();
    this.#queue.push({ due: now + delay, sent: now, chunk });
    this.#schedule();
  }

  /**
   * A partition heals: held chunks go at the sender's next retransmission, as TCP delivers them.
   * A sender retransmits its first unacknowledged segment `rto` ms after sending it, then after
   * twice as long each time (exponential backoff), so what waited longest may wait some more
   * once the network is back.
   */
  release(rto: number): void {
    const now = performance.now();
    const first = this.#queue.find((item) => item.due === Infinity);
    if (first === undefined) return;
    let retransmit = first.sent + rto;
    for (let wait = rto; retransmit < now;) retransmit += wait *= 2;
    for (const item of this.#queue) if (item.due === Infinity) item.due = retransmit;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.due <= now) {
      if (!this.#to.destroyed) this.#to.write(this.#queue.shift()!.chunk);
      else this.#queue.shift();
    }
    const next = this.#queue[0];
    if (next !== undefined && next.due !== Infinity) {
      this.#timer = setTimeout(() => this.#schedule(), Math.max(0, next.due - now));
    }
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#queue.length = 0;
  }
}

interface Pair {
  client: Socket;
  upstream: Socket;
  up: Lane;
  down: Lane;
  /** The direction of the last chunk seen, for counting round trips. */
  last: 'up' | 'down' | undefined;
  /** Open through a partition whose end the network forgot: its bytes are dropped silently, for good. */
  forgotten: boolean;
  /** Opened while partitioned: its first bytes wait on the slower connection-setup retransmission. */
  openedInPartition: boolean;
}

/** What the relay does to traffic right now. */
export type RelayState = 'open' | 'refusing' | 'partitioned';

/**
 * The relay. `start()` picks a free port once; `refuse()`/`reopen()` keep that port, so clients
 * configured with it reconnect by themselves.
 */
export class FaultRelay {
  readonly #host: string;
  readonly #port: number;
  #server: Server | undefined;
  #listenPort = 0;
  readonly #pairs = new Set<Pair>();
  #state: RelayState = 'open';
  /** Milliseconds added to every chunk in each direction. */
  latency = 0;
  /** When above 0, every `resetEvery`-th answer chunk resets its connection instead of arriving. */
  resetEvery = 0;
  #answers = 0;
  /** Client→server bursts that follow an answer (or open a connection): round trips. */
  turns = 0;
  /** Connections reset by {@link FaultRelay.resetEvery}. */
  resets = 0;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  get port(): number {
    return this.#listenPort;
  }

  get state(): RelayState {
    return this.#state;
  }

  /** Listens on a free loopback port (the same one on later calls). */
  async start(): Promise<number> {
    const server = createServer((client) => this.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#listenPort, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address !== null && typeof address === 'object') this.#listenPort = address.port;
    this.#server = server;
    this.#state = 'open';
    return this.#listenPort;
  }

  #accept(client: Socket): void {
    const upstream = connect({ host: this.#host, port: this.#port });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: Pair = {
      client,
      upstream,
      up: new Lane(upstream),
      down: new Lane(client),
      last: undefined,
      forgotten: false,
      openedInPartition: this.#state === 'partitioned',
    };
    this.#pairs.add(pair);
    const drop = () => this.#drop(pair);
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      if (pair.last !== 'up') this.turns++;
      pair.last = 'up';
      pair.up.push(chunk, this.#delay(pair));
    });
    upstream.on('data', (chunk: Buffer) => {
      pair.last = 'down';
      if (this.resetEvery > 0 && ++this.#answers % this.resetEvery === 0) {
        // The server has done the work; its answer never arrives: the client sees ECONNRESET.
        this.resets++;
        client.resetAndDestroy();
        upstream.destroy();
        drop();
        return;
      }
      pair.down.push(chunk, this.#delay(pair));
    });
  }

  #delay(pair: Pair): number {
    return this.#state === 'partitioned' || pair.forgotten ? Infinity : this.latency;
  }

  #drop(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    pair.up.clear();
    pair.down.clear();
    pair.client.destroy();
    pair.upstream.destroy();
  }

  /** Cuts every open connection and refuses new ones: the server looks down. */
  async refuse(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#state = 'refusing';
    for (const pair of [...this.#pairs]) this.#drop(pair);
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Accepts connections again after {@link FaultRelay.refuse}. */
  async reopen(): Promise<void> {
    if (this.#server === undefined) await this.start();
  }

  /**
   * Holds every byte in both directions, on open connections and new ones alike: a network
   * partition. Nothing is refused or reset, so clients wait on their own timeouts.
   */
  partition(): void {
    this.#state = 'partitioned';
  }

  /**
   * Ends a partition. Held bytes go through, in order, at each sender's next retransmission (a
   * segment after 200 ms, doubling; a connection opened during the partition after 1 s, doubling,
   * as Linux retransmits a SYN), so a connection that waited long may wait a few seconds more.
   * With `forget`, the connections open during the partition stay silent for good instead (a NAT,
   * firewall or proxy on the way lost their state and drops their packets without a reset), and
   * only new connections work.
   */
  heal(forget = false): void {
    if (this.#state !== 'partitioned') return;
    this.#state = 'open';
    for (const pair of this.#pairs) {
      if (forget) {
        pair.forgotten = true;
        continue;
      }
      const rto = pair.openedInPartition ? 1_000 : 200;
      pair.up.release(rto);
      pair.down.release(rto);
    }
  }

  /** How many connections are open through the relay. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Stops listening and cuts everything, for good. */
  async close(): Promise<void> {
    await this.refuse();
  }
}
