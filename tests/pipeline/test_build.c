/* Whole builds through the store: the C hello, a compile error, a WAT
 * module, a raw .wasm, refusals, identical uploads and artifact reuse, the
 * build key and the builder thread. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"
#include "viv_guest.h"

TestSuite(build, .init = t_store_setup, .fini = t_store_teardown, .timeout = 300);

static char *tar_of(const char *name, const struct t_entry *e, size_t n)
{
	char *path = viv_path_join(t_fx.work, name);

	t_archive(path, "tar", "gzip", e, n);
	return path;
}

/* Polls the store until a builder thread has finished deployment id (a
 * minute at most) and returns it. */
static struct store_deployment *wait_finished(int64_t id)
{
	struct store_deployment *d = NULL;

	for (int i = 0; i < 600; i++) {
		cr_assert_eq(store_deployment_get(t_fx.st, id, &d), VIV_OK);
		if (d->status == STORE_DEP_READY || d->status == STORE_DEP_FAILED)
			return d;
		store_deployment_free(d);
		usleep(100 * 1000);
	}
	cr_assert_fail("the builder did not finish deployment %lld", (long long)id);
	return NULL;
}

static char *hello_source(void)
{
	char *path = viv_path_join(VIV_SOURCE_DIR, "sdk/examples/c-hello/hello.c");
	char *text = t_read(path, NULL);

	cr_assert_not_null(text, "the c-hello example is missing");
	free(path);
	return text;
}

static void assert_no_build_dirs_left(void)
{
	char *builds = viv_path_join(t_fx.datadir, "builds");
	char **left = NULL;
	size_t n = 0;

	/* Whatever store/ calls the folder, nothing of ours may remain in it. */
	if (pipe_find_files(builds, NULL, 100, &left, &n) == VIV_OK)
		cr_assert_eq(n, 0, "left behind: %s", left[0]);
	pipe_strv_free(left, n);
	free(builds);
}

static void assert_timings(const struct store_deployment *d, const char *const *steps)
{
	for (size_t i = 0; steps[i]; i++) {
		char key[64];

		snprintf(key, sizeof(key), "\"%s\"", steps[i]);
		cr_assert(strstr(d->timings, key), "no %s timing in %s", steps[i], d->timings);
	}
}

Test(build, c_hello_is_ready_and_loads)
{
	static const char *const steps[] = {"unpack",   "manifest", "detect", "compile", "optimize",
	                                    "validate", "hash",     "wasm2c", "glue",    "cc",
	                                    "store",    "total",    NULL};
	char *src = hello_source();
	struct t_entry e[] = {{"c-hello/hello.c", 'f', src, 0}};
	char *tar = tar_of("hello.tar.gz", e, 1);
	struct store_deployment *d;
	char *so, *wasm;
	void *h;
	const struct viv_guest *g;
	struct store_app *app = NULL;

	d = t_build(t_queue("hello", tar));
	cr_assert_eq(d->status, STORE_DEP_READY, "failed: %s\n%s", d->error, d->log);
	cr_assert_str_eq(d->language, "c");
	cr_assert_str_eq(store_mode_name(d->config.mode), "cgi");
	cr_assert_eq(strlen(d->artifact), 64);
	cr_assert(strstr(d->log, "$ clang --target=wasm32-wasi --sysroot=/usr -O2 -c hello.c -o "),
	          "%s", d->log);
	cr_assert(strstr(d->log, "$ wasm-opt -O2 "), "%s", d->log);
	cr_assert(strstr(d->log, "$ wasm2c "), "%s", d->log);
	cr_assert(strstr(d->log, "main() found"), "%s", d->log);
	cr_assert_eq(d->config.limits.memory_mb, 128);
	assert_timings(d, steps);
	printf("c-hello timings: %s\n", d->timings);

	so = store_artifact_path(t_fx.st, d->artifact, "so");
	wasm = store_artifact_path(t_fx.st, d->artifact, "wasm");
	cr_assert_eq(access(so, R_OK), 0);
	cr_assert_eq(access(wasm, R_OK), 0);
	h = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(h, "%s", dlerror());
	g = dlsym(h, VIV_GUEST_SYMBOL);
	cr_assert_not_null(g);
	cr_assert_eq(g->abi, VIV_GUEST_ABI);
	cr_assert_eq(g->mode, VIV_GUEST_CGI);
	cr_assert_str_eq(g->hash, d->artifact);
	cr_assert_not_null(g->memory);
	cr_assert_not_null(g->entry);
	dlclose(h);

	cr_assert_eq(store_app_get(t_fx.st, "hello", &app), VIV_OK);
	cr_assert_eq(app->current_deployment, d->id);
	assert_no_build_dirs_left();
	store_app_free(app);
	store_deployment_free(d);
	free(so);
	free(wasm);
	free(tar);
	free(src);
}

