/**
 * Every ```ts and ```js sample of README.md and docs/**\/*.md is a whole program: it is
 * type-checked with tsc (strict) and run with node, as a user would paste it. An app (a sample
 * that listens) gets PORT=0, answers one `GET /` below 500, and is ended by the harness. A marker
 * comment before a sample may make it a fragment (type-checked only), skip it with a reason, or
 * say which service it needs (see test/support/doc-samples.ts).
 *
 * `tessera-session` resolves through the package's self-reference to dist/ (`npm run build`).
 * With TESSERA_DOCS_DIST set to another build of src/ (`npx tsc -p tsconfig.json --outDir DIR`,
 * plus `node scripts/build-express-session-cjs.mjs --outdir DIR/cjs`), the samples use that one.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PRELOAD,
  SERVICES,
  augments,
  extractSamples,
  findSamples,
  sampleFileName,
  type Sample,
  type ServiceName,
} from './support/doc-samples.js';
import { MemcachedServer, memcachedInstalled } from './support/memcached-server.js';
import { RedisClusterProcesses, redisBinariesAvailable } from './support/redis-server.js';
import {
  SHARED,
  requireService,
  requireShared,
  withQuery,
  type ServiceGate,
} from './support/services.js';

const root = resolve(import.meta.dirname, '..');
const overrideDist = process.env.TESSERA_DOCS_DIST;
const dist = overrideDist === undefined ? join(root, 'dist') : resolve(overrideDist);
const built = existsSync(join(dist, 'index.js'));

const RUN_TIMEOUT_MS = 30_000;
const CONCURRENCY = 4;

const samples = findSamples(root);
const needed = new Set(samples.flatMap((sample) => sample.marker.needs));

/**
 * Whether a sample imports express-session or the drop-in: either types Express's `req.session`
 * its own way for every file compiled with it, so such samples are checked apart from the rest.
 */
function typesExpressSession(sample: Sample): boolean {
  return /['"](tessera-session\/)?express-session['"]/.test(sample.code);
}

/** What happened to one sample. */
interface Outcome {
  diagnostics: string[];
  run?: {
    code: number | null;
    signal: string | null;
    output: string;
    timedOut: boolean;
    elapsedMs: number;
  };
  /** Why it was not run, when it was checked only. */
  notRun?: string;
}

const suffix = randomBytes(4).toString('hex');
const gates = new Map<ServiceName, ServiceGate>();
const serviceEnv = new Map<ServiceName, string>();
const cleanups: (() => Promise<unknown>)[] = [];

async function gateFor(name: ServiceName): Promise<ServiceGate> {
  switch (name) {
    case 'postgres':
      return requireShared(SHARED.postgres);
    case 'mysql':
      return requireShared(SHARED.mysql);
    case 'redis':
      return requireShared(SHARED.redis);
    case 'memcached':
      return requireService('memcached binary', async () => memcachedInstalled());
    case 'redis-cluster':
      return requireService('redis-server binary for a private cluster', redisBinariesAvailable);
  }
}

/** Gives the samples their own schema, database or server, and says where it is. */
async function startService(name: ServiceName): Promise<void> {
  switch (name) {
    case 'postgres': {
      const { default: pg } = await import('pg');
      const schema = `docs_samples_${suffix}`;
      const admin = new pg.Client(SHARED.postgres.connection);
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.end();
      cleanups.push(async () => {
        const client = new pg.Client(SHARED.postgres.connection);
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
      });
      const options = encodeURIComponent(`-c search_path=${schema}`);
      serviceEnv.set(name, withQuery(SHARED.postgres.url, `options=${options}`));
      return;
    }
    case 'mysql': {
      const mysql = await import('mysql2/promise');
      const database = `docs_samples_${suffix}`;
      const admin = await mysql.createConnection(SHARED.mysql.connection);
      await admin.query(`CREATE DATABASE ${database}`);
      await admin.end();
      cleanups.push(async () => {
        const connection = await mysql.createConnection(SHARED.mysql.connection);
        await connection.query(`DROP DATABASE IF EXISTS ${database}`);
        await connection.end();
      });
      const url = new URL(SHARED.mysql.url);
      url.pathname = `/${database}`;
      serviceEnv.set(name, url.href);
      return;
    }
    case 'redis':
      serviceEnv.set(name, SHARED.redis.url);
      return;
    case 'memcached': {
      const server = await MemcachedServer.start();
      cleanups.push(() => server.stop());
      serviceEnv.set(name, `127.0.0.1:${server.port}`);
      return;
    }
    case 'redis-cluster': {
      const cluster = await RedisClusterProcesses.start(3);
      cleanups.push(() => cluster.stop());
      serviceEnv.set(name, cluster.rootNodes.map((node) => node.url).join(','));
      return;
    }
  }
}

for (const name of needed) gates.set(name, await gateFor(name));

/** Runs a command; answers its exit code and output, killing it after `timeoutMs`. */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<NonNullable<Outcome['run']>> {
  return new Promise((done) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: options.cwd, env: options.env });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, output, timedOut, elapsedMs: Math.round(performance.now() - started) });
    });
  });
}

