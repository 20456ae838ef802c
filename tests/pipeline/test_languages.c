/* Whole builds of every language through the store: Rust (host-call and
 * WASI command, a Debian crate, the SDK, and what a user sees when it goes
 * wrong), AssemblyScript, C++, a C project with folders and manifest flags,
 * and static assets. The guests need no SDK except where the SDK's
 * resolution is what is tested, and then a stand-in SDK is used. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"
#include "viv_guest.h"

TestSuite(lang, .init = t_store_setup, .fini = t_store_teardown, .timeout = 300);

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void assert_ready(const struct store_deployment *d, const char *language, const char *mode)
{
	cr_assert_eq(d->status, STORE_DEP_READY, "failed: %s\n%s", d->error, d->log);
	cr_assert_str_eq(d->language, language);
	cr_assert_str_eq(store_mode_name(d->config.mode), mode);
}

static void assert_failed(const struct store_deployment *d, const char *error_part)
{
	cr_assert_eq(d->status, STORE_DEP_FAILED, "built after all:\n%s", d->log);
	cr_assert(strstr(d->error, error_part), "error: %s\nlog:\n%s", d->error, d->log);
}

/* Loads the artifact and checks the contract it exports. */
static void assert_artifact_mode(const struct store_deployment *d, enum viv_guest_mode mode)
{
	char *so = store_artifact_path(t_fx.st, d->artifact, "so");
	const struct viv_guest *g;
	void *h;

	h = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(h, "%s", dlerror());
	g = dlsym(h, VIV_GUEST_SYMBOL);
	cr_assert_not_null(g);
	cr_assert_eq(g->abi, VIV_GUEST_ABI);
	cr_assert_eq(g->mode, (uint32_t)mode);
	cr_assert_str_eq(g->hash, d->artifact);
	dlclose(h);
	free(so);
}

/* The imports of the stored, optimized module, one "module.name" per line. */
static char *imports_of(const struct store_deployment *d)
{
	char *path = store_artifact_path(t_fx.st, d->artifact, "wasm");
	char *data, err[256];
	size_t len = 0;
	struct pipe_wasm_info *w = NULL;
	struct viv_buf out;

	data = t_read(path, &len);
	cr_assert_not_null(data);
	cr_assert_eq(pipe_wasm_parse(data, len, &w, err, sizeof(err)), VIV_OK, "%s", err);
	viv_buf_init(&out, 0);
	for (uint32_t i = 0; i < w->n_imports; i++)
		cr_assert_eq(
		        viv_buf_printf(&out, "%s.%s\n", w->imports[i].module, w->imports[i].name),
		        VIV_OK);
	pipe_wasm_free(w);
	free(data);
	free(path);
	return out.data ? viv_buf_steal(&out) : strdup("");
}

static void print_timings(const char *what, const struct store_deployment *d)
{
	printf("%s timings (ms): %s\n", what, d->timings);
}

/* ---- Rust ---------------------------------------------------------------------- */

static const char cargo_cdylib[] = "[package]\n"
                                   "name = \"hello\"\n"
                                   "version = \"0.1.0\"\n"
                                   "edition = \"2021\"\n"
                                   "\n"
                                   "[lib]\n"
                                   "crate-type = [\"cdylib\"]\n";

static const char cargo_bin[] = "[package]\n"
                                "name = \"hello-cgi\"\n"
                                "version = \"0.1.0\"\n"
                                "edition = \"2021\"\n";

Test(lang, rust_hostcall_handler)
{
	struct t_entry e[] = {
	        {"hello/Cargo.toml", 'f', cargo_cdylib, 0},
	        {"hello/src/lib.rs", 'f',
	         "static mut HITS: u32 = 0;\n"
	         "\n"
	         "#[no_mangle]\n"
	         "pub extern \"C\" fn run() {\n"
	         "    unsafe { HITS += 1; }\n"
	         "}\n",
	         0},
	        /* A lock file from the user's machine is set aside. */
	        {"hello/Cargo.lock", 'f', "version = 3\n", 0},
	};
	struct store_deployment *d = t_build_entries("rusty", e, N(e));

	assert_ready(d, "rust", "hostcall");
	cr_assert(strstr(d->log, "build --release --offline --target wasm32-wasi"), "%s", d->log);
	cr_assert(strstr(d->log, "rustc 1."), "%s", d->log);
	cr_assert(strstr(d->log, "Cargo.lock is not used"), "%s", d->log);
	cr_assert(strstr(d->log, "cargo built hello.wasm"), "%s", d->log);
	assert_artifact_mode(d, VIV_GUEST_HOSTCALL);
	print_timings("rust hello (host-call)", d);
	store_deployment_free(d);
}

