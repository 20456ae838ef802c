/* An HTTP/1.1 load generator for the benchmarks, in two modes:
 *
 *   open loop (--rate R): requests are due at a fixed rate whatever the
 *   server does, and each one's latency counts from when it was due, so a
 *   server that stalls is charged for every request that waited (wrk, which
 *   sends the next request only when the last one is answered, hides such
 *   stalls). Debian 12 packages no open-loop generator (wrk2, vegeta, oha).
 *
 *   closed loop (--requests N, no rate): each connection sends its next
 *   request when the last one is answered, until N are answered; for
 *   counting what a fixed number of requests costs the server.
 *
 * It prints the achieved rate and latency percentiles, and writes them as
 * JSON with --json. Each of --processes (default 1) runs one thread over
 * its share of the connections and the rate (wrk -t2 is two threads);
 * keep-alive connections, one request in flight per connection: a due
 * request waits for a free connection, and that wait is part of its
 * latency.
 *
 *   loadgen [--connections C] [--rate R --seconds S | --requests N]
 *           [--processes P] [--host NAME] [--json FILE] http://127.0.0.1:PORT/PATH */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define RESPONSE_MAX 65536

struct conn {
	int fd;
	bool busy;
	uint64_t due_ns; /* when the request in flight was due */
	char buf[RESPONSE_MAX];
	size_t len;
};

struct gen {
	struct sockaddr_in addr;
	char request[1024];
	size_t request_len;
	struct conn *conns;
	unsigned n_conns;
	int epfd;
	/* Latencies of answered requests, in ns. */
	uint64_t *lat;
	size_t n_lat, max_lat;
	uint64_t errors;
	/* Free connections, as a stack of indices. */
	unsigned *free_conns;
	unsigned n_free;
};

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

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void conn_open(struct gen *g, unsigned i)
{
	struct conn *c = &g->conns[i];
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket");
	if (connect(c->fd, (struct sockaddr *)&g->addr, sizeof(g->addr)))
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = i;
	if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, c->fd, &ev))
		die("epoll_ctl");
	c->busy = false;
	c->len = 0;
}

static void conn_reopen(struct gen *g, unsigned i)
{
	close(g->conns[i].fd);
	conn_open(g, i);
}

static void release(struct gen *g, unsigned i)
{
	g->conns[i].busy = false;
	g->free_conns[g->n_free++] = i;
}

static void send_request(struct gen *g, uint64_t due)
{
	unsigned i = g->free_conns[--g->n_free];
	struct conn *c = &g->conns[i];
	ssize_t n;

	c->busy = true;
	c->due_ns = due;
	c->len = 0;
	n = write(c->fd, g->request, g->request_len);
	if (n != (ssize_t)g->request_len) {
		g->errors++;
		conn_reopen(g, i);
		release(g, i);
	}
}

/* The length of a whole response at the start of buf, 0 when more is to
 * come, or -1 when it cannot be framed (no Content-Length). *close is set
 * when the server closes the connection after it. */
static long response_len(const char *buf, size_t len, bool *close)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *p;
	size_t head;
	long body = -1;

	if (!end)
		return 0;
	head = (size_t)(end - buf) + 4;
	for (p = buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		p++;
		if ((size_t)(end - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
			body = strtol(p + 15, NULL, 10);
		if ((size_t)(end - p) >= 17 && strncasecmp(p, "connection: close", 17) == 0)
			*close = true;
	}
	if (body < 0)
		return -1;
	return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
}

static void on_readable(struct gen *g, unsigned i, uint64_t now)
{
	struct conn *c = &g->conns[i];
	bool close_after = false;
	ssize_t n;
	long whole;

	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		/* The server closed the connection: the request in flight, if
		 * any, failed. */
		if (c->busy) {
			g->errors++;
			conn_reopen(g, i);
			release(g, i);
		} else {
			conn_reopen(g, i);
		}
		return;
	}
	c->len += (size_t)n;
	whole = response_len(c->buf, c->len, &close_after);
	if (whole == 0 && c->len < sizeof(c->buf))
		return;
	if (whole <= 0 || !c->busy || memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
		g->errors++;
	} else if (g->n_lat < g->max_lat) {
		g->lat[g->n_lat++] = now - c->due_ns;
	}
	c->len = 0;
	if (close_after)
		conn_reopen(g, i);
	release(g, i);
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen [--connections C] [--rate R --seconds S | --requests N]\n"
	                "               [--processes P] [--host NAME] [--json FILE]\n"
	                "               http://127.0.0.1:PORT/PATH\n");
	exit(2);
}

