/**
 * The express-session drop-in keeps express-session's behaviour: no cross-origin protection
 * unless asked. Asked, it refuses as the manager does, before the session is read.
 */
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import session, {
  MemoryStore,
  type SessionOptions,
} from '../../src/compat/express-session/index.js';
import { listen, sessionOf, type Running } from './helpers.js';

const secret = 'a test secret that is at least thirty-two bytes long';
const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** An app whose `POST /note` stores a note; answers its URL and the store's read count. */
async function start(options: SessionOptions = {}) {
  const store = new MemoryStore();
  const reads = { count: 0 };
  const get = store.get.bind(store);
  store.get = (sid, callback) => {
    reads.count++;
    return get(sid, callback);
  };
  const app = express();
  app.use(session({ secret, resave: false, saveUninitialized: false, store, ...options }));
  app.post('/note', (req, res) => {
    sessionOf(req).note = 'written';
    res.send('ok');
  });
  const server = await listen(app);
  running.push(server);
  return { url: server.url, reads };
}

const crossSite = { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' };

describe('cross-origin protection in the express-session drop-in', () => {
  it('is off by default, as in express-session', async () => {
    const { url } = await start();
    const answer = await fetch(`${url}/note`, { method: 'POST', headers: crossSite });
    expect(answer.status).toBe(200);
  });

  it('when asked, refuses before reading the session: next(error) with status 403', async () => {
    const { url, reads } = await start({ crossOrigin: true });
    const first = await fetch(`${url}/note`, { method: 'POST' });
    expect(first.status).toBe(200);
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    const before = reads.count;
    const refused = await fetch(`${url}/note`, {
      method: 'POST',
      headers: { ...crossSite, cookie },
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.getSetCookie()).toEqual([]);
    expect(reads.count).toBe(before);
    const sameOrigin = await fetch(`${url}/note`, {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', cookie },
    });
    expect(sameOrigin.status).toBe(200);
  });

  it('takes the same options as the manager', async () => {
    const { url } = await start({ crossOrigin: { trustedOrigins: ['https://evil.example'] } });
    expect((await fetch(`${url}/note`, { method: 'POST', headers: crossSite })).status).toBe(200);
    expect(() => session({ secret, crossOrigin: { bypass: ['nope'] } })).toThrow(/bypass/);
  });
});
