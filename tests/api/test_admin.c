/* The API's administration of apps over HTTP: app states and deletion,
 * deployment pages and rollback, uploads of WebAssembly text and what curl
 * -d does to files, KV data, templates and metrics. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "api_server.h"
#include "store.h"
#include "viv.h"

static struct tsrv srv;

static void setup(void)
{
	tsrv_start(&srv, 0, NULL);
}

static void teardown(void)
{
	tsrv_stop(&srv);
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 300);

/* A module the build refuses: a type section that promises 127 types in
 * its one byte (the sections add up, so it is not taken for curl -d's). */
static const unsigned char wasm_broken[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00,
                                            0x00, 0x00, 0x01, 0x01, 0x7f};

static json_t *get_json(const char *path, long status)
{
	struct tresp r;
	json_t *j;

	thttp(&srv, "GET", path, srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, status, "GET %s: %ld %s", path, r.status, r.body);
	j = json_incref(r.json);
	tresp_free(&r);
	return j;
}

static void expect(const char *method, const char *path, const void *body, size_t len, long status)
{
	struct tresp r;

	thttp(&srv, method, path, srv.token, body, len, false, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld %s", method, path, r.status, r.body);
	tresp_free(&r);
}

/* Uploads the minimal module to app and waits for it to be ready. */
static long long deploy_ready(const char *app)
{
	long long id = tupload(&srv, app, NULL, twasm_min, twasm_min_len);
	json_t *d = twait_deployment(&srv, id, 200);

	cr_assert_str_eq(tjstr(d, "status"), "ready", "%s", tjstr(d, "log"));
	json_decref(d);
	return id;
}

static json_t *app_in(json_t *apps, const char *name)
{
	size_t i;
	json_t *a;

	json_array_foreach(json_object_get(apps, "apps"), i, a)
	{
		if (strcmp(tjstr(a, "name"), name) == 0)
			return a;
	}
	cr_assert_fail("no app %s", name);
	return NULL;
}

static size_t files_in(const char *sub)
{
	char path[256];
	size_t n = 0;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/%s", srv.datadir, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(admin, app_states_and_deletion)
{
	struct store_log line = {.stream = "stdout", .message = "hi"};
	json_t *apps, *a, *d;
	long long broken, good;
	char sub[32];
	struct tresp r;

	good = deploy_ready("good");
	broken = tupload(&srv, "broken", NULL, wasm_broken, sizeof(wasm_broken));
	d = twait_deployment(&srv, broken, 200);
	cr_assert_str_eq(tjstr(d, "status"), "failed");
	cr_assert(json_is_null(json_object_get(d, "preview_url")));
	json_decref(d);

	apps = get_json("/v1/apps", 200);
	a = app_in(apps, "good");
	cr_assert_str_eq(tjstr(a, "state"), "serving");
	cr_assert_str_eq(tjstr(a, "url"), "http://good.localhost:8000/");
	cr_assert_str_eq(tjstr(a, "language"), "wasm");
	cr_assert_eq(json_integer_value(json_object_get(a, "current_deployment")), good);
	cr_assert(json_is_string(json_object_get(a, "updated_at")));
	a = app_in(apps, "broken");
	cr_assert_str_eq(tjstr(a, "state"), "failed");
	cr_assert(json_is_null(json_object_get(a, "url")));
	cr_assert(json_is_null(json_object_get(a, "current_deployment")));
	cr_assert(json_is_null(json_object_get(a, "language")));
	json_decref(apps);

	thttp(&srv, "DELETE", "/v1/apps/broken", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(tjstr(r.json, "deleted"), "broken");
	cr_assert_eq(json_integer_value(json_object_get(r.json, "deployments")), 1);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "artifacts_removed")), 0);
	tresp_free(&r);

	expect("PUT", "/v1/apps/good/kv/k", "v", 1, 201);
	expect("PUT", "/v1/apps/good/config/A", "1", 1, 204);
	expect("PUT", "/v1/apps/good/secrets/S", "2", 1, 204);
	tsrv_append_logs(&srv, "good", &line, 1);
	d = get_json("/v1/apps/good", 200);
	snprintf(sub, sizeof(sub), "artifacts/%.2s",
	         tjstr(json_array_get(json_object_get(d, "deployments"), 0), "artifact"));
	json_decref(d);
	cr_assert_eq(files_in(sub), 2, "the .so and the .wasm");

	thttp(&srv, "DELETE", "/v1/apps/good", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "artifacts_removed")), 1);
	tresp_free(&r);
	cr_assert_eq(files_in(sub), 0);
	expect("GET", "/v1/apps/good", NULL, 0, 404);
	expect("GET", "/v1/apps/good/kv/k", NULL, 0, 404);
	expect("DELETE", "/v1/apps/good", NULL, 0, 404);
	apps = get_json("/v1/apps", 200);
	cr_assert_eq(json_array_size(json_object_get(apps, "apps")), 0);
	json_decref(apps);
	/* The name is free again, and its KV data did not come back. */
	deploy_ready("good");
	expect("GET", "/v1/apps/good/kv/k", NULL, 0, 404);
}

