/* Private structures of the runner, shared by its files and its tests. */
#ifndef RUNNER_INT_H
#define RUNNER_INT_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include "runner.h"
#include "viv_guest.h"

/* ---- Coroutines -------------------------------------------------------------- */

/* A saved execution context: the stack pointer of a switched-out stack whose
 * top holds the callee-saved registers. */
struct run_coro {
#if defined(__x86_64__)
	void *sp;
#else
	ucontext_t uc;
	void (*fn)(void *);
	void *arg;
#endif
};

/* Saves the current context into from and continues to. */
void run_coro_switch(struct run_coro *from, struct run_coro *to);

/* Prepares to so that the first switch to it calls fn(arg) on the stack
 * [lo, hi). fn must never return: it ends by switching away for good. */
void run_coro_make(struct run_coro *to, void *lo, void *hi, void (*fn)(void *), void *arg);

/* ---- Modules ------------------------------------------------------------------ */

struct run_module {
	int refs;
	void *dl;
	const struct viv_guest *g;
	char hash[VIV_SHA256_HEX_LEN + 1];
	/* The executable range of the .so: a fault is the guest's only when
	 * the faulting instruction lies here. */
	uintptr_t text_lo, text_hi;
};

/* ---- Slots and pools --------------------------------------------------------- */

/* Address space of one slot's linear memory: 4 GiB of addresses plus up to
 * 4 GiB of static offset, so no access of a wasm32 guest leaves the slot. */
#define RUN_SLOT_RESERVE ((size_t)8 << 30)
/* Guard below each native stack. */
#define RUN_STACK_GUARD ((size_t)64 << 10)
/* Stack a host call keeps free for itself; a guest that leaves less traps. */
#define RUN_HOST_STACK_HEADROOM ((size_t)128 << 10)

struct run_slot {
	struct run_pool *pool;
	unsigned index;
	uint8_t *mem;      /* start of the linear memory reservation */
	size_t rw_bytes;   /* bytes from mem that are readable and writable */
	size_t used_bytes; /* bytes the last instance could have written */
	uint8_t *guard_lo; /* the stack guard: [guard_lo, stack_lo) */
	uint8_t *stack_lo;
	uint8_t *stack_hi;
	struct run_instance *inst; /* NULL when free */
	unsigned next_free;
};

/* A timer of the pool's thread, in a binary min-heap by deadline. */
struct run_timer {
	uint64_t at_ns; /* CLOCK_MONOTONIC */
	size_t heap_index; /* SIZE_MAX when not armed */
	void (*fire)(struct run_timer *t);
};

struct run_pool {
	struct run_pool_config cfg;
	struct run_services services;
	int epfd;    /* run_pool_fd(): the timerfd and outbound sockets */
	struct run_slot *slots;
	unsigned n_slots;
	unsigned free_head; /* n_slots when none is free */
	unsigned n_busy;
	int timerfd;
	uint64_t timerfd_at; /* what the timerfd is armed for; 0 when disarmed */
	struct run_timer **heap;
	size_t heap_len, heap_alloc;
	/* Outbound HTTP (outbound.c). */
	void *curlm; /* CURLM */
	struct run_timer curl_timer;
	unsigned curl_running;
	/* DNS lookups (dns.c). */
	int dns_fd;
	pthread_mutex_t dns_lock;
	struct run_dns_job *dns_done;
	int dns_running;
};

void run_timer_arm(struct run_pool *pool, struct run_timer *t, uint64_t at_ns);
void run_timer_cancel(struct run_pool *pool, struct run_timer *t);

/* ---- Instances ------------------------------------------------------------------ */

enum run_state {
	RUN_STATE_NEW,
	RUN_STATE_RUNNING,   /* on its own stack, executing */
	RUN_STATE_SUSPENDED, /* waiting for a timer or I/O */
	RUN_STATE_DONE,
};

