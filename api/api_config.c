/* Settings and secrets through the API. GET /v1/apps/APP/config shows the
 * effective plain settings (the current deployment's manifest env under what
 * was set through the API) and the names of secrets; PUT and DELETE
 * /v1/apps/APP/config/KEY and /v1/apps/APP/secrets/NAME set and remove
 * them, with the raw value as the PUT body. Guests see the changes from
 * their next request on; no reply and no log line holds a secret's value. */
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

static const char *const key_rule =
        "Setting and secret names are 1 to 128 letters, digits and '_', not starting with a "
        "digit (for example GREETING or API_KEY).";

static enum MHD_Result bad_key(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", key_rule);
}

static bool key_ok(const struct api_req *r)
{
	return !r->param_bad && store_config_key_valid(r->param);
}

/* The env object of the app's current deployment's configuration, or an
 * empty object. New reference; NULL on allocation failure, or (after
 * queuing the reply, with *ret set) when the store failed. */
static json_t *manifest_env(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                            int64_t current, enum MHD_Result *ret)
{
	struct store_deployment *d = NULL;
	json_t *env;
	enum viv_err err;

	if (current <= 0)
		return json_object();
	err = store_deployment_get(s->st, current, &d);
	if (err == VIV_ERR_NOT_FOUND)
		return json_object();
	if (err) {
		*ret = api_reply_store_error(c, r, err, "reading the current deployment");
		return NULL;
	}
	env = json_object();
	for (size_t i = 0; env && i < d->config.n_env; i++) {
		if (json_object_set_new(env, d->config.env[i].name,
		                        json_string(d->config.env[i].value)) != 0) {
			json_decref(env);
			env = NULL;
		}
	}
	store_deployment_free(d);
	return env;
}

/* {"config": {...}, "sources": {...}, "secrets": [...]} for the app. */
static json_t *config_json(json_t *env, json_t *set, const struct store_secret *secrets, size_t n)
{
	json_t *config = json_object(), *sources = json_object(), *names = json_array(), *v;
	const char *key;

	json_object_foreach(env, key, v)
	{
		if (json_is_string(v) &&
		    (json_object_set(config, key, v) != 0 ||
		     json_object_set_new(sources, key, json_string("manifest")) != 0))
			goto fail;
	}
	json_object_foreach(set, key, v)
	{
		if (json_object_set(config, key, v) != 0 ||
		    json_object_set_new(sources, key, json_string("set")) != 0)
			goto fail;
	}
	for (size_t i = 0; names && i < n; i++) {
		if (json_array_append_new(names, json_string(secrets[i].name)) != 0)
			goto fail;
	}
	return json_pack("{s:o,s:o,s:o}", "config", config, "sources", sources, "secrets", names);
fail:
	json_decref(config);
	json_decref(sources);
	json_decref(names);
	return NULL;
}

enum MHD_Result api_get_config(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_secret *secrets = NULL;
	struct store_app *app = NULL;
	enum MHD_Result ret = MHD_YES;
	json_t *env = NULL, *set = NULL, *obj = NULL;
	char *text = NULL;
	size_t n = 0;
	enum viv_err err;

	err = store_app_get(s->st, r->app, &app);
	if (!err)
		err = store_app_settings_get(s->st, r->app, &text);
	if (!err)
		err = store_secret_list(s->st, r->app, &secrets, &n);
	if (err == VIV_ERR_NOT_FOUND) {
		ret = api_reply_no_such_app(c, r);
		goto out;
	}
	if (err) {
		ret = api_reply_store_error(c, r, err, "reading the app's settings");
		goto out;
	}
	env = manifest_env(s, c, r, app->current_deployment, &ret);
	if (!env && r->status)
		goto out;
	set = json_loads(text, 0, NULL);
	if (env && set)
		obj = config_json(env, set, secrets, n);
	ret = api_reply_json(c, r, MHD_HTTP_OK, obj);
out:
	json_decref(env);
	json_decref(set);
	free(text);
	store_secret_list_free(secrets, n);
	store_app_free(app);
	return ret;
}

/* A PUT body as a setting's or secret's value: stores it with set(), then
 * 204; 400 for a NUL byte or bytes that are not UTF-8. */
static enum MHD_Result put_value(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                                 const char *what,
                                 enum viv_err (*set)(struct store *st, const char *app,
                                                     const char *key, const char *value))
{
	const char *value = r->body.data ? r->body.data : "";
	enum viv_err err;

	if (!key_ok(r))
		return bad_key(c, r);
	if (memchr(value, '\0', r->body.len))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "A %s is text: it cannot hold a NUL byte.", what);
	err = set(s->st, r->app, r->param, value);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	/* The key was checked, so the value is what the store refused. */
	if (err == VIV_ERR_INVALID)
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "A %s must be UTF-8 text; send it as the raw request body.",
		                       what);
	if (err)
		return api_reply_store_error(c, r, err, "storing the value");
	viv_log(VIV_INFO, "app %s: %s %s set by token \"%s\"", r->app, what, r->param,
	        r->token->name);
	return api_reply_empty(c, r);
}

/* DELETE of a setting or secret: 204, or 404 when it was not set. */
static enum MHD_Result delete_value(struct api_server *s, struct MHD_Connection *c,
                                    struct api_req *r, const char *what, const char *list,
                                    enum viv_err (*unset)(struct store *st, const char *app,
                                                          const char *key, bool *existed))
{
	bool existed = false;
	enum viv_err err;

	if (!key_ok(r))
		return bad_key(c, r);
	err = unset(s->st, r->app, r->param, &existed);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "removing the value");
	if (!existed)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "The app \"%s\" has no %s %s set through the API; GET "
		                       "/v1/apps/%s/%s lists them.",
		                       r->app, what, r->param, r->app, list);
	return api_reply_empty(c, r);
}

enum MHD_Result api_put_config(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	return put_value(s, c, r, "setting", store_app_config_set);
}

enum MHD_Result api_delete_config(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	return delete_value(s, c, r, "setting", "config", store_app_config_unset);
}

enum MHD_Result api_put_secret(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	return put_value(s, c, r, "secret", store_secret_set);
}

enum MHD_Result api_delete_secret(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	return delete_value(s, c, r, "secret", "secrets", store_secret_unset);
}

enum MHD_Result api_get_secrets(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_secret *secrets = NULL;
	json_t *list;
	size_t n = 0;
	enum viv_err err;

	err = store_secret_list(s->st, r->app, &secrets, &n);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "listing the secrets");
	list = json_array();
	for (size_t i = 0; list && i < n; i++) {
		if (json_array_append_new(
		            list, json_pack("{s:s,s:o}", "name", secrets[i].name, "updated_at",
		                            api_json_time(secrets[i].updated_at))) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	store_secret_list_free(secrets, n);
	return api_reply_json(c, r, MHD_HTTP_OK, list ? json_pack("{s:o}", "secrets", list) : NULL);
}
