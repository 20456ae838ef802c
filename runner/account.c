/* What a worker's requests cost and say: each counts in the worker's
 * metrics and gets an access line in its app's log, within a budget of
 * lines a second; instances' log lines join them in batches that the
 * writer thread takes off the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "store.h"
#include "worker.h"
#include "writer.h"

/* App log lines kept in memory before they go to the writer thread, and
 * how long a line may wait. */
#define LOG_BATCH_MAX 512
#define LOG_FLUSH_MS 200
/* Access lines an app's log takes from one worker in a second. An app's log
 * keeps its newest STORE_LOG_LINES_PER_APP lines, so more would be deleted
 * about as soon as written, and each costs the store more than the request
 * it describes costs the worker; the requests past it are counted in one
 * line a second instead. */
#define ACCESS_LINES_PER_SECOND STORE_LOG_LINES_PER_APP

struct run_account {
	h2o_loop_t *loop;
	struct run_metrics *metrics;
	struct run_writer *writer;
	struct store_log logs[LOG_BATCH_MAX];
	size_t n_logs;
	h2o_timeout_t flush_timeout;
	h2o_timeout_entry_t flush;
	size_t dropped_logs; /* lines the writer's full queue refused */
};

/* ---- App logs ---------------------------------------------------------------------- */

/* Hands the batch to the writer thread. */
static void flush_logs(struct run_account *a)
{
	size_t dropped;

	if (!a->n_logs)
		return;
	dropped = run_writer_logs(a->writer, a->logs, a->n_logs);
	if (dropped && !a->dropped_logs)
		viv_log(VIV_WARN, "the store is behind: app log lines are being dropped");
	a->dropped_logs += dropped;
	a->n_logs = 0;
}

static void on_flush(h2o_timeout_entry_t *e)
{
	struct run_account *a =
	        (struct run_account *)((char *)e - offsetof(struct run_account, flush));

	flush_logs(a);
}

/* Adds one line to the batch. Takes ownership of message; NULL (out of
 * memory) adds nothing. */
static void keep_line(struct run_account *a, int64_t app_id, int64_t deployment_id,
                      const char *stream, char *message)
{
	struct store_log *l;

	if (!message)
		return;
	if (a->n_logs == LOG_BATCH_MAX)
		flush_logs(a);
	l = &a->logs[a->n_logs++];
	l->id = 0;
	l->app_id = app_id;
	l->deployment_id = deployment_id;
	l->ts = viv_now_ms();
	l->stream = (char *)stream;
	l->message = message;
	if (!h2o_timeout_is_linked(&a->flush))
		h2o_timeout_link(a->loop, &a->flush_timeout, &a->flush);
}

void run_account_logs(struct run_account *a, const struct run_route *r,
                      const struct run_log_line *lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		keep_line(a, r->app_id, r->deployment_id, lines[i].stream,
		          strdup(lines[i].message));
}

/* ---- Requests ---------------------------------------------------------------------------- */

void run_account_request(struct run_account *a, const struct run_route *r, const char *method,
                         size_t method_len, const char *target, size_t target_len, unsigned status,
                         uint64_t t0, const struct run_instance_stats *st, enum run_access_by by)
{
	struct run_metrics_app *ma = run_metrics_app(a->metrics, r->name);
	struct run_access acc;
	char line[RUN_ACCESS_LINE_MAX];
	size_t len;

	acc.total_ns = viv_mono_ns() - t0;
	if (ma) {
		run_metrics_request(a->metrics, ma, status, acc.total_ns, st);
		ma->app_id = r->app_id;
		ma->deployment_id = r->deployment_id;
		if (!ma->access_budget) {
			ma->access_unlogged++;
			return;
		}
		ma->access_budget--;
	}
	acc.method = method;
	acc.method_len = method_len;
	acc.target = target;
	acc.target_len = target_len;
	acc.status = status;
	/* An instance stopped because its client went away took the whole
	 * time. */
	acc.instance_ns = st ? st->run_ns : acc.total_ns;
	acc.by = by;
	len = run_access_line(line, &acc);
	keep_line(a, r->app_id, r->deployment_id, "access", strndup(line, len));
}

void run_account_tick(struct run_account *a, unsigned live)
{
	struct run_metrics_app *ma, *tmp;
	char *msg;

	HASH_ITER(hh, a->metrics->apps, ma, tmp)
	{
		ma->access_budget = ACCESS_LINES_PER_SECOND;
		if (!ma->access_unlogged)
			continue;
		if (asprintf(&msg,
		             "%llu more requests in the last second have no access line: "
		             "a worker logs at most %u a second for each app",
		             (unsigned long long)ma->access_unlogged,
		             (unsigned)ACCESS_LINES_PER_SECOND) >= 0)
			keep_line(a, ma->app_id, ma->deployment_id, "system", msg);
		ma->access_unlogged = 0;
	}
	run_metrics_set_instances(a->metrics, live);
}

void run_account_prune(struct run_account *a, bool (*keep)(void *ctx, const char *name), void *ctx)
{
	run_metrics_prune(a->metrics, keep, ctx);
}

/* ---- Start and stop ------------------------------------------------------------------------ */

enum viv_err run_account_start(const char *datadir, const char *db_url, unsigned index,
                               h2o_loop_t *loop, struct run_account **out, char *err, size_t errlen)
{
	struct run_account *a;
	char *metrics_path = NULL;
	enum viv_err e;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return VIV_ERR_NOMEM;
	a->loop = loop;
	e = run_metrics_create(ACCESS_LINES_PER_SECOND, &a->metrics);
	if (!e && asprintf(&metrics_path, "%s/run/metrics/worker-%u.prom", datadir, index) < 0) {
		metrics_path = NULL;
		e = VIV_ERR_NOMEM;
	}
	if (!e)
		e = run_writer_start(datadir, db_url, a->metrics, metrics_path, &a->writer, err,
		                     errlen);
	free(metrics_path);
	if (e) {
		run_metrics_destroy(a->metrics);
		free(a);
		return e;
	}
	h2o_timeout_init(loop, &a->flush_timeout, LOG_FLUSH_MS);
	a->flush.cb = on_flush;
	*out = a;
	return VIV_OK;
}

void run_account_stop(struct run_account *a, unsigned live)
{
	if (!a)
		return;
	flush_logs(a);
	if (h2o_timeout_is_linked(&a->flush))
		h2o_timeout_unlink(&a->flush);
	h2o_timeout_dispose(a->loop, &a->flush_timeout);
	run_metrics_set_instances(a->metrics, live);
	run_writer_stop(a->writer);
	run_metrics_destroy(a->metrics);
	free(a);
}
