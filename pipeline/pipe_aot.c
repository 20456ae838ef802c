/* Ahead-of-time compilation of a validated module: the tools and their
 * versions, the artifact hash, wasm2c, the generated glue that defines
 * vivarium_guest (viv_guest.h) and the C compiler that makes the .so. */
#include "pipeline_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "viv_imports.h"

#define GUEST_H_MAX (16 * 1024 * 1024)
#define VERSION_MAX 200

/* The default AOT compiler, measured on this project's 2-core build machine
 * with the flags below; wall time of the cc step over 8 runs, no sandbox:
 *   c-hello (wasm2c output 64 KB of C): gcc 12 260-300 ms, clang 14
 *     336-460 ms; .so 21.0 KB vs 21.2 KB (text 8605 vs 8683 bytes).
 *   printf with %s/%d/%f (335 KB of C): gcc 1070-1115 ms, clang 824-850 ms;
 *     .so 54.5 KB vs 51.1 KB (text 40.8 KB vs 38.9 KB).
 *   A 4 MB integer and float loop ran in 62-64 ms with either.
 * clang wins as guests grow, makes smaller code, and is already required
 * for C guests, so it is the default; VIV_CC picks another. */
#define AOT_CC_DEFAULT "clang"

/* Flags recommended by wasm2c for correct float semantics, plus what a
 * dlopen-able guest needs; the hash covers them.
 *
 * -fno-math-errno lets the compiler use sqrtsd for wasm2c's sqrt() and
 * sqrtf() calls: with -frounding-math and errno on, clang 14 calls libm's
 * sqrt through the PLT and spills around it. Guests cannot see the host's
 * errno, the results are the same bits, and the host's errno is no longer
 * written by guest code. bench_kernels (n-body, SHA-256, sort, a JSON
 * parser), the smallest of 9 runs each over native clang -O2, CPU time:
 * n-body 1.67x to 1.36x, the others unchanged, geometric mean 1.25x to
 * 1.19x. Measured and left out, as no better within the noise (about 3%)
 * or worse: -O3, -fno-plt -fno-semantic-interposition, wasm-opt -O3/-O4,
 * -march=x86-64-v3 (and it would tie artifacts to newer CPUs),
 * -march=x86-64-v2 (SHA-256 1.8x slower), GCC 12 (n-body 1.6x).
 *
 * WASM_RT_MEMCHECK_SIGNAL_HANDLER is left to wasm-rt.h, which picks guard
 * pages on every 64-bit host: the rewrite of the memory helpers
 * (pipe_aot_rewrite.c) is exact only with them, and its text stops the compile
 * without them. */
static const char *const aot_flags_common[] = {
        "-shared",
        "-fPIC",
        "-O2",
        "-fvisibility=hidden",
        "-fno-optimize-sibling-calls",
        "-frounding-math",
        "-fno-math-errno",
};

/* ---- Tools -------------------------------------------------------------------- */

static pthread_mutex_t tools_lock = PTHREAD_MUTEX_INITIALIZER;
static bool tools_ready;
static struct pipe_tools tools;
static char tools_cc[128];
static char tools_cc_version[VERSION_MAX];
static char tools_wasm2c_version[VERSION_MAX];
static const char *tools_cflags[sizeof(aot_flags_common) / sizeof(aot_flags_common[0]) + 2];

/* First line of a tool's output, trimmed. */
static void first_line(const char *text, char *buf, size_t len)
{
	size_t n = strcspn(text, "\r\n");

	while (n > 0 && isspace((unsigned char)text[n - 1]))
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(buf, text, n);
	buf[n] = '\0';
}

static enum viv_err tool_version(struct pipe_ctx *ctx, const char *prog, char *buf, size_t len,
                                 char *err, size_t errlen)
{
	const char *argv[] = {prog, "--version", NULL};
	struct viv_buf out;
	struct pipe_exit ex;
	enum viv_err e;

	viv_buf_init(&out, 64 * 1024);
	memset(&ex, 0, sizeof(ex));
	e = pipe_spawn(ctx->cfg, ctx->scratch, NULL, argv, &out, &ex, err, errlen);
	if (!e && (ex.code != 0 || !out.data || !*out.data)) {
		viv_errf(err, errlen, "%s --version failed (exit status %d)", prog, ex.code);
		e = VIV_ERR_BUILD;
	}
	if (!e)
		first_line(out.data, buf, len);
	viv_buf_free(&out);
	return e;
}

