// The Vivarium web page: sign in with a token, write or upload code and deploy
// it with the build followed live, and look after apps (history, rollback,
// preview addresses, logs, key-value data, settings, secrets, deletion).
import { makeTar, gzip, readTar, isGzip, cleanPath } from './tar.js';
import { eventStream } from './sse.js';
import { parseDiagnostics } from './diagnostics.js';

const TOKEN_KEY = 'vivarium.token';
const FILES_KEY = 'vivarium.files';
const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LOG_LINES_KEPT = 1000;
const EDITABLE_MAX = 1 << 20;

const $ = (id) => document.getElementById(id);

// ---- Small helpers ----------------------------------------------------------

// An element with attributes (on* are listeners) and children (text or nodes).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A link to an app address from the API; only http(s) addresses become links.
function urlLink(url, text = url) {
  if (!/^https?:\/\//.test(url || '')) return document.createTextNode(text || '');
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, text);
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function timeElement(iso, withDate = true) {
  if (!iso) return '';
  const date = new Date(iso);
  const text = withDate
    ? date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
    : date.toLocaleTimeString(undefined, { hour12: false }) + `.${String(date.getMilliseconds()).padStart(3, '0')}`;
  return h('time', { datetime: iso }, text);
}

const LANGUAGES = { c: 'C', rust: 'Rust', assemblyscript: 'AssemblyScript', wat: 'WebAssembly text', wasm: 'WebAssembly' };
const MODES = { hostcall: 'Host calls', 'host-call': 'Host calls', cgi: 'CGI (WASI command)', wasi: 'CGI (WASI command)' };
const STATES = {
  ready: ['✓', 'Ready'],
  serving: ['✓', 'Serving'],
  failed: ['✗', 'Failed'],
  building: ['⟳', 'Building'],
  queued: ['…', 'Queued'],
  empty: ['○', 'Nothing deployed'],
};

// A status in words, with an icon that repeats it (never colour alone).
function badge(status) {
  const [icon, text] = STATES[status] || ['•', status || 'unknown'];
  return h('span', { class: `badge badge-${status}` }, h('span', { 'aria-hidden': 'true' }, icon), ` ${text}`);
}

function showError(el, message) {
  el.textContent = message || '';
  el.hidden = !message;
}

// Marks a field invalid with a message (or clears it) and says so to
// assistive technology through aria-invalid and the described-by error.
function fieldError(input, errorEl, message) {
  showError(errorEl, message);
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- The API ---------------------------------------------------------------------

let token = null;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch {
    // Not JSON.
  }
  return `The server answered ${response.status} ${response.statusText}.`;
}

// fetch() with the token; throws ApiError with the API's own message for any
// answer that is not 2xx. A refused token signs out.
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const response = await fetch(path, {
    method,
    body,
    cache: 'no-store',
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });
  if (response.ok) return response;
  const message = await errorMessage(response);
  if (response.status === 401 && token) signOut('The server no longer accepts this token; sign in again.');
  throw new ApiError(response.status, message);
}

const apiJson = async (path, options) => (await api(path, options)).json();
// For calls whose answer is only its status: the body is read all the same,
// so that the request ends instead of staying open until the page goes.
const apiDone = async (path, options) => {
  const response = await api(path, options);
  await response.arrayBuffer();
  return response;
};
const appPath = (app, rest = '') => `/v1/apps/${encodeURIComponent(app)}${rest}`;

// ---- Tabs (the ARIA tabs pattern: arrows, Home and End move between tabs) ---

function makeTabs(list, { onSelect, panels = true } = {}) {
  const all = () => [...list.querySelectorAll('[role="tab"]')];
  function select(tab, focus = false) {
    if (!tab) return;
    for (const t of all()) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      if (panels) $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    if (onSelect) onSelect(tab);
  }
  list.addEventListener('click', (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab && tab.getAttribute('aria-selected') !== 'true') select(tab);
  });
  list.addEventListener('keydown', (event) => {
    const tabs = all();
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const next = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(tabs[(next + tabs.length) % tabs.length], true);
  });
  return { select, current: () => all().find((t) => t.getAttribute('aria-selected') === 'true') };
}

// ---- Confirmation dialog -------------------------------------------------------------

