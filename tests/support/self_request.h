/* Requests an app sends to itself, for the runner's tests and its fuzz target,
 * which run instances without a worker: each is served, as the worker
 * serves it, by a new instance of one module in the same pool. */
#ifndef TESTS_SELF_REQUEST_H
#define TESTS_SELF_REQUEST_H

#include "runner.h"

/* The pool and the module that serve the requests. */
struct tsup_self {
	struct run_pool *pool;
	struct run_module *module;
};

/* Sets sv->self_request, sv->self_cancel and sv->ctx to serve through self,
 * which is borrowed for as long as the services are in use. */
void tsup_self_services(struct run_services *sv, struct tsup_self *self);

#endif
