/* The language plug points: detection order and the WebAssembly text and
 * binary toolchains. C and C++ are in pipe_toolchain_c.c, Rust in
 * pipe_toolchain_rust.c, AssemblyScript in pipe_toolchain_as.c. */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DETECT_FILES_MAX 100000

static bool has_files(const char *root, const char *const *suffixes)
{
	char **files = NULL;
	size_t n = 0;
	enum viv_err err;

	err = pipe_find_files(root, suffixes, DETECT_FILES_MAX, &files, &n);
	pipe_strv_free(files, n);
	return err == VIV_ERR_TOO_BIG || (!err && n > 0);
}

/* The one file of a kind: the manifest's first build.sources match, else
 * the only file with that suffix. Several without a choice is an error that
 * lists them. On success *rel_out (caller frees with free()) is relative to
 * the root. */
static enum viv_err pick_one(const struct pipe_project *p, const char *suffix, const char *what,
                             char **rel_out, char *err, size_t errlen)
{
	const char *const suffixes[] = {suffix, NULL};
	char **files = NULL;
	size_t n = 0;
	enum viv_err e;

	*rel_out = NULL;
	if (p->manifest->n_sources > 0)
		e = pipe_glob(p->root, p->manifest->sources, 1, &files, &n, err, errlen);
	else
		e = pipe_find_files(p->root, suffixes, 1000, &files, &n);
	if (e == VIV_ERR_TOO_BIG)
		viv_errf(err, errlen, "the upload holds too many %s files", suffix);
	if (e)
		goto out;
	if (n == 0) {
		viv_errf(err, errlen, "found no %s file in the upload", suffix);
		e = VIV_ERR_INVALID;
		goto out;
	}
	if (n > 1 && p->manifest->n_sources == 0) {
		struct viv_buf list;

		viv_buf_init(&list, 300);
		for (size_t i = 0; i < n; i++) {
			if (viv_buf_printf(&list, "%s%s", i ? ", " : "", files[i]) != VIV_OK) {
				viv_buf_printf_trunc(&list, ", ...");
				break;
			}
		}
		viv_errf(err, errlen,
		         "found several %s files (%s); name the %s in vivarium.json as "
		         "build.sources",
		         suffix, list.data ? list.data : "", what);
		viv_buf_free(&list);
		e = VIV_ERR_INVALID;
		goto out;
	}
	*rel_out = strdup(files[0]);
	e = *rel_out ? VIV_OK : VIV_ERR_NOMEM;
out:
	pipe_strv_free(files, n);
	return e;
}

/* ---- WebAssembly text --------------------------------------------------------------- */

static bool wat_detect(void *tctx, const char *root)
{
	static const char *const suffixes[] = {".wat", NULL};

	(void)tctx;
	return has_files(root, suffixes);
}

static enum viv_err wat_build(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
                              size_t errlen)
{
	char *rel = NULL, *out = NULL, *out_rel = NULL;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	e = pick_one(p, ".wat", "module", &rel, err, errlen);
	if (e)
		return e;
	out = viv_path_join(p->out_dir, "app.wasm");
	if (!out) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = pipe_relpath(p->root, out, &out_rel);
	if (e)
		goto out;
	free(out);
	out = NULL;
	e = pipe_relpath(p->ctx->scratch, p->out_dir, &out);
	if (e)
		goto out;
	{
		/* Run in the root with relative paths, so that errors read
		 * "app.wat:3:5: error: ...". */
		const char *argv[] = {"wat2wasm", rel, "-o", out_rel, NULL};
		e = pipe_run_ok(p->ctx, p->root, argv, err, errlen);
	}
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
		         "wat2wasm reported errors in %s; the build log has them with line and "
		         "column",
		         rel);
	if (e)
		goto out;
	*wasm_out = viv_path_join(out, "app.wasm");
	if (!*wasm_out)
		e = VIV_ERR_NOMEM;
out:
	free(rel);
	free(out);
	free(out_rel);
	return e;
}

static const struct pipe_toolchain_ops wat_ops = {
        .name = "wat",
        .detect = wat_detect,
        .build = wat_build,
};

/* ---- WebAssembly binary ----------------------------------------------------------- */

static bool wasm_detect(void *tctx, const char *root)
{
	static const char *const suffixes[] = {".wasm", NULL};

	(void)tctx;
	return has_files(root, suffixes);
}

static enum viv_err wasm_build(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
                               size_t errlen)
{
	char *rel = NULL, *root_rel = NULL;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	e = pick_one(p, ".wasm", "module", &rel, err, errlen);
	if (e)
		return e;
	pipe_logf(p->ctx, "the module is %s\n", rel);
	e = pipe_relpath(p->ctx->scratch, p->root, &root_rel);
	if (!e) {
		*wasm_out = viv_path_join(root_rel, rel);
		e = *wasm_out ? VIV_OK : VIV_ERR_NOMEM;
	}
	free(root_rel);
	free(rel);
	return e;
}

static const struct pipe_toolchain_ops wasm_ops = {
        .name = "wasm",
        .detect = wasm_detect,
        .build = wasm_build,
};

/* ---- The table ---------------------------------------------------------------------- */

const struct pipe_toolchain pipe_toolchains[] = {
        {&pipe_toolchain_rust, NULL},
        {&pipe_toolchain_as, NULL},
        {&pipe_toolchain_c, NULL},
        {&wat_ops, NULL},
        {&wasm_ops, NULL},
        {NULL, NULL},
};

const struct pipe_toolchain *pipe_toolchain_find(const char *name)
{
	for (const struct pipe_toolchain *t = pipe_toolchains; t->ops; t++) {
		if (strcmp(t->ops->name, name) == 0)
			return t;
	}
	return NULL;
}

enum viv_err pipe_detect(const char *root, const struct pipe_manifest *m,
                         const struct pipe_toolchain **out, char *err, size_t errlen)
{
	const struct pipe_toolchain *t;

	*out = NULL;
	if (m && m->language) {
		t = pipe_toolchain_find(m->language);
		if (!t) {
			viv_errf(err, errlen, "vivarium.json: language '%s' is not known",
			         m->language);
			return VIV_ERR_INVALID;
		}
		*out = t;
		return VIV_OK;
	}
	for (t = pipe_toolchains; t->ops; t++) {
		if (t->ops->detect(t->ctx, root)) {
			*out = t;
			return VIV_OK;
		}
	}
	viv_errf(err, errlen,
	         "found nothing to build: the upload has no Cargo.toml, assembly/ folder, .c, "
	         ".wat or .wasm file, and no language in vivarium.json");
	return VIV_ERR_INVALID;
}
