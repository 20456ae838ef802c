/* The runner: Vivarium's implementation of the wasm2c runtime (wasm-rt.h),
 * the sandbox that runs one request in a fresh instance, the WASI and CGI
 * host side, and the libh2o worker that serves apps by Host header (vivd's
 * supervisor keeps a fleet of them alive).
 *
 * Sandboxes live in a struct run_pool: memory slots reserved once (8 GiB of
 * address space each, so that every 32-bit address plus offset lands inside
 * the slot and the hardware does the bounds checks), each with its own
 * native stack and guard pages. A pool belongs to one thread. */
#ifndef RUNNER_H
#define RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "viv.h"

/* ---- Loaded artifacts ------------------------------------------------------ */

struct run_module;

/* dlopens the artifact .so at path, checks its vivarium_guest symbol (ABI
 * version and, when expect_hash is not NULL, the artifact hash) and runs its
 * module initializer. The detail of a failure goes to err. Caller releases
 * with run_module_release(). */
VIV_MUST_CHECK enum viv_err run_module_load(const char *path, const char *expect_hash,
                                            struct run_module **out, char *err, size_t errlen);

/* Takes another reference. */
struct run_module *run_module_ref(struct run_module *m);
/* Drops a reference; the last one dlcloses. Accepts NULL. */
void run_module_release(struct run_module *m);

/* "cgi" or "hostcall". */
const char *run_module_mode(const struct run_module *m);
/* The artifact hash. Borrowed for the life of m. */
const char *run_module_hash(const struct run_module *m);

/* ---- Pools of sandboxes ------------------------------------------------------ */

struct run_pool_config {
	unsigned slots;       /* instances that may exist at once */
	size_t stack_bytes;   /* native stack of each instance */
	size_t response_max;  /* bytes of one response body */
	size_t log_line_max;  /* bytes of one app log line */
	size_t log_bytes_max; /* bytes of app log one request may write */
	/* Outbound HTTP of guests. Loopback, private, link-local and
	 * metadata addresses are refused unless allow_private is set (for
	 * tests and trusted networks). */
	bool outbound_allow_private;
	size_t outbound_body_max;     /* bytes of one outbound response body */
	unsigned outbound_timeout_ms; /* one outbound request, redirects included */
	unsigned outbound_max;        /* outbound requests one instance may make */
	bool cpu_limit;               /* enforce limits.cpu_ms (the CPU tick) */
	/* Memories up to this size are zeroed in place after a request and
	 * stay resident; larger ones are returned to the kernel (madvise),
	 * which costs page faults and TLB flushes on the next use. In place,
	 * only the pages the kernel has mapped are zeroed (the others were
	 * never written), unless clean_whole is set: then every page is, as
	 * where /proc/self/pagemap cannot be read. */
	size_t clean_in_place_max;
	bool clean_whole;
	/* /proc/self/pagemap of this process, for the above, or -1 for the
	 * pool to open it. A process that changed its user can no longer open
	 * it (it is no longer dumpable, so its /proc files are root's): it
	 * opens it before. Borrowed for the life of the pool. */
	int pagemap_fd;
};

void run_pool_config_defaults(struct run_pool_config *cfg);

struct run_pool;

/* Reserves the slots' address space and stacks, and sets the calling
 * thread, which the pool belongs to, up for guests: run_thread_init(), and
 * run_thread_cpu_limit(false) when cfg->cpu_limit is off. Caller frees with
 * run_pool_destroy(), after every instance has ended. */
VIV_MUST_CHECK enum viv_err run_pool_create(const struct run_pool_config *cfg,
                                            struct run_pool **out);
void run_pool_destroy(struct run_pool *pool);

struct store;
struct run_instance;
struct run_subrequest;

/* What a pool offers its guests beyond the sandbox itself. Borrowed for the
 * life of the pool. */
