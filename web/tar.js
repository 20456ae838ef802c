// Tarballs in the browser: a ustar writer for deploying the editor's files or
// a dropped folder, a reader for opening an uploaded tarball's sources in the
// editor, and gzip through the Compression Streams API where there is one.

const BLOCK = 512;
const encoder = new TextEncoder();

// A path as the API will see it: relative, '/'-separated, no empty, '.' or
// '..' parts. Returns the cleaned path or throws an Error saying what to fix.
export function cleanPath(path) {
  const parts = String(path).replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new Error('A file needs a name, such as "src/main.c".');
  if (parts.includes('..')) throw new Error(`"${path}" goes up a folder with ".."; use a path inside the app.`);
  if (parts.some((p) => /[\x00-\x1f\x7f]/.test(p))) {
    throw new Error(`"${path}" has a control character in it; use letters, digits, '.', '_' and '-'.`);
  }
  return parts.join('/');
}

function writeString(block, offset, length, text) {
  const bytes = typeof text === 'string' ? encoder.encode(text) : text;
  if (bytes.length > length) throw new Error(`"${text}" does not fit in a tar header field`);
  block.set(bytes, offset);
}

// An octal number of length-1 digits and a NUL, as ustar stores numbers.
function writeOctal(block, offset, length, value) {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`${value} is too large for a tar header`);
  writeString(block, offset, length, digits.padStart(length - 1, '0') + '\0');
}

// Splits a UTF-8 path into ustar's name (100 bytes) and prefix (155 bytes)
// at a '/', or throws when no split fits.
function splitName(path) {
  const bytes = encoder.encode(path);
  if (bytes.length <= 100) return { name: bytes, prefix: new Uint8Array(0) };
  for (let i = Math.min(bytes.length - 1, 155); i > 0; i--) {
    if (bytes[i] === 0x2f && bytes.length - i - 1 <= 100 && bytes.length - i - 1 > 0) {
      return { name: bytes.subarray(i + 1), prefix: bytes.subarray(0, i) };
    }
  }
  throw new Error(`The path "${path}" is too long for a tarball (at most 100 bytes after the last folder, 255 in all); shorten it.`);
}

function header(path, size, type, mtime) {
  const block = new Uint8Array(BLOCK);
  const { name, prefix } = splitName(path);
  block.set(name, 0);
  writeOctal(block, 100, 8, type === '5' ? 0o755 : 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, mtime);
  block.fill(0x20, 148, 156); // the checksum counts itself as spaces
  block[156] = type.charCodeAt(0);
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  block.set(prefix, 345);
  let sum = 0;
  for (const b of block) sum += b;
  writeString(block, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return block;
}

function fileBytes(file) {
  if (file.data instanceof Uint8Array) return file.data;
  return encoder.encode(file.text ?? '');
}

// A ustar archive of files ([{path, text} or {path, data: Uint8Array}]), with
// an entry for each folder before its first file, as a Uint8Array.
export function makeTar(files, mtime = Math.floor(Date.now() / 1000)) {
  const chunks = [];
  const folders = new Set();
  const seen = new Set();
  for (const file of files) {
    const path = cleanPath(file.path);
    if (seen.has(path)) throw new Error(`Two files are called "${path}"; rename one.`);
    seen.add(path);
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/') + '/';
      if (!folders.has(folder)) {
        folders.add(folder);
        chunks.push(header(folder, 0, '5', mtime));
      }
    }
    const data = fileBytes(file);
    chunks.push(header(path, data.length, '0', mtime));
    chunks.push(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) chunks.push(new Uint8Array(pad));
  }
  chunks.push(new Uint8Array(2 * BLOCK));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function throughStream(bytes, stream) {
  const piped = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(piped).arrayBuffer());
}

// gzip of bytes, or null where the browser has no CompressionStream.
export async function gzip(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  return throughStream(bytes, new CompressionStream('gzip'));
}

export function isGzip(bytes) {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function readString(bytes, offset, length) {
  let end = offset;
  while (end < offset + length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(offset, end));
}

function readOctal(bytes, offset, length) {
  const text = readString(bytes, offset, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

// The regular files of a tar or tar.gz archive, as [{path, data}]. Reads
// ustar, pax 'path' records and GNU long names; throws on anything that is
// not a tarball.
export async function readTar(input) {
  let bytes = input;
  if (isGzip(bytes)) {
    if (typeof DecompressionStream !== 'function') throw new Error('This browser cannot read .tar.gz files.');
    bytes = await throughStream(bytes, new DecompressionStream('gzip'));
  }
  const files = [];
  let longName = null;
  for (let at = 0; at + BLOCK <= bytes.length;) {
    const block = bytes.subarray(at, at + BLOCK);
    if (block.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
    if (sum !== readOctal(block, 148, 8)) throw new Error('This is not a tarball (a header checksum is wrong).');
    const size = readOctal(block, 124, 12);
    const type = String.fromCharCode(block[156] || 0x30);
    const data = bytes.subarray(at + BLOCK, at + BLOCK + size);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = readString(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      const record = /\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(data));
      if (record) longName = record[1];
      continue;
    }
    let path = readString(block, 0, 100);
    const prefix = readString(block, 345, 155);
    if (prefix && readString(block, 257, 6) === 'ustar') path = `${prefix}/${path}`;
    if (longName !== null) path = longName;
    longName = null;
    if (type === '0' || type === '7') {
      try {
        files.push({ path: cleanPath(path), data: data.slice() });
      } catch {
        // A path the server would refuse anyway is not worth showing.
      }
    }
  }
  return files;
}
