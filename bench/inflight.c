/* See inflight.h. */
#include "inflight.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes of a request header block the upstream reads, and of a response a
 * client keeps: both are small here. */
#define HEAD_MAX 2048
#define ANSWER_MAX 1024

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The upstream --------------------------------------------------------------------- */

struct uconn {
	int fd;
	size_t len;
	char head[HEAD_MAX];
};

/* Lives in memory shared with the upstream's process: the counters and
 * flags are read and written by both; the rest is set before the fork. */
struct infl_upstream {
	pid_t pid;
	int lfd, efd, ep;
	unsigned port;
	char *response; /* the whole answer: status line, headers, body */
	size_t response_len;
	atomic_bool holding, quit;
	atomic_uint held, answered;
	struct uconn **held_list; /* the upstream process's own */
	size_t n_held, held_alloc;
};

static void uconn_close(struct uconn *c)
{
	close(c->fd);
	free(c);
}

static void answer(struct infl_upstream *u, struct uconn *c)
{
	/* One write: the answer is far smaller than a socket's buffer. */
	if (write(c->fd, u->response, u->response_len) < 0)
		perror("upstream: write");
	atomic_fetch_add(&u->answered, 1);
	uconn_close(c);
}

static void hold(struct infl_upstream *u, struct uconn *c)
{
	if (u->n_held == u->held_alloc) {
		size_t na = u->held_alloc ? u->held_alloc * 2 : 1024;
		struct uconn **nl = realloc(u->held_list, na * sizeof(*nl));

		if (!nl) {
			answer(u, c);
			return;
		}
		u->held_list = nl;
		u->held_alloc = na;
	}
	u->held_list[u->n_held++] = c;
	atomic_fetch_add(&u->held, 1);
}

static void release_all(struct infl_upstream *u)
{
	size_t i;

	for (i = 0; i < u->n_held; i++)
		answer(u, u->held_list[i]);
	u->n_held = 0;
	atomic_store(&u->held, 0);
}

/* Reads what the client sent; a whole header block is held or answered. */
static void on_readable(struct infl_upstream *u, struct uconn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->head + c->len, sizeof(c->head) - 1 - c->len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || c->len + (size_t)n >= sizeof(c->head) - 1) {
			uconn_close(c);
			return;
		}
		c->len += (size_t)n;
		c->head[c->len] = '\0';
		if (strstr(c->head, "\r\n\r\n")) {
			/* Nothing more is read: the loop forgets the descriptor. */
			epoll_ctl(u->ep, EPOLL_CTL_DEL, c->fd, NULL);
			if (atomic_load(&u->holding))
				hold(u, c);
			else
				answer(u, c);
			return;
		}
	}
}

static void upstream_main(struct infl_upstream *u)
{
	struct epoll_event ev[256];
	int i, n;

	while (!atomic_load(&u->quit)) {
		n = epoll_wait(u->ep, ev, 256, 100);
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == &u->lfd) {
				int fd;

				while ((fd = accept4(u->lfd, NULL, NULL,
				                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct uconn *c = calloc(1, sizeof(*c));
					struct epoll_event e = {.events = EPOLLIN};

					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					e.data.ptr = c;
					if (epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &e))
						uconn_close(c);
				}
			} else if (ev[i].data.ptr == &u->efd) {
				uint64_t v;

				if (read(u->efd, &v, sizeof(v)) < 0)
					continue;
				if (!atomic_load(&u->holding))
					release_all(u);
			} else {
				on_readable(u, ev[i].data.ptr);
			}
		}
	}
	release_all(u);
}

