// The realtime room in the browser: viewer counts, chat, moderation and the
// stream's state over the events socket (/api/v1/streams/{id}/events).
//
// 1. The whole product: a broadcaster goes live from the studio (fake camera),
//    two viewers in separate browser contexts (one signed in) watch; counts,
//    chat, an XSS payload rendered as text, deletion and a ban by the
//    broadcaster, and the end of the stream reaching the watch page.
// 2. A dropped events socket on the real server: the page is served through
//    a TCP proxy the test cuts and holds down while messages are posted; the
//    page comes back by itself and shows each of them once.
// 3. The client's connection logic against a scripted socket (Playwright's
//    routeWebSocket stands in for the server): resume after a drop without
//    duplicates, "Reconnecting…", a refused message put back into the input,
//    the character counter, the "New messages" pill, the heartbeat ping, and
//    a final refusal that stops reconnecting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser, watchErrors, startProxy } from './harness.mjs';

let server;
let browser;

before(async () => {
  // Passthrough only: the ladder is not what this tests, and encoding it
  // in the debug server next to the browser pages starves a 2-core machine.
  server = await startOnair(['--passthrough-only']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const url = (path) => new URL(path, server.url).href;

/** Registers a user through the JSON API in this context's cookie jar. */
async function register(page, prefix) {
  const origin = new URL(server.url).origin;
  const username = `${prefix}${randomBytes(4).toString('hex')}`;
  const res = await page.request.post(url('api/v1/auth/register'),
    { data: { username, password: 'correct horse battery' }, headers: { Origin: origin } });
  assert.equal(res.status(), 201, await res.text());
  return username;
}

/** The texts of the chat messages on a page. */
const texts = (page) => page.$$eval('[data-testid=chat-message] [data-testid=chat-text]', (els) => els.map((e) => e.textContent));

/** Fails with what the page shows, so a timeout says something useful. */
async function waitFor(page, fn, arg, what, timeout = 20_000) {
  await page.waitForFunction(fn, arg, { timeout }).catch(async (e) => {
    const chat = await page.textContent('[data-testid=chat]').catch(() => '(no chat)');
    throw new Error(`${what}: ${e.message}\nchat: ${chat}\nserver log:\n${server.log().slice(-2500)}`);
  });
}

const unexpected = (errors) => errors.filter((e) => !e.includes('net::ERR'));

test('viewers are counted, chat flows as text, the broadcaster moderates, and the end reaches the watch page', async () => {
  // The broadcaster signs up, creates a stream and goes live from the studio.
  const hostContext = await browser.newContext();
  const studio = await hostContext.newPage();
  const studioErrors = watchErrors(studio);
  const host = await register(studio, 'host');
  const created = await studio.request.post(url('api/v1/streams'),
    { data: { title: 'Chat E2E', visibility: 'public' }, headers: { Origin: new URL(server.url).origin } });
  assert.equal(created.status(), 201);
  const { id } = await created.json();
  await studio.goto(url(`studio/${id}`));
  await studio.waitForSelector('body[data-hydrated=true]');
  await studio.click('[data-testid=preview-button]');
  await studio.waitForSelector('[data-testid=status][data-phase=previewing]', { timeout: 20_000 });
  await studio.click('[data-testid=go-live]');
  await waitFor(studio, () => Number(document.querySelector('[data-testid=status-acked]').textContent) >= 4,
    null, 'the studio goes live', 45_000);
  // The studio joins its room as the studio: not a viewer.
  await studio.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });
  assert.equal(await studio.textContent('[data-testid=status-viewers]'), '0');

  // A signed-in viewer and an anonymous one, in their own browser contexts.
  const fanContext = await browser.newContext();
  const fan = await fanContext.newPage();
  const fanErrors = watchErrors(fan);
  const fanName = await register(fan, 'fan');
  const guestContext = await browser.newContext();
  const guest = await guestContext.newPage();
  const guestErrors = watchErrors(guest);
  for (const page of [fan, guest]) {
    await page.goto(url(`watch/${id}`));
    await page.waitForSelector('body[data-hydrated=true]');
    await page.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });
  }
  await waitFor(studio, () => document.querySelector('[data-testid=status-viewers]').textContent === '2', null,
    'the studio counts two viewers');
  await waitFor(guest, () => document.querySelector('[data-testid=viewer-count]').textContent === '2 watching', null,
    'the watch page counts two viewers');
  // A second tab of the same browser is the same viewer.
  const fanTab = await fanContext.newPage();
  await fanTab.goto(url(`watch/${id}`));
  await fanTab.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(await studio.textContent('[data-testid=status-viewers]'), '2', 'two tabs, one viewer');
  await fanTab.close();

  // Signed out: no chatting, and a way to sign in.
  assert.equal(await guest.isDisabled('[data-testid=chat-input]'), true);
  // Signing in comes back here (end2end/tests/signin.test.mjs follows it).
  assert.equal(await guest.getAttribute('[data-testid=chat-signin]', 'href'), `/login?next=/watch/${id}`);
  assert.match(await guest.textContent('[data-testid=chat-signin]'), /Sign in to chat/);

  // The signed-in viewer chats; the others see it.
  await fan.fill('[data-testid=chat-input]', 'hello from the fan 👋');
  await fan.click('[data-testid=chat-send]');
  for (const page of [guest, studio, fan]) {
    await waitFor(page, () => [...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent === 'hello from the fan 👋'),
      null, 'the message arrives');
  }
  assert.equal(await fan.inputValue('[data-testid=chat-input]'), '', 'the input is cleared once sent');

  // Markup is shown as text and never runs.
  const xss = '<img src=x onerror="window.__xss=1"> <b>bold?</b>';
  await fan.fill('[data-testid=chat-input]', xss);
  await fan.click('[data-testid=chat-send]');
  for (const page of [guest, studio]) {
    await waitFor(page, (t) => [...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent === t),
      xss, 'the payload arrives as text');
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('[data-testid=chat-messages] img, [data-testid=chat-messages] b', (els) => els.length), 0);
  }
  // A long word wraps inside the panel instead of widening it.
  await fan.fill('[data-testid=chat-input]', 'w'.repeat(300));
  await fan.click('[data-testid=chat-send]');
  await waitFor(guest, () => [...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent.length === 300),
    null, 'the long word arrives');
  assert.equal(await guest.$eval('[data-testid=chat-messages]', (el) => el.scrollWidth <= el.clientWidth + 1), true,
    'no horizontal overflow');
  // The counter, and a message that is too long cannot be sent.
  await fan.fill('[data-testid=chat-input]', 'x'.repeat(501));
  assert.equal(await fan.textContent('[data-testid=chat-count]'), '501/500');
  assert.equal(await fan.isDisabled('[data-testid=chat-send]'), true);
  await fan.fill('[data-testid=chat-input]', '');

  // The broadcaster deletes the payload from the studio; it goes everywhere.
  const line = studio.locator('[data-testid=chat-message]', { hasText: 'bold?' });
  await line.hover();
  await line.locator('[data-testid=chat-delete]').click();
  for (const page of [fan, guest]) {
    await waitFor(page, () => ![...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent.includes('bold?')),
      null, 'the deleted message disappears');
  }
  await fan.waitForSelector('[data-testid=chat-notice]');
  assert.match(await fan.textContent('[data-testid=chat-notice]'), new RegExp(`${host} deleted a message from ${fanName}`));
  assert.deepEqual(await texts(guest), ['hello from the fan 👋', 'w'.repeat(300)]);

  // A ban takes the input away; Unban from the notice gives it back.
  const fanLine = studio.locator('[data-testid=chat-message]', { hasText: 'hello from the fan' });
  await fanLine.hover();
  await fanLine.locator('[data-testid=chat-ban]').click();
  await fan.waitForSelector('[data-testid=chat-barred]', { timeout: 10_000 });
  assert.equal(await fan.isDisabled('[data-testid=chat-input]'), true);
  await studio.click('[data-testid=chat-undo]');
  await waitFor(fan, () => !document.querySelector('[data-testid=chat-input]').disabled, null, 'unbanned');
  await fan.fill('[data-testid=chat-input]', 'back again');
  await fan.click('[data-testid=chat-send]');
  await waitFor(guest, () => [...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent === 'back again'),
    null, 'the unbanned viewer chats again');

  // The broadcaster ends the stream: the watch pages say so at once.
  await studio.click('[data-testid=end]');
  await studio.click('[data-testid=end-confirm]');
  for (const page of [fan, guest]) {
    await page.waitForSelector('[data-testid=watch-ended]', { timeout: 15_000 });
    await page.waitForSelector('[data-testid=player-status][data-state=ended]', { timeout: 5_000 });
    assert.equal(await page.$('[data-testid=live-badge]'), null, 'no LIVE badge once ended');
    // The chat stays readable, and is closed to posts.
    await page.waitForSelector('[data-testid=chat-closed]');
    assert.equal(await page.isDisabled('[data-testid=chat-input]'), true);
    assert.ok((await texts(page)).includes('back again'));
  }
  await studio.waitForSelector('[data-testid=status][data-phase=ended]', { timeout: 30_000 });

  assert.deepEqual(unexpected(studioErrors), []);
  assert.deepEqual(unexpected(fanErrors), []);
  assert.deepEqual(unexpected(guestErrors), []);
  for (const c of [hostContext, fanContext, guestContext]) await c.close();
});

