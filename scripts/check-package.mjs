#!/usr/bin/env node
/**
 * Packs the package as `npm publish` would (the prepack script cleans and builds dist/) and runs
 * two checkers on the tarball:
 *
 * - publint: package.json's fields (exports, files, engines, ...) against the files in the tarball;
 *   warnings fail the check (--strict).
 * - Are the Types Wrong (attw): every subpath's types resolve, and match its JavaScript, under each
 *   of TypeScript's module resolutions. Profile esm-only: the package is ES modules only (its
 *   `default` conditions let Node.js >= 20.19 `require()` them), so TypeScript's older CommonJS
 *   resolutions, which cannot load an ES module, are not held against it.
 *
 * Usage: npm run check:package
 */
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);

/** Runs a command with its output shown; answers its exit status. */
function run(command, args) {
  console.log(`\n$ ${[path.basename(command), ...args].join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

const folder = mkdtempSync(path.join(tmpdir(), 'tessera-pack-'));
let status = 0;
try {
  if (run('npm', ['pack', '--pack-destination', folder]) !== 0) throw new Error('npm pack failed');
  const tarball = path.join(folder, readdirSync(folder)[0]);
  const publint = run(bin('publint'), ['run', tarball, '--strict']);
  const attw = run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'table-flipped']);
  status = publint || attw;
  console.log(
    `\ncheck:package: publint ${publint === 0 ? 'passed' : 'failed'}, attw ${attw === 0 ? 'passed' : 'failed'}`,
  );
} finally {
  rmSync(folder, { recursive: true, force: true });
}
process.exit(status);
