/* The glue and the C compiler: guest.h shapes, generated glue.c, and a
 * hand-made module compiled to a .so that is loaded and run with wabt's
 * stock runtime. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "viv_guest.h"

TestSuite(glue, .init = t_ctx_setup, .fini = t_ctx_teardown, .timeout = 120);

static const char two_imports_h[] =
        "typedef struct Z_guest_instance_t {\n"
        "  struct Z_env_instance_t* Z_env_instance;\n"
        "  struct Z_wasi_snapshot_preview1_instance_t* Z_wasi_snapshot_preview1_instance;\n"
        "  u32 w2c_g0;\n"
        "  wasm_rt_memory_t w2c_M0;\n"
        "  wasm_rt_memory_t w2c_M1;\n"
        "  wasm_rt_funcref_table_t w2c_T0;\n"
        "} Z_guest_instance_t;\n"
        "\n"
        "void Z_guest_init_module(void);\n"
        "void Z_guest_instantiate(Z_guest_instance_t*, struct Z_env_instance_t*, struct "
        "Z_wasi_snapshot_preview1_instance_t*);\n"
        "void Z_guest_free(Z_guest_instance_t*);\n"
        "void Z_guestZ_run(Z_guest_instance_t*);\n";

Test(glue, shape_of_guest_h)
{
	struct pipe_guest_shape s;

	cr_assert_eq(pipe_guest_shape_parse(two_imports_h, &s, t_cx.err, sizeof(t_cx.err)), VIV_OK,
	             "%s", t_cx.err);
	cr_assert_eq(s.n_import_instances, 2);
	cr_assert_str_eq(s.memory_field, "w2c_M0");
	cr_assert_str_eq(s.table_field, "w2c_T0");
	cr_assert_eq(pipe_guest_shape_parse("void Z_guest_instantiate(Z_guest_instance_t*);", &s,
	                                    t_cx.err, sizeof(t_cx.err)),
	             VIV_ERR_INTERNAL);
}

Test(glue, generated_text)
{
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, false, T_HASH, false, false};
	char *text = NULL;

	cr_assert_eq(pipe_glue_generate(two_imports_h, &spec, &text, t_cx.err, sizeof(t_cx.err)),
	             VIV_OK, "%s", t_cx.err);
	cr_assert(strstr(text, "#include \"guest.c\""));
	cr_assert(strstr(text, "Z_guest_instantiate((Z_guest_instance_t *)instance, host, host);"),
	          "%s", text);
	cr_assert(strstr(text, "->w2c_M0;"), "%s", text);
	cr_assert(strstr(text, "Z_guestZ_run((Z_guest_instance_t *)instance);"));
	cr_assert(strstr(text, ".initialize = NULL,"));
	cr_assert(strstr(text, ".export_malloc = NULL,"), "%s", text);
	cr_assert(strstr(text, "_Static_assert(VIV_GUEST_ABI == 2,"), "%s", text);
	cr_assert(strstr(text, T_HASH));
	free(text);
	/* _initialize asked for but not declared: a clear internal error */
	spec.has_initialize = true;
	cr_assert_eq(pipe_glue_generate(two_imports_h, &spec, &text, t_cx.err, sizeof(t_cx.err)),
	             VIV_ERR_INTERNAL);
	spec.has_initialize = false;
	spec.hash = "../../etc";
	cr_assert_eq(pipe_glue_generate(two_imports_h, &spec, &text, t_cx.err, sizeof(t_cx.err)),
	             VIV_ERR_INTERNAL);
}

static const struct viv_guest *build_and_load(const char *wat, const struct pipe_glue_spec *spec,
                                              void **handle)
{
	const struct pipe_tools *tools = NULL;
	char *wasm = t_wat(t_cx.dir, "m.wasm", wat);
	char *so = NULL;
	const struct viv_guest *g;

	cr_assert_eq(pipe_tools_get(&t_cx.ctx, &tools, t_cx.err, sizeof(t_cx.err)), VIV_OK, "%s",
	             t_cx.err);
	cr_assert_eq(
	        pipe_aot(&t_cx.ctx, tools, "m.wasm", spec, NULL, NULL, t_cx.err, sizeof(t_cx.err)),
	        VIV_OK, "%s\n%s", t_cx.err, t_cx.ctx.log.data);
	so = viv_path_join(t_cx.dir, "guest.so");
	*handle = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(*handle, "%s", dlerror());
	g = dlsym(*handle, VIV_GUEST_SYMBOL);
	cr_assert_not_null(g, "%s", dlerror());
	/* Nothing but the contract is exported. */
	cr_assert_null(dlsym(*handle, "Z_guest_instantiate"));
	cr_assert_null(dlsym(*handle, "Z_guestZ_run"));
	free(wasm);
	free(so);
	return g;
}

