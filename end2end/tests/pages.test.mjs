// Profiles, My streams (edit, new ingest token, delete) and the home page's
// lists, in Chromium against Onair on the real SurrealDB server. Stream states
// that need a broadcast (live, ended) are set through SurrealDB's HTTP API,
// except one that goes live for real through the ingest socket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, startSurreal, launchBrowser, watchErrors } from './harness.mjs';

const PASSWORD = 'e2e-pages-pw';
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Fun';
let surreal;
let server;
let browser;

before(async () => {
  surreal = await startSurreal(PASSWORD);
  server = await startOnair(['--db', surreal.ws, '--db-user', 'root', '--db-password', PASSWORD]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  surreal?.stop();
});

const at = (path) => new URL(path, server.url).href;
const row = (id) => `[data-testid=stream-row][data-id="${id}"]`;

/** Errors other than the refusals a test provokes on purpose. */
const unexpected = (errors, allowed) => errors.filter((e) => !e.includes('net::ERR') && !allowed.some((a) => e.includes(a)));

/** Creates a stream from the My streams form; returns its id and the token shown once. */
async function createFromForm(page, title, visibility) {
  await page.fill('[data-testid=new-title]', title);
  await page.selectOption('[data-testid=new-visibility]', visibility);
  await page.click('[data-testid=create]');
  await page.locator('[data-testid=created] strong', { hasText: title }).waitFor();
  const href = await page.getAttribute('[data-testid=created-studio]', 'href');
  const id = href.split('/').pop();
  await page.waitForSelector(row(id));
  // The form is empty again for the next stream.
  assert.equal(await page.inputValue('[data-testid=new-title]'), '');
  assert.equal(await page.inputValue('[data-testid=new-description]'), '');
  return { id, token: await page.textContent('[data-testid=created-token]') };
}

/** Opens an ingest socket from the page with `token` and says what the server answered first. */
function tryIngest(page, id, token) {
  return page.evaluate(([url, token]) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', version: 1, token, mime_type: 'video/webm', capture_start_ms: Date.now(), new_period: false }));
    ws.onmessage = (m) => { window.__ingest = ws; resolve(JSON.parse(m.data).type); };
    ws.onclose = (e) => resolve(`close ${e.code}`);
  }), [at(`api/v1/streams/${id}/ingest`).replace(/^http/, 'ws'), token]);
}

