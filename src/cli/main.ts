#!/usr/bin/env node
/**
 * The `tessera-session` executable: runs the CLI on the process's arguments and exits with its
 * code. See {@link run}.
 *
 * @packageDocumentation
 */
import { run } from './run.js';

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
// Every client is closed by now; should a driver still hold the event loop, do not hang on it.
setTimeout(() => process.exit(code), 1_000).unref();
