/* The rewrite of wasm2c's memory accesses (pipe_aot_rewrite.c): the text it
 * makes of real wasm2c output, the texts it leaves alone, and an artifact
 * built through it that grows its memory, traps and loads floats, run with
 * wabt's stock runtime. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "viv_guest.h"
#include "wasm-rt-impl.h"

TestSuite(rewrite, .init = t_ctx_setup, .fini = t_ctx_teardown, .timeout = 120);

/*
 * What run does depends on the i32 at address 0, which the test sets:
 * 0: stores and loads i32, f64 and f32 values, grows the memory by a page,
 *    notes what memory.grow and memory.size said, and stores into the new
 *    page;
 * 2: loads what the test wrote into the new page, as i32 and as f64, and
 *    stores their sum;
 * 1: loads just past the end of the memory, which traps.
 */
static const char run_wat[] =
        "(module (memory (export \"memory\") 1 4)"
        " (func $run (local $k i32)"
        "  (local.set $k (i32.load (i32.const 0)))"
        "  (if (i32.eq (local.get $k) (i32.const 1)) (then"
        "   (drop (i32.load (i32.mul (memory.size) (i32.const 65536))))))"
        "  (if (i32.eq (local.get $k) (i32.const 2)) (then"
        "   (f64.store (i32.const 56)"
        "    (f64.add (f64.convert_i32_u (i32.load (i32.const 65640)))"
        "     (f64.load (i32.const 65648))))))"
        "  (if (i32.eqz (local.get $k)) (then"
        "   (i32.store (i32.const 8) (i32.const 0x11223344))"
        "   (f64.store (i32.const 16) (f64.const 1.5))"
        "   (f64.store (i32.const 24) (f64.add (f64.load (i32.const 16)) (f64.const 1.25)))"
        "   (f32.store (i32.const 32) (f32.const 2.25))"
        "   (f32.store (i32.const 36) (f32.mul (f32.load (i32.const 32)) (f32.const 2)))"
        "   (i32.store (i32.const 40) (memory.grow (i32.const 1)))"
        "   (i32.store (i32.const 44) (memory.size))"
        "   (i32.store (i32.const 65636) (i32.add (i32.load (i32.const 8)) (i32.const 1)))"
        "   (i32.store (i32.const 48) (i32.load (i32.const 65636))))))"
        " (export \"run\" (func $run)))";

