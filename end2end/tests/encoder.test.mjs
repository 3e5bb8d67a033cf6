// Going live from an encoder as a streamer would: the owner opens
// "Encoder (OBS)" on My streams, reveals and copies the key, and an RTMP
// encoder (the FFmpeg CLI standing in for OBS) publishes with exactly what
// the panel shows; a viewer's watch page plays it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
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
  dir = mkdtempSync(join(tmpdir(), 'onair-encoder-'));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const at = (path) => new URL(path, server.url).href;

test('the Encoder (OBS) panel gives a server and key an RTMP encoder goes live with', async () => {
  assert.ok(server.rtmpUrl, `the server logged its RTMP address:\n${server.log()}`);
  const context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  const errors = watchErrors(page);
  const origin = server.url.replace(/\/$/, '');
  const user = `enc${randomBytes(4).toString('hex')}`;
  const reg = await context.request.post(at('api/v1/auth/register'), { headers: { origin }, data: { username: user, password: 'correct horse battery' } });
  assert.equal(reg.status(), 201);
  const created = await context.request.post(at('api/v1/streams'), { headers: { origin }, data: { title: 'From OBS', visibility: 'public' } });
  const { id } = await created.json();

  await page.goto(at('streams'));
  await page.waitForSelector('body[data-hydrated=true]');
  const row = `[data-testid=stream-row][data-id="${id}"]`;
  await page.click(`${row} [data-testid=encoder]`);
  await page.waitForSelector(`${row} [data-testid=encoder-server]`);
  const serverUrl = await page.textContent(`${row} [data-testid=encoder-server]`);
  assert.equal(serverUrl, server.rtmpUrl, 'the server the encoder needs');
  const hidden = await page.textContent(`${row} [data-testid=encoder-key]`);
  assert.match(hidden, /^•+$/, 'the key is hidden until shown');
  await page.click(`${row} [data-testid=show-key]`);
  const key = await page.textContent(`${row} [data-testid=encoder-key]`);
  assert.ok(key.startsWith(`${id}_`), key);
  await page.click(`${row} [data-testid=copy-key]`);
  await page.waitForSelector(`${row} [data-testid=copied]:has-text("stream key")`);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  assert.ok(await page.$(`${row} [data-testid=encoder-loopback]`), 'says the listener is local only');
  // SRT: a URL without the key (the key is the passphrase), with its copy button.
  assert.ok(server.srtAddr, `the server logged its SRT address:\n${server.log()}`);
  const srtUrl = await page.textContent(`${row} [data-testid=encoder-srt]`);
  assert.equal(srtUrl, `srt://${server.srtAddr}?streamid=#!::r=${id},m=publish`);
  assert.ok(!srtUrl.includes(key), 'the SRT URL holds no secret');
  await page.click(`${row} [data-testid=copy-srt]`);
  await page.waitForSelector(`${row} [data-testid=copied]:has-text("SRT URL")`);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), srtUrl);
  assert.equal(await page.$(`${row} [data-testid=encoder-rtmps]`), null, 'no RTMPS without --rtmps-addr');

  // The encoder publishes with exactly what the panel shows.
  const file = join(dir, 'obs.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '20', '-pix_fmt', 'yuv420p', '-c:v', 'libx264',
    '-preset', 'veryfast', '-bf', '2', '-g', '30', '-c:a', 'aac', '-shortest', file]);
  const encoder = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'flv', `${serverUrl}/${key}`],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let encoderLog = '';
  let blog;
  encoder.stderr.on('data', (d) => { encoderLog += d; });
  try {
    const viewer = await (await browser.newContext()).newPage();
    await viewer.goto(at(`watch/${id}`));
    await viewer.waitForSelector('body[data-hydrated=true]');
    await viewer.waitForFunction(() => {
      const v = document.querySelector('video');
      return v && v.currentTime > 1 && v.videoWidth > 0;
    }, null, { timeout: 45_000 });
    assert.equal(await viewer.evaluate(() => document.querySelector('video').videoWidth), 640);
    // It autoplays muted, and says so; one click unmutes.
    await viewer.waitForSelector('[data-testid=unmute]:not([hidden])');
    await viewer.click('[data-testid=unmute]');
    assert.equal(await viewer.evaluate(() => document.querySelector('video').muted), false);
    await viewer.waitForSelector('[data-testid=unmute][hidden]', { state: 'attached' });

    // Share: the link and the embed code, which plays on another page.
    await viewer.click('[data-testid=share] summary');
    const origin = server.url.replace(/\/$/, '');
    assert.equal(await viewer.textContent('[data-testid=share-link]'), `${origin}/watch/${id}`);
    const embedCode = await viewer.textContent('[data-testid=share-embed]');
    assert.match(embedCode, new RegExp(`^<iframe src="${origin}/embed/${id}" `));
    const host = await (await browser.newContext()).newPage();
    // A page of another site: another origin (a server of its own on
    // another port; Chromium lets only loopback pages frame loopback ones).
    blog = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>Someone's blog</title><h1>My favourite stream</h1>${embedCode}`);
    });
    await new Promise((r) => blog.listen(0, '127.0.0.1', r));
    await host.goto(`http://127.0.0.1:${blog.address().port}/post`);
    await host.waitForFunction(() => document.querySelector('iframe')?.contentWindow, null, { timeout: 10_000 });
    const frame = await (await host.$('iframe')).contentFrame();
    await frame.waitForFunction(() => document.body?.dataset.hydrated === 'true', null, { timeout: 30_000 })
      .catch(async (e) => { throw new Error(`${e.message}: the embed at ${frame.url()} did not hydrate: ${await frame.content().catch(() => '?')}`.slice(0, 3000)); });
    assert.equal(await frame.$('.site-header'), null, 'the player alone');
    assert.equal(await frame.getAttribute('[data-testid=embed-title]', 'href'), `/watch/${id}`);
    await frame.waitForFunction(() => {
      const v = document.querySelector('video');
      return v && v.currentTime > 1 && v.videoWidth > 0;
    }, null, { timeout: 45_000 });
  } finally {
    blog?.close();
    encoder.kill('SIGKILL');
  }
  assert.equal(encoderLog.includes('error'), false, encoderLog);
  assert.deepEqual(errors.filter((e) => !e.includes('net::ERR')), []);
  await context.close();
});
