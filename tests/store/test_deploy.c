/* Tests of deployments: the queue, the build log and timings, and the ways a
 * build ends. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(deploy, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(queue, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(buildlog, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(prior, .init = store_test_setup, .fini = store_test_teardown);

static struct store_deployment *get(struct store *st, int64_t id)
{
	struct store_deployment *d = NULL;

	cr_assert_eq(store_deployment_get(st, id, &d), VIV_OK);
	return d;
}

static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

Test(deploy, create_moves_upload_into_place)
{
	struct store *st = test_open();
	struct store_deployment *d;
	char hash[65];
	char *tmp = NULL, *path, *data;
	int64_t id = 0, before = viv_now_ms();

	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	test_write(tmp, "tarball bytes");
	test_hash("tarball bytes", hash);
	cr_assert_eq(store_deployment_create(st, "hello", tmp, hash, 13, &id), VIV_OK);
	cr_assert_gt(id, 0);
	cr_assert_not(exists(tmp));
	path = store_upload_path(st, id);
	data = test_read(path);
	cr_assert_str_eq(data, "tarball bytes");
	free(data);
	free(path);

	d = get(st, id);
	cr_assert_eq(d->id, id);
	cr_assert_str_eq(d->app, "hello");
	cr_assert_eq(d->status, STORE_DEP_QUEUED);
	cr_assert_geq(d->created_at, before);
	cr_assert_eq(d->started_at, 0);
	cr_assert_eq(d->finished_at, 0);
	cr_assert_str_eq(d->upload_sha256, hash);
	cr_assert_eq(d->upload_size, 13);
	cr_assert_null(d->language);
	cr_assert_eq(d->config.mode, STORE_MODE_NONE);
	cr_assert_null(d->artifact);
	cr_assert_null(d->error);
	cr_assert_str_eq(d->log, "");
	cr_assert_str_eq(d->timings, "{}");
	cr_assert_eq(d->config.limits.memory_mb, VIV_LIMIT_MEMORY_MB_DEFAULT);
	cr_assert_eq(d->config.n_env, 0);
	cr_assert_not(d->current);
	store_deployment_free(d);
	free(tmp);
	store_close(st);
}

Test(deploy, failed_create_leaves_upload_alone)
{
	struct store *st = test_open();
	struct store_app *app = NULL;
	char hash[65], blocker[256];
	char *tmp = NULL, *data;
	int64_t id = 7;

	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	test_write(tmp, "payload");
	test_hash("payload", hash);

	/* Something in the way of the upload path of deployment 1. */
	snprintf(blocker, sizeof(blocker), "%s/uploads/1", test_datadir);
	cr_assert_eq(mkdir(blocker, 0700), 0);
	snprintf(blocker, sizeof(blocker), "%s/uploads/1/x", test_datadir);
	test_write(blocker, "x");
	cr_assert_eq(store_deployment_create(st, "hello", tmp, hash, 7, &id), VIV_ERR_IO);
	cr_assert_eq(id, 0);
	data = test_read(tmp);
	cr_assert_str_eq(data, "payload");
	free(data);
	/* Nothing was recorded, not even the app. */
	cr_assert_eq(store_app_get(st, "hello", &app), VIV_ERR_NOT_FOUND);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments"), 0);

	cr_assert_eq(store_deployment_create(st, "hello", tmp, "nothex", 7, &id), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_create(st, "Bad!", tmp, hash, 7, &id), VIV_ERR_INVALID);
	cr_assert(exists(tmp));

	/* Once the way is clear, the same file goes through. */
	cr_assert_eq(viv_rmtree(blocker), VIV_OK);
	snprintf(blocker, sizeof(blocker), "%s/uploads/1", test_datadir);
	cr_assert_eq(rmdir(blocker), 0);
	cr_assert_eq(store_deployment_create(st, "hello", tmp, hash, 7, &id), VIV_OK);
	/* PostgreSQL's sequences do not roll back: the failed create used id 1
	 * up there. Either way no id is handed out twice. */
	cr_assert_eq(id, test_is_pg() ? 2 : 1);
	cr_assert_not(exists(tmp));
	free(tmp);
	store_close(st);
}