// Asks before something that cannot be undone. With typed, the user must type
// that text (an app's name) to confirm. Resolves true to go ahead.
function confirmAction({ title, text, ok = 'Delete', typed = null }) {
  const dialog = $('confirm');
  const input = $('confirm-input');
  const opener = document.activeElement;
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  $('confirm-typed').hidden = !typed;
  $('confirm-input-label').textContent = typed ? `Type “${typed}” to confirm` : '';
  input.value = '';
  fieldError(input, $('confirm-error'), '');
  return new Promise((resolve) => {
    const done = (result) => {
      $('confirm-form').removeEventListener('submit', onSubmit);
      $('confirm-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      if (typed && input.value.trim() !== typed) {
        fieldError(input, $('confirm-error'), `Type “${typed}” exactly, or choose Cancel.`);
        input.focus();
        return;
      }
      done(true);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(false);
    };
    $('confirm-form').addEventListener('submit', onSubmit);
    $('confirm-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    (typed ? input : $('confirm-cancel')).focus();
  });
}

// ---- The code editor -------------------------------------------------------------

// Each file is {path, doc} (text, a CodeMirror document) or {path, data}
// (bytes that are deployed as they are and not edited here).
const editor = {
  cm: null,
  files: [],
  current: 0,
  dirty: false,
  leaving: false, // Esc was pressed: the next Tab leaves the editor
  saveTimer: 0,
};

function modeFor(path) {
  const ext = (/\.([^./]+)$/.exec(path) || [])[1]?.toLowerCase();
  return {
    c: 'text/x-csrc', h: 'text/x-csrc',
    cc: 'text/x-c++src', cpp: 'text/x-c++src', cxx: 'text/x-c++src', hh: 'text/x-c++src', hpp: 'text/x-c++src',
    rs: 'rust',
    ts: 'text/typescript', js: 'text/javascript', mjs: 'text/javascript',
    json: 'application/json',
    wat: 'wast', wast: 'wast',
    toml: 'text/x-toml',
  }[ext] || null;
}

function newDoc(path, text) {
  const doc = CodeMirror.Doc(text, modeFor(path));
  doc.on('change', () => {
    editor.dirty = true;
    saveFilesSoon();
  });
  return doc;
}

const binaryDoc = (file) => CodeMirror.Doc(`${file.path} is a binary file of ${formatSize(file.data.length)}; it is deployed as it is.`, null);

// Moves the focus to the control after (or before) box, as Tab would from
// its last (or first) control. CodeMirror's own keymap would take a Tab it
// passes on and indent, so the editor hands the focus on itself.
function focusPast(box, back) {
  const all = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
    .filter((el) => el.tabIndex >= 0 && !el.disabled && !box.contains(el) && el.getClientRects().length > 0);
  const after = all.filter((el) => box.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
  const before = all.filter((el) => box.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING);
  const next = back ? before[before.length - 1] : after[0];
  editor.leaving = false;
  if (next) next.focus();
}

function setupEditor() {
  const cm = CodeMirror($('editor'), {
    lineNumbers: true,
    indentUnit: 4,
    tabSize: 4,
    indentWithTabs: false,
    matchBrackets: true,
    autoCloseBrackets: true,
    gutters: ['diagnostics', 'CodeMirror-linenumbers'],
    screenReaderLabel: 'Code',
    extraKeys: {
      Tab: (c) => (editor.leaving ? focusPast(c.getWrapperElement(), false) : c.execCommand(c.somethingSelected() ? 'indentMore' : 'insertSoftTab')),
      'Shift-Tab': (c) => (editor.leaving ? focusPast(c.getWrapperElement(), true) : c.execCommand('indentLess')),
      Esc: () => {
        editor.leaving = true;
      },
    },
  });
  cm.on('keydown', (_cm, event) => {
    if (!['Escape', 'Tab', 'Shift'].includes(event.key)) editor.leaving = false;
  });
  cm.on('blur', () => {
    editor.leaving = false;
  });
  // The scrolling part is a Tab stop (scrolled code must be reachable by
  // keyboard) that hands the focus to the editor's input.
  const scroller = cm.getScrollerElement();
  scroller.tabIndex = 0;
  scroller.setAttribute('aria-label', 'Code');
  scroller.addEventListener('focus', () => cm.focus());
  editor.cm = cm;
}

function fileTabId(index) {
  return `file-tab-${index}`;
}

// Makes a tab for each file; called whenever the list of files changes.
function renderFileTabs() {
  $('file-tabs').replaceChildren(...editor.files.map((file, i) =>
    h('button', { type: 'button', role: 'tab', id: fileTabId(i), 'aria-controls': 'editor', 'data-index': i }, file.path)));
  markCurrentTab();
}

function markCurrentTab() {
  for (const tab of $('file-tabs').children) {
    const on = Number(tab.dataset.index) === editor.current;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  $('editor').setAttribute('aria-labelledby', fileTabId(editor.current));
}

function openFile(index, focus = false) {
  if (!editor.files[index]) return;
  editor.current = index;
  const file = editor.files[index];
  if (editor.cm.getDoc() !== file.doc) editor.cm.swapDoc(file.doc || binaryDoc(file));
  editor.cm.setOption('readOnly', !file.doc);
  editor.cm.setOption('screenReaderLabel', `Code of ${file.path}`);
  markCurrentTab();
  if (focus) $(fileTabId(index)).focus();
  saveFilesSoon();
}

// Replaces every file of the editor with files ([{path, text} or {path, data}]).
function setFiles(files, current = 0) {
  editor.files = files.map((f) => (typeof f.text === 'string' ? { path: f.path, doc: newDoc(f.path, f.text) } : { path: f.path, data: f.data }));
  editor.dirty = false;
  editor.current = Math.min(current, editor.files.length - 1);
  $('files-message').textContent = '';
  renderFileTabs();
  openFile(editor.current);
}

function editorFiles() {
  return editor.files.map((f) => (f.doc ? { path: f.path, text: f.doc.getValue() } : { path: f.path, data: f.data }));
}

function saveFilesSoon() {
  clearTimeout(editor.saveTimer);
  editor.saveTimer = setTimeout(() => {
    const text = editorFiles().filter((f) => typeof f.text === 'string');
    try {
      localStorage.setItem(FILES_KEY, JSON.stringify({ files: text, current: editor.current, dirty: editor.dirty }));
    } catch {
      // Storage full or off: the files stay in this tab only.
    }
  }, 300);
}

function restoreFiles() {
  try {
    const saved = JSON.parse(localStorage.getItem(FILES_KEY) || 'null');
    if (saved && Array.isArray(saved.files) && saved.files.length > 0) {
      setFiles(saved.files.filter((f) => typeof f.path === 'string' && typeof f.text === 'string'), saved.current || 0);
      editor.dirty = Boolean(saved.dirty);
      return true;
    }
  } catch {
    // A damaged entry: start from a template.
  }
  return false;
}

// The new-file and rename form: mode is 'add' or 'rename'.
let fileFormMode = 'add';

function openFileForm(mode) {
  fileFormMode = mode;
  const input = $('file-path');
  $('file-form').hidden = false;
  $('file-path-label').textContent = mode === 'add' ? 'New file path' : `New path for ${editor.files[editor.current]?.path}`;
  $('file-save').textContent = mode === 'add' ? 'Add' : 'Rename';
  input.value = mode === 'add' ? '' : editor.files[editor.current]?.path || '';
  fieldError(input, $('file-path-error'), '');
  input.focus();
  input.select();
}

function closeFileForm(focusId) {
  $('file-form').hidden = true;
  if (focusId) $(focusId).focus();
}

function submitFileForm(event) {
  event.preventDefault();
  const input = $('file-path');
  let path;
  try {
    path = cleanPath(input.value.trim());
  } catch (e) {
    fieldError(input, $('file-path-error'), e.message);
    input.focus();
    return;
  }
  const clash = editor.files.findIndex((f) => f.path === path);
  if (fileFormMode === 'add') {
    if (clash >= 0) {
      fieldError(input, $('file-path-error'), `There is already a file called ${path}; choose another name.`);
      input.focus();
      return;
    }
    editor.files.push({ path, doc: newDoc(path, '') });
    editor.dirty = true;
    closeFileForm();
    renderFileTabs();
    openFile(editor.files.length - 1);
    editor.cm.focus();
    return;
  }
  const file = editor.files[editor.current];
  if (clash >= 0 && clash !== editor.current) {
    fieldError(input, $('file-path-error'), `There is already a file called ${path}; choose another name.`);
    input.focus();
    return;
  }
  file.path = path;
  if (file.doc) editor.cm.setOption('mode', modeFor(path));
  editor.dirty = true;
  closeFileForm();
  renderFileTabs();
  openFile(editor.current, true);
}

async function removeFile() {
  const file = editor.files[editor.current];
  if (!file) return;
  if (editor.files.length === 1) {
    $('files-message').textContent = `${file.path} is the only file, and an app needs one; add another first.`;
    return;
  }
  const ok = await confirmAction({ title: `Remove ${file.path}?`, text: 'Its text is lost; the other files stay.', ok: 'Remove' });
  if (!ok) return;
  editor.files.splice(editor.current, 1);
  editor.dirty = true;
  editor.current = Math.max(0, editor.current - 1);
  renderFileTabs();
  openFile(editor.current, true);
  $('files-message').textContent = `Removed ${file.path}.`;
}

// ---- Diagnostics in the editor ------------------------------------------------------

let marked = []; // [{doc, handle}] lines marked by the last failed build

function clearMarks() {
  for (const { doc, handle } of marked) {
    doc.removeLineClass(handle, 'background', 'diag-line');
    doc.setGutterMarker(handle, 'diagnostics', null);
  }
  marked = [];
}

function markDiagnostics(diagnostics) {
  clearMarks();
  for (const d of diagnostics) {
    const file = findEditorFile(d.file);
    if (!file || !file.doc || d.line < 1 || d.line > file.doc.lineCount()) continue;
    const handle = file.doc.addLineClass(d.line - 1, 'background', 'diag-line');
    const marker = h('span', { class: `diag-marker diag-${d.severity}`, title: `${d.severity}: ${d.message}` }, d.severity === 'error' ? '✗' : '!');
    file.doc.setGutterMarker(handle, 'diagnostics', marker);
    marked.push({ doc: file.doc, handle });
  }
}

function findEditorFile(path) {
  return editor.files.find((f) => f.path === path) || editor.files.find((f) => f.path.endsWith(`/${path}`));
}

// ---- Deploying -------------------------------------------------------------------------

const deployState = {
  controller: null, // aborts the upload and the build's event stream
  source: null, // what was deployed: {kind: 'files'|'upload', files?, blob?}
  diagnostics: [],
};

let sourceTabs;
let appTabs;

function setDeployMessage(text) {
  $('deploy-status').textContent = text;
  $('progress').hidden = false;
}

function checkAppName() {
  const input = $('app-name');
  const name = input.value.trim();
  let message = '';
  if (!name) message = 'Give the app a name, such as "hello".';
  else if (!APP_NAME.test(name)) message = `"${name}" cannot be an app name: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'.`;
  fieldError(input, $('app-name-error'), message);
  if (message) {
    input.focus();
    return null;
  }
  return name;
}

function updateHostHint() {
  const name = $('app-name').value.trim();
  const any = state.apps.find((a) => a.url);
  let host = `${name || 'NAME'}.DOMAIN`;
  if (any) {
    const url = new URL(any.url);
    host = `${name || 'NAME'}.${url.host.split('.').slice(1).join('.')}`;
  }
  $('app-name-host').textContent = host;
}

// POSTs body with upload progress; resolves to the 202's JSON.
function uploadBody(app, body, type, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const bar = $('upload-bar');
    const text = $('upload-bar-text');
    const total = body.size;
    const show = (loaded) => {
      bar.value = total ? Math.round((loaded / total) * 100) : 100;
      text.textContent = `${formatSize(loaded)} of ${formatSize(total)}`;
    };
    show(0);
    xhr.open('POST', appPath(app, '/deployments'));
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', type);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => show(e.loaded));
    xhr.addEventListener('load', () => {
      if (xhr.status === 202) {
        show(total);
        resolve(xhr.response);
      } else {
        const message = xhr.response?.error || `The server answered ${xhr.status} ${xhr.statusText}.`;
        if (xhr.status === 401) signOut('The server no longer accepts this token; sign in again.');
        reject(new ApiError(xhr.status, message));
      }
    });
    xhr.addEventListener('error', () => reject(new Error('The upload failed: the server could not be reached.')));
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    signal.addEventListener('abort', () => xhr.abort());
    xhr.send(body);
  });
}

function resetProgress(app) {
  $('progress').hidden = false;
  $('progress-title').textContent = `Deploying ${app}`;
  $('upload-bar').value = 0;
  $('upload-bar-text').textContent = '';
  $('steps').replaceChildren();
  $('build-log').textContent = '';
  $('deploy-result').replaceChildren();
  $('deploy-status').textContent = '';
}

// Packs and uploads source, then follows the build. source is
// {kind: 'files', files} or {kind: 'upload', blob, type, files?}.
async function deploy(source) {
  const app = checkAppName();
  if (!app) return;
  if (deployState.controller) deployState.controller.abort();
  const controller = new AbortController();
  deployState.controller = controller;
  deployState.source = source;
  clearMarks();
  resetProgress(app);
  try {
    let { blob, type } = source;
    if (source.kind === 'files') {
      setDeployMessage('Packing the files into a tarball…');
      const tar = makeTar(source.files);
      const packed = await gzip(tar);
      blob = new Blob([packed || tar]);
      type = packed ? 'application/gzip' : 'application/x-tar';
    }
    setDeployMessage(`Uploading ${formatSize(blob.size)} to ${app}…`);
    const accepted = await uploadBody(app, blob, type, controller.signal);
    $('progress-title').textContent = `Deployment #${accepted.id} of ${app}`;
    setDeployMessage(`Uploaded; deployment #${accepted.id} is queued to build.`);
    refreshApps();
    await followBuild(accepted, controller.signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    setDeployMessage(`Not deployed: ${e.message}`);
  } finally {
    if (deployState.controller === controller) deployState.controller = null;
  }
}

function stepItem(name) {
  let item = $('steps').querySelector(`[data-step="${CSS.escape(name)}"]`);
  if (!item) {
    item = h('li', { 'data-step': name }, h('span', { class: 'step-icon', 'aria-hidden': 'true' }), ' ',
      h('span', { class: 'step-name' }, name), ' ', h('span', { class: 'step-state' }));
    $('steps').append(item);
  }
  return item;
}

function setStep(item, stateName, detail = '') {
  const icons = { running: '⟳', done: '✓', failed: '✗' };
  item.dataset.state = stateName;
  item.querySelector('.step-icon').textContent = icons[stateName];
  item.querySelector('.step-state').textContent = `— ${stateName}${detail ? `, ${detail}` : ''}`;
}

function stepStarted(name) {
  const items = [...$('steps').children];
  if (items.some((i) => i.dataset.step === name)) return;
  for (const i of items) if (i.dataset.state === 'running') setStep(i, 'done');
  setStep(stepItem(name), 'running');
  $('deploy-status').textContent = `Building: ${name}…`;
}

let logPartial = ''; // the build log's last line until it is complete

function appendBuildLog(text) {
  const pre = $('build-log');
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(text);
  if (atEnd) pre.scrollTop = pre.scrollHeight;
  // Steps are also "== name" lines of the log, for streams that replay it.
  const lines = (logPartial + text).split('\n');
  logPartial = lines.pop();
  for (const line of lines) {
    const m = /^== (\S+)/.exec(line);
    if (m) stepStarted(m[1]);
  }
}

// Reads the build's event stream to its end, reconnecting (the server then
// replays the build so far) if it breaks, and shows the result.
async function followBuild(accepted, signal) {
  const url = accepted.events_url || `/v1/deployments/${accepted.id}/events`;
  let final = null;
  for (let attempt = 0; !final; attempt++) {
    $('steps').replaceChildren();
    $('build-log').textContent = '';
    logPartial = '';
    try {
      for await (const event of eventStream(url, { token, signal })) {
        const data = JSON.parse(event.data);
        if (event.event === 'step') stepStarted(data.step);
        else if (event.event === 'log') appendBuildLog(data.text);
        else if (event.event === 'status') {
          if (data.status === 'ready' || data.status === 'failed') final = data;
          else if (data.status === 'queued') $('deploy-status').textContent = 'Queued: waiting for a builder…';
        }
      }
      if (!final) throw new Error('the event stream ended before the build did');
    } catch (e) {
      if (signal.aborted) return;
      if ((e.status && e.status < 500) || attempt >= 5) {
        $('deploy-status').textContent = `Could not follow the build of #${accepted.id} (${e.message}); its status is in the app's history.`;
        return;
      }
      $('deploy-status').textContent = 'The connection broke; reconnecting…';
      await sleep(500 * (attempt + 1));
    }
  }
  await showBuildResult(final, signal);
}

async function showBuildResult(deployment, signal) {
  let full = deployment;
  try {
    full = await apiJson(`/v1/deployments/${deployment.id}`);
  } catch {
    // The streamed log and status are enough to go on.
  }
  if (signal.aborted) return;
  const timings = full.timings || {};
  for (const item of $('steps').children) {
    const ms = timings[item.dataset.step];
    const failed = full.status === 'failed' && item.dataset.state === 'running';
    setStep(item, failed ? 'failed' : 'done', ms !== undefined ? `${ms} ms` : '');
  }
  if (typeof full.log === 'string' && full.log.length > $('build-log').textContent.length) $('build-log').textContent = full.log;
  const result = $('deploy-result');
  if (full.status === 'ready') {
    $('deploy-status').textContent = `Deployment #${full.id} is ready and serving at ${full.url}`;
    result.replaceChildren(
      h('p', { class: 'result ok' }, badge('ready'), ' Serving at ', urlLink(full.url)),
      full.preview_url ? h('p', {}, 'This deployment keeps its own address: ', urlLink(full.preview_url)) : '',
    );
    deployState.diagnostics = [];
  } else {
    const diagnostics = parseDiagnostics(full.log || $('build-log').textContent);
    deployState.diagnostics = diagnostics;
    $('deploy-status').textContent = `Deployment #${full.id} failed: ${full.error || 'see the build log'}`;
    result.replaceChildren(
      h('p', { class: 'result failed' }, badge('failed'), ` ${full.error || 'The build failed; the log says why.'}`),
      diagnostics.length
        ? h('div', {},
          h('h3', {}, `Compiler messages (${diagnostics.length})`),
          h('ul', { class: 'diagnostics' }, diagnostics.map((d) =>
            h('li', { class: `diag-${d.severity}` },
              h('button', { type: 'button', class: 'link', onclick: () => goToDiagnostic(d) },
                `${d.file}, line ${d.line}, column ${d.column}`),
              ` ${d.severity === 'error' ? 'Error' : 'Warning'}: ${d.message}`))))
        : '',
    );
    if (deployState.source?.kind === 'files') markDiagnostics(diagnostics);
  }
  refreshApps();
  if (state.selected === full.app) loadApp(full.app);
}

// Opens the file of a compiler message at its line. A build of an upload
// brings the upload's files into the editor first.
async function goToDiagnostic(d) {
  if (!findEditorFile(d.file) && deployState.source?.kind === 'upload') {
    const files = await uploadSourceFiles(deployState.source);
    if (files.length) {
      setFiles(files);
      markDiagnostics(deployState.diagnostics);
      deployState.source = { kind: 'files' };
    }
  }
  const file = findEditorFile(d.file);
  if (!file) {
    $('files-message').textContent = `${d.file} is not among the editor's files.`;
    return;
  }
  sourceTabs.select($('tab-write'));
  openFile(editor.files.indexOf(file));
  const line = Math.max(0, d.line - 1);
  const ch = Math.max(0, d.column - 1);
  editor.cm.setCursor({ line, ch });
  editor.cm.scrollIntoView({ line, ch }, 80);
  editor.cm.focus();
}

// ---- Uploads ---------------------------------------------------------------------

let upload = null; // {blob, type, name, describe, files?}

function contentType(name, head) {
  if (head[0] === 0 && head[1] === 0x61 && head[2] === 0x73 && head[3] === 0x6d) return ['application/wasm', 'a WebAssembly module'];
  if (isGzip(head)) return ['application/gzip', 'a gzip-compressed tarball'];
  if (/\.tar$/i.test(name)) return ['application/x-tar', 'a tarball'];
  if (/\.(wat|wast)$/i.test(name)) return ['text/plain; charset=utf-8', 'WebAssembly text'];
  return ['application/octet-stream', 'a file'];
}

async function setUploadFile(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const [type, what] = contentType(file.name, head);
  if (type === 'application/octet-stream') {
    // A lone source file: deployed as a tarball holding it.
    await setUploadFiles(file.name, [{ path: file.name, file }], true);
    return;
  }
  upload = { blob: file, type, name: file.name, files: null };
  showUploadSummary(`${file.name}: ${what}, ${formatSize(file.size)}.`);
}

// files: [{path, file}] relative to the folder's root.
async function setUploadFiles(label, files, packOne = false) {
  if (files.length === 0) {
    showUploadError(`${label} has no files in it.`);
    return;
  }
  if (files.length === 1 && !files[0].path.includes('/') && !packOne) {
    await setUploadFile(files[0].file);
    return;
  }
  const entries = await Promise.all(files.map(async ({ path, file }) => ({ path, data: new Uint8Array(await file.arrayBuffer()) })));
  let tar;
  try {
    tar = makeTar(entries);
  } catch (e) {
    showUploadError(e.message);
    return;
  }
  const packed = await gzip(tar);
  const size = entries.reduce((n, e) => n + e.data.length, 0);
  upload = { blob: new Blob([packed || tar]), type: packed ? 'application/gzip' : 'application/x-tar', name: label, files: entries };
  const count = entries.length === 1 ? '1 file' : `${entries.length} files`;
  showUploadSummary(`${label}: ${count}, ${formatSize(size)}, packed into a tarball of ${formatSize((packed || tar).length)}.`);
}

function showUploadSummary(text) {
  showError($('upload-error'), '');
  $('upload-summary').textContent = text;
}

function showUploadError(text) {
  upload = null;
  $('upload-summary').textContent = '';
  showError($('upload-error'), text);
}

// The files of an upload for the editor: text files as text, others as bytes.
async function uploadSourceFiles(source) {
  let files = source.files;
  if (!files) {
    try {
      files = await readTar(new Uint8Array(await source.blob.arrayBuffer()));
    } catch {
      return [];
    }
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return files.map((f) => {
    if (f.data.length <= EDITABLE_MAX) {
      try {
        return { path: f.path, text: decoder.decode(f.data) };
      } catch {
        // Not UTF-8: kept as bytes.
      }
    }
    return { path: f.path, data: f.data };
  });
}

// Every file below a dropped folder entry, as [{path, file}].
async function walkEntry(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ path: prefix + entry.name, file });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walkEntry(child, `${prefix}${entry.name}/`, out);
  }
}

