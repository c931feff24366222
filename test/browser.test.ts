import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { createDemoApp } from '../examples/demo/app.js';
import { SECRET } from './support/fixtures.js';
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

/** Seconds left in a countdown the page's script wrote: "in 29:55" or "in 11:59:55". */
function secondsIn(text: string | null): number {
  const match = /^in (?:(\d+):)?(\d+):(\d\d)$/.exec(text ?? '');
  if (match === null) throw new Error(`not a countdown: ${JSON.stringify(text)}`);
  return Number(match[1] ?? 0) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

describe.skipIf(!browserGate.available)(`the demo in a real browser${browserGate.label}`, () => {
  let server: Server;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    const manager = new SessionManager({ store: new MemoryStore(), secrets: [SECRET] });
    server = createDemoApp(manager).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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
    await new Promise((resolve) => server?.close(resolve));
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
});
