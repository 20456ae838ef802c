/* Running viv for the CLI's tests; see cli_run.h. */
#include "cli_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* In the child: the environment, the folder and the program. */
static void child(const struct crun_opts *o, const char *cwd, const char *const *args)
{
	static const char *const drop[] = {"VIV_API",  "VIV_TOKEN", "HOME",    "XDG_CONFIG_HOME",
	                                   "NO_COLOR", "COLUMNS",   "DISPLAY", "WAYLAND_DISPLAY"};
	const char *argv[24];
	size_t i, n = 0;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		unsetenv(drop[i]);
	for (i = 0; o->env && o->env[i]; i++)
		putenv((char *)o->env[i]);
	if (chdir(cwd) != 0)
		_exit(126);
	argv[n++] = VIV_BIN;
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	execv(VIV_BIN, (char *const *)argv);
	_exit(127);
}

void crun_start(struct crun *r, const struct crun_opts *o, const char *const *args)
{
	struct winsize ws = {.ws_row = 40, .ws_col = (unsigned short)o->cols};
	const char *cwd = o->cwd;
	int out[2], err[2], in = -1, master = -1;
	char inpath[96];

	memset(r, 0, sizeof(*r));
	r->out_fd = r->err_fd = -1;
	viv_buf_init(&r->out, 8u << 20);
	viv_buf_init(&r->err, 8u << 20);
	if (!cwd) {
		snprintf(r->tmp, sizeof(r->tmp), "/tmp/viv-cli-cwd-XXXXXX");
		cr_assert_not_null(mkdtemp(r->tmp));
		cwd = r->tmp;
	}
	if (o->pty) {
		r->pid = forkpty(&master, NULL, NULL, &ws);
		cr_assert_geq(r->pid, 0);
		if (r->pid == 0)
			child(o, cwd, args);
		r->out_fd = master;
		return;
	}
	if (o->in) {
		/* A file, so that any size of input goes in without a writer. */
		snprintf(inpath, sizeof(inpath), "/tmp/viv-cli-in-XXXXXX");
		in = mkstemp(inpath);
		cr_assert_geq(in, 0);
		unlink(inpath);
		cr_assert_eq(write(in, o->in, o->in_len), (ssize_t)o->in_len);
		lseek(in, 0, SEEK_SET);
	} else {
		in = open("/dev/null", O_RDONLY);
	}
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	r->pid = fork();
	cr_assert_geq(r->pid, 0);
	if (r->pid == 0) {
		dup2(in, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		child(o, cwd, args);
	}
	close(in);
	close(out[1]);
	close(err[1]);
	r->out_fd = out[0];
	r->err_fd = err[0];
}

/* Reads what is there within ms milliseconds; false once both are
 * closed. */
static bool pump(struct crun *r, int ms)
{
	struct pollfd fds[2] = {{.fd = r->out_fd, .events = POLLIN},
	                        {.fd = r->err_fd, .events = POLLIN}};
	struct viv_buf *bufs[2] = {&r->out, &r->err};
	int *fdp[2] = {&r->out_fd, &r->err_fd};
	char chunk[8192];
	ssize_t n;
	int i;

	if (r->out_fd < 0 && r->err_fd < 0)
		return false;
	if (poll(fds, 2, ms) <= 0)
		return true;
	for (i = 0; i < 2; i++) {
		if (*fdp[i] < 0 || !fds[i].revents)
			continue;
		n = read(*fdp[i], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* EIO on a terminal's master is its end. */
			close(*fdp[i]);
			*fdp[i] = -1;
			continue;
		}
		viv_buf_append_trunc(bufs[i], chunk, (size_t)n);
	}
	return true;
}

static bool holds(const struct viv_buf *b, const char *text)
{
	return b->data && strstr(b->data, text);
}

bool crun_wait_for(struct crun *r, const char *text, int timeout_ms)
{
	double end = now_ms() + timeout_ms;

	while (!holds(&r->out, text) && !holds(&r->err, text)) {
		if (now_ms() > end || !pump(r, 50))
			return holds(&r->out, text) || holds(&r->err, text);
	}
	return true;
}

void crun_type(struct crun *r, const char *text)
{
	cr_assert_eq(write(r->out_fd, text, strlen(text)), (ssize_t)strlen(text));
}

int crun_finish(struct crun *r, int timeout_ms)
{
	double end = now_ms() + timeout_ms;
	int status = 0;

	while (pump(r, 50)) {
		if (now_ms() > end) {
			kill(r->pid, SIGKILL);
			end = now_ms() + 5000;
		}
	}
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (viv_buf_append(&r->out, "", 0))
		abort();
	if (viv_buf_append(&r->err, "", 0))
		abort();
	return r->status;
}

void crun_stop(struct crun *r)
{
	kill(r->pid, SIGTERM);
	crun_finish(r, 10000);
}

void crun_free(struct crun *r)
{
	viv_buf_free(&r->out);
	viv_buf_free(&r->err);
	if (r->tmp[0])
		viv_rmtree_or_log(r->tmp);
}

void crun(struct crun *r, const struct crun_opts *o, const char *const *args)
{
	crun_start(r, o, args);
	crun_finish(r, 300000);
}

void crun_says(const struct crun *r, const char *text)
{
	cr_assert(holds(&r->out, text) || holds(&r->err, text),
	          "viv did not say \"%s\"; it printed:\n%s\nand on stderr:\n%s", text,
	          r->out.data ? r->out.data : "", r->err.data ? r->err.data : "");
}