/* Why the guest's execution ended, beyond wasm_rt_trap_t's codes. */
enum run_stop {
	RUN_STOP_NONE = 0,
	RUN_STOP_RETURNED,
	RUN_STOP_EXIT,   /* proc_exit */
	RUN_STOP_TRAP,   /* wasm_rt_trap_t in trap */
	RUN_STOP_CPU,
	RUN_STOP_WALL,
	RUN_STOP_HOST,   /* a host call could not go on (message in log) */
};

#define RUN_MAX_LOG_LINES 64

/* ---- Host-call state (hostcall.c) ---------------------------------------------- */

/* Handles of each kind one instance may hold. */
#define RUN_HC_HANDLES 64

/* A request or a response, as a guest sees it through a handle. */
struct run_hmsg {
	bool used;
	char *method;     /* requests */
	char *url;        /* requests */
	unsigned status;  /* responses */
	struct run_header *hdrs; /* names and values are malloc'd, NUL-terminated */
	size_t n_hdrs, alloc_hdrs;
	struct viv_buf body;
};

struct run_xfer;

/* An outbound request in flight, or finished. */
struct run_pending {
	bool used;
	bool done;
	int req;  /* its request handle */
	int resp; /* its response handle once done; -1 when it failed */
	struct run_xfer *xfer;      /* a transfer through libcurl */
	struct run_subrequest *sub; /* or a request to the app itself */
};

struct run_hc {
	struct run_hmsg reqs[RUN_HC_HANDLES];  /* 0 is the incoming request */
	struct run_hmsg resps[RUN_HC_HANDLES]; /* 0 is the outgoing response */
	struct run_pending pend[RUN_HC_HANDLES];
	uint32_t mm_malloc, mm_free; /* table indices from hostcall_init_mm */
	bool mm_set;
	bool mm_missing_logged;
	bool panicked;
	unsigned sent; /* outbound requests made */
	uint64_t waiting; /* pending handles the suspended guest waits for */
};

/* Frees the host-call state and stops transfers in flight; accepts NULL. */
void run_hc_free(struct run_instance *in);
/* Turns the outgoing response handle into in->resp. */
void run_hc_response(struct run_instance *in);
/* A pending request finished: resp (may be NULL: it failed) becomes a
 * response handle, and a guest waiting for it wakes. Takes ownership of
 * resp's contents. */
void run_hc_complete(struct run_instance *in, int pi, struct run_hmsg *resp);
/* Appends a header (copies). false when out of memory. */
bool run_hmsg_add_header(struct run_hmsg *m, const char *name, size_t nlen, const char *value,
			 size_t vlen);
/* Frees what m holds and marks it unused. */
void run_hmsg_clear(struct run_hmsg *m);

/* ---- Outbound HTTP (outbound.c) ----------------------------------------------- */

enum viv_err run_outbound_init(struct run_pool *p);
void run_outbound_free(struct run_pool *p);
/* A socket libcurl watches is ready. */
void run_outbound_socket(struct run_pool *p, int fd, uint32_t events);
/* Sends pending request pi of in (its request handle is pend[pi].req):
 * checks the allow list, then goes out through libcurl or, for the app's
 * own host, to services.self_request. false when it could not start (the
 * reason is in the app's log). */
bool run_outbound_start(struct run_instance *in, int pi);
/* Stops pending request pi, if it is still in flight. */
void run_outbound_cancel(struct run_instance *in, int pi);
/* True when url may be fetched by an app with these outbound patterns. */
bool run_outbound_allowed(const struct run_app *app, const char *url);
/* Whether url parses as an absolute http or https URL. */
bool run_outbound_url_valid(const char *url);
/* True when a connection to this address is refused (loopback, private,
 * link-local, metadata...). */
bool run_address_is_private(const struct sockaddr *sa);

/* Starts a host call of the Terrarium ABI: run_hostcall_enter(), then
 * false when the host is calling back into the guest (its allocator, to
 * place another call's result) and the call must not run. Such a nested call
 * could free or replace what the outer call is returning; it fails instead
 * with the ABI's error value (the caller returns it) and one line in the
 * app's log names it. Only hostcall_debug, hostcall_panic_hook,
 * hostcall_time_now and hostcall_rng_next_u64, which touch no host-call
 * state, run nested; so do WASI calls, whose state no host call holds. */
