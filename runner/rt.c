/* Vivarium's implementation of the wasm2c runtime interface (wasm-rt.h):
 * memories live in the current instance's pooled slot, function types are
 * interned once per process. The stock libwasm-rt-impl maps 8 GiB per
 * instance and keeps trap state in globals; none of that suits a worker
 * running thousands of sandboxes. Traps (wasm_rt_trap) unwind to the
 * instance's own jump buffer, in exec.c. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runner_int.h"

#define PAGE_64K ((uint64_t)65536)
/* Elements of one table; more would let a guest make the host allocate
 * without bound. */
#define RUN_TABLE_MAX_ELEMS (1u << 20)

/* This runtime needs no set-up: memories live in slots that pools reserve,
 * traps unwind to instances. So it counts as initialized from the start,
 * and the assertion of wasm_rt_is_initialized() in wasm2c's code holds
 * without anyone calling wasm_rt_init() first. */
static bool rt_initialized = true;

void wasm_rt_init(void)
{
	rt_initialized = true;
}

bool wasm_rt_is_initialized(void)
{
	return rt_initialized;
}

void wasm_rt_free(void)
{
	rt_initialized = false;
}

/* ---- Function types ------------------------------------------------------------- */

/* Types are interned by their parameter and result lists; artifacts call this
 * from their module initializer only, so a mutex costs nothing per request. */
struct func_type {
	uint32_t params, results;
	wasm_rt_type_t *types;
};

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static struct func_type *types;
static uint32_t n_types, alloc_types;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...)
{
	wasm_rt_type_t sig[64];
	uint32_t n = params + results, i, idx;
	va_list ap;

	if (params > 64 || results > 64 || n > 64) {
		viv_log(VIV_ERROR, "function type with %u parameters and %u results", params,
		        results);
		abort();
	}
	va_start(ap, results);
	for (i = 0; i < n; i++)
		sig[i] = (wasm_rt_type_t)va_arg(ap, int);
	va_end(ap);

	pthread_mutex_lock(&types_lock);
	for (idx = 0; idx < n_types; idx++) {
		if (types[idx].params == params && types[idx].results == results &&
		    memcmp(types[idx].types, sig, n * sizeof(sig[0])) == 0)
			goto out;
	}
	if (n_types == alloc_types) {
		uint32_t na = alloc_types ? alloc_types * 2 : 64;
		struct func_type *nt = realloc(types, na * sizeof(*nt));
		if (!nt)
			abort();
		types = nt;
		alloc_types = na;
	}
	types[idx].params = params;
	types[idx].results = results;
	types[idx].types = malloc(n ? n * sizeof(sig[0]) : 1);
	if (!types[idx].types)
		abort();
	memcpy(types[idx].types, sig, n * sizeof(sig[0]));
	n_types++;
out:
	pthread_mutex_unlock(&types_lock);
	/* Index 0 is never handed out, so a zeroed funcref never matches. */
	return idx + 1;
}

/* ---- Exceptions -------------------------------------------------------------------- */

/* The pipeline compiles without the exception-handling proposal, so no
 * artifact catches; these exist because wasm-rt.h declares them, and a throw
 * ends the guest with the trap the proposal specifies for an uncaught one. */
static uint32_t n_tags;

uint32_t wasm_rt_register_tag(uint32_t size)
{
	(void)size;
	return __atomic_add_fetch(&n_tags, 1, __ATOMIC_RELAXED);
}

void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values)
{
	(void)tag;
	(void)size;
	(void)values;
}

void wasm_rt_throw(void)
{
	wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
}

WASM_RT_UNWIND_TARGET *wasm_rt_get_unwind_target(void)
{
	return NULL;
}

void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET *target)
{
	(void)target;
}

uint32_t wasm_rt_exception_tag(void)
{
	return 0;
}

uint32_t wasm_rt_exception_size(void)
{
	return 0;
}

void *wasm_rt_exception(void)
{
	return NULL;
}

/* ---- Memory ---------------------------------------------------------------------- */

/* Makes the first bytes of the slot readable and writable and everything
 * after them inaccessible, touching only the part that changes. */
