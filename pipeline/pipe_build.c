/* One deployment's build, step by step, recorded through store/: unpack,
 * manifest, language, compile, optimize, validate, hash, wasm2c, glue, cc,
 * store; or, for an upload identical to one built before, that build taken
 * over. Also the configuration defaults. */
#include "pipeline_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define MSG_LEN 1024

/* What wasm2c 1.0.32 translates by default, minus SIMD: wasm-opt starts
 * from the MVP and enables each, and validates the module against them.
 * Threads, exceptions, memory64 and tail calls stay off. */
const char *const pipe_wasm_opt_features[] = {
        "--mvp-features",
        "--enable-mutable-globals",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-bulk-memory",
        "--enable-multivalue",
        "--enable-reference-types",
        NULL,
};

/* The platform's folders under viv_share_dir(), made once. */
static char share_include[PATH_MAX], share_sdk[PATH_MAX], share_tools[PATH_MAX];

/* dir/name, its links resolved (a build tree's share/vivarium links into
 * the source tree, and the folders are hashed and checked as they are). */
static void share_path(const char *dir, const char *name, char out[PATH_MAX])
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!realpath(path, out))
		snprintf(out, PATH_MAX, "%s", path);
}

static void share_paths(void)
{
	const char *share = viv_share_dir();

	if (!share)
		return;
	share_path(share, "include", share_include);
	share_path(share, "sdk", share_sdk);
	share_path(share, "tools", share_tools);
}

void pipe_config_defaults(struct pipe_config *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	long cpus;

	memset(cfg, 0, sizeof(*cfg));
	pthread_once(&once, share_paths);
	cfg->include_dir = share_include[0] ? share_include : NULL;
	cfg->sdk_dir = share_sdk[0] ? share_sdk : NULL;
	cfg->tool_dir = share_tools[0] ? share_tools : NULL;
	cfg->upload_max = VIV_UPLOAD_MAX_DEFAULT;
	cfg->unpack_max_bytes = 256 * MIB;
	cfg->unpack_max_entries = 10000;
	cfg->assets_max_entries = 10000;
	cfg->assets_max_bytes = 128 * MIB;
	cfg->step_timeout_ms = 120000;
	cfg->step_output_cap = 256 * 1024;
	cfg->sandbox = true;
	cfg->aot_part_bytes = PIPE_AOT_PART_BYTES;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus > PIPE_AOT_PARTS_MAX)
		cpus = PIPE_AOT_PARTS_MAX;
	cfg->aot_parts_max = cpus < 1 ? 1 : (unsigned)cpus;
	cfg->limits_default.memory_mb = VIV_LIMIT_MEMORY_MB_DEFAULT;
	cfg->limits_default.cpu_ms = VIV_LIMIT_CPU_MS_DEFAULT;
	cfg->limits_default.wall_ms = VIV_LIMIT_WALL_MS_DEFAULT;
	cfg->limits_max.memory_mb = VIV_LIMIT_MEMORY_MB_MAX;
	cfg->limits_max.cpu_ms = VIV_LIMIT_CPU_MS_MAX;
	cfg->limits_max.wall_ms = VIV_LIMIT_WALL_MS_MAX;
	/* A Rust build of a small crate peaks at a few hundred MiB and a few
	 * dozen threads (the pids limit counts threads). */
	cfg->build_memory_mb = 2048;
	cfg->build_procs_max = 512;
	cfg->build_disk_mb = 1024;
	cfg->build_timeout_ms = 600000;
	cfg->build_gid = (gid_t)-1;
	cfg->builders = 2;
}

/* ---- The build ------------------------------------------------------------------- */

/* The store's name for how an artifact of mode is served. */
static enum store_mode mode_of(enum viv_guest_mode mode)
{
	return mode == VIV_GUEST_HOSTCALL ? STORE_MODE_HOSTCALL : STORE_MODE_CGI;
}

/*
 * A build's folder holds two: tenant/, where the upload is unpacked and the
 * language step runs (the tenant's build scripts, proc macros, compiler
 * plugins, npm packages' scripts: hostile code, as the build user when
 * there is a launcher), and trusted/, which no command of that step ever
 * has (it is never mounted into its sandbox, and the build user cannot
 * enter it). The one thing taken from tenant/ is the module, read by
 * descriptor beneath it without following links and copied into trusted/;
 * wasm-opt, wasm2c, the glue and the C compiler work there, and the
 * artifact comes only from there.
 */