/* A handler that keeps its memory to itself: the accessor still reaches
 * it. */
Test(glue, runs_with_the_stock_runtime)
{
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, true, T_HASH, false, false};
	const struct viv_guest *g;
	void *handle, *inst;
	wasm_rt_memory_t *mem;

	g = build_and_load("(module (memory 1) (table 2 funcref)"
	                   " (global $g (mut i32) (i32.const 0))"
	                   " (func $init (global.set $g (i32.const 40)))"
	                   " (func $run (i32.store (i32.const 16)"
	                   "   (i32.add (global.get $g) (i32.const 2))))"
	                   " (export \"_initialize\" (func $init)) (export \"run\" (func $run)))",
	                   &spec, &handle);
	cr_assert_eq(g->abi, VIV_GUEST_ABI);
	cr_assert_eq(g->mode, VIV_GUEST_HOSTCALL);
	cr_assert_str_eq(g->hash, T_HASH);
	cr_assert_not_null(g->memory);
	cr_assert_not_null(g->table);
	cr_assert_not_null(g->initialize);
	wasm_rt_init();
	g->init_module();
	inst = calloc(1, g->instance_size);
	g->instantiate(inst, NULL);
	mem = g->memory(inst);
	cr_assert_eq(mem->size, 65536);
	cr_assert_eq(g->table(inst)->size, 2);
	g->initialize(inst);
	g->entry(inst);
	cr_assert_eq(mem->data[16], 42);
	g->free_instance(inst);
	free(inst);
	dlclose(handle);
}

Test(glue, command_with_imports_loads_lazily)
{
	struct pipe_glue_spec spec = {VIV_GUEST_CGI, false, T_HASH, false, false};
	const struct viv_guest *g;
	void *handle;

	g = build_and_load(
	        "(module"
	        " (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32)))"
	        " (func (call $exit (i32.const 0))) (export \"_start\" (func 1)))",
	        &spec, &handle);
	cr_assert_eq(g->mode, VIV_GUEST_CGI);
	cr_assert_null(g->memory);
	cr_assert_null(g->table);
	cr_assert_null(g->initialize);
	cr_assert_not_null(g->entry);
	cr_assert_null(g->export_malloc);
	cr_assert_null(g->export_free);
	cr_assert_gt(g->instance_size, 0);
	dlclose(handle);
}

/* Guest ABI 2: a Terrafirma-style module's own allocator, reached by the
 * host through the glue. */
Test(glue, exported_allocator_is_callable)
{
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, false, T_HASH, true, true};
	const struct viv_guest *g;
	void *handle, *inst;
	wasm_rt_memory_t *mem;

	g = build_and_load("(module (memory 1)"
	                   " (global $top (mut i32) (i32.const 1024))"
	                   " (global $freed (mut i32) (i32.const 0))"
	                   " (func $malloc (param $n i32) (result i32) (local $p i32)"
	                   "   (local.set $p (global.get $top))"
	                   "   (global.set $top (i32.add (global.get $top) (local.get $n)))"
	                   "   (local.get $p))"
	                   " (func $free (param $p i32) (global.set $freed (local.get $p))"
	                   "   (i32.store (i32.const 8) (local.get $p)))"
	                   " (func $run)"
	                   " (export \"default_malloc_impl\" (func $malloc))"
	                   " (export \"default_free_impl\" (func $free))"
	                   " (export \"run\" (func $run)))",
	                   &spec, &handle);
	cr_assert_not_null(g->export_malloc);
	cr_assert_not_null(g->export_free);
	wasm_rt_init();
	g->init_module();
	inst = calloc(1, g->instance_size);
	g->instantiate(inst, NULL);
	mem = g->memory(inst);
	cr_assert_eq(g->export_malloc(inst, 100), 1024);
	cr_assert_eq(g->export_malloc(inst, 8), 1124);
	g->export_free(inst, 1124);
	cr_assert_eq(mem->data[8] | (mem->data[9] << 8), 1124);
	g->free_instance(inst);
	free(inst);
	dlclose(handle);
}