bool run_hc_enter(struct run_instance *in, const char *name);

/* Places a copy of data (NUL-terminated) in memory from the guest's
 * allocator and writes its pointer and length to ptr_p and len_p; (0, 0) and
 * false when that fails. data is copied before the allocator runs, so it may
 * be anything the guest could free or replace from there. */
bool run_hc_result_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p, const void *data,
			 size_t len);
/* The same for n strings: an array of GuestSlice {ptr, len}. strs and lens
 * are read before the allocator runs. */
bool run_hc_result_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
			  const char *const *strs, const size_t *lens, size_t n);
/* Writes (0, 0) to the out-pointers that are in bounds; returns false. */
bool run_hc_result_none(struct run_instance *in, uint32_t ptr_p, uint32_t len_p);

/* ---- DNS (dns.c) ------------------------------------------------------------------------ */

struct run_dns_job;
enum viv_err run_dns_init(struct run_pool *p);
void run_dns_free(struct run_pool *p);
/* The pool's DNS eventfd is readable: finished lookups wake their guests. */
void run_dns_event(struct run_pool *p);
/* Forgets the instance's lookup, at its end. */
void run_dns_cancel(struct run_instance *in);

/* ---- Static assets (assets.c) ----------------------------------------------------------- */

struct run_assets;
/* Indexes the regular files under dir. Caller frees with run_assets_close(). */
enum viv_err run_assets_open(const char *dir, struct run_assets **out);
void run_assets_close(struct run_assets *a);
/* When the path of target (percent-decoded, normalized, "dir/" meaning
 * "dir/index.html") is an asset, writes its file's path to path and its
 * size to *size_out (may be NULL) and returns true. */
bool run_assets_find(const struct run_assets *a, const char *target, size_t len, char *path,
		     size_t pathlen, off_t *size_out);
size_t run_assets_count(const struct run_assets *a);

/* ---- The /assets file system of WASI (wasi_fs.c) -------------------------------------- */

struct run_fs;
/* True when fd is the /assets preopen or a descriptor opened below it. */
bool run_fs_has(struct run_instance *in, uint32_t fd);
/* Closes every descriptor, at the instance's end. */
void run_fs_close(struct run_instance *in);
/* The WASI calls on those descriptors, with WASI's arguments and errno
 * results. */
uint32_t run_fs_prestat_get(struct run_instance *in, uint32_t fd, uint32_t buf);
uint32_t run_fs_prestat_dir_name(struct run_instance *in, uint32_t fd, uint32_t path,
				 uint32_t len);
uint32_t run_fs_path_open(struct run_instance *in, uint32_t dirfd, uint32_t dirflags,
			  uint32_t path, uint32_t path_len, uint32_t oflags, uint64_t rights,
			  uint64_t inheriting, uint32_t fdflags, uint32_t fd_p);
uint32_t run_fs_close_fd(struct run_instance *in, uint32_t fd);
uint32_t run_fs_read(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n,
		     uint32_t nread_p);
uint32_t run_fs_pread(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n,
		      uint64_t off, uint32_t nread_p);
uint32_t run_fs_seek(struct run_instance *in, uint32_t fd, int64_t off, uint32_t whence,
		     uint32_t newoff_p);
uint32_t run_fs_fdstat_get(struct run_instance *in, uint32_t fd, uint32_t buf);
uint32_t run_fs_filestat_get(struct run_instance *in, uint32_t fd, uint32_t buf);
uint32_t run_fs_path_filestat_get(struct run_instance *in, uint32_t dirfd, uint32_t flags,
				  uint32_t path, uint32_t len, uint32_t buf);
uint32_t run_fs_readdir(struct run_instance *in, uint32_t fd, uint32_t buf, uint32_t buf_len,
			uint64_t cookie, uint32_t used_p);

