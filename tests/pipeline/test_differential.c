/* Differential: random valid modules from Binaryen (wasm-opt
 * --translate-to-fuzz, seeded) run two ways, and their exported functions'
 * results, traps and logged values compared. The reference is Binaryen's
 * own interpreter (--fuzz-exec-before). The other is the AOT path as the
 * pipeline takes it: wasm2c, the pipeline's rewrite of its C
 * (pipe_guest_rewrite()) and the C compiler with the pipeline's AOT flags
 * (pipe_tools_get()), into a shared object run with wabt's stock runtime
 * in a child process. Both call every exported function in order, in one
 * instance, with zero arguments, after Binaryen's hang-limit initializer,
 * as Binaryen's fuzzer does.
 *
 * Differences that the WebAssembly specification allows are explained and
 * counted: NaN payloads (any NaN matches any NaN), and NaN bits that went
 * on into memory or integers (a module that differs is compared again
 * after Binaryen's --denan, which turns every NaN its code makes into 0;
 * if the two sides then agree, the difference was one of NaN bits). Any
 * other difference fails the test. 60 modules in the suite; VIV_PROOF_MODULES=N for more. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "wasm-rt-impl.h"

/* Features both sides handle exactly: the pipeline's (pipe_wasm_opt_features)
 * without multi-value and reference types, whose results the two sides
 * print in ways that cannot be compared. */
static const char *const features[] = {
        "--mvp-features",    "--enable-mutable-globals", "--enable-nontrapping-float-to-int",
        "--enable-sign-ext", "--enable-bulk-memory",     NULL,
};

#define RANDOM_BYTES 2048
#define OUTPUT_CAP (4u << 20)

/* One event of a run: a call of an export, a logged value, a result or a
 * trap. */
struct event {
	char kind;      /* 'c' call, 'l' log, 'r' result, 't' trap, 'i' trap at instantiation */
	char name[128]; /* calls: the export */
	char type;      /* logs and results of the AOT side: i I f F (i32 i64 f32 f64) */
	char text[160]; /* the value as printed */
};

struct run {
	struct event *ev;
	size_t n, cap;
};

static struct {
	size_t modules, compared, exports, calls, values, traps, nan_explained, skipped;
	size_t rewritten, not_rewritten, denan_explained;
} fig;

static void add(struct run *r, char kind, const char *name, char type, const char *text)
{
	struct event *e;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
	}
	e = &r->ev[r->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->type = type;
	snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
	snprintf(e->text, sizeof(e->text), "%s", text ? text : "");
}

/* ---- Tools -------------------------------------------------------------------------------- */

static struct pipe_config cfg;
static struct pipe_ctx ctx;
static const struct pipe_tools *tools;
static char *dir;

/* Runs argv in dir; its output (caller frees) or NULL when it did not exit
 * 0 (the output then goes to *why, which the caller frees). */
static char *run_tool(const char *const *argv, char **why)
{
	struct viv_buf out;
	struct pipe_exit ex;
	char err[512] = "";
	enum viv_err e;

	viv_buf_init(&out, OUTPUT_CAP);
	e = pipe_spawn(&cfg, dir, NULL, argv, &out, &ex, err, sizeof(err));
	if (e || ex.code != 0) {
		if (why)
			*why = out.data ? strdup(out.data) : strdup(err);
		viv_buf_free(&out);
		return NULL;
	}
	return viv_buf_steal(&out);
}

static char *path_in(const char *name)
{
	return viv_path_join(dir, name);
}

/* ---- The reference: Binaryen's interpreter ---------------------------------------------- */

