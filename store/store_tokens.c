/* API tokens: made from the kernel's random bytes, handed out once, and kept
 * only as sha256 digests; plus the admin token file made on first start. */
#include "store_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKEN_PREFIX "viv_"
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)
#define ADMIN_TOKEN_FILE "admin-token"
#define ADMIN_TOKEN_NAME "admin"
/* How stale last_used_at may get before a use is written down. */
#define TOKEN_TOUCH_MS 60000
#define ADMIN_TOKEN_FILE_MAX 4096

static bool token_format_valid(const char *token)
{
	return strncmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0 &&
	       viv_hex64_valid(token + TOKEN_PREFIX_LEN);
}

/* "viv_" and 64 hex digits of 32 random bytes. */
static enum viv_err token_new(char **out)
{
	char hex[VIV_SHA256_HEX_LEN + 1];
	enum viv_err err;

	*out = NULL;
	err = store_random_hex(hex, VIV_SHA256_HEX_LEN / 2);
	if (err)
		return err;
	if (asprintf(out, TOKEN_PREFIX "%s", hex) < 0) {
		*out = NULL;
		return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

const char *store_scope_name(enum store_scope scope)
{
	return scope == STORE_SCOPE_APPS ? "apps" : "admin";
}

bool store_token_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n < 1 || n > STORE_TOKEN_NAME_MAX || name[0] == ' ' || name[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (name[i] < 0x20 || name[i] > 0x7e)
			return false;
	}
	return strcmp(name, ADMIN_TOKEN_NAME) != 0;
}

static const char sql_token_insert[] =
        "INSERT INTO tokens (hash, label, created_at, scope) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (hash) DO NOTHING RETURNING id";
static const char sql_token_app_insert[] =
        "INSERT INTO token_apps (token_id, app) VALUES (?1, ?2) ON CONFLICT DO NOTHING";

/* Records the digest of token; a digest already there is left as it is
 * (*id_out is then 0). */
static enum viv_err token_store(struct store *st, const char *token, const char *name,
                                enum store_scope scope, int64_t *id_out)
{
	char hash[VIV_SHA256_HEX_LEN + 1];
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;

	*id_out = 0;
	viv_sha256_hex(token, strlen(token), hash);
	err = store_prepare(st, sql_token_insert, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, hash);
	store_bind_text(st, stmt, 2, name);
	store_bind_int64(st, stmt, 3, viv_now_ms());
	store_bind_text(st, stmt, 4, store_scope_name(scope));
	err = store_step(st, stmt, &row);
	if (!err && row)
		*id_out = store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

static enum viv_err token_app_store(struct store *st, int64_t id, const char *app)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_token_app_insert, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, app);
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

static enum viv_err token_get_by_id(struct store *st, int64_t id, struct store_token **out);

enum viv_err store_token_create(struct store *st, const char *name, enum store_scope scope,
                                const char *const *apps, size_t n_apps, char **token_out,
                                struct store_token **info_out)
{
	enum viv_err err;
	char *token = NULL;
	int64_t id = 0;
	size_t i;

