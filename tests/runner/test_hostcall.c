/* The Terrarium host-call ABI with real guests: a C guest written against
 * http_hostcalls.h as Terrarium's were, a Terrafirma-style module with
 * exported allocators, and one without an allocator; KV on a real store,
 * outbound requests to a local upstream, the allow list, suspension while
 * waiting, DNS, configuration, panics and hostile arguments. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "helpers.h"
#include "self_request.h"
#include "store.h"
#include "support.h"
#include "upstream.h"

static struct run_pool *pool;
static struct store *st;
static char datadir[64];
static struct tsup_upstream *up;
static char upstream_url[64];
static char allow_pattern[64];
static const char *outbound[1];
static const char *env[] = {"GREETING=hello from config", "EMPTY="};
static struct run_app app;

static void setup_pool(bool allow_private)
{
	struct run_pool_config pc;
	struct run_services sv = {0};
	char err[256];
	int64_t id = 0;

	cr_assert_eq(run_thread_init(), VIV_OK);
	run_pool_config_defaults(&pc);
	pc.slots = 4;
	pc.outbound_allow_private = allow_private;
	cr_assert_eq(run_pool_create(&pc, &pool), VIV_OK);
	strcpy(datadir, "/tmp/viv-hc-XXXXXX");
	cr_assert_not_null(mkdtemp(datadir));
	cr_assert_eq(store_open(datadir, &st, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(store_app_ensure(st, "guest", &id), VIV_OK);
	sv.store = st;
	run_pool_set_services(pool, &sv);
	up = tsup_upstream_start();
	snprintf(upstream_url, sizeof(upstream_url), "http://127.0.0.1:%u", tsup_upstream_port(up));
	snprintf(allow_pattern, sizeof(allow_pattern), "http://127.0.0.1:%u",
	         tsup_upstream_port(up));
	outbound[0] = allow_pattern;
	memset(&app, 0, sizeof(app));
	app.name = "guest";
	app.limits = (struct viv_limits){32, 500, 5000};
	app.env = env;
	app.n_env = 2;
	app.id = id;
	app.host = "guest.localhost";
	app.outbound = outbound;
	app.n_outbound = 1;
}

static void setup(void)
{
	setup_pool(true);
}

static void teardown(void)
{
	run_pool_destroy(pool);
	store_close(st);
	tsup_upstream_stop(up);
	viv_rmtree_or_log(datadir);
}

TestSuite(hostcall, .init = setup, .fini = teardown, .timeout = 120);

static char *guest_source(const char *file)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/guests/%s", TESTS_RUNNER_DIR, file);
	return tsup_read_file(path, NULL);
}

static struct run_module *load(const char *file)
{
	char *src = guest_source(file);
	struct run_module *m = trun_load(strstr(file, ".c") ? "main.c" : "app.wat", src);

	cr_assert_str_eq(run_module_mode(m), "hostcall");
	free(src);
	return m;
}

/* A request with two X-Test values and the client address header. */
static struct run_request make_req(const char *method, const char *target, const char *body)
{
	static struct run_header hs[] = {
	        {"X-Test", 6, "one", 3}, {"x-test", 6, "two", 3}, {"X-Real-IP", 9, "192.0.2.1", 9}};
	struct run_request r = trun_req(method, target, body);

	r.headers = hs;
	r.n_headers = 3;
	r.server_name = "guest.localhost";
	return r;
}

static struct run_instance *run(struct run_module *m, const struct run_request *req)
{
	return trun_run(pool, m, &app, req);
}

/* Runs target and checks the body holds every line of want. */
static void expect(struct run_module *m, const char *method, const char *target, const char *body,
                   unsigned status, const char *const *want)
{
	struct run_request req = make_req(method, target, body);
	struct run_instance *in = run(m, &req);
	char *got = trun_body(in);

	cr_assert_eq(run_instance_outcome(in), RUN_DONE, "%s: %s", target,
	             run_outcome_name(run_instance_outcome(in)));
	cr_assert_eq(run_instance_response(in)->status, status, "%s: status %u, body %s", target,
	             run_instance_response(in)->status, got);
	for (size_t i = 0; want[i]; i++)
		cr_assert_not_null(strstr(got, want[i]), "%s: '%s' not in:\n%s", target, want[i],
		                   got);
	free(got);
	run_instance_end(in);
}

