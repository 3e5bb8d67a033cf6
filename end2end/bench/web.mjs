// `make bench-web`: the watch page of a live stream on a throttled link, in
// real Chromium.
//
// A 640x360 H.264 test clip is published with `onair publish --realtime` to a
// server run with --passthrough-only (so the machine's CPU goes to the page,
// not to a ladder). Each run opens the stream's watch page in a fresh browser
// context (empty cache) with DevTools network throttling,
// `Network.emulateNetworkConditions`: 10 Mbit/s down and up, 40 ms latency
// added to each request. Then it reloads the page in that context (warm cache).
// It reports, median over the runs:
// - time to hydrated: navigation start → `body[data-hydrated=true]` (the
//   player and every button live);
// - time to first frame: navigation start → the player's first presented
//   video frame (requestVideoFrameCallback);
// - the page's bytes on the wire (encoded, headers included; everything but
//   the stream's playlists and media) once the first frame showed, and the
//   wasm's share with its Content-Encoding.
//
// Env: ONAIR_BIN, ONAIR_SITE_ROOT (as for the browser tests), WEB_RUNS (5),
// WEB_LABEL (the table row's first cell; default: "this build"),
// WEB_RECORD (1: write the row into docs/benchmarks.md between
// `<!-- bench:web -->` markers, replacing the row with the same label).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOnair, launchBrowser } from '../tests/harness.mjs';

const RUNS = Number(process.env.WEB_RUNS || 5);
const LABEL = process.env.WEB_LABEL || 'this build';
const RECORD = process.env.WEB_RECORD === '1';
const CLIP_S = 60 + RUNS * 2 * 40;
const LINK = { downMbit: 10, upMbit: 10, latencyMs: 40 };
const TARGETS = { hydrated: 2000, frame: 2500 };

