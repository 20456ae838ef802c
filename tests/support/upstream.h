/* A local upstream HTTP server for tests of outbound requests, running on
 * a libmicrohttpd thread in the test process:
 *   GET  /hello        200 "upstream says hi", X-Upstream: yes
 *   ANY  /echo         200, the method, a newline, the body
 *   GET  /slow?ms=N    waits N ms (default 1000), then 200 "slow"
 *   GET  /redirect?to=URL   302 to URL (default /hello)
 *   GET  /status?code=N     N with an empty body
 * Every request is counted. */
#ifndef TESTS_UPSTREAM_H
#define TESTS_UPSTREAM_H

struct tsup_upstream;

/* Starts on 127.0.0.1 and a free port. Fails the test on error. */
struct tsup_upstream *tsup_upstream_start(void);
void tsup_upstream_stop(struct tsup_upstream *u);
unsigned tsup_upstream_port(const struct tsup_upstream *u);
/* Requests served so far. */
unsigned tsup_upstream_hits(const struct tsup_upstream *u);

#endif
