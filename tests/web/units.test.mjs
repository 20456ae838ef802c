// The page's pure modules under Node: the tar writer checked against GNU tar,
// the tar reader on GNU tar's own archives, the event-stream parser on
// awkwardly split input, and the compiler-message parser on real build logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { makeTar, gzip, readTar, cleanPath } from '../../web/tar.js';
import { parseEventStream } from '../../web/sse.js';
import { parseDiagnostics, uploadPath } from '../../web/diagnostics.js';

const longDir = 'a-rather-long-folder-name-that-goes-on/and-another-folder-below-it-too';
const files = [
  { path: 'hello.c', text: '#include <stdio.h>\nint main(void) { puts("hi"); }\n' },
  { path: 'src/lib.rs', text: 'fn main() {}\n' },
  { path: 'empty.txt', text: '' },
  { path: 'exact.bin', data: new Uint8Array(512).map((_, i) => i & 0xff) },
  { path: 'naïve/ünïcode.txt', text: 'ÿ€😀\n' },
  { path: `${longDir}/${'x'.repeat(90)}.c`, text: 'int x;\n' },
];

function scratch() {
  return mkdtempSync(join(tmpdir(), 'viv-web-units-'));
}

function extractAndCompare(archive, flags) {
  const dir = scratch();
  try {
    writeFileSync(join(dir, 'a.tar'), archive);
    mkdirSync(join(dir, 'out'));
    execFileSync('tar', [flags, join(dir, 'a.tar'), '-C', join(dir, 'out')]);
    for (const f of files) {
      const want = f.data ? Buffer.from(f.data) : Buffer.from(f.text, 'utf8');
      assert.deepEqual(readFileSync(join(dir, 'out', f.path)), want, f.path);
    }
    const listed = execFileSync('tar', ['-tvf', join(dir, 'a.tar')], { encoding: 'utf8' });
    assert.match(listed, /-rw-r--r-- .* hello\.c/);
    assert.match(listed, /drwxr-xr-x .* src\//);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('GNU tar extracts what makeTar writes, byte for byte', () => {
  const archive = makeTar(files);
  assert.equal(archive.length % 512, 0);
  extractAndCompare(archive, '-xf');
});

test('GNU tar extracts the gzip of it', async () => {
  const packed = await gzip(makeTar(files));
  assert.equal(packed[0], 0x1f);
  assert.equal(packed[1], 0x8b);
  extractAndCompare(packed, '-xzf');
});

test('makeTar refuses what a tarball cannot hold, saying why', () => {
  assert.throws(() => makeTar([{ path: 'a.c', text: '' }, { path: './a.c', text: '' }]), /Two files are called "a.c"/);
  assert.throws(() => makeTar([{ path: '../x.c', text: '' }]), /goes up a folder/);
  assert.throws(() => makeTar([{ path: `${'y'.repeat(101)}`, text: '' }]), /too long/);
  assert.throws(() => cleanPath('/'), /needs a name/);
  assert.equal(cleanPath('/src//./main.c'), 'src/main.c');
});

function gnuTar(format) {
  const dir = scratch();
  try {
    for (const f of files) {
      mkdirSync(join(dir, 'in', f.path, '..'), { recursive: true });
      writeFileSync(join(dir, 'in', f.path), f.data || f.text);
    }
    execFileSync('tar', [`--format=${format}`, '-czf', join(dir, 'a.tgz'), '-C', join(dir, 'in'), '.']);
    return readFileSync(join(dir, 'a.tgz'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const format of ['gnu', 'pax', 'ustar']) {
  test(`readTar reads GNU tar's ${format} archives, long names included`, async () => {
    const read = await readTar(new Uint8Array(gnuTar(format)));
    const byPath = new Map(read.map((f) => [f.path, Buffer.from(f.data)]));
    assert.equal(read.length, files.length);
    for (const f of files) {
      assert.deepEqual(byPath.get(f.path), f.data ? Buffer.from(f.data) : Buffer.from(f.text, 'utf8'), f.path);
    }
  });
}

test('readTar refuses what is not a tarball', async () => {
  await assert.rejects(readTar(new Uint8Array(1024).fill(7)), /not a tarball/);
});

function streamOf(pieces) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const p of pieces) controller.enqueue(encoder.encode(p));
      controller.close();
    },
  });
}

async function collect(pieces) {
  const out = [];
  for await (const e of parseEventStream(streamOf(pieces))) out.push(e);
  return out;
}

