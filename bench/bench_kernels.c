/* bench_kernels: how fast guest code runs in Vivarium, against the same C
 * compiled natively and the same optimized .wasm under node's V8.
 *
 * For each kernel in bench/kernels it compiles the source natively with
 * clang -O2, builds it through the real pipeline (store, C
 * toolchain, wasm-opt, wasm2c, the AOT compiler) into an artifact, and then
 * runs, several times and interleaved: the native program, the artifact in
 * this process through the runner (a pool, an instance per run, as a worker
 * serves a request), and the artifact's .wasm under node's WASI, once with
 * V8's optimizing compiler only and once with node's default tiering. Each
 * kernel times its own work and prints "kernel NAME ns N check C"; the
 * medians, their ratios to native and the geometric means go to stdout as
 * a table, and to a JSON file with --json. Progress goes to stderr.
 *
 * The native baseline is clang because guests' C goes through clang too,
 * so the ratio is the sandbox's cost, not a compiler's: GCC 12 at -O2 was
 * slower on every kernel here (nbody 2.1x), which would flatter the ratios.
 * --cc picks another.
 *
 * It measures; it asserts no time. It fails only when something did not
 * run, or when a target printed a different check (a miscompile). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "viv.h"

#define KERNEL_DIR VIV_SOURCE_DIR "/bench/kernels"
#define RUN_WASI VIV_SOURCE_DIR "/bench/run-wasi.mjs"
#define RUNS_DEFAULT 5
#define RUNS_MAX 25
#define OUTPUT_CAP (64 * 1024)        /* bytes of a child's stdout kept */
#define SOURCE_MAX (1024 * 1024)      /* bytes of one kernel source file */
#define CHILD_TIMEOUT_MS (300 * 1000) /* a compiler or one run */
#define CHECK_MAX 256

extern char **environ;

static const char *const all_kernels[] = {"sha256", "nbody", "sort", "json"};
#define N_KERNELS (sizeof(all_kernels) / sizeof(all_kernels[0]))

/* The app's manifest: the platform's maximum limits, so that only a
 * kernel's own speed decides how long it takes. */
static const char manifest_text[] =
        "{\"language\": \"c\", \"limits\": {\"memory_mb\": 1024, \"cpu_ms\": 10000, "
        "\"wall_ms\": 60000}}\n";

enum target {
	T_NATIVE,
	T_VIVARIUM,
	T_NODE,        /* node --no-liftoff: TurboFan compiles everything first */
	T_NODE_TIERED, /* node as it starts by default: Liftoff, then TurboFan */
	N_TARGETS,
};

static const char *const target_names[N_TARGETS] = {"native", "vivarium", "node", "node_tiered"};

struct kernel {
	const char *name;
	char *native_exe; /* the cc -O2 build */
	char *hash;       /* the artifact hash */
	char *so;         /* the artifact */
	char *wasm;       /* the optimized module it was made from */
	int64_t build_ms; /* the pipeline build, all steps */
	struct run_module *mod;
	char check[CHECK_MAX]; /* what the first run printed */
	double ms[N_TARGETS][RUNS_MAX];
	double median[N_TARGETS];
};

struct bench {
	const char *json_path; /* NULL: no JSON file */
	const char *cc;        /* the native compiler, clang unless --cc */
	const char *node;      /* NULL when node cannot run */
	unsigned runs;
	char tmp[64]; /* scratch: native programs and the data directory */
	struct store *st;
	struct pipe_config cfg;
	struct run_pool *pool;
	struct kernel kernels[N_KERNELS];
	size_t n_kernels;
};

/* ---- Child processes ---------------------------------------------------------- */

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stderr shared with ours; its stdout goes into out, at most OUTPUT_CAP
 * bytes. A child still running after CHILD_TIMEOUT_MS is killed. VIV_OK
 * when it exited with status 0; otherwise the reason is in err. */
