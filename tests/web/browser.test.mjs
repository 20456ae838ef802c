// The web page in a real browser against the real vivd: every flow a user has
// (sign in, templates, editing, compiler errors, uploads, history, previews,
// rollback, KV, settings, secrets, the live log, deletion, sign out), a pass
// at phone size, keyboard-only use of the main flow, and axe-core's
// accessibility rules on each state. Any console error or failed request
// that a step did not provoke on purpose fails the test. Screenshots of each
// state go to build/tests/web/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startVivd, stopVivd, logTail, launchBrowser, watchPage, screenshots, sourceDir, axePath, sleep } from './support.mjs';

const BUILD_MS = 180000;
let vivd;
let context;
let page;
let watch;
let shots;
let scratch;
const axeSource = readFileSync(axePath, 'utf8');

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'viv-web-test-'));
  shots = screenshots();
  vivd = await startVivd();
  context = await launchBrowser(join(scratch, 'profile'));
  context.setDefaultTimeout(20000);
  page = context.pages()[0] || (await context.newPage());
  watch = watchPage(page);
});

after(async () => {
  if (context) await context.close();
  await stopVivd(vivd);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// Fails the current step with whatever went wrong on the page unasked.
function assertClean(watcher = watch) {
  const problems = watcher.problems();
  assert.deepEqual(problems, [], `the page had problems:\n${problems.join('\n')}\n\nvivd's log:\n${logTail(vivd)}`);
}

// axe-core's WCAG 2.1 A and AA rules and its best practices on what is shown.
async function assertAccessible(p, what) {
  await p.evaluate(axeSource);
  const violations = await p.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] });
    return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`);
  });
  assert.deepEqual(violations, [], `accessibility problems in ${what}`);
}

// A request to an app through the runners, as http://APP.localhost:PORT/.
function appRequest(app, path = '/') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: vivd.appsPort, path, headers: { Host: `${app}.localhost:${vivd.appsPort}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

// Polls the app until its answer matches (routes reach the runners within a
// second of a change).
async function appAnswers(app, pattern, path = '/') {
  let last;
  for (let i = 0; i < 50; i++) {
    last = await appRequest(app, path);
    if (pattern.test(`${last.status} ${last.body}`)) return last;
    await sleep(100);
  }
  assert.fail(`${app}${path} answered ${last.status} ${JSON.stringify(last.body)}, not ${pattern}`);
}

// Clicks a link that opens in a new tab and returns that tab's text.
async function followLink(link) {
  const [tab] = await Promise.all([context.waitForEvent('page'), link.click()]);
  await tab.waitForLoadState();
  const text = await tab.locator('body').innerText();
  const url = tab.url();
  await tab.close();
  return { text, url };
}

const cm = (p = page) => p.evaluate(() => {
  const editor = document.querySelector('.CodeMirror').CodeMirror;
  return { value: editor.getValue(), cursor: editor.getCursor(), mode: editor.getOption('mode') };
});

async function signIn(p, token) {
  await p.fill('#token', token);
  await p.click('#signin-form button[type="submit"]');
  await p.locator('#console').waitFor({ state: 'visible' });
}

// Answers the confirmation dialog if it is open.
async function confirmIfAsked(p = page) {
  if (await p.locator('#confirm').isVisible()) await p.click('#confirm-ok');
}

// The deploy view keeps the tab chosen last (Upload, after the upload
// tests); templates are on Write code.
async function startFromTemplate(title) {
  await page.click('#tab-write');
  await page.selectOption('#template', { label: title });
  await page.click('#use-template');
  await confirmIfAsked();
}

async function waitForResult(p = page) {
  const result = p.locator('#deploy-result .result');
  await result.waitFor({ state: 'visible', timeout: BUILD_MS });
  return { ok: (await result.getAttribute('class')).includes('ok'), text: await result.innerText() };
}

async function deployEditor(app) {
  await page.fill('#app-name', app);
  await page.click('#deploy-files');
  return waitForResult();
}

// The page keeps the tab chosen last when another app is opened; the
// history is where a test starts.
async function openApp(app) {
  await page.click(`#app-list a[href="#/apps/${app}"]`);
  await page.locator('#app-title', { hasText: app }).waitFor();
  await page.click('#tab-history');
  await page.locator('#history-rows tr').first().waitFor();
}

async function openAppTab(name) {
  await page.click(`#tab-${name}`);
  await page.locator(`#panel-${name}`).waitFor({ state: 'visible' });
}