async function onDrop(event) {
  event.preventDefault();
  $('drop-zone').classList.remove('dragging');
  const entries = [...event.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  try {
    if (entries.length === 1 && entries[0].isDirectory) {
      const files = [];
      await walkEntry(entries[0], '', files);
      const root = `${entries[0].name}/`;
      await setUploadFiles(`Folder ${entries[0].name}`, files.map((f) => ({ path: f.path.slice(root.length), file: f.file })));
    } else if (entries.length === 1 || (entries.length === 0 && event.dataTransfer.files.length === 1)) {
      await setUploadFile(event.dataTransfer.files[0]);
    } else if (entries.length > 1) {
      const files = [];
      for (const entry of entries) await walkEntry(entry, '', files);
      await setUploadFiles(`${entries.length} dropped items`, files);
    } else {
      showUploadError('Nothing was dropped that can be uploaded; drop a file or a folder.');
    }
  } catch (e) {
    showUploadError(`The dropped files could not be read: ${e.message}`);
  }
}

// ---- Apps --------------------------------------------------------------------------

const state = {
  apps: [],
  selected: null,
  app: null, // the selected app's JSON
  historyBefore: null,
  logController: null,
  logAfter: null,
  logApp: null,
  kvAfter: null,
  templates: [],
};

async function refreshApps() {
  try {
    const { apps } = await apiJson('/v1/apps');
    state.apps = apps;
    renderApps();
    updateHostHint();
  } catch (e) {
    if (token) $('apps-status').textContent = `Could not list the apps: ${e.message}`;
  }
}

function renderApps() {
  $('apps-status').textContent = state.apps.length ? '' : 'No apps yet: deploy one.';
  $('app-list').replaceChildren(...state.apps.map((app) => {
    const link = h('a', { href: `#/apps/${app.name}`, class: 'app-name' }, app.name);
    if (app.name === state.selected) link.setAttribute('aria-current', 'page');
    return h('li', {}, link, ' ', badge(app.state), app.language ? h('span', { class: 'hint' }, ` ${LANGUAGES[app.language] || app.language}`) : '');
  }));
}

function showView(view) {
  $('deploy').hidden = view !== 'deploy';
  $('app').hidden = view !== 'app';
}

function route(focus = true) {
  const match = /^#\/apps\/([a-z0-9-]+)$/.exec(location.hash);
  if (match) {
    if (state.selected !== match[1]) {
      stopLog();
      setAppMessage('');
      $('kv-view').hidden = true;
      $('history-log')?.remove();
    }
    state.selected = match[1];
    showView('app');
    renderApps();
    loadApp(match[1]).then(() => {
      if (focus) $('app-title').focus();
    });
  } else {
    stopLog();
    state.selected = null;
    showView('deploy');
    editor.cm.refresh();
    renderApps();
    if (focus && location.hash === '#/deploy') $('deploy-title').focus();
  }
}

function setAppMessage(text) {
  $('app-message').textContent = text;
}

async function loadApp(name) {
  let app;
  try {
    app = await apiJson(appPath(name));
  } catch (e) {
    if (state.selected !== name) return;
    $('app-title').textContent = name;
    $('app-state').replaceChildren();
    $('app-summary').textContent = '';
    $('history-rows').replaceChildren();
    setAppMessage(e.status === 404 ? `There is no app called ${name}.` : `Could not load ${name}: ${e.message}`);
    return;
  }
  if (state.selected !== name) return;
  state.app = app;
  $('app-title').textContent = app.name;
  $('app-state').replaceChildren(badge(app.state));
  $('app-summary').replaceChildren(...(app.url && app.current_deployment
    ? ['Serving at ', urlLink(app.url), ` — deployment #${app.current_deployment}${app.language ? `, ${LANGUAGES[app.language] || app.language}` : ''}.`]
    : ['Nothing is serving: no deployment of this app is ready.']));
  renderHistory(app.deployments || [], false);
  state.historyBefore = (app.deployments || []).length >= 20 ? app.deployments[app.deployments.length - 1].id : null;
  $('history-more').hidden = !state.historyBefore;
  const tab = appTabs.current();
  if (tab) openAppTab(tab);
}

function historyRow(d) {
  const actions = [];
  if (d.status === 'ready' && d.preview_url) {
    actions.push(h('a', { href: d.preview_url, target: '_blank', rel: 'noopener noreferrer', class: 'button small' }, 'Preview', h('span', { class: 'visually-hidden' }, ` deployment ${d.id}`)));
  }
  if (d.status === 'ready' && !d.current) {
    const current = state.app?.current_deployment;
    const label = current && d.id < current ? `Roll back to #${d.id}` : `Make #${d.id} current`;
    actions.push(h('button', { type: 'button', class: 'small', onclick: () => rollback(d.id) }, label));
  }
  actions.push(h('button', { type: 'button', class: 'small', onclick: () => showDeploymentLog(d.id) }, 'Build log', h('span', { class: 'visually-hidden' }, ` of ${d.id}`)));
  const size = [d.upload_size !== null && d.upload_size !== undefined ? `${formatSize(d.upload_size)} uploaded` : '',
    d.artifact_size ? `${formatSize(d.artifact_size)} built` : ''].filter(Boolean).join(', ');
  return h('tr', { 'data-id': d.id },
    h('th', { scope: 'row' }, `#${d.id}`, d.current ? h('span', { class: 'current' }, ' (current)') : ''),
    h('td', { 'data-label': 'Status' }, badge(d.status), d.status === 'failed' && d.error ? h('div', { class: 'hint' }, d.error) : ''),
    h('td', { 'data-label': 'Deployed' }, timeElement(d.created_at)),
    h('td', { 'data-label': 'Size' }, size),
    h('td', { 'data-label': 'Language' }, LANGUAGES[d.language] || d.language || ''),
    h('td', { 'data-label': 'Mode' }, MODES[d.mode] || d.mode || ''),
    h('td', { 'data-label': 'By' }, d.deployed_by || ''),
    h('td', { class: 'actions' }, actions));
}

function renderHistory(deployments, append) {
  const rows = deployments.map(historyRow);
  if (append) $('history-rows').append(...rows);
  else $('history-rows').replaceChildren(...rows);
}

async function moreHistory() {
  try {
    const page = await apiJson(appPath(state.selected, `/deployments?limit=20&before=${state.historyBefore}`));
    renderHistory(page.deployments, true);
    state.historyBefore = page.next_before;
    $('history-more').hidden = !state.historyBefore;
  } catch (e) {
    setAppMessage(`Could not load older deployments: ${e.message}`);
  }
}

async function rollback(id) {
  const app = state.selected;
  try {
    const result = await apiJson(appPath(app, '/rollback'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ deployment: id }),
    });
    setAppMessage(`Deployment #${result.current_deployment} of ${app} is current again (it replaced #${result.previous_deployment}).`);
    await loadApp(app);
    refreshApps();
  } catch (e) {
    setAppMessage(`Could not roll back to #${id}: ${e.message}`);
  }
}