Test(deploy, missing_upload_is_io_error)
{
	struct store *st = test_open();
	char hash[65];
	int64_t id = 0;

	test_hash("x", hash);
	cr_assert_eq(store_deployment_create(st, "hello", "/nonexistent/upload", hash, 1, &id),
	             VIV_ERR_IO);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments"), 0);
	store_close(st);
}

Test(deploy, lifecycle_to_ready)
{
	struct store *st = test_open();
	struct store_deployment *d;
	struct store_route *routes = NULL;
	struct store_app *app = NULL;
	char hash[65];
	int64_t id, claimed = 0;
	size_t n = 0;
	uint64_t gen0 = store_routes_generation(st);
	struct store_env_var greeting = {"GREETING", "hi"};
	struct store_deploy_config config = {
	        .mode = STORE_MODE_CGI,
	        .limits = {64, 100, 2000},
	        .env = &greeting,
	        .n_env = 1,
	};
	struct store_build b = {
	        .config = &config,
	        .artifact_size = 4096,
	        .wasm_size = 1024,
	};

	id = test_queue(st, "hello", "source");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	d = get(st, id);
	cr_assert_eq(d->status, STORE_DEP_BUILDING);
	cr_assert_gt(d->started_at, 0);
	store_deployment_free(d);

	cr_assert_eq(store_deployment_log(st, id, "unpacking\n"), VIV_OK);
	cr_assert_eq(store_deployment_log(st, id, "compiling\n"), VIV_OK);
	cr_assert_eq(store_deployment_set_language(st, id, "c"), VIV_OK);
	cr_assert_eq(store_deployment_timing(st, id, "unpack", 12), VIV_OK);
	cr_assert_eq(store_deployment_timing(st, id, "wasm-opt", 30), VIV_OK);
	cr_assert_eq(store_deployment_timing(st, id, "unpack", 13), VIV_OK);

	test_hash("artifact one", hash);
	test_put_so(st, hash);
	b.artifact = hash;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);

	d = get(st, id);
	cr_assert_eq(d->status, STORE_DEP_READY);
	cr_assert_str_eq(d->log, "unpacking\ncompiling\n");
	cr_assert_str_eq(d->language, "c");
	cr_assert_str_eq(d->timings, "{\"unpack\":13,\"wasm-opt\":30}");
	cr_assert_eq(d->config.mode, STORE_MODE_CGI);
	cr_assert_str_eq(d->artifact, hash);
	cr_assert_eq(d->config.limits.memory_mb, 64);
	cr_assert_eq(d->config.limits.cpu_ms, 100);
	cr_assert_eq(d->config.limits.wall_ms, 2000);
	cr_assert_eq(d->config.n_env, 1);
	cr_assert_str_eq(d->config.env[0].name, "GREETING");
	cr_assert_str_eq(d->config.env[0].value, "hi");
	cr_assert_geq(d->finished_at, d->started_at);
	cr_assert_null(d->error);
	cr_assert(d->current);
	store_deployment_free(d);

	cr_assert_eq(store_app_get(st, "hello", &app), VIV_OK);
	cr_assert_eq(app->current_deployment, id);
	store_app_free(app);
	cr_assert_eq(store_routes_generation(st), gen0 + 1);
	cr_assert_eq(test_sql_int("SELECT so_size FROM artifacts"), 4096);

	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(routes[0].app, "hello");
	cr_assert_eq(routes[0].deployment_id, id);
	cr_assert_str_eq(routes[0].artifact, hash);
	cr_assert_eq(routes[0].config.mode, STORE_MODE_CGI);
	cr_assert_str_eq(store_deploy_config_env(&routes[0].config, "GREETING"), "hi");
	cr_assert_eq(routes[0].config.limits.wall_ms, 2000);
	store_routes_free(routes, n);

	/* A finished deployment cannot finish again. */
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_failed(st, id, "late failure."), VIV_ERR_INVALID);
	cr_assert_eq(store_routes_generation(st), gen0 + 1);
	store_close(st);
}