test('parseEventStream follows the event-stream format however the bytes are split', async () => {
  const text = ': keep-alive\n\nevent: step\ndata: {"step":"compile"}\n\n' +
    'id: 7\r\nevent: log\r\ndata: first\r\ndata:second\r\n\r\n' +
    'data: no event name\r\r' +
    'event: ignored-without-data\n\n' +
    'event: status\ndata: {"status":"ready"}\n\n';
  const want = [
    { event: 'step', data: '{"step":"compile"}', id: null },
    { event: 'log', data: 'first\nsecond', id: '7' },
    { event: 'message', data: 'no event name', id: '7' },
    { event: 'status', data: '{"status":"ready"}', id: '7' },
  ];
  assert.deepEqual(await collect([text]), want);
  // Split at every position, a CRLF across two reads included.
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(await collect([text.slice(0, i), text.slice(i)]), want, `split at ${i}`);
  }
  assert.deepEqual(await collect([...text]), want, 'one character per read');
});

// Build logs as vivd wrote them for broken uploads of each language.
const logs = {
  c: '== compile\n$ clang --target=wasm32-wasi --sysroot=/usr -O2 -c hello.c -o ../obj/0.o -I. -Iinclude -I/vivarium/sdk/c\n' +
    'hello.c:5:13: error: expected \';\' after expression\n        printf("x")\n                   ^\n                   ;\n' +
    'hello.c:6:9: error: use of undeclared identifier \'undefined_thing\'\n        return undefined_thing;\n               ^\n' +
    'src/util.c:2:5: warning: unused variable \'y\' [-Wunused-variable]\n2 errors generated.\n[exit status 1, 218 ms]\n',
  rust: '$ /usr/bin/cargo build --release --offline --target wasm32-wasi\n   Compiling rust-hello v0.1.0 (/build/src)\n' +
    'error[E0277]: the trait bound `String: From<{integer}>` is not satisfied\n   --> src/lib.rs:4:20\n    |\n' +
    '4   |     Response::text(42)\n    |     -------------- ^^ the trait `From<{integer}>` is not implemented for `String`\n' +
    'note: required by a bound in `Response::text`\n   --> /vivarium/sdk/rust/src/lib.rs:401:28\n' +
    'warning: unused variable: `x`\n --> /build/src/src/main.rs:2:9\n' +
    'error: could not compile `rust-hello` due to previous error\n',
  assemblyscript: 'ERROR TS2304: Cannot find name \'nope\'.\n   :\n 4 │ return Response.text(nope);\n   │                      ~~~~\n' +
    '   └─ in assembly/index.ts(4,24)\n\nWARNING AS235: Only variables, functions and enums become WebAssembly module exports.\n' +
    '   └─ in ~lib/rt/index.ts(1,1)\n\nFAILURE 1 compile error(s)\n',
  wat: '$ wat2wasm app.wat -o ../out/app.wasm\napp.wat:3:6: error: type mismatch in i32.add, expected [i32, i32] but got [i32]\n' +
    '    (i32.add (i32.const 1))\n     ^^^^^^^\napp.wat:3:6: error: type mismatch in i32.add, expected [i32, i32] but got [i32]\n',
};

test('parseDiagnostics finds each compiler message with its file and line', () => {
  assert.deepEqual(parseDiagnostics(logs.c), [
    { file: 'hello.c', line: 5, column: 13, severity: 'error', message: 'expected \';\' after expression' },
    { file: 'hello.c', line: 6, column: 9, severity: 'error', message: 'use of undeclared identifier \'undefined_thing\'' },
    { file: 'src/util.c', line: 2, column: 5, severity: 'warning', message: 'unused variable \'y\' [-Wunused-variable]' },
  ]);
  assert.deepEqual(parseDiagnostics(logs.rust), [
    { file: 'src/lib.rs', line: 4, column: 20, severity: 'error', message: '[E0277] the trait bound `String: From<{integer}>` is not satisfied' },
    { file: 'src/main.rs', line: 2, column: 9, severity: 'warning', message: 'unused variable: `x`' },
  ]);
  assert.deepEqual(parseDiagnostics(logs.assemblyscript), [
    { file: 'assembly/index.ts', line: 4, column: 24, severity: 'error', message: 'TS2304: Cannot find name \'nope\'.' },
  ]);
  assert.deepEqual(parseDiagnostics(logs.wat), [
    { file: 'app.wat', line: 3, column: 6, severity: 'error', message: 'type mismatch in i32.add, expected [i32, i32] but got [i32]' },
  ]);
  assert.deepEqual(parseDiagnostics('== compile\nall good\n'), []);
});

test('uploadPath keeps the upload\'s own files only', () => {
  assert.equal(uploadPath('/build/tenant/src/a.c'), 'src/a.c');
  assert.equal(uploadPath('./a.c'), 'a.c');
  assert.equal(uploadPath('/vivarium/sdk/c/vivarium.h'), null);
  assert.equal(uploadPath('~lib/rt.ts'), null);
  assert.equal(uploadPath('../x.c'), null);
});
