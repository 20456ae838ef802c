/* The AssemblyScript toolchain: the pinned asc compiler that scripts/setup.sh
 * installs with npm under cfg->tool_dir, run by node. The entry file is
 * assembly/index.ts (or build.sources), the SDK imports as "vivarium", and
 * AssemblyScript's env.abort, env.trace and env.seed, which a JavaScript host
 * would provide and Vivarium does not, are routed to WASI by a small file the
 * pipeline adds to every build. A module that exports run is a
 * Terrarium-style handler. */
#include "pipeline_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AS_PACKAGE "node_modules/assemblyscript"
#define AS_SOURCES_MAX 256
#define AS_SETUP_HINT "the operator runs scripts/setup.sh, which installs it"

/* asc 0.27 turns on sign extension, mutable globals, non-trapping float to
 * int conversions and bulk memory by default: all of them are in what
 * wasm2c 1.0.32 translates, so no --disable flag is passed. SIMD and
 * threads stay off unless asconfig.json turns them on, and then wasm-opt
 * refuses the module with its own message. The runtime is asc's
 * default (incremental GC): an instance lives for one request, but a
 * request that allocates in a loop still needs its garbage collected to stay
 * inside the memory limit; asconfig.json may pick "stub" instead. */

/* How node runs asc. asc's bin/asc.js starts node a second time with
 * --enable-source-maps unless it already has it, which costs a whole node
 * start. A build is one short run of asc, so V8's optimizing compilers cost
 * more than they give: TurboFan compiling binaryen.js's WebAssembly (Liftoff
 * code runs it well enough for asc's emit and validate steps) and asc's
 * JavaScript. The AssemblyScript hello on the 2-core build machine (busy
 * with other work), median of 7 unsandboxed runs: 2.43 s as asc starts
 * itself, 2.37 s without the second start, 1.79 s with --liftoff-only too,
 * 1.64 s with --no-opt as well; a 14,000-line program took 2.7 s with all
 * three and 3.0 s without --no-opt. */
static const char *const as_node_flags[] = {"--enable-source-maps", "--liftoff-only", "--no-opt"};

/* The file that replaces the env imports, passed to asc as a second entry
 * file with --use abort=...; a user's asconfig.json "use" entries come
 * after ours and win, for apps that bring their own abort. */
