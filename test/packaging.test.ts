import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; import: string; require?: string }>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  dependencies: Record<string, string>;
};
const built = existsSync(join(root, 'dist/index.js'));

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

describe.skipIf(!built)(
  `the package${built ? '' : ' [skipped: dist/ is not built; run npm run build]'}`,
  () => {
    const subpaths = Object.entries(pkg.exports).filter(([, target]) => typeof target === 'object');

    it('points every subpath export at a built file and its types', () => {
      for (const [subpath, target] of subpaths) {
        const { types, import: entry } = target as { types: string; import: string };
        expect(existsSync(join(root, entry)), `${subpath} → ${entry}`).toBe(true);
        expect(existsSync(join(root, types)), `${subpath} → ${types}`).toBe(true);
      }
    });

    it('loads every subpath by the package name', async () => {
      for (const [subpath] of subpaths) {
        const specifier = subpath === '.' ? 'tessera-session' : `tessera-session/${subpath.slice(2)}`;
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
        const imports = bareImports(join(root, (target as { import: string }).import));
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
      const tessera = (await import('tessera-session')) as Record<string, unknown>;
      for (const name of ['SessionManager', 'Session', 'SessionError', 'isSessionError']) {
        expect(tessera[name], name).toBeDefined();
      }
    });
  },
);
