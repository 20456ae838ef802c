/* Apps as the API shows and changes them: their state, deletion with the
 * garbage collection of files, rollback, deployment pages and progress, KV
 * listings and the build counters. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static struct store *st;

static void setup(void)
{
	store_test_setup();
	st = test_open();
}

static void teardown(void)
{
	store_close(st);
	store_test_teardown();
}

TestSuite(app_admin, .init = setup, .fini = teardown);

static bool exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

static bool artifact_there(const char *hash, const char *ext)
{
	char *p = store_artifact_path(st, hash, ext);
	bool there = exists(p);

	free(p);
	return there;
}

/* Queues and claims a deployment of app: its id. */
static int64_t claim(const char *app, const char *src)
{
	int64_t id = test_queue(st, app, src), claimed = 0;

	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	return id;
}

/* A ready deployment of app with the artifact (.so and .wasm) and, when
 * assets is not NULL, a static-asset tree of that hash. */
static int64_t ready_with(const char *app, const char *hash, const char *assets)
{
	char file[256], src[200];
	struct store_deploy_config config = test_cgi;
	struct store_build b = {.artifact = hash, .config = &config, .artifact_size = 7};
	int64_t id;

	if (!store_artifact_exists(st, hash))
		test_put_so(st, hash);
	snprintf(src, sizeof(src), "%s/wasm-src", test_datadir);
	test_write(src, "\0asm");
	cr_assert_eq(store_artifact_put(st, hash, "wasm", src), VIV_OK);
	if (assets) {
		snprintf(src, sizeof(src), "%s/assets-src", test_datadir);
		cr_assert_eq(viv_mkdirs(src, 0755), VIV_OK);
		snprintf(file, sizeof(file), "%.200s/index.html", src);
		test_write(file, "<p>hi");
		cr_assert_eq(store_assets_put(st, assets, src), VIV_OK);
		config.assets = (char *)assets;
	}
	id = claim(app, app);
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
	return id;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static struct store_app *app_of(const char *name)
{
	struct store_app *a = NULL;

	cr_assert_eq(store_app_get(st, name, &a), VIV_OK, "no app %s", name);
	return a;
}

Test(app_admin, state_language_and_updated_at)
{
	struct store_app *a, *list = NULL;
	char hash[65];
	int64_t id, failed, before = viv_now_ms();
	size_t n = 0;

	cr_assert_eq(store_app_ensure(st, "empty", &id), VIV_OK);
	a = app_of("empty");
	cr_assert_eq(a->state, STORE_APP_EMPTY);
	cr_assert_eq(a->updated_at, 0);
	cr_assert_null(a->language);
	store_app_free(a);

	failed = claim("broken", "src");
	cr_assert_eq(store_deployment_failed(st, failed, "it broke."), VIV_OK);
	a = app_of("broken");
	cr_assert_eq(a->state, STORE_APP_FAILED);
	cr_assert_eq(a->current_deployment, 0);
	cr_assert_geq(a->updated_at, before);
	store_app_free(a);

	test_hash("serving", hash);
	id = claim("web", "src");
	cr_assert_eq(store_deployment_set_language(st, id, "rust"), VIV_OK);
	cr_assert_eq(store_deployment_ready(st, id,
	                                    &(struct store_build){.artifact = hash,
	                                                          .config = &test_cgi,
	                                                          .artifact_size = 1}),
	             VIV_ERR_NOT_FOUND);
	test_put_so(st, hash);
	cr_assert_eq(store_deployment_ready(st, id,
	                                    &(struct store_build){.artifact = hash,
	                                                          .config = &test_cgi,
	                                                          .artifact_size = 1}),
	             VIV_OK);
	/* A failed build after it does not change what the app does. */
	failed = claim("web", "bad");
	cr_assert_eq(store_deployment_failed(st, failed, "it broke."), VIV_OK);
	test_queue(st, "broken", "again");

	cr_assert_eq(store_app_list(st, &list, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[2].name, "web");
	cr_assert_eq(list[2].state, STORE_APP_SERVING);
	cr_assert_str_eq(list[2].language, "rust");
	cr_assert_str_eq(store_app_state_name(list[2].state), "serving");
	cr_assert_str_eq(store_app_state_name(list[0].state), "building");
	store_app_list_free(list, n);
}

Test(app_admin, delete_removes_everything_and_collects_files)
{
	struct store_log line = {.stream = "stdout", .message = "hi"};
	struct store_app_deleted done;
	struct store_app *a = NULL;
	char own[65], shared[65], own_assets[65], shared_assets[65], *p, *upload;
	int64_t hello, other, queued;
	uint64_t gen;
	bool was_new;

	test_hash("own", own);
	test_hash("shared", shared);
	test_hash("own assets", own_assets);
	test_hash("shared assets", shared_assets);
	ready_with("hello", own, own_assets);
	ready_with("hello", shared, shared_assets);
	ready_with("other", shared, shared_assets);
	queued = test_queue(st, "hello", "queued");
	upload = store_upload_path(st, queued);
	cr_assert(exists(upload));
	hello = app_of("hello")->id;
	cr_assert_eq(store_kv_put(st, hello, "k", 1, "v", 1, &was_new), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "hello", "A", "1"), VIV_OK);
	cr_assert_eq(store_secret_set(st, "hello", "S", "2"), VIV_OK);
	line.app_id = hello;
	cr_assert_eq(store_logs_append(st, &line, 1), VIV_OK);
	other = app_of("other")->id;
	cr_assert_eq(store_kv_put(st, other, "k", 1, "v", 1, &was_new), VIV_OK);

	gen = store_routes_generation(st);
	cr_assert_eq(store_app_delete(st, "hello", &done), VIV_OK);
	cr_assert_eq(done.deployments, 3);
	cr_assert_eq(done.artifacts_removed, 1);
	cr_assert_eq(done.assets_removed, 1);
	cr_assert_gt(store_routes_generation(st), gen);
	cr_assert_eq(store_app_get(st, "hello", &a), VIV_ERR_NOT_FOUND);
	cr_assert_not(exists(upload));
	free(upload);
	cr_assert_not(artifact_there(own, "so"));
	cr_assert_not(artifact_there(own, "wasm"));
	cr_assert(artifact_there(shared, "so"));
	cr_assert(artifact_there(shared, "wasm"));
	p = store_assets_path(st, own_assets);
	cr_assert_not(exists(p));
	free(p);
	p = store_assets_path(st, shared_assets);
	cr_assert(exists(p));
	free(p);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM kv"), 1);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM app_config"), 0);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM secrets"), 0);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM app_logs"), 0);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments"), 1);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM artifacts"), 1);
	/* No leftovers of the removal in the assets folder. */
	p = viv_path_join(store_datadir(st), "assets");
	cr_assert_eq(count_entries(p), 1);
	free(p);

	cr_assert_eq(store_app_delete(st, "hello", NULL), VIV_ERR_NOT_FOUND);
	/* The last user goes: so do the files. */
	cr_assert_eq(store_app_delete(st, "other", &done), VIV_OK);
	cr_assert_eq(done.artifacts_removed, 1);
	cr_assert_eq(done.assets_removed, 1);
	cr_assert_not(artifact_there(shared, "so"));
	cr_assert_eq(test_sql_int("SELECT count(*) FROM kv"), 0);
	/* A name can be used again. */
	ready_with("hello", own, NULL);
}

