/* End to end with the records in PostgreSQL: the real `vivd serve --store
 * postgresql://...` on a scratch server that this binary starts, through
 * deploys, requests, a redeploy and a rollback; what vivd recorded is read
 * back from the server itself. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtest.h"
#include "support.h"

/* The server is started once, before the first test; a server that cannot
 * start fails every test with the reason (tpg_database_new()). */
ReportHook(PRE_ALL)(struct criterion_test_set *tests)
{
	char why[1024];

	(void)tests;
	if (!tpg_start(why, sizeof(why)))
		fprintf(stderr, "postgres tests: %s\n", why);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	tpg_stop();
}

/* A CGI program in WebAssembly text that prints TEXT (at most 200 bytes). */
static char *cgi_wat(const char *text)
{
	char *wat = NULL;
	char body[512];
	int n = snprintf(body, sizeof(body), "Content-Type: text/plain\\0a\\0a%s\\0a", text);
	size_t len = strlen(text) + 26 + 1;

	cr_assert(n > 0 && (size_t)n < sizeof(body));
	cr_assert(asprintf(&wat,
	                   "(module\n"
	                   "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	                   "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
	                   "  (memory 1)\n"
	                   "  (data (i32.const 64) \"%s\")\n"
	                   "  (func (export \"_start\")\n"
	                   "    (i32.store (i32.const 0) (i32.const 64))\n"
	                   "    (i32.store (i32.const 4) (i32.const %zu))\n"
	                   "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
	                   " (i32.const 16)))))\n",
	                   body, len) > 0);
	return wat;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

/* Deploys a module that prints text; returns the deployment's id. */
static long deploy_text(const struct tsup_vivd *v, const char *app, const char *text)
{
	char *wat = cgi_wat(text), *tgz;
	struct tsup_file files[] = {{"app.wat", wat}};
	size_t len;
	json_t *d;
	long id;

	tsup_tar(files, 1, true, &tgz, &len);
	d = tsup_deploy_wait(v, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "deployment failed: %s\nlog:\n%s",
	                 jstr(d, "error"), jstr(d, "log"));
	id = (long)json_integer_value(json_object_get(d, "id"));
	json_decref(d);
	free(tgz);
	free(wat);
	return id;
}

/* The app answers 200 with needle in its body, within a few seconds (a
 * runner reloads its routes when it sees the generation move). */
static void assert_app_says(const struct tsup_vivd *v, const char *app, const char *needle)
{
	double deadline = tsup_now_ms() + 5000;
	struct tsup_resp r;

	for (;;) {
		cr_assert(tsup_app_get(v, app, "/", &r), "no response from %s (%s); log:\n%s", app,
		          r.error, tsup_vivd_log_tail(v, 4000));
		if (r.status == 200 && strstr(r.body, needle)) {
			tsup_resp_free(&r);
			return;
		}
		cr_assert(tsup_now_ms() < deadline, "%s answered %ld '%s', expected '%s'", app,
		          r.status, r.body, needle);
		tsup_resp_free(&r);
		usleep(50000);
	}
}

Test(postgres, serve_deploy_request_redeploy_rollback, .timeout = 300)
{
	const char *url = tpg_database_new();
	const char *extra[] = {"--store", url, NULL};
	struct tsup_vivd v;
	struct tsup_resp r;
	char path[400], rollback[300];
	struct stat sb;
	long first, second;
	double deadline;

	tsup_vivd_start(&v, extra);
	first = deploy_text(&v, "pg", "hello from postgres");
	assert_app_says(&v, "pg", "hello from postgres");

	/* The records are the server's: the data folder holds files only. */
	snprintf(path, sizeof(path), "%s/vivarium.db", v.data);
	cr_assert_neq(stat(path, &sb), 0, "%s exists", path);
	cr_assert_eq(tpg_sql_int(url, "SELECT count(*) FROM apps WHERE name = 'pg'"), 1);
	snprintf(path, sizeof(path),
	         "SELECT count(*) FROM deployments WHERE id = %ld AND status = 'ready'", first);
	cr_assert_eq(tpg_sql_int(url, path), 1);
	cr_assert_eq(tpg_sql_int(url, "SELECT count(*) FROM tokens WHERE builtin = 1"), 1);

	/* A second version takes over, and a rollback brings the first back:
	 * both move the routes generation the runners follow. */
	second = deploy_text(&v, "pg", "version two");
	cr_assert_gt(second, first);
	assert_app_says(&v, "pg", "version two");
	snprintf(rollback, sizeof(rollback), "%s/v1/apps/pg/rollback", v.api);
	cr_assert(tsup_http("POST", rollback, NULL, v.token, "{}", 2, &r));
	cr_assert_eq(r.status, 200, "rollback answered %ld: %s", r.status, r.body);
	tsup_resp_free(&r);
	assert_app_says(&v, "pg", "hello from postgres");
	cr_assert_geq(tpg_sql_int(url, "SELECT gen FROM routes_generation"), 3);

	/* The runners' access lines reach the server too. */
	deadline = tsup_now_ms() + 5000;
	while (tpg_sql_int(url, "SELECT count(*) FROM app_logs WHERE stream = 'access'") < 1) {
		cr_assert(tsup_now_ms() < deadline, "no access line was recorded; log:\n%s",
		          tsup_vivd_log_tail(&v, 4000));
		usleep(100000);
	}
	tsup_vivd_stop(&v);
	tpg_database_drop(url);
}
