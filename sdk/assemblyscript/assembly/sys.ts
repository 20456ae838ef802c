// The raw Terrarium host calls (GUEST-ABI.md, section 1), imported from
// module "env". Pointers and sizes are usize (i32 on wasm32); calls the ABI
// types as bool return an i32 here, nonzero for true. Memory the host hands
// back through the `*_p` out-pointers comes from the allocator registered
// with hostcall_init_mm; free it with guestFree(). The rest of the package
// wraps these safely.

/** The request being served. */
export const REQUEST_INCOMING: i32 = 0;
/** The response being built. */
export const RESPONSE_OUTGOING: i32 = 0;
/** What handle-returning calls return when they fail. */
export const ERROR: i32 = -1;
/** What hostcall_pending_req_poll returns while a response is not there yet. */
export const NOT_READY: i32 = -2;
/** HostcallStatus ok; 1 is invalid. */
export const STATUS_OK: i32 = 0;

@external("env", "hostcall_init_mm")
export declare function hostcall_init_mm(malloc_idx: u32, free_idx: u32): void;

@external("env", "hostcall_req_get_method")
export declare function hostcall_req_get_method(ptr_p: usize, len_p: usize, req: i32): void;
@external("env", "hostcall_req_get_path")
export declare function hostcall_req_get_path(ptr_p: usize, len_p: usize, req: i32): void;
@external("env", "hostcall_req_get_body")
export declare function hostcall_req_get_body(ptr_p: usize, len_p: usize, req: i32): void;
@external("env", "hostcall_req_get_headers")
export declare function hostcall_req_get_headers(slices_p: usize, len_p: usize, req: i32): void;
@external("env", "hostcall_req_get_header")
export declare function hostcall_req_get_header(
  slices_p: usize, len_p: usize, req: i32, name: usize, name_len: usize): void;

@external("env", "hostcall_req_create")
export declare function hostcall_req_create(
  method: usize, method_len: usize, url: usize, url_len: usize): i32;
@external("env", "hostcall_req_set_header")
export declare function hostcall_req_set_header(
  req: i32, name: usize, name_len: usize, values: usize, n: usize): i32;
@external("env", "hostcall_req_set_body")
export declare function hostcall_req_set_body(req: i32, body: usize, len: usize): i32;
@external("env", "hostcall_req_send")
export declare function hostcall_req_send(req: i32): i32;
@external("env", "hostcall_req_send_async")
export declare function hostcall_req_send_async(req: i32): i32;
@external("env", "hostcall_pending_req_wait")
export declare function hostcall_pending_req_wait(pending: i32): i32;
@external("env", "hostcall_pending_req_poll")
export declare function hostcall_pending_req_poll(pending: i32): i32;
@external("env", "hostcall_pending_req_select")
export declare function hostcall_pending_req_select(
  pendings: usize, n: usize, pending_out: usize): i32;

@external("env", "hostcall_resp_get_headers")
export declare function hostcall_resp_get_headers(slices_p: usize, len_p: usize, resp: i32): void;
@external("env", "hostcall_resp_get_header")
export declare function hostcall_resp_get_header(
  slices_p: usize, len_p: usize, resp: i32, name: usize, name_len: usize): void;
@external("env", "hostcall_resp_get_body")
export declare function hostcall_resp_get_body(ptr_p: usize, len_p: usize, resp: i32): void;
@external("env", "hostcall_resp_get_response_code")
export declare function hostcall_resp_get_response_code(resp: i32): u32;
@external("env", "hostcall_resp_set_header")
export declare function hostcall_resp_set_header(
  resp: i32, name: usize, name_len: usize, values: usize, n: usize): i32;
@external("env", "hostcall_resp_set_body")
export declare function hostcall_resp_set_body(resp: i32, body: usize, len: usize): i32;
@external("env", "hostcall_resp_set_response_code")
export declare function hostcall_resp_set_response_code(resp: i32, code: u32): i32;

@external("env", "hostcall_kvstore_insert")
export declare function hostcall_kvstore_insert(k: usize, kl: usize, v: usize, vl: usize): i32;
@external("env", "hostcall_kvstore_upsert")
export declare function hostcall_kvstore_upsert(k: usize, kl: usize, v: usize, vl: usize): i32;
@external("env", "hostcall_kvstore_append")
export declare function hostcall_kvstore_append(k: usize, kl: usize, v: usize, vl: usize): i32;
@external("env", "hostcall_kvstore_get")
export declare function hostcall_kvstore_get(v_p: usize, vl_p: usize, k: usize, kl: usize): i32;
@external("env", "hostcall_kvstore_remove")
export declare function hostcall_kvstore_remove(k: usize, kl: usize): i32;

@external("env", "hostcall_rng_next_u64")
export declare function hostcall_rng_next_u64(): u64;
@external("env", "hostcall_time_now")
export declare function hostcall_time_now(subsec_nanos_p: usize): u64;
@external("env", "hostcall_dns_query_raw")
export declare function hostcall_dns_query_raw(
  resp_p: usize, len_p: usize, query: usize, query_len: usize): i32;
@external("env", "hostcall_dns_query_ip")
export declare function hostcall_dns_query_ip(
  slices_p: usize, len_p: usize, name: usize, name_len: usize, ipv6: bool): i32;

@external("env", "hostcall_debug")
export declare function hostcall_debug(msg: usize, len: usize): void;
@external("env", "hostcall_panic_hook")
export declare function hostcall_panic_hook(msg: usize, len: usize): void;

@external("env", "hostcall_config_get")
export declare function hostcall_config_get(v_p: usize, vl_p: usize, k: usize, kl: usize): i32;

// The allocator the host calls through the module's function table,
// [i32] -> [i32] and [i32] -> []: unmanaged blocks from the AssemblyScript
// heap, which the garbage collector never touches.
function hostMalloc(size: usize): usize {
  return heap.alloc(size);
}

function hostFree(ptr: usize): void {
  if (ptr != 0) heap.free(ptr);
}

// The package calls both the way the host does, through the table, with a
// function reference kept in linear memory. The optimizer cannot see the
// host's calls: it takes a function that is only in the table, with no
// call_indirect that could reach it, for one nobody calls, and asc -O3 then
// turns its body into `unreachable`. A reference loaded from memory could be
// any table entry of its type, so both stay as written.
const ALLOCATOR: usize = memory.data(8);

type MallocFn = (size: usize) => usize;
type FreeFn = (ptr: usize) => void;

function setAllocator(): void {
  store<usize>(ALLOCATOR, changetype<usize>(hostMalloc));
  store<usize>(ALLOCATOR + 4, changetype<usize>(hostFree));
}

/** Allocates size bytes outside the garbage-collected heap; 0 on failure. */
export function guestMalloc(size: usize): usize {
  if (load<usize>(ALLOCATOR) == 0) setAllocator();
  return changetype<MallocFn>(load<usize>(ALLOCATOR))(size);
}

/** Frees what guestMalloc returned, and memory the host handed back. */
export function guestFree(ptr: usize): void {
  if (load<usize>(ALLOCATOR + 4) == 0) setAllocator();
  changetype<FreeFn>(load<usize>(ALLOCATOR + 4))(ptr);
}

/**
 * Registers the package's allocator with the host. A function reference in
 * AssemblyScript is a Function object whose `index` is the function's slot
 * in the module's table, which is what the host keeps. `serve` calls this
 * before the handler runs.
 */
export function initMemory(): void {
  setAllocator();
  hostcall_init_mm(hostMalloc.index, hostFree.index);
}
