// Recordings in Chromium: a stream published with `onair publish` becomes a
// VOD on its watch page (seek, ?t= deep links, speed), the profile lists it
// with its duration and thumbnail, the dashboard shows it with its MP4, and
// the owner deletes it after a confirm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

const SECONDS = 30;
let server;
let browser;
let media;
let user;
let cookie;
let streamId;

const at = (path) => new URL(path, server.url).href;

before(async () => {
  server = await startOnair();
  browser = await launchBrowser();
  media = mkdtempSync(join(tmpdir(), 'onair-vod-'));
  const file = join(media, 'in.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=30:duration=${SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${SECONDS}`,
    '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60', '-c:a', 'aac', file]);

  user = `vod${randomBytes(4).toString('hex')}`;
  const reg = await fetch(at('api/v1/auth/register'), {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user, password: 'correct horse battery' }),
  });
  assert.equal(reg.status, 201);
  cookie = reg.headers.get('set-cookie').split(';')[0];
  const created = await fetch(at('api/v1/streams'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie, origin: server.url.replace(/\/$/, '') },
    body: JSON.stringify({ title: 'A recorded show', visibility: 'public' }),
  });
  const body = await created.text();
  assert.equal(created.status, 201, body);
  const stream = JSON.parse(body);
  streamId = stream.id;
  try {
    execFileSync(process.env.ONAIR_BIN, ['publish', '--server', server.url, '--stream', streamId,
      '--token', stream.ingest_token, file], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`onair publish failed: ${e.stderr}\nserver log:\n${server.log().slice(-3000)}`);
  }
  // The recording (VOD playlists, then the MP4) is built after the end.
  const deadline = Date.now() + 180_000;
  for (;;) {
    const res = await fetch(at(`api/v1/streams/${streamId}/recording`));
    if (res.status === 200) {
      const rec = await res.json();
      if (rec.mp4.state === 'ready') break;
      assert.notEqual(rec.mp4.state, 'failed', JSON.stringify(rec));
    }
    assert.ok(Date.now() < deadline, 'the recording was not ready in 180 s');
    await new Promise((r) => setTimeout(r, 500));
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (media) rmSync(media, { recursive: true, force: true });
});

/** Waits until the page's video has played past `seconds`; returns its currentTime. */
async function playedPast(page, seconds) {
  await page.waitForFunction((s) => {
    const v = document.querySelector('[data-testid=player]');
    return v && !v.paused && v.currentTime > s;
  }, seconds, { timeout: 60_000 });
  return page.evaluate(() => document.querySelector('[data-testid=player]').currentTime);
}

