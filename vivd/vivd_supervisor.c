/* The supervisor: forks the processes of the roles (the launcher, the
 * builder, the API and the runner workers), restarts any that dies, and
 * stops them all on SIGTERM or SIGINT. It holds no database connection, so
 * nothing of SQLite ever crosses a fork. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"
#include "viv.h"

/* Restart delays: a child that ran for a while restarts at once; one that
 * keeps dying waits longer each time, up to the maximum. */
#define RESTART_MIN_MS 100u
#define RESTART_MAX_MS 5000u
#define STABLE_MS 10000u

struct child {
	const struct vivd_child *spec;
	pid_t pid;
	uint64_t started_ns;
	uint64_t restart_at_ns; /* when to start again; 0 while running */
	unsigned delay_ms;
};

static volatile sig_atomic_t got_stop;

static void on_stop(int sig)
{
	(void)sig;
	got_stop = 1;
}

static void on_chld(int sig)
{
	(void)sig;
}

static pid_t start_child(struct child *c)
{
	pid_t pid = fork();

	if (pid < 0) {
		viv_log(VIV_ERROR, "cannot fork %s: %s", c->spec->role, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		struct sigaction sa;

		/* The child starts with default signal handling and dies with
		 * the supervisor. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGCHLD, &sa, NULL);
		sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		prctl(PR_SET_NAME, c->spec->role); /* "worker 0" in ps and /proc */
		viv_log_role(c->spec->role);
		errno = 0;
		if (c->spec->nice && nice(c->spec->nice) == -1 && errno)
			viv_log(VIV_WARN, "cannot lower the priority of %s: %s", c->spec->role,
			        strerror(errno));
		_exit(c->spec->main(c->spec->arg));
	}
	c->pid = pid;
	c->started_ns = viv_mono_ns();
	c->restart_at_ns = 0;
	return pid;
}

static void describe_exit(const struct child *c, int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "%s (pid %d) exited with status %d", c->spec->role, (int)c->pid,
		         WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "%s (pid %d) was killed by signal %d (%s)", c->spec->role,
		         (int)c->pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "%s (pid %d) stopped", c->spec->role, (int)c->pid);
}

static void reap(struct child *kids, size_t n, bool restart)
{
	char msg[256];
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < n; i++) {
			struct child *c = &kids[i];
			uint64_t ran_ms;

			if (c->pid != pid)
				continue;
			describe_exit(c, status, msg, sizeof(msg));
			c->pid = 0;
			if (!restart)
				break;
			ran_ms = (viv_mono_ns() - c->started_ns) / 1000000u;
			c->delay_ms = ran_ms > STABLE_MS ? 0
			              : c->delay_ms
			                      ? (c->delay_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS
			                                                          : c->delay_ms * 2)
			                      : RESTART_MIN_MS;
			c->restart_at_ns = viv_mono_ns() + (uint64_t)c->delay_ms * 1000000u;
			viv_log(VIV_ERROR, "%s; restarting it in %u ms", msg, c->delay_ms);
			break;
		}
	}
}

int vivd_supervise(const struct vivd_child *children, size_t n, unsigned grace_ms)
{
	struct child *kids = calloc(n, sizeof(*kids));
	struct sigaction sa;
	sigset_t block, old;
	uint64_t deadline;
	size_t i;

	if (!kids)
		return 1;
	/* Whatever a child leaves behind (a build tool that slipped out of its
	 * process group, say) becomes ours to reap, not init's. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		viv_log(VIV_WARN, "cannot become a subreaper: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	/* SIGTERM, SIGINT and SIGCHLD stay blocked except inside ppoll, which
	 * unblocks them and waits in one step, so none is missed between a
	 * check and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < n; i++) {
		kids[i].spec = &children[i];
		start_child(&kids[i]);
	}
	while (!got_stop) {
		uint64_t now = viv_mono_ns(), next = 0;
		struct timespec ts;

		reap(kids, n, true);
		for (i = 0; i < n; i++) {
			struct child *c = &kids[i];

			if (c->pid || !c->restart_at_ns)
				continue;
			if (c->restart_at_ns <= now)
				start_child(c);
			else if (!next || c->restart_at_ns < next)
				next = c->restart_at_ns;
		}
		if (got_stop)
			break;
		if (next) {
			uint64_t wait = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
		}
		ppoll(NULL, 0, next ? &ts : NULL, &old);
	}
	viv_log(VIV_INFO, "stopping");
	for (i = 0; i < n; i++) {
		if (kids[i].pid)
			kill(kids[i].pid, SIGTERM);
	}
	deadline = viv_mono_ns() + (uint64_t)grace_ms * 1000000u;
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (;;) {
		bool any = false;

		reap(kids, n, false);
		for (i = 0; i < n; i++)
			any = any || kids[i].pid;
		if (!any)
			break;
		if (viv_mono_ns() > deadline) {
			for (i = 0; i < n; i++) {
				if (kids[i].pid) {
					viv_log(VIV_WARN, "%s did not stop in time; killing it",
					        kids[i].spec->role);
					kill(kids[i].pid, SIGKILL);
				}
			}
			deadline = UINT64_MAX;
		}
		usleep(20000);
	}
	free(kids);
	return 0;
}