static void reference(struct run *r)
{
	const char *argv[16];
	size_t n = 0;
	char *out, *line, *save = NULL;

	argv[n++] = "wasm-opt";
	argv[n++] = "m.wasm";
	for (size_t i = 0; features[i]; i++)
		argv[n++] = features[i];
	argv[n++] = "--fuzz-exec-before";
	argv[n++] = "-q";
	argv[n] = NULL;
	out = run_tool(argv, NULL);
	cr_assert_not_null(out, "wasm-opt --fuzz-exec-before failed on its own module");
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p;

		if (strncmp(line, "[fuzz-exec] calling ", 20) == 0) {
			add(r, 'c', line + 20, 0, NULL);
		} else if (strncmp(line, "[LoggingExternalInterface logging ", 34) == 0) {
			char text[160];

			snprintf(text, sizeof(text), "%s", line + 34);
			text[strcspn(text, "]")] = '\0';
			add(r, 'l', NULL, 0, text);
		} else if (strncmp(line, "[fuzz-exec] note result: ", 25) == 0 &&
		           (p = strstr(line, " => ")) != NULL) {
			add(r, 'r', NULL, 0, p + 4);
		} else if (strncmp(line, "[trap ", 6) == 0) {
			add(r, 't', NULL, 0, line + 6);
		}
	}
	free(out);
}

/* ---- The AOT path --------------------------------------------------------------------------- */

/* One exported function of guest.h: its name, C symbol, result and
 * parameter types. */
struct export
{
	char name[128];
	char symbol[160];
	char result[16];
	size_t n_params;
	char params[64][8];
};

static const char *trim(char *s)
{
	while (*s == ' ')
		s++;
	for (size_t n = strlen(s); n && s[n - 1] == ' '; n--)
		s[n - 1] = '\0';
	return s;
}

/* The function exports of guest.h, in order, and the number of import
 * instances Z_guest_instantiate takes. Exports of other kinds (their
 * accessors return pointers) are left out, as Binaryen's fuzzer does. */
static struct export *parse_header(const char *h, size_t *n_out, size_t *imports_out)
{
	struct export *ex = NULL;
	size_t n = 0;
	const char *p = strstr(h, "void Z_guest_instantiate(");

	*imports_out = 0;
	for (const char *q = p; q && *q != ';'; q++)
		*imports_out += *q == ',';
	for (p = strstr(h, "/* export: '"); p; p = strstr(p + 1, "/* export: '")) {
		const char *name = p + 12, *end = strchr(name, '\'');
		const char *decl = strchr(p, '\n') + 1, *open = strchr(decl, '(');
		char line[1024], *args, *tok, *save = NULL;
		struct export e;
		size_t dl = (size_t)(strchr(decl, '\n') - decl);

		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "%.*s", (int)(end - name), name);
		snprintf(line, sizeof(line), "%.*s", (int)dl, decl);
		if (strchr(line, '*') < strchr(line, '(') && strchr(line, '*'))
			continue; /* memory, table or global */
		*strchr(line, '(') = '\0';
		{
			char *sp = strrchr(line, ' ');

			*sp = '\0';
			snprintf(e.result, sizeof(e.result), "%s", trim(line));
			snprintf(e.symbol, sizeof(e.symbol), "%s", sp + 1);
		}
		snprintf(line, sizeof(line), "%.*s", (int)(strchr(open, ')') - open - 1), open + 1);
		args = line;
		for (tok = strtok_r(args, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			const char *t = trim(tok);

			if (strncmp(t, "Z_guest_instance_t", 18) == 0)
				continue;
			cr_assert_lt(e.n_params, 64);
			snprintf(e.params[e.n_params++], 8, "%s", t);
		}
		ex = realloc(ex, (n + 1) * sizeof(*ex));
		ex[n++] = e;
	}
	*n_out = n;
	return ex;
}

