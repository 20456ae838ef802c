/* End to end, with the real vivd on loopback ports: deploy C, WebAssembly
 * text and prebuilt .wasm apps through the API, call them on their
 * subdomains, redeploy, and check that bad uploads and bad guests fail
 * clearly while everyone else keeps being served. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static json_t *deploy_files(const struct tsup_vivd *v, const char *app,
                            const struct tsup_file *files, size_t n)
{
	char *tgz;
	size_t len;
	json_t *d;

	tsup_tar(files, n, true, &tgz, &len);
	d = tsup_deploy_wait(v, app, tgz, len);
	free(tgz);
	return d;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

static void assert_ready(json_t *d)
{
	cr_assert_str_eq(jstr(d, "status"), "ready", "deployment failed: %s\nlog:\n%s",
	                 jstr(d, "error"), jstr(d, "log"));
}

static void assert_app_says(const struct tsup_vivd *v, const char *app, long status,
                            const char *needle)
{
	struct tsup_resp r;

	cr_assert(tsup_app_get(v, app, "/", &r), "no response from %s (%s); vivd's log ends:\n%s",
	          app, r.error, tsup_vivd_log_tail(v, 4000));
	cr_assert_eq(r.status, status, "%s answered %ld: %s", app, r.status, r.body);
	cr_assert_not_null(strstr(r.body, needle), "%s answered '%s', expected '%s'", app, r.body,
	                   needle);
	tsup_resp_free(&r);
}

static struct tsup_vivd vivd;

static void start(void)
{
	tsup_vivd_start(&vivd, NULL);
}

static void stop(void)
{
	tsup_vivd_stop(&vivd);
}

TestSuite(core, .init = start, .fini = stop, .timeout = 300);

static const char c_hello[] = "#include <stdio.h>\n"
                              "int main(void)\n"
                              "{\n"
                              "\tprintf(\"Content-Type: text/plain\\n\\nHello from C\\n\");\n"
                              "\treturn 0;\n"
                              "}\n";

Test(core, c_app_serves_on_its_subdomain_soon_after_upload)
{
	struct tsup_file files[] = {{"hello.c", c_hello}};
	char *tgz;
	size_t len;
	long id;
	double t0, t_first = 0;
	json_t *d;

	tsup_tar(files, 1, true, &tgz, &len);
	t0 = tsup_now_ms();
	cr_assert_eq(tsup_deploy(&vivd, "hello", tgz, len, &id, NULL), 202);
	/* Poll the app itself, as a user would with curl. */
	for (;;) {
		struct tsup_resp r;

		if (tsup_app_get(&vivd, "hello", "/", &r) && r.status == 200) {
			t_first = tsup_now_ms() - t0;
			cr_assert_str_eq(r.body, "Hello from C\n");
			tsup_resp_free(&r);
			break;
		}
		tsup_resp_free(&r);
		cr_assert(tsup_now_ms() - t0 < 60000, "no answer a minute after the upload");
		usleep(5000);
	}
	fprintf(stderr, "upload to first response, C hello: %.0f ms\n", t_first);
	d = tsup_wait_deployment(&vivd, id, 10000);
	assert_ready(d);
	cr_assert_str_eq(jstr(d, "language"), "c");
	cr_assert_str_eq(jstr(d, "mode"), "cgi");
	cr_assert_eq(strlen(jstr(d, "artifact")), 64);
	cr_assert(json_is_object(json_object_get(d, "timings")));
	cr_assert(json_object_size(json_object_get(d, "timings")) >= 4, "timings: %s",
	          json_dumps(json_object_get(d, "timings"), 0));
	json_decref(d);
	free(tgz);
}

