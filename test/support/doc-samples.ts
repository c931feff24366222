/**
 * Finds the code samples of the documentation (every ```ts and ```js block of README.md and
 * docs/**\/*.md) and reads the marker that may precede one: an HTML comment on the line right
 * before its fence.
 *
 * ```md
 * <!-- sample: needs postgres -->
 * <!-- sample: env SESSION_SECRET SESSION_SECRET_PREVIOUS -->
 * <!-- sample: skip: runs only on Deno -->
 * <!-- sample: fragment
 * import { SessionManager } from 'tessera-session';
 * declare const manager: SessionManager;
 * -->
 * ```
 *
 * Directives are separated by `;`. `fragment`: type-checked, not run; the comment's further
 * lines are a prelude put before the block (so they may declare what the block uses). `skip:
 * REASON`: neither checked nor run. `needs SERVICE...`: run only where the service is there
 * (postgres, mysql, redis, redis-cluster, memcached), with its URL in the environment.
 * `env NAME... NAME=VALUE...`: the run gets these variables, each set to 32 random bytes in
 * base64url, or to the value given, where `{random}` stands for such bytes.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The services a sample may need, and the environment variable that gives each one's address. */
export const SERVICES = {
  postgres: 'DATABASE_URL',
  mysql: 'DATABASE_URL',
  redis: 'REDIS_URL',
  'redis-cluster': 'REDIS_CLUSTER_NODES',
  memcached: 'MEMCACHED_SERVERS',
} as const;
export type ServiceName = keyof typeof SERVICES;

/** What the comment before a sample asks. */
export interface SampleMarker {
  fragment: boolean;
  /** Why the sample is neither checked nor run; undefined when it is. */
  skip: string | undefined;
  needs: ServiceName[];
  /** Variables the run gets: a value, or `undefined` for 32 random bytes in base64url. */
  env: [name: string, value: string | undefined][];
  /** Lines put before the block when it is type-checked (a fragment's declarations). */
  prelude: string[];
}

/** One code block of the documentation. */
export interface Sample {
  /** The Markdown file, relative to the repository (`docs/guide.md`). */
  file: string;
  /** The line of the opening fence, from 1. */
  line: number;
  language: 'ts' | 'js';
  /** The block's lines, without the fence's indentation. */
  code: string;
  marker: SampleMarker;
  /** A problem with the block or its marker; the sample fails with it. */
  problem: string | undefined;
  /** `docs/guide.md:42`, for messages. */
  where: string;
}

const LANGUAGES: Record<string, 'ts' | 'js'> = {
  ts: 'ts',
  typescript: 'ts',
  js: 'js',
  javascript: 'js',
};

/** README.md and every Markdown file under docs/, in a stable order. */
export function documentationFiles(root: string): string[] {
  const files = [join(root, 'README.md')];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  return files.map((file) => relative(root, file));
}

function emptyMarker(): SampleMarker {
  return { fragment: false, skip: undefined, needs: [], env: [], prelude: [] };
}

/** Reads a marker comment's text (between `<!--` and `-->`); answers the marker or a problem. */
export function parseMarker(comment: string): SampleMarker | string {
  const [first = '', ...rest] = comment.split('\n');
  const head = /^\s*sample:(.*)$/.exec(first);
  if (head === null) return 'a sample marker starts with "<!-- sample:"';
  const marker = emptyMarker();
  for (const raw of head[1]!.split(';')) {
    const directive = raw.trim();
    if (directive === '') continue;
    const [word = '', ...args] = directive.split(/\s+/);
    if (word === 'fragment' && args.length === 0) marker.fragment = true;
    else if (word === 'skip:' || word === 'skip') {
      const reason = directive.replace(/^skip:?\s*/, '');
      if (reason === '') return 'skip needs a reason: <!-- sample: skip: REASON -->';
      marker.skip = reason;
    } else if (word === 'needs' && args.length > 0) {
      for (const name of args) {
        if (!(name in SERVICES))
          return `unknown service "${name}" (${Object.keys(SERVICES).join(', ')})`;
        marker.needs.push(name as ServiceName);
      }
    } else if (word === 'env' && args.length > 0) {
      for (const arg of args) {
        const [, name, value] = /^([A-Z_][A-Z0-9_]*)(?:=(.+))?$/.exec(arg) ?? [];
        if (name === undefined) return `"${arg}" is not NAME or NAME=VALUE`;
        marker.env.push([name, value]);
      }
    } else {
      return `unknown sample directive "${directive}" (fragment; skip: REASON; needs SERVICE; env NAME)`;
    }
  }
  const prelude = rest.filter((line) => line.trim() !== '');
  if (prelude.length > 0 && !marker.fragment) return 'only a fragment marker may carry a prelude';
  marker.prelude = prelude;
  return marker;
}