Test(admin, deployment_pages_and_rollback)
{
	long long d1, d2, d3, failed;
	json_t *page, *list, *first;
	struct tresp r;
	char path[128], body[64];

	d1 = deploy_ready("app");
	d2 = deploy_ready("app");
	d3 = deploy_ready("app");

	page = get_json("/v1/apps/app/deployments?limit=2", 200);
	list = json_object_get(page, "deployments");
	cr_assert_eq(json_array_size(list), 2);
	first = json_array_get(list, 0);
	cr_assert_eq(json_integer_value(json_object_get(first, "id")), d3);
	cr_assert(json_is_true(json_object_get(first, "current")));
	snprintf(path, sizeof(path), "http://d%lld-app.localhost:8000/", d3);
	cr_assert_str_eq(tjstr(first, "preview_url"), path);
	cr_assert_str_eq(tjstr(first, "deployed_by"), "admin");
	cr_assert_gt(json_integer_value(json_object_get(first, "artifact_size")), 0);
	cr_assert_eq(json_integer_value(json_object_get(page, "next_before")), d2);
	json_decref(page);
	snprintf(path, sizeof(path), "/v1/apps/app/deployments?limit=2&before=%lld", d2);
	page = get_json(path, 200);
	cr_assert_eq(json_array_size(json_object_get(page, "deployments")), 1);
	cr_assert(json_is_null(json_object_get(page, "next_before")));
	json_decref(page);
	expect("GET", "/v1/apps/app/deployments?limit=0", NULL, 0, 400);
	expect("GET", "/v1/apps/app/deployments?limit=101", NULL, 0, 400);
	expect("GET", "/v1/apps/app/deployments?before=x", NULL, 0, 400);
	expect("GET", "/v1/apps/nobody/deployments", NULL, 0, 404);

	/* Back one, then to a chosen one. */
	thttp(&srv, "POST", "/v1/apps/app/rollback", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "current_deployment")), d2);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "previous_deployment")), d3);
	tresp_free(&r);
	snprintf(body, sizeof(body), "{\"deployment\": %lld}", d1);
	thttp(&srv, "POST", "/v1/apps/app/rollback", srv.token, body, strlen(body), false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "current_deployment")), d1);
	tresp_free(&r);
	page = get_json("/v1/apps/app", 200);
	cr_assert_eq(json_integer_value(json_object_get(page, "current_deployment")), d1);
	json_decref(page);
	thttp(&srv, "POST", "/v1/apps/app/rollback", srv.token, "{}", 2, false, &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	cr_assert_not_null(strstr(tjstr(r.json, "error"), "no ready deployment older"));
	tresp_free(&r);

	failed = tupload(&srv, "app", NULL, wasm_broken, sizeof(wasm_broken));
	json_decref(twait_deployment(&srv, failed, 200));
	snprintf(body, sizeof(body), "{\"deployment\": %lld}", failed);
	expect("POST", "/v1/apps/app/rollback", body, strlen(body), 409);
	expect("POST", "/v1/apps/app/rollback", "{\"deployment\": 9999}", 20, 404);
	expect("POST", "/v1/apps/app/rollback", "{\"deployment\": \"1\"}", 19, 400);
	expect("POST", "/v1/apps/app/rollback", "not json", 8, 400);
	expect("POST", "/v1/apps/nobody/rollback", NULL, 0, 404);
	/* A deployment of another app is not this app's. */
	deploy_ready("other");
	snprintf(body, sizeof(body), "{\"deployment\": %lld}", d3);
	expect("POST", "/v1/apps/other/rollback", body, strlen(body), 404);
}

