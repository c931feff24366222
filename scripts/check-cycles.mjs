#!/usr/bin/env node
/**
 * Fails when the modules under src/ import each other in a cycle at run time. Type-only imports
 * (`import type`, `export type`) are erased and do not count; dynamic `import()` is lazy and does
 * not count either. Prints each cycle found, as a chain of paths relative to src/.
 *
 * Usage: node scripts/check-cycles.mjs
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import console from 'node:console';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const files = readdirSync(src, { recursive: true })
  .map((name) => path.join(src, name))
  .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));

/** The relative modules a file imports at run time, as absolute .ts paths. */
function runtimeImports(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const targets = [];
  for (const statement of source.statements) {
    const runtime =
      (ts.isImportDeclaration(statement) && !statement.importClause?.isTypeOnly) ||
      (ts.isExportDeclaration(statement) && statement.moduleSpecifier && !statement.isTypeOnly);
    const specifier = runtime ? statement.moduleSpecifier.text : '';
    if (specifier.startsWith('.')) {
      targets.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
    }
  }
  return targets;
}

const graph = new Map(files.map((file) => [file, runtimeImports(file)]));
const state = new Map(); // file -> 'active' while on the path, 'done' once fully explored
const cycles = [];

function visit(file, trail) {
  state.set(file, 'active');
  trail.push(file);
  for (const next of graph.get(file) ?? []) {
    if (state.get(next) === 'active') cycles.push([...trail.slice(trail.indexOf(next)), next]);
    else if (!state.has(next)) visit(next, trail);
  }
  trail.pop();
  state.set(file, 'done');
}

for (const file of files) if (!state.has(file)) visit(file, []);

if (cycles.length > 0) {
  for (const cycle of cycles) {
    console.error(`import cycle: ${cycle.map((file) => path.relative(src, file)).join(' -> ')}`);
  }
  process.exit(1);
}
console.log(`no import cycles among ${files.length} modules in src/`);