/* wasm2c's guest.c for wat, in t_cx.dir; caller frees with free(). */
static char *wasm2c_text(const char *wat, size_t *len)
{
	char *wasm = t_wat(t_cx.dir, "m.wasm", wat);
	const char *argv[] = {"wasm2c", "m.wasm", "-n", "guest", "-o", "guest.c", NULL};
	char *path, *text;

	cr_assert_eq(pipe_run_ok(&t_cx.ctx, t_cx.dir, argv, t_cx.err, sizeof(t_cx.err)), VIV_OK,
	             "%s\n%s", t_cx.err, t_cx.ctx.log.data);
	path = viv_path_join(t_cx.dir, "guest.c");
	text = t_read(path, len);
	cr_assert_not_null(text);
	free(path);
	free(wasm);
	return text;
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

Test(rewrite, real_wasm2c_output)
{
	struct pipe_rewrite_stats stats = {0, 0};
	char *text, *out = NULL, **parts = NULL;
	size_t len = 0, n = 0;

	text = wasm2c_text(run_wat, &len);
	cr_assert(strstr(text, "i32_store(&instance->w2c_memory, "), "%s", text);
	cr_assert_eq(pipe_guest_rewrite(text, len, &out, &stats), VIV_OK);
	cr_assert_not_null(out);

	/* The helpers: the float loads have their own macro, the rest stay. */
	cr_assert(strstr(out, "\nVIV_DEFINE_LOAD_FLOAT(f32_load, f32, f32, f32)\n"), "%s", out);
	cr_assert(strstr(out, "\nVIV_DEFINE_LOAD_FLOAT(f64_load, f64, f64, f64)\n"), "%s", out);
	cr_assert_null(strstr(out, "\nDEFINE_LOAD(f64_load"));
	cr_assert(strstr(out, "\nDEFINE_LOAD(i32_load, u32, u32, u32)\n"));
	cr_assert(strstr(out, "#define VIV_FLOAT_REG \"x\""));
	cr_assert(strstr(out, "#error"));

	/* The function: a local copy, taken by every load and store helper,
	 * while grow and size keep the instance's struct. */
	cr_assert(strstr(out, "  FUNC_PROLOGUE;\n"
	                      "  wasm_rt_memory_t viv_m = instance->w2c_memory;\n"),
	          "%s", out);
	cr_assert(strstr(out, "i32_store(&viv_m, "));
	cr_assert(strstr(out, "i32_load(&viv_m, "));
	cr_assert(strstr(out, "f64_load(&viv_m, "));
	cr_assert(strstr(out, "f32_load(&viv_m, "));
	cr_assert_null(strstr(out, "_load(&instance->"), "%s", out);
	cr_assert_null(strstr(out, "_store(&instance->"), "%s", out);
	cr_assert(strstr(out, "wasm_rt_grow_memory(&instance->w2c_memory, "));
	cr_assert(strstr(out, "instance->w2c_memory.pages"));
	cr_assert(strstr(out, "wasm_rt_allocate_memory(&instance->w2c_memory, 1, 4);"));
	cr_assert_eq(stats.functions, 1);
	cr_assert_eq(stats.calls, count(text, "_load(&instance->w2c_memory, ") +
	                                  count(text, "_store(&instance->w2c_memory, "));
	cr_assert_eq(stats.calls, 18);

	/* The split still finds the definitions in the rewritten text. */
	cr_assert_eq(pipe_guest_split(out, strlen(out), 2, &parts, &n), VIV_ERR_UNSUPPORTED,
	             "one function is nothing to split");
	free(text);
	free(out);
}

Test(rewrite, split_of_a_rewritten_module)
{
	static const char two_wat[] =
	        "(module (memory 1)"
	        " (func $a (param i32) (result i32) (i32.load (local.get 0)))"
	        " (func $run (i32.store (i32.const 4) (call $a (i32.const 8))))"
	        " (export \"run\" (func $run)))";
	char *text, *out = NULL, **parts = NULL;
	size_t len = 0, n = 0;

	text = wasm2c_text(two_wat, &len);
	cr_assert_eq(pipe_guest_rewrite(text, len, &out, NULL), VIV_OK);
	cr_assert_eq(pipe_guest_split(out, strlen(out), 2, &parts, &n), VIV_OK);
	cr_assert_eq(n, 2);
	/* Each part has the float macro before the helpers it instantiates,
	 * and both definitions, wherever they went, have their copy. */
	for (size_t i = 0; i < n; i++)
		cr_assert(strstr(parts[i], "VIV_DEFINE_LOAD_FLOAT(f64_load"), "%s", parts[i]);
	cr_assert_eq(count(parts[0], "  wasm_rt_memory_t viv_m = instance->w2c_M0;\n") +
	                     count(parts[1], "  wasm_rt_memory_t viv_m = instance->w2c_M0;\n"),
	             2);
	pipe_strv_free(parts, n);
	free(text);
	free(out);
}

/* wasm2c wraps a long parameter list onto indented lines, in prototypes
 * and definitions (the C++ hello with iostream has 48 such functions): the
 * module is still rewritten whole and split, every "static" of a head
 * becoming hidden. */
Test(rewrite, functions_whose_heads_wrap_are_rewritten_and_split)
{
	static const char wide_wat[] =
	        "(module (memory 1)"
	        " (func $wide (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)"
	        "   (i32.add (i32.load (local.get 0)) (local.get 11)))"
	        " (func $run (i32.store (i32.const 4) (call $wide (i32.const 8) (i32.const 1)"
	        "   (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6)"
	        "   (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 10) (i32.const 11))))"
	        " (export \"run\" (func $run)))";
	struct pipe_rewrite_stats stats;
	char *text, *out = NULL, **parts = NULL;
	size_t len = 0, n = 0;

	text = wasm2c_text(wide_wat, &len);
	cr_assert(strstr(text, "\n    u32 w2c_p8"), "wasm2c no longer wraps heads: %.2000s", text);
	cr_assert_eq(pipe_guest_rewrite(text, len, &out, &stats), VIV_OK);
	cr_assert_eq(stats.functions, 2, "only %zu functions rewritten", stats.functions);
	cr_assert_eq(pipe_guest_split(out, strlen(out), 2, &parts, &n), VIV_OK);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		cr_assert_null(strstr(parts[i], "\nstatic u32 w2c_"), "a static head is left:\n%s",
		               parts[i]);
	pipe_strv_free(parts, n);
	free(text);
	free(out);
}

Test(rewrite, other_shapes_are_left_alone)
{
	static const char not_wasm2c[] = "int main(void)\n{\n\treturn 0;\n}\n";
	struct pipe_rewrite_stats stats = {0, 0};
	char *text, *odd, *out = (void *)1, *at;
	size_t len = 0;

	cr_assert_eq(pipe_guest_rewrite(not_wasm2c, strlen(not_wasm2c), &out, NULL),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_null(out);

	text = wasm2c_text(run_wat, &len);
	/* Another load helper than 1.0.32's. */
	odd = strdup(text);
	at = strstr(odd, "wasm_rt_memcpy(&result, &mem->data[addr], sizeof(t1));");
	cr_assert_not_null(at);
	memcpy(at, "memcpy", 6);
	cr_assert_eq(pipe_guest_rewrite(odd, len, &out, NULL), VIV_ERR_UNSUPPORTED);
	free(odd);
	/* A definition that does not open with FUNC_PROLOGUE. */
	odd = strdup(text);
	at = strstr(odd, "  FUNC_PROLOGUE;");
	cr_assert_not_null(at);
	memcpy(at, "  FUNC_PROLOGUX;", 16);
	cr_assert_eq(pipe_guest_rewrite(odd, len, &out, NULL), VIV_ERR_UNSUPPORTED);
	free(odd);
	/* Two memories allocated. */
	odd = NULL;
	at = strstr(text, "  wasm_rt_allocate_memory(");
	cr_assert_not_null(at);
	cr_assert_geq(asprintf(&odd, "%.*s  wasm_rt_allocate_memory(&instance->w2c_M1, 1, 1);\n%s",
	                       (int)(at - text), text, at),
	              0);
	cr_assert_eq(pipe_guest_rewrite(odd, strlen(odd), &out, NULL), VIV_ERR_UNSUPPORTED);
	cr_assert_null(out);
	free(odd);
	free(text);

	/* An imported memory is a pointer in the instance: its accesses stay
	 * as they are, the float loads still change. */
	text = wasm2c_text("(module (import \"env\" \"mem\" (memory 1))"
	                   " (func (export \"h\") (param i32) (result f64)"
	                   "  (f64.load (local.get 0))))",
	                   &len);
	cr_assert_eq(pipe_guest_rewrite(text, len, &out, &stats), VIV_OK);
	cr_assert_eq(stats.functions, 0);
	cr_assert_null(strstr(out, "wasm_rt_memory_t viv_m"), "%s", out);
	cr_assert(strstr(out, "f64_load(instance->Z_envZ_mem, "), "%s", out);
	cr_assert(strstr(out, "VIV_DEFINE_LOAD_FLOAT(f64_load"));
	free(out);
	free(text);
}

/* The whole of pipe_aot, then run's three cases with the stock runtime. */
Test(rewrite, artifact_computes_alike)
{
	struct pipe_glue_spec spec = {VIV_GUEST_HOSTCALL, false, T_HASH, false, false};
	const struct pipe_tools *tools = NULL;
	const struct viv_guest *g;
	char *wasm, *so = NULL;
	void *handle, *inst;
	wasm_rt_memory_t *mem;
	double d;
	float f;
	uint32_t u;
	wasm_rt_trap_t trap;

	wasm = t_wat(t_cx.dir, "m.wasm", run_wat);
	cr_assert_eq(pipe_tools_get(&t_cx.ctx, &tools, t_cx.err, sizeof(t_cx.err)), VIV_OK, "%s",
	             t_cx.err);
	cr_assert_eq(
	        pipe_aot(&t_cx.ctx, tools, "m.wasm", &spec, NULL, NULL, t_cx.err, sizeof(t_cx.err)),
	        VIV_OK, "%s\n%s", t_cx.err, t_cx.ctx.log.data);
	so = viv_path_join(t_cx.dir, "guest.so");
	cr_assert(strstr(t_cx.ctx.log.data, "rewrote guest.c: 1 functions"), "%s",
	          t_cx.ctx.log.data);
	handle = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(handle, "%s", dlerror());
	g = dlsym(handle, VIV_GUEST_SYMBOL);
	cr_assert_not_null(g, "%s", dlerror());

	wasm_rt_init();
	g->init_module();
	inst = calloc(1, g->instance_size);
	g->instantiate(inst, NULL);
	mem = g->memory(inst);
	g->entry(inst);
	memcpy(&u, mem->data + 8, 4);
	cr_assert_eq(u, 0x11223344);
	memcpy(&d, mem->data + 24, 8);
	cr_assert_eq(d, 2.75);
	memcpy(&f, mem->data + 36, 4);
	cr_assert_eq(f, 4.5f);
	memcpy(&u, mem->data + 40, 4);
	cr_assert_eq(u, 1, "memory.grow said %u", u);
	memcpy(&u, mem->data + 44, 4);
	cr_assert_eq(u, 2, "memory.size said %u", u);
	cr_assert_eq(mem->pages, 2);
	memcpy(&u, mem->data + 48, 4);
	cr_assert_eq(u, 0x11223345, "the load from the new page gave %#x", u);

	/* Loads of what the host wrote into the new page. */
	u = 2;
	memcpy(mem->data, &u, 4);
	u = 40;
	memcpy(mem->data + 65640, &u, 4);
	d = 0.5;
	memcpy(mem->data + 65648, &d, 8);
	g->entry(inst);
	memcpy(&d, mem->data + 56, 8);
	cr_assert_eq(d, 40.5);

	/* Just past the end of the grown memory. */
	u = 1;
	memcpy(mem->data, &u, 4);
	trap = wasm_rt_impl_try();
	if (trap == WASM_RT_TRAP_NONE) {
		g->entry(inst);
		cr_assert_fail("the load past the end did not trap");
	}
	cr_assert_eq(trap, WASM_RT_TRAP_OOB);

	g->free_instance(inst);
	free(inst);
	dlclose(handle);
	free(wasm);
	free(so);
}
