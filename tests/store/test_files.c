/* Tests of the files in the data directory (uploads, build directories,
 * artifacts) and of the routes generation shared between stores. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(artifacts, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(uploads, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(routes, .init = store_test_setup, .fini = store_test_teardown);

static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* The names in a directory, sorted and joined with spaces. */
static char *listing(const char *dir)
{
	char names[64][256], *out;
	size_t n = 0, i, j;
	struct dirent *de;
	DIR *d = opendir(dir);

	cr_assert_not_null(d, "cannot list %s", dir);
	for (;;) {
		de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cr_assert_lt(n, 64);
		snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(d);
	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char t[256];

			memcpy(t, names[j], sizeof(t));
			memcpy(names[j], names[j - 1], sizeof(t));
			memcpy(names[j - 1], t, sizeof(t));
		}
	}
	out = calloc(1, 64 * 257 + 1);
	for (i = 0; i < n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, names[i]);
	}
	return out;
}

Test(artifacts, put_places_file_by_hash)
{
	struct store *st = test_open();
	char hash[65], src[256], want[256], shard[256];
	char *path, *data, *names;

	test_hash("optimized wasm", hash);
	snprintf(src, sizeof(src), "%s/build.so", test_datadir);
	test_write(src, "shared object bytes");
	cr_assert_not(store_artifact_exists(st, hash));
	cr_assert_eq(store_artifact_put(st, hash, "so", src), VIV_OK);
	cr_assert(store_artifact_exists(st, hash));

	path = store_artifact_path(st, hash, "so");
	snprintf(want, sizeof(want), "%s/artifacts/%.2s/%s.so", store_datadir(st), hash, hash);
	cr_assert_str_eq(path, want);
	data = test_read(path);
	cr_assert_str_eq(data, "shared object bytes");
	free(data);
	/* The source stays where it was. */
	cr_assert(exists(src));

	/* A second put leaves the first file as it is. */
	test_write(src, "different bytes");
	cr_assert_eq(store_artifact_put(st, hash, "so", src), VIV_OK);
	data = test_read(path);
	cr_assert_str_eq(data, "shared object bytes");
	free(data);
	free(path);

	cr_assert_eq(store_artifact_put(st, hash, "wasm", src), VIV_OK);
	snprintf(shard, sizeof(shard), "%s/artifacts/%.2s", test_datadir, hash);
	names = listing(shard);
	snprintf(want, sizeof(want), "%s.so %s.wasm", hash, hash);
	/* No temporary file is left beside them. */
	cr_assert_str_eq(names, want);
	free(names);
	store_close(st);
}

Test(artifacts, rejects_bad_names)
{
	struct store *st = test_open();
	char hash[65], upper[65], src[256];
	char *names;

	test_hash("x", hash);
	strcpy(upper, hash);
	for (size_t i = 0; upper[i]; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 'a' + 'A');
	snprintf(src, sizeof(src), "%s/src", test_datadir);
	test_write(src, "bytes");

	cr_assert_eq(store_artifact_put(st, "../../../../etc/passwd", "so", src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, upper, "so", src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, hash + 1, "so", src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, hash, "sh", src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, hash, "so/../../x", src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, hash, NULL, src), VIV_ERR_INVALID);
	cr_assert_eq(store_artifact_put(st, NULL, "so", src), VIV_ERR_INVALID);
	cr_assert_null(store_artifact_path(st, "../x", "so"));
	cr_assert_null(store_artifact_path(st, hash, "txt"));
	cr_assert_not(store_artifact_exists(st, "../x"));

	/* A missing source leaves nothing behind. */
	cr_assert_eq(store_artifact_put(st, hash, "so", "/nonexistent/src"), VIV_ERR_NOT_FOUND);
	cr_assert_not(store_artifact_exists(st, hash));
	snprintf(src, sizeof(src), "%s/artifacts", test_datadir);
	names = listing(src);
	/* Only the empty shard directory may have been made. */
	cr_assert(strcmp(names, "") == 0 || strlen(names) == 2, "artifacts: %s", names);
	free(names);
	store_close(st);
}

