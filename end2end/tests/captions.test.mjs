// Live captions in Chromium with a real speech model: the studio's fake
// microphone speaks a known sentence (espeak-ng), the server transcribes it
// with Whisper base (the local OpenAI-compatible server), the studio shows the
// broadcaster their captions, a viewer turns captions on and reads them over
// the video, and the recording plays them back at the right time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startOnair, startAiServer, launchBrowserWithMic, watchErrors } from './harness.mjs';

const SENTENCE = 'The quick brown fox jumps over the lazy dog. Please summarize the weather report for tomorrow.';
// Words Whisper base reliably hears in espeak-ng's voice (shared/MODELS.md).
const WORDS = /fox|lazy|dog|weather|tomorrow/i;

let ai;
let server;
let browser;
let media;

before(async () => {
  media = mkdtempSync(join(tmpdir(), 'onair-captions-'));
  const speech = join(media, 'speech.wav');
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', speech, SENTENCE]);
  // The fake microphone loops the file: a pause between the repeats.
  const mic = join(media, 'mic.wav');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y', '-i', speech,
    '-af', 'apad=pad_dur=1.5', '-ar', '48000', '-ac', '1', '-c:a', 'pcm_s16le', mic]);
  ai = await startAiServer();
  // Passthrough: the studio's H.264 is copied (this test is about the audio).
  server = await startOnair(['--asr-url', ai.url, '--asr-key', ai.key, '--asr-language', 'en', '--passthrough-only']);
  browser = await launchBrowserWithMic(mic);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await ai?.stop();
  if (media) rmSync(media, { recursive: true, force: true });
});

