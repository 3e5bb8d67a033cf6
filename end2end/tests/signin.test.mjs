// Signing in brings a person back to where they were: "Sign in to chat" on
// a watch page → the sign-in form → back on that watch page, signed in and
// able to chat; the header's "Sign in" and the switch to sign-up keep the
// way back; a `next` that leaves the site is ignored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startOnair(['--passthrough-only']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const at = (path) => new URL(path, server.url).href;
const origin = () => server.url.replace(/\/$/, '');

async function account(prefix) {
  const context = await browser.newContext();
  const username = `${prefix}${randomBytes(4).toString('hex')}`;
  const reg = await context.request.post(at('api/v1/auth/register'), { headers: { origin: origin() }, data: { username, password: 'correct horse battery' } });
  assert.equal(reg.status(), 201);
  return { context, username };
}

test('"Sign in to chat" comes back to the stream, and a foreign next is ignored', async () => {
  const owner = await account('own');
  const created = await owner.context.request.post(at('api/v1/streams'), { headers: { origin: origin() }, data: { title: 'Come back here', visibility: 'public' } });
  const { id } = await created.json();
  const viewer = await account('view');
  // The viewer's session is dropped: a signed-out visitor who has an account.
  await viewer.context.clearCookies();

  const page = await viewer.context.newPage();
  await page.goto(at(`watch/${id}?t=5`));
  await page.waitForSelector('body[data-hydrated=true]');
  const link = page.getByTestId('chat-signin');
  assert.equal(await link.getAttribute('href'), `/login?next=/watch/${id}%3Ft%3D5`);
  assert.equal(await page.locator('header a', { hasText: 'Sign in' }).getAttribute('href'), `/login?next=/watch/${id}%3Ft%3D5`);
  await link.click();
  await page.waitForURL(/\/login\?next=/);
  await page.waitForSelector('body[data-hydrated=true]');
  assert.equal(await page.getByTestId('to-register').getAttribute('href'), `/register?next=/watch/${id}%3Ft%3D5`);
  await page.fill('[data-testid=username]', viewer.username);
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('[data-testid=submit]');
  await page.waitForURL(at(`watch/${id}?t=5`));
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector('[data-testid=sign-out]');
  assert.equal(await page.$('[data-testid=chat-signin]'), null, 'signed in: no "Sign in to chat"');

  // A next that would leave the site lands on My streams instead.
  await viewer.context.clearCookies();
  for (const next of ['//evil.example/x', '/\\evil.example', 'https://evil.example/']) {
    await page.goto(at(`login?next=${encodeURIComponent(next)}`));
    await page.waitForSelector('body[data-hydrated=true]');
    await page.fill('[data-testid=username]', viewer.username);
    await page.fill('input[name=password]', 'correct horse battery');
    await page.click('[data-testid=submit]');
    await page.waitForURL(at('streams'));
    await viewer.context.clearCookies();
  }
});
