/* Tests of the control-plane API: the real api_main in a child process,
 * spoken to over HTTP on loopback, as a client would. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_server.h"
#include "store.h"
#include "viv.h"

static const char *jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* Uploads body as app and asserts the 202; returns the deployment id. */
static long long upload_ok(const struct tsrv *s, const char *app, const void *body, size_t len)
{
	char path[128], want[64];
	struct tresp r;
	long long id;

	snprintf(path, sizeof(path), "/v1/apps/%s/deployments", app);
	thttp(s, "POST", path, s->token, body, len, false, &r);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	cr_assert_not_null(r.json, "%s", r.body);
	id = json_integer_value(json_object_get(r.json, "id"));
	cr_assert_gt(id, 0);
	cr_assert_str_eq(jstr(r.json, "app"), app);
	cr_assert_str_eq(jstr(r.json, "status"), "queued");
	snprintf(want, sizeof(want), "/v1/deployments/%lld", id);
	cr_assert_str_eq(jstr(r.json, "status_url"), want);
	cr_assert_str_eq(r.location, want);
	snprintf(want, sizeof(want), "http://%s.localhost:8000/", app);
	cr_assert_str_eq(jstr(r.json, "url"), want);
	snprintf(want, sizeof(want), "/v1/deployments/%lld/events", id);
	cr_assert_str_eq(jstr(r.json, "events_url"), want);
	snprintf(want, sizeof(want), "http://d%lld-%s.localhost:8000/", id, app);
	cr_assert_str_eq(jstr(r.json, "preview_url"), want);
	tresp_free(&r);
	return id;
}

/* Sends a request without a body and asserts the status of the reply. */
static void expect_status(const struct tsrv *s, const char *method, const char *path,
                          const char *token, long status)
{
	struct tresp r;

	thttp(s, method, path, token, NULL, 0, false, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld %s", method, path, r.status, r.body);
	tresp_free(&r);
}

static size_t tfiles;
static int count_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)sb;
	(void)ftw;
	if (flag == FTW_F)
		tfiles++;
	return 0;
}

/* Regular files under dir, whatever the store's layout. */
static size_t count_files(const char *dir)
{
	tfiles = 0;
	nftw(dir, count_file, 16, FTW_PHYS);
	return tfiles;
}

