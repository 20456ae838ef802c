/* What one system call costs on this machine: the median of 9 runs of a
 * million getppid() calls, in ns per call. The benchmarks print it beside
 * every HTTP figure: a server that answers a request with a few system
 * calls moves with it from machine to machine (mitigations of CPU flaws
 * make it 50 ns on one machine and 500 on another).
 *
 *   syscall_cost [--json FILE] */
#include <stdio.h>
#include <string.h>

#include "machine.h"

int main(int argc, char **argv)
{
	double ns = bench_getppid_ns();

	printf("syscall_cost: getppid() %.1f ns (median of 9 runs of 1000000)\n", ns);
	if (argc == 3 && strcmp(argv[1], "--json") == 0) {
		FILE *f = fopen(argv[2], "w");

		if (!f)
			return 1;
		fprintf(f, "{\"getppid_ns\": %.1f}\n", ns);
		fclose(f);
	}
	return 0;
}