enum viv_err pipe_tools_get(struct pipe_ctx *ctx, const struct pipe_tools **out, char *err,
                            size_t errlen)
{
	const char *cc = getenv("VIV_CC");
	enum viv_err e = VIV_OK;
	size_t n = 0;

	*out = NULL;
	pthread_mutex_lock(&tools_lock);
	if (tools_ready)
		goto done;
	if (!cc || !*cc)
		cc = AOT_CC_DEFAULT;
	if (strlen(cc) >= sizeof(tools_cc)) {
		viv_errf(err, errlen, "VIV_CC is too long");
		e = VIV_ERR_INVALID;
		goto done;
	}
	strcpy(tools_cc, cc);
	e = tool_version(ctx, "wasm2c", tools_wasm2c_version, sizeof(tools_wasm2c_version), err,
	                 errlen);
	if (!e)
		e = tool_version(ctx, tools_cc, tools_cc_version, sizeof(tools_cc_version), err,
		                 errlen);
	if (e)
		goto done;
	tools.cc = tools_cc;
	tools.cc_version = tools_cc_version;
	tools.wasm2c_version = tools_wasm2c_version;
	/* GCC and clang both print their name, except GCC installed as
	 * "cc", which prints "cc (Debian 12.2.0-14) 12.2.0": anything not
	 * clang is taken for GCC. */
	tools.cc_is_gcc = strstr(tools_cc_version, "clang") == NULL;
	for (size_t i = 0; i < sizeof(aot_flags_common) / sizeof(aot_flags_common[0]); i++)
		tools_cflags[n++] = aot_flags_common[i];
	if (tools.cc_is_gcc)
		tools_cflags[n++] = "-fsignaling-nans";
	tools_cflags[n] = NULL;
	tools.cflags = tools_cflags;
	tools_ready = true;
done:
	pthread_mutex_unlock(&tools_lock);
	if (!e)
		*out = &tools;
	return e;
}

static const char *mode_name(enum viv_guest_mode mode)
{
	return mode == VIV_GUEST_HOSTCALL ? "hostcall" : "cgi";
}

enum viv_err pipe_artifact_hash(const struct pipe_tools *t, enum viv_guest_mode mode,
                                const void *wasm, size_t len, char hex[VIV_SHA256_HEX_LEN + 1])
{
	struct viv_sha256 h;
	struct viv_buf head;
	enum viv_err e;

	viv_buf_init(&head, 4096);
	e = viv_buf_printf(&head, "vivarium-artifact\nabi %d\nwasm2c %s\ncc %s\ncflags",
	                   VIV_GUEST_ABI, t->wasm2c_version, t->cc_version);
	for (size_t i = 0; !e && t->cflags[i]; i++)
		e = viv_buf_printf(&head, " %s", t->cflags[i]);
	if (!e)
		e = viv_buf_printf(&head, "\nrewrite %d\nmode %s\n\n", PIPE_GUEST_REWRITE_VERSION,
		                   mode_name(mode));
	if (!e)
		e = viv_sha256_begin(&h);
	if (!e) {
		viv_sha256_update(&h, head.data, head.len);
		viv_sha256_update(&h, wasm, len);
		viv_sha256_end(&h, hex);
	}
	viv_buf_free(&head);
	return e;
}

/* ---- guest.h ---------------------------------------------------------------------- */

static bool ident(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	}
	return true;
}

/* If line (leading blanks skipped) is "TYPE NAME;" for the given type,
 * copies NAME into field when field is still empty. Pointer members
 * ("TYPE* NAME;") are imported memories or tables and do not match. */
static void match_member(const char *line, const char *type, char *field, size_t len)
{
	size_t tl = strlen(type);
	const char *name;
	size_t n;

	if (field[0])
		return;
	while (*line == ' ' || *line == '\t')
		line++;
	if (strncmp(line, type, tl) != 0 || line[tl] != ' ')
		return;
	name = line + tl + 1;
	n = strcspn(name, ";");
	if (name[n] != ';' || n == 0 || n >= len)
		return;
	memcpy(field, name, n);
	field[n] = '\0';
	if (!ident(field))
		field[0] = '\0';
}

