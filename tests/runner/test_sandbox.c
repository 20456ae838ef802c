/* The sandbox with real artifacts: responses, every kind of trap, limits,
 * suspension, slot reuse and the fault-origin check. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifact.h"
#include "helpers.h"
#include "viv_imports.h"

static struct run_pool *pool;

static void setup(void)
{
	struct run_pool_config pc;

	cr_assert_eq(run_thread_init(), VIV_OK);
	run_pool_config_defaults(&pc);
	pc.slots = 2;
	pc.response_max = 4096;
	cr_assert_eq(run_pool_create(&pc, &pool), VIV_OK);
}

static void teardown(void)
{
	run_pool_destroy(pool);
}

TestSuite(sandbox, .init = setup, .fini = teardown, .timeout = 120);

static const struct run_app default_app = {
        .name = "test",
        .limits = {16, 200, 5000},
};

static struct run_request make_req(const char *method, const char *target, const char *body)
{
	struct run_request r = trun_req(method, target, body);

	r.client_addr = "192.0.2.7";
	return r;
}

static struct run_module *load(const char *name, const char *src)
{
	return trun_load(name, src);
}

static struct run_instance *run(struct run_module *m, const struct run_app *app,
                                const struct run_request *req)
{
	return trun_run(pool, m, app, req);
}

/* A CGI program in WebAssembly text: `prelude` runs first, then the bytes
 * at offset 64 are written to stdout. */
static char *wat_cgi_then(const char *out_text, size_t out_len, const char *prelude,
                          const char *epilogue)
{
	char *wat;

	cr_assert(asprintf(&wat,
	                   "(module\n"
	                   " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                   "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
	                   " (import \"wasi_snapshot_preview1\" \"fd_read\""
	                   "  (func $r (param i32 i32 i32 i32) (result i32)))\n"
	                   " (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param "
	                   "i32)))\n"
	                   " (import \"wasi_snapshot_preview1\" \"poll_oneoff\""
	                   "  (func $poll (param i32 i32 i32 i32) (result i32)))\n"
	                   " (memory 1)\n"
	                   " (data (i32.const 64) \"%s\")\n"
	                   " (func (export \"_start\") (local $n i32)\n"
	                   "  %s\n"
	                   "  (i32.store (i32.const 0) (i32.const 64))\n"
	                   "  (i32.store (i32.const 4) (i32.const %zu))\n"
	                   "  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1)"
	                   " (i32.const 16)))\n"
	                   "  %s))\n",
	                   out_text, prelude ? prelude : "", out_len,
	                   epilogue ? epilogue : "") > 0);
	return wat;
}

static char *wat_cgi(const char *out_text, size_t out_len, const char *prelude)
{
	return wat_cgi_then(out_text, out_len, prelude, NULL);
}

#define HELLO "Content-Type: text/plain\\0aX-Test: yes\\0a\\0ahello\\0a"
#define HELLO_LEN 44

Test(sandbox, cgi_response_headers_and_body)
{
	char *wat = wat_cgi(HELLO, HELLO_LEN, NULL), *body;
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &default_app, &req);
	const struct run_response *r = run_instance_response(in);

	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	cr_assert_eq(r->status, 200);
	cr_assert_eq(r->n_headers, 2);
	cr_assert_eq(strncmp(r->headers[1].name, "X-Test", r->headers[1].name_len), 0);
	cr_assert_eq(strncmp(r->headers[1].value, "yes", 3), 0);
	body = trun_body(in);
	cr_assert_str_eq(body, "hello\n");
	free(body);
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

static void expect_trap(const char *wat, enum run_outcome outcome, unsigned status,
                        const char *needle)
{
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &default_app, &req);

	cr_assert_eq(run_instance_outcome(in), outcome, "outcome %s",
	             run_outcome_name(run_instance_outcome(in)));
	cr_assert_eq(run_instance_response(in)->status, status);
	cr_assert(trun_logged(in, needle), "no log line with '%s'", needle);
	run_instance_end(in);
	/* The pool is still good: a healthy guest runs in the same slot. */
	char *ok = wat_cgi(HELLO, HELLO_LEN, NULL);
	struct run_module *good = load("ok.wat", ok);
	in = run(good, &default_app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	run_instance_end(in);
	run_module_release(good);
	run_module_release(m);
	free(ok);
}

Test(sandbox, unreachable_traps)
{
	expect_trap("(module (func (export \"_start\") unreachable))", RUN_TRAPPED, 500,
	            "unreachable");
}