Test(hostcall, request_and_response)
{
	struct run_module *m = load("terrarium.c");
	const char *want[] = {"POST /echo?a=1 5:hello\n", "x-test=one\nx-test=two\n",
	                      "has x-real-ip\n", NULL};
	struct run_request req = make_req("POST", "/echo?a=1", "hello");
	struct run_instance *in;
	const struct run_response *r;
	bool echo = false;

	expect(m, "POST", "/echo?a=1", "hello", 201, want);
	in = run(m, &req);
	r = run_instance_response(in);
	for (size_t i = 0; i < r->n_headers; i++)
		echo = echo || (strncmp(r->headers[i].name, "X-Echo", 6) == 0 &&
		                strncmp(r->headers[i].value, "1", 1) == 0);
	cr_assert(echo, "the X-Echo header is missing");
	run_instance_end(in);
	run_module_release(m);
}

/* As Terrarium's KVStore documents them: insert stores the value whatever
 * was there (a map's insert), upsert stores it only if the key is absent;
 * both, and append, say whether the key was new. */
Test(hostcall, kv_semantics_and_persistence)
{
	struct run_module *m = load("terrarium.c");
	const char *want[] = {
	        "insert 1\n",      "insert again 0\n", "append 0\n", "get bc\n",
	        "upsert 0\n",      "upsert new 1\n",   "remove 1\n", "remove again 0\n",
	        "get missing 0\n", "count 1\n",        NULL};
	const char *want2[] = {"count 2\n", NULL};
	char *v = NULL;
	size_t vl = 0;

	expect(m, "GET", "/kv", NULL, 200, want);
	expect(m, "GET", "/kv", NULL, 200, want2);
	/* It is in the store, under this app only. */
	cr_assert_eq(store_kv_get(st, app.id, "count", 5, &v, &vl), VIV_OK);
	cr_assert_str_eq(v, "2");
	free(v);
	cr_assert_eq(store_kv_get(st, app.id + 1000, "count", 5, &v, &vl), VIV_ERR_NOT_FOUND);
	run_module_release(m);
}

Test(hostcall, fetch_from_an_allowed_upstream)
{
	struct run_module *m = load("terrarium.c");
	char target[256];
	const char *want[] = {"200 upstream says hi yes\n", NULL};
	const char *want_redirect[] = {"200 upstream says hi yes\n", NULL};

	snprintf(target, sizeof(target), "/fetch?%s/hello", upstream_url);
	expect(m, "GET", target, NULL, 200, want);
	snprintf(target, sizeof(target), "/fetch?%s/redirect", upstream_url);
	expect(m, "GET", target, NULL, 200, want_redirect);
	run_module_release(m);
}

Test(hostcall, the_allow_list_is_enforced_also_on_redirects)
{
	struct run_module *m = load("terrarium.c");
	struct run_request req;
	struct run_instance *in;
	char target[256];
	char *body;
	unsigned hits;

	req = make_req("GET", "/fetch?http://127.0.0.2:9/hello", NULL);
	in = run(m, &req);
	body = trun_body(in);
	cr_assert_str_eq(body, "fetch failed\n");
	cr_assert(trun_logged(in, "not in the app's outbound list"));
	free(body);
	run_instance_end(in);

	hits = tsup_upstream_hits(up);
	snprintf(target, sizeof(target), "/fetch?%s/redirect?to=http://127.0.0.2:9/x",
	         upstream_url);
	req = make_req("GET", target, NULL);
	in = run(m, &req);
	body = trun_body(in);
	cr_assert_str_eq(body, "fetch failed\n");
	cr_assert(trun_logged(in, "redirected to http://127.0.0.2:9/x"));
	cr_assert_eq(tsup_upstream_hits(up), hits + 1);
	free(body);
	run_instance_end(in);
	run_module_release(m);
}