Test(deploy, failure_keeps_current)
{
	struct store *st = test_open();
	struct store_deployment *d;
	struct store_route *routes = NULL;
	char hash[65];
	int64_t serving, id, claimed = 0;
	uint64_t gen;
	size_t n = 0;

	test_hash("good", hash);
	serving = test_deploy(st, "hello", hash);
	gen = store_routes_generation(st);

	id = test_queue(st, "hello", "broken source");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	cr_assert_eq(store_deployment_failed(st, id, "main.c does not compile; fix it."), VIV_OK);

	d = get(st, id);
	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert_str_eq(d->error, "main.c does not compile; fix it.");
	cr_assert_gt(d->finished_at, 0);
	cr_assert_not(d->current);
	store_deployment_free(d);
	d = get(st, serving);
	cr_assert(d->current);
	store_deployment_free(d);
	cr_assert_eq(store_routes_generation(st), gen);
	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(routes[0].deployment_id, serving);
	store_routes_free(routes, n);
	cr_assert_eq(store_deployment_ready(
	                     st, id, &(struct store_build){.artifact = hash, .config = &test_cgi}),
	             VIV_ERR_INVALID);
	store_close(st);
}

Test(deploy, new_ready_replaces_current)
{
	struct store *st = test_open();
	struct store_deployment *list = NULL;
	char one[65], two[65];
	int64_t first, second;
	size_t n = 0;

	test_hash("one", one);
	test_hash("two", two);
	first = test_deploy(st, "hello", one);
	second = test_deploy(st, "hello", two);
	cr_assert_eq(store_routes_generation(st), 2);
	cr_assert_eq(store_deployment_list(st, "hello", 0, 10, &list, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(list[0].id, second);
	cr_assert(list[0].current);
	cr_assert_eq(list[1].id, first);
	cr_assert_not(list[1].current);
	store_deployment_list_free(list, n);
	cr_assert_eq(store_deployment_list(st, "hello", 0, 1, &list, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(list[0].id, second);
	store_deployment_list_free(list, n);
	cr_assert_eq(store_deployment_list(st, "nope", 0, 10, &list, &n), VIV_ERR_NOT_FOUND);
	store_close(st);
}

Test(deploy, ready_checks_its_inputs)
{
	struct store *st = test_open();
	struct store_deployment *d;
	char hash[65], missing[65];
	int64_t id, claimed;
	struct store_env_var unnamed = {"", "v"};
	struct store_deploy_config config = test_hostcall;
	struct store_build b = {.config = &config};

	test_hash("built", hash);
	test_hash("never built", missing);
	test_put_so(st, hash);
	id = test_queue(st, "hello", "src");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);

	b.artifact = hash;
	config.env = &unnamed;
	config.n_env = 1;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	config.env = NULL;
	config.n_env = 0;
	config.assets = "not a hash";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	config.assets = NULL;
	b.config = NULL;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	b.config = &config;
	config.mode = STORE_MODE_NONE;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	config.mode = (enum store_mode)7;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	config.mode = STORE_MODE_HOSTCALL;
	b.artifact = missing;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_NOT_FOUND);
	b.artifact = "ABC";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	b.artifact = hash;
	cr_assert_eq(store_deployment_ready(st, id + 100, &b), VIV_ERR_NOT_FOUND);
	b.build_key = "0123";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	b.build_key = NULL;
	b.language = "";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_ERR_INVALID);
	b.language = NULL;

	/* Nothing of the refused attempts stuck. */
	d = get(st, id);
	cr_assert_eq(d->status, STORE_DEP_BUILDING);
	store_deployment_free(d);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM artifacts"), 0);
	cr_assert_eq(store_routes_generation(st), 0);

	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
	d = get(st, id);
	cr_assert_eq(d->config.mode, STORE_MODE_HOSTCALL);
	cr_assert_eq(d->config.n_env, 0);
	store_deployment_free(d);
	store_close(st);
}

/* The configuration is kept as every earlier vivd wrote it, so databases
 * need no migration, and what they wrote reads back as the struct. */
Test(deploy, config_keeps_the_stored_format)
{
	struct store *st = test_open();
	struct store_deployment *d;
	struct store_env_var env[] = {{"B", "2"}, {"A", "1"}};
	char *outbound[] = {"https://api.example.com", "https://*.example.org"};
	struct store_deploy_config config = {
	        .mode = STORE_MODE_CGI,
	        .limits = {16, 50, 2000},
	        .env = env,
	        .n_env = 2,
	        .outbound = outbound,
	        .n_outbound = 2,
	};
	char hash[65];
	int64_t id, claimed;

	test_hash("format", hash);
	test_put_so(st, hash);
	id = test_queue(st, "hello", "src");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(store_deployment_ready(
	                     st, id, &(struct store_build){.artifact = hash, .config = &config}),
	             VIV_OK);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE mode = 'cgi' AND config ="
	                          " '{\"limits\":{\"memory_mb\":16,\"cpu_ms\":50,\"wall_ms\":2000},"
	                          "\"env\":{\"B\":\"2\",\"A\":\"1\"},\"outbound\":"
	                          "[\"https://api.example.com\",\"https://*.example.org\"],"
	                          "\"assets\":null}'"),
	             1);

	/* As an older vivd left it: members missing or of the wrong type read
	 * as the defaults; the order of env stays. */
	test_sql_exec("UPDATE deployments SET mode = 'hostcall', config = '{\"limits\":"
	              "{\"memory_mb\":0,\"cpu_ms\":\"9\"},\"env\":{\"Z\":\"z\",\"N\":1,"
	              "\"Y\":\"y\"},\"outbound\":[\"https://a.example\",2]}'");
	d = get(st, id);
	cr_assert_eq(d->config.mode, STORE_MODE_HOSTCALL);
	cr_assert_eq(d->config.limits.memory_mb, VIV_LIMIT_MEMORY_MB_DEFAULT);
	cr_assert_eq(d->config.limits.cpu_ms, VIV_LIMIT_CPU_MS_DEFAULT);
	cr_assert_eq(d->config.limits.wall_ms, VIV_LIMIT_WALL_MS_DEFAULT);
	cr_assert_eq(d->config.n_env, 2);
	cr_assert_str_eq(d->config.env[0].name, "Z");
	cr_assert_str_eq(d->config.env[1].name, "Y");
	cr_assert_eq(d->config.n_outbound, 1);
	cr_assert_str_eq(d->config.outbound[0], "https://a.example");
	cr_assert_null(d->config.assets);
	store_deployment_free(d);

	store_close(st);
}

