/* Helpers for the pipeline's tests: temporary folders, files, archives
 * made entry by entry with libarchive, wasm modules from WAT text, and a
 * store to build through. */
#ifndef TEST_PIPELINE_HELPERS_H
#define TEST_PIPELINE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include "pipeline_int.h"
#include "store.h"

/* A fresh directory under /tmp; caller frees with free() and removes it
 * with viv_rmtree(). Aborts the test on failure. */
char *t_tmpdir(void);

/* Writes text to dir/rel, making parent folders. */
void t_write(const char *dir, const char *rel, const char *text);

/* Reads a whole file; caller frees with free(). NULL when missing. */
char *t_read(const char *path, size_t *len);

/* One archive entry to write. */
struct t_entry {
	const char *name;
	char type; /* 'f' file, 'd' folder, 'l' symlink, 'h' hard link, 'c' device, 'p' fifo */
	const char *data; /* file contents, or the link target */
	unsigned mode;    /* 0: 0644 for files, 0755 for folders */
};

/* Writes an archive of n entries to path. format: "tar" (pax), "ustar",
 * "zip"; filter: NULL, "gzip", "bzip2", "xz", "zstd". */
void t_archive(const char *path, const char *format, const char *filter,
               const struct t_entry *entries, size_t n);

/* Assembles WAT text with wat2wasm, run through pipe_spawn (an argv array,
 * never a shell), into dir/name; returns its path (caller frees with
 * free()). Fails the test with wat2wasm's output when it does not exit 0. */
char *t_wat(const char *dir, const char *name, const char *wat);

/* The module's bytes; caller frees with free(). */
char *t_wat_bytes(const char *wat, size_t *len);

/* A configuration for tests: defaults, and the sandbox only when asked. */
void t_config(struct pipe_config *cfg, bool sandbox);

/* What t_ctx_setup() makes for suites that run pipeline steps by hand: a
 * fresh folder (with tmp/ in it), an unsandboxed configuration and a build
 * context there, and room for an error; t_ctx_teardown() removes them. */
struct t_ctx_fixture {
	char *dir;
	struct pipe_config cfg;
	struct pipe_ctx ctx;
	char err[1024];
};

extern struct t_ctx_fixture t_cx;
void t_ctx_setup(void);
void t_ctx_teardown(void);

/* An artifact hash for artifacts made by hand. */
#define T_HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* True when bubblewrap works here. */
bool t_sandbox_ok(void);

/* What t_store_setup() makes for a suite of whole builds through a store,
 * and t_store_teardown() removes. Criterion runs each test in its own
 * process, so every test starts with a fresh one. */
struct t_store_fixture {
	char *work;    /* a fresh folder under /tmp */
	char *datadir; /* work/data, where the store is */
	struct store *st;
	struct pipe_config cfg; /* sandboxed wherever bubblewrap works, as in production */
};

extern struct t_store_fixture t_fx;

/* A suite's .init and .fini: set up t_fx, and tear it down. */
void t_store_setup(void);
void t_store_teardown(void);

/* Queues the file at path as a deployment of app in t_fx's store and
 * returns its id. */
int64_t t_queue(const char *app, const char *path);

/* Claims the next deployment, which must be want, builds it with t_fx.cfg,
 * checks that the upload is gone, and returns what the store then says
 * (caller frees with store_deployment_free()). */
struct store_deployment *t_build(int64_t want);

/* Packs the entries as t_fx.work/app.tar.gz, queues it as app and builds it
 * as t_build() does. */
struct store_deployment *t_build_entries(const char *app, const struct t_entry *entries, size_t n);

#endif
