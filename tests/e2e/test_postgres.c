/* End to end with the records in PostgreSQL: the real `vivd serve --store
 * postgresql://...` on a scratch server that this binary starts, through
 * deploys, requests, a redeploy and a rollback; and a second builder
 * process on the same queue, killed in the middle of a build. What vivd
 * recorded is read back from the server itself. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "support.h"
#include "viv.h"

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

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

/* Deploys a module that prints text, with a static file note.txt that
 * holds note when note is not NULL; returns the deployment's id. */
static long deploy_files(const struct tsup_vivd *v, const char *app, const char *text,
                         const char *note)
{
	char *wat = tsup_cgi_wat(text), *tgz;
	struct tsup_file files[] = {{"app.wat", wat}, {"assets/note.txt", note}};
	size_t len;
	json_t *d;
	long id;

	tsup_tar(files, note ? 2 : 1, true, &tgz, &len);
	d = tsup_deploy_wait(v, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "deployment failed: %s\nlog:\n%s",
	                 jstr(d, "error"), jstr(d, "log"));
	id = (long)json_integer_value(json_object_get(d, "id"));
	json_decref(d);
	free(tgz);
	free(wat);
	return id;
}

static long deploy_text(const struct tsup_vivd *v, const char *app, const char *text)
{
	return deploy_files(v, app, text, NULL);
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

/* `vivd builder` on v's data folder and database (url; NULL: SQLite in the
 * data folder), with a lease of 3 s; its
 * output goes to DIR/builder.log. Returns its pid (a process group of its
 * own) once its builder has started. */
/* Starts another vivd process, argv, with its output appended to log, and
 * waits (30 s at most) until log holds every line of ready. */
static pid_t start_logged(const char *const *argv, const char *log, const char *const *ready)
{
	double deadline = tsup_now_ms() + 30000;
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		char *text = NULL;
		size_t got = 0;
		bool up = viv_read_file(log, 1 << 20, &text, &got) == VIV_OK;
		int status;

		for (size_t i = 0; up && ready[i]; i++)
			up = strstr(text, ready[i]) != NULL;
		if (up) {
			free(text);
			return pid;
		}
		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "vivd %s exited:\n%s", argv[1],
		             text ? text : "");
		free(text);
		cr_assert(tsup_now_ms() < deadline, "vivd %s did not start", argv[1]);
		usleep(50000);
	}
}

static pid_t start_builder(const struct tsup_vivd *v, const char *url, char *log, size_t loglen)
{
	const char *ready[] = {"builds at once", NULL};
	const char *argv[16];
	size_t n = 0;

	snprintf(log, loglen, "%s/builder.log", v->dir);
	argv[n++] = VIVD_BIN;
	argv[n++] = "builder";
	argv[n++] = "--data";
	argv[n++] = v->data;
	if (url) {
		argv[n++] = "--store";
		argv[n++] = url;
	}
	argv[n++] = "--builders";
	argv[n++] = "1";
	argv[n++] = "--build-lease";
	argv[n++] = "3";
	if (!tsup_bwrap_works())
		argv[n++] = "--no-sandbox";
	argv[n] = NULL;
	return start_logged(argv, log, ready);
}

static const char c_hello[] = "#include <stdio.h>\n"
                              "int main(void)\n"
                              "{\n"
                              "\tprintf(\"Content-Type: text/plain\\n\\nHello from C\\n\");\n"
                              "\treturn 0;\n"
                              "}\n";

#define SHARED_APPS 6

/* The first column of sql's first row, on the database of v: the server's
 * at url, or the data folder's SQLite file when url is NULL. */
static int64_t sql_int(const struct tsup_vivd *v, const char *url, const char *sql)
{
	char path[400];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t n = 0;

	if (url)
		return tpg_sql_int(url, sql);
	snprintf(path, sizeof(path), "%s/vivarium.db", v->data);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s: %s", sql,
	             sqlite3_errmsg(db));
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return n;
}

/*
 * vivd serve (one builder) and a second `vivd builder` process share one
 * queue: deployments queued at once are built by both, each once. Then,
 * with serve's builder stopped, the second builder claims a build and is
 * killed in the middle of it: after its 3 s lease, serve's builder takes
 * the build over and it becomes ready, once, and is served. On PostgreSQL
 * (url) and on the data folder's SQLite (url NULL) alike.
 */
