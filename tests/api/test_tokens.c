/* Tokens and their scopes over HTTP: making, listing and revoking tokens,
 * 401 against 403, exactly what an apps token may do, and who made each
 * deployment. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_server.h"

static struct tsrv srv;

static void setup(void)
{
	tsrv_start(&srv, 0, NULL);
}

static void teardown(void)
{
	tsrv_stop(&srv);
}

TestSuite(tokens, .init = setup, .fini = teardown, .timeout = 240);

/* Makes a token through the API with the JSON request body; returns the
 * reply's JSON (caller frees), after asserting the 201. */
static json_t *make_token(const char *request)
{
	struct tresp r;
	json_t *j;

	thttp(&srv, "POST", "/v1/tokens", srv.token, request, strlen(request), false, &r);
	cr_assert_eq(r.status, 201, "%s: %ld %s", request, r.status, r.body);
	j = json_incref(r.json);
	tresp_free(&r);
	return j;
}

static void expect(const char *method, const char *path, const char *token, const char *body,
                   long status)
{
	struct tresp r;

	thttp(&srv, method, path, token, body, body ? strlen(body) : 0, false, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld %s", method, path, r.status, r.body);
	if (status >= 400)
		cr_assert_not_null(tjstr(r.json, "error"), "%s", r.body);
	tresp_free(&r);
}

Test(tokens, make_list_and_revoke)
{
	json_t *ci, *list, *admin;
	struct tresp r;
	char path[64];
	long long id;

	ci = make_token("{\"name\": \"ci\", \"scope\": \"apps\", \"apps\": [\"web\", \"api\"]}");
	cr_assert_str_eq(tjstr(ci, "name"), "ci");
	cr_assert_str_eq(tjstr(ci, "scope"), "apps");
	cr_assert_eq(json_array_size(json_object_get(ci, "apps")), 2);
	cr_assert_eq(strncmp(tjstr(ci, "token"), "viv_", 4), 0);
	cr_assert(json_is_string(json_object_get(ci, "created_at")));
	cr_assert(json_is_null(json_object_get(ci, "last_used_at")));
	id = json_integer_value(json_object_get(ci, "id"));

	/* Used once, then listed: the secret is never shown again. */
	expect("GET", "/v1/apps", tjstr(ci, "token"), NULL, 200);
	thttp(&srv, "GET", "/v1/tokens", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	list = json_object_get(r.json, "tokens");
	cr_assert_eq(json_array_size(list), 2);
	admin = json_array_get(list, 0);
	cr_assert_str_eq(tjstr(admin, "name"), "admin");
	cr_assert_str_eq(tjstr(admin, "scope"), "admin");
	cr_assert(json_is_string(json_object_get(json_array_get(list, 1), "last_used_at")), "%s",
	          r.body);
	cr_assert_null(strstr(r.body, tjstr(ci, "token") + 4), "%s", r.body);
	cr_assert_null(json_object_get(json_array_get(list, 1), "token"));
	snprintf(path, sizeof(path), "/v1/tokens/%lld",
	         (long long)json_integer_value(json_object_get(admin, "id")));
	tresp_free(&r);

	/* The admin token of the data folder stays. */
	expect("DELETE", path, srv.token, NULL, 409);
	snprintf(path, sizeof(path), "/v1/tokens/%lld", id);
	expect("DELETE", path, srv.token, NULL, 204);
	expect("DELETE", path, srv.token, NULL, 404);
	expect("GET", "/v1/apps", tjstr(ci, "token"), NULL, 401);
	expect("DELETE", "/v1/tokens/abc", srv.token, NULL, 400);
	json_decref(ci);
}

Test(tokens, requests_are_checked)
{
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{\"scope\": \"admin\"}",
	        "{\"name\": \"admin\", \"scope\": \"admin\"}",
	        "{\"name\": \"x\", \"scope\": \"root\"}",
	        "{\"name\": \"x\", \"scope\": \"apps\"}",
	        "{\"name\": \"x\", \"scope\": \"apps\", \"apps\": []}",
	        "{\"name\": \"x\", \"scope\": \"apps\", \"apps\": [\"Not_A_Name\"]}",
	        "{\"name\": \"x\", \"scope\": \"admin\", \"apps\": [\"web\"]}",
	        "{\"name\": \"line\\nbreak\", \"scope\": \"admin\"}",
	        "{\"name\": \"x\", \"name\": \"y\", \"scope\": \"admin\"}",
	};
	json_t *ok;

	/* The empty body is an empty object: no name. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect("POST", "/v1/tokens", srv.token, bad[i], 400);
	expect("POST", "/v1/tokens", NULL, "{\"name\": \"x\", \"scope\": \"admin\"}", 401);
	ok = make_token("{\"name\": \"deploy bot\", \"scope\": \"admin\"}");
	cr_assert_eq(json_array_size(json_object_get(ok, "apps")), 0);
	/* An admin token made through the API may make tokens. */
	expect("GET", "/v1/tokens", tjstr(ok, "token"), NULL, 200);
	json_decref(ok);
}

Test(tokens, an_apps_token_may_exactly_what_the_contract_says)
{
	static const char *const forbidden_own[][2] = {
	        {"DELETE", "/v1/apps/mine"},
	        {"PUT", "/v1/apps/mine/config/A"},
	        {"DELETE", "/v1/apps/mine/config/A"},
	        {"PUT", "/v1/apps/mine/secrets/S"},
	        {"DELETE", "/v1/apps/mine/secrets/S"},
	        {"PUT", "/v1/apps/mine/kv/k"},
	        {"DELETE", "/v1/apps/mine/kv/k"},
	        {"GET", "/v1/tokens"},
	        {"POST", "/v1/tokens"},
	        {"DELETE", "/v1/tokens/1"},
	};
	static const char *const other_app[][2] = {
	        {"GET", "/v1/apps/theirs"},
	        {"GET", "/v1/apps/theirs/deployments"},
	        {"POST", "/v1/apps/theirs/rollback"},
	        {"GET", "/v1/apps/theirs/logs"},
	        {"GET", "/v1/apps/theirs/logs/stream"},
	        {"GET", "/v1/apps/theirs/config"},
	        {"GET", "/v1/apps/theirs/secrets"},
	        {"GET", "/v1/apps/theirs/kv"},
	        {"GET", "/v1/apps/theirs/kv/k"},
	        {"POST", "/v1/apps/theirs/deployments"},
	};
	json_t *t, *apps, *d;
	struct tresp r;
	const char *tok;
	char path[96];
	long long mine, theirs;

	t = make_token("{\"name\": \"ci\", \"scope\": \"apps\", \"apps\": [\"mine\", \"later\"]}");
	tok = tjstr(t, "token");
	mine = tupload(&srv, "mine", tok, twasm_min, twasm_min_len);
	theirs = tupload(&srv, "theirs", NULL, twasm_min, twasm_min_len);
	expect("PUT", "/v1/apps/mine/kv/k", srv.token, "v", 201);
	expect("PUT", "/v1/apps/mine/config/A", srv.token, "1", 204);
	expect("PUT", "/v1/apps/mine/secrets/S", srv.token, "hidden", 204);

	/* What it may do on its own apps. */
	expect("GET", "/v1/apps/mine", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/deployments", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/logs", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/config", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/secrets", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/kv", tok, NULL, 200);
	expect("GET", "/v1/apps/mine/kv/k", tok, NULL, 200);
	snprintf(path, sizeof(path), "/v1/deployments/%lld", mine);
	expect("GET", path, tok, NULL, 200);
	/* An app it names that does not exist yet: created by its upload. */
	tupload(&srv, "later", tok, twasm_min, twasm_min_len);

	/* What it may not. */
	for (size_t i = 0; i < sizeof(forbidden_own) / sizeof(forbidden_own[0]); i++)
		expect(forbidden_own[i][0], forbidden_own[i][1], tok, "{}", 403);
	for (size_t i = 0; i < sizeof(other_app) / sizeof(other_app[0]); i++)
		expect(other_app[i][0], other_app[i][1], tok, "{}", 403);
	snprintf(path, sizeof(path), "/v1/deployments/%lld", theirs);
	expect("GET", path, tok, NULL, 403);
	snprintf(path, sizeof(path), "/v1/deployments/%lld/events", theirs);
	expect("GET", path, tok, NULL, 403);
	/* Nothing it was refused happened. */
	expect("GET", "/v1/apps/mine/kv/k", srv.token, NULL, 200);
	thttp(&srv, "GET", "/v1/apps/mine/config", tok, NULL, 0, false, &r);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "config"), "A")),
	                 "1");
	cr_assert_null(strstr(r.body, "hidden"), "%s", r.body);
	tresp_free(&r);

	/* It sees its own apps only, and its uploads carry its name. */
	thttp(&srv, "GET", "/v1/apps", tok, NULL, 0, false, &r);
	apps = json_object_get(r.json, "apps");
	cr_assert_eq(json_array_size(apps), 2, "%s", r.body);
	cr_assert_str_eq(tjstr(json_array_get(apps, 0), "name"), "later");
	cr_assert_str_eq(tjstr(json_array_get(apps, 1), "name"), "mine");
	tresp_free(&r);
	d = twait_deployment(&srv, mine, 200);
	cr_assert_str_eq(tjstr(d, "deployed_by"), "ci");
	json_decref(d);
	d = twait_deployment(&srv, theirs, 200);
	cr_assert_str_eq(tjstr(d, "deployed_by"), "admin");
	json_decref(d);

	/* A wrong token is a 401 whatever it asks; a missing one too. */
	expect("DELETE", "/v1/apps/mine", "viv_0000", NULL, 401);
	expect("GET", "/v1/apps/mine", NULL, NULL, 401);
	json_decref(t);
}

Test(tokens, the_index_needs_no_token_but_checks_one_sent)
{
	expect("GET", "/v1", NULL, NULL, 200);
	expect("GET", "/v1", srv.token, NULL, 200);
	expect("GET", "/v1", "viv_wrong", NULL, 401);
	expect("GET", "/v1/openapi.json", "viv_wrong", NULL, 200);
	expect("GET", "/v1/templates", NULL, NULL, 200);
}