Test(sandbox, out_of_bounds_load_traps)
{
	expect_trap("(module (memory 1) (func (export \"_start\")"
	            " (drop (i32.load offset=0x10000 (i32.const 0xfffffff0)))))",
	            RUN_TRAPPED, 500, "out of bounds");
}

Test(sandbox, store_just_past_memory_traps)
{
	expect_trap("(module (memory 1) (func (export \"_start\")"
	            " (i32.store (i32.const 65534) (i32.const 1))))",
	            RUN_TRAPPED, 500, "out of bounds");
}

Test(sandbox, division_by_zero_traps)
{
	expect_trap("(module (func (export \"_start\") (local i32)"
	            " (drop (i32.div_u (i32.const 1) (local.get 0)))))",
	            RUN_TRAPPED, 500, "divide by zero");
}

Test(sandbox, bad_indirect_call_traps)
{
	/* The index comes from memory, so the optimizer cannot see it. */
	expect_trap(
	        "(module (type $t (func)) (table 1 funcref) (memory 1)"
	        " (func (export \"_start\") (call_indirect (type $t) (i32.load (i32.const 0)))))",
	        RUN_TRAPPED, 500, "indirect call");
}

Test(sandbox, deep_recursion_traps_as_stack_exhaustion)
{
	expect_trap("(module (func $f (param i64) (call $f (i64.add (local.get 0) (i64.const 1))))"
	            " (func (export \"_start\") (call $f (i64.const 0))))",
	            RUN_TRAPPED, 500, "call stack exhausted");
}

Test(sandbox, endless_loop_stops_at_the_cpu_limit)
{
	struct run_app app = default_app;
	struct run_module *m =
	        load("app.wat", "(module (func (export \"_start\") (loop $l (br $l))))");
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;
	uint64_t t0 = viv_mono_ns(), ms;

	app.limits.cpu_ms = 50;
	in = run(m, &app, &req);
	ms = (viv_mono_ns() - t0) / 1000000u;
	cr_assert_eq(run_instance_outcome(in), RUN_CPU_EXCEEDED);
	cr_assert_eq(run_instance_response(in)->status, 500);
	cr_assert(trun_logged(in, "CPU time limit of 50 ms"));
	cr_assert(ms >= 45, "stopped after %llu ms", (unsigned long long)ms);
	run_instance_end(in);
	run_module_release(m);
}

/* The calling thread's CPU time, which is what limits.cpu_ms measures. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	cr_assert_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* An endless loop with a CPU limit of limit_ms is stopped with the CPU
 * error after it used the limit, give or take 10 %. */
static void expect_cpu_stop_near(unsigned limit_ms)
{
	struct run_app app = default_app;
	struct run_module *m =
	        load("app.wat", "(module (func (export \"_start\") (loop $l (br $l))))");
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;
	uint64_t t0, used_ms;
	char want[64];

	app.limits.cpu_ms = limit_ms;
	app.limits.wall_ms = 30000;
	t0 = thread_cpu_ns();
	in = run(m, &app, &req);
	used_ms = (thread_cpu_ns() - t0) / 1000000u;
	cr_assert_eq(run_instance_outcome(in), RUN_CPU_EXCEEDED, "%s",
	             run_outcome_name(run_instance_outcome(in)));
	snprintf(want, sizeof(want), "CPU time limit of %u ms", limit_ms);
	cr_assert(trun_logged(in, want));
	cr_log_info("cpu_ms %u: stopped after %llu ms of CPU time", limit_ms,
	            (unsigned long long)used_ms);
	cr_assert(used_ms * 10 >= limit_ms * 9 && used_ms * 10 <= limit_ms * 11,
	          "a limit of %u ms stopped the guest after %llu ms of CPU time", limit_ms,
	          (unsigned long long)used_ms);
	run_instance_end(in);
	run_module_release(m);
}

Test(sandbox, the_cpu_limit_holds_within_ten_percent_at_200_ms)
{
	expect_cpu_stop_near(200);
}

Test(sandbox, the_cpu_limit_holds_within_ten_percent_at_500_ms)
{
	expect_cpu_stop_near(500);
}

