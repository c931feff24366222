import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Inside the package, so that the bundle's require('cookie') resolves as it does once installed.
const outdir = path.join(
  root,
  'node_modules',
  '.cache',
  `tessera-cjs-test-${randomBytes(4).toString('hex')}`,
);

/** A CommonJS application, as written for express-session: require, util.inherits, callbacks. */
const consumer = `
const assert = require('node:assert');
const http = require('node:http');
const util = require('node:util');
const express = require('express');
const session = require(process.argv[1]);

assert.strictEqual(typeof session, 'function');
assert.strictEqual(session.default, session);
for (const name of ['Store', 'MemoryStore', 'Session', 'Cookie', 'fromExpressSessionStore', 'toExpressSessionStore']) {
  assert.strictEqual(typeof session[name], 'function', name);
}

function MapStore() { session.Store.call(this); this.map = new Map(); }
util.inherits(MapStore, session.Store);
MapStore.prototype.get = function (sid, cb) { const v = this.map.get(sid); setImmediate(cb, null, v && JSON.parse(v)); };
MapStore.prototype.set = function (sid, s, cb) { this.map.set(sid, JSON.stringify(s)); setImmediate(cb); };
MapStore.prototype.destroy = function (sid, cb) { this.map.delete(sid); setImmediate(cb); };

const store = new MapStore();
const app = express();
app.use(session({ secret: 'a test secret that is at least thirty-two bytes long', store, resave: false, saveUninitialized: false }));
app.get('/', (req, res) => {
  req.session.views = (req.session.views || 0) + 1;
  res.send(String(req.session.views));
});
const server = http.createServer(app).listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  const first = await fetch(url);
  const cookie = first.headers.getSetCookie()[0].split(';')[0];
  assert.match(cookie, /^connect\\.sid=s%3A/);
  assert.strictEqual(await first.text(), '1');
  const second = await fetch(url, { headers: { cookie } });
  assert.strictEqual(await second.text(), '2');
  assert.strictEqual(store.map.size, 1);
  server.close();
  console.log('cjs ok');
});
`;

describe('the CommonJS entry', () => {
  beforeAll(async () => {
    await mkdir(outdir, { recursive: true });
    await run(
      process.execPath,
      [path.join(root, 'scripts', 'build-express-session-cjs.mjs'), '--dist', outdir],
      {
        cwd: root,
      },
    );
  }, 180_000);

  afterAll(async () => {
    await rm(outdir, { recursive: true, force: true });
  });

  it("is require('express-session')-shaped and runs an Express app with an old-style store", async () => {
    const { stdout } = await run(
      process.execPath,
      ['-e', consumer, path.join(outdir, 'cjs', 'express-session.cjs')],
      {
        cwd: root,
        timeout: 30_000,
      },
    );
    expect(stdout.trim()).toBe('cjs ok');
  });
});
