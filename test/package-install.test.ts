/**
 * The package as a user meets it: the tarball `npm pack` makes, installed by npm into a fresh
 * folder, then loaded by its name from ES modules and from CommonJS, and type-checked as a
 * TypeScript consumer's code under `moduleResolution` node16 and bundler.
 *
 * `npm test` builds dist/ first, so the tarball is packed without running prepack again.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const built = existsSync(join(root, 'dist/index.js'));

/** Every subpath by the name a user imports (the package.json export aside), and whether it has a
 * CommonJS build of its own (a `require` condition) rather than being an ES module only. */
const entries = Object.entries(pkg.exports)
  .filter(([subpath]) => subpath !== './package.json')
  .map(([subpath, target]) => ({
    specifier: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`,
    commonJs: typeof target === 'object' && target !== null && 'require' in target,
  }));
const specifiers = entries.map((entry) => entry.specifier);
/**
 * Subpaths that load an optional peer at run time (the others name peers' types only), with that
 * peer: they load once the peer is installed, as it is by whoever imports them.
 */
const RUNTIME_PEERS: Record<string, string> = {
  [`${pkg.name}/opentelemetry`]: '@opentelemetry/api',
};
/** The subpaths that load in an install without peers. */
const peerless = specifiers.filter((specifier) => !(specifier in RUNTIME_PEERS));

/** TypeScript's node16 resolution, as a consumer's tsc would resolve the package. */
const NODE16 = { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 };
const SLOW = 120_000; // npm and tsc on a machine shared with other test files

let work = '';
/** The consumer npm installed the tarball into: no peers, so it shows what loads without them. */
let app = '';
/** What npm put in the consumer's node_modules. */
let installed: string[] = [];

/**
 * Runs node in the consumer folder, with the subpaths to load as its argument; answers its
 * standard output parsed as JSON.
 */
async function nodeIn(
  folder: string,
  file: string,
  source: string,
  subpaths = peerless,
): Promise<unknown> {
  writeFileSync(join(folder, file), source);
  const { stdout } = await run(process.execPath, [file, JSON.stringify(subpaths)], {
    cwd: folder,
  });
  return JSON.parse(stdout);
}

/** Runs the repository's tsc on a consumer project; answers its diagnostics (empty when clean). */
async function typeCheck(folder: string, config: string): Promise<string> {
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  try {
    await run(process.execPath, [tsc, '-p', config, '--pretty', 'false'], { cwd: folder });
    return '';
  } catch (error) {
    return String((error as { stdout?: string }).stdout ?? error);
  }
}

/**
 * Whether a declaration file, and every declaration it reaches, names only modules the bare
 * install provides (Node's built-ins and the package's own dependencies): false when it needs an
 * optional peer's types.
 */
function needsNoPeer(file: string, seen = new Set<string>()): boolean {
  if (seen.has(file)) return true;
  seen.add(file);
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles.every(({ fileName: specifier }) => {
    if (specifier.startsWith('node:')) return true;
    if (!specifier.startsWith('.')) return specifier in pkg.dependencies;
    const found = ts.resolveModuleName(specifier, file, NODE16, ts.sys).resolvedModule;
    return found !== undefined && needsNoPeer(found.resolvedFileName, seen);
  });
}

describe.skipIf(!built)(
  `the packed package installed by npm${built ? '' : ' [skipped: dist/ is not built; run npm run build]'}`,
  () => {
    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'tessera-install-'));
      const { stdout } = await run(
        'npm',
        ['pack', '--ignore-scripts', '--json', '--pack-destination', work],
        { cwd: root },
      );
      const tarball = join(work, (JSON.parse(stdout) as { filename: string }[])[0]!.filename);
      app = join(work, 'app');
      mkdirSync(app);
      writeFileSync(
        join(app, 'package.json'),
        '{ "name": "consumer", "private": true, "type": "module" }\n',
      );
      // The package's one dependency comes from npm's cache where it can (npm ci cached its
      // tarball, not always the registry's list of versions that a range needs), else the
      // registry. --prefix keeps npm in this folder whatever npm ran this test.
      await run(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', app, tarball],
        { cwd: app },
      );
      installed = readdirNames(join(app, 'node_modules'));
    }, SLOW);

    afterAll(() => {
      if (work !== '') rmSync(work, { recursive: true, force: true });
    });

    it('installs with its one dependency and none of the optional peers', () => {
      expect(installed).toEqual([...Object.keys(pkg.dependencies), pkg.name].sort());
    });

    it(
      'imports every subpath from an ES module, without peers and without touching globals',
      async () => {
        const result = (await nodeIn(
          app,
          'import-all.mjs',
          `import http from 'node:http';
import { EventEmitter } from 'node:events';
// Globals and the prototypes a session library might be tempted to patch (sideEffects: false).
const watched = { globalThis, Object: Object.prototype, Function: Function.prototype,
  Array: Array.prototype, Promise: Promise.prototype, EventEmitter: EventEmitter.prototype,
  IncomingMessage: http.IncomingMessage.prototype, ServerResponse: http.ServerResponse.prototype };
const names = () => Object.fromEntries(Object.entries(watched).map(([k, v]) => [k, Reflect.ownKeys(v).map(String).sort()]));
const before = names();
const exports = {};
for (const specifier of JSON.parse(process.argv[2])) exports[specifier] = Object.keys(await import(specifier)).sort();
console.log(JSON.stringify({ exports, before, after: names() }));
`,
        )) as { exports: Record<string, string[]>; before: unknown; after: unknown };
        for (const specifier of peerless) {
          expect(result.exports[specifier]?.length, specifier).toBeGreaterThan(0);
        }
        expect(result.after).toEqual(result.before);
      },
      SLOW,
    );

    it(
      'requires every subpath from CommonJS on this Node.js (require of ES modules)',
      async () => {
        const result = (await nodeIn(
          app,
          'require-all.cjs',
          `const modules = {};
for (const specifier of JSON.parse(process.argv[2])) {
  const loaded = require(specifier);
  modules[specifier] = { type: typeof loaded, keys: Object.keys(loaded).sort() };
}
(async () => {
  const imported = {};
  for (const specifier of JSON.parse(process.argv[2])) imported[specifier] = Object.keys(await import(specifier)).sort();
  console.log(JSON.stringify({ requireModule: process.features.require_module, modules, imported }));
})();
`,
        )) as {
          requireModule: boolean;
          modules: Record<string, { type: string; keys: string[] }>;
          imported: Record<string, string[]>;
        };
        // Node.js >= 20.19 loads ES modules with require() without a flag (engines says >= 20.19).
        expect(result.requireModule).toBe(true);
        for (const { specifier, commonJs } of entries) {
          if (commonJs || specifier in RUNTIME_PEERS) continue;
          // The ES module's namespace itself: the same exports as import() answers.
          expect(result.modules[specifier]?.keys, specifier).toEqual(result.imported[specifier]);
        }
        // The express-session drop-in's own CommonJS build answers the middleware factory, as
        // require('express-session') does.
        const dropIn = result.modules[`${pkg.name}/express-session`];
        expect(dropIn?.type).toBe('function');
        expect(dropIn?.keys).toEqual(
          expect.arrayContaining(['Store', 'MemoryStore', 'Session', 'Cookie']),
        );
      },
      SLOW,
    );

    it(
      'refuses to load a subpath whose peer is missing, naming the peer',
      async () => {
        const result = (await nodeIn(
          app,
          'import-without-peer.mjs',
          `const errors = {};
for (const specifier of JSON.parse(process.argv[2])) {
  errors[specifier] = await import(specifier).then(() => null, (e) => ({ code: e.code, message: e.message }));
}
console.log(JSON.stringify(errors));
`,
          Object.keys(RUNTIME_PEERS),
        )) as Record<string, { code: string; message: string } | null>;
        for (const [specifier, peer] of Object.entries(RUNTIME_PEERS)) {
          expect(result[specifier]?.code, specifier).toBe('ERR_MODULE_NOT_FOUND');
          expect(result[specifier]?.message, specifier).toContain(`'${peer}'`);
        }
      },
      SLOW,
    );

    it(
      'type-checks a consumer of the peer-free subpaths under node16, libraries included',
      async () => {
        // No DOM lib and skipLibCheck off: the declarations must stand on Node's own types.
        const consumer = join(app, 'consumer.ts');
        writeFileSync(consumer, '');
        const peerFree = specifiers.filter((specifier) => {
          const found = ts.resolveModuleName(specifier, consumer, NODE16, ts.sys).resolvedModule;
          return found !== undefined && needsNoPeer(found.resolvedFileName);
        });
        expect(peerFree).toContain(pkg.name);
        writeFileSync(
          consumer,
          `${peerFree.map((specifier, i) => `import * as m${i} from '${specifier}';`).join('\n')}
import { SessionManager } from '${pkg.name}';
import { MemoryStore } from '${pkg.name}/stores/memory';

export const manager = new SessionManager({ store: new MemoryStore(), secrets: ['s'.repeat(32)] });
// @ts-expect-error a store must be a SessionStore (shows the types are real, not any)
export const wrong = new SessionManager({ store: 42, secrets: ['s'.repeat(32)] });
export const modules = [${peerFree.map((_, i) => `m${i}`).join(', ')}];
`,
        );
        writeFileSync(
          join(app, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: {
              module: 'node16',
              moduleResolution: 'node16',
              target: 'es2022',
              lib: ['es2022'],
              strict: true,
              noEmit: true,
              skipLibCheck: false,
              typeRoots: [join(root, 'node_modules/@types')],
              types: ['node'],
            },
            files: ['consumer.ts'],
          }),
        );
        expect(await typeCheck(app, 'tsconfig.json')).toBe('');
      },
      SLOW,
    );

    describe('a consumer of every subpath with the peers installed', () => {
      /** A copy of the install with the peers (and their @types) linked from the repository's. */
      let typed = '';

      beforeAll(() => {
        typed = join(work, 'typed');
        cpSync(join(app, 'node_modules'), join(typed, 'node_modules'), { recursive: true });
        writeFileSync(
          join(typed, 'package.json'),
          '{ "name": "typed", "private": true, "type": "module" }\n',
        );
        const linked = ['@types/node'];
        for (const peer of Object.keys(pkg.peerDependencies)) linked.push(peer, `@types/${peer}`);
        for (const name of linked) {
          if (!existsSync(join(root, 'node_modules', name))) continue;
          mkdirSync(dirname(join(typed, 'node_modules', name)), { recursive: true });
          symlinkSync(join(root, 'node_modules', name), join(typed, 'node_modules', name), 'dir');
        }
        writeFileSync(
          join(typed, 'consumer.ts'),
          `${specifiers.map((specifier, i) => `import * as m${i} from '${specifier}';`).join('\n')}
import express from 'express';
import { SessionManager, type Session } from '${pkg.name}';
import { session } from '${pkg.name}/express';
import { flash, takeFlash, type FlashMessage } from '${pkg.name}/flash';
import { MemoryStore } from '${pkg.name}/stores/memory';
import expressSession from '${pkg.name}/express-session';

const manager = new SessionManager({ store: new MemoryStore(), secrets: ['s'.repeat(32)] });
express().use(session(manager));
export const dropIn = expressSession({ secret: 's'.repeat(32), resave: false, saveUninitialized: false });
declare const current: Session;
flash(current, 'info', 'Signed in');
export const notices: FlashMessage[] = takeFlash(current);
// @ts-expect-error a store must be a SessionStore (shows the types are real, not any)
export const wrong = new SessionManager({ store: 42, secrets: ['s'.repeat(32)] });
export const modules = [${specifiers.map((_, i) => `m${i}`).join(', ')}];
`,
        );
        for (const [name, module, moduleResolution] of [
          ['node16', 'node16', 'node16'],
          ['bundler', 'esnext', 'bundler'],
        ]) {
          writeFileSync(
            join(typed, `tsconfig.${name}.json`),
            JSON.stringify({
              compilerOptions: {
                module,
                moduleResolution,
                target: 'es2022',
                lib: ['es2022'],
                strict: true,
                noEmit: true,
                // The peers' own declarations are theirs to check (some disagree with their
                // dependencies' newer types); Tessera's are checked by the test above.
                skipLibCheck: true,
                types: ['node'],
              },
              files: ['consumer.ts'],
            }),
          );
        }
      });

      it(
        'loads every subpath, those that need a peer at run time included',
        async () => {
          const result = (await nodeIn(
            typed,
            'import-with-peers.mjs',
            `const exports = {};
for (const specifier of JSON.parse(process.argv[2])) exports[specifier] = Object.keys(await import(specifier));
console.log(JSON.stringify(exports));
`,
            specifiers,
          )) as Record<string, string[]>;
          for (const specifier of specifiers) {
            expect(result[specifier]?.length, specifier).toBeGreaterThan(0);
          }
        },
        SLOW,
      );

      it(
        'type-checks under moduleResolution node16',
        async () => {
          expect(await typeCheck(typed, 'tsconfig.node16.json')).toBe('');
        },
        SLOW,
      );

      it(
        'type-checks under moduleResolution bundler',
        async () => {
          expect(await typeCheck(typed, 'tsconfig.bundler.json')).toBe('');
        },
        SLOW,
      );
    });
  },
);

/** The names in a node_modules folder, scopes opened, npm's own files left out. */
function readdirNames(folder: string): string[] {
  const names: string[] = [];
  for (const entry of readdirSync(folder)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@'))
      for (const inner of readdirSync(join(folder, entry))) names.push(`${entry}/${inner}`);
    else names.push(entry);
  }
  return names.sort();
}