Test(glue, allocator_text_and_its_checks)
{
	static const char h[] = "typedef struct Z_guest_instance_t {\n"
	                        "  wasm_rt_memory_t w2c_M0;\n"
	                        "} Z_guest_instance_t;\n"
	                        "void Z_guest_instantiate(Z_guest_instance_t*);\n"
	                        "void Z_guestZ_run(Z_guest_instance_t*);\n"
	                        "u32 Z_guestZ_default_malloc_impl(Z_guest_instance_t*, u32);\n";
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, false, T_HASH, true, false};
	char *text = NULL;

	cr_assert_eq(pipe_glue_generate(h, &spec, &text, t_cx.err, sizeof(t_cx.err)), VIV_OK, "%s",
	             t_cx.err);
	cr_assert(strstr(text, "return Z_guestZ_default_malloc_impl((Z_guest_instance_t "
	                       "*)instance, size);"),
	          "%s", text);
	cr_assert(strstr(text, ".export_malloc = viv_glue_malloc,"), "%s", text);
	cr_assert(strstr(text, ".export_free = NULL,"), "%s", text);
	free(text);
	/* Asked for but not declared with that type: a clear internal error. */
	spec.has_free = true;
	cr_assert_eq(pipe_glue_generate(h, &spec, &text, t_cx.err, sizeof(t_cx.err)),
	             VIV_ERR_INTERNAL);
	cr_assert(strstr(t_cx.err, "Z_guestZ_default_free_impl"), "%s", t_cx.err);
}

Test(glue, artifact_hash_covers_mode_and_bytes)
{
	const struct pipe_tools *tools = NULL;
	char a[VIV_SHA256_HEX_LEN + 1], b[VIV_SHA256_HEX_LEN + 1], c[VIV_SHA256_HEX_LEN + 1];
	char d[VIV_SHA256_HEX_LEN + 1];

	cr_assert_eq(pipe_tools_get(&t_cx.ctx, &tools, t_cx.err, sizeof(t_cx.err)), VIV_OK, "%s",
	             t_cx.err);
	cr_assert(strstr(tools->wasm2c_version, "1."), "%s", tools->wasm2c_version);
	cr_assert_eq(pipe_artifact_hash(tools, VIV_GUEST_CGI, "abc", 3, a), VIV_OK);
	cr_assert_eq(pipe_artifact_hash(tools, VIV_GUEST_CGI, "abc", 3, b), VIV_OK);
	cr_assert_eq(pipe_artifact_hash(tools, VIV_GUEST_HOSTCALL, "abc", 3, c), VIV_OK);
	cr_assert_eq(pipe_artifact_hash(tools, VIV_GUEST_CGI, "abd", 3, d), VIV_OK);
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, c);
	cr_assert_str_neq(a, d);
	cr_assert_eq(strlen(a), 64);
}

/* ---- A module compiled in parts ------------------------------------------------- */

/* Calls between parts, call_indirect from another part than the type table
 * and the table's elements, and memory.init of a passive segment, which
 * keeps its function in part 0 with the segment. */
static const char parts_wat[] =
        "(module (memory 1) (table 2 funcref)"
        " (type $unop (func (param i32) (result i32)))"
        " (elem (i32.const 0) $double $triple)"
        " (data $d \"\\2a\\00\\00\\00\")"
        " (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))"
        " (func $triple (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))"
        " (func $inc (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))"
        " (func $load42 (result i32)"
        "   (memory.init $d (i32.const 100) (i32.const 0) (i32.const 4))"
        "   (i32.load (i32.const 100)))"
        " (func $run"
        "   (i32.store (i32.const 0) (call_indirect (type $unop) (i32.const 5) (i32.const 0)))"
        "   (i32.store (i32.const 4) (call_indirect (type $unop) (i32.const 5) (i32.const 1)))"
        "   (i32.store (i32.const 8) (call $inc (call $load42))))"
        " (export \"run\" (func $run)))";

