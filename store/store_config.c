/* Settings and secrets an operator sets on an app through the API: they
 * override the manifest's env for every deployment, so runners read them
 * with the routes, and a change moves the routes generation on. Secret
 * values go only to runners. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static const char sql_set[] = "INSERT INTO app_config(app_id, key, value) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT(app_id, key) DO UPDATE SET value = excluded.value"
                              " WHERE app_config.value IS DISTINCT FROM excluded.value";
static const char sql_unset[] = "DELETE FROM app_config WHERE app_id = ?1 AND key = ?2";
/* json_group_object() gives {} for no rows; the inner ORDER BY sorts the
 * keys. PostgreSQL's own aggregates put spaces in: the object is written
 * out as SQLite's is. */
static const char sql_settings[] =
        "SELECT json_group_object(key, value) FROM"
        " (SELECT key, value FROM app_config WHERE app_id = ?1 ORDER BY key)";
static const char sql_settings_pg[] =
        "SELECT " STORE_JSON_OBJECT_PG("key", "value") " FROM app_config WHERE app_id = ?1";
static const char sql_guest[] = "SELECT " STORE_GUEST_CONFIG_SQL("?1");
static const char sql_guest_pg[] = "SELECT " STORE_GUEST_CONFIG_SQL_PG("?1");
static const char sql_secret_set[] =
        "INSERT INTO secrets(app_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT(app_id, name) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at";
static const char sql_secret_unset[] = "DELETE FROM secrets WHERE app_id = ?1 AND name = ?2";
static const char sql_secret_list[] =
        "SELECT name, updated_at FROM secrets WHERE app_id = ?1 ORDER BY name";

/* Letters, digits and '_', not starting with a digit: a name a CGI program
 * can read from its environment. */
bool store_config_key_valid(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n < 1 || n > STORE_CONFIG_KEY_MAX || (key[0] >= '0' && key[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* Runs one write on the app's settings or secrets (?1 app id, ?2 key, ?3
 * value, ?4 now); *changed_out says whether a row changed, and the routes
 * generation moves when one did. */
static enum viv_err write_config(struct store *st, const char *sql, const char *app,
                                 const char *key, const char *value, bool *changed_out)
{
	struct store_stmt *stmt = NULL;
	int64_t app_id = 0;
	enum viv_err err;

	*changed_out = false;
	err = store_begin(st);
	if (err)
		return err;
	err = store_app_id(st, app, &app_id);
	if (!err)
		err = store_prepare(st, sql, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_text(st, stmt, 2, key);
	if (value)
		store_bind_text(st, stmt, 3, value);
	if (sql == sql_secret_set)
		store_bind_int64(st, stmt, 4, viv_now_ms());
	err = store_run(st, stmt);
	if (!err)
		*changed_out = store_changes(st) > 0;
	store_release(st, stmt);
	if (!err && *changed_out)
		err = store_routes_changed(st);
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	if (err)
		*changed_out = false;
	return err;
}

static enum viv_err set_value(struct store *st, const char *sql, const char *app, const char *key,
                              const char *value)
{
	bool changed;
	size_t n;

	if (!store_config_key_valid(key) || !value)
		return VIV_ERR_INVALID;
	n = strlen(value);
	/* Values go into JSON for runners, so they must be UTF-8. */
	if (n > STORE_CONFIG_VALUE_MAX || !viv_utf8_valid(value, n))
		return VIV_ERR_INVALID;
	return write_config(st, sql, app, key, value, &changed);
}

static enum viv_err unset_value(struct store *st, const char *sql, const char *app, const char *key,
                                bool *existed_out)
{
	bool changed = false;
	enum viv_err err;

	if (existed_out)
		*existed_out = false;
	if (!store_config_key_valid(key))
		return VIV_ERR_INVALID;
	err = write_config(st, sql, app, key, NULL, &changed);
	if (!err && existed_out)
		*existed_out = changed;
	return err;
}

enum viv_err store_app_config_set(struct store *st, const char *app, const char *key,
                                  const char *value)
{
	return set_value(st, sql_set, app, key, value);
}

enum viv_err store_app_config_unset(struct store *st, const char *app, const char *key,
                                    bool *existed_out)
{
	return unset_value(st, sql_unset, app, key, existed_out);
}

enum viv_err store_secret_set(struct store *st, const char *app, const char *name,
                              const char *value)
{
	return set_value(st, sql_secret_set, app, name, value);
}

enum viv_err store_secret_unset(struct store *st, const char *app, const char *name,
                                bool *existed_out)
{
	return unset_value(st, sql_secret_unset, app, name, existed_out);
}

/* Runs sql, which gives one JSON object text for the app id bound to ?1. */
static enum viv_err config_json(struct store *st, const char *sql, const char *app, char **json_out)
{
	struct store_stmt *stmt = NULL;
	int64_t app_id = 0;
	enum viv_err err;
	bool row = false;

	*json_out = NULL;
	err = store_app_id(st, app, &app_id);
	if (!err)
		err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	err = store_step(st, stmt, &row);
	/* An aggregate always gives a row; "{}" covers it all the same. */
	if (!err && row)
		err = store_col_text_or(stmt, 0, "{}", json_out);
	if (!err && !row) {
		*json_out = strdup("{}");
		if (!*json_out)
			err = VIV_ERR_NOMEM;
	}
	store_release(st, stmt);
	return err;
}

enum viv_err store_app_settings_get(struct store *st, const char *app, char **json_out)
{
	return config_json(st, store_sql(st, sql_settings, sql_settings_pg), app, json_out);
}

enum viv_err store_app_config_get(struct store *st, const char *app, char **json_out)
{
	return config_json(st, store_sql(st, sql_guest, sql_guest_pg), app, json_out);
}

static enum viv_err read_secret(struct store_stmt *stmt, void *elem)
{
	struct store_secret *sec = elem;

	memset(sec, 0, sizeof(*sec));
	sec->updated_at = store_col_int64(stmt, 1);
	return store_col_text_or(stmt, 0, "", &sec->name);
}

static void secret_clear(void *elem)
{
	free(((struct store_secret *)elem)->name);
}

enum viv_err store_secret_list(struct store *st, const char *app, struct store_secret **out,
                               size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	int64_t app_id = 0;
	enum viv_err err;
	void *list;

	*out = NULL;
	*n_out = 0;
	err = store_app_id(st, app, &app_id);
	if (!err)
		err = store_prepare(st, sql_secret_list, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	err = store_rows_collect(st, stmt, sizeof(**out), read_secret, secret_clear, &list, n_out);
	if (!err)
		*out = list;
	return err;
}

void store_secret_list_free(struct store_secret *list, size_t n)
{
	store_rows_free(list, n, sizeof(*list), secret_clear);
}