static void two_builders(const char *url)
{
	const char *extra_pg[] = {"--store", url, "--builders", "1", "--build-lease", "3", NULL};
	const char *extra_lite[] = {"--builders", "1", "--build-lease", "3", NULL};
	struct tsup_file c_files[] = {{"hello.c", c_hello}};
	long ids[SHARED_APPS], c_id = 0;
	char log[400], sql[256], *tgz;
	struct tsup_vivd v;
	struct tsup_resp r;
	pid_t other, serve_builder;
	size_t len;
	json_t *d;
	double deadline;

	tsup_vivd_start(&v, url ? extra_pg : extra_lite);
	other = start_builder(&v, url, log, sizeof(log));
	for (int i = 0; i < SHARED_APPS; i++) {
		char app[16], text[32], *wat;
		struct tsup_file files[1];

		snprintf(app, sizeof(app), "shared%d", i);
		snprintf(text, sizeof(text), "app %d", i);
		wat = tsup_cgi_wat(text);
		files[0] = (struct tsup_file){"app.wat", wat};
		tsup_tar(files, 1, true, &tgz, &len);
		cr_assert_eq(tsup_deploy(&v, app, tgz, len, &ids[i], NULL), 202);
		free(tgz);
		free(wat);
	}
	for (int i = 0; i < SHARED_APPS; i++) {
		d = tsup_wait_deployment(&v, ids[i], 120000);
		cr_assert_str_eq(jstr(d, "status"), "ready", "deployment %ld: %s", ids[i],
		                 jstr(d, "error"));
		json_decref(d);
	}
	cr_assert_eq(sql_int(&v, url,
	                     "SELECT count(DISTINCT claimed_by) FROM deployments"
	                     " WHERE status = 'ready'"),
	             2, "one builder process built every deployment");
	cr_assert_eq(sql_int(&v, url, "SELECT count FROM build_counts WHERE result = 'ready'"),
	             SHARED_APPS);

	/* Only the second builder looks for work now. */
	cr_assert_eq(tsup_children_named(v.pid, "builder", &serve_builder, 1), 1);
	cr_assert_eq(kill(serve_builder, SIGSTOP), 0);
	tsup_tar(c_files, 1, true, &tgz, &len);
	cr_assert_eq(tsup_deploy(&v, "killed", tgz, len, &c_id, NULL), 202);
	free(tgz);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM deployments WHERE id = %ld AND status = 'building'", c_id);
	deadline = tsup_now_ms() + 30000;
	while (sql_int(&v, url, sql) == 0) {
		cr_assert(tsup_now_ms() < deadline, "the second builder did not claim the build");
		usleep(10000);
	}
	cr_assert_eq(kill(-other, SIGKILL), 0);
	waitpid(other, NULL, 0);
	cr_assert_eq(kill(serve_builder, SIGCONT), 0);

	d = tsup_wait_deployment(&v, c_id, 120000);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s\nlog:\n%s", jstr(d, "error"),
	                 jstr(d, "log"));
	cr_assert_not_null(strstr(jstr(d, "log"), "stopped renewing its lease on this build"),
	                   "log:\n%s", jstr(d, "log"));
	json_decref(d);
	cr_assert_eq(sql_int(&v, url, "SELECT count FROM build_counts WHERE result = 'ready'"),
	             SHARED_APPS + 1);
	cr_assert(tsup_app_get(&v, "killed", "/", &r));
	cr_assert_eq(r.status, 200, "%ld: %s", r.status, r.body);
	cr_assert_not_null(strstr(r.body, "Hello from C"));
	tsup_resp_free(&r);
	tsup_vivd_stop(&v);
}

Test(postgres, two_builder_processes_and_one_killed_mid_build, .timeout = 300)
{
	const char *url = tpg_database_new();

	two_builders(url);
	tpg_database_drop(url);
}

Test(postgres, the_same_on_sqlite, .timeout = 300)
{
	two_builders(NULL);
}

/* ---- A runner host of its own -------------------------------------------------- */

/* `vivd runner` with a data folder of its own on the shared store, fetching
 * artifacts from v's API; its log in log. */
