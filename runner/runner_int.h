/* Private structures of the runner's sandbox, shared by its files and its
 * tests: loaded modules, the guest modes, slots and pools, instances, and
 * what code running for a guest (wasm-rt, WASI, host calls) may do with the
 * instance it serves.
 *
 * Who holds what (see scripts/check-layering.sh for who calls whom):
 *   module.c    loading artifacts; picks a module's guest mode
 *   pool.c      pools of memory slots and stacks; a pool's thread set-up
 *   loop.c      a pool's timers and watched descriptors (loop.h)
 *   signals.c   the fault and CPU-tick handlers: a fault in guest memory
 *               becomes a trap, a passed deadline stops the guest
 *   exec.c      running guest code on a slot's stack (coroutines), and
 *               stopping it (run_stop_guest(), wasm_rt_trap())
 *   instance.c  the life of one instance, from a fresh slot to a response
 *   rt.c        wasm-rt.h: memories, tables, function types
 *   cgi.c       the CGI mode; wasi.c, wasi_fs.c WASI preview 1
 *   hostcall*.c the Terrarium host-call mode (hostcall.h)
 *   outbound.c, dns.c  services: outbound HTTP and DNS lookups
 *   http.c      HTTP syntax and messages the host holds (http.h)
 *   worker.c, serve.c, account.c  a worker process (worker.h) */
#ifndef RUNNER_INT_H
#define RUNNER_INT_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include "http.h"
#include "loop.h"
#include "runner.h"
#include "viv_guest.h"

/* ---- Coroutines (coro.c, coro_x86_64.S) ------------------------------------------ */

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

/* ---- Guest modes ---------------------------------------------------------------------- */

/* How a module is served (GUEST-ABI.md): CGI over WASI's stdio, or the
 * Terrarium host calls. The instance's life is the same for both; what
 * differs is behind these operations, and the per-instance state each mode
 * keeps (state_size bytes, zeroed, at in->mode_state, freed with the
 * instance). The imports a guest calls do not depend on its mode: WASI's
 * and the Terrarium host calls keep their own state on the instance
 * (run_instance_attach()). */
struct run_mode_ops {
	const char *name; /* "cgi" or "hostcall", as deployments record it */
	size_t state_size;
	/* Before the guest starts: sets up the state. An error ends the
	 * instance before it starts. */
	enum viv_err (*start)(struct run_instance *in);
	/* The guest returned or exited: sets in->outcome and in->resp from
	 * what it produced. */
	void (*finish)(struct run_instance *in);
	/* What the guest writes to stdout; false when it is over the mode's
	 * cap (the guest sees EFBIG). p is borrowed for the call. */
	bool (*write_stdout)(struct run_instance *in, const uint8_t *p, size_t n);
	/* The instance ends, finished or not: stops what the mode has in
	 * flight and frees what its state holds (not the state itself). */
	void (*end)(struct run_instance *in);
};

extern const struct run_mode_ops run_mode_cgi;      /* cgi.c */
extern const struct run_mode_ops run_mode_hostcall; /* hostcall_mode.c */

/* ---- Modules ---------------------------------------------------------------------------- */

struct run_module {
	int refs;
	void *dl;
	const struct viv_guest *g;
	const struct run_mode_ops *mode;
	char hash[VIV_SHA256_HEX_LEN + 1];
	/* The executable range of the .so: a fault is the guest's only when
	 * the faulting instruction lies here. */
	uintptr_t text_lo, text_hi;
};

/* ---- Slots and pools ----------------------------------------------------------------- */

/* Address space of one slot's linear memory: 4 GiB of addresses plus up to
 * 4 GiB of static offset, so no access of a wasm32 guest leaves the slot. */
#define RUN_SLOT_RESERVE ((size_t)8 << 30)
/* Slots whose memories one reservation holds (2 TiB of address space). */
#define RUN_CHUNK_SLOTS 256
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
	struct run_module *module; /* what runs here, pinned while busy */
	unsigned next_free;
};

struct run_pool {
	struct run_pool_config cfg;
	struct run_services services;
	struct run_loop *loop; /* timers and the services' descriptors */
	struct run_slot *slots;
	unsigned n_slots;
	uint8_t **chunks; /* n_chunks reservations of RUN_CHUNK_SLOTS memories each */
	size_t n_chunks;
	unsigned free_head; /* n_slots when none is free */
	int pagemap_fd;     /* /proc/self/pagemap (cfg's or the pool's own), or -1: memories
	                     * are zeroed whole */
	unsigned n_busy;
};

/* Takes a free slot for an instance of m, pinning m (a reference) until
 * run_slot_give(); NULL when every slot is busy. */
