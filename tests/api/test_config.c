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
	thttp(&srv, "POST", "/v1/apps/cfg/deployments", srv.token, twasm_min, twasm_min_len,
	      false, &r);
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

Test(config, put_get_delete)
{
	static const char greeting[] = "Hello, \"world\"\n";
	struct tresp r;

	thttp(&srv, "GET", "/v1/apps/cfg/config", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{}");
	tresp_free(&r);

	put("GREETING", greeting, strlen(greeting), 200, &r);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "GREETING")), greeting);
	tresp_free(&r);
	put("API_URL", "https://api.example.com", 23, 200, &r);
	tresp_free(&r);
	put("EMPTY", "", 0, 200, &r);
	tresp_free(&r);

	thttp(&srv, "GET", "/v1/apps/cfg/config", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"API_URL\":\"https://api.example.com\",\"EMPTY\":\"\","
				 "\"GREETING\":\"Hello, \\\"world\\\"\\n\"}");
	tresp_free(&r);

	thttp(&srv, "DELETE", "/v1/apps/cfg/config/GREETING", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_null(json_object_get(r.json, "GREETING"), "%s", r.body);
	cr_assert_not_null(json_object_get(r.json, "API_URL"), "%s", r.body);
	tresp_free(&r);
	thttp(&srv, "DELETE", "/v1/apps/cfg/config/GREETING", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(error_of(&r), "has no configuration value GREETING"), "%s", r.body);
	tresp_free(&r);
}

Test(config, the_token_is_required)
{
	struct tresp r;

	thttp(&srv, "GET", "/v1/apps/cfg/config", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/cfg/config/A", "viv_wrong", "x", 1, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	thttp(&srv, "DELETE", "/v1/apps/cfg/config/A", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);
	/* Nothing was set by the refused PUT. */
	thttp(&srv, "GET", "/v1/apps/cfg/config", srv.token, NULL, 0, false, &r);
	cr_assert_str_eq(r.body, "{}");
	tresp_free(&r);
}

Test(config, errors_say_what_to_fix)
{
	char *big = malloc(STORE_CONFIG_VALUE_MAX + 1);
	struct tresp r;

	put("1ST", "x", 1, 400, &r);
	cr_assert(strstr(error_of(&r), "Config keys are 1 to 128 letters, digits and '_'"), "%s",
		  r.body);
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
	put("BIG", big, STORE_CONFIG_VALUE_MAX, 200, &r);
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
