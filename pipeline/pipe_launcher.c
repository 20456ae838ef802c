/* The launcher: the process, running as the build user, that runs the
 * commands of builds' language steps (the steps that run tenants' code)
 * for the builder, which runs as the platform's user and cannot start
 * processes as another. One connection per command: the builder sends the
 * command, a process of the launcher's runs it with pipe_spawn_cmd() and
 * answers with how it ended and what it printed. A builder that hangs up
 * stops its command. Also empties a build folder, whose files belong to
 * the build user. */
#include "pipeline_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define WIRE_MAGIC 0x5649564cu /* "VIVL" */
#define WIRE_MAX (8u << 20)
#define WIRE_STRV_MAX 8192
#define OP_RUN 1u
#define OP_EMPTY 2u
/* How long the builder waits past a command's own timeout before it
 * takes the launcher for gone. */
#define ANSWER_SLACK_MS 30000
#define REQUEST_READ_MS 10000

/* ---- The wire ------------------------------------------------------------------- */

/* A message: a u32 length, then fields in host order (both ends are the
 * same program on the same machine). */
struct wire {
	struct viv_buf b;
	size_t at; /* reading: the next field */
	bool bad;  /* reading went past the end or a cap */
};

static void put(struct wire *w, const void *p, size_t n)
{
	if (!w->bad && viv_buf_append(&w->b, p, n) != VIV_OK)
		w->bad = true;
}

static void put_u32(struct wire *w, uint32_t v)
{
	put(w, &v, sizeof(v));
}

static void put_i64(struct wire *w, int64_t v)
{
	put(w, &v, sizeof(v));
}

static void put_str(struct wire *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_u32(w, s ? (uint32_t)n : UINT32_MAX);
	if (s)
		put(w, s, n);
}

static void put_bytes(struct wire *w, const char *p, size_t n)
{
	put_u32(w, (uint32_t)n);
	put(w, p, n);
}

static void put_strv(struct wire *w, const char *const *v)
{
	uint32_t n = 0;

	while (v && v[n])
		n++;
	put_u32(w, n);
	for (uint32_t i = 0; i < n; i++)
		put_str(w, v[i]);
}

static const void *take(struct wire *w, size_t n)
{
	const void *p;

	if (w->bad || n > w->b.len - w->at) {
		w->bad = true;
		return NULL;
	}
	p = w->b.data + w->at;
	w->at += n;
	return p;
}

static uint32_t get_u32(struct wire *w)
{
	const void *p = take(w, sizeof(uint32_t));
	uint32_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

static int64_t get_i64(struct wire *w)
{
	const void *p = take(w, sizeof(int64_t));
	int64_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

/* A string of the message; NULL for a null one or on error (w->bad). */
static char *get_str(struct wire *w)
{
	uint32_t n = get_u32(w);
	const char *p;
	char *s;

	if (w->bad || n == UINT32_MAX)
		return NULL;
	p = take(w, n);
	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		w->bad = true;
		return NULL;
	}
	s = strndup(p, n);
	if (!s)
		w->bad = true;
	return s;
}

/* A NULL-terminated array of strings; caller frees with pipe_strv_free. */
static char **get_strv(struct wire *w, size_t *n_out)
{
	uint32_t n = get_u32(w);
	char **v;

	*n_out = 0;
	if (w->bad || n > WIRE_STRV_MAX) {
		w->bad = true;
		return NULL;
	}
	v = calloc(n + 1, sizeof(*v));
	if (!v) {
		w->bad = true;
		return NULL;
	}
	for (uint32_t i = 0; i < n && !w->bad; i++) {
		v[i] = get_str(w);
		if (!v[i])
			w->bad = true;
		*n_out = i + 1;
	}
	return v;
}

static enum viv_err send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return VIV_ERR_IO;
		c += w;
		n -= (size_t)w;
	}
	return VIV_OK;
}

static enum viv_err wire_send(int fd, struct wire *w)
{
	uint32_t len = (uint32_t)w->b.len;

