/**
 * Synchronizer tokens through the public API: each "request" loads the session of a cookie,
 * works on it and commits, on the memory store with an injected clock. The HTTP side of every
 * adapter is in test/adapters/csrf-token-adapters.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  SessionError,
  SessionManager,
  verifyCsrfToken,
  type Session,
  type SessionManagerOptions,
} from '../src/index.js';
import { isSafeMethod } from '../src/cross-origin.js';
import { csrfRefusal, csrfSettingsOf, isFormContentType } from '../src/csrf-token.js';
import { errorAnswerOf } from '../src/errors.js';
import { CSRF_SECRET_KEY } from '../src/session.js';
import { cookiePair, rawIdOf, setup, sha256 } from './support/fixtures.js';

type AnySession = Session<Record<string, unknown>>;
type Manager = SessionManager<Record<string, unknown>>;

/** One request: loads the session of `cookie`, runs `work`, commits; answers the next cookie. */
async function request<T>(
  manager: Manager,
  cookie: string | undefined,
  work: (session: AnySession) => T | Promise<T>,
): Promise<{ result: T; cookie: string | undefined; setCookie: readonly string[] }> {
  const session = await manager.load({ cookie });
  const result = await work(session);
  const { setCookie } = await manager.commit(session);
  return { result, cookie: setCookie.length > 0 ? cookiePair(setCookie) : cookie, setCookie };
}

function withTokens(options: Partial<SessionManagerOptions> = {}) {
  return setup({ csrfTokens: true, ...options });
}

/** The error `run` throws, or undefined. */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectCode(error: unknown, code: string): void {
  expect(error).toBeInstanceOf(SessionError);
  expect((error as SessionError).code).toBe(code);
}

/** Whether the session accepts `token`. */
function accepts(session: AnySession, token: unknown): boolean {
  return thrown(() => verifyCsrfToken(session, token)) === undefined;
}

describe('csrfTokens option', () => {
  it('is off by default, and csrfToken() then refuses to make tokens nothing checks', async () => {
    const { manager } = setup();
    expect(manager.csrfTokens).toBeUndefined();
    const session = await manager.load({});
    expectCode(
      thrown(() => session.csrfToken()),
      'INVALID_OPTION',
    );
  });

  it('takes true for the defaults, or the names of the field and the header', () => {
    expect(withTokens().manager.csrfTokens).toEqual({ field: '_csrf', header: 'x-csrf-token' });
    const named = setup({ csrfTokens: { field: 'token', header: 'X-XSRF-Token' } }).manager;
    expect(named.csrfTokens).toEqual({ field: 'token', header: 'x-xsrf-token' });
    expect(setup({ csrfTokens: false }).manager.csrfTokens).toBeUndefined();
  });

  it('refuses anything else at start-up', () => {
    const bad: unknown[] = [
      'yes',
      1,
      null,
      { field: '' },
      { field: 'x'.repeat(65) },
      { field: 7 },
      { header: '' },
      { header: 'x csrf' },
      { header: 'x-csrf:' },
      { header: 'x\r\nset-cookie' },
      { header: 'h'.repeat(65) },
    ];
    for (const csrfTokens of bad) {
      expectCode(
        thrown(() => setup({ csrfTokens } as Partial<SessionManagerOptions>)),
        'INVALID_OPTION',
      );
      expect(() => csrfSettingsOf(csrfTokens)).toThrow(SessionError);
    }
  });
});