static const char glue_head[] =
        "#include <stdio.h>\n"
        "#include <string.h>\n"
        "#include \"wasm-rt-impl.h\"\n"
        "#include \"guest.c\"\n"
        "static FILE *diff_out;\n"
        "struct Z_fuzzingZ2Dsupport_instance_t;\n"
        "void Z_fuzzingZ2DsupportZ_logZ2Di32(struct Z_fuzzingZ2Dsupport_instance_t *i, u32 x)\n"
        "{ (void)i; fprintf(diff_out, \"l i %d\\n\", (int)x); }\n"
        "void Z_fuzzingZ2DsupportZ_logZ2Di64(struct Z_fuzzingZ2Dsupport_instance_t *i, u64 x)\n"
        "{ (void)i; fprintf(diff_out, \"l I %d %d\\n\", (int)(u32)x, (int)(u32)(x >> 32)); }\n"
        "void Z_fuzzingZ2DsupportZ_logZ2Df32(struct Z_fuzzingZ2Dsupport_instance_t *i, f32 x)\n"
        "{ u32 b; (void)i; memcpy(&b, &x, 4); fprintf(diff_out, \"l f %08x\\n\", b); }\n"
        "void Z_fuzzingZ2DsupportZ_logZ2Df64(struct Z_fuzzingZ2Dsupport_instance_t *i, f64 x)\n"
        "{ u64 b; (void)i; memcpy(&b, &x, 8);\n"
        "  fprintf(diff_out, \"l F %016llx\\n\", (unsigned long long)b); }\n"
        "__attribute__((visibility(\"default\"))) void diff_run(FILE *out);\n"
        "__attribute__((visibility(\"default\"))) void diff_run(FILE *out)\n"
        "{\n"
        "  static Z_guest_instance_t inst;\n"
        "  wasm_rt_trap_t code;\n"
        "  diff_out = out;\n"
        "  Z_guest_init_module();\n"
        "  code = wasm_rt_impl_try();\n"
        "  if (code) { fprintf(out, \"i %d\\n\", (int)code); return; }\n";

/* The C that calls one export and prints its result. */
static void call_text(struct viv_buf *b, const struct export *e, bool hang_init)
{
	static const char *const zero[] = {"u32",  "0",   "u64", "0", "f32",
	                                   "0.0f", "f64", "0.0", NULL};

	cr_assert_eq(viv_buf_printf(b,
	                            "  fprintf(out, \"c %s\\n\");\n"
	                            "  code = wasm_rt_impl_try();\n"
	                            "  if (code) fprintf(out, \"t %%d\\n\", (int)code);\n"
	                            "  else {\n",
	                            e->name),
	             VIV_OK);
	if (hang_init)
		cr_assert_eq(viv_buf_printf(b, "    Z_guestZ_hangLimitInitializer(&inst);\n"),
		             VIV_OK);
	if (strcmp(e->result, "void") != 0)
		cr_assert_eq(viv_buf_printf(b, "    %s r = ", e->result), VIV_OK);
	else
		cr_assert_eq(viv_buf_printf(b, "    "), VIV_OK);
	cr_assert_eq(viv_buf_printf(b, "%s(&inst", e->symbol), VIV_OK);
	for (size_t i = 0; i < e->n_params; i++) {
		const char *z = "0";

		for (size_t k = 0; zero[k]; k += 2)
			if (strcmp(zero[k], e->params[i]) == 0)
				z = zero[k + 1];
		cr_assert_eq(viv_buf_printf(b, ", %s", z), VIV_OK);
	}
	cr_assert_eq(viv_buf_printf(b, ");\n"), VIV_OK);
	if (strcmp(e->result, "u32") == 0)
		cr_assert_eq(viv_buf_printf(b, "    fprintf(out, \"r i %%d\\n\", (int)r);\n"),
		             VIV_OK);
	else if (strcmp(e->result, "u64") == 0)
		cr_assert_eq(
		        viv_buf_printf(b, "    fprintf(out, \"r I %%lld\\n\", (long long)r);\n"),
		        VIV_OK);
	else if (strcmp(e->result, "f32") == 0)
		cr_assert_eq(viv_buf_printf(b, "    u32 x; memcpy(&x, &r, 4); fprintf(out, \"r f "
		                               "%%08x\\n\", x);\n"),
		             VIV_OK);
	else if (strcmp(e->result, "f64") == 0)
		cr_assert_eq(
		        viv_buf_printf(
		                b,
		                "    u64 x; memcpy(&x, &r, 8);\n"
		                "    fprintf(out, \"r F %%016llx\\n\", (unsigned long long)x);\n"),
		        VIV_OK);
	cr_assert_eq(viv_buf_printf(b, "  }\n"), VIV_OK);
}

/* wasm2c, the rewrite, the glue and the compiler; false (with why) when
 * a tool refused the module. */
