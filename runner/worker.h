/* Private to the runner: the parts of a worker process.
 *   worker.c   the process: its libh2o event loop, its sandbox pool, its
 *              tick, stopping and draining
 *   serve.c    requests: routing by Host, static files, instances, the
 *              requests apps send to themselves
 *   account.c  what each request costs and says: metrics, access lines and
 *              app log lines, handed to the writer thread */
#ifndef RUNNER_WORKER_H
#define RUNNER_WORKER_H

#include <h2o.h>

#include "routes.h"
#include "runner_int.h"

struct run_account;

/* One worker: everything its callbacks reach, through h2o's own data
 * pointers (the handler, the sockets) rather than a global. */
struct worker {
	const struct run_worker_config *cfg;
	h2o_globalconf_t conf;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept;
	h2o_socket_t *listener;
	h2o_socket_t *pool_sock; /* the pool's descriptor */
	h2o_timeout_t tick_timeout;
	h2o_timeout_entry_t tick; /* every second: budgets, gauge, routes */
	/* Accepting paused while the process has no descriptor to spare. */
	h2o_timeout_t accept_pause_timeout;
	h2o_timeout_entry_t accept_resume;
	uint64_t accept_pauses; /* how many times, for the log */
	struct run_pool *pool;
	struct run_routes *routes;
	uint64_t pruned_gen; /* the routes generation metrics were pruned for */
	uint64_t started_ns; /* when it started serving, for readiness */
	struct run_account *acct;
};

/* ---- Requests (serve.c) ------------------------------------------------------------------ */

/* Opens the worker's routes (its own store connection) and registers the
 * handler that serves every request on path. The detail of a failure goes
 * to err. */
VIV_MUST_CHECK enum viv_err run_serve_open(struct worker *w, h2o_pathconf_t *path, char *err,
                                           size_t errlen);

/* What the worker's pool offers its guests: the store for KV data, and
 * requests apps send to themselves served by the worker. */
void run_serve_services(struct worker *w, struct run_services *out);

/* Every second: reloads the routes if they changed, and then drops the
 * metrics of apps that are gone. */
void run_serve_tick(struct worker *w);

/* How many apps are routable now. */
size_t run_serve_routable(struct worker *w);

/* ---- Accounting (account.c) -------------------------------------------------------------- */

/* Starts the writer thread (app logs into the store at datadir and db_url,
 * metrics into DATADIR/run/metrics/worker-INDEX.prom) and the counting;
 * batches of log lines go out within 200 ms, on a timeout of loop. The
 * detail of a failure goes to err. Caller stops it with run_account_stop(). */
VIV_MUST_CHECK enum viv_err run_account_start(const char *datadir, const char *db_url,
                                              unsigned index, h2o_loop_t *loop,
                                              struct run_account **out, char *err, size_t errlen);

/* Hands what is left to the writer, publishes live (the instances still
 * alive) and stops the writer thread. */
void run_account_stop(struct run_account *a, unsigned live);

/* Counts a request the worker answered for route's app in its metrics and
 * gives it its access line. st (NULL when no instance finished) is what the
 * instance that answered met. The strings are borrowed for the call. */
void run_account_request(struct run_account *a, const struct run_route *r, const char *method,
                         size_t method_len, const char *target, size_t target_len, unsigned status,
                         uint64_t t0, const struct run_instance_stats *st, enum run_access_by by);

/* Keeps an instance's log lines for route's app. They are copied. */
void run_account_logs(struct run_account *a, const struct run_route *r,
                      const struct run_log_line *lines, size_t n);

/* Every second: new access budgets (after a line for each app whose
 * requests went past the last one), and live as the instances gauge. */
void run_account_tick(struct run_account *a, unsigned live);

/* Drops the metrics of apps for which keep(ctx, name) is false. */
void run_account_prune(struct run_account *a, bool (*keep)(void *ctx, const char *name), void *ctx);

#endif