static enum viv_err run_child(const char *const *argv, struct viv_buf *out, char *err,
                              size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int fds[2] = {-1, -1}, status = 0, rc;
	uint64_t deadline = viv_mono_ns() + (uint64_t)CHILD_TIMEOUT_MS * 1000000;
	bool timed_out = false;
	pid_t pid;
	enum viv_err e = VIV_OK;

	if (pipe2(fds, O_CLOEXEC)) {
		viv_errf(err, errlen, "pipe: %s", strerror(errno));
		return VIV_ERR_IO;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	/* The runner's tick and fault signals are ours, not the child's. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(fds[1]);
	if (rc) {
		viv_errf(err, errlen, "cannot run %s: %s", argv[0], strerror(rc));
		close(fds[0]);
		return rc == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
	}
	for (;;) {
		struct pollfd p = {fds[0], POLLIN, 0};
		uint64_t now = viv_mono_ns();
		char buf[4096];
		ssize_t n;

		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		rc = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		viv_buf_append_trunc(out, buf, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		viv_errf(err, errlen, "%s took longer than %d s and was stopped", argv[0],
		         CHILD_TIMEOUT_MS / 1000);
		e = VIV_ERR_TIMEOUT;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		viv_errf(err, errlen, "%s failed (%s %d)", argv[0],
		         WIFEXITED(status) ? "exit status" : "signal",
		         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		e = VIV_ERR_BUILD;
	}
	return e;
}

/* ---- Results ------------------------------------------------------------------------ */

/* Finds "kernel NAME ns N check C" in output (a CGI response or a body) and
 * checks NAME; *ms_out is N in milliseconds and check receives C. */
static enum viv_err parse_result(const char *output, const char *name, double *ms_out,
                                 char check[CHECK_MAX], char *err, size_t errlen)
{
	const char *line = output;
	char got[64];
	unsigned long long ns;

	while (line && strncmp(line, "kernel ", 7) != 0) {
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	if (!line || sscanf(line, "kernel %63s ns %llu check %255s", got, &ns, check) != 3 ||
	    strcmp(got, name) != 0) {
		viv_errf(err, errlen, "%s printed no result line; its output began: %.200s", name,
		         output);
		return VIV_ERR_INVALID;
	}
	*ms_out = (double)ns / 1e6;
	return VIV_OK;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
	double s[RUNS_MAX];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- Native ------------------------------------------------------------------------ */

static enum viv_err build_native(struct bench *b, struct kernel *k, char *err, size_t errlen)
{
	const char *argv[] = {b->cc, "-O2", "-o", NULL, NULL, "-lm", NULL};
	char src[512];
	struct viv_buf out;
	enum viv_err e;

	snprintf(src, sizeof(src), "%s/%s.c", KERNEL_DIR, k->name);
	if (asprintf(&k->native_exe, "%s/%s", b->tmp, k->name) < 0) {
		k->native_exe = NULL;
		return VIV_ERR_NOMEM;
	}
	argv[3] = k->native_exe;
	argv[4] = src;
	viv_buf_init(&out, OUTPUT_CAP);
	e = run_child(argv, &out, err, errlen);
	viv_buf_free(&out);
	return e;
}

/* ---- Vivarium: the pipeline --------------------------------------------------------- */

/* Adds len bytes of data to the archive as the regular file name. */
static enum viv_err tar_add(struct archive *a, const char *name, const void *data, size_t len,
                            char *err, size_t errlen)
{
	struct archive_entry *ent = archive_entry_new();
	enum viv_err e = VIV_OK;

	if (!ent)
		return VIV_ERR_NOMEM;
	archive_entry_set_pathname(ent, name);
	archive_entry_set_filetype(ent, AE_IFREG);
	archive_entry_set_perm(ent, 0644);
	archive_entry_set_size(ent, (la_int64_t)len);
	if (archive_write_header(a, ent) != ARCHIVE_OK ||
	    archive_write_data(a, data, len) != (la_ssize_t)len) {
		viv_errf(err, errlen, "cannot write the upload: %s", archive_error_string(a));
		e = VIV_ERR_IO;
	}
	archive_entry_free(ent);
	return e;
}

/* Adds the file at path to the archive as name. */
static enum viv_err tar_add_file(struct archive *a, const char *name, const char *path, char *err,
                                 size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	enum viv_err e;

	e = viv_read_file(path, SOURCE_MAX, &text, &len);
	if (e) {
		viv_errf(err, errlen, "cannot read %s: %s", path, viv_strerror(e));
		return e;
	}
	e = tar_add(a, name, text, len, err, errlen);
	free(text);
	return e;
}

/* Writes the upload of kernel k to path: a tarball of its source,
 * kernel.h and the manifest. */
static enum viv_err write_upload(const struct kernel *k, const char *path, char *err, size_t errlen)
{
	struct archive *a = archive_write_new();
	char src[512], name[128];
	enum viv_err e;

	if (!a)
		return VIV_ERR_NOMEM;
	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
		viv_errf(err, errlen, "cannot write the upload: %s", archive_error_string(a));
		e = VIV_ERR_IO;
		goto out;
	}
	snprintf(src, sizeof(src), "%s/%s.c", KERNEL_DIR, k->name);
	snprintf(name, sizeof(name), "%s.c", k->name);
	e = tar_add_file(a, name, src, err, errlen);
	if (!e)
		e = tar_add_file(a, "kernel.h", KERNEL_DIR "/kernel.h", err, errlen);
	if (!e)
		e = tar_add(a, "vivarium.json", manifest_text, strlen(manifest_text), err, errlen);
	if (!e && archive_write_close(a) != ARCHIVE_OK) {
		viv_errf(err, errlen, "cannot write the upload: %s", archive_error_string(a));
		e = VIV_ERR_IO;
	}
out:
	archive_write_free(a);
	return e;
}

/* Builds kernel k as a deployment of app "bench-NAME" through pipe_build,
 * as vivd's builder would, and loads the artifact. */
static enum viv_err build_vivarium(struct bench *b, struct kernel *k, char *err, size_t errlen)
{
	struct store_deployment *d = NULL;
	char *tmp = NULL, app[64];
	uint64_t t0 = viv_mono_ns();
	enum viv_err e;

	snprintf(app, sizeof(app), "bench-%s", k->name);
	e = store_upload_tmp(b->st, &tmp);
	if (e)
		goto out;
	e = write_upload(k, tmp, err, errlen);
	if (e) {
		unlink(tmp);
		goto out;
	}
	e = bench_build(b->st, &b->cfg, app, tmp, &d, err, errlen);
	if (e)
		goto out;
	k->build_ms = (int64_t)((viv_mono_ns() - t0) / 1000000);
	if (d->status != STORE_DEP_READY || !d->artifact) {
		fprintf(stderr, "%s", d->log);
		viv_errf(err, errlen, "the build of %s failed: %s (its log is above)", k->name,
		         d->error ? d->error : "no reason given");
		e = VIV_ERR_BUILD;
		goto out;
	}
	k->hash = strdup(d->artifact);
	k->so = store_artifact_path(b->st, d->artifact, "so");
	k->wasm = store_artifact_path(b->st, d->artifact, "wasm");
	if (!k->hash || !k->so || !k->wasm) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	e = run_module_load(k->so, k->hash, &k->mod, err, errlen);
out:
	store_deployment_free(d);
	free(tmp);
	return e;
}

/* ---- Vivarium: the runner ---------------------------------------------------------- */

/* One request to kernel k's artifact on a fresh instance in the pool, run
 * to its end as a worker's event loop would; the response body goes to out. */
static enum viv_err run_vivarium(struct bench *b, struct kernel *k, struct viv_buf *out, char *err,
                                 size_t errlen)
{
	struct run_app app;
	struct run_request req;
	struct run_instance *in = NULL;
	const struct run_response *resp;
	char name[64];
	enum viv_err e;

	snprintf(name, sizeof(name), "bench-%s", k->name);
	memset(&app, 0, sizeof(app));
	app.name = name;
	app.limits.memory_mb = VIV_LIMIT_MEMORY_MB_MAX;
	app.limits.cpu_ms = VIV_LIMIT_CPU_MS_MAX;
	app.limits.wall_ms = VIV_LIMIT_WALL_MS_MAX;
	app.host = "bench.localhost";
	bench_request(&req);

	e = run_instance_start(b->pool, k->mod, &app, &req, NULL, NULL, &in);
	if (e) {
		viv_errf(err, errlen, "cannot start %s: %s", k->name, viv_strerror(e));
		goto out;
	}
	while (!run_instance_done(in)) {
		struct pollfd p = {run_pool_fd(b->pool), POLLIN, 0};
		int ms = run_pool_poll(b->pool);

		if (!run_instance_done(in))
			poll(&p, 1, ms < 0 || ms > 100 ? 100 : ms);
	}
	resp = run_instance_response(in);
	if (run_instance_outcome(in) != RUN_DONE || resp->status != 200) {
		size_t n = 0;
		const struct run_log_line *l = run_instance_logs(in, &n);

		viv_errf(err, errlen, "%s ended with %s (status %u)%s%s", k->name,
		         run_outcome_name(run_instance_outcome(in)), resp->status, n ? ": " : "",
		         n ? l[n - 1].message : "");
		e = VIV_ERR_TRAP;
		goto out;
	}
	viv_buf_append_trunc(out, resp->body ? resp->body : "", resp->body_len);
out:
	run_instance_end(in);
	return e;
}

/* ---- One run of one target ----------------------------------------------------------- */

static enum viv_err run_target(struct bench *b, struct kernel *k, enum target t, double *ms_out,
                               char check[CHECK_MAX], char *err, size_t errlen)
{
	struct viv_buf out;
	enum viv_err e;

	viv_buf_init(&out, OUTPUT_CAP);
	if (t == T_NATIVE) {
		const char *argv[] = {k->native_exe, NULL};

		e = run_child(argv, &out, err, errlen);
	} else if (t == T_VIVARIUM) {
		e = run_vivarium(b, k, &out, err, errlen);
	} else {
		/* Node 20 can collect garbage inside a WASI host call made
		 * through V8's fast API path and then crash (seen with 64 MiB
		 * of guest memory, in uvwasi_fd_write); the slow path costs a
		 * few host calls nothing, and the kernels' work makes none. */
		const char *argv[8];
		size_t n = 0;

		argv[n++] = b->node;
		argv[n++] = "--no-warnings";
		argv[n++] = "--no-turbo-fast-api-calls";
		if (t == T_NODE)
			argv[n++] = "--no-liftoff";
		argv[n++] = RUN_WASI;
		argv[n++] = k->wasm;
		argv[n] = NULL;
		e = run_child(argv, &out, err, errlen);
	}
	if (!e)
		e = parse_result(out.data ? out.data : "", k->name, ms_out, check, err, errlen);
	viv_buf_free(&out);
	return e;
}

/* ---- Output ------------------------------------------------------------------------ */

static bool target_ran(const struct bench *b, enum target t)
{
	return b->node || (t != T_NODE && t != T_NODE_TIERED);
}

static double geomean_of(const struct bench *b, enum target t, enum target over)
{
	double s = 0;

	for (size_t i = 0; i < b->n_kernels; i++)
		s += log(b->kernels[i].median[t] / b->kernels[i].median[over]);
	return exp(s / (double)b->n_kernels);
}

static void print_ms(const struct bench *b, enum target t, double v)
{
	if (target_ran(b, t))
		printf(" %12.1f", v);
	else
		printf(" %12s", "-");
}

static void print_ratio(const struct bench *b, enum target t, double v)
{
	if (target_ran(b, t))
		printf(" %9.3fx", v);
	else
		printf(" %10s", "-");
}

static void print_table(const struct bench *b)
{
	double g[N_TARGETS];

	printf("guest compute: median of %u runs, milliseconds of each kernel's own timing\n",
	       b->runs);
	printf("native: %s -O2; vivarium: the pipeline's artifact run in process; node: %s on "
	       "the same .wasm,\n  with --no-liftoff (TurboFan only) and as started by default "
	       "(tiered)\n\n",
	       b->cc, b->node ? b->node : "(not found)");
	printf("%-8s %12s %12s %12s %12s %10s %10s %10s\n", "kernel", "native ms", "vivarium ms",
	       "node ms", "tiered ms", "viv/nat", "node/nat", "tier/nat");
	for (size_t i = 0; i < b->n_kernels; i++) {
		const struct kernel *k = &b->kernels[i];

		printf("%-8s", k->name);
		for (int t = 0; t < N_TARGETS; t++)
			print_ms(b, (enum target)t, k->median[t]);
		for (int t = T_VIVARIUM; t < N_TARGETS; t++)
			print_ratio(b, (enum target)t, k->median[t] / k->median[T_NATIVE]);
		printf("\n");
	}
	for (int t = 0; t < N_TARGETS; t++) {
		double s = 0;

		for (size_t i = 0; i < b->n_kernels; i++)
			s += log(b->kernels[i].median[t]);
		g[t] = exp(s / (double)b->n_kernels);
	}
	printf("%-8s", "geomean");
	for (int t = 0; t < N_TARGETS; t++)
		print_ms(b, (enum target)t, g[t]);
	for (int t = T_VIVARIUM; t < N_TARGETS; t++)
		print_ratio(b, (enum target)t, geomean_of(b, (enum target)t, T_NATIVE));
	printf("\n");
}

static json_t *json_ratio(const struct bench *b, enum target t, double v)
{
	return target_ran(b, t) ? json_real(v) : json_null();
}

static enum viv_err write_json(const struct bench *b, char *err, size_t errlen)
{
	json_t *root = json_object(), *kernels = json_array(), *geo = json_object();
	enum viv_err e = VIV_OK;

	if (!root || !kernels || !geo) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->n_kernels; i++) {
		const struct kernel *k = &b->kernels[i];
		json_t *o = json_object(), *samples = json_object();

		json_object_set_new(o, "name", json_string(k->name));
		json_object_set_new(o, "check", json_string(k->check));
		json_object_set_new(o, "artifact", json_string(k->hash));
		json_object_set_new(o, "build_ms", json_integer(k->build_ms));
		for (int t = 0; t < N_TARGETS; t++) {
			char key[64];
			json_t *arr = json_array();

			snprintf(key, sizeof(key), "%s_ms", target_names[t]);
			json_object_set_new(o, key, json_ratio(b, (enum target)t, k->median[t]));
			for (unsigned r = 0; target_ran(b, (enum target)t) && r < b->runs; r++)
				json_array_append_new(arr, json_real(k->ms[t][r]));
			json_object_set_new(samples, target_names[t], arr);
			if (t == T_NATIVE)
				continue;
			snprintf(key, sizeof(key), "%s_native", target_names[t]);
			json_object_set_new(
			        o, key,
			        json_ratio(b, (enum target)t, k->median[t] / k->median[T_NATIVE]));
		}
		json_object_set_new(o, "samples_ms", samples);
		json_array_append_new(kernels, o);
	}
	for (int t = T_VIVARIUM; t < N_TARGETS; t++) {
		char key[64];

		snprintf(key, sizeof(key), "%s_native", target_names[t]);
		json_object_set_new(
		        geo, key,
		        json_ratio(b, (enum target)t, geomean_of(b, (enum target)t, T_NATIVE)));
	}
	json_object_set_new(root, "benchmark", json_string("guest_compute"));
	json_object_set_new(root, "runs", json_integer(b->runs));
	json_object_set_new(root, "statistic", json_string("median"));
	json_object_set_new(root, "native_cc", json_string(b->cc));
	json_object_set_new(root, "node", b->node ? json_string(b->node) : json_null());
	json_object_set_new(root, "node_flags",
	                    json_string("--no-turbo-fast-api-calls --no-liftoff; tiered: without "
	                                "--no-liftoff"));
	/* The two goals' figures, as scripts/bench-rows.jq reads them. */
	json_object_set_new(root, "geomean_vivarium_over_native",
	                    json_real(geomean_of(b, T_VIVARIUM, T_NATIVE)));
	json_object_set_new(root, "geomean_vivarium_over_node",
	                    b->node ? json_real(geomean_of(b, T_VIVARIUM, T_NODE)) : json_null());
	json_object_set_new(root, "kernels", kernels);
	json_object_set_new(root, "geomean", geo);
	kernels = geo = NULL;
	if (json_dump_file(root, b->json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6))) {
		viv_errf(err, errlen, "cannot write %s", b->json_path);
		e = VIV_ERR_IO;
	}
out:
	json_decref(root);
	json_decref(kernels);
	json_decref(geo);
	return e;
}

/* ---- Main -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_kernels [--json FILE] [--runs N] [--kernel NAME]... [--cc CC]\n"
	           "                     [--node NODE]\n"
	           "Runs the guest-compute kernels (sha256, nbody, sort, json) natively, in\n"
	           "Vivarium and under node, and prints the medians and their ratios.\n");
}

static enum viv_err parse_args(struct bench *b, int argc, char **argv)
{
	b->cc = "clang";
	b->node = "node";
	b->runs = RUNS_DEFAULT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t j;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		}
		if (!v)
			goto bad;
		i++;
		if (!strcmp(a, "--json")) {
			b->json_path = v;
		} else if (!strcmp(a, "--runs")) {
			b->runs = (unsigned)strtoul(v, NULL, 10);
			if (b->runs < 1 || b->runs > RUNS_MAX)
				goto bad;
		} else if (!strcmp(a, "--cc")) {
			b->cc = v;
		} else if (!strcmp(a, "--node")) {
			b->node = v;
		} else if (!strcmp(a, "--kernel")) {
			for (j = 0; j < N_KERNELS && strcmp(all_kernels[j], v) != 0; j++)
				;
			if (j == N_KERNELS || b->n_kernels == N_KERNELS)
				goto bad;
			b->kernels[b->n_kernels++].name = all_kernels[j];
		} else {
			goto bad;
		}
	}
	if (b->n_kernels == 0) {
		for (size_t j = 0; j < N_KERNELS; j++)
			b->kernels[b->n_kernels++].name = all_kernels[j];
	}
	return VIV_OK;
bad:
	usage(stderr);
	return VIV_ERR_INVALID;
}

/* Whether node runs here at all; the node columns are left empty if not. */
static void probe_node(struct bench *b)
{
	const char *argv[] = {b->node, "--version", NULL};
	struct viv_buf out;
	char err[256];

	viv_buf_init(&out, OUTPUT_CAP);
	if (run_child(argv, &out, err, sizeof(err))) {
		fprintf(stderr, "bench_kernels: %s; the node columns stay empty\n", err);
		b->node = NULL;
	}
	viv_buf_free(&out);
}

static enum viv_err setup(struct bench *b, char *err, size_t errlen)
{
	struct run_pool_config pc;
	char *data = NULL, why[256] = "";
	enum viv_err e;

	strcpy(b->tmp, "/tmp/viv-bench-kernels-XXXXXX");
	if (!mkdtemp(b->tmp)) {
		b->tmp[0] = '\0';
		viv_errf(err, errlen, "mkdtemp: %s", strerror(errno));
		return VIV_ERR_IO;
	}
	data = viv_path_join(b->tmp, "data");
	if (!data)
		return VIV_ERR_NOMEM;
	e = store_open(data, &b->st, err, errlen);
	free(data);
	if (e)
		return e;
	pipe_config_defaults(&b->cfg);
	b->cfg.sandbox = pipe_sandbox_available(NULL, why, sizeof(why));
	if (!b->cfg.sandbox)
		fprintf(stderr, "bench_kernels: building without bubblewrap: %s\n", why);
	e = run_thread_init();
	if (e) {
		viv_errf(err, errlen, "run_thread_init: %s", viv_strerror(e));
		return e;
	}
	run_pool_config_defaults(&pc);
	pc.slots = 1;
	e = run_pool_create(&pc, &b->pool);
	if (e)
		viv_errf(err, errlen, "run_pool_create: %s", viv_strerror(e));
	return e;
}

static void teardown(struct bench *b)
{
	for (size_t i = 0; i < b->n_kernels; i++) {
		struct kernel *k = &b->kernels[i];

		run_module_release(k->mod);
		free(k->native_exe);
		free(k->hash);
		free(k->so);
		free(k->wasm);
	}
	run_pool_destroy(b->pool);
	store_close(b->st);
	if (b->tmp[0] && !getenv("VIV_BENCH_KEEP"))
		viv_rmtree_or_log(b->tmp);
	else if (b->tmp[0])
		fprintf(stderr, "bench_kernels: kept %s\n", b->tmp);
}

/* Every run of every target, interleaved so that a slow spell of the
 * machine falls on all of them alike. */
static enum viv_err measure(struct bench *b, char *err, size_t errlen)
{
	for (unsigned r = 0; r < b->runs; r++) {
		for (size_t i = 0; i < b->n_kernels; i++) {
			struct kernel *k = &b->kernels[i];

			for (int t = 0; t < N_TARGETS; t++) {
				char check[CHECK_MAX];
				enum viv_err e;

				if (!target_ran(b, (enum target)t))
					continue;
				e = run_target(b, k, (enum target)t, &k->ms[t][r], check, err,
				               errlen);
				if (e)
					return e;
				if (!k->check[0])
					strcpy(k->check, check);
				if (strcmp(check, k->check) != 0) {
					viv_errf(err, errlen,
					         "%s on %s printed check %s, not %s as before: "
					         "the targets do not compute the same thing",
					         k->name, target_names[t], check, k->check);
					return VIV_ERR_INVALID;
				}
				fprintf(stderr, "  run %u/%u %-7s %-12s %9.1f ms\n", r + 1, b->runs,
				        k->name, target_names[t], k->ms[t][r]);
			}
		}
	}
	for (size_t i = 0; i < b->n_kernels; i++) {
		for (int t = 0; t < N_TARGETS; t++)
			b->kernels[i].median[t] = median(b->kernels[i].ms[t], b->runs);
	}
	return VIV_OK;
}

int main(int argc, char **argv)
{
	struct bench b;
	char err[1024] = "";
	enum viv_err e;

	memset(&b, 0, sizeof(b));
	if (parse_args(&b, argc, argv))
		return 2;
	probe_node(&b);
	e = setup(&b, err, sizeof(err));
	for (size_t i = 0; !e && i < b.n_kernels; i++) {
		struct kernel *k = &b.kernels[i];

		fprintf(stderr, "bench_kernels: building %s natively (%s -O2)\n", k->name, b.cc);
		e = build_native(&b, k, err, sizeof(err));
		if (e)
			break;
		fprintf(stderr, "bench_kernels: building %s through the pipeline\n", k->name);
		e = build_vivarium(&b, k, err, sizeof(err));
		if (!e)
			fprintf(stderr, "bench_kernels:   artifact %.12s, built in %lld ms\n",
			        k->hash, (long long)k->build_ms);
	}
	if (!e) {
		fprintf(stderr, "bench_kernels: %u runs of each kernel on each target\n", b.runs);
		e = measure(&b, err, sizeof(err));
	}
	if (!e)
		print_table(&b);
	if (!e && b.json_path)
		e = write_json(&b, err, sizeof(err));
	if (e)
		fprintf(stderr, "bench_kernels: %s\n", err[0] ? err : viv_strerror(e));
	teardown(&b);
	return e ? 1 : 0;
}
