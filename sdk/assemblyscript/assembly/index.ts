// Write Vivarium apps in AssemblyScript.
//
// An app exports `run` and serves the request with one handler, a function
// from Request to Response. Vivarium calls run once per request, each time
// in a fresh instance:
//
//     import { Request, Response, serve } from "vivarium";
//
//     function hello(req: Request): Response {
//       return Response.text("Hello, world!\n");
//     }
//
//     export function run(): void {
//       serve(hello);
//     }
//
// Beyond requests and responses the package gives the app its key-value
// store (kv), its configuration (config), its log (log) and outbound HTTP
// (Request.send, fetch). AssemblyScript has no exceptions, so whatever can
// fail returns null. "vivarium/assembly/sys" has the raw host calls.

import * as sys from "./sys";

export { sys };

// Two out-parameter slots (a pointer and a length) for host calls. Calls
// never overlap, and the host's calls back into the allocator do not touch
// them.
const OUT_PTR: usize = memory.data(8);
const OUT_LEN: usize = OUT_PTR + 4;

function clearOut(): void {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
}

/** A copy of len bytes the host placed at ptr; frees them. */
function takeBytes(ptr: usize, len: usize): ArrayBuffer {
  const buf = new ArrayBuffer(<i32>len);
  if (ptr != 0) {
    memory.copy(changetype<usize>(buf), ptr, len);
    sys.guestFree(ptr);
  }
  return buf;
}

/** The UTF-8 text the host placed at ptr; frees it. */
function takeString(ptr: usize, len: usize): string {
  if (ptr == 0) return "";
  const s = String.UTF8.decodeUnsafe(ptr, len);
  sys.guestFree(ptr);
  return s;
}

/** The text a host call placed in the out slots; frees it. */
function outString(): string {
  return takeString(<usize>load<u32>(OUT_PTR), <usize>load<u32>(OUT_LEN));
}

/** A copy of the bytes a host call placed in the out slots; frees them. */
function outBytes(): ArrayBuffer {
  return takeBytes(<usize>load<u32>(OUT_PTR), <usize>load<u32>(OUT_LEN));
}

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

function ptrOf(buf: ArrayBuffer): usize {
  return changetype<usize>(buf);
}

/** One header value; a header sent several times appears once per value. */
export class Header {
  constructor(public name: string, public value: string) {}
}

function findHeader(headers: Header[], name: string): string | null {
  const want = name.toLowerCase();
  for (let i = 0; i < headers.length; i++) {
    if (headers[i].name.toLowerCase() == want) return headers[i].value;
  }
  return null;
}

/** Every header of a request (incoming) or response handle, one per value. */
function readHeaders(handle: i32, isRequest: bool): Header[] {
  const headers = new Array<Header>();
  clearOut();
  if (isRequest) sys.hostcall_req_get_headers(OUT_PTR, OUT_LEN, handle);
  else sys.hostcall_resp_get_headers(OUT_PTR, OUT_LEN, handle);
  const names = <usize>load<u32>(OUT_PTR);
  const n = <usize>load<u32>(OUT_LEN);
  if (names == 0) return headers;
  for (let i: usize = 0; i < n; i++) {
    const namePtr = <usize>load<u32>(names + 8 * i);
    const nameLen = <usize>load<u32>(names + 8 * i + 4);
    clearOut();
    if (isRequest) sys.hostcall_req_get_header(OUT_PTR, OUT_LEN, handle, namePtr, nameLen);
    else sys.hostcall_resp_get_header(OUT_PTR, OUT_LEN, handle, namePtr, nameLen);
    const values = <usize>load<u32>(OUT_PTR);
    const nValues = <usize>load<u32>(OUT_LEN);
    const name = takeString(namePtr, nameLen);
    if (values == 0) continue;
    for (let j: usize = 0; j < nValues; j++) {
      const v = takeString(<usize>load<u32>(values + 8 * j), <usize>load<u32>(values + 8 * j + 4));
      headers.push(new Header(name, v));
    }
    sys.guestFree(values);
  }
  sys.guestFree(names);
  return headers;
}

