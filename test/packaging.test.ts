/**
 * The package's shape: its exports (ES modules only, each loadable by import and by require on
 * Node.js >= 20.19), its peers kept to the subpaths that need them, and what `npm pack` ships
 * (the build, the sources its maps name, the docs the README links to, the licence).
 * test/package-install.test.ts installs the packed tarball and uses it as a consumer would.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  type: string;
  license: string;
  engines: { node: string };
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  dependencies: Record<string, string>;
};
const built = existsSync(join(root, 'dist/index.js'));

/** Node.js's conditions for `import` and for `require`, and TypeScript's for their types. */
const IMPORT = ['node', 'import'];
const REQUIRE = ['node', 'require'];
const types = (conditions: string[]) => ['types', ...conditions];

/** The file an export resolves to under these conditions, as Node.js picks: the first key that matches. */
function resolveExport(target: unknown, conditions: readonly string[]): string | undefined {
  if (typeof target === 'string') return target;
  if (typeof target !== 'object' || target === null) return undefined;
  for (const [condition, value] of Object.entries(target)) {
    if (condition !== 'default' && !conditions.includes(condition)) continue;
    const found = resolveExport(value, conditions);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Bare-specifier imports reachable from a built file, following relative imports. */
function bareImports(entry: string, seen = new Set<string>()): Set<string> {
  const found = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(
      /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    )) {
      const specifier = match[1] ?? match[2]!;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else found.add(specifier);
    }
  };
  visit(entry);
  return found;
}

/** Every file under a folder of the repository, as a path from the root with forward slashes. */
function filesUnder(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) =>
      posix.join(posix.relative(root, entry.parentPath).split('\\').join('/'), entry.name),
    );
}