struct build {
	struct store *st;
	const struct pipe_config *cfg;
	int64_t id;
	struct store_deployment *dep;
	char *upload;
	char *scratch; /* the build's folder */
	char *tenant;  /* the language step's folder in it */
	char *trusted; /* the folder of the steps after it */
	char *src_dir;
	char *out_dir;
	char *root;
	struct pipe_ctx ctx;
	struct pipe_manifest *manifest;
	struct store_deploy_config config;
	const struct pipe_toolchain *tc;
	char *built;    /* the toolchain's module, relative to tenant */
	char *opt_data; /* the optimized module's bytes */
	size_t opt_len;
	struct pipe_wasm_info *info;
	enum viv_guest_mode mode;
	bool has_initialize;
	const struct pipe_tools *tools;
	char hash[VIV_SHA256_HEX_LEN + 1];
	char assets_hash[VIV_SHA256_HEX_LEN + 1]; /* "" when there are none */
	bool has_malloc; /* exports default_malloc_impl with the right type */
	bool has_free;   /* exports default_free_impl with the right type */
	bool reuse;
	/* The build key, "" when none could be made; and the earlier build
	 * with the same key, when there is one to take over. */
	char key[VIV_SHA256_HEX_LEN + 1];
	struct store_prior_build *prior;
	int64_t so_size;
	char msg[MSG_LEN]; /* the failure sentence for the user */
};

static void flush_to_store(void *arg, const char *text)
{
	struct build *b = arg;
	enum viv_err err = store_deployment_log(b->st, b->id, text);

	if (err)
		viv_log(VIV_WARN, "deployment %lld: could not append to the build log: %s",
		        (long long)b->id, viv_strerror(err));
}

static void timing(void *arg, const char *step, int64_t ms)
{
	struct build *b = arg;
	enum viv_err err = store_deployment_timing(b->st, b->id, step, ms);

	if (err)
		viv_log(VIV_WARN, "deployment %lld: could not record the %s timing: %s",
		        (long long)b->id, step, viv_strerror(err));
}

/* Makes the folder name in parent (host path), for the build's own use,
 * or, shared, for the build user too: the folder gets the build user's
 * group, setgid so that what is made in it does too, and the group may
 * write it (cfg->build_gid). */
static enum viv_err make_dir(struct build *b, const char *parent, const char *name, bool shared,
                             char **out)
{
	enum viv_err err = VIV_OK;
	bool group = shared && b->cfg->build_gid != (gid_t)-1;

	*out = viv_path_join(parent, name);
	if (!*out)
		return VIV_ERR_NOMEM;
	if (mkdir(*out, 0700) != 0)
		err = VIV_ERR_IO;
	else if (group &&
	         (chown(*out, (uid_t)-1, b->cfg->build_gid) != 0 || chmod(*out, 02770) != 0))
		err = VIV_ERR_IO;
	if (err)
		viv_errf(b->msg, sizeof(b->msg), "could not make the build folder %s: %s", name,
		         strerror(errno));
	return err;
}

/* The two folders and what is in them. The build's own folder lets the
 * build user through to tenant/ and no further. */
static enum viv_err make_folders(struct build *b)
{
	char *tmp = NULL;
	enum viv_err err = VIV_OK;

	if (b->cfg->build_gid != (gid_t)-1 &&
	    (chown(b->scratch, (uid_t)-1, b->cfg->build_gid) != 0 || chmod(b->scratch, 0710) != 0))
		err = VIV_ERR_IO;
	if (!err)
		err = make_dir(b, b->scratch, "trusted", false, &b->trusted);
	if (!err)
		err = make_dir(b, b->trusted, "tmp", false, &tmp);
	free(tmp);
	tmp = NULL;
	if (!err)
		err = make_dir(b, b->scratch, "tenant", true, &b->tenant);
	if (!err)
		err = make_dir(b, b->tenant, "src", true, &b->src_dir);
	if (!err)
		err = make_dir(b, b->tenant, "out", true, &b->out_dir);
	if (!err)
		err = make_dir(b, b->tenant, "tmp", true, &tmp);
	free(tmp);
	return err;
}

static enum viv_err step_unpack(struct build *b)
{
	return pipe_unpack(b->upload, b->src_dir, b->cfg, &b->ctx.log, &b->root, b->msg,
	                   sizeof(b->msg));
}

static enum viv_err step_manifest(struct build *b)
{
	const struct pipe_manifest *m;
	enum viv_err err;