/** The sample's environment: none of the runner's, PORT=0, its services and its variables. */
function environmentFor(sample: Sample): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  env.PORT = '0';
  for (const name of sample.marker.needs) env[SERVICES[name]] = serviceEnv.get(name);
  for (const [name, value] of sample.marker.env) {
    const random = () => randomBytes(32).toString('base64url');
    env[name] = value === undefined ? random() : value.replaceAll('{random}', random);
  }
  return env;
}

/**
 * The samples' compiler options: strict, ES modules on Node.js as a user's project would have
 * them, JavaScript checked too, and every file a module of its own.
 */
function tsconfig(files: string[]): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2022', 'DOM'],
      types: ['node'],
      strict: true,
      skipLibCheck: true,
      esModuleInterop: true,
      moduleDetection: 'force',
      allowJs: true,
      checkJs: true,
      rootDir: 'src',
      outDir: 'out',
    },
    files: files.map((file) => `src/${file}`),
  });
}

/** Maps tsc's `src/FILE(line,col): error ...` lines back to the Markdown of each sample. */
function collectDiagnostics(
  output: string,
  byFile: Map<string, Sample>,
  outcomes: Map<Sample, Outcome>,
): string[] {
  const stray: string[] = [];
  let last: string[] | undefined;
  for (const line of output.split('\n')) {
    const match = /^src\/([^(]+)\((\d+),(\d+)\): (error .*)$/.exec(line);
    if (match === null) {
      if (line.startsWith(' ') && last !== undefined) last.push(line);
      else if (line.trim() !== '') stray.push(line);
      continue;
    }
    const sample = byFile.get(match[1]!);
    if (sample === undefined) {
      stray.push(line);
      continue;
    }
    const codeLine = Number(match[2]) - sample.marker.prelude.length;
    const where =
      codeLine < 1
        ? `${sample.where} (in the marker's prelude, line ${match[2]})`
        : `${sample.file}:${sample.line + codeLine}`;
    last = outcomes.get(sample)!.diagnostics;
    last.push(`${where}:${match[3]} ${match[4]}`);
  }
  return stray;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

const outcomes = new Map<Sample, Outcome>();
let strayDiagnostics: string[] = [];
const workspace = join(root, '.tmp');

describe.skipIf(!built)(
  `the documentation's samples${built ? '' : ` [skipped: ${dist} is not built; run npm run build]`}`,
  () => {
    let dir = '';

    beforeAll(async () => {
      mkdirSync(workspace, { recursive: true });
      dir = mkdtempSync(join(workspace, 'docs-samples-'));
      mkdirSync(join(dir, 'src'));
      if (overrideDist !== undefined) {
        // A package.json of its own ends the repository's package scope, so `tessera-session`
        // is looked up in node_modules, where it is the given build.
        writeFileSync(join(dir, 'package.json'), '{ "private": true, "type": "module" }\n');
        mkdirSync(join(dir, 'pkg'));
        cpSync(join(root, 'package.json'), join(dir, 'pkg/package.json'));
        cpSync(dist, join(dir, 'pkg/dist'), { recursive: true });
        mkdirSync(join(dir, 'node_modules'));
        symlinkSync('../pkg', join(dir, 'node_modules/tessera-session'), 'dir');
      }
      const preload = join(dir, 'preload.mjs');
      writeFileSync(preload, PRELOAD);

      const byFile = new Map<string, Sample>();
      const shared: string[] = [];
      const expressSession: string[] = [];
      const alone: string[] = [];
      for (const sample of samples) {
        outcomes.set(sample, { diagnostics: [] });
        if (sample.problem !== undefined || sample.marker.skip !== undefined) continue;
        const name = sampleFileName(sample);
        byFile.set(name, sample);
        const code = [...sample.marker.prelude, sample.code].join('\n');
        writeFileSync(join(dir, 'src', name), code);
        if (augments(sample)) alone.push(name);
        else (typesExpressSession(sample) ? expressSession : shared).push(name);
      }
      const tsc = join(root, 'node_modules/typescript/bin/tsc');
      const projects = [shared, expressSession, ...alone.map((file) => [file])].filter(
        (files) => files.length,
      );
      const checks = projects.map(async (files, index) => {
        const config = `tsconfig.${index}.json`;
        writeFileSync(join(dir, config), tsconfig(files));
        const result = await run(process.execPath, [tsc, '-p', config, '--pretty', 'false'], {
          cwd: dir,
          timeoutMs: 120_000,
        });
        return result.output;
      });
      const services = [...needed]
        .filter((name) => gates.get(name)!.available)
        .map((name) => startService(name));
      const outputs = await Promise.all(checks);
      await Promise.all(services);
      strayDiagnostics = outputs.flatMap((output) => collectDiagnostics(output, byFile, outcomes));

      const runnable = [...byFile.values()].filter((sample) => {
        const outcome = outcomes.get(sample)!;
        if (sample.marker.fragment) outcome.notRun = 'a fragment: type-checked only';
        const missing = sample.marker.needs.find((name) => !gates.get(name)!.available);
        if (missing !== undefined) outcome.notRun = gates.get(missing)!.reason;
        return outcome.notRun === undefined && outcome.diagnostics.length === 0;
      });
      await pool(runnable, CONCURRENCY, async (sample) => {
        const name = sampleFileName(sample);
        const cwd = join(dir, 'run', name);
        mkdirSync(cwd, { recursive: true });
        const script = join(dir, 'out', name.replace(/\.ts$/, '.js'));
        outcomes.get(sample)!.run = await run(
          process.execPath,
          ['--import', pathToFileURL(preload).href, script],
          { cwd, env: environmentFor(sample), timeoutMs: RUN_TIMEOUT_MS },
        );
      });
    }, 180_000);

    afterAll(async () => {
      for (const cleanup of cleanups) await cleanup().catch(() => undefined);
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it('finds the samples, each with a well-formed marker', () => {
      expect(samples.length).toBeGreaterThan(0);
      const problems = samples.flatMap((sample) =>
        sample.problem === undefined ? [] : [`${sample.where}: ${sample.problem}`],
      );
      expect(problems).toEqual([]);
      expect(strayDiagnostics).toEqual([]);
    });

    for (const sample of samples) {
      const skip = sample.marker.skip;
      const title = `${sample.where} (${sample.language === 'ts' ? 'TypeScript' : 'JavaScript'})`;
      if (skip !== undefined) {
        it.skip(`${title} [skipped: ${skip}]`, () => undefined); // skipped: the docs' `<!-- sample: skip: REASON -->` marker, whose reason is in the title
        continue;
      }
      if (sample.problem !== undefined) continue;
      const tags = [
        sample.marker.fragment ? 'fragment: type-checked only' : '',
        sample.marker.needs.length > 0 ? `needs ${sample.marker.needs.join(', ')}` : '',
      ].filter(Boolean);
      it(`${title}${tags.length > 0 ? ` [${tags.join('; ')}]` : ''}`, () => {
        const outcome = outcomes.get(sample)!;
        if (outcome.diagnostics.length > 0) {
          expect.fail(`${sample.where} does not type-check:\n${outcome.diagnostics.join('\n')}`);
        }
        if (outcome.notRun !== undefined) return;
        const result = outcome.run!;
        if (result.timedOut) {
          expect.fail(
            `${sample.where} neither exited nor listened within ${RUN_TIMEOUT_MS} ms:\n${result.output}`,
          );
        }
        if (result.code !== 0) {
          expect.fail(
            `${sample.where} exited with ${result.code ?? result.signal} after ${result.elapsedMs} ms:\n${result.output}`,
          );
        }
      });
    }
  },
);

describe('finding samples in Markdown', () => {
  const markdown = [
    '# Title', //                                          1
    '```sh', //                                            2
    'npm install tessera-session', //                     3
    '```', //                                              4
    '<!-- sample: needs postgres redis; env A B=x:{random} -->', // 5
    '```ts', //                                            6
    "import pg from 'pg';", //                             7
    '```', //                                              8
    '- a list item:', //                                   9
    '', //                                                10
    '  ```js', //                                         11
    "  const a = require('node:fs');", //                 12
    '    nested();', //                                   13
    '  ```', //                                           14
    '<!-- sample: fragment', //                           15
    "import type { Session } from 'tessera-session';", // 16
    'declare const session: Session;', //                17
    '-->', //                                             18
    '```typescript', //                                   19
    "session.set('a', 1);", //                            20
    '```', //                                             21
    '<!-- a note, not a marker -->', //                   22
    '```javascript', //                                   23
    'export {};', //                                      24
    '```', //                                             25
  ].join('\n');

  it('finds ts and js blocks with their line, language and code, and reads their markers', () => {
    const found = extractSamples('docs/x.md', markdown);
    expect(found.map((sample) => [sample.where, sample.language, sample.problem])).toEqual([
      ['docs/x.md:6', 'ts', undefined],
      ['docs/x.md:11', 'js', undefined],
      ['docs/x.md:19', 'ts', undefined],
      ['docs/x.md:23', 'js', undefined],
    ]);
    const [db, list, fragment, plain] = found;
    expect(db!.marker).toMatchObject({
      needs: ['postgres', 'redis'],
      env: [
        ['A', undefined],
        ['B', 'x:{random}'],
      ],
      fragment: false,
    });
    expect(list!.code).toBe("const a = require('node:fs');\n  nested();\n");
    expect(sampleFileName(list!)).toBe('docs-x-md-L11.cjs');
    expect(sampleFileName(plain!)).toBe('docs-x-md-L23.mjs');
    expect(fragment!.marker.fragment).toBe(true);
    expect(fragment!.marker.prelude).toEqual([
      "import type { Session } from 'tessera-session';",
      'declare const session: Session;',
    ]);
    expect(plain!.marker).toMatchObject({ fragment: false, needs: [], env: [], prelude: [] });
  });

  it("reports a bad marker or an unclosed block as the sample's problem", () => {
    const problem = (text: string) => extractSamples('x.md', text)[0]?.problem;
    expect(problem('<!-- sample: skip -->\n```ts\nx;\n```')).toMatch(/skip needs a reason/);
    expect(problem('<!-- sample: needs oracle -->\n```ts\nx;\n```')).toMatch(/unknown service/);
    expect(problem('<!-- sample: fast -->\n```ts\nx;\n```')).toMatch(/unknown sample directive/);
    expect(problem('<!-- sample: env\nconst a = 1;\n-->\n```ts\nx;\n```')).toMatch(
      /unknown sample directive|only a fragment/,
    );
    expect(problem('```ts\nx;\n')).toMatch(/never closed/);
    expect(problem('<!-- sample: skip: needs Deno -->\n```ts\nx;\n```')).toBeUndefined();
  });

  it('checks a sample that augments a module on its own', () => {
    const [sample] = extractSamples(
      'x.md',
      "```ts\ndeclare module 'tessera-session' {\n  interface SessionData { a: string }\n}\n```",
    );
    expect(augments(sample!)).toBe(true);
    expect(augments(extractSamples('x.md', '```ts\nconst a = 1;\n```')[0]!)).toBe(false);
  });
});
