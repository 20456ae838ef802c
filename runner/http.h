/* Private to the runner: HTTP syntax that guests' headers and URLs are held
 * to, and the requests and responses the host keeps for guests (http.c). */
#ifndef RUNNER_HTTP_H
#define RUNNER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "runner.h"
#include "viv.h"

/* True when the n bytes at s are an HTTP token (RFC 7230): a header name or
 * a method. */
bool run_http_token(const char *s, size_t n);
/* True when the n bytes at s may be a header value: no control character
 * but the tab. */
bool run_http_value(const char *s, size_t n);
/* True for headers the server manages itself (Connection, Content-Length,
 * Transfer-Encoding, ...), which guests may not set on responses. */
bool run_header_is_hop_by_hop(const char *name, size_t n);
/* Whether url parses as an absolute http or https URL. */
bool run_http_url_valid(const char *url);

/* A request or a response the host holds: an outbound request a guest is
 * building, a response that came back. Every string is malloc'd and
 * NUL-terminated (a header's length still counts any NUL in it). */
struct run_msg {
	char *method;    /* requests */
	char *url;       /* requests */
	unsigned status; /* responses */
	struct run_header *hdrs;
	size_t n_hdrs, alloc_hdrs;
	struct viv_buf body;
};

/* Appends a header (copies). false when out of memory. */
bool run_msg_add_header(struct run_msg *m, const char *name, size_t nlen, const char *value,
                        size_t vlen);
/* Removes every header called name (any case). */
void run_msg_remove_header(struct run_msg *m, const char *name, size_t nlen);
/* Frees what m holds and zeroes it. */
void run_msg_clear(struct run_msg *m);

#endif