describe('session.csrfToken()', () => {
  it('answers a different token at every call, each of which verifies', async () => {
    const { manager } = withTokens();
    const session = await manager.load({});
    const tokens = Array.from({ length: 50 }, () => session.csrfToken());
    expect(new Set(tokens).size).toBe(50);
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/);
      expect(accepts(session, token)).toBe(true);
    }
  });

  it('stores a new session, whose secret is hidden from get, has, keys and toJSON', async () => {
    const { manager, memory } = withTokens();
    const first = await request(manager, undefined, (s) => {
      const token = s.csrfToken();
      expect(s.get(CSRF_SECRET_KEY)).toBeUndefined();
      expect(s.has(CSRF_SECRET_KEY)).toBe(false);
      expect(s.keys()).toEqual([]);
      expect(s.toJSON()).toEqual({});
      return token;
    });
    expect(first.setCookie).toHaveLength(1);
    expect(memory.size).toBe(1);
    // The record holds the secret, never a token.
    const record = memory.get(sha256(rawIdOf(first.cookie!)));
    expect(record!.data).toContain(CSRF_SECRET_KEY);
    expect(record!.data).not.toContain(first.result);

    const next = await request(manager, first.cookie, (s) => {
      s.set('theme', 'dark');
      return { keys: s.keys(), json: s.toJSON(), ok: accepts(s, first.result) };
    });
    expect(next.result).toEqual({ keys: ['theme'], json: { theme: 'dark' }, ok: true });
  });

  it('keeps one secret across requests: tokens of earlier pages keep verifying', async () => {
    const { manager } = withTokens();
    const first = await request(manager, undefined, (s) => s.csrfToken());
    const second = await request(manager, first.cookie, (s) => s.csrfToken());
    expect(second.setCookie).toEqual([]);
    expect(second.result).not.toBe(first.result);
    const third = await request(manager, first.cookie, (s) => [
      accepts(s, first.result),
      accepts(s, second.result),
    ]);
    expect(third.result).toEqual([true, true]);
  });

  it('throws SESSION_ENDED on a destroyed session, which accepts no token', async () => {
    const { manager } = withTokens();
    const first = await request(manager, undefined, (s) => s.csrfToken());
    await request(manager, first.cookie, async (s) => {
      await s.destroy();
      expectCode(
        thrown(() => s.csrfToken()),
        'SESSION_ENDED',
      );
      expect(accepts(s, first.result)).toBe(false);
    });
  });

  it('keeps a secret made while another request saved the session (merged key by key)', async () => {
    const { manager } = withTokens();
    const first = await request(manager, undefined, (s) => s.set('a', 1));
    const slow = await manager.load({ cookie: first.cookie });
    const token = slow.csrfToken();
    await request(manager, first.cookie, (s) => s.set('b', 2));
    await manager.commit(slow);
    const after = await request(manager, first.cookie, (s) => ({
      ok: accepts(s, token),
      data: s.toJSON(),
    }));
    expect(after.result).toEqual({ ok: true, data: { a: 1, b: 2 } });
  });
});

describe('rotation: a token belongs to one session ID', () => {
  const moves: [string, (s: AnySession) => Promise<void> | void][] = [
    ['login()', (s) => s.login('alice', { keep: true })],
    ['regenerate()', (s) => s.regenerate()],
    ['regenerate({ keep: true })', (s) => s.regenerate({ keep: true })],
    ['setUser()', (s) => s.setUser('bob')],
    ['setUser(null) at logout', (s) => s.setUser(null)],
  ];
  for (const [name, move] of moves) {
    it(`refuses tokens issued before ${name}, and issues new ones that verify`, async () => {
      const { manager } = withTokens();
      const first = await request(manager, undefined, (s) => {
        s.set('keep', 'me');
        return s.csrfToken();
      });
      const moved = await request(manager, first.cookie, async (s) => {
        await move(s);
        return { old: accepts(s, first.result), token: s.csrfToken() };
      });
      expect(moved.result.old).toBe(false);
      expect(moved.cookie).not.toBe(first.cookie);
      const later = await request(manager, moved.cookie, (s) => [
        accepts(s, first.result),
        accepts(s, moved.result.token),
      ]);
      expect(later.result).toEqual([false, true]);
    });
  }

  it('keeps the application data that regenerate({ keep: true }) keeps', async () => {
    const { manager } = withTokens();
    const first = await request(manager, undefined, (s) => {
      s.set('cart', [1, 2]);
      s.csrfToken();
    });
    const moved = await request(manager, first.cookie, async (s) => {
      await s.regenerate({ keep: true });
      return s.toJSON();
    });
    expect(moved.result).toEqual({ cart: [1, 2] });
  });
});

describe('verifyCsrfToken', () => {
  it("refuses another session's token, a tampered one and anything that is not a token", async () => {
    const { manager } = withTokens();
    const mine = await manager.load({});
    const theirs = await manager.load({});
    const token = mine.csrfToken();
    const other = theirs.csrfToken();
    const flipped = (token[0] === 'A' ? 'B' : 'A') + token.slice(1);
    const refused: unknown[] = [
      other,
      flipped,
      token.slice(0, -1),
      token + 'A',
      token.toUpperCase(),
      '',
      undefined,
      null,
      42,
      [token],
      { token },
    ];
    for (const submitted of refused) {
      expectCode(
        thrown(() => verifyCsrfToken(mine, submitted)),
        'CSRF_TOKEN_INVALID',
      );
    }
    expect(accepts(mine, token)).toBe(true);
  });

  it('refuses every token in a session that has no secret yet', async () => {
    const { manager } = withTokens();
    const other = (await manager.load({})).csrfToken();
    const fresh = await manager.load({});
    expect(accepts(fresh, other)).toBe(false);
  });

  it('refuses when the stored secret is not one Tessera made', async () => {
    const { manager } = withTokens();
    const session = await manager.load({});
    const token = session.csrfToken();
    session.set(CSRF_SECRET_KEY, 'not a secret');
    expect(accepts(session, token)).toBe(false);
    // A new token replaces the broken secret.
    expect(accepts(session, session.csrfToken())).toBe(true);
  });

  it('is a 403 with a plain body that says why', () => {
    const error = thrown(() => verifyCsrfToken({} as AnySession, 'x'));
    // Not a session at all: a TypeError, never a pass.
    expect(error).toBeInstanceOf(TypeError);
    const refusal = new SessionError('CSRF_TOKEN_INVALID', 'x');
    expect(refusal.status).toBe(403);
    expect(errorAnswerOf(refusal)).toMatchObject({
      status: 403,
      body: 'Forbidden: missing or invalid CSRF token\n',
    });
  });
});

