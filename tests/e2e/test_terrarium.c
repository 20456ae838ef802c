/* Guests written for Terrarium and Terrafirma, deployed unchanged on the real
 * vivd: a C guest as source, the same guest as a prebuilt .wasm, and a
 * WebAssembly text guest with Terrafirma's exported allocator; KV, outbound
 * requests to a local upstream, the allow list, static assets and requests
 * an app sends to itself. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "upstream.h"
#include "viv.h"

TestSuite(terrarium, .init = tsup_ofx_start, .fini = tsup_ofx_stop, .timeout = 300);

static char *guest(const char *file)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/runner/guests/%s", VIV_SOURCE_DIR, file);
	return tsup_read_file(path, NULL);
}

/* vivarium.json allowing the test upstream. */
static char *manifest(void)
{
	char *m;

	cr_assert(asprintf(&m,
	                   "{\"outbound\": [\"http://127.0.0.1:%u\"],"
	                   " \"env\": {\"GREETING\": \"hello from the manifest\"}}",
	                   tsup_upstream_port(tsup_ofx.up)) > 0);
	return m;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

static void deploy_files(const char *app, const struct tsup_file *f, size_t n)
{
	char *tgz;
	size_t len;
	json_t *d;

	tsup_tar(f, n, true, &tgz, &len);
	d = tsup_deploy_wait(&tsup_ofx.vivd, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s: %s\n%s", app, jstr(d, "error"),
	                 jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "mode"), "hostcall");
	json_decref(d);
	free(tgz);
}

/* GET path on app; checks the status and that the body holds want. */
static void says(const char *app, const char *path, long status, const char *want)
{
	struct tsup_resp r;

	cr_assert(tsup_app_get(&tsup_ofx.vivd, app, path, &r));
	cr_assert_eq(r.status, status, "%s%s: %ld %s", app, path, r.status, r.body);
	cr_assert_not_null(strstr(r.body, want), "%s%s: '%s' not in:\n%s", app, path, want, r.body);
	tsup_resp_free(&r);
}

static void c_guest_behaviour(const char *app)
{
	char path[512];

	says(app, "/echo?q=1", 201, "GET /echo?q=1 0:");
	says(app, "/echo", 201, "has x-real-ip");
	says(app, "/echo", 201, "has host");
	says(app, "/kv", 200, "count 1\n");
	says(app, "/kv", 200, "count 2\n");
	says(app, "/config", 200, "GREETING=hello from the manifest");
	snprintf(path, sizeof(path), "/fetch?http://127.0.0.1:%u/hello",
	         tsup_upstream_port(tsup_ofx.up));
	says(app, path, 200, "200 upstream says hi yes");
	/* Not in the allow list: fails as if unreachable. */
	says(app, "/fetch?http://example.com/", 200, "fetch failed");
	snprintf(path, sizeof(path), "/race?http://127.0.0.1:%u", tsup_upstream_port(tsup_ofx.up));
	says(app, path, 200, "first fast upstream says hi");
	says(app, "/misc", 200, "dns 127.0.0.1");
	says(app, "/panic", 500, "");
}

Test(terrarium, c_guest_from_source)
{
	char *src = guest("terrarium.c"), *m = manifest(), path[512];
	struct tsup_file f[] = {{"vivarium.json", m},
	                        {"main.c", src},
	                        {"assets/", NULL},
	                        {"assets/hello.txt", "a static hello\n"}};

	deploy_files("terra", f, 4);
	c_guest_behaviour("terra");
	/* Static assets are served at the root, before the app. */
	says("terra", "/hello.txt", 200, "a static hello");
	/* The app fetches its own asset through its own host name, and its own
	 * pages through a second instance, without the network. */
	snprintf(path, sizeof(path), "/fetch?https://terra.localhost/hello.txt");
	says("terra", path, 200, "200 a static hello");
	snprintf(path, sizeof(path), "/fetch?http://terra.localhost:%u/config",
	         tsup_ofx.vivd.apps_port);
	says("terra", path, 200, "GREETING=hello from the manifest");
	/* A trap after such a call is the caller's own, and only fails it. */
	snprintf(path, sizeof(path), "/fetch-then-trap?http://terra.localhost/config");
	says("terra", path, 500, "");
	says("terra", "/config", 200, "GREETING=hello from the manifest");
	free(src);
	free(m);
}