static bool build(char **why)
{
	const char *w2c[] = {"wasm2c", "m.wasm", "-n", "guest", "-o", "guest.c", NULL};
	const char *argv[40];
	char *out, *h, *c, *gc_path, *h_path, *glue_path, *rewritten = NULL;
	size_t n_ex, imports, c_len, n = 0;
	struct export *ex;
	struct viv_buf glue;
	bool hang = false;

	out = run_tool(w2c, why);
	if (!out)
		return false;
	free(out);
	gc_path = path_in("guest.c");
	h_path = path_in("guest.h");
	cr_assert_eq(viv_read_file(gc_path, PIPE_GUEST_C_MAX, &c, &c_len), VIV_OK);
	if (pipe_guest_rewrite(c, c_len, &rewritten, NULL) == VIV_OK) {
		cr_assert_eq(viv_write_file_atomic(gc_path, rewritten, strlen(rewritten), 0644),
		             VIV_OK);
		fig.rewritten++;
	} else {
		fig.not_rewritten++;
	}
	free(rewritten);
	free(c);
	cr_assert_eq(viv_read_file(h_path, 64u << 20, &h, &c_len), VIV_OK);
	ex = parse_header(h, &n_ex, &imports);
	free(h);
	viv_buf_init(&glue, 0);
	cr_assert_eq(viv_buf_printf(&glue, "%s  Z_guest_instantiate(&inst", glue_head), VIV_OK);
	for (size_t i = 0; i < imports; i++)
		cr_assert_eq(viv_buf_printf(&glue, ", NULL"), VIV_OK);
	cr_assert_eq(viv_buf_printf(&glue, ");\n"), VIV_OK);
	for (size_t i = 0; i < n_ex; i++)
		hang = hang || strcmp(ex[i].name, "hangLimitInitializer") == 0;
	for (size_t i = 0; i < n_ex; i++)
		call_text(&glue, &ex[i], hang);
	cr_assert_eq(viv_buf_printf(&glue, "}\n"), VIV_OK);
	fig.exports += n_ex;
	free(ex);
	glue_path = path_in("glue.c");
	cr_assert_eq(viv_write_file_atomic(glue_path, glue.data, glue.len, 0644), VIV_OK);
	viv_buf_free(&glue);
	argv[n++] = tools->cc;
	for (size_t i = 0; tools->cflags[i] && n < 30; i++)
		argv[n++] = tools->cflags[i];
	argv[n++] = "-I.";
	argv[n++] = "-I" VIV_WASM_RT_IMPL_DIR;
	argv[n++] = "glue.c";
	argv[n++] = "-o";
	argv[n++] = "guest.so";
	argv[n] = NULL;
	out = run_tool(argv, why);
	free(gc_path);
	free(h_path);
	free(glue_path);
	if (!out)
		return false;
	free(out);
	return true;
}

/* Runs guest.so in a child process: wabt's runtime is this program's. */
static void aot(struct run *r)
{
	char *so = path_in("guest.so"), *outp = path_in("aot.out"), *text, *line, *save = NULL;
	size_t len;
	pid_t pid;
	int status;

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		FILE *f = fopen(outp, "w");
		void *h;
		void (*fn)(FILE *);

		alarm(30);
		wasm_rt_init();
		h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
		if (!h || !f)
			_exit(3);
		fn = (void (*)(FILE *))dlsym(h, "diff_run");
		if (!fn)
			_exit(4);
		fn(f);
		fclose(f);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the AOT module's run ended with status %d (%s)", status,
	          WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit");
	cr_assert_eq(viv_read_file(outp, OUTPUT_CAP, &text, &len), VIV_OK);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		switch (line[0]) {
		case 'c':
			add(r, 'c', line + 2, 0, NULL);
			break;
		case 'l':
		case 'r':
			add(r, line[0], NULL, line[2], line + 4);
			break;
		case 't':
		case 'i':
			add(r, line[0], NULL, 0, line + 2);
			break;
		}
	}
	free(text);
	free(so);
	free(outp);
}

/* ---- Comparing -------------------------------------------------------------------------- */

static bool ref_nan(const char *t)
{
	return strstr(t, "nan") != NULL;
}

/* Whether the reference's printed value ref matches the AOT side's value
 * (type, text); NaNs match NaNs and are counted. */