/* ---- Access lines (access.c) ------------------------------------------------------------ */

/* Bytes of the buffer run_access_line() writes, its NUL included; a line
 * stays well below the store's STORE_LOG_LINE_MAX. */
#define RUN_ACCESS_LINE_MAX 2304

/* What answered a request, for its access line. */
enum run_access_by {
	RUN_ACCESS_INSTANCE, /* an instance of the app: "(instance 0.41 ms)" */
	RUN_ACCESS_STATIC,   /* one of its static files: "(static file)" */
	RUN_ACCESS_NONE,     /* the worker, before any instance started: "(no instance)" */
};

/* One request as its access line tells it. The strings are borrowed for the
 * call and need no NUL. */
struct run_access {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	unsigned status;
	uint64_t total_ns;    /* from the request reaching the worker to its response */
	uint64_t instance_ns; /* the instance's part of it, for RUN_ACCESS_INSTANCE */
	enum run_access_by by;
};

/* Writes the access line of a request into buf (RUN_ACCESS_LINE_MAX bytes)
 * and returns its length: "GET /a?x=1 200 1.83 ms (instance 0.41 ms)".
 * In the method and the target, the space and bytes other than printable
 * ASCII become \xHH and a backslash becomes two, so that no request can
 * forge a line or shift the fields; an empty one is "-"; one that would take
 * more than 64 bytes (the method) or 2048 (the target) is cut and ends in
 * "...". */
size_t run_access_line(char *buf, const struct run_access *a);

/* True when the n bytes at s are an HTTP token (RFC 7230): a header name or
 * a method. */
bool run_http_token(const char *s, size_t n);
/* True for headers the server manages itself (Connection, Content-Length,
 * Transfer-Encoding, ...), which guests may not set on responses. */
bool run_header_is_hop_by_hop(const char *name, size_t n);
/* Bytes of a CGI header block. */
#define RUN_CGI_HEADERS_MAX ((size_t)64 << 10)

struct run_instance {
	struct run_pool *pool;
	struct run_slot *slot;
	struct run_module *m;
	const struct run_app *app;
	const struct run_request *req;
	run_done_fn done;
	void *done_arg;

	enum run_state state;
	enum run_stop stop;
	int trap; /* wasm_rt_trap_t when stop is RUN_STOP_TRAP */
	int exit_code;
	enum run_outcome outcome;

	sigjmp_buf jmp;        /* inside the guest stack, around guest code */
	struct run_coro coro;  /* the guest's side */
	struct run_coro home;  /* the event loop's side */
	/* For AddressSanitizer, which is told of every switch between the two
	 * (sandbox.c): the stack that resumed the guest, and the fake stacks
	 * each side leaves behind. Unused in other builds. */
	const void *home_lo;
	size_t home_size;
	void *asan_home, *asan_guest;
	void *wasm;            /* the wasm2c instance, m->g->instance_size bytes */
	wasm_rt_memory_t *mem; /* the guest's memory, NULL if it has none */

	/* Deadlines: the tick handler charges the instance with the thread's
	 * CPU time while it runs (no more than has passed since it last
	 * became the running instance, ran_since_ns on CLOCK_MONOTONIC); the
	 * wall deadline is checked there and by a timer. */
	volatile uint64_t cpu_used_ns;
	uint64_t cpu_max_ns;
	volatile uint64_t ran_since_ns;
	uint64_t wall_deadline_ns;
	struct run_timer wall_timer;
	volatile sig_atomic_t interrupt; /* a deadline passed in host code */

	/* Suspension (poll_oneoff sleeps). */
	struct run_timer wake_timer;

	/* WASI state. */
	size_t stdin_off;
	struct viv_buf out;   /* stdout: the CGI response */
	struct viv_buf errln; /* stderr, until a newline */
	size_t log_bytes;
	bool out_overflow;
	char **envp; /* built on first use: CGI variables and app env */
	size_t n_envp;

