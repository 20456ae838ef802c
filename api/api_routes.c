/* The API's read endpoints: the index, health, apps, an app with its recent
 * deployments, an app's logs and one deployment, as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_int.h"

/* ---- JSON values ----------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when the
 * bytes there are not one. p is NUL-terminated, and each byte is looked at
 * only when the ones before it continued the sequence, so the NUL stops it. */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned char lo, hi;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		/* No overlong forms and no UTF-16 surrogates. */
		lo = p[0] == 0xe0 ? 0xa0 : 0x80;
		hi = p[0] == 0xed ? 0x9f : 0xbf;
		if (p[1] < lo || p[1] > hi)
			return 0;
		return (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		/* No overlong forms and nothing past U+10FFFF. */
		lo = p[0] == 0xf0 ? 0x90 : 0x80;
		hi = p[0] == 0xf4 ? 0x8f : 0xbf;
		if (p[1] < lo || p[1] > hi)
			return 0;
		if ((p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

json_t *api_json_text(const char *s)
{
	const unsigned char *p;
	struct viv_buf b;
	json_t *j = NULL;
	size_t n;
	bool clean = true;

	if (!s)
		return json_null();
	for (p = (const unsigned char *)s; *p; p += n) {
		n = utf8_seq(p);
		if (n == 0) {
			clean = false;
			break;
		}
	}
	if (clean)
		return json_string(s);

	viv_buf_init(&b, 0);
	for (p = (const unsigned char *)s; *p; p += n) {
		n = utf8_seq(p);
		if (n == 0) {
			n = 1;
			if (viv_buf_append(&b, "\xef\xbf\xbd", 3))
				goto out;
		} else if (viv_buf_append(&b, p, n)) {
			goto out;
		}
	}
	j = json_string(b.data ? b.data : "");
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

/* A deployment id from the request, or 0 for a missing one; null. */
static json_t *id_or_null(int64_t id)
{
	return id > 0 ? json_integer((json_int_t)id) : json_null();
}

/* Parses 1 to 18 decimal digits, nothing else, into *out. */
static bool parse_uint(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 18)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0)
		return false;
	*out = v;
	return true;
}

/* ---- Index and health --------------------------------------------------------- */

enum MHD_Result api_get_index(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_json(
		c, r, MHD_HTTP_OK,
		json_pack("{s:s,s:s,s:I,s:[s,s,s,s,s,s,s,s,s,s],s:s}", "service", "vivarium",
			  "version", VIV_VERSION, "upload_max", (json_int_t)s->cfg->pipe.upload_max,
			  "endpoints", "POST /v1/apps/{app}/deployments (body: .tar, .tar.gz or .wasm)",
			  "GET /v1/deployments/{id}", "GET /v1/apps", "GET /v1/apps/{app}",
			  "GET /v1/apps/{app}/logs?after={id}&limit={n}", "GET /v1/apps/{app}/config",
			  "PUT /v1/apps/{app}/config/{key} (body: the value)",
			  "DELETE /v1/apps/{app}/config/{key}", "GET /v1", "GET /healthz",
			  "auth", "Authorization: Bearer TOKEN on every /v1 endpoint"));
}

enum MHD_Result api_get_healthz(struct api_server *s, struct MHD_Connection *c,
				struct api_req *r)
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
	return json_pack("{s:o,s:s,s:o,s:o}", "name", api_json_text(a->name), "url", url,
			 "current_deployment", id_or_null(a->current_deployment), "created_at",
			 api_json_time(a->created_at));
}

enum MHD_Result api_get_apps(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_app *apps = NULL;
	json_t *arr = NULL;
	size_t n = 0, i;
	enum viv_err err;
	enum MHD_Result ret;

	err = store_app_list(s->st, &apps, &n);
	if (err)
		return api_reply_store_error(c, r, err, "listing the apps");
	arr = json_array();
	for (i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, app_json(s, &apps[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	store_app_list_free(apps, n);
	ret = api_reply_json(c, r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "apps", arr) : NULL);
	return ret;
}

enum MHD_Result api_reply_no_such_app(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
			       "There is no app named \"%s\"; GET /v1/apps (viv apps) lists them, "
			       "and a first deployment creates one.",
			       r->segment);
}

enum MHD_Result api_get_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_app *app = NULL;
	struct store_deployment *ds = NULL;
	json_t *obj = NULL, *arr = NULL;
	size_t n = 0, i;
	enum viv_err err;
	enum MHD_Result ret;

	err = store_app_get(s->st, r->segment, &app);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the app");
	err = store_deployment_list(s->st, r->segment, 0, API_APP_DEPLOYMENTS, &ds, &n);
	if (err) {
		store_app_free(app);
		if (err == VIV_ERR_NOT_FOUND)
			return api_reply_no_such_app(c, r);
		return api_reply_store_error(c, r, err, "listing the app's deployments");
	}
	obj = app_json(s, app);
	arr = json_array();
	for (i = 0; obj && arr && i < n; i++) {
		json_t *d = json_pack(
			"{s:I,s:s,s:o,s:o,s:o,s:o,s:b}", "id", (json_int_t)ds[i].id, "status",
			store_dep_status_name(ds[i].status), "created_at",
			api_json_time(ds[i].created_at), "finished_at",
			api_json_time(ds[i].finished_at), "artifact", api_json_text(ds[i].artifact),
			"error", api_json_text(ds[i].error), "current", ds[i].current);

		if (json_array_append_new(arr, d) != 0)
			break;
	}
	if (obj && arr && i == n && json_object_set_new(obj, "deployments", arr) == 0) {
		arr = NULL;
	} else {
		json_decref(obj);
		obj = NULL;
	}
	json_decref(arr);
	store_deployment_list_free(ds, n);
	store_app_free(app);
	ret = api_reply_json(c, r, MHD_HTTP_OK, obj);
	return ret;
}

enum MHD_Result api_get_app_logs(struct api_server *s, struct MHD_Connection *c,
				 struct api_req *r)
{
	struct store_log *lines = NULL;
	const char *v;
	int64_t after = 0, limit = API_LOGS_DEFAULT, next;
	json_t *arr = NULL;
	size_t n = 0, i;
	enum viv_err err;

	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	if (v && !parse_uint(v, &after))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
				       "\"after\" is the id of a log line (a whole number, 0 for "
				       "the newest lines); pass next_after from the previous "
				       "page.");
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	if (v && (!parse_uint(v, &limit) || limit < 1 || limit > API_LOGS_MAX))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
				       "\"limit\" is how many lines to return, 1 to %d.",
				       API_LOGS_MAX);
	err = store_logs_get(s->st, r->segment, after, (size_t)limit, &lines, &n);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the app's logs");
	next = after;
	arr = json_array();
	for (i = 0; arr && i < n; i++) {
		json_t *l = json_pack("{s:I,s:o,s:o,s:o,s:o}", "id", (json_int_t)lines[i].id,
				      "time", api_json_time(lines[i].ts), "deployment",
				      id_or_null(lines[i].deployment_id), "stream",
				      api_json_text(lines[i].stream), "message",
				      api_json_text(lines[i].message));

		if (json_array_append_new(arr, l) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
		if (lines[i].id > next)
			next = lines[i].id;
	}
	store_logs_free(lines, n);
	return api_reply_json(c, r, MHD_HTTP_OK,
			      arr ? json_pack("{s:o,s:I}", "logs", arr, "next_after",
					      (json_int_t)next)
				  : NULL);
}

