/* The Rust toolchain: cargo with a rustc that has the wasm32-wasi standard
 * library (Debian's rustc, cargo and libstd-rust-dev-wasm32), offline, with
 * dependencies from Debian's packaged crates and the Vivarium SDK. A crate
 * that exports run is a Terrarium-style handler; a bin crate with main is a
 * WASI command. */
#include "pipeline_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RUST_TARGET "wasm32-wasi"
/* Where Debian's librust-*-dev packages put crate sources, each in a
 * folder with a .cargo-checksum.json: a ready cargo directory source. */
#define RUST_REGISTRY "/usr/share/cargo/registry"
/* A rustup toolchain may come first on an operator's PATH without the
 * wasm32-wasi target; tools here run with PATH=/usr/bin:/bin anyway, and
 * the compiler is named by its full path. VIV_RUSTC and VIV_CARGO choose
 * others (they must be under /usr to be seen inside the sandbox). */
#define RUST_RUSTC_DEFAULT "/usr/bin/rustc"
#define RUST_CARGO_DEFAULT "/usr/bin/cargo"
#define RUST_SETUP_HINT                                                                            \
	"the operator installs Debian's rustc, cargo and libstd-rust-dev-wasm32 "                  \
	"(scripts/setup.sh does)"
#define RUST_WASM_MAX 64
#define NAME_MAX_SHOWN 100

/* ---- The compiler ---------------------------------------------------------- */

struct rust_tools {
	char rustc[256];
	char cargo[256];
	char rustc_version[200];
	char cargo_version[200];
	char std_dir[600]; /* the wasm32-wasi standard library */
};

static pthread_mutex_t rust_lock = PTHREAD_MUTEX_INITIALIZER;
static bool rust_ready;
static struct rust_tools rust_tools;

/* Runs argv quietly and keeps the first line of what it printed. */
static enum viv_err first_line_of(struct pipe_ctx *ctx, const char *const *argv, char *buf,
                                  size_t len, char *err, size_t errlen)
{
	struct viv_buf out;
	struct pipe_exit ex;
	enum viv_err e;
	size_t n;

	viv_buf_init(&out, 64 * 1024);
	memset(&ex, 0, sizeof(ex));
	e = pipe_spawn(ctx->cfg, ctx->scratch, NULL, argv, &out, &ex, err, errlen);
	if (!e && (ex.code != 0 || !out.data || !*out.data)) {
		viv_errf(err, errlen, "%s %s failed (exit status %d)", argv[0], argv[1], ex.code);
		e = VIV_ERR_BUILD;
	}
	if (!e) {
		n = strcspn(out.data, "\r\n");
		if (n >= len)
			n = len - 1;
		memcpy(buf, out.data, n);
		buf[n] = '\0';
	}
	viv_buf_free(&out);
	return e;
}

static enum viv_err pick_tool(const char *env, const char *dflt, char *buf, size_t len, char *err,
                              size_t errlen)
{
	const char *path = getenv(env);

	if (!path || !*path)
		path = dflt;
	if (path[0] != '/' || strlen(path) >= len) {
		viv_errf(err, errlen, "%s must be an absolute path; tell the operator", env);
		return VIV_ERR_UNSUPPORTED;
	}
	if (access(path, X_OK) != 0) {
		viv_errf(err, errlen,
		         "Rust builds are not set up on this server (there is no %s); "
		         "%s",
		         path, RUST_SETUP_HINT);
		return VIV_ERR_UNSUPPORTED;
	}
	strcpy(buf, path);
	return VIV_OK;
}

/* Finds a rustc whose sysroot has the wasm32-wasi standard library, and
 * cargo; probed once per process, again after a failure. */
