// A recording's chapters in Chromium. A stream published with `onair
// publish` becomes a recording; its owner sets three chapters through the
// JSON API (the recording has no transcript, so none are made by
// themselves). The watch page lists them under the player, gives the video
// a WebVTT `chapters` track, seeks to a chapter on a click and highlights
// the one playing, on a phone-width screen too; on the dashboard the owner
// edits a title, sees the server's reason for a list it refuses and why
// chapters cannot be made without a transcript, and the watch page shows
// the new title.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

const SECONDS = 24;
const CHAPTERS = [
  { start_ms: 0, title: 'Opening' },
  { start_ms: 8000, title: 'The <b>middle</b> & more' },
  { start_ms: 16000, title: 'Wrap-up' },
];
let server;
let browser;
let media;
let cookie;
let streamId;

const at = (path) => new URL(path, server.url).href;
const origin = () => server.url.replace(/\/$/, '');

before(async () => {
  server = await startOnair();
  browser = await launchBrowser();
  media = mkdtempSync(join(tmpdir(), 'onair-chapters-'));
  const file = join(media, 'in.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=30:duration=${SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${SECONDS}`,
    '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60', '-c:a', 'aac', file]);

  const user = `ch${randomBytes(4).toString('hex')}`;
  const reg = await fetch(at('api/v1/auth/register'), {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user, password: 'correct horse battery' }),
  });
  assert.equal(reg.status, 201);
  cookie = reg.headers.get('set-cookie').split(';')[0];
  const created = await fetch(at('api/v1/streams'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie, origin: origin() },
    body: JSON.stringify({ title: 'A show in chapters', visibility: 'public' }),
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
  const deadline = Date.now() + 180_000;
  while ((await fetch(at(`api/v1/streams/${streamId}/recording`))).status !== 200) {
    assert.ok(Date.now() < deadline, 'the recording was not built in 180 s');
    await new Promise((r) => setTimeout(r, 500));
  }
  const put = await fetch(at(`api/v1/streams/${streamId}/chapters`), {
    method: 'PUT',
    headers: { 'content-type': 'application/json', cookie, origin: origin() },
    body: JSON.stringify({ chapters: CHAPTERS }),
  });
  assert.equal(put.status, 200, await put.text());
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (media) rmSync(media, { recursive: true, force: true });
});

const video = (page, f) => page.evaluate(f);