test('a broadcaster edits, re-keys and deletes streams; the profile lists only public ones', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const user = `pg${randomBytes(4).toString('hex')}`;

  // Sign up through the UI.
  await page.goto(at('register'));
  await page.waitForSelector('body[data-hydrated=true]');
  await page.fill('[data-testid=username]', user);
  await page.fill('[data-testid=password]', 'correct horse battery');
  await page.click('[data-testid=submit]');
  await page.waitForURL(/\/streams$/);
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector('[data-testid=no-streams]');
  assert.equal(await page.textContent('[data-testid=profile-link]'), `/u/${user}`);

  const pub = await createFromForm(page, 'Morning show', 'public');
  const unlisted = await createFromForm(page, 'Rehearsal', 'unlisted');
  const xss = await createFromForm(page, XSS, 'public');
  assert.equal(pub.token.length, 64);

  // Edit: a title the server refuses shows its message; a good one is saved.
  await page.click(`${row(pub.id)} [data-testid=edit]`);
  const form = `${row(pub.id)} [data-testid=edit-form]`;
  assert.equal(await page.inputValue(`${form} [data-testid=edit-title]`), 'Morning show');
  assert.equal(await page.inputValue(`${form} [data-testid=edit-visibility]`), 'public');
  await page.fill(`${form} [data-testid=edit-title]`, '   ');
  await page.click(`${form} [data-testid=edit-save]`);
  await page.waitForSelector(`${form} [data-testid=edit-error]`);
  assert.match(await page.textContent(`${form} [data-testid=edit-error]`), /title: must be 1 to 120 characters/);
  await page.fill(`${form} [data-testid=edit-title]`, 'Evening show');
  await page.fill(`${form} [data-testid=edit-description]`, 'Synths until late');
  await page.click(`${form} [data-testid=edit-save]`);
  await page.locator(`${row(pub.id)} [data-testid=row-title]`, { hasText: 'Evening show' }).waitFor();
  assert.equal(await page.$(form), null, 'the form closes once saved');
  const saved = await (await page.request.get(at(`api/v1/streams/${pub.id}`))).json();
  assert.equal(saved.title, 'Evening show');
  assert.equal(saved.description, 'Synths until late');
  assert.equal(saved.visibility, 'public');

  // New ingest token: a confirm step with a warning, then the token, shown once.
  await page.click(`${row(unlisted.id)} [data-testid=new-token]`);
  const confirm = `${row(unlisted.id)} [data-testid=token-confirm]`;
  assert.match(await page.textContent(confirm), /can no longer connect/);
  await page.click(`${confirm} [data-testid=token-cancel]`);
  assert.equal(await page.$(confirm), null);
  await page.click(`${row(unlisted.id)} [data-testid=new-token]`);
  await page.click(`${confirm} [data-testid=token-confirm-button]`);
  const fresh = await page.textContent(`${row(unlisted.id)} [data-testid=row-token]`);
  assert.equal(fresh.length, 64);
  assert.notEqual(fresh, unlisted.token);
  assert.match(await page.textContent(`${row(unlisted.id)} [data-testid=token-shown]`), /previous token no longer works/);
  assert.equal(await tryIngest(page, unlisted.id, unlisted.token), 'close 4001', 'the old token is refused');
  await page.click(`${row(unlisted.id)} [data-testid=token-done]`);
  await page.click(`${row(unlisted.id)} [data-testid=new-token]`);
  assert.equal(await page.$(`${row(unlisted.id)} [data-testid=row-token]`), null, 'the token is not shown again');
  await page.click(`${confirm} [data-testid=token-cancel]`);

  // The profile, rendered on the server: public streams only, titles as text.
  const profile = await context.newPage();
  const profileErrors = watchErrors(profile);
  const res = await profile.goto(at(`u/${user}`));
  assert.equal(res.status(), 200);
  assert.equal(await profile.title(), `${user} · Onair`);
  assert.equal(await profile.getAttribute('meta[property="og:title"]', 'content'), `${user} on Onair`);
  assert.match(await profile.getAttribute('meta[property="og:description"]', 'content'), /2 public streams/);
  await profile.waitForSelector('body[data-hydrated=true]');
  const titles = await profile.$$eval('[data-testid=profile-stream-title]', (els) => els.map((e) => e.textContent));
  assert.deepEqual(titles.sort(), [XSS, 'Evening show'].sort());
  assert.doesNotMatch(await profile.textContent('[data-testid=profile]'), /Rehearsal/);
  assert.equal(await profile.$$eval('[data-testid=profile] img, [data-testid=profile] script', (els) => els.length), 0);
  assert.equal(await profile.evaluate(() => window.__xss), undefined, 'the title ran no script');
  assert.equal(await profile.textContent('[data-testid=profile-name]'), user);
  assert.deepEqual(profileErrors, []);

  // Delete asks first; cancel keeps the stream, confirm removes it everywhere.
  await page.click(`${row(xss.id)} [data-testid=delete]`);
  const del = `${row(xss.id)} [data-testid=delete-confirm]`;
  assert.match(await page.textContent(del), /cannot be undone/);
  await page.click(`${del} [data-testid=delete-cancel]`);
  assert.equal(await page.$(del), null);
  assert.ok(await page.$(row(xss.id)), 'still listed after cancel');
  await page.click(`${row(xss.id)} [data-testid=delete]`);
  await page.click(`${del} [data-testid=delete-confirm-button]`);
  await page.waitForSelector(row(xss.id), { state: 'detached' });
  assert.equal((await page.request.get(at(`api/v1/streams/${xss.id}`))).status(), 404);
  await profile.reload();
  await profile.waitForSelector('[data-testid=profile-stream-title]');
  assert.deepEqual(await profile.$$eval('[data-testid=profile-stream-title]', (els) => els.map((e) => e.textContent)), ['Evening show']);

  // A live stream cannot be deleted: the server's reason is shown, the row stays.
  // (The socket is opened from the profile tab, which stays open.)
  assert.equal(await tryIngest(profile, unlisted.id, fresh), 'ready', 'the new token publishes');
  await page.reload();
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector(`${row(unlisted.id)}[data-state=live]`);
  await page.click(`${row(unlisted.id)} [data-testid=delete]`);
  await page.click(`${row(unlisted.id)} [data-testid=delete-confirm-button]`);
  await page.waitForSelector(`${row(unlisted.id)} [data-testid=delete-error]`);
  assert.match(await page.textContent(`${row(unlisted.id)} [data-testid=delete-error]`), /live; end the broadcast/);
  // Live but unlisted: not on the home page.
  const home = await (await page.request.get(server.url)).text();
  assert.doesNotMatch(home, /Rehearsal/);
  assert.ok(await page.$(row(unlisted.id)), 'still listed');
  await profile.evaluate(() => window.__ingest.close());

  // Expected refusals: the blank title (422) and deleting the live stream (409).
  assert.deepEqual(unexpected(errors, ['http 422', 'http 409', 'status of 422', 'status of 409']), []);
  await context.close();
});

