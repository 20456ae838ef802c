/* The C and C++ toolchain: clang for wasm32-wasi with Debian's wasi-libc
 * (and libc++ for .cc, .cpp and .cxx files, without exceptions), one object
 * per source, then a WASI command (main) or a reactor that exports run (a
 * Terrarium-style handler). */
#include "pipeline_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define C_SOURCES_MAX 4096
#define C_FAILED_FILES_MAX 10

static const char *const c_target[] = {"--target=wasm32-wasi", "--sysroot=/usr"};
static const char *const all_suffixes[] = {".c", ".cc", ".cpp", ".cxx", NULL};
static const char *const cxx_suffixes[] = {".cc", ".cpp", ".cxx", NULL};
/* Debian's libc++-dev-wasm32 (with libc++abi) for the sysroot above. It is
 * built without exceptions, so C++ is compiled with -fno-exceptions. */
#define CXX_LIB "/usr/lib/wasm32-wasi/libc++.a"

static bool c_detect(void *tctx, const char *root)
{
	const char *const *suffixes = all_suffixes;
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

static bool is_cxx(const char *path)
{
	for (size_t i = 0; cxx_suffixes[i]; i++) {
		if (ends_with(path, cxx_suffixes[i]))
			return true;
	}
	return false;
}

static enum viv_err c_sources(const struct pipe_project *p, char ***out, size_t *n_out, char *err,
                              size_t errlen)
{
	char **files = NULL;
	size_t n = 0;
	enum viv_err e;

	if (p->manifest->n_sources > 0) {
		e = pipe_glob(p->root, p->manifest->sources, p->manifest->n_sources, &files, &n,
		              err, errlen);
		if (e)
			return e;
		for (size_t i = 0; i < n; i++) {
			if (!ends_with(files[i], ".c") && !is_cxx(files[i])) {
				viv_errf(err, errlen,
				         "vivarium.json: build.sources matches '%.100s', which is "
				         "not a C or C++ source (.c, .cc, .cpp, .cxx)",
				         files[i]);
				pipe_strv_free(files, n);
				return VIV_ERR_INVALID;
			}
		}
	} else {
		e = pipe_find_files(p->root, all_suffixes, C_SOURCES_MAX, &files, &n);
		if (e == VIV_ERR_TOO_BIG)
			viv_errf(err, errlen, "the upload holds more than %d C and C++ sources",
			         C_SOURCES_MAX);
		if (e)
			return e;
	}
	if (n == 0) {
		free(files);
		viv_errf(err, errlen, "found no C or C++ source (.c, .cc, .cpp, .cxx) to compile");
		return VIV_ERR_INVALID;
	}
	*out = files;
	*n_out = n;
	return VIV_OK;
}

/* Every build.include_dirs entry must be a folder of the project. */
static enum viv_err c_check_include_dirs(const struct pipe_project *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->manifest->n_include_dirs; i++) {
		if (!pipe_exists(p->root, p->manifest->include_dirs[i], true)) {
			viv_errf(err, errlen,
			         "vivarium.json: build.include_dirs names '%.100s', which is not a "
			         "folder in the upload",
			         p->manifest->include_dirs[i]);
			return VIV_ERR_INVALID;
		}
	}
	return VIV_OK;
}

/* Compiles src (relative to the root) into obj (relative to the scratch
 * directory), in the root so that errors read "src/main.c:3:5: error". */
