// `make bench-latency`: glass-to-glass latency in real Chromium.
//
// The broadcaster's camera is a canvas that paints the wall clock as bars
// (the low 28 bits of Date.now() in ms, twice, with a white and a black
// reference bar) plus a readable clock, captured with canvas.captureStream()
// and handed to the real studio page in place of getUserMedia's camera. The
// studio records and publishes it as a broadcaster would. A second page plays
// the stream and decodes the bars from every displayed frame
// (requestVideoFrameCallback + canvas getImageData): latency = now − painted
// time. Both pages run in one browser on one machine, so they share a clock.
//
// Modes: LL-HLS with the real watch page (hls.js low-latency mode), and plain
// HLS (the same playlists, hls.js with low-latency mode off, 3 segments of
// hold-back, from a fixture page), each with a transcoded ladder (the
// server's default: the studio records what Chromium prefers, H.264, and the
// server decodes it and encodes every rung) and with passthrough (the same
// H.264 recording, the server run with --passthrough-only).
//
// Env: ONAIR_BIN, ONAIR_SITE_ROOT (as for the browser tests),
// LATENCY_SECONDS (default 60) per mode, LATENCY_MODES (comma list of
// ll-ladder, ll-passthrough, plain-ladder, plain-passthrough),
// LATENCY_WARMUP_SECONDS (10: how long the stream is live before the viewer
// joins), LATENCY_SERVER_ARGS (extra `onair serve` flags, e.g.
// "--hls-part-ms 334", for tuning).
// Prints a table and writes it into docs/benchmarks.md between
// `<!-- bench:latency -->` markers.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startOnair, launchBrowser, serveFixtures } from '../tests/harness.mjs';

const SECONDS = Number(process.env.LATENCY_SECONDS || 60);
const WARMUP_S = Number(process.env.LATENCY_WARMUP_SECONDS || 10);
const ALL = ['ll-ladder', 'll-passthrough', 'plain-ladder', 'plain-passthrough'];
const MODES = (process.env.LATENCY_MODES || ALL.join(',')).split(',').filter((m) => ALL.includes(m));
const TARGETS = { ll: { p50: 1200, p95: 1800 }, plain: { p50: 4000, p95: 4000 } };

/** Runs in the studio page before its scripts: the "camera" is the clock canvas. */
function installClockCamera() {
  // 640x360 keeps the two browsers, the encoder and the server inside this
  // machine's two cores (at 720p they fall behind real time, and latency
  // then only grows).
  const W = 640;
  const H = 360;
  const BITS = 28;
  const canvas = document.createElement('canvas');
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext('2d');
  const cell = W / (BITS + 2);
  const paint = () => {
    const now = Date.now();
    const v = now % 2 ** BITS;
    ctx.fillStyle = '#404040';
    ctx.fillRect(0, 0, W, H);
    for (const [y0, y1] of [[0, 0.18], [0.22, 0.4]]) {
      const y = y0 * H;
      const h = (y1 - y0) * H;
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, y, cell, h);
      ctx.fillStyle = '#000';
      ctx.fillRect(cell, y, cell, h);
      for (let i = 0; i < BITS; i++) {
        ctx.fillStyle = (v >> (BITS - 1 - i)) & 1 ? '#fff' : '#000';
        ctx.fillRect((i + 2) * cell, y, cell, h);
      }
    }
    ctx.fillStyle = '#fff';
    ctx.font = 'bold 48px monospace';
    ctx.fillText(new Date(now).toISOString().slice(11, 23), 40, 0.7 * H);
  };
  setInterval(paint, 10);
  paint();
  const stream = canvas.captureStream(30);
  const audio = new AudioContext();
  const osc = audio.createOscillator();
  const dest = audio.createMediaStreamDestination();
  osc.connect(dest);
  osc.start();
  stream.addTrack(dest.stream.getAudioTracks()[0]);
  navigator.mediaDevices.getUserMedia = async () => stream.clone();
}