Test(deploy, updates_of_missing_deployment)
{
	struct store *st = test_open();
	struct store_deployment *d = (void *)1;

	cr_assert_eq(store_deployment_get(st, 42, &d), VIV_ERR_NOT_FOUND);
	cr_assert_null(d);
	cr_assert_eq(store_deployment_log(st, 42, "x"), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_deployment_set_language(st, 42, "c"), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_deployment_timing(st, 42, "cc", 1), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_deployment_failed(st, 42, "no."), VIV_ERR_NOT_FOUND);
	store_close(st);
}

Test(deploy, timing_step_names_are_checked)
{
	struct store *st = test_open();
	struct store_deployment *d;
	int64_t id = test_queue(st, "hello", "src");

	cr_assert_eq(store_deployment_timing(st, id, "a.b", 1), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_timing(st, id, "x\"]", 1), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_timing(st, id, "", 1), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_timing(st, id, NULL, 1), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_timing(st, id, "wasm2c", 7), VIV_OK);
	d = get(st, id);
	cr_assert_str_eq(d->timings, "{\"wasm2c\":7}");
	store_deployment_free(d);
	store_close(st);
}

Test(queue, claim_with_nothing_queued)
{
	struct store *st = test_open();
	int64_t id = 9;

	cr_assert_eq(store_deployment_claim(st, &id), VIV_ERR_NOT_FOUND);
	cr_assert_eq(id, 0);
	test_queue(st, "hello", "src");
	cr_assert_eq(store_deployment_claim(st, &id), VIV_OK);
	cr_assert_eq(store_deployment_claim(st, &id), VIV_ERR_NOT_FOUND);
	store_close(st);
}

Test(queue, claims_oldest_first_across_connections)
{
	struct store *a = test_open();
	struct store *b = test_open();
	int64_t ids[3], got = 0;

	ids[0] = test_queue(a, "one", "1");
	ids[1] = test_queue(b, "two", "2");
	ids[2] = test_queue(a, "three", "3");
	cr_assert_eq(store_deployment_claim(b, &got), VIV_OK);
	cr_assert_eq(got, ids[0]);
	cr_assert_eq(store_deployment_claim(a, &got), VIV_OK);
	cr_assert_eq(got, ids[1]);
	cr_assert_eq(store_deployment_claim(b, &got), VIV_OK);
	cr_assert_eq(got, ids[2]);
	cr_assert_eq(store_deployment_claim(a, &got), VIV_ERR_NOT_FOUND);
	store_close(a);
	store_close(b);
}