test('the editor library is served from the tool folder, and nothing else there', async () => {
  const get = (path) => new Promise((resolve, reject) => {
    // Raw paths: fetch() would resolve the dot segments itself.
    http.get({ host: '127.0.0.1', port: new URL(vivd.api).port, path }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, type: res.headers['content-type'] });
    }).on('error', reject);
  });
  assert.deepEqual(await get('/web/vendor/codemirror/lib/codemirror.js'), { status: 200, type: 'text/javascript; charset=utf-8' });
  assert.deepEqual(await get('/web/vendor/codemirror/mode/wast/wast.js'), { status: 200, type: 'text/javascript; charset=utf-8' });
  for (const path of ['/web/vendor/assemblyscript/package.json', '/web/vendor/codemirror/../assemblyscript/package.json',
    '/web/vendor/codemirror/%2e%2e/assemblyscript/package.json', '/web/vendor/codemirror/', '/web/vendor/.bin/tsc',
    '/web/vendor/codemirror/.npmignore', '/web/vendor/', '/web/sub/app.js']) {
    assert.equal((await get(path)).status, 404, path);
  }
});

test('sign in: a wrong token is refused with a reason, the right one opens the console', async () => {
  await page.goto(`${vivd.api}/`);
  await page.locator('#signin').waitFor({ state: 'visible' });
  await shots.shot(page, 'sign-in');
  await assertAccessible(page, 'the sign-in form');

  await page.click('#signin-form button[type="submit"]');
  assert.equal(await page.locator('#token-error').innerText(), 'Paste a token first.');
  const refused = watch.expect(401, /\/v1\/apps$/);
  await page.fill('#token', 'viv_not-a-real-token');
  await page.press('#token', 'Enter');
  await page.locator('#token-error', { hasText: 'does not know this token' }).waitFor();
  assert.equal(refused.hits, 1);
  assert.equal(await page.getAttribute('#token', 'aria-invalid'), 'true');
  await shots.shot(page, 'sign-in-refused');

  await signIn(page, vivd.token);
  assert.equal(await page.evaluate(() => localStorage.getItem('vivarium.token')), vivd.token);
  await page.locator('#template option').first().waitFor({ state: 'attached' });
  assert.match((await cm()).value, /\S/, 'the editor starts with the first template');
  await shots.shot(page, 'signed-in');
  await assertAccessible(page, 'the deploy view');
  assertClean();
});

test('each language template deploys from the editor and answers', async () => {
  const titles = await page.locator('#template option').allInnerTexts();
  const templates = (await (await fetch(`${vivd.api}/v1/templates`)).json()).templates;
  assert.deepEqual(titles, templates.map((t) => t.title));
  assert.deepEqual(templates.map((t) => t.language).sort(), ['assemblyscript', 'c', 'rust', 'wat']);
  const modes = { c: 'text/x-csrc', rust: 'rust', assemblyscript: 'text/typescript', wat: 'wast' };
  for (const t of templates) {
    await startFromTemplate(t.title);
    const tabs = await page.locator('#file-tabs [role="tab"]').allInnerTexts();
    assert.deepEqual(tabs, t.files.map((f) => f.path));
    // Open the source file of the language and check that it is highlighted.
    const source = t.files.find((f) => /\.(c|rs|ts|wat)$/.test(f.path));
    await page.click(`#file-tabs [role="tab"]:text-is("${source.path}")`);
    const state = await cm();
    assert.equal(state.value, source.text);
    assert.equal(state.mode, modes[t.language]);
    assert.ok(await page.locator('.CodeMirror .cm-keyword, .CodeMirror .cm-builtin').count() > 0, `${t.title} is highlighted`);
    await shots.shot(page, `template-${t.language}`);

    const app = `t-${t.language === 'assemblyscript' ? 'as' : t.language}`;
    const result = await deployEditor(app);
    assert.ok(result.ok, `${t.title} did not deploy: ${result.text}\n${await page.locator('#build-log').innerText()}`);
    assert.ok(await page.locator('#steps li[data-state="done"]').count() >= 3, 'the build steps were shown');
    assert.equal(await page.locator('#upload-bar').getAttribute('value'), '100');
    await shots.shot(page, `deployed-${t.language}`);
    const answer = await followLink(page.locator('#deploy-result .result a'));
    assert.equal(answer.url, `http://${app}.localhost:${vivd.appsPort}/`);
    assert.match(answer.text, /Hello, world!/);
  }
  await page.locator('#app-list a[href="#/apps/t-rust"]').waitFor();
  assertClean();
});