struct run_services {
	/* Where apps' KV data lives; NULL makes the KV host calls fail. */
	struct store *store;
	/* Serves a request a guest sends to its own app's host name: static
	 * assets first, then the app itself in a new instance. It calls
	 * sr->done() when the response is ready, perhaps before it returns.
	 * NULL sends such requests out like any other. */
	enum viv_err (*self_request)(void *ctx, struct run_instance *from,
	                             struct run_subrequest *sr);
	/* Abandons a subrequest whose guest ended before its response came:
	 * sr->done() must not be called for it any more. */
	void (*self_cancel)(void *ctx, struct run_subrequest *sr);
	void *ctx;
};

void run_pool_set_services(struct run_pool *pool, const struct run_services *services);

/* Sets up the calling thread for running guests: the signal alternate stack,
 * the fault handlers (installed once per process) and the CPU-time tick that
 * enforces deadlines. Idempotent per thread. */
VIV_MUST_CHECK enum viv_err run_thread_init(void);

/* Switches the calling thread's CPU-time tick on (the default) or off. With
 * it off, limits.cpu_ms is not enforced for guests running on this thread:
 * for benchmarks that measure what the tick costs, and hosts that run only
 * trusted code. VIV_ERR_INVALID before run_thread_init(). */
VIV_MUST_CHECK enum viv_err run_thread_cpu_limit(bool on);

/* ---- One request ------------------------------------------------------------ */

struct run_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* What the guest sees of the incoming request. Everything is borrowed until
 * the instance ends. */
struct run_request {
	const char *method;
	size_t method_len;
	const char *target; /* path and query, as received */
	size_t target_len;
	const struct run_header *headers;
	size_t n_headers;
	const char *body;
	size_t body_len;
	const char *client_addr; /* textual IP */
	const char *server_name; /* APP.DOMAIN */
	unsigned server_port;
	const char *protocol; /* "HTTP/1.1" */
	unsigned depth;       /* 0 from a client, one more per request an app sends itself */
};

/* The app around a request: its name, limits and configuration variables.
 * Borrowed until the instance ends. */
struct run_app {
	const char *name;
	struct viv_limits limits;
	const char *const *env; /* "KEY=value" strings: the configuration */
	size_t n_env;
	int64_t id;                  /* the app's id in the store, for KV data */
	const char *host;            /* "APP.DOMAIN"; requests a guest sends there stay inside */
	const char *const *outbound; /* allowed outbound URL patterns */
	size_t n_outbound;
	const char *assets_dir; /* static files, preopened as /assets; NULL: none */
	void *owner;            /* the caller's, e.g. its route */
};

/* How a request ended. */
enum run_outcome {
	RUN_DONE,          /* the guest returned or exited; the response is its */
	RUN_TRAPPED,       /* a wasm trap: out of bounds, unreachable, ... */
	RUN_CPU_EXCEEDED,  /* guest code ran longer than limits.cpu_ms */
	RUN_WALL_EXCEEDED, /* the request took longer than limits.wall_ms */
	RUN_BAD_OUTPUT,    /* the guest's output was not a valid response */
	RUN_TOO_BIG,       /* the response passed the pool's response_max */
	RUN_NO_SLOT,       /* every slot of the pool is busy */
	RUN_HOST_ERROR,    /* the host failed (out of memory, ...) */
};

/* A short phrase for an outcome, for logs. */
const char *run_outcome_name(enum run_outcome o);

/* One line for the app's log, produced by a request. */
struct run_log_line {
	const char *stream; /* "stderr", "stdout", "debug", "trap", "panic", "system" */
	char *message;
};

/* The response of a finished request. status is 100..599. Header names and
 * values are validated and hop-by-hop headers are gone. */
struct run_response {
	unsigned status;
	struct run_header *headers; /* name/value point into storage owned here */
	size_t n_headers;
	char *body;
	size_t body_len;
};

/* The app a running instance serves. Borrowed until the instance ends. */
const struct run_app *run_instance_app(const struct run_instance *inst);

/* A request a guest sent to its own app (see struct run_services). */
struct run_subrequest {
	struct run_request req; /* borrowed until done is called */
	/* Completes the subrequest with resp (copied) or, when resp is NULL,
	 * as a failed request. Called once, perhaps before self_request
	 * returns; never after self_cancel. */
	void (*done)(struct run_subrequest *sr, const struct run_response *resp);
	void *data; /* the services' own */
};

