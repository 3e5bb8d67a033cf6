// The home page hydrates in a real browser and its client-side parts work.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startOnair(['--db', 'mem://']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('home page hydrates, the theme toggle works and persists, and Refresh calls the server', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);

  const res = await page.goto(server.url);
  assert.equal(res.status(), 200);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60_000 });
  assert.equal(await page.locator('h1').first().textContent(), 'Go live from a browser tab.');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');

  // A client-side interaction: only works once the wasm app is attached.
  const toggle = page.getByTestId('theme-toggle');
  assert.equal(await toggle.textContent(), 'Light theme');
  await toggle.click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  assert.equal(await toggle.textContent(), 'Dark theme');
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => localStorage.getItem('onair-theme')), 'light');

  // The choice survives a reload (applied before paint, then picked up by the app).
  await page.reload();
  await page.waitForSelector('body[data-hydrated="true"]');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
  await page.waitForFunction(() => document.querySelector('[data-testid="theme-toggle"]').textContent === 'Dark theme');

  // Refresh re-runs the live-streams server function from the browser.
  const fnResponse = page.waitForResponse((r) => r.url().includes('/api/fn/'));
  await page.getByTestId('refresh-live').click();
  const r = await fnResponse;
  assert.equal(r.status(), 200);
  await page.getByTestId('live-empty').waitFor();

  if (process.env.ONAIR_E2E_SCREENSHOT) await page.screenshot({ path: process.env.ONAIR_E2E_SCREENSHOT, fullPage: true });
  assert.deepEqual(errors, [], `browser errors:\n${errors.join('\n')}`);
  await context.close();
});

test('the bundle arrives compressed under hashed names and is reused without asking', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const seen = [];
  cdp.on('Network.responseReceived', (e) => {
    const path = new URL(e.response.url).pathname;
    if (!path.startsWith('/pkg/')) return;
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    seen.push({ path, status: e.response.status, cached: e.response.fromDiskCache || e.response.fromMemoryCache,
      encoding: h['content-encoding'], cache: h['cache-control'] });
  });

  await page.goto(server.url);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60_000 });
  const wasm = seen.filter((r) => r.path.endsWith('.wasm'));
  assert.equal(wasm.length, 1, JSON.stringify(seen));
  assert.match(wasm[0].path, /^\/pkg\/onair-[0-9a-f]{16}_bg\.wasm$/);
  assert.equal(wasm[0].status, 200);
  assert.ok(['br', 'gzip'].includes(wasm[0].encoding), `the wasm came ${wasm[0].encoding || 'uncompressed'}`);
  assert.equal(wasm[0].cache, 'public, max-age=31536000, immutable');
  const css = seen.find((r) => r.path.endsWith('.css'));
  assert.match(css.path, /^\/pkg\/onair-[0-9a-f]{16}\.css$/);
  assert.equal(css.cache, 'public, max-age=31536000, immutable');

  // Another page: the js, wasm and css come from the cache, not even
  // revalidated (a 304 would have a transferSize: its headers).
  await page.goto(new URL('/login', server.url).href);
  await page.waitForSelector('body[data-hydrated="true"]');
  const again = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => /\/pkg\/onair-.*\.(wasm|js|css)$/.test(new URL(e.name).pathname))
    .map((e) => ({ path: new URL(e.name).pathname, transferSize: e.transferSize, decodedBodySize: e.decodedBodySize })));
  assert.ok(again.length >= 3, JSON.stringify(again));
  for (const r of again) assert.equal(r.transferSize, 0, `fetched again: ${JSON.stringify(r)}`);
  assert.deepEqual(errors, [], `browser errors:\n${errors.join('\n')}`);
  await context.close();
});

test('an unknown page shows the friendly 404 with status 404', async () => {
  const page = await browser.newPage();
  const res = await page.goto(new URL('/definitely/not/here', server.url).href);
  assert.equal(res.status(), 404);
  await page.getByTestId('not-found').waitFor();
  await page.close();
});