test('files are added, renamed and removed, and a compiler error links to its file and line', async () => {
  await startFromTemplate('C');
  await page.click('#file-add');
  await page.fill('#file-path', '../escape.c');
  await page.press('#file-path', 'Enter');
  await page.locator('#file-path-error', { hasText: 'goes up a folder' }).waitFor();
  await page.fill('#file-path', 'scratch.c');
  await page.press('#file-path', 'Enter');
  assert.ok(await page.locator('.CodeMirror-focused').count(), 'a new file opens in the editor');
  await page.keyboard.insertText('/* a helper */\n\nint broken = missing;\n');
  await page.click('#file-rename');
  assert.equal(await page.inputValue('#file-path'), 'scratch.c');
  await page.fill('#file-path', 'extra.c');
  await page.press('#file-path', 'Enter');
  await page.click('#file-add');
  await page.fill('#file-path', 'notes.txt');
  await page.click('#file-save');
  await page.keyboard.insertText('to be removed');
  await page.click('#file-remove');
  await page.locator('#confirm', { hasText: 'Remove notes.txt?' }).waitFor();
  await shots.shot(page, 'remove-file-confirm');
  await page.click('#confirm-ok');
  const cFiles = (await (await fetch(`${vivd.api}/v1/templates`)).json()).templates.find((t) => t.language === 'c').files;
  assert.deepEqual(await page.locator('#file-tabs [role="tab"]').allInnerTexts(), [...cFiles.map((f) => f.path), 'extra.c']);
  await page.click('#file-tabs [role="tab"]:text-is("hello.c")');

  const result = await deployEditor('t-c');
  assert.ok(!result.ok, 'the broken file failed the build');
  const link = page.locator('#deploy-result .diagnostics button', { hasText: 'extra.c, line 3, column 14' });
  await link.waitFor();
  assert.match(await page.locator('#deploy-result .diagnostics').innerText(), /missing/);
  await shots.shot(page, 'compile-error');
  await link.click();
  assert.equal(await page.locator('#file-tabs [aria-selected="true"]').innerText(), 'extra.c');
  const state = await cm();
  assert.deepEqual(state.cursor.line, 2);
  assert.equal(state.cursor.ch, 13);
  assert.ok(await page.locator('.CodeMirror-focused').count(), 'the editor has the focus');
  assert.equal(await page.locator('.CodeMirror .diag-marker').count(), 1);
  await shots.shot(page, 'compile-error-line');

  // Fix it: remove the file and change the greeting by pasting a new hello.c.
  await page.click('#file-remove');
  await page.click('#confirm-ok');
  await page.click('#file-tabs [role="tab"]:text-is("hello.c")');
  await page.click('.CodeMirror');
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText('#include <stdio.h>\n\nint main(void)\n{\n\tprintf("Content-Type: text/plain\\n\\nHello again!\\n");\n\treturn 0;\n}\n');
  const fixed = await deployEditor('t-c');
  assert.ok(fixed.ok, fixed.text);
  await appAnswers('t-c', /Hello again!/);
  assertClean();
});

test('uploads: a tarball, a folder and a dropped .wasm', async () => {
  await page.click('#new-deploy');
  await page.click('#tab-upload');
  await page.fill('#app-name', 'counter');
  await page.click('#deploy-upload');
  await page.locator('#upload-error', { hasText: 'Choose a file or a folder first' }).waitFor();

  const tarball = join(scratch, 'counter.tar.gz');
  execFileSync('tar', ['czf', tarball, '-C', join(sourceDir, 'sdk/examples/c-kv-counter'), '.']);
  await page.setInputFiles('#upload-file', tarball);
  await page.locator('#upload-summary', { hasText: 'gzip-compressed tarball' }).waitFor();
  await shots.shot(page, 'upload-tarball-chosen');
  await page.click('#deploy-upload');
  let result = await waitForResult();
  assert.ok(result.ok, result.text);
  await appAnswers('counter', /visits: 1/);

  await page.fill('#app-name', 'greet');
  await page.setInputFiles('#upload-folder', join(sourceDir, 'sdk/examples/c-config'));
  await page.locator('#upload-summary', { hasText: 'Folder c-config: 3 files' }).waitFor();
  await page.click('#deploy-upload');
  result = await waitForResult();
  assert.ok(result.ok, result.text);
  await appAnswers('greet', /Bonjour, world!/);

  const templates = (await (await fetch(`${vivd.api}/v1/templates`)).json()).templates;
  const wat = templates.find((t) => t.language === 'wat').files.find((f) => f.path.endsWith('.wat'));
  writeFileSync(join(scratch, 'app.wat'), wat.text);
  execFileSync('wat2wasm', [join(scratch, 'app.wat'), '-o', join(scratch, 'app.wasm')]);
  const wasm = readFileSync(join(scratch, 'app.wasm')).toString('base64');
  await page.fill('#app-name', 'dropped');
  // A drop as the browser delivers one: a DataTransfer holding the file.
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], 'app.wasm', { type: 'application/wasm' }));
    const zone = document.getElementById('drop-zone');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, wasm);
  await page.locator('#upload-summary', { hasText: 'app.wasm: a WebAssembly module' }).waitFor();
  await page.click('#deploy-upload');
  result = await waitForResult();
  assert.ok(result.ok, result.text);
  await shots.shot(page, 'upload-wasm-deployed');
  assert.match((await followLink(page.locator('#deploy-result .result a'))).text, /Hello, world!/);
  await assertAccessible(page, 'the upload view');
  assertClean();
});

