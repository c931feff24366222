#!/usr/bin/env node
/**
 * Completes `tessera-session/express-session` after `tsc` has built dist/:
 *
 * - The CommonJS entry, so that `require('tessera-session/express-session')` answers the
 *   middleware function itself (with `.Store`, `.MemoryStore`, `.Session`, `.Cookie`), as
 *   `require('express-session')` does, on every Node.js 20 release. (`require()` of the ES module
 *   works only from Node.js 20.19, and answers a namespace object that cannot be called.)
 *   DIR/cjs/express-session.cjs bundles src/compat/express-session/index.ts and the core modules
 *   it uses; `cookie` and Node's built-ins stay external.
 * - Its types, DIR/cjs/express-session.d.cts: a function merged with a namespace, as
 *   @types/express-session declares express-session, over CommonJS copies of the module's
 *   declarations in DIR/cjs/types/ (DIR/cjs/package.json makes them CommonJS, so that a
 *   `module: node16` program may require them).
 * - The Express typing of both entries (express.d.ts beside each copy of the declarations, and
 *   DIR/compat/express-session.d.ts, the types of the ES module entry): `req.session`,
 *   `req.sessionID` and `req.sessionStore` on Express's Request, and the data keys declared for
 *   'express-session' where @types/express-session is installed. They are written here, outside
 *   the TypeScript project, because Tessera's own Express adapter (tessera-session/express) types
 *   `req.session` differently and the project compiles both.
 *
 * Usage: node scripts/build-express-session-cjs.mjs [--dist DIR]   (DIR defaults to dist/)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const flag = process.argv.indexOf('--dist');
const dist =
  flag > 0 && process.argv[flag + 1]
    ? path.resolve(process.argv[flag + 1])
    : path.join(root, 'dist');
const cjs = path.join(dist, 'cjs');
const entry = path.join(root, 'src', 'compat', 'express-session', 'index.ts');

// The entry re-exports the ES module's default (the middleware factory) as module.exports, with
// every named export on it and `default` pointing at itself for transpiled `import session from`.
const cjsEntry = [
  "const m = require('./src/compat/express-session/index.ts');",
  'module.exports = Object.assign(m.default, m, { default: m.default });',
  '',
].join('\n');

await mkdir(cjs, { recursive: true });
await build({
  stdin: {
    contents: cjsEntry,
    resolveDir: root,
    sourcefile: 'express-session.cjs-entry.js',
    loader: 'js',
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['cookie'],
  outfile: path.join(cjs, 'express-session.cjs'),
  legalComments: 'none',
  logLevel: 'warning',
});
await writeFile(path.join(cjs, 'package.json'), '{\n  "type": "commonjs"\n}\n');

// CommonJS copies of the declarations the entry reaches, from the project's compiler options.
const config = ts.getParsedCommandLineOfConfigFile(
  path.join(root, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  },
);
const program = ts.createProgram([entry], {
  ...config.options,
  noEmit: false,
  declaration: true,
  emitDeclarationOnly: true,
  declarationMap: false,
  sourceMap: false,
  rootDir: path.join(root, 'src'),
  outDir: path.join(cjs, 'types'),
});
const emitted = program.emit();
if (emitted.emitSkipped) {
  const host = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n',
  };
  throw new Error(ts.formatDiagnostics(emitted.diagnostics, host));
}

// The entry's exports, for the CommonJS namespace. Those re-exported with `export type` can only
// be type aliases there; the others are import aliases, which carry values and which declaration
// merging (`declare module ... { interface SessionData ... }`) reaches through.
const checker = program.getTypeChecker();
const entryModule = checker.getSymbolAtLocation(program.getSourceFile(entry));
const members = checker
  .getExportsOfModule(entryModule)
  .filter((symbol) => symbol.getName() !== 'default')
  .sort((a, b) => (a.getName() < b.getName() ? -1 : 1))
  .map((symbol) => {
    const name = symbol.getName();
    const declaration = symbol.declarations?.[0];
    const typeOnly =
      declaration !== undefined &&
      ts.isExportSpecifier(declaration) &&
      (declaration.isTypeOnly || declaration.parent.parent.isTypeOnly);
    return typeOnly ? `  export type ${name} = m.${name};` : `  export import ${name} = m.${name};`;
  });

const express = `// Express's typing of tessera-session/express-session, written by scripts/build-express-session-cjs.mjs.
// @ts-ignore -- 'express-session' has types only where @types/express-session is installed.
import type * as ExpressSession from 'express-session';
import type { Session, SessionData, Store } from './index.js';

declare module './store.js' {
  // With @types/express-session installed, data keys declared for 'express-session' apply here too.
  // @ts-ignore -- see the import above.
  interface SessionData extends ExpressSession.SessionData {}
}

// On Express's own Request (not the global Express.Request that @types/express-session augments),
// so that both can be installed: this declaration takes precedence and stays assignable to theirs.
declare module 'express-serve-static-core' {
  interface Request {
    /** The request's session, set by the session middleware. */
    session: Session & Partial<SessionData>;
    /** The session ID. */
    sessionID: string;
    /** The store of the middleware that handled the request. */
    sessionStore: Store;
  }
}
`;
await writeFile(path.join(cjs, 'types', 'compat', 'express-session', 'express.d.ts'), express);
await mkdir(path.join(dist, 'compat', 'express-session'), { recursive: true });
await writeFile(path.join(dist, 'compat', 'express-session', 'express.d.ts'), express);
await writeFile(
  path.join(dist, 'compat', 'express-session.d.ts'),
  `// Types of the ES module entry, with Express's typing (see ./express-session/express.d.ts).
export * from './express-session/index.js';
export { default } from './express-session/index.js';
import './express-session/express.js';
`,
);

await writeFile(
  path.join(cjs, 'express-session.d.cts'),
  `// Types of the CommonJS entry: the middleware function, with the module's exports on it, as
// @types/express-session declares express-session (so that its classes are types too).
import m = require('./types/compat/express-session/index.js');
import './types/compat/express-session/express.js';

declare function session(options?: m.SessionOptions): m.SessionMiddleware;
declare namespace session {
${members.join('\n')}
}
export = session;
`,
);