/* What a runner host that fetches an artifact checks it against is
 * recorded with it, and an artifact recorded without (built before these
 * were kept) gets them from the next build that makes it. */
Test(artifacts, records_the_sha256_and_platform_hosts_check)
{
	struct store *st = test_open();
	struct store_artifact_info info;
	char hash[65], sum[65], other[65];
	struct store_build b = {.config = &test_hostcall, .artifact_size = 100, .wasm_size = 50};
	int64_t id, claimed = 0;

	test_hash("recorded", hash);
	test_hash("so bytes", sum);
	cr_assert_eq(store_artifact_info(st, hash, &info), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_artifact_info(st, "../x", &info), VIV_ERR_INVALID);
	test_deploy(st, "old", hash);
	cr_assert_eq(store_artifact_info(st, hash, &info), VIV_OK);
	cr_assert_str_eq(info.so_sha256, "");
	cr_assert_str_eq(info.platform, "");
	cr_assert_eq(info.so_size, 100);

	id = test_queue(st, "new", "new");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	b.artifact = hash;
	b.so_sha256 = sum;
	b.platform = "x86_64-linux-gnu glibc 2.36";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
	cr_assert_eq(store_artifact_info(st, hash, &info), VIV_OK);
	cr_assert_str_eq(info.so_sha256, sum);
	cr_assert_str_eq(info.platform, "x86_64-linux-gnu glibc 2.36");

	/* Once recorded, another build's word does not change them. */
	test_hash("other bytes", other);
	id = test_queue(st, "new", "again");
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	b.so_sha256 = other;
	b.platform = "aarch64-linux-gnu glibc 2.36";
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
	cr_assert_eq(store_artifact_info(st, hash, &info), VIV_OK);
	cr_assert_str_eq(info.so_sha256, sum);
	cr_assert_str_eq(info.platform, "x86_64-linux-gnu glibc 2.36");
	store_close(st);
}

Test(uploads, build_dirs_are_fresh_and_private)
{
	struct store *st = test_open();
	char *a = NULL, *b = NULL, *names, prefix[256];
	struct stat sb;

	cr_assert_eq(store_build_dir(st, NULL, 12, &a), VIV_OK);
	cr_assert_eq(store_build_dir(st, NULL, 12, &b), VIV_OK);
	cr_assert_str_neq(a, b);
	snprintf(prefix, sizeof(prefix), "%s/builds/12-", store_datadir(st));
	cr_assert_eq(strncmp(a, prefix, strlen(prefix)), 0, "%s", a);
	cr_assert_eq(stat(a, &sb), 0);
	cr_assert(S_ISDIR(sb.st_mode));
	cr_assert_eq(sb.st_mode & 0777, 0700);
	names = listing(a);
	cr_assert_str_eq(names, "");
	free(names);
	cr_assert_eq(viv_rmtree(a), VIV_OK);
	cr_assert_eq(viv_rmtree(b), VIV_OK);
	free(a);
	free(b);
	store_close(st);
}

Test(uploads, tmp_paths_and_upload_path)
{
	struct store *st = test_open();
	char *a = NULL, *b = NULL, *p, want[256];

	cr_assert_eq(store_upload_tmp(st, &a), VIV_OK);
	cr_assert_eq(store_upload_tmp(st, &b), VIV_OK);
	cr_assert_str_neq(a, b);
	snprintf(want, sizeof(want), "%s/uploads/tmp-%ld-", store_datadir(st), (long)getpid());
	cr_assert_eq(strncmp(a, want, strlen(want)), 0, "%s", a);
	cr_assert_not(exists(a));
	p = store_upload_path(st, 42);
	snprintf(want, sizeof(want), "%s/uploads/42", store_datadir(st));
	cr_assert_str_eq(p, want);
	free(p);
	free(a);
	free(b);
	store_close(st);
}

