/* End to end: many requests in flight in one worker of the real vivd, each
 * guest suspended on an outbound request to an upstream that holds them all,
 * while another app goes on answering; released, every one is answered.
 * vivd starts with the soft descriptor limit most systems give a process
 * (1024), which two descriptors per request in flight would pass, and more
 * requests than libcurl's connection reuse is kept for (outbound.c's
 * REUSE_MAX). The benchmark bench_inflight does the same with 10,000. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "inflight.h"
#include "support.h"

#define N 600
#define UPSTREAM_BODY "held, then released\n"
#define WANT "upstream answered 200 (text/plain): " UPSTREAM_BODY

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

static void deploy(struct tsup_vivd *v, const char *app, const char *example,
                   const struct tsup_file *files, size_t n)
{
	char dir[512], *tgz;
	size_t len;
	json_t *d;

	snprintf(dir, sizeof(dir), "%s/sdk/examples/%s", VIV_SOURCE_DIR, example);
	tsup_tar_dir(dir, files, n, true, &tgz, &len);
	d = tsup_deploy_wait(v, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s: %s\n%s", app, jstr(d, "error"),
	                 jstr(d, "log"));
	json_decref(d);
	free(tgz);
}

Test(inflight, hundreds_of_guests_wait_on_an_upstream_in_one_worker, .timeout = 240)
{
	const char *extra[] = {"--workers", "1", "--sandboxes", "700", "--outbound-allow-private",
	                       NULL};
	struct infl_upstream *up = infl_upstream_start(UPSTREAM_BODY);
	struct infl_crowd_config cc;
	struct infl_crowd_stats cs;
	struct infl_crowd *crowd;
	struct tsup_vivd v;
	struct rlimit rl;
	char manifest[512];
	double deadline;
	unsigned i;

	cr_assert_not_null(up);
	snprintf(manifest, sizeof(manifest),
	         "{\"outbound\": [\"http://127.0.0.1:%u\"],"
	         " \"env\": {\"UPSTREAM\": \"http://127.0.0.1:%u/held\"},"
	         " \"limits\": {\"wall_ms\": 60000}}",
	         infl_upstream_port(up), infl_upstream_port(up));
	/* vivd inherits the soft limit of 1024; it must raise it. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < N * 2 + 512)
		cr_skip_test("the hard descriptor limit here is %lu", (unsigned long)rl.rlim_max);
	rl.rlim_cur = 1024;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	tsup_vivd_start(&v, extra);
	{
		struct tsup_file f[] = {{"vivarium.json", manifest}};
		deploy(&v, "fetch", "c-fetch", f, 1);
	}
	deploy(&v, "hello", "c-hello", NULL, 0);

	infl_upstream_hold(up);
	memset(&cc, 0, sizeof(cc));
	cc.port = v.apps_port;
	cc.host = "fetch.localhost";
	cc.path = "/";
	cc.want = WANT;
	cc.n = N;
	cc.timeout_ms = 90000;
	crowd = infl_crowd_start(&cc);
	cr_assert_not_null(crowd);
	deadline = tsup_now_ms() + 25000;
	while (infl_upstream_held(up) < N) {
		infl_crowd_stats(crowd, &cs);
		cr_assert(tsup_now_ms() < deadline,
		          "the upstream holds %u of %u (clients: %u connected, %u done: "
		          "503 %u, other %u, no answer %u)\n%s",
		          infl_upstream_held(up), N, cs.opened, cs.done, cs.busy, cs.other,
		          cs.no_answer, tsup_vivd_log_tail(&v, 3000));
		usleep(20000);
	}
	/* All N guests are suspended in the one worker: another app is served
	 * meanwhile. */
	infl_crowd_stats(crowd, &cs);
	cr_assert_eq(cs.done, 0);
	for (i = 0; i < 20; i++) {
		struct tsup_resp r;

		cr_assert(tsup_app_get(&v, "hello", "/", &r));
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.body, "Hello, world!\n");
		tsup_resp_free(&r);
	}

	infl_upstream_release(up);
	cr_assert(infl_crowd_wait(crowd, 60000), "not every client was answered");
	infl_crowd_stats(crowd, &cs);
	cr_assert_eq(cs.ok, N,
	             "%u of %u answered right: wrong body %u, 503 %u, other %u, no answer %u\n%s",
	             cs.ok, N, cs.wrong_body, cs.busy, cs.other, cs.no_answer,
	             tsup_vivd_log_tail(&v, 3000));
	cr_assert_eq(infl_upstream_answered(up), N);
	infl_crowd_stop(crowd);
	tsup_vivd_stop(&v);
	infl_upstream_stop(up);
}
