/* Instantiate, run and discard, in process: how long one request to a guest
 * takes without HTTP, the figure that says what a fresh sandbox per request
 * costs. Builds the app through the real pipeline, then runs it many times
 * on one pool and prints the median, the 99th percentile and the same with
 * memory handed back to the kernel after each request (madvise), the way a
 * copy-on-write pool resets it, for comparison in the same run. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Packs dir with the tar tool (an argv, no shell) into path. */
static int pack(const char *dir, const char *path)
{
	const char *argv[] = {"tar", "-czf", path, "-C", dir, ".", NULL};
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Builds the app in dir through the pipeline in a scratch data directory;
 * *so_out is the artifact's path (caller frees). */
static int build(const char *dir, const char *datadir, char **so_out)
{
	struct pipe_config cfg;
	struct store_deployment *d = NULL;
	struct store *st = NULL;
	char err[512], *tmp = NULL;
	int rc = -1;

	if (store_open(datadir, &st, err, sizeof(err))) {
		fprintf(stderr, "bench_instance: %s\n", err);
		return -1;
	}
	pipe_config_defaults(&cfg);
	cfg.sandbox = pipe_sandbox_available(NULL, err, sizeof(err));
	if (store_upload_tmp(st, &tmp) || pack(dir, tmp))
		goto out;
	if (bench_build(st, &cfg, "bench", tmp, &d, err, sizeof(err))) {
		fprintf(stderr, "bench_instance: %s\n", err);
		goto out;
	}
	if (d->status != STORE_DEP_READY) {
		fprintf(stderr, "bench_instance: the build failed: %s\n%s\n", d->error, d->log);
		goto out;
	}
	*so_out = store_artifact_path(st, d->artifact, "so");
	rc = *so_out ? 0 : -1;
out:
	store_deployment_free(d);
	store_close(st);
	free(tmp);
	return rc;
}

struct figures {
	double median_us, p99_us, mean_us;
};

/* Runs the app n times on a pool with the given clean threshold. */
static int measure(struct run_module *m, size_t clean_max, size_t n, struct figures *f)
{
	static const struct run_app app = {.name = "bench", .limits = {128, 500, 10000}};
	struct run_pool_config pc;
	struct run_request req;
	struct run_pool *pool = NULL;
	uint64_t *t, sum = 0;
	size_t i, warm = n / 10 + 100;

	run_pool_config_defaults(&pc);
	pc.slots = 4;
	pc.clean_in_place_max = clean_max;
	if (run_pool_create(&pc, &pool))
		return -1;
	bench_request(&req);
	t = calloc(n, sizeof(*t));
	if (!t)
		return -1;
	for (i = 0; i < warm + n; i++) {
		struct run_instance *in = NULL;
		uint64_t t0 = now_ns();

		if (run_instance_start(pool, m, &app, &req, NULL, NULL, &in) ||
		    !run_instance_done(in) || run_instance_outcome(in) != RUN_DONE) {
			fprintf(stderr, "bench_instance: the request did not complete\n");
			return -1;
		}
		run_instance_end(in);
		if (i >= warm)
			t[i - warm] = now_ns() - t0;
	}
	qsort(t, n, sizeof(*t), cmp_u64);
	for (i = 0; i < n; i++)
		sum += t[i];
	f->median_us = (double)t[n / 2] / 1000.0;
	f->p99_us = (double)t[n * 99 / 100] / 1000.0;
	f->mean_us = (double)sum / (double)n / 1000.0;
	free(t);
	run_pool_destroy(pool);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	        {"iterations", required_argument, NULL, 'n'},
	        {"json", required_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	char datadir[] = "/tmp/viv-bench-instance-XXXXXX", err[512], *so = NULL;
	const char *json = NULL, *dir;
	struct figures inplace, madv, notick;
	struct run_module *m = NULL;
	size_t n = 200000;
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		if (c == 'n')
			n = strtoul(optarg, NULL, 10);
		else if (c == 'j')
			json = optarg;
		else
			return 2;
	}
	if (optind != argc - 1 || n < 100) {
		fprintf(stderr, "usage: bench_instance [--iterations N] [--json FILE] APP_DIR\n");
		return 2;
	}
	dir = argv[optind];
	if (!mkdtemp(datadir) || build(dir, datadir, &so))
		return 1;
	if (run_thread_init() || run_module_load(so, NULL, &m, err, sizeof(err))) {
		fprintf(stderr, "bench_instance: %s\n", err);
		return 1;
	}
	fprintf(stderr, "bench_instance: %zu requests each way\n", n);
	if (measure(m, (size_t)2 << 20, n, &inplace) || measure(m, 0, n / 10, &madv))
		return 1;
	if (run_thread_cpu_limit(false) || measure(m, (size_t)2 << 20, n, &notick) ||
	    run_thread_cpu_limit(true)) {
		fprintf(stderr, "bench_instance: cannot switch the CPU tick\n");
		return 1;
	}
	printf("instantiate+run+discard  median %.2f us  p99 %.2f us  mean %.2f us\n",
	       inplace.median_us, inplace.p99_us, inplace.mean_us);
	printf("  same, CPU tick off     median %.2f us\n", notick.median_us);
	printf("  memory reset by madvise median %.2f us  (%.1fx)\n", madv.median_us,
	       madv.median_us / inplace.median_us);
	if (json) {
		f = fopen(json, "w");
		if (!f)
			return 1;
		fprintf(f,
		        "{\"median_us\": %.3f, \"p99_us\": %.3f, \"mean_us\": %.3f, "
		        "\"tick_off_median_us\": %.3f, \"madvise_median_us\": %.3f, "
		        "\"iterations\": %zu}\n",
		        inplace.median_us, inplace.p99_us, inplace.mean_us, notick.median_us,
		        madv.median_us, n);
		fclose(f);
	}
	run_module_release(m);
	viv_rmtree_or_log(datadir);
	free(so);
	return 0;
}