Test(uploads, open_removes_abandoned_tmp_files)
{
	struct store *st = test_open();
	char dead[256], old[256], kept[256], other[256];
	char *live = NULL;
	struct timespec times[2] = {{.tv_sec = time(NULL) - 2 * 24 * 3600}, {0}};
	pid_t pid;
	int status;

	/* A process that has exited. */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);

	snprintf(dead, sizeof(dead), "%s/uploads/tmp-%ld-aaaa", test_datadir, (long)pid);
	test_write(dead, "left by a crash");
	cr_assert_eq(store_upload_tmp(st, &live), VIV_OK);
	test_write(live, "being received");
	snprintf(old, sizeof(old), "%s/uploads/tmp-%ld-bbbb", test_datadir, (long)getpid());
	test_write(old, "stalled for days");
	times[1] = times[0];
	cr_assert_eq(utimensat(AT_FDCWD, old, times, 0), 0);
	snprintf(kept, sizeof(kept), "%s/uploads/7", test_datadir);
	test_write(kept, "a queued upload");
	snprintf(other, sizeof(other), "%s/uploads/tmp-garbage", test_datadir);
	test_write(other, "fresh, without a pid");
	store_close(st);

	st = test_open();
	cr_assert_not(exists(dead));
	cr_assert_not(exists(old));
	cr_assert(exists(live));
	cr_assert(exists(kept));
	cr_assert(exists(other));
	free(live);
	store_close(st);
}

Test(routes, generation_seen_by_other_store)
{
	struct store *a = test_open();
	struct store *b = test_open();
	char hash[65];
	uint64_t before = store_routes_generation(b);

	test_hash("art", hash);
	test_deploy(a, "hello", hash);
	cr_assert_eq(store_routes_generation(b), before + 1);
	cr_assert_eq(store_routes_generation(a), before + 1);
	store_close(a);
	store_close(b);

	/* It survives a reopen: it is in the file, not in the process. */
	a = test_open();
	cr_assert_eq(store_routes_generation(a), before + 1);
	store_close(a);
}

Test(routes, generation_seen_across_processes)
{
	struct store *st;
	char hash[65], byte = 0;
	int go[2];
	uint64_t before;
	pid_t pid;
	int status;

	cr_assert_eq(pipe(go), 0);
	/* Forked before this process opens any store. */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct store *child = NULL;
		struct store_build b = {.config = &test_cgi, .artifact_size = 1, .wasm_size = 1};
		char errbuf[256], src[256];
		int64_t id = 0, claimed = 0;
		char *tmp = NULL;

		close(go[1]);
		if (read(go[0], &byte, 1) != 1)
			_exit(2);
		if (test_store_open_at(test_datadir, &child, errbuf, sizeof(errbuf)))
			_exit(3);
		test_hash("child artifact", hash);
		b.artifact = hash;
		snprintf(src, sizeof(src), "%s/child.so", test_datadir);
		if (store_upload_tmp(child, &tmp) || viv_write_file_atomic(tmp, "x", 1, 0600) ||
		    viv_write_file_atomic(src, "so", 2, 0600))
			_exit(4);
		if (store_deployment_create(child, "child", tmp, hash, 1, &id) ||
		    store_deployment_claim(child, &claimed) || claimed != id ||
		    store_artifact_put(child, hash, "so", src) ||
		    store_deployment_ready(child, id, &b))
			_exit(5);
		store_close(child);
		free(tmp);
		_exit(0);
	}
	close(go[0]);
	st = test_open();
	before = store_routes_generation(st);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	cr_assert_eq(store_routes_generation(st), before + 1);
	store_close(st);
}

Test(routes, load_lists_only_serving_apps)
{
	struct store *st = test_open();
	struct store_route *routes = (void *)1;
	char one[65], two[65];
	int64_t b_id, a_id;
	size_t n = 9;

	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 0);
	store_routes_free(routes, n);

	test_hash("one", one);
	test_hash("two", two);
	b_id = test_deploy(st, "bravo", one);
	a_id = test_deploy(st, "alpha", two);
	test_queue(st, "charlie", "not built yet");
	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(routes[0].app, "alpha");
	cr_assert_eq(routes[0].deployment_id, a_id);
	cr_assert_str_eq(routes[0].artifact, two);
	cr_assert_eq(routes[0].config.mode, STORE_MODE_HOSTCALL);
	cr_assert_eq(routes[0].config.limits.memory_mb, VIV_LIMIT_MEMORY_MB_DEFAULT);
	cr_assert_eq(routes[0].config.n_env, 0);
	cr_assert_eq(routes[0].config.n_outbound, 0);
	cr_assert_null(routes[0].config.assets);
	cr_assert_eq(routes[0].n_app_env, 0);
	cr_assert_str_eq(routes[1].app, "bravo");
	cr_assert_eq(routes[1].deployment_id, b_id);
	cr_assert_gt(routes[1].app_id, 0);
	store_routes_free(routes, n);
	store_close(st);
}

