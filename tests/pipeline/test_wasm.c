/* The wasm reader: imports, exports and types, the mode, the import check,
 * and hostile bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static char err[1024];

static struct pipe_wasm_info *parse(const char *wat)
{
	size_t len = 0;
	char *bytes = t_wat_bytes(wat, &len);
	struct pipe_wasm_info *w = NULL;

	cr_assert_eq(pipe_wasm_parse(bytes, len, &w, err, sizeof(err)), VIV_OK, "%s", err);
	free(bytes);
	return w;
}

Test(wasm, imports_exports_and_types)
{
	struct pipe_wasm_info *w =
	        parse("(module"
	              " (type $t (func (param i32 i64 f32 f64) (result i32)))"
	              " (import \"wasi_snapshot_preview1\" \"fd_write\""
	              "  (func (param i32 i32 i32 i32) (result i32)))"
	              " (import \"env\" \"g\" (global i32))"
	              " (import \"env\" \"f\" (func (type $t)))"
	              " (memory 1) (table 2 funcref)"
	              " (global (mut i32) (i32.const 7)) (global i64 (i64.const -1))"
	              " (global f64 (f64.const 1.5))"
	              " (func $run)"
	              " (func $two (result i32 i32) i32.const 1 i32.const 2)"
	              " (export \"run\" (func $run)) (export \"two\" (func $two))"
	              " (export \"mem\" (memory 0)) (export \"tbl\" (table 0))"
	              " (export \"imp\" (func 1)))");
	const struct pipe_wasm_export *e;
	char t[128];

	cr_assert_eq(w->n_imports, 3);
	cr_assert_str_eq(w->imports[0].module, "wasi_snapshot_preview1");
	cr_assert_str_eq(w->imports[0].name, "fd_write");
	cr_assert_eq(w->imports[0].kind, PIPE_WASM_FUNC);
	cr_assert_str_eq(w->imports[0].type, "iiii:i");
	cr_assert_eq(w->imports[1].kind, PIPE_WASM_GLOBAL);
	cr_assert_null(w->imports[1].type);
	cr_assert_str_eq(w->imports[2].type, "iIfF:i");
	cr_assert_eq(w->n_funcs, 4);
	cr_assert_eq(w->n_memories, 1);
	cr_assert_eq(w->n_tables, 1);
	cr_assert_eq(w->n_globals, 4);
	cr_assert_eq(w->n_exports, 5);
	e = pipe_wasm_export_find(w, "run", PIPE_WASM_FUNC);
	cr_assert_not_null(e);
	cr_assert_str_eq(e->type, ":");
	e = pipe_wasm_export_find(w, "two", PIPE_WASM_FUNC);
	cr_assert_str_eq(e->type, ":ii");
	pipe_wasm_type_text(e->type, t, sizeof(t));
	cr_assert_str_eq(t, "() -> (i32, i32)");
	e = pipe_wasm_export_find(w, "imp", PIPE_WASM_FUNC);
	cr_assert_str_eq(e->type, "iIfF:i");
	pipe_wasm_type_text(e->type, t, sizeof(t));
	cr_assert_str_eq(t, "(i32, i64, f32, f64) -> i32");
	cr_assert_not_null(pipe_wasm_export_find(w, "mem", PIPE_WASM_MEMORY));
	cr_assert_null(pipe_wasm_export_find(w, "mem", PIPE_WASM_FUNC));
	pipe_wasm_free(w);
}

static enum viv_err check(const char *wat, enum viv_guest_mode *mode)
{
	struct pipe_wasm_info *w = parse(wat);
	enum viv_err e = pipe_wasm_check(w, mode, err, sizeof(err));

	pipe_wasm_free(w);
	return e;
}

Test(wasm, mode)
{
	enum viv_guest_mode mode = 0;

	cr_assert_eq(check("(module (func) (export \"run\" (func 0)))", &mode), VIV_OK, "%s", err);
	cr_assert_eq(mode, VIV_GUEST_HOSTCALL);
	cr_assert_eq(check("(module (func) (export \"_start\" (func 0)))", &mode), VIV_OK);
	cr_assert_eq(mode, VIV_GUEST_CGI);
	/* run wins over _start */
	cr_assert_eq(check("(module (func) (export \"_start\" (func 0)) (export \"run\" (func 0)))",
	                   &mode),
	             VIV_OK);
	cr_assert_eq(mode, VIV_GUEST_HOSTCALL);
	/* a run of the wrong type does not make a handler */
	cr_assert_eq(check("(module (func (param i32)) (func) (export \"run\" (func 0))"
	                   " (export \"_start\" (func 1)))",
	                   &mode),
	             VIV_OK);
	cr_assert_eq(mode, VIV_GUEST_CGI);
	mode = 0;
	cr_assert_eq(
	        check("(module (func (result i32) i32.const 0) (export \"run\" (func 0)))", &mode),
	        VIV_ERR_INVALID);
	cr_assert_eq(mode, 0);
	cr_assert(strstr(err, "exports run with type () -> i32"), "%s", err);
	cr_assert_eq(check("(module (func) (export \"main\" (func 0)))", &mode), VIV_ERR_INVALID);
	cr_assert(strstr(err, "exports neither a function run"), "%s", err);
}