describe('the adapters’ check (csrfRefusal)', () => {
  async function sessionWithToken(options: Partial<SessionManagerOptions> = {}) {
    const { manager } = withTokens(options);
    const session = await manager.load({});
    return { manager, session, token: session.csrfToken() };
  }
  const noHeader = () => undefined;

  it('lets safe methods through without a token, and checks every other one', async () => {
    const { session } = await sessionWithToken();
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      expect(isSafeMethod(method)).toBe(true);
      expect(csrfRefusal(session, method, noHeader, undefined)).toBeUndefined();
    }
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'get', 'TRACE', 'PROPFIND', '']) {
      expect(isSafeMethod(method)).toBe(false);
      const refusal = csrfRefusal(session, method, noHeader, undefined);
      expect(refusal?.code).toBe('CSRF_TOKEN_INVALID');
    }
    expect(csrfRefusal(session, undefined, noHeader, undefined)?.status).toBe(403);
  });

  it('lets a session of the header transport through: no browser adds that header', async () => {
    const { manager } = withTokens({ headerTransport: true });
    const bearer = await manager.load({
      header: (name) => (name === 'authorization' ? 'Bearer not-a-token' : undefined),
    });
    expect(csrfRefusal(bearer, 'POST', noHeader, undefined)).toBeUndefined();
    const cookie = await manager.load({});
    expect(csrfRefusal(cookie, 'POST', noHeader, undefined)?.code).toBe('CSRF_TOKEN_INVALID');
  });

  it('checks nothing when the option is off', async () => {
    const { manager } = setup();
    const session = await manager.load({});
    expect(csrfRefusal(session, 'POST', noHeader, undefined)).toBeUndefined();
  });

  it('reads the header first, then the form field of a parsed body', async () => {
    const { session, token } = await sessionWithToken();
    const header = (value: unknown) => (name: string) =>
      name === 'x-csrf-token' ? value : undefined;
    expect(csrfRefusal(session, 'POST', header(token), undefined)).toBeUndefined();
    expect(csrfRefusal(session, 'POST', noHeader, { _csrf: token })).toBeUndefined();
    expect(
      csrfRefusal(session, 'POST', noHeader, new URLSearchParams({ _csrf: token })),
    ).toBeUndefined();
    const form = new FormData();
    form.set('_csrf', token);
    expect(csrfRefusal(session, 'POST', noHeader, form)).toBeUndefined();
    // An empty header is no header.
    expect(csrfRefusal(session, 'POST', header(''), { _csrf: token })).toBeUndefined();
    // A wrong header is not rescued by a right field.
    expect(csrfRefusal(session, 'POST', header('nope'), { _csrf: token })).toBeDefined();
  });

  it('refuses a field sent twice, a file, an inherited field and bodies that are not forms', async () => {
    const { session, token } = await sessionWithToken();
    const twice = new FormData();
    twice.append('_csrf', new Blob([token]));
    const refused: unknown[] = [
      { _csrf: [token, token] },
      twice,
      Object.create({ _csrf: token }),
      `_csrf=${token}`,
      Buffer.from(`_csrf=${token}`),
      { csrf: token },
      null,
    ];
    for (const body of refused) {
      expect(csrfRefusal(session, 'POST', noHeader, body)?.code).toBe('CSRF_TOKEN_INVALID');
    }
  });

  it('uses the configured field and header names', async () => {
    const { session, token } = await sessionWithToken({
      csrfTokens: { field: 'authenticity', header: 'X-Token' },
    });
    expect(
      csrfRefusal(session, 'POST', (name) => (name === 'x-token' ? token : undefined), undefined),
    ).toBeUndefined();
    expect(csrfRefusal(session, 'POST', noHeader, { authenticity: token })).toBeUndefined();
    expect(csrfRefusal(session, 'POST', noHeader, { _csrf: token })).toBeDefined();
  });

  it('knows the form content types a browser posts', () => {
    expect(isFormContentType('application/x-www-form-urlencoded')).toBe(true);
    expect(isFormContentType('Application/X-WWW-Form-Urlencoded; charset=UTF-8')).toBe(true);
    expect(isFormContentType('multipart/form-data; boundary=x')).toBe(true);
    expect(isFormContentType('application/json')).toBe(false);
    expect(isFormContentType('text/plain')).toBe(false);
    expect(isFormContentType(null)).toBe(false);
    expect(isFormContentType(undefined)).toBe(false);
  });
});
