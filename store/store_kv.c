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
static const char sql_append_pg[] =
        "INSERT INTO kv(app_id, key, value) VALUES (?1, ?2, ?3) "
        "ON CONFLICT(app_id, key) DO UPDATE SET value = kv.value || excluded.value";
static const char sql_len[] = "SELECT length(value) FROM kv WHERE app_id = ?1 AND key = ?2";
static const char sql_remove[] = "DELETE FROM kv WHERE app_id = ?1 AND key = ?2";
static const char sql_relaxed[] = "PRAGMA synchronous = NORMAL";
/* A commit returns before its WAL record is flushed: a crash of the server
 * may lose the last ones, never corrupt anything. */
static const char sql_relaxed_pg[] = "SET synchronous_commit = off";

static enum viv_err check_key(const void *key, size_t klen)
{
	return key && klen >= 1 && klen <= STORE_KV_KEY_MAX ? VIV_OK : VIV_ERR_INVALID;
}

/* Runs a statement keyed by (app, key), with an optional value as ?3. */
static enum viv_err keyed(struct store *st, const char *sql, int64_t app_id, const void *key,
                          size_t klen, const void *val, size_t vlen, struct store_stmt **out)
{
	enum viv_err err = store_prepare(st, sql, out);

	if (err)
		return err;
	store_bind_int64(st, *out, 1, app_id);
	store_bind_blob(st, *out, 2, key, klen);
	if (val)
		store_bind_blob(st, *out, 3, val, vlen);
	return VIV_OK;
}

enum viv_err store_kv_get(struct store *st, int64_t app_id, const void *key, size_t klen,
                          char **val_out, size_t *len_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
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
	err = store_col_bytes(stmt, 0, val_out, len_out);
out:
	store_release(st, stmt);
	return err;
}

/* Runs a write and reports whether it changed a row. */
static enum viv_err write_one(struct store *st, const char *sql, int64_t app_id, const void *key,
                              size_t klen, const void *val, size_t vlen, bool *changed)
{
	struct store_stmt *stmt = NULL;
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
		*changed = store_changes(st) > 0;
	store_release(st, stmt);
	return err;
}

/* Whether the key exists, inside the caller's transaction. */
static enum viv_err exists(struct store *st, int64_t app_id, const void *key, size_t klen,
                           int64_t *len_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err = keyed(st, sql_len, app_id, key, klen, NULL, 0, &stmt);
	bool row = false;

	*len_out = -1;
	if (!err)
		err = store_step(st, stmt, &row);
	if (!err && row)
		*len_out = store_col_int64(stmt, 0);
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
                                        const void *key, size_t klen, const void *val, size_t vlen,
                                        bool append, bool *was_new_out)
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
	err = store_lock(st, STORE_LOCK_KV, app_id);
	if (!err)
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
	return write_reporting_new(st, sql_put, app_id, key, klen, val, vlen, false, was_new_out);
}

enum viv_err store_kv_append(struct store *st, int64_t app_id, const void *key, size_t klen,
                             const void *val, size_t vlen, bool *was_new_out)
{
	return write_reporting_new(st, store_sql(st, sql_append, sql_append_pg), app_id, key, klen,
	                           val, vlen, true, was_new_out);
}

enum viv_err store_kv_remove(struct store *st, int64_t app_id, const void *key, size_t klen,
                             bool *existed_out)
{
	return write_one(st, sql_remove, app_id, key, klen, NULL, 0, existed_out);
}

enum viv_err store_sync_relaxed(struct store *st)
{
	return store_exec(st, store_sql(st, sql_relaxed, sql_relaxed_pg));
}

static const char sql_list[] =
        "SELECT key, length(value) FROM kv WHERE app_id = ?1 AND key > ?2 AND key >= ?3"
        " AND (?4 IS NULL OR key < ?4) ORDER BY key LIMIT ?5";
/* PostgreSQL types each parameter once, from its first use. */
static const char sql_list_pg[] =
        "SELECT key, length(value) FROM kv WHERE app_id = ?1 AND key > ?2 AND key >= ?3"
        " AND (?4::bytea IS NULL OR key < ?4::bytea) ORDER BY key LIMIT ?5";

/* The smallest key past every key that starts with prefix: prefix with its
 * trailing 0xff bytes dropped and the last byte left incremented. *len_out
 * is 0 when there is none (the prefix is all 0xff bytes, or empty). */
static void prefix_end(const unsigned char *prefix, size_t plen, unsigned char *end,
                       size_t *len_out)
{
	while (plen > 0 && prefix[plen - 1] == 0xff)
		plen--;
	*len_out = plen;
	if (plen == 0)
		return;
	memcpy(end, prefix, plen);
	end[plen - 1]++;
}

static enum viv_err read_key(struct store_stmt *stmt, void *elem)
{
	struct store_kv_key *k = elem;

	memset(k, 0, sizeof(*k));
	k->size = store_col_int64(stmt, 1);
	return store_col_bytes(stmt, 0, &k->key, &k->len);
}

static void key_clear(void *elem)
{
	free(((struct store_kv_key *)elem)->key);
}

enum viv_err store_kv_list(struct store *st, int64_t app_id, const void *prefix, size_t plen,
                           const void *after, size_t alen, size_t limit, struct store_kv_key **out,
                           size_t *n_out)
{
	unsigned char end[STORE_KV_KEY_MAX];
	struct store_stmt *stmt = NULL;
	size_t elen = 0;
	enum viv_err err;
	void *keys;

	*out = NULL;
	*n_out = 0;
	if (plen > STORE_KV_KEY_MAX || alen > STORE_KV_KEY_MAX || (plen && !prefix) ||
	    (alen && !after))
		return VIV_ERR_INVALID;
	prefix_end(prefix, plen, end, &elen);
	err = store_prepare(st, store_sql(st, sql_list, sql_list_pg), &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_blob(st, stmt, 2, after, alen);
	store_bind_blob(st, stmt, 3, prefix, plen);
	if (elen)
		store_bind_blob(st, stmt, 4, end, elen);
	store_bind_count(st, stmt, 5, limit);
	err = store_rows_collect(st, stmt, sizeof(**out), read_key, key_clear, &keys, n_out);
	if (!err)
		*out = keys;
	return err;
}

void store_kv_list_free(struct store_kv_key *keys, size_t n)
{
	store_rows_free(keys, n, sizeof(*keys), key_clear);
}
