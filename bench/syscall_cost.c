/* What one system call costs on this machine: the median of 9 runs of a
 * million getppid() calls, in ns per call. The benchmarks print it beside
 * every HTTP figure: a server that answers a request with a few system
 * calls moves with it from machine to machine (mitigations of CPU flaws
 * make it 50 ns on one machine and 500 on another).
 *
 *   syscall_cost [--json FILE] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CALLS 1000000
#define RUNS 9

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	double runs[RUNS];
	int i, r;

	for (r = 0; r < RUNS; r++) {
		uint64_t t0 = now_ns();

		/* syscall(), not getppid(): no library may answer it from a
		 * cache. */
		for (i = 0; i < CALLS; i++)
			syscall(SYS_getppid);
		runs[r] = (double)(now_ns() - t0) / CALLS;
	}
	qsort(runs, RUNS, sizeof(runs[0]), cmp_double);
	printf("syscall_cost: getppid() %.1f ns (median of %d runs of %d)\n", runs[RUNS / 2], RUNS,
	       CALLS);
	if (argc == 3 && strcmp(argv[1], "--json") == 0) {
		FILE *f = fopen(argv[2], "w");

		if (!f)
			return 1;
		fprintf(f, "{\"getppid_ns\": %.1f}\n", runs[RUNS / 2]);
		fclose(f);
	}
	return 0;
}
