//! The raw Terrarium host calls (GUEST-ABI.md, section 1), imported from
//! module `env`. Pointers, `usize` and `bool` are i32 on wasm32, `u64` is
//! i64. Everything in this module is `unsafe` and works on handles and guest
//! memory directly; the rest of the crate wraps it safely.
//!
//! Calls the ABI types as `bool` return an i32 here, nonzero for true, so
//! that no value from the host can make an invalid Rust `bool`.
//!
//! Memory the host returns through `*_p` out-pointers comes from the
//! allocator registered with [`hostcall_init_mm`]; the crate registers its
//! own ([`init_mm`]) before the handler runs. [`take_bytes`] and
//! [`take_slices`] copy such memory and free it; [`free_host_memory`] frees
//! it.

use std::os::raw::c_void;

/// The request being served.
pub const REQUEST_INCOMING: i32 = 0;
/// The response being built.
pub const RESPONSE_OUTGOING: i32 = 0;
/// What handle-returning calls return when they fail.
pub const ERROR: i32 = -1;
/// What `hostcall_pending_req_poll` returns while a response is not there yet.
pub const NOT_READY: i32 = -2;
/// `HostcallStatus` ok; 1 is invalid.
pub const STATUS_OK: i32 = 0;

/// A `GuestSlice`: 8 bytes on wasm32.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GuestSlice {
    pub ptr: *const u8,
    pub len: usize,
}

/// The signature of the allocator the host calls: `[i32] -> [i32]`.
pub type MallocFn = extern "C" fn(size: usize) -> *mut c_void;
/// The signature of the matching free: `[i32] -> []`.
pub type FreeFn = extern "C" fn(ptr: *mut c_void);

#[link(wasm_import_module = "env")]
extern "C" {
    pub fn hostcall_init_mm(malloc: MallocFn, free: FreeFn);

    pub fn hostcall_req_get_method(ptr_p: *mut *mut u8, len_p: *mut usize, req: i32);
    pub fn hostcall_req_get_path(ptr_p: *mut *mut u8, len_p: *mut usize, req: i32);
    pub fn hostcall_req_get_body(ptr_p: *mut *mut u8, len_p: *mut usize, req: i32);
    pub fn hostcall_req_get_headers(slices_p: *mut *mut GuestSlice, len_p: *mut usize, req: i32);
    pub fn hostcall_req_get_header(
        slices_p: *mut *mut GuestSlice,
        len_p: *mut usize,
        req: i32,
        name: *const u8,
        name_len: usize,
    );

    pub fn hostcall_req_create(
        method: *const u8,
        method_len: usize,
        url: *const u8,
        url_len: usize,
    ) -> i32;
    pub fn hostcall_req_set_header(
        req: i32,
        name: *const u8,
        name_len: usize,
        values: *const GuestSlice,
        n: usize,
    ) -> i32;
    pub fn hostcall_req_set_body(req: i32, body: *const u8, len: usize) -> i32;
    pub fn hostcall_req_send(req: i32) -> i32;
    pub fn hostcall_req_send_async(req: i32) -> i32;
    pub fn hostcall_pending_req_wait(pending: i32) -> i32;
    pub fn hostcall_pending_req_poll(pending: i32) -> i32;
    pub fn hostcall_pending_req_select(
        pendings: *const i32,
        n: usize,
        pending_out: *mut i32,
    ) -> i32;

    pub fn hostcall_resp_get_headers(slices_p: *mut *mut GuestSlice, len_p: *mut usize, resp: i32);
    pub fn hostcall_resp_get_header(
        slices_p: *mut *mut GuestSlice,
        len_p: *mut usize,
        resp: i32,
        name: *const u8,
        name_len: usize,
    );
    pub fn hostcall_resp_get_body(ptr_p: *mut *mut u8, len_p: *mut usize, resp: i32);
    pub fn hostcall_resp_get_response_code(resp: i32) -> u32;
    pub fn hostcall_resp_set_header(
        resp: i32,
        name: *const u8,
        name_len: usize,
        values: *const GuestSlice,
        n: usize,
    ) -> i32;
    pub fn hostcall_resp_set_body(resp: i32, body: *const u8, len: usize) -> i32;
    pub fn hostcall_resp_set_response_code(resp: i32, code: u32) -> i32;

    pub fn hostcall_kvstore_insert(k: *const u8, kl: usize, v: *const u8, vl: usize) -> i32;
    pub fn hostcall_kvstore_upsert(k: *const u8, kl: usize, v: *const u8, vl: usize) -> i32;
    pub fn hostcall_kvstore_append(k: *const u8, kl: usize, v: *const u8, vl: usize) -> i32;
    pub fn hostcall_kvstore_get(
        v_p: *mut *mut u8,
        vl_p: *mut usize,
        k: *const u8,
        kl: usize,
    ) -> i32;
    pub fn hostcall_kvstore_remove(k: *const u8, kl: usize) -> i32;

    pub fn hostcall_rng_next_u64() -> u64;
    pub fn hostcall_time_now(subsec_nanos_p: *mut u32) -> u64;
    pub fn hostcall_dns_query_raw(
        resp_p: *mut *mut u8,
        len_p: *mut usize,
        query: *const u8,
        query_len: usize,
    ) -> i32;
    pub fn hostcall_dns_query_ip(
        slices_p: *mut *mut GuestSlice,
        len_p: *mut usize,
        name: *const u8,
        name_len: usize,
        ipv6: bool,
    ) -> i32;

    pub fn hostcall_debug(msg: *const u8, len: usize);
    pub fn hostcall_panic_hook(msg: *const u8, len: usize);

    pub fn hostcall_config_get(v_p: *mut *mut u8, vl_p: *mut usize, k: *const u8, kl: usize)
        -> i32;
}