test('the studio shows its captions, viewers turn them on over the video, and the recording keeps them', async () => {
  const context = await browser.newContext();
  const studio = await context.newPage();
  const studioErrors = watchErrors(studio);
  const origin = new URL(server.url).origin;
  const api = (path, data) => studio.request.post(new URL(path, server.url).href, { data, headers: { Origin: origin } });
  const user = `cc${randomBytes(4).toString('hex')}`;
  assert.equal((await api('api/v1/auth/register', { username: user, password: 'correct horse battery' })).status(), 201);
  const created = await api('api/v1/streams', { title: 'Captions E2E', visibility: 'public' });
  assert.equal(created.status(), 201);
  const { id } = await created.json();

  await studio.goto(new URL(`studio/${id}`, server.url).href);
  await studio.waitForSelector('body[data-hydrated=true]');
  assert.equal(await studio.getAttribute('[data-testid=studio-captions]', 'data-empty'), 'true');
  await studio.click('[data-testid=preview-button]');
  await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
  await studio.click('[data-testid=go-live]');
  await studio.waitForFunction(() => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 4,
    null, { timeout: 45_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await studio.textContent('[data-testid=status]')} ${studioErrors}\n${server.log().slice(-2500)}`); });

  // The broadcaster sees what the model heard.
  await studio.waitForFunction((re) => new RegExp(re, 'i').test(document.querySelector('[data-testid=studio-captions]').textContent),
    WORDS.source, { timeout: 90_000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await studio.textContent('[data-testid=studio-captions]')}\nAI server:\n${ai.log().slice(-1500)}\n${server.log().slice(-2500)}`); });
  assert.equal(await studio.getAttribute('[data-testid=studio-captions]', 'data-empty'), 'false');

  // A viewer: captions are off until CC is pressed, then shown over the video.
  const viewerContext = await browser.newContext();
  const watch = await viewerContext.newPage();
  const watchErrorsSeen = watchErrors(watch);
  await watch.goto(new URL(`watch/${id}`, server.url).href);
  await watch.waitForSelector('body[data-hydrated=true]');
  await watch.waitForFunction(() => {
    const v = document.querySelector('[data-testid=player]');
    return v && v.currentTime > 0.5 && v.videoWidth > 0;
  }, null, { timeout: 60_000 });
  assert.equal(await watch.isDisabled('[data-testid=cc]'), false, 'this server transcribes: CC is offered');
  // hls.js sees the captions' WebVTT rendition in the master playlist.
  assert.equal(await watch.evaluate(() => window.onairPlayer.subtitleTracks.length), 1);
  assert.equal(await watch.getAttribute('[data-testid=cc]', 'aria-pressed'), 'false');
  assert.equal(await watch.isHidden('[data-testid=captions]'), true);
  await watch.click('[data-testid=cc]');
  assert.equal(await watch.getAttribute('[data-testid=cc]', 'aria-pressed'), 'true');
  await watch.waitForFunction((re) => {
    const c = document.querySelector('[data-testid=captions]');
    return !c.hidden && new RegExp(re, 'i').test(c.textContent);
  }, WORDS.source, { timeout: 60_000 });
  // Shown at the picture's time, never ahead of it: the cue's start (program
  // time, from the server) is at or before the playing date of the picture.
  const timing = await watch.evaluate(() => ({
    start: Number(document.querySelector('[data-testid=captions]').dataset.startMs),
    picture: window.onairPlayer.playingDate?.getTime(),
  }));
  assert.ok(Number.isFinite(timing.start) && Number.isFinite(timing.picture), JSON.stringify(timing));
  assert.ok(timing.start <= timing.picture + 300, `caption ahead of the picture: ${JSON.stringify(timing)}`);
  const lines = await watch.$$eval('[data-testid=captions] span', (s) => s.length);
  assert.ok(lines >= 1 && lines <= 2, `at most two lines: ${lines}`);
  // Readable: light text on a dark box, over the video.
  const look = await watch.$eval('[data-testid=captions]', (c) => {
    const s = getComputedStyle(c);
    const v = document.querySelector('[data-testid=player]').getBoundingClientRect();
    const r = c.getBoundingClientRect();
    return { bg: s.backgroundColor, color: s.color, inside: r.top >= v.top && r.bottom <= v.bottom };
  });
  assert.equal(look.color, 'rgb(255, 255, 255)');
  assert.match(look.bg, /rgba\(0, 0, 0, 0\.7/);
  assert.equal(look.inside, true, JSON.stringify(look));

  // End the stream; its recording plays the captions back (CC stays on).
  await studio.click('[data-testid=end]');
  await studio.click('[data-testid=end-confirm]');
  await studio.waitForSelector('[data-testid=status][data-phase=ended]', { timeout: 30_000 });
  const deadline = Date.now() + 120_000;
  while ((await fetch(new URL(`api/v1/streams/${id}/recording`, server.url))).status !== 200) {
    assert.ok(Date.now() < deadline, 'the recording is written');
    await new Promise((r) => setTimeout(r, 500));
  }
  const vod = await viewerContext.newPage();
  const vodErrors = watchErrors(vod);
  await vod.goto(new URL(`watch/${id}?t=1`, server.url).href);
  await vod.waitForSelector('[data-testid=watch-recording]');
  await vod.waitForSelector('body[data-hydrated=true]');
  await vod.waitForFunction(() => !document.querySelector('[data-testid=cc]').disabled, null, { timeout: 20_000 });
  assert.equal(await vod.getAttribute('[data-testid=cc]', 'aria-pressed'), 'true', 'the CC choice is remembered');
  await vod.waitForFunction((re) => {
    const c = document.querySelector('[data-testid=captions]');
    return !c.hidden && new RegExp(re, 'i').test(c.textContent);
  }, WORDS.source, { timeout: 60_000 })
    .catch(async (e) => { throw new Error(`${e.message}: t=${await vod.$eval('[data-testid=player]', (v) => v.currentTime)} captions=${await vod.textContent('[data-testid=captions]')}`); });
  // Captions off: the overlay goes.
  await vod.click('[data-testid=cc]');
  assert.equal(await vod.isHidden('[data-testid=captions]'), true);

  const ok = (list) => list.filter((e) => !e.includes('net::ERR'));
  assert.deepEqual(ok(studioErrors), []);
  assert.deepEqual(ok(watchErrorsSeen), []);
  assert.deepEqual(ok(vodErrors), []);
  await viewerContext.close();
  await context.close();
});