enum viv_err pipe_guest_shape_parse(const char *guest_h, struct pipe_guest_shape *out, char *err,
                                    size_t errlen)
{
	static const char open_tag[] = "typedef struct Z_guest_instance_t {";
	static const char close_tag[] = "} Z_guest_instance_t;";
	static const char inst_tag[] = "void Z_guest_instantiate(";
	struct pipe_guest_shape shape;
	const char *body, *end, *line, *proto, *p, *close_paren;
	unsigned params = 0;

	memset(&shape, 0, sizeof(shape));
	body = strstr(guest_h, open_tag);
	end = body ? strstr(body, close_tag) : NULL;
	if (!body || !end) {
		viv_errf(err, errlen, "guest.h has no Z_guest_instance_t structure");
		return VIV_ERR_INTERNAL;
	}
	for (line = body + sizeof(open_tag) - 1; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
		char buf[512];

		if (n < sizeof(buf)) {
			memcpy(buf, line, n);
			buf[n] = '\0';
			match_member(buf, "wasm_rt_memory_t", shape.memory_field,
			             sizeof(shape.memory_field));
			match_member(buf, "wasm_rt_funcref_table_t", shape.table_field,
			             sizeof(shape.table_field));
		}
		line += n + 1;
	}
	proto = strstr(guest_h, inst_tag);
	close_paren = proto ? strstr(proto, ");") : NULL;
	if (!proto || !close_paren) {
		viv_errf(err, errlen, "guest.h does not declare Z_guest_instantiate");
		return VIV_ERR_INTERNAL;
	}
	/* "(Z_guest_instance_t*, struct Z_a_instance_t*, ...)": every
	 * parameter after the first is one imported module's instance. */
	p = proto + sizeof(inst_tag) - 1;
	if (strncmp(p, "Z_guest_instance_t*", 19) != 0) {
		viv_errf(err, errlen, "guest.h declares Z_guest_instantiate unexpectedly");
		return VIV_ERR_INTERNAL;
	}
	for (p += 19; p < close_paren; p++) {
		if (*p != ',')
			continue;
		while (p[1] == ' ')
			p++;
		if (strncmp(p + 1, "struct Z_", 9) != 0) {
			viv_errf(err, errlen,
			         "guest.h declares an unexpected Z_guest_instantiate parameter");
			return VIV_ERR_INTERNAL;
		}
		params++;
	}
	shape.n_import_instances = params;
	*out = shape;
	return VIV_OK;
}

/* ---- glue.c ------------------------------------------------------------------------ */

/* True when guest.h declares "RESULT SYM(Z_guest_instance_t*PARAMS);",
 * e.g. result "u32" and params ", u32". */
static bool declares_typed(const char *guest_h, const char *result, const char *sym,
                           const char *params)
{
	char want[400];

	snprintf(want, sizeof(want), "%s %s(Z_guest_instance_t*%s);", result, sym, params);
	return strstr(guest_h, want) != NULL;
}

/* True when guest.h declares "void SYM(Z_guest_instance_t*);". */
static bool declares(const char *guest_h, const char *sym)
{
	return declares_typed(guest_h, "void", sym, "");
}

static bool hash_valid(const char *h)
{
	if (!h || strlen(h) != VIV_SHA256_HEX_LEN)
		return false;
	return strspn(h, "0123456789abcdef") == VIV_SHA256_HEX_LEN;
}