Test(build, identical_upload_takes_over_the_earlier_build)
{
	char *src = hello_source();
	struct t_entry e[] = {{"hello.c", 'f', src, 0}};
	char *tar = tar_of("hello.tar.gz", e, 1);
	struct store_deployment *a, *b, *c;
	struct store_app *app = NULL;
	char line[160];

	a = t_build(t_queue("hello", tar));
	cr_assert_eq(a->status, STORE_DEP_READY, "%s", a->error);
	b = t_build(t_queue("hello", tar));
	cr_assert_eq(b->status, STORE_DEP_READY, "%s", b->error);
	snprintf(line, sizeof(line),
	         "identical upload: reusing the build of deployment %lld (c, "
	         "cgi mode, artifact %s)\n",
	         (long long)a->id, a->artifact);
	cr_assert(strstr(b->log, line), "%s", b->log);
	/* Nothing was unpacked or compiled. */
	cr_assert_null(strstr(b->log, "== unpack"), "%s", b->log);
	cr_assert_null(strstr(b->log, "$ clang"), "%s", b->log);
	cr_assert_null(strstr(b->timings, "\"compile\""), "%s", b->timings);
	cr_assert(strstr(b->timings, "\"total\""), "%s", b->timings);
	cr_assert_str_eq(b->artifact, a->artifact);
	cr_assert_eq(b->config.mode, a->config.mode);
	cr_assert_eq(b->config.limits.memory_mb, a->config.limits.memory_mb);
	cr_assert_eq(b->config.n_env, a->config.n_env);
	cr_assert_eq(b->config.n_outbound, a->config.n_outbound);
	cr_assert_str_eq(b->language, "c");
	cr_assert(b->current);
	cr_assert_eq(store_app_get(t_fx.st, "hello", &app), VIV_OK);
	cr_assert_eq(app->current_deployment, b->id);
	store_app_free(app);

	/* Another app uploading the same bytes gets the same build. */
	c = t_build(t_queue("other", tar));
	cr_assert_eq(c->status, STORE_DEP_READY, "%s", c->error);
	cr_assert(strstr(c->log, "identical upload: reusing the build of deployment"), "%s",
	          c->log);
	cr_assert_str_eq(c->artifact, a->artifact);
	assert_no_build_dirs_left();
	store_deployment_free(a);
	store_deployment_free(b);
	store_deployment_free(c);
	free(tar);
	free(src);
}