struct infl_upstream *infl_upstream_start(const char *body)
{
	struct infl_upstream *u =
	        mmap(NULL, sizeof(*u), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct epoll_event e = {.events = EPOLLIN};

	if (u == MAP_FAILED)
		return NULL;
	u->lfd = u->efd = u->ep = -1;
	if (asprintf(&u->response,
	             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n\r\n%s",
	             strlen(body), body) < 0) {
		u->response = NULL;
		goto fail;
	}
	u->response_len = strlen(u->response);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->lfd < 0 || bind(u->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(u->lfd, 65535) || getsockname(u->lfd, (struct sockaddr *)&sa, &sl))
		goto fail;
	u->port = ntohs(sa.sin_port);
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	u->ep = epoll_create1(EPOLL_CLOEXEC);
	if (u->efd < 0 || u->ep < 0)
		goto fail;
	e.data.ptr = &u->lfd;
	if (epoll_ctl(u->ep, EPOLL_CTL_ADD, u->lfd, &e))
		goto fail;
	e.data.ptr = &u->efd;
	if (epoll_ctl(u->ep, EPOLL_CTL_ADD, u->efd, &e))
		goto fail;
	/* A process of its own, so that its descriptors (one per request it
	 * holds) count against its own limit, not its caller's. */
	u->pid = fork();
	if (u->pid == 0) {
		/* It ends with whoever started it, even one that failed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		upstream_main(u);
		_exit(0);
	}
	if (u->pid > 0)
		return u;
fail:
	if (u->lfd >= 0)
		close(u->lfd);
	if (u->efd >= 0)
		close(u->efd);
	if (u->ep >= 0)
		close(u->ep);
	free(u->response);
	munmap(u, sizeof(*u));
	return NULL;
}

unsigned infl_upstream_port(const struct infl_upstream *u)
{
	return u->port;
}

void infl_upstream_hold(struct infl_upstream *u)
{
	atomic_store(&u->holding, true);
}

void infl_upstream_release(struct infl_upstream *u)
{
	uint64_t one = 1;

	atomic_store(&u->holding, false);
	if (write(u->efd, &one, sizeof(one)) < 0)
		perror("upstream: eventfd");
}

unsigned infl_upstream_held(const struct infl_upstream *u)
{
	return atomic_load(&u->held);
}

unsigned infl_upstream_answered(const struct infl_upstream *u)
{
	return atomic_load(&u->answered);
}

void infl_upstream_stop(struct infl_upstream *u)
{
	if (!u)
		return;
	atomic_store(&u->holding, false);
	atomic_store(&u->quit, true);
	waitpid(u->pid, NULL, 0);
	close(u->lfd);
	close(u->efd);
	close(u->ep);
	free(u->response);
	munmap(u, sizeof(*u));
}

/* ---- The crowd of clients ---------------------------------------------------------------- */

enum cstate { C_IDLE, C_CONNECTING, C_READING, C_DONE };

struct client {
	int fd;
	enum cstate state;
	uint64_t since; /* when it started, CLOCK_MONOTONIC */
	size_t len;
	char *answer; /* ANSWER_MAX bytes, while reading */
};

struct infl_crowd {
	struct infl_crowd_config cfg;
	char *request;
	size_t request_len;
	pthread_t thread;
	int ep;
	atomic_bool quit;
	struct client *cl;
	unsigned next, connecting;
	/* What infl_crowd_stats() reads from another thread. */
	atomic_uint opened, sent, ok, wrong_body, busy, other, no_answer, done;
};

static void client_end(struct infl_crowd *c, struct client *k, atomic_uint *outcome)
{
	if (k->state == C_CONNECTING)
		c->connecting--;
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	free(k->answer);
	k->answer = NULL;
	k->state = C_DONE;
	atomic_fetch_add(outcome, 1);
	atomic_fetch_add(&c->done, 1);
}

/* The whole answer is in: its status and body decide the outcome. */
static void client_judge(struct infl_crowd *c, struct client *k)
{
	unsigned status = 0;
	const char *body;

	k->answer[k->len] = '\0';
	body = strstr(k->answer, "\r\n\r\n");
	if (!body || sscanf(k->answer, "HTTP/1.%*d %u", &status) != 1) {
		client_end(c, k, &c->no_answer);
		return;
	}
	body += 4;
	if (status == 200)
		client_end(c, k, strcmp(body, c->cfg.want) == 0 ? &c->ok : &c->wrong_body);
	else
		client_end(c, k, status == 503 ? &c->busy : &c->other);
}

static void client_open(struct infl_crowd *c, struct client *k, unsigned i)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->cfg.port)};
	struct epoll_event e = {.events = EPOLLOUT};
	int one = 1;

