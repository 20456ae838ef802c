/* What every benchmark kernel shares: the clock, a small deterministic
 * generator and the one line of output. Each kernel is a WASI command that
 * builds unchanged for the host (cc -O2) and for wasm32-wasi, and answers
 * as a CGI app, so that bench_kernels can run the same source natively,
 * through Vivarium's pipeline and runner, and under node's WASI. */
#ifndef BENCH_KERNEL_H
#define BENCH_KERNEL_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Monotonic nanoseconds; the kernels time only their work with it. */
static inline uint64_t kernel_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the same stream on every target, so that every target does
 * the same work and prints the same check. state must not be zero. */
static inline uint64_t kernel_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Prints the CGI header and the result line bench_kernels reads:
 * "kernel NAME ns ELAPSED check CHECK". */
static inline void kernel_report(const char *name, uint64_t ns, const char *check)
{
	printf("Content-Type: text/plain\n\nkernel %s ns %llu check %s\n", name,
	       (unsigned long long)ns, check);
}

#endif
