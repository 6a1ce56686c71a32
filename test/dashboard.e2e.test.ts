/**
 * The admin's live dashboard in headless Chromium (Debian's chromium, driven by playwright-core)
 * against a running Shuttle under bounded load: its figures move, a host taken down turns
 * unhealthy on the page, it loads nothing from anywhere but the admin, and a screenshot is saved
 * as test-output/dashboard.png. Skipped, saying so, where chromium is not installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream } from './support/http.ts';
import { loop } from './support/load.ts';
import { startShuttle, testConfig } from './support/shuttle.ts';

/** The page's DOM, as the functions run in the browser see it (the tests' TS config has no DOM lib). */
declare const document: { querySelector(selector: string): { textContent: string | null } | null };

const CHROMIUM = ['chromium', 'chromium-browser'].map((name) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()).find((p) => p !== '');
const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function get(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The text of a cell of the dashboard, by row selector and data-field. */
const cellText = (page: Page, row: string, field: string) => page.locator(`${row} [data-field="${field}"]`).first().innerText();

describe('dashboard', () => {
  it.skipIf(!CHROMIUM)(`shows live figures, turns a downed host unhealthy, loads only from the admin${CHROMIUM ? '' : ' (SKIPPED: chromium not installed; apt-get install chromium)'}`, async () => {
    const a = await httpUpstream('a');
    const b = await httpUpstream('b');
    cleanup.push(() => a.close());
    const healthCheck = { type: 'tcp', interval: '200ms', timeout: '200ms', unhealthy_threshold: 2, healthy_threshold: 1 };
    const shuttle = startShuttle(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'web', retry_policy: { retry_on: ['connect-failure'], num_retries: 1 } }] }] }],
      clusters: [{ name: 'web', hosts: [a.address, b.address], health_check: healthCheck }],
    }), { threads: 2 });
    cleanup.push(() => shuttle.stop());
    const { admin, listeners } = await shuttle.ready();
    // Bounded load: at most 20,000 requests, a few ms apart, stopped at the end of the test.
    let n = 0;
    const load = loop(async () => {
      await get(listeners.web.port, `/load/${n++}`);
      await new Promise((r) => setTimeout(r, 5));
    }, 20_000);
    cleanup.push(() => load.stop());

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    cleanup.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    const problems: string[] = [];
    const requested: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('request', (r) => requested.push(r.url()));
    const response = await page.goto(`${admin}/dashboard`);
    expect(response!.status()).toBe(200);
    expect(response!.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'sha256-[^']+'/);

    // Live: the request count moves between polls, and rates and percentiles appear.
    const row = '[data-listener="web"]';
    await page.waitForFunction((sel) => /^\d/.test(document.querySelector(`${sel} [data-field="requests"]`)?.textContent ?? ''), row, { timeout: 15_000 });
    const first = Number(await cellText(page, row, 'requests'));
    await page.waitForFunction(([sel, before]) => Number(document.querySelector(`${sel} [data-field="requests"]`)?.textContent) > before, [row, first] as const, { timeout: 15_000 });
    await page.waitForFunction((sel) => /^\d/.test(document.querySelector(`${sel} [data-field="rps"]`)?.textContent ?? '') && /s$/.test(document.querySelector(`${sel} [data-field="p99"]`)?.textContent ?? ''), row, { timeout: 15_000 });
    expect(Number(await cellText(page, row, 'rps'))).toBeGreaterThan(0);
    expect(await cellText(page, row, 'p50')).toMatch(/^\d+(\.\d+)? (µs|ms|s)$/);
    expect(await page.locator('#workers tbody tr').count()).toBe(2);
    expect(await page.locator('#workers [data-field="health"]').allInnerTexts()).toEqual(['ready', 'ready']);
    expect(await cellText(page, `[data-host="web/${b.address}"]`, 'health')).toBe('healthy');
    expect(await cellText(page, '[data-cluster="web"]', 'health')).toBe('2/2 healthy');

    // A host taken down turns unhealthy on the page (checks every 200 ms, 2 failures: bound ×25).
    await b.close();
    await page.waitForFunction((sel) => document.querySelector(`${sel} [data-field="health"]`)?.textContent === 'unhealthy', `[data-host="web/${b.address}"]`, { timeout: 15_000 });
    expect(await page.locator(`[data-host="web/${b.address}"] .flags`).innerText()).toBe('failed_active_health_check');
    expect(await cellText(page, '[data-cluster="web"]', 'health')).toBe('1/2 healthy');
    expect(await cellText(page, `[data-host="web/${a.address}"]`, 'health')).toBe('healthy');
    expect(await page.locator('#status').innerText()).toMatch(/^live · updated/);

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: `${OUTPUT}dashboard.png`, fullPage: true });
    await load.stop();
    expect(load.counts.ok).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    // Nothing but the admin itself: no CDN, works offline.
    expect(requested.length).toBeGreaterThan(2);
    expect(requested.filter((u) => !u.startsWith(`${admin}/`))).toEqual([]);
  }, 90_000);
});
