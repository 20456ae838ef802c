/* The supervisor of `vivd serve` and the other roles: the processes it
 * keeps alive. Private to vivd/. */
#ifndef VIVD_SUPERVISOR_H
#define VIVD_SUPERVISOR_H

#include <stddef.h>

/* A child process kept alive by the supervisor. */
struct vivd_child {
	const char *role;       /* "api", "builder", "worker 0", ... (static storage) */
	int (*main)(void *arg); /* the child's body; its result is the exit status */
	void *arg;              /* borrowed for the life of the supervisor */
};

/* Forks every child, restarts any that dies (with a growing delay when one
 * keeps dying), and on SIGTERM or SIGINT stops them all (SIGTERM, then
 * SIGKILL after grace_ms) and returns 0; 1 when it cannot start. */
int vivd_supervise(const struct vivd_child *children, size_t n, unsigned grace_ms);

#endif
