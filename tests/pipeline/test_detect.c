/* Language detection, file finding and globbing. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"

static char *root;
static struct pipe_config cfg;
static char err[1024];

static void setup(void)
{
	root = t_tmpdir();
	t_config(&cfg, false);
}

static void teardown(void)
{
	viv_rmtree_or_log(root);
	free(root);
}

TestSuite(detect, .init = setup, .fini = teardown);

static const char *detected(void)
{
	const struct pipe_toolchain *t = NULL;
	struct pipe_manifest m;

	memset(&m, 0, sizeof(m));
	if (pipe_detect(root, &m, &t, err, sizeof(err)) != VIV_OK)
		return NULL;
	return t->ops->name;
}

Test(detect, languages_in_order)
{
	cr_assert_null(detected());
	cr_assert(strstr(err, "found nothing to build"), "%s", err);
	t_write(root, "mod/app.wasm", "\0asm");
	cr_assert_str_eq(detected(), "wasm");
	t_write(root, "app.wat", "(module)");
	cr_assert_str_eq(detected(), "wat");
	t_write(root, "src/deep/x.c", "int x;");
	cr_assert_str_eq(detected(), "c");
	t_write(root, "asconfig.json", "{}");
	cr_assert_str_eq(detected(), "assemblyscript");
	t_write(root, "Cargo.toml", "[package]");
	cr_assert_str_eq(detected(), "rust");
}

Test(detect, cpp_counts_as_c_and_assembly_folder_as_assemblyscript)
{
	t_write(root, "main.cpp", "int main(){}");
	cr_assert_str_eq(detected(), "c");
	t_write(root, "assembly/index.ts", "export function run(): void {}");
	cr_assert_str_eq(detected(), "assemblyscript");
}

Test(detect, manifest_language_wins)
{
	const struct pipe_toolchain *t = NULL;
	struct pipe_manifest m;

	memset(&m, 0, sizeof(m));
	m.language = "wat";
	t_write(root, "main.c", "int main(void){return 0;}");
	cr_assert_eq(pipe_detect(root, &m, &t, err, sizeof(err)), VIV_OK);
	cr_assert_str_eq(t->ops->name, "wat");
}

/* A fake rustc in the scratch folder, which the sandbox sees: it runs, but
 * its sysroot has no wasm32-wasi standard library. */
static char *fake_rustc(void)
{
	char *path = viv_path_join(root, "fake-rustc");

	t_write(root, "fake-rustc", "#!/bin/sh\necho /nonexistent-sysroot\n");
	cr_assert_eq(chmod(path, 0755), 0);
	return path;
}

Test(detect, missing_toolchains_say_what_to_install)
{
	struct pipe_ctx ctx;
	struct pipe_manifest m;
	struct pipe_project p = {&ctx, NULL, &m, NULL};
	const struct pipe_toolchain *rust = pipe_toolchain_find("rust");
	const struct pipe_toolchain *as = pipe_toolchain_find("assemblyscript");
	char *wasm = (void *)1, *rustc = NULL, *tmp = viv_path_join(root, "tmp");
	struct pipe_config here = cfg;

	memset(&m, 0, sizeof(m));
	cr_assert_eq(viv_mkdirs(tmp, 0755), VIV_OK);
	here.tool_dir = tmp; /* no asc in it */
	pipe_ctx_init(&ctx, &here, root);
	p.root = root;
	p.out_dir = tmp;
	t_write(root, "Cargo.toml", "[package]\nname = \"x\"\nversion = \"0.1.0\"\n");
	t_write(root, "assembly/index.ts", "export function run(): void {}\n");
	cr_assert_not_null(rust);
	cr_assert_not_null(as);

	cr_assert_eq(setenv("VIV_RUSTC", "/nonexistent/rustc", 1), 0);
	cr_assert_eq(rust->ops->build(rust->ctx, &p, &wasm, err, sizeof(err)), VIV_ERR_UNSUPPORTED);
	cr_assert_null(wasm);
	cr_assert(strstr(err, "there is no /nonexistent/rustc"), "%s", err);
	cr_assert(strstr(err, "rustc, cargo and libstd-rust-dev-wasm32"), "%s", err);

	rustc = fake_rustc();
	cr_assert_eq(setenv("VIV_RUSTC", rustc, 1), 0);
	cr_assert_eq(rust->ops->build(rust->ctx, &p, &wasm, err, sizeof(err)), VIV_ERR_UNSUPPORTED);
	cr_assert(strstr(err, "has no standard library for wasm32-wasi"), "%s", err);
	cr_assert(strstr(err, "libstd-rust-dev-wasm32"), "%s", err);
	unsetenv("VIV_RUSTC");

	cr_assert_eq(as->ops->build(as->ctx, &p, &wasm, err, sizeof(err)), VIV_ERR_UNSUPPORTED);
	cr_assert_null(wasm);
	cr_assert(strstr(err, "AssemblyScript builds are not set up on this server "
	                      "(asc " PIPE_ASC_VERSION),
	          "%s", err);
	cr_assert(strstr(err, "scripts/setup.sh"), "%s", err);
	cr_assert_null(pipe_toolchain_find("cobol"));
	pipe_ctx_free(&ctx);
	free(rustc);
	free(tmp);
}