test('the watch page lists the chapters, seeks to one on a click and highlights the one playing', async () => {
  // A phone's screen: the list fits without scrolling sideways.
  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(at(`watch/${streamId}`));
  await page.waitForSelector('body[data-hydrated=true]');
  const items = page.locator('[data-testid=chapter]');
  await items.nth(2).waitFor();
  assert.equal(await items.count(), 3);
  const texts = await items.evaluateAll((els) => els.map((e) => [
    e.querySelector('.chapter-time').textContent, e.querySelector('.chapter-title').textContent]));
  assert.deepEqual(texts, [['0:00', 'Opening'], ['0:08', 'The <b>middle</b> & more'], ['0:16', 'Wrap-up']],
    'times as m:ss, titles as text');
  assert.equal(await page.locator('[data-testid=chapters] b').count(), 0, 'no markup from a title');

  // The video has the WebVTT chapters track, and it loads with three cues.
  const track = page.locator('[data-testid=player] track[kind=chapters]');
  assert.equal(await track.getAttribute('src'), `/api/v1/streams/${streamId}/chapters.vtt`);
  await page.waitForFunction(() => {
    const t = [...document.querySelector('[data-testid=player]').textTracks].find((x) => x.kind === 'chapters');
    if (!t) return false;
    t.mode = 'hidden';
    return t.cues && t.cues.length === 3;
  });
  const cues = await video(page, () => {
    const t = [...document.querySelector('[data-testid=player]').textTracks].find((x) => x.kind === 'chapters');
    return [...t.cues].map((c) => [c.startTime, c.endTime, c.getCueAsHTML().textContent]);
  });
  // Each cue ends where the next starts; the last at the recording's end.
  assert.deepEqual(cues.slice(0, 2).map((c) => c.slice(0, 2)), [[0, 8], [8, 16]]);
  assert.ok(Math.abs(cues[2][1] - SECONDS) < 1.5, `the last cue ends at ${cues[2][1]}`);
  assert.deepEqual(cues.map((c) => [c[0], c[2]]), [[0, 'Opening'], [8, 'The <b>middle</b> & more'], [16, 'Wrap-up']]);

  // Playing from the start: the first chapter is the current one.
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return v && !v.paused && v.currentTime > 0.2;
  }, null, { timeout: 60_000 });
  await page.locator('[data-testid=chapter][aria-current=true]', { hasText: 'Opening' }).waitFor();
  const before = await video(page, () => document.querySelector('[data-testid=player]').currentTime);
  assert.ok(before < 12, `still early: ${before}`);

  // A click on the third chapter seeks there and highlights it.
  await items.nth(2).click();
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return !v.seeking && v.currentTime >= 16 && v.currentTime < 19;
  }, null, { timeout: 20_000 });
  await page.locator('[data-testid=chapter][aria-current=true]', { hasText: 'Wrap-up' }).waitFor();
  assert.equal(await page.locator('[data-testid=chapter][aria-current=true]').count(), 1);
  // The strip along the recording marks the same chapter.
  assert.equal(await page.locator('[data-testid=chapter-mark]').count(), 3);
  await page.locator('[data-testid=chapter-mark]').nth(2).and(page.locator('[data-current=true]')).waitFor();
  // A click on the strip's first mark seeks back to the start.
  await page.locator('[data-testid=chapter-mark]').nth(0).click();
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return !v.seeking && v.currentTime < 3;
  }, null, { timeout: 20_000 });

  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`);
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR')), []);
  await context.close();
});

test('the owner edits a chapter on the dashboard and the watch page shows it', async () => {
  const context = await browser.newContext();
  const [name, value] = cookie.split('=');
  await context.addCookies([{ name, value, url: server.url }]);
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(at(`dashboard/${streamId}`));
  await page.waitForSelector('body[data-hydrated=true]');
  const panel = page.locator('[data-testid=chapters-panel]');
  const rows = panel.locator('[data-testid=chapter-row]');
  await rows.nth(2).waitFor();
  assert.equal(await rows.count(), 3);
  assert.equal(await rows.nth(1).locator('[data-testid=chapter-start]').inputValue(), '0:08');
  assert.equal(await panel.locator('[data-testid=chapters-label]').getAttribute('data-kind'), 'edited');

  // Without a transcript, making them says why not.
  await panel.locator('[data-testid=chapters-generate]').click();
  await panel.locator('[data-testid=chapters-start-error]').waitFor();
  assert.match(await panel.locator('[data-testid=chapters-start-error]').textContent(), /transcript/i);

  // A start that is not a time is refused before it is sent.
  await rows.nth(2).locator('[data-testid=chapter-start]').fill('soon');
  await panel.locator('[data-testid=chapters-save]').click();
  assert.match(await panel.locator('[data-testid=chapters-save-error]').textContent(), /chapter 3: the start "soon" is not a time/);
  // Out of order: the server's 422 says which chapter and why.
  await rows.nth(2).locator('[data-testid=chapter-start]').fill('0:05');
  await panel.locator('[data-testid=chapters-save]').click();
  await panel.locator('[data-testid=chapters-save-error]', { hasText: 'chapter 3 must start after the one before it' }).waitFor();

  // Renamed, a fourth chapter added and removed again, saved.
  await rows.nth(2).locator('[data-testid=chapter-start]').fill('0:16');
  await rows.nth(1).locator('[data-testid=chapter-title]').fill('Renamed & "quoted" <i>part</i>');
  await panel.locator('[data-testid=chapter-add]').click();
  assert.equal(await rows.count(), 4);
  assert.equal(await rows.nth(3).locator('[data-testid=chapter-start]').inputValue(), '1:16');
  await rows.nth(3).locator('[data-testid=chapter-remove]').click();
  assert.equal(await rows.count(), 3);
  await panel.locator('[data-testid=chapters-save]').click();
  await panel.locator('[data-testid=chapters-saved]').waitFor();
  assert.equal(await panel.locator('[data-testid=chapters-save-error]').count(), 0);
  const stored = await (await fetch(at(`api/v1/streams/${streamId}/chapters`))).json();
  assert.deepEqual(stored.chapters.chapters.map((c) => [c.start_ms, c.title]),
    [[0, 'Opening'], [8000, 'Renamed & "quoted" <i>part</i>'], [16000, 'Wrap-up']]);

  await page.goto(at(`watch/${streamId}`));
  await page.locator('[data-testid=chapter] .chapter-title', { hasText: 'Renamed & "quoted" <i>part</i>' }).waitFor();
  assert.equal(await page.locator('[data-testid=chapters] i').count(), 0);
  // The refusals the test asks for (409, 422) are the only errors.
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR') && !/\b(409|422)\b/.test(e)), []);
  await context.close();
});
