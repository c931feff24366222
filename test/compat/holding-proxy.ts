import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a real server whose replies the test holds back and lets go:
 * reply latency on demand, so that a race is reproduced by events rather than by timing. What
 * clients send is forwarded at once, and can be awaited ({@link HoldingProxy.whenSent}).
 */
export class HoldingProxy {
  readonly #targetHost: string;
  readonly #targetPort: number;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  #held: { socket: Socket; chunk: Buffer }[] | undefined;
  readonly #watchers: { needle: string; seen: string; resolve: () => void }[] = [];

  constructor(targetHost: string, targetPort: number) {
    this.#targetHost = targetHost;
    this.#targetPort = targetPort;
  }

  /** Starts listening on a free loopback port, and answers it. */
  async start(): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect({ host: this.#targetHost, port: this.#targetPort });
      this.#sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (chunk: Buffer) => {
        upstream.write(chunk);
        this.#saw(chunk.toString('latin1'));
      });
      upstream.on('data', (chunk: Buffer) => {
        if (this.#held !== undefined) this.#held.push({ socket: client, chunk });
        else client.write(chunk);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    const address = server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  }

  /** Holds every reply from now on. */
  hold(): void {
    this.#held ??= [];
  }

  /** Delivers the held replies, in order, and holds nothing more. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const { socket, chunk } of held) if (!socket.destroyed) socket.write(chunk);
  }

  /** Resolves once a client has sent `needle` (from now on) towards the server. */
  whenSent(needle: string): Promise<void> {
    return new Promise((resolve) => this.#watchers.push({ needle, seen: '', resolve }));
  }

  #saw(text: string): void {
    for (const watcher of [...this.#watchers]) {
      watcher.seen += text;
      if (watcher.seen.includes(watcher.needle)) {
        this.#watchers.splice(this.#watchers.indexOf(watcher), 1);
        watcher.resolve();
      }
    }
  }

  /** Cuts every connection and stops listening. */
  async stop(): Promise<void> {
    this.release();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
