// Checks deploy/nginx/onair.conf for real: nginx (Debian's nginx-light) in
// front of a running Onair, over TLS and HTTP/2, driven by Chromium.
//
//   ONAIR_BIN=… ONAIR_SITE_ROOT=… node deploy/nginx/check.mjs
//
// The example config is used as written but for what only a real host has:
// its ports (free loopback ports instead of 80/443), the certificate (a
// self-signed one made here with openssl) and the upstream address (the Onair
// started here). Then it checks `nginx -t`, and through the proxy: the home
// page over h2 with its Content-Security-Policy nonce and brotli, the bundle's
// wasm precompressed and `immutable`, the page hydrating, a WebSocket
// upgrade on the events socket reaching Onair (which closes it with its own
// 4004 for an unknown stream, not a proxy failure's 1006), and HTTP → HTTPS.
// Needs nginx, openssl, curl and the browser tests' Chromium; not part of
// `make test`.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOnair, launchBrowser, freePort, watchErrors } from '../../end2end/tests/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onair-nginx-'));
const [https, http] = [await freePort(), await freePort()];
const origin = `https://127.0.0.1:${https}`;
const onair = await startOnair(['--db', 'mem://', '--public-url', origin, '--trusted-proxy', '127.0.0.1']);
const upstream = new URL(onair.url).host;

execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
  '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
const site = readFileSync(join(here, 'onair.conf'), 'utf8')
  .replace('server 127.0.0.1:3000;', `server ${upstream};`)
  .replace(/listen 443 ssl http2;/, `listen 127.0.0.1:${https} ssl http2;`)
  .replace(/listen 80;/, `listen 127.0.0.1:${http};`)
  .replace(/\n\s*listen \[::\]:\d+[^\n]*/g, '')
  .replace('/etc/letsencrypt/live/live.example.com/fullchain.pem', join(dir, 'cert.pem'))
  .replace('/etc/letsencrypt/live/live.example.com/privkey.pem', join(dir, 'key.pem'));
assert.ok(site.includes(`server ${upstream};`) && site.includes(join(dir, 'key.pem')), 'the example changed shape');
mkdirSync(join(dir, 'tmp'));
writeFileSync(join(dir, 'onair.conf'), site);
writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    include ${dir}/onair.conf;
}
`);
const nginxArgs = ['-p', dir, '-c', join(dir, 'nginx.conf')];
execFileSync('nginx', [...nginxArgs, '-t'], { stdio: 'inherit' });
const nginx = spawn('nginx', [...nginxArgs, '-g', 'daemon off;'], { stdio: 'inherit' });

let failed = false;
const browser = await launchBrowser();
try {
  // Wait for nginx to listen.
  for (let i = 0; ; i++) {
    try { execFileSync('curl', ['-sk', '-o', '/dev/null', `${origin}/healthz`]); break; } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const redirect = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}',
    `http://127.0.0.1:${http}/watch/x`]).toString();
  assert.match(redirect, /^301 https:\/\/127\.0\.0\.1(:\d+)?\/watch\/x$/, redirect);

  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const errors = watchErrors(page);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const seen = [];
  cdp.on('Network.responseReceived', (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    seen.push({ path: new URL(e.response.url).pathname, protocol: e.response.protocol, headers: h });
  });
  await page.goto(`${origin}/`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60_000 });
  const home = seen.find((r) => r.path === '/');
  assert.equal(home.protocol, 'h2', 'the page came over HTTP/2');
  assert.equal(home.headers['content-encoding'], 'br');
  assert.match(home.headers['content-security-policy'] || '', /script-src 'self' 'nonce-[^']+'/);
  assert.equal(home.headers['x-content-type-options'], 'nosniff');
  assert.match(home.headers['strict-transport-security'] || '', /max-age=/);
  const wasm = seen.find((r) => r.path.endsWith('_bg.wasm'));
  assert.ok(wasm, JSON.stringify(seen.map((r) => r.path)));
  assert.equal(wasm.protocol, 'h2');
  assert.equal(wasm.headers['content-encoding'], 'br');
  assert.equal(wasm.headers['cache-control'], 'public, max-age=31536000, immutable');

  // The events socket of a stream that does not exist: Onair answers the
  // upgrade, then closes with 4004 after hello.
  const code = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', version: 1, viewer_id: 'nginx-check' }));
    ws.onclose = (e) => resolve(e.code);
  }), `wss://127.0.0.1:${https}/api/v1/streams/nosuchstream/events`);
  assert.ok(code >= 4000 && code < 5000, `the events socket closed with ${code}, not by Onair`);
  assert.deepEqual(errors, [], errors.join('\n'));
  await context.close();
  console.log(`ok: nginx -t; HTTP → HTTPS; over h2 the page (br, CSP nonce, nosniff, HSTS) hydrated, the wasm ` +
    `br + immutable; the events socket upgraded through the proxy (Onair closed it with ${code})`);
} catch (e) {
  failed = true;
  console.error(e);
  console.error(readFileSync(join(dir, 'error.log'), 'utf8'));
} finally {
  await browser.close();
  nginx.kill('SIGQUIT');
  await new Promise((r) => { if (nginx.exitCode !== null) r(); else nginx.on('exit', r); });
  await onair.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
