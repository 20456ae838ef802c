/* End to end: guests written in WebAssembly text to fail in every way a
 * guest can (out-of-bounds accesses at every edge, around 4 GiB, with the
 * offset wrapping past it and after growing to the maximum; bad indirect
 * calls; deep and wide stack overflows; loops with and without calls;
 * growth past the memory limit; a trap inside a host call), each deployed
 * as an upload through the real vivd. Each request ends with 500 within
 * the limit plus 10 ms, the workers keep serving (the same processes), and
 * 10,000 traps in a row leave their memory flat. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "figure.h"
#include "rawnet.h"
#include "support.h"

/* The limits every trap guest gets from its manifest. */
#define CPU_MS 100
#define WALL_MS 1000
#define MEMORY_MB 2
/* What "within the limit plus 10 ms" allows an immediate trap: the time
 * of a request that does not trap, measured, plus 10 ms. */
#define SLACK_MS 10.0

struct guest {
	const char *app;
	const char *body; /* the module's fields after (memory ...) */
	const char *memory;
	bool loops; /* ends only at the CPU limit */
};

#define RUN(code) "(func (export \"run\") " code ")"

static const struct guest guests[] = {
        /* Out of bounds, at the end of one page and around 4 GiB. */
        {"oob-end", RUN("(drop (i32.load (i32.const 65533)))"), "(memory 1)", false},
        {"oob-end8", RUN("(drop (i64.load (i32.const 65529)))"), "(memory 1)", false},
        {"oob-store-end", RUN("(i32.store16 (i32.const 65535) (i32.const 7))"), "(memory 1)",
         false},
        {"oob-4g", RUN("(drop (i32.load8_u (i32.const -1)))"), "(memory 1)", false},
        {"oob-4g-4", RUN("(drop (i32.load (i32.const -4)))"), "(memory 1)", false},
        {"oob-offset", RUN("(drop (i32.load offset=4294967295 (i32.const 0)))"), "(memory 1)",
         false},
        /* Address and offset both at their largest: the sum is past 8 GiB
         * minus a few bytes, and the 8-byte access straddles the end of the
         * slot's reservation. */
        {"oob-wrap", RUN("(drop (i64.load offset=4294967295 (i32.const -1)))"), "(memory 1)",
         false},
        {"oob-wrap-store", RUN("(i64.store offset=4294967295 (i32.const -1) (i64.const -1))"),
         "(memory 1)", false},
        {"oob-offset-1", RUN("(drop (i32.load offset=65536 (i32.const 0)))"), "(memory 1)", false},
        {"oob-fill", RUN("(memory.fill (i32.const 65000) (i32.const 1) (i32.const 1000))"),
         "(memory 1)", false},
        {"oob-copy", RUN("(memory.copy (i32.const 0) (i32.const -16) (i32.const 32))"),
         "(memory 1)", false},
        /* Grown to its maximum: the last byte is there, the next is not. */
        {"oob-after-max",
         RUN("(drop (memory.grow (i32.const 3)))"
             "(i32.store8 (i32.const 262143) (i32.const 1))"
             "(drop (i32.load8_u (i32.const 262144)))"),
         "(memory 1 4)", false},
        /* Indirect calls: past the table, a null entry, the wrong type. */
        {"indirect-past", RUN("(call_indirect (type $v) (i32.const 9))"),
         "(memory 1) (type $v (func)) (table 2 funcref) (elem (i32.const 0) $nop)"
         " (func $nop)",
         false},
        {"indirect-null", RUN("(call_indirect (type $v) (i32.const 1))"),
         "(memory 1) (type $v (func)) (table 2 funcref) (elem (i32.const 0) $nop)"
         " (func $nop)",
         false},
        {"indirect-type", RUN("(drop (call_indirect (type $i) (i32.const 0)))"),
         "(memory 1) (type $v (func)) (type $i (func (result i32))) (table 2 funcref)"
         " (elem (i32.const 0) $nop) (func $nop)",
         false},
        {"indirect-huge", RUN("(call_indirect (type $v) (i32.const -1))"),
         "(memory 1) (type $v (func)) (table 2 funcref) (elem (i32.const 0) $nop)"
         " (func $nop)",
         false},
        /* Stack overflows: deep (small frames) and wide (large frames). */
        {"stack-deep", RUN("(call $f (i32.const 0))"),
         "(memory 1) (func $f (param i32) (call $f (i32.add (local.get 0) (i32.const 1))))", false},
        {"stack-wide", RUN("(drop (call $w (i64.const 1)))"),
         "(memory 1) (func $w (param i64) (result i64)"
         " (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64"
         "  i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)"
         " (local.set 1 (call $w (i64.add (local.get 0) (i64.const 1))))"
         " (local.set 2 (i64.mul (local.get 1) (local.get 0)))"
         " (local.set 3 (i64.mul (local.get 2) (local.get 1)))"
         " (local.set 4 (i64.mul (local.get 3) (local.get 2)))"
         " (i64.add (local.get 4) (local.get 3)))",
         false},
        {"stack-mutual", RUN("(call $a)"), "(memory 1) (func $a (call $b)) (func $b (call $a))",
         false},
        /* Loops that never end. */
        {"loop", RUN("(loop $l (br $l))"), "(memory 1)", true},
        {"loop-calls", RUN("(loop $l (call $f) (br $l))"), "(memory 1) (func $f)", true},
        {"loop-memory",
         RUN("(loop $l (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))"
             " (br $l))"),
         "(memory 1)", true},
        /* Growth past the memory limit fails (-1); the guest then traps only
         * if the limit held, and answers 200 if it did not. */
        {"grow-past-limit",
         RUN("(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))"
             "(if (i32.le_u (memory.size) (i32.const 32)) (then unreachable))"),
         "(memory 1)", false},
        {"grow-huge",
         RUN("(if (i32.eq (memory.grow (i32.const 65535)) (i32.const -1)) (then unreachable))"),
         "(memory 1)", false},
        /* Traps inside host calls: the host calls the guest's allocator,
         * which traps, loops or overflows the stack. */
        {"hostcall-trap",
         RUN("(call $init (i32.const 0) (i32.const 1))"
             "(call $method (i32.const 16) (i32.const 20) (i32.const 0))"),
         "(import \"env\" \"hostcall_init_mm\" (func $init (param i32 i32)))"
         " (import \"env\" \"hostcall_req_get_method\" (func $method (param i32 i32 i32)))"
         " (memory 1) (table 2 funcref) (elem (i32.const 0) $malloc $free)"
         " (func $malloc (param i32) (result i32) unreachable) (func $free (param i32))",
         false},
        {"hostcall-loop",
         RUN("(call $init (i32.const 0) (i32.const 1))"
             "(call $method (i32.const 16) (i32.const 20) (i32.const 0))"),
         "(import \"env\" \"hostcall_init_mm\" (func $init (param i32 i32)))"
         " (import \"env\" \"hostcall_req_get_method\" (func $method (param i32 i32 i32)))"
         " (memory 1) (table 2 funcref) (elem (i32.const 0) $malloc $free)"
         " (func $malloc (param i32) (result i32) (loop $l (br $l)) (i32.const 0))"
         " (func $free (param i32))",
         true},
        {"hostcall-stack",
         RUN("(call $init (i32.const 0) (i32.const 1))"
             "(call $method (i32.const 16) (i32.const 20) (i32.const 0))"),
         "(import \"env\" \"hostcall_init_mm\" (func $init (param i32 i32)))"
         " (import \"env\" \"hostcall_req_get_method\" (func $method (param i32 i32 i32)))"
         " (memory 1) (table 2 funcref) (elem (i32.const 0) $malloc $free)"
         " (func $malloc (param i32) (result i32) (call $malloc (local.get 0)))"
         " (func $free (param i32))",
         false},
        {"hostcall-oob",
         RUN("(call $init (i32.const 0) (i32.const 1))"
             "(call $method (i32.const 16) (i32.const 20) (i32.const 0))"
             "(if (i32.eqz (i32.load (i32.const 16))) (then unreachable))"),
         "(import \"env\" \"hostcall_init_mm\" (func $init (param i32 i32)))"
         " (import \"env\" \"hostcall_req_get_method\" (func $method (param i32 i32 i32)))"
         " (memory 1) (table 2 funcref) (elem (i32.const 0) $malloc $free)"
         " (func $malloc (param i32) (result i32) (i32.const 65534))"
         " (func $free (param i32))",
         false},
        {"unreachable", RUN("unreachable"), "(memory 1)", false},
        {"div-zero", RUN("(drop (i32.div_u (i32.const 1) (i32.const 0)))"), "(memory 1)", false},
        {"int-overflow", RUN("(drop (i32.div_s (i32.const -2147483648) (i32.const -1)))"),
         "(memory 1)", false},
        {"trunc-nan", RUN("(drop (i32.trunc_f32_s (f32.const nan)))"), "(memory 1)", false},
};