	err = pipe_manifest_load(b->root, b->cfg, &b->manifest, b->msg, sizeof(b->msg));
	if (err)
		return err;
	m = b->manifest;
	pipe_logf(&b->ctx,
	          "%s; limits: memory %u MB, cpu %u ms, wall %u ms; %zu env, %zu "
	          "outbound\n",
	          m->present ? "vivarium.json read" : "no vivarium.json: using the defaults",
	          m->limits.memory_mb, m->limits.cpu_ms, m->limits.wall_ms, m->n_env,
	          m->n_outbound);
	return VIV_OK;
}

/* Static files go into the store before the code is compiled: the tree is
 * hashed and copied while nothing else has run in the upload, so the hash
 * is of what the user sent. A build that fails later leaves the stored tree
 * behind, where the next deployment with the same files finds it. */
static enum viv_err step_assets(struct build *b)
{
	const struct pipe_manifest *m = b->manifest;
	const char *label = m->assets ? m->assets : "assets";
	struct pipe_assets_stats stats;
	struct stat st;
	char *dir;
	enum viv_err err = VIV_OK;

	dir = viv_path_join(b->root, label);
	if (!dir)
		return VIV_ERR_NOMEM;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (m->assets) {
			viv_errf(b->msg, sizeof(b->msg),
			         "vivarium.json: assets names '%.100s', which is not a folder in "
			         "the upload",
			         m->assets);
			err = VIV_ERR_INVALID;
		} else {
			pipe_logf(&b->ctx, "no assets/ folder: the app serves every path\n");
		}
		goto out;
	}
	err = pipe_assets_hash(dir, label, b->cfg->assets_max_entries, b->cfg->assets_max_bytes,
	                       b->assets_hash, &stats, b->msg, sizeof(b->msg));
	if (err)
		goto out;
	if (stats.files == 0) {
		pipe_logf(&b->ctx, "%s/ holds no files: nothing to serve as static files\n", label);
		b->assets_hash[0] = '\0';
		goto out;
	}
	err = store_assets_put(b->st, b->assets_hash, dir);
	if (err) {
		viv_errf(b->msg, sizeof(b->msg), "could not store the static files: %s",
		         viv_strerror(err));
		goto out;
	}
	pipe_logf(&b->ctx, "static files: %zu in %s/ (%llu bytes), stored as %s\n", stats.files,
	          label, (unsigned long long)stats.bytes, b->assets_hash);
out:
	free(dir);
	if (!err)
		err = pipe_manifest_config(m, b->assets_hash[0] ? b->assets_hash : NULL,
		                           &b->config);
	return err;
}

static enum viv_err step_detect(struct build *b)
{
	enum viv_err err;

	err = pipe_detect(b->root, b->manifest, &b->tc, b->msg, sizeof(b->msg));
	if (err)
		return err;
	pipe_logf(&b->ctx, "language: %s (%s)\n", b->tc->ops->name,
	          b->manifest->language ? "from vivarium.json" : "detected");
	err = store_deployment_set_language(b->st, b->id, b->tc->ops->name);
	if (err)
		viv_errf(b->msg, sizeof(b->msg), "could not record the language: %s",
		         viv_strerror(err));
	return err;
}

/* The language step, then the one thing taken from it: the module, read
 * beneath tenant/ (no links, one name, a regular file, capped) and copied
 * into trusted/, where every later step works. */
static enum viv_err step_compile(struct build *b)
{
	struct pipe_project p = {&b->ctx, b->root, b->manifest, b->out_dir};
	char *data = NULL, *shown = NULL;
	size_t len = 0, shown_len = 0;
	unsigned added = 0;
	enum viv_err err;
	int dfd;