/* Removes every CR and LF byte, as curl -d does to a file. */
static size_t strip_lines(char *data, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n' && data[i] != '\r')
			data[k++] = data[i];
	}
	return k;
}

Test(admin, webassembly_text_and_what_curl_d_does)
{
	static const char *const binary[] = {"Content-Type: application/octet-stream", NULL};
	static const char wat[] =
	        ";; a comment first\n"
	        "(module\n"
	        "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	        "    (func $w (param i32 i32 i32 i32) (result i32)))\n"
	        "  (memory 1)\n"
	        "  (data (i32.const 64) \"Content-Type: text/plain\\n\\nwat\\n\")\n"
	        "  (func (export \"_start\")\n"
	        "    (i32.store (i32.const 0) (i32.const 64))\n"
	        "    (i32.store (i32.const 4) (i32.const 30))\n"
	        "    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1)"
	        " (i32.const 16)))))\n";
	const char *names[] = {"a.c", "b.c"};
	char big_a[3000], big_b[3000], *tgz = NULL;
	const char *texts[] = {big_a, big_b};
	unsigned char wasm[64];
	uint64_t seed = 1;
	size_t len, n;
	struct tresp r;
	long long id;
	json_t *d;

	/* One WebAssembly text file is an upload. */
	id = tupload(&srv, "text", NULL, wat, strlen(wat));
	d = twait_deployment(&srv, id, 200);
	cr_assert_str_eq(tjstr(d, "status"), "ready", "%s\n%s", tjstr(d, "error"), tjstr(d, "log"));
	cr_assert_str_eq(tjstr(d, "language"), "wat");
	cr_assert_not_null(strstr(tjstr(d, "log"), "app.wat"), "%s", tjstr(d, "log"));
	json_decref(d);

	/* A tarball that lost its line breaks, sent as a form. */
	/* Letters that do not compress much, so that the tarball is a few KiB. */
	for (size_t i = 0; i < sizeof(big_a) - 1; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		big_a[i] = i % 40 == 39 ? '\n' : (char)('a' + (seed >> 33) % 26);
		big_b[i] = i % 30 == 29 ? '\n' : (char)('A' + (seed >> 45) % 26);
	}
	big_a[sizeof(big_a) - 1] = big_b[sizeof(big_b) - 1] = '\0';
	tmake_targz(names, texts, 2, &tgz, &len);
	n = strip_lines(tgz, len);
	cr_assert_lt(n, len, "the test's tarball has no line break to lose");
	cr_assert_geq(n, 1024, "the test's tarball is too small");
	thttp(&srv, "POST", "/v1/apps/mangled/deployments", srv.token, tgz, n, false, &r);
	cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(tjstr(r.json, "error"), "--data-binary @FILE"), "%s", r.body);
	cr_assert_not_null(strstr(tjstr(r.json, "error"), "curl -d strips newlines"), "%s", r.body);
	tresp_free(&r);
	free(tgz);
	/* The same tarball whole, as a form too (curl --data-binary): fine. */
	tmake_targz(names, texts, 2, &tgz, &len);
	expect("POST", "/v1/apps/whole/deployments", tgz, len, 202);
	free(tgz);
	tgz = NULL;

	/* A small tarball (the C hello's size), too short to tell by its
	 * missing line breaks: it no longer reads to its end. The hello is
	 * varied until its tarball has a line break to lose. */
	{
		const char *small_names[] = {"hello.c"};
		char text[256];
		const char *small_texts[] = {text};
		size_t m = 0;

		for (int k = 0; k < 100 && (m == 0 || m == len); k++) {
			snprintf(text, sizeof(text),
			         "#include <stdio.h>\n/* %d */\nint main(void)\n{\n\tprintf(\""
			         "Content-Type: text/plain\\n\\nHello, world!\\n\");\n}\n",
			         k);
			free(tgz);
			tmake_targz(small_names, small_texts, 1, &tgz, &len);
			m = strip_lines(tgz, len);
		}
		cr_assert_lt(m, len, "no variant of the hello has a line break in its tarball");
		cr_assert_lt(len, 1024, "%zu", len);
		thttp(&srv, "POST", "/v1/apps/mangled/deployments", srv.token, tgz, m, false, &r);
		cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
		cr_assert_not_null(strstr(tjstr(r.json, "error"), "--data-binary"), "%s", r.body);
		tresp_free(&r);
		free(tgz);
		tmake_targz(small_names, small_texts, 1, &tgz, &len);
		expect("POST", "/v1/apps/whole/deployments", tgz, len, 202);
		free(tgz);
		tgz = NULL;
	}

	/* A module that lost its code section's id (10, a LF). */
	memcpy(wasm, twasm_min, twasm_min_len);
	n = strip_lines((char *)wasm, twasm_min_len);
	cr_assert_lt(n, twasm_min_len);
	expect("POST", "/v1/apps/mangled/deployments", wasm, n, 400);
	/* Sent as bytes, it is taken, and its build says what is wrong. */
	thttp_h(&srv, "POST", "/v1/apps/mangled/deployments", srv.token, binary, wasm, n, false,
	        &r);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	tresp_free(&r);

	/* New apps may not take the names of preview addresses. */
	thttp(&srv, "POST", "/v1/apps/d12-hello/deployments", srv.token, twasm_min, twasm_min_len,
	      false, &r);
	cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
	cr_assert_not_null(strstr(tjstr(r.json, "error"), "preview"), "%s", r.body);
	tresp_free(&r);
	expect("POST", "/v1/apps/d-hello/deployments", twasm_min, twasm_min_len, 202);
}