Test(app_admin, ready_refuses_a_missing_assets_tree)
{
	char hash[65], assets[65];
	struct store_deploy_config config = test_cgi;
	int64_t id;

	test_hash("artifact", hash);
	test_hash("never stored", assets);
	test_put_so(st, hash);
	id = claim("hello", "src");
	config.assets = assets;
	cr_assert_eq(store_deployment_ready(
	                     st, id, &(struct store_build){.artifact = hash, .config = &config}),
	             VIV_ERR_NOT_FOUND);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE status = 'ready'"), 0);
}

Test(app_admin, rollback)
{
	char h1[65], h2[65], h3[65];
	int64_t d1, d2, d3, failed, queued, cur = 0, prev = 0;
	uint64_t gen;

	test_hash("one", h1);
	test_hash("two", h2);
	test_hash("three", h3);
	d1 = ready_with("hello", h1, NULL);
	failed = claim("hello", "bad");
	cr_assert_eq(store_deployment_failed(st, failed, "broken."), VIV_OK);
	d2 = ready_with("hello", h2, NULL);
	d3 = ready_with("hello", h3, NULL);
	ready_with("other", h1, NULL);
	queued = test_queue(st, "hello", "later");

	gen = store_routes_generation(st);
	cr_assert_eq(store_app_rollback(st, "hello", 0, &cur, &prev), VIV_OK);
	cr_assert_eq(cur, d2);
	cr_assert_eq(prev, d3);
	cr_assert_eq(store_routes_generation(st), gen + 1);
	cr_assert_eq(store_app_rollback(st, "hello", 0, &cur, &prev), VIV_OK);
	cr_assert_eq(cur, d1);
	cr_assert_eq(prev, d2);
	/* Nothing older is ready. */
	cr_assert_eq(store_app_rollback(st, "hello", 0, &cur, &prev), VIV_ERR_INVALID);
	cr_assert_eq(cur, 0);
	/* Forward again, by id. */
	cr_assert_eq(store_app_rollback(st, "hello", d3, &cur, &prev), VIV_OK);
	cr_assert_eq(cur, d3);
	cr_assert_eq(prev, d1);
	gen = store_routes_generation(st);
	cr_assert_eq(store_app_rollback(st, "hello", d3, &cur, &prev), VIV_OK);
	cr_assert_eq(prev, d3);
	cr_assert_eq(store_routes_generation(st), gen);
	cr_assert_eq(store_app_rollback(st, "hello", failed, &cur, &prev), VIV_ERR_INVALID);
	cr_assert_eq(store_app_rollback(st, "hello", queued, &cur, &prev), VIV_ERR_INVALID);
	cr_assert_eq(store_app_rollback(st, "other", d1, &cur, &prev), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_app_rollback(st, "nobody", 0, &cur, &prev), VIV_ERR_NOT_FOUND);
	cr_assert_eq(test_sql_int("SELECT current_deployment FROM apps WHERE name = 'hello'"), d3);
}