/* An app's deployments build one at a time and in order; another app's
 * deployment is claimed past them however long the first build takes. */
Test(queue, one_build_per_app_and_no_app_holds_another)
{
	struct store *st = test_open();
	int64_t slow1, slow2, other, got = 0;

	slow1 = test_queue(st, "slow", "1");
	slow2 = test_queue(st, "slow", "2");
	other = test_queue(st, "other", "3");
	cr_assert_eq(store_deployment_claim(st, &got), VIV_OK);
	cr_assert_eq(got, slow1);
	cr_assert_eq(store_deployment_claim(st, &got), VIV_OK);
	cr_assert_eq(got, other, "the second builder must not wait behind slow's first build");
	cr_assert_eq(store_deployment_claim(st, &got), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_deployment_failed(st, slow1, "it hung"), VIV_OK);
	cr_assert_eq(store_deployment_claim(st, &got), VIV_OK);
	cr_assert_eq(got, slow2);
	store_close(st);
}

#define RACE_DEPLOYMENTS 150
#define RACE_CHILDREN 2
#define RACE_THREADS 2

struct claimer {
	pthread_t thread;
	int go; /* read end of the start pipe */
	int64_t ids[RACE_DEPLOYMENTS];
	size_t n;
	enum viv_err end; /* the error that ended the loop */
};

/* Opens a store of its own, waits for the start, then claims until the
 * queue is empty. */
static void claim_all(struct claimer *c)
{
	struct store *st = NULL;
	char errbuf[256], byte;
	int64_t id;

	c->end = test_store_open_at(test_datadir, &st, errbuf, sizeof(errbuf));
	if (c->end)
		return;
	while (read(c->go, &byte, 1) < 0)
		;
	for (;;) {
		c->end = store_deployment_claim(st, &id);
		if (c->end)
			break;
		if (c->n < RACE_DEPLOYMENTS)
			c->ids[c->n++] = id;
		/* A moment of "building", so that claimers interleave instead of
		 * one of them draining the queue while the others sleep in the
		 * busy handler. */
		usleep(1000);
	}
	store_close(st);
}

static void *claim_thread(void *arg)
{
	claim_all(arg);
	return NULL;
}

Test(queue, concurrent_claims_are_exclusive, .timeout = 120)
{
	static struct claimer threads[RACE_THREADS], child;
	int results[RACE_CHILDREN][2], go[2];
	int claims[RACE_DEPLOYMENTS + 1] = {0};
	pid_t pids[RACE_CHILDREN];
	struct store *st = test_open();
	int64_t first = 0, id;
	size_t total = 0, i, k;
	int status;

	for (i = 0; i < RACE_DEPLOYMENTS; i++) {
		char app[32];

		/* One app each: an app builds one deployment at a time. */
		snprintf(app, sizeof(app), "app-%zu", i);
		id = test_queue(st, app, "src");
		if (i == 0)
			first = id;
	}
	/* No SQLite connection may be open across fork(). */
	store_close(st);
	cr_assert_eq(pipe(go), 0);

	for (k = 0; k < RACE_CHILDREN; k++) {
		cr_assert_eq(pipe(results[k]), 0);
		pids[k] = fork();
		cr_assert_neq(pids[k], -1);
		if (pids[k] == 0) {
			close(go[1]);
			close(results[k][0]);
			memset(&child, 0, sizeof(child));
			child.go = go[0];
			claim_all(&child);
			if (write(results[k][1], child.ids, child.n * sizeof(int64_t)) < 0)
				_exit(3);
			_exit(child.end == VIV_ERR_NOT_FOUND ? 0 : 2);
		}
		close(results[k][1]);
	}
	for (k = 0; k < RACE_THREADS; k++) {
		threads[k].go = go[0];
		cr_assert_eq(pthread_create(&threads[k].thread, NULL, claim_thread, &threads[k]),
		             0);
	}
	/* Closing the write end releases every claimer at once. */
	usleep(200 * 1000);
	close(go[1]);

	for (k = 0; k < RACE_THREADS; k++) {
		pthread_join(threads[k].thread, NULL);
		cr_assert_eq(threads[k].end, VIV_ERR_NOT_FOUND, "thread ended with %s",
		             viv_strerror(threads[k].end));
		for (i = 0; i < threads[k].n; i++)
			claims[threads[k].ids[i] - first]++;
		total += threads[k].n;
	}
	for (k = 0; k < RACE_CHILDREN; k++) {
		int64_t ids[RACE_DEPLOYMENTS];
		ssize_t r = read(results[k][0], ids, sizeof(ids));

		cr_assert_geq(r, 0);
		for (i = 0; i < (size_t)r / sizeof(int64_t); i++)
			claims[ids[i] - first]++;
		total += (size_t)r / sizeof(int64_t);
		cr_assert_eq(waitpid(pids[k], &status, 0), pids[k]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	}
	cr_assert_eq(total, RACE_DEPLOYMENTS);
	for (i = 0; i < RACE_DEPLOYMENTS; i++)
		cr_assert_eq(claims[i], 1, "deployment %lld claimed %d times",
		             (long long)(first + (int64_t)i), claims[i]);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE status = 'building'"),
	             RACE_DEPLOYMENTS);
}

