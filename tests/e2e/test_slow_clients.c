/* End to end: clients that hold connections open by sending a byte now
 * and then, from several loopback addresses, on the API and on the apps
 * port, and clients whose headers or bodies are far too large; everyone
 * else is still answered within a second or two, and the slow ones are cut
 * at a deadline that their bytes do not push back. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "figure.h"
#include "rawnet.h"
#include "support.h"

#define ADDRESSES 4
#define PER_ADDRESS 64

static const char *const sources[ADDRESSES] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};

static struct tsup_vivd vivd;

static const char hello_wat[] =
        "(module\n"
        "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
        "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
        "  (memory 1)\n"
        "  (data (i32.const 64) \"Content-Type: text/plain\\0a\\0ahello\\0a\")\n"
        "  (func (export \"_start\")\n"
        "    (i32.store (i32.const 0) (i32.const 64))\n"
        "    (i32.store (i32.const 4) (i32.const 32))\n"
        "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
        " (i32.const 16)))))\n";

/* Opens PER_ADDRESS connections from each address to port and sends each
 * the start of a request that never ends. Returns how many vivd still
 * holds open half a second later; fds gets every socket (-1 for those not
 * had). */
static size_t open_slow(unsigned port, const char *start, int *fds)
{
	size_t held = 0;

	for (size_t a = 0; a < ADDRESSES; a++) {
		for (size_t i = 0; i < PER_ADDRESS; i++) {
			int fd = rawnet_connect(sources[a], port);

			if (fd >= 0 && !rawnet_send(fd, start, strlen(start))) {
				close(fd);
				fd = -1;
			}
			fds[a * PER_ADDRESS + i] = fd;
		}
	}
	usleep(500000);
	for (size_t i = 0; i < ADDRESSES * PER_ADDRESS; i++)
		held += fds[i] >= 0 && !rawnet_closed(fds[i]);
	return held;
}

/* One more byte on every connection of the n still open; how many are. */
static size_t trickle(int *fds, size_t n)
{
	size_t open = 0;

	for (size_t i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (rawnet_closed(fds[i]) || !rawnet_send(fds[i], "X", 1)) {
			close(fds[i]);
			fds[i] = -1;
			continue;
		}
		open++;
	}
	return open;
}

