/* Private to the runner: the routing table of a worker (app name to its
 * current deployment, limits, configuration and loaded artifact). */
#ifndef RUNNER_ROUTES_H
#define RUNNER_ROUTES_H

#include <uthash.h>

#include "runner.h"
#include "viv.h"

struct store;

struct run_route {
	UT_hash_handle hh;
	int refs;
	char *name;
	int64_t app_id;
	int64_t deployment_id;
	char artifact[VIV_SHA256_HEX_LEN + 1];
	bool hostcall;
	struct run_app app; /* name, limits, env, ... pointing into this route */
	char **env;         /* the manifest's env, overridden by the API's config */
	size_t n_env;
	char *host; /* "APP.DOMAIN" */
	char **outbound;
	size_t n_outbound;
	char *assets_dir;          /* NULL when the deployment has no static files */
	struct run_assets *assets; /* its index, built on first use */
	bool assets_tried;
	/* Answers at a preview address: its artifact, when no current route
	 * shares it, is loaded for this route alone and goes with it. */
	bool preview;
	struct run_module *module; /* loaded on first use */
	char *load_error;
	uint64_t load_failed_at;
};

struct run_routes;

/* Opens the worker's own store connection (db_url as store_open_db()
 * takes it); apps answer at APP.domain. Caller frees with
 * run_routes_close(). */
VIV_MUST_CHECK enum viv_err run_routes_open(const char *datadir, const char *db_url,
                                            const char *domain, struct run_routes **out, char *err,
                                            size_t errlen);
void run_routes_close(struct run_routes *rt);

/* The store connection, for app logs. Borrowed for the life of rt. */
struct store *run_routes_store(struct run_routes *rt);

/* Reloads the table if the store's routes generation moved (one memory load
 * when it did not). */
VIV_MUST_CHECK enum viv_err run_routes_refresh(struct run_routes *rt);

/* The route that answers at a host label (the host name without
 * ".domain"), with a reference the caller drops with run_route_release():
 * "APP" is the app's current deployment, "d{ID}-APP" any ready deployment
 * of the app (its preview address), looked up in the store on first use and
 * kept in a small cache that is emptied whenever the routes change. NULL
 * when nothing answers there: no such app serves, or that deployment is
 * unknown, not ready or another app's. */
struct run_route *run_routes_find(struct run_routes *rt, const char *label, size_t len);
void run_route_release(struct run_route *r);

/* How many apps are routable. */
size_t run_routes_count(const struct run_routes *rt);

/* Whether the app called name has a current deployment in the table. */
bool run_routes_has(const struct run_routes *rt, const char *name);

/* The routes generation the table was loaded at (0 before it was). */
uint64_t run_routes_generation(const struct run_routes *rt);

/* How many of the routes the store names wait for their artifact to reach
 * this host's artifact folder (a runner host that fetches them). */
size_t run_routes_missing(const struct run_routes *rt);

/* Whether the routes have been read from the store at least once. */
bool run_routes_loaded(const struct run_routes *rt);

/* The route's artifact, loading it on first use. *out is borrowed for as long
 * as the caller holds the route. On failure *why says what went wrong (a
 * failed load is retried after a second, not on every request). */
VIV_MUST_CHECK enum viv_err run_route_module(struct run_routes *rt, struct run_route *r,
                                             struct run_module **out, const char **why);

/* The route's static files, indexed on first use; NULL when it has none. */
struct run_assets *run_route_assets(struct run_route *r);

struct run_asset;
/* Whether target names one of the route's static files (see
 * run_assets_find()), which *out then describes. */
bool run_route_asset(struct run_route *r, const char *target, size_t len, struct run_asset *out);

#endif
