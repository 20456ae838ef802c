/* Shared by the runner tests: loading real artifacts, running a request to
 * its end as an event loop would, and reading what it produced. */
#ifndef RUNNER_TEST_HELPERS_H
#define RUNNER_TEST_HELPERS_H

#include <stdbool.h>

#include "runner_int.h"

/* Builds source (its language from name: "app.wat", "main.c") with the real
 * pipeline and loads it, failing the test on error. */
struct run_module *trun_load(const char *name, const char *source);

/* A request from 192.0.2.1 to test.localhost:8000, no headers. */
struct run_request trun_req(const char *method, const char *target, const char *body);

/* Starts req on pool and serves the pool's timers and sockets until the
 * instance is done. Caller ends it with run_instance_end(). */
struct run_instance *trun_run(struct run_pool *pool, struct run_module *m,
                              const struct run_app *app, const struct run_request *req);

/* The response body as a string; caller frees. */
char *trun_body(struct run_instance *in);

/* Whether one of the instance's log lines holds needle. */
bool trun_logged(struct run_instance *in, const char *needle);

#endif