Test(detect, find_files_is_sorted_and_recursive)
{
	static const char *const c[] = {".c", NULL};
	char **v = NULL;
	size_t n = 0;

	t_write(root, "b.c", "");
	t_write(root, "a/z.c", "");
	t_write(root, "a/b/y.c", "");
	t_write(root, "a/readme.md", "");
	t_write(root, "c", "");
	cr_assert_eq(pipe_find_files(root, c, 100, &v, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(v[0], "a/b/y.c");
	cr_assert_str_eq(v[1], "a/z.c");
	cr_assert_str_eq(v[2], "b.c");
	pipe_strv_free(v, n);
	cr_assert_eq(pipe_find_files(root, c, 2, &v, &n), VIV_ERR_TOO_BIG);
}

/* Folders nested more than 64 deep are passed over, and that is no error. */
Test(detect, find_files_passes_over_folders_too_deep)
{
	char rel[256] = "";
	char **v = NULL;
	size_t n = 0;

	for (int i = 0; i < 64; i++)
		strcat(rel, "d/");
	strcat(rel, "x.c");
	t_write(root, rel, "");
	strcpy(rel + 2 * 64, "d/y.c");
	t_write(root, rel, "");
	cr_assert_eq(pipe_find_files(root, NULL, 100, &v, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert(strstr(v[0], "/x.c"), "%s", v[0]);
	pipe_strv_free(v, n);
}

Test(detect, glob_matches_relative_patterns)
{
	char *pats[] = {"src/*.c", "main.c", "src/a.c"};
	char *none[] = {"lib/*.c"};
	char **v = NULL;
	size_t n = 0;

	t_write(root, "src/b.c", "");
	t_write(root, "src/a.c", "");
	t_write(root, "main.c", "");
	cr_assert_eq(pipe_glob(root, pats, 3, &v, &n, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(v[0], "src/a.c");
	cr_assert_str_eq(v[1], "src/b.c");
	cr_assert_str_eq(v[2], "main.c");
	pipe_strv_free(v, n);
	cr_assert_eq(pipe_glob(root, none, 1, &v, &n, err, sizeof(err)), VIV_ERR_INVALID);
	cr_assert(strstr(err, "'lib/*.c' matches no file"), "%s", err);
}

Test(detect, glob_root_with_special_characters)
{
	char *odd = viv_path_join(root, "my[app]*");
	char *pats[] = {"*.c"};
	char **v = NULL;
	size_t n = 0;

	t_write(odd, "x.c", "");
	cr_assert_eq(pipe_glob(odd, pats, 1, &v, &n, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0], "x.c");
	pipe_strv_free(v, n);
	free(odd);
}

Test(detect, relpath_safe)
{
	cr_assert(pipe_relpath_safe("src/*.c"));
	cr_assert(pipe_relpath_safe("assets/"));
	cr_assert_not(pipe_relpath_safe("/etc"));
	cr_assert_not(pipe_relpath_safe("a/../b"));
	cr_assert_not(pipe_relpath_safe(".."));
	cr_assert_not(pipe_relpath_safe("./a"));
	cr_assert_not(pipe_relpath_safe("a//b"));
	cr_assert_not(pipe_relpath_safe(""));
}

Test(detect, relpath)
{
	static const char *const cases[][3] = {
	        {"/a/b", "/a/b/c/d.o", "c/d.o"},
	        {"/a/b/src", "/a/b/obj/0.o", "../obj/0.o"},
	        {"/a/b/src/app", "/a/b/out/app.wasm", "../../out/app.wasm"},
	        {"/a/b", "/a/b", "."},
	        {"/a/b/", "/a/bc/x", "../bc/x"},
	        {"/", "/usr/bin", "usr/bin"},
	};
	char *rel = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(pipe_relpath(cases[i][0], cases[i][1], &rel), VIV_OK);
		cr_assert_str_eq(rel, cases[i][2], "from %s to %s", cases[i][0], cases[i][1]);
		free(rel);
	}
	cr_assert_eq(pipe_relpath("a", "/b", &rel), VIV_ERR_INVALID);
}
