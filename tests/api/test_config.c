/* App configuration through the API: PUT, GET and DELETE as a client sees
 * them, with the token, and the errors that say what to fix. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api_server.h"
#include "store.h"

static struct tsrv srv;

static void setup(void)
{
	struct tresp r;

	tsrv_start(&srv, 0, NULL);
	/* A first upload creates the app. */
	thttp(&srv, "POST", "/v1/apps/cfg/deployments", srv.token, twasm_min, twasm_min_len, false,
	      &r);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	tresp_free(&r);
}

static void teardown(void)
{
	tsrv_stop(&srv);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 120);

static void put(const char *key, const char *value, size_t len, long status, struct tresp *r)
{
	char path[512];

	snprintf(path, sizeof(path), "/v1/apps/cfg/config/%s", key);
	thttp(&srv, "PUT", path, srv.token, value, len, false, r);
	cr_assert_eq(r->status, status, "PUT %s: %ld %s", key, r->status, r->body);
}

static const char *error_of(const struct tresp *r)
{
	const char *e = json_string_value(json_object_get(r->json, "error"));

	cr_assert_not_null(e, "%s", r->body);
	return e;
}

/* GET /v1/apps/cfg/config, asserting the 200: its JSON (caller frees). */
static json_t *get_config(void)
{
	struct tresp r;
	json_t *j;

	thttp(&srv, "GET", "/v1/apps/cfg/config", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = json_incref(r.json);
	tresp_free(&r);
	return j;
}

Test(config, put_get_delete)
{
	static const char greeting[] = "Hello, \"world\"\n";
	struct tresp r;
	json_t *j;

	j = get_config();
	cr_assert_eq(json_object_size(json_object_get(j, "config")), 0);
	cr_assert_eq(json_object_size(json_object_get(j, "sources")), 0);
	cr_assert_eq(json_array_size(json_object_get(j, "secrets")), 0);
	json_decref(j);

	put("GREETING", greeting, strlen(greeting), 204, &r);
	cr_assert_eq(r.len, 0);
	tresp_free(&r);
	put("API_URL", "https://api.example.com", 23, 204, &r);
	tresp_free(&r);
	put("EMPTY", "", 0, 204, &r);
	tresp_free(&r);

	j = get_config();
	cr_assert_str_eq(
	        json_string_value(json_object_get(json_object_get(j, "config"), "GREETING")),
	        greeting);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "EMPTY")),
	                 "");
	cr_assert_str_eq(
	        json_string_value(json_object_get(json_object_get(j, "sources"), "API_URL")),
	        "set");
	json_decref(j);

	thttp(&srv, "DELETE", "/v1/apps/cfg/config/GREETING", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	tresp_free(&r);
	j = get_config();
	cr_assert_null(json_object_get(json_object_get(j, "config"), "GREETING"));
	cr_assert_not_null(json_object_get(json_object_get(j, "config"), "API_URL"));
	json_decref(j);
	thttp(&srv, "DELETE", "/v1/apps/cfg/config/GREETING", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(error_of(&r), "has no setting GREETING"), "%s", r.body);
	tresp_free(&r);
}

Test(config, secrets_show_their_names_only)
{
	static const char value[] = "s3cr3t-value-never-shown";
	struct tresp r;
	json_t *j, *list;

	put("SHARED", "plain", 5, 204, &r);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/secrets/API_KEY", srv.token, value, strlen(value), false,
	      &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/secrets/SHARED", srv.token, value, strlen(value), false,
	      &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	tresp_free(&r);

	thttp(&srv, "GET", "/v1/apps/cfg/secrets", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	list = json_object_get(r.json, "secrets");
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "name")),
	                 "API_KEY");
	cr_assert(json_is_string(json_object_get(json_array_get(list, 0), "updated_at")));
	cr_assert_null(strstr(r.body, value), "%s", r.body);
	tresp_free(&r);

	j = get_config();
	/* The setting of the same name shows as the plain setting. */
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "SHARED")),
	                 "plain");
	cr_assert_eq(json_array_size(json_object_get(j, "secrets")), 2);
	json_decref(j);
	thttp(&srv, "GET", "/v1/apps/cfg", srv.token, NULL, 0, false, &r);
	cr_assert_null(strstr(r.body, value), "%s", r.body);
	tresp_free(&r);

	thttp(&srv, "DELETE", "/v1/apps/cfg/secrets/API_KEY", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	tresp_free(&r);
	thttp(&srv, "DELETE", "/v1/apps/cfg/secrets/API_KEY", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404, "%s", r.body);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/secrets/9X", srv.token, "v", 1, false, &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	tresp_free(&r);
}

Test(config, the_token_is_required)
{
	struct tresp r;
	json_t *j;

	thttp(&srv, "GET", "/v1/apps/cfg/config", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/config/A", "viv_wrong", "x", 1, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	thttp(&srv, "DELETE", "/v1/apps/cfg/config/A", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/secrets/A", NULL, "x", 1, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	/* Nothing was set by the refused PUTs. */
	j = get_config();
	cr_assert_eq(json_object_size(json_object_get(j, "config")), 0);
	cr_assert_eq(json_array_size(json_object_get(j, "secrets")), 0);
	json_decref(j);
}

Test(config, errors_say_what_to_fix)
{
	char *big = malloc(STORE_CONFIG_VALUE_MAX + 1);
	struct tresp r;

	put("1ST", "x", 1, 400, &r);
	cr_assert(strstr(error_of(&r), "names are 1 to 128 letters, digits and '_'"), "%s", r.body);
	tresp_free(&r);
	put("A-B", "x", 1, 400, &r);
	tresp_free(&r);
	put("BAD", "\xff\xfe", 2, 400, &r);
	cr_assert(strstr(error_of(&r), "must be UTF-8 text"), "%s", r.body);
	tresp_free(&r);
	put("NUL", "a\0b", 3, 400, &r);
	cr_assert(strstr(error_of(&r), "NUL"), "%s", r.body);
	tresp_free(&r);
	memset(big, 'x', STORE_CONFIG_VALUE_MAX + 1);
	put("BIG", big, STORE_CONFIG_VALUE_MAX + 1, 413, &r);
	cr_assert(strstr(error_of(&r), "at most 64 KiB"), "%s", r.body);
	tresp_free(&r);
	/* Chunked, so that only the body's length tells. */
	thttp(&srv, "PUT", "/v1/apps/cfg/config/BIG", srv.token, big, STORE_CONFIG_VALUE_MAX + 1,
	      true, &r);
	cr_assert_eq(r.status, 413, "%s", r.body);
	tresp_free(&r);
	put("BIG", big, STORE_CONFIG_VALUE_MAX, 204, &r);
	tresp_free(&r);
	free(big);

	thttp(&srv, "PUT", "/v1/apps/ghost/config/A", srv.token, "x", 1, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(error_of(&r), "There is no app named \"ghost\""), "%s", r.body);
	tresp_free(&r);
	thttp(&srv, "GET", "/v1/apps/ghost/config", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	tresp_free(&r);
	thttp(&srv, "GET", "/v1/apps/Bad_Name/config", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 400);
	tresp_free(&r);

	thttp(&srv, "GET", "/v1/apps/cfg/config/A", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(r.allow, "PUT, DELETE");
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/config", srv.token, "x", 1, false, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(r.allow, "GET, HEAD");
	tresp_free(&r);
}