Test(glue, module_compiled_in_parts_runs_alike)
{
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, false, T_HASH, false, false};
	const struct viv_guest *g;
	void *handle, *inst;
	wasm_rt_memory_t *mem;
	bool indirect = false;
	int parts = 1;

	t_cx.cfg.aot_part_bytes = 1;
	t_cx.cfg.aot_parts_max = 3;
	g = build_and_load(parts_wat, &spec, &handle);
	cr_assert(strstr(t_cx.ctx.log.data, "parts at once"), "%s", t_cx.ctx.log.data);
	for (;; parts++) {
		char name[32], *path, *text;

		snprintf(name, sizeof(name), "guest_part%d.c", parts);
		path = viv_path_join(t_cx.dir, name);
		text = t_read(path, NULL);
		free(path);
		if (!text)
			break;
		cr_assert(strstr(text, "extern __attribute__((visibility(\"hidden\"))) u32 "
		                       "func_types["),
		          "%s", text);
		cr_assert_null(strstr(text, "data_segment_data"), "%s", text);
		indirect = indirect || strstr(text, "CALL_INDIRECT(instance->");
		free(text);
	}
	cr_assert_geq(parts, 2);
	/* run, the last function, checks the type table from a part of its own. */
	cr_assert(indirect);

	wasm_rt_init();
	g->init_module();
	inst = calloc(1, g->instance_size);
	g->instantiate(inst, NULL);
	g->entry(inst);
	mem = g->memory(inst);
	cr_assert_eq(mem->data[0], 10);
	cr_assert_eq(mem->data[4], 15);
	cr_assert_eq(mem->data[8], 43);
	g->free_instance(inst);
	free(inst);
	dlclose(handle);
}

Test(glue, split_leaves_other_shapes_alone)
{
	static const char not_wasm2c[] = "int main(void)\n{\n\treturn 0;\n}\n";
	static const char one_function[] = "static u32 func_types[1];\n"
	                                   "static void w2c_f0(Z_guest_instance_t*);\n"
	                                   "static void w2c_f0(Z_guest_instance_t* instance) {\n"
	                                   "}\n";
	static const char code_between[] = "static u32 func_types[1];\n"
	                                   "static void w2c_f0(Z_guest_instance_t*);\n"
	                                   "static void w2c_f1(Z_guest_instance_t*);\n"
	                                   "static void w2c_f0(Z_guest_instance_t* instance) {\n"
	                                   "}\n"
	                                   "static int stray;\n"
	                                   "static void w2c_f1(Z_guest_instance_t* instance) {\n"
	                                   "}\n";
	char **parts = (void *)1;
	size_t n = 7;

	cr_assert_eq(pipe_guest_split(not_wasm2c, strlen(not_wasm2c), 2, &parts, &n),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_null(parts);
	cr_assert_eq(n, 0);
	cr_assert_eq(pipe_guest_split(one_function, strlen(one_function), 2, &parts, &n),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_eq(pipe_guest_split(code_between, strlen(code_between), 2, &parts, &n),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_eq(pipe_guest_split(code_between, strlen(code_between), 1, &parts, &n),
	             VIV_ERR_INVALID);
}

Test(glue, parts_follow_the_size_of_the_c)
{
	struct pipe_config c;

	pipe_config_defaults(&c);
	cr_assert_eq(c.aot_part_bytes, PIPE_AOT_PART_BYTES);
	cr_assert_geq(c.aot_parts_max, 1);
	cr_assert_leq(c.aot_parts_max, PIPE_AOT_PARTS_MAX);
	c.aot_parts_max = 4;
	cr_assert_eq(pipe_guest_parts(&c, 0), 1);
	cr_assert_eq(pipe_guest_parts(&c, PIPE_AOT_PART_BYTES - 1), 1);
	cr_assert_eq(pipe_guest_parts(&c, 2 * PIPE_AOT_PART_BYTES), 2);
	cr_assert_eq(pipe_guest_parts(&c, 100 * PIPE_AOT_PART_BYTES), 4);
	c.aot_parts_max = 1;
	cr_assert_eq(pipe_guest_parts(&c, 100 * PIPE_AOT_PART_BYTES), 1);
}
