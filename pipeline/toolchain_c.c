/* The C toolchain: clang for wasm32-wasi with Debian's wasi-libc, one
 * object per source, then a WASI command (main) or a reactor that exports
 * run (a Terrarium-style handler). */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define C_SOURCES_MAX 4096
#define C_FAILED_FILES_MAX 10

static const char *const c_target[] = {"--target=wasm32-wasi", "--sysroot=/usr"};

static bool c_detect(void *tctx, const char *root)
{
	static const char *const suffixes[] = {".c", ".cc", ".cpp", NULL};
	char **files = NULL;
	size_t n = 0;
	enum viv_err err;

	(void)tctx;
	err = pipe_find_files(root, suffixes, C_SOURCES_MAX, &files, &n);
	pipe_strv_free(files, n);
	return err == VIV_ERR_TOO_BIG || (!err && n > 0);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

static enum viv_err c_sources(const struct pipe_project *p, char ***out, size_t *n_out,
			      char *err, size_t errlen)
{
	static const char *const c_only[] = {".c", NULL};
	static const char *const cxx[] = {".cc", ".cpp", NULL};
	char **files = NULL;
	size_t n = 0;
	enum viv_err e;

	if (p->manifest->n_sources > 0) {
		e = pipe_glob(p->root, p->manifest->sources, p->manifest->n_sources, &files, &n,
			      err, errlen);
		if (e)
			return e;
		for (size_t i = 0; i < n; i++) {
			if (!ends_with(files[i], ".c")) {
				viv_errf(err, errlen,
					 "vivarium.json: build.sources matches '%.100s', which is "
					 "not a .c file; only C sources are compiled",
					 files[i]);
				pipe_strv_free(files, n);
				return VIV_ERR_INVALID;
			}
		}
	} else {
		e = pipe_find_files(p->root, c_only, C_SOURCES_MAX, &files, &n);
		if (e == VIV_ERR_TOO_BIG)
			viv_errf(err, errlen, "the upload holds more than %d .c files",
				 C_SOURCES_MAX);
		if (e)
			return e;
	}
	if (n == 0) {
		char **other = NULL;
		size_t n_other = 0;

		pipe_find_files(p->root, cxx, 1, &other, &n_other);
		pipe_strv_free(other, n_other);
		free(files);
		viv_errf(err, errlen, "%s",
			 n_other > 0 ? "found C++ sources but no .c file; C++ builds are not "
				       "available on this server yet"
				     : "found no .c file to compile");
		return VIV_ERR_INVALID;
	}
	*out = files;
	*n_out = n;
	return VIV_OK;
}

/* Compiles src (relative to the root) into obj (relative to the scratch
 * directory), in the root so that errors read "src/main.c:3:5: error". */
static enum viv_err c_compile(const struct pipe_project *p, const char *src, const char *obj,
			      bool *failed, char *err, size_t errlen)
{
	const struct pipe_config *cfg = p->ctx->cfg;
	const char **argv;
	char *sdk_inc = NULL, *obj_abs = NULL, *obj_rel = NULL;
	size_t n = 0;
	struct pipe_exit ex;
	enum viv_err e;

	*failed = false;
	argv = calloc(16 + p->manifest->n_cflags, sizeof(*argv));
	if (cfg->sdk_dir)
		sdk_inc = viv_path_join(cfg->sdk_dir, "c");
	obj_abs = viv_path_join(p->ctx->scratch, obj);
	if (!argv || !obj_abs || (cfg->sdk_dir && !sdk_inc)) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = pipe_relpath(p->root, obj_abs, &obj_rel);
	if (e)
		goto out;
	argv[n++] = "clang";
	argv[n++] = c_target[0];
	argv[n++] = c_target[1];
	argv[n++] = "-O2";
	argv[n++] = "-c";
	argv[n++] = src;
	argv[n++] = "-o";
	argv[n++] = obj_rel;
	argv[n++] = "-I.";
	argv[n++] = "-Iinclude";
	if (sdk_inc) {
		char *flag;
		if (asprintf(&flag, "-I%s", sdk_inc) < 0) {
			e = VIV_ERR_NOMEM;
			goto out;
		}
		free(sdk_inc);
		sdk_inc = flag;
		argv[n++] = sdk_inc;
	}
	/* Each manifest flag is one argv entry, checked when the manifest
	 * was read; no shell ever sees them. */
	for (size_t i = 0; i < p->manifest->n_cflags; i++)
		argv[n++] = p->manifest->cflags[i];
	argv[n] = NULL;
	e = pipe_run(p->ctx, p->root, argv, &ex, err, errlen);
	if (!e && ex.code != 0)
		*failed = true;
out:
	free(argv);
	free(sdk_inc);
	free(obj_abs);
	free(obj_rel);
	return e;
}

/* What the objects (relative to the scratch directory) define, from
 * llvm-nm: a main (WASI command) or run (reactor). */
static enum viv_err c_entry_points(const struct pipe_project *p, char **objs, size_t n,
				   bool *has_main, bool *has_run, char *err, size_t errlen)
{
	const char **argv;
	char *out = NULL, *line, *save = NULL;
	enum viv_err e;

	*has_main = *has_run = false;
	argv = calloc(n + 4, sizeof(*argv));
	if (!argv)
		return VIV_ERR_NOMEM;
	argv[0] = "llvm-nm";
	argv[1] = "--defined-only";
	argv[2] = "--extern-only";
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = objs[i];
	e = pipe_run_capture(p->ctx, p->ctx->scratch, argv, &out, err, errlen);
	free(argv);
	if (e)
		return e;
	/* Lines are "ADDRESS TYPE NAME"; "T" is a defined function. */
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char addr[64], type[8], name[256];

		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3 || strcmp(type, "T"))
			continue;
		if (strcmp(name, "main") == 0 || strcmp(name, "__main_argc_argv") == 0)
			*has_main = true;
		else if (strcmp(name, "run") == 0)
			*has_run = true;
	}
	free(out);
	return VIV_OK;
}

