// Shared helpers for the browser tests: start Onair on a free loopback port with
// a fresh data dir, and launch Debian's Chromium headless.
import { spawn } from 'node:child_process';
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
  const child = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir,
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
  return {
    url,
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
  return errors;
}