Test(build, same_module_from_another_upload_reuses_the_artifact)
{
	char *src = hello_source(), *commented;
	struct t_entry e[] = {{"hello.c", 'f', src, 0}};
	char *tar = tar_of("hello.tar.gz", e, 1), *tar2;
	struct store_deployment *a, *b;

	cr_assert_gt(
	        asprintf(&commented, "%s/* a comment changes the upload, not the module */\n", src),
	        0);
	e[0].data = commented;
	tar2 = tar_of("commented.tar.gz", e, 1);
	a = t_build(t_queue("hello", tar));
	cr_assert_eq(a->status, STORE_DEP_READY, "%s", a->error);
	b = t_build(t_queue("hello", tar2));
	cr_assert_eq(b->status, STORE_DEP_READY, "%s", b->error);
	cr_assert_null(strstr(b->log, "identical upload"), "%s", b->log);
	cr_assert(strstr(b->log, "$ clang"), "%s", b->log);
	cr_assert_str_eq(a->artifact, b->artifact);
	cr_assert(strstr(b->log, "already built; reusing it"), "%s", b->log);
	cr_assert_null(strstr(b->log, "$ wasm2c"), "%s", b->log);
	store_deployment_free(a);
	store_deployment_free(b);
	free(tar);
	free(tar2);
	free(commented);
	free(src);
}

Test(build, identical_upload_builds_again_when_the_artifact_is_gone)
{
	char *src = hello_source();
	struct t_entry e[] = {{"hello.c", 'f', src, 0}};
	char *tar = tar_of("hello.tar.gz", e, 1), *so;
	struct store_deployment *a, *b;

	a = t_build(t_queue("hello", tar));
	cr_assert_eq(a->status, STORE_DEP_READY, "%s", a->error);
	so = store_artifact_path(t_fx.st, a->artifact, "so");
	cr_assert_eq(unlink(so), 0);
	b = t_build(t_queue("hello", tar));
	cr_assert_eq(b->status, STORE_DEP_READY, "%s", b->error);
	cr_assert_null(strstr(b->log, "identical upload"), "%s", b->log);
	cr_assert(strstr(b->log, "$ wasm2c"), "%s", b->log);
	cr_assert_str_eq(b->artifact, a->artifact);
	cr_assert_eq(access(so, R_OK), 0);
	store_deployment_free(a);
	store_deployment_free(b);
	free(so);
	free(tar);
	free(src);
}

Test(build, identical_upload_of_a_failed_build_builds_again)
{
	struct t_entry bad[] = {{"hello.c", 'f', "int main(void) { syntax error }", 0}};
	char *tar = tar_of("bad.tar.gz", bad, 1);
	struct store_deployment *a, *b;

	a = t_build(t_queue("hello", tar));
	cr_assert_eq(a->status, STORE_DEP_FAILED);
	b = t_build(t_queue("hello", tar));
	cr_assert_eq(b->status, STORE_DEP_FAILED);
	cr_assert(strstr(b->log, "$ clang"), "%s", b->log);
	cr_assert_str_eq(b->error, a->error);
	store_deployment_free(a);
	store_deployment_free(b);
	free(tar);
}

Test(build, identical_upload_builds_again_when_its_static_files_are_gone)
{
	struct t_entry e[] = {
	        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
	        {"assets/index.html", 'f', "<h1>hello</h1>\n", 0},
	};
	char *tar = tar_of("site.tar.gz", e, 2), *tree, *hash;
	struct store_deployment *a, *b;

	a = t_build(t_queue("site", tar));
	cr_assert_eq(a->status, STORE_DEP_READY, "%s", a->error);
	cr_assert_not_null(a->config.assets);
	hash = strdup(a->config.assets);
	tree = store_assets_path(t_fx.st, hash);
	cr_assert_not_null(tree);
	cr_assert_eq(viv_rmtree(tree), VIV_OK);
	b = t_build(t_queue("site", tar));
	cr_assert_eq(b->status, STORE_DEP_READY, "%s", b->error);
	cr_assert(strstr(b->log, "its static files are gone: building again"), "%s", b->log);
	cr_assert(strstr(b->log, "$ clang"), "%s", b->log);
	cr_assert_eq(access(tree, R_OK), 0);
	store_deployment_free(a);
	store_deployment_free(b);
	free(tree);
	free(hash);
	free(tar);
}