test('the VOD page seeks, follows ?t=, changes speed and takes keyboard shortcuts', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(at(`watch/${streamId}`));
  await page.waitForSelector('[data-testid=watch-recording]');
  // When it was streamed and for how long (wall clock, start to end).
  assert.match(await page.textContent('[data-testid=watch-when]'), /^Streamed \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC · /);
  assert.match(await page.textContent('[data-testid=watch-length]'), /^(\d+h )?(\d+m )?\d+s$/);
  await page.locator('[data-testid=recording-download] a', { hasText: 'Download MP4' }).waitFor();
  // Link previews get the recording's thumbnail: an absolute URL in the
  // server-rendered page that answers with a JPEG.
  // (The thumbnail is made beside the MP4: poll a little.)
  let image;
  for (let i = 0; i < 40 && !image; i++) {
    const html = await (await page.request.get(at(`watch/${streamId}`))).text();
    image = html.match(/<meta property="og:image" content="([^"]+)"/)?.[1];
    if (!image) await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(image, at(`vod/${streamId}/thumbnail.jpg`));
  const jpeg = await page.request.get(image);
  assert.equal(jpeg.status(), 200);
  assert.equal(jpeg.headers()['content-type'], 'image/jpeg');
  await playedPast(page, 0.5);
  const duration = await page.evaluate(() => document.querySelector('[data-testid=player]').duration);
  assert.ok(Math.abs(duration - SECONDS) < 1, `duration ${duration}`);
  await page.locator('[data-testid=player-time]', { hasText: '/ 0:30' }).waitFor();
  assert.equal(await page.getAttribute('[data-testid=player-status]', 'data-state'), 'playing');
  assert.equal(await page.isHidden('[data-testid=live-edge]'), true, 'no live edge in a recording');

  // Seek to the middle: currentTime lands there and playback continues.
  const middle = SECONDS / 2;
  const landed = await page.evaluate((t) => new Promise((resolve) => {
    const v = document.querySelector('[data-testid=player]');
    v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
    v.currentTime = t;
  }), middle);
  assert.ok(Math.abs(landed - middle) < 0.5, `seeked to ${landed}`);
  const after = await playedPast(page, middle + 1);
  assert.ok(after < middle + 10, `kept playing from the middle: ${after}`);

  // Speed.
  await page.selectOption('[data-testid=speed]', '2');
  assert.equal(await page.evaluate(() => document.querySelector('[data-testid=player]').playbackRate), 2);

  // Keyboard shortcuts. Typed into the header's search box, keys are text.
  const video = (f) => page.evaluate(f);
  await page.locator('header input[type=search]').fill('mk');
  assert.equal(await video(() => document.querySelector('[data-testid=player]').paused), false, 'k typed as text');
  await page.evaluate(() => document.activeElement.blur());
  // k pauses and plays.
  await page.keyboard.press('k');
  await page.waitForFunction(() => document.querySelector('[data-testid=player]').paused);
  await page.keyboard.press('k');
  await page.waitForFunction(() => !document.querySelector('[data-testid=player]').paused);
  // ← goes back 5 s.
  const at0 = await video(() => document.querySelector('[data-testid=player]').currentTime);
  await page.keyboard.press('ArrowLeft');
  const back = await video(() => document.querySelector('[data-testid=player]').currentTime);
  assert.ok(back < at0 - 3 && back > at0 - 7, `ArrowLeft from ${at0} to ${back}`);
  // m unmutes (the page starts muted) and mutes again; the Unmute prompt follows.
  await page.keyboard.press('m');
  assert.equal(await video(() => document.querySelector('[data-testid=player]').muted), false);
  assert.equal(await page.isHidden('[data-testid=unmute]'), true);
  await page.keyboard.press('m');
  assert.equal(await video(() => document.querySelector('[data-testid=player]').muted), true);
  // The keys are listed where the player is.
  assert.match(await page.getAttribute('.player', 'title'), /k or space play\/pause/);

  // A deep link starts at 10 s.
  const deep = await context.newPage();
  await deep.goto(at(`watch/${streamId}?t=10`));
  await deep.waitForSelector('[data-testid=watch-recording]');
  const first = await playedPast(deep, 0);
  assert.ok(first >= 9.5 && first < 13, `?t=10 started at ${first}`);
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR')), []);
  await context.close();
});

test('the profile lists the recording; the owner deletes it after a confirm', async () => {
  const context = await browser.newContext();
  const [name, value] = cookie.split('=');
  await context.addCookies([{ name, value, url: server.url }]);
  const page = await context.newPage();
  await page.goto(at(`u/${user}`));
  const item = page.locator(`[data-testid=profile-stream][data-id="${streamId}"]`);
  await item.locator('[data-testid=profile-duration]', { hasText: '0:30' }).waitFor();
  await page.waitForFunction((id) => {
    const img = document.querySelector(`[data-id="${id}"] img.thumb`);
    return img && img.complete && img.naturalWidth > 0;
  }, streamId);

  // The stream's dashboard page shows the recording and its MP4.
  await page.goto(at(`dashboard/${streamId}`));
  await page.locator('[data-testid=dashboard-recording-mp4][data-state=ready] a', { hasText: 'Download MP4' }).waitFor();

  await page.goto(at('streams'));
  // The buttons act once the page is hydrated.
  await page.waitForSelector('body[data-hydrated=true]');
  const row = page.locator(`[data-testid=stream-row][data-id="${streamId}"]`);
  await row.locator('[data-testid=recording-mp4][data-state=ready] a', { hasText: 'Download MP4' }).waitFor();
  await row.locator('[data-testid=delete-recording]').click();
  await row.locator('[data-testid=recording-delete-confirm]').waitFor();
  await row.locator('[data-testid=recording-delete-cancel]').click();
  assert.equal((await fetch(at(`vod/${streamId}/master.m3u8`))).status, 200, 'cancel keeps it');
  await row.locator('[data-testid=delete-recording]').click();
  await row.locator('[data-testid=recording-delete-confirm-button]').click();
  await row.locator('[data-testid=recording]').waitFor({ state: 'detached' });
  assert.equal((await fetch(at(`vod/${streamId}/master.m3u8`))).status, 404);
  assert.equal((await fetch(at(`api/v1/streams/${streamId}/recording`))).status, 404);
  await context.close();
});
