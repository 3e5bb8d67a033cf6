// The "Stream health" panel as a broadcaster sees it on a phone: an RTMP
// encoder (the FFmpeg CLI standing in for OBS) publishes 640x360 at 30 fps
// with a keyframe every 2.5 s and 44.1 kHz mono AAC; the panel on My
// streams (beside Encoder (OBS)) and in the studio shows those values, warns
// about the keyframe interval, and fits a 390 px wide screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

let server;
let browser;
let dir;

before(async () => {
  server = await startOnair(['--passthrough-only']);
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), 'onair-health-'));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const at = (path) => new URL(path, server.url).href;

test('the Stream health panel shows what the encoder sends, on a phone', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  const origin = server.url.replace(/\/$/, '');
  const user = `hl${randomBytes(4).toString('hex')}`;
  const reg = await context.request.post(at('api/v1/auth/register'), { headers: { origin }, data: { username: user, password: 'correct horse battery' } });
  assert.equal(reg.status(), 201);
  const created = await context.request.post(at('api/v1/streams'), { headers: { origin }, data: { title: 'Health check', visibility: 'public' } });
  const { id } = await created.json();
  const { stream_key: key } = await (await context.request.get(at(`api/v1/streams/${id}/encoder`))).json();

  const file = join(dir, 'gop.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '40', '-pix_fmt', 'yuv420p', '-c:v', 'libx264',
    '-preset', 'ultrafast', '-g', '75', '-c:a', 'aac', '-ar', '44100', '-ac', '1', '-shortest', file]);
  const encoder = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'flv', `${server.rtmpUrl}/${key}`],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let encoderLog = '';
  encoder.stderr.on('data', (d) => { encoderLog += d; });
  try {
    await page.goto(at('streams'));
    await page.waitForSelector('body[data-hydrated=true]');
    const row = `[data-testid=stream-row][data-id="${id}"]`;
    await page.click(`${row} [data-testid=encoder]`);
    const panel = `${row} [data-testid=health-panel]`;
    await page.waitForSelector(panel);
    // The panel refreshes itself until the measurements are in.
    await page.waitForSelector(`${panel} [data-testid=health-keyframes]:has-text("2.5 s")`, { timeout: 45_000 });
    const text = async (what) => (await page.textContent(`${panel} [data-testid=health-${what}]`)).trim();
    assert.match(await text('protocol'), /RTMP/);
    assert.equal(await text('video'), 'h264 · 640×360');
    assert.equal(await text('fps'), '30 fps');
    assert.equal(await text('audio'), 'aac · 44100 Hz · 1 ch · copied');
    assert.match(await text('bitrate'), /^[\d,]+ kbit\/s$/);
    assert.equal(await text('reconnects'), '0');
    const warning = await page.getAttribute(`${panel} [data-testid=health-warning]`, 'data-code');
    assert.equal(warning, 'keyframe_interval');
    // The verdict in a word, with the reason: OK, because of the keyframes.
    assert.equal(await page.getAttribute(`${panel} [data-testid=health-verdict]`, 'data-verdict'), 'ok');
    assert.match(await text('verdict'), /^OK · Keyframes come every 2\.5 s/);
    // Readable on a 390 px phone: nothing in the panel runs off the side.
    // (The rest of the page is not this test's business: at 390 px the
    // header's theme toggle and the new-stream form overflow already.)
    const wide = await page.evaluate((sel) => [document.querySelector(sel), ...document.querySelectorAll(`${sel} *`)]
      .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth; })
      .map((e) => `${e.tagName}[${e.dataset.testid ?? ''}] ${Math.round(e.getBoundingClientRect().right)}`), panel);
    assert.deepEqual(wide, [], 'the panel fits 390 px');
    const box = await page.locator(panel).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));

    // The studio shows the same panel whatever the source.
    await page.goto(at(`studio/${id}`));
    await page.waitForSelector('body[data-hydrated=true]');
    await page.waitForSelector('[data-testid=health-panel] [data-testid=health-video]:has-text("640×360")', { timeout: 20_000 });
  } finally {
    encoder.kill('SIGKILL');
  }
  assert.equal(encoderLog.includes('error'), false, encoderLog);
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR')), []);
  await context.close();
});
