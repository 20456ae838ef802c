// Compiler messages with a file and a line, found in a build log: clang and
// wat2wasm ("hello.c:5:13: error: ..."), rustc ("error[E0277]: ..." then
// "--> src/lib.rs:4:20") and asc ("ERROR TS2304: ..." then
// "in assembly/index.ts(4,24)").

const CLANG = /^(.+?):(\d+):(\d+): (fatal error|error|warning): (.*)$/;
const RUST_HEAD = /^(error|warning)(\[\w+\])?: (.*)$/;
const RUST_AT = /^\s*--> (.+?):(\d+):(\d+)\s*$/;
const ASC_HEAD = /^(ERROR|WARNING) (\w+): (.*)$/;
const ASC_AT = /\bin (\S+?)\((\d+),(\d+)\)\s*$/;

// The build folders the tools see, as the log shows them; paths below them
// are the upload's own.
const BUILD_PREFIXES = ['/build/tenant/', '/build/src/', '/build/'];

// The upload's path for a path in a compiler message, or null for a file
// that is not the upload's (the SDK under /vivarium, asc's ~lib, ...).
export function uploadPath(path) {
  let p = path.trim();
  for (const prefix of BUILD_PREFIXES) {
    if (p.startsWith(prefix)) {
      p = p.slice(prefix.length);
      break;
    }
  }
  while (p.startsWith('./')) p = p.slice(2);
  if (p === '' || p.startsWith('/') || p.startsWith('~') || p.split('/').includes('..')) return null;
  return p;
}

// Every error and warning of the log with a file of the upload, in order, each
// once: [{file, line, column, severity: 'error'|'warning', message}].
export function parseDiagnostics(log) {
  const found = [];
  const keys = new Set();
  const add = (file, line, column, severity, message) => {
    const path = uploadPath(file);
    if (!path) return;
    const item = { file: path, line: Number(line), column: Number(column), severity, message: message.trim() };
    const key = `${item.file}:${item.line}:${item.column}:${item.severity}:${item.message}`;
    if (keys.has(key)) return;
    keys.add(key);
    found.push(item);
  };
  let pending = null;
  for (const line of String(log || '').split(/\r?\n/)) {
    let m = CLANG.exec(line);
    if (m) {
      add(m[1], m[2], m[3], m[4] === 'warning' ? 'warning' : 'error', m[5]);
      pending = null;
      continue;
    }
    m = RUST_HEAD.exec(line);
    if (m) {
      pending = { severity: m[1], message: (m[2] ? `${m[2]} ` : '') + m[3] };
      continue;
    }
    m = ASC_HEAD.exec(line);
    if (m) {
      pending = { severity: m[1] === 'ERROR' ? 'error' : 'warning', message: `${m[2]}: ${m[3]}` };
      continue;
    }
    m = RUST_AT.exec(line) || ASC_AT.exec(line);
    if (m && pending) {
      add(m[1], m[2], m[3], pending.severity, pending.message);
      pending = null;
    }
  }
  return found;
}