enum viv_err pipe_glue_generate(const char *guest_h, const struct pipe_glue_spec *spec, char **out,
                                char *err, size_t errlen)
{
	struct pipe_guest_shape shape;
	struct viv_buf b;
	char entry[128], init[128], malloc_sym[128], free_sym[128];
	enum viv_err e;

	*out = NULL;
	if (!hash_valid(spec->hash)) {
		viv_errf(err, errlen, "the artifact hash is malformed");
		return VIV_ERR_INTERNAL;
	}
	e = pipe_guest_shape_parse(guest_h, &shape, err, errlen);
	if (e)
		return e;
	/* wasm2c names exports as it names imports, with module "guest". */
	if (!viv_import_symbol("guest", spec->mode == VIV_GUEST_HOSTCALL ? "run" : "_start", entry,
	                       sizeof(entry)) ||
	    !viv_import_symbol("guest", "_initialize", init, sizeof(init)) ||
	    !viv_import_symbol("guest", "default_malloc_impl", malloc_sym, sizeof(malloc_sym)) ||
	    !viv_import_symbol("guest", "default_free_impl", free_sym, sizeof(free_sym)))
		return VIV_ERR_INTERNAL;
	if (!declares(guest_h, entry) || (spec->has_initialize && !declares(guest_h, init))) {
		viv_errf(err, errlen, "guest.h does not declare the entry point %s",
		         declares(guest_h, entry) ? init : entry);
		return VIV_ERR_INTERNAL;
	}
	if ((spec->has_malloc && !declares_typed(guest_h, "u32", malloc_sym, ", u32")) ||
	    (spec->has_free && !declares_typed(guest_h, "void", free_sym, ", u32"))) {
		viv_errf(err, errlen, "guest.h does not declare the allocator %s",
		         spec->has_malloc && !declares_typed(guest_h, "u32", malloc_sym, ", u32")
		                 ? malloc_sym
		                 : free_sym);
		return VIV_ERR_INTERNAL;
	}
	viv_buf_init(&b, 64 * 1024);
	e = viv_buf_printf(
	        &b,
	        "/* Generated by the Vivarium pipeline: the artifact's entry points\n"
	        " * (viv_guest.h) around wasm2c's output for module \"guest\". It includes\n"
	        " * guest.c so that the module's static functions are in reach. */\n"
	        "#include \"guest.c\"\n"
	        "\n"
	        "#include \"viv_guest.h\"\n"
	        "\n"
	        "_Static_assert(VIV_GUEST_ABI == %d, \"glue made for guest ABI %d\");\n"
	        "\n"
	        "static void viv_glue_instantiate(void *instance, void *host)\n"
	        "{\n",
	        VIV_GUEST_ABI, VIV_GUEST_ABI);
	if (!e && shape.n_import_instances == 0)
		e = viv_buf_printf(&b, "\t(void)host;\n\tZ_guest_instantiate((Z_guest_instance_t "
		                       "*)instance);\n");
	if (!e && shape.n_import_instances > 0) {
		/* One host pointer per imported module's instance. */
		e = viv_buf_printf(&b, "\tZ_guest_instantiate((Z_guest_instance_t *)instance");
		for (unsigned i = 0; !e && i < shape.n_import_instances; i++)
			e = viv_buf_printf(&b, ", host");
		if (!e)
			e = viv_buf_printf(&b, ");\n");
	}
	if (!e)
		e = viv_buf_printf(&b, "}\n\n"
		                       "static void viv_glue_free(void *instance)\n"
		                       "{\n"
		                       "\tZ_guest_free((Z_guest_instance_t *)instance);\n"
		                       "}\n\n");
	if (!e && shape.memory_field[0])
		e = viv_buf_printf(&b,
		                   "static wasm_rt_memory_t *viv_glue_memory(void *instance)\n"
		                   "{\n"
		                   "\treturn &((Z_guest_instance_t *)instance)->%s;\n"
		                   "}\n\n",
		                   shape.memory_field);
	if (!e && shape.table_field[0])
		e = viv_buf_printf(&b,
		                   "static wasm_rt_funcref_table_t *viv_glue_table(void "
		                   "*instance)\n"
		                   "{\n"
		                   "\treturn &((Z_guest_instance_t *)instance)->%s;\n"
		                   "}\n\n",
		                   shape.table_field);
	if (!e && spec->has_initialize)
		e = viv_buf_printf(&b,
		                   "static void viv_glue_initialize(void *instance)\n"
		                   "{\n"
		                   "\t%s((Z_guest_instance_t *)instance);\n"
		                   "}\n\n",
		                   init);
	if (!e && spec->has_malloc)
		e = viv_buf_printf(&b,
		                   "static uint32_t viv_glue_malloc(void *instance, "
		                   "uint32_t size)\n"
		                   "{\n"
		                   "\treturn %s((Z_guest_instance_t *)instance, size);\n"
		                   "}\n\n",
		                   malloc_sym);
	if (!e && spec->has_free)
		e = viv_buf_printf(&b,
		                   "static void viv_glue_free_export(void *instance, "
		                   "uint32_t ptr)\n"
		                   "{\n"
		                   "\t%s((Z_guest_instance_t *)instance, ptr);\n"
		                   "}\n\n",
		                   free_sym);
	if (!e)
		e = viv_buf_printf(&b,
		                   "static void viv_glue_entry(void *instance)\n"
		                   "{\n"
		                   "\t%s((Z_guest_instance_t *)instance);\n"
		                   "}\n\n"
		                   "__attribute__((visibility(\"default\")))\n"
		                   "const struct viv_guest vivarium_guest = {\n"
		                   "\t.abi = VIV_GUEST_ABI,\n"
		                   "\t.mode = %s,\n"
		                   "\t.hash = \"%s\",\n"
		                   "\t.instance_size = sizeof(Z_guest_instance_t),\n"
		                   "\t.init_module = Z_guest_init_module,\n"
		                   "\t.instantiate = viv_glue_instantiate,\n"
		                   "\t.free_instance = viv_glue_free,\n"
		                   "\t.memory = %s,\n"
		                   "\t.table = %s,\n"
		                   "\t.initialize = %s,\n"
		                   "\t.entry = viv_glue_entry,\n"
		                   "\t.export_malloc = %s,\n"
		                   "\t.export_free = %s,\n"
		                   "};\n",
		                   entry,
		                   spec->mode == VIV_GUEST_HOSTCALL ? "VIV_GUEST_HOSTCALL"
		                                                    : "VIV_GUEST_CGI",
		                   spec->hash, shape.memory_field[0] ? "viv_glue_memory" : "NULL",
		                   shape.table_field[0] ? "viv_glue_table" : "NULL",
		                   spec->has_initialize ? "viv_glue_initialize" : "NULL",
		                   spec->has_malloc ? "viv_glue_malloc" : "NULL",
		                   spec->has_free ? "viv_glue_free_export" : "NULL");
	if (e) {
		viv_buf_free(&b);
		return e;
	}
	*out = viv_buf_steal(&b);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

/* ---- wasm2c, glue, cc ----------------------------------------------------------------- */

static void timing_note(void (*timing)(void *, const char *, int64_t), void *arg, const char *step,
                        uint64_t t0)
{
	if (timing)
		timing(arg, step, (int64_t)((viv_mono_ns() - t0) / 1000000));
}

static enum viv_err write_glue(struct pipe_ctx *ctx, const struct pipe_glue_spec *spec, char *err,
                               size_t errlen)
{
	char *c_path = NULL, *header = NULL, *glue = NULL;
	size_t len = 0;
	enum viv_err e;

	c_path = viv_path_join(ctx->scratch, "glue.c");
	if (!c_path) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = pipe_read_built(ctx, "guest.h", "wasm2c's guest.h", GUEST_H_MAX, &header, &len, err,
	                    errlen);
	if (e)
		goto out;
	e = pipe_glue_generate(header, spec, &glue, err, errlen);
	if (e)
		goto out;
	e = viv_write_file_atomic(c_path, glue, strlen(glue), 0644);
	if (e) {
		viv_errf(err, errlen, "could not write glue.c: %s", viv_strerror(e));
		goto out;
	}
	pipe_logf(ctx, "wrote glue.c (%s mode%s)\n", mode_name(spec->mode),
	          spec->has_initialize ? ", calls _initialize first" : "");
out:
	free(c_path);
	free(header);
	free(glue);
	return e;
}

char *pipe_include_flag(const struct pipe_ctx *ctx)
{
	char *dir, *flag;

	if (!ctx->cfg->include_dir)
		return strdup("-I.");
	dir = pipe_tool_path(ctx, ctx->cfg->include_dir);
	if (!dir || asprintf(&flag, "-I%s", dir) < 0)
		flag = NULL;
	free(dir);
	return flag;
}

static enum viv_err run_cc(struct pipe_ctx *ctx, const struct pipe_tools *t, char *err,
                           size_t errlen)
{
	const char *argv[32];
	char *inc_common = NULL;
	size_t n = 0;
	enum viv_err e;

	inc_common = pipe_include_flag(ctx);
	if (!inc_common) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	argv[n++] = t->cc;
	for (size_t i = 0; t->cflags[i] && n < 24; i++)
		argv[n++] = t->cflags[i];
	/* It runs in dir, next to guest.c and guest.h. */
	argv[n++] = "-I.";
	argv[n++] = inc_common;
	argv[n++] = "glue.c";
	argv[n++] = "-o";
	argv[n++] = "guest.so";
	argv[n] = NULL;
	e = pipe_run_ok(ctx, NULL, argv, err, errlen);
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
		         "compiling the module to native code failed; this is a bug in "
		         "Vivarium, please report it with the build log");
out:
	free(inc_common);
	return e;
}