Test(api, healthz_needs_no_token)
{
	struct tsrv s;
	struct tresp r;

	tsrv_start(&s, 0, NULL);
	thttp(&s, "GET", "/healthz", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(jstr(r.json, "status"), "ok");
	cr_assert_str_eq(r.content_type, "application/json");
	tresp_free(&r);
	thttp(&s, "HEAD", "/healthz", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, token_is_required_and_checked)
{
	struct tsrv s;
	struct tresp r;

	tsrv_start(&s, 0, NULL);
	thttp(&s, "GET", "/v1/apps", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401);
	cr_assert(strncmp(r.www_auth, "Bearer", 6) == 0, "WWW-Authenticate: %s", r.www_auth);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "admin-token"), "%s", r.body);
	/* Anyone may ask: where the server keeps its files is not said. */
	cr_assert_null(strstr(r.body, s.datadir), "%s", r.body);
	cr_assert_null(strstr(r.body, "/tmp"), "%s", r.body);
	tresp_free(&r);

	expect_status(&s, "GET", "/v1/apps", "not-the-token", 401);

	thttp(&s, "POST", "/v1/apps/hello/deployments", "not-the-token", twasm_min, twasm_min_len,
	      false, &r);
	cr_assert_eq(r.status, 401);
	tresp_free(&r);

	expect_status(&s, "GET", "/v1/deployments/1", NULL, 401);

	thttp(&s, "GET", "/v1/apps", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(json_is_array(json_object_get(r.json, "apps")));
	cr_assert_eq(json_array_size(json_object_get(r.json, "apps")), 0);
	tresp_free(&r);

	thttp(&s, "GET", "/v1", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq((size_t)json_integer_value(json_object_get(r.json, "upload_max")),
	             s.upload_max);
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, bad_app_names_are_refused)
{
	const char *bad[] = {
	        "Hello", "-x",  "x-",
	        "a_b",   "x.y", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	struct tsrv s;
	struct tresp r;
	char path[256];
	size_t i;

	tsrv_start(&s, 0, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "/v1/apps/%s/deployments", bad[i]);
		thttp(&s, "POST", path, s.token, twasm_min, twasm_min_len, false, &r);
		cr_assert_eq(r.status, 400, "%s: %ld", bad[i], r.status);
		cr_assert_not_null(strstr(jstr(r.json, "error"), "DNS labels"), "%s", r.body);
		tresp_free(&r);
	}
	expect_status(&s, "GET", "/v1/apps/Nope", s.token, 400);
	tsrv_stop(&s);
}

Test(api, oversized_uploads_get_413_and_leave_no_file)
{
	static char big[4096];
	struct tsrv s;
	struct tresp r;
	size_t before;

	memset(big, 'x', sizeof(big));
	memcpy(big, "\0asm\x01\0\0\0", 8);
	tsrv_start(&s, 1024, NULL);
	thttp(&s, "GET", "/healthz", NULL, NULL, 0, false, &r);
	tresp_free(&r);
	before = count_files(s.datadir);

	/* Refused by Content-Length before the body is read. */
	thttp(&s, "POST", "/v1/apps/big/deployments", s.token, big, sizeof(big), false, &r);
	cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "1 KiB"), "%s", r.body);
	tresp_free(&r);

	/* Chunked, so the cap is only found while reading. */
	thttp(&s, "POST", "/v1/apps/big/deployments", s.token, big, sizeof(big), true, &r);
	cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "1 KiB"), "%s", r.body);
	tresp_free(&r);

	cr_assert_eq(count_files(s.datadir), before, "a refused upload left a file behind");

	/* Just under the cap is fine, chunked too. */
	thttp(&s, "POST", "/v1/apps/small/deployments", s.token, twasm_min, twasm_min_len, true,
	      &r);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, empty_and_unknown_uploads_are_refused)
{
	struct tsrv s;
	struct tresp r;
	const char *junk = "this is plain text, neither a tarball nor a module";
	const char *binary[] = {"Content-Type: application/octet-stream", NULL};
	size_t before;

	tsrv_start(&s, 0, NULL);
	thttp(&s, "GET", "/healthz", NULL, NULL, 0, false, &r);
	tresp_free(&r);
	before = count_files(s.datadir);

	thttp(&s, "POST", "/v1/apps/junk/deployments", s.token, "", 0, false, &r);
	cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "empty"), "%s", r.body);
	tresp_free(&r);

	thttp_h(&s, "POST", "/v1/apps/junk/deployments", s.token, binary, junk, strlen(junk), false,
	        &r);
	cr_assert_eq(r.status, 415, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "neither a tarball"), "%s", r.body);
	tresp_free(&r);

	thttp_h(&s, "POST", "/v1/apps/junk/deployments", s.token, binary, junk, strlen(junk), true,
	        &r);
	cr_assert_eq(r.status, 415, "%ld %s", r.status, r.body);
	tresp_free(&r);

	/* The same sent as a form, as curl -d would: the fix is named. */
	thttp(&s, "POST", "/v1/apps/junk/deployments", s.token, junk, strlen(junk), false, &r);
	cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(jstr(r.json, "error"), "--data-binary @FILE"), "%s", r.body);
	tresp_free(&r);

	cr_assert_eq(count_files(s.datadir), before, "a refused upload left a file behind");
	thttp(&s, "GET", "/v1/apps/junk", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404, "a refused upload created the app: %s", r.body);
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, wasm_upload_is_queued_and_visible)
{
	struct tsrv s;
	struct tresp r;
	char path[64];
	const char *status;
	json_t *deps, *apps;
	long long id;

	tsrv_start(&s, 0, NULL);
	id = upload_ok(&s, "min", twasm_min, twasm_min_len);

	snprintf(path, sizeof(path), "/v1/deployments/%lld", id);
	thttp(&s, "GET", path, s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	status = jstr(r.json, "status");
	cr_assert(strcmp(status, "queued") == 0 || strcmp(status, "building") == 0 ||
	                  strcmp(status, "ready") == 0 || strcmp(status, "failed") == 0,
	          "%s", status);
	cr_assert_str_eq(jstr(r.json, "app"), "min");
	cr_assert_str_eq(jstr(r.json, "url"), "http://min.localhost:8000/");
	cr_assert(json_is_string(json_object_get(r.json, "created_at")));
	cr_assert(json_is_object(json_object_get(r.json, "timings")));
	cr_assert(json_is_string(json_object_get(r.json, "log")));
	cr_assert(json_is_boolean(json_object_get(r.json, "current")));
	cr_assert_eq(json_integer_value(json_object_get(r.json, "upload_size")),
	             (json_int_t)twasm_min_len);
	tresp_free(&r);

	thttp(&s, "GET", "/v1/apps", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	apps = json_object_get(r.json, "apps");
	cr_assert_eq(json_array_size(apps), 1);
	cr_assert_str_eq(jstr(json_array_get(apps, 0), "name"), "min");
	tresp_free(&r);

	thttp(&s, "GET", "/v1/apps/min", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	deps = json_object_get(r.json, "deployments");
	cr_assert_eq(json_array_size(deps), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(deps, 0), "id")), id);
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, wasm_module_builds_to_ready, .timeout = 240)
{
	struct tsrv s;
	json_t *d;
	long long id;

	tsrv_start(&s, 0, NULL);
	id = upload_ok(&s, "min", twasm_min, twasm_min_len);
	d = twait_deployment(&s, id, 200);
	cr_assert_str_eq(jstr(d, "status"), "ready", "error: %s\nlog:\n%s", jstr(d, "error"),
	                 jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "mode"), "hostcall");
	cr_assert_eq(strlen(jstr(d, "artifact")), 64);
	cr_assert(json_is_true(json_object_get(d, "current")));
	cr_assert(json_is_string(json_object_get(d, "finished_at")));
	cr_assert_gt(json_object_size(json_object_get(d, "timings")), 0);
	json_decref(d);
	tsrv_stop(&s);
}

