/* Build metrics for /metrics: the counters a trigger keeps as builds end
 * (schema 4), and the queue as it is now. */
#include "store_int.h"

#include <string.h>

static const char sql_counts[] = "SELECT result, count, seconds FROM build_counts";
static const char sql_buckets[] =
        "SELECT le, count FROM build_seconds_buckets ORDER BY le LIMIT ?1";
static const char sql_queue[] = "SELECT count(*) FILTER (WHERE status = 'queued'),"
                                " count(*) FILTER (WHERE status = 'building')"
                                " FROM deployments WHERE status IN ('queued', 'building')";

static uint64_t col_count(struct store_stmt *stmt, int col)
{
	int64_t v = store_col_int64(stmt, col);

	return v > 0 ? (uint64_t)v : 0;
}

enum viv_err store_build_metrics(struct store *st, struct store_build_metrics *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	err = store_prepare(st, sql_counts, &stmt);
	if (err)
		return err;
	for (err = store_step(st, stmt, &row); !err && row; err = store_step(st, stmt, &row)) {
		const char *result = store_col_str(stmt, 0);
		bool ready = result && strcmp(result, "ready") == 0;

		*(ready ? &out->ready : &out->failed) = col_count(stmt, 1);
		*(ready ? &out->ready_seconds : &out->failed_seconds) = store_col_double(stmt, 2);
	}
	store_release(st, stmt);
	if (!err)
		err = store_prepare(st, sql_buckets, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, STORE_BUILD_BUCKETS);
	for (err = store_step(st, stmt, &row); !err && row && i < STORE_BUILD_BUCKETS;
	     err = store_step(st, stmt, &row), i++) {
		out->le[i] = store_col_double(stmt, 0);
		out->le_count[i] = col_count(stmt, 1);
	}
	store_release(st, stmt);
	if (!err)
		err = store_prepare(st, sql_queue, &stmt);
	if (err)
		return err;
	err = store_step(st, stmt, &row);
	if (!err && row) {
		out->queued = col_count(stmt, 0);
		out->building = col_count(stmt, 1);
	}
	store_release(st, stmt);
	return err;
}
