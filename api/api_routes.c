/* The API's endpoints for apps, deployments and logs, the index and health,
 * and the JSON values they share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_int.h"

/* ---- JSON values ----------------------------------------------------------- */

json_t *api_json_text(const char *s)
{
	return s ? api_json_textn(s, strlen(s)) : json_null();
}

bool api_utf8_valid(const char *s, size_t n)
{
	/* JSON carries a NUL only escaped, which clients mishandle. */
	return !memchr(s, '\0', n) && viv_utf8_valid(s, n);
}

json_t *api_json_textn(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	struct viv_buf b;
	json_t *j = NULL;
	size_t i = 0, k;

	if (api_utf8_valid(s, n))
		return json_stringn(s, n);
	viv_buf_init(&b, 0);
	while (i < n) {
		/* A sequence cut by the end of the bytes is not one. */
		k = p[i] ? viv_utf8_seq(p + i, n - i) : 0;
		if (k == 0) {
			k = 1;
			if (viv_buf_append(&b, "\xef\xbf\xbd", 3))
				goto out;
		} else if (viv_buf_append(&b, p + i, k)) {
			goto out;
		}
		i += k;
	}
	j = json_stringn(b.data ? b.data : "", b.len);
out:
	viv_buf_free(&b);
	return j;
}

json_t *api_json_time(int64_t ms)
{
	char buf[64];
	struct tm tm;
	time_t t;
	size_t n;

	if (ms <= 0)
		return json_null();
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm))
		return json_null();
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

void api_app_url(const struct api_server *s, const char *app, char *buf, size_t len)
{
	int port = s->cfg->apps_port;

	if (port <= 0 || port == 80)
		snprintf(buf, len, "http://%s.%s/", app, s->domain);
	else
		snprintf(buf, len, "http://%s.%s:%d/", app, s->domain, port);
}

json_t *api_json_id(int64_t id)
{
	return id > 0 ? json_integer((json_int_t)id) : json_null();
}

/* The timings object of a deployment; an empty object when the stored
 * text does not parse, which would be a store bug not worth a 500. */
static json_t *timings_json(const char *text)
{
	json_t *t = text ? json_loads(text, 0, NULL) : NULL;

	if (t && json_is_object(t))
		return t;
	json_decref(t);
	return json_object();
}

