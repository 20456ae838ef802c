/* Private to the runner: the Terrarium host-call mode (GUEST-ABI.md section
 * 1), in these files:
 *   hostcall_mode.c     the mode's operations; the calls' state on an
 *                       instance, their prologue, the guest's allocator,
 *                       how results are placed in guest memory, waiting
 *   hostcall_handles.c  the tables behind request, response and pending
 *                       handles, and what is in flight for them
 *   hostcall.c          the calls on requests, responses, headers, bodies
 *   hostcall_send.c     sending requests and waiting for their responses
 *   hostcall_app.c      KV, configuration, time, randomness, logs, panics
 *   hostcall_dns.c      DNS lookups
 *
 * The guest's allocator is guest code running in the middle of a host call:
 * it may trap (which longjmps out of the host call), grow its memory, or
 * call the host again. So a result is copied into the state's scratch
 * buffer before the allocator first runs and placed from there; the host
 * holds no other pointer, lock or allocation across the call, and re-reads
 * guest memory only through run_mem() afterwards. Host calls made from the
 * allocator are refused (HC_BEGIN()), so none can replace the scratch
 * buffer or the data it was copied from. */
#ifndef RUNNER_HOSTCALL_H
#define RUNNER_HOSTCALL_H

#include "runner_int.h"

enum { HC_OK = 0, HC_INVALID = 1 };
#define HANDLE_ERROR ((uint32_t)-1)
#define HANDLE_NOT_READY ((uint32_t)-2)

/* Caps on what a guest hands the host in one call. */
#define HC_NAME_MAX 1024
#define HC_VALUE_MAX (64u << 10)
#define HC_URL_MAX (8u << 10)
#define HC_HEADERS_MAX 100
#define HC_BODY_MAX (16u << 20)

/* ---- Handles (hostcall_handles.c) ------------------------------------------------------ */

/* Handles of each kind one instance may hold. */
#define RUN_HC_HANDLES 64

/* A request or a response, as a guest sees it through a handle. */
struct run_hmsg {
	bool used;
	struct run_msg m;
};

struct run_outbound_op;
struct run_dns_op;

/* An outbound request in flight, or finished. */
struct run_pending {
	bool used;
	bool done;
	int req;                    /* its request handle */
	int resp;                   /* its response handle once done; -1 when it failed */
	struct run_outbound_op *op; /* while in flight */
	struct run_instance *in;    /* whose it is, for the completion */
};

struct run_handles {
	struct run_hmsg reqs[RUN_HC_HANDLES];  /* 0 is the incoming request */
	struct run_hmsg resps[RUN_HC_HANDLES]; /* 0 is the outgoing response */
	struct run_pending pend[RUN_HC_HANDLES];
	struct run_dns_op *dns; /* a lookup in flight */
};

/* Sets up the tables of a new instance: request 0 (the incoming request,
 * read from the request itself) and response 0 (the outgoing one: 200, no
 * headers, an empty body of at most body_max bytes). */
void run_handles_init(struct run_handles *h, size_t body_max);
/* Stops what is in flight and frees every message. */
void run_handles_free(struct run_handles *h);

/* The message behind a request or response handle; NULL for a bad one. */
struct run_hmsg *run_handles_req(struct run_handles *h, uint32_t handle);
struct run_hmsg *run_handles_resp(struct run_handles *h, uint32_t handle);
/* A new request handle (its message empty), or -1 when none is free. */
int run_handles_new_req(struct run_handles *h);

/* A new pending handle for request handle req, or -1 when none is free. */
int run_handles_new_pending(struct run_handles *h, int req);
/* The pending handle p, or NULL for a bad one. */
struct run_pending *run_handles_pending(struct run_handles *h, uint32_t p);
/* A pending request finished: resp (NULL: it failed) becomes a response
 * handle, whose message takes over resp's contents. */
void run_handles_complete(struct run_handles *h, int pi, struct run_msg *resp);
/* What a completed pending request gave (a response handle, or
 * HANDLE_ERROR when it failed), its handle freed: as Terrarium's SDKs
 * document, a completed pending request may not be used again. */
uint32_t run_handles_finish(struct run_handles *h, int pi);
/* Whether one of the pending handles in mask is done. */
bool run_handles_any_done(const struct run_handles *h, uint64_t mask);

/* ---- The calls' state and common parts (hostcall_mode.c) ---------------------------- */

/* What the host calls keep for one instance. Any guest may import them,
 * whatever its mode: the host-call mode attaches this state when the
 * instance starts, and the first host call of any other guest does. */