test('history, preview addresses and rollback in one click', async () => {
  await openApp('t-c');
  const rows = page.locator('#history-rows tr');
  assert.equal(await rows.count(), 3);
  const [newest, failed, oldest] = await Promise.all([0, 1, 2].map((i) => rows.nth(i).innerText()));
  assert.match(newest, /\(current\)[\s\S]*Ready[\s\S]*C[\s\S]*admin/);
  assert.match(failed, /Failed[\s\S]*C compiler reported errors/);
  assert.match(oldest, /Ready/);
  assert.match(await page.locator('#app-summary').innerText(), /Serving at http:\/\/t-c\.localhost/);
  await shots.shot(page, 'history');
  await assertAccessible(page, 'the history');

  const oldId = Number(await rows.nth(2).getAttribute('data-id'));
  const preview = await followLink(rows.nth(2).locator('a', { hasText: 'Preview' }));
  assert.equal(preview.url, `http://d${oldId}-t-c.localhost:${vivd.appsPort}/`);
  assert.match(preview.text, /Hello, world!/);

  await rows.nth(2).locator('button', { hasText: `Roll back to #${oldId}` }).click();
  await page.locator('#app-message', { hasText: `Deployment #${oldId} of t-c is current again` }).waitFor();
  await appAnswers('t-c', /Hello, world!/);
  assert.match(await rows.nth(2).innerText(), /\(current\)/);
  const newerId = Number(await rows.nth(0).getAttribute('data-id'));
  assert.ok(await rows.nth(0).locator('button', { hasText: `Make #${newerId} current` }).count());
  assert.match((await followLink(rows.nth(0).locator('a', { hasText: 'Preview' }))).text, /Hello again!/);

  await rows.nth(1).locator('button', { hasText: 'Build log' }).click();
  await page.locator('#history-log-title', { hasText: 'Build log of deployment' }).waitFor();
  assert.match(await page.locator('#history-log-text').innerText(), /undeclared identifier 'missing'/);
  await shots.shot(page, 'rolled-back');
  assertClean();
});

test('the live log shows a request to the app as it happens', async () => {
  await openAppTab('log');
  await page.locator('#log-state', { hasText: 'Live' }).waitFor();
  const probe = `probe-${Date.now()}`;
  await appRequest('t-c', `/?${probe}=1`);
  await page.locator('#log-lines li', { hasText: probe }).waitFor({ timeout: 10000 });
  await shots.shot(page, 'live-log');
  await page.click('#log-pause');
  assert.equal(await page.getAttribute('#log-pause', 'aria-pressed'), 'true');
  await page.click('#log-pause');
  await page.locator('#log-state', { hasText: 'Live' }).waitFor();
  await assertAccessible(page, 'the log');
  assertClean();
});