/* pipe_build_key with cfg in a scratch folder under t_fx.work. */
static void key_of(const struct pipe_config *cfg, const char *upload, char hex[65])
{
	char *scratch = viv_path_join(t_fx.work, "keys"), *tmp = viv_path_join(scratch, "tmp");
	struct pipe_ctx ctx;
	char err[256] = "";

	cr_assert_eq(viv_mkdirs(tmp, 0700), VIV_OK);
	pipe_ctx_init(&ctx, cfg, scratch);
	cr_assert_eq(pipe_build_key(&ctx, upload, hex, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(strlen(hex), 64);
	pipe_ctx_free(&ctx);
	free(tmp);
	free(scratch);
}

Test(build, build_key_covers_the_upload_and_what_builds_it)
{
	static const char up1[] =
	        "1111111111111111111111111111111111111111111111111111111111111111";
	static const char up2[] =
	        "2222222222222222222222222222222222222222222222222222222222222222";
	struct pipe_config cfg = t_fx.cfg;
	char *sdk = viv_path_join(t_fx.work, "sdk");
	char base[65], again[65], other[65];
	struct pipe_ctx ctx;
	char err[256];

	key_of(&cfg, up1, base);
	key_of(&cfg, up1, again);
	cr_assert_str_eq(base, again);
	key_of(&cfg, up2, other);
	cr_assert_str_neq(base, other);

	cfg.limits_default.memory_mb++;
	key_of(&cfg, up1, other);
	cr_assert_str_neq(base, other, "the default memory limit is not in the key");
	cfg = t_fx.cfg;
	cfg.limits_max.wall_ms--;
	key_of(&cfg, up1, other);
	cr_assert_str_neq(base, other, "the wall time maximum is not in the key");

	/* An SDK is known by its contents. */
	cfg = t_fx.cfg;
	t_write(sdk, "rust/src/lib.rs", "pub fn hello() {}\n");
	cfg.sdk_dir = sdk;
	key_of(&cfg, up1, base);
	t_write(sdk, "rust/src/lib.rs", "pub fn hello() { }\n");
	key_of(&cfg, up1, other);
	cr_assert_str_neq(base, other, "an SDK edit is not in the key");
	t_write(sdk, "c/vivarium.h", "/* new */\n");
	key_of(&cfg, up1, again);
	cr_assert_str_neq(other, again, "a new SDK file is not in the key");

	/* No key without an upload hash. */
	pipe_ctx_init(&ctx, &cfg, t_fx.work);
	cr_assert_eq(pipe_build_key(&ctx, "abc", base, err, sizeof(err)), VIV_ERR_INVALID);
	cr_assert_str_eq(base, "");
	pipe_ctx_free(&ctx);
	free(sdk);
}

Test(build, c_compile_error_names_file_and_line)
{
	struct t_entry e[] = {
	        {"src/main.c", 'f', "#include <stdio.h>\nint main(void)\n{\n\treturn nope;\n}\n",
	         0},
	        {"README.md", 'f', "# bad\n", 0},
	};
	struct store_deployment *d = t_build_entries("bad", e, 2);
	struct store_app *app = NULL;

	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert_str_eq(d->error, "the C compiler reported errors; the build log has them with "
	                           "file and line");
	cr_assert(strstr(d->log, "src/main.c:4:9: error: use of undeclared identifier 'nope'"),
	          "%s", d->log);
	/* A failed first build leaves the app with nothing serving. */
	cr_assert_eq(store_app_get(t_fx.st, "bad", &app), VIV_OK);
	cr_assert_eq(app->current_deployment, 0);
	cr_assert(strstr(d->timings, "\"total\""), "%s", d->timings);
	assert_no_build_dirs_left();
	store_app_free(app);
	store_deployment_free(d);
}

Test(build, failure_keeps_the_previous_deployment_serving)
{
	char *src = hello_source();
	struct t_entry good[] = {{"hello.c", 'f', src, 0}};
	struct t_entry bad[] = {{"hello.c", 'f', "int main(void) { syntax error }", 0}};
	char *t1 = tar_of("good.tar.gz", good, 1), *t2 = tar_of("bad.tar.gz", bad, 1);
	struct store_deployment *a, *b;
	struct store_app *app = NULL;

	a = t_build(t_queue("hello", t1));
	cr_assert_eq(a->status, STORE_DEP_READY, "%s", a->error);
	b = t_build(t_queue("hello", t2));
	cr_assert_eq(b->status, STORE_DEP_FAILED);
	cr_assert_eq(store_app_get(t_fx.st, "hello", &app), VIV_OK);
	cr_assert_eq(app->current_deployment, a->id);
	store_app_free(app);
	store_deployment_free(a);
	store_deployment_free(b);
	free(t1);
	free(t2);
	free(src);
}

Test(build, c_reactor_with_run)
{
	struct t_entry e[] = {
	        {"handler.c", 'f',
	         "static volatile int hits;\n"
	         "void run(void) { hits++; }\n",
	         0},
	        {"vivarium.json", 'f',
	         "{\"name\": \"handler\", \"limits\": {\"memory_mb\": 16},"
	         " \"env\": {\"GREETING\": \"hi\"}}",
	         0},
	};
	struct store_deployment *d = t_build_entries("handler", e, 2);

	cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error, d->log);
	cr_assert_str_eq(store_mode_name(d->config.mode), "hostcall");
	cr_assert(strstr(d->log, "-mexec-model=reactor -Wl,--export=run"), "%s", d->log);
	cr_assert_eq(d->config.limits.memory_mb, 16);
	cr_assert_str_eq(store_deploy_config_env(&d->config, "GREETING"), "hi");
	store_deployment_free(d);
}

/* The first link of a kind asks the clang driver for its wasm-ld command;
 * later ones run wasm-ld directly, with their own objects and output. */
Test(build, c_links_run_wasm_ld_directly_once_learnt)
{
	static const char *const srcs[] = {
	        "#include <stdio.h>\nint main(void) { puts(\"one\"); return 0; }\n",
	        "#include <stdio.h>\nint main(void) { puts(\"two\"); return 0; }\n",
	        "void run(void) {}\n",
	        "static volatile int n;\nvoid run(void) { n++; }\n",
	};
	char *logs[4];

	for (size_t i = 0; i < 4; i++) {
		struct t_entry e[] = {{"a/main.c", 'f', srcs[i], 0},
		                      {"a/two.c", 'f', "int two(void) { return 2; }\n", 0}};
		struct store_deployment *d = t_build_entries(i < 2 ? "cmd" : "reactor", e, 2);

		cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error, d->log);
		cr_assert_str_eq(store_mode_name(d->config.mode), i < 2 ? "cgi" : "hostcall");
		logs[i] = strdup(d->log);
		store_deployment_free(d);
	}
	/* The first of each kind asked, the second did not, and wasm-ld got
	 * that build's objects and output. */
	for (size_t i = 0; i < 4; i += 2) {
		cr_assert(strstr(logs[i], "$ clang '-###' --target=wasm32-wasi"), "%s", logs[i]);
		cr_assert_null(strstr(logs[i + 1], "-###"), "%s", logs[i + 1]);
		cr_assert(strstr(logs[i + 1], "wasm-ld"), "%s", logs[i + 1]);
		cr_assert(strstr(logs[i + 1], " obj/0.o obj/1.o "), "%s", logs[i + 1]);
		cr_assert(strstr(logs[i + 1], " -o out/app.wasm"), "%s", logs[i + 1]);
		cr_assert(strstr(logs[i + 1], i == 0 ? "crt1-command.o" : "crt1-reactor.o"), "%s",
		          logs[i + 1]);
	}
	for (size_t i = 0; i < 4; i++)
		free(logs[i]);
}