Test(sandbox, memory_grows_only_to_the_limit)
{
	/* Grows by 1 page at a time and writes each new page; prints how many
	 * pages it got before memory.grow said no. */
	static const char *wat =
	        "(module\n"
	        " (import \"wasi_snapshot_preview1\" \"fd_write\""
	        "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
	        " (memory 1)\n"
	        " (data (i32.const 64) \"Content-Type: text/plain\\0a\\0a\")\n"
	        " (func (export \"_start\") (local $p i32)\n"
	        "  (block $done (loop $l\n"
	        "   (local.set $p (memory.grow (i32.const 1)))\n"
	        "   (br_if $done (i32.eq (local.get $p) (i32.const -1)))\n"
	        "   (i32.store (i32.mul (local.get $p) (i32.const 65536)) (i32.const 7))\n"
	        "   (br $l)))\n"
	        "  (i32.store8 (i32.const 90) (i32.add (i32.const 48) (i32.div_u (memory.size)"
	        "   (i32.const 10))))\n"
	        "  (i32.store8 (i32.const 91) (i32.add (i32.const 48) (i32.rem_u (memory.size)"
	        "   (i32.const 10))))\n"
	        "  (i32.store (i32.const 0) (i32.const 64))\n"
	        "  (i32.store (i32.const 4) (i32.const 28))\n"
	        "  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))\n";
	struct run_app app = default_app;
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;
	char *body;

	app.limits.memory_mb = 2; /* 32 pages */
	in = run(m, &app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	body = trun_body(in);
	cr_assert_str_eq(body, "32");
	free(body);
	run_instance_end(in);
	run_module_release(m);
}

Test(sandbox, initial_memory_over_the_limit_is_refused)
{
	struct run_app app = default_app;
	struct run_module *m = load("app.wat", "(module (memory (export \"memory\") 100)"
	                                       " (func (export \"_start\")))");
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;

	app.limits.memory_mb = 1;
	in = run(m, &app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_HOST_ERROR);
	cr_assert(trun_logged(in, "limits.memory_mb"));
	run_instance_end(in);
	run_module_release(m);
}

Test(sandbox, every_request_sees_fresh_memory)
{
	/* Prints the byte at 200 as a digit, then sets it to 9. */
	char *wat = wat_cgi("Content-Type: text/plain\\0a\\0a?", 27,
	                    "(i32.store8 (i32.const 90) (i32.add (i32.const 48)"
	                    " (i32.load8_u (i32.const 200))))"
	                    "(i32.store8 (i32.const 200) (i32.const 9))");
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	int i;

	for (i = 0; i < 5; i++) {
		struct run_instance *in = run(m, &default_app, &req);
		char *body = trun_body(in);

		cr_assert_str_eq(body, "0", "request %d saw %s", i, body);
		free(body);
		run_instance_end(in);
	}
	run_module_release(m);
	free(wat);
}

/* Reports whether any byte of its memory from 64 on is not zero (the body
 * "0" or "1"), then dirties pages by the request body's digit k: every third
 * page from page k, with the host's help too (stdin lands at 150000), and a
 * page it grows when k is 2. A later request that sees any of it prints 1. */
static const char *dirty_wat =
        "(module\n"
        " (import \"wasi_snapshot_preview1\" \"fd_write\""
        "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
        " (import \"wasi_snapshot_preview1\" \"fd_read\""
        "  (func $r (param i32 i32 i32 i32) (result i32)))\n"
        " (memory 4)\n"
        " (data (i32.const 0) \"Content-Type: text/plain\\0a\\0a?\")\n"
        " (func (export \"_start\") (local $p i32) (local $acc i64) (local $k i32)\n"
        "  (local.set $p (i32.const 64))\n"
        "  (block $d (loop $l\n"
        "   (br_if $d (i32.ge_u (local.get $p) (i32.mul (memory.size) (i32.const 65536))))\n"
        "   (local.set $acc (i64.or (local.get $acc) (i64.load (local.get $p))))\n"
        "   (local.set $p (i32.add (local.get $p) (i32.const 8)))\n"
        "   (br $l)))\n"
        "  (i32.store8 (i32.const 26) (i32.add (i32.const 48)"
        "   (i64.ne (local.get $acc) (i64.const 0))))\n"
        "  (i32.store (i32.const 32) (i32.const 48))\n"
        "  (i32.store (i32.const 36) (i32.const 1))\n"
        "  (drop (call $r (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 40)))\n"
        "  (local.set $k (i32.sub (i32.load8_u (i32.const 48)) (i32.const 48)))\n"
        "  (i32.store (i32.const 32) (i32.const 150000))\n"
        "  (i32.store (i32.const 36) (i32.const 16))\n"
        "  (drop (call $r (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 40)))\n"
        "  (local.set $p (i32.add (i32.const 72) (i32.mul (local.get $k) (i32.const 4096))))\n"
        "  (block $d2 (loop $l2\n"
        "   (br_if $d2 (i32.ge_u (local.get $p) (i32.const 262144)))\n"
        "   (i64.store (local.get $p) (i64.const -1))\n"
        "   (local.set $p (i32.add (local.get $p) (i32.const 12288)))\n"
        "   (br $l2)))\n"
        "  (if (i32.eq (local.get $k) (i32.const 2)) (then\n"
        "   (drop (memory.grow (i32.const 1)))\n"
        "   (i64.store (i32.const 300000) (i64.const -1))))\n"
        "  (i32.store (i32.const 32) (i32.const 0))\n"
        "  (i32.store (i32.const 36) (i32.const 27))\n"
        "  (drop (call $w (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))\n";

/* Runs dirty_wat on a pool of one slot cleaned as cfg says: every request
 * must find the memory the ones before it dirtied zeroed again. */
static void expect_clean_slots(const struct run_pool_config *cfg)
{
	struct run_module *m = load("app.wat", dirty_wat);
	struct run_pool *p = NULL;
	static const char *const bodies[] = {"0", "1", "2", "0", "2", "1", "1", "0"};
	size_t i;

	cr_assert_eq(run_pool_create(cfg, &p), VIV_OK);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct run_request req = make_req("POST", "/", bodies[i]);
		struct run_instance *in = trun_run(p, m, &default_app, &req);
		char *body = trun_body(in);

		cr_assert_eq(run_instance_outcome(in), RUN_DONE);
		cr_assert_str_eq(body, "0", "request %zu saw what the one before it left", i);
		free(body);
		run_instance_end(in);
	}
	run_pool_destroy(p);
	run_module_release(m);
}