/* A builder of this machine whose process is gone: no pid is this large
 * (the kernel's pid_max is at most 4194304). */
static struct store *gone_builder(void)
{
	struct store *gone = test_open();
	char host[64], owner[128];

	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	snprintf(owner, sizeof(owner), "%s:4194305:gone", host);
	cr_assert_eq(store_set_owner(gone, owner), VIV_OK);
	return gone;
}

Test(queue, requeue_interrupted)
{
	struct store *st = test_open(), *gone = gone_builder(), *away = test_open();
	struct store_deployment *d;
	int64_t a, b, c, e, got = 0;
	size_t n = 99;

	a = test_queue(st, "hello", "1");
	b = test_queue(st, "other", "2");
	c = test_queue(st, "hello", "3");
	e = test_queue(st, "elsewhere", "4");
	cr_assert_eq(store_deployment_claim(gone, &got), VIV_OK);
	cr_assert_eq(store_deployment_claim(gone, &got), VIV_OK);
	cr_assert_eq(store_deployment_log(gone, a, "compiling"), VIV_OK);
	/* A builder of another machine, alive as far as anyone here knows,
	 * whose lease is about to run out. */
	cr_assert_eq(store_set_owner(away, "elsewhere:1:x"), VIV_OK);
	store_set_lease_ms(away, 1);
	cr_assert_eq(store_deployment_claim(away, &got), VIV_OK);
	cr_assert_eq(got, e);
	usleep(5000);

	cr_assert_eq(store_deployment_requeue_interrupted(st, &n), VIV_OK);
	cr_assert_eq(n, 3);
	d = get(st, a);
	cr_assert_eq(d->status, STORE_DEP_QUEUED);
	cr_assert_eq(d->started_at, 0);
	cr_assert_str_eq(d->log,
	                 "compiling\n[vivd restarted during this build; it was queued again]\n");
	store_deployment_free(d);
	d = get(st, b);
	cr_assert_eq(d->status, STORE_DEP_QUEUED);
	cr_assert_str_eq(d->log, "[vivd restarted during this build; it was queued again]\n");
	store_deployment_free(d);
	d = get(st, c);
	cr_assert_str_eq(d->log, "");
	store_deployment_free(d);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE status = 'queued'"
	                          " AND claimed_by IS NULL AND lease_until IS NULL"),
	             4);

	/* Requeued builds keep their place at the front of the queue; a claim
	 * by a live process of this machine, under its lease, stays. */
	cr_assert_eq(store_deployment_claim(st, &got), VIV_OK);
	cr_assert_eq(got, a);
	cr_assert_eq(store_deployment_requeue_interrupted(st, NULL), VIV_OK);
	cr_assert_eq(store_deployment_requeue_interrupted(st, &n), VIV_OK);
	cr_assert_eq(n, 0);
	d = get(st, a);
	cr_assert_eq(d->status, STORE_DEP_BUILDING);
	store_deployment_free(d);
	store_close(away);
	store_close(gone);
	store_close(st);
}

