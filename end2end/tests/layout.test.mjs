// The layout at phone, tablet and desktop widths (390, 768 and 1366 px), as
// a person meets it: every page signed in, with a live-able stream, its
// watch, studio, transcript and analytics pages. On every page and width:
// no horizontal scroll, a header of reasonable height whose items are all on
// screen, navigation words on one line, styled primary buttons, and at
// most one <meta name=description>.
// Screenshots of each go to $ONAIR_SCREENSHOTS (default
// target/screenshots/layout) for a person to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startOnair, launchBrowser } from './harness.mjs';

const WIDTHS = [390, 768, 1366];
const SHOTS = process.env.ONAIR_SCREENSHOTS || join('target', 'screenshots', 'layout');

let server;
let browser;

before(async () => {
  server = await startOnair(['--passthrough-only']);
  browser = await launchBrowser();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const at = (path) => new URL(path, server.url).href;

/** What the page looks like, measured in the page. */
function measure() {
  const vw = window.innerWidth;
  const header = document.querySelector('.site-header');
  const h = header.getBoundingClientRect();
  const offscreen = [...header.querySelectorAll('a, button, input')]
    .filter((e) => e.offsetParent !== null)
    .map((e) => ({ e, r: e.getBoundingClientRect() }))
    .filter(({ r }) => r.left < -1 || r.right > vw + 1)
    .map(({ e, r }) => `${e.outerHTML.slice(0, 60)} at ${Math.round(r.left)}..${Math.round(r.right)}`);
  const lineHeight = (e) => parseFloat(getComputedStyle(e).lineHeight) || 24;
  const wrappedNav = [...document.querySelectorAll('.site-nav a, .site-nav button')]
    .filter((e) => e.getBoundingClientRect().height > lineHeight(e) * 1.6)
    .map((e) => `${e.textContent} is ${Math.round(e.getBoundingClientRect().height)} px tall`);
  // Elements wider than the viewport (the usual cause of sideways scroll).
  const wide = [...document.querySelectorAll('main *')]
    .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().right > vw + 1)
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`);
  const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim();
  const probe = document.createElement('span');
  probe.style.color = accent;
  document.body.append(probe);
  const accentRgb = getComputedStyle(probe).color;
  probe.remove();
  const plainButtons = [...document.querySelectorAll('.button-primary')]
    .filter((b) => getComputedStyle(b).backgroundColor !== accentRgb)
    .map((b) => `${b.textContent.trim()}: ${getComputedStyle(b).backgroundColor}`);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    vw,
    headerHeight: Math.round(h.height),
    offscreen,
    wrappedNav,
    wide,
    plainButtons,
    descriptions: document.querySelectorAll('meta[name="description"]').length,
  };
}

test('every page fits phone, tablet and desktop widths', async () => {
  const origin = server.url.replace(/\/$/, '');
  const context = await browser.newContext();
  const user = `lay${randomBytes(4).toString('hex')}`;
  const reg = await context.request.post(at('api/v1/auth/register'), { headers: { origin }, data: { username: user, password: 'correct horse battery' } });
  assert.equal(reg.status(), 201);
  const created = await context.request.post(at('api/v1/streams'), {
    headers: { origin },
    data: { title: 'A rather long stream title that has to wrap on a phone screen', visibility: 'public' },
  });
  assert.equal(created.status(), 201);
  const { id } = await created.json();
  const pages = ['/', '/login', '/register', '/search?q=stream', '/streams', '/dashboard', `/dashboard/${id}`,
    `/watch/${id}`, `/watch/${id}/transcript`, `/studio/${id}`, `/u/${user}`];

  const problems = [];
  for (const width of WIDTHS) {
    const page = await context.newPage();
    await page.setViewportSize({ width, height: width < 500 ? 844 : 900 });
    for (const path of pages) {
      await page.goto(at(path.slice(1)));
      await page.waitForSelector('body[data-hydrated=true]');
      // Let suspended resources render.
      await page.waitForLoadState('networkidle').catch(() => {});
      const m = await page.evaluate(measure);
      const name = `${width}${path.replace(id, 'ID').replace(user, 'USER').replace(/[^a-z0-9]+/gi, '_')}`;
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
      const where = `${path} at ${width} px`;
      if (m.scrollWidth > m.vw) problems.push(`${where}: scrolls sideways (${m.scrollWidth} > ${m.vw}): ${m.wide.join('; ')}`);
      // Phones and tablets get two rows (navigation below), desktops one.
      if (m.headerHeight > (width < 1000 ? 120 : 80)) problems.push(`${where}: header is ${m.headerHeight} px tall`);
      if (m.offscreen.length) problems.push(`${where}: header items off screen: ${m.offscreen.join('; ')}`);
      if (m.wrappedNav.length) problems.push(`${where}: nav words wrap: ${m.wrappedNav.join('; ')}`);
      if (m.descriptions > 1) problems.push(`${where}: ${m.descriptions} <meta name=description>`);
      if (m.plainButtons.length) problems.push(`${where}: unstyled primary buttons: ${m.plainButtons.join('; ')}`);
    }
    await page.close();
  }
  assert.deepEqual(problems, [], `layout problems (screenshots in ${SHOTS}):\n${problems.join('\n')}`);
});