/**
 * Sets every header on a handle, the values of one name (compared without
 * case) together. False when the host refused one.
 */
function writeHeaders(handle: i32, headers: Header[], isRequest: bool): bool {
  let ok = true;
  for (let i = 0; i < headers.length; i++) {
    const lower = headers[i].name.toLowerCase();
    let seen = false;
    for (let k = 0; k < i && !seen; k++) seen = headers[k].name.toLowerCase() == lower;
    if (seen) continue;
    const keep = new Array<ArrayBuffer>();
    for (let k = i; k < headers.length; k++) {
      if (headers[k].name.toLowerCase() == lower) keep.push(utf8(headers[k].value));
    }
    const slices = sys.guestMalloc(8 * <usize>keep.length);
    if (slices == 0) return false;
    for (let k = 0; k < keep.length; k++) {
      store<u32>(slices + 8 * k, <u32>ptrOf(keep[k]));
      store<u32>(slices + 8 * k + 4, <u32>keep[k].byteLength);
    }
    const name = utf8(headers[i].name);
    const status = isRequest
      ? sys.hostcall_req_set_header(handle, ptrOf(name), name.byteLength, slices, keep.length)
      : sys.hostcall_resp_set_header(handle, ptrOf(name), name.byteLength, slices, keep.length);
    sys.guestFree(slices);
    if (status != sys.STATUS_OK) ok = false;
  }
  return ok;
}

/** An HTTP request: the one being served, or one to send elsewhere. */
export class Request {
  headers: Header[] = new Array<Header>();
  body: ArrayBuffer = new ArrayBuffer(0);

  /** A request to send: method to an absolute url. */
  constructor(public method: string, public url: string) {}

  /** A GET request to send to url. */
  static get(url: string): Request {
    return new Request("GET", url);
  }

  /** The request being served, read from the host. */
  static incoming(): Request {
    const h = sys.REQUEST_INCOMING;
    clearOut();
    sys.hostcall_req_get_method(OUT_PTR, OUT_LEN, h);
    const method = outString();
    clearOut();
    sys.hostcall_req_get_path(OUT_PTR, OUT_LEN, h);
    const path = outString();
    const req = new Request(method, path);
    req.headers = readHeaders(h, true);
    clearOut();
    sys.hostcall_req_get_body(OUT_PTR, OUT_LEN, h);
    req.body = outBytes();
    return req;
  }

  /** Adds a header value (a name may have several). */
  withHeader(name: string, value: string): Request {
    this.headers.push(new Header(name, value));
    return this;
  }

  /** Sets the body. */
  withBody(body: ArrayBuffer): Request {
    this.body = body;
    return this;
  }

  /** Sets the body to UTF-8 text. */
  withText(text: string): Request {
    this.body = utf8(text);
    return this;
  }

  /** The path of the request being served, "/a/b", still percent-encoded. */
  get path(): string {
    const q = this.url.indexOf("?");
    return q < 0 ? this.url : this.url.substring(0, q);
  }

  /** The query string after the "?", "x=1", or "". */
  get query(): string {
    const q = this.url.indexOf("?");
    return q < 0 ? "" : this.url.substring(q + 1);
  }

  /** The first value of the header called name (in any case), or null. */
  header(name: string): string | null {
    return findHeader(this.headers, name);
  }

  /** The body as UTF-8 text. */
  text(): string {
    return String.UTF8.decode(this.body);
  }

  /** The host handle of a new outbound request like this one, or -1. */
  private create(): i32 {
    const m = utf8(this.method);
    const u = utf8(this.url);
    const req = sys.hostcall_req_create(ptrOf(m), m.byteLength, ptrOf(u), u.byteLength);
    if (req < 0) return sys.ERROR;
    if (!writeHeaders(req, this.headers, true)) return sys.ERROR;
    if (sys.hostcall_req_set_body(req, ptrOf(this.body), this.body.byteLength) != sys.STATUS_OK) {
      return sys.ERROR;
    }
    return req;
  }

