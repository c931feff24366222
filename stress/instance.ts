/**
 * One application instance as its own process, for `stress/run.ts --instances`: opens the store
 * named in the STRESS_INSTANCE environment variable (JSON: the store spec and the manager's
 * maxSessionsPerUser), serves the stress application on a free loopback port, prints
 * `listening URL`, and exits when its standard input closes (the parent is done or gone), on
 * SIGTERM, or after ten minutes whatever happens.
 */
import { SessionManager } from '../src/manager.js';
import { createStressApp, close, listen, type Counters } from './app.js';
import { openStore, type StoreSpec } from './stores.js';

/** What the parent tells an instance. */
export interface InstanceConfig {
  spec: StoreSpec;
  maxSessionsPerUser: number;
  secret: string;
}

/** Serves one instance in this process; answers its base URL and how to stop it. */
export async function serveInstance(
  config: InstanceConfig,
): Promise<{ base: string; stop(): Promise<void> }> {
  const open = await openStore(config.spec);
  const manager = new SessionManager<Counters>({
    store: open.store,
    secrets: [config.secret],
    maxSessionsPerUser: config.maxSessionsPerUser,
  });
  const server = createStressApp(manager);
  const base = await listen(server);
  return {
    base,
    async stop() {
      await close(server);
      await open.close();
    },
  };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.STRESS_INSTANCE ?? 'null') as InstanceConfig | null;
  if (config === null) {
    process.stderr.write('stress/instance.ts is started by stress/run.ts --instances\n');
    process.exit(2);
  }
  const instance = await serveInstance(config);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    instance.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.stdin.on('end', stop).on('close', stop).resume();
  process.once('SIGTERM', stop);
  setTimeout(stop, 600_000).unref();
  process.stdout.write(`listening ${instance.base}\n`);
}

if (process.env.STRESS_INSTANCE !== undefined) await main();
