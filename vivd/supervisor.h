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
	/* Added to the supervisor's nice value: serving apps comes first, and
	 * the control plane and builds take the CPU it leaves (see
	 * VIVD_NICE_*). */
	int nice;
};

/* The roles' nice values, over the supervisor's. Workers serve every app's
 * requests and keep the supervisor's. The API is next: an attacker's
 * oversized or endless requests to it cost its thread CPU, and a worker
 * sharing a core with it waited a time slice (3 ms, against requests
 * served in 0.3 ms). Builders and the launcher, whose tenants' compilers
 * can run for minutes, come last: builds on a serving host slow the
 * deploys, not the apps. */
#define VIVD_NICE_WORKER 0
#define VIVD_NICE_API 5
#define VIVD_NICE_BUILD 10

/* Forks every child, restarts any that dies (with a growing delay when one
 * keeps dying), and on SIGTERM or SIGINT stops them all (SIGTERM, then
 * SIGKILL after grace_ms) and returns 0; 1 when it cannot start. */
int vivd_supervise(const struct vivd_child *children, size_t n, unsigned grace_ms);

#endif
