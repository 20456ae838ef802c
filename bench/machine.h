/* What the benchmarks print about the machine they ran on. */
#ifndef BENCH_MACHINE_H
#define BENCH_MACHINE_H

#include <stddef.h>

/* What one system call costs here: the median of 9 runs of a million
 * getppid() calls, in ns per call. */
double bench_getppid_ns(void);

/* "CPU model, N cores" into buf. */
void bench_machine(char *buf, size_t len);

#endif
