/* The worker's view of which app answers where: routes loaded from the store
 * whenever its routes generation moves, and the artifacts they need, loaded
 * once per worker and shared by every app that deployed the same one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "routes.h"
#include "runner_int.h"
#include "store.h"

/* A failed artifact load is retried after this long, not on every request. */
#define RETRY_LOAD_NS (1000u * 1000u * 1000u)
/* A route whose artifact is not on this host yet (a runner host that fetches
 * artifacts from the API) is looked for again after this long, doubling up
 * to the most. */
#define MISSING_RETRY_FIRST_NS (20u * 1000u * 1000u)
#define MISSING_RETRY_MOST_NS (2000u * 1000u * 1000u)
/* Deployments kept ready to answer at their preview addresses, each with
 * its artifact loaded, plus the ids known not to be ready. */
#define PREVIEWS_MAX 32

struct modcache {
	UT_hash_handle hh;
	char hash[VIV_SHA256_HEX_LEN + 1];
	struct run_module *module;
	bool seen; /* referenced by the current routes */
};

/* A deployment asked for at its preview address d{ID}-{app}. */
struct preview {
	UT_hash_handle hh;
	int64_t deployment_id;
	struct run_route *route; /* NULL: no ready deployment has that id */
	uint64_t used;           /* when it was last asked for, to evict the oldest */
};

/* What a route waits for before it is used. */
struct missing {
	char *artifact;
	char *assets; /* NULL when its deployment has no static files */
};

struct run_routes {
	struct store *st;
	char *domain;
	uint64_t gen;
	bool loaded;
	struct run_route *table;
	struct modcache *mods;
	struct preview *previews; /* at most PREVIEWS_MAX, dropped when routes change */
	uint64_t preview_clock;
	/* The artifacts the store's routes named that this host's artifact
	 * folder lacked at the last reload: their apps keep the route they
	 * had (or have none) until the file is there. */
	struct missing *missing;
	size_t n_missing;
	uint64_t missing_retry_at, missing_retry_ns;
};

static void missing_clear(struct run_routes *rt)
{
	for (size_t i = 0; i < rt->n_missing; i++) {
		free(rt->missing[i].artifact);
		free(rt->missing[i].assets);
	}
	free(rt->missing);
	rt->missing = NULL;
	rt->n_missing = 0;
}

static void route_free(struct run_route *r)
{
	size_t i;

	for (i = 0; i < r->n_env; i++)
		free(r->env[i]);
	free(r->env);
	for (i = 0; i < r->n_outbound; i++)
		free(r->outbound[i]);
	free(r->outbound);
	free(r->host);
	free(r->assets_dir);
	run_assets_close(r->assets);
	free(r->name);
	free(r->load_error);
	run_module_release(r->module);
	free(r);
}

void run_route_release(struct run_route *r)
{
	if (r && --r->refs == 0)
		route_free(r);
}

/* Adds "KEY=value" to the route's env, replacing an earlier KEY. */
static enum viv_err env_set(struct run_route *r, const char *key, const char *value)
{
	size_t kl = strlen(key), i;
	char *s;

	if (asprintf(&s, "%s=%s", key, value) < 0)
		return VIV_ERR_NOMEM;
	for (i = 0; i < r->n_env; i++) {
		if (strncmp(r->env[i], key, kl) == 0 && r->env[i][kl] == '=') {
			free(r->env[i]);
			r->env[i] = s;
			return VIV_OK;
		}
	}
	r->env[r->n_env++] = s;
	return VIV_OK;
}

/* Takes limits, env, outbound and assets from the deployment's
 * configuration, then the values set on the app through the API, which win
 * over the manifest's env. */