/* Splits http://A.B.C.D:PORT/PATH; only IPv4 addresses, which is what the
 * benchmarks use. */
static void parse_url(struct gen *g, const char *url, const char **path, char *hostport,
                      size_t hp_len)
{
	const char *p, *slash, *colon;
	char ip[64];
	size_t n;

	if (strncmp(url, "http://", 7) != 0)
		usage();
	p = url + 7;
	slash = strchr(p, '/');
	*path = slash ? slash : "/";
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n >= hp_len)
		usage();
	memcpy(hostport, p, n);
	hostport[n] = '\0';
	colon = strchr(hostport, ':');
	if (!colon || (size_t)(colon - hostport) >= sizeof(ip))
		usage();
	memcpy(ip, hostport, (size_t)(colon - hostport));
	ip[colon - hostport] = '\0';
	memset(&g->addr, 0, sizeof(g->addr));
	g->addr.sin_family = AF_INET;
	g->addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, ip, &g->addr.sin_addr) != 1)
		usage();
}

/* What one process of the generator did; in memory its parent shares. */
struct result {
	uint64_t answered, errors, sent;
};

/* Sends requests (rate > 0: at that rate for seconds; else as fast as
 * answers come) over g's connections, recording latencies into g->lat. */
static void generate(struct gen *g, double rate, double seconds, uint64_t requests,
                     struct result *res)
{
	struct epoll_event evs[256];
	uint64_t sent = 0, t0, t_end, interval = 0, next_due;
	unsigned i;