Test(admin, kv_data)
{
	char path[2200], big_key[1100];
	char *big = calloc(1, STORE_KV_VALUE_MAX + 1);
	json_t *list, *keys;
	struct tresp r;

	tupload(&srv, "kvapp", NULL, twasm_min, twasm_min_len);
	expect("PUT", "/v1/apps/kvapp/kv/greeting", "hello", 5, 201);
	expect("PUT", "/v1/apps/kvapp/kv/greeting", "bonjour", 7, 204);
	thttp(&srv, "GET", "/v1/apps/kvapp/kv/greeting", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "bonjour");
	cr_assert_str_eq(r.content_type, "application/octet-stream");
	tresp_free(&r);

	/* Keys are bytes: an encoded '/', a NUL and a byte that is not UTF-8. */
	thttp(&srv, "PUT", "/v1/apps/kvapp/kv/user%2F1%00%ff", srv.token, "\0\1", 2, false, &r);
	cr_assert_eq(r.status, 201, "%s", r.body);
	cr_assert_str_eq(tjstr(r.json, "key_base64"), "dXNlci8xAP8=");
	tresp_free(&r);
	expect("PUT", "/v1/apps/kvapp/kv/user%2F2", "x", 1, 201);
	thttp(&srv, "GET", "/v1/apps/kvapp/kv/user%2F1%00%ff", srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 2);
	cr_assert_eq(memcmp(r.body, "\0\1", 2), 0);
	tresp_free(&r);

	list = get_json("/v1/apps/kvapp/kv", 200);
	keys = json_object_get(list, "keys");
	cr_assert_eq(json_array_size(keys), 3);
	cr_assert_str_eq(tjstr(json_array_get(keys, 0), "key"), "greeting");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(keys, 0), "size")), 7);
	cr_assert_str_eq(tjstr(json_array_get(keys, 1), "key_base64"), "dXNlci8xAP8=");
	cr_assert(json_is_null(json_object_get(list, "next_after")));
	json_decref(list);
	list = get_json("/v1/apps/kvapp/kv?prefix=user%2F&limit=1", 200);
	keys = json_object_get(list, "keys");
	cr_assert_eq(json_array_size(keys), 1);
	cr_assert_str_eq(tjstr(list, "next_after_base64"), "dXNlci8xAP8=");
	json_decref(list);
	list = get_json("/v1/apps/kvapp/kv?prefix=user%2F&after_base64=dXNlci8xAP8=", 200);
	keys = json_object_get(list, "keys");
	cr_assert_eq(json_array_size(keys), 1);
	cr_assert_str_eq(tjstr(json_array_get(keys, 0), "key"), "user/2");
	json_decref(list);
	list = get_json("/v1/apps/kvapp/kv?prefix_base64=Z3JlZQ", 200);
	cr_assert_eq(json_array_size(json_object_get(list, "keys")), 1);
	json_decref(list);
	expect("GET", "/v1/apps/kvapp/kv?limit=1001", NULL, 0, 400);
	expect("GET", "/v1/apps/kvapp/kv?prefix=%zz", NULL, 0, 400);
	expect("GET", "/v1/apps/kvapp/kv?after_base64=!!", NULL, 0, 400);

	expect("DELETE", "/v1/apps/kvapp/kv/greeting", NULL, 0, 204);
	expect("DELETE", "/v1/apps/kvapp/kv/greeting", NULL, 0, 404);
	expect("GET", "/v1/apps/kvapp/kv/greeting", NULL, 0, 404);
	expect("GET", "/v1/apps/nobody/kv/greeting", NULL, 0, 404);
	expect("GET", "/v1/apps/nobody/kv", NULL, 0, 404);
	expect("PUT", "/v1/apps/kvapp/kv/big", big, STORE_KV_VALUE_MAX, 201);
	expect("PUT", "/v1/apps/kvapp/kv/big", big, STORE_KV_VALUE_MAX + 1, 413);
	memset(big_key, 'k', sizeof(big_key) - 1);
	big_key[sizeof(big_key) - 1] = '\0';
	snprintf(path, sizeof(path), "/v1/apps/kvapp/kv/%s", big_key);
	expect("PUT", path, "v", 1, 400);
	expect("PUT", "/v1/apps/kvapp/kv/bad%2", "v", 1, 400);
	free(big);
}