/** Runs in every page before its scripts: timestamps for hydration and the first frame. */
function instrument() {
  window.__bench = { hydrated: null, frame: null };
  const hydrated = () => document.body && document.body.dataset.hydrated === 'true';
  new MutationObserver((_, obs) => {
    if (window.__bench.hydrated === null && hydrated()) {
      window.__bench.hydrated = performance.now();
      obs.disconnect();
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
  // Media events do not bubble, but capturing listeners on the document see them.
  document.addEventListener('loadeddata', (e) => {
    const v = e.target;
    if (window.__bench.frame !== null || !(v instanceof HTMLVideoElement)) return;
    const mark = () => { if (window.__bench.frame === null) window.__bench.frame = performance.now(); };
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(mark); else mark();
  }, true);
}

const median = (xs) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

/** Loads `url` in `page` (throttled) and waits for the first frame. */
async function load(page, cdp, url, reload) {
  const requests = new Map();
  let hydratedAt = null;
  const onResponse = (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    requests.set(e.requestId, { url: e.response.url, encoding: h['content-encoding'] || 'identity',
      status: e.response.status, fromCache: e.response.fromDiskCache || e.response.fromMemoryCache });
  };
  const onFinished = (e) => {
    const r = requests.get(e.requestId);
    if (r) { r.bytes = e.encodedDataLength; r.finishedAt = Date.now(); }
  };
  cdp.on('Network.responseReceived', onResponse);
  cdp.on('Network.loadingFinished', onFinished);
  if (reload) await page.reload({ waitUntil: 'commit' }); else await page.goto(url, { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__bench && window.__bench.hydrated !== null, null, { timeout: 120_000 });
  hydratedAt = Date.now();
  const hydrated = await page.evaluate(() => window.__bench.hydrated);
  await page.waitForFunction(() => window.__bench.frame !== null, null, { timeout: 120_000 }).catch(() => {});
  const frame = await page.evaluate(() => window.__bench.frame);
  cdp.off('Network.responseReceived', onResponse);
  cdp.off('Network.loadingFinished', onFinished);
  // The page's own bytes: everything but the stream (playlists and media).
  const page_ = [...requests.values()].filter((r) => r.finishedAt !== undefined
    && !/^\/(live|vod)\//.test(new URL(r.url).pathname));
  const bytes = page_.reduce((s, r) => s + (r.bytes || 0), 0);
  const wasm = page_.find((r) => /\.wasm$/.test(new URL(r.url).pathname));
  return { hydrated, frame, bytes, wasmBytes: wasm ? wasm.bytes : 0,
    wasmEncoding: wasm ? `${wasm.fromCache ? 'cache' : wasm.encoding}${wasm.status === 304 ? ', 304' : ''}` : 'not fetched',
    requests: page_.length, hydratedAt };
}

const media = mkdtempSync(join(tmpdir(), 'onair-bench-web-'));
const server = await startOnair(['--db', 'mem://', '--passthrough-only']);
const browser = await launchBrowser();
let publisher;
try {
  const file = join(media, 'clip.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=30:duration=${CLIP_S}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${CLIP_S}`,
    '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-c:a', 'aac', file]);
  const at = (p) => new URL(p, server.url).href;
  const reg = await fetch(at('api/v1/auth/register'), {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: `bench${process.pid}`, password: 'correct horse battery' }),
  });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  const cookie = reg.headers.get('set-cookie').split(';')[0];
  const created = await fetch(at('api/v1/streams'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie, origin: server.url.replace(/\/$/, '') },
    body: JSON.stringify({ title: 'Web bench', visibility: 'public' }),
  });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`);
  const stream = await created.json();
  publisher = spawn(process.env.ONAIR_BIN, ['publish', '--server', server.url, '--stream', stream.id,
    '--token', stream.ingest_token, '--realtime', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let publishLog = '';
  publisher.stderr.on('data', (c) => { publishLog += c; });
  // Live once the master playlist lists a rendition with a few segments.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(at(`live/${stream.id}/master.m3u8`));
    if (res.status === 200) break;
    if (publisher.exitCode !== null || Date.now() > deadline) throw new Error(`not live: ${publishLog}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 5000));

  const cold = [];
  const warm = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    await context.addInitScript(instrument);
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: LINK.latencyMs,
      downloadThroughput: (LINK.downMbit * 1e6) / 8,
      uploadThroughput: (LINK.upMbit * 1e6) / 8,
    });
    cold.push(await load(page, cdp, at(`watch/${stream.id}`), false));
    warm.push(await load(page, cdp, null, true));
    await context.close();
    process.stderr.write(`run ${i + 1}/${RUNS}: cold ${JSON.stringify(cold.at(-1))}\n  warm ${JSON.stringify(warm.at(-1))}\n`);
  }

  const ms = (x) => (x === null ? '—' : Math.round(x).toString());
  const kb = (x) => (x / 1024).toFixed(0);
  const ok = (x, t) => (x !== null && x <= t ? '✓' : '✗');
  const hyd = median(cold.map((r) => r.hydrated));
  const frm = median(cold.map((r) => r.frame));
  const row = `| ${LABEL} | ${ms(hyd)} ${ok(hyd, TARGETS.hydrated)} | ${ms(frm)} ${ok(frm, TARGETS.frame)} `
    + `| ${kb(median(cold.map((r) => r.bytes)))} | ${kb(median(cold.map((r) => r.wasmBytes)))} (${cold[0].wasmEncoding}) `
    + `| ${ms(median(warm.map((r) => r.hydrated)))} | ${kb(median(warm.map((r) => r.bytes)))} (wasm: ${warm[0].wasmEncoding}) |`;
  const header = '| build | time to hydrated, ms (target ≤ 2000) | first frame, ms (≤ 2500) | page KiB on the wire (not the stream) | of which the wasm, KiB (encoding) | warm reload: hydrated, ms | warm reload: page KiB |\n|---|---|---|---|---|---|---|';
  console.log(`\nwatch page of a live stream, ${LINK.downMbit} Mbit/s, ${LINK.latencyMs} ms per request (DevTools throttling), median of ${RUNS} cold loads and ${RUNS} warm reloads\n`);
  console.log(`${header}\n${row}`);

  if (RECORD) {
    const docs = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));
    const md = readFileSync(docs, 'utf8');
    const start = '<!-- bench:web -->';
    const end = '<!-- /bench:web -->';
    const i = md.indexOf(start);
    const j = md.indexOf(end);
    let rows = [];
    if (i >= 0 && j > i) {
      rows = md.slice(i + start.length, j).split('\n')
        .filter((l) => l.startsWith('| ') && !l.startsWith('| build ') && !l.startsWith(`| ${LABEL} |`));
    }
    rows.push(row);
    const block = `${start}\n${header}\n${rows.join('\n')}\n${end}`;
    writeFileSync(docs, i >= 0 && j > i ? md.slice(0, i) + block + md.slice(j + end.length)
      : `${md.trimEnd()}\n\n## Web bundle on a throttled link (make bench-web)\n\n${block}\n`);
  }
} finally {
  publisher?.kill('SIGTERM');
  await browser.close();
  await server.stop();
  rmSync(media, { recursive: true, force: true });
}