#define N_GUESTS (sizeof(guests) / sizeof(guests[0]))

static struct tsup_vivd vivd;
static double normal_ms; /* a request that does not trap, at its slowest of 20 */

static const char ok_wat[] = "(module (memory 1) (func (export \"run\")))";

static char *module_of(const struct guest *g)
{
	char *wat = NULL;

	cr_assert(asprintf(&wat, "(module %s %s)", g->memory, g->body) > 0);
	return wat;
}

static void setup(void)
{
	static const char manifest[] = "{\"language\": \"wat\", \"limits\": {\"cpu_ms\": 100, "
	                               "\"wall_ms\": 1000, \"memory_mb\": 2}}\n";
	long ids[N_GUESTS + 1];

	tsup_vivd_start(&vivd, NULL);
	cr_assert_eq(tsup_deploy(&vivd, "fine", ok_wat, strlen(ok_wat), &ids[N_GUESTS], NULL), 202);
	for (size_t i = 0; i < N_GUESTS; i++) {
		char *wat = module_of(&guests[i]), *tgz;
		size_t len;
		const struct tsup_file files[] = {{"app.wat", wat}, {"vivarium.json", manifest}};

		tsup_tar(files, 2, true, &tgz, &len);
		cr_assert_eq(tsup_deploy(&vivd, guests[i].app, tgz, len, &ids[i], NULL), 202);
		free(tgz);
		free(wat);
	}
	for (size_t i = 0; i <= N_GUESTS; i++) {
		json_t *d = tsup_wait_deployment(&vivd, ids[i], 120000);
		const char *status = json_string_value(json_object_get(d, "status"));

		cr_assert_str_eq(status ? status : "", "ready", "%s: %s\n%s",
		                 i < N_GUESTS ? guests[i].app : "fine",
		                 json_string_value(json_object_get(d, "error")),
		                 json_string_value(json_object_get(d, "log")));
		json_decref(d);
	}
}