test('a dropped events socket comes back by itself and shows what was said meanwhile, once', async () => {
  const proxy = await startProxy(Number(new URL(server.url).port));
  const posterContext = await browser.newContext();
  const poster = await posterContext.newPage();
  await register(poster, 'poster');
  const created = await poster.request.post(url('api/v1/streams'),
    { data: { title: 'Resume E2E', visibility: 'public' }, headers: { Origin: new URL(server.url).origin } });
  assert.equal(created.status(), 201);
  const { id } = await created.json();
  await poster.goto(url(`watch/${id}`));
  await poster.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });

  const readerContext = await browser.newContext();
  const reader = await readerContext.newPage();
  const pageErrors = [];
  reader.on('pageerror', (e) => pageErrors.push(e.message));
  await reader.goto(new URL(`watch/${id}`, proxy.url).href);
  await reader.waitForSelector('body[data-hydrated=true]');
  await reader.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 20_000 });

  const say = async (text) => {
    await poster.fill('[data-testid=chat-input]', text);
    await poster.click('[data-testid=chat-send]');
    await waitFor(poster, (t) => [...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent === t),
      text, 'the poster sees its message');
  };
  await say('before the drop');
  await waitFor(reader, () => document.querySelectorAll('[data-testid=chat-message]').length === 1, null, 'the first message');

  proxy.down();
  await reader.waitForSelector('[data-testid=chat][data-state=reconnecting]', { timeout: 10_000 });
  assert.match(await reader.textContent('[data-testid=chat-link]'), /Reconnecting/);
  await say('while you were away 1');
  await say('while you were away 2');
  await new Promise((r) => setTimeout(r, 1500));
  proxy.up();
  await reader.waitForSelector('[data-testid=chat][data-state=open]', { timeout: 30_000 });
  await waitFor(reader, () => document.querySelectorAll('[data-testid=chat-message]').length >= 3, null, 'the missed messages');
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await texts(reader), ['before the drop', 'while you were away 1', 'while you were away 2']);
  await say('after the drop');
  await waitFor(reader, () => document.querySelectorAll('[data-testid=chat-message]').length === 4, null, 'live again');
  assert.deepEqual(pageErrors, []);
  await readerContext.close();
  await posterContext.close();
  proxy.close();
});

