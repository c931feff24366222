/**
 * TypeScript applications written for express-session and @types/express-session (test/consumers/)
 * must compile unchanged once their import says tessera-session/express-session: under
 * `module: nodenext` (ES module), `node16` (CommonJS, the .d.cts types) and `commonjs` with
 * `moduleResolution: node10` (typesVersions), with their store packages' factories, and without
 * @types/express-session at all. Each is checked with `tsc --noEmit` against the package as it
 * ships: built from src/ into a temporary node_modules/tessera-session with the repository's
 * package.json, by TypeScript 5.9 and, where installed, TypeScript 7.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const modules = path.join(root, 'node_modules');
const suffix = randomBytes(4).toString('hex');
// Inside the repository, so that the fixtures and the store packages' types find the
// repository's packages (@types/express-session among them) as an installed application would.
const withTypes = path.join(modules, '.cache', `tessera-consumers-${suffix}`);
// Outside it, with only Express linked in: no @types/express-session anywhere above.
const bare = path.join(tmpdir(), `tessera-consumers-bare-${suffix}`);

/** The compilers: TypeScript 5.9 (the project's), and TypeScript 7 where it is installed. */
const compilers = [
  { name: 'TypeScript 5.9', tsc: path.join(modules, 'typescript', 'bin', 'tsc'), node10: true },
  { name: 'TypeScript 7', tsc: path.join(modules, 'typescript7', 'bin', 'tsc'), node10: false },
];

const storePackages = [
  'express',
  '@types/express',
  'express-session',
  '@types/express-session',
  'connect-pg-simple',
  '@types/connect-pg-simple',
  'memorystore',
  'express-mysql-session',
  '@types/express-mysql-session',
  'connect-session-sequelize',
  'sequelize',
];

const fixtures = [
  { name: 'nodenext-esm', home: withTypes, needs: storePackages, node10: false },
  { name: 'node16-cjs', home: withTypes, needs: storePackages, node10: false },
  { name: 'commonjs-node10', home: withTypes, needs: storePackages, node10: true },
  { name: 'nodenext-bare', home: bare, needs: ['express', '@types/express'], node10: false },
];

/** Packages a fixture needs that the repository does not have installed. */
const missing = (names: readonly string[]) =>
  names.filter((name) => !existsSync(path.join(modules, name, 'package.json')));

/** Builds the package from src/ as `npm run build` does, into `target`. */
async function buildPackage(target: string): Promise<void> {
  const dist = path.join(target, 'dist');
  // Errors elsewhere in src/ (reported by the project's own type check) do not stop the emit.
  await run(process.execPath, [compilers[0]!.tsc, '-p', 'tsconfig.json', '--outDir', dist], {
    cwd: root,
  }).catch(() => undefined);
  if (!existsSync(path.join(dist, 'compat', 'express-session', 'index.d.ts'))) {
    throw new Error('tsc did not emit the express-session declarations');
  }
  await run(process.execPath, ['scripts/build-express-session-cjs.mjs', '--dist', dist], {
    cwd: root,
  });
  await cp(path.join(root, 'package.json'), path.join(target, 'package.json'));
}

beforeAll(async () => {
  const installed = path.join(withTypes, 'node_modules', 'tessera-session');
  await mkdir(installed, { recursive: true });
  await buildPackage(installed);
  // The bare application's node_modules: a copy of the package, and links to Express's types only.
  await mkdir(path.join(bare, 'node_modules', '@types'), { recursive: true });
  await cp(installed, path.join(bare, 'node_modules', 'tessera-session'), { recursive: true });
  for (const name of [
    'express',
    '@types/express',
    '@types/express-serve-static-core',
    '@types/node',
  ]) {
    if (existsSync(path.join(modules, name))) {
      await symlink(path.join(modules, name), path.join(bare, 'node_modules', name), 'dir');
    }
  }
  for (const fixture of fixtures) {
    await cp(
      path.join(root, 'test', 'consumers', fixture.name),
      path.join(fixture.home, fixture.name),
      {
        recursive: true,
      },
    );
  }
}, 300_000);

afterAll(async () => {
  await rm(withTypes, { recursive: true, force: true });
  await rm(bare, { recursive: true, force: true });
});

describe('a TypeScript application switching its import to tessera-session/express-session', () => {
  it('gets a package.json that maps the CommonJS types for moduleResolution node10', async () => {
    const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
      typesVersions?: Record<string, Record<string, string[]>>;
    };
    expect(manifest.typesVersions?.['*']?.['express-session']).toEqual([
      './dist/cjs/express-session.d.cts',
    ]);
  });

  for (const compiler of compilers) {
    for (const fixture of fixtures) {
      const absent = missing(fixture.needs);
      const reason = !existsSync(compiler.tsc)
        ? `${compiler.name} is not installed (devDependency "typescript7": "npm:typescript@^7.0.2")`
        : fixture.node10 && !compiler.node10
          ? `${compiler.name} has no moduleResolution node10 (error TS5108)`
          : absent.length > 0
            ? `the fixture's packages are not installed: ${absent.join(', ')}`
            : '';
      it.skipIf(reason !== '')(
        `compiles test/consumers/${fixture.name} with ${compiler.name}${reason ? ` (skipped: ${reason})` : ''}`,
        async () => {
          const result = await run(
            process.execPath,
            [compiler.tsc, '-p', path.join(fixture.home, fixture.name)],
            { cwd: path.join(fixture.home, fixture.name), timeout: 240_000 },
          ).then(
            ({ stdout }) => stdout,
            (error: { stdout?: string; stderr?: string; message: string }) =>
              `${error.stdout ?? ''}${error.stderr ?? ''}` || error.message,
          );
          expect(result.trim()).toBe('');
        },
        300_000,
      );
    }
  }
});
