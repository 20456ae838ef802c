// Runs a WASI command module under node's own WASI (preview 1), for
// bench_kernels: the same optimized .wasm that Vivarium's pipeline compiled
// ahead of time, so that V8 and Vivarium run identical code.
//
//   node bench/run-wasi.mjs MODULE.wasm [ARGS...]
//
// The module gets no files, no environment but what is passed, and
// stdin/stdout/stderr of this process; its exit code becomes ours.
import { readFile } from 'node:fs/promises';
import { argv, exit } from 'node:process';
import { WASI } from 'node:wasi';

const path = argv[2];
if (!path) {
  console.error('usage: node run-wasi.mjs MODULE.wasm [ARGS...]');
  exit(2);
}

const wasi = new WASI({
  version: 'preview1',
  args: [path, ...argv.slice(3)],
  env: {},
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