static const char as_runtime_ts[] =
        "// Written by Vivarium into each AssemblyScript build: abort, trace and the\n"
        "// seed of Math.random over WASI, in place of the env imports a JavaScript\n"
        "// host would give. asc gets them with --use; nothing here allocates except\n"
        "// trace's number formatting, so abort works when memory has run out.\n"
        "\n"
        "@external(\"wasi_snapshot_preview1\", \"fd_write\")\n"
        "declare function vivarium_fd_write(fd: i32, iovs: usize, iovs_len: i32,\n"
        "                                   nwritten: usize): i32;\n"
        "\n"
        "@external(\"wasi_snapshot_preview1\", \"random_get\")\n"
        "declare function vivarium_random_get(buf: usize, len: i32): i32;\n"
        "\n"
        "// One line of text at a time, in static memory: abort may run before this\n"
        "// file's globals are set up, so there are none. The line's length is kept\n"
        "// after its bytes, then the iovec.\n"
        "@inline const VIVARIUM_LINE_MAX: usize = 1024;\n"
        "\n"
        "function vivarium_line(): usize {\n"
        "  return memory.data(<i32>VIVARIUM_LINE_MAX + 16);\n"
        "}\n"
        "\n"
        "function vivarium_start(): void {\n"
        "  store<u32>(vivarium_line() + VIVARIUM_LINE_MAX, 0);\n"
        "}\n"
        "\n"
        "function vivarium_byte(b: i32): void {\n"
        "  const line = vivarium_line();\n"
        "  const len = <usize>load<u32>(line + VIVARIUM_LINE_MAX);\n"
        "  if (len < VIVARIUM_LINE_MAX - 1) {\n"
        "    store<u8>(line + len, <u8>b);\n"
        "    store<u32>(line + VIVARIUM_LINE_MAX, <u32>(len + 1));\n"
        "  }\n"
        "}\n"
        "\n"
        "function vivarium_text(s: string | null): void {\n"
        "  if (s === null) return;\n"
        "  const t = changetype<string>(s);\n"
        "  for (let i = 0; i < t.length; i++) {\n"
        "    const c = t.charCodeAt(i);\n"
        "    if (c < 0x80) {\n"
        "      vivarium_byte(c);\n"
        "    } else if (c < 0x800) {\n"
        "      vivarium_byte(0xc0 | (c >> 6));\n"
        "      vivarium_byte(0x80 | (c & 0x3f));\n"
        "    } else if (c >= 0xd800 && c < 0xe000) {\n"
        "      vivarium_byte(0x3f);\n"
        "    } else {\n"
        "      vivarium_byte(0xe0 | (c >> 12));\n"
        "      vivarium_byte(0x80 | ((c >> 6) & 0x3f));\n"
        "      vivarium_byte(0x80 | (c & 0x3f));\n"
        "    }\n"
        "  }\n"
        "}\n"
        "\n"
        "function vivarium_number(v: u32): void {\n"
        "  const digits = memory.data(12);\n"
        "  let n: usize = 0;\n"
        "  do {\n"
        "    store<u8>(digits + n, <u8>(48 + v % 10));\n"
        "    v /= 10;\n"
        "    n++;\n"
        "  } while (v != 0);\n"
        "  while (n > 0) {\n"
        "    n--;\n"
        "    vivarium_byte(load<u8>(digits + n));\n"
        "  }\n"
        "}\n"
        "\n"
        "function vivarium_flush(): void {\n"
        "  const line = vivarium_line();\n"
        "  const iov = line + VIVARIUM_LINE_MAX + 4;\n"
        "  vivarium_byte(10);\n"
        "  store<u32>(iov, <u32>line);\n"
        "  store<u32>(iov + 4, load<u32>(line + VIVARIUM_LINE_MAX));\n"
        "  vivarium_fd_write(2, iov, 1, line + VIVARIUM_LINE_MAX + 12);\n"
        "}\n"
        "\n"
        "function vivarium_abort(message: string | null, fileName: string | null,\n"
        "                        lineNumber: u32, columnNumber: u32): void {\n"
        "  vivarium_start();\n"
        "  vivarium_text(\"abort: \");\n"
        "  vivarium_text(message);\n"
        "  vivarium_text(\" at \");\n"
        "  vivarium_text(fileName);\n"
        "  vivarium_text(\":\");\n"
        "  vivarium_number(lineNumber);\n"
        "  vivarium_text(\":\");\n"
        "  vivarium_number(columnNumber);\n"
        "  vivarium_flush();\n"
        "  unreachable();\n"
        "}\n"
        "\n"
        "function vivarium_trace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0,\n"
        "                        a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {\n"
        "  vivarium_start();\n"
        "  vivarium_text(\"trace: \");\n"
        "  vivarium_text(message);\n"
        "  if (n > 0) { vivarium_text(\" \"); vivarium_text(a0.toString()); }\n"
        "  if (n > 1) { vivarium_text(\", \"); vivarium_text(a1.toString()); }\n"
        "  if (n > 2) { vivarium_text(\", \"); vivarium_text(a2.toString()); }\n"
        "  if (n > 3) { vivarium_text(\", \"); vivarium_text(a3.toString()); }\n"
        "  if (n > 4) { vivarium_text(\", \"); vivarium_text(a4.toString()); }\n"
        "  vivarium_flush();\n"
        "}\n"
        "\n"
        "function vivarium_seed(): f64 {\n"
        "  const buf = memory.data(8);\n"
        "  vivarium_random_get(buf, 8);\n"
        "  return reinterpret<f64>(load<u64>(buf));\n"
        "}\n";

/* ---- The compiler ------------------------------------------------------------- */

/* The version of the assemblyscript package under tool_dir, checked against
 * PIPE_ASC_VERSION; on success *asc_out (caller frees with free()) is the
 * compiler's script. */