static void close_all(int *fds)
{
	for (size_t i = 0; i < ADDRESSES * PER_ADDRESS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* GET url (with the admin token when authed) answers want within
 * limit_ms; returns how long it took. */
static double timed_get(const char *url, bool authed, const char *host, long want, double limit_ms)
{
	struct tsup_resp r;
	double t0 = tsup_now_ms(), ms;
	bool ok = tsup_http("GET", url, host, authed ? vivd.token : NULL, NULL, 0, &r);

	ms = tsup_now_ms() - t0;
	cr_assert(ok, "GET %s got no answer after %.0f ms: %s", url, ms, r.error);
	cr_assert_eq(r.status, want, "GET %s: %ld %s", url, r.status, r.body);
	cr_assert_leq(ms, limit_ms, "GET %s took %.0f ms", url, ms);
	tsup_resp_free(&r);
	return ms;
}

static void setup(void)
{
	json_t *d;

	tsup_vivd_start(&vivd, NULL);
	d = tsup_deploy_wait(&vivd, "hello", hello_wat, strlen(hello_wat));
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready");
	json_decref(d);
}

static void teardown(void)
{
	tsup_vivd_stop(&vivd);
}

TestSuite(slow, .init = setup, .fini = teardown, .timeout = 120);

/* 256 connections from four addresses, each sending a byte every 2 s,
 * once filled the API (64 from each address, 256 in all): now one address
 * holds at most its share, /healthz and an authenticated caller answer at
 * once, and every slow connection is cut at the header deadline (10 s)
 * although it never went 2 s without sending. */
Test(slow, slow_loris_on_the_api_leaves_others_served)
{
	int fds[ADDRESSES * PER_ADDRESS];
	char health[128], apps[128];
	size_t held, open = 0;
	double t0, worst = 0;

	snprintf(health, sizeof(health), "%s/healthz", vivd.api);
	snprintf(apps, sizeof(apps), "%s/v1/apps", vivd.api);
	held = open_slow(vivd.api_port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", fds);
	FIGURE("API: %zu of %d slow connections from %d addresses held", held,
	       ADDRESSES * PER_ADDRESS, ADDRESSES);
	t0 = tsup_now_ms();
	while (tsup_now_ms() - t0 < 16000) {
		double ms = timed_get(health, false, NULL, 200, 2000);

		worst = ms > worst ? ms : worst;
		ms = timed_get(apps, true, NULL, 200, 2000);
		worst = ms > worst ? ms : worst;
		open = trickle(fds, ADDRESSES * PER_ADDRESS);
		usleep(2000000);
	}
	close_all(fds);
	FIGURE("API: /healthz and GET /v1/apps answered in at most %.0f ms; %zu slow "
	       "connections still open after 16 s",
	       worst, open);
	cr_assert_eq(open, 0, "%zu slow connections outlived the header deadline", open);
}

/* The same on the apps port: the app answers everyone else, and the slow
 * ones are cut. */
Test(slow, slow_loris_on_the_apps_port_leaves_others_served)
{
	int fds[ADDRESSES * PER_ADDRESS];
	char url[128], host[64];
	size_t held, open = 0;
	double t0, worst = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", vivd.apps_port);
	snprintf(host, sizeof(host), "hello.localhost:%u", vivd.apps_port);
	held = open_slow(vivd.apps_port,
	                 "GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Slow: ", fds);
	FIGURE("apps port: %zu of %d slow connections held", held, ADDRESSES * PER_ADDRESS);
	t0 = tsup_now_ms();
	while (tsup_now_ms() - t0 < 16000) {
		double ms = timed_get(url, false, host, 200, 2000);

		worst = ms > worst ? ms : worst;
		open = trickle(fds, ADDRESSES * PER_ADDRESS);
		usleep(2000000);
	}
	close_all(fds);
	FIGURE("apps port: the app answered in at most %.0f ms; %zu slow connections still "
	       "open after 16 s",
	       worst, open);
	cr_assert_eq(open, 0, "%zu slow connections outlived the request timeout", open);
}

/* A connection that sends its body one byte every 2 s is cut at the
 * request deadline on the API side long before it ends. Here only checks
 * that others are served meanwhile, and that one oversized header block
 * or body on either port is refused while others go on. */
Test(slow, oversized_headers_and_bodies_are_refused_and_others_served)
{
	char health[128], url[128], host[64], *big, *req, *out;
	size_t big_len = 1u << 20;
	bool closed;
	int fd;

	snprintf(health, sizeof(health), "%s/healthz", vivd.api);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", vivd.apps_port);
	snprintf(host, sizeof(host), "hello.localhost:%u", vivd.apps_port);
	big = malloc(big_len + 1);
	memset(big, 'a', big_len);
	big[big_len] = '\0';
	cr_assert(asprintf(&req, "GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Big: %s\r\n\r\n",
	                   big) > 0);
	for (int port = 0; port < 2; port++) {
		unsigned p = port ? vivd.apps_port : vivd.api_port;

		fd = rawnet_connect("127.0.0.2", p);
		cr_assert_geq(fd, 0);
		rawnet_send(fd, req, strlen(req)); /* may be cut short: vivd closes */
		out = rawnet_read(fd, 3000, NULL, &closed);
		FIGURE("%s: a 1 MiB header line got '%.12s', closed %d", port ? "apps port" : "API",
		       out, closed);
		cr_assert(strncmp(out, "HTTP/1.1 200", 12) != 0, "a 1 MiB header was served");
		cr_assert(closed, "the connection of a 1 MiB header stayed open");
		free(out);
		close(fd);
	}
	free(req);
	/* A body declared far past the caps. */
	cr_assert(asprintf(&req,
	                   "POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
	                   "Content-Length: 107374182400\r\n\r\n%s",
	                   big) > 0);
	fd = rawnet_connect("127.0.0.2", vivd.apps_port);
	rawnet_send(fd, req, strlen(req));
	out = rawnet_read(fd, 3000, NULL, &closed);
	FIGURE("apps port: a 100 GiB body got '%.12s', closed %d", out, closed);
	cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
	free(out);
	close(fd);
	free(req);
	cr_assert(asprintf(&req,
	                   "POST /v1/apps/hello/deployments HTTP/1.1\r\nHost: x\r\n"
	                   "Authorization: Bearer %s\r\n"
	                   "Content-Length: 107374182400\r\n\r\n%s",
	                   vivd.token, big) > 0);
	fd = rawnet_connect("127.0.0.2", vivd.api_port);
	rawnet_send(fd, req, strlen(req));
	out = rawnet_read(fd, 3000, NULL, &closed);
	FIGURE("API: a 100 GiB upload got '%.12s', closed %d", out, closed);
	cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
	free(out);
	close(fd);
	free(req);
	free(big);
	timed_get(health, false, NULL, 200, 2000);
	timed_get(url, false, host, 200, 2000);
}

/* GET url until it answers 200, for at most limit_ms: a client whose new
 * connection a full server closed tries again, as clients do. How long
 * it took. */
static double get_within(const char *url, bool authed, double limit_ms)
{
	double t0 = tsup_now_ms();

	for (;;) {
		struct tsup_resp r;
		bool ok = tsup_http("GET", url, NULL, authed ? vivd.token : NULL, NULL, 0, &r);

		ok = ok && r.status == 200;
		if (ok) {
			tsup_resp_free(&r);
			return tsup_now_ms() - t0;
		}
		cr_assert_lt(tsup_now_ms() - t0, limit_ms,
		             "GET %s got no 200 in %.0f ms (last try: %ld %s)", url, limit_ms,
		             r.status, r.error);
		tsup_resp_free(&r);
		usleep(50000);
	}
}

#define MANY 20

/* From 20 addresses, 16 each (the most one address may hold), 320 slow
 * connections: more than the API holds in all. While more than three
 * quarters of its connections are open, those that waited over a second
 * for their headers are cut, so that /healthz and an authenticated caller
 * still answer within two seconds, again and again. */
Test(slow, slow_loris_from_more_addresses_than_the_api_holds)
{
	int fds[MANY * 16];
	char health[128], apps[128], src[32];
	size_t held = 0, open = 0, n = 0;
	double t0, worst = 0;

	snprintf(health, sizeof(health), "%s/healthz", vivd.api);
	snprintf(apps, sizeof(apps), "%s/v1/apps", vivd.api);
	for (int a = 0; a < MANY; a++) {
		snprintf(src, sizeof(src), "127.0.1.%d", a + 1);
		for (int i = 0; i < 16; i++) {
			int fd = rawnet_connect(src, vivd.api_port);
			static const char start[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";

			if (fd >= 0 && !rawnet_send(fd, start, sizeof(start) - 1)) {
				close(fd);
				fd = -1;
			}
			fds[n++] = fd;
		}
	}
	usleep(200000); /* those over the limit are closed at once */
	for (size_t i = 0; i < n; i++)
		held += fds[i] >= 0 && !rawnet_closed(fds[i]);
	t0 = tsup_now_ms();
	while (tsup_now_ms() - t0 < 8000) {
		double ms = get_within(health, false, 2000);

		worst = ms > worst ? ms : worst;
		ms = get_within(apps, true, 2000);
		worst = ms > worst ? ms : worst;
		open = trickle(fds, n);
		usleep(500000);
	}
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	FIGURE("API: %zu slow connections from %d addresses (%zu open at first, those past its "
	       "limit in the backlog): /healthz and "
	       "GET /v1/apps answered within %.0f ms throughout; %zu slow ones still open after "
	       "8 s",
	       n, MANY, held, worst, open);
}

/* ---- 10,000 connections from one address ------------------------------------------------ */

#define FLOOD 10000
#define SAMPLES 200
/* What the test holds "within 2x of quiet" to: twice the quiet figure, or
 * 50 ms more than it. The margin is for a shared machine, where another
 * test's burst moves a sub-millisecond p99 by tens of milliseconds; a
 * server that starves others is seconds late. The figures print the
 * ratios themselves. */
#define WITHIN_2X(quiet) ((quiet)*2 > (quiet) + 50 ? (quiet)*2 : (quiet) + 50)

static int by_ms(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The 99th percentile of SAMPLES GETs of url, each on a new connection
 * from 127.0.0.1, every one of which must answer 200. */
static double p99_of(const char *url, const char *host)
{
	double ms[SAMPLES];

	for (size_t i = 0; i < SAMPLES; i++)
		ms[i] = timed_get(url, false, host, 200, 5000);
	qsort(ms, SAMPLES, sizeof(ms[0]), by_ms);
	return ms[SAMPLES * 99 / 100 - 1];
}

/* Starts FLOOD connections from 127.0.0.2 to port without waiting for each
 * (a server that stops accepting must not stall the test); a second
 * later, how many the kernel completed. */
static size_t flood(unsigned port, int *fds)
{
	struct sockaddr_in src, dst;
	size_t up = 0;

	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000002);
	dst = src;
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dst.sin_port = htons((unsigned short)port);
	for (size_t i = 0; i < FLOOD; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
		    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
		     errno != EINPROGRESS)) {
			close(fd);
			fd = -1;
		}
		fds[i] = fd;
	}
	usleep(1000000);
	for (size_t i = 0; i < FLOOD; i++) {
		int err = -1;
		socklen_t len = sizeof(err);
		struct pollfd p = {.fd = fds[i], .events = POLLOUT};

		if (fds[i] >= 0 && poll(&p, 1, 0) == 1 &&
		    getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
			up++;
	}
	return up;
}

static void close_flood(int *fds)
{
	for (size_t i = 0; i < FLOOD; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

/* Until *stop, sends oversized requests in turn on both ports from
 * 127.0.0.3 (a 1 MiB header line, then a body declared at 100 GiB), each
 * on a new connection it reads for 200 ms or until vivd closes it. */
struct oversize {
	unsigned ports[2];
	volatile bool stop;
	size_t sent;
};

static void *oversize_loop(void *arg)
{
	struct oversize *o = arg;
	size_t big_len = 1 << 20;
	char *big = malloc(big_len + 1), *reqs[2];

	if (!big)
		return NULL;
	memset(big, 'a', big_len);
	big[big_len] = '\0';
	if (asprintf(&reqs[0], "GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Big: %s\r\n\r\n",
	             big) < 0 ||
	    asprintf(&reqs[1],
	             "POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
	             "Content-Length: 107374182400\r\n\r\n%s",
	             big) < 0)
		return NULL;
	while (!o->stop) {
		int fd = rawnet_connect("127.0.0.3", o->ports[o->sent % 2]);
		bool closed;

		if (fd >= 0) {
			rawnet_send(fd, reqs[o->sent / 2 % 2], strlen(reqs[o->sent / 2 % 2]));
			free(rawnet_read(fd, 200, NULL, &closed));
			close(fd);
		}
		o->sent++;
	}
	free(reqs[0]);
	free(reqs[1]);
	free(big);
	return NULL;
}

/* 10,000 connections from one address, on the apps port and then on the
 * API; then slow clients on both; then oversized headers and bodies sent
 * on both without a pause: under each, the 99th percentile of everyone
 * else's requests stays within twice what it was on a quiet server. */
Test(slow, floods_slow_clients_and_oversized_requests_leave_others_p99_within_2x, .timeout = 300)
{
	struct rlimit rl = {FLOOD + 1024, FLOOD + 1024};
	char app_url[128], app_host[64], health[128];
	double q_app, q_api, f_app, f_api, s_app, s_api, o_app, o_api;
	size_t up_app, up_api, held;
	int slow_apps[ADDRESSES * PER_ADDRESS], slow_api[ADDRESSES * PER_ADDRESS];
	struct oversize big = {.ports = {vivd.apps_port, vivd.api_port}};
	pthread_t attacker;
	int *fds = calloc(FLOOD, sizeof(int));

	cr_assert_not_null(fds);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
	snprintf(app_url, sizeof(app_url), "http://127.0.0.1:%u/", vivd.apps_port);
	snprintf(app_host, sizeof(app_host), "hello.localhost:%u", vivd.apps_port);
	snprintf(health, sizeof(health), "%s/healthz", vivd.api);
	q_app = p99_of(app_url, app_host);
	q_api = p99_of(health, NULL);

	up_app = flood(vivd.apps_port, fds);
	f_app = p99_of(app_url, app_host);
	close_flood(fds);
	up_api = flood(vivd.api_port, fds);
	f_api = p99_of(health, NULL);
	close_flood(fds);

	/* Slow clients on both ports at once, then oversized requests sent
	 * without a pause while the others are measured. */
	held = open_slow(vivd.apps_port,
	                 "GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Slow: ", slow_apps);
	held += open_slow(vivd.api_port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", slow_api);
	s_app = p99_of(app_url, app_host);
	s_api = p99_of(health, NULL);
	close_all(slow_apps);
	close_all(slow_api);
	cr_assert_eq(pthread_create(&attacker, NULL, oversize_loop, &big), 0);
	o_app = p99_of(app_url, app_host);
	o_api = p99_of(health, NULL);
	big.stop = true;
	pthread_join(attacker, NULL);
	FIGURE("slow clients on both ports (%zu held): the app's p99 %.2f ms (%.2fx quiet), "
	       "/healthz's %.2f ms (%.2fx); %zu oversized requests meanwhile: %.2f ms (%.2fx), "
	       "%.2f ms (%.2fx)",
	       held, s_app, s_app / q_app, s_api, s_api / q_api, big.sent, o_app, o_app / q_app,
	       o_api, o_api / q_api);
	cr_assert_gt(big.sent, 0, "no oversized request was sent");
	cr_assert_leq(s_app, WITHIN_2X(q_app), "slow clients: the app's p99 %.2f ms", s_app);
	cr_assert_leq(s_api, WITHIN_2X(q_api), "slow clients: /healthz's p99 %.2f ms", s_api);
	cr_assert_leq(o_app, WITHIN_2X(q_app), "oversized: the app's p99 %.2f ms", o_app);
	cr_assert_leq(o_api, WITHIN_2X(q_api), "oversized: /healthz's p99 %.2f ms", o_api);

	FIGURE("10,000 connections from one address: apps port %zu connected, the app's p99 "
	       "%.2f ms quiet, %.2f ms flooded (%.2fx); API %zu connected, /healthz p99 %.2f ms "
	       "quiet, %.2f ms flooded (%.2fx); %d requests each, every one answered",
	       up_app, q_app, f_app, f_app / q_app, up_api, q_api, f_api, f_api / q_api, SAMPLES);
	cr_assert_leq(f_app, WITHIN_2X(q_app), "the app's p99 went from %.2f ms to %.2f ms", q_app,
	              f_app);
	cr_assert_leq(f_api, WITHIN_2X(q_api), "/healthz's p99 went from %.2f ms to %.2f ms", q_api,
	              f_api);
	/* The flood gone, both still answer. */
	timed_get(app_url, false, app_host, 200, 2000);
	timed_get(health, false, NULL, 200, 2000);
	free(fds);
}