/* Called when a suspended instance finishes, from the event loop. */
typedef void (*run_done_fn)(struct run_instance *inst, void *arg);

/* Starts a request on a fresh instance of m in a free slot of pool and runs
 * it until it finishes or waits for something (a timer, an outbound
 * response). *out is the instance; when run_instance_done(*out) is false the
 * instance is suspended and done(inst, arg) will be called when it has
 * finished. req and app must live until then. Caller ends the instance with
 * run_instance_end(). VIV_ERR_BUSY when no slot is free. */
VIV_MUST_CHECK enum viv_err run_instance_start(struct run_pool *pool, struct run_module *m,
                                               const struct run_app *app,
                                               const struct run_request *req, run_done_fn done,
                                               void *arg, struct run_instance **out);

/* True once the instance has finished. */
bool run_instance_done(const struct run_instance *inst);

/* The outcome; meaningful once done. */
enum run_outcome run_instance_outcome(const struct run_instance *inst);

/* The response (for RUN_DONE) or an error page for the other outcomes: the
 * status and a short text body that a user may see. Borrowed until
 * run_instance_end(). */
const struct run_response *run_instance_response(const struct run_instance *inst);

/* The app log lines the request produced, including one that explains a trap
 * or a bad response. Borrowed until run_instance_end(). */
const struct run_log_line *run_instance_logs(const struct run_instance *inst, size_t *n_out);

/* The KV host calls, as counted per instance. */
enum run_kv_op {
	RUN_KV_GET,
	RUN_KV_INSERT,
	RUN_KV_UPSERT,
	RUN_KV_APPEND,
	RUN_KV_REMOVE,
	RUN_KV_OPS
};

/* "get", "insert", "upsert", "append" or "remove". */
const char *run_kv_op_name(enum run_kv_op op);

/* What a finished instance cost and met, for access logs and metrics. */
struct run_instance_stats {
	enum run_outcome outcome;
	/* From run_instance_start() to the guest's entry point (run or
	 * _start), instantiation and _initialize included; 0 when the guest
	 * never got there. */
	uint64_t start_ns;
	uint64_t run_ns; /* from run_instance_start() until the instance finished */
	/* The kind of trap that ended the request ("out_of_bounds",
	 * "unreachable", "stack_exhausted", "panic", "host_error", ...; static
	 * storage), or NULL when none did. Running out of CPU or wall time is
	 * a limit, not a trap. */
	const char *trap;
	bool memory_limited; /* the app's memory limit refused memory the guest asked for */
	uint32_t kv_calls[RUN_KV_OPS];
};

/* Fills *out for a finished instance. */
void run_instance_stats(const struct run_instance *inst, struct run_instance_stats *out);

/* Frees the instance and returns its slot, clean, to the pool. A suspended
 * instance is stopped first. Accepts NULL. */
void run_instance_end(struct run_instance *inst);

/* Runs every pending timer and wakeup of the pool's thread whose time has
 * come; returns the milliseconds until the next one, or -1 for none. Called by
 * the event loop; a thread that only runs instances synchronously calls it in
 * a loop until the instance is done. */
int run_pool_poll(struct run_pool *pool);

/* A file descriptor that becomes readable when run_pool_poll() has work
 * (a timerfd). Borrowed for the life of the pool. */
int run_pool_fd(const struct run_pool *pool);

/* ---- The worker ------------------------------------------------------------------ */

struct run_worker_config {
	const char *datadir;
	const char *store_url; /* PostgreSQL, as store_open_db() takes it; NULL: SQLite */
	const char *domain;    /* apps answer at APP.DOMAIN */
	int listen_fd;         /* bound, listening, shared by every worker */
	unsigned port;         /* the port listen_fd is bound to */
	unsigned index;        /* which worker this is, for logs */
	size_t request_body_max;
	struct run_pool_config pool;
};

/* Serves apps on listen_fd until SIGTERM (then drains in-flight requests).
 * Returns the process exit status. */
int run_worker_main(const struct run_worker_config *cfg);

#endif