static bool same_value(const char *ref, char type, const char *text)
{
	switch (type) {
	case 'i':
		return strtol(ref, NULL, 10) == strtol(text, NULL, 10);
	case 'I':
		if (strchr(ref, ' ')) /* a logged i64: low and high halves */
			return strcmp(ref, text) == 0;
		return strtoll(ref, NULL, 10) == strtoll(text, NULL, 10);
	case 'f': {
		uint32_t bits = (uint32_t)strtoul(text, NULL, 16);
		float v;

		memcpy(&v, &bits, 4);
		if (isnan(v) || ref_nan(ref)) {
			fig.nan_explained += isnan(v) && ref_nan(ref);
			return isnan(v) && ref_nan(ref);
		}
		return (float)strtod(ref, NULL) == v &&
		       signbit((float)strtod(ref, NULL)) == signbit(v);
	}
	case 'F': {
		uint64_t bits = strtoull(text, NULL, 16);
		double v;

		memcpy(&v, &bits, 8);
		if (isnan(v) || ref_nan(ref)) {
			fig.nan_explained += isnan(v) && ref_nan(ref);
			return isnan(v) && ref_nan(ref);
		}
		return strtod(ref, NULL) == v && signbit(strtod(ref, NULL)) == signbit(v);
	}
	}
	return false;
}

/* NULL when the runs agree, else what differs first. */
static const char *compare(const struct run *ref, const struct run *got, char *buf, size_t len)
{
	size_t i;

	/* A trap while instantiating: the reference says nothing at all. */
	if (got->n == 1 && got->ev[0].kind == 'i')
		return ref->n == 0
		               ? NULL
		               : "the AOT module trapped at instantiation, the reference did not";
	for (i = 0; i < ref->n && i < got->n; i++) {
		const struct event *a = &ref->ev[i], *b = &got->ev[i];
		bool ok = a->kind == b->kind;

		if (ok && a->kind == 'c')
			ok = strcmp(a->name, b->name) == 0;
		else if (ok && (a->kind == 'l' || a->kind == 'r'))
			ok = same_value(a->text, b->type, b->text);
		if (!ok) {
			/* A long difference is cut; its start says enough. */
			if (snprintf(buf, len, "event %zu: reference %c %s %s, AOT %c %s %c %s", i,
			             a->kind, a->name, a->text, b->kind, b->name, b->type,
			             b->text) < 0)
				snprintf(buf, len, "event %zu differs", i);
			return buf;
		}
		fig.calls += a->kind == 'c';
		fig.values += a->kind == 'l' || a->kind == 'r';
		fig.traps += a->kind == 't';
	}
	if (i < ref->n || i < got->n) {
		snprintf(buf, len, "the reference has %zu events, the AOT side %zu", ref->n,
		         got->n);
		return buf;
	}
	return NULL;
}

/* Compares the two sides on m.wasm: NULL when they agree, else what
 * differs (in buf). A module the AOT path refuses counts in *failures and
 * is taken as agreeing, having been reported. */
static const char *run_both(size_t m, size_t *failures, char *buf, size_t len)
{
	struct run ref = {0}, got = {0};
	const char *diff = NULL;
	char *why = NULL;

	reference(&ref);
	if (!build(&why)) {
		/* A valid module the AOT path cannot take is a failure of its
		 * own. */
		cr_log_error("module %zu: the AOT path refused it: %.500s", m, why ? why : "");
		free(why);
		(*failures)++;
		fig.skipped++;
		free(ref.ev);
		return NULL;
	}
	aot(&got);
	diff = compare(&ref, &got, buf, len);
	free(ref.ev);
	free(got.ev);
	return diff;
}

/* m.wasm through Binaryen's --denan; false when it failed. */
static bool denan(void)
{
	const char *argv[16];
	size_t n = 0;
	char *out;

	argv[n++] = "wasm-opt";
	argv[n++] = "m.wasm";
	for (size_t i = 0; features[i]; i++)
		argv[n++] = features[i];
	argv[n++] = "--denan";
	argv[n++] = "-q";
	argv[n++] = "-o";
	argv[n++] = "m.wasm";
	argv[n] = NULL;
	out = run_tool(argv, NULL);
	free(out);
	return out != NULL;
}

/* ---- The test ------------------------------------------------------------------------------ */

