/* Queries only runners make: the route of one ready deployment, for its
 * preview address. Kept apart from the API's queries (the runner's own
 * part of the store; see the end of store.h). */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* The same columns as the routes table's, for one deployment of any app:
 * its app's settings and secrets come as they do for the current one. */
static const char sql_deployment_route[] =
        "SELECT a.name, a.id, d.id, d.artifact, d.mode, d.config, " STORE_GUEST_CONFIG_SQL(
                "a.id") " FROM deployments d JOIN apps a ON a.id = d.app_id"
                        " WHERE d.id = ?1 AND d.status = 'ready'";
static const char sql_deployment_route_pg[] =
        "SELECT a.name, a.id, d.id, d.artifact, d.mode, d.config, " STORE_GUEST_CONFIG_SQL_PG(
                "a.id") " FROM deployments d JOIN apps a ON a.id = d.app_id"
                        " WHERE d.id = ?1 AND d.status = 'ready'";

static enum viv_err read_deployment_route(struct store_stmt *stmt, void *elem)
{
	return store_route_read(stmt, (struct store_route *)elem);
}

static void clear_deployment_route(void *elem)
{
	store_route_clear((struct store_route *)elem);
}

enum viv_err store_route_of_deployment(struct store *st, int64_t deployment_id,
                                       struct store_route **out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	void *route;

	*out = NULL;
	if (deployment_id <= 0)
		return VIV_ERR_NOT_FOUND;
	err = store_prepare(st, store_sql(st, sql_deployment_route, sql_deployment_route_pg),
	                    &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, deployment_id);
	err = store_row_fetch(st, stmt, sizeof(**out), read_deployment_route,
	                      clear_deployment_route, &route);
	if (!err)
		*out = route;
	return err;
}
