// Transcripts, search and summaries in Chromium, against Onair on the real
// SurrealDB server with the local AI server (SmolLM2 through the
// OpenAI-compatible chat completions API). An ended stream with transcript
// lines is seeded through the JSON API and SurrealDB's HTTP API (a real
// broadcast with captions is the live tests' business). The owner makes a
// summary on the dashboard and watches its progress; the transcript page
// lists the lines and a click opens the recording at that moment; the
// header's search box finds a line and leads to the same moment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOnair, startSurreal, startAiServer, launchBrowser, watchErrors } from './harness.mjs';

const PASSWORD = 'e2e-transcripts-pw';
const MODEL = 'smollm2-135m-instruct';
let surreal;
let ai;
let server;
let browser;

before(async () => {
  surreal = await startSurreal(PASSWORD);
  ai = await startAiServer();
  // 200 characters per model call: the transcript below takes several parts,
  // so the progress shows for a few seconds.
  server = await startOnair(['--db', surreal.ws, '--db-user', 'root', '--db-password', PASSWORD,
    '--llm-url', ai.url, '--llm-key', ai.key, '--llm-model', MODEL, '--llm-context-chars', '200']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await ai?.stop();
  surreal?.stop();
});

const at = (path) => new URL(path, server.url).href;
const origin = () => new URL(server.url).origin;

async function waitFor(page, fn, arg, what, timeout = 30_000) {
  await page.waitForFunction(fn, arg, { timeout }).catch(async (e) => {
    const text = await page.textContent('main').catch(() => '(no page)');
    throw new Error(`${what}: ${e.message}\npage: ${text.slice(0, 3000)}\nserver log:\n${server.log().slice(-2500)}`);
  });
}

const LINES = [
  'Hello everyone and welcome to the cooking stream.',
  'Today we are making fresh pasta from scratch.',
  'You need flour, eggs and a pinch of salt.',
  'Make a well in the flour and crack the eggs into it.',
  'Mix with a fork, then knead the dough for ten minutes.',
  'Let the dough rest for half an hour under a towel.',
  'Roll the dough thin and cut it into ribbons.',
  'Bring a big pot of salted water to the boil.',
  'Cook the fresh tagliatelle for two minutes only.',
  'Serve with <img src=x onerror="window.__xss=1"> parmesan and butter.',
  'That is all for today, the pasta is ready.',
  'Thanks for watching and see you next week.',
];
// Line i starts at i * 5 s: the tagliatelle line at 0:40.
const TAGLIATELLE_S = 40;

test('the owner summarises on the dashboard; the transcript and the header search open the moment', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const username = `tr${randomBytes(4).toString('hex')}`;
  const reg = await page.request.post(at('api/v1/auth/register'),
    { data: { username, password: 'correct horse battery' }, headers: { Origin: origin() } });
  assert.equal(reg.status(), 201, await reg.text());
  const created = await page.request.post(at('api/v1/streams'),
    { data: { title: 'Pasta night E2E', visibility: 'public' }, headers: { Origin: origin() } });
  assert.equal(created.status(), 201);
  const { id } = await created.json();
  const rows = LINES.map((text, i) => `CREATE transcript SET stream = stream:\`${id}\`, start_ms = ${i * 5000}, end_ms = ${i * 5000 + 4500}, text = ${JSON.stringify(text)};`);
  await surreal.sql(`UPDATE stream:\`${id}\` SET state = 'ended', started_at = time::now() - 1h, ended_at = time::now();
    ${rows.join('\n')}`);

  // The dashboard: the transcript's size, no summary yet, then Generate.
  await page.goto(at(`dashboard/${id}`));
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector('[data-testid=summary-panel] [data-testid=summary-empty]');
  assert.match(await page.textContent('[data-testid=transcript-info]'), /12 lines/);
  assert.equal(await page.$('[data-testid=summary-extractive-note]'), null, 'a model is configured');
  const calls = (await ai.health()).completions;
  await page.click('[data-testid=summary-generate]');
  // Progress while the parts are summarised...
  await waitFor(page, () => document.querySelector('[data-testid=summary-progress]'), null, 'the progress shows', 20_000);
  assert.match(await page.textContent('[data-testid=summary-progress]'), /Summarising…/);
  // ...then the summary, labelled with the model.
  await waitFor(page, () => (document.querySelector('[data-testid=summary][data-kind=llm] [data-testid=summary-text]')
    ?.textContent ?? '').trim().length > 0, null, 'the AI summary appears', 150_000);
  assert.equal(await page.$('[data-testid=summary-progress]'), null);
  assert.match(await page.textContent('[data-testid=summary-label]'), new RegExp(`^AI summary \\(${MODEL}\\) · made \\d+ \\w{3} \\d{4}`));
  assert.equal((await page.textContent('[data-testid=summary-generate]')).trim(), 'Regenerate summary');
  assert.ok((await ai.health()).completions - calls >= 4, 'three parts or more, then one call to combine them');
  const status = await (await page.request.get(at(`api/v1/streams/${id}/summary`))).json();
  assert.equal(status.state, 'done');
  assert.equal(status.summary.model, MODEL);

  // The transcript page, from the dashboard's link.
  await page.click('[data-testid=dashboard-transcript-link]');
  await page.waitForURL(at(`watch/${id}/transcript`));
  await page.waitForSelector('[data-testid=transcript-lines]');
  const lines = await page.$$eval('[data-testid=transcript-line]', (els) => els.map((e) => e.textContent));
  assert.equal(lines.length, 12);
  assert.equal(lines[0], '0:00Hello everyone and welcome to the cooking stream.');
  assert.equal(lines[8], '0:40Cook the fresh tagliatelle for two minutes only.');
  // User text is text: the <img> in a line is shown, not run.
  assert.ok(lines[9].includes('<img src=x onerror="window.__xss=1">'), lines[9]);
  for (const f of ['vtt', 'srt', 'txt']) {
    assert.equal(await page.getAttribute(`[data-testid=transcript-download-${f}]`, 'href'),
      `/api/v1/streams/${id}/transcript.${f}`);
  }
  const srt = await page.request.get(at(`api/v1/streams/${id}/transcript.srt`));
  assert.equal(srt.headers()['content-type'], 'application/x-subrip; charset=utf-8');
  assert.match(srt.headers()['content-disposition'], /^attachment; filename="Pasta night E2E-transcript\.srt"$/);
  assert.ok((await srt.text()).startsWith('1\n00:00:00,000 --> 00:00:04,500\nHello everyone'));
  // A click on a line opens the recording at its moment.
  await page.click('[data-testid=transcript-line][data-start-ms="40000"] a');
  await page.waitForURL(at(`watch/${id}?t=${TAGLIATELLE_S}`));
  // The ended stream's watch page links back to the transcript.
  await page.waitForSelector('[data-testid=watch-transcript-link]');
  assert.equal(await page.getAttribute('[data-testid=watch-transcript-link]', 'href'), `/watch/${id}/transcript`);

  // The header's search box, from the home page: a transcript line.
  await page.goto(server.url);
  await page.waitForSelector('body[data-hydrated=true]');
  await page.fill('[data-testid=header-search]', 'tagliatelle');
  await page.press('[data-testid=header-search]', 'Enter');
  await page.waitForURL(at('search?q=tagliatelle'));
  const hit = `[data-testid=search-hit][data-field=transcript][data-stream="${id}"]`;
  await page.waitForSelector(hit);
  assert.equal(await page.textContent(`${hit} mark`), 'tagliatelle');
  assert.match(await page.textContent(hit), /Pasta night E2E · said at 0:40 · by tr/);
  // Titles are found too.
  await page.fill('[data-testid=search-input]', 'pasta night');
  await page.press('[data-testid=search-input]', 'Enter');
  await page.waitForSelector(`[data-testid=search-hit][data-field=title][data-stream="${id}"]`);
  // Highlights never run user text as HTML.
  await page.goto(at('search?q=parmesan'));
  await page.waitForSelector('body[data-hydrated=true]');
  await page.waitForSelector(`[data-testid=search-hit][data-stream="${id}"] mark`);
  assert.match(await page.textContent(`[data-testid=search-hit][data-stream="${id}"] [data-testid=search-hit-link]`),
    /<img src=x onerror="window.__xss=1"> parmesan/);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // Nothing found says so.
  await page.goto(at('search?q=zebracrossing'));
  await page.waitForSelector('[data-testid=search-no-results]');

  // Back to the tagliatelle: the result opens the recording at that moment.
  await page.goto(at('search?q=tagliatelle'));
  await page.waitForSelector('body[data-hydrated=true]');
  await page.click(`${hit} [data-testid=search-hit-link]`);
  await page.waitForURL(at(`watch/${id}?t=${TAGLIATELLE_S}`));

  // The seeded stream has no recording: the dashboard's recording panel asks
  // for one (404, and the browser logs the failed load). Nothing else fails.
  const unexpected = errors.filter((e) => !e.includes('net::ERR') && !e.includes('get_recording')
    && !e.includes('Failed to load resource: the server responded with a status of 404'));
  assert.deepEqual(unexpected, []);
  await context.close();
});