Test(sandbox, nothing_a_request_wrote_is_left_for_the_next)
{
	struct run_pool_config cfg;

	run_pool_config_defaults(&cfg);
	cfg.slots = 1;
	/* Only the pages the kernel mapped are zeroed: the default. */
	expect_clean_slots(&cfg);
	/* Every page zeroed. */
	cfg.clean_whole = true;
	expect_clean_slots(&cfg);
	/* The memory handed back to the kernel. */
	cfg.clean_whole = false;
	cfg.clean_in_place_max = 0;
	expect_clean_slots(&cfg);
}

Test(sandbox, stdin_is_the_request_body)
{
	/* Reads up to 32 bytes of the body to offset 100 and echoes them. */
	static const char *wat =
	        "(module\n"
	        " (import \"wasi_snapshot_preview1\" \"fd_write\""
	        "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
	        " (import \"wasi_snapshot_preview1\" \"fd_read\""
	        "  (func $r (param i32 i32 i32 i32) (result i32)))\n"
	        " (memory 1)\n"
	        " (data (i32.const 64) \"Content-Type: text/plain\\0a\\0a\")\n"
	        " (func (export \"_start\")\n"
	        "  (i32.store (i32.const 0) (i32.const 100))\n"
	        "  (i32.store (i32.const 4) (i32.const 32))\n"
	        "  (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))\n"
	        "  (i32.store (i32.const 0) (i32.const 64))\n"
	        "  (i32.store (i32.const 4) (i32.const 26))\n"
	        "  (i32.store (i32.const 8) (i32.const 100))\n"
	        "  (i32.store (i32.const 12) (i32.load (i32.const 16)))\n"
	        "  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 20)))))\n";
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("POST", "/", "ping pong");
	struct run_instance *in = run(m, &default_app, &req);
	char *body = trun_body(in);

	cr_assert_str_eq(body, "ping pong");
	free(body);
	run_instance_end(in);
	run_module_release(m);
}

Test(sandbox, proc_exit_ends_the_request_normally)
{
	/* Write, then exit(3): the response stands, the status is logged. */
	char *wat = wat_cgi_then(HELLO, HELLO_LEN, NULL, "(call $exit (i32.const 3))");
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &default_app, &req);

	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	cr_assert_eq(run_instance_response(in)->status, 200);
	cr_assert(trun_logged(in, "exited with status 3"));
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

/* A subscription of poll_oneoff for a relative sleep of NS nanoseconds. */
#define SLEEP_PRELUDE(ns)                                                                          \
	"(i64.store (i32.const 256) (i64.const 1))"       /* userdata */                           \
	"(i32.store8 (i32.const 264) (i32.const 0))"      /* clock */                              \
	"(i32.store (i32.const 272) (i32.const 1))"       /* monotonic */                          \
	"(i64.store (i32.const 280) (i64.const " #ns "))" /* timeout */                            \
	"(i32.store16 (i32.const 296) (i32.const 0))"                                              \
	"(drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 400)))"

