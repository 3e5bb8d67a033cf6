// Hostile stream titles on every page that shows a title, in Chromium against
// Onair (embedded database): no injected element appears, no script runs, the
// title reads as the text it is, and the Content-Security-Policy refuses an
// inline script that was not written by the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors } from './harness.mjs';

// Each sets window.__pwned if it ever runs. Titles are at most 120 characters.
const PAYLOADS = [
  '</title><script>window.__pwned=1</script>',
  '</script><script>window.__pwned=2</script>',
  '"><svg onload="window.__pwned=3">',
  "'><img src=x onerror=\"window.__pwned=4\">",
  '<style>body{display:none}</style><iframe src="javascript:window.__pwned=5">',
];
/** What must never be in a page's HTML, as markup. */
const RAW_MARKERS = ['<script>window.__pwned', '<svg onload', '<img src=x onerror', '<iframe src="javascript', '<style>body{display:none}'];

let server;
let browser;

before(async () => {
  server = await startOnair([]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const at = (path) => new URL(path, server.url).href;
const origin = () => server.url.replace(/\/$/, '');

/** Holds an ingest socket open from the page so the stream is live. */
function goLive(page, id, token) {
  return page.evaluate(([url, token]) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', version: 1, token, mime_type: 'video/webm', capture_start_ms: Date.now(), new_period: false }));
    ws.onmessage = (m) => { (window.__ingest ||= []).push(ws); resolve(JSON.parse(m.data).type); };
    ws.onclose = (e) => resolve(`close ${e.code}`);
  }), [at(`api/v1/streams/${id}/ingest`).replace(/^http/, 'ws'), token]);
}

/** Asserts that a loaded page shows the payloads as text and ran none of them. */
async function assertInert(page, path, res) {
  const html = await res.text();
  for (const marker of RAW_MARKERS) {
    assert.ok(!html.includes(marker), `${path}: the HTML holds ${marker}`);
  }
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self' 'nonce-[A-Za-z0-9_-]+'/, `${path}: CSP ${csp}`);
  const nonce = csp.match(/'nonce-([A-Za-z0-9_-]+)'/)[1];
  // Every inline script the server wrote carries this response's nonce.
  for (const m of html.matchAll(/<script\b([^>]*)>/g)) {
    if (m[1].includes('src=')) continue;
    assert.ok(m[1].includes(`nonce="${nonce}"`), `${path}: inline script without the nonce: ${m[0]}`);
  }
  await page.waitForSelector('body[data-hydrated=true]');
  const dom = await page.evaluate(() => ({
    pwned: window.__pwned,
    injected: document.querySelectorAll('svg[onload], img[onerror], iframe, style:not([id]):not([data-leptos])').length,
    // An injected script is one the server did not write: inline without
    // the response's nonce, or one whose code is a payload's. (The server's
    // nonced data scripts hold the titles as escaped JSON strings.)
    scripts: [...document.scripts].filter((s) => (!s.src && !s.nonce) || s.textContent.trim().startsWith('window.__pwned')).length,
    titles: document.head.querySelectorAll('title').length,
  }));
  assert.equal(dom.pwned, undefined, `${path}: a payload ran`);
  assert.equal(dom.scripts, 0, `${path}: a payload became a script element`);
  assert.equal(dom.injected, 0, `${path}: a payload became an element`);
  assert.equal(dom.titles, 1, `${path}: one <title>`);
}

test('hostile titles stay text on every page, and the CSP refuses injected inline script', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const user = `x${randomBytes(4).toString('hex')}`;
  const api = context.request;
  const headers = { origin: origin() };
  const reg = await api.post(at('api/v1/auth/register'), { headers, data: { username: user, password: 'correct horse battery' } });
  assert.equal(reg.status(), 201, await reg.text());

  const streams = [];
  for (const title of PAYLOADS) {
    const res = await api.post(at('api/v1/streams'), { headers, data: { title, description: title, visibility: 'public' } });
    assert.equal(res.status(), 201, await res.text());
    const body = await res.json();
    assert.equal(body.title, title, 'the title is stored as it was sent');
    streams.push({ id: body.id, token: body.ingest_token, title });
  }

  // Live, so the home page, the dashboard and the profile list them.
  await page.goto(at(''));
  for (const s of streams) assert.equal(await goLive(page, s.id, s.token), 'ready');

  const pages = [
    '', `u/${user}`, 'dashboard', 'search?q=pwned', 'streams',
    ...streams.flatMap((s) => [`watch/${s.id}`, `studio/${s.id}`, `watch/${s.id}/transcript`, `dashboard/${s.id}`]),
  ];
  const viewer = await context.newPage();
  const viewerErrors = watchErrors(viewer);
  for (const path of pages) {
    const res = await viewer.goto(at(path));
    assert.ok(res.status() < 500, `${path}: ${res.status()}`);
    await assertInert(viewer, path, res);
  }

  // The watch page's title is the stream's title, as text.
  for (const s of streams) {
    await viewer.goto(at(`watch/${s.id}`));
    await viewer.waitForSelector('body[data-hydrated=true]');
    assert.equal(await viewer.title(), `${s.title} · Onair`);
    const h1 = await viewer.textContent('h1');
    assert.ok(h1.endsWith(s.title), `the heading shows the title as text: ${h1}`);
  }

  // The policy is enforced: an inline script added to the page does not run.
  const blocked = await viewer.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
    const s = document.createElement('script');
    s.textContent = 'window.__csp = 1';
    document.body.appendChild(s);
    setTimeout(() => resolve(window.__csp === 1 ? 'ran' : 'no event'), 2000);
  }));
  assert.match(blocked, /^script-src/, 'the injected inline script was refused');
  assert.equal(await viewer.evaluate(() => window.__csp), undefined);

  // The streams are live without media yet, so their playlists answer 404;
  // the one policy violation is the test's own injected script.
  const unexpected = [...errors, ...viewerErrors].filter((e) => !e.includes('Content Security Policy')
    && !e.includes('http 404') && !e.includes('status of 404') && !e.includes('net::ERR'));
  assert.deepEqual(unexpected, []);
  await context.close();
});
