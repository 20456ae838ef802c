/* wasm2c 1.0.32's C, rewritten before it is compiled where its memory
 * accesses cost more than the module asks for. */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Two costs of wasm2c 1.0.32's output, both in its load and store helpers
 * (DEFINE_LOAD and DEFINE_STORE, called as "i32_load(&instance->w2c_M0,
 * addr)"):
 *
 * The helpers read the memory's base, mem->data, from the instance on
 * every access. A store into guest memory might, for all the C compiler
 * knows, have written the instance, so every load and store after a store
 * reads the base again. Each module function therefore gets a copy of the
 * memory's struct, "wasm_rt_memory_t viv_m = instance->w2c_M0;", and its
 * helper calls take &viv_m. The copy is exact: the runtime never moves a
 * memory's data (runner/rt.c reserves the slot once and grows in place),
 * and with guard pages (WASM_RT_MEMCHECK_SIGNAL_HANDLER, which wasm-rt.h
 * picks on 64-bit hosts and the AOT flags leave alone) the helpers read
 * nothing but the base. memory.size, memory.grow, fill, copy and init keep
 * the instance's struct, whose size changes. The text added before the
 * helpers stops the compile if guard pages are ever off.
 *
 * The load helpers end with an empty asm taking the result in a
 * general-purpose register ("r"), so that a load whose value is unused
 * still happens and can trap. For f32 and f64 that costs a move from the
 * float register on every load; their helpers take it in a float register
 * instead ("x" on x86-64, "w" on aarch64), which forces the load just the
 * same.
 *
 * bench_kernels on this project's 2-core machine, shared with other work:
 * three runs of 5 before and after, interleaved, the median of each
 * kernel's ratio (Vivarium's time over native clang -O2's, then over node
 * --no-liftoff's). One run of the six was slowed by other work by up to
 * 20%; the rest agree within about 10%.
 *               before          after
 *               native  node    native  node
 *   sha256      0.98x   0.90x   0.90x   0.86x
 *   nbody       1.34x   1.28x   1.09x   0.99x
 *   sort        1.12x   1.04x   1.07x   1.00x
 *   json        1.31x   0.97x   1.19x   0.89x
 *   geomean     1.18x   1.04x   1.06x   0.92x
 *
 * Only the exact shape is rewritten: the helpers' macros as 1.0.32 defines
 * them for little-endian hosts, their instantiations, at most one memory
 * the module defines (the runner refuses more), and each definition
 * ("static TYPE w2c_NAME(Z_guest_instance_t* instance...) {") with one
 * FUNC_PROLOGUE line, after its locals and before any memory access (the
 * copy goes right after it). A memory the module imports is a pointer in
 * the instance and is left as it is.
 */

/* The little-endian helpers as wasm2c 1.0.32 defines them; the float load
 * below is the first with another asm constraint. */
static const char load_macro[] =
        "#define DEFINE_LOAD(name, t1, t2, t3)                      \\\n"
        "  static inline t3 name(wasm_rt_memory_t* mem, u64 addr) { \\\n"
        "    MEMCHECK(mem, addr, t1);                               \\\n"
        "    t1 result;                                             \\\n"
        "    wasm_rt_memcpy(&result, &mem->data[addr], sizeof(t1)); \\\n"
        "    wasm_asm(\"\" ::\"r\"(result));                            \\\n"
        "    return (t3)(t2)result;                                 \\\n"
        "  }\n";

static const char store_macro[] =
        "#define DEFINE_STORE(name, t1, t2)                                     \\\n"
        "  static inline void name(wasm_rt_memory_t* mem, u64 addr, t2 value) { \\\n"
        "    MEMCHECK(mem, addr, t1);                                           \\\n"
        "    t1 wrapped = (t1)value;                                            \\\n"
        "    wasm_rt_memcpy(&mem->data[addr], &wrapped, sizeof(t1));            \\\n"
        "  }\n";