async function showDeploymentLog(id) {
  try {
    const d = await apiJson(`/v1/deployments/${id}`);
    let box = $('history-log');
    if (!box) {
      box = h('section', { id: 'history-log', 'aria-labelledby': 'history-log-title' },
        h('h2', { id: 'history-log-title', tabindex: '-1' }), h('p', { id: 'history-log-error' }),
        h('pre', { id: 'history-log-text', class: 'log', tabindex: '0', 'aria-labelledby': 'history-log-title' }));
      $('panel-history').append(box);
    }
    $('history-log-title').textContent = `Build log of deployment #${d.id}`;
    $('history-log-error').textContent = d.error || '';
    $('history-log-text').textContent = d.log || '(empty)';
    $('history-log-title').focus();
  } catch (e) {
    setAppMessage(`Could not load the log of #${id}: ${e.message}`);
  }
}

async function deleteApp() {
  const app = state.selected;
  const count = state.app?.deployments?.length || 0;
  const ok = await confirmAction({
    title: `Delete ${app}?`,
    text: `${app} stops serving, and its ${count === 1 ? 'deployment' : 'deployments'}, key-value data, settings, secrets and logs are removed. This cannot be undone.`,
    ok: `Delete ${app}`,
    typed: app,
  });
  if (!ok) return;
  try {
    stopLog();
    const result = await apiJson(appPath(app), { method: 'DELETE' });
    $('apps-status').textContent = `Deleted ${result.deleted} and its ${result.deployments} deployments.`;
    state.apps = state.apps.filter((a) => a.name !== app);
    location.hash = '#/deploy';
    await refreshApps();
    $('apps-status').textContent = `Deleted ${result.deleted} and its ${result.deployments} deployments.`;
  } catch (e) {
    setAppMessage(`Could not delete ${app}: ${e.message}`);
  }
}

