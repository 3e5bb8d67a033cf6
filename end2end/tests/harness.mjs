// Shared helpers for the browser tests: start Onair on a free loopback port with
// a fresh data dir, and launch Debian's Chromium headless.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.ONAIR_BIN;
const SITE_ROOT = process.env.ONAIR_SITE_ROOT;

/** Starts `onair serve` on 127.0.0.1:0 and resolves once it logs its URL. */
export async function startOnair(extraArgs = []) {
  if (!BIN || !SITE_ROOT) throw new Error('set ONAIR_BIN and ONAIR_SITE_ROOT (make test does)');
  const dataDir = mkdtempSync(join(tmpdir(), 'onair-e2e-'));
  // RTMP, SRT and WHIP on free ports too (the defaults would collide between servers).
  const child = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--rtmp-addr', '127.0.0.1:0', '--srt-addr', '127.0.0.1:0',
    '--webrtc-udp-addr', '127.0.0.1:0', '--data-dir', dataDir,
    '--site-root', SITE_ROOT, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`onair did not start in 60 s:\n${log}`)), 60_000);
    const onData = (chunk) => {
      log += chunk.toString();
      const m = log.match(/open (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`onair exited with ${code}:\n${log}`)); });
  });
  const rtmp = log.match(/rtmp:\/\/(127\.0\.0\.1:\d+)\/live/);
  const srt = log.match(/srt:\/\/(127\.0\.0\.1:\d+)\?/);
  return {
    url,
    /** `rtmp://127.0.0.1:PORT/live`, where encoders publish. */
    rtmpUrl: rtmp ? `rtmp://${rtmp[1]}/live` : null,
    /** `127.0.0.1:PORT`, where SRT callers publish. */
    srtAddr: srt ? srt[1] : null,
    dataDir,
    log: () => log,
    async stop() {
      child.removeAllListeners('exit');
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.on('exit', r); });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Launches headless Chromium with the flags this machine needs (shared/FACTS.md). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required'],
  });
}

/** Collects page errors and console errors so a test can assert there were none. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`http ${r.status()}: ${r.url()}`); });
  return errors;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

/** Starts the SurrealDB server built by this workspace (ONAIR_SURREAL_BIN). */
export async function startSurreal(password) {
  const bin = process.env.ONAIR_SURREAL_BIN;
  if (!bin) throw new Error('set ONAIR_SURREAL_BIN (make test does)');
  const port = await freePort();
  const child = spawn(bin, ['start', '--no-banner', '--bind', `127.0.0.1:${port}`, '--user', 'root', '--pass', password, 'memory'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    ws: `ws://127.0.0.1:${port}`,
    /** Runs SurrealQL over the server's HTTP API; throws on any statement error. */
    async sql(query, ns = 'onair', db = 'onair') {
      const res = await fetch(`${url}/sql`, {
        method: 'POST',
        headers: { Accept: 'application/json', 'surreal-ns': ns, 'surreal-db': db,
          Authorization: `Basic ${Buffer.from(`root:${password}`).toString('base64')}` },
        body: query,
      });
      const body = await res.json();
      const failed = Array.isArray(body) ? body.filter((r) => r.status !== 'OK') : [body];
      if (!res.ok || failed.length) throw new Error(`SurrealQL failed: ${JSON.stringify(body)}`);
      return body;
    },
    stop() { child.kill('SIGTERM'); },
  };
}

/** Serves end2end/fixtures and hls.js on 127.0.0.1. */
export async function serveFixtures() {
  const http = await import('node:http');
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const here = fileURLToPath(new URL('..', import.meta.url));
  const files = {
    '/publish.html': [`${here}/fixtures/publish.html`, 'text/html'],
    '/watch.html': [`${here}/fixtures/watch.html`, 'text/html'],
    '/hls.js': [`${here}/node_modules/hls.js/dist/hls.min.js`, 'text/javascript'],
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') { res.writeHead(204).end(); return; }
    const f = files[path];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[1] }).end(readFileSync(f[0]));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** A loopback TCP proxy to `port` whose connections can be cut, and which
 * can refuse new ones for a while. */
export async function startProxy(port) {
  const sockets = new Set();
  let down = false;
  const srv = net.createServer((client) => {
    if (down) { client.destroy(); return; }
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/`,
    /** Cuts every connection and refuses new ones until `up()`. Returns how many were cut. */
    down() { const n = sockets.size; down = true; for (const s of sockets) s.destroy(); return n; },
    up() { down = false; },
    /** Cuts every connection now; new ones are let through. Returns how many. */
    cut() { const n = sockets.size; for (const s of sockets) s.destroy(); return n; },
    close() { for (const s of sockets) s.destroy(); srv.close(); },
  };
}

/** Starts the local OpenAI-compatible AI server (tools/ai-server, installed by
 * `make ai-server` into ONAIR_AI_DIR or ~/.cache/onair/ai) on a free port and
 * resolves once GET /health answers. `url` is its `/v1` base. */
export async function startAiServer(key = 'e2e-ai-key') {
  const { homedir } = await import('node:os');
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const dir = process.env.ONAIR_AI_DIR || join(homedir(), '.cache/onair/ai');
  const python = join(dir, 'venv/bin/python');
  if (!existsSync(python)) throw new Error(`the local AI server is not installed in ${dir}: run make ai-server`);
  const script = fileURLToPath(new URL('../../tools/ai-server/server.py', import.meta.url));
  const port = await freePort();
  const child = spawn(python, [script, '--port', String(port), '--api-key', key,
    '--whisper', join(dir, 'whisper-base'), '--llm', join(dir, 'smollm2/model.gguf')],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (c) => { log += c; });
  child.stderr.on('data', (c) => { log += c; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the AI server exited with ${child.exitCode}:\n${log}`);
    try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* not up yet */ }
    if (Date.now() > deadline) { child.kill('SIGTERM'); throw new Error(`the AI server did not start in 120 s:\n${log}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url: `${base}/v1`,
    key,
    log: () => log,
    /** The server's counters: `completions`, `transcriptions`. */
    async health() { return (await fetch(`${base}/health`)).json(); },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.on('exit', r); });
    },
  };
}

/** Launches Chromium whose fake microphone plays `wav` (16-bit PCM), looped. */
export async function launchBrowserWithMic(wav) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required'],
  });
}
