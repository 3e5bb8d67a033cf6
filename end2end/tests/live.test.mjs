// A browser publishes with MediaRecorder over the ingest socket; another page
// plays the stream with hls.js in low-latency mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startOnair, startSurreal, serveFixtures, launchBrowser, watchErrors } from './harness.mjs';

const PASSWORD = 'e2e-root-pw';
let surreal;
let server;
let fixtures;
let browser;

before(async () => {
  surreal = await startSurreal(PASSWORD);
  server = await startOnair(['--db', surreal.ws, '--db-user', 'root', '--db-password', PASSWORD]);
  fixtures = await serveFixtures();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  fixtures?.close();
  await server?.stop();
  surreal?.stop();
});

test('MediaRecorder in Chromium publishes, and hls.js plays it in low-latency mode', async () => {
  const id = randomBytes(8).toString('hex');
  const token = randomBytes(32).toString('hex');
  const hash = createHash('sha256').update(token).digest('hex');
  await surreal.sql(`UPSERT user:e2e SET username = 'e2e', password_hash = 'x', role = 'broadcaster';
    CREATE stream:\`${id}\` SET owner = user:e2e, title = 'E2E', ingest_token_hash = '${hash}';`);

  const studio = await browser.newPage();
  const studioErrors = watchErrors(studio);
  await studio.goto(`${fixtures.url}/publish.html`);
  await studio.evaluate(([s, i, t]) => start(s, i, t), [server.url.replace(/\/$/, ''), id, token]);
  await studio.waitForFunction(() => window.stats.acked >= 8 || window.stats.closed, null, { timeout: 30_000 })
    .catch(async (e) => { throw new Error(`${e.message}\nstudio: ${JSON.stringify(await studio.evaluate(() => window.stats))}\nerrors: ${studioErrors}\nserver log:\n${server.log().slice(-3000)}`); });
  const stats = await studio.evaluate(() => window.stats);
  assert.equal(stats.closed, null, `the ingest socket closed: ${stats.closed}`);
  assert.ok(stats.mime.startsWith('video/webm'), stats.mime);

  const master = new URL(`live/${id}/master.m3u8`, server.url).href;
  for (let i = 0; i < 100; i++) {
    if ((await fetch(master)).ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  const viewer = await browser.newPage();
  const viewerErrors = watchErrors(viewer);
  await viewer.goto(`${fixtures.url}/watch.html`);
  await viewer.evaluate((url) => play(url, true), master);
  // Generous: on a loaded 2-core machine the ladder's first segments can take
  // a while; the failure message says where playback stood.
  await viewer.waitForFunction(() => {
    const v = document.getElementById('v');
    return window.player.fatal || (v.currentTime > 2 && v.videoWidth > 0);
  }, null, { timeout: 90_000 })
    .catch(async (e) => {
      const where = await viewer.evaluate(() => {
        const v = document.getElementById('v');
        const b = v.buffered.length ? `${v.buffered.start(0)}-${v.buffered.end(v.buffered.length - 1)}` : 'none';
        return { t: v.currentTime, w: v.videoWidth, paused: v.paused, ready: v.readyState, buffered: b, player: window.player };
      });
      throw new Error(`${e.message}\nplayer: ${JSON.stringify(where)}\nerrors: ${viewerErrors}\nserver log:\n${server.log().slice(-3000)}`);
    });
  const result = await viewer.evaluate(() => {
    const v = document.getElementById('v');
    return { fatal: window.player.fatal, currentTime: v.currentTime, width: v.videoWidth, levels: window.player.levels, lowLatency: window.hls.lowLatencyMode };
  });
  assert.equal(result.fatal, null, `hls.js reported a fatal error: ${result.fatal}`);
  assert.ok(result.currentTime > 2, `playback advanced: ${result.currentTime}`);
  assert.ok(result.width > 0);
  assert.ok(result.levels >= 2, `an adaptive ladder: ${result.levels} levels`);
  assert.equal(result.lowLatency, true);

  // The product's own watch page plays the same stream (Rust + hls.js). The
  // fixture player is done: closing it leaves the CPU to this one.
  await viewer.close();
  const watch = await browser.newPage();
  const watchErrorsSeen = watchErrors(watch);
  await watch.goto(new URL(`watch/${id}`, server.url).href);
  await watch.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return v && v.currentTime > 1 && v.videoWidth > 0;
  }, null, { timeout: 90_000 })
    .catch(async (e) => {
      const where = await watch.evaluate(() => {
        const v = document.querySelector('[data-testid=player]');
        return { t: v?.currentTime, w: v?.videoWidth, paused: v?.paused, ready: v?.readyState, bar: document.querySelector('.player-bar')?.textContent, body: document.querySelector('[data-testid=watch]')?.textContent?.slice(0, 300) };
      });
      throw new Error(`${e.message}\nwatch page: ${JSON.stringify(where)}\nerrors: ${watchErrorsSeen}\nserver log:\n${server.log().slice(-2000)}`);
    });
  await watch.waitForSelector('[data-testid=player-status][data-state=playing]', { timeout: 10_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await watch.textContent('.player-bar')}`); });
  assert.equal(await watch.evaluate(() => window.onairPlayer.lowLatencyMode), true);
  // The quality menu: Auto and one entry per rendition; choosing one plays it.
  const options = await watch.$$eval('[data-testid=quality] option', (os) => os.map((o) => [o.value, o.textContent]));
  assert.ok(options.length >= 3, `Auto and the renditions: ${JSON.stringify(options)}`);
  assert.equal(options[0][0], '-1');
  assert.match(options[0][1], /^Auto/);
  assert.match(options[1][1], /^\d+p$/);
  const lowest = options[options.length - 1][0];
  await watch.selectOption('[data-testid=quality]', lowest);
  await watch.waitForFunction((l) => window.onairPlayer.currentLevel === Number(l), lowest, { timeout: 10_000 });
  await watch.selectOption('[data-testid=quality]', '-1');
  await watch.waitForFunction(() => window.onairPlayer.autoLevelEnabled, null, { timeout: 10_000 });
  // At the live edge the badge says LIVE (after the level switches, once the
  // player has caught up); after a pause it offers to jump back.
  await watch.waitForSelector('[data-testid=live-edge][data-behind=false]', { timeout: 15_000 });
  assert.equal(await watch.textContent('[data-testid=live-edge]'), 'LIVE');
  // And it is said once on the page, not in the header and the status too.
  const lives = await watch.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.offsetParent !== null && [...e.childNodes].some((n) => n.nodeType === 3 && /^\s*live\s*$/i.test(n.textContent)))
    .map((e) => e.dataset.testid || e.tagName));
  assert.deepEqual(lives, ['live-edge']);
  // "Behind" means more than max(3 s, 1.5 target latencies) behind hls.js's
  // sync position, and hls.js raises its target after each stall (a loaded
  // machine stalls), so the pause scales with the target it has now. The live
  // window (30 s or more) keeps the paused position playable.
  const target = await watch.evaluate(() => window.onairPlayer.targetLatency || 3);
  const pauseMs = Math.min(20_000, Math.max(6000, Math.ceil(target * 1500) + 3000));
  await watch.evaluate(() => document.querySelector('[data-testid=player]').pause());
  await new Promise((r) => setTimeout(r, pauseMs));
  await watch.evaluate(() => document.querySelector('[data-testid=player]').play());
  await watch.waitForSelector('[data-testid=live-edge][data-behind=true]', { timeout: 10_000 })
    .catch(async (e) => {
      const where = await watch.evaluate(() => ({ t: document.querySelector('[data-testid=player]').currentTime, sync: window.onairPlayer.liveSyncPosition, target: window.onairPlayer.targetLatency, latency: window.onairPlayer.latency }));
      throw new Error(`${e.message}\npaused ${pauseMs} ms; player: ${JSON.stringify(where)}`);
    });
  assert.equal(await watch.textContent('[data-testid=live-edge]'), 'Go live');
  await watch.click('[data-testid=live-edge]');
  await watch.waitForSelector('[data-testid=live-edge][data-behind=false]', { timeout: 10_000 });
  assert.deepEqual(watchErrorsSeen.filter((e) => !e.includes('net::ERR')), []);

  await studio.evaluate(() => window.recorder.stop());
  assert.deepEqual(studioErrors, []);
  assert.deepEqual(viewerErrors.filter((e) => !e.includes('net::ERR')), []);
});

test('the watch page says when a stream is not live, and keeps waiting; a missing one says so', async () => {
  const id = randomBytes(8).toString('hex');
  await surreal.sql(`UPSERT user:e2e SET username = 'e2e', password_hash = 'x', role = 'broadcaster';
    CREATE stream:\`${id}\` SET owner = user:e2e, title = 'Soon', ingest_token_hash = 'x';`);
  const page = await browser.newPage();
  await page.goto(new URL(`watch/${id}`, server.url).href);
  await page.waitForSelector('[data-testid=player-status][data-state=waiting]', { timeout: 20_000 });
  const text = await page.textContent('[data-testid=player-status]');
  assert.match(text, /not live yet/);
  // A stream that does not exist (or is private, which the server does not
  // tell apart) is a 404 that says so, with no player waiting for it.
  const missing = await page.goto(new URL('watch/notlive123', server.url).href);
  assert.equal(missing.status(), 404);
  await page.waitForSelector('[data-testid=watch-missing]');
  assert.equal(await page.$('video'), null, 'no player for a missing stream');
  await page.goto(new URL('watch/bad%20id', server.url).href);
  await page.waitForSelector('[data-testid=watch-invalid]');
});

