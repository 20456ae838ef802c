/* Apps' key-value data: bytes to bytes, one namespace per app, written by
 * runners on the request path. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static const char sql_get[] = "SELECT value FROM kv WHERE app_id = ?1 AND key = ?2";
static const char sql_put_new[] =
	"INSERT INTO kv(app_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
static const char sql_put[] = "INSERT INTO kv(app_id, key, value) VALUES (?1, ?2, ?3) "
			      "ON CONFLICT(app_id, key) DO UPDATE SET value = excluded.value";
static const char sql_append[] =
	"INSERT INTO kv(app_id, key, value) VALUES (?1, ?2, ?3) "
	"ON CONFLICT(app_id, key) DO UPDATE SET value = CAST(value || excluded.value AS BLOB)";
static const char sql_len[] = "SELECT length(value) FROM kv WHERE app_id = ?1 AND key = ?2";
static const char sql_remove[] = "DELETE FROM kv WHERE app_id = ?1 AND key = ?2";
static const char sql_relaxed[] = "PRAGMA synchronous = NORMAL";

static enum viv_err check_key(const void *key, size_t klen)
{
	return key && klen >= 1 && klen <= STORE_KV_KEY_MAX ? VIV_OK : VIV_ERR_INVALID;
}

static void bind_blob(struct store *st, sqlite3_stmt *stmt, int idx, const void *p, size_t n)
{
	int rc = sqlite3_bind_blob64(stmt, idx, n ? p : "", n, SQLITE_STATIC);

	if (rc != SQLITE_OK && !st->bind_err)
		st->bind_err = store_db_error(st, rc, "binding a KV blob");
}

/* Runs a statement keyed by (app, key), with an optional value as ?3. */
static enum viv_err keyed(struct store *st, const char *sql, int64_t app_id, const void *key,
			  size_t klen, const void *val, size_t vlen, sqlite3_stmt **out)
{
	enum viv_err err = store_prepare(st, sql, out);

	if (err)
		return err;
	store_bind_int64(st, *out, 1, app_id);
	bind_blob(st, *out, 2, key, klen);
	if (val)
		bind_blob(st, *out, 3, val, vlen);
	return VIV_OK;
}

enum viv_err store_kv_get(struct store *st, int64_t app_id, const void *key, size_t klen,
			  char **val_out, size_t *len_out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	const void *blob;
	size_t n;
	char *v;
	bool row = false;

	*val_out = NULL;
	*len_out = 0;
	err = check_key(key, klen);
	if (!err)
		err = keyed(st, sql_get, app_id, key, klen, NULL, 0, &stmt);
	if (!err)
		err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (err)
		goto out;
	blob = sqlite3_column_blob(stmt, 0);
	n = (size_t)sqlite3_column_bytes(stmt, 0);
	v = malloc(n + 1);
	if (!v) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	if (n)
		memcpy(v, blob, n);
	v[n] = '\0';
	*val_out = v;
	*len_out = n;
out:
	store_release(st, stmt);
	return err;
}

/* Runs a write and reports whether it changed a row. */
static enum viv_err write_one(struct store *st, const char *sql, int64_t app_id, const void *key,
			      size_t klen, const void *val, size_t vlen, bool *changed)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;

	*changed = false;
	err = check_key(key, klen);
	if (!err && val && vlen > STORE_KV_VALUE_MAX)
		err = VIV_ERR_TOO_BIG;
	if (!err)
		err = keyed(st, sql, app_id, key, klen, val, vlen, &stmt);
	if (!err)
		err = store_run(st, stmt);
	if (!err)
		*changed = sqlite3_changes(st->db) > 0;
	store_release(st, stmt);
	return err;
}

/* Whether the key exists, inside the caller's transaction. */
static enum viv_err exists(struct store *st, int64_t app_id, const void *key, size_t klen,
			   int64_t *len_out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err = keyed(st, sql_len, app_id, key, klen, NULL, 0, &stmt);
	bool row = false;

	*len_out = -1;
	if (!err)
		err = store_step(st, stmt, &row);
	if (!err && row)
		*len_out = sqlite3_column_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

enum viv_err store_kv_put_new(struct store *st, int64_t app_id, const void *key, size_t klen,
			      const void *val, size_t vlen, bool *inserted_out)
{
	return write_one(st, sql_put_new, app_id, key, klen, val, vlen, inserted_out);
}

/* Put and append must say whether the key was new, which the write alone
 * does not tell: look, then write, in one transaction. */
static enum viv_err write_reporting_new(struct store *st, const char *sql, int64_t app_id,
					const void *key, size_t klen, const void *val,
					size_t vlen, bool append, bool *was_new_out)
{
	enum viv_err err;
	int64_t len = -1;
	bool changed;

	*was_new_out = false;
	err = check_key(key, klen);
	if (!err && vlen > STORE_KV_VALUE_MAX)
		err = VIV_ERR_TOO_BIG;
	if (err)
		return err;
	err = store_begin(st);
	if (err)
		return err;
	err = exists(st, app_id, key, klen, &len);
	if (!err && append && len >= 0 && (uint64_t)len + vlen > STORE_KV_VALUE_MAX)
		err = VIV_ERR_TOO_BIG;
	if (!err)
		err = write_one(st, sql, app_id, key, klen, val, vlen, &changed);
	if (!err)
		err = store_commit(st);
	if (err) {
		store_rollback(st);
		return err;
	}
	*was_new_out = len < 0;
	return VIV_OK;
}

enum viv_err store_kv_put(struct store *st, int64_t app_id, const void *key, size_t klen,
			  const void *val, size_t vlen, bool *was_new_out)
{
	return write_reporting_new(st, sql_put, app_id, key, klen, val, vlen, false,
				   was_new_out);
}

enum viv_err store_kv_append(struct store *st, int64_t app_id, const void *key, size_t klen,
			     const void *val, size_t vlen, bool *was_new_out)
{
	return write_reporting_new(st, sql_append, app_id, key, klen, val, vlen, true,
				   was_new_out);
}

enum viv_err store_kv_remove(struct store *st, int64_t app_id, const void *key, size_t klen,
			     bool *existed_out)
{
	return write_one(st, sql_remove, app_id, key, klen, NULL, 0, existed_out);
}

enum viv_err store_sync_relaxed(struct store *st)
{
	return store_exec(st, sql_relaxed);
}