Test(build, c_without_main_or_run)
{
	struct t_entry e[] = {{"lib.c", 'f', "int helper(int x) { return x + 1; }\n", 0}};
	struct store_deployment *d = t_build_entries("lib", e, 1);

	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "found neither main() (a WASI command, served as CGI) nor run() "
	                           "(a Terrarium-style handler)"),
	          "%s", d->error);
	store_deployment_free(d);
}

Test(build, wat_module)
{
	struct t_entry e[] = {
	        {"app.wat", 'f',
	         "(module\n"
	         "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	         "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
	         "  (memory 1)\n"
	         "  (data (i32.const 16) \"Content-Type: text/plain\\n\\nhi\\n\")\n"
	         "  (data (i32.const 0) \"\\10\\00\\00\\00\\1d\\00\\00\\00\")\n"
	         "  (func (export \"_start\")\n"
	         "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
	         " (i32.const 8)))))\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("wat", e, 1);

	cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error, d->log);
	cr_assert_str_eq(d->language, "wat");
	cr_assert_str_eq(store_mode_name(d->config.mode), "cgi");
	cr_assert(strstr(d->log, "$ wat2wasm app.wat -o "), "%s", d->log);
	store_deployment_free(d);
}

/* Terrarium's own template keeps its constants in a memory it does not
 * export and passes pointers to the host: the optimizer must not drop
 * them (wasm-opt -O2 alone removes the memory and its data). */
Test(build, a_private_memory_keeps_what_the_host_reads)
{
	struct t_entry e[] = {
	        {"app.wat", 'f',
	         "(module\n"
	         "  (import \"env\" \"hostcall_resp_set_body\"\n"
	         "    (func $set_body (param i32 i32 i32) (result i32)))\n"
	         "  (memory 1)\n"
	         "  (data (i32.const 100) \"kept-by-the-host\")\n"
	         "  (func (export \"run\")\n"
	         "    (drop (call $set_body (i32.const 0) (i32.const 100) (i32.const 16)))))\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("private", e, 1);
	char *path, *wasm;
	size_t len = 0;

	cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error, d->log);
	cr_assert(strstr(d->log, "exported as " PIPE_WASM_EXPOSED_MEMORY), "%s", d->log);
	path = store_artifact_path(t_fx.st, d->artifact, "wasm");
	wasm = t_read(path, &len);
	cr_assert_not_null(memmem(wasm, len, "kept-by-the-host", 16),
	                   "the optimizer dropped the data the host reads");
	free(wasm);
	free(path);
	store_deployment_free(d);
}

Test(build, wat_error_has_line_and_column)
{
	struct t_entry e[] = {
	        {"app.wat", 'f', "(module\n  (func (export \"run\") (i32.bogus)))\n", 0},
	};
	struct store_deployment *d = t_build_entries("wat", e, 1);

	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "wat2wasm reported errors in app.wat"), "%s", d->error);
	cr_assert(strstr(d->log, "app.wat:2:"), "%s", d->log);
	store_deployment_free(d);
}