Test(wasm, every_unknown_import_is_named_with_its_type)
{
	enum viv_guest_mode mode = 0;

	cr_assert_eq(check("(module"
	                   " (import \"env\" \"foo\" (func (param i32) (result i32)))"
	                   " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                   "  (func (param i32 i32 i32 i32) (result i32)))"
	                   " (import \"env\" \"bar\" (func))"
	                   " (func) (export \"_start\" (func 3)))",
	                   &mode),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_str_eq(err, "the module imports what Vivarium does not provide: env.foo (i32) -> "
	                      "i32, env.bar () -> ()");
}

Test(wasm, wrong_types_and_non_functions_are_refused)
{
	enum viv_guest_mode mode = 0;

	cr_assert_eq(check("(module"
	                   " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                   "  (func (param i32) (result i32)))"
	                   " (import \"env\" \"memory\" (memory 1))"
	                   " (import \"env\" \"t\" (table 1 funcref))"
	                   " (import \"env\" \"g\" (global i32))"
	                   " (func) (export \"_start\" (func 1)))",
	                   &mode),
	             VIV_ERR_UNSUPPORTED);
	cr_assert(strstr(err, "wasi_snapshot_preview1.fd_write (i32) -> i32 (Vivarium's is (i32, "
	                      "i32, i32, i32) -> i32)"),
	          "%s", err);
	cr_assert(strstr(err, "env.memory (a memory)"), "%s", err);
	cr_assert(strstr(err, "env.t (a table)"), "%s", err);
	cr_assert(strstr(err, "env.g (a global)"), "%s", err);
}

Test(wasm, provided_imports_pass)
{
	enum viv_guest_mode mode = 0;

	cr_assert_eq(check("(module"
	                   " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                   "  (func (param i32 i32 i32 i32) (result i32)))"
	                   " (import \"wasi_snapshot_preview1\" \"proc_exit\" (func (param i32)))"
	                   " (func) (export \"_start\" (func 2)))",
	                   &mode),
	             VIV_OK, "%s", err);
	cr_assert_eq(mode, VIV_GUEST_CGI);
}

Test(wasm, long_lists_are_cut_with_a_count)
{
	struct viv_buf wat;
	enum viv_guest_mode mode;
	char small[200];
	struct pipe_wasm_info *w;

	viv_buf_init(&wat, 0);
	cr_assert_eq(viv_buf_printf(&wat, "(module"), VIV_OK);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(
		        viv_buf_printf(&wat,
		                       " (import \"env\" \"a_rather_long_import_name_%d\" (func))",
		                       i),
		        VIV_OK);
	cr_assert_eq(viv_buf_printf(&wat, " (func) (export \"_start\" (func 40)))"), VIV_OK);
	w = parse(wat.data);
	cr_assert_eq(pipe_wasm_check(w, &mode, small, sizeof(small)), VIV_ERR_UNSUPPORTED);
	cr_assert(strstr(small, "more"), "%s", small);
	cr_assert_lt(strlen(small), sizeof(small));
	pipe_wasm_free(w);
	viv_buf_free(&wat);
}