static enum viv_err rust_tools_get(struct pipe_ctx *ctx, const struct rust_tools **out, char *err,
                                   size_t errlen)
{
	struct rust_tools t;
	char sysroot[512], *std_dir = NULL;
	struct stat st;
	enum viv_err e = VIV_OK;

	*out = NULL;
	pthread_mutex_lock(&rust_lock);
	if (rust_ready)
		goto done;
	memset(&t, 0, sizeof(t));
	e = pick_tool("VIV_RUSTC", RUST_RUSTC_DEFAULT, t.rustc, sizeof(t.rustc), err, errlen);
	if (!e)
		e = pick_tool("VIV_CARGO", RUST_CARGO_DEFAULT, t.cargo, sizeof(t.cargo), err,
		              errlen);
	if (e)
		goto done;
	{
		const char *argv[] = {t.rustc, "--print", "sysroot", NULL};
		e = first_line_of(ctx, argv, sysroot, sizeof(sysroot), err, errlen);
	}
	if (e) {
		viv_errf(err, errlen, "the Rust compiler %s does not run; %s", t.rustc,
		         RUST_SETUP_HINT);
		e = VIV_ERR_UNSUPPORTED;
		goto done;
	}
	if (asprintf(&std_dir, "%s/lib/rustlib/%s/lib", sysroot, RUST_TARGET) < 0) {
		std_dir = NULL;
		e = VIV_ERR_NOMEM;
		goto done;
	}
	if (stat(std_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    strlen(std_dir) >= sizeof(t.std_dir)) {
		viv_errf(err, errlen,
		         "the Rust compiler %s has no standard library for %s (no %s); %s, or "
		         "sets VIV_RUSTC to a rustc that has it",
		         t.rustc, RUST_TARGET, std_dir, RUST_SETUP_HINT);
		e = VIV_ERR_UNSUPPORTED;
		goto done;
	}
	{
		const char *rv[] = {t.rustc, "--version", NULL};
		const char *cv[] = {t.cargo, "--version", NULL};
		e = first_line_of(ctx, rv, t.rustc_version, sizeof(t.rustc_version), err, errlen);
		if (!e)
			e = first_line_of(ctx, cv, t.cargo_version, sizeof(t.cargo_version), err,
			                  errlen);
	}
	if (e) {
		e = VIV_ERR_UNSUPPORTED;
		goto done;
	}
	strcpy(t.std_dir, std_dir);
	rust_tools = t;
	rust_ready = true;
done:
	pthread_mutex_unlock(&rust_lock);
	free(std_dir);
	if (!e)
		*out = &rust_tools;
	return e;
}

/* ---- Cargo's configuration --------------------------------------------------- */

/* A path as a TOML basic string's contents: only paths that need no
 * escaping are written, so a strange data directory cannot change the
 * file's meaning. */
static bool toml_path_ok(const char *path)
{
	for (const char *c = path; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\')
			return false;
	}
	return true;
}

/* The SDK crate's folder when the server has one, else NULL (caller frees
 * with free()). */
static char *sdk_crate_dir(const struct pipe_config *cfg)
{
	char *dir;

	if (!cfg->sdk_dir)
		return NULL;
	dir = viv_path_join(cfg->sdk_dir, "rust");
	if (dir && !pipe_exists(dir, "Cargo.toml", false)) {
		free(dir);
		dir = NULL;
	}
	return dir;
}

/* The SDK is patched in only for projects that name it: cargo warns about
 * every [patch] entry a build does not use, which would confuse the logs of
 * every other Rust app. A mention anywhere in Cargo.toml is enough; a
 * false positive costs only that warning. */
static bool mentions_sdk(const struct pipe_project *p)
{
	char *root_rel = NULL, *rel = NULL, *text = NULL, err[256];
	size_t len = 0;
	bool yes = false;

	if (pipe_relpath(p->ctx->scratch, p->root, &root_rel) == VIV_OK)
		rel = viv_path_join(root_rel, "Cargo.toml");
	if (rel && pipe_read_built(p->ctx, rel, "Cargo.toml", PIPE_MANIFEST_MAX * 4, &text, &len,
	                           err, sizeof(err)) == VIV_OK)
		yes = strstr(text, "vivarium") != NULL;
	free(root_rel);
	free(rel);
	free(text);
	return yes;
}

/* Writes CARGO_HOME/config.toml: crates.io replaced by the directory of
 * Debian's packaged crates (or an empty one), offline, no colors, and the
 * SDK as the crate `vivarium` when the project asks for it. */
static enum viv_err write_cargo_config(const struct pipe_project *p, const char *home, char *err,
                                       size_t errlen)
{
	struct viv_buf b;
	char *path = NULL, *empty = NULL, *sdk = NULL, *registry = NULL;
	struct stat st;
	enum viv_err e;

	viv_buf_init(&b, 16 * 1024);
	if (stat(RUST_REGISTRY, &st) != 0 || !S_ISDIR(st.st_mode)) {
		empty = viv_path_join(home, "no-crates");
		if (!empty) {
			e = VIV_ERR_NOMEM;
			goto out;
		}
		e = viv_mkdirs(empty, 0755);
		if (e)
			goto out;
		registry = pipe_tool_path(p->ctx, empty);
		pipe_logf(p->ctx,
		          "note: this server has no Debian crates (%s): only the "
		          "standard library and the Vivarium SDK can be used\n",
		          RUST_REGISTRY);
	} else {
		registry = strdup(RUST_REGISTRY);
	}
	if (!registry) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	if (mentions_sdk(p)) {
		char *host = sdk_crate_dir(p->ctx->cfg);
		sdk = host ? pipe_tool_path(p->ctx, host) : NULL;
		free(host);
	}
	if (!toml_path_ok(registry) || (sdk && !toml_path_ok(sdk))) {
		viv_errf(err, errlen,
		         "the server's paths cannot be written into cargo's "
		         "configuration; tell the operator");
		e = VIV_ERR_INTERNAL;
		goto out;
	}
	e = viv_buf_printf(&b,
	                   "# Written by Vivarium for one build: offline, with the crates\n"
	                   "# Debian packages on this server and the Vivarium SDK.\n"
	                   "[source.crates-io]\n"
	                   "replace-with = \"vivarium-offline\"\n"
	                   "\n"
	                   "[source.vivarium-offline]\n"
	                   "directory = \"%s\"\n"
	                   "\n"
	                   "[net]\n"
	                   "offline = true\n"
	                   "\n"
	                   "[term]\n"
	                   "color = \"never\"\n"
	                   "progress.when = \"never\"\n",
	                   registry);
	if (!e && sdk)
		e = viv_buf_printf(&b,
		                   "\n"
		                   "[patch.crates-io]\n"
		                   "vivarium = { path = \"%s\" }\n",
		                   sdk);
	if (e)
		goto out;
	path = viv_path_join(home, "config.toml");
	if (!path) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = viv_mkdirs(home, 0755);
	if (!e)
		e = viv_write_file_atomic(path, b.data, b.len, 0644);
	if (e)
		viv_errf(err, errlen, "could not write cargo's configuration: %s", viv_strerror(e));
	else if (sdk)
		pipe_logf(p->ctx, "the Vivarium SDK is the crate `vivarium` (%s)\n", sdk);
out:
	viv_buf_free(&b);
	free(path);
	free(empty);
	free(registry);
	free(sdk);
	return e;
}

/* ---- What went wrong ---------------------------------------------------------- */

/* Copies the text after marker up to the next '`' into buf; false when
 * marker is not in text. */
static bool quoted_after(const char *text, const char *marker, char *buf, size_t len)
{
	const char *s = strstr(text, marker), *end;
	size_t n;

	if (!s)
		return false;
	s += strlen(marker);
	end = strchr(s, '`');
	if (!end)
		return false;
	n = (size_t)(end - s);
	if (n > NAME_MAX_SHOWN)
		n = NAME_MAX_SHOWN;
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

/* One sentence for the user from cargo's output. */
static void explain_failure(const struct pipe_project *p, const char *output, int code, char *err,
                            size_t errlen)
{
	char name[NAME_MAX_SHOWN + 1], deb[NAME_MAX_SHOWN + 1];
	char *sdk;

	if (quoted_after(output, "no matching package named `", name, sizeof(name))) {
		if (strcmp(name, "vivarium") == 0) {
			sdk = sdk_crate_dir(p->ctx->cfg);
			viv_errf(err, errlen, "%s",
			         sdk ? "the Vivarium SDK crate `vivarium` did not resolve: ask "
			               "for version \"0.1\" in Cargo.toml"
			             : "the Vivarium Rust SDK (the crate `vivarium`) is not "
			               "installed on this server; tell the operator");
			free(sdk);
			return;
		}
		for (size_t i = 0;; i++) {
			deb[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
			if (!name[i])
				break;
		}
		viv_errf(err, errlen,
		         "the crate `%s` is not available: Rust builds here are offline and can "
		         "use only the crates Debian packages on this server (ask the operator "
		         "for librust-%s-dev) and the Vivarium SDK (`vivarium`); or put the "
		         "crate's source in the upload as a path dependency",
		         name, deb);
		return;
	}
	if (quoted_after(output, "failed to select a version for the requirement `", name,
	                 sizeof(name))) {
		viv_errf(err, errlen,
		         "no version of the crate this server has matches `%s`: the build log "
		         "lists the versions there are; loosen the requirement in Cargo.toml",
		         name);
		return;
	}
	if (strstr(output, "failed to parse manifest at") ||
	    strstr(output, "error: failed to load manifest")) {
		viv_errf(err, errlen,
		         "cargo could not read Cargo.toml; the build log says what is wrong with "
		         "it");
		return;
	}
	if (strstr(output, "error: could not compile `") || strstr(output, "error[E") ||
	    strstr(output, "\n --> ")) {
		viv_errf(err, errlen,
		         "the Rust compiler reported errors; the build log has them with file "
		         "and line");
		return;
	}
	viv_errf(err, errlen, "cargo failed (exit status %d); its output is in the build log",
	         code);
}

/* ---- The module ----------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .wasm files cargo left in the folder rel of the build folder (not in
 * its subfolders): cargo and build scripts ran, so the folder is opened
 * beneath the build folder without following links, and only regular
 * files count. */
static enum viv_err list_wasm(const struct pipe_project *p, const char *rel, char ***out,
                              size_t *n_out)
{
	static const char *const suffix[] = {".wasm", NULL};
	char **top = NULL;
	size_t k = 0;
	struct dirent *de;
	DIR *d;
	int sfd, fd;

	*out = NULL;
	*n_out = 0;
	sfd = open(p->ctx->scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return VIV_ERR_IO;
	fd = viv_open_beneath(sfd, rel, O_RDONLY | O_DIRECTORY, 0);
	close(sfd);
	top = calloc(RUST_WASM_MAX + 1, sizeof(*top));
	if (!top) {
		if (fd >= 0)
			close(fd);
		return VIV_ERR_NOMEM;
	}
	if (fd < 0) {
		*out = top;
		return errno == ENOENT ? VIV_OK : VIV_ERR_INVALID;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		free(top);
		return VIV_ERR_IO;
	}
	while ((de = readdir(d)) != NULL && k < RUST_WASM_MAX) {
		struct stat st;
		size_t n = strlen(de->d_name);

		if (n <= strlen(suffix[0]) || strcmp(de->d_name + n - 5, suffix[0]) != 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		top[k] = strdup(de->d_name);
		if (!top[k])
			break;
		k++;
	}
	closedir(d);
	if (k > 1)
		qsort(top, k, sizeof(*top), cmp_names);
	*out = top;
	*n_out = k;
	return VIV_OK;
}

static enum viv_err find_module(const struct pipe_project *p, const char *target_rel,
                                char **wasm_out, char *err, size_t errlen)
{
	char *release = NULL;
	char **found = NULL;
	size_t n = 0;
	enum viv_err e;

	if (asprintf(&release, "%s/%s/release", target_rel, RUST_TARGET) < 0)
		return VIV_ERR_NOMEM;
	e = list_wasm(p, release, &found, &n);
	if (e == VIV_ERR_INVALID)
		viv_errf(err, errlen,
		         "cargo's output folder %s cannot be used: it is, or is "
		         "reached through, a symbolic link",
		         release);
	if (e)
		goto out;
	if (n == 0) {
		viv_errf(err, errlen,
		         "cargo built no WebAssembly module: the crate needs a binary (fn "
		         "main, served as CGI) or a library with crate-type = [\"cdylib\"] "
		         "that exports run (#[no_mangle] pub extern \"C\" fn run())");
		e = VIV_ERR_INVALID;
		goto out;
	}
	if (n > 1) {
		struct viv_buf list;

		viv_buf_init(&list, 300);
		for (size_t i = 0; i < n; i++) {
			if (viv_buf_printf(&list, "%s%s", i ? ", " : "", found[i]) != VIV_OK)
				break;
		}
		viv_errf(err, errlen,
		         "cargo built several modules (%s); an app is one module: keep one "
		         "binary or one cdylib in the upload",
		         list.data ? list.data : "");
		viv_buf_free(&list);
		e = VIV_ERR_INVALID;
		goto out;
	}
	pipe_logf(p->ctx, "cargo built %s\n", found[0]);
	*wasm_out = viv_path_join(release, found[0]);
	if (!*wasm_out)
		e = VIV_ERR_NOMEM;
out:
	pipe_strv_free(found, n);
	free(release);
	return e;
}

/* A Cargo.lock from the user's machine records crates.io checksums, which
 * Debian's packaged crates do not have: cargo would refuse them. The
 * versions are chosen again from what this server has. */
static enum viv_err set_lock_aside(const struct pipe_project *p)
{
	char *lock = viv_path_join(p->root, "Cargo.lock");
	enum viv_err e = VIV_OK;

	if (!lock)
		return VIV_ERR_NOMEM;
	if (unlink(lock) == 0)
		pipe_logf(p->ctx, "note: Cargo.lock is not used: dependencies resolve against "
		                  "the crates on this server\n");
	else if (errno != ENOENT)
		e = VIV_ERR_IO;
	free(lock);
	return e;
}

/* Sets *slot to "NAME=value" (caller frees with free()), or to NULL. */
static enum viv_err env_entry(char **slot, const char *name, const char *value)
{
	if (asprintf(slot, "%s=%s", name, value) < 0) {
		*slot = NULL;
		return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

/* How every cargo here runs, the SDK's own build included: the profile
 * settings are part of what cargo's fingerprints compare. Debug information
 * is stripped at link time: wasm-opt drops it anyway, and the standard
 * library's made the Rust hello 5.8 MB for wasm-opt to read. */
static const char *const cargo_env_fixed[] = {
        "CARGO_INCREMENTAL=0",
        "CARGO_PROFILE_RELEASE_STRIP=debuginfo",
};

#define CARGO_ENV_MAX 8

/* Fills env (CARGO_ENV_MAX entries, NULL-terminated; caller frees each
 * entry with free()) for cargo with its home and target folders. */
static enum viv_err cargo_env(const struct pipe_ctx *ctx, char **env, const struct rust_tools *t,
                              const char *home, const char *target)
{
	char *home_seen = pipe_tool_path(ctx, home), *target_seen = pipe_tool_path(ctx, target);
	size_t n = 0;
	enum viv_err e = VIV_ERR_NOMEM;

	memset(env, 0, CARGO_ENV_MAX * sizeof(*env));
	if (home_seen && target_seen)
		e = env_entry(&env[n++], "CARGO_HOME", home_seen);
	if (!e)
		e = env_entry(&env[n++], "CARGO_TARGET_DIR", target_seen);
	free(home_seen);
	free(target_seen);
	if (!e)
		e = env_entry(&env[n++], "RUSTC", t->rustc);
	for (size_t i = 0; !e && i < sizeof(cargo_env_fixed) / sizeof(cargo_env_fixed[0]); i++) {
		env[n] = strdup(cargo_env_fixed[i]);
		e = env[n++] ? VIV_OK : VIV_ERR_NOMEM;
	}
	return e;
}

static void cargo_env_free(char **env)
{
	for (size_t i = 0; i < CARGO_ENV_MAX; i++)
		free(env[i]);
}

/* Runs cargo build in root through ctx, with cargo's home and target folders
 * as given; its output in *output_out (caller frees with free()). Same
 * results as pipe_run_output(). */
static enum viv_err run_cargo(struct pipe_ctx *ctx, const struct rust_tools *t, const char *root,
                              const char *home, const char *target, struct pipe_exit *ex,
                              char **output_out, char *err, size_t errlen)
{
	const char *argv[] = {t->cargo,   "build",     "--release", "--offline",
	                      "--target", RUST_TARGET, NULL};
	char *env[CARGO_ENV_MAX];
	enum viv_err e;

	*output_out = NULL;
	e = cargo_env(ctx, env, t, home, target);
	if (!e) {
		ctx->env = (const char *const *)env;
		memset(ex, 0, sizeof(*ex));
		e = pipe_run_output(ctx, root, argv, ex, output_out, err, errlen);
		ctx->env = NULL;
	}
	cargo_env_free(env);
	return e;
}

/* ---- The SDK crate, compiled once ------------------------------------------------------ */

/*
 * Compiling the SDK crate is most of a small app's cargo time (1.9 of 2.5 s
 * for the Rust hello on the 2-core build machine), so the platform compiles
 * it once per toolchain and SDK, in a build of its own that holds nothing
 * from any upload: a crate written here that only depends on `vivarium`,
 * built by the same cargo, with the same configuration and in the same
 * sandbox as any app, in a fresh folder under the store's cache. Its target
 * folder is kept as DATADIR/cache/rust-sdk-KEY, and each app build that
 * names the SDK starts from a copy of it in its own scratch folder.
 *
 * Why one app's build cannot poison another's: no build is ever given the
 * kept folder. It is not mounted into any sandbox, and a build changes only
 * its private copy, which is removed with its scratch folder. Only this
 * code writes the cache, and only from the platform's own files.
 *
 * Why a kept folder cannot make a build wrong: cargo still decides what is
 * fresh, by its fingerprints (compiler, profile, flags, features, sources):
 * a copy that does not match the app's build (another profile in its
 * Cargo.toml, say) is compiled again. Cargo judges sources by their times,
 * which a reinstall may move into the past, so KEY covers the SDK's
 * contents, and the toolchain's versions and files, as well.
 */

#define SEED_PREFIX "rust-sdk-"
#define SEED_ENTRIES_MAX 2000
#define SEED_BYTES_MAX (256ull * 1024 * 1024)

static const char seed_cargo_toml[] = "# Written by Vivarium: the SDK crate, compiled once.\n"
                                      "[package]\n"
                                      "name = \"vivarium-sdk-seed\"\n"
                                      "version = \"0.0.0\"\n"
                                      "edition = \"2021\"\n"
                                      "publish = false\n"
                                      "\n"
                                      "[dependencies]\n"
                                      "vivarium = \"0.1\"\n";
static const char seed_lib_rs[] = "//! Written by Vivarium: the SDK crate, compiled once.\n"
                                  "pub use vivarium;\n";

/* The key of the kept SDK build for this toolchain and the SDK at sdk. */
static enum viv_err seed_key(const struct rust_tools *t, const char *sdk,
                             char hex[VIV_SHA256_HEX_LEN + 1], char *err, size_t errlen)
{
	struct viv_buf b;
	enum viv_err e;

	viv_buf_init(&b, 64 * 1024);
	e = viv_buf_printf(&b, "vivarium-rust-sdk 1\ntarget %s\nrustc %s %s\ncargo %s %s\nenv",
	                   RUST_TARGET, t->rustc, t->rustc_version, t->cargo, t->cargo_version);
	for (size_t i = 0; !e && i < sizeof(cargo_env_fixed) / sizeof(cargo_env_fixed[0]); i++)
		e = viv_buf_printf(&b, " %s", cargo_env_fixed[i]);
	if (!e)
		e = viv_buf_printf(&b, "\n");
	if (!e)
		e = pipe_key_identity(&b, "program", t->rustc);
	if (!e)
		e = pipe_key_identity(&b, "program", t->cargo);
	if (!e)
		e = pipe_key_identity(&b, "std", t->std_dir);
	/* Debian's package database moves with any upgrade of the toolchain. */
	if (!e)
		e = pipe_key_identity(&b, "file", "/var/lib/dpkg/status");
	if (!e)
		e = pipe_key_tree(&b, sdk, err, errlen);
	if (!e)
		viv_sha256_hex(b.data, b.len, hex);
	else if (!err[0])
		viv_errf(err, errlen, "%s", viv_strerror(e));
	viv_buf_free(&b);
	return e;
}

/* Once a kept SDK build is in place, the others are stale (another SDK or
 * toolchain), and so is a seed build's folder that a crash left behind: no
 * seed build takes an hour. Failures are only logged. */
static void seed_prune(const char *cache_dir, const char *kept)
{
	const char *keep = strrchr(kept, '/');
	time_t stale = time(NULL) - 3600;
	struct dirent *de;
	DIR *d;

	keep = keep ? keep + 1 : kept;
	d = opendir(cache_dir);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		bool old_seed = strncmp(de->d_name, SEED_PREFIX, strlen(SEED_PREFIX)) == 0 &&
		                strcmp(de->d_name, keep) != 0;
		bool tmp = strncmp(de->d_name, "tmp-" SEED_PREFIX, strlen("tmp-" SEED_PREFIX)) == 0;
		struct stat st;
		char *path;

		if (!old_seed && !tmp)
			continue;
		path = viv_path_join(cache_dir, de->d_name);
		if (!path)
			break;
		if (old_seed || (lstat(path, &st) == 0 && st.st_mtime < stale)) {
			if (viv_rmtree(path) != VIV_OK)
				viv_log(VIV_WARN, "rust: could not remove %s", path);
		}
		free(path);
	}
	closedir(d);
}

/* Writes a file in dir, making dir. */
static enum viv_err put_file(const char *dir, const char *name, const char *text)
{
	char *path = viv_path_join(dir, name);
	enum viv_err e;

	if (!path)
		return VIV_ERR_NOMEM;
	e = viv_mkdirs(dir, 0755);
	if (!e)
		e = viv_write_file_atomic(path, text, strlen(text), 0644);
	free(path);
	return e;
}

/* Compiles the SDK in a fresh folder under the cache and moves its target
 * folder to dest. The outcome goes to the operator's log and a line to the
 * build's; a failure only means this build compiles the SDK itself. */
static void seed_build(const struct pipe_project *p, const struct rust_tools *t, const char *dest)
{
	struct pipe_ctx sctx;
	struct pipe_exit ex;
	struct pipe_project sp;
	char *tmp = NULL, *dirs[4] = {NULL}, *output = NULL;
	char err[256] = "";
	uint64_t t0 = viv_mono_ns();
	enum viv_err e = VIV_ERR_NOMEM;

	memset(&sctx, 0, sizeof(sctx));
	if (asprintf(&tmp, "%s/tmp-" SEED_PREFIX "XXXXXX", p->ctx->cache_dir) < 0) {
		tmp = NULL;
		return;
	}
	if (!mkdtemp(tmp)) {
		viv_log(VIV_WARN, "rust: could not make a folder in %s: %s", p->ctx->cache_dir,
		        strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* The folder is the seed build's scratch: HOME, TMPDIR and the only
	 * place its sandbox may write. */
	dirs[0] = viv_path_join(tmp, "tmp");
	dirs[1] = viv_path_join(tmp, "seed");
	dirs[2] = viv_path_join(tmp, "cargo-home");
	dirs[3] = viv_path_join(tmp, "target");
	if (!dirs[0] || !dirs[1] || !dirs[2] || !dirs[3])
		goto out;
	e = viv_mkdirs(dirs[0], 0700);
	if (!e)
		e = put_file(dirs[1], "Cargo.toml", seed_cargo_toml);
	if (!e) {
		char *src = viv_path_join(dirs[1], "src");
		e = src ? put_file(src, "lib.rs", seed_lib_rs) : VIV_ERR_NOMEM;
		free(src);
	}
	if (e)
		goto out;
	pipe_ctx_init(&sctx, p->ctx->cfg, tmp);
	sp = (struct pipe_project){&sctx, dirs[1], p->manifest, NULL};
	e = write_cargo_config(&sp, dirs[2], err, sizeof(err));
	if (!e)
		e = run_cargo(&sctx, t, dirs[1], dirs[2], dirs[3], &ex, &output, err, sizeof(err));
	if (!e && ex.code != 0) {
		viv_log(VIV_WARN,
		        "rust: compiling the SDK crate on its own failed (exit status "
		        "%d):\n%s",
		        ex.code, output ? output : "");
		e = VIV_ERR_BUILD;
	}
	if (e)
		goto out;
	/* Whole or not at all; another process may have kept one first. */
	if (rename(dirs[3], dest) != 0 && errno != EEXIST && errno != ENOTEMPTY) {
		viv_log(VIV_WARN, "rust: could not keep %s: %s", dest, strerror(errno));
		goto out;
	}
	pipe_logf(p->ctx,
	          "compiled the Vivarium SDK crate once for this server's Rust (%lld "
	          "ms); later builds start from it\n",
	          (long long)((viv_mono_ns() - t0) / 1000000));
	seed_prune(p->ctx->cache_dir, dest);
out:
	if (e && err[0])
		viv_log(VIV_WARN, "rust: compiling the SDK crate on its own: %s", err);
	if (tmp && viv_rmtree(tmp) != VIV_OK)
		viv_log(VIV_WARN, "rust: could not remove %s", tmp);
	pipe_ctx_free(&sctx);
	for (size_t i = 0; i < 4; i++)
		free(dirs[i]);
	free(output);
	free(tmp);
}

/* Starts the build's target folder as a copy of the kept SDK build, making
 * that first when there is none yet. Without a cache, an SDK or a project
 * that names it, or on any failure, target is left as it was: cargo then
 * compiles the SDK as part of the build. */
static void seed_target(const struct pipe_project *p, const struct rust_tools *t,
                        const char *target)
{
	char key[VIV_SHA256_HEX_LEN + 1], err[256] = "";
	char *sdk = NULL, *kept = NULL;
	struct stat st;
	enum viv_err e;

	if (!p->ctx->cache_dir || !mentions_sdk(p))
		return;
	sdk = sdk_crate_dir(p->ctx->cfg);
	if (!sdk)
		return;
	e = seed_key(t, sdk, key, err, sizeof(err));
	if (e) {
		pipe_logf(p->ctx, "note: the Vivarium SDK crate is compiled in this build (%s)\n",
		          err);
		goto out;
	}
	if (asprintf(&kept, "%s/" SEED_PREFIX "%s", p->ctx->cache_dir, key) < 0) {
		kept = NULL;
		goto out;
	}
	if (stat(kept, &st) != 0)
		seed_build(p, t, kept);
	if (stat(kept, &st) != 0 || !S_ISDIR(st.st_mode))
		goto out;
	e = pipe_copy_tree(kept, target, SEED_ENTRIES_MAX, SEED_BYTES_MAX);
	if (e) {
		viv_log(VIV_WARN, "rust: could not copy %s: %s", kept, viv_strerror(e));
		viv_rmtree_or_log(target);
		goto out;
	}
	pipe_logf(p->ctx, "the Vivarium SDK crate comes compiled (%.12s)\n", key);
out:
	free(kept);
	free(sdk);
}

static bool rust_detect(void *tctx, const char *root)
{
	(void)tctx;
	return pipe_exists(root, "Cargo.toml", false);
}

static enum viv_err rust_build(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
                               size_t errlen)
{
	const struct rust_tools *t;
	char *home = NULL, *target = NULL, *output = NULL, *found = NULL, *out_rel = NULL;
	struct pipe_exit ex;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	if (!pipe_exists(p->root, "Cargo.toml", false)) {
		viv_errf(err, errlen, "found no Cargo.toml at the root of the upload");
		return VIV_ERR_INVALID;
	}
	e = rust_tools_get(p->ctx, &t, err, errlen);
	if (e)
		return e;
	pipe_logf(p->ctx, "%s, %s, target %s\n", t->rustc_version, t->cargo_version, RUST_TARGET);
	/* Cargo writes its home and the target folder: both in the scratch
	 * directory, the only writable place in the sandbox. */
	home = viv_path_join(p->ctx->scratch, "cargo-home");
	target = viv_path_join(p->ctx->scratch, "cargo-target");
	if (!home || !target) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = write_cargo_config(p, home, err, errlen);
	if (!e)
		e = set_lock_aside(p);
	if (e)
		goto out;
	seed_target(p, t, target);
	e = run_cargo(p->ctx, t, p->root, home, target, &ex, &output, err, errlen);
	if (e)
		goto out;
	if (ex.code != 0) {
		explain_failure(p, output ? output : "", ex.code, err, errlen);
		e = VIV_ERR_BUILD;
		goto out;
	}
	e = find_module(p, "cargo-target", &found, err, errlen);
	if (!e)
		e = pipe_relpath(p->ctx->scratch, p->out_dir, &out_rel);
	if (!e) {
		*wasm_out = viv_path_join(out_rel, "app.wasm");
		e = *wasm_out ? VIV_OK : VIV_ERR_NOMEM;
	}
	if (!e) {
		/* cargo gives the module a second name (a hard link into
		 * deps/), which the pipeline refuses as it would any hard link
		 * a build script made: a copy of one name, made in the sandbox
		 * after cargo and every build script have ended, is the
		 * module. */
		const char *argv[] = {"cp", "--remove-destination", "--", found, *wasm_out, NULL};
		e = pipe_run_ok(p->ctx, NULL, argv, err, errlen);
	}
	if (e) {
		free(*wasm_out);
		*wasm_out = NULL;
	}
out:
	free(home);
	free(target);
	free(output);
	free(found);
	free(out_rel);
	return e;
}

const struct pipe_toolchain_ops pipe_toolchain_rust = {
        .name = "rust",
        .detect = rust_detect,
        .build = rust_build,
};
