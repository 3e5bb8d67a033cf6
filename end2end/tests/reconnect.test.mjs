// The studio's reconnect path: the studio page is served through a TCP proxy
// the test controls; cutting every proxied connection (and refusing new ones
// for two seconds) drops the ingest socket. The studio shows "reconnecting",
// a viewer connected straight to the server sees "Waiting for the
// broadcaster…", the studio comes back by itself, the notice goes, and the
// viewer keeps playing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors, startProxy } from './harness.mjs';

let server;
let browser;
let proxy;

before(async () => {
  // Passthrough only: the ladder is not what this tests, and encoding it
  // in the debug server next to the browser pages starves a 2-core machine.
  server = await startOnair(['--passthrough-only']);
  proxy = await startProxy(Number(new URL(server.url).port));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  proxy?.close();
  await server?.stop();
});

test('a cut ingest socket shows reconnecting, recovers by itself, and the viewer keeps playing', async () => {
  const context = await browser.newContext();
  const studio = await context.newPage();
  const errors = watchErrors(studio);
  // Sign up and create the stream through the proxy: the session is this origin's.
  const origin = new URL(proxy.url).origin;
  const api = (path, data) => studio.request.post(new URL(path, proxy.url).href, { data, headers: { Origin: origin } });
  const user = `recon${randomBytes(4).toString('hex')}`;
  assert.equal((await api('api/v1/auth/register', { username: user, password: 'correct horse battery' })).status(), 201);
  const created = await api('api/v1/streams', { title: 'Reconnect E2E', visibility: 'public' });
  assert.equal(created.status(), 201);
  const { id } = await created.json();

  await studio.goto(new URL(`studio/${id}`, proxy.url).href);
  await studio.waitForSelector('body[data-hydrated=true]');
  await studio.click('[data-testid=preview-button]');
  await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await studio.textContent('[data-testid=status]')} ${errors}`); });
  await studio.click('[data-testid=go-live]');
  const acked = async () => Number(await studio.textContent('[data-testid=status-acked]'));
  await studio.waitForFunction(() => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 8,
    null, { timeout: 45_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await studio.textContent('[data-testid=status]')} ${errors}\n${server.log().slice(-2500)}`); });

  // A viewer straight to the server.
  const viewerContext = await browser.newContext();
  const watch = await viewerContext.newPage();
  await watch.goto(new URL(`watch/${id}`, server.url).href);
  await watch.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return v && v.currentTime > 1 && v.videoWidth > 0;
  }, null, { timeout: 45_000 });

  assert.equal(await watch.locator('[data-testid=watch-away]').count(), 0, 'no outage yet');
  // Cut, and keep the way back closed for a while: the studio sees the drop
  // and says so.
  const before = await acked();
  assert.ok(proxy.down() > 0, 'the proxy carried connections');
  await studio.waitForSelector('[data-testid=status][data-phase=reconnecting]', { timeout: 10_000 });
  // The viewer is told, instead of watching a frozen frame marked LIVE.
  await watch.waitForSelector('[data-testid=watch-away]', { timeout: 10_000 });
  assert.match(await watch.textContent('[data-testid=watch-away]'), /Waiting for the broadcaster/);
  await new Promise((r) => setTimeout(r, 2000));
  proxy.up();
  // It comes back by itself, and the chunks keep being acknowledged.
  await studio.waitForSelector('[data-testid=status][data-phase=live]', { timeout: 30_000 });
  // The viewer's notice goes away by itself.
  await watch.waitForSelector('[data-testid=watch-away]', { state: 'detached', timeout: 15_000 });
  assert.ok(Number(await studio.textContent('[data-testid=status-reconnects]')) >= 1);
  await studio.waitForFunction((n) => Number(document.querySelector('[data-testid=status-acked]').textContent) >= n + 8,
    before, { timeout: 30_000 });
  // Nothing was lost: the server kept one session and no new period.
  const log = server.log();
  assert.doesNotMatch(log, /started a new period|stream interrupted/, 'a resume, not a restart');

  // The viewer kept playing through it.
  const t0 = await watch.evaluate(() => document.querySelector('[data-testid=player]').currentTime);
  await watch.waitForFunction((t) => document.querySelector('[data-testid=player]').currentTime > t + 2,
    t0, { timeout: 20_000 })
    .catch(async (e) => {
      // Say where the player stood, so a failure here can be told apart:
      // stalled on a gap, waiting for data, or an hls.js error.
      const state = await watch.evaluate(() => {
        const v = document.querySelector('[data-testid=player]');
        const ranges = [];
        for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
        return { currentTime: v.currentTime, paused: v.paused, readyState: v.readyState,
          buffered: ranges, status: document.querySelector('[data-testid=player-status]')?.dataset.state };
      });
      throw new Error(`${e.message}: the viewer did not advance from ${t0}: ${JSON.stringify(state)}
server log:\n${server.log().slice(-2500)}`);
    });
  assert.equal(await watch.getAttribute('[data-testid=player-status]', 'data-state'), 'playing');

  // A second studio tab on the live stream says so and offers no Go live.
  const second = await context.newPage();
  await second.goto(new URL(`studio/${id}`, proxy.url).href);
  await second.waitForSelector('body[data-hydrated=true]');
  await second.waitForSelector('[data-testid=live-elsewhere]', { timeout: 10_000 });
  await second.click('[data-testid=preview-button]');
  await second.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await second.textContent('[data-testid=status]')} ${await second.textContent('.studio')}`); });
  assert.equal(await second.isDisabled('[data-testid=go-live]'), true, 'no Go live while live elsewhere');
  await second.close();
  // The broadcasting tab itself shows no such notice.
  assert.equal(await studio.locator('[data-testid=live-elsewhere]').count(), 0);

  await studio.click('[data-testid=end]');
  await studio.click('[data-testid=end-confirm]');
  await studio.waitForSelector('[data-testid=status][data-phase=ended]', { timeout: 30_000 });
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR') && !/WebSocket/i.test(e)), []);
  await viewerContext.close();
  await context.close();
});
