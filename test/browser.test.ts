import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
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

describe.skipIf(!browserGate.available)(`the demo in a real browser${browserGate.label}`, () => {
  let server: Server;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    const manager = new SessionManager({ store: new MemoryStore(), secrets: [SECRET] });
    server = createDemoApp(manager).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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

  it('signs in with the form, keeps the cookie out of scripts, and signs out', async () => {
    const context = await browser.newContext({ userAgent: 'TesseraBrowserTest/1.0' });
    const page = await context.newPage();
    await page.goto(base + '/');
    expect(await context.cookies()).toEqual([]);

    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'wrong');
    await page.click('button[type=submit]');
    expect(await page.textContent('[role=alert]')).toContain('Wrong username or password');
    expect(await context.cookies()).toEqual([]);

    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'wonderland');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Welcome, alice');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({
      name: 'sid',
      httpOnly: true,
      sameSite: 'Lax',
      path: '/',
      secure: false,
    });
    expect(await page.evaluate(() => document.cookie)).toBe('');

    const saved = await context.request.post(base + '/api/prefs', {
      data: { theme: 'dark', language: 'en' },
    });
    expect(saved.status()).toBe(200);
    await page.reload();
    expect(await page.textContent('body')).toContain('dark');
    expect(await page.textContent('#sessions')).toContain('TesseraBrowserTest/1.0');
    mkdirSync('.tmp', { recursive: true });
    await page.screenshot({ path: '.tmp/demo-welcome.png', fullPage: true });

    await page.click('text=Sign out');
    await page.waitForSelector('form[action="/login"]');
    expect(await context.cookies()).toEqual([]);
    await context.close();
  });
});