Test(app_admin, deployment_pages_deployed_by_and_progress)
{
	struct store_deployment *ds = NULL;
	struct store_dep_progress p;
	char *tmp = NULL, hash[65];
	int64_t ids[5], id;
	size_t n = 0;

	for (int i = 0; i < 5; i++)
		ids[i] = test_queue(st, "hello", "x");
	cr_assert_eq(store_deployment_list(st, "hello", 0, 2, &ds, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(ds[0].id, ids[4]);
	cr_assert_eq(ds[1].id, ids[3]);
	store_deployment_list_free(ds, n);
	cr_assert_eq(store_deployment_list(st, "hello", ids[3], 2, &ds, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(ds[0].id, ids[2]);
	cr_assert_null(ds[0].deployed_by);
	store_deployment_list_free(ds, n);
	cr_assert_eq(store_deployment_list(st, "hello", ids[0], 2, &ds, &n), VIV_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(ds);

	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	test_write(tmp, "x");
	test_hash("x", hash);
	cr_assert_eq(store_deployment_create_by(st, "hello", "ci", tmp, hash, 1, &id), VIV_OK);
	free(tmp);
	cr_assert_eq(store_deployment_list(st, "hello", 0, 1, &ds, &n), VIV_OK);
	cr_assert_str_eq(ds[0].deployed_by, "ci");
	cr_assert_eq(ds[0].artifact_size, 0);
	store_deployment_list_free(ds, n);

	cr_assert_eq(store_deployment_log(st, ids[0], "== unpack\nh\xc3\xa9llo\n"), VIV_OK);
	cr_assert_eq(store_deployment_progress(st, ids[0], 0, 1 << 20, &p), VIV_OK);
	cr_assert_eq(p.status, STORE_DEP_QUEUED);
	cr_assert_eq(p.log_size, 17);
	cr_assert_eq(p.tail_len, 17);
	free(p.log_tail);
	/* Offsets are bytes, even inside a character. */
	cr_assert_eq(store_deployment_progress(st, ids[0], 12, 4, &p), VIV_OK);
	cr_assert_eq(p.tail_len, 4);
	cr_assert_eq(memcmp(p.log_tail, "\xa9llo", 4), 0);
	free(p.log_tail);
	cr_assert_eq(store_deployment_progress(st, ids[0], 17, 100, &p), VIV_OK);
	cr_assert_eq(p.tail_len, 0);
	cr_assert_str_eq(p.log_tail, "");
	free(p.log_tail);
	cr_assert_eq(store_deployment_progress(st, 999, 0, 100, &p), VIV_ERR_NOT_FOUND);
}

Test(app_admin, kv_list_by_prefix_after_and_bytes)
{
	struct store_kv_key *keys = NULL;
	const char *names[] = {"a", "ab", "abc", "b", "user:1", "user:2"};
	int64_t app = 0, other = 0;
	size_t n = 0;
	bool was_new;

	cr_assert_eq(store_app_ensure(st, "hello", &app), VIV_OK);
	cr_assert_eq(store_app_ensure(st, "other", &other), VIV_OK);
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(
		        store_kv_put(st, app, names[i], strlen(names[i]), "12345", i, &was_new),
		        VIV_OK);
	cr_assert_eq(store_kv_put(st, app, "\xff\xff", 2, "v", 1, &was_new), VIV_OK);
	cr_assert_eq(store_kv_put(st, app, "\xff\x00z", 3, "v", 1, &was_new), VIV_OK);
	cr_assert_eq(store_kv_put(st, other, "a", 1, "v", 1, &was_new), VIV_OK);

	cr_assert_eq(store_kv_list(st, app, NULL, 0, NULL, 0, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 8);
	cr_assert_str_eq(keys[0].key, "a");
	cr_assert_eq(keys[2].size, 2);
	cr_assert_eq(keys[6].len, 3);
	cr_assert_eq(memcmp(keys[6].key, "\xff\x00z", 3), 0);
	store_kv_list_free(keys, n);

	cr_assert_eq(store_kv_list(st, app, "a", 1, NULL, 0, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 3);
	store_kv_list_free(keys, n);
	cr_assert_eq(store_kv_list(st, app, "a", 1, "ab", 2, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(keys[0].key, "abc");
	store_kv_list_free(keys, n);
	cr_assert_eq(store_kv_list(st, app, "user:", 5, NULL, 0, 1, &keys, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(keys[0].key, "user:1");
	store_kv_list_free(keys, n);
	/* A prefix of 0xff bytes has no end but the last key. */
	cr_assert_eq(store_kv_list(st, app, "\xff", 1, NULL, 0, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 2);
	store_kv_list_free(keys, n);
	cr_assert_eq(store_kv_list(st, app, "\xff\xff", 2, NULL, 0, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 1);
	store_kv_list_free(keys, n);
	cr_assert_eq(store_kv_list(st, app, "zzz", 3, NULL, 0, 100, &keys, &n), VIV_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(keys);
}

Test(app_admin, build_counters_follow_outcomes)
{
	struct store_build_metrics m;
	char hash[65];
	int64_t failed;

	cr_assert_eq(store_build_metrics(st, &m), VIV_OK);
	cr_assert_eq(m.ready + m.failed, 0);
	cr_assert_eq(m.le[0], 0.1);
	cr_assert_eq(m.le[STORE_BUILD_BUCKETS - 1], 600);
	test_hash("a", hash);
	ready_with("hello", hash, NULL);
	failed = claim("hello", "bad");
	cr_assert_eq(store_deployment_failed(st, failed, "broken."), VIV_OK);
	/* Failed while still queued: counted from its upload. */
	failed = test_queue(st, "hello", "worse");
	cr_assert_eq(store_deployment_failed(st, failed, "broken."), VIV_OK);
	claim("other", "busy");
	test_queue(st, "hello", "waiting");

	cr_assert_eq(store_build_metrics(st, &m), VIV_OK);
	cr_assert_eq(m.ready, 1);
	cr_assert_eq(m.failed, 2);
	cr_assert_eq(m.le_count[STORE_BUILD_BUCKETS - 1], 3);
	cr_assert_geq(m.ready_seconds, 0);
	cr_assert_eq(m.queued, 1);
	cr_assert_eq(m.building, 1);
}