struct run_slot *run_slot_take(struct run_pool *p, struct run_module *m);
/* Returns s to its pool, its memory clean, and drops its module. */
void run_slot_give(struct run_slot *s);

/* ---- Instances ------------------------------------------------------------------------- */

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
	RUN_STOP_EXIT, /* proc_exit */
	RUN_STOP_TRAP, /* wasm_rt_trap_t in trap */
	RUN_STOP_CPU,
	RUN_STOP_WALL,
	RUN_STOP_HOST, /* a host call could not go on (message in log) */
};

#define RUN_MAX_LOG_LINES 64
/* States other layers attach to one instance (run_instance_attach()). */
#define RUN_MAX_ATTACHED 4

/* What a layer keeps for one instance: found by these operations, ended
 * with the instance. */
struct run_attach_ops {
	const char *name;
	/* The instance ends: stops what the state has in flight and frees
	 * it. */
	void (*end)(void *state);
};

struct run_attached {
	const struct run_attach_ops *ops;
	void *state;
};

struct run_instance {
	struct run_pool *pool;
	struct run_slot *slot;
	struct run_module *m;
	const struct run_mode_ops *mode;
	void *mode_state; /* mode->state_size bytes, owned by the mode */
	const struct run_app *app;
	const struct run_request *req;
	run_done_fn done;
	void *done_arg;

	enum run_state state;
	enum run_stop stop;
	int trap; /* wasm_rt_trap_t when stop is RUN_STOP_TRAP */
	int exit_code;
	enum run_outcome outcome;

	sigjmp_buf jmp;       /* inside the guest stack, around guest code */
	struct run_coro coro; /* the guest's side */
	struct run_coro home; /* the event loop's side */
	/* For AddressSanitizer, which is told of every switch between the two
	 * (exec.c): the stack that resumed the guest, and the fake stacks
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

	/* Sleeping (run_instance_sleep()). */
	struct run_timer wake_timer;

	/* WASI's standard streams and environment, in both modes. */
	size_t stdin_off;
	struct viv_buf errln; /* stderr, until a newline */
	size_t log_bytes;
	char **envp; /* built on first use: CGI variables and app env */
	size_t n_envp;

	/* A failure the guest reported before it stopped ("panic", static
	 * storage; hostcall_panic_hook): it explains a trap that follows. */
	const char *failure;

