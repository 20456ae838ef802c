/* libFuzzer target for the host-call boundary: each input is the body of a
 * request to a real instance of guest.c, built ahead of time by the real
 * pipeline like any upload (fuzz_guest_build puts it where VIV_FUZZ_GUEST or
 * VIV_FUZZ_GUEST_SO says). The guest runs the body as a program of host calls
 * with hostile arguments and a hostile allocator (see guest.c), against a
 * pool with a real KV store, an upstream on loopback that the app may reach
 * (its URL is the app's UPSTREAM variable), and requests to the app itself
 * served by more instances of the same guest. The runner is built with AddressSanitizer;
 * whatever the guest does, the host must not touch memory it does not own,
 * and every request must end with a well-formed response and give its slot
 * back.
 *
 * The runner's own SIGSEGV handler turns the guest's faults into traps; it is
 * installed on the first input, after libFuzzer's, and hands any fault that
 * is not the guest's back to the handler it replaced, so that a fault in host
 * code is still reported (scripts/fuzz.sh passes -handle_segv=0, which leaves
 * AddressSanitizer's handler under it). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner_int.h"
#include "self_request.h"
#include "store.h"

/* The runner reserves 8 GiB of address space per slot and turns faults in
 * guest memory into traps. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allow_user_segv_handler=1:detect_stack_use_after_return=0";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct run_pool *pool;
static struct run_module *module;
static struct tsup_self self;
static struct store *st;
static char datadir[64];
static struct run_app app;
static char upstream_env[64], upstream_allow[64];
static const char *env[] = {"GREETING=hello from config", "EMPTY=", upstream_env};
static const char *outbound[] = {upstream_allow};

static void fail(const char *what) __attribute__((noreturn));

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_hostcall: %s\n", what);
	abort();
}

/* ---- The upstream ------------------------------------------------------------------------ */

/* Answers every connection with the same response, two values of one
 * header and a short body, after reading the request's header block. */
static void *upstream_main(void *arg)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nX-Up: one\r\nx-up: two\r\n"
	                           "Content-Length: 13\r\nConnection: close\r\n\r\n"
	                           "from upstream";
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		char buf[4096];
		size_t got = 0;
		ssize_t n;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		while (got < sizeof(buf) - 1) {
			struct pollfd p = {fd, POLLIN, 0};

			if (poll(&p, 1, 100) <= 0)
				break;
			n = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		if (write(fd, resp, sizeof(resp) - 1) < 0)
			fprintf(stderr, "fuzz_hostcall: the upstream could not answer\n");
		close(fd);
	}
	return NULL;
}

static void upstream_start(void)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);
	pthread_t t;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&a, &len) ||
	    pthread_create(&t, NULL, upstream_main, (void *)(intptr_t)fd))
		fail("cannot start the upstream");
	pthread_detach(t);
	snprintf(upstream_allow, sizeof(upstream_allow), "http://127.0.0.1:%u", ntohs(a.sin_port));
	snprintf(upstream_env, sizeof(upstream_env), "UPSTREAM=%s/", upstream_allow);
}

/* ---- Set-up on the first input ----------------------------------------------------------- */

static void remove_datadir(void)
{
	if (pool)
		run_pool_destroy(pool);
	store_close(st);
	viv_rmtree_or_log(datadir);
}

