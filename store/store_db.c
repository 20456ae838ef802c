/* The statement layer under every store query, whichever database holds the
 * records: cached prepared statements, binding and stepping that never lose
 * the database's error text, columns, rows into structs, and write
 * transactions. The backend (st->be) does the database's own part. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static void stmt_free(struct store_stmt *stmt)
{
	if (stmt->impl)
		stmt->st->be->finalize(stmt);
	stmt->impl = NULL;
}

enum viv_err store_prepare(struct store *st, const char *sql, struct store_stmt **out)
{
	struct store_stmt *stmt;
	enum viv_err err;
	size_t i;

	*out = NULL;
	for (i = 0; i < st->n_stmts; i++) {
		if (st->stmts[i].sql == sql) {
			*out = &st->stmts[i];
			return VIV_OK;
		}
	}
	if (st->n_stmts < STORE_STMT_CACHE) {
		stmt = &st->stmts[st->n_stmts];
		memset(stmt, 0, sizeof(*stmt));
		stmt->cached = true;
	} else {
		stmt = calloc(1, sizeof(*stmt));
		if (!stmt)
			return VIV_ERR_NOMEM;
	}
	stmt->st = st;
	stmt->sql = sql;
	err = st->be->prepare(st, stmt);
	if (err) {
		if (!stmt->cached)
			free(stmt);
		return err;
	}
	if (stmt->cached)
		st->n_stmts++;
	*out = stmt;
	return VIV_OK;
}

void store_release(struct store *st, struct store_stmt *stmt)
{
	st->bind_err = VIV_OK;
	if (!stmt)
		return;
	if (!stmt->cached) {
		stmt_free(stmt);
		free(stmt);
		return;
	}
	st->be->reset(stmt);
}

void store_stmts_finalize(struct store *st)
{
	for (size_t i = 0; i < st->n_stmts; i++)
		stmt_free(&st->stmts[i]);
	st->n_stmts = 0;
}

static void bind(struct store *st, struct store_stmt *stmt, int idx, const struct store_val *v)
{
	enum viv_err err;

	if (st->bind_err)
		return;
	err = st->be->bind(stmt, idx, v);
	if (err)
		st->bind_err = err;
}

void store_bind_int64(struct store *st, struct store_stmt *stmt, int idx, int64_t v)
{
	bind(st, stmt, idx, &(struct store_val){.kind = STORE_VAL_INT, .i = v});
}

void store_bind_id(struct store *st, struct store_stmt *stmt, int idx, int64_t v)
{
	if (v == 0)
		bind(st, stmt, idx, &(struct store_val){.kind = STORE_VAL_NULL});
	else
		store_bind_int64(st, stmt, idx, v);
}

void store_bind_text(struct store *st, struct store_stmt *stmt, int idx, const char *s)
{
	if (!s)
		bind(st, stmt, idx, &(struct store_val){.kind = STORE_VAL_NULL});
	else
		store_bind_textn(st, stmt, idx, s, strlen(s));
}

void store_bind_textn(struct store *st, struct store_stmt *stmt, int idx, const char *s, size_t n)
{
	bind(st, stmt, idx, &(struct store_val){.kind = STORE_VAL_TEXT, .p = s, .n = n});
}

void store_bind_blob(struct store *st, struct store_stmt *stmt, int idx, const void *p, size_t n)
{
	bind(st, stmt, idx, &(struct store_val){.kind = STORE_VAL_BLOB, .p = n ? p : "", .n = n});
}

void store_bind_count(struct store *st, struct store_stmt *stmt, int idx, size_t v)
{
	store_bind_int64(st, stmt, idx, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

enum viv_err store_step(struct store *st, struct store_stmt *stmt, bool *row_out)
{
	enum viv_err err;

	*row_out = false;
	if (st->bind_err) {
		err = st->bind_err;
		st->bind_err = VIV_OK;
		return err;
	}
	return st->be->step(stmt, row_out);
}

enum viv_err store_run(struct store *st, struct store_stmt *stmt)
{
	enum viv_err err;
	bool row;

	do {
		err = store_step(st, stmt, &row);
	} while (!err && row);
	return err;
}

int64_t store_changes(struct store *st)
{
	return st->be->changes(st);
}

enum viv_err store_exec(struct store *st, const char *sql)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

int64_t store_col_int64(struct store_stmt *stmt, int col)
{
	return stmt->st->be->col_int64(stmt, col);
}

double store_col_double(struct store_stmt *stmt, int col)
{
	return stmt->st->be->col_double(stmt, col);
}

const char *store_col_str(struct store_stmt *stmt, int col)
{
	return stmt->st->be->col_text(stmt, col);
}

const void *store_col_blob(struct store_stmt *stmt, int col, size_t *len_out)
{
	return stmt->st->be->col_blob(stmt, col, len_out);
}

enum viv_err store_col_text(struct store_stmt *stmt, int col, char **out)
{
	const char *s = store_col_str(stmt, col);

	*out = NULL;
	if (!s)
		return stmt->st->be->col_null(stmt, col) ? VIV_OK : VIV_ERR_NOMEM;
	*out = strdup(s);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

enum viv_err store_col_text_or(struct store_stmt *stmt, int col, const char *dflt, char **out)
{
	enum viv_err err;

	err = store_col_text(stmt, col, out);
	if (err || *out)
		return err;
	*out = strdup(dflt);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

enum viv_err store_col_bytes(struct store_stmt *stmt, int col, char **out, size_t *len_out)
{
	size_t n = 0;
	const void *p = store_col_blob(stmt, col, &n);
	char *v;

	*out = NULL;
	*len_out = 0;
	v = malloc(n + 1);
	if (!v)
		return VIV_ERR_NOMEM;
	if (n)
		memcpy(v, p, n);
	v[n] = '\0';
	*out = v;
	*len_out = n;
	return VIV_OK;
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

enum viv_err store_row_fetch(struct store *st, struct store_stmt *stmt, size_t size,
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

enum viv_err store_rows_collect(struct store *st, struct store_stmt *stmt, size_t size,
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
	return store_exec(st, store_sql(st, "BEGIN IMMEDIATE", "BEGIN"));
}

enum viv_err store_commit(struct store *st)
{
	enum viv_err err = store_exec(st, "COMMIT");

	if (!err)
		store_routes_publish(st);
	return err;
}

void store_rollback(struct store *st)
{
	st->routes_pending = false;
	/* A failed statement may already have rolled the transaction back. */
	if (!st->be->in_transaction(st))
		return;
	/* A failed ROLLBACK leaves the database to roll back when the
	 * connection next closes; the caller is already failing with its own
	 * error. */
	if (store_exec(st, "ROLLBACK"))
		viv_log(VIV_WARN, "store: ROLLBACK failed: %s", st->be->errmsg(st));
}

enum viv_err store_text_exists(struct store *st, const char *sql, const char *text, bool *out)
{
	struct store_stmt *stmt = NULL;
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

/* Both keys of the two-integer form: a class that is Vivarium's, and the
 * lock's own key folded into 31 bits (two apps sharing a lock only wait
 * for each other). */
static const char sql_pg_lock[] = "SELECT pg_advisory_xact_lock(?1::int, ?2::int)";
#define STORE_PG_LOCK_CLASS 0x7669 /* "vi" */

enum viv_err store_lock(struct store *st, enum store_lock lock, int64_t key)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	if (st->kind != STORE_POSTGRES)
		return VIV_OK;
	err = store_prepare(st, sql_pg_lock, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, STORE_PG_LOCK_CLASS * 16 + (int64_t)lock);
	store_bind_int64(st, stmt, 2, (int64_t)((uint64_t)key % 2147483647u));
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}