static const char memcheck_macro[] = "#if WASM_RT_MEMCHECK_SIGNAL_HANDLER\n"
                                     "#define MEMCHECK(mem, a, t)\n"
                                     "#else\n";

/* Goes before the first instantiation of the helpers. */
static const char prelude[] =
        "/* Added by Vivarium: module functions hand the load and store helpers\n"
        " * a copy of the memory's struct (viv_m), exact because the runtime never\n"
        " * moves a memory's data and, with guard pages, the helpers read nothing\n"
        " * else; float loads are forced in a float register. */\n"
        "#if !WASM_RT_MEMCHECK_SIGNAL_HANDLER || WABT_BIG_ENDIAN\n"
        "#error \"Vivarium's rewrite of the memory helpers needs guard pages\"\n"
        "#endif\n"
        "#if defined(__x86_64__)\n"
        "#define VIV_FLOAT_REG \"x\"\n"
        "#elif defined(__aarch64__)\n"
        "#define VIV_FLOAT_REG \"w\"\n"
        "#else\n"
        "#define VIV_FLOAT_REG \"r\"\n"
        "#endif\n"
        "#define VIV_DEFINE_LOAD_FLOAT(name, t1, t2, t3)            \\\n"
        "  static inline t3 name(wasm_rt_memory_t* mem, u64 addr) { \\\n"
        "    MEMCHECK(mem, addr, t1);                               \\\n"
        "    t1 result;                                             \\\n"
        "    wasm_rt_memcpy(&result, &mem->data[addr], sizeof(t1)); \\\n"
        "    wasm_asm(\"\" ::VIV_FLOAT_REG(result));                  \\\n"
        "    return (t3)(t2)result;                                 \\\n"
        "  }\n"
        "\n";

#define FLOAT_LOAD "VIV_DEFINE_LOAD_FLOAT"
#define F32_LOAD "DEFINE_LOAD(f32_load, f32, f32, f32)"
#define F64_LOAD "DEFINE_LOAD(f64_load, f64, f64, f64)"
#define INIT_MEMORIES "static void init_memories(Z_guest_instance_t* instance) {"
#define ALLOCATE "  wasm_rt_allocate_memory(&instance->"
#define PROLOGUE "  FUNC_PROLOGUE;"
#define DEF_PARAM "(Z_guest_instance_t* instance"
#define LOCAL "viv_m"
#define HELPERS_MAX 64
#define NAME_MAX_LEN 120

struct helpers {
	char names[HELPERS_MAX][32];
	size_t n;
	size_t first_line; /* of the instantiations */
	size_t f32_line, f64_line;
};