Test(api, wat_tarball_builds_to_ready_and_tar_is_accepted, .timeout = 240)
{
	const char *names[] = {"hello.wat"};
	const char *texts[] = {twat_hello};
	struct tsrv s;
	struct tresp r;
	char *tgz = NULL, path[64];
	size_t len = 0;
	json_t *d, *deps;
	long long id, id2;

	tsrv_start(&s, 0, NULL);
	tmake_targz(names, texts, 1, &tgz, &len);
	id = upload_ok(&s, "hello", tgz, len);
	free(tgz);
	d = twait_deployment(&s, id, 200);
	cr_assert_str_eq(jstr(d, "status"), "ready", "error: %s\nlog:\n%s", jstr(d, "error"),
	                 jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "mode"), "cgi");
	cr_assert_str_eq(jstr(d, "language"), "wat");
	cr_assert(json_is_null(json_object_get(d, "error")));
	cr_assert_gt(json_object_size(json_object_get(d, "timings")), 0);
	json_decref(d);

	/* A second deployment becomes current; the app lists both, newest
	 * first. */
	id2 = upload_ok(&s, "hello", twasm_min, twasm_min_len);
	d = twait_deployment(&s, id2, 200);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s", jstr(d, "log"));
	json_decref(d);
	thttp(&s, "GET", "/v1/apps/hello", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "current_deployment")), id2);
	deps = json_object_get(r.json, "deployments");
	cr_assert_eq(json_array_size(deps), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(deps, 0), "id")), id2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(deps, 1), "id")), id);
	tresp_free(&r);
	snprintf(path, sizeof(path), "/v1/deployments/%lld", id);
	thttp(&s, "GET", path, s.token, NULL, 0, false, &r);
	cr_assert(json_is_false(json_object_get(r.json, "current")));
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, logs_page_by_id)
{
	struct store_log lines[] = {
	        {.ts = viv_now_ms(), .stream = "stdout", .message = "first line"},
	        {.ts = viv_now_ms(), .stream = "stderr", .message = "second \xff\xfe line"},
	        {.ts = viv_now_ms(), .stream = "debug", .message = "third line"},
	};
	struct tsrv s;
	struct tresp r;
	char path[128];
	json_t *logs;
	long long last;

	tsrv_start(&s, 0, NULL);
	upload_ok(&s, "logged", twasm_min, twasm_min_len);
	tsrv_append_logs(&s, "logged", lines, 3);

	thttp(&s, "GET", "/v1/apps/logged/logs", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	logs = json_object_get(r.json, "logs");
	cr_assert_eq(json_array_size(logs), 3);
	cr_assert_str_eq(jstr(json_array_get(logs, 0), "message"), "first line");
	cr_assert_str_eq(jstr(json_array_get(logs, 0), "stream"), "stdout");
	cr_assert(json_is_string(json_object_get(json_array_get(logs, 0), "time")));
	/* Bytes that are not UTF-8 come back as U+FFFD, in valid JSON. */
	cr_assert_str_eq(jstr(json_array_get(logs, 1), "message"),
	                 "second \xef\xbf\xbd\xef\xbf\xbd line");
	last = json_integer_value(json_object_get(json_array_get(logs, 2), "id"));
	cr_assert_eq(json_integer_value(json_object_get(r.json, "next_after")), last);
	tresp_free(&r);

	snprintf(path, sizeof(path), "/v1/apps/logged/logs?after=%lld", last);
	thttp(&s, "GET", path, s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(json_array_size(json_object_get(r.json, "logs")), 0);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "next_after")), last);
	tresp_free(&r);

	thttp(&s, "GET", "/v1/apps/logged/logs?limit=2", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	logs = json_object_get(r.json, "logs");
	cr_assert_eq(json_array_size(logs), 2);
	cr_assert_str_eq(jstr(json_array_get(logs, 1), "message"), "third line");
	tresp_free(&r);

	expect_status(&s, "GET", "/v1/apps/logged/logs?limit=0", s.token, 400);
	expect_status(&s, "GET", "/v1/apps/logged/logs?limit=1001", s.token, 400);
	expect_status(&s, "GET", "/v1/apps/logged/logs?after=-1", s.token, 400);
	thttp(&s, "GET", "/v1/apps/nobody/logs", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_not_null(jstr(r.json, "error"));
	tresp_free(&r);
	tsrv_stop(&s);
}

Test(api, unknown_paths_methods_and_ids)
{
	struct tsrv s;
	struct tresp r;

	tsrv_start(&s, 0, NULL);
	thttp(&s, "GET", "/nothing/here", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_not_null(jstr(r.json, "error"), "%s", r.body);
	tresp_free(&r);

	thttp(&s, "PUT", "/v1/apps/x/deployments", s.token, "x", 1, false, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(r.allow, "POST, GET, HEAD");
	cr_assert_not_null(jstr(r.json, "error"));
	tresp_free(&r);

	thttp(&s, "DELETE", "/v1/apps", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(r.allow, "GET, HEAD");
	tresp_free(&r);

	thttp(&s, "GET", "/v1/deployments/abc", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_not_null(jstr(r.json, "error"));
	tresp_free(&r);
	expect_status(&s, "GET", "/v1/deployments/0", s.token, 400);
	expect_status(&s, "GET", "/v1/deployments/12345678901234567890", s.token, 400);
	thttp(&s, "GET", "/v1/deployments/4242", s.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_not_null(jstr(r.json, "error"));
	tresp_free(&r);
	expect_status(&s, "GET", "/v1/apps/ghost", s.token, 404);

	/* Without a web directory, / is a JSON index of the API. */
	thttp(&s, "GET", "/", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(jstr(r.json, "service"), "vivarium");
	tresp_free(&r);
	expect_status(&s, "GET", "/web/app.js", NULL, 404);
	tsrv_stop(&s);
}

Test(api, web_page_files_are_served_safely)
{
	char web[] = "/tmp/viv-web-XXXXXX";
	char *p;
	struct tsrv s;
	struct tresp r;

	cr_assert_not_null(mkdtemp(web));
	p = viv_path_join(web, "index.html");
	cr_assert_eq(viv_write_file_atomic(p, "<!doctype html><p>hi", 20, 0644), VIV_OK);
	free(p);
	p = viv_path_join(web, "app.js");
	cr_assert_eq(viv_write_file_atomic(p, "let x = 1;", 10, 0644), VIV_OK);
	free(p);
	p = viv_path_join(web, ".secret");
	cr_assert_eq(viv_write_file_atomic(p, "secret", 6, 0644), VIV_OK);
	free(p);
	p = viv_path_join(web, "link.txt");
	cr_assert_eq(symlink("/etc/passwd", p), 0);
	free(p);

	tsrv_start(&s, 0, web);
	thttp(&s, "GET", "/", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "<!doctype html><p>hi");
	cr_assert_str_eq(r.content_type, "text/html; charset=utf-8");
	tresp_free(&r);
	thttp(&s, "GET", "/web/app.js", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "let x = 1;");
	cr_assert_str_eq(r.content_type, "text/javascript; charset=utf-8");
	tresp_free(&r);
	expect_status(&s, "GET", "/web/.secret", NULL, 404);
	expect_status(&s, "GET", "/web/link.txt", NULL, 404);
	expect_status(&s, "GET", "/web/%2e%2e%2fapi.log", NULL, 404);
	thttp(&s, "GET", "/web/missing.css", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 404);
	cr_assert_not_null(r.json);
	tresp_free(&r);
	tsrv_stop(&s);
	viv_rmtree_or_log(web);
}