	struct run_attached attached[RUN_MAX_ATTACHED];
	size_t n_attached;

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

/* ---- Running guest code (exec.c) ---------------------------------------------------- */

/* The instance running on this thread, for wasm_rt_trap and the signal
 * handlers; NULL outside guest code. */
extern __thread struct run_instance *run_current __attribute__((tls_model("initial-exec")));

/* Prepares the instance's stack so that the first run_exec_resume()
 * instantiates the module and calls its entry point. */
void run_exec_prepare(struct run_instance *in);
/* Runs the guest from the event loop's side until it finishes (state
 * RUN_STATE_DONE) or yields; now is CLOCK_MONOTONIC. */
void run_exec_resume(struct run_instance *in, uint64_t now);
/* From the guest's side: goes back to whoever resumed it; returns when it
 * is resumed again. */
void run_exec_yield(struct run_instance *in);
/* Ends guest execution from a host call or the runtime: never returns. */
__attribute__((noreturn)) void run_stop_guest(struct run_instance *in, enum run_stop why, int trap);
/* The label of a wasm trap (wasm_rt_trap_t), for metrics: stable words,
 * unlike the phrases of wasm_rt_strerror() that logs show. Static storage. */
const char *run_trap_kind(int trap);

/* ---- What guest-facing code does with its instance (instance.c) ------------------ */

/* Every host call starts with this: it makes sure the native stack has room
 * for host code and that no deadline passed while the guest ran. */
void run_hostcall_enter(struct run_instance *in);

/* The prologue of every host call that takes no guest-visible state across
 * a callback (WASI's, and the Terrarium calls allowed to nest): the running
 * instance, once run_hostcall_enter() let it in. */
static inline struct run_instance *run_enter(void)
{
	struct run_instance *in = run_current;

	run_hostcall_enter(in);
	return in;
}

/* Ends the guest because the host cannot go on: the formatted line (cut to
 * 255 bytes) goes to the app's log as a trap, and the request ends with a
 * host error. Never returns. */
__attribute__((noreturn, format(printf, 2, 3))) void run_host_fail(struct run_instance *in,
                                                                   const char *fmt, ...);

/* proc_exit: ends the guest normally, with its exit status. Never returns. */
__attribute__((noreturn)) void run_instance_exit(struct run_instance *in, int code);

/* Adds one line to the instance's app log (cut to the pool's line cap,
 * dropped past the request's byte cap). msg is copied. */
void run_log_add(struct run_instance *in, const char *stream, const char *msg, size_t len);

/* Sets in->resp to a plain-text error page (text is copied). */
void run_error_response(struct run_instance *in, unsigned status, const char *text);

/* Suspends the running instance until run_instance_wake(); returns in the
 * guest's context. Called from host calls only. */
void run_instance_suspend(struct run_instance *in);
/* Resumes a suspended instance from the event loop; calls its done
 * callback if it finishes. Nothing when it is not suspended. */
void run_instance_wake(struct run_instance *in);
/* Suspends the running instance until at_ns (CLOCK_MONOTONIC), or until
 * something else wakes it. */
void run_instance_sleep(struct run_instance *in, uint64_t at_ns);

/* Attaches state that another layer keeps for the instance (WASI's
 * descriptors, the host calls' handles): run_instance_attached() finds it
 * by ops, and ops->end(state) is called when the instance ends, in the
 * reverse order of attaching. false when there is no room: state stays the
 * caller's. */
bool run_instance_attach(struct run_instance *in, const struct run_attach_ops *ops, void *state);
/* The state attached with ops, or NULL. Borrowed until the instance ends. */
void *run_instance_attached(const struct run_instance *in, const struct run_attach_ops *ops);

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
#define WASI_CALL(ret, name, ...)                                                                  \
	ret Z_wasi_snapshot_preview1Z_##name(HOSTCTX, ##__VA_ARGS__);                              \
	ret Z_wasi_snapshot_preview1Z_##name(HOSTCTX, ##__VA_ARGS__)
#define ENV_CALL(ret, name, ...)                                                                   \
	ret Z_envZ_##name(HOSTCTX, ##__VA_ARGS__);                                                 \
	ret Z_envZ_##name(HOSTCTX, ##__VA_ARGS__)

/* ---- CGI (cgi.c) --------------------------------------------------------------------- */

/* Bytes of a CGI header block. */
#define RUN_CGI_HEADERS_MAX ((size_t)64 << 10)

/* Turns a CGI program's stdout, the len bytes at out, into in->resp (CGI
 * rules, RFC 3875 section 6). The response points into out, which must live
 * as long as it. On failure logs why and returns false. */
bool run_cgi_response(struct run_instance *in, char *out, size_t len);

/* Builds in->envp: the CGI variables of the request, then the app's. */
VIV_MUST_CHECK enum viv_err run_cgi_env(struct run_instance *in);

/* ---- Static assets (assets.c) ----------------------------------------------------------- */

struct run_assets;
/* Indexes the regular files under dir. Caller frees with run_assets_close(). */
VIV_MUST_CHECK enum viv_err run_assets_open(const char *dir, struct run_assets **out);
void run_assets_close(struct run_assets *a);

/* A static file that answers a request. */
struct run_asset {
	char path[4096]; /* the file */
	off_t size;      /* its size when the index was built */
	/* Its media type, from its extension through h2o's mimemap:
	 * type_len bytes, borrowed for the life of the index. */
	const char *type;
	size_t type_len;
};

/* When the path of target (percent-decoded, normalized, "dir/" meaning
 * "dir/index.html") is an asset, describes it in *out and returns true. */
bool run_assets_find(const struct run_assets *a, const char *target, size_t len,
                     struct run_asset *out);
size_t run_assets_count(const struct run_assets *a);

/* ---- The /assets file system of WASI (wasi_fs.c) -------------------------------------- */

/* True when fd is the /assets preopen or a descriptor opened below it. */
bool run_fs_has(struct run_instance *in, uint32_t fd);
/* The WASI calls on those descriptors, with WASI's arguments and errno
 * results. */
uint32_t run_fs_prestat_get(struct run_instance *in, uint32_t fd, uint32_t buf);
uint32_t run_fs_prestat_dir_name(struct run_instance *in, uint32_t fd, uint32_t path, uint32_t len);
uint32_t run_fs_path_open(struct run_instance *in, uint32_t dirfd, uint32_t dirflags, uint32_t path,
                          uint32_t path_len, uint32_t oflags, uint64_t rights, uint64_t inheriting,
                          uint32_t fdflags, uint32_t fd_p);
uint32_t run_fs_close_fd(struct run_instance *in, uint32_t fd);
uint32_t run_fs_read(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n,
                     uint32_t nread_p);
uint32_t run_fs_pread(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n, uint64_t off,
                      uint32_t nread_p);
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

#endif