	if (w->bad || w->b.len > WIRE_MAX)
		return VIV_ERR_TOO_BIG;
	if (send_all(fd, &len, sizeof(len)))
		return VIV_ERR_IO;
	return send_all(fd, w->b.data, w->b.len);
}

/* Reads n bytes by the deadline (viv_mono_ns()). */
static enum viv_err recv_all(int fd, void *p, size_t n, uint64_t deadline)
{
	char *c = p;

	while (n > 0) {
		struct pollfd pfd = {fd, POLLIN, 0};
		uint64_t now = viv_mono_ns();
		ssize_t r;

		if (now >= deadline)
			return VIV_ERR_TIMEOUT;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000 + 1)) < 0 && errno != EINTR)
			return VIV_ERR_IO;
		if (!pfd.revents)
			continue;
		r = recv(fd, c, n, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return VIV_ERR_IO;
		c += r;
		n -= (size_t)r;
	}
	return VIV_OK;
}

static enum viv_err wire_recv(int fd, struct wire *w, uint64_t deadline)
{
	uint32_t len;
	enum viv_err err;

	memset(w, 0, sizeof(*w));
	viv_buf_init(&w->b, WIRE_MAX);
	err = recv_all(fd, &len, sizeof(len), deadline);
	if (err)
		return err;
	if (len > WIRE_MAX)
		return VIV_ERR_TOO_BIG;
	if (len == 0)
		return VIV_ERR_INVALID;
	/* The buffer is filled in place: len bytes and the NUL viv_buf
	 * keeps after them. */
	w->b.data = calloc(1, (size_t)len + 1);
	if (!w->b.data)
		return VIV_ERR_NOMEM;
	w->b.alloc = (size_t)len + 1;
	err = recv_all(fd, w->b.data, len, deadline);
	if (!err)
		w->b.len = len;
	return err;
}

/* ---- The builder's side ---------------------------------------------------------- */

/* The address of the abstract unix socket called name. -1 (ENAMETOOLONG)
 * when it does not fit. */