Test(lang, rust_wasi_command)
{
	struct t_entry e[] = {
	        {"Cargo.toml", 'f', cargo_bin, 0},
	        {"src/main.rs", 'f',
	         "fn main() {\n"
	         "    print!(\"Content-Type: text/plain\\r\\n\\r\\nHello from Rust\\n\");\n"
	         "}\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("rusty-cgi", e, N(e));
	char *imports;

	assert_ready(d, "rust", "cgi");
	assert_artifact_mode(d, VIV_GUEST_CGI);
	imports = imports_of(d);
	cr_assert(strstr(imports, "wasi_snapshot_preview1.fd_write"), "%s", imports);
	free(imports);
	print_timings("rust hello (WASI command)", d);
	store_deployment_free(d);
}

Test(lang, rust_dependency_from_debian)
{
	struct t_entry e[] = {
	        {"Cargo.toml", 'f',
	         "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"
	         "\n[dependencies]\ncfg-if = \"1\"\n",
	         0},
	        {"src/main.rs", 'f',
	         "cfg_if::cfg_if! {\n"
	         "    if #[cfg(target_os = \"wasi\")] { const WHERE: &str = \"wasi\"; }\n"
	         "    else { const WHERE: &str = \"elsewhere\"; }\n"
	         "}\n"
	         "fn main() { print!(\"Content-Type: text/plain\\r\\n\\r\\n{}\\n\", WHERE); }\n",
	         0},
	};
	struct store_deployment *d;

	cr_assert_eq(access("/usr/share/cargo/registry", F_OK), 0,
	             "Debian's crates are missing: run scripts/setup.sh (librust-cfg-if-dev)");
	d = t_build_entries("dep", e, N(e));
	assert_ready(d, "rust", "cgi");
	cr_assert(strstr(d->log, "Compiling cfg-if v1."), "%s", d->log);
	store_deployment_free(d);
}

Test(lang, rust_compile_error_names_file_and_line)
{
	struct t_entry e[] = {
	        {"Cargo.toml", 'f', cargo_cdylib, 0},
	        {"src/lib.rs", 'f',
	         "#[no_mangle]\n"
	         "pub extern \"C\" fn run() {\n"
	         "    let x: u32 = \"nope\";\n"
	         "}\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("rust-bad", e, N(e));

	assert_failed(d, "the Rust compiler reported errors; the build log has them with file "
	                 "and line");
	cr_assert(strstr(d->log, "src/lib.rs:3:"), "%s", d->log);
	cr_assert(strstr(d->log, "error[E0308]: mismatched types"), "%s", d->log);
	store_deployment_free(d);
}

Test(lang, rust_missing_crate_is_named)
{
	struct t_entry e[] = {
	        {"Cargo.toml", 'f',
	         "[package]\nname = \"needy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"
	         "\n[dependencies]\nno_such_crate_here = \"1\"\n",
	         0},
	        {"src/main.rs", 'f', "fn main() {}\n", 0},
	};
	struct store_deployment *d = t_build_entries("needy", e, N(e));

	assert_failed(d, "the crate `no_such_crate_here` is not available");
	cr_assert(strstr(d->error, "librust-no-such-crate-here-dev"), "%s", d->error);
	/* Offline: cargo never tried the network. */
	cr_assert_null(strstr(d->log, "Updating crates.io index"), "%s", d->log);
	store_deployment_free(d);
}

/* A stand-in SDK with the real one's package name: the pipeline offers
 * whatever crate sdk_dir/rust holds as `vivarium`. */
Test(lang, rust_sdk_resolves_without_being_uploaded)
{
	char *sdk = viv_path_join(t_fx.work, "sdk");
	struct t_entry e[] = {
	        {"Cargo.toml", 'f',
	         "[package]\nname = \"uses-sdk\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"
	         "\n[lib]\ncrate-type = [\"cdylib\"]\n"
	         "\n[dependencies]\nvivarium = \"0.1\"\n",
	         0},
	        {"src/lib.rs", 'f',
	         "#[no_mangle]\n"
	         "pub extern \"C\" fn run() { let _ = vivarium::answer(); }\n",
	         0},
	};
	struct store_deployment *d;

	t_write(sdk, "rust/Cargo.toml",
	        "[package]\nname = \"vivarium\"\nversion = \"0.1.3\"\nedition = \"2021\"\n");
	t_write(sdk, "rust/src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
	t_fx.cfg.sdk_dir = sdk;
	d = t_build_entries("uses-sdk", e, N(e));
	assert_ready(d, "rust", "hostcall");
	cr_assert(strstr(d->log, "the Vivarium SDK is the crate `vivarium`"), "%s", d->log);
	/* Compiled once on its own, then taken as it is by cargo. */
	cr_assert(strstr(d->log, "compiled the Vivarium SDK crate once"), "%s", d->log);
	cr_assert(strstr(d->log, "the Vivarium SDK crate comes compiled"), "%s", d->log);
	cr_assert_null(strstr(d->log, "Compiling vivarium"), "%s", d->log);
	store_deployment_free(d);
	free(sdk);
}

/* The kept SDK build (see pipe_toolchain_rust.c): a Rust app that names the SDK,
 * and one whose build script tries to spoil the compiled SDK for whoever
 * comes next, as any app's build could try. */
static const char sdk_app_toml[] = "[package]\n"
                                   "name = \"spoiler\"\n"
                                   "version = \"0.1.0\"\n"
                                   "edition = \"2021\"\n"
                                   "\n"
                                   "[lib]\n"
                                   "crate-type = [\"cdylib\"]\n"
                                   "\n"
                                   "[dependencies]\n"
                                   "vivarium = \"0.1\"\n";
static const char sdk_app_lib[] = "#[no_mangle]\n"
                                  "pub extern \"C\" fn run() { let _ = vivarium::answer(); }\n";
/* Truncates every compiled `vivarium` it can find in the target folder. */
static const char spoiler_build_rs[] =
        "use std::{env, fs, path::PathBuf};\n"
        "fn main() {\n"
        "    let out = PathBuf::from(env::var(\"OUT_DIR\").unwrap());\n"
        "    let deps = out.join(\"../../../deps\");\n"
        "    for e in fs::read_dir(&deps).unwrap() {\n"
        "        let p = e.unwrap().path();\n"
        "        let n = p.file_name().unwrap().to_string_lossy().to_string();\n"
        "        if n.starts_with(\"libvivarium-\") { fs::write(&p, b\"spoiled\").unwrap(); }\n"
        "    }\n"
        "}\n";

/* Hashes every file under the cache's kept Rust SDK builds, in walk order. */
static void kept_sdk_hash(char hex[65])
{
	char *cache = viv_path_join(t_fx.datadir, "cache");
	char **files = NULL;
	size_t n = 0;
	struct viv_buf b;

	cr_assert_eq(pipe_find_files(cache, NULL, 10000, &files, &n), VIV_OK);
	viv_buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		char *path = viv_path_join(cache, files[i]), *text;
		size_t len = 0;

		cr_assert(strncmp(files[i], "rust-sdk-", 9) == 0, "a stray file in the cache: %s",
		          files[i]);
		text = t_read(path, &len);
		cr_assert_not_null(text);
		cr_assert_eq(viv_buf_printf(&b, "%s %zu\n", files[i], len), VIV_OK);
		cr_assert_eq(viv_buf_append(&b, text, len), VIV_OK);
		free(text);
		free(path);
	}
	cr_assert_gt(n, 0, "nothing is kept in %s", cache);
	viv_sha256_hex(b.data, b.len, hex);
	viv_buf_free(&b);
	pipe_strv_free(files, n);
	free(cache);
}

/* How many kept Rust SDK builds the cache holds. */
static int kept_sdk_count(void)
{
	char *cache = viv_path_join(t_fx.datadir, "cache");
	DIR *d = opendir(cache);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, "rust-sdk-", 9) == 0;
	closedir(d);
	free(cache);
	return n;
}

Test(lang, rust_sdk_kept_build_is_shared_but_never_written_by_apps)
{
	char *sdk = viv_path_join(t_fx.work, "sdk");
	struct t_entry spoiler[] = {
	        {"Cargo.toml", 'f', sdk_app_toml, 0},
	        {"build.rs", 'f', spoiler_build_rs, 0},
	        {"src/lib.rs", 'f', sdk_app_lib, 0},
	};
	struct t_entry plain[] = {
	        {"Cargo.toml", 'f', sdk_app_toml, 0},
	        {"src/lib.rs", 'f', sdk_app_lib, 0},
	};
	struct store_deployment *d;
	char before[65], after[65];

	t_write(sdk, "rust/Cargo.toml",
	        "[package]\nname = \"vivarium\"\nversion = \"0.1.3\"\nedition = \"2021\"\n");
	t_write(sdk, "rust/src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
	t_fx.cfg.sdk_dir = sdk;

	d = t_build_entries("spoiler", spoiler, N(spoiler));
	/* Its build script ran before its crate was compiled: it spoiled its
	 * own copy, and only that. */
	assert_failed(d, "the Rust compiler reported errors");
	cr_assert(strstr(d->log, "compiled the Vivarium SDK crate once"), "%s", d->log);
	cr_assert(strstr(d->log, "found invalid metadata files for crate `vivarium`"), "%s",
	          d->log);
	store_deployment_free(d);
	kept_sdk_hash(before);

	d = t_build_entries("plain", plain, N(plain));
	assert_ready(d, "rust", "hostcall");
	cr_assert_null(strstr(d->log, "compiled the Vivarium SDK crate once"), "%s", d->log);
	cr_assert(strstr(d->log, "the Vivarium SDK crate comes compiled"), "%s", d->log);
	cr_assert_null(strstr(d->log, "Compiling vivarium"), "%s", d->log);
	store_deployment_free(d);
	kept_sdk_hash(after);
	cr_assert_str_eq(before, after);

	/* Another SDK is another kept build, which replaces the first. */
	t_write(sdk, "rust/src/lib.rs", "pub fn answer() -> u32 { 43 }\n");
	d = t_build_entries("plain", plain, N(plain));
	assert_ready(d, "rust", "hostcall");
	cr_assert(strstr(d->log, "compiled the Vivarium SDK crate once"), "%s", d->log);
	store_deployment_free(d);
	kept_sdk_hash(after);
	cr_assert_str_neq(before, after);
	cr_assert_eq(kept_sdk_count(), 1);
	free(sdk);
}

Test(lang, rust_sdk_kept_build_is_compiled_again_when_cargo_says_so)
{
	char *sdk = viv_path_join(t_fx.work, "sdk");
	char *toml = NULL;
	struct store_deployment *d;

	cr_assert_gt(asprintf(&toml, "%s\n[profile.release]\nopt-level = \"s\"\n", sdk_app_toml),
	             0);
	{
		struct t_entry e[] = {
		        {"Cargo.toml", 'f', toml, 0},
		        {"src/lib.rs", 'f', sdk_app_lib, 0},
		};

		t_write(sdk, "rust/Cargo.toml",
		        "[package]\nname = \"vivarium\"\nversion = "
		        "\"0.1.3\"\nedition = \"2021\"\n");
		t_write(sdk, "rust/src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
		t_fx.cfg.sdk_dir = sdk;
		d = t_build_entries("small", e, N(e));
	}
	/* Another profile is another compilation of the SDK: cargo does it. */
	assert_ready(d, "rust", "hostcall");
	cr_assert(strstr(d->log, "the Vivarium SDK crate comes compiled"), "%s", d->log);
	cr_assert(strstr(d->log, "Compiling vivarium v0.1.3"), "%s", d->log);
	store_deployment_free(d);
	free(toml);
	free(sdk);
}

/* ---- AssemblyScript ----------------------------------------------------------- */

Test(lang, assemblyscript_hello)
{
	struct t_entry e[] = {
	        {"assembly/index.ts", 'f',
	         "let hits: i32 = 0;\n"
	         "\n"
	         "export function run(): void {\n"
	         "  hits++;\n"
	         "  const a = new Array<i32>(hits);\n"
	         "  a[0] = hits;\n"
	         "  if (Math.random() > 2) throw new Error(\"never\");\n"
	         "  trace(\"hits\", 1, <f64>a[0]);\n"
	         "}\n",
	         0},
	        {"package.json", 'f', "{\"name\": \"as-hello\", \"private\": true}\n", 0},
	};
	struct store_deployment *d = t_build_entries("as-hello", e, N(e));
	char *imports;

	assert_ready(d, "assemblyscript", "hostcall");
	cr_assert(strstr(d->log, "asc " PIPE_ASC_VERSION), "%s", d->log);
	assert_artifact_mode(d, VIV_GUEST_HOSTCALL);
	/* abort, trace and seed are routed to WASI, never imported from env. */
	imports = imports_of(d);
	cr_assert_null(strstr(imports, "env."), "%s", imports);
	cr_assert(strstr(imports, "wasi_snapshot_preview1.fd_write"), "%s", imports);
	cr_assert(strstr(imports, "wasi_snapshot_preview1.random_get"), "%s", imports);
	free(imports);
	print_timings("assemblyscript hello", d);
	store_deployment_free(d);
}

Test(lang, assemblyscript_type_error_names_file_line_and_column)
{
	struct t_entry e[] = {
	        {"assembly/index.ts", 'f',
	         "export function run(): void {\n"
	         "  let x: string = 1;\n"
	         "}\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("as-bad", e, N(e));

	assert_failed(d, "the AssemblyScript compiler reported errors; the build log has them "
	                 "with file, line and column");
	cr_assert(strstr(d->log, "TS2322"), "%s", d->log);
	cr_assert(strstr(d->log, "assembly/index.ts(2,19)"), "%s", d->log);
	store_deployment_free(d);
}

Test(lang, assemblyscript_missing_package_is_named)
{
	struct t_entry e[] = {
	        {"assembly/index.ts", 'f',
	         "import { pad } from \"left-pad\";\n"
	         "export function run(): void { pad(); }\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("as-needy", e, N(e));

	assert_failed(d, "the package \"left-pad\" is not available");
	store_deployment_free(d);
}

Test(lang, assemblyscript_sdk_imports_as_vivarium)
{
	char *sdk = viv_path_join(t_fx.work, "sdk");
	struct t_entry e[] = {
	        {"assembly/index.ts", 'f',
	         "import { answer } from \"vivarium\";\n"
	         "let got: i32 = 0;\n"
	         "export function run(): void { got = answer(); }\n",
	         0},
	};
	struct store_deployment *d;

	t_write(sdk, "assemblyscript/assembly/index.ts",
	        "export function answer(): i32 { return 42; }\n");
	t_fx.cfg.sdk_dir = sdk;
	d = t_build_entries("as-sdk", e, N(e));
	assert_ready(d, "assemblyscript", "hostcall");
	cr_assert(strstr(d->log, "the Vivarium SDK imports as \"vivarium\""), "%s", d->log);
	store_deployment_free(d);
	free(sdk);
}

/* ---- C and C++ ------------------------------------------------------------------ */

Test(lang, cxx_command)
{
	struct t_entry e[] = {
	        {"hello.cpp", 'f',
	         "#include <iostream>\n"
	         "#include <string>\n"
	         "#include <vector>\n"
	         "int main() {\n"
	         "    std::vector<std::string> parts{\"Hello\", \", \", \"C++\"};\n"
	         "    std::string s;\n"
	         "    for (const auto &p : parts) s += p;\n"
	         "    std::cout << \"Content-Type: text/plain\\r\\n\\r\\n\" << s << std::endl;\n"
	         "}\n",
	         0},
	};
	struct store_deployment *d = t_build_entries("cxx", e, N(e));

	assert_ready(d, "c", "cgi");
	cr_assert(strstr(d->log, "$ clang++ --target=wasm32-wasi --sysroot=/usr -O2 "
	                         "-fno-exceptions -c hello.cpp"),
	          "%s", d->log);
	assert_artifact_mode(d, VIV_GUEST_CGI);
	store_deployment_free(d);
}

Test(lang, cxx_run_needs_c_linkage)
{
	struct t_entry e[] = {{"h.cc", 'f', "void run() {}\n", 0}};
	struct store_deployment *d = t_build_entries("cxx-run", e, N(e));

	assert_failed(d, "declare it extern \"C\" void run()");
	store_deployment_free(d);
}

Test(lang, c_project_with_folders_include_dirs_and_flags)
{
	struct t_entry e[] = {
	        {"proj/src/main.c", 'f',
	         "#include <stdio.h>\n"
	         "#include \"util.h\"\n"
	         "#include \"config.h\"\n"
	         "int main(void) {\n"
	         "    printf(\"Content-Type: text/plain\\r\\n\\r\\n%s %d\\n\",\n"
	         "           GREETING, twice(21));\n"
	         "    return 0;\n"
	         "}\n",
	         0},
	        {"proj/src/util/util.c", 'f',
	         "#include \"util.h\"\nint twice(int x) { return 2 * x; }\n", 0},
	        {"proj/src/util/util.h", 'f', "int twice(int x);\n", 0},
	        {"proj/headers/config.h", 'f',
	         "#ifndef STRICT_BUILD\n#error \"cflags were not applied\"\n#endif\n", 0},
	        {"proj/vivarium.json", 'f',
	         "{\"build\": {\"sources\": [\"src/*.c\", \"src/util/*.c\"],"
	         " \"include_dirs\": [\"headers\", \"src/util\"],"
	         " \"cflags\": [\"-DSTRICT_BUILD\", \"-DGREETING=\\\"hi\\\"\", \"-Wall\","
	         " \"-Werror\"]}}",
	         0},
	};
	struct store_deployment *d = t_build_entries("multi", e, N(e));

	assert_ready(d, "c", "cgi");
	cr_assert(strstr(d->log, "-c src/main.c"), "%s", d->log);
	cr_assert(strstr(d->log, "-c src/util/util.c"), "%s", d->log);
	cr_assert(strstr(d->log, " -Iheaders -Isrc/util "), "%s", d->log);
	cr_assert(strstr(d->log, "-DSTRICT_BUILD"), "%s", d->log);
	store_deployment_free(d);
}

Test(lang, c_include_dir_must_exist)
{
	struct t_entry e[] = {
	        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
	        {"vivarium.json", 'f', "{\"build\": {\"include_dirs\": [\"nope\"]}}", 0},
	};
	struct store_deployment *d = t_build_entries("noinc", e, N(e));

	assert_failed(d, "build.include_dirs names 'nope', which is not a folder in the upload");
	store_deployment_free(d);
}

/* ---- Static assets ------------------------------------------------------------- */

Test(lang, assets_are_stored_and_named_in_the_config)
{
	struct t_entry e[] = {
	        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
	        {"assets/index.html", 'f', "<h1>hello</h1>\n", 0},
	        {"assets/css/site.css", 'f', "h1 { color: red }\n", 0},
	};
	struct store_deployment *a, *b;
	char want[128], *tree, *path, *text;

	a = t_build_entries("site", e, N(e));
	assert_ready(a, "c", "cgi");
	cr_assert_null(strstr(a->log, "not served"), "%s", a->log);
	cr_assert(strstr(a->log, "static files: 2 in assets/"), "%s", a->log);
	cr_assert(strstr(a->timings, "\"assets\""), "%s", a->timings);
	/* The config names the tree by its hash, which is where it is. */
	cr_assert_not_null(a->config.assets);
	snprintf(want, sizeof(want), "%.64s", a->config.assets);
	tree = store_assets_path(t_fx.st, want);
	cr_assert_not_null(tree, "not a hash: %s", want);
	path = viv_path_join(tree, "css/site.css");
	text = t_read(path, NULL);
	cr_assert_str_eq(text, "h1 { color: red }\n");
	free(text);
	free(path);

	/* The same files again give the same hash; the second build finds the
	 * tree in place. */
	b = t_build_entries("site2", e, N(e));
	assert_ready(b, "c", "cgi");
	cr_assert_str_eq(b->config.assets, want);
	store_deployment_free(a);
	store_deployment_free(b);
	free(tree);
}

Test(lang, no_assets_is_null_and_a_named_folder_must_exist)
{
	struct t_entry plain[] = {{"main.c", 'f', "int main(void) { return 0; }\n", 0}};
	struct t_entry named[] = {
	        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
	        {"public/a.txt", 'f', "a\n", 0},
	        {"vivarium.json", 'f', "{\"assets\": \"public\"}", 0},
	};
	struct t_entry missing[] = {
	        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
	        {"vivarium.json", 'f', "{\"assets\": \"static\"}", 0},
	};
	struct store_deployment *d;

	d = t_build_entries("plain", plain, N(plain));
	assert_ready(d, "c", "cgi");
	cr_assert_null(d->config.assets);
	store_deployment_free(d);
	d = t_build_entries("named", named, N(named));
	assert_ready(d, "c", "cgi");
	cr_assert(strstr(d->log, "static files: 1 in public/"), "%s", d->log);
	cr_assert_not_null(d->config.assets);
	store_deployment_free(d);
	d = t_build_entries("missing", missing, N(missing));
	assert_failed(d, "assets names 'static', which is not a folder in the upload");
	store_deployment_free(d);
}

/* The hash itself: stable, sensitive to names and bytes, refusing links
 * and anything past the caps. */
Test(lang, assets_hash)
{
	char *dir = viv_path_join(t_fx.work, "a"), *link;
	char h1[VIV_SHA256_HEX_LEN + 1], h2[VIV_SHA256_HEX_LEN + 1];
	struct pipe_assets_stats s;
	char err[512];

	t_write(dir, "x/1.txt", "one");
	t_write(dir, "y.txt", "two");
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, h1, &s, err, sizeof(err)), VIV_OK, "%s",
	             err);
	cr_assert_eq(s.files, 2);
	cr_assert_eq(s.dirs, 1);
	cr_assert_eq(s.bytes, 6);
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, h2, &s, err, sizeof(err)), VIV_OK);
	cr_assert_str_eq(h1, h2);
	t_write(dir, "y.txt", "twO");
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, h2, &s, err, sizeof(err)), VIV_OK);
	cr_assert_str_neq(h1, h2);
	t_write(dir, "y.txt", "two");
	cr_assert_eq(pipe_assets_hash(dir, "a", 2, 1000, h2, &s, err, sizeof(err)),
	             VIV_ERR_TOO_BIG);
	cr_assert(strstr(err, "more than 2 files and folders"), "%s", err);
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 5, h2, &s, err, sizeof(err)), VIV_ERR_TOO_BIG);
	link = viv_path_join(dir, "x/secret");
	cr_assert_eq(symlink("/etc/passwd", link), 0);
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, h2, &s, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert_str_eq(err, "a/x/secret is a symbolic link; static assets must be regular "
	                      "files and folders");
	free(link);
	free(dir);
}

/* An assets tree nested more than 32 folders deep is refused, not cut short. */
Test(lang, assets_hash_refuses_a_tree_too_deep)
{
	char *dir = viv_path_join(t_fx.work, "a");
	char rel[128] = "";
	char hex[VIV_SHA256_HEX_LEN + 1];
	struct pipe_assets_stats s;
	char err[512];

	for (int i = 0; i < 32; i++)
		strcat(rel, "d/");
	strcat(rel, "x.txt");
	t_write(dir, rel, "x");
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, hex, &s, err, sizeof(err)), VIV_OK, "%s",
	             err);
	cr_assert_eq(s.dirs, 32);
	strcpy(rel + 2 * 32, "d/y.txt");
	t_write(dir, rel, "y");
	cr_assert_eq(pipe_assets_hash(dir, "a", 100, 1000, hex, &s, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert_str_eq(err, "the a folder is nested more than 32 folders deep");
	cr_assert_str_eq(hex, "");
	free(dir);
}

/* setup.sh installs the asc version the pipeline insists on. */
Test(lang, setup_installs_the_pinned_asc)
{
	char *path = viv_path_join(VIV_SOURCE_DIR, "scripts/setup.sh");
	char *text = t_read(path, NULL);

	cr_assert_not_null(text);
	cr_assert(strstr(text, "\nasc_version=" PIPE_ASC_VERSION "\n"),
	          "scripts/setup.sh does not pin asc " PIPE_ASC_VERSION);
	free(text);
	free(path);
}
