/**
 * The `tessera-session` command line: reads the arguments, runs a command, and answers its exit
 * code. Every failure is one line on stderr (and a JSON document with `--json`), never a stack
 * trace.
 *
 * @packageDocumentation
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { parseStoreUrl } from '../store-url.js';
import type { Command, OptionSpec } from './commands.js';
import { COMMANDS } from './commands.js';
import type { Values } from './context.js';
import { CliError, EXIT, asCliError, printable } from './errors.js';
import type { TextStream } from './output.js';
import { Output, wrap } from './output.js';

/** What the CLI runs with: the process's, or a test's. */
export interface CliEnvironment {
  stdout: TextStream;
  stderr: TextStream;
  env: NodeJS.ProcessEnv;
}

const BIN = 'tessera-session';

/** The options every command takes. */
const COMMON: Record<string, OptionSpec> = {
  store: {
    type: 'string',
    value: 'URL',
    help: 'the store (default: $SESSION_STORE): sqlite:PATH, postgres://..., mysql://..., redis://..., redis-cluster://h:p,h:p, memcached://h:p; ?table=NAME (SQL), ?prefix=P (Redis, Memcached), ?userIndex=best-effort (Memcached)',
  },
  json: { type: 'boolean', help: 'print one JSON document on stdout, for machines' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** The help's width, in characters. */
const HELP_WIDTH = 100;

function optionsHelp(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, option]) => {
    const short = option.short === undefined ? '    ' : `-${option.short}, `;
    const value = option.value === undefined ? '' : ` ${option.value}`;
    return [`${short}--${name}${value}`, option.help] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const indent = ' '.repeat(width + 4);
  return rows.flatMap(([flag, help]) =>
    wrap(help, HELP_WIDTH - indent.length).map((line, i) =>
      i === 0 ? `  ${flag.padEnd(width)}  ${line}` : `${indent}${line}`,
    ),
  );
}

function commandHelp(command: Command): string {
  return [
    `Usage: ${BIN} ${command.name} ${command.usage}`,
    '',
    command.help,
    '',
    'Options:',
    ...optionsHelp({ ...command.options, ...COMMON }),
    '',
  ].join('\n');
}

function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return [
    `Usage: ${BIN} <command> [options]`,
    '',
    "Looks after a Tessera session store: its schema, a user's sessions, expired records, and its health.",
    '',
    'Commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    `Run ${BIN} <command> --help for a command's options. The store is named by --store URL`,
    'or the SESSION_STORE environment variable. Exit codes: 0 done, 1 failed (or doctor found a',
    'problem), 2 the store could not be reached.',
    '',
  ].join('\n');
}

function version(): string {
  // The same relative path from src/cli and from dist/cli.
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  return `${BIN} ${pkg.version}\n`;
}

/** The command's options parsed, or a usage error that says which option is wrong. */
function parse(command: Command, args: string[]): Values {
  const config = Object.fromEntries(
    Object.entries({ ...command.options, ...COMMON }).map(([name, { type, short }]) => [
      name,
      short === undefined ? { type } : { type, short },
    ]),
  );
  try {
    return parseArgs({ args, options: config, strict: true, allowPositionals: false })
      .values as Values;
  } catch (error) {
    if (!String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) throw error;
    // parseArgs's messages go on with advice about `--`; their first sentence is the point.
    const message = (error as Error).message.split('. ')[0]!;
    throw new CliError('USAGE', `${command.name}: ${message} (see ${BIN} ${command.name} --help)`);
  }
}

/** Runs the CLI on `args` (the arguments after the program's name) and answers the exit code. */
export async function run(args: string[], environment: CliEnvironment): Promise<number> {
  const { stdout, stderr, env } = environment;
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    stdout.write(generalHelp());
    return name === undefined ? EXIT.failed : EXIT.ok;
  }
  if (name === '--version') {
    stdout.write(version());
    return EXIT.ok;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  // Until the options are read, a glance decides whether an error is reported as JSON.
  let out = new Output({ stdout, stderr, json: rest.includes('--json') });
  try {
    if (command === undefined) {
      throw new CliError('USAGE', `unknown command ${JSON.stringify(name)} (see ${BIN} --help)`);
    }
    const values = parse(command, rest);
    out = new Output({
      stdout,
      stderr,
      json: values.json === true,
      progress: values.progress === true,
    });
    if (values.help === true) {
      stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    const url = typeof values.store === 'string' ? values.store : env.SESSION_STORE;
    if (url === undefined || url === '') {
      throw new CliError(
        'USAGE',
        `no store: give --store URL or set SESSION_STORE (see ${BIN} ${command.name} --help)`,
      );
    }
    const spec = parseStoreUrl(url);
    if (spec.kind === 'memory') {
      throw new CliError(
        'USAGE',
        'memory: keeps sessions inside the application process; the CLI cannot see them',
      );
    }
    return await command.run({ command: command.name, values, out, spec, env });
  } catch (error) {
    const failure = asCliError(error);
    out.endProgress();
    stderr.write(`${BIN}: ${printable(failure.message)}\n`);
    out.document({ error: { code: failure.code, message: failure.message } });
    return failure.exitCode;
  }
}
