#!/usr/bin/env node
/**
 * Runs npm scripts at the same time and fails when any of them fails; `npm test` builds and
 * type-checks this way. Each script's output is printed whole when it ends, so outputs never
 * interleave.
 *
 * Usage: node scripts/run-parallel.mjs build typecheck
 */
import { spawn } from 'node:child_process';
import { Buffer } from 'node:buffer';
import process from 'node:process';

/** Runs `npm run NAME`; answers its exit code and its output (stdout and stderr, in order). */
function runScript(name) {
  // Under npm, npm_execpath is npm's own script: run it with this Node.js, on every platform.
  const npm = process.env.npm_execpath;
  const [command, args, shell] =
    npm === undefined
      ? ['npm', ['run', name], true]
      : [process.execPath, [npm, 'run', name], false];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], shell });
    const output = [];
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
    child.on('error', (error) => resolve({ name, code: 1, output: [Buffer.from(`${error}\n`)] }));
    child.on('close', (code) => resolve({ name, code: code ?? 1, output }));
  });
}

const names = process.argv.slice(2);
const pending = new Map(names.map((name) => [name, runScript(name)]));
let failed = false;
while (pending.size > 0) {
  const { name, code, output } = await Promise.race(pending.values());
  pending.delete(name);
  process.stdout.write(Buffer.concat(output));
  if (code !== 0) {
    failed = true;
    process.stderr.write(`npm run ${name} failed (exit code ${code})\n`);
  }
}
process.exitCode = failed ? 1 : 0;