	err = b->tc->ops->build(b->tc->ctx, &p, &b->built, b->msg, sizeof(b->msg));
	if (err)
		return err;
	err = pipe_read_built(&b->ctx, b->built, "the module the build made",
	                      b->cfg->unpack_max_bytes, &data, &len, b->msg, sizeof(b->msg));
	if (err)
		return err;
	/* From here on, nothing of the language step's runs or is read. */
	b->ctx.scratch = b->trusted;
	b->ctx.confined = false;
	err = pipe_wasm_expose(data, len, &shown, &shown_len, &added, b->msg, sizeof(b->msg));
	if (err) {
		free(data);
		return err;
	}
	if (added & PIPE_EXPOSED_MEMORY)
		pipe_logf(&b->ctx,
		          "the module does not export its memory: exported as %s so that "
		          "the optimizer keeps what the host reads\n",
		          PIPE_WASM_EXPOSED_MEMORY);
	if (added & PIPE_EXPOSED_TABLE)
		pipe_logf(&b->ctx,
		          "the module does not export its table: exported as %s so that "
		          "the optimizer keeps what the host calls\n",
		          PIPE_WASM_EXPOSED_TABLE);
	dfd = open(b->trusted, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	err = dfd < 0 ? VIV_ERR_IO
	              : viv_write_file_at(dfd, "module.wasm", shown ? shown : data,
	                                  shown ? shown_len : len, 0644);
	if (dfd >= 0)
		close(dfd);
	free(data);
	free(shown);
	if (err)
		viv_errf(b->msg, sizeof(b->msg), "could not copy the module: %s",
		         viv_strerror(err));
	return err;
}

static enum viv_err step_optimize(struct build *b)
{
	const char *argv[20];
	size_t n = 0;
	enum viv_err err;

	argv[n++] = "wasm-opt";
	argv[n++] = "-O2";
	/* Debian's wasi-libc carries DWARF: 33 of the C hello's 36 KB. */
	argv[n++] = "--strip-dwarf";
	argv[n++] = "--strip-producers";
	for (size_t i = 0; pipe_wasm_opt_features[i]; i++)
		argv[n++] = pipe_wasm_opt_features[i];
	argv[n++] = "module.wasm";
	argv[n++] = "-o";
	argv[n++] = "opt.wasm";
	argv[n] = NULL;
	err = pipe_run_ok(&b->ctx, NULL, argv, b->msg, sizeof(b->msg));
	if (err == VIV_ERR_BUILD)
		viv_errf(b->msg, sizeof(b->msg),
		         "wasm-opt rejected the module: it is not valid WebAssembly or it uses "
		         "a feature Vivarium does not support (SIMD, threads, exceptions, "
		         "memory64, tail calls); wasm-opt's message is in the build log");
	return err;
}

/* Whether the module exports function name with exactly type; a note in
 * the log when it exports it with another, which the host then ignores. */
static bool export_typed(struct build *b, const char *name, const char *type)
{
	const struct pipe_wasm_export *e = pipe_wasm_export_find(b->info, name, PIPE_WASM_FUNC);
	char have[128], want[128];

	if (!e)
		return false;
	if (strcmp(e->type, type) == 0)
		return true;
	pipe_wasm_type_text(e->type, have, sizeof(have));
	pipe_wasm_type_text(type, want, sizeof(want));
	pipe_logf(&b->ctx, "note: %s has type %s, not %s; the host will not allocate with it\n",
	          name, have, want);
	return false;
}

/* The module was validated by wasm-opt, against the feature set artifacts
 * are built for, and wasm2c validates it again as it reads it; this step
 * decides how it is served and checks its imports and entry points. */
static enum viv_err step_validate(struct build *b)
{
	const struct pipe_wasm_export *init;
	char t[128];
	enum viv_err err;

	err = pipe_read_built(&b->ctx, "opt.wasm", "the optimized module", b->cfg->unpack_max_bytes,
	                      &b->opt_data, &b->opt_len, b->msg, sizeof(b->msg));
	if (err)
		return err;
	err = pipe_wasm_parse(b->opt_data, b->opt_len, &b->info, b->msg, sizeof(b->msg));
	if (!err)
		err = pipe_wasm_check(b->info, &b->mode, b->msg, sizeof(b->msg));
	if (err)
		return err;
	init = pipe_wasm_export_find(b->info, "_initialize", PIPE_WASM_FUNC);
	if (init && strcmp(init->type, ":") != 0) {
		pipe_wasm_type_text(init->type, t, sizeof(t));
		viv_errf(b->msg, sizeof(b->msg),
		         "the module exports _initialize with type %s, but it must take no "
		         "parameters and return nothing",
		         t);
		return VIV_ERR_INVALID;
	}
	b->has_initialize = init != NULL;
	b->has_malloc = export_typed(b, "default_malloc_impl", "i:i");
	b->has_free = export_typed(b, "default_free_impl", "i:");
	pipe_logf(&b->ctx, "mode: %s (%s); %u imports, all provided; %zu bytes\n",
	          store_mode_name(mode_of(b->mode)),
	          b->mode == VIV_GUEST_HOSTCALL ? "exports run" : "exports _start",
	          b->info->n_imports, b->opt_len);
	return VIV_OK;
}

static enum viv_err step_hash(struct build *b)
{
	char why[MSG_LEN / 2];
	enum viv_err err;

