// What the browser test needs around the page: the real vivd on free loopback
// ports with a fresh data folder, Debian's Chromium through playwright-core,
// a watch on the page for console errors and failed requests, and screenshots.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, chmodSync, readFileSync, rmSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const sourceDir = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const toolDir = process.env.VIV_TOOL_DIR || join(sourceDir, '.tools');
const require = createRequire(join(toolDir, 'node_modules', '/'));
export const { chromium } = require('playwright-core');
export const axePath = require.resolve('axe-core/axe.min.js');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Whether bubblewrap can make its sandbox here, tried as the unprivileged
// user builds run as when vivd starts as root.
function bwrapWorks() {
  const args = ['--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin',
    '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--proc', '/proc', '--dev', '/dev', '/bin/true'];
  const asRoot = process.getuid() === 0;
  const r = spawnSync('bwrap', args, { stdio: 'ignore', ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
  return r.status === 0;
}

// Starts `vivd serve` as tests/support does: a temporary folder of mode 0711
// (vivd started as root runs as its own users, which pass through it).
export async function startVivd() {
  const vivd = process.env.VIVD || join(sourceDir, 'build/vivd/vivd');
  const dir = mkdtempSync(join(tmpdir(), 'viv-web-'));
  chmodSync(dir, 0o711);
  const apiPort = await freePort();
  const appsPort = await freePort();
  const log = join(dir, 'vivd.log');
  const out = openSync(log, 'w');
  const args = ['serve', '--data', join(dir, 'data'), '--api', `127.0.0.1:${apiPort}`,
    '--listen', `127.0.0.1:${appsPort}`, '--workers', '2'];
  if (!bwrapWorks()) args.push('--no-sandbox');
  const child = spawn(vivd, args, { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const v = { child, dir, log, api: `http://127.0.0.1:${apiPort}`, appsPort, token: null };
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) throw new Error(`vivd exited early (${JSON.stringify(exited)}):\n${logTail(v)}`);
    try {
      const r = await fetch(`${v.api}/healthz`);
      if (r.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`vivd did not answer /healthz:\n${logTail(v)}`);
    await sleep(50);
  }
  v.token = readFileSync(join(dir, 'data', 'admin-token'), 'utf8').trim();
  return v;
}

export function logTail(v, bytes = 4000) {
  try {
    const text = readFileSync(v.log, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

export async function stopVivd(v) {
  if (!v) return;
  if (v.child.exitCode === null && v.child.signalCode === null) {
    const gone = new Promise((resolve) => v.child.once('exit', resolve));
    v.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(-v.child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, 20000);
    await gone;
    clearTimeout(timer);
  }
  if (!process.env.VIV_TEST_KEEP) rmSync(v.dir, { recursive: true, force: true });
}

// Chromium from Debian, headless, with a fresh profile.
export async function launchBrowser(profileDir, options = {}) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 900 },
    ...options,
  });
}

// Watches a page for what a user would see go wrong: uncaught errors,
// console errors, requests that failed and HTTP errors. The test declares
// the ones it provokes with expect(); anything else is a failure, reported
// by problems().
export function watchPage(page) {
  const expected = [];
  const seen = [];
  const streams = /\/v1\/(deployments\/\d+\/events|apps\/[^/]+\/logs\/stream)/;
  const take = (status, url) => {
    const i = expected.findIndex((e) => e.status === status && e.url.test(url));
    if (i < 0) return false;
    expected[i].hits++;
    return true;
  };
  page.on('pageerror', (e) => seen.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium reports every 4xx or 5xx answer on the console too; those
    // are judged by their response below.
    const status = /the server responded with a status of (\d+)/.exec(m.text());
    if (status) return;
    seen.push(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !take(r.status(), r.url())) seen.push(`HTTP ${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText || '';
    // The page aborts the streams it stops reading (another app, another tab).
    if (why === 'net::ERR_ABORTED' && streams.test(r.url())) return;
    seen.push(`request failed: ${r.method()} ${r.url()}: ${why}`);
  });
  return {
    expect(status, url) {
      const e = { status, url, hits: 0 };
      expected.push(e);
      return e;
    },
    problems() {
      const out = [...seen];
      seen.length = 0;
      return out;
    },
  };
}

export function screenshots() {
  const dir = process.env.VIV_WEB_SCREENSHOTS || join(sourceDir, 'build/tests/web/screenshots');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return {
    dir,
    async shot(page, name, options = {}) {
      n++;
      const path = join(dir, `${String(n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, ...options });
      return path;
    },
  };
}
