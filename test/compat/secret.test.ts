import { createSecretKey } from 'node:crypto';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import session, { type SessionOptions } from '../../src/compat/express-session/index.js';
import { SessionError } from '../../src/errors.js';
import { Browser, listen, requestOf, sessionOf, type Running } from './helpers.js';

const running: Running[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(
  options: SessionOptions,
  before?: express.RequestHandler,
  factory: typeof session = session,
): Promise<Browser> {
  const app = express();
  if (before !== undefined) app.use(before);
  app.use(factory({ resave: false, saveUninitialized: false, ...options }));
  app.get('/set/:value', (req, res) => {
    sessionOf(req).value = req.params.value;
    res.send('ok');
  });
  app.get('/get', (req, res) => {
    res.json(sessionOf(req).value ?? null);
  });
  app.use(
    (error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res
        .status(500)
        .send(`${(error as SessionError).code ?? 'other'}: ${(error as Error).message}`);
    },
  );
  const server = await listen(app);
  running.push(server);
  return new Browser(server.url);
}

describe('the secret option', () => {
  it.each([
    ['an empty string', ''],
    ['an empty Buffer', Buffer.alloc(0)],
    ['an empty Uint8Array', new Uint8Array(0)],
    ['an empty KeyObject', createSecretKey(Buffer.alloc(0))],
    ['a list holding an empty entry', ['a test secret that is at least thirty-two bytes long', '']],
  ])('refuses %s at start-up', (_label, secret) => {
    const creating = () => session({ secret: secret as never });
    expect(creating).toThrow(SessionError);
    expect(creating).toThrow(/secret must not be empty/);
  });

  it('still refuses an empty list with express-session’s TypeError', () => {
    expect(() => session({ secret: [] })).toThrow(TypeError);
    expect(() => session({ secret: [] })).toThrow(/secret option array/);
  });

  it.each([
    ['a number', 1234567890],
    ['null', null],
    ['false', false],
    ['a plain object', { key: 'a test secret that is at least thirty-two bytes long' }],
    ['a list holding a number', ['a test secret that is at least thirty-two bytes long', 42]],
  ])(
    'refuses %s at start-up, instead of failing once a response is under way',
    (_label, secret) => {
      let thrown: unknown;
      try {
        session({ secret: secret as never });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(SessionError);
      expect((thrown as SessionError).code).toBe('INVALID_OPTION');
      expect((thrown as Error).message).toMatch(/secret must be a string, a Buffer/);
    },
  );

  /** The drop-in as a freshly loaded module: its once-per-process warning not yet given. */
  async function freshSession(): Promise<typeof session> {
    vi.resetModules();
    return (await import('../../src/compat/express-session/index.js')).default;
  }

  it('accepts a short secret with one process warning naming the drop-in and the 32-byte advice', async () => {
    const fresh = await freshSession();
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const browser = await start({ secret: 'too short' }, undefined, fresh);
    await start({ secret: ['also short', Buffer.from('short bytes')] }, undefined, fresh);
    await start({ secret: createSecretKey(Buffer.from('sixteen byte key')) }, undefined, fresh);
    expect(warn).toHaveBeenCalledTimes(1);
    const [message, options] = warn.mock.calls[0]! as [string, { code: string }];
    expect(message).toMatch(/^tessera-session\/express-session: /);
    expect(message).toMatch(/at least 32 random bytes/);
    expect(options.code).toBe('TESSERA_SHORT_SECRET');
    // It keeps working: the cookie it signs verifies.
    await browser.request('/set/kept');
    expect(await browser.text('/get')).toBe('"kept"');
  });

  it('accepts secrets of 32 bytes or more, as strings, bytes and KeyObjects, without a warning', async () => {
    const fresh = await freshSession();
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    for (const secret of [
      'a test secret that is at least thirty-two bytes long',
      Buffer.alloc(32, 7),
      createSecretKey(Buffer.alloc(32, 9)),
    ]) {
      const browser = await start({ secret }, undefined, fresh);
      await browser.request('/set/x');
      expect(await browser.text('/get')).toBe('"x"');
    }
    expect(warn).not.toHaveBeenCalled();
  });

  it('warns about a short req.secret from cookie-parser too, once', async () => {
    const fresh = await freshSession();
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const browser = await start(
      {},
      (req, _res, next) => {
        requestOf(req).secret = 'short';
        next();
      },
      fresh,
    );
    await browser.request('/set/y');
    expect(await browser.text('/get')).toBe('"y"');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/shorter than 32 bytes/);
  });
});

describe('without a secret option (kept from express-session)', () => {
  it('fails each request with "secret option required for sessions" when cookie-parser set none', async () => {
    const browser = await start({});
    const response = await browser.request('/get');
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('INVALID_OPTION: secret option required for sessions');
  });

  it("uses cookie-parser's req.secret", async () => {
    const browser = await start({}, (req, _res, next) => {
      requestOf(req).secret = 'the secret cookie-parser was given, 32 bytes+';
      next();
    });
    await browser.request('/set/from-req');
    expect(await browser.text('/get')).toBe('"from-req"');
  });
});