	k->since = mono_ns();
	k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		perror("crowd: socket");
		client_end(c, k, &c->no_answer);
		return;
	}
	if (c->cfg.sources) {
		struct sockaddr_in src = {.sin_family = AF_INET};

		/* The port is picked at connect(), per destination, so that each
		 * source address has the whole ephemeral range. */
		setsockopt(k->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + i % c->cfg.sources);
		if (bind(k->fd, (struct sockaddr *)&src, sizeof(src))) {
			perror("crowd: bind");
			client_end(c, k, &c->no_answer);
			return;
		}
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k->state = C_CONNECTING;
	c->connecting++;
	if (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		client_end(c, k, &c->no_answer);
		return;
	}
	e.data.ptr = k;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, k->fd, &e))
		client_end(c, k, &c->no_answer);
}

static void client_ready(struct infl_crowd *c, struct client *k, uint32_t events)
{
	if (k->state == C_CONNECTING) {
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = k};
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err || (events & EPOLLERR)) {
			client_end(c, k, &c->no_answer);
			return;
		}
		c->connecting--;
		atomic_fetch_add(&c->opened, 1);
		k->state = C_READING;
		/* One write: the request is far smaller than a socket's buffer. */
		if (write(k->fd, c->request, c->request_len) != (ssize_t)c->request_len) {
			k->state = C_IDLE; /* not connecting any more */
			client_end(c, k, &c->no_answer);
			return;
		}
		atomic_fetch_add(&c->sent, 1);
		k->answer = malloc(ANSWER_MAX);
		if (!k->answer || epoll_ctl(c->ep, EPOLL_CTL_MOD, k->fd, &e))
			client_end(c, k, &c->no_answer);
		return;
	}
	for (;;) {
		ssize_t n = read(k->fd, k->answer + k->len, ANSWER_MAX - 1 - k->len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			client_end(c, k, &c->no_answer);
			return;
		}
		if (n == 0 || k->len + (size_t)n >= ANSWER_MAX - 1) {
			k->len += (size_t)n;
			client_judge(c, k);
			return;
		}
		k->len += (size_t)n;
	}
}

/* Clients that waited too long give up; the check runs now and then. */
static void expire(struct infl_crowd *c, uint64_t now)
{
	uint64_t limit = (uint64_t)c->cfg.timeout_ms * 1000000u;
	unsigned i;

	for (i = 0; i < c->next; i++) {
		struct client *k = &c->cl[i];

		if ((k->state == C_CONNECTING || k->state == C_READING) && now - k->since > limit)
			client_end(c, k, &c->no_answer);
	}
}

static void *crowd_main(void *arg)
{
	struct infl_crowd *c = arg;
	struct epoll_event ev[256];
	uint64_t last_expire = mono_ns();
	int i, n;

	while (!atomic_load(&c->quit)) {
		while (c->next < c->cfg.n && c->connecting < c->cfg.pending) {
			c->next++;
			client_open(c, &c->cl[c->next - 1], c->next - 1);
		}
		n = epoll_wait(c->ep, ev, 256, 20);
		for (i = 0; i < n; i++)
			client_ready(c, ev[i].data.ptr, ev[i].events);
		if (mono_ns() - last_expire > 200000000u) {
			last_expire = mono_ns();
			expire(c, last_expire);
		}
	}
	return NULL;
}

