/* The build key: a sha256 over an upload's bytes and everything on this
 * server that decides what a build makes of them, so that an identical
 * upload can take over an earlier build instead of running it again. */
#include "pipeline_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_TAG "vivarium-build-key 1"
/* The SDK and the include folder are small; these caps only keep a folder
 * that grew by mistake (a build output left in it) from costing much: past
 * them there is no key, and so no reuse. */
#define TREE_ENTRIES_MAX 2000
#define TREE_BYTES_MAX (16ull * 1024 * 1024)

/* Every program a build may run, looked up as pipe_spawn() does. */
static const char *const key_programs[] = {
        "clang", "clang++", "wasm-opt", "wasm2c", "wat2wasm", "node", "rustc", "cargo",
};

/* Files whose change may change builds without changing a program above:
 * Debian's package database moves with every package installed, removed
 * or upgraded (wasi-libc, libc++, the Rust standard library and crates); the
 * crate directory itself for crates put there by hand. */
static const char *const key_files[] = {
        "/var/lib/dpkg/status",
        "/usr/share/cargo/registry",
};

/* The environment that picks tools. */
static const char *const key_env[] = {"VIV_CC", "VIV_RUSTC", "VIV_CARGO"};

/* Folders under cfg->tool_dir whose package.json says what npm installed. */
static const char *const key_tool_packages[] = {
        "node_modules/assemblyscript/package.json",
        "node_modules/binaryen/package.json",
};

/* Folders under cfg->sdk_dir that builds read. */
static const char *const key_sdk_trees[] = {"c", "rust", "assemblyscript"};

static pthread_mutex_t exe_lock = PTHREAD_MUTEX_INITIALIZER;
static bool exe_done;
static char exe_hex[VIV_SHA256_HEX_LEN + 1];

/* The sha256 of this program's own file, hashed once per process: it holds
 * the pipeline's code, the flags it passes and the text it adds to builds,
 * so a new vivd builds everything afresh. */
static enum viv_err exe_hash(char hex[VIV_SHA256_HEX_LEN + 1], char *err, size_t errlen)
{
	enum viv_err e = VIV_OK;

	pthread_mutex_lock(&exe_lock);
	if (!exe_done) {
		e = viv_sha256_file("/proc/self/exe", exe_hex);
		if (e)
			viv_errf(err, errlen, "could not read this program's file: %s",
			         viv_strerror(e));
		else
			exe_done = true;
	}
	if (!e)
		memcpy(hex, exe_hex, sizeof(exe_hex));
	pthread_mutex_unlock(&exe_lock);
	return e;
}

