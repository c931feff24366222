/**
 * `npm run bench`: runs the benchmark harness and writes docs/benchmarks.md.
 *
 * @example
 * ```sh
 * npm run bench                                  # everything, 3 runs × 5 s per scenario
 * npm run bench -- --smoke                       # a quick check that the harness works
 * npm run bench -- --filter 'bare-express,tessera-express-*' --scenarios read --runs 5
 * ```
 *
 * @packageDocumentation
 */
import { join } from 'node:path';
import { renderSaved, runBench } from './harness.js';
import { HELP, parseOptions, ROOT } from './options.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // --render <results.json> [--out file]: render saved results again, measuring nothing.
  const render = args.indexOf('--render');
  if (render !== -1) {
    const file = args[render + 1];
    if (file === undefined)
      throw new Error('--render needs the JSON file a run saved in bench/results/');
    const at = args.indexOf('--out');
    const out = at === -1 ? join(ROOT, 'docs', 'benchmarks.md') : args[at + 1]!;
    await renderSaved(file, out);
    console.log(`Report rendered from ${file} to ${out}`);
    return;
  }
  const { help, ...options } = parseOptions(args);
  if (help === true) {
    console.log(HELP);
    return;
  }
  const command = ['npm run bench', ...(args.length > 0 ? ['--', ...args] : [])]
    .map((part) => (/[\s'"*!]/.test(part) ? `'${part.replace(/'/g, "'\\''")}'` : part))
    .join(' ')
    .replace("'npm run bench'", 'npm run bench');
  const report = await runBench({ ...options, command });
  const measured = report.rows.filter((row) => row.error === undefined).length;
  console.log(`${measured} rows measured, ${report.skipped.length} contenders not measured`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