	struct run_hc *hc; /* host-call state, made on first use */
	/* A host call's result, copied before the host calls the guest's
	 * allocator to place it (hostcall.c). */
	struct viv_buf scratch;
	/* Calls into the guest's allocator under way: host calls of the
	 * Terrarium ABI are refused meanwhile (run_hc_enter()). */
	unsigned callbacks;
	struct run_dns_job *dns;        /* a lookup in flight */
	struct run_dns_job *dns_result; /* a finished lookup the guest has not taken */
	struct run_fs *fs;  /* WASI descriptors of /assets (wasi_fs.c) */

	/* For run_instance_stats(), on CLOCK_MONOTONIC: when the instance
	 * started, when the guest's entry point was called, when it finished. */
	uint64_t start_ns, entry_ns, end_ns;
	uint32_t mem_limit_pages; /* the app's memory limit, in wasm pages */
	bool memory_limited;      /* that limit refused memory */
	uint32_t kv_calls[RUN_KV_OPS];

	struct run_log_line logs[RUN_MAX_LOG_LINES];
	size_t n_logs;
	struct run_response resp;
	struct viv_buf resp_store; /* storage for resp headers and body */
};

/* The instance running on this thread, for wasm_rt_trap and the signal
 * handlers; NULL outside guest code. */
extern __thread struct run_instance *run_current
	__attribute__((tls_model("initial-exec")));

/* Ends guest execution from a host call or the runtime: never returns. */
__attribute__((noreturn)) void run_stop_guest(struct run_instance *in, enum run_stop why,
					     int trap);

/* Adds one line to the instance's app log (cut to the pool's line cap,
 * dropped past the request's byte cap). */
void run_log_add(struct run_instance *in, const char *stream, const char *msg, size_t len);

/* Suspends the running instance until run_instance_wake(); returns in the
 * guest's context. Called from host calls only. */
void run_instance_suspend(struct run_instance *in);
/* Resumes a suspended instance from the event loop; calls its done
 * callback if it finishes. */
void run_instance_wake(struct run_instance *in);

/* Checks that [ptr, ptr + len) lies in the guest's memory and returns its
 * host address, or NULL. Overflow-safe. */
static inline uint8_t *run_mem(struct run_instance *in, uint32_t ptr, uint64_t len)
{
	if (!in->mem || (uint64_t)ptr + len > in->mem->size)
		return NULL;
	return in->mem->data + ptr;
}

/* The first parameter of every host call: the import instance wasm2c
 * passes, which host calls ignore for run_current (see wasi.c). */
#define HOSTCTX void *ctx __attribute__((unused))

/* Declares and begins the definition of a host call under the C name wasm2c
 * gives the import: WASI_CALL(uint32_t, fd_write, uint32_t fd, ...) for
 * wasi_snapshot_preview1.fd_write, ENV_CALL(...) for env's. */
#define WASI_CALL(ret, name, ...)                                   \
	ret Z_wasi_snapshot_preview1Z_##name(HOSTCTX, ##__VA_ARGS__); \
	ret Z_wasi_snapshot_preview1Z_##name(HOSTCTX, ##__VA_ARGS__)
#define ENV_CALL(ret, name, ...)                   \
	ret Z_envZ_##name(HOSTCTX, ##__VA_ARGS__); \
	ret Z_envZ_##name(HOSTCTX, ##__VA_ARGS__)

/* Every host call starts with this: it makes sure the native stack has room
 * for host code and that no deadline passed while the guest ran. */
void run_hostcall_enter(struct run_instance *in);

/* Turns the guest's stdout into in->resp (CGI rules, RFC 3875 section 6).
 * On failure logs why and returns false. */
bool run_cgi_response(struct run_instance *in);

/* Builds in->envp: the CGI variables of the request, then the app's. */
enum viv_err run_cgi_env(struct run_instance *in);

/* Sets in->resp to a plain-text error page. */
void run_error_response(struct run_instance *in, unsigned status, const char *text);

#endif
