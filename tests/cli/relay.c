/* The CLI tests' TCP relay; see relay.h. One thread polls every connection
 * pair; bytes go through unchanged. */
#include "relay.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_PAIRS 32

/* One relayed connection: the client's side and the API's. */
struct pair {
	int client, server;
	bool is_cut_target; /* its request was for cut_path */
	bool seen_data;     /* a data field went through to the client */
};

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void close_pair(struct pair *p)
{
	if (p->client >= 0)
		close(p->client);
	if (p->server >= 0)
		close(p->server);
	p->client = p->server = -1;
}

/* Keeps the head of each request on a pair (libcurl sends several on one
 * connection), and notes whether it is the one to cut. A request starts
 * with a method; a body (a tarball, a value) does not. */
static void note_request(struct relay *r, struct pair *p, const char *buf, size_t n)
{
	static const char *const methods[] = {"GET ", "POST ", "PUT ", "DELETE "};
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	size_t i, len = end ? (size_t)(end - buf) + 4 : n;
	bool head = false;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (n > strlen(methods[i]) && memcmp(buf, methods[i], strlen(methods[i])) == 0)
			head = true;
	}
	if (!head)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->heads_len + len + 1 < sizeof(r->heads)) {
		memcpy(r->heads + r->heads_len, buf, len);
		r->heads_len += len;
		r->heads[r->heads_len] = '\0';
	}
	end = memchr(buf, '\n', len);
	p->is_cut_target = r->cut_path && !r->cut_done && end &&
	                   memmem(buf, (size_t)(end - buf), r->cut_path, strlen(r->cut_path));
	p->seen_data = false;
	pthread_mutex_unlock(&r->lock);
}

/* Forwards what one side has; false when the pair is finished. */
static bool forward(struct relay *r, struct pair *p, bool from_client)
{
	char buf[65536];
	int in = from_client ? p->client : p->server, out = from_client ? p->server : p->client;
	ssize_t n = read(in, buf, sizeof(buf));
	bool cut = false;

	if (n <= 0)
		return false;
	if (from_client) {
		note_request(r, p, buf, (size_t)n);
	} else if (p->is_cut_target) {
		/* Up to the blank line that ends the first event with data (not a
		 * comment), then nothing. */
		char *from = p->seen_data ? buf : memmem(buf, (size_t)n, "data", 4), *end;

		p->seen_data = from != NULL;
		end = from ? memmem(from, (size_t)(buf + n - from), "\n\n", 2) : NULL;
		if (end) {
			n = end - buf + 2;
			cut = true;
		}
	}
	if (write(out, buf, (size_t)n) != n)
		return false;
	if (cut) {
		pthread_mutex_lock(&r->lock);
		r->cut_done = true;
		pthread_mutex_unlock(&r->lock);
		return false;
	}
	return true;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct pair pairs[RELAY_PAIRS];
	struct pollfd fds[2 + 2 * RELAY_PAIRS];
	size_t i, n;
	int c;

	for (i = 0; i < RELAY_PAIRS; i++)
		pairs[i] = (struct pair){.client = -1, .server = -1};
	for (;;) {
		fds[0] = (struct pollfd){.fd = r->stop_pipe[0], .events = POLLIN};
		fds[1] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
		n = 2;
		for (i = 0; i < RELAY_PAIRS; i++) {
			fds[n++] = (struct pollfd){.fd = pairs[i].client, .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = pairs[i].server, .events = POLLIN};
		}
		if (poll(fds, n, -1) < 0)
			continue;
		if (fds[0].revents)
			break;
		if (fds[1].revents & POLLIN) {
			c = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			for (i = 0; c >= 0 && i < RELAY_PAIRS && pairs[i].client >= 0; i++)
				;
			if (c >= 0 && i < RELAY_PAIRS) {
				pairs[i] = (struct pair){.client = c,
				                         .server = connect_to(r->target_port)};
				if (pairs[i].server < 0)
					close_pair(&pairs[i]);
			} else if (c >= 0) {
				close(c);
			}
		}
		for (i = 0; i < RELAY_PAIRS; i++) {
			if (fds[2 + 2 * i].revents && !forward(r, &pairs[i], true))
				close_pair(&pairs[i]);
			else if (fds[3 + 2 * i].revents && !forward(r, &pairs[i], false))
				close_pair(&pairs[i]);
		}
	}
	for (i = 0; i < RELAY_PAIRS; i++)
		close_pair(&pairs[i]);
	return NULL;
}

void relay_start(struct relay *r, int target_port, const char *cut_path)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);

	memset(r, 0, sizeof(*r));
	r->target_port = target_port;
	r->cut_path = cut_path;
	r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(r->listen_fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(r->listen_fd, 16), 0);
	cr_assert_eq(getsockname(r->listen_fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(r->base, sizeof(r->base), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	cr_assert_eq(pipe2(r->stop_pipe, O_CLOEXEC), 0);
	pthread_mutex_init(&r->lock, NULL);
	cr_assert_eq(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

bool relay_cut_done(struct relay *r)
{
	bool done;

	pthread_mutex_lock(&r->lock);
	done = r->cut_done;
	pthread_mutex_unlock(&r->lock);
	return done;
}

char *relay_heads(struct relay *r)
{
	char *copy;

	pthread_mutex_lock(&r->lock);
	copy = strdup(r->heads);
	pthread_mutex_unlock(&r->lock);
	cr_assert_not_null(copy);
	return copy;
}

void relay_stop(struct relay *r)
{
	cr_assert_eq(write(r->stop_pipe[1], "x", 1), 1);
	pthread_join(r->thread, NULL);
	close(r->stop_pipe[0]);
	close(r->stop_pipe[1]);
	close(r->listen_fd);
	pthread_mutex_destroy(&r->lock);
}