test('the home page lists live and recent public streams, with links to profiles', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const origin = new URL(server.url).origin;
  const api = (path, data) => page.request.post(at(path), { data, headers: { Origin: origin } });
  const user = `home${randomBytes(4).toString('hex')}`;
  assert.equal((await api('api/v1/auth/register', { username: user, password: 'correct horse battery' })).status(), 201);
  const make = async (title, visibility) => {
    const res = await api('api/v1/streams', { title, visibility });
    assert.equal(res.status(), 201);
    return (await res.json()).id;
  };
  const live = await make('Live jam', 'public');
  const ended = await make('Yesterday jam', 'public');
  const hiddenEnded = await make('Unlisted jam', 'unlisted');
  const hiddenLive = await make('Private jam', 'private');
  const later = await make('Late jam', 'public');
  await surreal.sql(`
    UPDATE stream:\`${live}\` SET state = 'live', started_at = time::now();
    UPDATE stream:\`${hiddenLive}\` SET state = 'live', started_at = time::now();
    UPDATE stream:\`${ended}\` SET state = 'ended', started_at = time::now() - 2h, ended_at = time::now() - 1h;
    UPDATE stream:\`${hiddenEnded}\` SET state = 'ended', started_at = time::now() - 2h, ended_at = time::now() - 1h;`);

  const res = await page.goto(server.url);
  assert.equal(res.status(), 200);
  await page.waitForSelector('body[data-hydrated=true]');
  const card = (list, id) => `[data-testid=${list}] [data-testid=stream-card][data-id="${id}"]`;
  await page.waitForSelector(card('live-list', live));
  assert.equal(await page.$(card('live-list', hiddenLive)), null, 'private streams are not listed');
  assert.equal(await page.textContent(`${card('live-list', live)} [data-testid=state-badge]`), 'LIVE');
  assert.match(await page.textContent(card('live-list', live)), /Live since \d+ \w{3} \d{4}, \d\d:\d\d UTC/);
  await page.waitForSelector(card('recent-list', ended));
  assert.equal(await page.$(card('recent-list', hiddenEnded)), null, 'unlisted streams are not listed');
  assert.match(await page.textContent(card('recent-list', ended)), /Ended \d+ \w{3} \d{4}/);
  assert.equal(await page.getAttribute(`${card('recent-list', ended)} [data-testid=card-owner]`, 'href'), `/u/${user}`);
  // Nobody has the watch page open: the realtime room counts 0 viewers.
  assert.match(await page.textContent(`${card('live-list', live)} [data-testid=card-viewers]`), /0 watching/);

  // Refresh reloads the lists from the browser.
  await surreal.sql(`UPDATE stream:\`${later}\` SET state = 'live', started_at = time::now();`);
  await page.click('[data-testid=refresh-live]');
  await page.waitForSelector(card('live-list', later));
  // And by themselves: a stream that ends leaves the live list and joins the
  // recent one within the stated interval, with no click.
  assert.match(await page.textContent('[data-testid=auto-refresh]'), /Updates every 15 s/);
  await surreal.sql(`UPDATE stream:\`${later}\` SET state = 'ended', ended_at = time::now();`);
  await page.waitForSelector(card('recent-list', later), { timeout: 25_000 });
  assert.equal(await page.$(card('live-list', later)), null, 'gone from the live list');

  // The broadcaster's name leads to their profile (client-side navigation).
  await page.click(`${card('recent-list', ended)} [data-testid=card-owner]`);
  await page.waitForURL(at(`u/${user}`));
  await page.locator('[data-testid=profile-name]', { hasText: user }).waitFor();
  const states = await page.$$eval('[data-testid=profile-stream]', (els) => els.map((e) => e.dataset.state));
  assert.deepEqual(states, ['live', 'ended', 'ended'], 'live streams first, then the ended ones');
  assert.doesNotMatch(await page.textContent('[data-testid=profile]'), /Unlisted jam|Private jam/);
  await page.waitForFunction((u) => document.title === `${u} · Onair`, user);

  // A private stream's owner makes a link that plays for anyone who has it.
  // (These streams are only marked live, so their players find no playlist:
  // a page of its own, whose errors are not this test's business.)
  const owner = await context.newPage();
  await owner.goto(at(`watch/${hiddenLive}`));
  await owner.waitForSelector('body[data-hydrated=true]');
  await owner.click('[data-testid=share] summary');
  await owner.selectOption('[data-testid=private-link-expiry]', '3600');
  await owner.click('[data-testid=private-link-create]');
  const link = (await owner.textContent('[data-testid=private-link-url]')).trim();
  assert.match(link, new RegExp(`^${origin}/watch/${hiddenLive}\\?token=\\d+\\.[\\w-]{43}$`));
  assert.match(await owner.textContent('[data-testid=private-link-until]'), /^Works until \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC\.$/);
  const expires = Number(new URL(link).searchParams.get('token').split('.')[0]);
  const hour = Date.now() / 1000 + 3600;
  assert.ok(expires >= hour - 5 && expires <= hour + 300, `expires ${expires}`);
  // A public stream's Share panel has no such row (its link is enough).
  await owner.goto(at(`watch/${live}`));
  await owner.waitForSelector('body[data-hydrated=true]');
  assert.equal(await owner.locator('[data-testid=private-link]').count(), 0);
  await owner.close();
  const strangerContext = await browser.newContext();
  const stranger = await strangerContext.newPage();
  const opened = await stranger.goto(link);
  assert.equal(opened.status(), 200);
  await stranger.waitForSelector('[data-testid=player]');
  assert.equal(await stranger.locator('[data-testid=watch-missing]').count(), 0);
  assert.equal(await stranger.locator('[data-testid=private-link]').count(), 0, 'link holders make no links');
  // Without the token the same page is not found.
  assert.equal((await stranger.goto(at(`watch/${hiddenLive}`))).status(), 404);
  await strangerContext.close();

  // An unknown broadcaster: a friendly page with status 404.
  const missing = await page.goto(at('u/nobody-at-all'));
  assert.equal(missing.status(), 404);
  await page.waitForSelector('[data-testid=profile-not-found]');
  assert.equal(await page.title(), 'User not found · Onair');

  assert.deepEqual(unexpected(errors, [`http 404: ${at('u/nobody-at-all')}`, 'status of 404']), []);
  await context.close();
});
