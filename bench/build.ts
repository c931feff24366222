/**
 * Compiles Tessera for the measured servers, as an application would run it (the published
 * `dist/`), into a temporary directory. Running `src/` through tsx instead would measure tsx's
 * transform too: it keeps function names with a `__name()` call for every function it creates,
 * per request for closures, which the published build does not do.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ROOT } from './options.js';

/** The outcome of {@link compileTessera}. */
export interface CompiledTessera {
  /** The directory of compiled JavaScript, or undefined when compiling failed (then src/ runs through tsx). */
  dir: string | undefined;
  /** What the report says about it. */
  note: string;
}

/**
 * Where {@link compileTessera} puts a run's build: under `node_modules/.cache/`, which linters,
 * formatters and git leave alone, and from where the compiled files resolve `node_modules` as
 * `dist/` would.
 */
export function buildDirFor(namespace: string): string {
  return join(ROOT, 'node_modules', '.cache', 'tessera-bench', namespace);
}

/**
 * Runs the project's TypeScript compiler with its `tsconfig.json`, into `outDir`, without
 * declarations or source maps. Type errors in files other helpers are still writing do not stop
 * the emit; only a missing core output does.
 */
export async function compileTessera(outDir: string): Promise<CompiledTessera> {
  await mkdir(outDir, { recursive: true });
  // The output is ES modules; say so, as the package's own package.json does for dist/.
  await writeFile(join(outDir, 'package.json'), '{ "type": "module" }\n');
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [
    tsc,
    '-p',
    join(ROOT, 'tsconfig.json'),
    '--outDir',
    outDir,
    '--declaration',
    'false',
    '--declarationMap',
    'false',
    '--sourceMap',
    'false',
    '--noEmitOnError',
    'false',
    '--incremental',
    'false',
  ];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 180_000 }, (error, stdout) => {
      const core = ['manager.js', 'stores/memory.js', 'adapters/express.js', 'adapters/node.js'];
      if (core.every((file) => existsSync(join(outDir, file)))) {
        const errors =
          error === null
            ? ''
            : ` (tsc reported ${stdout.split('\n').filter((l) => l.includes('error TS')).length} type errors, in files still being written; it emitted anyway)`;
        resolve({
          dir: outDir,
          note: `compiled by tsc with the project's tsconfig.json, as published${errors}`,
        });
      } else {
        resolve({
          dir: undefined,
          note: `run from src/ through tsx, because compiling failed: ${(error?.message ?? 'no output').split('\n')[0]}`,
        });
      }
    });
  });
}

/** Removes a run's build, and the cache directory too when no other run is using it. */
export async function removeBuild(namespace: string): Promise<void> {
  const dir = buildDirFor(namespace);
  await rm(dir, { recursive: true, force: true });
  // Fails, harmlessly, while another run's build is still there.
  await rmdir(dirname(dir)).catch(() => undefined);
}