function openAppTab(tab) {
  if (tab.id !== 'tab-log') stopLog();
  if (!state.selected) return;
  if (tab.id === 'tab-log') startLog();
  else if (tab.id === 'tab-kv') listKeys(false);
  else if (tab.id === 'tab-settings') loadSettings();
}

// ---- The app's log, live ----------------------------------------------------------

function stopLog() {
  if (state.logController) state.logController.abort();
  state.logController = null;
}

function appendLogLine(line) {
  const list = $('log-lines');
  const view = $('log-view');
  const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
  list.append(h('li', {}, timeElement(line.time, false), ' ', h('span', { class: `stream stream-${line.stream}` }, line.stream), ' ', line.message));
  while (list.children.length > LOG_LINES_KEPT) list.firstElementChild.remove();
  if (atEnd) view.scrollTop = view.scrollHeight;
}

async function startLog() {
  if (state.logController) return;
  const app = state.selected;
  const controller = new AbortController();
  state.logController = controller;
  $('log-pause').setAttribute('aria-pressed', 'false');
  $('log-pause').textContent = 'Pause';
  if (state.logAfter === null || state.logApp !== app) {
    $('log-lines').replaceChildren();
    state.logAfter = null;
    state.logApp = app;
  }
  for (let attempt = 0; !controller.signal.aborted; attempt++) {
    const query = state.logAfter !== null ? `?after=${state.logAfter}` : '';
    $('log-state').textContent = attempt ? 'Reconnecting…' : 'Live: new lines appear as they are written.';
    try {
      for await (const event of eventStream(appPath(app, `/logs/stream${query}`), { token, signal: controller.signal })) {
        if (event.event !== 'log') continue;
        const line = JSON.parse(event.data);
        appendLogLine(line);
        state.logAfter = line.id;
        attempt = 0;
        $('log-state').textContent = 'Live: new lines appear as they are written.';
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      if (e.status && e.status < 500) {
        $('log-state').textContent = `The log cannot be shown: ${e.message}`;
        state.logController = null;
        return;
      }
    }
    await sleep(Math.min(5000, 500 * (attempt + 1)));
  }
}

function toggleLog() {
  if (state.logController) {
    stopLog();
    $('log-pause').setAttribute('aria-pressed', 'true');
    $('log-pause').textContent = 'Resume';
    $('log-state').textContent = 'Paused.';
  } else {
    startLog();
  }
}

// ---- Key-value data ------------------------------------------------------------

function keyText(entry) {
  return entry.key !== undefined ? entry.key : `(bytes, base64) ${entry.key_base64}`;
}

// A key in a path: UTF-8 text or raw bytes, every byte outside the
// unreserved set percent-encoded.
function keyPath(entry) {
  if (entry.key !== undefined) return encodeURIComponent(entry.key);
  const bytes = Uint8Array.from(atob(entry.key_base64), (c) => c.charCodeAt(0));
  return [...bytes].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
}

async function listKeys(more) {
  const app = state.selected;
  const prefix = $('kv-prefix').value;
  const query = new URLSearchParams({ limit: '100' });
  if (prefix) query.set('prefix', prefix);
  if (more && state.kvAfter !== null) query.set('after', state.kvAfter);
  try {
    const page = await apiJson(appPath(app, `/kv?${query}`));
    const rows = page.keys.map((entry) => h('tr', {},
      h('td', {}, h('code', {}, keyText(entry))),
      h('td', {}, formatSize(entry.size)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'small', onclick: () => viewKey(entry) }, 'View', h('span', { class: 'visually-hidden' }, ` ${keyText(entry)}`)),
        h('button', { type: 'button', class: 'small danger', onclick: () => deleteKey(entry) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${keyText(entry)}`)))));
    if (more) $('kv-rows').append(...rows);
    else $('kv-rows').replaceChildren(...rows);
    state.kvAfter = page.next_after ?? null;
    $('kv-more').hidden = state.kvAfter === null;
    $('kv-empty').hidden = $('kv-rows').children.length > 0;
  } catch (e) {
    setAppMessage(`Could not list the keys: ${e.message}`);
  }
}

async function viewKey(entry) {
  try {
    const bytes = new Uint8Array(await (await api(appPath(state.selected, `/kv/${keyPath(entry)}`))).arrayBuffer());
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = `(${bytes.length} bytes that are not UTF-8 text, in hexadecimal)\n` +
        [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    }
    $('kv-view').hidden = false;
    $('kv-view-title').textContent = `Value of ${keyText(entry)}`;
    $('kv-value').textContent = text;
    $('kv-view-title').focus();
  } catch (e) {
    setAppMessage(e.status === 404 ? `${keyText(entry)} is gone: something removed it.` : `Could not read ${keyText(entry)}: ${e.message}`);
  }
}

async function deleteKey(entry) {
  const ok = await confirmAction({ title: `Delete the key ${keyText(entry)}?`, text: 'The app no longer finds its value.', ok: 'Delete key' });
  if (!ok) return;
  try {
    await apiDone(appPath(state.selected, `/kv/${keyPath(entry)}`), { method: 'DELETE' });
    setAppMessage(`Deleted the key ${keyText(entry)}.`);
    $('kv-view').hidden = true;
    await listKeys(false);
  } catch (e) {
    setAppMessage(`Could not delete ${keyText(entry)}: ${e.message}`);
  }
}

async function setKey(event) {
  event.preventDefault();
  const key = $('kv-key').value;
  if (!key) {
    setAppMessage('Give the key a name.');
    $('kv-key').focus();
    return;
  }
  try {
    const response = await apiDone(appPath(state.selected, `/kv/${encodeURIComponent(key)}`), { method: 'PUT', body: $('kv-text').value });
    setAppMessage(response.status === 201 ? `Added the key ${key}.` : `Replaced the value of ${key}.`);
    await listKeys(false);
  } catch (e) {
    setAppMessage(`Could not set ${key}: ${e.message}`);
  }
}

// ---- Settings and secrets ----------------------------------------------------------

async function loadSettings() {
  const app = state.selected;
  try {
    const [config, secrets] = await Promise.all([apiJson(appPath(app, '/config')), apiJson(appPath(app, '/secrets'))]);
    if (state.selected !== app) return;
    const names = Object.keys(config.config || {}).sort();
    $('config-rows').replaceChildren(...names.map((name) => {
      const fromApi = config.sources?.[name] === 'set';
      return h('tr', {},
        h('th', { scope: 'row' }, h('code', {}, name)),
        h('td', {}, h('code', {}, config.config[name])),
        h('td', {}, fromApi ? 'set here' : 'the manifest (vivarium.json)'),
        h('td', { class: 'actions' }, fromApi
          ? h('button', { type: 'button', class: 'small danger', onclick: () => removeSetting(name) }, 'Remove', h('span', { class: 'visually-hidden' }, ` ${name}`))
          : ''));
    }));
    $('config-empty').hidden = names.length > 0;
    const list = secrets.secrets || [];
    $('secret-list').replaceChildren(...list.map((s) => h('li', {},
      h('code', {}, s.name), ' ', h('span', { class: 'hint' }, 'set ', timeElement(s.updated_at)), ' ',
      h('button', { type: 'button', class: 'small danger', onclick: () => removeSecret(s.name) }, 'Remove', h('span', { class: 'visually-hidden' }, ` secret ${s.name}`)))));
    $('secret-empty').hidden = list.length > 0;
  } catch (e) {
    setAppMessage(`Could not load the settings: ${e.message}`);
  }
}

async function putValue(kind, nameInput, valueInput) {
  const name = nameInput.value.trim();
  if (!name) {
    setAppMessage(`Give the ${kind === 'config' ? 'setting' : 'secret'} a name.`);
    nameInput.focus();
    return;
  }
  try {
    await apiDone(appPath(state.selected, `/${kind}/${encodeURIComponent(name)}`), { method: 'PUT', body: valueInput.value });
    setAppMessage(kind === 'config' ? `Set ${name}.` : `Set the secret ${name}; its value is not shown again.`);
    valueInput.value = '';
    if (kind === 'secrets') nameInput.value = '';
    await loadSettings();
  } catch (e) {
    setAppMessage(`Could not set ${name}: ${e.message}`);
  }
}

async function removeValue(kind, name) {
  try {
    await apiDone(appPath(state.selected, `/${kind}/${encodeURIComponent(name)}`), { method: 'DELETE' });
    setAppMessage(kind === 'config' ? `Removed the setting ${name}.` : `Removed the secret ${name}.`);
    await loadSettings();
  } catch (e) {
    setAppMessage(`Could not remove ${name}: ${e.message}`);
  }
}

const removeSetting = (name) => removeValue('config', name);
const removeSecret = (name) => removeValue('secrets', name);

// ---- Templates -----------------------------------------------------------------------

async function loadTemplates() {
  try {
    const response = await fetch('/v1/templates', { cache: 'no-store' });
    if (!response.ok) throw new Error(await errorMessage(response));
    state.templates = (await response.json()).templates || [];
  } catch (e) {
    showError($('template-error'), `The templates could not be loaded: ${e.message}`);
    return;
  }
  showError($('template-error'), '');
  $('template').replaceChildren(...state.templates.map((t, i) => h('option', { value: i }, t.title)));
  if (editor.files.length === 0 && state.templates.length) setFiles(state.templates[0].files);
}

async function useTemplate() {
  const template = state.templates[Number($('template').value)];
  if (!template) return;
  if (editor.dirty) {
    const ok = await confirmAction({ title: `Start from the ${template.title} template?`, text: 'The files in the editor are replaced, and your changes to them are lost.', ok: 'Replace the files' });
    if (!ok) return;
  }
  setFiles(template.files);
  clearMarks();
  if (!$('app-name').value.trim()) $('app-name').value = `hello-${template.language}`;
  updateHostHint();
  $(fileTabId(0)).focus();
}

// ---- Signing in and out --------------------------------------------------------------

function showSignedIn(signedIn) {
  $('signin').hidden = signedIn;
  $('console').hidden = !signedIn;
  $('session').hidden = !signedIn;
}

async function signIn(event) {
  event.preventDefault();
  const input = $('token');
  const candidate = input.value.trim();
  if (!candidate) {
    fieldError(input, $('token-error'), 'Paste a token first.');
    input.focus();
    return;
  }
  let response;
  try {
    response = await fetch('/v1/apps', { headers: { Authorization: `Bearer ${candidate}` }, cache: 'no-store' });
  } catch {
    fieldError(input, $('token-error'), 'The server could not be reached; check that vivd is running.');
    return;
  }
  if (!response.ok) {
    const why = response.status === 401 ? 'The server does not know this token; check that it was copied whole.' : await errorMessage(response);
    if (!response.bodyUsed) await response.arrayBuffer();
    fieldError(input, $('token-error'), why);
    input.focus();
    return;
  }
  await response.arrayBuffer();
  token = candidate;
  localStorage.setItem(TOKEN_KEY, token);
  input.value = '';
  fieldError(input, $('token-error'), '');
  await startConsole();
  $('deploy-title').focus();
}

function signOut(message) {
  stopLog();
  if (deployState.controller) deployState.controller.abort();
  token = null;
  localStorage.removeItem(TOKEN_KEY);
  state.apps = [];
  state.selected = null;
  showSignedIn(false);
  if (location.hash) history.replaceState(null, '', location.pathname);
  fieldError($('token'), $('token-error'), typeof message === 'string' ? message : '');
  $('token').focus();
}

async function startConsole() {
  showSignedIn(true);
  editor.cm.refresh();
  await Promise.all([refreshApps(), state.templates.length ? null : loadTemplates()]);
  route(false);
}

// ---- Wiring ------------------------------------------------------------------------

function init() {
  setupEditor();
  sourceTabs = makeTabs($('source-tabs'), {
    onSelect: (tab) => {
      if (tab.id === 'tab-write') editor.cm.refresh();
    },
  });
  sourceTabs.select($('tab-write'));
  appTabs = makeTabs($('app-tabs'), { onSelect: openAppTab });
  appTabs.select($('tab-history'));
  makeTabs($('file-tabs'), { panels: false, onSelect: (tab) => openFile(Number(tab.dataset.index)) });

  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('You signed out.'));
  $('apps-refresh').addEventListener('click', refreshApps);
  $('app-name').addEventListener('input', () => {
    fieldError($('app-name'), $('app-name-error'), '');
    updateHostHint();
  });
  $('use-template').addEventListener('click', useTemplate);
  $('file-add').addEventListener('click', () => openFileForm('add'));
  $('file-rename').addEventListener('click', () => openFileForm('rename'));
  $('file-remove').addEventListener('click', removeFile);
  $('file-form').addEventListener('submit', submitFileForm);
  $('file-cancel').addEventListener('click', () => closeFileForm(fileFormMode === 'add' ? 'file-add' : 'file-rename'));
  $('file-form').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeFileForm(fileFormMode === 'add' ? 'file-add' : 'file-rename');
  });
  $('deploy-files').addEventListener('click', () => deploy({ kind: 'files', files: editorFiles() }));

  $('upload-file').addEventListener('change', (e) => {
    if (e.target.files.length) setUploadFile(e.target.files[0]);
  });
  $('upload-folder').addEventListener('change', (e) => {
    const files = [...e.target.files];
    if (!files.length) return;
    const root = files[0].webkitRelativePath.split('/')[0];
    setUploadFiles(`Folder ${root}`, files.map((file) => ({ path: file.webkitRelativePath.split('/').slice(1).join('/'), file })));
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', onDrop);
  // A file dropped anywhere else must not replace the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('deploy-upload').addEventListener('click', () => {
    if (!upload) {
      showUploadError('Choose a file or a folder first, or drop one on the box above.');
      $('upload-file').focus();
      return;
    }
    deploy({ kind: 'upload', blob: upload.blob, type: upload.type, files: upload.files });
  });

  $('app-redeploy').addEventListener('click', () => {
    $('app-name').value = state.selected;
    updateHostHint();
    location.hash = '#/deploy';
  });
  $('app-delete').addEventListener('click', deleteApp);
  $('history-more').addEventListener('click', moreHistory);
  $('log-pause').addEventListener('click', toggleLog);
  $('kv-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    listKeys(false);
  });
  $('kv-more').addEventListener('click', () => listKeys(true));
  $('kv-set').addEventListener('submit', setKey);
  $('config-set').addEventListener('submit', (e) => {
    e.preventDefault();
    putValue('config', $('config-key'), $('config-value'));
  });
  $('secret-set').addEventListener('submit', (e) => {
    e.preventDefault();
    putValue('secrets', $('secret-name'), $('secret-value'));
  });
  window.addEventListener('hashchange', () => {
    if (token) route(true);
  });

  restoreFiles();
  token = localStorage.getItem(TOKEN_KEY);
  if (token) {
    startConsole();
  } else {
    showSignedIn(false);
  }
}

init();