static enum viv_err route_config(struct run_routes *rt, struct run_route *r,
                                 const struct store_route *sr)
{
	const struct store_deploy_config *c = &sr->config;
	size_t i;

	r->app.limits = c->limits;
	r->env = calloc(c->n_env + sr->n_app_env + 1, sizeof(*r->env));
	r->outbound = calloc(c->n_outbound + 1, sizeof(*r->outbound));
	if (!r->env || !r->outbound)
		return VIV_ERR_NOMEM;
	for (i = 0; i < c->n_env; i++) {
		if (env_set(r, c->env[i].name, c->env[i].value))
			return VIV_ERR_NOMEM;
	}
	for (i = 0; i < sr->n_app_env; i++) {
		if (env_set(r, sr->app_env[i].name, sr->app_env[i].value))
			return VIV_ERR_NOMEM;
	}
	for (i = 0; i < c->n_outbound; i++) {
		r->outbound[i] = strdup(c->outbound[i]);
		if (!r->outbound[i])
			return VIV_ERR_NOMEM;
		r->n_outbound = i + 1;
	}
	if (c->assets) {
		r->assets_dir = store_assets_path(rt->st, c->assets);
		if (!r->assets_dir)
			return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

enum viv_err run_routes_open(const char *datadir, const char *db_url, const char *domain,
                             struct run_routes **out, char *err, size_t errlen)
{
	struct run_routes *rt;
	enum viv_err e;

	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return VIV_ERR_NOMEM;
	rt->domain = strdup(domain);
	if (!rt->domain) {
		free(rt);
		return VIV_ERR_NOMEM;
	}
	e = store_open_db(datadir, db_url, &rt->st, err, errlen);
	if (!e)
		e = store_sync_relaxed(rt->st);
	if (e) {
		store_close(rt->st);
		free(rt->domain);
		free(rt);
		return e;
	}
	*out = rt;
	return VIV_OK;
}

static void clear_table(struct run_routes *rt)
{
	struct run_route *r, *tmp;

	HASH_ITER(hh, rt->table, r, tmp)
	{
		HASH_DEL(rt->table, r);
		run_route_release(r);
	}
}

static void preview_drop(struct run_routes *rt, struct preview *p)
{
	HASH_DEL(rt->previews, p);
	run_route_release(p->route);
	free(p);
}

static void clear_previews(struct run_routes *rt)
{
	struct preview *p, *tmp;

	HASH_ITER(hh, rt->previews, p, tmp)
	preview_drop(rt, p);
}

void run_routes_close(struct run_routes *rt)
{
	struct modcache *c, *tmp;

	if (!rt)
		return;
	clear_previews(rt);
	clear_table(rt);
	missing_clear(rt);
	HASH_ITER(hh, rt->mods, c, tmp)
	{
		HASH_DEL(rt->mods, c);
		run_module_release(c->module);
		free(c);
	}
	store_close(rt->st);
	free(rt->domain);
	free(rt);
}

struct store *run_routes_store(struct run_routes *rt)
{
	return rt->st;
}

/* Drops cached artifacts that no route uses any more; instances still
 * running one keep it loaded until they end. */
static void prune_modules(struct run_routes *rt)
{
	struct modcache *c, *tmp;
	struct run_route *r, *rtmp;

	HASH_ITER(hh, rt->mods, c, tmp)
	c->seen = false;
	HASH_ITER(hh, rt->table, r, rtmp)
	{
		HASH_FIND_STR(rt->mods, r->artifact, c);
		if (c)
			c->seen = true;
	}
	HASH_ITER(hh, rt->mods, c, tmp)
	{
		if (c->seen)
			continue;
		HASH_DEL(rt->mods, c);
		run_module_release(c->module);
		free(c);
	}
}

/* A route from the store's description of a deployment, answering at
 * LABEL.domain. */
static enum viv_err route_make(struct run_routes *rt, const struct store_route *sr,
                               const char *label, struct run_route **out)
{
	struct run_route *r;
	enum viv_err err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return VIV_ERR_NOMEM;
	r->refs = 1;
	r->name = strdup(sr->app);
	r->app_id = sr->app_id;
	r->deployment_id = sr->deployment_id;
	snprintf(r->artifact, sizeof(r->artifact), "%s", sr->artifact);
	r->hostcall = sr->config.mode == STORE_MODE_HOSTCALL;
	if (!r->name || asprintf(&r->host, "%s.%s", label, rt->domain) < 0) {
		r->host = NULL;
		route_free(r);
		return VIV_ERR_NOMEM;
	}
	err = route_config(rt, r, sr);
	if (err) {
		route_free(r);
		return err;
	}
	r->app.name = r->name;
	r->app.env = (const char *const *)r->env;
	r->app.n_env = r->n_env;
	r->app.id = r->app_id;
	r->app.host = r->host;
	r->app.outbound = (const char *const *)r->outbound;
	r->app.n_outbound = r->n_outbound;
	r->app.assets_dir = r->assets_dir;
	r->app.owner = r;
	*out = r;
	return VIV_OK;
}

/* Whether a deployment's artifact, and its static files if it has any,
 * are in this host's data folder. */
static bool route_files_here(struct run_routes *rt, const char *artifact, const char *assets)
{
	return store_artifact_exists(rt->st, artifact) &&
	       (!assets || store_assets_exists(rt->st, assets));
}

static enum viv_err reload(struct run_routes *rt, uint64_t gen)
{
	struct store_route *routes = NULL;
	struct run_route *table = NULL, *r, *tmp;
	struct missing *missing = NULL;
	size_t n = 0, n_missing = 0, i;
	enum viv_err err;

	err = store_routes_load(rt->st, &routes, &n);
	if (err)
		return err;
	if (n) {
		missing = calloc(n, sizeof(*missing));
		if (!missing)
			err = VIV_ERR_NOMEM;
	}
	for (i = 0; !err && i < n; i++) {
		/* Only a route whose artifact and static files are here is
		 * used: until then its app keeps the route it had. */
		if (!route_files_here(rt, routes[i].artifact, routes[i].config.assets)) {
			struct missing *m = &missing[n_missing];

			m->artifact = strdup(routes[i].artifact);
			m->assets =
			        routes[i].config.assets ? strdup(routes[i].config.assets) : NULL;
			if (!m->artifact || (routes[i].config.assets && !m->assets)) {
				free(m->artifact);
				free(m->assets);
				err = VIV_ERR_NOMEM;
				break;
			}
			n_missing++;
			HASH_FIND_STR(rt->table, routes[i].app, r);
			viv_log(VIV_INFO, "app %s: deployment %lld is not on this host yet; %s",
			        routes[i].app, (long long)routes[i].deployment_id,
			        r ? "it keeps its deployment until then" : "not served until then");
			continue;
		}
		err = route_make(rt, &routes[i], routes[i].app, &r);
		if (!err)
			HASH_ADD_KEYPTR(hh, table, r->name, strlen(r->name), r);
	}
	/* The apps that keep their route move it over from the table in use. */
	for (i = 0; !err && i < n; i++) {
		struct run_route *mine;

		HASH_FIND_STR(table, routes[i].app, mine);
		HASH_FIND_STR(rt->table, routes[i].app, r);
		if (mine || !r)
			continue;
		HASH_DEL(rt->table, r);
		HASH_ADD_KEYPTR(hh, table, r->name, strlen(r->name), r);
	}
	store_routes_free(routes, n);
	if (err) {
		HASH_ITER(hh, table, r, tmp)
		{
			HASH_DEL(table, r);
			run_route_release(r);
		}
		for (i = 0; i < n_missing; i++) {
			free(missing[i].artifact);
			free(missing[i].assets);
		}
		free(missing);
		return err;
	}
	clear_table(rt);
	rt->table = table;
	rt->gen = gen;
	rt->loaded = true;
	missing_clear(rt);
	rt->missing = missing;
	rt->n_missing = n_missing;
	rt->missing_retry_ns = MISSING_RETRY_FIRST_NS;
	rt->missing_retry_at = viv_mono_ns() + rt->missing_retry_ns;
	/* A deployment's configuration, its app's settings or the app itself
	 * may have changed: previews are looked up again when next asked for. */
	clear_previews(rt);
	prune_modules(rt);
	return VIV_OK;
}

/* Whether an artifact the last reload missed has arrived; looked at with a
 * growing interval. */
static bool missing_arrived(struct run_routes *rt)
{
	uint64_t now;

	if (!rt->n_missing)
		return false;
	now = viv_mono_ns();
	if (now < rt->missing_retry_at)
		return false;
	for (size_t i = 0; i < rt->n_missing; i++) {
		if (route_files_here(rt, rt->missing[i].artifact, rt->missing[i].assets))
			return true;
	}
	rt->missing_retry_ns = rt->missing_retry_ns * 2 > MISSING_RETRY_MOST_NS
	                               ? MISSING_RETRY_MOST_NS
	                               : rt->missing_retry_ns * 2;
	rt->missing_retry_at = now + rt->missing_retry_ns;
	return false;
}

enum viv_err run_routes_refresh(struct run_routes *rt)
{
	uint64_t gen = store_routes_generation(rt->st);

	if (rt->loaded && gen == rt->gen && !missing_arrived(rt))
		return VIV_OK;
	return reload(rt, gen);
}

/* Whether label has the shape of a preview address, d{ID}-{app}: the id in
 * decimal without leading zeros. */
static bool preview_label(const char *label, size_t len, int64_t *id, const char **app,
                          size_t *app_len)
{
	size_t i = 1;
	int64_t v = 0;

	if (len < 4 || label[0] != 'd' || label[1] < '1' || label[1] > '9')
		return false;
	while (i < len && label[i] >= '0' && label[i] <= '9') {
		if (i > 18)
			return false; /* past any id an int64 holds */
		v = v * 10 + (label[i] - '0');
		i++;
	}
	if (i + 1 >= len || label[i] != '-')
		return false;
	*id = v;
	*app = label + i + 1;
	*app_len = len - i - 1;
	return true;
}

/* The cache entry of a deployment, looked up in the store on a miss; NULL
 * when the store could not answer (nothing is cached then). */
static struct preview *preview_get(struct run_routes *rt, int64_t id)
{
	struct store_route *sr = NULL;
	struct preview *p, *old, *tmp, *oldest = NULL;
	char *label = NULL;
	enum viv_err err;

	HASH_FIND(hh, rt->previews, &id, sizeof(id), p);
	if (p)
		return p;
	err = store_route_of_deployment(rt->st, id, &sr);
	if (err && err != VIV_ERR_NOT_FOUND) {
		viv_log(VIV_ERROR, "cannot look deployment %lld up: %s", (long long)id,
		        viv_strerror(err));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out;
	p->deployment_id = id;
	if (sr && (asprintf(&label, "d%lld-%s", (long long)id, sr->app) < 0 ||
	           route_make(rt, sr, label, &p->route) != VIV_OK)) {
		free(p);
		p = NULL;
		goto out;
	}
	if (p->route)
		p->route->preview = true;
	if (HASH_COUNT(rt->previews) >= PREVIEWS_MAX) {
		HASH_ITER(hh, rt->previews, old, tmp)
		{
			if (!oldest || old->used < oldest->used)
				oldest = old;
		}
		preview_drop(rt, oldest);
	}
	HASH_ADD(hh, rt->previews, deployment_id, sizeof(p->deployment_id), p);
out:
	free(label);
	store_routes_free(sr, sr ? 1 : 0);
	return p;
}

struct run_route *run_routes_find(struct run_routes *rt, const char *label, size_t len)
{
	struct run_route *r = NULL;
	struct preview *p;
	const char *app;
	size_t app_len;
	int64_t id;

	if (!preview_label(label, len, &id, &app, &app_len)) {
		HASH_FIND(hh, rt->table, label, len, r);
		if (r)
			r->refs++;
		return r;
	}
	/* Only an app that serves has ready deployments: anything else is
	 * answered from memory, without asking the store. */
	HASH_FIND(hh, rt->table, app, app_len, r);
	if (!r)
		return NULL;
	p = preview_get(rt, id);
	if (!p)
		return NULL;
	p->used = ++rt->preview_clock;
	/* The entry is the deployment's whatever app was asked for; another
	 * app's deployment is not served here. */
	r = p->route;
	if (!r || strlen(r->name) != app_len || memcmp(r->name, app, app_len) != 0)
		return NULL;
	r->refs++;
	return r;
}

size_t run_routes_count(const struct run_routes *rt)
{
	return HASH_COUNT(rt->table);
}

bool run_routes_has(const struct run_routes *rt, const char *name)
{
	struct run_route *r = NULL;

	HASH_FIND_STR(rt->table, name, r);
	return r != NULL;
}

bool run_routes_loaded(const struct run_routes *rt)
{
	return rt->loaded;
}

size_t run_routes_missing(const struct run_routes *rt)
{
	return rt->n_missing;
}

uint64_t run_routes_generation(const struct run_routes *rt)
{
	return rt->loaded ? rt->gen : 0;
}

enum viv_err run_route_module(struct run_routes *rt, struct run_route *r, struct run_module **out,
                              const char **why)
{
	struct modcache *c;
	char *path = NULL, err[512];
	uint64_t now;
	enum viv_err e;

	*out = NULL;
	*why = NULL;
	if (r->module) {
		*out = r->module;
		return VIV_OK;
	}
	HASH_FIND_STR(rt->mods, r->artifact, c);
	if (c) {
		r->module = run_module_ref(c->module);
		*out = r->module;
		return VIV_OK;
	}
	now = viv_mono_ns();
	if (r->load_error && now - r->load_failed_at < RETRY_LOAD_NS) {
		*why = r->load_error;
		return VIV_ERR_IO;
	}
	path = store_artifact_path(rt->st, r->artifact, "so");
	if (!path)
		return VIV_ERR_NOMEM;
	e = run_module_load(path, r->artifact, &r->module, err, sizeof(err));
	free(path);
	if (e) {
		free(r->load_error);
		r->load_error = strdup(err);
		r->load_failed_at = now;
		*why = r->load_error ? r->load_error : "cannot load the artifact";
		viv_log(VIV_ERROR, "app %s: %s", r->name, *why);
		return e;
	}
	free(r->load_error);
	r->load_error = NULL;
	c = r->preview ? NULL : calloc(1, sizeof(*c));
	if (c) {
		memcpy(c->hash, r->artifact, sizeof(c->hash));
		c->module = run_module_ref(r->module);
		c->seen = true;
		HASH_ADD_STR(rt->mods, hash, c);
	}
	*out = r->module;
	return VIV_OK;
}

struct run_assets *run_route_assets(struct run_route *r)
{
	enum viv_err err;

	if (!r->assets_dir)
		return NULL;
	if (!r->assets_tried) {
		r->assets_tried = true;
		err = run_assets_open(r->assets_dir, &r->assets);
		if (err)
			viv_log(VIV_ERROR, "app %s: cannot index its static files in %s: %s",
			        r->name, r->assets_dir, viv_strerror(err));
	}
	return r->assets;
}

bool run_route_asset(struct run_route *r, const char *target, size_t len, struct run_asset *out)
{
	return run_assets_find(run_route_assets(r), target, len, out);
}
