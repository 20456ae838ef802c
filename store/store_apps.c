/* Apps: a name that is also a subdomain, and a pointer to the deployment
 * that serves it. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* The state follows the rule of enum store_app_state: 1 serving, 2
 * building, 3 failed, else 0 (empty). */
#define APP_SELECT                                                                                 \
	"SELECT a.id, a.name, a.created_at, a.current_deployment,"                                 \
	" (SELECT language FROM deployments WHERE id = a.current_deployment),"                     \
	" (SELECT max(created_at) FROM deployments WHERE app_id = a.id),"                          \
	" CASE WHEN a.current_deployment IS NOT NULL THEN 1"                                       \
	"  WHEN EXISTS (SELECT 1 FROM deployments WHERE app_id = a.id"                             \
	"               AND status IN ('queued', 'building')) THEN 2"                              \
	"  WHEN EXISTS (SELECT 1 FROM deployments WHERE app_id = a.id)"                            \
	"   AND NOT EXISTS (SELECT 1 FROM deployments WHERE app_id = a.id"                         \
	"                   AND status <> 'failed') THEN 3"                                        \
	"  ELSE 0 END"                                                                             \
	" FROM apps a"

static const char sql_app_insert[] = "INSERT INTO apps (name, created_at) VALUES (?1, ?2)"
                                     " ON CONFLICT (name) DO NOTHING";
static const char sql_app_id[] = "SELECT id FROM apps WHERE name = ?1";
static const char sql_app_get[] = APP_SELECT " WHERE a.name = ?1";
static const char sql_app_list[] = APP_SELECT " ORDER BY a.name";

const char *store_app_state_name(enum store_app_state s)
{
	switch (s) {
	case STORE_APP_SERVING:
		return "serving";
	case STORE_APP_BUILDING:
		return "building";
	case STORE_APP_FAILED:
		return "failed";
	case STORE_APP_EMPTY:
		break;
	}
	return "empty";
}