	*token_out = NULL;
	if (info_out)
		*info_out = NULL;
	if (!store_token_name_valid(name) ||
	    (scope != STORE_SCOPE_ADMIN && scope != STORE_SCOPE_APPS))
		return VIV_ERR_INVALID;
	if (scope == STORE_SCOPE_ADMIN ? n_apps != 0
	                               : n_apps < 1 || n_apps > STORE_TOKEN_APPS_MAX || !apps)
		return VIV_ERR_INVALID;
	for (i = 0; i < n_apps; i++) {
		if (!viv_app_name_valid(apps[i]))
			return VIV_ERR_INVALID;
	}
	err = token_new(&token);
	if (err)
		return err;
	err = store_begin(st);
	if (err)
		goto out;
	err = token_store(st, token, name, scope, &id);
	/* 256 random bits never collide; a row already there is a bug. */
	if (!err && id == 0)
		err = VIV_ERR_INTERNAL;
	for (i = 0; !err && i < n_apps; i++)
		err = token_app_store(st, id, apps[i]);
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	if (!err && info_out)
		err = token_get_by_id(st, id, info_out);
	if (err) {
		free(token);
		return err;
	}
	*token_out = token;
	return VIV_OK;
}

/* ---- Reading tokens ------------------------------------------------------------------ */

#define TOKEN_SELECT                                                                               \
	"SELECT t.id, t.label, t.scope, t.created_at, t.last_used_at, t.builtin,"                  \
	" (SELECT group_concat(app, ',') FROM"                                                     \
	"   (SELECT app FROM token_apps WHERE token_id = t.id ORDER BY app))"                      \
	" FROM tokens t"

#define TOKEN_SELECT_PG                                                                            \
	"SELECT t.id, t.label, t.scope, t.created_at, t.last_used_at, t.builtin,"                  \
	" (SELECT string_agg(app, ',' ORDER BY app) FROM token_apps WHERE token_id = t.id)"        \
	" FROM tokens t"

static const char sql_token_by_hash[] = TOKEN_SELECT " WHERE t.hash = ?1";
static const char sql_token_by_id[] = TOKEN_SELECT " WHERE t.id = ?1";
static const char sql_token_list[] = TOKEN_SELECT " ORDER BY t.id";
static const char sql_token_by_hash_pg[] = TOKEN_SELECT_PG " WHERE t.hash = ?1";
static const char sql_token_by_id_pg[] = TOKEN_SELECT_PG " WHERE t.id = ?1";
static const char sql_token_list_pg[] = TOKEN_SELECT_PG " ORDER BY t.id";

/* Splits "a,b,c" (app names never hold a comma) into t->apps. */
static enum viv_err split_apps(const char *list, struct store_token *t)
{
	size_t n = 1, i = 0;
	const char *p;

	if (!list || !*list)
		return VIV_OK;
	for (p = list; *p; p++)
		n += *p == ',';
	t->apps = calloc(n, sizeof(*t->apps));
	if (!t->apps)
		return VIV_ERR_NOMEM;
	for (p = list; i < n; i++) {
		size_t len = strcspn(p, ",");

		t->apps[i] = strndup(p, len);
		if (!t->apps[i])
			return VIV_ERR_NOMEM;
		t->n_apps++;
		p += len + (p[len] == ',');
	}
	return VIV_OK;
}

static enum viv_err read_token(struct store_stmt *stmt, void *elem)
{
	struct store_token *t = elem;
	const char *scope = store_col_str(stmt, 2);
	enum viv_err err;