static bool slot_set_rw(struct run_slot *s, size_t bytes)
{
	if (bytes > s->rw_bytes) {
		if (mprotect(s->mem + s->rw_bytes, bytes - s->rw_bytes, PROT_READ | PROT_WRITE))
			return false;
	} else if (bytes < s->rw_bytes) {
		if (mprotect(s->mem + bytes, s->rw_bytes - bytes, PROT_NONE))
			return false;
	}
	s->rw_bytes = bytes;
	if (bytes > s->used_bytes)
		s->used_bytes = bytes;
	return true;
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages)
{
	struct run_instance *in = run_current;
	uint64_t limit;

	if (!in)
		abort();
	if (in->mem)
		run_host_fail(in, "the module has more than one memory");
	limit = (uint64_t)in->app->limits.memory_mb * (1024 * 1024 / PAGE_64K);
	if (limit > 65535)
		limit = 65535; /* 65536 pages is 4 GiB, which does not fit mem->size */
	if (max_pages > limit)
		max_pages = (uint32_t)limit;
	in->mem_limit_pages = (uint32_t)limit;
	if (initial_pages > limit)
		in->memory_limited = true;
	if (initial_pages > max_pages)
		run_host_fail(in,
		              "the module needs %u MiB of memory at start, more than the app's "
		              "limit of %u MiB (limits.memory_mb in vivarium.json)",
		              (unsigned)((initial_pages * PAGE_64K) >> 20),
		              in->app->limits.memory_mb);
	if (!slot_set_rw(in->slot, (size_t)initial_pages * PAGE_64K))
		run_host_fail(in, "the host could not map the module's memory");
	mem->data = in->slot->mem;
	mem->pages = initial_pages;
	mem->max_pages = max_pages;
	mem->size = (uint32_t)((uint64_t)initial_pages * PAGE_64K);
	in->mem = mem;
}

/* The app's memory limit refused a memory.grow: the guest sees -1 and may
 * cope, so this is no trap, but its log says why the memory ran out (once
 * per request) and metrics count it. */
static void memory_refused(struct run_instance *in, uint64_t pages)
{
	char msg[200];
	int n;

	if (in->memory_limited)
		return;
	in->memory_limited = true;
	n = snprintf(msg, sizeof(msg),
	             "memory.grow to %llu MiB refused: the app may use at most %u MiB "
	             "(limits.memory_mb in vivarium.json)",
	             (unsigned long long)((pages * PAGE_64K) >> 20), in->app->limits.memory_mb);
	run_log_add(in, "system", msg, (size_t)n);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta)
{
	struct run_instance *in = run_current;
	uint32_t old = mem->pages;
	uint64_t pages = (uint64_t)old + delta;

	if (!in || mem != in->mem)
		abort();
	if (pages > mem->max_pages) {
		if (pages > in->mem_limit_pages)
			memory_refused(in, pages);
		return UINT32_MAX;
	}
	if (delta == 0)
		return old;
	if (!slot_set_rw(in->slot, (size_t)(pages * PAGE_64K)))
		return UINT32_MAX;
	mem->pages = (uint32_t)pages;
	mem->size = (uint32_t)(pages * PAGE_64K);
	return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *mem)
{
	/* The slot is cleaned when the instance ends (run_instance_end). */
	(void)mem;
}

/* ---- Tables ------------------------------------------------------------------- */

static void *table_alloc(uint32_t elements, uint32_t *max, size_t elem_size)
{
	struct run_instance *in = run_current;
	void *data;

	if (*max > RUN_TABLE_MAX_ELEMS)
		*max = RUN_TABLE_MAX_ELEMS;
	if (elements > *max) {
		if (in)
			run_host_fail(in,
			              "the module's table of %u elements is over the limit of %u",
			              elements, RUN_TABLE_MAX_ELEMS);
		abort();
	}
	data = calloc(elements ? elements : 1, elem_size);
	if (!data) {
		if (in)
			run_host_fail(in, "the host is out of memory for the module's table");
		abort();
	}
	return data;
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *table, uint32_t elements,
                                    uint32_t max_elements)
{
	table->max_size = max_elements;
	table->data = table_alloc(elements, &table->max_size, sizeof(*table->data));
	table->size = elements;
}

void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *table)
{
	free(table->data);
	table->data = NULL;
	table->size = 0;
}

void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t *table, uint32_t elements,
                                      uint32_t max_elements)
{
	table->max_size = max_elements;
	table->data = table_alloc(elements, &table->max_size, sizeof(*table->data));
	table->size = elements;
}

void wasm_rt_free_externref_table(wasm_rt_externref_table_t *table)
{
	free(table->data);
	table->data = NULL;
	table->size = 0;
}

/* Grows data (size elements) by delta, each new element set from init. */
static uint32_t table_grow(void **data, uint32_t *size, uint32_t max, uint32_t delta,
                           const void *init, size_t elem_size)
{
	uint64_t n = (uint64_t)*size + delta;
	uint32_t old = *size, i;
	uint8_t *p;

	if (n > max)
		return UINT32_MAX;
	if (delta == 0)
		return old;
	p = realloc(*data, (size_t)n * elem_size);
	if (!p)
		return UINT32_MAX;
	for (i = old; i < n; i++)
		memcpy(p + (size_t)i * elem_size, init, elem_size);
	*data = p;
	*size = (uint32_t)n;
	return old;
}

uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *table, uint32_t delta,
                                    wasm_rt_funcref_t init)
{
	void *data = table->data;
	uint32_t r = table_grow(&data, &table->size, table->max_size, delta, &init, sizeof(init));
	table->data = data;
	return r;
}

uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t *table, uint32_t delta,
                                      wasm_rt_externref_t init)
{
	void *data = table->data;
	uint32_t r = table_grow(&data, &table->size, table->max_size, delta, &init, sizeof(init));
	table->data = data;
	return r;
}
