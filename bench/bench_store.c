/* The store's hot paths on both databases, side by side: what a runner
 * does per request (token check, KV put and get, a batch of log lines, a
 * routes reload) and a builder per build (queue, claim, ready). SQLite in a
 * scratch data folder is the reference; PostgreSQL runs when a URL is
 * given. It prints microseconds per operation and asserts nothing.
 *
 *   bench_store [ITERATIONS] [postgres://...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "viv.h"

#define APPS 50

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void check(enum viv_err e, const char *what)
{
	if (e) {
		fprintf(stderr, "bench_store: %s: %s\n", what, viv_strerror(e));
		exit(1);
	}
}

struct figures {
	double token, kv_put, kv_get, logs, routes, build;
};

static void queue_one(struct store *st, const char *app, int i, int64_t *id)
{
	char *tmp = NULL, body[32], hash[65];
	int n = snprintf(body, sizeof(body), "upload %d", i);

	check(store_upload_tmp(st, &tmp), "upload path");
	check(viv_write_file_atomic(tmp, body, (size_t)n, 0600), "upload");
	viv_sha256_hex(body, (size_t)n, hash);
	check(store_deployment_create(st, app, tmp, hash, n, id), "create");
	free(tmp);
}

static void run(const char *datadir, const char *url, int iters, struct figures *f)
{
	struct store_deploy_config cfg = {.mode = STORE_MODE_CGI};
	struct store_build b = {.config = &cfg, .artifact_size = 1, .wasm_size = 1};
	struct store_route *routes = NULL;
	struct store_token *t = NULL;
	struct store_log lines[10];
	char err[512], *token = NULL, *val = NULL, hash[65], so[512], key[32];
	struct store *st = NULL;
	int64_t app_id = 0, id = 0, got = 0;
	size_t n = 0;
	bool was_new;
	double t0;

	check(store_open_db(datadir, url, &st, err, sizeof(err)), err);
	check(store_token_create(st, "bench", STORE_SCOPE_ADMIN, NULL, 0, &token, NULL), "token");
	viv_sha256_hex("artifact", 8, hash);
	snprintf(so, sizeof(so), "%s/bench.so", datadir);
	check(viv_write_file_atomic(so, "so", 2, 0600), "so");
	check(store_artifact_put(st, hash, "so", so), "artifact");
	b.artifact = hash;
	for (int a = 0; a < APPS; a++) {
		char app[16];

		snprintf(app, sizeof(app), "app%d", a);
		queue_one(st, app, a, &id);
		check(store_deployment_claim(st, &got), "claim");
		check(store_deployment_ready(st, got, &b), "ready");
		check(store_app_config_set(st, app, "GREETING", "hello"), "config");
	}
	check(store_app_ensure(st, "app0", &app_id), "app");
	check(store_sync_relaxed(st), "relaxed");

	t0 = now_us();
	for (int i = 0; i < iters; i++) {
		check(store_token_auth(st, token, &t), "auth");
		store_token_free(t);
	}
	f->token = (now_us() - t0) / iters;
	t0 = now_us();
	for (int i = 0; i < iters; i++) {
		int k = snprintf(key, sizeof(key), "key%d", i % 100);
		check(store_kv_put(st, app_id, key, (size_t)k, "value", 5, &was_new), "put");
	}
	f->kv_put = (now_us() - t0) / iters;
	t0 = now_us();
	for (int i = 0; i < iters; i++) {
		int k = snprintf(key, sizeof(key), "key%d", i % 100);
		check(store_kv_get(st, app_id, key, (size_t)k, &val, &n), "get");
		free(val);
	}
	f->kv_get = (now_us() - t0) / iters;
	for (int i = 0; i < 10; i++)
		lines[i] = (struct store_log){
		        .app_id = app_id, .stream = "access", .message = "GET / 200 0.10 ms"};
	t0 = now_us();
	for (int i = 0; i < iters; i++)
		check(store_logs_append(st, lines, 10), "logs");
	f->logs = (now_us() - t0) / iters;
	t0 = now_us();
	for (int i = 0; i < iters / 10 + 1; i++) {
		check(store_routes_load(st, &routes, &n), "routes");
		store_routes_free(routes, n);
	}
	f->routes = (now_us() - t0) / (iters / 10 + 1);
	t0 = now_us();
	for (int i = 0; i < iters / 10 + 1; i++) {
		queue_one(st, "built", i, &id);
		check(store_deployment_claim(st, &got), "claim");
		check(store_deployment_ready(st, got, &b), "ready");
	}
	f->build = (now_us() - t0) / (iters / 10 + 1);
	free(token);
	store_close(st);
}

static void row(const char *name, double lite, double pg, const char *url)
{
	if (url)
		printf("%-44s %10.1f %12.1f\n", name, lite, pg);
	else
		printf("%-44s %10.1f %12s\n", name, lite, "-");
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 1000;
	const char *url = argc > 2 ? argv[2] : NULL;
	char lite[] = "/tmp/viv-bench-store-XXXXXX", pg[] = "/tmp/viv-bench-store-XXXXXX";
	struct figures a = {0}, p = {0};

	if (iters < 10 || !mkdtemp(lite) || (url && !mkdtemp(pg))) {
		fprintf(stderr, "usage: bench_store [ITERATIONS >= 10] [postgres://...]\n");
		return 2;
	}
	viv_log_level(VIV_WARN);
	run(lite, NULL, iters, &a);
	if (url)
		run(pg, url, iters, &p);
	printf("store operations, microseconds each (%d iterations; %d apps routed)\n", iters,
	       APPS);
	printf("%-44s %10s %12s\n", "", "SQLite", url ? "PostgreSQL" : "");
	row("token check (API, each request)", a.token, p.token, url);
	row("KV put, new or not (runner)", a.kv_put, p.kv_put, url);
	row("KV get (runner)", a.kv_get, p.kv_get, url);
	row("10 log lines in one transaction (runner)", a.logs, p.logs, url);
	row("routes reload, 50 apps (runner)", a.routes, p.routes, url);
	row("queue + claim + ready (API and builder)", a.build, p.build, url);
	viv_rmtree_or_log(lite);
	if (url)
		viv_rmtree_or_log(pg);
	return 0;
}