enum viv_err store_app_id(struct store *st, const char *name, int64_t *id_out)
{
	struct store_stmt *stmt = NULL;
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
		*id_out = store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/* On PostgreSQL the app's row stays locked until the transaction ends:
 * deployments of it are created, made current and deleted one after the
 * other, as SQLite's single writer has them. */
static const char sql_app_lock_pg[] = "SELECT id FROM apps WHERE name = ?1 FOR UPDATE";

enum viv_err store_app_lock(struct store *st, const char *name, int64_t *id_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*id_out = 0;
	if (st->kind != STORE_POSTGRES)
		return store_app_id(st, name, id_out);
	if (!name)
		return VIV_ERR_NOT_FOUND;
	err = store_prepare(st, sql_app_lock_pg, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, name);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (!err)
		*id_out = store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/* Works alone or inside a caller's transaction: the insert does nothing when
 * the name is taken, and the id is read after it either way. */
enum viv_err store_app_ensure(struct store *st, const char *name, int64_t *id_out)
{
	struct store_stmt *stmt = NULL;
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

static enum viv_err read_app(struct store_stmt *stmt, void *elem)
{
	struct store_app *app = elem;
	enum viv_err err;

	memset(app, 0, sizeof(*app));
	app->id = store_col_int64(stmt, 0);
	app->created_at = store_col_int64(stmt, 2);
	app->current_deployment = store_col_int64(stmt, 3);
	app->updated_at = store_col_int64(stmt, 5);
	switch (store_col_int64(stmt, 6)) {
	case 1:
		app->state = STORE_APP_SERVING;
		break;
	case 2:
		app->state = STORE_APP_BUILDING;
		break;
	case 3:
		app->state = STORE_APP_FAILED;
		break;
	default:
		app->state = STORE_APP_EMPTY;
		break;
	}
	err = store_col_text_or(stmt, 1, "", &app->name);
	if (!err)
		err = store_col_text(stmt, 4, &app->language);
	return err;
}

static void app_clear(void *elem)
{
	struct store_app *app = elem;

	free(app->name);
	free(app->language);
}

enum viv_err store_app_get(struct store *st, const char *name, struct store_app **out)
{
	struct store_stmt *stmt = NULL;
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
	struct store_stmt *stmt = NULL;
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

/* ---- Deleting an app ------------------------------------------------------------ */

static const char sql_app_dep_count[] = "SELECT count(*) FROM deployments WHERE app_id = ?1";
static const char sql_app_artifacts[] =
        "SELECT DISTINCT artifact FROM deployments WHERE app_id = ?1 AND artifact IS NOT NULL";
static const char sql_app_assets[] =
        "SELECT DISTINCT json_extract(config, '$.assets') FROM deployments"
        " WHERE app_id = ?1 AND json_type(config, '$.assets') = 'text'";
static const char sql_app_assets_pg[] =
        "SELECT DISTINCT config::jsonb ->> 'assets' FROM deployments"
        " WHERE app_id = ?1 AND jsonb_typeof(config::jsonb -> 'assets') = 'string'";
static const char sql_app_queued[] =
        "SELECT id FROM deployments WHERE app_id = ?1 AND status = 'queued'";
/* kv and app_config came before ON DELETE CASCADE was the habit; the rest
 * (deployments, logs, secrets) goes with the app row. */
static const char sql_app_del_kv[] = "DELETE FROM kv WHERE app_id = ?1";
static const char sql_app_del_config[] = "DELETE FROM app_config WHERE app_id = ?1";
static const char sql_app_del[] = "DELETE FROM apps WHERE id = ?1";

/* What a deletion must clean up after its commit. */
struct app_leftovers {
	char **artifacts;
	size_t n_artifacts;
	char **assets;
	size_t n_assets;
	int64_t *queued;
	size_t n_queued;
};

static enum viv_err read_text(struct store_stmt *stmt, void *elem)
{
	return store_col_text_or(stmt, 0, "", (char **)elem);
}

static void text_clear(void *elem)
{
	free(*(char **)elem);
}

static enum viv_err read_int64(struct store_stmt *stmt, void *elem)
{
	*(int64_t *)elem = store_col_int64(stmt, 0);
	return VIV_OK;
}

/* Runs sql with the app's id as ?1 and collects its first column. */
static enum viv_err app_rows(struct store *st, const char *sql, int64_t app_id, size_t size,
                             store_row_read_fn read, store_row_clear_fn clear, void **out,
                             size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	return store_rows_collect(st, stmt, size, read, clear, out, n_out);
}

static enum viv_err app_exec(struct store *st, const char *sql, int64_t app_id)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

static void leftovers_free(struct app_leftovers *l)
{
	store_rows_free(l->artifacts, l->n_artifacts, sizeof(char *), text_clear);
	store_rows_free(l->assets, l->n_assets, sizeof(char *), text_clear);
	free(l->queued);
	memset(l, 0, sizeof(*l));
}

/* Inside the caller's transaction: what the app's rows point to on disk,
 * then the rows themselves. */
static enum viv_err app_delete_rows(struct store *st, int64_t app_id, struct app_leftovers *l,
                                    size_t *n_deployments)
{
	int64_t *count = NULL;
	size_t one = 0;
	enum viv_err err;
	void *rows;

	*n_deployments = 0;
	err = app_rows(st, sql_app_dep_count, app_id, sizeof(int64_t), read_int64, NULL, &rows,
	               &one);
	count = rows;
	if (!err && one == 1)
		*n_deployments = (size_t)count[0];
	free(count);
	if (!err)
		err = app_rows(st, sql_app_artifacts, app_id, sizeof(char *), read_text, text_clear,
		               &rows, &l->n_artifacts);
	if (!err)
		l->artifacts = rows;
	if (!err)
		err = app_rows(st, store_sql(st, sql_app_assets, sql_app_assets_pg), app_id,
		               sizeof(char *), read_text, text_clear, &rows, &l->n_assets);
	if (!err)
		l->assets = rows;
	if (!err)
		err = app_rows(st, sql_app_queued, app_id, sizeof(int64_t), read_int64, NULL, &rows,
		               &l->n_queued);
	if (!err)
		l->queued = rows;
	if (!err)
		err = app_exec(st, sql_app_del_kv, app_id);
	if (!err)
		err = app_exec(st, sql_app_del_config, app_id);
	if (!err)
		err = app_exec(st, sql_app_del, app_id);
	return err;
}

enum viv_err store_app_delete(struct store *st, const char *name, struct store_app_deleted *out)
{
	struct store_app_deleted done = {0};
	struct app_leftovers l = {0};
	enum viv_err err;
	int64_t app_id = 0;
	size_t i;
	bool removed;

	if (out)
		memset(out, 0, sizeof(*out));
	err = store_begin(st);
	if (err)
		return err;
	err = store_app_lock(st, name, &app_id);
	if (!err)
		err = app_delete_rows(st, app_id, &l, &done.deployments);
	/* Runners drop the app's route when they see the generation move. */
	if (!err)
		err = store_routes_changed(st);
	if (!err)
		err = store_commit(st);
	store_rollback(st);
	if (err)
		goto out;
	viv_log(VIV_INFO, "store: app %s deleted with its %zu deployment(s)", name,
	        done.deployments);
	for (i = 0; i < l.n_queued; i++)
		store_upload_remove(st, l.queued[i]);
	for (i = 0; i < l.n_artifacts; i++) {
		if (store_artifact_collect(st, l.artifacts[i], &removed) == VIV_OK && removed)
			done.artifacts_removed++;
	}
	for (i = 0; i < l.n_assets; i++) {
		if (store_assets_collect(st, l.assets[i], &removed) == VIV_OK && removed)
			done.assets_removed++;
	}
	if (out)
		*out = done;
out:
	leftovers_free(&l);
	return err;
}

/* ---- Rollback ------------------------------------------------------------------- */

static const char sql_app_current_of[] = "SELECT current_deployment FROM apps WHERE id = ?1";
static const char sql_dep_status_of[] =
        "SELECT status = 'ready' FROM deployments WHERE id = ?1 AND app_id = ?2";
static const char sql_dep_older_ready[] =
        "SELECT id FROM deployments WHERE app_id = ?1 AND status = 'ready' AND id < ?2"
        " ORDER BY id DESC LIMIT 1";
static const char sql_app_set_current[] = "UPDATE apps SET current_deployment = ?2 WHERE id = ?1";

/* Steps stmt (bound by the caller) once: *row_out says whether there was a
 * row and *v_out is its first column. Releases stmt. */
static enum viv_err one_int(struct store *st, struct store_stmt *stmt, bool *row_out,
                            int64_t *v_out)
{
	enum viv_err err;

	*v_out = 0;
	err = store_step(st, stmt, row_out);
	if (!err && *row_out)
		*v_out = store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/* Inside the caller's transaction: the deployment to make current. */
static enum viv_err rollback_target(struct store *st, int64_t app_id, int64_t current,
                                    int64_t wanted, int64_t *target)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	int64_t v = 0;
	bool row = false;

	*target = 0;
	err = store_prepare(st, wanted ? sql_dep_status_of : sql_dep_older_ready, &stmt);
	if (err)
		return err;
	if (wanted) {
		store_bind_int64(st, stmt, 1, wanted);
		store_bind_int64(st, stmt, 2, app_id);
	} else {
		store_bind_int64(st, stmt, 1, app_id);
		store_bind_int64(st, stmt, 2, current);
	}
	err = one_int(st, stmt, &row, &v);
	if (err)
		return err;
	if (wanted) {
		if (!row)
			return VIV_ERR_NOT_FOUND;
		if (!v)
			return VIV_ERR_INVALID;
		*target = wanted;
		return VIV_OK;
	}
	if (!row || current == 0)
		return VIV_ERR_INVALID;
	*target = v;
	return VIV_OK;
}

enum viv_err store_app_rollback(struct store *st, const char *name, int64_t deployment_id,
                                int64_t *current_out, int64_t *previous_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	int64_t app_id = 0, current = 0, target = 0;
	bool row = false;

	if (current_out)
		*current_out = 0;
	if (previous_out)
		*previous_out = 0;
	if (deployment_id < 0)
		return VIV_ERR_INVALID;
	err = store_begin(st);
	if (err)
		return err;
	err = store_app_lock(st, name, &app_id);
	if (!err)
		err = store_prepare(st, sql_app_current_of, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, app_id);
	err = one_int(st, stmt, &row, &current);
	if (!err)
		err = rollback_target(st, app_id, current, deployment_id, &target);
	if (err || target == current)
		goto out;
	err = store_prepare(st, sql_app_set_current, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_int64(st, stmt, 2, target);
	err = store_run(st, stmt);
	store_release(st, stmt);
	if (!err)
		err = store_routes_changed(st);
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	if (err)
		return err;
	if (current_out)
		*current_out = target;
	if (previous_out)
		*previous_out = current;
	return VIV_OK;
}