struct infl_crowd *infl_crowd_start(const struct infl_crowd_config *cfg)
{
	struct infl_crowd *c = calloc(1, sizeof(*c));
	unsigned i;

	if (!c)
		return NULL;
	c->cfg = *cfg;
	if (!c->cfg.pending)
		c->cfg.pending = 256;
	c->cfg.host = strdup(cfg->host);
	c->cfg.path = strdup(cfg->path);
	c->cfg.want = strdup(cfg->want);
	c->cl = calloc(cfg->n ? cfg->n : 1, sizeof(*c->cl));
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!c->cfg.host || !c->cfg.path || !c->cfg.want || !c->cl || c->ep < 0 ||
	    asprintf(&c->request, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	             cfg->path, cfg->host) < 0)
		goto fail;
	c->request_len = strlen(c->request);
	for (i = 0; i < cfg->n; i++)
		c->cl[i].fd = -1;
	if (pthread_create(&c->thread, NULL, crowd_main, c) == 0)
		return c;
fail:
	if (c->ep >= 0)
		close(c->ep);
	free((char *)c->cfg.host);
	free((char *)c->cfg.path);
	free((char *)c->cfg.want);
	free(c->cl);
	free(c);
	return NULL;
}

void infl_crowd_stats(const struct infl_crowd *c, struct infl_crowd_stats *out)
{
	out->opened = atomic_load(&c->opened);
	out->sent = atomic_load(&c->sent);
	out->ok = atomic_load(&c->ok);
	out->wrong_body = atomic_load(&c->wrong_body);
	out->busy = atomic_load(&c->busy);
	out->other = atomic_load(&c->other);
	out->no_answer = atomic_load(&c->no_answer);
	out->done = atomic_load(&c->done);
}

bool infl_crowd_wait(const struct infl_crowd *c, unsigned timeout_ms)
{
	uint64_t until = mono_ns() + (uint64_t)timeout_ms * 1000000u;

	while (atomic_load(&c->done) < c->cfg.n) {
		if (mono_ns() > until)
			return false;
		usleep(10000);
	}
	return true;
}

void infl_crowd_stop(struct infl_crowd *c)
{
	unsigned i;

	if (!c)
		return;
	atomic_store(&c->quit, true);
	pthread_join(c->thread, NULL);
	for (i = 0; i < c->cfg.n; i++) {
		if (c->cl[i].fd >= 0)
			close(c->cl[i].fd);
		free(c->cl[i].answer);
	}
	close(c->ep);
	free(c->request);
	free((char *)c->cfg.host);
	free((char *)c->cfg.path);
	free((char *)c->cfg.want);
	free(c->cl);
	free(c);
}

/* ---- One request -------------------------------------------------------------------------- */

uint64_t infl_get(unsigned port, const char *host, const char *path, unsigned *status, char *body,
                  size_t body_len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 10};
	char req[512], resp[4096];
	size_t len = 0;
	uint64_t t0 = mono_ns(), took = 0;
	const char *b;
	int fd, n;

	*status = 0;
	if (body_len)
		body[0] = '\0';
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	             path, host);
	if (n < 0 || (size_t)n >= sizeof(req))
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, (size_t)n) != (ssize_t)n)
		goto out;
	for (;;) {
		ssize_t got = read(fd, resp + len, sizeof(resp) - 1 - len);

		if (got < 0)
			goto out;
		if (got == 0 || len + (size_t)got >= sizeof(resp) - 1) {
			len += (size_t)got;
			break;
		}
		len += (size_t)got;
	}
	took = mono_ns() - t0;
	resp[len] = '\0';
	b = strstr(resp, "\r\n\r\n");
	if (!b || sscanf(resp, "HTTP/1.%*d %u", status) != 1) {
		took = 0;
		goto out;
	}
	if (body_len)
		snprintf(body, body_len, "%s", b + 4);
out:
	close(fd);
	return took;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t infl_quantile(uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}
