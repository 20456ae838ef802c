/* Private to the runner: what a worker counts about the requests it serves,
 * per app and for itself, and writes out in the Prometheus text format
 * (0.0.4) for the API's /metrics.
 *
 * The worker's event loop thread counts; its writer thread (writer.c)
 * formats and writes the file. Counters are written by the worker thread
 * alone and read by the writer with relaxed atomic loads, so counting takes
 * no lock; the table of apps changes only under the lock, which the writer
 * holds while it formats. */
#ifndef RUNNER_METRICS_H
#define RUNNER_METRICS_H

#include <pthread.h>
#include <uthash.h>

#include "runner.h"
#include "viv.h"

/* Distinct status codes counted per app; further ones are counted as
 * code="other", so that a guest cannot make an app's series unbounded. */
#define RUN_METRICS_CODES 16
/* Kinds of trap counted per app (run_instance_stats() knows 11). */
#define RUN_METRICS_TRAP_KINDS 12
/* Buckets of the two histograms, +Inf included. */
#define RUN_METRICS_REQUEST_BUCKETS 19
#define RUN_METRICS_START_BUCKETS 16

/* The limits counted, as vivarium_limits_total's limit label says them. */
enum run_metrics_limit {
	RUN_METRICS_LIMIT_CPU,
	RUN_METRICS_LIMIT_WALL,
	RUN_METRICS_LIMIT_MEMORY,
	RUN_METRICS_LIMITS
};

struct run_metrics_app {
	UT_hash_handle hh;
	char name[64];
	/* Counters (see the top of this file). */
	uint32_t n_codes;
	struct {
		uint32_t code;
		uint64_t n;
	} codes[RUN_METRICS_CODES];
	uint64_t other_codes;
	uint64_t seconds[RUN_METRICS_REQUEST_BUCKETS]; /* per bucket, not cumulative */
	uint64_t seconds_sum_ns;
	uint32_t n_traps;
	struct {
		const char *kind; /* static storage */
		uint64_t n;
	} traps[RUN_METRICS_TRAP_KINDS];
	uint64_t limits[RUN_METRICS_LIMITS];
	uint64_t kv[RUN_KV_OPS];
	/* The worker's alone, never formatted: how many more access lines the
	 * app's log takes this second, how many requests had none, and whose
	 * log the line that says so goes to (the app's id and the deployment
	 * of its latest request). */
	uint32_t access_budget;
	uint64_t access_unlogged;
	int64_t app_id, deployment_id;
};

struct run_metrics {
	pthread_mutex_t lock; /* over the table's shape: adding and dropping apps */
	struct run_metrics_app *apps;
	uint64_t start[RUN_METRICS_START_BUCKETS]; /* instance starts, per bucket */
	uint64_t start_sum_ns;
	uint64_t instances;     /* live, as last published */
	uint64_t changes;       /* moves whenever a value does */
	uint32_t access_budget; /* what a new app's access_budget starts at */
};

/* An empty set of metrics; every app it adds starts with access_budget
 * access lines. Caller frees with run_metrics_destroy(). */
VIV_MUST_CHECK enum viv_err run_metrics_create(uint32_t access_budget, struct run_metrics **out);
/* Accepts NULL; the writer thread must be gone. */
void run_metrics_destroy(struct run_metrics *m);

/* The app's entry, added on first use (NULL when out of memory). Worker
 * thread only. Borrowed until run_metrics_prune() drops it. */
struct run_metrics_app *run_metrics_app(struct run_metrics *m, const char *name);

/* Counts one request the worker answered for app a (from a client, or from
 * the app itself) with status after total_ns; st (NULL when no instance
 * ran it) says what its instance met. Worker thread only. */
void run_metrics_request(struct run_metrics *m, struct run_metrics_app *a, unsigned status,
                         uint64_t total_ns, const struct run_instance_stats *st);

/* Publishes how many instances are alive. Worker thread only. */
void run_metrics_set_instances(struct run_metrics *m, unsigned live);

/* Drops the apps for which keep(ctx, name) is false (apps that are gone),
 * so that a worker's memory and its file do not grow with every app that
 * ever was. Worker thread only. */
void run_metrics_prune(struct run_metrics *m, bool (*keep)(void *ctx, const char *name), void *ctx);

/* A number that moves whenever a value changed. Any thread. */
uint64_t run_metrics_changes(struct run_metrics *m);

/* Appends every metric in the Prometheus text format 0.0.4 to out. Any
 * thread; holds the lock meanwhile. VIV_ERR_NOMEM or VIV_ERR_TOO_BIG (out's
 * cap) leave out partly written. */
VIV_MUST_CHECK enum viv_err run_metrics_format(struct run_metrics *m, struct viv_buf *out);

#endif