static enum viv_err asc_find(const struct pipe_config *cfg, char **asc_out, char *err,
                             size_t errlen)
{
	char *pkg_dir = NULL, *pkg_json = NULL, *asc = NULL;
	json_t *root = NULL, *version;
	json_error_t jerr;
	enum viv_err e = VIV_OK;

	*asc_out = NULL;
	if (!cfg->tool_dir) {
		viv_errf(err, errlen,
		         "AssemblyScript builds are not set up on this server (no "
		         "tool folder); %s",
		         AS_SETUP_HINT);
		return VIV_ERR_UNSUPPORTED;
	}
	pkg_dir = viv_path_join(cfg->tool_dir, AS_PACKAGE);
	pkg_json = pkg_dir ? viv_path_join(pkg_dir, "package.json") : NULL;
	asc = pkg_dir ? viv_path_join(pkg_dir, "bin/asc.js") : NULL;
	if (!asc || !pkg_json) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	root = json_load_file(pkg_json, 0, &jerr);
	version = root ? json_object_get(root, "version") : NULL;
	if (!version || !json_is_string(version) || access(asc, R_OK) != 0) {
		/* Where it was looked for is the operator's to know. */
		viv_log(VIV_WARN, "assemblyscript: asc %s is not in %s", PIPE_ASC_VERSION, pkg_dir);
		viv_errf(err, errlen,
		         "AssemblyScript builds are not set up on this server (asc %s is not "
		         "installed); %s",
		         PIPE_ASC_VERSION, AS_SETUP_HINT);
		e = VIV_ERR_UNSUPPORTED;
		goto out;
	}
	if (strcmp(json_string_value(version), PIPE_ASC_VERSION) != 0) {
		viv_errf(err, errlen,
		         "this server has asc %.40s, but Vivarium builds with asc %s; %s",
		         json_string_value(version), PIPE_ASC_VERSION, AS_SETUP_HINT);
		e = VIV_ERR_UNSUPPORTED;
		goto out;
	}
	*asc_out = asc;
	asc = NULL;
out:
	json_decref(root);
	free(pkg_dir);
	free(pkg_json);
	free(asc);
	return e;
}

/* ---- The project ----------------------------------------------------------------- */

static bool as_detect(void *tctx, const char *root)
{
	(void)tctx;
	return pipe_exists(root, "assembly", true) || pipe_exists(root, "asconfig.json", false);
}

/* The entry files, relative to the root: build.sources, else
 * assembly/index.ts. */
static enum viv_err as_entries(const struct pipe_project *p, char ***out, size_t *n_out, char *err,
                               size_t errlen)
{
	char **files = NULL;
	size_t n = 0;
	enum viv_err e;

	*out = NULL;
	*n_out = 0;
	if (p->manifest->n_sources == 0) {
		if (!pipe_exists(p->root, "assembly/index.ts", false)) {
			viv_errf(err, errlen,
			         "found no assembly/index.ts: put the entry file there, or name "
			         "it in vivarium.json as build.sources");
			return VIV_ERR_INVALID;
		}
		files = calloc(2, sizeof(*files));
		if (files)
			files[0] = strdup("assembly/index.ts");
		if (!files || !files[0]) {
			free(files);
			return VIV_ERR_NOMEM;
		}
		*out = files;
		*n_out = 1;
		return VIV_OK;
	}
	e = pipe_glob(p->root, p->manifest->sources, p->manifest->n_sources, &files, &n, err,
	              errlen);
	if (e)
		return e;
	if (n > AS_SOURCES_MAX) {
		viv_errf(err, errlen, "vivarium.json: build.sources names more than %d entry files",
		         AS_SOURCES_MAX);
		pipe_strv_free(files, n);
		return VIV_ERR_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(files[i]);
		if (len < 4 || strcmp(files[i] + len - 3, ".ts") != 0) {
			viv_errf(err, errlen,
			         "vivarium.json: build.sources matches '%.100s', which is not a "
			         ".ts file",
			         files[i]);
			pipe_strv_free(files, n);
			return VIV_ERR_INVALID;
		}
	}
	*out = files;
	*n_out = n;
	return VIV_OK;
}

/* The SDK's folder as asc resolves a package: "vivarium" is found as
 * PATH/vivarium/index.ts. The SDK keeps its index.ts at its root or in
 * assembly/; NULL when the server has none (caller frees with free()). */
static char *sdk_package_dir(const struct pipe_config *cfg)
{
	static const char *const inner[] = {"assemblyscript", "assemblyscript/assembly"};

	if (!cfg->sdk_dir)
		return NULL;
	for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
		char *dir = viv_path_join(cfg->sdk_dir, inner[i]);
		if (!dir)
			return NULL;
		if (pipe_exists(dir, "index.ts", false))
			return dir;
		free(dir);
	}
	return NULL;
}