Test(admin, templates_come_from_the_sdk)
{
	json_t *t, *list, *c, *files;
	struct tresp r;
	bool seen_wat = false;
	size_t i;
	long long id;

	thttp(&srv, "GET", "/v1/templates", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	t = json_incref(r.json);
	tresp_free(&r);
	list = json_object_get(t, "templates");
	cr_assert_eq(json_array_size(list), 4);
	c = json_array_get(list, 0);
	cr_assert_str_eq(tjstr(c, "language"), "c");
	cr_assert_str_eq(tjstr(c, "title"), "C");
	files = json_object_get(c, "files");
	cr_assert_eq(json_array_size(files), 1, "READMEs are left out");
	cr_assert_str_eq(tjstr(json_array_get(files, 0), "path"), "hello.c");
	cr_assert_not_null(strstr(tjstr(json_array_get(files, 0), "text"), "Hello, world!"));
	files = json_object_get(json_array_get(list, 1), "files");
	cr_assert_str_eq(tjstr(json_array_get(files, 0), "path"), "Cargo.toml");
	cr_assert_str_eq(tjstr(json_array_get(files, 1), "path"), "src/lib.rs");
	json_array_foreach(list, i, c)
	{
		const char *text;

		if (strcmp(tjstr(c, "language"), "wat") != 0)
			continue;
		seen_wat = true;
		/* The WebAssembly text hello builds and is what it says. */
		text = tjstr(json_array_get(json_object_get(c, "files"), 0), "text");
		id = tupload(&srv, "wat-hello", NULL, text, strlen(text));
		json_t *d = twait_deployment(&srv, id, 200);

		cr_assert_str_eq(tjstr(d, "status"), "ready", "%s", tjstr(d, "log"));
		json_decref(d);
	}
	cr_assert(seen_wat);
	json_decref(t);
}

/* Writes a worker's metrics file as a runner would. */
static void worker_file(const char *name, const char *text, bool stale)
{
	char dir[256], path[320];

	snprintf(dir, sizeof(dir), "%s/run/metrics", srv.datadir);
	cr_assert_eq(viv_mkdirs(dir, 0700), VIV_OK);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(viv_write_file_atomic(path, text, strlen(text), 0600), VIV_OK);
	if (stale) {
		struct timeval old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};

		cr_assert_eq(utimes(path, old), 0);
	}
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

Test(admin, metrics_gather_the_workers)
{
	static const char w0[] = "# HELP vivarium_requests_total Requests served.\n"
	                         "# TYPE vivarium_requests_total counter\n"
	                         "vivarium_requests_total{app=\"hello\",code=\"200\"} 5\n"
	                         "vivarium_requests_total{app=\"a,b}\\\"c\",code=\"500\"} 1\n"
	                         "# TYPE vivarium_request_seconds histogram\n"
	                         "vivarium_request_seconds_bucket{app=\"hello\",le=\"0.01\"} 4\n"
	                         "vivarium_request_seconds_bucket{app=\"hello\",le=\"+Inf\"} 5\n"
	                         "vivarium_request_seconds_sum{app=\"hello\"} 0.02\n"
	                         "vivarium_request_seconds_count{app=\"hello\"} 5\n"
	                         "# TYPE vivarium_instances gauge\n"
	                         "vivarium_instances 2\n";
	static const char w1[] = "# TYPE vivarium_requests_total counter\n"
	                         "vivarium_requests_total{app=\"hello\",code=\"200\"} 7\n"
	                         "this is { not a sample\n"
	                         "bad{unclosed=\"x 1\n"
	                         "# TYPE vivarium_instances gauge\n"
	                         "vivarium_instances 0\n";
	struct tresp r;
	long long id;

	id = tupload(&srv, "m", NULL, twasm_min, twasm_min_len);
	json_decref(twait_deployment(&srv, id, 200));
	worker_file("worker-0.prom", w0, false);
	worker_file("worker-1.prom", w1, false);
	worker_file("worker-2.prom", "vivarium_instances 99\n", true);
	worker_file("other.prom", "vivarium_instances 98\n", false);

	thttp(&srv, "GET", "/metrics", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
	cr_assert_not_null(strstr(r.body, "vivarium_api_requests_total{code=\"202\"} 1\n"), "%s",
	                   r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_builds_total{result=\"ready\"} 1\n"), "%s",
	                   r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_build_seconds_bucket{le=\"+Inf\"} 1\n"), "%s",
	                   r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_build_seconds_count 1\n"), "%s", r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_build_queue 0\n"), "%s", r.body);
	cr_assert_not_null(
	        strstr(r.body,
	               "vivarium_requests_total{app=\"hello\",code=\"200\",worker=\"0\"} 5\n"),
	        "%s", r.body);
	cr_assert_not_null(
	        strstr(r.body,
	               "vivarium_requests_total{app=\"hello\",code=\"200\",worker=\"1\"} 7\n"),
	        "%s", r.body);
	cr_assert_not_null(
	        strstr(r.body,
	               "vivarium_requests_total{app=\"a,b}\\\"c\",code=\"500\",worker=\"0\"} 1\n"),
	        "%s", r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_request_seconds_bucket{app=\"hello\","
	                                  "le=\"+Inf\",worker=\"0\"} 5\n"),
	                   "%s", r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_instances{worker=\"0\"} 2\n"), "%s", r.body);
	cr_assert_not_null(strstr(r.body, "vivarium_instances{worker=\"1\"} 0\n"), "%s", r.body);
	/* Each family once, its series together; stale and foreign files and
	 * malformed lines left out. */
	cr_assert_eq(count(r.body, "# TYPE vivarium_requests_total "), 1, "%s", r.body);
	cr_assert_eq(count(r.body, "# TYPE vivarium_instances "), 1, "%s", r.body);
	cr_assert_eq(count(r.body, "# HELP vivarium_requests_total Requests served.\n"), 1);
	cr_assert_not_null(strstr(r.body, "vivarium_instances{worker=\"0\"} 2\n"
	                                  "vivarium_instances{worker=\"1\"} 0\n"),
	                   "%s", r.body);
	cr_assert_null(strstr(r.body, " 99\n"), "%s", r.body);
	cr_assert_null(strstr(r.body, " 98\n"), "%s", r.body);
	cr_assert_null(strstr(r.body, "not a sample"), "%s", r.body);
	cr_assert_null(strstr(r.body, "unclosed"), "%s", r.body);
	tresp_free(&r);
}

/* Runner hosts that do not share the data folder fetch an artifact by its
 * hash: the admin's token only, the bytes with their sha256 and platform,
 * cached for good by its ETag; gone when its file is. */
Test(admin, an_artifact_is_fetched_by_its_hash_with_what_hosts_check)
{
	char path[256], want[VIV_SHA256_HEX_LEN + 1], got[VIV_SHA256_HEX_LEN + 1];
	char here[VIV_PLATFORM_MAX], inm[128], *so;
	const char *hash, *app_token;
	const char *hdrs[2] = {inm, NULL};
	const char *token_req = "{\"name\": \"ci\", \"scope\": \"apps\", \"apps\": [\"art\"]}";
	json_t *d, *tok;
	struct tresp r;

	deploy_ready("art");
	d = get_json("/v1/apps/art/deployments", 200);
	hash = tjstr(json_array_get(json_object_get(d, "deployments"), 0), "artifact");
	cr_assert(hash && viv_hex64_valid(hash));
	snprintf(path, sizeof(path), "/v1/artifacts/%s", hash);

	thttp(&srv, "GET", path, srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.content_type, "application/octet-stream");
	cr_assert_eq(memcmp(r.body, "\177ELF", 4), 0);
	viv_sha256_hex(r.body, r.len, got);
	cr_assert_str_eq(r.sha256, got);
	so = NULL;
	cr_assert_geq(asprintf(&so, "%s/artifacts/%.2s/%s.so", srv.datadir, hash, hash), 0);
	cr_assert_eq(viv_sha256_file(so, want), VIV_OK);
	cr_assert_str_eq(got, want, "the body is not the stored .so");
	viv_platform(here);
	cr_assert_str_eq(r.platform, here);
	snprintf(inm, sizeof(inm), "\"%s\"", hash);
	cr_assert_str_eq(r.etag, inm);
	tresp_free(&r);

	/* The copy a host has is it. */
	snprintf(inm, sizeof(inm), "If-None-Match: \"%s\"", hash);
	thttp_h(&srv, "GET", path, srv.token, hdrs, NULL, 0, false, &r);
	cr_assert_eq(r.status, 304, "%ld %s", r.status, r.body);
	cr_assert_eq(r.len, 0);
	tresp_free(&r);

	/* The admin's only: an app's token, or none, gets nothing. */
	tok = NULL;
	thttp(&srv, "POST", "/v1/tokens", srv.token, token_req, strlen(token_req), false, &r);
	cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
	tok = json_incref(r.json);
	tresp_free(&r);
	app_token = tjstr(tok, "token");
	thttp(&srv, "GET", path, app_token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
	tresp_free(&r);
	thttp(&srv, "GET", path, NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
	tresp_free(&r);
	json_decref(tok);

	expect("GET", "/v1/artifacts/abc", NULL, 0, 400);
	expect("GET", "/v1/artifacts/../../admin-token", NULL, 0, 404);
	snprintf(path, sizeof(path), "/v1/artifacts/%064d", 0);
	expect("GET", path, NULL, 0, 404);
	/* Its file gone from this host: said so, not an empty 200. */
	cr_assert_eq(unlink(so), 0);
	snprintf(path, sizeof(path), "/v1/artifacts/%s", hash);
	thttp(&srv, "GET", path, srv.token, NULL, 0, false, &r);
	cr_assert_eq(r.status, 410, "%ld %s", r.status, r.body);
	cr_assert(strstr(tjstr(r.json, "error"), "deploy its app again"), "%s", r.body);
	tresp_free(&r);
	free(so);
	json_decref(d);
}
