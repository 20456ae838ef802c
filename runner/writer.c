/* The writer thread of a worker: app log lines into the store in batches,
 * and the metrics file about once a second, both off the event loop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "writer.h"

/* Lines waiting for the thread before the queue refuses more: about two
 * seconds of a worker's logging at its busiest. */
#define QUEUE_MAX 16384
/* Lines per transaction, so that a KV write of the worker, which needs the
 * same database lock, never waits long. */
#define LINES_PER_TRANSACTION 256
#define METRICS_EVERY_NS 1000000000ull
/* The most text a metrics file may take (about 30,000 apps). */
#define METRICS_TEXT_MAX ((size_t)64 << 20)

struct run_writer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* Under lock. */
	bool stop;
	struct store_log *queue;
	size_t n_queue, alloc_queue;
	/* The thread's own. */
	struct store *st;
	struct run_metrics *metrics;
	char *metrics_path;
	bool metrics_written;
	uint64_t metrics_changes; /* run_metrics_changes() at the last write */
	bool metrics_failing;     /* the last write failed, and the log said so */
};

static void write_logs(struct run_writer *w, struct store_log *lines, size_t n)
{
	size_t i, chunk;
	enum viv_err err;

	for (i = 0; i < n; i += chunk) {
		chunk = n - i < LINES_PER_TRANSACTION ? n - i : LINES_PER_TRANSACTION;
		err = store_logs_append(w->st, lines + i, chunk);
		if (err)
			viv_log(VIV_WARN, "dropped %zu app log lines: %s", chunk,
			        viv_strerror(err));
	}
	for (i = 0; i < n; i++)
		free(lines[i].message);
}

static void write_metrics(struct run_writer *w)
{
	struct viv_buf text;
	enum viv_err err;
	uint64_t changes = run_metrics_changes(w->metrics);

	if (w->metrics_written && changes == w->metrics_changes)
		return;
	viv_buf_init(&text, METRICS_TEXT_MAX);
	err = run_metrics_format(w->metrics, &text);
	if (!err)
		err = viv_write_file_atomic(w->metrics_path, text.data ? text.data : "", text.len,
		                            0600);
	viv_buf_free(&text);
	if (err && !w->metrics_failing)
		viv_log(VIV_ERROR, "cannot write the worker's metrics to %s: %s", w->metrics_path,
		        viv_strerror(err));
	w->metrics_failing = err != VIV_OK;
	if (!err) {
		w->metrics_written = true;
		w->metrics_changes = changes;
	}
}

static void deadline_ts(uint64_t mono_ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(mono_ns / 1000000000u);
	ts->tv_nsec = (long)(mono_ns % 1000000000u);
}

static void *writer_main(void *arg)
{
	struct run_writer *w = arg;
	struct store_log *batch = NULL, *swap;
	size_t n, alloc = 0, swap_alloc;
	uint64_t next_metrics = viv_mono_ns();
	struct timespec ts;
	bool stop = false;

	pthread_mutex_lock(&w->lock);
	while (!stop) {
		deadline_ts(next_metrics, &ts);
		while (!w->stop && !w->n_queue && viv_mono_ns() < next_metrics)
			pthread_cond_timedwait(&w->wake, &w->lock, &ts);
		stop = w->stop;
		/* Take the queue and leave the emptied array of the last
		 * round in its place. */
		swap = w->queue;
		swap_alloc = w->alloc_queue;
		n = w->n_queue;
		w->queue = batch;
		w->alloc_queue = alloc;
		w->n_queue = 0;
		batch = swap;
		alloc = swap_alloc;
		pthread_mutex_unlock(&w->lock);
		write_logs(w, batch, n);
		if (stop || viv_mono_ns() >= next_metrics) {
			write_metrics(w);
			next_metrics = viv_mono_ns() + METRICS_EVERY_NS;
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	free(batch);
	return NULL;
}

size_t run_writer_logs(struct run_writer *w, const struct store_log *lines, size_t n)
{
	size_t take, i;

	pthread_mutex_lock(&w->lock);
	if (w->n_queue + n > w->alloc_queue && w->alloc_queue < QUEUE_MAX) {
		size_t na = w->alloc_queue ? w->alloc_queue * 2 : 1024;
		struct store_log *nq;

		while (na < w->n_queue + n && na < QUEUE_MAX)
			na *= 2;
		if (na > QUEUE_MAX)
			na = QUEUE_MAX;
		nq = realloc(w->queue, na * sizeof(*nq));
		if (nq) {
			w->queue = nq;
			w->alloc_queue = na;
		}
	}
	take = w->alloc_queue - w->n_queue < n ? w->alloc_queue - w->n_queue : n;
	memcpy(w->queue + w->n_queue, lines, take * sizeof(*lines));
	w->n_queue += take;
	if (take)
		pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (i = take; i < n; i++)
		free(lines[i].message);
	return n - take;
}

static void writer_free(struct run_writer *w)
{
	size_t i;

	for (i = 0; i < w->n_queue; i++)
		free(w->queue[i].message);
	free(w->queue);
	store_close(w->st);
	free(w->metrics_path);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

enum viv_err run_writer_start(const char *datadir, const char *db_url, struct run_metrics *metrics,
                              const char *metrics_path, struct run_writer **out, char *err,
                              size_t errlen)
{
	struct run_writer *w;
	pthread_condattr_t ca;
	sigset_t all, old;
	char *dir = NULL, *slash;
	enum viv_err e = VIV_ERR_NOMEM;
	int rc;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return VIV_ERR_NOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	w->metrics = metrics;
	w->metrics_path = strdup(metrics_path);
	dir = strdup(metrics_path);
	if (!w->metrics_path || !dir)
		goto fail;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		/* A worker that cannot make the folder still serves: the
		 * writes that fail say so in the operator's log. */
		if (viv_mkdirs(dir, 0700))
			viv_log(VIV_ERROR, "cannot make %s: %s", dir, strerror(errno));
	}
	e = store_open_db(datadir, db_url, &w->st, err, errlen);
	if (!e)
		e = store_sync_relaxed(w->st);
	if (e)
		goto fail;
	/* The thread takes no signals: SIGTERM and SIGINT are the event
	 * loop's, and the CPU tick is sent to the worker thread alone. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		viv_errf(err, errlen, "cannot start the writer thread: %s", strerror(rc));
		e = VIV_ERR_INTERNAL;
		goto fail;
	}
	free(dir);
	*out = w;
	return VIV_OK;
fail:
	if (e == VIV_ERR_NOMEM)
		viv_errf(err, errlen, "out of memory");
	free(dir);
	writer_free(w);
	return e;
}

void run_writer_stop(struct run_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	writer_free(w);
}