/* Makes scratch/as with the runtime file and packages/vivarium, a link to
 * the SDK (read-only in the sandbox). On success *runtime_out and
 * *packages_out (caller frees both with free()) are their absolute paths. */
static enum viv_err as_prepare(const struct pipe_project *p, char **runtime_out,
                               char **packages_out, char *err, size_t errlen)
{
	char *dir = NULL, *runtime = NULL, *packages = NULL, *link = NULL, *sdk = NULL;
	enum viv_err e;

	*runtime_out = *packages_out = NULL;
	dir = viv_path_join(p->ctx->scratch, "as");
	runtime = dir ? viv_path_join(dir, "vivarium_runtime.ts") : NULL;
	packages = dir ? viv_path_join(dir, "packages") : NULL;
	link = packages ? viv_path_join(packages, "vivarium") : NULL;
	if (!link || !runtime) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = viv_mkdirs(packages, 0755);
	if (!e)
		e = viv_write_file_atomic(runtime, as_runtime_ts, sizeof(as_runtime_ts) - 1, 0644);
	if (e) {
		viv_errf(err, errlen, "could not prepare the AssemblyScript build: %s",
		         viv_strerror(e));
		goto out;
	}
	{
		/* The link is read only by asc, in the sandbox: it points where
		 * the SDK is there. */
		char *host = sdk_package_dir(p->ctx->cfg);
		sdk = host ? pipe_tool_path(p->ctx, host) : NULL;
		free(host);
	}
	if (sdk && symlink(sdk, link) != 0) {
		viv_errf(err, errlen, "could not link the AssemblyScript SDK: %s", strerror(errno));
		e = VIV_ERR_IO;
		goto out;
	}
	if (sdk)
		pipe_logf(p->ctx, "the Vivarium SDK imports as \"vivarium\" (%s)\n", sdk);
	*runtime_out = runtime;
	*packages_out = packages;
	runtime = packages = NULL;
out:
	free(dir);
	free(runtime);
	free(packages);
	free(link);
	free(sdk);
	return e;
}

/* The package name in asc's "File '~lib/NAME.ts' not found" (or
 * NAME/index.ts) into buf; false when output has no such line. */