/* A ready deployment that is no longer current keeps a route of its own
 * (its preview address), with its app's settings and secrets as they are
 * now; one that is not ready has none. */
Test(routes, route_of_an_older_deployment)
{
	struct store *st = test_open();
	struct store_route *r = NULL;
	char one[65], two[65];
	int64_t first, second, queued;

	test_hash("one", one);
	test_hash("two", two);
	first = test_deploy(st, "hello", one);
	cr_assert_eq(store_app_config_set(st, "hello", "GREETING", "hi"), VIV_OK);
	cr_assert_eq(store_secret_set(st, "hello", "GREETING", "psst"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "hello", "COLOR", "blue"), VIV_OK);
	second = test_deploy(st, "hello", two);
	queued = test_queue(st, "hello", "later");

	cr_assert_eq(store_route_of_deployment(st, first, &r), VIV_OK);
	cr_assert_str_eq(r->app, "hello");
	cr_assert_eq(r->deployment_id, first);
	cr_assert_str_eq(r->artifact, one);
	cr_assert_eq(r->config.mode, STORE_MODE_HOSTCALL);
	cr_assert_eq(r->n_app_env, 2);
	cr_assert_str_eq(r->app_env[0].name, "COLOR");
	cr_assert_str_eq(r->app_env[0].value, "blue");
	cr_assert_str_eq(r->app_env[1].name, "GREETING");
	cr_assert_str_eq(r->app_env[1].value, "psst");
	store_routes_free(r, 1);
	cr_assert_eq(store_route_of_deployment(st, second, &r), VIV_OK);
	cr_assert_str_eq(r->artifact, two);
	store_routes_free(r, 1);
	cr_assert_eq(store_route_of_deployment(st, queued, &r), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_route_of_deployment(st, 9999, &r), VIV_ERR_NOT_FOUND);
	store_close(st);
}

/* A builder on another machine (another data folder, so another shared
 * page) of the same PostgreSQL database learns of queued work from the
 * server at once, not at its next look a second later; on SQLite the
 * database is in the data folder, and so is the word it waits on. */
struct waiter {
	struct store *st;
	uint32_t seen;
	double waited_ms;
};

static void *wait_for_work(void *arg)
{
	struct waiter *w = arg;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	store_queue_wait(w->st, w->seen, 10000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	w->waited_ms =
	        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	return NULL;
}

Test(routes, queued_work_wakes_a_builder_of_another_data_folder)
{
	struct store *st = test_open(), *other = NULL;
	char dir[] = "/tmp/viv-store-other-XXXXXX", err[256];
	struct waiter w = {0};
	pthread_t t;

	if (!test_is_pg())
		cr_skip_test("on SQLite every builder shares the data folder");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(store_open_db(dir, test_db_url, &other, err, sizeof(err)), VIV_OK, "%s", err);
	w.st = other;
	w.seen = store_queue_generation(other);
	/* Listening before the work is queued, as an idle builder is. */
	store_queue_wait(other, w.seen, 150);
	cr_assert_eq(pthread_create(&t, NULL, wait_for_work, &w), 0);
	usleep(300000);
	test_queue(st, "elsewhere", "queued on another machine");
	pthread_join(t, NULL);
	cr_assert_lt(w.waited_ms, 2000, "the builder waited %.0f ms of its 10 s", w.waited_ms);
	cr_assert_gt(w.waited_ms, 250, "it did not wait for the work: %.0f ms", w.waited_ms);
	store_close(other);
	store_close(st);
	viv_rmtree_or_log(dir);
}