Test(wasm, garbage_and_truncations_are_rejected_without_crashing)
{
	size_t len = 0;
	char *bytes =
	        t_wat_bytes("(module"
	                    " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                    "  (func (param i32 i32 i32 i32) (result i32)))"
	                    " (memory 1) (global (mut i32) (i32.const 7))"
	                    " (func) (export \"_start\" (func 1)) (export \"memory\" (memory 0)))",
	                    &len);
	struct pipe_wasm_info *w = NULL;

	/* Every prefix: valid ones parse, the rest fail cleanly. */
	for (size_t n = 0; n < len; n++) {
		enum viv_err e = pipe_wasm_parse(bytes, n, &w, err, sizeof(err));
		if (e == VIV_OK) {
			pipe_wasm_free(w);
			w = NULL;
		} else {
			cr_assert_null(w);
			cr_assert_neq(err[0], '\0');
		}
	}
	/* Every single-byte corruption. */
	for (size_t i = 8; i < len; i++) {
		for (int v = 0; v < 256; v += 51) {
			char saved = bytes[i];
			bytes[i] = (char)v;
			if (pipe_wasm_parse(bytes, len, &w, err, sizeof(err)) == VIV_OK)
				pipe_wasm_free(w);
			w = NULL;
			bytes[i] = saved;
		}
	}
	cr_assert_eq(pipe_wasm_parse("garbage!", 8, &w, err, sizeof(err)), VIV_ERR_INVALID);
	cr_assert(strstr(err, "not a WebAssembly binary"), "%s", err);
	cr_assert_eq(pipe_wasm_parse("\0asm\2\0\0\0", 8, &w, err, sizeof(err)),
	             VIV_ERR_UNSUPPORTED);
	free(bytes);
}

