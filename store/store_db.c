/* The SQLite layer under every store query: cached prepared statements,
 * binding and stepping that never lose SQLite's error text, and write
 * transactions. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

enum viv_err store_db_error(struct store *st, int rc, const char *what)
{
	viv_log(VIV_ERROR, "store: %s: %s (%s)", what ? what : "sqlite", sqlite3_errmsg(st->db),
	        sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return VIV_ERR_NOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return VIV_ERR_BUSY;
	default:
		return VIV_ERR_DB;
	}
}

static struct store_stmt_slot *stmt_slot(struct store *st, const sqlite3_stmt *stmt)
{
	size_t i;

	for (i = 0; i < st->n_stmts; i++) {
		if (st->stmts[i].stmt == stmt)
			return &st->stmts[i];
	}
	return NULL;
}

enum viv_err store_prepare(struct store *st, const char *sql, sqlite3_stmt **out)
{
	sqlite3_stmt *stmt = NULL;
	size_t i;
	int rc;

	*out = NULL;
	for (i = 0; i < st->n_stmts; i++) {
		if (st->stmts[i].sql == sql) {
			*out = st->stmts[i].stmt;
			return VIV_OK;
		}
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
	if (rc != SQLITE_OK)
		return store_db_error(st, rc, sql);
	if (st->n_stmts < STORE_STMT_CACHE) {
		st->stmts[st->n_stmts].sql = sql;
		st->stmts[st->n_stmts].stmt = stmt;
		st->n_stmts++;
	}
	*out = stmt;
	return VIV_OK;
}

void store_release(struct store *st, sqlite3_stmt *stmt)
{
	st->bind_err = VIV_OK;
	if (!stmt)
		return;
	if (!stmt_slot(st, stmt)) {
		sqlite3_finalize(stmt);
		return;
	}
	/* The result of reset repeats the last step's error, already reported. */
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

static void bind_check(struct store *st, sqlite3_stmt *stmt, int rc)
{
	if (rc == SQLITE_OK || st->bind_err)
		return;
	st->bind_err = store_db_error(st, rc, sqlite3_sql(stmt));
}

void store_bind_int64(struct store *st, sqlite3_stmt *stmt, int idx, int64_t v)
{
	bind_check(st, stmt, sqlite3_bind_int64(stmt, idx, v));
}

void store_bind_id(struct store *st, sqlite3_stmt *stmt, int idx, int64_t v)
{
	if (v == 0)
		bind_check(st, stmt, sqlite3_bind_null(stmt, idx));
	else
		bind_check(st, stmt, sqlite3_bind_int64(stmt, idx, v));
}

void store_bind_text(struct store *st, sqlite3_stmt *stmt, int idx, const char *s)
{
	if (!s)
		bind_check(st, stmt, sqlite3_bind_null(stmt, idx));
	else
		bind_check(st, stmt, sqlite3_bind_text(stmt, idx, s, -1, SQLITE_STATIC));
}

void store_bind_textn(struct store *st, sqlite3_stmt *stmt, int idx, const char *s, size_t n)
{
	bind_check(st, stmt, sqlite3_bind_text64(stmt, idx, s, n, SQLITE_STATIC, SQLITE_UTF8));
}

enum viv_err store_step(struct store *st, sqlite3_stmt *stmt, bool *row_out)
{
	enum viv_err err;
	int rc;

	*row_out = false;
	if (st->bind_err) {
		err = st->bind_err;
		st->bind_err = VIV_OK;
		return err;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*row_out = true;
		return VIV_OK;
	}
	if (rc == SQLITE_DONE)
		return VIV_OK;
	return store_db_error(st, rc, sqlite3_sql(stmt));
}

enum viv_err store_run(struct store *st, sqlite3_stmt *stmt)
{
	enum viv_err err;
	bool row;

	do {
		err = store_step(st, stmt, &row);
	} while (!err && row);
	return err;
}

