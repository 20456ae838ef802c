/* Many apps on one machine: deploys one upload as N apps through a running
 * vivd's API, waits until every deployment is ready, requests every app once
 * through the runners, and reports how long that took and how much memory the
 * runner workers hold per app they have served. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_vivd.h"
#include "viv.h"

struct opts {
	const char *api; /* http://127.0.0.1:PORT */
	const char *token;
	unsigned apps_port;
	const char *upload; /* tarball path */
	unsigned n;
	pid_t vivd; /* the supervisor, whose workers are measured */
	const char *json;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident kilobytes of the supervisor's workers. */
static long workers_rss_kb(pid_t parent)
{
	pid_t pids[256];
	size_t n = bench_workers(parent, pids, 256), i;
	long total = 0;

	for (i = 0; i < n && i < 256; i++) {
		long kb = bench_rss_kb(pids[i]);

		total += kb > 0 ? kb : 0;
	}
	return total;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_apps --api URL --token T --apps-port P --vivd PID "
	                "--upload FILE [--count N] [--json FILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	        {"api", required_argument, NULL, 'a'},
	        {"token", required_argument, NULL, 't'},
	        {"apps-port", required_argument, NULL, 'p'},
	        {"vivd", required_argument, NULL, 'v'},
	        {"upload", required_argument, NULL, 'u'},
	        {"count", required_argument, NULL, 'n'},
	        {"json", required_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	struct opts o = {.n = 10000};
	struct viv_buf body;
	char *upload = NULL, url[512], host[128];
	size_t ulen = 0;
	long *ids, rss_before, rss_after, status;
	double t0, t_deploy, t_ready, t_served;
	unsigned i, ok = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'a':
			o.api = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'p':
			o.apps_port = (unsigned)atoi(optarg);
			break;
		case 'v':
			o.vivd = (pid_t)atoi(optarg);
			break;
		case 'u':
			o.upload = optarg;
			break;
		case 'n':
			o.n = (unsigned)atoi(optarg);
			break;
		case 'j':
			o.json = optarg;
			break;
		default:
			return usage();
		}
	}
	if (!o.api || !o.token || !o.apps_port || !o.vivd || !o.upload || !o.n)
		return usage();
	if (viv_read_file(o.upload, 64 << 20, &upload, &ulen)) {
		fprintf(stderr, "bench_apps: cannot read %s\n", o.upload);
		return 1;
	}
	ids = calloc(o.n, sizeof(*ids));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	viv_buf_init(&body, 1 << 20);
	if (!ids)
		return 1;
	rss_before = workers_rss_kb(o.vivd);

	/* Deploy the same upload as o.n apps. */
	t0 = now_s();
	for (i = 0; i < o.n; i++) {
		json_t *j;

		snprintf(url, sizeof(url), "%s/v1/apps/many-%u/deployments", o.api, i);
		status = bench_http("POST", url, NULL, o.token, upload, ulen, &body);
		j = status == 202 ? json_loads(body.data, 0, NULL) : NULL;
		if (!j) {
			fprintf(stderr, "bench_apps: deploy %u answered %ld: %s\n", i, status,
			        body.data ? body.data : "");
			return 1;
		}
		ids[i] = (long)json_integer_value(json_object_get(j, "id"));
		json_decref(j);
		if (i % 1000 == 999)
			fprintf(stderr, "bench_apps: %u deployed\n", i + 1);
	}
	t_deploy = now_s() - t0;

	/* Wait until every one is ready. */
	for (i = 0; i < o.n; i++) {
		for (;;) {
			json_t *j;
			const char *st;

			snprintf(url, sizeof(url), "%s/v1/deployments/%ld", o.api, ids[i]);
			bench_http("GET", url, NULL, o.token, NULL, 0, &body);
			j = json_loads(body.data ? body.data : "", 0, NULL);
			st = json_string_value(json_object_get(j, "status"));
			if (st && strcmp(st, "failed") == 0) {
				fprintf(stderr, "bench_apps: deployment %ld failed\n", ids[i]);
				return 1;
			}
			if (st && strcmp(st, "ready") == 0) {
				json_decref(j);
				break;
			}
			json_decref(j);
			usleep(20000);
		}
	}
	t_ready = now_s() - t0;

	/* Every app answers on its own host name. */
	t0 = now_s();
	for (i = 0; i < o.n; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/", o.apps_port);
		snprintf(host, sizeof(host), "many-%u.localhost", i);
		if (bench_http("GET", url, host, NULL, NULL, 0, &body) == 200)
			ok++;
	}
	t_served = now_s() - t0;
	rss_after = workers_rss_kb(o.vivd);

	printf("apps deployed            %u (all ready after %.1f s; uploads took %.1f s)\n", o.n,
	       t_ready, t_deploy);
	printf("apps answering           %u of %u (every one requested once in %.1f s)\n", ok, o.n,
	       t_served);
	printf("worker memory            %.1f MiB before, %.1f MiB after: %.1f KiB per app\n",
	       (double)rss_before / 1024, (double)rss_after / 1024,
	       (double)(rss_after - rss_before) / o.n);
	if (o.json) {
		FILE *f = fopen(o.json, "w");
		if (!f)
			return 1;
		fprintf(f,
		        "{\"apps\": %u, \"answering\": %u, \"deploy_s\": %.2f, \"ready_s\": %.2f, "
		        "\"serve_all_s\": %.2f, \"workers_rss_before_kb\": %ld, "
		        "\"workers_rss_after_kb\": %ld, \"kb_per_app\": %.2f}\n",
		        o.n, ok, t_deploy, t_ready, t_served, rss_before, rss_after,
		        (double)(rss_after - rss_before) / o.n);
		fclose(f);
	}
	viv_buf_free(&body);
	free(upload);
	free(ids);
	return ok == o.n ? 0 : 1;
}