test('the studio page goes live from a fake camera, viewers watch, and End with confirmation ends it', async () => {
  // A broadcaster signs up and creates a stream through the JSON API, in the
  // browser's own cookie jar: the studio then publishes with that session.
  const context = await browser.newContext();
  const studio = await context.newPage();
  const errors = watchErrors(studio);
  const origin = new URL(server.url).origin;
  const api = (path, data) => studio.request.post(new URL(path, server.url).href, { data, headers: { Origin: origin } });
  const user = `studio${randomBytes(4).toString('hex')}`;
  assert.equal((await api('api/v1/auth/register', { username: user, password: 'correct horse battery' })).status(), 201);
  const created = await api('api/v1/streams', { title: 'Studio E2E', visibility: 'public' });
  assert.equal(created.status(), 201);
  const { id } = await created.json();

  await studio.goto(new URL(`studio/${id}`, server.url).href);
  await studio.waitForSelector('body[data-hydrated=true]');
  assert.equal(await studio.isDisabled('[data-testid=go-live]'), true, 'nothing to send before a preview');
  await studio.click('[data-testid=preview-button]');
  await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
  await studio.waitForFunction(() => document.querySelector('[data-testid=preview]').videoWidth > 0);
  await studio.click('[data-testid=go-live]');
  await studio.waitForFunction(() => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 8,
    null, { timeout: 45_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await studio.textContent('[data-testid=status]')} ${errors}\n${server.log().slice(-2500)}`); });
  assert.equal(await studio.getAttribute('[data-testid=status]', 'data-phase'), 'live');
  assert.match(await studio.textContent('[data-testid=status-mime]'), /h264|avc1/);
  assert.match(await studio.textContent('[data-testid=status-bitrate]'), /bit\/s/);

  // A viewer in another browser context.
  const viewerContext = await browser.newContext();
  const watch = await viewerContext.newPage();
  await watch.goto(new URL(`watch/${id}`, server.url).href);
  assert.equal(await watch.title(), 'Studio E2E · Onair', 'the title is rendered on the server');
  assert.equal(await watch.getAttribute('meta[property="og:title"]', 'content'), 'Studio E2E');
  assert.match(await watch.textContent('[data-testid=watch-owner]'), new RegExp(user));
  await watch.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return v && v.currentTime > 1 && v.videoWidth > 0;
  }, null, { timeout: 45_000 });

  // Leaving the page while live asks first; staying keeps the stream live.
  const asked = new Promise((resolve) => studio.once('dialog', async (d) => { resolve(d.type()); await d.dismiss(); }));
  await studio.close({ runBeforeUnload: true });
  assert.equal(await asked, 'beforeunload');
  assert.equal(studio.isClosed(), false);
  assert.equal(await studio.getAttribute('[data-testid=status]', 'data-phase'), 'live');

  // End asks first; cancelling keeps the stream live.
  await studio.click('[data-testid=end]');
  await studio.click('[data-testid=end-cancel]');
  assert.equal(await studio.getAttribute('[data-testid=status]', 'data-phase'), 'live');
  await studio.click('[data-testid=end]');
  await studio.click('[data-testid=end-confirm]');
  await studio.waitForSelector('[data-testid=status][data-phase=ended]', { timeout: 30_000 });
  const playlist = await (await fetch(new URL(`live/${id}/audio/index.m3u8`, server.url))).text();
  assert.match(playlist, /#EXT-X-ENDLIST/);
  // The viewer's page plays to the end and says so.
  await watch.waitForSelector('[data-testid=player-status][data-state=ended]', { timeout: 45_000 });
  await viewerContext.close();
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR')), []);
  await context.close();
});

test('sign up, create a stream and open its studio from the pages', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(new URL('register', server.url).href);
  await page.waitForSelector('body[data-hydrated=true]');
  const user = `ui${randomBytes(4).toString('hex')}`;
  await page.fill('[data-testid=username]', user);
  await page.fill('[data-testid=password]', 'short');
  await page.click('[data-testid=submit]');
  assert.equal(await page.$eval('[data-testid=password]', (el) => el.validity.tooShort), true, 'the form says the password is too short');
  await page.fill('[data-testid=password]', 'correct horse battery');
  await page.click('[data-testid=submit]');
  await page.waitForURL(/\/streams$/);
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector('[data-testid=no-streams]');
  await page.fill('[data-testid=new-title]', '<script>alert(1)</script> UI stream');
  await page.click('[data-testid=create]');
  await page.waitForSelector('[data-testid=created]');
  const ingestToken = (await page.textContent('[data-testid=created-token]')).trim();
  assert.ok(ingestToken.length >= 32, 'the ingest token is shown once');
  await page.waitForSelector('[data-testid=stream-list] li');
  // The title is text, never markup.
  assert.match(await page.textContent('[data-testid=stream-list]'), /<script>alert\(1\)<\/script> UI stream/);
  await page.click('[data-testid=created-studio]');
  await page.waitForSelector('[data-testid=studio]');
  assert.match(page.url(), /\/studio\/[a-z0-9]+$/);
  const studioUrl = page.url();
  // The owner is told nothing: going live is theirs.
  await page.waitForSelector('body[data-hydrated=true]');
  assert.equal(await page.locator('[data-testid=studio-signed-out], [data-testid=studio-not-owner]').count(), 0);
  await page.click('[data-testid=sign-out]');
  await page.waitForURL(new URL('/', server.url).href);
  // Signed out, the studio says so before any device is picked, with a
  // sign-in link back here; Go live waits for the ingest token.
  await page.goto(studioUrl);
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector('[data-testid=studio-signed-out]');
  const signIn = await page.getAttribute('[data-testid=studio-sign-in]', 'href');
  assert.equal(signIn, `/login?next=${new URL(studioUrl).pathname}`);
  await page.click('[data-testid=preview-button]');
  await page.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
  assert.equal(await page.isDisabled('[data-testid=go-live]'), true, 'no Go live without a session or token');
  await page.fill('[data-testid=token]', ingestToken);
  assert.equal(await page.isDisabled('[data-testid=go-live]'), false, 'the token makes Go live possible');
  // A wrong password gets the server's message.
  await page.goto(new URL('login', server.url).href);
  await page.waitForSelector('body[data-hydrated=true]');
  await page.fill('[data-testid=username]', user);
  await page.fill('[data-testid=password]', 'not the password');
  await page.click('[data-testid=submit]');
  await page.waitForSelector('[data-testid=account-error]', { timeout: 30_000 });
  assert.match(await page.textContent('[data-testid=account-error]'), /password/i);
  // The only expected failure is the 401 for the wrong password.
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR') && !e.includes('http 4') && !e.includes('status of 401')), []);
  await context.close();
});