static void teardown(void)
{
	tsup_vivd_stop(&vivd);
}

/* One GET to app on a handle kept alive between requests; its status and
 * how long it took. */
static long get(CURL *c, const char *app, double *ms)
{
	char url[160];
	long status = 0;
	double t0;
	CURLcode rc;

	snprintf(url, sizeof(url), "http://%s.localhost:%u/", app, vivd.apps_port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	t0 = tsup_now_ms();
	rc = curl_easy_perform(c);
	*ms = tsup_now_ms() - t0;
	cr_assert_eq(rc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static CURL *handle(void)
{
	CURL *c = curl_easy_init();

	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	/* *.localhost resolves to loopback by itself in libcurl. */
	return c;
}

static size_t workers(pid_t *out)
{
	size_t n = tsup_children_named(vivd.pid, "worker", out, 8);

	cr_assert_gt(n, 0, "no worker processes");
	return n;
}

static long workers_rss_kib(void)
{
	pid_t pids[8];
	size_t n = workers(pids);
	long sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += rawnet_rss_kib((int)pids[i]);
	return sum;
}

/* The CPU time the workers have used, in ms (the kernel counts it in ticks
 * of 1/_SC_CLK_TCK s). */
static double workers_cpu_ms(void)
{
	pid_t pids[8];
	size_t n = workers(pids);
	double ms = 0;

	for (size_t i = 0; i < n; i++) {
		char path[64], *text, *p;
		unsigned long ut = 0, st = 0;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
		text = tsup_read_file(path, NULL);
		p = strrchr(text, ')');
		cr_assert(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		                      &ut, &st) == 2);
		ms += (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
		free(text);
	}
	return ms;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define TRIES 5

/* Each failure five times. An immediate trap's median time is held to a
 * plain request's median plus 10 ms; a loop's CPU time, what its limit
 * counts, to the limit plus 10 ms on average (the kernel reports CPU time
 * in ticks of 10 ms; the average of five evens them out), and its wall time
 * to the wall limit. The machine is shared, so wall times of loops only
 * say when the CPU was had. */
static void each_trap(void)
{
	CURL *c = handle();
	pid_t before[8], after[8];
	size_t nb = workers(before), na;
	double ms, plain[21], worst_trap = 0, worst_loop_cpu = 0, worst_loop_wall = 0;

	for (int i = 0; i < 21; i++) {
		cr_assert_eq(get(c, "fine", &ms), 200);
		plain[i] = ms;
	}
	qsort(plain, 21, sizeof(plain[0]), by_value);
	normal_ms = plain[10];
	for (size_t i = 0; i < N_GUESTS; i++) {
		const struct guest *g = &guests[i];
		double times[TRIES], cpu0 = workers_cpu_ms(), cpu;

		for (int k = 0; k < TRIES; k++) {
			long status = get(c, g->app, &times[k]);

			cr_assert_eq(status, 500, "%s answered %ld", g->app, status);
			if (!g->loops) /* between loops, the CPU count stays theirs */
				cr_assert_eq(get(c, "fine", &ms), 200,
				             "a worker stopped serving after %s", g->app);
		}
		cpu = (workers_cpu_ms() - cpu0) / TRIES;
		qsort(times, TRIES, sizeof(times[0]), by_value);
		cr_log_info("%s: 500 in %.1f ms (median; slowest %.1f), %.1f ms of CPU each",
		            g->app, times[TRIES / 2], times[TRIES - 1], cpu);
		if (g->loops) {
			cr_assert_leq(cpu, CPU_MS + SLACK_MS, "%s used %.1f ms of CPU", g->app,
			              cpu);
			cr_assert_leq(times[TRIES - 1], WALL_MS + SLACK_MS, "%s took %.1f ms",
			              g->app, times[TRIES - 1]);
			cr_assert_eq(get(c, "fine", &ms), 200, "a worker stopped serving after %s",
			             g->app);
			worst_loop_cpu = cpu > worst_loop_cpu ? cpu : worst_loop_cpu;
			worst_loop_wall = times[TRIES - 1] > worst_loop_wall ? times[TRIES - 1]
			                                                     : worst_loop_wall;
		} else {
			cr_assert_leq(times[TRIES / 2], normal_ms + SLACK_MS,
			              "%s took %.1f ms, a plain request %.1f", g->app,
			              times[TRIES / 2], normal_ms);
			worst_trap = times[TRIES / 2] > worst_trap ? times[TRIES / 2] : worst_trap;
		}
	}
	na = workers(after);
	cr_assert_eq(na, nb);
	for (size_t i = 0; i < na; i++)
		cr_assert_eq(after[i], before[i], "a worker was replaced: it died");
	FIGURE("guests: %zu kinds of failure, %d times each, every one a 500: traps in at most "
	       "%.1f ms (median; a plain request %.1f ms); loops stopped after at most %.1f ms "
	       "of CPU at a limit of %d ms (at most %.0f ms of wall time on a shared machine); "
	       "the same %zu workers served throughout",
	       N_GUESTS, TRIES, worst_trap, normal_ms, worst_loop_cpu, CPU_MS, worst_loop_wall, na);
	curl_easy_cleanup(c);
}

static void ten_thousand_traps(void)
{
	const char *env = getenv("VIV_PROOF_TRAPS");
	size_t total = env ? strtoul(env, NULL, 10) : 10000, warm = total / 10, done = 0;
	CURL *c = handle();
	pid_t before[8], after[8];
	size_t nb = workers(before), na;
	long rss_warm = 0, rss_end;
	double ms, t0 = tsup_now_ms();

	for (size_t i = 0; i < total; i++) {
		const struct guest *g;

		/* Every trap that does not wait for a limit, in turn. */
		do
			g = &guests[done++ % N_GUESTS];
		while (g->loops);
		cr_assert_eq(get(c, g->app, &ms), 500, "%s, trap %zu", g->app, i);
		if (i + 1 == warm)
			rss_warm = workers_rss_kib();
	}
	rss_end = workers_rss_kib();
	cr_assert_eq(get(c, "fine", &ms), 200);
	na = workers(after);
	cr_assert_eq(na, nb);
	for (size_t i = 0; i < na; i++)
		cr_assert_eq(after[i], before[i], "a worker was replaced: it died");
	FIGURE("guests: %zu traps in a row in %.1f s; the workers' resident memory %ld KiB after "
	       "%zu, %ld KiB after %zu (%+ld KiB); no worker restarted",
	       total, (tsup_now_ms() - t0) / 1000, rss_warm, warm, rss_end, total,
	       rss_end - rss_warm);
	cr_assert_lt(rss_end - rss_warm, 4096, "the workers grew by %ld KiB", rss_end - rss_warm);
	curl_easy_cleanup(c);
}

/* One test, so that the guests are built once. */
Test(traps, every_failure_is_a_timely_500_and_ten_thousand_leave_memory_flat, .init = setup,
     .fini = teardown, .timeout = 400)
{
	each_trap();
	ten_thousand_traps();
}

/* A host call that reaches the host and faults there (an operator's
 * switch, VIV_TEST_HOST_FAULT, names the app whose host calls do). */
static const char host_call_wat[] =
        "(module (import \"env\" \"hostcall_req_get_header\"\n"
        "          (func $get (param i32 i32 i32 i32 i32)))\n"
        "  (memory 1) (data (i32.const 64) \"user-agent\")\n"
        "  (func (export \"run\")\n"
        "    (call $get (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 64)"
        " (i32.const 10))))";

static void fault_setup(void)
{
	cr_assert_eq(setenv("VIV_TEST_HOST_FAULT", "faulty", 1), 0);
	tsup_vivd_start(&vivd, NULL);
	cr_assert_eq(unsetenv("VIV_TEST_HOST_FAULT"), 0);
}

/* A fault in host code is the host's bug, not the guest's: the worker ends
 * at once (it may have corrupted anything it owns), the request gets no
 * answer rather than a guest's 500, the supervisor logs why and starts
 * another worker, and the other apps are served throughout. */
Test(host_fault, aborts_the_worker_which_is_restarted_and_logged, .init = fault_setup,
     .fini = teardown, .timeout = 120)
{
	pid_t before[8], after[8];
	struct tsup_resp r;
	size_t nb, na = 0;
	char *log;
	double deadline;
	bool replaced = false;
	json_t *d;

	d = tsup_deploy_wait(&vivd, "fine", ok_wat, strlen(ok_wat));
	json_decref(d);
	d = tsup_deploy_wait(&vivd, "faulty", host_call_wat, strlen(host_call_wat));
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready");
	json_decref(d);
	nb = workers(before);

	cr_assert_not(tsup_app_get(&vivd, "faulty", "/", &r),
	              "the faulting request was answered with %ld, as a guest's trap would be",
	              r.status);
	deadline = tsup_now_ms() + 10000;
	while (!replaced && tsup_now_ms() < deadline) {
		usleep(50000);
		na = tsup_children_named(vivd.pid, "worker", after, 8);
		for (size_t i = 0; i < na && na == nb; i++) {
			bool old = false;

			for (size_t j = 0; j < nb; j++)
				old = old || after[i] == before[j];
			replaced = replaced || !old;
		}
	}
	log = tsup_vivd_log_tail(&vivd, 16384);
	cr_assert(replaced, "no worker was started in place of the one that faulted:\n%s", log);
	cr_assert_not_null(strstr(log, "fatal SIGSEGV outside guest memory"), "%s", log);
	cr_assert_not_null(strstr(log, "restarting it"), "%s", log);
	for (int i = 0; i < 20; i++) {
		cr_assert(tsup_app_get(&vivd, "fine", "/", &r), "%s", log);
		cr_assert_eq(r.status, 200);
		tsup_resp_free(&r);
	}
	FIGURE("host fault: the request got no answer (not a 500), a new worker served within "
	       "10 s, the log names the fault and the restart");
	free(log);
}