Test(hostcall, private_addresses_are_refused_by_default)
{
	struct run_module *m;
	struct run_request req;
	struct run_instance *in;
	char target[256];
	char *body;

	/* A pool without the operator's permission. */
	run_pool_destroy(pool);
	{
		struct run_pool_config pc;
		struct run_services sv = {0};
		run_pool_config_defaults(&pc);
		pc.slots = 2;
		cr_assert_eq(run_pool_create(&pc, &pool), VIV_OK);
		sv.store = st;
		run_pool_set_services(pool, &sv);
	}
	m = load("terrarium.c");
	snprintf(target, sizeof(target), "/fetch?%s/hello", upstream_url);
	req = make_req("GET", target, NULL);
	in = run(m, &req);
	body = trun_body(in);
	cr_assert_str_eq(body, "fetch failed\n");
	cr_assert(trun_logged(in, "a private or local address"));
	cr_assert_eq(tsup_upstream_hits(up), 0);
	free(body);
	run_instance_end(in);
	run_module_release(m);
}

Test(hostcall, async_requests_and_select)
{
	struct run_module *m = load("terrarium.c");
	char target[256];
	const char *want[] = {"poll -2\n", "first fast upstream says hi\n", "then slow\n", NULL};

	snprintf(target, sizeof(target), "/race?%s", upstream_url);
	expect(m, "GET", target, NULL, 200, want);
	run_module_release(m);
}

Test(hostcall, a_waiting_guest_does_not_hold_up_others)
{
	struct run_module *m = load("terrarium.c");
	char target[256];
	struct run_request slow_req, fast_req = make_req("GET", "/config", NULL);
	struct run_instance *slow = NULL, *fast;
	uint64_t t0;

	snprintf(target, sizeof(target), "/fetch?%s/slow?ms=1000", upstream_url);
	slow_req = make_req("GET", target, NULL);
	cr_assert_eq(run_instance_start(pool, m, &app, &slow_req, NULL, NULL, &slow), VIV_OK);
	cr_assert_not(run_instance_done(slow), "the waiting guest must be suspended");
	/* Another request on the same thread is served at once. */
	t0 = viv_mono_ns();
	fast = run(m, &fast_req);
	cr_assert_eq(run_instance_outcome(fast), RUN_DONE);
	cr_assert_lt((viv_mono_ns() - t0) / 1000000u, 500, "the other request waited");
	run_instance_end(fast);
	while (!run_instance_done(slow)) {
		struct pollfd p = {run_pool_fd(pool), POLLIN, 0};
		poll(&p, 1, 50);
		run_pool_poll(pool);
	}
	cr_assert_geq((viv_mono_ns() - t0) / 1000000u, 900);
	{
		char *b = trun_body(slow);
		cr_assert_str_eq(b, "200 slow -\n");
		free(b);
	}
	run_instance_end(slow);
	run_module_release(m);
}

Test(hostcall, config_time_rng_dns_debug)
{
	struct run_module *m = load("terrarium.c");
	const char *want_config[] = {"GREETING=hello from config\n", "missing 0\n", NULL};
	const char *want_misc[] = {"time ok\n", "rng ok\n", "dns 127.0.0.1\n", "seconds ok\n",
	                           NULL};
	struct run_request req = make_req("GET", "/misc", NULL);
	struct run_instance *in;

	expect(m, "GET", "/config", NULL, 200, want_config);
	expect(m, "GET", "/misc", NULL, 200, want_misc);
	in = run(m, &req);
	cr_assert(trun_logged(in, "a debug line"));
	cr_assert(trun_logged(in, "a line up to its NUL"));
	run_instance_end(in);
	run_module_release(m);
}

Test(hostcall, hostile_arguments_fail_harmlessly)
{
	struct run_module *m = load("terrarium.c");
	const char *want[] = {"set header 1\n",
	                      "set body 1\n",
	                      "code 1\n",
	                      "bad handle 1\n",
	                      "send 0 -1\n",
	                      "hop 1\n",
	                      "status of nothing 0\n",
	                      NULL};

	expect(m, "GET", "/bad", NULL, 200, want);
	run_module_release(m);
}