	err = pipe_tools_get(&b->ctx, &b->tools, why, sizeof(why));
	if (err) {
		viv_errf(b->msg, sizeof(b->msg),
		         "this server's native compiler is not set up (%s); tell the operator",
		         why);
		return err;
	}
	err = pipe_artifact_hash(b->tools, b->mode, b->opt_data, b->opt_len, b->hash);
	if (err)
		return err;
	b->reuse = store_artifact_exists(b->st, b->hash);
	if (b->reuse)
		pipe_logf(&b->ctx, "artifact %s already built; reusing it\n", b->hash);
	else
		pipe_logf(&b->ctx, "artifact %s (%s, %s)\n", b->hash, b->tools->wasm2c_version,
		          b->tools->cc_version);
	return VIV_OK;
}

static enum viv_err step_aot(struct build *b)
{
	struct pipe_glue_spec spec = {b->mode, b->has_initialize, b->hash, b->has_malloc,
	                              b->has_free};

	return pipe_aot(&b->ctx, b->tools, "opt.wasm", &spec, timing, b, b->msg, sizeof(b->msg));
}

/* Puts trusted/name into the store as the artifact's ext, read by
 * descriptor beneath trusted/. */
static enum viv_err store_from_trusted(struct build *b, const char *name, const char *ext,
                                       int64_t *size_out)
{
	struct stat st;
	char why[160];
	enum viv_err err;
	int dfd, fd = -1;

	dfd = open(b->trusted, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return VIV_ERR_IO;
	err = viv_open_regular_beneath(dfd, name, &fd, &st, why, sizeof(why));
	close(dfd);
	if (err) {
		viv_errf(b->msg, sizeof(b->msg), "could not store the artifact: %s %s", name, why);
		return err;
	}
	err = store_artifact_put_fd(b->st, b->hash, ext, fd);
	close(fd);
	if (err)
		viv_errf(b->msg, sizeof(b->msg), "could not store the artifact: %s",
		         viv_strerror(err));
	else if (size_out)
		*size_out = (int64_t)st.st_size;
	return err;
}

static enum viv_err step_store(struct build *b)
{
	struct stat st;
	char *path;
	enum viv_err err;

	/* The wasm first: an artifact whose .so exists always has its wasm,
	 * so it can be rebuilt after an ABI change. */
	err = store_from_trusted(b, "opt.wasm", "wasm", NULL);
	if (!err && !b->reuse)
		err = store_from_trusted(b, "guest.so", "so", NULL);
	if (err)
		return err;
	path = store_artifact_path(b->st, b->hash, "so");
	if (!path)
		return VIV_ERR_NOMEM;
	if (stat(path, &st) != 0) {
		viv_errf(b->msg, sizeof(b->msg), "the stored artifact is missing: %s",
		         strerror(errno));
		err = VIV_ERR_IO;
	} else {
		b->so_size = (int64_t)st.st_size;
	}
	free(path);
	return err;
}

/* Runs one step with its heading and timing. */
static enum viv_err run_step(struct build *b, const char *name, enum viv_err (*fn)(struct build *b))
{
	uint64_t t0 = viv_mono_ns();
	enum viv_err err;

	pipe_logf(&b->ctx, "== %s\n", name);
	err = fn(b);
	if (err && b->msg[0] == '\0')
		viv_errf(b->msg, sizeof(b->msg),
		         "the %s step failed inside Vivarium (%s); try again, and report it "
		         "if it persists",
		         name, viv_strerror(err));
	pipe_log_flush(&b->ctx);
	timing(b, name, (int64_t)((viv_mono_ns() - t0) / 1000000));
	return err;
}

static enum viv_err run_steps(struct build *b)
{
	static const struct {
		const char *name;
		enum viv_err (*fn)(struct build *b);
	} before[] = {
	        {"unpack", step_unpack},     {"manifest", step_manifest},
	        {"assets", step_assets},     {"detect", step_detect},
	        {"compile", step_compile},   {"optimize", step_optimize},
	        {"validate", step_validate}, {"hash", step_hash},
	};
	enum viv_err err = VIV_OK;

	/* Until the module is taken from it (step_compile), tools work in
	 * tenant/ as the language step. */
	b->ctx.scratch = b->tenant;
	b->ctx.confined = true;
	for (size_t i = 0; !err && i < sizeof(before) / sizeof(before[0]); i++)
		err = run_step(b, before[i].name, before[i].fn);
	if (err)
		return err;
	if (!b->reuse) {
		/* wasm2c, glue and cc record their own timings. */
		pipe_logf(&b->ctx, "== wasm2c, glue, cc\n");
		err = step_aot(b);
		if (err && b->msg[0] == '\0')
			viv_errf(b->msg, sizeof(b->msg),
			         "native compilation failed inside Vivarium (%s); try again, "
			         "and report it if it persists",
			         viv_strerror(err));
		pipe_log_flush(&b->ctx);
		if (err)
			return err;
	}
	return run_step(b, "store", step_store);
}

/* ---- Identical uploads ------------------------------------------------------------- */

/* Makes the build key and looks for a ready build with it. Without a key
 * the build runs as usual and is recorded without one. */
static void find_prior(struct build *b)
{
	char why[MSG_LEN / 2];
	enum viv_err err;

	err = pipe_build_key(&b->ctx, b->dep->upload_sha256, b->key, why, sizeof(why));
	if (err) {
		b->key[0] = '\0';
		pipe_logf(&b->ctx, "note: this build will not be reused by identical uploads: %s\n",
		          why);
		return;
	}
	err = store_deployment_find_build(b->st, b->key, &b->prior);
	if (err && err != VIV_ERR_NOT_FOUND)
		viv_log(VIV_WARN,
		        "deployment %lld: could not look for an earlier identical build: %s",
		        (long long)b->id, viv_strerror(err));
}

/* True when the static files the configuration names (if any) are still
 * stored: the earlier build's configuration is served as it is. */
static bool prior_assets_present(struct build *b)
{
	const char *assets = b->prior->config.assets;
	char *path;
	struct stat st;
	bool ok;

	if (!assets)
		return true;
	path = store_assets_path(b->st, assets);
	ok = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return ok;
}

/* Takes over the earlier build: its artifact, mode, configuration and
 * language (recorded with the outcome). Nothing is unpacked or compiled, and
 * the log line waits for the outcome's: on this path each write to the
 * store is a good part of the time. */
static enum viv_err reuse_prior(struct build *b)
{
	const struct store_prior_build *p = b->prior;
	enum viv_err err;

	if (strlen(p->artifact) != VIV_SHA256_HEX_LEN)
		return VIV_ERR_INTERNAL;
	memcpy(b->hash, p->artifact, sizeof(b->hash));
	b->mode = p->config.mode == STORE_MODE_HOSTCALL ? VIV_GUEST_HOSTCALL : VIV_GUEST_CGI;
	b->so_size = p->artifact_size;
	b->opt_len = (size_t)p->wasm_size;
	store_deploy_config_clear(&b->config);
	err = store_deploy_config_copy(&b->config, &p->config);
	if (err)
		return err;
	pipe_logf(&b->ctx,
	          "identical upload: reusing the build of deployment %lld (%s%s%s mode, "
	          "artifact %s)\n",
	          (long long)p->deployment_id, p->language ? p->language : "",
	          p->language ? ", " : "", store_mode_name(mode_of(b->mode)), p->artifact);
	return VIV_OK;
}

/* The build, or the earlier one it is identical to. */
static enum viv_err build_or_reuse(struct build *b)
{
	find_prior(b);
	if (b->prior && !prior_assets_present(b)) {
		pipe_logf(&b->ctx,
		          "an identical upload was built before (deployment %lld), but "
		          "its static files are gone: building again\n",
		          (long long)b->prior->deployment_id);
		store_prior_build_free(b->prior);
		b->prior = NULL;
	}
	if (b->prior)
		return reuse_prior(b);
	return run_steps(b);
}

static void build_free(struct build *b)
{
	pipe_ctx_free(&b->ctx);
	store_deployment_free(b->dep);
	pipe_manifest_free(b->manifest);
	pipe_wasm_free(b->info);
	store_prior_build_free(b->prior);
	free(b->upload);
	free(b->scratch);
	free(b->tenant);
	free(b->trusted);
	free(b->src_dir);
	free(b->out_dir);
	free(b->root);
	store_deploy_config_clear(&b->config);
	free(b->built);
	free(b->opt_data);
}

/* Removes the build's folder: what the language step made belongs to the
 * build user, so the launcher empties tenant/ first. */
static void remove_folder(struct build *b)
{
	if (b->tenant && pipe_launcher_empty(b->cfg, b->tenant) != VIV_OK)
		viv_log(VIV_WARN, "could not empty the language step's folder %s", b->tenant);
	if (viv_rmtree(b->scratch) != VIV_OK)
		viv_log(VIV_WARN, "could not remove the build folder %s", b->scratch);
}

enum viv_err pipe_build(struct store *st, const struct pipe_config *cfg, const char *builds_dir,
                        int64_t deployment_id)
{
	struct build b;
	uint64_t t0 = viv_mono_ns();
	enum viv_err err;

	memset(&b, 0, sizeof(b));
	b.st = st;
	b.cfg = cfg;
	b.id = deployment_id;
	pipe_ctx_init(&b.ctx, cfg, "");
	b.ctx.cache_dir = store_cache_dir(st);
	b.ctx.flush = flush_to_store;
	b.ctx.flush_arg = &b;
	err = store_deployment_get(st, deployment_id, &b.dep);
	if (err)
		goto out;
	b.upload = store_upload_path(st, deployment_id);
	if (!b.upload) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	viv_log(VIV_INFO, "building deployment %lld of %s", (long long)b.id, b.dep->app);

	if (cfg->build_timeout_ms)
		b.ctx.deadline_ns = t0 + (uint64_t)cfg->build_timeout_ms * 1000000u;
	err = store_build_dir(st, builds_dir, deployment_id, &b.scratch);
	if (!err)
		err = make_folders(&b);
	if (err && !b.msg[0])
		viv_errf(b.msg, sizeof(b.msg),
		         "could not make a build folder (%s); try again, and tell the operator "
		         "if it persists",
		         viv_strerror(err));
	if (!err) {
		/* Tools first run for the build key, in trusted/. */
		b.ctx.scratch = b.trusted;
		err = build_or_reuse(&b);
	}

	/* A failed build is an outcome: record it, and report only what
	 * kept us from recording. */
	if (err) {
		pipe_logf(&b.ctx, "build failed: %s\n", b.msg);
		pipe_log_flush(&b.ctx);
		timing(&b, "total", (int64_t)((viv_mono_ns() - t0) / 1000000));
		viv_log(VIV_INFO, "deployment %lld failed: %s", (long long)b.id, b.msg);
		err = store_deployment_failed(st, b.id, b.msg);
	} else {
		char so_sha256[VIV_SHA256_HEX_LEN + 1] = "", platform[VIV_PLATFORM_MAX];
		struct store_build sb = {
		        .artifact = b.hash,
		        .config = &b.config,
		        .artifact_size = b.so_size,
		        .wasm_size = (int64_t)b.opt_len,
		        .build_key = b.key[0] ? b.key : NULL,
		        .language = b.prior ? b.prior->language : NULL,
		        .platform = platform,
		};
		char *so = store_artifact_path(st, b.hash, "so");

		/* What runner hosts that fetch the artifact check it against: the
		 * stored file is the platform's own, in the artifact folder. */
		viv_platform(platform);
		if (so && viv_sha256_file(so, so_sha256) == VIV_OK)
			sb.so_sha256 = so_sha256;
		else
			viv_log(VIV_WARN, "deployment %lld: cannot hash artifact %s",
			        (long long)b.id, b.hash);
		free(so);
		b.config.mode = mode_of(b.mode);
		pipe_logf(&b.ctx, "ready: %s mode, artifact %s, %lld ms\n",
		          store_mode_name(b.config.mode), b.hash,
		          (long long)((viv_mono_ns() - t0) / 1000000));
		pipe_log_flush(&b.ctx);
		timing(&b, "total", (int64_t)((viv_mono_ns() - t0) / 1000000));
		viv_log(VIV_INFO, "deployment %lld ready: %s", (long long)b.id, b.hash);
		err = store_deployment_ready(st, b.id, &sb);
	}
	if (err)
		viv_log(VIV_ERROR, "deployment %lld: could not record the outcome: %s",
		        (long long)b.id, viv_strerror(err));
out:
	if (b.scratch)
		remove_folder(&b);
	if (b.upload && unlink(b.upload) != 0 && errno != ENOENT)
		viv_log(VIV_WARN, "could not remove the upload %s: %s", b.upload, strerror(errno));
	build_free(&b);
	return err;
}
