/* App logs: lines that guests and the platform write while serving, kept
 * per app up to a cap and read back in order for `viv logs`. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const streams[] = {"stdout", "stderr", "debug", "trap",
                                      "panic",  "system", "access"};

static bool stream_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		if (strcmp(s, streams[i]) == 0)
			return true;
	}
	return false;
}

static const char sql_log_insert[] =
        "INSERT INTO app_logs (app_id, deployment_id, ts, stream, message)"
        " VALUES (?1, ?2, ?3, ?4, ?5)";
/* Deletes all but the newest ?2 lines of an app, walking the (app_id, id)
 * index from the newest end. */
static const char sql_log_trim[] =
        "DELETE FROM app_logs WHERE app_id = ?1 AND id <= ("
        " SELECT id FROM app_logs WHERE app_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)";

static enum viv_err log_insert(struct store *st, const struct store_log *line, int64_t now)
{
	struct store_stmt *stmt = NULL;
	size_t len = strlen(line->message);
	enum viv_err err;

	if (len > STORE_LOG_LINE_MAX)
		len = viv_utf8_cut(line->message, STORE_LOG_LINE_MAX);
	err = store_prepare(st, sql_log_insert, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, line->app_id);
	store_bind_id(st, stmt, 2, line->deployment_id);
	store_bind_int64(st, stmt, 3, line->ts ? line->ts : now);
	store_bind_text(st, stmt, 4, line->stream);
	store_bind_textn(st, stmt, 5, line->message, len);
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

static enum viv_err log_trim(struct store *st, int64_t app_id)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_log_trim, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_int64(st, stmt, 2, STORE_LOG_LINES_PER_APP);
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Trims each app that lines touched once. */
static enum viv_err trim_touched(struct store *st, const struct store_log *lines, size_t n)
{
	enum viv_err err = VIV_OK;
	int64_t *ids;
	size_t i;

	ids = calloc(n, sizeof(*ids));
	if (!ids)
		return VIV_ERR_NOMEM;
	for (i = 0; i < n; i++)
		ids[i] = lines[i].app_id;
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (i = 0; !err && i < n; i++) {
		if (i == 0 || ids[i] != ids[i - 1])
			err = log_trim(st, ids[i]);
	}
	free(ids);
	return err;
}

enum viv_err store_logs_append(struct store *st, const struct store_log *lines, size_t n)
{
	enum viv_err err;
	int64_t now = viv_now_ms();
	size_t i;

	if (n == 0)
		return VIV_OK;
	if (!lines)
		return VIV_ERR_INVALID;
	/* One bad line would fail the whole transaction, so check them all
	 * before starting it. */
	for (i = 0; i < n; i++) {
		if (lines[i].app_id <= 0 || lines[i].deployment_id < 0 ||
		    !stream_valid(lines[i].stream) || !lines[i].message)
			return VIV_ERR_INVALID;
	}
	err = store_begin(st);
	if (err)
		return err;
	for (i = 0; !err && i < n; i++)
		err = log_insert(st, &lines[i], now);
	if (!err)
		err = trim_touched(st, lines, n);
	if (!err)
		err = store_commit(st);
	store_rollback(st);
	return err;
}

#define LOG_COLUMNS "id, app_id, deployment_id, ts, stream, message"

static const char sql_log_after[] = "SELECT " LOG_COLUMNS " FROM app_logs"
                                    " WHERE app_id = ?1 AND id > ?3 ORDER BY id LIMIT ?2";
static const char sql_log_tail[] = "SELECT * FROM (SELECT " LOG_COLUMNS " FROM app_logs"
                                   " WHERE app_id = ?1 ORDER BY id DESC LIMIT ?2) AS t ORDER BY id";

static enum viv_err read_log(struct store_stmt *stmt, void *elem)
{
	struct store_log *line = elem;
	enum viv_err err;

	memset(line, 0, sizeof(*line));
	line->id = store_col_int64(stmt, 0);
	line->app_id = store_col_int64(stmt, 1);
	line->deployment_id = store_col_int64(stmt, 2);
	line->ts = store_col_int64(stmt, 3);
	err = store_col_text_or(stmt, 4, "", &line->stream);
	if (!err)
		err = store_col_text_or(stmt, 5, "", &line->message);
	return err;
}

static void log_clear(void *elem)
{
	struct store_log *line = elem;

	free(line->stream);
	free(line->message);
}

enum viv_err store_logs_get(struct store *st, const char *app, int64_t after_id, size_t limit,
                            struct store_log **out, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	int64_t app_id;
	void *lines;

	*out = NULL;
	*n_out = 0;
	err = store_app_id(st, app, &app_id);
	if (err)
		return err;
	err = store_prepare(st, after_id > 0 ? sql_log_after : sql_log_tail, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_count(st, stmt, 2, limit);
	if (after_id > 0)
		store_bind_int64(st, stmt, 3, after_id);
	err = store_rows_collect(st, stmt, sizeof(**out), read_log, log_clear, &lines, n_out);
	if (!err)
		*out = lines;
	return err;
}

void store_logs_free(struct store_log *lines, size_t n)
{
	store_rows_free(lines, n, sizeof(*lines), log_clear);
}