Test(hostcall, panic_ends_with_500_and_the_message_logged)
{
	struct run_module *m = load("terrarium.c");
	struct run_request req = make_req("GET", "/panic", NULL);
	struct run_instance *in = run(m, &req);

	cr_assert_eq(run_instance_response(in)->status, 500);
	cr_assert(trun_logged(in, "it went wrong"));
	run_instance_end(in);
	run_module_release(m);
}

Test(hostcall, terrafirma_allocator_exports_are_used)
{
	struct run_module *m = load("terrafirma.wat");
	const char *want[] = {"PUT /some/where?x=1", NULL};

	expect(m, "PUT", "/some/where?x=1", NULL, 202, want);
	run_module_release(m);
}

Test(hostcall, a_guest_without_an_allocator_is_told_in_its_log)
{
	struct run_module *m = load("no_allocator.wat");
	struct run_request req = make_req("GET", "/x", NULL);
	struct run_instance *in = run(m, &req);
	char *b = trun_body(in);

	cr_assert_eq(run_instance_outcome(in), RUN_DONE);
	cr_assert_str_eq(b, "no allocator");
	cr_assert(trun_logged(in, "never registered an allocator"));
	free(b);
	run_instance_end(in);
	run_module_release(m);
}

Test(hostcall, imports_called_through_the_table_act_for_the_caller)
{
	struct run_module *m = load("indirect_import.wat");
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &req);
	char *b = trun_body(in);

	cr_assert_eq(run_instance_outcome(in), RUN_DONE, "%s",
	             run_outcome_name(run_instance_outcome(in)));
	cr_assert_str_eq(b, "through the table");
	cr_assert(trun_logged(in, "through the table"));
	free(b);
	run_instance_end(in);
	run_module_release(m);
}

/* Every host call that places its result through the guest's allocator,
 * with an allocator that first re-enters the host to free or replace that
 * very data (guests/reenter.c): the request ends normally, the guest gets
 * the original data (never bytes of the host's heap), every nested call
 * fails with its error value and leaves a line in the app's log, and the
 * pool goes on serving. */
Test(hostcall, an_allocator_that_re_enters_the_host_gets_the_original_data)
{
	static const struct {
		const char *call;
		int nested_error; /* what a refused nested call returns */
	} cases[] = {
	        {"req_get_body", 1},   {"req_get_header", 1},  {"req_get_headers", 1},
	        {"req_get_method", 0}, {"req_get_path", 0},    {"incoming_req_get_body", 0},
	        {"resp_get_body", 1},  {"resp_get_header", 1}, {"resp_get_headers", 1},
	        {"kvstore_get", 0},    {"config_get", 0},      {"dns_query_ip", 0},
	        {"dns_query_raw", 0},
	};
	struct run_module *m = load("reenter.c");
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *call = cases[i].call;
		char target[64], want[96], *body, *rest;
		struct run_request req;
		struct run_instance *in;
		unsigned n = 0;

		snprintf(target, sizeof(target), "/%s", call);
		req = make_req("POST", target, "the original body, forty-eight bytes long.......");
		in = run(m, &req);
		body = trun_body(in);
		cr_assert_eq(run_instance_outcome(in), RUN_DONE, "%s: %s", call,
		             run_outcome_name(run_instance_outcome(in)));
		snprintf(want, sizeof(want), "%s original nested", call);
		/* Without a resolver that answers, the raw query fails before
		 * it places anything. */
		if (strcmp(call, "dns_query_raw") == 0 &&
		    strcmp(body, "dns_query_raw error nested\n") == 0) {
			free(body);
			run_instance_end(in);
			continue;
		}
		cr_assert_eq(strncmp(body, want, strlen(want)), 0, "%s", body);
		for (rest = body + strlen(want); *rest == ' '; n++) {
			char *end;
			long v = strtol(rest, &end, 10);

			cr_assert_eq(v, cases[i].nested_error, "%s", body);
			rest = end;
		}
		cr_assert_gt(n, 0, "%s: the allocator never ran", call);
		cr_assert(trun_logged(in, "refused"), "%s: no log line for the nested call", call);
		free(body);
		run_instance_end(in);
	}
	run_module_release(m);
}

