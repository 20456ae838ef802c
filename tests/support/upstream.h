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

#include "support.h"

struct tsup_upstream;

/* Starts on 127.0.0.1 and a free port. Fails the test on error. */
struct tsup_upstream *tsup_upstream_start(void);
void tsup_upstream_stop(struct tsup_upstream *u);
unsigned tsup_upstream_port(const struct tsup_upstream *u);
/* Requests served so far. */
unsigned tsup_upstream_hits(const struct tsup_upstream *u);

/* A suite's upstream and a vivd allowed to reach it
 * (--outbound-allow-private), for TestSuite's .init and .fini:
 * tsup_ofx_start() starts both, tsup_ofx_start_with() passes vivd more
 * arguments, tsup_ofx_stop() stops both. */
struct tsup_outbound_fixture {
	struct tsup_vivd vivd;
	struct tsup_upstream *up;
};

extern struct tsup_outbound_fixture tsup_ofx;
void tsup_ofx_start(void);
void tsup_ofx_start_with(const char *const *extra);
void tsup_ofx_stop(void);

#endif
