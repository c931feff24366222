#!/usr/bin/env node
/**
 * Builds the CommonJS entry of `tessera-session/express-session`, so that `require('tessera-session/express-session')`
 * answers the middleware function itself (with `.Store`, `.MemoryStore`, `.Session`, `.Cookie`), as
 * `require('express-session')` does, on every Node.js 20 release. (`require()` of the ES module
 * works only from Node.js 20.19, and answers a namespace object that cannot be called.)
 *
 * Output: dist/cjs/express-session.cjs (one bundle of src/adapters/express-session.ts and the core
 * modules it uses; `cookie` and Node's built-ins stay external) and dist/cjs/express-session.d.cts.
 *
 * Usage: node scripts/build-express-session-cjs.mjs [--outdir DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const flag = process.argv.indexOf('--outdir');
const outdir =
  flag > 0 && process.argv[flag + 1]
    ? path.resolve(process.argv[flag + 1])
    : path.join(root, 'dist', 'cjs');

// The entry re-exports the ES module's default (the middleware factory) as module.exports, with
// every named export on it and `default` pointing at itself for transpiled `import session from`.
const entry = [
  "const m = require('./src/adapters/express-session.ts');",
  'module.exports = Object.assign(m.default, m, { default: m.default });',
  '',
].join('\n');

await mkdir(outdir, { recursive: true });
await build({
  stdin: {
    contents: entry,
    resolveDir: root,
    sourcefile: 'express-session.cjs-entry.js',
    loader: 'js',
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['cookie'],
  outfile: path.join(outdir, 'express-session.cjs'),
  legalComments: 'none',
  logLevel: 'warning',
});

const types = `// Types of the CommonJS entry: the ES module's default export, with its named exports on it.
type Module = typeof import('../adapters/express-session.js', { with: { 'resolution-mode': 'import' } });
declare const session: Module['default'] & Omit<Module, 'default'> & { default: Module['default'] };
export = session;
`;
await writeFile(path.join(outdir, 'express-session.d.cts'), types);
