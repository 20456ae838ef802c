/* Token management (admin tokens only): POST /v1/tokens makes a token and
 * shows it once, GET /v1/tokens lists them (the admin token of the data
 * folder among them), DELETE /v1/tokens/ID revokes one. */
#include <string.h>

#include "api_int.h"

static json_t *token_json(const struct store_token *t)
{
	json_t *apps = json_array();

	for (size_t i = 0; apps && i < t->n_apps; i++) {
		if (json_array_append_new(apps, json_string(t->apps[i])) != 0) {
			json_decref(apps);
			apps = NULL;
		}
	}
	if (!apps)
		return NULL;
	return json_pack("{s:I,s:o,s:s,s:o,s:o,s:o}", "id", (json_int_t)t->id, "name",
	                 api_json_text(t->name), "scope", store_scope_name(t->scope), "apps", apps,
	                 "created_at", api_json_time(t->created_at), "last_used_at",
	                 api_json_time(t->last_used_at));
}

enum MHD_Result api_get_tokens(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_token *ts = NULL;
	json_t *list;
	size_t n = 0;
	enum viv_err err;

	err = store_token_list(s->st, &ts, &n);
	if (err)
		return api_reply_store_error(c, r, err, "listing the tokens");
	list = json_array();
	for (size_t i = 0; list && i < n; i++) {
		if (json_array_append_new(list, token_json(&ts[i])) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	store_token_list_free(ts, n);
	return api_reply_json(c, r, MHD_HTTP_OK, list ? json_pack("{s:o}", "tokens", list) : NULL);
}

/* The app names of a token request into names (at most
 * STORE_TOKEN_APPS_MAX): false with the reason in why when they are not a
 * list of valid names. */
static bool read_apps(json_t *apps, const char **names, size_t *n, char *why, size_t len)
{
	size_t i;
	json_t *v;

	*n = 0;
	if (!json_is_array(apps) || json_array_size(apps) == 0 ||
	    json_array_size(apps) > STORE_TOKEN_APPS_MAX) {
		viv_errf(why, len,
		         "A token of scope \"apps\" needs \"apps\": a list of 1 to %d app names.",
		         STORE_TOKEN_APPS_MAX);
		return false;
	}
	json_array_foreach(apps, i, v)
	{
		names[i] = json_string_value(v);
		if (!names[i] || !viv_app_name_valid(names[i])) {
			viv_errf(why, len,
			         "\"apps\" holds app names, which are DNS labels: 1-63 lowercase "
			         "letters, digits and '-' (item %zu is not one).",
			         i + 1);
			return false;
		}
	}
	*n = json_array_size(apps);
	return true;
}

enum MHD_Result api_post_token(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	const char *names[STORE_TOKEN_APPS_MAX];
	struct store_token *info = NULL;
	enum MHD_Result ret = MHD_YES;
	enum store_scope scope;
	const char *name, *sc;
	char why[256], *token = NULL;
	json_t *body, *obj = NULL;
	size_t n = 0;
	enum viv_err err;

	body = api_body_json(c, r, &ret);
	if (!body)
		return ret;
	name = json_string_value(json_object_get(body, "name"));
	sc = json_string_value(json_object_get(body, "scope"));
	if (!name || !store_token_name_valid(name)) {
		ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                      "\"name\" is 1 to %d printable ASCII characters that say "
		                      "whose the token is, such as \"ci\" (\"admin\" is taken).",
		                      STORE_TOKEN_NAME_MAX);
		goto out;
	}
	if (!sc || (strcmp(sc, "admin") != 0 && strcmp(sc, "apps") != 0)) {
		ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                      "\"scope\" is \"admin\" (everything) or \"apps\" (deploy and "
		                      "read the apps named in \"apps\").");
		goto out;
	}
	scope = strcmp(sc, "apps") == 0 ? STORE_SCOPE_APPS : STORE_SCOPE_ADMIN;
	if (scope == STORE_SCOPE_APPS &&
	    !read_apps(json_object_get(body, "apps"), names, &n, why, sizeof(why))) {
		ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
		goto out;
	}
	if (scope == STORE_SCOPE_ADMIN && json_array_size(json_object_get(body, "apps")) > 0) {
		ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                      "An admin token acts on every app; leave \"apps\" out, or "
		                      "use scope \"apps\".");
		goto out;
	}
	err = store_token_create(s->st, name, scope, names, n, &token, &info);
	if (err) {
		ret = api_reply_store_error(c, r, err, "making the token");
		goto out;
	}
	viv_log(VIV_INFO, "token %lld \"%s\" (scope %s) made by token \"%s\"", (long long)info->id,
	        info->name, sc, r->token->name);
	obj = token_json(info);
	if (obj && json_object_set_new(obj, "token", json_string(token)) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	ret = api_reply_json(c, r, MHD_HTTP_CREATED, obj);
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	store_token_free(info);
	json_decref(body);
	return ret;
}

enum MHD_Result api_delete_token(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	enum viv_err err;

	err = store_token_delete(s->st, r->id);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "There is no token %lld; GET /v1/tokens lists them.",
		                       (long long)r->id);
	if (err == VIV_ERR_UNSUPPORTED)
		return api_reply_error(c, r, MHD_HTTP_CONFLICT,
		                       "Token %lld is the admin token of the data folder; to "
		                       "replace it, remove the file admin-token and restart vivd.",
		                       (long long)r->id);
	if (err)
		return api_reply_store_error(c, r, err, "revoking the token");
	viv_log(VIV_INFO, "token %lld revoked by token \"%s\"", (long long)r->id, r->token->name);
	return api_reply_empty(c, r);
}