describe.skipIf(!built)(
  `the package${built ? '' : ' [skipped: dist/ is not built; run npm run build]'}`,
  () => {
    const subpaths = Object.entries(pkg.exports).filter(
      ([subpath]) => subpath !== './package.json',
    );
    const esmEntry = (target: unknown) => resolveExport(target, IMPORT)!;

    it('points every subpath export at a built file and its types, for import and require', () => {
      for (const [subpath, target] of subpaths) {
        for (const conditions of [IMPORT, REQUIRE]) {
          const entry = resolveExport(target, conditions);
          const declarations = resolveExport(target, types(conditions));
          expect(entry, `${subpath} [${conditions}]`).toBeDefined();
          expect(declarations, `${subpath} [${conditions}] types`).toMatch(/\.d\.c?ts$/);
          expect(existsSync(join(root, entry!)), `${subpath} → ${entry}`).toBe(true);
          expect(existsSync(join(root, declarations!)), `${subpath} → ${declarations}`).toBe(true);
        }
      }
    });

    it('is ES modules only: require() loads the same files, which Node.js >= 20.19 allows', () => {
      expect(pkg.type).toBe('module');
      expect(pkg.engines.node).toBe('>=20.19');
      for (const [subpath, target] of subpaths) {
        // A subpath with a require condition has a CommonJS build of its own (the express-session
        // drop-in, whose module.exports must be the middleware function).
        if (typeof target === 'object' && target !== null && 'require' in target) continue;
        expect(resolveExport(target, REQUIRE), subpath).toBe(esmEntry(target));
        expect(esmEntry(target), subpath).toMatch(/\.js$/);
      }
    });

    it('loads every subpath by the package name', async () => {
      for (const [subpath] of subpaths) {
        const specifier =
          subpath === '.' ? 'tessera-session' : `tessera-session/${subpath.slice(2)}`;
        const loaded = (await import(specifier)) as Record<string, unknown>;
        expect(Object.keys(loaded).length, specifier).toBeGreaterThan(0);
      }
    });

    it('keeps the core free of drivers and frameworks: only its own dependency and node builtins', () => {
      const imports = bareImports(join(root, 'dist/index.js'));
      for (const specifier of imports) {
        expect(specifier === 'cookie' || specifier.startsWith('node:'), specifier).toBe(true);
      }
    });

    it('imports each peer only from the subpath that needs it, and declares it optional', () => {
      for (const [subpath, target] of subpaths) {
        const imports = bareImports(join(root, esmEntry(target)));
        for (const specifier of imports) {
          if (specifier.startsWith('node:') || specifier in pkg.dependencies) continue;
          const name = specifier.startsWith('@')
            ? specifier.split('/').slice(0, 2).join('/')
            : specifier.split('/')[0]!;
          expect(pkg.peerDependencies[name], `${subpath} imports ${specifier}`).toBeDefined();
          expect(pkg.peerDependenciesMeta[name]?.optional, name).toBe(true);
        }
      }
    });

    it('exports the main API from the root', async () => {
      // Through a variable, so the type-check does not resolve it to dist/, which npm test
      // builds at the same time.
      const entry = 'tessera-session';
      const tessera = (await import(entry)) as Record<string, unknown>;
      for (const name of ['SessionManager', 'Session', 'SessionError', 'isSessionError']) {
        expect(tessera[name], name).toBeDefined();
      }
    });

    describe('what npm pack ships', () => {
      // The files npm would pack from this tree (dist/ as test:slow built it; prepack is the build,
      // so a fresh clone packs the same).
      let packed = new Set<string>();
      beforeAll(() => {
        const stdout = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
          cwd: root,
          encoding: 'utf8',
        });
        const [result] = JSON.parse(stdout) as { files: { path: string }[] }[];
        packed = new Set(result!.files.map((file) => file.path));
      });
      const hint = ', which is not in the package (or is a file left by an earlier build?)';

      it('builds on pack, so a fresh clone packs dist/', () => {
        expect(pkg.scripts.prepack).toMatch(/\bnpm run build\b/);
      });

      it('ships the build, the licence, the readme, the changelog and every doc', () => {
        const wanted = [
          'package.json',
          'LICENSE',
          'README.md',
          'CHANGELOG.md',
          ...filesUnder('docs'),
        ];
        for (const [subpath, target] of subpaths) {
          for (const conditions of [IMPORT, REQUIRE, types(IMPORT), types(REQUIRE)]) {
            const file =
              resolveExport(target, conditions) ?? `(${subpath}: none for ${conditions})`;
            wanted.push(posix.normalize(file));
          }
        }
        for (const file of wanted) expect(packed.has(file), file).toBe(true);
      });

      it("ships none of the repository's own tests, bench, examples or scripts", () => {
        const own = /^(test|bench|examples|scripts|stress|node_modules|data|\.ci|\.tmp)\//;
        for (const file of packed) expect(own.test(file), file).toBe(false);
      });

      it('has source maps that resolve: every source they name is in the package', () => {
        const maps = [...packed].filter((file) => file.endsWith('.map'));
        expect(maps.length).toBeGreaterThan(0);
        for (const map of maps) {
          const { sources, sourceRoot, sourcesContent } = JSON.parse(
            readFileSync(join(root, map), 'utf8'),
          ) as { sources: string[]; sourceRoot?: string; sourcesContent?: (string | null)[] };
          sources.forEach((source, i) => {
            if (typeof sourcesContent?.[i] === 'string') return;
            const file = posix.join(posix.dirname(map), sourceRoot ?? '', source);
            expect(packed.has(file), `${map} names ${file}${hint}`).toBe(true);
          });
        }
      });

      it('has no file pointing at a source map it lacks', () => {
        for (const file of packed) {
          if (!/\.(c|m)?js$|\.d\.(c|m)?ts$/.test(file)) continue;
          const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(
            readFileSync(join(root, file), 'utf8'),
          )?.[1];
          if (url === undefined || url.startsWith('data:')) continue;
          const map = posix.join(posix.dirname(file), url);
          expect(packed.has(map), `${file} → ${map}${hint}`).toBe(true);
        }
      });

      it('has every relative link in the readme and the docs pointing at a shipped file', () => {
        for (const page of [...packed].filter((file) => file.endsWith('.md'))) {
          const text = readFileSync(join(root, page), 'utf8');
          for (const [, href] of text.matchAll(/\]\(([^)\s]+)[^)]*\)/g)) {
            if (/^[a-z][a-z+.-]*:|^#/i.test(href!)) continue; // a URL or a heading on the page
            const target = posix
              .join(posix.dirname(page), href!.replace(/[#?].*$/, ''))
              .replace(/\/$/, '');
            const shipped =
              packed.has(target) || [...packed].some((file) => file.startsWith(`${target}/`));
            expect(shipped, `${page} links to ${href}`).toBe(true);
          }
        }
      });

      it('carries the MIT licence that package.json names', () => {
        expect(pkg.license).toBe('MIT');
        const licence = readFileSync(join(root, 'LICENSE'), 'utf8');
        expect(licence).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the Tessera authors\n/);
      });
    });
  },
);