/* guest.c rewritten in place (pipe_aot_rewrite.c); any other shape than wasm2c
 * 1.0.32's is compiled as it is, with a note in the build log. */
static enum viv_err rewrite_guest(struct pipe_ctx *ctx, char *err, size_t errlen)
{
	struct pipe_rewrite_stats stats;
	char *path, *text = NULL, *out = NULL;
	size_t len = 0;
	enum viv_err e;

	path = viv_path_join(ctx->scratch, "guest.c");
	if (!path)
		return VIV_ERR_NOMEM;
	e = pipe_read_built(ctx, "guest.c", "wasm2c's guest.c", PIPE_GUEST_C_MAX, &text, &len, err,
	                    errlen);
	if (e == VIV_ERR_TOO_BIG)
		e = VIV_ERR_UNSUPPORTED;
	if (!e)
		e = pipe_guest_rewrite(text, len, &out, &stats);
	if (e == VIV_ERR_UNSUPPORTED) {
		pipe_logf(ctx, "note: the module's C is not shaped as wasm2c 1.0.32 writes it: "
		               "its memory accesses are compiled as they are\n");
		e = VIV_OK;
		goto out;
	}
	if (!e)
		e = viv_write_file_atomic(path, out, strlen(out), 0644);
	if (e) {
		viv_errf(err, errlen, "could not rewrite wasm2c's guest.c: %s", viv_strerror(e));
		goto out;
	}
	pipe_logf(ctx,
	          "rewrote guest.c: %zu functions keep the memory's struct at hand for %zu "
	          "loads and stores\n",
	          stats.functions, stats.calls);
out:
	free(path);
	free(text);
	free(out);
	return e;
}

