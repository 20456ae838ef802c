/* Runs the viv binary for the CLI's tests (tests/cli and the end-to-end
 * flow): in a clean environment, with stdout and stderr read apart, or on a
 * pseudo-terminal of a chosen width; to completion, or in the background
 * while the test waits for what it prints. */
#ifndef TESTS_CLI_RUN_H
#define TESTS_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "viv.h"

/* How to run it. */
struct crun_opts {
	const char *cwd;        /* NULL: a fresh empty folder, removed afterwards */
	const char *const *env; /* "NAME=value" entries set in the child (NULL-terminated) */
	const char *in;         /* stdin's bytes (NULL: /dev/null); not with pty */
	size_t in_len;
	bool pty;      /* stdin, stdout and stderr are one terminal */
	unsigned cols; /* the terminal's width, with pty */
};

/* A run of viv. */
struct crun {
	pid_t pid;
	int out_fd, err_fd; /* -1 once closed; err_fd is -1 with a terminal */
	struct viv_buf out; /* stdout, or everything the terminal showed */
	struct viv_buf err; /* stderr */
	int status;         /* exit status, -1 when killed by a signal */
	char tmp[64];       /* the fresh cwd, when one was made */
};

/* Starts viv (VIV_BIN) with args (NULL-terminated, without the program).
 * The child's environment loses VIV_API, VIV_TOKEN, HOME, XDG_CONFIG_HOME,
 * NO_COLOR, COLUMNS, DISPLAY and WAYLAND_DISPLAY before o->env is applied,
 * so that nothing of the machine's leaks in. Asserts on failure. */
void crun_start(struct crun *r, const struct crun_opts *o, const char *const *args);

/* Reads what viv prints until text shows up on stdout or stderr (true) or
 * timeout_ms pass or viv closes both (false). */
bool crun_wait_for(struct crun *r, const char *text, int timeout_ms);

/* Types text on the terminal (pty only). */
void crun_type(struct crun *r, const char *text);

/* Reads to the end and reaps viv; kills it when it takes longer than
 * timeout_ms. Returns the exit status. */
int crun_finish(struct crun *r, int timeout_ms);

/* Sends SIGTERM and finishes. */
void crun_stop(struct crun *r);

/* Frees the buffers and removes the fresh cwd. */
void crun_free(struct crun *r);

/* Runs viv to completion (at most 300 s). */
void crun(struct crun *r, const struct crun_opts *o, const char *const *args);

/* Asserts that stdout or stderr holds text. */
void crun_says(const struct crun *r, const char *text);

#endif
