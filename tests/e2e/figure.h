/* The figures that the proof tests (issue 13) print, on stderr whatever
 * Criterion's verbosity, so that a ctest log shows them: "figure: ..." */
#ifndef TESTS_E2E_FIGURE_H
#define TESTS_E2E_FIGURE_H

#include <stdio.h>

#define FIGURE(...)                                                                                \
	do {                                                                                       \
		fprintf(stderr, "figure: " __VA_ARGS__);                                           \
		fputc('\n', stderr);                                                               \
	} while (0)

#endif