/** A chat message as the server sends it. */
const message = (id, username, text) => ({ id, author: { username, moderator: false }, text, at_ms: Date.now() });

/** A welcome as the server sends it. */
const welcome = (history, lastId, extra = {}) => ({
  type: 'welcome', version: 1, username: 'ann', moderator: false, can_chat: true, state: 'live', viewers: 2,
  settings: { slow_mode_secs: 0, block_links: false, banned_words: [] }, history, last_id: lastId, ...extra,
});

test('the client resumes without duplicates, reconnects, pings, and shows refusals (scripted socket)', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const connections = [];
  await page.routeWebSocket(/\/api\/v1\/streams\/[^/]+\/events$/, (ws) => {
    const conn = { ws, received: [] };
    connections.push(conn);
    ws.onMessage((m) => conn.received.push(JSON.parse(m)));
  });
  const next = async (n) => {
    for (let i = 0; i < 200 && connections.length < n; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(connections.length >= n, `connection ${n} opened`);
    const conn = connections[n - 1];
    for (let i = 0; i < 200 && conn.received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    return conn;
  };
  const send = (conn, frame) => conn.ws.send(JSON.stringify(frame));

  // A real stream (a missing one gets a 404 page without a room); its
  // events socket is the script's.
  const owner = await browser.newContext();
  await register(owner, 'script');
  const created = await owner.request.post(url('api/v1/streams'),
    { data: { title: 'Scripted', visibility: 'public' }, headers: { Origin: new URL(server.url).origin } });
  assert.equal(created.status(), 201);
  const { id: room } = await created.json();
  await owner.close();
  await page.goto(url(`watch/${room}`));
  await page.waitForSelector('body[data-hydrated=true]');
  const first = await next(1);
  const hello = first.received[0];
  assert.equal(hello.type, 'hello');
  assert.equal(hello.version, 1);
  assert.equal(hello.role, 'viewer');
  assert.equal(hello.last_id, undefined, 'a fresh join');
  assert.match(hello.viewer_id, /^[A-Za-z0-9_-]{8,64}$/);
  assert.equal(await page.evaluate(() => localStorage.getItem('onair-viewer-id')), hello.viewer_id);

  send(first, welcome([message('m1', 'bob', 'one'), message('m2', 'cy', 'two')], 5));
  send(first, { id: 6, type: 'chat', message: message('m3', 'bob', 'three') });
  await waitFor(page, () => document.querySelectorAll('[data-testid=chat-message]').length === 3, null, 'history and a new message');
  assert.equal(await page.textContent('[data-testid=viewer-count]'), '2 watching');
  assert.equal(await page.getAttribute('[data-testid=chat]', 'data-state'), 'open');

  // The server goes away: the page says so, reconnects and resumes after
  // the last event it saw; the replay overlaps and nothing shows twice.
  first.ws.close({ code: 1012, reason: 'restart' });
  await page.waitForSelector('[data-testid=chat][data-state=reconnecting]', { timeout: 5_000 });
  assert.match(await page.textContent('[data-testid=chat-link]'), /Reconnecting/);
  const second = await next(2);
  assert.equal(second.received[0].last_id, 6, 'resumes from the last event id');
  assert.equal(second.received[0].viewer_id, hello.viewer_id, 'the same viewer');
  send(second, welcome([], 7, { viewers: 3 }));
  send(second, { id: 6, type: 'chat', message: message('m3', 'bob', 'three') });
  send(second, { id: 7, type: 'chat', message: message('m4', 'bob', 'four') });
  send(second, { id: 8, type: 'viewers', count: 4 });
  await waitFor(page, () => document.querySelector('[data-testid=viewer-count]').textContent === '4 watching', null, 'viewers after the resume');
  assert.deepEqual(await texts(page), ['one', 'two', 'three', 'four']);
  assert.equal(await page.textContent('[data-testid=chat-link]'), '');

  // A refused message comes back into the input with the server's reason.
  await page.fill('[data-testid=chat-input]', '  too quick  ');
  await page.click('[data-testid=chat-send]');
  for (let i = 0; i < 100 && !second.received.some((m) => m.type === 'chat'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(second.received.find((m) => m.type === 'chat'), { type: 'chat', text: 'too quick' }, 'sent trimmed');
  send(second, { type: 'error', code: 'slow_mode', message: 'Slow mode: wait 3 s.' });
  await page.waitForSelector('[data-testid=chat-error]');
  assert.equal(await page.textContent('[data-testid=chat-error]'), 'Slow mode: wait 3 s.');
  assert.equal(await page.inputValue('[data-testid=chat-input]'), 'too quick');
  // Accepted: the echo arrives and the input stays empty.
  await page.click('[data-testid=chat-send]');
  send(second, { id: 9, type: 'chat', message: message('m5', 'ann', 'too quick') });
  await waitFor(page, () => document.querySelectorAll('[data-testid=chat-message]').length === 5, null, 'own message');
  assert.equal(await page.inputValue('[data-testid=chat-input]'), '');
  assert.equal(await page.$('[data-testid=chat-error]'), null, 'the error is gone once sent again');
  assert.equal(await page.getAttribute('[data-testid=chat-message][data-author=ann]', 'class').then((c) => c.includes('mine')), true);

  // Scrolled up, new messages do not pull the list down; the pill does.
  for (let i = 0; i < 40; i++) send(second, { id: 10 + i, type: 'chat', message: message(`f${i}`, 'bob', `filler ${i}`) });
  await waitFor(page, () => document.querySelectorAll('[data-testid=chat-message]').length === 45, null, 'fillers');
  await waitFor(page, () => { const l = document.querySelector('[data-testid=chat-messages]'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40; },
    null, 'following the newest message');
  await page.$eval('[data-testid=chat-messages]', (l) => { l.scrollTop = 0; });
  await page.waitForTimeout(200);
  send(second, { id: 50, type: 'chat', message: message('late', 'bob', 'while you were reading') });
  await page.waitForSelector('[data-testid=chat-new]:not([hidden])', { timeout: 5_000 });
  assert.equal(await page.$eval('[data-testid=chat-messages]', (l) => l.scrollTop), 0, 'the list stayed put');
  await page.click('[data-testid=chat-new]');
  await page.waitForSelector('[data-testid=chat-new][hidden]', { state: 'attached' });
  assert.equal(await page.$eval('[data-testid=chat-messages]', (l) => l.scrollHeight - l.scrollTop - l.clientHeight < 40), true);

  // The heartbeat: a ping every 15 s, answered with a pong.
  for (let i = 0; i < 400 && !second.received.some((m) => m.type === 'ping'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(second.received.some((m) => m.type === 'ping'), 'a ping within 20 s');
  send(second, { type: 'pong' });

  // A timeout takes the input away, and gives it back when it ends.
  send(second, { id: 51, type: 'moderation', action: 'timeout', username: 'ann', by: 'mod', until_ms: Date.now() + 1000 });
  await page.waitForSelector('[data-testid=chat-barred]', { timeout: 5_000 });
  assert.equal(await page.isDisabled('[data-testid=chat-input]'), true);
  assert.equal(await page.textContent('[data-testid=chat-notice]'), 'mod timed out ann. ');
  await waitFor(page, () => !document.querySelector('[data-testid=chat-input]').disabled, null, 'the timeout ends', 10_000);
  assert.equal(await page.$('[data-testid=chat-undo]'), null, 'no Unban for non-moderators');

  // The stream ends: the watch page says so without waiting for the playlist.
  send(second, { id: 52, type: 'state', state: 'ended' });
  await page.waitForSelector('[data-testid=watch-ended]', { timeout: 5_000 });
  await page.waitForSelector('[data-testid=player-status][data-state=ended]', { timeout: 5_000 });

  // A refusal a retry cannot fix stops reconnecting and says why.
  second.ws.close({ code: 4004, reason: JSON.stringify({ code: 'not_found', message: 'This stream is gone.' }) });
  await page.waitForSelector('[data-testid=chat][data-state=closed]', { timeout: 5_000 });
  assert.equal(await page.textContent('[data-testid=chat-link]'), 'This stream is gone.');
  await page.waitForTimeout(2000);
  assert.equal(connections.length, 2, 'no reconnect after a final refusal');
  assert.deepEqual(errors, []);
  await context.close();
});