/**
 * The marker comment that ends on the line before `fence` (0-based), if any: its text, or
 * undefined. A comment that does not start with `sample:` is not a marker.
 */
function commentBefore(lines: string[], fence: number): string | undefined {
  const end = fence - 1;
  if (end < 0 || !lines[end]!.trim().endsWith('-->')) return undefined;
  for (let start = end; start >= 0; start--) {
    const at = lines[start]!.indexOf('<!--');
    if (at === -1) continue;
    const text = [lines[start]!.slice(at + 4), ...lines.slice(start + 1, end + 1)].join('\n');
    const body = text.slice(0, text.lastIndexOf('-->'));
    return /^\s*sample\b/.test(body) ? body : undefined;
  }
  return undefined;
}

/** Every ```ts / ```js block of one Markdown text. */
export function extractSamples(file: string, text: string): Sample[] {
  const lines = text.split('\n');
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([A-Za-z]*)/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent = '', fence = '', info = ''] = open;
    let close = i + 1;
    while (
      close < lines.length &&
      !new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`).test(lines[close]!)
    ) {
      close++;
    }
    const language = LANGUAGES[info.toLowerCase()];
    if (language !== undefined) {
      const where = `${file}:${i + 1}`;
      const comment = commentBefore(lines, i);
      const parsed = comment === undefined ? emptyMarker() : parseMarker(comment);
      const body = lines
        .slice(i + 1, close)
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()));
      samples.push({
        file,
        line: i + 1,
        language,
        code: body.join('\n') + '\n',
        marker: typeof parsed === 'string' ? emptyMarker() : parsed,
        problem:
          close >= lines.length
            ? 'the code block is never closed'
            : typeof parsed === 'string'
              ? `bad marker: ${parsed}`
              : undefined,
        where,
      });
    }
    i = close;
  }
  return samples;
}

/** Every sample of the repository's documentation. */
export function findSamples(root: string): Sample[] {
  return documentationFiles(root).flatMap((file) =>
    extractSamples(file, readFileSync(join(root, file), 'utf8')),
  );
}

/** Whether a JavaScript sample is CommonJS (it calls `require` and has no `import`/`export`). */
export function isCommonJs(sample: Sample): boolean {
  return (
    sample.language === 'js' &&
    /\brequire\(/.test(sample.code) &&
    !/^\s*(import|export)\s/m.test(sample.code)
  );
}

/** The source file name of a sample: `docs-guide-md-L42.ts`. */
export function sampleFileName(sample: Sample): string {
  const base = `${sample.file.replace(/[^A-Za-z0-9]+/g, '-')}-L${sample.line}`;
  if (sample.language === 'ts') return `${base}.ts`;
  return `${base}${isCommonJs(sample) ? '.cjs' : '.mjs'}`;
}

/** Whether a sample augments a module or the global scope, so it must be checked on its own. */
export function augments(sample: Sample): boolean {
  return /^\s*declare\s+(module\s+['"]|global\b)/m.test(sample.code);
}

/**
 * The preload every sample runs with (`node --import`). A sample that listens is an app: once it
 * listens, the preload sends it `GET /` (any answer below 500 is fine) and ends the process, so
 * an app needs no code of its own to stop. An app must listen on `process.env.PORT`, which the
 * harness sets to 0; a fixed port fails it.
 */
export const PRELOAD = `
import http from 'node:http';
import net from 'node:net';

const listen = net.Server.prototype.listen;
let answered = false;
let listened = false;

async function smoke(server) {
  if (answered) return;
  answered = true;
  const address = server.address();
  if (server instanceof http.Server && address !== null && typeof address === 'object') {
    const host = address.address === '::' || address.address === '0.0.0.0'
      ? '127.0.0.1'
      : address.family === 'IPv6' ? '[' + address.address + ']' : address.address;
    try {
      const response = await fetch('http://' + host + ':' + address.port + '/', { redirect: 'manual' });
      await response.arrayBuffer();
      console.log('[docs-sample] listening; GET / answered ' + response.status);
      process.exit(response.status >= 500 ? 4 : 0);
    } catch (error) {
      console.error('[docs-sample] GET / failed:', error);
      process.exit(5);
    }
  }
  console.log('[docs-sample] listening');
  process.exit(0);
}

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  const port = typeof first === 'object' && first !== null ? first.port : first;
  // Only the first: a framework may open a second server on the port the first got (Fastify on
  // localhost listens on IPv4 and IPv6).
  const checked = listened;
  listened = true;
  if (!checked && port !== undefined && port !== null && typeof port !== 'function' && Number(port) !== 0 && /^\\d+$/.test(String(port))) {
    console.error('[docs-sample] listens on port ' + port + ': an app must listen on process.env.PORT');
    process.exit(3);
  }
  this.once('listening', () => void smoke(this));
  return listen.apply(this, args);
};
`;
