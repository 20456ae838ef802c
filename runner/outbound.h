/* Private to the runner: outbound HTTP for guests, a service of the pool's
 * loop (outbound.c). It takes a request and a completion callback, and knows
 * nothing of who asked: the host-call layer maps its handles to what comes
 * back. */
#ifndef RUNNER_OUTBOUND_H
#define RUNNER_OUTBOUND_H

#include <sys/socket.h>

#include "http.h"
#include "loop.h"
#include "runner.h"

/* One request to send. Everything is borrowed for the call to
 * run_outbound_send() only: the service copies what it sends. */
struct run_outbound_req {
	const char *method;
	const char *url;
	const struct run_header *headers;
	size_t n_headers;
	const char *body; /* NULL for none */
	size_t body_len;
	/* The app that sends it: its outbound patterns say where it may go,
	 * and its host name is answered by self below. */
	const struct run_app *app;
	bool allow_private;   /* loopback, private and link-local addresses too */
	size_t body_max;      /* bytes of the response body */
	unsigned timeout_ms;  /* the whole request, redirects included */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC: no redirect starts with less time left */
	/* Requests to the app's own host name go to self->self_request (none
	 * when NULL), as a request from the instance from, which is serving
	 * origin (its client address and port, and its depth, pass on). */
	const struct run_services *self;
	struct run_instance *from;
	const struct run_request *origin;
};

/* A request in flight. */
struct run_outbound_op;

/* Called once per request that was sent, from the loop (or, for a request
 * the app answers itself, perhaps before run_outbound_send() returns): with
 * the response, whose contents the callee takes over, or with resp NULL and
 * why, a line for the app's log saying what went wrong ("" when there is
 * nothing to say). */
typedef void (*run_outbound_done_fn)(void *ctx, struct run_msg *resp, const char *why);

/* Sends req through loop's service (made on first use). On VIV_OK, *out is
 * the request in flight, to pass to run_outbound_cancel() if the caller
 * gives up, or NULL when done has already been called. Otherwise done is
 * never called and why (whylen bytes) says what went wrong for the app's
 * log, or is "" when there is nothing to say: the URL is not allowed, the
 * app calls itself too deep, memory ran out... */
VIV_MUST_CHECK enum viv_err run_outbound_send(struct run_loop *loop,
                                              const struct run_outbound_req *req,
                                              run_outbound_done_fn done, void *ctx,
                                              struct run_outbound_op **out, char *why,
                                              size_t whylen);

/* Stops a request in flight; done is not called for it any more. */
void run_outbound_cancel(struct run_outbound_op *op);

/* True when url may be fetched by an app with these outbound patterns. */
bool run_outbound_allowed(const struct run_app *app, const char *url);

/* True when a connection to this address is refused (loopback, private,
 * link-local, metadata...). */
bool run_address_is_private(const struct sockaddr *sa);

#endif
