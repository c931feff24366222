/**
 * Bundles a program of this repository once for a test file that runs it many times as a child
 * process: starting tsx for each run costs more than most runs.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Bundles `entry` (a path from the repository's root) into `.tmp/<prefix>-…/main.mjs`, removed
 * after the file's tests, and answers the bundle's path. The folder sits two levels below the
 * root, as `dist/cli/main.js` does, so `../../package.json` resolves; packages stay external and
 * load from node_modules.
 */
export async function bundleOnce(entry: string, prefix: string): Promise<string> {
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, '.tmp', `${prefix}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'main.mjs');
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
  });
  return outfile;
}
