/**
 * A contender's server process. The harness forks it with `--import tsx`, the configuration in
 * the `BENCH_SERVER` environment variable, and an IPC channel. It answers `ready` with its port,
 * then measures itself between `begin` and `end` (CPU time from `process.cpuUsage()`, store
 * calls, store round trips) and reports over IPC, so the control traffic is not part of the
 * measured HTTP load.
 *
 * @packageDocumentation
 */
import { writeFile } from 'node:fs/promises';
import { Session as InspectorSession } from 'node:inspector/promises';
import { contenderById } from '../contenders.js';
import type { ChildMessage, ParentMessage, ServerConfig } from '../protocol.js';
import { startApp, type AppInput, type RunningApp } from './apps.js';
import { Counters } from './instrument.js';
import { storesFor } from './stores.js';

function send(message: ChildMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const raw = process.env.BENCH_SERVER;
  if (raw === undefined || process.send === undefined) {
    throw new Error(
      'bench/servers/server.ts is started by the harness (bench/run.ts), with an IPC channel',
    );
  }
  const config = JSON.parse(raw) as ServerConfig;
  const contender = contenderById(config.contender);
  const counters = new Counters();
  const stores = await storesFor(contender, config, counters);
  const input: AppInput = { contender, secret: config.secret };
  if (stores.tesseraStore !== undefined) input.tesseraStore = stores.tesseraStore;
  if (stores.peerStore !== undefined) input.peerStore = stores.peerStore;
  if (contender.library === 'floor') input.countStoreCall = (name) => counters.storeCall(name);
  const app: RunningApp = await startApp(input);
  app.server.on('request', () => {
    counters.requests++;
  });

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await app.close().catch(() => undefined);
    await stores.close().catch(() => undefined);
    send({ type: 'closed' });
    process.disconnect?.();
    // Some peers keep timers that never unref (prune intervals); the harness is done with us.
    setTimeout(() => process.exit(0), 200).unref();
  };

  let profiling: { session: InspectorSession; file: string } | undefined;
  const startProfile = async (file: string) => {
    const session = new InspectorSession();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    profiling = { session, file };
  };
  const stopProfile = async () => {
    if (profiling === undefined) return;
    const { session, file } = profiling;
    profiling = undefined;
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await writeFile(file, JSON.stringify(profile));
  };

  process.on('message', (message: ParentMessage) => {
    switch (message.type) {
      case 'begin':
        void (
          message.profile === undefined ? Promise.resolve() : startProfile(message.profile)
        ).then(() => {
          counters.begin();
          send({ type: 'begun' });
        });
        break;
      case 'end': {
        const counts = counters.end();
        void stopProfile().then(() => send({ type: 'ended', ...counts }));
        break;
      }
      case 'shutdown':
        void shutdown();
        break;
    }
  });
  process.on('disconnect', () => void shutdown());
  send({ type: 'ready', port: app.port });
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  send({ type: 'failed', message });
  setTimeout(() => process.exit(1), 100).unref();
});
