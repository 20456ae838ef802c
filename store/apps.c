/* Apps: a name that is also a subdomain, and a pointer to the deployment
 * that serves it. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define APP_COLUMNS "id, name, created_at, current_deployment"

static const char sql_app_insert[] = "INSERT INTO apps (name, created_at) VALUES (?1, ?2)"
				     " ON CONFLICT (name) DO NOTHING";
static const char sql_app_id[] = "SELECT id FROM apps WHERE name = ?1";
static const char sql_app_get[] = "SELECT " APP_COLUMNS " FROM apps WHERE name = ?1";
static const char sql_app_list[] = "SELECT " APP_COLUMNS " FROM apps ORDER BY name";

enum viv_err store_app_id(struct store *st, const char *name, int64_t *id_out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*id_out = 0;
	if (!name)
		return VIV_ERR_NOT_FOUND;
	err = store_prepare(st, sql_app_id, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, name);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (!err)
		*id_out = sqlite3_column_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/* Works alone or inside a caller's transaction: the insert does nothing when
 * the name is taken, and the id is read after it either way. */
enum viv_err store_app_ensure(struct store *st, const char *name, int64_t *id_out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;

	*id_out = 0;
	if (!viv_app_name_valid(name))
		return VIV_ERR_INVALID;
	err = store_prepare(st, sql_app_insert, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, name);
	store_bind_int64(st, stmt, 2, viv_now_ms());
	err = store_run(st, stmt);
	store_release(st, stmt);
	if (err)
		return err;
	return store_app_id(st, name, id_out);
}

static enum viv_err read_app(sqlite3_stmt *stmt, void *elem)
{
	struct store_app *app = elem;

	memset(app, 0, sizeof(*app));
	app->id = sqlite3_column_int64(stmt, 0);
	app->created_at = sqlite3_column_int64(stmt, 2);
	app->current_deployment = sqlite3_column_int64(stmt, 3);
	return store_col_text_or(stmt, 1, "", &app->name);
}

static void app_clear(void *elem)
{
	struct store_app *app = elem;

	free(app->name);
}

enum viv_err store_app_get(struct store *st, const char *name, struct store_app **out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	void *app;

	*out = NULL;
	if (!name)
		return VIV_ERR_NOT_FOUND;
	err = store_prepare(st, sql_app_get, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, name);
	err = store_row_fetch(st, stmt, sizeof(**out), read_app, app_clear, &app);
	if (!err)
		*out = app;
	return err;
}

enum viv_err store_app_list(struct store *st, struct store_app **out, size_t *n_out)
{
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	void *apps;

	*out = NULL;
	*n_out = 0;
	err = store_prepare(st, sql_app_list, &stmt);
	if (err)
		return err;
	err = store_rows_collect(st, stmt, sizeof(**out), read_app, app_clear, &apps, n_out);
	if (!err)
		*out = apps;
	return err;
}

void store_app_free(struct store_app *app)
{
	store_row_free(app, app_clear);
}

void store_app_list_free(struct store_app *apps, size_t n)
{
	store_rows_free(apps, n, sizeof(*apps), app_clear);
}