  /**
   * Sends the request and waits for the response; null when it failed: the
   * app's manifest does not allow the URL's origin in "outbound", or the
   * server is unreachable or too slow.
   */
  send(): Response | null {
    const req = this.create();
    if (req < 0) return null;
    return Response.fromHandle(sys.hostcall_req_send(req));
  }

  /**
   * Starts sending the request and returns at once (several can be under
   * way together); null when it could not start.
   */
  sendAsync(): Pending | null {
    const req = this.create();
    if (req < 0) return null;
    const handle = sys.hostcall_req_send_async(req);
    if (handle < 0) return null;
    return new Pending(handle);
  }
}

/** Sends request and waits for its response; see Request.send. */
export function fetch(request: Request): Response | null {
  return request.send();
}

/** An outbound request under way, from Request.sendAsync. */
export class Pending {
  /** Set once poll has seen the request finish, with a response or not. */
  done: bool = false;

  constructor(public handle: i32) {}

  /** Waits for the response; null when the request failed. */
  wait(): Response | null {
    this.done = true;
    return Response.fromHandle(sys.hostcall_pending_req_wait(this.handle));
  }

  /**
   * The response if it has come; null while the request is under way, and
   * null with done set when it failed.
   */
  poll(): Response | null {
    const resp = sys.hostcall_pending_req_poll(this.handle);
    if (resp == sys.NOT_READY) return null;
    this.done = true;
    return Response.fromHandle(resp);
  }
}

/** An HTTP response: the one the handler returns, or one from another server. */
export class Response {
  status: u16 = 200;
  headers: Header[] = new Array<Header>();
  body: ArrayBuffer = new ArrayBuffer(0);

  /** 200 with a text/plain body. */
  static text(body: string): Response {
    return new Response().withHeader("Content-Type", "text/plain").withText(body);
  }

  /** 200 with a text/html body. */
  static html(body: string): Response {
    return new Response().withHeader("Content-Type", "text/html").withText(body);
  }

  /** Sets the status code (100 to 599). */
  withStatus(status: u16): Response {
    this.status = status;
    return this;
  }

  /** Adds a header value (a name may have several). */
  withHeader(name: string, value: string): Response {
    this.headers.push(new Header(name, value));
    return this;
  }

  /** Sets the body. */
  withBody(body: ArrayBuffer): Response {
    this.body = body;
    return this;
  }

  /** Sets the body to UTF-8 text. */
  withText(text: string): Response {
    this.body = utf8(text);
    return this;
  }

  /** The first value of the header called name (in any case), or null. */
  header(name: string): string | null {
    return findHeader(this.headers, name);
  }

  /** The body as UTF-8 text. */
  text(): string {
    return String.UTF8.decode(this.body);
  }

  /** Reads a response handle from the host; null for a failed one. */
  static fromHandle(handle: i32): Response | null {
    if (handle < 0) return null;
    const resp = new Response();
    resp.status = <u16>sys.hostcall_resp_get_response_code(handle);
    resp.headers = readHeaders(handle, false);
    clearOut();
    sys.hostcall_resp_get_body(OUT_PTR, OUT_LEN, handle);
    resp.body = outBytes();
    return resp;
  }

  /** Makes this the response to the request being served. */
  sendOutgoing(): void {
    const h = sys.RESPONSE_OUTGOING;
    let ok = sys.hostcall_resp_set_response_code(h, this.status) == sys.STATUS_OK;
    if (!writeHeaders(h, this.headers, false)) ok = false;
    const body = this.body;
    if (sys.hostcall_resp_set_body(h, ptrOf(body), body.byteLength) != sys.STATUS_OK) ok = false;
    if (!ok) log("the host refused part of the response (status " + this.status.toString() + ")");
  }
}

