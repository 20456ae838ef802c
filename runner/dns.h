/* Private to the runner: DNS lookups for guests, a service of the pool's
 * loop (dns.c). It takes a query and a completion callback, and knows
 * nothing of who asked. */
#ifndef RUNNER_DNS_H
#define RUNNER_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define RUN_DNS_NAME_MAX 253
#define RUN_DNS_MAX_ADDRS 32

/* A lookup: the addresses of a name, or a query in DNS wire format sent as
 * it is. Borrowed for the call to run_dns_start() only. */
struct run_dns_query {
	bool raw;
	bool ipv6;           /* addresses: AAAA rather than A */
	const char *name;    /* addresses: the name, name_len bytes, no NUL among them */
	size_t name_len;     /* at most RUN_DNS_NAME_MAX */
	const uint8_t *wire; /* raw: the query */
	size_t wire_len;
};

/* What a lookup found. Borrowed for the call to the completion only. */
struct run_dns_answer {
	bool ok;
	const uint8_t (*addrs)[16]; /* addresses: addr_len bytes each */
	size_t n_addrs;
	size_t addr_len;     /* 4 or 16 */
	const uint8_t *wire; /* raw: the answer */
	size_t wire_len;
};

typedef void (*run_dns_done_fn)(void *ctx, const struct run_dns_answer *a);

/* A lookup in flight. */
struct run_dns_op;

/* Starts a lookup on a thread of its own (the system resolver blocks);
 * done is called from loop when it has finished, never before this
 * returns. *out is the lookup, for run_dns_cancel(). */
VIV_MUST_CHECK enum viv_err run_dns_start(struct run_loop *loop, const struct run_dns_query *q,
                                          run_dns_done_fn done, void *ctx, struct run_dns_op **out);

/* Forgets a lookup: done is not called for it. Its thread still finishes,
 * and what it holds is freed then. */
void run_dns_cancel(struct run_dns_op *op);

#endif
