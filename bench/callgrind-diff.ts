/**
 * Where two instruction counts differ, function by function: reads two callgrind outputs of a
 * measured window (kept by `inprocess.ts --keep` or by a full bench run, see `instructions.ts`)
 * through `callgrind_annotate`, divides each function's own instructions by the requests of its
 * window, and lists the largest differences.
 *
 * V8's builtins, its runtime, its garbage collector, OpenSSL and libuv carry their names; code
 * V8 compiled at run time does not (callgrind sees it as `???`), so JavaScript that was
 * optimised shows only as that one line, while the builtins it calls keep their names.
 *
 * @example
 * ```sh
 * npx tsx bench/callgrind-diff.ts /tmp/cg/tessera-express-memory-read-1.callgrind /tmp/cg/floor-express-read-1.callgrind --requests 1000
 * ```
 *
 * @packageDocumentation
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';

/**
 * A function's own instructions in a callgrind output, by `file:function` name, and the total.
 * A window dumped while the process runs lists the frames open at the dump (`main`,
 * `node::SpinEventLoopInternal`...) with nearly the whole total; those are left out.
 */
export function selfCosts(file: string): { total: number; costs: Map<string, number> } {
  const text = execFileSync(
    'callgrind_annotate',
    ['--inclusive=no', '--threshold=100', '--auto=no', file],
    { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
  );
  const costs = new Map<string, number>();
  let total = 0;
  for (const line of text.split('\n')) {
    // "12,345 (1.2%)  file:function [object]"
    const match = /^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.+?)\s*$/.exec(line);
    if (match === null) continue;
    const value = Number(match[1]!.replace(/,/g, ''));
    if (match[3] === 'PROGRAM TOTALS') total = value;
    else if (Number(match[2]) < 50) {
      // Code V8 compiled at run time has no symbol, and its addresses differ between processes.
      const name = /^\?\?\?:0x[0-9a-f]+/.test(match[3]!)
        ? '(JavaScript compiled at run time, no symbol)'
        : match[3]!.replace(/\s+\[[^\]]*\]$/, '');
      costs.set(name, (costs.get(name) ?? 0) + value);
    }
  }
  return { total, costs };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      requests: { type: 'string', default: '1000' },
      top: { type: 'string', default: '25' },
      // Leaves out functions whose name matches, e.g. the optimizing compiler's: 'compiler::|Compiler::'
      skip: { type: 'string' },
    },
  });
  if (positionals.length !== 2) {
    console.log(
      'npx tsx bench/callgrind-diff.ts <a.callgrind> <b.callgrind> [--requests 1000] [--top 25] [--skip <regex>]',
    );
    return;
  }
  const requests = Number(values.requests);
  const [a, b] = positionals.map(selfCosts) as [
    ReturnType<typeof selfCosts>,
    ReturnType<typeof selfCosts>,
  ];
  const skip = values.skip === undefined ? undefined : new RegExp(values.skip);
  const names = new Set(
    [...a.costs.keys(), ...b.costs.keys()].filter((name) => skip?.test(name) !== true),
  );
  const rows = [...names].map((name) => {
    const first = (a.costs.get(name) ?? 0) / requests;
    const second = (b.costs.get(name) ?? 0) / requests;
    return { name, first, second, diff: first - second };
  });
  const format = (value: number) => Math.round(value).toLocaleString('en-US');
  console.log(
    `instructions per request: ${format(a.total / requests)} (a) vs ${format(b.total / requests)} (b), ` +
      `difference ${format((a.total - b.total) / requests)}`,
  );
  rows.sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff));
  for (const row of rows.slice(0, Number(values.top))) {
    const sign = row.diff >= 0 ? '+' : '';
    console.log(
      `${`${sign}${Math.round(row.diff).toLocaleString('en-US')}`.padStart(10)}  ` +
        `${Math.round(row.first).toLocaleString('en-US').padStart(9)} vs ${Math.round(row.second).toLocaleString('en-US').padStart(9)}  ${row.name}`,
    );
  }
}

if (process.argv[1] !== undefined && /callgrind-diff\.ts$/.test(process.argv[1])) main();