static bool missing_package(const char *output, char *buf, size_t len)
{
	static const char marker[] = "File '~lib/";
	const char *p = strstr(output, marker), *end;
	size_t n;

	if (!p)
		return false;
	p += sizeof(marker) - 1;
	end = strstr(p, "' not found");
	if (!end || end - p < 4 || memchr(p, '\n', (size_t)(end - p)))
		return false;
	n = (size_t)(end - p) - 3; /* ".ts" */
	if (n >= 6 && strncmp(p + n - 6, "/index", 6) == 0)
		n -= 6;
	if (n == 0 || n >= len || n > 100)
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

static void explain_failure(const char *output, int code, char *err, size_t errlen)
{
	char pkg[128];

	if (missing_package(output, pkg, sizeof(pkg))) {
		if (strcmp(pkg, "vivarium") == 0)
			viv_errf(err, errlen,
			         "the Vivarium AssemblyScript SDK (\"vivarium\") is not installed "
			         "on this server; tell the operator");
		else
			viv_errf(err, errlen,
			         "the package \"%s\" is not available: builds here are offline and "
			         "install nothing, so only the standard library, the Vivarium SDK "
			         "(\"vivarium\") and packages uploaded in node_modules/ can be "
			         "imported",
			         pkg);
		return;
	}
	if (strstr(output, "ERROR TS") || strstr(output, "ERROR AS")) {
		viv_errf(err, errlen,
		         "the AssemblyScript compiler reported errors; the build log has them with "
		         "file, line and column");
		return;
	}
	viv_errf(err, errlen, "asc failed (exit status %d); its output is in the build log", code);
}

/* Whether rel names something beneath the build folder, found without
 * following links: asc and whatever it loaded have run there. */
static bool built_exists(const struct pipe_ctx *ctx, const char *rel)
{
	int sfd = open(ctx->scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (sfd < 0)
		return false;
	fd = viv_open_beneath(sfd, rel, O_PATH, 0);
	close(sfd);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static enum viv_err as_build(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
                             size_t errlen)
{
	const char **argv = NULL;
	char **entries = NULL;
	size_t n_entries = 0, k = 0;
	char *asc = NULL, *runtime = NULL, *packages = NULL, *out = NULL, *output = NULL;
	char *runtime_rel = NULL, *packages_rel = NULL, *out_rel = NULL, *asc_seen = NULL;
	char *use[3] = {NULL};
	static const char *const hooks[] = {"abort", "trace", "seed"};
	struct pipe_exit ex;
	enum viv_err e;

	(void)tctx;
	*wasm_out = NULL;
	e = asc_find(p->ctx->cfg, &asc, err, errlen);
	if (!e)
		e = as_entries(p, &entries, &n_entries, err, errlen);
	if (!e)
		e = as_prepare(p, &runtime, &packages, err, errlen);
	if (e)
		goto out;
	out = viv_path_join(p->out_dir, "app.wasm");
	asc_seen = pipe_tool_path(p->ctx, asc);
	if (!out || !asc_seen) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	/* asc runs in the root with relative paths, so that errors read
	 * "in assembly/index.ts(3,17)"; it names the runtime file's functions
	 * by that same relative path without ".ts". */
	e = pipe_relpath(p->root, runtime, &runtime_rel);
	if (!e)
		e = pipe_relpath(p->root, packages, &packages_rel);
	if (!e)
		e = pipe_relpath(p->root, out, &out_rel);
	if (e)
		goto out;
	for (size_t i = 0; i < 3; i++) {
		/* runtime_rel ends with ".ts". */
		if (asprintf(&use[i], "%s=%.*s/vivarium_%s", hooks[i], (int)strlen(runtime_rel) - 3,
		             runtime_rel, hooks[i]) < 0) {
			use[i] = NULL;
			e = VIV_ERR_NOMEM;
			goto out;
		}
	}
	argv = calloc(n_entries + 20 + sizeof(as_node_flags) / sizeof(as_node_flags[0]),
	              sizeof(*argv));
	if (!argv) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	argv[k++] = "node";
	for (size_t i = 0; i < sizeof(as_node_flags) / sizeof(as_node_flags[0]); i++)
		argv[k++] = as_node_flags[i];
	argv[k++] = asc_seen;
	for (size_t i = 0; i < n_entries; i++)
		argv[k++] = entries[i];
	argv[k++] = runtime_rel;
	argv[k++] = "--outFile";
	argv[k++] = out_rel;
	argv[k++] = "--path";
	argv[k++] = packages_rel;
	for (size_t i = 0; i < 3; i++) {
		argv[k++] = "--use";
		argv[k++] = use[i];
	}
	argv[k++] = "--noColors";
	argv[k] = NULL;
	pipe_logf(p->ctx, "asc %s; abort, trace and seed go to WASI (stderr, random_get)\n",
	          PIPE_ASC_VERSION);
	memset(&ex, 0, sizeof(ex));
	e = pipe_run_output(p->ctx, p->root, argv, &ex, &output, err, errlen);
	if (e)
		goto out;
	if (ex.code != 0) {
		explain_failure(output ? output : "", ex.code, err, errlen);
		e = VIV_ERR_BUILD;
		goto out;
	}
	e = pipe_relpath(p->ctx->scratch, out, wasm_out);
	if (!e && !built_exists(p->ctx, *wasm_out)) {
		viv_errf(err, errlen, "asc wrote no module (is \"noEmit\" set in asconfig.json?)");
		free(*wasm_out);
		*wasm_out = NULL;
		e = VIV_ERR_BUILD;
	}
out:
	free(argv);
	pipe_strv_free(entries, n_entries);
	for (size_t i = 0; i < 3; i++)
		free(use[i]);
	free(asc);
	free(runtime);
	free(packages);
	free(out);
	free(output);
	free(runtime_rel);
	free(packages_rel);
	free(out_rel);
	free(asc_seen);
	return e;
}

const struct pipe_toolchain_ops pipe_toolchain_as = {
        .name = "assemblyscript",
        .detect = as_detect,
        .build = as_build,
};