/** Runs in the viewer page: decodes every displayed frame into window.__lat. */
function startDecoding() {
  const BITS = 28;
  const CELLS = BITS + 2;
  window.__lat = [];
  window.__hold = [];
  window.__target = [];
  window.__bad = 0;
  window.__errors = {};
  const hls = window.onairPlayer || window.hls;
  if (hls) hls.on('hlsError', (_, d) => { window.__errors[d.details] = (window.__errors[d.details] || 0) + 1; });
  const video = document.querySelector('[data-testid=player]') || document.getElementById('v');
  // Only the two bar rows are read, scaled down to 4 pixels per cell and 2
  // rows: one small drawImage and one getImageData per frame.
  const PX = 4;
  const c = document.createElement('canvas');
  c.width = CELLS * PX;
  c.height = 2;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  const onFrame = () => {
    const now = Date.now();
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (w > 0 && h > 0) {
      // Row 0: the middle of the first bar band; row 1: of the second.
      ctx.drawImage(video, 0, 0.08 * h, w, 0.02 * h, 0, 0, c.width, 1);
      ctx.drawImage(video, 0, 0.30 * h, w, 0.02 * h, 0, 1, c.width, 1);
      const d = ctx.getImageData(0, 0, c.width, 2).data;
      const lum = (row, cell) => {
        // The middle two pixels of the cell.
        let s = 0;
        for (const x of [cell * PX + 1, cell * PX + 2]) {
          const i = (row * c.width + x) * 4;
          s += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        }
        return s / 2;
      };
      const read = (row) => {
        const white = lum(row, 0);
        const black = lum(row, 1);
        if (white - black < 80) return null;
        const mid = (white + black) / 2;
        let v = 0;
        for (let i = 0; i < BITS; i++) v = v * 2 + (lum(row, i + 2) > mid ? 1 : 0);
        return v;
      };
      const a = read(0);
      const b = read(1);
      if (a !== null && a === b) {
        const mod = 2 ** BITS;
        const lat = (((now % mod) - a) % mod + mod) % mod;
        window.__lat.push(lat);
        // hls.js's own estimate of how far playback is behind the live edge
        // (the playlist's end, advanced by the time since it was loaded).
        if (hls && Number.isFinite(hls.latency)) window.__hold.push(Math.round(hls.latency * 1000));
        if (hls && Number.isFinite(hls.targetLatency)) window.__target.push(Math.round(hls.targetLatency * 1000));
      } else {
        window.__bad += 1;
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runMode(browser, fixtures, mode) {
  const [kind, source] = mode.split('-');
  const extra = (process.env.LATENCY_SERVER_ARGS || '').split(' ').filter(Boolean);
  const server = await startOnair([...(source === 'passthrough' ? ['--passthrough-only'] : []), ...extra]);
  const origin = server.url.replace(/\/$/, '');
  try {
    const studioCtx = await browser.newContext();
    const studio = await studioCtx.newPage();
    const api = (path, data) => studio.request.post(new URL(path, server.url).href, { data, headers: { Origin: origin } });
    const user = `lat${Math.random().toString(16).slice(2, 10)}`;
    const reg = await api('api/v1/auth/register', { username: user, password: 'correct horse battery' });
    if (reg.status() !== 201) throw new Error(`register: ${reg.status()}`);
    const created = await api('api/v1/streams', { title: `Latency ${mode}`, visibility: 'public' });
    const { id } = await created.json();
    await studio.addInitScript(installClockCamera);
    await studio.goto(new URL(`studio/${id}`, server.url).href);
    await studio.waitForSelector('body[data-hydrated=true]');
    await studio.click('[data-testid=preview-button]');
    await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
    await studio.click('[data-testid=go-live]');
    await studio.waitForFunction(() => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 4,
      null, { timeout: 30_000 });
    const mime = await studio.textContent('[data-testid=status-mime]');
    // Viewers join a stream that has been live for a while: a player that
    // joins at once starts wherever the short playlist lets it, and a plain
    // HLS player never corrects its latency after that.
    await studio.waitForTimeout(WARMUP_S * 1000);

    const viewer = await (await browser.newContext()).newPage();
    // What went wrong if the viewer never plays: page errors, console
    // errors and failed or refused requests, newest last.
    const problems = [];
    const note = (m) => { problems.push(m); if (problems.length > 20) problems.shift(); };
    viewer.on('pageerror', (e) => note(`pageerror: ${e.message}`));
    viewer.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') note(`console ${m.type()}: ${m.text().slice(0, 300)}`); });
    viewer.on('requestfailed', (r) => note(`failed: ${r.url()} ${r.failure()?.errorText}`));
    viewer.on('response', (r) => { if (r.status() >= 400) note(`http ${r.status()}: ${r.url()}`); });
    if (kind === 'll') {
      await viewer.goto(new URL(`watch/${id}`, server.url).href);
    } else {
      await viewer.goto(`${fixtures.url}/watch.html`);
      await viewer.evaluate(([u]) => window.play(u, false), [`${origin}/live/${id}/master.m3u8`]);
    }
    try {
      await viewer.waitForFunction(() => {
        const v = document.querySelector('[data-testid=player]') || document.getElementById('v');
        return v && v.currentTime > 0 && v.videoWidth > 0;
      }, null, { timeout: 60_000 });
    } catch (e) {
      const state = await viewer.evaluate(() => {
        const v = document.querySelector('[data-testid=player]') || document.getElementById('v');
        return {
          hydrated: document.body.dataset.hydrated ?? null,
          status: document.querySelector('[data-testid=player-status]')?.dataset.state ?? null,
          hls: window.onairPlayer ? { latency: window.onairPlayer.latency, levels: window.onairPlayer.levels?.length } : null,
          time: v?.currentTime, ready: v?.readyState, width: v?.videoWidth,
        };
      });
      const master = await viewer.request.get(`${origin}/live/${id}/master.m3u8`);
      const acked = await studio.textContent('[data-testid=status-acked]');
      throw new Error(`${mode}: the viewer never played (${JSON.stringify(state)}; master ${master.status()}; chunks acked ${acked}): ${e.message}\nviewer: ${problems.join('\n') || 'no errors'}`);
    }
    // Let the player settle on its steady latency before measuring.
    await viewer.waitForTimeout(5000);
    await viewer.evaluate(startDecoding);
    const t0 = await viewer.evaluate(() => (document.querySelector('[data-testid=player]') || document.getElementById('v')).currentTime);
    await viewer.waitForTimeout(SECONDS * 1000);
    const diag = await viewer.evaluate(() => {
      const v = document.querySelector('[data-testid=player]') || document.getElementById('v');
      const b = v.buffered;
      return {
        time: v.currentTime, paused: v.paused, ready: v.readyState, rate: v.playbackRate,
        buffered: b.length ? [b.start(0), b.end(b.length - 1)] : [],
        errors: window.__errors ?? null,
      };
    });
    const levels = await viewer.evaluate(() => {
      const h = window.onairPlayer || window.hls;
      const d = h?.levels?.[h.currentLevel]?.details;
      return d ? { target: d.targetduration, partTarget: d.partTarget, partHoldBack: d.partHoldBack, holdBack: d.holdBack } : null;
    });
    process.stderr.write(`${mode}: played ${(diag.time - t0).toFixed(1)} s of ${SECONDS}; ${JSON.stringify({ ...diag, levels })}\n`);
    const { lat, hold, target, bad, height, stalls } = await viewer.evaluate(() => {
      const v = document.querySelector('[data-testid=player]') || document.getElementById('v');
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
      return {
        lat: window.__lat, hold: window.__hold, target: window.__target, bad: window.__bad,
        height: v.videoHeight, stalls: q.droppedVideoFrames ?? 0,
      };
    });
    await studio.click('[data-testid=end]');
    await studio.click('[data-testid=end-confirm]');
    await studioCtx.close();
    const sorted = [...lat].sort((a, b) => a - b);
    const holdSorted = [...hold].sort((a, b) => a - b);
    const targetSorted = [...target].sort((a, b) => a - b);
    return {
      mode, mime, height, frames: lat.length, bad, dropped: stalls,
      p50: pct(sorted, 50), p95: pct(sorted, 95), max: sorted[sorted.length - 1] ?? NaN,
      hold: pct(holdSorted, 50), target: pct(targetSorted, 50),
    };
  } finally {
    await server.stop();
  }
}

function table(rows) {
  const lines = [
    '| mode | recorder | played | frames decoded | p50 ms | p95 ms | max ms | target | behind the live edge (hls.js), p50 ms | capture → live edge (the rest), p50 ms | player target latency, ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const [kind] = r.mode.split('-');
    const t = TARGETS[kind];
    const ok = r.p50 <= t.p50 && r.p95 <= t.p95;
    const target = kind === 'll' ? `p50 ≤ ${t.p50}, p95 ≤ ${t.p95}` : `≤ ${t.p50}`;
    lines.push(`| ${r.mode} | ${r.mime} | ${r.height}p | ${r.frames} (${r.bad} unreadable, ${r.dropped} dropped) | ${r.p50} | ${r.p95} | ${r.max} | ${target} ${ok ? '✓' : '✗'} | ${r.hold} | ${r.p50 - r.hold} | ${r.target} |`);
  }
  return lines.join('\n');
}

const loadBefore = (await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ');
const browser = await launchBrowser();
const fixtures = await serveFixtures();
const rows = [];
try {
  for (const mode of MODES) {
    process.stderr.write(`measuring ${mode} for ${SECONDS} s…\n`);
    rows.push(await runMode(browser, fixtures, mode));
  }
} finally {
  await browser.close();
  fixtures.close();
}
const text = `${table(rows)}\n\n${SECONDS} s per mode, ${new Date().toISOString().slice(0, 10)}, load average before the run: ${loadBefore}.`;
console.log(text);
const docs = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));
const md = readFileSync(docs, 'utf8');
const start = '<!-- bench:latency -->';
const end = '<!-- /bench:latency -->';
const block = `${start}\n${text}\n${end}`;
const i = md.indexOf(start);
const j = md.indexOf(end);
writeFileSync(docs, i >= 0 && j > i ? md.slice(0, i) + block + md.slice(j + end.length) : `${md.trimEnd()}\n\n## Glass-to-glass latency (make bench-latency)\n\n${block}\n`);