/* A large module's C in parts at once (pipe_aot_split.c), else whole. */
static enum viv_err cc_guest(struct pipe_ctx *ctx, const struct pipe_tools *t, char *err,
                             size_t errlen)
{
	unsigned parts = 1;
	struct stat st;
	char *guest;
	enum viv_err e;

	guest = viv_path_join(ctx->scratch, "guest.c");
	if (!guest)
		return VIV_ERR_NOMEM;
	if (lstat(guest, &st) == 0)
		parts = pipe_guest_parts(ctx->cfg, (size_t)st.st_size);
	free(guest);
	if (parts > 1) {
		e = pipe_cc_parts(ctx, t, parts, err, errlen);
		if (e != VIV_ERR_UNSUPPORTED)
			return e;
		pipe_logf(ctx, "note: the module's C is not shaped as wasm2c 1.0.32 writes it: "
		               "compiling it whole\n");
	}
	return run_cc(ctx, t, err, errlen);
}

enum viv_err pipe_aot(struct pipe_ctx *ctx, const struct pipe_tools *t, const char *wasm,
                      const struct pipe_glue_spec *spec,
                      void (*timing)(void *arg, const char *step, int64_t ms), void *timing_arg,
                      char *err, size_t errlen)
{
	uint64_t t0;
	enum viv_err e;

	/* wasm2c 1.0.32 translates exactly its default feature set and
	 * refuses any --enable/--disable change, so it gets none: wasm-opt
	 * has already held the module to that set minus SIMD. */
	t0 = viv_mono_ns();
	{
		const char *argv[] = {"wasm2c", wasm, "-n", "guest", "-o", "guest.c", NULL};
		e = pipe_run_ok(ctx, NULL, argv, err, errlen);
	}
	timing_note(timing, timing_arg, "wasm2c", t0);
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
		         "wasm2c could not translate the module; its message is in the build "
		         "log");
	if (e)
		return e;

	t0 = viv_mono_ns();
	e = rewrite_guest(ctx, err, errlen);
	if (!e)
		e = write_glue(ctx, spec, err, errlen);
	pipe_log_flush(ctx);
	timing_note(timing, timing_arg, "glue", t0);
	if (e)
		return e;

	t0 = viv_mono_ns();
	e = cc_guest(ctx, t, err, errlen);
	timing_note(timing, timing_arg, "cc", t0);
	return e;
}
