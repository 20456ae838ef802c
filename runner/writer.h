/* Private to the runner: a worker's writer thread, which does the worker's
 * slow writes away from its event loop. A transaction of app log lines
 * costs tens of microseconds a line, waits while another process holds the
 * database, and now and then checkpoints the WAL with an fsync; writing a
 * file so that it appears whole costs two fsyncs (milliseconds, tens of
 * them on a busy disk). Requests must not wait for any of that. */
#ifndef RUNNER_WRITER_H
#define RUNNER_WRITER_H

#include "metrics.h"
#include "store.h"

struct run_writer;

/* Starts the thread: it writes app log lines into the store at datadir
 * (and db_url, as store_open_db() takes it) through a connection of its
 * own, and about once a second, when they changed, metrics (borrowed until
 * run_writer_stop()) to metrics_path, making its folder (mode 0700) when
 * missing. The detail of a failure goes to err. Caller stops it with
 * run_writer_stop(). */
VIV_MUST_CHECK enum viv_err run_writer_start(const char *datadir, const char *db_url,
                                             struct run_metrics *metrics, const char *metrics_path,
                                             struct run_writer **out, char *err, size_t errlen);

/* Queues n lines for the store and wakes the thread. Takes ownership of
 * every line's message whatever happens (streams are static strings and stay
 * the caller's). Returns how many of them were dropped because the queue
 * was full: the thread fell that far behind (the database was busy, say). */
size_t run_writer_logs(struct run_writer *w, const struct store_log *lines, size_t n);

/* Writes what is queued and the metrics once more, ends the thread and
 * frees it. Accepts NULL. */
void run_writer_stop(struct run_writer *w);

#endif