static enum viv_err c_compile(const struct pipe_project *p, const char *src, const char *obj,
                              char *const *inc, bool *failed, char *err, size_t errlen)
{
	const struct pipe_config *cfg = p->ctx->cfg;
	const bool cxx = is_cxx(src);
	const char **argv;
	char *sdk_inc = NULL, *obj_abs = NULL, *obj_rel = NULL;
	size_t n = 0;
	struct pipe_exit ex;
	enum viv_err e;

	*failed = false;
	argv = calloc(20 + p->manifest->n_include_dirs + p->manifest->n_cflags +
	                      p->manifest->n_cxxflags,
	              sizeof(*argv));
	if (cfg->sdk_dir) {
		char *host = viv_path_join(cfg->sdk_dir, "c");
		sdk_inc = host ? pipe_tool_path(p->ctx, host) : NULL;
		free(host);
	}
	obj_abs = viv_path_join(p->ctx->scratch, obj);
	if (!argv || !obj_abs || (cfg->sdk_dir && !sdk_inc)) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = pipe_relpath(p->root, obj_abs, &obj_rel);
	if (e)
		goto out;
	argv[n++] = cxx ? "clang++" : "clang";
	argv[n++] = c_target[0];
	argv[n++] = c_target[1];
	argv[n++] = "-O2";
	if (cxx)
		argv[n++] = "-fno-exceptions";
	argv[n++] = "-c";
	argv[n++] = src;
	argv[n++] = "-o";
	argv[n++] = obj_rel;
	argv[n++] = "-I.";
	argv[n++] = "-Iinclude";
	for (size_t i = 0; i < p->manifest->n_include_dirs; i++)
		argv[n++] = inc[i];
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
	for (size_t i = 0; cxx && i < p->manifest->n_cxxflags; i++)
		argv[n++] = p->manifest->cxxflags[i];
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

/* What the objects (relative to the scratch directory) define, read from
 * their symbol tables: a main (WASI command) or run (reactor). */
static enum viv_err c_entry_points(const struct pipe_project *p, char **srcs, char **objs, size_t n,
                                   bool *has_main, bool *has_run, bool *has_cxx_run, char *err,
                                   size_t errlen)
{
	/* void run() with C++ linkage is _Z3runv. */
	static const char *const names[] = {"main", "__main_argc_argv", "run", "_Z3runv", NULL};
	bool found[4];
	enum viv_err e = VIV_OK;

	*has_main = *has_run = *has_cxx_run = false;
	for (size_t i = 0; !e && i < n; i++) {
		char what[200], why[256];
		char *data = NULL;
		size_t len = 0;

		snprintf(what, sizeof(what), "the object of %.150s", srcs[i]);
		e = pipe_read_built(p->ctx, objs[i], what, (size_t)1 << 30, &data, &len, err,
		                    errlen);
		if (e)
			return e;
		e = pipe_wasm_object_defines(data, len, names, found, why, sizeof(why));
		free(data);
		if (e) {
			viv_errf(err, errlen, "the object of %s: %s%s", srcs[i], why,
			         e == VIV_ERR_UNSUPPORTED
			                 ? "; Vivarium links WebAssembly objects, so flags that "
			                   "make LLVM bitcode instead (-flto) cannot be used"
			                 : "");
			return e;
		}
		*has_main = *has_main || found[0] || found[1];
		*has_run = *has_run || found[2];
		*has_cxx_run = *has_cxx_run || found[3];
	}
	return VIV_OK;
}

/* ---- Linking ------------------------------------------------------------------ */

/* The wasm-ld command the clang driver runs for one kind of link, learnt
 * from "clang -###" at the first such link and kept for the process:
 * starting the driver costs about 90 ms here, as much as wasm-ld itself,
 * and what it passes to wasm-ld depends only on the flags c_link gives it,
 * the objects and the output, which are put in their places. */
struct ld_line {
	char **tok; /* the command as the driver showed it */
	size_t n_tok;
	size_t obj_at; /* where the objects of that link stood */
	size_t n_obj;
	size_t out_at; /* where its output's path stood */
};

static pthread_mutex_t ld_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ld_line *ld_lines[2][2]; /* [cxx][reactor], never freed */

/* Splits one line of clang -### output, where every argument is quoted and
 * '"', '\' and '$' inside carry a backslash. */
static enum viv_err ld_tokens(const char *line, char ***out, size_t *n_out)
{
	char **v = NULL, *tok;
	size_t n = 0, len;

	*out = NULL;
	*n_out = 0;
	while (*line) {
		char **nv;

		while (*line == ' ')
			line++;
		if (!*line)
			break;
		if (*line++ != '"')
			goto bad;
		tok = malloc(strlen(line) + 1);
		if (!tok)
			goto bad;
		for (len = 0; *line && *line != '"'; line++) {
			if (*line == '\\' && line[1])
				line++;
			tok[len++] = *line;
		}
		tok[len] = '\0';
		nv = *line == '"' ? realloc(v, (n + 2) * sizeof(*v)) : NULL;
		if (!nv) {
			free(tok);
			goto bad;
		}
		v = nv;
		v[n++] = tok;
		v[n] = NULL;
		line++;
	}
	*out = v;
	*n_out = n;
	return n > 0 ? VIV_OK : VIV_ERR_INVALID;
bad:
	pipe_strv_free(v, n);
	return VIV_ERR_INVALID;
}

static void ld_line_free(struct ld_line *l)
{
	if (!l)
		return;
	pipe_strv_free(l->tok, l->n_tok);
	free(l);
}

/* Runs the driver command drv with -### and keeps its wasm-ld line, cut
 * around the n objects and the output, which must each stand there once
 * and unchanged. VIV_ERR_UNSUPPORTED when the listing is not of that shape. */
static enum viv_err ld_learn(const struct pipe_project *p, const char *const *drv, size_t n_drv,
                             char **objs, size_t n, const char *out, struct ld_line **l_out,
                             char *err, size_t errlen)
{
	const char **argv = calloc(n_drv + 2, sizeof(*argv));
	char *listing = NULL, *line, *save = NULL, **tok = NULL;
	size_t n_tok = 0, at = 0, found = 0;
	struct ld_line *l = NULL;
	struct pipe_exit ex;
	enum viv_err e;

	*l_out = NULL;
	if (!argv)
		return VIV_ERR_NOMEM;
	argv[0] = drv[0];
	argv[1] = "-###";
	memcpy(argv + 2, drv + 1, (n_drv - 1) * sizeof(*argv));
	e = pipe_run_output(p->ctx, p->ctx->scratch, argv, &ex, &listing, err, errlen);
	free(argv);
	if (!e && (ex.code != 0 || !listing))
		e = VIV_ERR_UNSUPPORTED;
	/* The last line that runs a wasm-ld. */
	for (line = e ? NULL : strtok_r(listing, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char **t;
		size_t nt;

		if (!strstr(line, "wasm-ld") || ld_tokens(line, &t, &nt))
			continue;
		pipe_strv_free(tok, n_tok);
		tok = t;
		n_tok = nt;
	}
	free(listing);
	if (!e && (!tok || !strstr(tok[0], "wasm-ld")))
		e = VIV_ERR_UNSUPPORTED;
	for (size_t i = 0; !e && i + n <= n_tok; i++) {
		size_t k = 0;

		while (k < n && strcmp(tok[i + k], objs[k]) == 0)
			k++;
		if (k == n) {
			at = i;
			found++;
		}
	}
	if (!e && found != 1)
		e = VIV_ERR_UNSUPPORTED;
	if (!e) {
		l = calloc(1, sizeof(*l));
		e = l ? VIV_OK : VIV_ERR_NOMEM;
	}
	if (!e) {
		found = 0;
		for (size_t i = at + n + 1; i < n_tok; i++) {
			if (strcmp(tok[i - 1], "-o") == 0 && strcmp(tok[i], out) == 0) {
				l->out_at = i;
				found++;
			}
		}
		e = found == 1 ? VIV_OK : VIV_ERR_UNSUPPORTED;
	}
	if (e) {
		pipe_strv_free(tok, n_tok);
		free(l);
		return e;
	}
	l->tok = tok;
	l->n_tok = n_tok;
	l->obj_at = at;
	l->n_obj = n;
	*l_out = l;
	return VIV_OK;
}

static enum viv_err ld_run(const struct pipe_project *p, const struct ld_line *l, char **objs,
                           size_t n, const char *out, char *err, size_t errlen)
{
	const char **argv = calloc(l->n_tok - l->n_obj + n + 1, sizeof(*argv));
	size_t k = 0;
	enum viv_err e;

	if (!argv)
		return VIV_ERR_NOMEM;
	for (size_t i = 0; i < l->n_tok; i++) {
		if (i == l->obj_at) {
			for (size_t j = 0; j < n; j++)
				argv[k++] = objs[j];
		}
		if (i < l->obj_at || i >= l->obj_at + l->n_obj)
			argv[k++] = i == l->out_at ? out : l->tok[i];
	}
	argv[k] = NULL;
	e = pipe_run_ok(p->ctx, p->ctx->scratch, argv, err, errlen);
	free(argv);
	return e;
}

static enum viv_err c_link(const struct pipe_project *p, char **objs, size_t n, bool reactor,
                           bool cxx, const char *wasm, char *err, size_t errlen)
{
	const char **argv;
	char *wasm_rel = NULL;
	struct ld_line *l;
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
	argv[k++] = cxx ? "clang++" : "clang";
	argv[k++] = c_target[0];
	argv[k++] = c_target[1];
	if (cxx)
		argv[k++] = "-fno-exceptions";
	if (reactor) {
		argv[k++] = "-mexec-model=reactor";
		argv[k++] = "-Wl,--export=run";
	}
	for (size_t i = 0; i < n; i++)
		argv[k++] = objs[i];
	argv[k++] = "-o";
	argv[k++] = wasm_rel;
	argv[k] = NULL;
	pthread_mutex_lock(&ld_lock);
	l = ld_lines[cxx][reactor];
	pthread_mutex_unlock(&ld_lock);
	if (!l) {
		e = ld_learn(p, argv, k, objs, n, wasm_rel, &l, err, errlen);
		if (e == VIV_ERR_UNSUPPORTED)
			pipe_logf(p->ctx, "note: clang -### did not show one wasm-ld command with "
			                  "the objects and output in it; linking through clang\n");
		else if (e == VIV_OK) {
			pthread_mutex_lock(&ld_lock);
			if (ld_lines[cxx][reactor]) {
				ld_line_free(l);
				l = ld_lines[cxx][reactor];
			} else {
				ld_lines[cxx][reactor] = l;
			}
			pthread_mutex_unlock(&ld_lock);
		}
	}
	e = l ? ld_run(p, l, objs, n, wasm_rel, err, errlen)
	      : pipe_run_ok(p->ctx, p->ctx->scratch, argv, err, errlen);
	free(argv);
	free(wasm_rel);
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
		         "linking failed; the build log has the linker's message (often a "
		         "function that is declared but defined nowhere)");
	return e;
}

static enum viv_err c_build(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
                            size_t errlen)
{
	char **srcs = NULL, **objs = NULL, **inc = NULL;
	char *objdir = NULL, *wasm = NULL;
	size_t n = 0, n_objs = 0, n_inc = 0, failed_files = 0;
	bool has_main, has_run, has_cxx_run, cxx = false;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	e = c_sources(p, &srcs, &n, err, errlen);
	if (!e)
		e = c_check_include_dirs(p, err, errlen);
	if (e)
		goto out;
	for (size_t i = 0; i < n; i++)
		cxx = cxx || is_cxx(srcs[i]);
	if (cxx && access(CXX_LIB, R_OK) != 0) {
		viv_errf(err, errlen,
		         "C++ builds are not set up on this server (no %s); the operator installs "
		         "Debian's libc++-dev-wasm32 (scripts/setup.sh does)",
		         CXX_LIB);
		e = VIV_ERR_UNSUPPORTED;
		goto out;
	}
	objdir = viv_path_join(p->ctx->scratch, "obj");
	objs = calloc(n + 1, sizeof(*objs));
	inc = calloc(p->manifest->n_include_dirs + 1, sizeof(*inc));
	if (!objdir || !objs || !inc) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	for (; n_inc < p->manifest->n_include_dirs; n_inc++) {
		if (asprintf(&inc[n_inc], "-I%s", p->manifest->include_dirs[n_inc]) < 0) {
			inc[n_inc] = NULL;
			e = VIV_ERR_NOMEM;
			goto out;
		}
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
		e = c_compile(p, srcs[i], objs[i], inc, &failed, err, errlen);
		if (e)
			goto out;
		if (failed && ++failed_files >= C_FAILED_FILES_MAX)
			break;
	}
	if (failed_files > 0) {
		viv_errf(err, errlen,
		         "the %s compiler reported errors; the build log has them with file and "
		         "line",
		         cxx ? "C/C++" : "C");
		e = VIV_ERR_BUILD;
		goto out;
	}
	e = c_entry_points(p, srcs, objs, n_objs, &has_main, &has_run, &has_cxx_run, err, errlen);
	if (e)
		goto out;
	if (!has_main && !has_run && has_cxx_run) {
		viv_errf(err, errlen,
		         "run() is defined with C++ linkage, so it is not exported as run; "
		         "declare it extern \"C\" void run()");
		e = VIV_ERR_INVALID;
		goto out;
	}
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
	e = c_link(p, objs, n_objs, !has_main, cxx, wasm, err, errlen);
	if (!e)
		e = pipe_relpath(p->ctx->scratch, wasm, wasm_out);
out:
	pipe_strv_free(srcs, n);
	pipe_strv_free(objs, n_objs);
	pipe_strv_free(inc, n_inc);
	free(objdir);
	free(wasm);
	return e;
}

const struct pipe_toolchain_ops pipe_toolchain_c = {
        .name = "c",
        .detect = c_detect,
        .build = c_build,
};
