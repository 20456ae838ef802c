/* A worker's metrics: counters and histograms kept in memory by the event
 * loop thread without locks, and their text in the Prometheus exposition
 * format 0.0.4, made by the writer thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* Counters have one writer, the worker thread; the writer thread reads them
 * while the worker may be counting. Relaxed atomic loads and stores make
 * that well defined and cost what plain ones do (an add is not atomic, and
 * need not be: nobody else adds). */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ADD(x, d) STORE(x, LOAD(x) + (d))

/* Upper bounds of the histograms' buckets, in nanoseconds and as their le
 * labels say them; the last bucket, +Inf, has no entry. */
static const uint64_t request_bounds_ns[RUN_METRICS_REQUEST_BUCKETS - 1] = {
        100000,     250000,     500000,     1000000,     2500000,     5000000,
        10000000,   25000000,   50000000,   100000000,   250000000,   500000000,
        1000000000, 2500000000, 5000000000, 10000000000, 30000000000, 60000000000,
};
static const char *const request_les[RUN_METRICS_REQUEST_BUCKETS] = {
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
        "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "30",   "60",    "+Inf",
};
static const uint64_t start_bounds_ns[RUN_METRICS_START_BUCKETS - 1] = {
        1000,   2500,    5000,    10000,   25000,    50000,    100000,    250000,
        500000, 1000000, 2500000, 5000000, 10000000, 25000000, 100000000,
};
static const char *const start_les[RUN_METRICS_START_BUCKETS] = {
        "0.000001", "0.0000025", "0.000005", "0.00001", "0.000025", "0.00005", "0.0001", "0.00025",
        "0.0005",   "0.001",     "0.0025",   "0.005",   "0.01",     "0.025",   "0.1",    "+Inf",
};
static const char *const limit_names[RUN_METRICS_LIMITS] = {"cpu", "wall", "memory"};

enum viv_err run_metrics_create(uint32_t access_budget, struct run_metrics **out)
{
	struct run_metrics *m;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return VIV_ERR_NOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return VIV_ERR_INTERNAL;
	}
	m->access_budget = access_budget;
	*out = m;
	return VIV_OK;
}