Test(buildlog, capped_once)
{
	struct store *st = test_open();
	struct store_deployment *d;
	size_t chunk = 64 * 1024, i;
	char *big = malloc(chunk + 1);
	int64_t id = test_queue(st, "hello", "src");
	const char *tail;

	memset(big, 'a', chunk);
	big[chunk] = '\0';
	for (i = 0; i < STORE_BUILD_LOG_MAX / chunk - 1; i++)
		cr_assert_eq(store_deployment_log(st, id, big), VIV_OK);
	/* 10 bytes short of the cap. */
	big[chunk - 10] = '\0';
	cr_assert_eq(store_deployment_log(st, id, big), VIV_OK);
	d = get(st, id);
	cr_assert_eq(strlen(d->log), STORE_BUILD_LOG_MAX - 10);
	store_deployment_free(d);

	cr_assert_eq(store_deployment_log(st, id, "0123456789ABCDEFGHIJ"), VIV_OK);
	cr_assert_eq(store_deployment_log(st, id, "dropped\n"), VIV_OK);
	cr_assert_eq(store_deployment_log(st, id, "also dropped\n"), VIV_OK);
	d = get(st, id);
	tail = "0123456789\n[build log truncated at 1 MiB]\n";
	cr_assert_eq(strlen(d->log), STORE_BUILD_LOG_MAX - 10 + strlen(tail));
	cr_assert_str_eq(d->log + STORE_BUILD_LOG_MAX - 10, tail);
	cr_assert_null(strstr(d->log, "dropped"));
	store_deployment_free(d);
	free(big);
	store_close(st);
}

Test(buildlog, cap_does_not_split_characters)
{
	struct store *st = test_open();
	struct store_deployment *d;
	size_t n = STORE_BUILD_LOG_MAX - 1;
	char *big = malloc(n + 1);
	int64_t id = test_queue(st, "hello", "src");

	memset(big, 'a', n);
	big[n - 1] = '\n';
	big[n] = '\0';
	cr_assert_eq(store_deployment_log(st, id, big), VIV_OK);
	/* A two-byte character with room for one byte. */
	cr_assert_eq(store_deployment_log(st, id, "\xc3\xa9"), VIV_OK);
	d = get(st, id);
	cr_assert_str_eq(d->log + n, "[build log truncated at 1 MiB]\n");
	store_deployment_free(d);
	free(big);
	store_close(st);
}

/* ---- Earlier builds by build key ------------------------------------------------------ */

/* Queues, claims and readies a deployment of app with the given build key,
 * artifact, mode and config; returns its id. */
static int64_t deploy_keyed(struct store *st, const char *app, const char *key, const char *hash,
                            const struct store_deploy_config *config)
{
	struct store_build b = {
	        .artifact = hash,
	        .config = config,
	        .artifact_size = 300,
	        .wasm_size = 70,
	        .build_key = key,
	};
	int64_t id, claimed = 0;

	id = test_queue(st, app, key);
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	if (!store_artifact_exists(st, hash))
		test_put_so(st, hash);
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
	return id;
}