struct run_hc {
	struct run_handles h;
	uint32_t mm_malloc, mm_free; /* table indices from hostcall_init_mm */
	bool mm_set;
	bool mm_missing_logged;
	unsigned sent;    /* outbound requests made */
	uint64_t waiting; /* pending handles the suspended guest waits for */
	/* A result, copied before the host calls the guest's allocator to
	 * place it. */
	struct viv_buf scratch;
	/* Calls into the guest's allocator under way: host calls are refused
	 * meanwhile. */
	unsigned callbacks;
	/* The last DNS lookup: done, and what it found (in scratch). */
	bool dns_done, dns_ok;
	size_t dns_n, dns_addr_len;
};

/* The instance's host-call state, made on first use; a guest whose host
 * could not make it is stopped. Guest context only. */
struct run_hc *run_hc_of(struct run_instance *in);

/* Starts a host call of the Terrarium ABI: run_hostcall_enter(), then NULL
 * when the host is calling back into the guest (its allocator, to place
 * another call's result) and the call must not run. Such a nested call
 * could free or replace what the outer call is returning; it fails instead
 * with the ABI's error value and one line in the app's log names it. Only
 * hostcall_debug, hostcall_panic_hook, hostcall_time_now and
 * hostcall_rng_next_u64, which touch no host-call state, run nested
 * (run_enter()); so do WASI calls, whose state no host call holds. */
struct run_hc *run_hc_begin(struct run_instance *in, const char *name);

/* The prologue of every host call that may not nest: declares in (the
 * running instance) and hc (its host-call state), and returns fail when
 * the call may not run. The call is named in the log after its function,
 * without the "Z_envZ_" that wasm2c puts before an import of env. */
#define HC_BEGIN(fail)                                                                             \
	struct run_instance *in = run_current;                                                     \
	struct run_hc *hc __attribute__((unused)) =                                                \
	        run_hc_begin(in, __func__ + sizeof("Z_envZ_") - 1);                                \
	if (!hc)                                                                                   \
	return fail

/* The same for a call that returns nothing but a result at (ptr_p, len_p):
 * a call that may not run writes (0, 0) there. */
#define HC_BEGIN_OUT(ptr_p, len_p)                                                                 \
	struct run_instance *in = run_current;                                                     \
	struct run_hc *hc __attribute__((unused)) =                                                \
	        run_hc_begin(in, __func__ + sizeof("Z_envZ_") - 1);                                \
	if (!hc) {                                                                                 \
		run_hc_result_none(in, ptr_p, len_p);                                              \
		return;                                                                            \
	}

/* The (ptr, len) argument of a call, checked: its host address when len is
 * at most max and the bytes lie in guest memory, else NULL. */
const uint8_t *run_hc_arg(struct run_instance *in, uint32_t ptr, uint32_t len, uint32_t max);
/* Whether both out-pointers of a call have room for a u32. */
bool run_hc_outs(struct run_instance *in, uint32_t a, uint32_t b);
/* Writes v at guest address at, when it is in bounds. */
void run_hc_put_u32(struct run_instance *in, uint32_t at, uint32_t v);

/* One "system" line in the app's log. */
void run_hc_logf(struct run_instance *in, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Results: the scratch buffer holds copies, placed in memory from the
 * guest's allocator, each string NUL-terminated after its length. */
void run_hc_hold_clear(struct run_instance *in);
/* Appends a copy of len bytes; false when out of memory. */
bool run_hc_hold(struct run_instance *in, const void *data, size_t len);
/* Places the whole scratch buffer as one result at (ptr_p, len_p). */
bool run_hc_give_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p);
/* Places the n strings held back to back, lens[i] bytes each, as an array
 * of GuestSlice {ptr, len} at (slices_p, len_p). */
bool run_hc_give_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
                        const size_t *lens, size_t n);
/* Holds a copy of data and gives it: data is copied before the allocator
 * runs, so it may be anything the guest could free or replace from there.
 * (0, 0) and false when that fails. */
bool run_hc_result_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p, const void *data,
                         size_t len);
/* The same for n strings. strs and lens are read before the allocator runs. */
bool run_hc_result_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
                          const char *const *strs, const size_t *lens, size_t n);
/* Writes (0, 0) to the out-pointers that are in bounds; returns false. */
bool run_hc_result_none(struct run_instance *in, uint32_t ptr_p, uint32_t len_p);

/* Suspends the guest until one of the pending handles in mask is done. */
void run_hc_wait(struct run_instance *in, uint64_t mask);
/* Pending handle pi is done: wakes the guest if it waits for it. */
void run_hc_notify(struct run_instance *in, int pi);

#endif