Test(core, wat_and_prebuilt_wasm_and_plain_tar)
{
	char *wat = tsup_cgi_wat("hello from wat"), *wasm, *tgz;
	size_t wlen, len;
	struct tsup_file files[] = {{"app.wat", wat}};
	json_t *d;

	d = deploy_files(&vivd, "wat", files, 1);
	assert_ready(d);
	cr_assert_str_eq(jstr(d, "language"), "wat");
	json_decref(d);
	assert_app_says(&vivd, "wat", 200, "hello from wat");

	free(wat);
	wat = tsup_cgi_wat("hello from a prebuilt module");
	wasm = tsup_wat2wasm(wat, &wlen);
	d = tsup_deploy_wait(&vivd, "prebuilt", wasm, wlen);
	assert_ready(d);
	cr_assert_str_eq(jstr(d, "language"), "wasm");
	json_decref(d);
	assert_app_says(&vivd, "prebuilt", 200, "hello from a prebuilt module");

	/* Text in a folder of an uncompressed tarball. */
	free(wat);
	wat = tsup_cgi_wat("hello from a plain tar");
	struct tsup_file tf[] = {{"src/", NULL}, {"src/app.wat", wat}};
	tsup_tar(tf, 2, false, &tgz, &len);
	d = tsup_deploy_wait(&vivd, "plain", tgz, len);
	assert_ready(d);
	json_decref(d);
	assert_app_says(&vivd, "plain", 200, "hello from a plain tar");
	free(tgz);
	free(wasm);
	free(wat);
}

Test(core, redeploy_takes_over_without_dropping_requests)
{
	char *v1 = tsup_cgi_wat("version one"), *v2 = tsup_cgi_wat("version two"), *tgz;
	struct tsup_file f1[] = {{"app.wat", v1}}, f2[] = {{"app.wat", v2}};
	size_t len;
	long id2;
	int served = 0, saw_two = 0;
	char url[128];
	struct tsup_resp r;
	json_t *d, *app;

	d = deploy_files(&vivd, "flip", f1, 1);
	assert_ready(d);
	json_decref(d);
	assert_app_says(&vivd, "flip", 200, "version one");

	tsup_tar(f2, 1, true, &tgz, &len);
	cr_assert_eq(tsup_deploy(&vivd, "flip", tgz, len, &id2, NULL), 202);
	/* Every request while the new version builds and takes over is
	 * answered, by one version or the other. */
	while (!saw_two || served < 50) {
		cr_assert(tsup_app_get(&vivd, "flip", "/", &r));
		cr_assert_eq(r.status, 200, "request %d answered %ld: %s", served, r.status,
		             r.body);
		cr_assert(strstr(r.body, "version one") || strstr(r.body, "version two"), "%s",
		          r.body);
		if (strstr(r.body, "version two"))
			saw_two++;
		else
			cr_assert_eq(saw_two, 0, "the old version answered after the new one");
		tsup_resp_free(&r);
		served++;
		cr_assert(served < 100000);
	}
	/* Both deployments stay recorded; the new one is current. */
	snprintf(url, sizeof(url), "%s/v1/apps/flip", vivd.api);
	cr_assert(tsup_http("GET", url, NULL, vivd.token, NULL, 0, &r));
	cr_assert_eq(r.status, 200);
	app = json_loads(r.body, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(app, "current_deployment")), id2, "%s",
	             r.body);
	cr_assert_geq(json_array_size(json_object_get(app, "deployments")), 2, "%s", r.body);
	json_decref(app);
	tsup_resp_free(&r);
	free(tgz);
	free(v1);
	free(v2);
}

static const char wat_trap[] = "(module (memory 1) (func (export \"_start\") unreachable))";
static const char wat_oob[] = "(module (memory 1) (func (export \"_start\")"
                              " (drop (i32.load (i32.const 0x7ffffff0)))))";
static const char wat_loop[] = "(module (memory 1) (func (export \"_start\") (loop $l (br $l))))";
static const char wat_recurse[] =
        "(module (memory 1) (func $f (param i32) (call $f (i32.add (local.get 0) (i32.const 1))))"
        " (func (export \"_start\") (call $f (i32.const 0))))";
static const char wat_hog[] =
        "(module (memory 1)"
        " (func (export \"_start\")"
        "  (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))"
        "  unreachable))";

static char *app_logs(const char *app)
{
	char url[256];
	struct tsup_resp r;
	char *body;

	snprintf(url, sizeof(url), "%s/v1/apps/%s/logs", vivd.api, app);
	cr_assert(tsup_http("GET", url, NULL, vivd.token, NULL, 0, &r));
	cr_assert_eq(r.status, 200, "%s", r.body);
	body = strdup(r.body);
	tsup_resp_free(&r);
	return body;
}

/* The app's log mentions needle within a few seconds (logs are batched). */
static void assert_logged(const char *app, const char *needle)
{
	double deadline = tsup_now_ms() + 5000;

	for (;;) {
		char *logs = app_logs(app);
		bool found = strstr(logs, needle) != NULL;

		if (found || tsup_now_ms() > deadline)
			cr_assert(found, "log of %s lacks '%s': %s", app, needle, logs);
		free(logs);
		if (found)
			return;
		usleep(50000);
	}
}