enum viv_err store_exec(struct store *st, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

enum viv_err store_col_text(sqlite3_stmt *stmt, int col, char **out)
{
	const unsigned char *s = sqlite3_column_text(stmt, col);
	int n = sqlite3_column_bytes(stmt, col);
	char *p;

	*out = NULL;
	if (!s)
		return sqlite3_column_type(stmt, col) == SQLITE_NULL ? VIV_OK : VIV_ERR_NOMEM;
	p = malloc((size_t)n + 1);
	if (!p)
		return VIV_ERR_NOMEM;
	memcpy(p, s, (size_t)n);
	p[n] = '\0';
	*out = p;
	return VIV_OK;
}

enum viv_err store_col_text_or(sqlite3_stmt *stmt, int col, const char *dflt, char **out)
{
	enum viv_err err;

	err = store_col_text(stmt, col, out);
	if (err || *out)
		return err;
	*out = strdup(dflt);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

void store_bind_count(struct store *st, sqlite3_stmt *stmt, int idx, size_t v)
{
	store_bind_int64(st, stmt, idx, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

void *store_grow(void *arr, size_t *alloc, size_t n, size_t size)
{
	size_t want;
	void *p;

	if (n < *alloc)
		return arr;
	want = *alloc ? *alloc * 2 : 16;
	if (want <= n)
		want = n + 1;
	p = reallocarray(arr, want, size);
	if (!p)
		return NULL;
	*alloc = want;
	return p;
}

enum viv_err store_row_fetch(struct store *st, sqlite3_stmt *stmt, size_t size,
                             store_row_read_fn read, store_row_clear_fn clear, void **out)
{
	void *elem = NULL;
	enum viv_err err;
	bool row;

	*out = NULL;
	err = store_step(st, stmt, &row);
	if (err)
		goto out;
	if (!row) {
		err = VIV_ERR_NOT_FOUND;
		goto out;
	}
	elem = calloc(1, size);
	if (!elem) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = read(stmt, elem);
out:
	store_release(st, stmt);
	if (err) {
		store_row_free(elem, clear);
		return err;
	}
	*out = elem;
	return VIV_OK;
}

enum viv_err store_rows_collect(struct store *st, sqlite3_stmt *stmt, size_t size,
                                store_row_read_fn read, store_row_clear_fn clear, void **out,
                                size_t *n_out)
{
	void *arr = NULL, *grown;
	size_t n = 0, alloc = 0;
	enum viv_err err;
	bool row;

	*out = NULL;
	*n_out = 0;
	for (;;) {
		err = store_step(st, stmt, &row);
		if (err || !row)
			break;
		grown = store_grow(arr, &alloc, n, size);
		if (!grown) {
			err = VIV_ERR_NOMEM;
			break;
		}
		arr = grown;
		n++;
		/* Counted before it is read, so that a row read only in part
		 * is freed with the rest. */
		err = read(stmt, (char *)arr + (n - 1) * size);
		if (err)
			break;
	}
	store_release(st, stmt);
	if (err) {
		store_rows_free(arr, n, size, clear);
		return err;
	}
	*out = arr;
	*n_out = n;
	return VIV_OK;
}

void store_row_free(void *elem, store_row_clear_fn clear)
{
	if (!elem)
		return;
	if (clear)
		clear(elem);
	free(elem);
}

void store_rows_free(void *arr, size_t n, size_t size, store_row_clear_fn clear)
{
	size_t i;

	if (!arr)
		return;
	for (i = 0; clear && i < n; i++)
		clear((char *)arr + i * size);
	free(arr);
}

enum viv_err store_begin(struct store *st)
{
	return store_exec(st, "BEGIN IMMEDIATE");
}

enum viv_err store_commit(struct store *st)
{
	return store_exec(st, "COMMIT");
}

void store_rollback(struct store *st)
{
	/* A failed statement may already have rolled the transaction back. */
	if (sqlite3_get_autocommit(st->db))
		return;
	/* A failed ROLLBACK leaves SQLite to roll back when the connection
	 * next closes; the caller is already failing with its own error. */
	if (store_exec(st, "ROLLBACK"))
		viv_log(VIV_WARN, "store: ROLLBACK failed: %s", sqlite3_errmsg(st->db));
}

enum viv_err store_text_exists(struct store *st, const char *sql, const char *text, bool *out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;

	*out = false;
	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, text);
	err = store_step(st, stmt, out);
	store_release(st, stmt);
	return err;
}