Test(prior, finds_the_newest_ready_build_with_the_key)
{
	struct store *st = test_open();
	struct store_prior_build *p = NULL;
	char key[65], other_key[65], hash[65], other[65];
	struct store_env_var a = {"A", "b"};
	struct store_deploy_config with_env = test_hostcall;
	int64_t old_id, id, failed, claimed = 0;

	with_env.env = &a;
	with_env.n_env = 1;
	test_hash("key", key);
	test_hash("another key", other_key);
	test_hash("artifact", hash);
	test_hash("another artifact", other);
	cr_assert_eq(store_deployment_find_build(st, key, &p), VIV_ERR_NOT_FOUND);
	cr_assert_null(p);

	old_id = deploy_keyed(st, "hello", key, hash, &test_hostcall);
	deploy_keyed(st, "hello", other_key, other, &test_cgi);
	/* The same key from another app, with the language recorded as it
	 * becomes ready. */
	id = test_queue(st, "world", "same upload");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(store_deployment_ready(st, id,
	                                    &(struct store_build){
	                                            .artifact = hash,
	                                            .config = &with_env,
	                                            .build_key = key,
	                                            .language = "rust",
	                                    }),
	             VIV_OK);
	/* A failed build later on is never offered. */
	failed = test_queue(st, "hello", "broken");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(store_deployment_failed(st, failed, "it did not build."), VIV_OK);

	cr_assert_eq(store_deployment_find_build(st, key, &p), VIV_OK);
	cr_assert_eq(p->deployment_id, id);
	cr_assert_neq(p->deployment_id, old_id);
	cr_assert_str_eq(p->artifact, hash);
	cr_assert_eq(p->config.mode, STORE_MODE_HOSTCALL);
	cr_assert_eq(p->config.n_env, 1);
	cr_assert_str_eq(store_deploy_config_env(&p->config, "A"), "b");
	cr_assert_str_eq(p->language, "rust");
	/* The sizes are the artifact's, as first recorded. */
	cr_assert_eq(p->artifact_size, 300);
	cr_assert_eq(p->wasm_size, 70);
	store_prior_build_free(p);

	cr_assert_eq(store_deployment_find_build(st, other_key, &p), VIV_OK);
	cr_assert_str_eq(p->artifact, other);
	cr_assert_eq(p->config.mode, STORE_MODE_CGI);
	cr_assert_null(p->language);
	store_prior_build_free(p);
	store_prior_build_free(NULL);
	store_close(st);
}

Test(prior, passes_over_builds_whose_artifact_is_gone)
{
	struct store *st = test_open();
	struct store_prior_build *p = NULL;
	char key[65], kept[65], gone[65], *path;
	int64_t older;

	test_hash("key", key);
	test_hash("kept", kept);
	test_hash("gone", gone);
	older = deploy_keyed(st, "hello", key, kept, &test_cgi);
	deploy_keyed(st, "hello", key, gone, &test_cgi);
	path = store_artifact_path(st, gone, "so");
	cr_assert_eq(unlink(path), 0);
	free(path);

	cr_assert_eq(store_deployment_find_build(st, key, &p), VIV_OK);
	cr_assert_eq(p->deployment_id, older);
	cr_assert_str_eq(p->artifact, kept);
	store_prior_build_free(p);

	path = store_artifact_path(st, kept, "so");
	cr_assert_eq(unlink(path), 0);
	free(path);
	p = (void *)1;
	cr_assert_eq(store_deployment_find_build(st, key, &p), VIV_ERR_NOT_FOUND);
	cr_assert_null(p);
	store_close(st);
}

Test(prior, refuses_a_malformed_key)
{
	static const char upper[] =
	        "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";
	struct store *st = test_open();
	struct store_prior_build *p = NULL;

	cr_assert_eq(store_deployment_find_build(st, "abc", &p), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_find_build(st, NULL, &p), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_find_build(st, upper, &p), VIV_ERR_INVALID);
	cr_assert_null(p);
	store_close(st);
}

/* A builder in another process, waiting on the queue's notification, wakes
 * as soon as a deployment is queued, long before its poll interval. */
Test(deploy, queueing_wakes_a_waiter_in_another_process)
{
	struct store *st;
	int go[2], status = 0;
	uint64_t t0;
	char byte = 0;
	pid_t pid;

	cr_assert_eq(pipe(go), 0);
	/* Forked before this process opens any store. */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct store *child = NULL;
		char errbuf[256];
		uint32_t seen;

		close(go[0]);
		if (test_store_open_at(test_datadir, &child, errbuf, sizeof(errbuf)))
			_exit(2);
		seen = store_queue_generation(child);
		if (write(go[1], "r", 1) != 1)
			_exit(3);
		/* One wait of 30 s: only the notification ends it early. */
		store_queue_wait(child, seen, 30000);
		_exit(store_queue_generation(child) != seen ? 0 : 1);
	}
	close(go[1]);
	cr_assert_eq(read(go[0], &byte, 1), 1);
	close(go[0]);
	st = test_open();
	nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	t0 = viv_mono_ns();
	test_queue(st, "hello", "src");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	cr_assert_lt(viv_mono_ns() - t0, 5000000000ull);
	store_close(st);
}
