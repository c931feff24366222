/**
 * Loading what the bench cannot import statically: Tessera sources that may not exist yet, and
 * peer packages that ship no types (typed here with only what the bench uses).
 *
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

/** The repository's `src/` directory. */
export const SOURCE_DIR = fileURLToPath(new URL('../../src/', import.meta.url));

/** The `.ts` file behind a `src/`-relative `.js` path. */
export function sourceFile(relative: string): string {
  return join(SOURCE_DIR, relative.replace(/\.js$/, '.ts'));
}

/** Whether a Tessera source file (given as its `.js` import path under `src/`) exists. */
export function sourceExists(relative: string): boolean {
  return existsSync(sourceFile(relative));
}

/**
 * Where the server processes load Tessera from: `BENCH_TESSERA_DIR`, a directory of compiled
 * JavaScript (what an application runs, from `dist/`), or else `src/` through tsx.
 */
export function tesseraFile(relative: string): string {
  const compiled = process.env.BENCH_TESSERA_DIR;
  return compiled === undefined || compiled === ''
    ? sourceFile(relative)
    : join(compiled, relative);
}

/**
 * Imports a Tessera module by its path under `src/` (`'stores/redis.js'`). The result is untyped
 * on purpose: the stores and adapters are being written while the bench is, and a missing file
 * must not fail the typecheck. {@link loadCore} gives the typed core.
 */
export async function loadSource(relative: string): Promise<any> {
  if (!sourceExists(relative))
    throw new Error(`src/${relative.replace(/\.js$/, '.ts')} does not exist`);
  return import(pathToFileURL(tesseraFile(relative)).href);
}

/** The core modules the bench's servers use, typed. */
export interface TesseraCore {
  SessionManager: typeof import('../../src/manager.js').SessionManager;
  MemoryStore: typeof import('../../src/stores/memory.js').MemoryStore;
  expressSession: typeof import('../../src/adapters/express.js').session;
  withSession: typeof import('../../src/adapters/node.js').withSession;
}

/** Loads the core (compiled or from source, see {@link tesseraFile}). */
export async function loadCore(): Promise<TesseraCore> {
  const [manager, memory, express, node] = await Promise.all([
    loadSource('manager.js'),
    loadSource('stores/memory.js'),
    loadSource('adapters/express.js'),
    loadSource('adapters/node.js'),
  ]);
  return {
    SessionManager: manager.SessionManager,
    MemoryStore: memory.MemoryStore,
    expressSession: express.session,
    withSession: node.withSession,
  };
}

/** A request as express-session sees it, with the fields the bench's handlers use. */
export interface ExpressSessionData {
  userId?: string;
  theme?: string;
  locale?: string;
  cart?: number;
  n?: number;
  regenerate(callback: (error?: unknown) => void): void;
  [key: string]: unknown;
}

/** The parts of the `express-session` package the bench uses. */
export interface ExpressSessionModule {
  (options: {
    secret: string;
    name?: string;
    resave?: boolean;
    saveUninitialized?: boolean;
    store?: object;
    cookie?: object;
  }): (req: any, res: any, next: (error?: unknown) => void) => void;
  MemoryStore: new () => object;
  Cookie: new (options?: object) => { toJSON(): object };
}

/** The `express-session` package. */
export const ExpressSession = require('express-session') as ExpressSessionModule;
