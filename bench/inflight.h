/* Many requests in flight at once, for the benchmark of guests suspended on
 * an outbound call (bench_inflight) and its end-to-end test: a slow upstream
 * that holds every request until it is released, and a crowd of clients
 * that each send one request on a connection of its own and check what
 * comes back. Each runs an epoll loop, the upstream in a process of its own
 * and the crowd on a thread; they need nothing of Vivarium's. */
#ifndef BENCH_INFLIGHT_H
#define BENCH_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- The upstream --------------------------------------------------------------------- */

struct infl_upstream;

/* Starts an HTTP/1.1 server on 127.0.0.1 at a free port. It reads each
 * request's header block (bodies are not read) and answers 200, text/plain,
 * with body (copied), and closes the connection: at once, or, while it
 * holds, when released. It runs in a child process (call it before
 * starting threads). NULL on failure, with errno set. Stop with
 * infl_upstream_stop(). */
struct infl_upstream *infl_upstream_start(const char *body);
unsigned infl_upstream_port(const struct infl_upstream *u);
/* From now on, requests are held until infl_upstream_release(). */
void infl_upstream_hold(struct infl_upstream *u);
/* Answers every held request and answers the next ones at once. */
void infl_upstream_release(struct infl_upstream *u);
/* Requests held now, and answered so far. */
unsigned infl_upstream_held(const struct infl_upstream *u);
unsigned infl_upstream_answered(const struct infl_upstream *u);
/* Stops its process, which answers what it holds, and frees u; accepts
 * NULL. */
void infl_upstream_stop(struct infl_upstream *u);

/* ---- The crowd of clients ---------------------------------------------------------------- */

struct infl_crowd_config {
	unsigned port;       /* of 127.0.0.1 */
	const char *host;    /* the Host header */
	const char *path;    /* the request target */
	const char *want;    /* the body a right answer has, exactly */
	unsigned n;          /* clients, one connection and one request each */
	unsigned sources;    /* source addresses 127.0.0.2 to 127.0.0.(1 + sources),
	                      * one after the other; 0 lets the kernel pick */
	unsigned pending;    /* connections being opened at once (0: 256) */
	unsigned timeout_ms; /* a client that waits longer gives up */
};

struct infl_crowd_stats {
	unsigned opened;     /* connections made */
	unsigned sent;       /* requests sent in full */
	unsigned ok;         /* answered 200 with the wanted body */
	unsigned wrong_body; /* 200 with another body */
	unsigned busy;       /* 503 */
	unsigned other;      /* any other status */
	unsigned no_answer;  /* the connection failed, closed or timed out without one */
	unsigned done;       /* clients finished, whatever the outcome */
};

struct infl_crowd;

/* Starts the clients' thread (strings are copied). NULL on failure. */
struct infl_crowd *infl_crowd_start(const struct infl_crowd_config *cfg);
void infl_crowd_stats(const struct infl_crowd *c, struct infl_crowd_stats *out);
/* Waits until every client is done or timeout_ms passed; true if all are. */
bool infl_crowd_wait(const struct infl_crowd *c, unsigned timeout_ms);
/* Stops the thread, closes what is open and frees c; accepts NULL. */
void infl_crowd_stop(struct infl_crowd *c);

/* ---- One request -------------------------------------------------------------------------- */

/* GET path from 127.0.0.1:port with this Host on a fresh connection
 * ("Connection: close"); the status and up to body_len - 1 bytes of the
 * body (NUL-terminated) come back. Returns the time from the connection's
 * start to the end of the response in ns, or 0 when no response came. */
uint64_t infl_get(unsigned port, const char *host, const char *path, unsigned *status, char *body,
                  size_t body_len);

/* The p-quantile (0 to 1) of the n values at v, which it sorts. */
uint64_t infl_quantile(uint64_t *v, size_t n, double p);

#endif
