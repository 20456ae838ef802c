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

static enum viv_err read_app(sqlite3_stmt *stmt, struct store_app *app)
{
	memset(app, 0, sizeof(*app));
	app->id = sqlite3_column_int64(stmt, 0);
	app->created_at = sqlite3_column_int64(stmt, 2);
	app->current_deployment = sqlite3_column_int64(stmt, 3);
	return store_col_text_or(stmt, 1, "", &app->name);
}

enum viv_err store_app_get(struct store *st, const char *name, struct store_app **out)
{
	struct store_app *app = NULL;
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*out = NULL;
	if (!name)
		return VIV_ERR_NOT_FOUND;
	err = store_prepare(st, sql_app_get, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, name);
	err = store_step(st, stmt, &row);
	if (err)
		goto out;
	if (!row) {
		err = VIV_ERR_NOT_FOUND;
		goto out;
	}
	app = calloc(1, sizeof(*app));
	if (!app) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = read_app(stmt, app);
out:
	store_release(st, stmt);
	if (err) {
		store_app_free(app);
		return err;
	}
	*out = app;
	return VIV_OK;
}

enum viv_err store_app_list(struct store *st, struct store_app **out, size_t *n_out)
{
	struct store_app *apps = NULL, *grown;
	sqlite3_stmt *stmt = NULL;
	size_t n = 0, alloc = 0;
	enum viv_err err;
	bool row;

	*out = NULL;
	*n_out = 0;
	err = store_prepare(st, sql_app_list, &stmt);
	if (err)
		return err;
	for (;;) {
		err = store_step(st, stmt, &row);
		if (err || !row)
			break;
		grown = store_grow(apps, &alloc, n, sizeof(*apps));
		if (!grown) {
			err = VIV_ERR_NOMEM;
			break;
		}
		apps = grown;
		n++;
		err = read_app(stmt, &apps[n - 1]);
		if (err)
			break;
	}
	store_release(st, stmt);
	if (err) {
		store_app_list_free(apps, n);
		return err;
	}
	*out = apps;
	*n_out = n;
	return VIV_OK;
}

void store_app_free(struct store_app *app)
{
	if (!app)
		return;
	free(app->name);
	free(app);
}

void store_app_list_free(struct store_app *apps, size_t n)
{
	size_t i;

	if (!apps)
		return;
	for (i = 0; i < n; i++)
		free(apps[i].name);
	free(apps);
}