Test(terrarium, kv_survives_a_redeploy_and_belongs_to_its_app)
{
	char *src = guest("terrarium.c"), *m = manifest();
	struct tsup_file f[] = {{"vivarium.json", m}, {"main.c", src}};
	struct tsup_file g[] = {{"vivarium.json", m}, {"main.c", src}, {"README", "v2\n"}};

	deploy_files("counter", f, 2);
	says("counter", "/kv", 200, "count 1\n");
	says("counter", "/kv", 200, "count 2\n");
	deploy_files("counter", g, 3);
	says("counter", "/kv", 200, "count 3\n");
	/* Another app with the same code has its own keys. */
	deploy_files("other", f, 2);
	says("other", "/kv", 200, "count 1\n");
	free(src);
	free(m);
}

Test(terrarium, prebuilt_wasm_of_the_same_guest)
{
	char dir[] = "/tmp/viv-prebuilt-XXXXXX", src[128], wasm[128], *out = NULL, *bin, *m;
	const char *argv[] = {"clang",
	                      "--target=wasm32-wasi",
	                      "--sysroot=/usr",
	                      "-O2",
	                      "-mexec-model=reactor",
	                      "-Wl,--export=run",
	                      "-I" VIV_SOURCE_DIR "/sdk/c",
	                      src,
	                      "-o",
	                      wasm,
	                      NULL};
	size_t len;
	json_t *d;
	char *code = guest("terrarium.c");

	cr_assert_not_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/terrarium.c", dir);
	snprintf(wasm, sizeof(wasm), "%s/terrarium.wasm", dir);
	cr_assert_eq(viv_write_file_atomic(src, code, strlen(code), 0644), VIV_OK);
	cr_assert_eq(tsup_run(argv, NULL, &out), 0, "clang: %s", out);
	free(out);
	bin = tsup_read_file(wasm, &len);
	/* As a bare .wasm upload: no manifest, so nothing outbound. */
	d = tsup_deploy_wait(&tsup_ofx.vivd, "prebuilt", bin, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s\n%s", jstr(d, "error"), jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "language"), "wasm");
	json_decref(d);
	says("prebuilt", "/echo?x", 201, "GET /echo?x 0:");
	says("prebuilt", "/kv", 200, "count 1\n");
	says("prebuilt", "/fetch?http://127.0.0.1:1/hello", 200, "fetch failed");
	/* In a tarball with its manifest, it may reach the upstream. The
	 * module has NUL bytes, which tsup_tar's text files cannot hold, so the
	 * tar tool packs it. */
	m = manifest();
	{
		char mpath[160], tpath[160], *tgz;
		const char *tar[] = {"tar",           "-czf",           tpath, "-C", dir,
		                     "vivarium.json", "terrarium.wasm", NULL};
		size_t tl;

		snprintf(mpath, sizeof(mpath), "%s/vivarium.json", dir);
		snprintf(tpath, sizeof(tpath), "%s/app.tgz", dir);
		cr_assert_eq(viv_write_file_atomic(mpath, m, strlen(m), 0644), VIV_OK);
		cr_assert_eq(tsup_run(tar, NULL, &out), 0, "tar: %s", out);
		free(out);
		tgz = tsup_read_file(tpath, &tl);
		d = tsup_deploy_wait(&tsup_ofx.vivd, "prebuilt2", tgz, tl);
		cr_assert_str_eq(jstr(d, "status"), "ready", "%s", jstr(d, "error"));
		json_decref(d);
		free(tgz);
	}
	c_guest_behaviour("prebuilt2");
	viv_rmtree_or_log(dir);
	free(bin);
	free(code);
	free(m);
}

Test(terrarium, wat_guest_with_terrafirma_allocators)
{
	char *src = guest("terrafirma.wat");
	struct tsup_file f[] = {{"app.wat", src}};

	deploy_files("firma", f, 1);
	says("firma", "/some/where?x=1", 202, "GET /some/where?x=1");
	free(src);
}

Test(terrarium, unknown_imports_are_refused_at_deploy_time_by_name)
{
	static const char wat[] =
	        "(module\n"
	        "  (import \"env\" \"hostcall_teleport\" (func $t (param i32) (result i32)))\n"
	        "  (import \"env\" \"hostcall_debug\" (func $d (param i64)))\n"
	        "  (func (export \"run\") (drop (call $t (i32.const 1))) (call $d (i64.const "
	        "2))))\n";
	struct tsup_file f[] = {{"app.wat", wat}};
	char *tgz;
	size_t len;
	json_t *d;
	const char *err;

	tsup_tar(f, 1, true, &tgz, &len);
	d = tsup_deploy_wait(&tsup_ofx.vivd, "strange", tgz, len);
	err = jstr(d, "error");
	cr_assert_str_eq(jstr(d, "status"), "failed");
	cr_assert_not_null(strstr(err, "env.hostcall_teleport"), "%s", err);
	/* A known name with the wrong type is unknown too. */
	cr_assert_not_null(strstr(err, "env.hostcall_debug"), "%s", err);
	json_decref(d);
	free(tgz);
}

/* One worker: a guest waiting a second for its upstream must not delay
 * another app's requests on that worker. */
static void start_solo(void)
{
	const char *extra[] = {"--workers", "1", NULL};

	tsup_ofx_start_with(extra);
}

struct slow_call {
	char url[256];
	char host[128];
	long status;
	double ms;
};

static void *call_slow(void *arg)
{
	struct slow_call *c = arg;
	struct tsup_resp r;
	double t0 = tsup_now_ms();

	if (tsup_http("GET", c->url, c->host, NULL, NULL, 0, &r))
		c->status = r.status;
	c->ms = tsup_now_ms() - t0;
	tsup_resp_free(&r);
	return NULL;
}

Test(terrarium_solo, a_slow_upstream_does_not_delay_other_apps, .init = start_solo,
     .fini = tsup_ofx_stop, .timeout = 300)
{
	char *src = guest("terrarium.c"), *m = manifest(), *tgz;
	struct tsup_file f[] = {{"vivarium.json", m}, {"main.c", src}};
	struct slow_call c;
	struct tsup_resp r;
	pthread_t t;
	size_t len;
	json_t *d;
	double t0, worst = 0;
	int i;

	tsup_tar(f, 2, true, &tgz, &len);
	d = tsup_deploy_wait(&tsup_ofx.vivd, "waiter", tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready");
	json_decref(d);
	d = tsup_deploy_wait(&tsup_ofx.vivd, "quick", tgz, len);
	json_decref(d);
	memset(&c, 0, sizeof(c));
	snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%u/fetch?http://127.0.0.1:%u/slow?ms=1000",
	         tsup_ofx.vivd.apps_port, tsup_upstream_port(tsup_ofx.up));
	snprintf(c.host, sizeof(c.host), "waiter.localhost:%u", tsup_ofx.vivd.apps_port);
	cr_assert_eq(pthread_create(&t, NULL, call_slow, &c), 0);
	usleep(200000); /* the slow request is waiting on its upstream now */
	for (i = 0; i < 10; i++) {
		t0 = tsup_now_ms();
		cr_assert(tsup_app_get(&tsup_ofx.vivd, "quick", "/config", &r));
		cr_assert_eq(r.status, 200);
		tsup_resp_free(&r);
		if (tsup_now_ms() - t0 > worst)
			worst = tsup_now_ms() - t0;
	}
	pthread_join(t, NULL);
	cr_assert_eq(c.status, 200);
	cr_assert_geq(c.ms, 1000);
	fprintf(stderr, "other app's slowest request while an upstream took 1 s: %.1f ms\n", worst);
	cr_assert_lt(worst, 500, "another app waited %.0f ms behind a slow upstream", worst);
	free(tgz);
	free(src);
	free(m);
}

/* Terrarium's own WebAssembly-text template: constants in data segments of
 * a memory it does not export, pointers to them handed to the host, and no
 * allocator registered. The header it sets arrives with every value, and
 * reading a request header without an allocator fails quietly. */
static const char private_memory_wat[] =
        "(module\n"
        "  (import \"env\" \"hostcall_resp_set_header\"\n"
        "    (func $set_header (param i32 i32 i32 i32 i32) (result i32)))\n"
        "  (import \"env\" \"hostcall_req_get_header\"\n"
        "    (func $get_header (param i32 i32 i32 i32 i32)))\n"
        "  (memory 1)\n"
        "  (data (i32.const 16) \"X-Values\")\n"
        "  (data (i32.const 32) \"one\")\n"
        "  (data (i32.const 40) \"two\")\n"
        "  (data (i32.const 48) \"three\")\n"
        "  (data (i32.const 64) \"\\20\\00\\00\\00\\03\\00\\00\\00\\28\\00\\00\\00\\03\\00\\00\\00"
        "\\30\\00\\00\\00\\05\\00\\00\\00\")\n"
        "  (data (i32.const 96) \"user-agent\")\n"
        "  (func (export \"run\")\n"
        "    (call $get_header (i32.const 128) (i32.const 132) (i32.const 0) (i32.const 96)"
        " (i32.const 10))\n"
        "    (drop (call $set_header (i32.const 0) (i32.const 16) (i32.const 8) (i32.const 64)"
        " (i32.const 3)))))\n";

Test(terrarium, a_private_memory_sets_a_header_with_every_value)
{
	struct tsup_file f[] = {{"app.wat", private_memory_wat}};
	struct tsup_resp r;
	const char *want[] = {"one", "two", "three"};
	char *h;

	deploy_files("private", f, 1);
	cr_assert(tsup_app_get(&tsup_ofx.vivd, "private", "/", &r), "%s", r.error);
	cr_assert_eq(r.status, 200, "%s", r.body);
	h = tsup_resp_header(&r, "x-values");
	cr_assert_not_null(h, "no X-Values header:\n%s", r.headers);
	free(h);
	for (size_t i = 0; i < 3; i++) {
		char line[64];

		snprintf(line, sizeof(line), "x-values: %s\r\n", want[i]);
		cr_assert(strcasestr(r.headers, line), "X-Values lacks %s:\n%s", want[i],
		          r.headers);
	}
	tsup_resp_free(&r);
}

/* Terrarium's KVStore: insert stores whatever was there (a counter), upsert
 * only when the key is absent (the first writer's value stays). Each
 * request may land on either worker, and one is killed half way. */
static const char kv_terms_c[] =
        "#include <stdio.h>\n"
        "#include <stdlib.h>\n"
        "#include <string.h>\n"
        "#include <http_hostcalls.h>\n"
        "\n"
        "void run(void)\n"
        "{\n"
        "\tchar *v = NULL, *first = NULL, mine[32], out[160];\n"
        "\tsize_t vl = 0, fl = 0;\n"
        "\tlong n = 0;\n"
        "\tbool count_new, first_new;\n"
        "\n"
        "\thostcall_init_mm(malloc, free);\n"
        "\tif (hostcall_kvstore_get(&v, &vl, \"count\", 5))\n"
        "\t\tn = atol(v);\n"
        "\tfree(v);\n"
        "\tsnprintf(mine, sizeof(mine), \"%ld\", ++n);\n"
        "\tcount_new = hostcall_kvstore_insert(\"count\", 5, mine, strlen(mine));\n"
        "\tsnprintf(mine, sizeof(mine), \"request %ld\", n);\n"
        "\tfirst_new = hostcall_kvstore_upsert(\"first\", 5, mine, strlen(mine));\n"
        "\thostcall_kvstore_get(&first, &fl, \"first\", 5);\n"
        "\tsnprintf(out, sizeof(out), \"count %ld %d first %.*s %d\\n\", n, count_new,\n"
        "\t\t (int)fl, first ? first : \"\", first_new);\n"
        "\tfree(first);\n"
        "\thostcall_resp_set_body(RESPONSE_OUTGOING, out, strlen(out));\n"
        "}\n";

Test(terrarium, kv_insert_replaces_and_upsert_keeps_across_workers)
{
	struct tsup_file f[] = {{"kv.c", kv_terms_c}};

	deploy_files("kvterms", f, 1);
	for (int i = 1; i <= 12; i++) {
		char want[96];

		if (i == 6) {
			pid_t workers[8];

			cr_assert_gt(tsup_children_named(tsup_ofx.vivd.pid, "worker", workers, 8),
			             0);
			kill(workers[0], SIGKILL);
		}
		snprintf(want, sizeof(want), "count %d %d first request 1 %d\n", i, i == 1, i == 1);
		says("kvterms", "/", 200, want);
	}
}
