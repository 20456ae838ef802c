/* Raw TCP for the end-to-end tests that speak HTTP as clients that
 * misbehave: from a chosen loopback address, byte by byte, or with
 * framing no HTTP library would send. */
#ifndef TESTS_E2E_RAWNET_H
#define TESTS_E2E_RAWNET_H

#include <stdbool.h>
#include <stddef.h>

/* A blocking socket connected to 127.0.0.1:port from the address src
 * ("127.0.0.2"; NULL: any), or -1 with errno when it could not be had.
 * Caller closes it. */
int rawnet_connect(const char *src, unsigned port);

/* Sends all n bytes; false when the peer refused them (it closed). */
bool rawnet_send(int fd, const void *data, size_t n);

/* Reads until the peer closes or timeout_ms pass with nothing more to
 * read: what came (NUL-terminated; caller frees), its length in *len (may
 * be NULL), and in *closed (may be NULL) whether the peer closed. */
char *rawnet_read(int fd, unsigned timeout_ms, size_t *len, bool *closed);

/* Whether the peer has closed fd (or reset it), without waiting. */
bool rawnet_closed(int fd);

/* How many times needle occurs in hay. */
size_t rawnet_count(const char *hay, const char *needle);

/* The resident memory of process pid, in KiB (0 when unknown). */
long rawnet_rss_kib(int pid);

#endif