/**
 * Serves the request being handled: registers the allocator with the host,
 * reads the request, calls handler and sends the response it returns. Call
 * it from the `run` function the app exports.
 */
export function serve(handler: (req: Request) => Response): void {
  sys.initMemory();
  handler(Request.incoming()).sendOutgoing();
}

/**
 * The app's key-value store: keys and values are bytes (here keys are
 * text), kept across requests, deploys and restarts, visible to no other
 * app. The bool results come from the host, which also answers false when
 * a call fails (a value over 1 MiB, for one).
 */
export namespace kv {
  /** The value of key, or null when it is absent. */
  export function getBytes(key: string): ArrayBuffer | null {
    const k = utf8(key);
    clearOut();
    const found = sys.hostcall_kvstore_get(OUT_PTR, OUT_LEN, ptrOf(k), k.byteLength);
    const value = outBytes();
    return found != 0 ? value : null;
  }

  /** The value of key as UTF-8 text, or null when it is absent. */
  export function get(key: string): string | null {
    const value = getBytes(key);
    return value ? String.UTF8.decode(value) : null;
  }

  /** Sets key to value, replacing it: true if the key was new. */
  export function setBytes(key: string, value: ArrayBuffer): bool {
    const k = utf8(key);
    return sys.hostcall_kvstore_insert(ptrOf(k), k.byteLength, ptrOf(value), value.byteLength) != 0;
  }

  /** Sets key to UTF-8 text, replacing it: true if the key was new. */
  export function set(key: string, value: string): bool {
    return setBytes(key, utf8(value));
  }

  /** Sets key only if it is absent, else leaves it as it is: true if it did. */
  export function setIfAbsent(key: string, value: string): bool {
    const k = utf8(key);
    const v = utf8(value);
    return sys.hostcall_kvstore_upsert(ptrOf(k), k.byteLength, ptrOf(v), v.byteLength) != 0;
  }

  /** Appends value to the value of key, creating it: true if it was new. */
  export function append(key: string, value: string): bool {
    const k = utf8(key);
    const v = utf8(value);
    return sys.hostcall_kvstore_append(ptrOf(k), k.byteLength, ptrOf(v), v.byteLength) != 0;
  }

  /** Removes key: true if it existed. */
  export function remove(key: string): bool {
    const k = utf8(key);
    return sys.hostcall_kvstore_remove(ptrOf(k), k.byteLength) != 0;
  }
}

/**
 * The app's configuration value called key: the manifest's "env", or a
 * value set through the API (which wins). Null when it is unset.
 */
export function config(key: string): string | null {
  const k = utf8(key);
  clearOut();
  const found = sys.hostcall_config_get(OUT_PTR, OUT_LEN, ptrOf(k), k.byteLength);
  const value = outString();
  return found != 0 ? value : null;
}

/** Writes one line to the app's log (viv logs APP). */
export function log(message: string): void {
  const m = utf8(message);
  sys.hostcall_debug(ptrOf(m), m.byteLength);
}

/** 64 bits from the host's cryptographically secure generator. */
export function randomU64(): u64 {
  return sys.hostcall_rng_next_u64();
}

/**
 * Reports a failed assertion or a runtime error to the app's log and ends
 * the request with a 500. Vivarium's own builds route abort to the app's
 * log already; a module built elsewhere with plain asc imports `env.abort`,
 * which Vivarium does not provide, unless it is built with
 * `--use abort=~lib/vivarium/assembly/index/abort`.
 */
export function abort(
  message: string | null, fileName: string | null, line: u32, column: u32): void {
  const text = "abort: " + (message !== null ? message : "") + " at " +
    (fileName !== null ? fileName : "?") + ":" + line.toString() + ":" + column.toString();
  const m = utf8(text);
  sys.hostcall_panic_hook(ptrOf(m), m.byteLength);
  unreachable();
}
