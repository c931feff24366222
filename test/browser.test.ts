import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_REAUTH_MS } from '../examples/demo/app.js';
import { request, serveDemo, type RunningDemo } from './support/demo-client.js';
import { requireService } from './support/services.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const browserGate = await requireService(
  `Chromium at ${CHROMIUM}`,
  async () => existsSync(CHROMIUM) || 'not installed (apt-get install chromium)',
);

/** Screenshots for a person to look at; `.tmp/` is ignored by git. */
const SCREENSHOTS = '.tmp/screenshots';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

/**
 * A second origin on another loopback port: each of its pages holds a form that posts itself to
 * the demo as soon as it loads, as a forger's page would (`/login` signs in as bob, `/prefs` sets
 * a preference). Served as `http://localhost:PORT` it is another site than the demo on
 * `127.0.0.1`; as `http://127.0.0.1:PORT` the same site on another port, whose requests carry the
 * demo's `SameSite=Lax` cookie.
 */
async function startForger(target: string): Promise<{ port: number; close(): Promise<void> }> {
  const forms: Record<string, Record<string, string>> = {
    '/login': { username: 'bob', password: 'builder' },
    '/prefs': { theme: 'dark' },
  };
  const server = createServer((req, res) => {
    const fields = forms[req.url ?? ''];
    if (fields === undefined) {
      res.writeHead(404).end();
      return;
    }
    const inputs = Object.entries(fields)
      .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`)
      .join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>You won a prize</title>
<form method="post" action="${target}${req.url}">${inputs}</form>
<script>document.forms[0].submit();</script>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const REFUSAL = { error: 'Cross-origin request refused', code: 'CROSS_ORIGIN_REFUSED' };

/** Seconds left in a countdown the page's script wrote: "in 29:55" or "in 11:59:55". */
function secondsIn(text: string | null): number {
  const match = /^in (?:(\d+):)?(\d+):(\d\d)$/.exec(text ?? '');
  if (match === null) throw new Error(`not a countdown: ${JSON.stringify(text)}`);
  return Number(match[1] ?? 0) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

describe.skipIf(!browserGate.available)(`the demo in a real browser${browserGate.label}`, () => {
  let demo: RunningDemo;
  let base: string;
  let forger: { port: number; close(): Promise<void> };
  let browser: Browser;

  beforeAll(async () => {
    // The demo as `npm start` runs it, on a clock the re-authentication test moves.
    demo = await serveDemo();
    base = demo.base;
    forger = await startForger(base);
    mkdirSync(SCREENSHOTS, { recursive: true });
    // launch (not launchPersistentContext) runs Chromium on a fresh temporary profile.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await forger?.close();
    await demo?.close();
  });

  /** A separate browser (its own cookies and clock) in the same Chromium. */
  async function newBrowser(options: { userAgent?: string; mobile?: boolean } = {}) {
    const context = await browser.newContext({
      ...(options.userAgent === undefined ? {} : { userAgent: options.userAgent }),
      ...(options.mobile ? { viewport: { width: 390, height: 844 }, isMobile: true } : {}),
    });
    return { context, page: await context.newPage() };
  }

  async function signIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto(base + '/');
    await page.fill('input[name=username]', username);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
  }

  it('signs in with the form, keeps the cookie out of scripts, saves preferences, counts down, and signs out', async () => {
    const { context, page } = await newBrowser();
    // The page's clock is Playwright's: the countdown moves only when the test says so.
    await context.clock.install();
    await page.goto(base + '/');
    expect(await context.cookies()).toEqual([]);

    await signIn(page, 'alice', 'wrong');
    expect(await page.textContent('[role=alert]')).toContain('Wrong username or password');
    expect(await page.inputValue('input[name=username]')).toBe('alice');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe(
      'password',
    );
    expect(await context.cookies()).toEqual([]);
    await page.screenshot({ path: `${SCREENSHOTS}/demo-wrong-password.png`, fullPage: true });

    await page.fill('input[name=password]', 'wonderland');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Welcome, alice');
    const session = (await context.cookies()).find((c) => c.name === 'sid');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/', secure: false });
    expect(await page.evaluate(() => document.cookie)).toBe('');
    expect(await page.textContent('#browser-holds')).toContain('opaque 256-bit ID');
    expect(await page.textContent('#sessions')).toContain('Chrome on Linux');

    // A plain form post: the page's Content-Security-Policy allows it.
    await page.selectOption('select[name=theme]', 'dark');
    await page.selectOption('select[name=language]', 'fr');
    await page.click('text=Save preferences');
    await page.waitForSelector('[data-notice=prefs-saved]');
    expect(await page.textContent('#prefs')).toMatch(/theme\s*=\s*dark/);
    expect(await page.getAttribute('body', 'data-theme')).toBe('dark');
    expect(await page.inputValue('select[name=language]')).toBe('fr');

    // The countdown, driven by the page's (fake) clock: five seconds pass, five go off it.
    const idle = page.locator('#idle-deadline .countdown');
    const now = await page.evaluate(() => Date.now());
    await page.clock.pauseAt(now + 1_000);
    const before = secondsIn(await idle.textContent());
    expect(before).toBeGreaterThan(29 * 60);
    expect(before).toBeLessThanOrEqual(30 * 60);
    await page.clock.runFor(5_000);
    const after = secondsIn(await idle.textContent());
    expect(before - after).toBeGreaterThanOrEqual(4);
    expect(before - after).toBeLessThanOrEqual(6);
    expect(secondsIn(await page.textContent('#absolute-deadline .countdown'))).toBeGreaterThan(
      11 * 3600,
    );
    await page.screenshot({ path: `${SCREENSHOTS}/demo-signed-in.png`, fullPage: true });
    await page.clock.fastForward('30:00');
    expect(await idle.textContent()).toBe('now: reload the page');

    await page.click('header >> text=Sign out');
    await page.waitForSelector('[data-notice=signed-out]');
    expect(await page.textContent('[role=status]')).toContain('You signed out.');
    expect(await context.cookies()).toEqual([]);
    await page.screenshot({ path: `${SCREENSHOTS}/demo-signed-out.png`, fullPage: true });
    await context.close();
  });

  it('revokes another browser’s session, which is then told it ended on another device', async () => {
    const laptop = await newBrowser();
    const phone = await newBrowser({ userAgent: IPHONE, mobile: true });
    await signIn(phone.page, 'bob', 'builder');
    await phone.page.waitForSelector('text=Welcome, bob');
    await phone.page.screenshot({ path: `${SCREENSHOTS}/demo-phone.png`, fullPage: true });
    await signIn(laptop.page, 'bob', 'builder');
    await laptop.page.waitForSelector('text=Welcome, bob');

    const current = laptop.page.locator('#sessions tr.current');
    expect(await current.textContent()).toContain('Chrome on Linux');
    expect(await current.textContent()).toContain('This browser');
    const phoneRow = laptop.page.locator('#sessions tr', { hasText: 'Safari on iOS' });
    expect(await phoneRow.textContent()).toContain('127.0.0.1');
    await laptop.page.screenshot({ path: `${SCREENSHOTS}/demo-two-sessions.png`, fullPage: true });

    await phoneRow.getByRole('button', { name: 'Sign out' }).click();
    await laptop.page.waitForSelector('[data-notice=revoked]');
    expect(await laptop.page.locator('#sessions tbody tr').count()).toBe(1);

    await phone.page.reload();
    await phone.page.waitForSelector('[data-notice=ended-elsewhere]');
    expect(await phone.page.textContent('[role=alert]')).toContain(
      'Your session was ended on another device.',
    );
    expect(await phone.page.isVisible('form[action="/login"]')).toBe(true);
    await phone.page.screenshot({
      path: `${SCREENSHOTS}/demo-ended-elsewhere.png`,
      fullPage: true,
    });

    await laptop.context.close();
    await phone.context.close();
  });
  it('refuses a sign-in form another site posts on its own (login CSRF): 403, and no session', async () => {
    const { context, page } = await newBrowser();
    const before = (await demo.manager.listUserSessions('bob')).length;
    const answered = page.waitForResponse(`${base}/login`);
    await page.goto(`http://localhost:${forger.port}/login`, { waitUntil: 'commit' });
    const response = await answered;
    expect(response.status()).toBe(403);
    expect(await response.json()).toEqual(REFUSAL);
    const sent = await response.request().allHeaders();
    expect(sent['sec-fetch-site']).toBe('cross-site');
    expect(sent.origin).toBe(`http://localhost:${forger.port}`);
    await page.waitForURL(`${base}/login`);
    expect(await page.textContent('body')).toContain('CROSS_ORIGIN_REFUSED');
    await page.screenshot({ path: `${SCREENSHOTS}/demo-cross-origin-refused.png`, fullPage: true });

    expect(await context.cookies(base)).toEqual([]);
    expect(await demo.manager.listUserSessions('bob')).toHaveLength(before);
    await page.goto(base + '/');
    expect(await page.isVisible('form[action="/login"]')).toBe(true);
    await context.close();
  });

  it('refuses a form a sibling origin posts with the signed-in user’s cookie, changing nothing', async () => {
    const { context, page } = await newBrowser();
    await signIn(page, 'alice', 'wonderland');
    await page.waitForSelector('text=Welcome, alice');
    const cookie = (await context.cookies(base)).find((c) => c.name === 'sid')!.value;

    const answered = page.waitForResponse(`${base}/prefs`);
    await page.goto(`http://127.0.0.1:${forger.port}/prefs`, { waitUntil: 'commit' });
    const response = await answered;
    expect(response.status()).toBe(403);
    const sent = await response.request().allHeaders();
    // Same site, so SameSite=Lax let the session cookie ride along: Fetch metadata refused it.
    expect(sent['sec-fetch-site']).toBe('same-site');
    expect(sent.cookie).toContain(`sid=${cookie}`);
    await page.waitForURL(`${base}/prefs`);

    await page.goto(base + '/');
    await page.waitForSelector('text=Welcome, alice');
    expect(await page.textContent('#prefs')).toContain('none yet');
    expect(await page.getAttribute('body', 'data-theme')).toBeNull();
    expect((await context.cookies(base)).find((c) => c.name === 'sid')!.value).toBe(cookie);
    await context.close();
  });

  it('signs the other sessions out after asking for the password again', async () => {
    // Every session of the earlier tests has expired: the list holds this test's only.
    demo.clock.advance(13 * 3_600_000);
    const laptop = await newBrowser();
    const phone = await newBrowser({ userAgent: IPHONE, mobile: true });
    const problems: string[] = [];
    // The two 401s the script expects show as failed loads; anything else is a problem.
    laptop.page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('status of 401')) {
        problems.push(message.text());
      }
    });
    laptop.page.on('pageerror', (error) => problems.push(error.message));
    await signIn(phone.page, 'bob', 'builder');
    await phone.page.waitForSelector('text=Welcome, bob');
    await signIn(laptop.page, 'bob', 'builder');
    await laptop.page.waitForSelector('text=Welcome, bob');
    const page = laptop.page;
    const prompt = page.locator('#reauth');
    const message = page.locator('#reauth-message');
    // Signed in just now: the button alone.
    expect(await prompt.isVisible()).toBe(false);
    const sidOf = async () => (await laptop.context.cookies(base)).find((c) => c.name === 'sid')!;
    const before = (await sidOf()).value;

    // The page stays open past the window: the server answers 401 and the script asks.
    demo.clock.advance(DEFAULT_REAUTH_MS + 1_000);
    const revokeOthers = page.getByRole('button', { name: 'Sign out all other sessions' });
    await revokeOthers.click();
    await message.waitFor({ state: 'visible' });
    expect(await message.textContent()).toContain('Enter your password');
    expect(await prompt.isVisible()).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe(
      'password',
    );
    await page.screenshot({ path: `${SCREENSHOTS}/demo-reauth-prompt.png`, fullPage: true });

    await page.fill('#reauth input', 'wrong');
    await revokeOthers.click();
    await expect.poll(() => message.textContent()).toContain('Wrong password');
    expect(await demo.manager.listUserSessions('bob')).toHaveLength(2);
    expect((await sidOf()).value).toBe(before);

    await page.fill('#reauth input', 'builder');
    await revokeOthers.click();
    await page.waitForSelector('[data-notice=revoked-others]');
    expect(await page.locator('#sessions tbody tr').count()).toBe(1);
    expect(await demo.manager.listUserSessions('bob')).toHaveLength(1);
    // Re-authentication moved this browser to a new session ID; the old cookie is dead.
    const after = await sidOf();
    expect(after.value).not.toBe(before);
    expect(after).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect((await request(base, '/api/me', { cookie: `sid=${before}` })).status).toBe(401);
    await page.screenshot({ path: `${SCREENSHOTS}/demo-revoked-others.png`, fullPage: true });

    await phone.page.reload();
    await phone.page.waitForSelector('[data-notice=ended-elsewhere]');
    // The page's script ran under its Content-Security-Policy: no violation, no error.
    expect(problems).toEqual([]);
    await laptop.context.close();
    await phone.context.close();
  });
});