Test(build, raw_wasm_upload)
{
	char *wasm = t_wat(t_fx.work, "raw.wasm", "(module (memory 1) (func (export \"run\")))");
	struct store_deployment *d = t_build(t_queue("raw", wasm));

	cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error, d->log);
	cr_assert_str_eq(d->language, "wasm");
	cr_assert_str_eq(store_mode_name(d->config.mode), "hostcall");
	store_deployment_free(d);
	free(wasm);
}

Test(build, unknown_imports_are_named)
{
	char *wasm = t_wat(t_fx.work, "imp.wasm",
	                   "(module (import \"env\" \"foo\" (func (param i32) (result i32)))"
	                   " (import \"env\" \"bar\" (func))"
	                   " (func (export \"_start\") (drop (call 0 (i32.const 1))) (call 1)))");
	struct store_deployment *d = t_build(t_queue("imp", wasm));

	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert_str_eq(d->error, "the module imports what Vivarium does not provide: env.foo "
	                           "(i32) -> i32, env.bar () -> ()");
	store_deployment_free(d);
	free(wasm);
}

Test(build, simd_is_refused_plainly)
{
	char *wasm = t_wat(t_fx.work, "simd.wasm",
	                   "(module (func (export \"run\") (drop (v128.const i32x4 1 2 3 4))))");
	struct store_deployment *d = t_build(t_queue("simd", wasm));

	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "wasm-opt rejected the module"), "%s", d->error);
	cr_assert(strstr(d->error, "SIMD"), "%s", d->error);
	store_deployment_free(d);
	free(wasm);
}