Test(differential, binaryen_modules_agree_with_the_aot_path, .timeout = 3000)
{
	const char *env = getenv("VIV_PROOF_MODULES");
	size_t count = env ? strtoul(env, NULL, 10) : 60, failures = 0;
	const char *first_env = getenv("VIV_PROOF_FIRST");
	size_t first = first_env ? strtoul(first_env, NULL, 10) : 0;
	char err[512];
	unsigned seed = 20261204;
	double t0;
	struct timespec ts;

	dir = t_tmpdir();
	{
		char *tmp = path_in("tmp"); /* TMPDIR of every tool */

		cr_assert_eq(viv_mkdirs(tmp, 0755), VIV_OK);
		free(tmp);
	}
	t_config(&cfg, false);
	cfg.step_timeout_ms = 60000;
	pipe_ctx_init(&ctx, &cfg, dir);
	cr_assert_eq(pipe_tools_get(&ctx, &tools, err, sizeof(err)), VIV_OK, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double)ts.tv_sec;
	for (size_t m = 0; m < count; m++) {
		unsigned char bytes[RANDOM_BYTES];
		char *rnd = path_in("random.bin"), *why = NULL;
		const char *argv[16];
		size_t n = 0;
		const char *diff;
		char *out;

		for (size_t i = 0; i < sizeof(bytes); i++)
			bytes[i] = (unsigned char)rand_r(&seed);
		cr_assert_eq(viv_write_file_atomic(rnd, bytes, sizeof(bytes), 0644), VIV_OK);
		free(rnd);
		argv[n++] = "wasm-opt";
		argv[n++] = "random.bin";
		argv[n++] = "-ttf";
		for (size_t i = 0; features[i]; i++)
			argv[n++] = features[i];
		argv[n++] = "-o";
		argv[n++] = "m.wasm";
		argv[n] = NULL;
		if (m < first)
			continue; /* VIV_PROOF_FIRST: the random bytes were drawn */
		out = run_tool(argv, &why);
		cr_assert_not_null(out, "module %zu: wasm-opt -ttf failed: %s", m, why);
		free(out);
		{
			const char *cp[] = {"cp", "m.wasm", "orig.wasm", NULL};

			free(run_tool(cp, NULL));
		}
		fig.modules++;
		diff = run_both(m, &failures, err, sizeof(err));
		if (diff && !denan()) {
			/* --denan refused it: the difference stands. */
		} else if (diff) {
			char again[sizeof(err)];
			const char *diff2 = run_both(m, &failures, again, sizeof(again));

			if (!diff2) {
				fig.denan_explained++;
				cr_log_info("module %zu: NaN bits (%s); agrees after --denan", m,
				            diff);
				diff = NULL;
			}
		}
		if (diff) {
			char keep[300];

			snprintf(keep, sizeof(keep), "/tmp/viv-differential-%zu.wasm", m);
			{
				char *mw = path_in("orig.wasm"), *data;
				size_t len;

				if (viv_read_file(mw, 64u << 20, &data, &len) == VIV_OK) {
					cr_assert_eq(viv_write_file_atomic(keep, data, len, 0644),
					             VIV_OK);
					free(data);
				}
				free(mw);
			}
			cr_log_error("module %zu differs (kept as %s): %s", m, keep, diff);
			failures++;
		} else {
			fig.compared++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr,
	        "figure: differential: %zu random modules from Binaryen, %zu agree with the AOT "
	        "path (wasm2c, the pipeline's rewrite, cc with the AOT flags) and %zu differ; "
	        "%zu calls, %zu values and %zu traps compared; explained: %zu NaNs matched by "
	        "NaN-ness alone and %zu modules whose NaN bits went on into memory or integers "
	        "agree after --denan (NaN bits are the specification's choice); %.0f s\n",
	        fig.modules, fig.compared, failures, fig.calls, fig.values, fig.traps,
	        fig.nan_explained, fig.denan_explained, (double)ts.tv_sec - t0);
	pipe_ctx_free(&ctx);
	viv_rmtree_or_log(dir);
	free(dir);
	cr_assert_eq(failures, 0, "%zu modules differ", failures);
}