test('key-value data: list, view, set and delete, as the app sees it', async () => {
  await appRequest('counter');
  await openApp('counter');
  await openAppTab('kv');
  const row = page.locator('#kv-rows tr', { hasText: 'visits' });
  await row.waitFor();
  await row.locator('button', { hasText: 'View' }).click();
  await page.locator('#kv-view-title', { hasText: 'Value of visits' }).waitFor();
  assert.equal(await page.locator('#kv-value').innerText(), '2');

  await page.fill('#kv-key', 'visits');
  await page.fill('#kv-text', '41');
  await page.click('#kv-set button[type="submit"]');
  await page.locator('#app-message', { hasText: 'Replaced the value of visits' }).waitFor();
  await appAnswers('counter', /visits: 42/);

  await page.fill('#kv-key', 'note');
  await page.fill('#kv-text', 'written from the page');
  await page.click('#kv-set button[type="submit"]');
  await page.locator('#app-message', { hasText: 'Added the key note' }).waitFor();
  const note = page.locator('#kv-rows tr', { hasText: 'note' });
  await note.waitFor();
  await shots.shot(page, 'kv');
  await assertAccessible(page, 'the KV tab');
  await note.locator('button', { hasText: 'Delete' }).click();
  await page.click('#confirm-ok');
  await page.locator('#app-message', { hasText: 'Deleted the key note' }).waitFor();
  assert.equal(await note.count(), 0);
  await row.locator('button', { hasText: 'Delete' }).click();
  await page.click('#confirm-ok');
  await appAnswers('counter', /visits: 1\n/);
  assertClean();
});

test('settings and secrets reach the app; secret values are never shown', async () => {
  await openApp('greet');
  await openAppTab('settings');
  const greeting = page.locator('#config-rows tr', { hasText: 'GREETING' });
  await greeting.waitFor();
  assert.match(await greeting.innerText(), /Bonjour[\s\S]*manifest/);

  await page.fill('#config-key', 'GREETING');
  await page.fill('#config-value', 'Hola');
  await page.click('#config-set button[type="submit"]');
  await page.locator('#config-rows tr', { hasText: 'set here' }).waitFor();
  await appAnswers('greet', /Hola, world!/);

  await page.fill('#secret-name', 'GREETING');
  await page.fill('#secret-value', 'Ciao');
  await page.click('#secret-set button[type="submit"]');
  await page.locator('#secret-list li', { hasText: 'GREETING' }).waitFor();
  assert.equal(await page.inputValue('#secret-value'), '');
  assert.ok(!(await page.locator('#app').innerText()).includes('Ciao'), 'a secret value is not shown');
  await appAnswers('greet', /Ciao, world!/);
  await shots.shot(page, 'settings');
  await assertAccessible(page, 'the settings tab');

  await page.locator('#secret-list li', { hasText: 'GREETING' }).locator('button', { hasText: 'Remove' }).click();
  await page.locator('#secret-empty').waitFor({ state: 'visible' });
  await appAnswers('greet', /Hola, world!/);
  await greeting.locator('button', { hasText: 'Remove' }).click();
  await page.locator('#config-rows tr', { hasText: 'manifest' }).waitFor();
  await appAnswers('greet', /Bonjour, world!/);
  assertClean();
});

test('deleting an app asks first, then the app stops answering', async () => {
  await openApp('greet');
  await page.click('#app-delete');
  await page.locator('#confirm', { hasText: 'Delete greet?' }).waitFor();
  await page.click('#confirm-cancel');
  assert.ok(!(await page.locator('#confirm').isVisible()));
  await appAnswers('greet', /Bonjour/);

  await page.click('#app-delete');
  await page.fill('#confirm-input', 'gree');
  await page.click('#confirm-ok');
  await page.locator('#confirm-error', { hasText: 'exactly' }).waitFor();
  await shots.shot(page, 'delete-confirm');
  await assertAccessible(page, 'the delete dialog');
  await page.fill('#confirm-input', 'greet');
  await page.click('#confirm-ok');
  await page.locator('#apps-status', { hasText: 'Deleted greet' }).waitFor();
  assert.equal(await page.locator('#app-list a[href="#/apps/greet"]').count(), 0);
  await appAnswers('greet', /^404/);
  assertClean();
});

test('a good picture of the page: the apps and the editor', async () => {
  await page.click('#new-deploy');
  await startFromTemplate('C');
  await page.fill('#app-name', 'hello');
  await page.click('#deploy-files');
  assert.ok((await waitForResult()).ok);
  await shots.shot(page, 'page');
  if (process.env.VIV_WEB_DOCS) await page.screenshot({ path: join(sourceDir, 'docs/page.png'), fullPage: true });
  assertClean();
});