	memset(t, 0, sizeof(*t));
	t->id = store_col_int64(stmt, 0);
	t->scope = scope && strcmp(scope, "apps") == 0 ? STORE_SCOPE_APPS : STORE_SCOPE_ADMIN;
	t->created_at = store_col_int64(stmt, 3);
	t->last_used_at = store_col_int64(stmt, 4);
	t->builtin = store_col_int64(stmt, 5) != 0;
	err = store_col_text_or(stmt, 1, "", &t->name);
	if (!err)
		err = split_apps(store_col_str(stmt, 6), t);
	return err;
}

static void token_clear(void *elem)
{
	struct store_token *t = elem;

	for (size_t i = 0; i < t->n_apps; i++)
		free(t->apps[i]);
	free(t->apps);
	free(t->name);
}

static enum viv_err token_get_by_id(struct store *st, int64_t id, struct store_token **out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	void *t;

	*out = NULL;
	err = store_prepare(st, store_sql(st, sql_token_by_id, sql_token_by_id_pg), &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	err = store_row_fetch(st, stmt, sizeof(**out), read_token, token_clear, &t);
	if (!err)
		*out = t;
	return err;
}

static const char sql_token_touch[] = "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1"
                                      " AND coalesce(last_used_at, 0) < ?3";

/*
 * The presented token is hashed and its digest looked up by the index on
 * tokens.hash. No secret is ever compared: the stored values are digests,
 * and the time a lookup takes can tell an attacker at most how far a digest
 * of their choosing matches a stored one, which does not help to find a
 * token with that digest (sha256 is preimage resistant). So a constant-time
 * compare would protect nothing here.
 */
enum viv_err store_token_auth(struct store *st, const char *token, struct store_token **out)
{
	char hash[VIV_SHA256_HEX_LEN + 1];
	struct store_stmt *stmt = NULL;
	struct store_token *t;
	enum viv_err err;
	int64_t now = viv_now_ms();
	void *row;

	*out = NULL;
	if (!token || !token_format_valid(token))
		return VIV_ERR_AUTH;
	viv_sha256_hex(token, strlen(token), hash);
	err = store_prepare(st, store_sql(st, sql_token_by_hash, sql_token_by_hash_pg), &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, hash);
	err = store_row_fetch(st, stmt, sizeof(*t), read_token, token_clear, &row);
	if (err == VIV_ERR_NOT_FOUND)
		return VIV_ERR_AUTH;
	if (err)
		return err;
	t = row;
	if (t->last_used_at < now - TOKEN_TOUCH_MS) {
		/* Only a record: a failure to write it refuses nobody. */
		if (store_prepare(st, sql_token_touch, &stmt) == VIV_OK) {
			store_bind_int64(st, stmt, 1, t->id);
			store_bind_int64(st, stmt, 2, now);
			store_bind_int64(st, stmt, 3, now - TOKEN_TOUCH_MS);
			if (store_run(st, stmt) == VIV_OK)
				t->last_used_at = now;
			store_release(st, stmt);
		}
	}
	*out = t;
	return VIV_OK;
}

enum viv_err store_token_check(struct store *st, const char *token)
{
	struct store_token *t = NULL;
	enum viv_err err;

	err = store_token_auth(st, token, &t);
	store_token_free(t);
	return err;
}

enum viv_err store_token_list(struct store *st, struct store_token **out, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	void *ts;

	*out = NULL;
	*n_out = 0;
	err = store_prepare(st, store_sql(st, sql_token_list, sql_token_list_pg), &stmt);
	if (err)
		return err;
	err = store_rows_collect(st, stmt, sizeof(**out), read_token, token_clear, &ts, n_out);
	if (!err)
		*out = ts;
	return err;
}

static const char sql_token_builtin[] = "SELECT builtin FROM tokens WHERE id = ?1";
static const char sql_token_delete[] = "DELETE FROM tokens WHERE id = ?1 AND builtin = 0";

enum viv_err store_token_delete(struct store *st, int64_t id)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false, builtin = false;

	err = store_prepare(st, sql_token_builtin, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	err = store_step(st, stmt, &row);
	if (!err && row)
		builtin = store_col_int64(stmt, 0) != 0;
	store_release(st, stmt);
	if (err)
		return err;
	if (!row)
		return VIV_ERR_NOT_FOUND;
	if (builtin)
		return VIV_ERR_UNSUPPORTED;
	err = store_prepare(st, sql_token_delete, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	err = store_run(st, stmt);
	if (!err && store_changes(st) == 0)
		err = VIV_ERR_NOT_FOUND;
	store_release(st, stmt);
	return err;
}

bool store_token_allows(const struct store_token *t, const char *app)
{
	if (!t)
		return false;
	if (t->scope == STORE_SCOPE_ADMIN)
		return true;
	for (size_t i = 0; app && i < t->n_apps; i++) {
		if (strcmp(t->apps[i], app) == 0)
			return true;
	}
	return false;
}

void store_token_free(struct store_token *t)
{
	store_row_free(t, token_clear);
}

void store_token_list_free(struct store_token *ts, size_t n)
{
	store_rows_free(ts, n, sizeof(*ts), token_clear);
}

/* Reads the admin token file: the token, with surrounding whitespace. */
static enum viv_err admin_token_read(const char *path, char **out)
{
	enum viv_err err;
	char *data = NULL;
	size_t len = 0, start = 0;
	struct stat sb;

	*out = NULL;
	err = viv_read_file(path, ADMIN_TOKEN_FILE_MAX, &data, &len);
	if (err)
		return err;
	while (len > 0 && isspace((unsigned char)data[len - 1]))
		len--;
	data[len] = '\0';
	while (start < len && isspace((unsigned char)data[start]))
		start++;
	memmove(data, data + start, len - start + 1);
	if (!token_format_valid(data)) {
		viv_log(VIV_ERROR,
		        "store: %s does not hold a Vivarium token; remove it to make a new one",
		        path);
		free(data);
		return VIV_ERR_INVALID;
	}
	/* The file is a credential: keep it private even if someone widened it. */
	if (stat(path, &sb) == 0 && (sb.st_mode & 077) && chmod(path, 0600) != 0)
		viv_log(VIV_WARN, "store: %s is readable by others and chmod failed: %s", path,
		        strerror(errno));
	*out = data;
	return VIV_OK;
}

static const char sql_admin_insert[] =
        "INSERT INTO tokens (hash, label, created_at, scope, builtin)"
        " VALUES (?1, '" ADMIN_TOKEN_NAME "', ?2, 'admin', 1)"
        " ON CONFLICT (hash) DO UPDATE SET builtin = 1, scope = 'admin'";
static const char sql_admin_apps[] =
        "DELETE FROM token_apps WHERE token_id = (SELECT id FROM tokens WHERE hash = ?1)";
static const char sql_admin_others[] = "DELETE FROM tokens WHERE builtin = 1 AND hash <> ?1";

/* Inside the caller's transaction: token is the admin token, and no other
 * builtin token is valid any more. */
static enum viv_err admin_token_store(struct store *st, const char *token)
{
	static const char *const sqls[] = {sql_admin_insert, sql_admin_apps, sql_admin_others};
	char hash[VIV_SHA256_HEX_LEN + 1];
	struct store_stmt *stmt = NULL;
	enum viv_err err = VIV_OK;

	viv_sha256_hex(token, strlen(token), hash);
	for (size_t i = 0; !err && i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		err = store_prepare(st, sqls[i], &stmt);
		if (err)
			break;
		store_bind_text(st, stmt, 1, hash);
		if (i == 0)
			store_bind_int64(st, stmt, 2, viv_now_ms());
		err = store_run(st, stmt);
		store_release(st, stmt);
	}
	return err;
}

static const char sql_admin_count[] = "SELECT count(*) FROM tokens WHERE builtin = 1";

static enum viv_err admin_token_count(struct store *st, int64_t *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err = store_prepare(st, sql_admin_count, &stmt);
	bool row = false;

	if (err)
		return err;
	err = store_step(st, stmt, &row);
	*out = !err && row ? store_col_int64(stmt, 0) : 0;
	store_release(st, stmt);
	return err;
}

/*
 * The whole check runs under the database write lock, so that two processes
 * starting on a new data directory at once cannot each make a token. The
 * file is written before the digest is committed: a crash in between leaves
 * a token whose digest the next start inserts, never a digest nobody knows.
 */
enum viv_err store_admin_token_ensure(struct store *st, char **token_out, bool *created_out)
{
	enum viv_err err;
	char *path, *token = NULL, *line = NULL;
	bool created = false;

	*token_out = NULL;
	if (created_out)
		*created_out = false;
	path = viv_path_join(st->datadir, ADMIN_TOKEN_FILE);
	if (!path)
		return VIV_ERR_NOMEM;
	err = store_begin(st);
	if (!err)
		err = store_lock(st, STORE_LOCK_ADMIN, 0);
	if (err)
		goto out;
	err = admin_token_read(path, &token);
	if (err == VIV_ERR_NOT_FOUND && st->kind == STORE_POSTGRES) {
		/* Several hosts share the records but not their data folders: a
		 * host without the file is not one whose file was removed, and
		 * making a token here would revoke the one the others use. */
		int64_t made = 0;

		err = admin_token_count(st, &made);
		if (!err && made > 0) {
			viv_log(VIV_WARN,
			        "store: another host made the admin token of this database; copy "
			        "its admin-token file to %s to use it here (or make tokens with "
			        "POST /v1/tokens)",
			        path);
			err = VIV_ERR_EXISTS;
			goto out;
		}
		if (!err)
			err = VIV_ERR_NOT_FOUND;
	}
	if (err == VIV_ERR_NOT_FOUND) {
		err = token_new(&token);
		if (err)
			goto out;
		if (asprintf(&line, "%s\n", token) < 0) {
			line = NULL;
			err = VIV_ERR_NOMEM;
			goto out;
		}
		err = viv_write_file_atomic(path, line, strlen(line), 0600);
		if (err) {
			viv_log(VIV_ERROR, "store: cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		created = true;
	} else if (err && err != VIV_ERR_INVALID) {
		viv_log(VIV_ERROR, "store: cannot read %s: %s", path, viv_strerror(err));
	}
	if (err)
		goto out;
	err = admin_token_store(st, token);
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	free(line);
	free(path);
	if (err) {
		free(token);
		return err;
	}
	if (created)
		viv_log(VIV_INFO, "store: made the admin token in %s/" ADMIN_TOKEN_FILE,
		        st->datadir);
	*token_out = token;
	if (created_out)
		*created_out = created;
	return VIV_OK;
}