/* A request handle changed right after it was sent (a new body and header
 * replace the old ones) does not change what is being sent, whether to an
 * upstream through libcurl or to the app itself in another instance. */
Test(hostcall, a_request_changed_after_sending_goes_out_as_it_was_sent)
{
	struct run_module *m = load("reenter.c");
	struct run_services sv = {.store = st};
	struct tsup_self self = {pool, m};
	const char *want[] = {"sent POST\nthe original body, forty-eight bytes long.......\n",
	                      NULL};
	const char *want_self[] = {"sent the original body, forty-eight bytes long.......|"
	                           "the original header value, thirty-nine\n",
	                           NULL};
	char target[256];

	snprintf(target, sizeof(target), "/send_then_replace?%s/echo", upstream_url);
	expect(m, "GET", target, NULL, 200, want);
	tsup_self_services(&sv, &self);
	run_pool_set_services(pool, &sv);
	snprintf(target, sizeof(target),
	         "/send_then_replace?http://guest.localhost/slow_echo?%s/slow?ms=200",
	         upstream_url);
	expect(m, "GET", target, NULL, 200, want_self);
	run_module_release(m);
}

/* NUL bytes in a method, a header name and a configuration key are refused
 * (the host read past its copy of the first and the last, and let the
 * second through to the response). */
Test(hostcall, nul_bytes_in_names_are_refused)
{
	struct run_module *m = load("nul_bytes.c");
	const char *want[] = {"create -1\nheader 1\nconfig 0\n", NULL};
	struct run_request req = make_req("GET", "/", NULL);
	struct run_instance *in = run(m, &req);

	cr_assert_eq(run_instance_response(in)->n_headers, 0);
	run_instance_end(in);
	expect(m, "GET", "/", NULL, 200, want);
	run_module_release(m);
}

/* Out-pointers that overlap each other are the guest's business; the host
 * never reads its results back from guest memory (it did, and faulted). */
Test(hostcall, overlapping_out_pointers_do_not_trouble_the_host)
{
	struct run_module *m = load("overlapping_outs.wat");
	const char *want[] = {"ok", NULL};

	expect(m, "GET", "/", NULL, 200, want);
	run_module_release(m);
}

/* What Terrarium's SDKs document and its guests rely on: a pending
 * request that has given its response is spent (wait, poll and select
 * refuse it, the others stay valid), a received response cannot be
 * changed, and a URL that does not parse is refused when the request is
 * made rather than when it is sent. */
Test(hostcall, terms_of_terrariums_sdks)
{
	struct run_module *m = load("terms.c");
	const char *spent[] = {"wait ok\n",       "wait again -1\n",
	                       "poll again -1\n", "select again -1\n",
	                       "select fast\n",   "select the spent one -1\n",
	                       "the other ok\n",  NULL};
	const char *readonly[] = {"set body 1\n", "set header 1\n", "set code 1\n",
	                          "body upstream says hi code 200\n", NULL};
	const char *urls[] = {"create 'not a url' -1\n",
	                      "create '/relative' -1\n",
	                      "create 'ftp://127.0.0.1/x' -1\n",
	                      "create 'http://' -1\n",
	                      "create '' -1\n",
	                      "create good ok\n",
	                      NULL};
	char target[256];

	snprintf(target, sizeof(target), "/spent?%s", upstream_url);
	expect(m, "GET", target, NULL, 200, spent);
	snprintf(target, sizeof(target), "/readonly?%s", upstream_url);
	expect(m, "GET", target, NULL, 200, readonly);
	snprintf(target, sizeof(target), "/urls?%s", upstream_url);
	expect(m, "GET", target, NULL, 200, urls);
	run_module_release(m);
}