json_t *api_deployment_json(const struct api_server *s, const struct store_deployment *d, bool full)
{
	char url[API_URL_MAX], preview[API_URL_MAX + 32], label[96];
	json_t *obj;

	api_app_url(s, d->app, url, sizeof(url));
	snprintf(label, sizeof(label), "d%lld-%s", (long long)d->id, d->app);
	api_app_url(s, label, preview, sizeof(preview));
	obj = json_pack(
	        "{s:I,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:o,s:b,s:s,s:o,s:o}", "id",
	        (json_int_t)d->id, "app", api_json_text(d->app), "status",
	        store_dep_status_name(d->status), "created_at", api_json_time(d->created_at),
	        "started_at", api_json_time(d->started_at), "finished_at",
	        api_json_time(d->finished_at), "language", api_json_text(d->language), "mode",
	        api_json_text(store_mode_name(d->config.mode)), "artifact",
	        api_json_text(d->artifact), "upload_size", (json_int_t)d->upload_size,
	        "artifact_size",
	        d->artifact ? json_integer((json_int_t)d->artifact_size) : json_null(), "error",
	        api_json_text(d->error), "current", d->current, "url", url, "preview_url",
	        d->status == STORE_DEP_READY ? json_string(preview) : json_null(), "deployed_by",
	        api_json_text(d->deployed_by));
	if (!obj || !full)
		return obj;
	if (json_object_set_new(obj, "log", api_json_text(d->log ? d->log : "")) != 0 ||
	    json_object_set_new(obj, "timings", timings_json(d->timings)) != 0 ||
	    json_object_set_new(obj, "upload_sha256", api_json_text(d->upload_sha256)) != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

json_t *api_log_json(const struct store_log *line)
{
	return json_pack("{s:I,s:o,s:o,s:o,s:o}", "id", (json_int_t)line->id, "time",
	                 api_json_time(line->ts), "deployment", api_json_id(line->deployment_id),
	                 "stream", api_json_text(line->stream), "message",
	                 api_json_text(line->message));
}

/* Appends each of n elements of size bytes at arr, made JSON by fn, to a
 * new array: NULL on allocation failure. */
static json_t *json_list(const void *arr, size_t n, size_t size,
                         json_t *(*fn)(const struct api_server *s, const void *elem),
                         const struct api_server *s)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < n; i++) {
		if (json_array_append_new(list, fn(s, (const char *)arr + i * size)) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	return list;
}

static json_t *dep_elem(const struct api_server *s, const void *elem)
{
	return api_deployment_json(s, elem, false);
}

/* ---- Index and health --------------------------------------------------------- */

enum MHD_Result api_get_index(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < api_n_routes; i++) {
		char line[128];

		snprintf(line, sizeof(line), "%s %s", api_routes[i].method, api_routes[i].pattern);
		if (json_array_append_new(list, json_string(line)) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	return api_reply_json(
	        c, r, MHD_HTTP_OK,
	        json_pack("{s:s,s:s,s:I,s:o,s:s,s:s}", "service", "vivarium", "version",
	                  VIV_VERSION, "upload_max", (json_int_t)s->upload_max, "endpoints", list,
	                  "auth",
	                  "Authorization: Bearer TOKEN on every /v1 endpoint but /v1, "
	                  "/v1/openapi.json and /v1/templates",
	                  "openapi", "/v1/openapi.json"));
}

enum MHD_Result api_get_root(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	bool served = false;
	enum MHD_Result ret = api_static_serve(s, c, r, "index.html", &served);

	if (served)
		return ret;
	return api_get_index(s, c, r);
}

enum MHD_Result api_get_web(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	bool served = false;
	enum MHD_Result ret = MHD_YES;

	if (!r->param_bad)
		ret = api_static_serve(s, c, r, r->param, &served);
	if (served)
		return ret;
	return api_reply_error(c, r, MHD_HTTP_NOT_FOUND, "The web page has no file %s.", r->path);
}

enum MHD_Result api_get_web_vendor(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r)
{
	char name[sizeof(r->param) + 8];
	bool served = false;
	enum MHD_Result ret = MHD_YES;

	if (!r->param_bad) {
		snprintf(name, sizeof(name), "vendor/%s", r->param);
		ret = api_static_serve(s, c, r, name, &served);
	}
	if (served)
		return ret;
	return api_reply_error(c, r, MHD_HTTP_NOT_FOUND, "The web page has no file %s.", r->path);
}

enum MHD_Result api_get_healthz(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	int version = store_schema_version(s->st);

	if (version <= 0) {
		viv_log(VIV_ERROR, "health check: the database did not answer (schema version %d)",
		        version);
		return api_reply_json(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                      json_pack("{s:s,s:s}", "status", "unavailable", "error",
		                                "The database did not answer; the operator's log "
		                                "of vivd says why."));
	}
	return api_reply_json(c, r, MHD_HTTP_OK,
	                      json_pack("{s:s,s:i}", "status", "ok", "schema", version));
}

/* ---- Apps ------------------------------------------------------------------------ */

static json_t *app_json(const struct api_server *s, const struct store_app *a)
{
	char url[API_URL_MAX];

	api_app_url(s, a->name, url, sizeof(url));
	return json_pack("{s:o,s:o,s:o,s:s,s:o,s:o,s:o}", "name", api_json_text(a->name), "url",
	                 a->current_deployment ? json_string(url) : json_null(),
	                 "current_deployment", api_json_id(a->current_deployment), "state",
	                 store_app_state_name(a->state), "language", api_json_text(a->language),
	                 "created_at", api_json_time(a->created_at), "updated_at",
	                 api_json_time(a->updated_at));
}

enum MHD_Result api_get_apps(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_app *apps = NULL;
	json_t *arr = NULL;
	size_t n = 0, i;
	enum viv_err err;

	err = store_app_list(s->st, &apps, &n);
	if (err)
		return api_reply_store_error(c, r, err, "listing the apps");
	arr = json_array();
	for (i = 0; arr && i < n; i++) {
		/* An apps token sees its own apps only. */
		if (!store_token_allows(r->token, apps[i].name))
			continue;
		if (json_array_append_new(arr, app_json(s, &apps[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	store_app_list_free(apps, n);
	return api_reply_json(c, r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "apps", arr) : NULL);
}

enum MHD_Result api_get_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_app *app = NULL;
	struct store_deployment *ds = NULL;
	json_t *obj = NULL, *arr = NULL;
	size_t n = 0;
	enum viv_err err;

	err = store_app_get(s->st, r->app, &app);
	if (!err)
		err = store_deployment_list(s->st, r->app, 0, API_APP_DEPLOYMENTS, &ds, &n);
	if (err == VIV_ERR_NOT_FOUND) {
		store_app_free(app);
		return api_reply_no_such_app(c, r);
	}
	if (err) {
		store_app_free(app);
		return api_reply_store_error(c, r, err, "reading the app");
	}
	obj = app_json(s, app);
	arr = json_list(ds, n, sizeof(*ds), dep_elem, s);
	if (obj && arr && json_object_set_new(obj, "deployments", arr) == 0) {
		arr = NULL;
	} else {
		json_decref(obj);
		obj = NULL;
	}
	json_decref(arr);
	store_deployment_list_free(ds, n);
	store_app_free(app);
	return api_reply_json(c, r, MHD_HTTP_OK, obj);
}

enum MHD_Result api_delete_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_app_deleted done;
	enum viv_err err;

	err = store_app_delete(s->st, r->app, &done);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "deleting the app");
	viv_log(VIV_INFO,
	        "app %s deleted by token \"%s\": %zu deployment(s), %zu artifact(s) "
	        "and %zu static tree(s) removed",
	        r->app, r->token->name, done.deployments, done.artifacts_removed,
	        done.assets_removed);
	return api_reply_json(c, r, MHD_HTTP_OK,
	                      json_pack("{s:s,s:I,s:I}", "deleted", r->app, "deployments",
	                                (json_int_t)done.deployments, "artifacts_removed",
	                                (json_int_t)done.artifacts_removed));
}

/* ---- Deployments ----------------------------------------------------------------- */

enum MHD_Result api_get_deployments(struct api_server *s, struct MHD_Connection *c,
                                    struct api_req *r)
{
	struct store_deployment *ds = NULL;
	int64_t limit = API_APP_DEPLOYMENTS, before = 0;
	enum MHD_Result ret = MHD_YES;
	json_t *list;
	size_t n = 0;
	enum viv_err err;

	if (!api_query_int(c, r, "limit", 1, API_DEPLOYMENTS_MAX, &limit, &ret) ||
	    !api_query_int(c, r, "before", 1, INT64_MAX, &before, &ret))
		return ret;
	/* One more than asked says whether there is a next page. */
	err = store_deployment_list(s->st, r->app, before, (size_t)limit + 1, &ds, &n);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "listing the deployments");
	list = json_list(ds, n > (size_t)limit ? (size_t)limit : n, sizeof(*ds), dep_elem, s);
	ret = api_reply_json(
	        c, r, MHD_HTTP_OK,
	        list ? json_pack("{s:o,s:o}", "deployments", list, "next_before",
	                         n > (size_t)limit ? api_json_id(ds[limit - 1].id) : json_null())
	             : NULL);
	store_deployment_list_free(ds, n);
	return ret;
}

enum MHD_Result api_get_deployment(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r)
{
	struct store_deployment *d = NULL;
	enum viv_err err;
	json_t *obj;

	err = store_deployment_get(s->st, r->id, &d);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "There is no deployment %lld; GET "
		                       "/v1/apps/{app}/deployments lists an app's deployments.",
		                       (long long)r->id);
	if (err)
		return api_reply_store_error(c, r, err, "reading the deployment");
	if (!store_token_allows(r->token, d->app)) {
		enum MHD_Result ret = api_reply_forbidden(c, r, d->app);

		store_deployment_free(d);
		return ret;
	}
	obj = api_deployment_json(s, d, true);
	store_deployment_free(d);
	return api_reply_json(c, r, MHD_HTTP_OK, obj);
}

enum MHD_Result api_post_rollback(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	enum MHD_Result ret = MHD_YES;
	int64_t want = 0, cur = 0, prev = 0;
	json_t *body, *v;
	enum viv_err err;

	body = api_body_json(c, r, &ret);
	if (!body)
		return ret;
	v = json_object_get(body, "deployment");
	if (v && !(json_is_integer(v) && json_integer_value(v) > 0)) {
		json_decref(body);
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "\"deployment\" is the id of a ready deployment of the app; "
		                       "leave it out to go back to the one before the current.");
	}
	want = v ? (int64_t)json_integer_value(v) : 0;
	json_decref(body);
	err = store_app_rollback(s->st, r->app, want, &cur, &prev);
	if (err == VIV_ERR_NOT_FOUND && want) {
		struct store_app *app = NULL;

		if (store_app_get(s->st, r->app, &app) == VIV_ERR_NOT_FOUND)
			return api_reply_no_such_app(c, r);
		store_app_free(app);
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "The app \"%s\" has no deployment %lld; GET "
		                       "/v1/apps/%s/deployments lists them.",
		                       r->app, (long long)want, r->app);
	}
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err == VIV_ERR_INVALID && want)
		return api_reply_error(c, r, MHD_HTTP_CONFLICT,
		                       "Deployment %lld is not ready (it is queued, building or "
		                       "failed), so it cannot serve; pick a ready one.",
		                       (long long)want);
	if (err == VIV_ERR_INVALID)
		return api_reply_error(c, r, MHD_HTTP_CONFLICT,
		                       "The app \"%s\" has no ready deployment older than the "
		                       "current one to go back to.",
		                       r->app);
	if (err)
		return api_reply_store_error(c, r, err, "rolling back");
	viv_log(VIV_INFO, "app %s now serves deployment %lld (was %lld), by token \"%s\"", r->app,
	        (long long)cur, (long long)prev, r->token->name);
	return api_reply_json(c, r, MHD_HTTP_OK,
	                      json_pack("{s:s,s:I,s:o}", "app", r->app, "current_deployment",
	                                (json_int_t)cur, "previous_deployment", api_json_id(prev)));
}

/* ---- Logs ------------------------------------------------------------------------ */

enum MHD_Result api_get_app_logs(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_log *lines = NULL;
	int64_t after = 0, limit = API_LOGS_DEFAULT, next;
	enum MHD_Result ret = MHD_YES;
	json_t *arr = NULL;
	size_t n = 0, i;
	enum viv_err err;

	if (!api_query_int(c, r, "after", 0, INT64_MAX, &after, &ret) ||
	    !api_query_int(c, r, "limit", 1, API_LOGS_MAX, &limit, &ret))
		return ret;
	err = store_logs_get(s->st, r->app, after, (size_t)limit, &lines, &n);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the app's logs");
	next = after;
	arr = json_array();
	for (i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, api_log_json(&lines[i])) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
		if (lines[i].id > next)
			next = lines[i].id;
	}
	store_logs_free(lines, n);
	return api_reply_json(
	        c, r, MHD_HTTP_OK,
	        arr ? json_pack("{s:o,s:I}", "logs", arr, "next_after", (json_int_t)next) : NULL);
}