/* ---- Deployments ----------------------------------------------------------------- */

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

enum MHD_Result api_get_deployment(struct api_server *s, struct MHD_Connection *c,
				   struct api_req *r)
{
	struct store_deployment *d = NULL;
	char url[API_URL_MAX];
	int64_t id = 0;
	json_t *obj;
	enum viv_err err;

	if (r->segment_cut || !parse_uint(r->segment, &id) || id <= 0)
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
				       "Deployment ids are positive whole numbers, such as the "
				       "\"id\" that the upload returned.");
	err = store_deployment_get(s->st, id, &d);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
				       "There is no deployment %lld; GET /v1/apps/{app} lists an "
				       "app's deployments.",
				       (long long)id);
	if (err)
		return api_reply_store_error(c, r, err, "reading the deployment");
	api_app_url(s, d->app, url, sizeof(url));
	obj = json_pack("{s:I,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:s,s:o,s:o,s:o,s:I,s:o}",
			"id", (json_int_t)d->id, "app", api_json_text(d->app), "status",
			store_dep_status_name(d->status), "created_at",
			api_json_time(d->created_at), "started_at", api_json_time(d->started_at),
			"finished_at", api_json_time(d->finished_at), "language",
			api_json_text(d->language), "mode", api_json_text(d->mode), "artifact",
			api_json_text(d->artifact), "current", d->current, "url", url, "error",
			api_json_text(d->error), "log", api_json_text(d->log ? d->log : ""),
			"timings", timings_json(d->timings), "upload_size",
			(json_int_t)d->upload_size, "upload_sha256",
			api_json_text(d->upload_sha256));
	store_deployment_free(d);
	return api_reply_json(c, r, MHD_HTTP_OK, obj);
}