Test(sandbox, sleeping_suspends_and_resumes)
{
	char *wat = wat_cgi(HELLO, HELLO_LEN, SLEEP_PRELUDE(50000000));
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = NULL;
	uint64_t t0 = viv_mono_ns();

	cr_assert_eq(run_instance_start(pool, m, &default_app, &req, NULL, NULL, &in), VIV_OK);
	cr_assert_not(run_instance_done(in), "a sleeping guest must not block its worker");
	while (!run_instance_done(in)) {
		struct pollfd p = {run_pool_fd(pool), POLLIN, 0};
		poll(&p, 1, run_pool_poll(pool));
		run_pool_poll(pool);
	}
	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	cr_assert_geq((viv_mono_ns() - t0) / 1000000u, 50);
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

Test(sandbox, wall_limit_stops_a_sleeper)
{
	char *wat = wat_cgi(HELLO, HELLO_LEN, SLEEP_PRELUDE(5000000000));
	struct run_app app = default_app;
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;
	uint64_t t0 = viv_mono_ns(), ms;

	app.limits.wall_ms = 100;
	in = run(m, &app, &req);
	ms = (viv_mono_ns() - t0) / 1000000u;
	cr_assert_eq(run_instance_outcome(in), RUN_WALL_EXCEEDED);
	cr_assert_eq(run_instance_response(in)->status, 504);
	cr_assert(ms >= 100 && ms < 2000, "stopped after %llu ms", (unsigned long long)ms);
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

Test(sandbox, a_full_pool_says_busy_and_ending_a_sleeper_frees_its_slot)
{
	char *wat = wat_cgi(HELLO, HELLO_LEN, SLEEP_PRELUDE(5000000000));
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *a, *b, *c = NULL;

	cr_assert_eq(run_instance_start(pool, m, &default_app, &req, NULL, NULL, &a), VIV_OK);
	cr_assert_eq(run_instance_start(pool, m, &default_app, &req, NULL, NULL, &b), VIV_OK);
	cr_assert_eq(run_instance_start(pool, m, &default_app, &req, NULL, NULL, &c), VIV_ERR_BUSY);
	cr_assert_null(c);
	run_instance_end(a);
	cr_assert_eq(run_instance_start(pool, m, &default_app, &req, NULL, NULL, &c), VIV_OK);
	run_instance_end(b);
	run_instance_end(c);
	run_module_release(m);
	free(wat);
}

Test(sandbox, response_over_the_cap_is_refused)
{
	/* Writes the same 4000 bytes twice: a body past the pool's 4096-byte
	 * cap. */
	char *wat = wat_cgi_then(HELLO, 4000, NULL,
	                         "(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1)"
	                         " (i32.const 16)))");
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &default_app, &req);

	cr_assert_eq(run_instance_outcome(in), RUN_TOO_BIG);
	cr_assert_eq(run_instance_response(in)->status, 500);
	cr_assert(trun_logged(in, "larger than the limit"));
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

Test(sandbox, output_without_headers_is_a_500)
{
	char *wat = wat_cgi("just a body", 11, NULL);
	struct run_module *m = load("app.wat", wat);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &default_app, &req);

	cr_assert_eq(run_instance_outcome(in), RUN_BAD_OUTPUT);
	cr_assert_eq(run_instance_response(in)->status, 500);
	cr_assert(trun_logged(in, "bad CGI output"));
	run_instance_end(in);
	run_module_release(m);
	free(wat);
}

Test(sandbox, c_program_sees_cgi_variables)
{
	static const char *src =
	        "#include <stdio.h>\n#include <stdlib.h>\n"
	        "int main(int argc, char **argv)\n{\n"
	        "\tprintf(\"Content-Type: text/plain\\n\\n\");\n"
	        "\tprintf(\"%s %s %s %s %s %s %s\\n\", argv[0], getenv(\"REQUEST_METHOD\"),\n"
	        "\t       getenv(\"PATH_INFO\"), getenv(\"QUERY_STRING\"),\n"
	        "\t       getenv(\"HTTP_X_REAL_IP\") ? getenv(\"HTTP_X_REAL_IP\") : \"-\",\n"
	        "\t       getenv(\"REMOTE_ADDR\"), getenv(\"GREETING\"));\n"
	        "\treturn 0;\n}\n";
	const char *env[] = {"GREETING=hi there"};
	struct run_app app = default_app;
	struct run_module *m = load("main.c", src);
	struct run_request req = make_req("PUT", "/a%20b/c?x=1&y=2", NULL);
	struct run_header hs[] = {{"X-Real-IP", 9, "192.0.2.7", 9}};
	struct run_instance *in;
	char *body;

	app.env = env;
	app.n_env = 1;
	req.headers = hs;
	req.n_headers = 1;
	in = run(m, &app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	body = trun_body(in);
	cr_assert_str_eq(body, "test PUT /a b/c x=1&y=2 192.0.2.7 192.0.2.7 hi there\n");
	free(body);
	run_instance_end(in);
	run_module_release(m);
}

Test(sandbox, wrong_hash_is_refused_at_load)
{
	char *so = tsup_artifact("app.wat", "(module (func (export \"_start\")))"), err[512];
	struct run_module *m = NULL;

	cr_assert_eq(run_module_load(so,
	                             "00000000000000000000000000000000000000000000000000000000"
	                             "00000000",
	                             &m, err, sizeof(err)),
	             VIV_ERR_INVALID);
	cr_assert_null(m);
	cr_assert_not_null(strstr(err, "does not hold artifact"), "%s", err);
	cr_assert_neq(run_module_load("/etc/hostname", NULL, &m, err, sizeof(err)), VIV_OK);
	free(so);
}

/* A fault in host code is a bug: it must kill the process, not be taken
 * for the guest's. */
Test(sandbox, host_fault_while_a_guest_runs_is_fatal, .signal = SIGSEGV)
{
	char *wat = wat_cgi(HELLO, HELLO_LEN, NULL);
	struct run_module *m = load("app.wat", wat);
	static struct run_instance fake;
	volatile int *p;

	memset(&fake, 0, sizeof(fake));
	fake.m = m;
	fake.slot = &pool->slots[0];
	fake.state = RUN_STATE_RUNNING;
	run_current = &fake;
	/* An address inside a guest slot, touched by host code. */
	p = (volatile int *)(pool->slots[0].mem + 0x100000);
	*p = 1;
}

Test(sandbox, every_provided_import_is_implemented)
{
	char sym[256];

	for (const struct viv_import *imp = viv_imports; imp->module; imp++) {
		cr_assert(viv_import_symbol(imp->module, imp->name, sym, sizeof(sym)));
		cr_assert_not_null(dlsym(RTLD_DEFAULT, sym), "%s.%s (%s) is not exported",
		                   imp->module, imp->name, sym);
	}
}

/* About a second of work on this machine: an LCG mixed with memory it
 * scribbles on, which no optimizer can fold, looped 400 million times; then
 * a CGI answer. */
static const char wat_busy[] =
        "(module\n"
        " (import \"wasi_snapshot_preview1\" \"fd_write\""
        "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
        " (memory 1)\n"
        " (data (i32.const 64) \"Content-Type: text/plain\\0a\\0adone\")\n"
        " (func (export \"_start\") (local $i i32) (local $x i32)\n"
        "  (local.set $i (i32.const 400000000))\n"
        "  (local.set $x (i32.load (i32.const 8)))\n"
        "  (loop $l\n"
        "   (local.set $x (i32.add (i32.add (i32.mul (local.get $x) (i32.const 1103515245))"
        " (i32.const 12345)) (i32.load (i32.and (local.get $x) (i32.const 0xffc)))))\n"
        "   (i32.store (i32.and (local.get $x) (i32.const 0xffc)) (local.get $x))\n"
        "   (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))\n"
        "  (i32.store (i32.const 8) (local.get $x))\n"
        "  (i32.store (i32.const 0) (i32.const 64))\n"
        "  (i32.store (i32.const 4) (i32.const 30))\n"
        "  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))\n";

Test(sandbox, the_cpu_limit_can_be_switched_off_per_thread)
{
	struct run_app app = default_app;
	struct run_module *m = load("app.wat", wat_busy);
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in;

	app.limits.cpu_ms = 20;
	in = run(m, &app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_CPU_EXCEEDED, "%s",
	             run_outcome_name(run_instance_outcome(in)));
	run_instance_end(in);
	cr_assert_eq(run_thread_cpu_limit(false), VIV_OK);
	in = run(m, &app, &req);
	cr_assert_eq(run_instance_outcome(in), RUN_DONE, "%s",
	             run_outcome_name(run_instance_outcome(in)));
	run_instance_end(in);
	cr_assert_eq(run_thread_cpu_limit(true), VIV_OK);
	run_module_release(m);
}