void run_metrics_destroy(struct run_metrics *m)
{
	struct run_metrics_app *a, *tmp;

	if (!m)
		return;
	HASH_ITER(hh, m->apps, a, tmp)
	{
		HASH_DEL(m->apps, a);
		free(a);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct run_metrics_app *run_metrics_app(struct run_metrics *m, const char *name)
{
	struct run_metrics_app *a;
	size_t len = strlen(name);

	HASH_FIND(hh, m->apps, name, len, a);
	if (a || len >= sizeof(a->name))
		return a;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	memcpy(a->name, name, len + 1);
	a->access_budget = m->access_budget;
	pthread_mutex_lock(&m->lock);
	HASH_ADD_STR(m->apps, name, a);
	pthread_mutex_unlock(&m->lock);
	return a;
}

/* Adds one observation of ns to a histogram of n buckets. */
static void observe(uint64_t *buckets, const uint64_t *bounds, size_t n, uint64_t *sum, uint64_t ns)
{
	size_t i = 0;

	while (i < n - 1 && ns > bounds[i])
		i++;
	ADD(buckets[i], 1);
	ADD(*sum, ns);
}

static void count_code(struct run_metrics_app *a, unsigned status)
{
	uint32_t i, n = LOAD(a->n_codes);

	for (i = 0; i < n; i++) {
		if (a->codes[i].code == status) {
			ADD(a->codes[i].n, 1);
			return;
		}
	}
	if (n == RUN_METRICS_CODES) {
		ADD(a->other_codes, 1);
		return;
	}
	/* The new entry is whole before the writer can see it. */
	STORE(a->codes[n].code, status);
	STORE(a->codes[n].n, 1);
	__atomic_store_n(&a->n_codes, n + 1, __ATOMIC_RELEASE);
}

static void count_trap(struct run_metrics_app *a, const char *kind)
{
	uint32_t i, n = LOAD(a->n_traps);

	for (i = 0; i < n; i++) {
		if (strcmp(a->traps[i].kind, kind) == 0) {
			ADD(a->traps[i].n, 1);
			return;
		}
	}
	if (n == RUN_METRICS_TRAP_KINDS)
		return;
	STORE(a->traps[n].kind, kind);
	STORE(a->traps[n].n, 1);
	__atomic_store_n(&a->n_traps, n + 1, __ATOMIC_RELEASE);
}

void run_metrics_request(struct run_metrics *m, struct run_metrics_app *a, unsigned status,
                         uint64_t total_ns, const struct run_instance_stats *st)
{
	size_t i;

	count_code(a, status);
	observe(a->seconds, request_bounds_ns, RUN_METRICS_REQUEST_BUCKETS, &a->seconds_sum_ns,
	        total_ns);
	if (st) {
		if (st->start_ns)
			observe(m->start, start_bounds_ns, RUN_METRICS_START_BUCKETS,
			        &m->start_sum_ns, st->start_ns);
		if (st->trap)
			count_trap(a, st->trap);
		if (st->outcome == RUN_CPU_EXCEEDED)
			ADD(a->limits[RUN_METRICS_LIMIT_CPU], 1);
		else if (st->outcome == RUN_WALL_EXCEEDED)
			ADD(a->limits[RUN_METRICS_LIMIT_WALL], 1);
		if (st->memory_limited)
			ADD(a->limits[RUN_METRICS_LIMIT_MEMORY], 1);
		for (i = 0; i < RUN_KV_OPS; i++) {
			if (st->kv_calls[i])
				ADD(a->kv[i], st->kv_calls[i]);
		}
	}
	ADD(m->changes, 1);
}

void run_metrics_set_instances(struct run_metrics *m, unsigned live)
{
	if (LOAD(m->instances) == live)
		return;
	STORE(m->instances, live);
	ADD(m->changes, 1);
}

void run_metrics_prune(struct run_metrics *m, bool (*keep)(void *ctx, const char *name), void *ctx)
{
	struct run_metrics_app *a, *tmp;

	HASH_ITER(hh, m->apps, a, tmp)
	{
		if (keep(ctx, a->name))
			continue;
		pthread_mutex_lock(&m->lock);
		HASH_DEL(m->apps, a);
		pthread_mutex_unlock(&m->lock);
		free(a);
		ADD(m->changes, 1);
	}
}

uint64_t run_metrics_changes(struct run_metrics *m)
{
	return LOAD(m->changes);
}

/* ---- The text format ------------------------------------------------------------------ */

/* A label value as the format wants it: backslash, double quote and line
 * feed escaped. App names never need it; the format's rules hold anyway. */
static enum viv_err put_label(struct viv_buf *b, const char *name, const char *value)
{
	enum viv_err err = viv_buf_printf(b, "%s=\"", name);
	const char *s;

	for (s = value; !err && *s; s++) {
		if (*s == '\\')
			err = viv_buf_append(b, "\\\\", 2);
		else if (*s == '"')
			err = viv_buf_append(b, "\\\"", 2);
		else if (*s == '\n')
			err = viv_buf_append(b, "\\n", 2);
		else
			err = viv_buf_append(b, s, 1);
	}
	return err ? err : viv_buf_append(b, "\"", 1);
}

/* One sample: NAME{app="...",LABEL="..."} VALUE, where app, label and
 * value may each be absent (NULL). */
static enum viv_err put_sample(struct viv_buf *b, const char *metric, const char *app,
                               const char *label, const char *value, const char *number)
{
	enum viv_err err = viv_buf_append(b, metric, strlen(metric));

	if (!err && (app || label))
		err = viv_buf_append(b, "{", 1);
	if (!err && app)
		err = put_label(b, "app", app);
	if (!err && app && label)
		err = viv_buf_append(b, ",", 1);
	if (!err && label)
		err = put_label(b, label, value);
	if (!err && (app || label))
		err = viv_buf_append(b, "}", 1);
	if (!err)
		err = viv_buf_printf(b, " %s\n", number);
	return err;
}

static enum viv_err put_count(struct viv_buf *b, const char *metric, const char *app,
                              const char *label, const char *value, uint64_t n)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
	return put_sample(b, metric, app, label, value, num);
}

static enum viv_err put_header(struct viv_buf *b, const char *metric, const char *type,
                               const char *help)
{
	return viv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* A histogram's samples: cumulative buckets, the sum in seconds, the
 * count. The buckets are read once, so the count is their total. */
static enum viv_err put_histogram(struct viv_buf *b, const char *metric, const char *app,
                                  const uint64_t *buckets, const char *const *les, size_t n,
                                  const uint64_t *sum_ns)
{
	char name[96], num[48];
	uint64_t total = 0, sum = LOAD(*sum_ns);
	enum viv_err err = VIV_OK;
	size_t i;

	snprintf(name, sizeof(name), "%s_bucket", metric);
	for (i = 0; !err && i < n; i++) {
		total += LOAD(buckets[i]);
		err = put_count(b, name, app, "le", les[i], total);
	}
	snprintf(name, sizeof(name), "%s_sum", metric);
	snprintf(num, sizeof(num), "%llu.%09llu", (unsigned long long)(sum / 1000000000u),
	         (unsigned long long)(sum % 1000000000u));
	if (!err)
		err = put_sample(b, name, app, NULL, NULL, num);
	snprintf(name, sizeof(name), "%s_count", metric);
	if (!err)
		err = put_count(b, name, app, NULL, NULL, total);
	return err;
}

static enum viv_err put_requests(struct viv_buf *b, struct run_metrics_app *a)
{
	uint32_t i, n = __atomic_load_n(&a->n_codes, __ATOMIC_ACQUIRE);
	enum viv_err err = VIV_OK;
	char code[12];

	for (i = 0; !err && i < n; i++) {
		snprintf(code, sizeof(code), "%u", (unsigned)LOAD(a->codes[i].code));
		err = put_count(b, "vivarium_requests_total", a->name, "code", code,
		                LOAD(a->codes[i].n));
	}
	if (!err && LOAD(a->other_codes))
		err = put_count(b, "vivarium_requests_total", a->name, "code", "other",
		                LOAD(a->other_codes));
	return err;
}

static enum viv_err put_traps(struct viv_buf *b, struct run_metrics_app *a)
{
	uint32_t i, n = __atomic_load_n(&a->n_traps, __ATOMIC_ACQUIRE);
	enum viv_err err = VIV_OK;

	for (i = 0; !err && i < n; i++)
		err = put_count(b, "vivarium_traps_total", a->name, "kind", LOAD(a->traps[i].kind),
		                LOAD(a->traps[i].n));
	return err;
}

static enum viv_err put_limits(struct viv_buf *b, struct run_metrics_app *a)
{
	enum viv_err err = VIV_OK;
	size_t i;

	for (i = 0; !err && i < RUN_METRICS_LIMITS; i++)
		err = put_count(b, "vivarium_limits_total", a->name, "limit", limit_names[i],
		                LOAD(a->limits[i]));
	return err;
}

static enum viv_err put_kv(struct viv_buf *b, struct run_metrics_app *a)
{
	enum viv_err err = VIV_OK;
	size_t i;

	for (i = 0; !err && i < RUN_KV_OPS; i++)
		err = put_count(b, "vivarium_kv_calls_total", a->name, "op",
		                run_kv_op_name((enum run_kv_op)i), LOAD(a->kv[i]));
	return err;
}

static enum viv_err put_seconds(struct viv_buf *b, struct run_metrics_app *a)
{
	return put_histogram(b, "vivarium_request_seconds", a->name, a->seconds, request_les,
	                     RUN_METRICS_REQUEST_BUCKETS, &a->seconds_sum_ns);
}

/* The families of per-app series: the format wants each family's samples
 * together, after its HELP and TYPE. */
static const struct {
	const char *metric, *type, *help;
	enum viv_err (*put)(struct viv_buf *b, struct run_metrics_app *a);
} per_app[] = {
        {"vivarium_requests_total", "counter",
         "Requests this worker answered for each app, by HTTP status code.", put_requests},
        {"vivarium_request_seconds", "histogram",
         "Time from a request reaching the worker to its response, per app.", put_seconds},
        {"vivarium_traps_total", "counter",
         "Requests of each app that ended in a trap, by kind of trap.", put_traps},
        {"vivarium_limits_total", "counter",
         "Requests of each app stopped by, or refused memory by, one of its limits.", put_limits},
        {"vivarium_kv_calls_total", "counter", "KV host calls of each app, by operation.", put_kv},
};

enum viv_err run_metrics_format(struct run_metrics *m, struct viv_buf *out)
{
	struct run_metrics_app *a, *tmp;
	enum viv_err err = VIV_OK;
	char num[24];
	size_t f;

	pthread_mutex_lock(&m->lock);
	for (f = 0; !err && f < sizeof(per_app) / sizeof(per_app[0]); f++) {
		err = put_header(out, per_app[f].metric, per_app[f].type, per_app[f].help);
		HASH_ITER(hh, m->apps, a, tmp)
		{
			if (!err)
				err = per_app[f].put(out, a);
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (!err)
		err = put_header(out, "vivarium_instance_start_seconds", "histogram",
		                 "Time to start a fresh instance, up to the guest's entry point.");
	if (!err)
		err = put_histogram(out, "vivarium_instance_start_seconds", NULL, m->start,
		                    start_les, RUN_METRICS_START_BUCKETS, &m->start_sum_ns);
	if (!err)
		err = put_header(out, "vivarium_instances", "gauge",
		                 "Instances alive in this worker.");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)LOAD(m->instances));
	if (!err)
		err = put_sample(out, "vivarium_instances", NULL, NULL, NULL, num);
	return err;
}