Test(core, bad_guests_fail_alone)
{
	static const struct {
		const char *app, *wat, *log;
		long status;
	} bad[] = {
	        {"trap", wat_trap, "unreachable", 500},
	        {"oob", wat_oob, "out of bounds", 500},
	        {"spin", wat_loop, "CPU time limit", 500},
	        {"deep", wat_recurse, "call stack exhausted", 500},
	        {"hog", wat_hog, "unreachable", 500},
	};
	char *good = tsup_cgi_wat("still here");
	struct tsup_file gf[] = {{"app.wat", good}};
	json_t *d;
	size_t i;
	int round;

	d = deploy_files(&vivd, "good", gf, 1);
	assert_ready(d);
	json_decref(d);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tsup_file f[] = {{"app.wat", bad[i].wat}};

		d = deploy_files(&vivd, bad[i].app, f, 1);
		assert_ready(d);
		json_decref(d);
	}
	/* Several rounds, so that every worker meets every bad guest. */
	for (round = 0; round < 4; round++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_app_says(&vivd, bad[i].app, bad[i].status, "");
			assert_app_says(&vivd, "good", 200, "still here");
		}
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_logged(bad[i].app, bad[i].log);
	free(good);
}

Test(core, unknown_app_is_404)
{
	struct tsup_resp r;

	cr_assert(tsup_app_get(&vivd, "nobody", "/", &r));
	cr_assert_eq(r.status, 404);
	cr_assert_not_null(strstr(r.body, "No app"), "%s", r.body);
	tsup_resp_free(&r);
}

Test(core, dotdot_tarball_fails_clearly)
{
	struct tsup_file f[] = {{"../evil.c", "int main(void){return 0;}\n"}};
	json_t *d = deploy_files(&vivd, "evil", f, 1);

	cr_assert_str_eq(jstr(d, "status"), "failed");
	cr_assert_not_null(strstr(jstr(d, "error"), "../evil.c"), "error: %s", jstr(d, "error"));
	json_decref(d);
}

Test(core, compile_error_fails_with_file_and_line)
{
	struct tsup_file f[] = {{"README.md", "A broken app.\n"},
	                        {"src/", NULL},
	                        {"src/main.c", "int main(void)\n{\n\treturn missing;\n}\n"}};
	json_t *d = deploy_files(&vivd, "broken", f, 3);
	struct tsup_resp r;

	cr_assert_str_eq(jstr(d, "status"), "failed");
	cr_assert_not_null(strstr(jstr(d, "log"), "src/main.c:3:"), "log: %s", jstr(d, "log"));
	cr_assert_not_null(strstr(jstr(d, "log"), "missing"), "log: %s", jstr(d, "log"));
	cr_assert(strlen(jstr(d, "error")) > 10);
	json_decref(d);
	/* Nothing was deployed, so nothing answers. */
	cr_assert(tsup_app_get(&vivd, "broken", "/", &r));
	cr_assert_eq(r.status, 404);
	tsup_resp_free(&r);
}

Test(core, a_killed_worker_is_replaced)
{
	char *wat = tsup_cgi_wat("survivor");
	struct tsup_file f[] = {{"app.wat", wat}};
	pid_t workers[8], after[8];
	size_t n, m, i;
	json_t *d = deploy_files(&vivd, "survivor", f, 1);
	double deadline;

	assert_ready(d);
	json_decref(d);
	n = tsup_children_named(vivd.pid, "worker", workers, 8);
	cr_assert_eq(n, 2, "expected 2 workers, found %zu", n);
	kill(workers[0], SIGKILL);
	/* The other worker keeps serving while the supervisor replaces it. */
	for (i = 0; i < 20; i++)
		assert_app_says(&vivd, "survivor", 200, "survivor");
	deadline = tsup_now_ms() + 10000;
	do {
		usleep(50000);
		m = tsup_children_named(vivd.pid, "worker", after, 8);
	} while ((m != 2 || after[0] == workers[0] || after[1] == workers[0]) &&
	         tsup_now_ms() < deadline);
	cr_assert_eq(m, 2, "the killed worker was not replaced");
	for (i = 0; i < 20; i++)
		assert_app_says(&vivd, "survivor", 200, "survivor");
	free(wat);
}