Test(build, garbage_and_traversal_uploads_fail_with_the_reason)
{
	char *junk = viv_path_join(t_fx.work, "junk");
	struct t_entry e[] = {{"../evil.c", 'f', "x", 0}};
	struct store_deployment *d;

	cr_assert_eq(viv_write_file_atomic(junk, "just some text", 14, 0644), VIV_OK);
	d = t_build(t_queue("junk", junk));
	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "the upload is not a tarball or a .wasm module (libarchive:"),
	          "%s", d->error);
	store_deployment_free(d);
	d = t_build_entries("evil", e, 1);
	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "'../evil.c' leaves the upload's folder"), "%s", d->error);
	store_deployment_free(d);
	free(junk);
}

Test(build, manifest_errors_name_the_field_or_file)
{
	struct t_entry bad[] = {
	        {"main.c", 'f', "int main(void){return 0;}", 0},
	        {"vivarium.json", 'f', "{\"limits\": {\"memory_mb\": 4096}}", 0},
	};
	struct t_entry rust[] = {{"Cargo.toml", 'f', "[package]\nname = \"x\"\n", 0}};
	struct store_deployment *d;

	d = t_build_entries("m", bad, 2);
	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert(strstr(d->error, "limits.memory_mb is 4096, above this server's maximum of 1024"),
	          "%s", d->error);
	store_deployment_free(d);
	d = t_build_entries("r", rust, 1);
	cr_assert_eq(d->status, STORE_DEP_FAILED);
	cr_assert_str_eq(d->language, "rust");
	cr_assert_str_eq(d->error, "cargo could not read Cargo.toml; the build log says what is "
	                           "wrong with it");
	cr_assert(strstr(d->log, "missing field `version`"), "%s", d->log);
	store_deployment_free(d);
}

/* Starts a builder thread, queues a module as app, wakes the builder only
 * when wake is set, and checks that the builder makes it ready. */
static void builder_builds(const char *app, bool wake)
{
	char *wasm = t_wat(t_fx.work, "raw.wasm", "(module (func (export \"_start\")))");
	struct pipe_builder *b = NULL;
	struct store_deployment *d;
	int64_t id;

	cr_assert_eq(pipe_builder_start(t_fx.datadir, &t_fx.cfg, &b), VIV_OK);
	id = t_queue(app, wasm);
	if (wake)
		pipe_builder_wake(b);
	d = wait_finished(id);
	cr_assert_eq(d->status, STORE_DEP_READY, "%s", d->error);
	store_deployment_free(d);
	pipe_builder_stop(b);
	free(wasm);
}

Test(build, builder_thread_builds_what_is_queued)
{
	builder_builds("bg", true);
}

Test(build, builder_finds_work_queued_without_a_wake)
{
	/* As if another process queued it: nobody wakes the builder. */
	builder_builds("quiet", false);
}

Test(build, builder_start_fails_on_a_bad_datadir)
{
	struct pipe_builder *b = (void *)1;

	cr_assert_neq(pipe_builder_start("/proc/nope/data", &t_fx.cfg, &b), VIV_OK);
	cr_assert_null(b);
	pipe_builder_stop(NULL);
}