Test(wasm, hostile_counts_and_sizes)
{
	static const unsigned char huge_count[] = {
	        0, 'a', 's',  'm',  1,    0,    0,    0,
	        1, 5,   0xff, 0xff, 0xff, 0xff, 0x0f, /* type section: 4 billion types */
	};
	static const unsigned char section_past_end[] = {
	        0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0x80, 0x80, 0x04, 0x00,
	};
	static const unsigned char long_leb[] = {
	        0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
	};
	static const unsigned char nul_name[] = {
	        0, 'a', 's', 'm', 1,   0,   0,   0, 1, 4, 1, 0x60, 0, 0, /* type 0: [] -> [] */
	        3, 2,   1,   0,                                          /* one function */
	        7, 8,   1,   4,   'r', 'u', 'n', 0, 0, 0,                /* export "run\0" */
	};
	static const unsigned char out_of_order[] = {
	        0, 'a', 's', 'm', 1, 0, 0, 0, 3, 1, 0, 1, 1, 0,
	};
	struct pipe_wasm_info *w = NULL;

	cr_assert_eq(pipe_wasm_parse(huge_count, sizeof(huge_count), &w, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(err, "larger than the data"), "%s", err);
	cr_assert_eq(
	        pipe_wasm_parse(section_past_end, sizeof(section_past_end), &w, err, sizeof(err)),
	        VIV_ERR_INVALID);
	cr_assert(strstr(err, "runs past the end"), "%s", err);
	cr_assert_eq(pipe_wasm_parse(long_leb, sizeof(long_leb), &w, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert_eq(pipe_wasm_parse(nul_name, sizeof(nul_name), &w, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(err, "NUL"), "%s", err);
	cr_assert_eq(pipe_wasm_parse(out_of_order, sizeof(out_of_order), &w, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(err, "out of order"), "%s", err);
	cr_assert_null(w);
}

/* ---- Relocatable objects ---------------------------------------------------------- */

/* The object clang makes of src, with one more flag before it (or NULL). */
static char *object_of(const char *src, const char *flag, size_t *len)
{
	const char *argv[] = {"clang",
	                      "--target=wasm32-wasi",
	                      "--sysroot=/usr",
	                      "-O2",
	                      "-c",
	                      "-o",
	                      "a.o",
	                      flag ? flag : "-g0",
	                      "a.c",
	                      NULL};
	char *dir = t_tmpdir(), *path, *data, why[256] = "";
	struct pipe_config cfg;
	struct pipe_exit ex;
	struct viv_buf output;

	t_write(dir, "a.c", src);
	t_config(&cfg, false);
	viv_buf_init(&output, 0);
	memset(&ex, 0, sizeof(ex));
	cr_assert_eq(pipe_spawn(&cfg, dir, NULL, argv, &output, &ex, why, sizeof(why)), VIV_OK,
	             "clang: %s", why);
	cr_assert_eq(ex.code, 0, "clang failed on %s:\n%s", src, output.data ? output.data : "");
	viv_buf_free(&output);
	cr_assert(asprintf(&path, "%s/a.o", dir) > 0);
	data = t_read(path, len);
	cr_assert_not_null(data);
	viv_rmtree_or_log(dir);
	free(dir);
	free(path);
	return data;
}

static const char *const entry_names[] = {"main", "__main_argc_argv", "run", "_Z3runv", NULL};

Test(wasm, objects_say_which_entry_points_they_define)
{
	static const struct {
		const char *src, *flag;
		bool main, argc_main, run, cxx_run;
	} cases[] = {
	        {"int main(void) { return 0; }\n", NULL, true, false, false, false},
	        {"int main(int c, char **v) { return c + !v; }\n", NULL, false, true, false, false},
	        {"void run(void) {}\n", NULL, false, false, true, false},
	        {"void run(void) {}\n", "-xc++", false, false, false, true},
	        {"extern \"C\" void run(void) {}\n", "-xc++", false, false, true, false},
	        /* Called but defined elsewhere, weak, or static: not defined here. */
	        {"void run(void);\nint f(void) { run(); return 1; }\n", NULL, false, false, false,
	         false},
	        {"__attribute__((weak)) void run(void) {}\n", NULL, false, false, false, false},
	        {"static void run(void) {}\nvoid (*p)(void) = run;\n", NULL, false, false, false,
	         false},
	        /* A data symbol of the same name is no function. */
	        {"int run = 3;\n", NULL, false, false, false, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 0;
		char *o = object_of(cases[i].src, cases[i].flag, &len);
		bool found[4];

		cr_assert_eq(pipe_wasm_object_defines(o, len, entry_names, found, err, sizeof(err)),
		             VIV_OK, "%s: %s", cases[i].src, err);
		cr_assert_eq(found[0], cases[i].main, "%s", cases[i].src);
		cr_assert_eq(found[1], cases[i].argc_main, "%s", cases[i].src);
		cr_assert_eq(found[2], cases[i].run, "%s", cases[i].src);
		cr_assert_eq(found[3], cases[i].cxx_run, "%s", cases[i].src);
		free(o);
	}
}

Test(wasm, objects_that_are_not_clang_wasm_objects_are_refused)
{
	size_t len = 0, mlen = 0;
	char *bc = object_of("void run(void) {}\n", "-flto", &len);
	char *module = t_wat_bytes("(module (func (export \"run\")))", &mlen);
	char *o;
	bool found[4];

	cr_assert_eq(pipe_wasm_object_defines(bc, len, entry_names, found, err, sizeof(err)),
	             VIV_ERR_UNSUPPORTED);
	cr_assert(strstr(err, "not a WebAssembly object"), "%s", err);
	cr_assert_eq(pipe_wasm_object_defines(module, mlen, entry_names, found, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(err, "no linking section"), "%s", err);
	free(bc);
	free(module);

	/* Every prefix and many corruptions of a real object: a clean answer,
	 * never a crash or a read past the end (run under ASan too). */
	o = object_of("int main(void) { return 0; }\nvoid run(void) {}\n", NULL, &len);
	for (size_t n = 0; n < len; n++)
		if (pipe_wasm_object_defines(o, n, entry_names, found, err, sizeof(err)))
			cr_assert_gt(strlen(err), 0, "a refusal says why");
	for (size_t i = 8; i < len; i++) {
		char saved = o[i];

		o[i] = (char)0xff;
		if (pipe_wasm_object_defines(o, len, entry_names, found, err, sizeof(err)))
			cr_assert_gt(strlen(err), 0, "a refusal says why");
		o[i] = saved;
	}
	cr_assert_eq(pipe_wasm_object_defines(o, len, entry_names, found, err, sizeof(err)), VIV_OK,
	             "%s", err);
	cr_assert(found[0] && found[2]);
	free(o);
}

/* The memory and table a module keeps to itself are exported under the
 * reserved names, whether or not it has an export section and whatever
 * sections come after; what it exports already stays as it is. */
Test(wasm, a_private_memory_and_table_are_shown_to_the_optimizer)
{
	static const char *const wats[] = {
	        /* no export section, sections after it */
	        "(module (memory 1) (table 2 funcref) (func $f) (elem (i32.const 0) $f)"
	        " (data (i32.const 8) \"kept\"))",
	        /* an export section, and a start section after it */
	        "(module (memory 1) (table 1 funcref) (func $f) (func (export \"run\"))"
	        " (start $f))",
	        /* a memory only, nothing after */
	        "(module (memory 1))",
	};
	const unsigned want[] = {PIPE_EXPOSED_MEMORY | PIPE_EXPOSED_TABLE,
	                         PIPE_EXPOSED_MEMORY | PIPE_EXPOSED_TABLE, PIPE_EXPOSED_MEMORY};
	for (size_t i = 0; i < sizeof(wats) / sizeof(wats[0]); i++) {
		struct pipe_wasm_info *w = NULL;
		char *out = NULL, *dir = t_tmpdir(), *path;
		size_t len, out_len = 0;
		unsigned added = 0;
		char *bytes = t_wat_bytes(wats[i], &len);

		cr_assert_eq(pipe_wasm_expose(bytes, len, &out, &out_len, &added, err, sizeof(err)),
		             VIV_OK, "%s", err);
		cr_assert_eq(added, want[i], "module %zu", i);
		cr_assert_not_null(out);
		cr_assert_eq(pipe_wasm_parse(out, out_len, &w, err, sizeof(err)), VIV_OK, "%s",
		             err);
		cr_assert_not_null(
		        pipe_wasm_export_find(w, PIPE_WASM_EXPOSED_MEMORY, PIPE_WASM_MEMORY));
		cr_assert_eq(pipe_wasm_export_find(w, PIPE_WASM_EXPOSED_TABLE, PIPE_WASM_TABLE) !=
		                     NULL,
		             (want[i] & PIPE_EXPOSED_TABLE) != 0);
		if (i == 1)
			cr_assert_not_null(pipe_wasm_export_find(w, "run", PIPE_WASM_FUNC));
		pipe_wasm_free(w);
		/* The result is valid WebAssembly to the reference validator. */
		path = viv_path_join(dir, "m.wasm");
		cr_assert_eq(viv_write_file_atomic(path, out, out_len, 0644), VIV_OK);
		{
			const char *argv[] = {"wasm-validate", path, NULL};
			struct pipe_config cfg;
			struct viv_buf output;
			struct pipe_exit ex;

			t_config(&cfg, false);
			viv_buf_init(&output, 4096);
			cr_assert_eq(
			        pipe_spawn(&cfg, dir, NULL, argv, &output, &ex, err, sizeof(err)),
			        VIV_OK);
			cr_assert_eq(ex.code, 0, "module %zu: %s", i, output.data);
			viv_buf_free(&output);
		}
		free(path);
		viv_rmtree_or_log(dir);
		free(dir);
		free(bytes);
		free(out);
	}
}

Test(wasm, a_module_that_exports_its_memory_and_table_is_left_alone)
{
	char *out = NULL;
	size_t len, out_len = 0;
	unsigned added = 9;
	char *bytes = t_wat_bytes("(module (memory (export \"memory\") 1)"
	                          " (table (export \"t\") 1 funcref) (func (export \"run\")))",
	                          &len);

	cr_assert_eq(pipe_wasm_expose(bytes, len, &out, &out_len, &added, err, sizeof(err)),
	             VIV_OK);
	cr_assert_eq(added, 0);
	cr_assert_null(out);
	free(bytes);
	bytes = t_wat_bytes("(module (func (export \"run\")))", &len);
	cr_assert_eq(pipe_wasm_expose(bytes, len, &out, &out_len, &added, err, sizeof(err)),
	             VIV_OK);
	cr_assert_eq(added, 0, "a module with no memory or table gains nothing");
	free(bytes);
}