enum viv_err pipe_key_identity(struct viv_buf *b, const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return viv_buf_printf(b, "%s %s none\n", what, path);
	return viv_buf_printf(b, "%s %s %o %llu %llu %lld %lld.%09ld %lld.%09ld\n", what, path,
	                      (unsigned)st.st_mode, (unsigned long long)st.st_dev,
	                      (unsigned long long)st.st_ino, (long long)st.st_size,
	                      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	                      (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

/* pipe_key_identity() of prog as pipe_spawn() finds it: a path, or a name
 * in /usr/bin and /bin (both, since either may hold it). */
static enum viv_err add_program(struct viv_buf *b, const char *prog)
{
	static const char *const dirs[] = {"/usr/bin", "/bin"};
	enum viv_err e = VIV_OK;

	if (strchr(prog, '/'))
		return pipe_key_identity(b, "program", prog);
	for (size_t i = 0; !e && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *path = viv_path_join(dirs[i], prog);
		if (!path)
			return VIV_ERR_NOMEM;
		e = pipe_key_identity(b, "program", path);
		free(path);
	}
	return e;
}

enum viv_err pipe_key_tree(struct viv_buf *b, const char *dir, char *err, size_t errlen)
{
	struct pipe_assets_stats stats;
	char hex[VIV_SHA256_HEX_LEN + 1];
	struct stat st;
	enum viv_err e;

	if (!dir)
		return viv_buf_printf(b, "tree - none\n");
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return viv_buf_printf(b, "tree %s none\n", dir);
	e = pipe_assets_hash(dir, dir, TREE_ENTRIES_MAX, TREE_BYTES_MAX, hex, &stats, err, errlen);
	if (!e)
		e = viv_buf_printf(b, "tree %s %s\n", dir, hex);
	return e;
}

/* pipe_key_tree() of root/sub, or of root when sub is NULL. */
static enum viv_err add_tree(struct viv_buf *b, const char *root, const char *sub, char *err,
                             size_t errlen)
{
	char *dir;
	enum viv_err e;

	if (!root)
		return pipe_key_tree(b, NULL, err, errlen);
	dir = sub ? viv_path_join(root, sub) : strdup(root);
	if (!dir)
		return VIV_ERR_NOMEM;
	e = pipe_key_tree(b, dir, err, errlen);
	free(dir);
	return e;
}

static enum viv_err add_config(struct viv_buf *b, const struct pipe_config *cfg)
{
	const struct viv_limits *d = &cfg->limits_default, *m = &cfg->limits_max;

	return viv_buf_printf(b,
	                      "dirs %s | %s | %s\n"
	                      "limits %u %u %u max %u %u %u\n"
	                      "caps %zu %zu %zu %zu %llu %u %zu\n"
	                      "sandbox %d\n",
	                      cfg->include_dir ? cfg->include_dir : "-",
	                      cfg->sdk_dir ? cfg->sdk_dir : "-",
	                      cfg->tool_dir ? cfg->tool_dir : "-", d->memory_mb, d->cpu_ms,
	                      d->wall_ms, m->memory_mb, m->cpu_ms, m->wall_ms, cfg->upload_max,
	                      cfg->unpack_max_bytes, cfg->unpack_max_entries,
	                      cfg->assets_max_entries, (unsigned long long)cfg->assets_max_bytes,
	                      cfg->step_timeout_ms, cfg->step_output_cap, cfg->sandbox ? 1 : 0);
}

static enum viv_err add_tools(struct viv_buf *b, struct pipe_ctx *ctx, char *err, size_t errlen)
{
	const struct pipe_tools *t;
	enum viv_err e;

	e = pipe_tools_get(ctx, &t, err, errlen);
	if (e)
		return e;
	e = viv_buf_printf(b, "abi %d\nwasm2c %s\ncc %s %s\ncflags", VIV_GUEST_ABI,
	                   t->wasm2c_version, t->cc, t->cc_version);
	for (size_t i = 0; !e && t->cflags[i]; i++)
		e = viv_buf_printf(b, " %s", t->cflags[i]);
	if (!e)
		e = viv_buf_printf(b, "\n");
	if (!e)
		e = add_program(b, t->cc);
	return e;
}

/* The fingerprint of this server's builds as text, one fact a line. */
static enum viv_err fingerprint(struct viv_buf *b, struct pipe_ctx *ctx, char *err, size_t errlen)
{
	const struct pipe_config *cfg = ctx->cfg;
	char exe[VIV_SHA256_HEX_LEN + 1];
	enum viv_err e;

	e = exe_hash(exe, err, errlen);
	if (!e)
		e = viv_buf_printf(b, "%s\nvivd %s %s\n", KEY_TAG, VIV_VERSION, exe);
	if (!e)
		e = add_tools(b, ctx, err, errlen);
	if (!e)
		e = add_config(b, cfg);
	for (size_t i = 0; !e && i < sizeof(key_env) / sizeof(key_env[0]); i++) {
		const char *v = getenv(key_env[i]);
		e = viv_buf_printf(b, "env %s=%s\n", key_env[i], v ? v : "(unset)");
		if (!e && v && v[0] == '/')
			e = pipe_key_identity(b, "program", v);
	}
	for (size_t i = 0; !e && i < sizeof(key_programs) / sizeof(key_programs[0]); i++)
		e = add_program(b, key_programs[i]);
	for (size_t i = 0; !e && i < sizeof(key_files) / sizeof(key_files[0]); i++)
		e = pipe_key_identity(b, "file", key_files[i]);
	for (size_t i = 0;
	     !e && cfg->tool_dir && i < sizeof(key_tool_packages) / sizeof(key_tool_packages[0]);
	     i++) {
		char *path = viv_path_join(cfg->tool_dir, key_tool_packages[i]);
		if (!path)
			return VIV_ERR_NOMEM;
		e = pipe_key_identity(b, "file", path);
		free(path);
	}
	for (size_t i = 0; !e && i < sizeof(key_sdk_trees) / sizeof(key_sdk_trees[0]); i++)
		e = add_tree(b, cfg->sdk_dir, key_sdk_trees[i], err, errlen);
	if (!e)
		e = add_tree(b, cfg->include_dir, NULL, err, errlen);
	return e;
}

enum viv_err pipe_build_key(struct pipe_ctx *ctx, const char *upload_sha256,
                            char hex[VIV_SHA256_HEX_LEN + 1], char *err, size_t errlen)
{
	struct viv_buf b;
	enum viv_err e;

	hex[0] = '\0';
	viv_errf(err, errlen, "%s", "");
	if (!upload_sha256 || strlen(upload_sha256) != VIV_SHA256_HEX_LEN) {
		viv_errf(err, errlen, "the upload has no sha256");
		return VIV_ERR_INVALID;
	}
	viv_buf_init(&b, 64 * 1024);
	e = fingerprint(&b, ctx, err, errlen);
	if (!e)
		e = viv_buf_printf(&b, "upload %s\n", upload_sha256);
	if (e && err[0] == '\0')
		viv_errf(err, errlen, "could not write down this server's tools: %s",
		         viv_strerror(e));
	if (!e)
		viv_sha256_hex(b.data, b.len, hex);
	viv_buf_free(&b);
	return e;
}