static void setup(void)
{
	struct run_pool_config pc;
	struct run_services sv = {0};
	const char *so = getenv("VIV_FUZZ_GUEST");
	char err[512];
	int64_t id = 0;

#ifdef VIV_FUZZ_GUEST_SO
	if (!so)
		so = VIV_FUZZ_GUEST_SO;
#endif
	if (!so)
		fail("set VIV_FUZZ_GUEST to the guest's artifact (fuzz_guest_build makes it)");
	if (run_thread_init())
		fail("run_thread_init failed");
	if (run_module_load(so, NULL, &module, err, sizeof(err)))
		fail(err);
	strcpy(datadir, "/tmp/viv-fuzz-XXXXXX");
	if (!mkdtemp(datadir) || store_open(datadir, &st, err, sizeof(err)) ||
	    store_app_ensure(st, "fuzz", &id))
		fail("cannot open a store for KV data");
	atexit(remove_datadir);
	upstream_start();
	run_pool_config_defaults(&pc);
	pc.slots = 8;
	pc.outbound_allow_private = true;
	pc.outbound_timeout_ms = 200;
	pc.response_max = 64 << 10;
	pc.outbound_max = 8;
	if (run_pool_create(&pc, &pool))
		fail("cannot create the pool");
	sv.store = st;
	self.pool = pool;
	self.module = module;
	tsup_self_services(&sv, &self);
	run_pool_set_services(pool, &sv);
	app.name = "fuzz";
	app.limits = (struct viv_limits){16, 100, 250};
	app.env = env;
	app.n_env = 3;
	app.id = id;
	app.host = "fuzz.localhost";
	app.outbound = outbound;
	app.n_outbound = 1;
}

/* ---- What every request must leave ----------------------------------------------------- */

static bool token_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check(struct run_instance *in)
{
	const struct run_response *r = run_instance_response(in);
	const struct run_log_line *logs;
	size_t i, j, n;

	if (run_instance_outcome(in) > RUN_HOST_ERROR)
		fail("an unknown outcome");
	if (r->status < 100 || r->status > 599)
		fail("a status outside 100..599");
	if (r->body_len > pool->cfg.response_max || (r->body_len && !r->body))
		fail("a body over the cap, or missing");
	for (i = 0; i < r->n_headers; i++) {
		const struct run_header *h = &r->headers[i];

		bool ok = h->name_len && !run_header_is_hop_by_hop(h->name, h->name_len);

		for (j = 0; ok && j < h->name_len; j++)
			ok = token_char(h->name[j]);
		for (j = 0; ok && j < h->value_len; j++) {
			unsigned char c = (unsigned char)h->value[j];
			ok = (c >= 0x20 || c == '\t') && c != 0x7f;
		}
		if (!ok) {
			fprintf(stderr, "fuzz_hostcall: header %zu of %zu: ", i, r->n_headers);
			for (j = 0; j < h->name_len; j++)
				fprintf(stderr, "%02x", (unsigned char)h->name[j]);
			fprintf(stderr, ": ");
			for (j = 0; j < h->value_len; j++)
				fprintf(stderr, "%02x", (unsigned char)h->value[j]);
			fprintf(stderr, "\n");
			fail("a header that is empty, hop-by-hop, not a token, or has control "
			     "characters");
		}
	}
	logs = run_instance_logs(in, &n);
	if (n > RUN_MAX_LOG_LINES)
		fail("too many log lines");
	for (i = 0; i < n; i++) {
		if (!logs[i].stream || strlen(logs[i].message) > pool->cfg.log_line_max)
			fail("a log line over the cap");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct run_header hs[] = {
	        {"X-Real-IP", 9, "192.0.2.1", 9}, {"X-A", 3, "one", 3}, {"x-a", 3, "two", 3}};
	struct run_request req = {0};
	struct run_instance *in = NULL;

	if (!pool)
		setup();
	req.method = "POST";
	req.method_len = 4;
	req.target = "/fuzz?x=1";
	req.target_len = 9;
	req.headers = hs;
	req.n_headers = 3;
	req.body = (const char *)data;
	req.body_len = size;
	req.client_addr = "192.0.2.1";
	req.server_name = "fuzz.localhost";
	req.server_port = 8000;
	req.protocol = "HTTP/1.1";
	if (run_instance_start(pool, module, &app, &req, NULL, NULL, &in))
		fail("no slot for a new request: an earlier one kept its slot");
	while (!run_instance_done(in)) {
		struct pollfd p = {run_pool_fd(pool), POLLIN, 0};
		int ms = run_pool_poll(pool);

		if (!run_instance_done(in))
			poll(&p, 1, ms < 0 || ms > 10 ? 10 : ms);
	}
	check(in);
	run_instance_end(in);
	if (pool->n_busy)
		fail("a request to the app itself kept its slot after its sender ended");
	return 0;
}