test('at phone size everything fits and works', async () => {
  const phone = await context.newPage();
  const phoneWatch = watchPage(phone);
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${vivd.api}/`);
  await phone.locator('#console').waitFor({ state: 'visible' });
  const fits = () => phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await fits(), 'the deploy view fits the width');
  await shots.shot(phone, 'phone-deploy', { fullPage: true });
  await assertAccessible(phone, 'the phone deploy view');
  await phone.fill('#app-name', 'phone');
  await phone.click('#deploy-files');
  assert.ok((await waitForResult(phone)).ok);
  await phone.click('#app-list a[href="#/apps/phone"]');
  await phone.locator('#history-rows tr').first().waitFor();
  assert.ok(await fits(), 'the app view fits the width');
  await shots.shot(phone, 'phone-app', { fullPage: true });
  await phone.click('#tab-kv');
  assert.ok(await fits(), 'the KV tab fits the width');
  await phone.close();
  assertClean(phoneWatch);
});

// Tabs until the focus is on selector, checking that every stop shows
// where the focus is. Returns the number of stops.
async function tabTo(p, selector, { back = false, max = 60 } = {}) {
  for (let i = 1; i <= max; i++) {
    // In the editor Tab indents; Esc first lets it move the focus on.
    if (await p.evaluate(() => Boolean(document.activeElement.closest('.CodeMirror')))) await p.keyboard.press('Escape');
    await p.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const stop = await p.evaluate((sel) => {
      const el = document.activeElement;
      const ring = el.closest('.CodeMirror') || el;
      const style = getComputedStyle(ring);
      return {
        at: el.matches(sel) || Boolean(el.closest(sel)),
        what: `${el.tagName.toLowerCase()}#${el.id} ${(el.innerText || el.value || '').slice(0, 30)}`,
        visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
      };
    }, selector);
    assert.ok(stop.visible, `the focus on ${stop.what} cannot be seen`);
    if (stop.at) return i;
  }
  assert.fail(`Tab never reached ${selector}`);
}

test('the main flow works with the keyboard alone', async () => {
  const keyboard = await launchBrowser(join(scratch, 'keyboard-profile'));
  const p = keyboard.pages()[0] || (await keyboard.newPage());
  const keyWatch = watchPage(p);
  try {
    await p.goto(`${vivd.api}/`);
    await tabTo(p, '#token');
    await p.keyboard.type(vivd.token);
    await p.keyboard.press('Enter');
    await p.locator('#console').waitFor({ state: 'visible' });
    await tabTo(p, '#app-name');
    await p.keyboard.type('keys');
    await tabTo(p, '#template');
    await tabTo(p, '#use-template');
    await p.keyboard.press('Enter');
    await tabTo(p, '.CodeMirror');
    await p.keyboard.press('Control+End');
    await p.keyboard.type('/* typed with the keyboard */');
    await p.keyboard.press('Tab');
    assert.ok(await p.locator('.CodeMirror-focused').count(), 'Tab indents inside the editor');
    await p.keyboard.press('Escape');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'deploy-files', 'Esc then Tab leaves the editor');
    await shots.shot(p, 'keyboard-editor');
    await p.keyboard.press('Enter');
    assert.ok((await waitForResult(p)).ok);
    await tabTo(p, '#deploy-result a');
    const [tab] = await Promise.all([keyboard.waitForEvent('page'), p.keyboard.press('Enter')]);
    await tab.waitForLoadState();
    assert.match(await tab.locator('body').innerText(), /Hello, world!/);
    await tab.close();

    await tabTo(p, '#app-list a[href="#/apps/keys"]', { back: true });
    await p.keyboard.press('Enter');
    await p.locator('#history-rows tr').first().waitFor();
    assert.equal(await p.evaluate(() => document.activeElement.id), 'app-title');
    await tabTo(p, '#tab-history');
    await p.keyboard.press('ArrowRight');
    assert.equal(await p.getAttribute('#tab-log', 'aria-selected'), 'true');
    await p.locator('#panel-log').waitFor({ state: 'visible' });
    await tabTo(p, '#app-delete', { back: true });
    await p.keyboard.press('Enter');
    await p.keyboard.type('keys');
    await p.keyboard.press('Enter');
    await p.locator('#apps-status', { hasText: 'Deleted keys' }).waitFor();
    await shots.shot(p, 'keyboard-deleted');
    assertClean(keyWatch);
  } finally {
    await keyboard.close();
  }
});

test('sign out forgets the token', async () => {
  await page.click('#sign-out');
  await page.locator('#signin').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => localStorage.getItem('vivarium.token')), null);
  await page.reload();
  await page.locator('#signin').waitFor({ state: 'visible' });
  assert.ok(!(await page.locator('#console').isVisible()));
  await shots.shot(page, 'signed-out');
  assertClean();
});