static int launcher_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	if (n + 1 > sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* Abstract: sun_path starts with a NUL. */
	memcpy(sa->sun_path + 1, name, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

int pipe_launcher_listen(char *name, size_t len)
{
	struct sockaddr_un sa;
	unsigned char rnd[8];
	socklen_t sl;
	int n, fd;

	if (viv_random(rnd, sizeof(rnd)) != VIV_OK)
		return -1;
	n = snprintf(name, len, "vivarium-launcher-%ld-%02x%02x%02x%02x%02x%02x%02x%02x",
	             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
	             rnd[7]);
	if (n < 0 || (size_t)n >= len || launcher_addr(name, &sa, &sl) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sl) != 0 || listen(fd, 128) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int launcher_connect(const char *name)
{
	struct sockaddr_un sa;
	socklen_t sl;
	int fd;

	if (launcher_addr(name, &sa, &sl) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sl) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Sends the request in w and reads the answer into ans, waiting at most
 * wait_ms. */
static enum viv_err ask(const struct pipe_config *cfg, struct wire *w, struct wire *ans,
                        unsigned wait_ms, char *err, size_t errlen)
{
	enum viv_err e;
	int fd;

	memset(ans, 0, sizeof(*ans));
	fd = launcher_connect(cfg->launcher);
	if (fd < 0) {
		viv_errf(err, errlen,
		         "the build launcher does not answer (%s); try again, and tell the "
		         "operator if it persists",
		         strerror(errno));
		return VIV_ERR_IO;
	}
	e = wire_send(fd, w);
	if (!e)
		e = wire_recv(fd, ans, viv_mono_ns() + (uint64_t)wait_ms * 1000000u);
	close(fd);
	if (e)
		viv_errf(err, errlen,
		         "the build launcher stopped answering (%s); try again, and tell the "
		         "operator if it persists",
		         viv_strerror(e));
	return e;
}

enum viv_err pipe_launcher_run(const struct pipe_config *cfg, const struct pipe_cmd *cmd,
                               struct viv_buf *output, struct pipe_exit *exit_out, char *err,
                               size_t errlen)
{
	struct wire w, ans;
	unsigned timeout = cmd->timeout_ms ? cmd->timeout_ms : cfg->step_timeout_ms;
	enum viv_err e, result;
	char *text = NULL, *out = NULL;

	memset(&w, 0, sizeof(w));
	viv_buf_init(&w.b, WIRE_MAX);
	put_u32(&w, WIRE_MAGIC);
	put_u32(&w, OP_RUN);
	put_str(&w, cmd->scratch);
	put_str(&w, cmd->cwd);
	put_strv(&w, cmd->argv);
	put_strv(&w, cmd->env);
	put_u32(&w, timeout);
	e = ask(cfg, &w, &ans, timeout + ANSWER_SLACK_MS, err, errlen);
	viv_buf_free(&w.b);
	if (e) {
		viv_buf_free(&ans.b);
		return e;
	}
	memset(exit_out, 0, sizeof(*exit_out));
	result = (enum viv_err)get_u32(&ans);
	exit_out->code = (int)get_u32(&ans);
	exit_out->signal = (int)get_u32(&ans);
	exit_out->truncated = get_u32(&ans) != 0;
	exit_out->ms = get_i64(&ans);
	exit_out->limit = (enum pipe_limit)get_u32(&ans);
	text = get_str(&ans);
	out = get_str(&ans);
	if (ans.bad) {
		viv_errf(err, errlen,
		         "the build launcher gave a malformed answer; tell the "
		         "operator");
		result = VIV_ERR_INTERNAL;
	} else {
		if (out)
			viv_buf_append_trunc(output, out, strlen(out));
		if (text && *text)
			viv_errf(err, errlen, "%s", text);
	}
	free(text);
	free(out);
	viv_buf_free(&ans.b);
	return result;
}

/* Opens dir, which must be a folder under builds (both absolute), without
 * following a link below builds. */
static int open_build_folder(const char *builds, const char *dir)
{
	const char *rest;
	size_t n = strlen(builds);
	int bfd, fd;

	while (n > 1 && builds[n - 1] == '/')
		n--;
	if (dir[0] != '/' || strncmp(dir, builds, n) != 0 || dir[n] != '/') {
		errno = EXDEV;
		return -1;
	}
	rest = dir + n;
	while (*rest == '/')
		rest++;
	/* The build user may pass through builds without reading it. */
	bfd = open(builds, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return -1;
	fd = viv_open_beneath(bfd, rest, O_RDONLY | O_DIRECTORY, 0);
	close(bfd);
	return fd;
}

enum viv_err pipe_launcher_empty(const struct pipe_config *cfg, const char *dir)
{
	struct wire w, ans;
	char err[256];
	enum viv_err e;
	int fd;

	if (!cfg->launcher) {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? VIV_OK : VIV_ERR_IO;
		e = viv_empty_dir_fd(fd);
		close(fd);
		return e;
	}
	memset(&w, 0, sizeof(w));
	viv_buf_init(&w.b, WIRE_MAX);
	put_u32(&w, WIRE_MAGIC);
	put_u32(&w, OP_EMPTY);
	put_str(&w, dir);
	e = ask(cfg, &w, &ans, ANSWER_SLACK_MS, err, sizeof(err));
	viv_buf_free(&w.b);
	if (!e) {
		e = (enum viv_err)get_u32(&ans);
		if (ans.bad)
			e = VIV_ERR_INTERNAL;
	} else {
		viv_log(VIV_WARN, "builder: %s", err);
	}
	viv_buf_free(&ans.b);
	return e;
}

/* ---- The launcher's side ------------------------------------------------------------ */

/* Whether path is absolute, in builds, and has no "." or ".." part. */
static bool in_builds(const struct pipe_config *cfg, const char *path)
{
	size_t n;

	if (!path || path[0] != '/' || strstr(path, "/../") || strstr(path, "/./"))
		return false;
	n = strlen(path);
	if ((n >= 3 && strcmp(path + n - 3, "/..") == 0) ||
	    (n >= 2 && strcmp(path + n - 2, "/.") == 0))
		return false;
	if (!cfg->builds_dir)
		return true;
	n = strlen(cfg->builds_dir);
	return strncmp(path, cfg->builds_dir, n) == 0 && path[n] == '/';
}

static void answer_run(int fd, enum viv_err e, const struct pipe_exit *ex, const char *text,
                       const struct viv_buf *output)
{
	struct wire w;

	memset(&w, 0, sizeof(w));
	viv_buf_init(&w.b, WIRE_MAX);
	put_u32(&w, (uint32_t)e);
	put_u32(&w, (uint32_t)ex->code);
	put_u32(&w, (uint32_t)ex->signal);
	put_u32(&w, ex->truncated);
	put_i64(&w, ex->ms);
	put_u32(&w, (uint32_t)ex->limit);
	put_str(&w, text);
	put_bytes(&w, output->data ? output->data : "", output->len);
	if (wire_send(fd, &w))
		viv_log(VIV_WARN, "launcher: the builder went away before the answer");
	viv_buf_free(&w.b);
}

static void serve_run(const struct pipe_config *cfg, int fd, struct wire *req)
{
	struct pipe_cmd cmd;
	struct pipe_exit ex;
	struct viv_buf output;
	char *scratch, *cwd, **argv, **env, text[1024] = "";
	size_t n_argv = 0, n_env = 0;
	enum viv_err e;

	memset(&ex, 0, sizeof(ex));
	scratch = get_str(req);
	cwd = get_str(req);
	argv = get_strv(req, &n_argv);
	env = get_strv(req, &n_env);
	memset(&cmd, 0, sizeof(cmd));
	cmd.timeout_ms = get_u32(req);
	viv_buf_init(&output, cfg->step_output_cap + 64);
	if (req->bad || n_argv == 0 || !in_builds(cfg, scratch) || (cwd && !in_builds(cfg, cwd)) ||
	    cmd.timeout_ms == 0 || cmd.timeout_ms > cfg->step_timeout_ms) {
		viv_errf(text, sizeof(text), "the build launcher refused a malformed command");
		e = VIV_ERR_INVALID;
	} else {
		cmd.scratch = scratch;
		cmd.cwd = cwd;
		cmd.argv = (const char *const *)argv;
		cmd.env = (const char *const *)env;
		/* Everything the launcher runs is a language step's. */
		cmd.confined = true;
		cmd.abort_fd = fd;
		e = pipe_spawn_cmd(cfg, &cmd, &output, &ex, text, sizeof(text));
	}
	answer_run(fd, e, &ex, text, &output);
	viv_buf_free(&output);
	free(scratch);
	free(cwd);
	pipe_strv_free(argv, n_argv);
	pipe_strv_free(env, n_env);
}

static void serve_empty(const struct pipe_config *cfg, int fd, struct wire *req)
{
	struct wire w;
	char *dir = get_str(req);
	enum viv_err e = VIV_ERR_INVALID;
	int dfd;

	if (!req->bad && in_builds(cfg, dir) && cfg->builds_dir) {
		dfd = open_build_folder(cfg->builds_dir, dir);
		if (dfd < 0) {
			e = errno == ENOENT ? VIV_OK : VIV_ERR_IO;
		} else {
			e = viv_empty_dir_fd(dfd);
			close(dfd);
		}
	}
	memset(&w, 0, sizeof(w));
	viv_buf_init(&w.b, 64);
	put_u32(&w, (uint32_t)e);
	wire_send(fd, &w);
	viv_buf_free(&w.b);
	free(dir);
}

/* Kills and reaps every process left under this one: as a subreaper it
 * inherits whatever its command's processes left behind. */
static void reap_all(void)
{
	for (int round = 0; round < 1000; round++) {
		char path[64], *kids = NULL;
		const char *p;
		uint64_t pid;
		size_t len = 0;
		int status;

		while (waitpid(-1, &status, WNOHANG) > 0)
			;
		snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
		if (viv_read_file(path, 1 << 20, &kids, &len) != VIV_OK)
			break;
		/* Pids separated by spaces. */
		for (p = kids + strspn(kids, " \n");
		     viv_parse_u64(p, &p, INT32_MAX, &pid) && pid > 0; p += strspn(p, " \n"))
			kill((pid_t)pid, SIGKILL);
		free(kids);
		if (waitpid(-1, &status, 0) < 0 && errno == ECHILD)
			break;
	}
}

static void __attribute__((noreturn))
serve(const struct pipe_config *cfg, int fd, const sigset_t *mask)
{
	struct wire req;
	uint32_t op;

	/* The launcher's loop takes its signals from a signalfd; a request's
	 * process has its own defaults, and dies with the launcher. */
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (wire_recv(fd, &req, viv_mono_ns() + (uint64_t)REQUEST_READ_MS * 1000000u)) {
		viv_buf_free(&req.b);
		_exit(1);
	}
	if (get_u32(&req) != WIRE_MAGIC)
		_exit(1);
	op = get_u32(&req);
	if (op == OP_RUN)
		serve_run(cfg, fd, &req);
	else if (op == OP_EMPTY)
		serve_empty(cfg, fd, &req);
	viv_buf_free(&req.b);
	close(fd);
	reap_all();
	_exit(0);
}

/* Accepts one connection and hands it to a process of its own. Returns
 * whether one was started. */
static bool accept_one(const struct pipe_config *cfg, int listen_fd, uid_t client_uid,
                       const sigset_t *old)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	pid_t pid;
	int fd;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
	    (cred.uid != client_uid && cred.uid != 0 && cred.uid != getuid())) {
		viv_log(VIV_WARN, "launcher: refused a connection from uid %ld", (long)cred.uid);
		close(fd);
		return false;
	}
	pid = fork();
	if (pid == 0) {
		close(listen_fd);
		serve(cfg, fd, old);
	}
	if (pid < 0)
		viv_log(VIV_ERROR, "launcher: cannot fork: %s", strerror(errno));
	close(fd);
	return pid > 0;
}

/*
 * One loop: the listening socket and a signalfd for SIGCHLD, SIGTERM and
 * SIGINT, so that an ended request's process is reaped as soon as it ends
 * and a stop is seen at once, with no handler and no polling interval. The
 * requests' processes each drive their command with pipe_spawn_cmd() and
 * watch the builder's connection in the same poll.
 */
int pipe_launcher_main(const struct pipe_config *cfg, int listen_fd, uid_t client_uid)
{
	sigset_t mask, old;
	unsigned served = 0;
	bool stop = false;
	int sfd, status = 0;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, &old) != 0) {
		viv_log(VIV_ERROR, "launcher: cannot block signals: %s", strerror(errno));
		return 1;
	}
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		viv_log(VIV_ERROR, "launcher: cannot make a signalfd: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	viv_log(VIV_INFO, "launcher: running language steps as uid %ld", (long)getuid());
	while (!stop) {
		struct pollfd fds[2] = {{listen_fd, POLLIN, 0}, {sfd, POLLIN, 0}};
		struct signalfd_siginfo si;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			viv_log(VIV_ERROR, "launcher: waiting for requests failed: %s",
			        strerror(errno));
			status = 1;
			break;
		}
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				stop = true;
		}
		/* SIGCHLD may stand for several: reap whatever has ended. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!stop && (fds[0].revents & POLLIN))
			served += accept_one(cfg, listen_fd, client_uid, &old);
	}
	close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	viv_log(VIV_INFO, "launcher: stopping after %u requests", served);
	return status;
}