static pid_t start_runner(const struct tsup_vivd *v, const char *url, const char *data,
                          unsigned port, char *log, size_t loglen)
{
	const char *ready[] = {"fetching the artifacts", "serving apps", NULL};
	char listen[64], token_file[400];
	const char *argv[24];
	size_t n = 0;

	snprintf(log, loglen, "%s/runner.log", v->dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(token_file, sizeof(token_file), "%s/admin-token", v->data);
	argv[n++] = VIVD_BIN;
	argv[n++] = "runner";
	argv[n++] = "--data";
	argv[n++] = data;
	argv[n++] = "--store";
	argv[n++] = url;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--workers";
	argv[n++] = "1";
	argv[n++] = "--artifacts-from";
	argv[n++] = v->api;
	argv[n++] = "--token-file";
	argv[n++] = token_file;
	argv[n] = NULL;
	return start_logged(argv, log, ready);
}

static void stop_runner(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* What the app answers at path on the runner host at port: 0 for no
 * answer. */
static long runner_get_path(unsigned port, const char *app, const char *path, struct tsup_resp *r)
{
	char url[256], host[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	snprintf(host, sizeof(host), "%s.localhost:%u", app, port);
	if (!tsup_http("GET", url, host, NULL, NULL, 0, r))
		return 0;
	return r->status;
}

static long runner_get(unsigned port, const char *app, struct tsup_resp *r)
{
	return runner_get_path(port, app, "/", r);
}

/* Until the runner host answers 200 with needle (10 s at most); how long. */
static double runner_says(unsigned port, const char *app, const char *needle, const char *log)
{
	double t0 = tsup_now_ms();
	struct tsup_resp r;

	for (;;) {
		long status = runner_get(port, app, &r);
		bool ok = status == 200 && strstr(r.body, needle);
		char *text = NULL;
		size_t got = 0;

		tsup_resp_free(&r);
		if (ok)
			return tsup_now_ms() - t0;
		if (tsup_now_ms() - t0 > 10000 &&
		    viv_read_file(log, 1 << 20, &text, &got) == VIV_OK)
			cr_assert_fail("the runner host never answered '%s' for %s:\n%s", needle,
			               app, text);
		cr_assert_lt(tsup_now_ms() - t0, 10000, "the runner host never answered");
		usleep(20000);
	}
}

/* The runner host's readiness, as a load balancer asks for it: the status,
 * and its text in body (room for 256 bytes). */
static long runner_ready(unsigned port, char *body)
{
	char url[128];
	struct tsup_resp r;
	long status;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz", port);
	cr_assert(tsup_http("GET", url, NULL, NULL, NULL, 0, &r));
	status = r.status;
	snprintf(body, 256, "%s", r.body ? r.body : "");
	tsup_resp_free(&r);
	return status;
}

static bool log_has(const char *log, const char *needle)
{
	char *text = NULL;
	size_t got = 0;
	bool has = viv_read_file(log, 1 << 20, &text, &got) == VIV_OK && strstr(text, needle);

	free(text);
	return has;
}

/* The path of note.txt, in the static files of datadir, that holds text. */
static bool find_note(const char *datadir, const char *text, char *path, size_t len)
{
	char dir[500];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/assets", datadir);
	d = opendir(dir);
	while (d && !found && (de = readdir(d)) != NULL) {
		char *got = NULL;
		size_t n = 0;

		if (snprintf(path, len, "%s/%.70s/note.txt", dir, de->d_name) >= (int)len)
			continue;
		found = viv_read_file(path, 4096, &got, &n) == VIV_OK && strcmp(got, text) == 0;
		free(got);
	}
	if (d)
		closedir(d);
	return found;
}

/* Until log has needle, 10 s at most. */
static void wait_log(const char *log, const char *needle)
{
	for (double t0 = tsup_now_ms(); !log_has(log, needle);) {
		cr_assert_lt(tsup_now_ms() - t0, 10000, "%s never said '%s'", log, needle);
		usleep(20000);
	}
}

/*
 * A runner host with a data folder of its own shares only the store: it
 * fetches each deployment's artifact from the API by hash, puts it in its
 * own artifact folder only once its bytes match the sha256 the store
 * recorded, and serves the app then. Bytes that do not match (here: a
 * record changed in the store) are not used, the log says why, and once
 * the record is right again the host fetches it and serves.
 */
Test(postgres, a_runner_host_fetches_artifacts_by_hash_and_checks_them, .timeout = 300)
{
	const char *url = tpg_database_new();
	const char *extra[] = {"--store", url, NULL};
	char data[400], log[400], sql[512], so[600], sum[VIV_SHA256_HEX_LEN + 1], body[256];
	char note[600];
	unsigned port = tsup_free_port();
	struct tsup_vivd v;
	struct tsup_resp r;
	json_t *d;
	long id;
	double ms;
	pid_t runner;

	tsup_vivd_start(&v, extra);
	snprintf(data, sizeof(data), "%s/runner-data", v.dir);
	runner = start_runner(&v, url, data, port, log, sizeof(log));
	deploy_text(&v, "far", "from afar");
	ms = runner_says(port, "far", "from afar", log);
	cr_log_info("served on the runner host %.0f ms after its deploy was acknowledged", ms);
	wait_log(log, "sha256 checked");
	cr_assert_eq(runner_ready(port, body), 200, "%s", body);
	cr_assert(strstr(body, "ready: 1 apps, 0 artifacts missing"), "%s", body);
	id = deploy_files(&v, "far", "version two", "a static note\n");
	runner_says(port, "far", "version two", log);
	/* Its static files came with it, checked against their hash. */
	cr_assert_eq(runner_get_path(port, "far", "/note.txt", &r), 200, "%s", r.body);
	cr_assert_str_eq(r.body, "a static note\n");
	tsup_resp_free(&r);
	wait_log(log, "hash checked");

	/* The artifact in the runner's own folder is the builder's, byte for
	 * byte. */
	snprintf(sql, sizeof(sql), "%s/v1/deployments/%ld", v.api, id);
	cr_assert(tsup_http("GET", sql, NULL, v.token, NULL, 0, &r));
	d = json_loads(r.body, 0, NULL);
	tsup_resp_free(&r);
	cr_assert_not_null(d);
	snprintf(so, sizeof(so), "%s/artifacts/%.2s/%s.so", data, jstr(d, "artifact"),
	         jstr(d, "artifact"));
	cr_assert_eq(viv_sha256_file(so, sum), VIV_OK, "%s is not on the runner host", so);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM artifacts WHERE hash = '%s' AND so_sha256 = '%s'",
	         jstr(d, "artifact"), sum);
	cr_assert_eq(tpg_sql_int(url, sql), 1);
	json_decref(d);

	/* A record that does not match what the API sends: the host, started
	 * again after the deploy, will not use it. */
	stop_runner(runner);
	id = deploy_text(&v, "far", "third");
	snprintf(sql, sizeof(sql), "%s/v1/deployments/%ld", v.api, id);
	cr_assert(tsup_http("GET", sql, NULL, v.token, NULL, 0, &r));
	d = json_loads(r.body, 0, NULL);
	tsup_resp_free(&r);
	snprintf(so, sizeof(so), "%s/artifacts/%.2s/%s.so", v.data, jstr(d, "artifact"),
	         jstr(d, "artifact"));
	cr_assert_eq(viv_sha256_file(so, sum), VIV_OK);
	snprintf(sql, sizeof(sql),
	         "UPDATE artifacts SET so_sha256 = repeat('0', 64) WHERE hash = '%s'"
	         " RETURNING 1",
	         jstr(d, "artifact"));
	cr_assert_eq(tpg_sql_int(url, sql), 1);
	runner = start_runner(&v, url, data, port, log, sizeof(log));
	wait_log(log, "not used");
	cr_assert_neq(runner_get(port, "far", &r), 200, "the runner served %s", r.body);
	tsup_resp_free(&r);
	/* Not ready while an artifact is missing, for a while. */
	cr_assert_eq(runner_ready(port, body), 503, "%s", body);
	cr_assert(strstr(body, "1 artifacts are still on their way"), "%s", body);
	snprintf(so, sizeof(so), "%s/artifacts/%.2s/%s.so", data, jstr(d, "artifact"),
	         jstr(d, "artifact"));
	cr_assert_neq(access(so, F_OK), 0, "refused bytes were put in place");
	/* Right again: fetched at the next try. */
	snprintf(sql, sizeof(sql),
	         "UPDATE artifacts SET so_sha256 = '%s' WHERE hash = '%s' RETURNING 1", sum,
	         jstr(d, "artifact"));
	cr_assert_eq(tpg_sql_int(url, sql), 1);
	for (double t0 = tsup_now_ms();
	     runner_get(port, "far", &r) != 200 || !strstr(r.body, "third");) {
		tsup_resp_free(&r);
		cr_assert_lt(tsup_now_ms() - t0, 30000, "never served after the record was fixed");
		usleep(100000);
	}
	tsup_resp_free(&r);
	json_decref(d);

	/* Static files that do not hash to their name, as the API host sends
	 * them: not used either, until they are right again. */
	stop_runner(runner);
	deploy_files(&v, "far", "fourth", "fourth note\n");
	cr_assert(find_note(v.data, "fourth note\n", note, sizeof(note)));
	cr_assert_eq(viv_write_file_atomic(note, "forged note\n", 12, 0644), VIV_OK);
	runner = start_runner(&v, url, data, port, log, sizeof(log));
	wait_log(log, "the static files that came hash to");
	cr_assert(runner_get(port, "far", &r) != 200 || !strstr(r.body, "fourth"),
	          "the runner served %s", r.body);
	tsup_resp_free(&r);
	cr_assert_eq(viv_write_file_atomic(note, "fourth note\n", 12, 0644), VIV_OK);
	for (double t0 = tsup_now_ms(); runner_get_path(port, "far", "/note.txt", &r) != 200 ||
	                                strcmp(r.body, "fourth note\n");) {
		tsup_resp_free(&r);
		cr_assert_lt(tsup_now_ms() - t0, 30000, "never served after the files were right");
		usleep(100000);
	}
	tsup_resp_free(&r);
	stop_runner(runner);
	tsup_vivd_stop(&v);
	tpg_database_drop(url);
}

/* ---- HAProxy in front of runner hosts ------------------------------------------ */

/* Starts HAProxy with the shipped configuration (scripts/haproxy.cfg),
 * listening on port, in front of the runner hosts at ports. */
static pid_t start_haproxy(const char *dir, unsigned port, const unsigned *ports, size_t n)
{
	char *shipped = NULL, *cfg = NULL, path[400], line[128];
	/* -n: fewer connections than the shipped maxconn, which needs more
	 * descriptors than a test process may have. */
	const char *argv[] = {"haproxy", "-db", "-n", "1000", "-f", path, NULL};
	struct viv_buf out;
	size_t len = 0;
	pid_t pid;

	cr_assert_eq(viv_read_file(VIV_SOURCE_DIR "/scripts/haproxy.cfg", 1 << 20, &shipped, &len),
	             VIV_OK);
	viv_buf_init(&out, 1 << 20);
	/* Its lines as shipped, but for where it listens, the system log, and
	 * the servers. */
	for (char *l = strtok(shipped, "\n"); l; l = strtok(NULL, "\n")) {
		const char *t = l + strspn(l, "\t ");

		if (strncmp(t, "bind ", 5) == 0) {
			snprintf(line, sizeof(line), "\tbind 127.0.0.1:%u\n", port);
			cr_assert_eq(viv_buf_append(&out, line, strlen(line)), VIV_OK);
			continue;
		}
		if (strncmp(t, "server ", 7) == 0 || strncmp(t, "log /dev/log", 12) == 0)
			continue;
		cr_assert_eq(viv_buf_append(&out, l, strlen(l)), VIV_OK);
		cr_assert_eq(viv_buf_append(&out, "\n", 1), VIV_OK);
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "\tserver runner%zu 127.0.0.1:%u\n", i + 1, ports[i]);
		cr_assert_eq(viv_buf_append(&out, line, strlen(line)), VIV_OK);
	}
	snprintf(path, sizeof(path), "%s/haproxy.cfg", dir);
	cr_assert_eq(viv_write_file_atomic(path, out.data, out.len, 0644), VIV_OK);
	viv_buf_free(&out);
	free(shipped);
	free(cfg);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char log[400];
		int fd;

		snprintf(log, sizeof(log), "%s/haproxy.log", dir);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

struct through {
	unsigned port;
	volatile bool stop;
	size_t ok, failed;
	long last_status;
	char first_failure[200]; /* its status and body */
	double first_failure_ms;
};

/* GETs the app through HAProxy, one request after another, until stop. */
static void *load_through(void *arg)
{
	struct through *t = arg;
	char url[128], host[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", t->port);
	snprintf(host, sizeof(host), "lb.localhost:%u", t->port);
	while (!t->stop) {
		struct tsup_resp r;
		bool got = tsup_http("GET", url, host, NULL, NULL, 0, &r);

		if (got && r.status == 200 && strstr(r.body, "balanced"))
			t->ok++;
		else if (t->failed++ == 0) {
			t->first_failure_ms = tsup_now_ms();
			snprintf(t->first_failure, sizeof(t->first_failure), "%ld %.60s: %.120s",
			         got ? r.status : 0L, got ? "" : r.error, got ? r.body : "");
		}
		t->last_status = got ? r.status : 0;
		tsup_resp_free(&r);
	}
	return NULL;
}

/* How many of the app lb's requests the runner host with data folder data
 * answered 200, by its worker's metrics (written every second). */
static long served_by(const char *data)
{
	static const char key[] = "vivarium_requests_total{app=\"lb\",code=\"200\"} ";
	char path[500], *text = NULL, *p;
	size_t got = 0;
	long n = 0;

	snprintf(path, sizeof(path), "%s/run/metrics/worker-0.prom", data);
	if (viv_read_file(path, 1 << 20, &text, &got) != VIV_OK)
		return 0;
	p = strstr(text, key);
	if (p)
		n = strtol(p + strlen(key), NULL, 10);
	free(text);
	return n;
}

/*
 * HAProxy, as shipped, in front of two runner hosts: every request of a
 * steady stream is answered while one host is killed with SIGKILL (its
 * connections refused from then on), and the host, started again, is
 * taken back once its readiness says so.
 */
Test(postgres, haproxy_keeps_answering_while_a_runner_host_is_killed, .timeout = 300)
{
	const char *url = tpg_database_new();
	const char *extra[] = {"--store", url, NULL};
	char data[2][400], log[2][400], body[256];
	unsigned ports[2] = {tsup_free_port(), tsup_free_port()}, lb = tsup_free_port();
	struct through t = {.port = lb};
	struct tsup_vivd v;
	struct tsup_resp r;
	pid_t runners[2], haproxy;
	pthread_t loader;
	double t0, killed_at;
	size_t before;

	tsup_vivd_start(&v, extra);
	deploy_text(&v, "lb", "balanced");
	for (int i = 0; i < 2; i++) {
		snprintf(data[i], sizeof(data[i]), "%s/runner%d", v.dir, i);
		runners[i] = start_runner(&v, url, data[i], ports[i], log[i], sizeof(log[i]));
		runner_says(ports[i], "lb", "balanced", log[i]);
		cr_assert_eq(runner_ready(ports[i], body), 200, "%s", body);
	}
	haproxy = start_haproxy(v.dir, lb, ports, 2);
	t0 = tsup_now_ms();
	while (runner_get(lb, "lb", &r) != 200) {
		tsup_resp_free(&r);
		if (tsup_now_ms() - t0 > 10000) {
			char hlog[400], *text = NULL;
			size_t got = 0;

			snprintf(hlog, sizeof(hlog), "%s/haproxy.log", v.dir);
			if (viv_read_file(hlog, 1 << 20, &text, &got) != VIV_OK)
				text = NULL;
			cr_assert_fail("HAProxy did not answer:\n%s", text ? text : "(no log)");
		}
		usleep(50000);
	}
	tsup_resp_free(&r);
	/* Both hosts in the rotation (rise 2 at 1 s). */
	usleep(2500000);

	cr_assert_eq(pthread_create(&loader, NULL, load_through, &t), 0);
	usleep(1000000);
	before = t.ok;
	/* Both took their share. */
	usleep(1100000);
	cr_assert_gt(served_by(data[0]), 0, "the host to be killed was sent nothing");
	cr_assert_gt(served_by(data[1]), 0, "the other host was sent nothing");
	killed_at = tsup_now_ms();
	cr_assert_eq(kill(-runners[0], SIGKILL), 0);
	waitpid(runners[0], NULL, 0);
	usleep(4000000);
	/* Back: taken into the rotation again once ready. */
	runners[0] = start_runner(&v, url, data[0], ports[0], log[0], sizeof(log[0]));
	runner_says(ports[0], "lb", "balanced", log[0]);
	usleep(3000000);
	/* The host's new worker counts from 0: it was taken back. */
	cr_assert_gt(served_by(data[0]), 0, "the host that came back was sent nothing");
	t.stop = true;
	pthread_join(loader, NULL);
	cr_log_info("through HAProxy: %zu answered, %zu failed; %zu before the kill, %.0f ms of "
	            "requests after it",
	            t.ok, t.failed, before, tsup_now_ms() - killed_at);
	cr_assert_gt(t.ok, before, "nothing was answered after the kill");
	cr_assert_eq(t.failed, 0, "%zu requests failed, the first %.0f ms after the kill: %s",
	             t.failed, t.first_failure_ms - killed_at, t.first_failure);

	kill(haproxy, SIGTERM);
	waitpid(haproxy, NULL, 0);
	for (int i = 0; i < 2; i++)
		stop_runner(runners[i]);
	tsup_vivd_stop(&v);
	tpg_database_drop(url);
}
