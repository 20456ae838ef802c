/* App configuration through the API: GET /v1/apps/APP/config, and PUT and
 * DELETE /v1/apps/APP/config/KEY with the raw value as the PUT body. The
 * values override the manifest's env of the same name for every deployment
 * of the app, from the next request on. */
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

static const char *const key_rule =
	"Config keys are 1 to 128 letters, digits and '_', not starting with a digit (for "
	"example GREETING or API_URL).";

/* The same rule store_app_config_set() applies, checked first so that a bad
 * key is a 400 that says why. */
static bool key_valid(const char *key)
{
	size_t n = strlen(key);

	if (n < 1 || n > STORE_CONFIG_KEY_MAX || (key[0] >= '0' && key[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = key[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

/* Answers with the app's values as one JSON object. */
static enum MHD_Result reply_config(struct api_server *s, struct MHD_Connection *c,
				    struct api_req *r)
{
	json_error_t jerr;
	json_t *obj;
	char *text = NULL;
	enum viv_err err;

	err = store_app_settings_get(s->st, r->segment, &text);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the app's configuration");
	obj = json_loads(text, 0, &jerr);
	if (!obj)
		viv_log(VIV_ERROR, "%s %s: the stored configuration is not JSON: %s", r->method,
			r->path, jerr.text);
	free(text);
	return api_reply_json(c, r, MHD_HTTP_OK, obj);
}

static enum MHD_Result bad_key(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", key_rule);
}

enum MHD_Result api_get_config(struct api_server *s, struct MHD_Connection *c,
			       struct api_req *r)
{
	return reply_config(s, c, r);
}

enum MHD_Result api_delete_config(struct api_server *s, struct MHD_Connection *c,
				  struct api_req *r)
{
	bool existed = false;
	enum viv_err err;

	if (r->key_cut || !key_valid(r->key))
		return bad_key(c, r);
	err = store_app_config_unset(s->st, r->segment, r->key, &existed);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "removing the configuration value");
	if (!existed)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
				       "The app \"%s\" has no configuration value %s; GET "
				       "/v1/apps/%s/config lists them.",
				       r->segment, r->key, r->segment);
	return reply_config(s, c, r);
}

static enum MHD_Result too_big(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
			       "A configuration value is at most %d KiB; keep larger data in "
			       "static assets or the app's KV store.",
			       STORE_CONFIG_VALUE_MAX / 1024);
}

enum MHD_Result api_put_config_begin(struct api_server *s, struct MHD_Connection *c,
				     struct api_req *r)
{
	uint64_t declared;

	(void)s;
	if (r->key_cut || !key_valid(r->key))
		return bad_key(c, r);
	if (api_content_length(c, &declared) && declared > STORE_CONFIG_VALUE_MAX)
		return too_big(c, r);
	r->collecting = true;
	return MHD_YES;
}

enum MHD_Result api_put_config_finish(struct api_server *s, struct MHD_Connection *c,
				      struct api_req *r)
{
	const char *value = r->body.data ? r->body.data : "";
	enum viv_err err;

	r->collecting = false;
	if (r->body_too_big)
		return too_big(c, r);
	if (memchr(value, '\0', r->body.len))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
				       "A configuration value is text: it cannot hold a NUL byte.");
	err = store_app_config_set(s->st, r->segment, r->key, value);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	/* The key was checked, so the value is what the store refused. */
	if (err == VIV_ERR_INVALID)
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
				       "A configuration value must be UTF-8 text; send it as the "
				       "raw request body.");
	if (err)
		return api_reply_store_error(c, r, err, "storing the configuration value");
	return reply_config(s, c, r);
}
