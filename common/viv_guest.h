/* The contract between an artifact and the runner: every artifact .so that
 * the pipeline builds exports one `const struct viv_guest vivarium_guest`,
 * defined by the glue the pipeline generates next to the wasm2c output. The
 * runner checks abi and hash before it calls anything in the artifact. */
#ifndef VIV_GUEST_H
#define VIV_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "wasm-rt.h"

/* Bump whenever struct viv_guest, the glue, or the host-call calling
 * convention changes: the artifact hash includes it, so every app is rebuilt
 * from its stored wasm rather than loaded with the wrong contract. */
#define VIV_GUEST_ABI 2
#define VIV_GUEST_SYMBOL "vivarium_guest"

/* How the runner calls the module; see GUEST-ABI.md. */
enum viv_guest_mode {
	VIV_GUEST_CGI = 1,      /* WASI command: _start, CGI over stdio */
	VIV_GUEST_HOSTCALL = 2, /* Terrarium ABI: _initialize?, run */
};

struct viv_guest {
	uint32_t abi;         /* VIV_GUEST_ABI */
	uint32_t mode;        /* enum viv_guest_mode */
	const char *hash;     /* the artifact hash: 64 lowercase hex digits */
	size_t instance_size; /* bytes of one wasm2c instance struct */
	/* Called once after dlopen, before any instantiate. */
	void (*init_module)(void);
	/* Initializes *instance (instance_size bytes, zeroed by the caller):
	 * globals, memory (through wasm_rt_allocate_memory), tables, data
	 * and element segments. host is passed to every import. */
	void (*instantiate)(void *instance, void *host);
	/* Releases what instantiate allocated (through the wasm_rt_free_*
	 * functions). */
	void (*free_instance)(void *instance);
	/* The module's first memory, exported or not; NULL when the module
	 * has none. */
	wasm_rt_memory_t *(*memory)(void *instance);
	/* The module's first funcref table; NULL when it has none. */
	wasm_rt_funcref_table_t *(*table)(void *instance);
	/* `_initialize` if the module exports it, else NULL. */
	void (*initialize)(void *instance);
	/* `run` (host-call mode) or `_start` (CGI mode). */
	void (*entry)(void *instance);
	/* The module's exported allocator, for the host to place results in
	 * guest memory when the guest never called hostcall_init_mm:
	 * `default_malloc_impl: [i32] -> [i32]` and `default_free_impl:
	 * [i32] -> []` (Terrafirma guests export these). NULL when the module
	 * does not export them with those types. */
	uint32_t (*export_malloc)(void *instance, uint32_t size);
	void (*export_free)(void *instance, uint32_t ptr);
};

#endif