// wasi-libc's allocator, which Rust's standard library on wasm32-wasi uses
// too.
extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

// The allocator the crate registers with the host: wasi-libc's, through
// shims with the exact types the host calls, [i32] -> [i32] and [i32] -> [].
extern "C" fn guest_malloc(size: usize) -> *mut c_void {
    unsafe { malloc(size) }
}

extern "C" fn guest_free(ptr: *mut c_void) {
    unsafe { free(ptr) }
}

/// Frees memory the host handed back.
///
/// # Safety
/// `ptr` is NULL or a block the host placed through the registered
/// allocator, not freed yet.
pub unsafe fn free_host_memory(ptr: *mut c_void) {
    free(ptr)
}

/// Registers the crate's malloc and free shims with the host: in wasm a
/// function pointer is an index into the module's function table, which is
/// what the host keeps. The handler macro calls it before the handler runs.
pub fn init_mm() {
    unsafe { hostcall_init_mm(guest_malloc, guest_free) }
}

/// Copies `len` bytes the host placed at `ptr` and frees them.
///
/// # Safety
/// `ptr` is NULL or a block from the registered allocator holding `len`
/// bytes.
pub unsafe fn take_bytes(ptr: *mut u8, len: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    let bytes = std::slice::from_raw_parts(ptr, len).to_vec();
    free(ptr as *mut c_void);
    bytes
}

/// Copies every slice of a host-allocated array, freeing each one and then
/// the array.
///
/// # Safety
/// `slices` is NULL or an array of `n` slices from the registered
/// allocator, each NULL or its own block.
pub unsafe fn take_slices(slices: *mut GuestSlice, n: usize) -> Vec<Vec<u8>> {
    if slices.is_null() {
        return Vec::new();
    }
    let out = std::slice::from_raw_parts(slices, n)
        .iter()
        .map(|s| take_bytes(s.ptr as *mut u8, s.len))
        .collect();
    free(slices as *mut c_void);
    out
}