static size_t count(const char *text, size_t len, const char *needle)
{
	size_t n = 0, k = strlen(needle);
	const char *p = text, *end = text + len;

	while ((p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
		n++;
		p += k;
	}
	return n;
}

/* A helper's name from "DEFINE_LOAD(NAME, ...)" or "DEFINE_STORE(NAME,
 * ...)", into h; false when the line is not one. */
static bool helper_line(const struct pipe_line *l, struct helpers *h, size_t i)
{
	static const char *const kinds[] = {"DEFINE_LOAD(", "DEFINE_STORE("};
	size_t k, n = 0;

	for (k = 0; k < 2; k++) {
		if (pipe_line_starts(l, kinds[k]))
			break;
	}
	if (k == 2 || !pipe_line_ends(l, ")"))
		return false;
	for (size_t j = strlen(kinds[k]); j < l->n && pipe_ident_char(l->p[j]); j++)
		n++;
	if (n == 0 || n >= sizeof(h->names[0]) || h->n == HELPERS_MAX)
		return false;
	memcpy(h->names[h->n], l->p + strlen(kinds[k]), n);
	h->names[h->n][n] = '\0';
	h->n++;
	if (h->n == 1)
		h->first_line = i;
	if (pipe_line_is(l, F32_LOAD))
		h->f32_line = i;
	if (pipe_line_is(l, F64_LOAD))
		h->f64_line = i;
	return true;
}

static bool is_helper(const struct helpers *h, const char *name, size_t n)
{
	for (size_t i = 0; i < h->n; i++) {
		if (strlen(h->names[i]) == n && memcmp(h->names[i], name, n) == 0)
			return true;
	}
	return false;
}

/* The memory init_memories() allocates, into name; "" when there is none.
 * False when the function is not shaped as expected or allocates more than
 * one. */
static bool defined_memory(const struct pipe_line *lines, size_t n_lines, char *name, size_t len)
{
	size_t i, found = 0;

	name[0] = '\0';
	for (i = 0; i < n_lines && !pipe_line_is(&lines[i], INIT_MEMORIES); i++)
		;
	if (i == n_lines)
		return true;
	for (i++; i < n_lines && !pipe_line_is(&lines[i], "}"); i++) {
		const struct pipe_line *l = &lines[i];
		size_t k = strlen(ALLOCATE), n = 0;

		/* The data segments' LOAD_DATA lines follow the allocations. */
		if (!pipe_line_starts(l, ALLOCATE)) {
			if (memmem(l->p, l->n, "wasm_rt_allocate_memory", 23))
				return false;
			continue;
		}
		if (found++)
			return false;
		while (k + n < l->n && pipe_ident_char(l->p[k + n]))
			n++;
		if (n < 5 || n >= len || k + n == l->n || l->p[k + n] != ',' ||
		    memcmp(l->p + k, "w2c_", 4) != 0)
			return false;
		memcpy(name, l->p + k, n);
		name[n] = '\0';
	}
	return i < n_lines;
}

static enum viv_err put_line(struct viv_buf *b, const struct pipe_line *l)
{
	enum viv_err e = viv_buf_append(b, l->p, l->n);

	return e ? e : viv_buf_append(b, "\n", 1);
}

/* Appends line l with each helper call on the memory ("NAME(&instance->MEM,
 * ") taking the local copy instead; when only counting (b NULL), adds up
 * the calls in *calls. */
static enum viv_err put_body_line(struct viv_buf *b, const struct pipe_line *l,
                                  const struct helpers *h, const char *needle, size_t *calls)
{
	const char *p = l->p, *end = l->p + l->n, *hit;
	size_t k = strlen(needle);
	enum viv_err e = VIV_OK;

	while (!e && (hit = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
		const char *name = hit;

		while (name > l->p && pipe_ident_char(name[-1]))
			name--;
		if (!is_helper(h, name, (size_t)(hit - name))) {
			if (b)
				e = viv_buf_append(b, p, (size_t)(hit + k - p));
			p = hit + k;
			continue;
		}
		(*calls)++;
		if (b)
			e = viv_buf_append(b, p, (size_t)(hit - p));
		if (!e && b)
			e = viv_buf_append(b, "(&" LOCAL ", ", strlen("(&" LOCAL ", "));
		p = hit + k;
	}
	if (!e && b) {
		struct pipe_line rest = {p, (size_t)(end - p)};

		e = put_line(b, &rest);
	}
	return e;
}

/* The definition starting at line first: its FUNC_PROLOGUE line (after
 * the declarations of the function's locals), its last line ("}"), and how
 * many helper calls on the memory it makes, all after the prologue. False
 * when it is not shaped as wasm2c 1.0.32 writes one. */
static bool read_def(const struct pipe_line *lines, size_t n_lines, size_t first,
                     const struct helpers *h, const char *needle, size_t *prologue, size_t *last,
                     size_t *calls)
{
	size_t i;

	*calls = 0;
	*prologue = 0;
	if (!memmem(lines[first].p, lines[first].n, DEF_PARAM, strlen(DEF_PARAM)))
		return false;
	for (i = first + 1; i < n_lines && !pipe_line_is(&lines[i], "}"); i++) {
		/* wasm2c indents every line of a body. */
		if (lines[i].n && lines[i].p[0] != ' ')
			return false;
		if (pipe_line_is(&lines[i], PROLOGUE)) {
			if (*prologue)
				return false;
			*prologue = i;
			continue;
		}
		if (!needle[0])
			continue;
		put_body_line(NULL, &lines[i], h, needle, calls);
		if (*calls && !*prologue)
			return false;
	}
	*last = i;
	return i < n_lines && *prologue;
}

enum viv_err pipe_guest_rewrite(const char *guest_c, size_t len, char **out,
                                struct pipe_rewrite_stats *stats_out)
{
	struct pipe_line *lines = NULL;
	struct helpers *h = NULL;
	struct pipe_rewrite_stats stats = {0, 0};
	struct viv_buf b;
	char memory[NAME_MAX_LEN], needle[NAME_MAX_LEN + 32] = "";
	size_t n_lines = 0;
	enum viv_err e;

	*out = NULL;
	viv_buf_init(&b, 0);
	if (count(guest_c, len, load_macro) != 1 || count(guest_c, len, store_macro) != 1 ||
	    count(guest_c, len, memcheck_macro) != 1 || memchr(guest_c, '\0', len))
		return VIV_ERR_UNSUPPORTED;
	e = pipe_lines_split(guest_c, len, &lines, &n_lines);
	if (e)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_lines; i++) {
		if (pipe_line_starts(&lines[i], "DEFINE_LOAD(") ||
		    pipe_line_starts(&lines[i], "DEFINE_STORE(")) {
			if (!helper_line(&lines[i], h, i)) {
				e = VIV_ERR_UNSUPPORTED;
				goto out;
			}
		}
	}
	if (h->n == 0 || !h->f32_line || !h->f64_line ||
	    !defined_memory(lines, n_lines, memory, sizeof(memory))) {
		e = VIV_ERR_UNSUPPORTED;
		goto out;
	}
	if (memory[0])
		snprintf(needle, sizeof(needle), "(&instance->%s, ", memory);

	for (size_t i = 0; !e && i < n_lines; i++) {
		bool is_def = false;
		size_t prologue, last, calls, head_end;

		if (i == h->first_line)
			e = viv_buf_append(&b, prelude, strlen(prelude));
		if (!e && (i == h->f32_line || i == h->f64_line)) {
			struct pipe_line args = {lines[i].p + strlen("DEFINE_LOAD"),
			                         lines[i].n - strlen("DEFINE_LOAD")};

			e = viv_buf_append(&b, FLOAT_LOAD, strlen(FLOAT_LOAD));
			if (!e)
				e = put_line(&b, &args);
			continue;
		}
		if (e || !pipe_func_head(lines, n_lines, i, &is_def, &head_end) || !is_def) {
			if (!e)
				e = put_line(&b, &lines[i]);
			continue;
		}
		if (!read_def(lines, n_lines, i, h, needle, &prologue, &last, &calls)) {
			e = VIV_ERR_UNSUPPORTED;
			break;
		}
		for (size_t j = i; !e && j <= prologue; j++)
			e = put_line(&b, &lines[j]);
		if (!e && calls) {
			e = viv_buf_printf(&b, "  wasm_rt_memory_t " LOCAL " = instance->%s;\n",
			                   memory);
			stats.functions++;
			stats.calls += calls;
		}
		for (size_t j = prologue + 1, again = 0; !e && j <= last; j++)
			e = calls ? put_body_line(&b, &lines[j], h, needle, &again)
			          : put_line(&b, &lines[j]);
		i = last;
	}
	if (e)
		goto out;
	/* A text without a final newline keeps it that way. */
	if (len && guest_c[len - 1] != '\n' && b.len)
		b.data[--b.len] = '\0';
	*out = viv_buf_steal(&b);
	if (!*out) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	if (stats_out)
		*stats_out = stats;
out:
	viv_buf_free(&b);
	free(lines);
	free(h);
	return e;
}