	g->conns = calloc(g->n_conns, sizeof(*g->conns));
	g->free_conns = calloc(g->n_conns, sizeof(*g->free_conns));
	g->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!g->conns || !g->free_conns || g->epfd < 0)
		die("start");
	for (i = 0; i < g->n_conns; i++) {
		conn_open(g, i);
		release(g, g->n_conns - 1 - i);
	}
	t0 = now_ns();
	if (rate > 0)
		interval = (uint64_t)(1e9 / rate);
	next_due = t0;
	/* Past the last due time, answers still in flight get a second. */
	t_end = t0 + (uint64_t)(seconds * 1e9) + 1000000000u;
	for (;;) {
		uint64_t now = now_ns();
		struct timespec wait;
		int n, k;

		/* Send what is due, as far as connections are free. */
		while (sent < requests && g->n_free > 0 && (rate <= 0 || next_due <= now)) {
			send_request(g, rate > 0 ? next_due : now);
			sent++;
			next_due += interval;
		}
		if (sent == requests && g->n_free == g->n_conns)
			break;
		if (rate > 0 && now > t_end)
			break;
		wait.tv_sec = 0;
		wait.tv_nsec = 100000000;
		if (rate > 0 && sent < requests && g->n_free > 0)
			wait.tv_nsec = next_due > now ? (long)(next_due - now) : 0;
		n = epoll_pwait2(g->epfd, evs, 256, &wait, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_pwait2");
		now = now_ns();
		for (k = 0; k < n; k++)
			on_readable(g, evs[k].data.u32, now);
	}
	res->answered = g->n_lat;
	res->errors = g->errors;
	res->sent = sent;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"connections", required_argument, NULL, 'c'},
	        {"rate", required_argument, NULL, 'r'},
	        {"seconds", required_argument, NULL, 's'},
	        {"requests", required_argument, NULL, 'n'},
	        {"processes", required_argument, NULL, 'p'},
	        {"host", required_argument, NULL, 'H'},
	        {"json", required_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	struct gen g;
	const char *host = NULL, *json = NULL, *path;
	char hostport[256];
	double rate = 0, seconds = 5;
	uint64_t requests = 0, per, t0, elapsed, *lat, answered = 0, errors = 0, sent = 0;
	unsigned procs = 1, p;
	struct result *res;
	size_t n_lat = 0;
	int opt;

	memset(&g, 0, sizeof(g));
	g.n_conns = 16;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			g.n_conns = (unsigned)atoi(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'n':
			requests = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			procs = (unsigned)atoi(optarg);
			break;
		case 'H':
			host = optarg;
			break;
		case 'j':
			json = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || procs == 0 || procs > 64 || g.n_conns < procs ||
	    g.n_conns > MAX_CONNECTIONS || (rate <= 0) == (requests == 0) || seconds <= 0)
		usage();
	parse_url(&g, argv[optind], &path, hostport, sizeof(hostport));
	g.request_len =
	        (size_t)snprintf(g.request, sizeof(g.request),
	                         "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadgen\r\n\r\n", path,
	                         host ? host : hostport);
	if (g.request_len >= sizeof(g.request))
		usage();
	if (rate > 0)
		requests = (uint64_t)(rate * seconds);
	/* Each process takes its share of the connections, the rate and the
	 * requests, and records into its own part of a shared array. */
	per = (requests + procs - 1) / procs;
	res = mmap(NULL, procs * sizeof(*res) + procs * per * sizeof(*lat), PROT_READ | PROT_WRITE,
	           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		die("mmap");
	lat = (uint64_t *)(res + procs);
	t0 = now_ns();
	for (p = 0; p < procs; p++) {
		pid_t pid = procs == 1 ? 0 : fork();

		if (pid < 0)
			die("fork");
		if (pid > 0)
			continue;
		g.n_conns = g.n_conns / procs + (p < g.n_conns % procs);
		g.lat = lat + p * per;
		g.max_lat = per;
		generate(&g, rate / procs, seconds,
		         p + 1 < procs ? per : requests - per * (procs - 1), &res[p]);
		if (procs > 1)
			_exit(0);
	}
	while (procs > 1 && wait(NULL) > 0)
		;
	elapsed = now_ns() - t0;
	/* Gather every process's latencies at the front of the array. */
	for (p = 0; p < procs; p++) {
		memmove(lat + n_lat, lat + p * per, res[p].answered * sizeof(*lat));
		n_lat += res[p].answered;
		answered += res[p].answered;
		errors += res[p].errors;
		sent += res[p].sent;
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
#define PCT(q) (n_lat ? lat[(size_t)((double)(n_lat - 1) * (q))] / 1000.0 : 0.0)
	printf("loadgen: %llu answered, %llu errors, %llu not sent, %.0f req/s (target %.0f, 0 "
	       "for none); latency us: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
	       (unsigned long long)answered, (unsigned long long)errors,
	       (unsigned long long)(requests - sent), (double)answered * 1e9 / (double)elapsed,
	       rate, PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999), PCT(1.0));
	if (json) {
		FILE *f = fopen(json, "w");

		if (!f)
			die(json);
		fprintf(f,
		        "{\"target_rps\": %.0f, \"achieved_rps\": %.1f, \"answered\": %llu, "
		        "\"errors\": %llu, \"not_sent\": %llu, \"connections\": %u, "
		        "\"processes\": %u, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
		        "\"p999_us\": %.1f, \"max_us\": %.1f}\n",
		        rate, (double)answered * 1e9 / (double)elapsed,
		        (unsigned long long)answered, (unsigned long long)errors,
		        (unsigned long long)(requests - sent), g.n_conns, procs, PCT(0.5), PCT(0.9),
		        PCT(0.99), PCT(0.999), PCT(1.0));
		fclose(f);
	}
	return 0;
}