static enum viv_err c_link(const struct pipe_project *p, char **objs, size_t n, bool reactor,
			   const char *wasm, char *err, size_t errlen)
{
	const char **argv;
	char *wasm_rel = NULL;
	size_t k = 0;
	enum viv_err e;

	e = pipe_relpath(p->ctx->scratch, wasm, &wasm_rel);
	if (e)
		return e;
	argv = calloc(n + 10, sizeof(*argv));
	if (!argv) {
		free(wasm_rel);
		return VIV_ERR_NOMEM;
	}
	argv[k++] = "clang";
	argv[k++] = c_target[0];
	argv[k++] = c_target[1];
	if (reactor) {
		argv[k++] = "-mexec-model=reactor";
		argv[k++] = "-Wl,--export=run";
	}
	for (size_t i = 0; i < n; i++)
		argv[k++] = objs[i];
	argv[k++] = "-o";
	argv[k++] = wasm_rel;
	argv[k] = NULL;
	e = pipe_run_ok(p->ctx, p->ctx->scratch, argv, err, errlen);
	free(argv);
	free(wasm_rel);
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
			 "linking failed; the build log has the linker's message (often a "
			 "function that is declared but defined nowhere)");
	return e;
}

static enum viv_err c_build(void *tctx, const struct pipe_project *p, char **wasm_out,
			    char *err, size_t errlen)
{
	char **srcs = NULL, **objs = NULL;
	char *objdir = NULL, *wasm = NULL;
	size_t n = 0, n_objs = 0, failed_files = 0;
	bool has_main, has_run;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	e = c_sources(p, &srcs, &n, err, errlen);
	if (e)
		return e;
	objdir = viv_path_join(p->ctx->scratch, "obj");
	objs = calloc(n + 1, sizeof(*objs));
	if (!objdir || !objs) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = viv_mkdirs(objdir, 0755);
	if (e)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bool failed;

		if (asprintf(&objs[i], "obj/%zu.o", i) < 0) {
			objs[i] = NULL;
			e = VIV_ERR_NOMEM;
			goto out;
		}
		n_objs = i + 1;
		e = c_compile(p, srcs[i], objs[i], &failed, err, errlen);
		if (e)
			goto out;
		if (failed && ++failed_files >= C_FAILED_FILES_MAX)
			break;
	}
	if (failed_files > 0) {
		viv_errf(err, errlen,
			 "the C compiler reported errors; the build log has them with file and "
			 "line");
		e = VIV_ERR_BUILD;
		goto out;
	}
	e = c_entry_points(p, objs, n_objs, &has_main, &has_run, err, errlen);
	if (e)
		goto out;
	if (!has_main && !has_run) {
		viv_errf(err, errlen,
			 "found neither main() (a WASI command, served as CGI) nor run() (a "
			 "Terrarium-style handler); define one of them");
		e = VIV_ERR_INVALID;
		goto out;
	}
	pipe_logf(p->ctx, "%s\n",
		  has_main ? "main() found: linking a WASI command, served as CGI"
			   : "run() found: linking a reactor that exports run, a "
			     "Terrarium-style handler");
	wasm = viv_path_join(p->out_dir, "app.wasm");
	if (!wasm) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = c_link(p, objs, n_objs, !has_main, wasm, err, errlen);
	if (e)
		goto out;
	*wasm_out = wasm;
	wasm = NULL;
out:
	pipe_strv_free(srcs, n);
	pipe_strv_free(objs, n_objs);
	free(objdir);
	free(wasm);
	return e;
}

const struct pipe_toolchain_ops pipe_toolchain_c = {
	.name = "c",
	.detect = c_detect,
	.build = c_build,
};
