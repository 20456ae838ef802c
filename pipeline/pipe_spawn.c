/* The one place where the pipeline starts child processes: fork and exec
 * with an argv array, a minimal environment, rlimits, a timeout, an output
 * cap and, when configured, a bubblewrap sandbox around the tool; and the
 * one loop that waits for any number of them at once. */
#include "pipeline_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BWRAP "/usr/bin/bwrap"
#define SPAWN_FSIZE_MAX (1024ull * 1024 * 1024)
#define SPAWN_MAX_ARGS 4096
#define LOG_CAP_SLACK (64 * 1024)

/* ---- Build context ------------------------------------------------------------ */

void pipe_ctx_init(struct pipe_ctx *ctx, const struct pipe_config *cfg, const char *scratch)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->scratch = scratch;
	/* One command's output plus its command line and status lines. */
	viv_buf_init(&ctx->log, cfg->step_output_cap + LOG_CAP_SLACK);
}

void pipe_ctx_free(struct pipe_ctx *ctx)
{
	if (!ctx)
		return;
	viv_buf_free(&ctx->log);
}

void pipe_logf(struct pipe_ctx *ctx, const char *fmt, ...)
{
	char small[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(small))
		n = sizeof(small) - 1;
	viv_buf_append_trunc(&ctx->log, small, (size_t)n);
}

void pipe_log_flush(struct pipe_ctx *ctx)
{
	if (!ctx->flush || ctx->log.len == 0)
		return;
	ctx->flush(ctx->flush_arg, ctx->log.data);
	ctx->log.len = 0;
	ctx->log.data[0] = '\0';
}

/* ---- Preparing the child ------------------------------------------------------ */

/* Everything the child needs, built before fork: after fork only
 * async-signal-safe calls are allowed, so nothing is allocated there. */
struct spawn_plan {
	char *path;        /* what to execve */
	const char **argv; /* full argv, bwrap's first when sandboxed */
	size_t argc;
	const char **env; /* the base entries, then the caller's extra ones */
	char *env_own[4]; /* the base entries, freed with the plan */
	char *heap[32];   /* strings to free with the plan */
	size_t n_heap;
	const char *cwd; /* chdir in the child; NULL when bwrap does it */
	rlim_t cpu_s;
	const struct pipe_config *cfg;
	bool confined;      /* the build limits apply */
	struct pipe_cg *cg; /* the cgroups to join, NULL: rlimits */
};

static void plan_free(struct spawn_plan *p)
{
	size_t i;

	free(p->path);
	free(p->argv);
	free(p->env);
	for (i = 0; i < sizeof(p->env_own) / sizeof(p->env_own[0]); i++)
		free(p->env_own[i]);
	for (i = 0; i < p->n_heap; i++)
		free(p->heap[i]);
	memset(p, 0, sizeof(*p));
}

/* Keeps s alive until the plan is freed; returns s, or NULL when s is NULL
 * or there is no room (the caller then fails with VIV_ERR_NOMEM). */
static char *plan_keep(struct spawn_plan *p, char *s)
{
	if (!s)
		return NULL;
	if (p->n_heap >= sizeof(p->heap) / sizeof(p->heap[0])) {
		free(s);
		return NULL;
	}
	p->heap[p->n_heap++] = s;
	return s;
}

static enum viv_err plan_arg(struct spawn_plan *p, size_t cap, const char *arg)
{
	if (!arg)
		return VIV_ERR_NOMEM;
	if (p->argc + 1 >= cap)
		return VIV_ERR_TOO_BIG;
	p->argv[p->argc++] = arg;
	p->argv[p->argc] = NULL;
	return VIV_OK;
}

/* Finds prog in /usr/bin, then /bin, as execvp would with our PATH (execvp
 * itself is not async-signal-safe). Caller frees with free(). */
static enum viv_err find_program(const char *prog, char **out)
{
	static const char *const dirs[] = {"/usr/bin", "/bin"};
	size_t i;

	*out = NULL;
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) != 0)
			return VIV_ERR_NOT_FOUND;
		*out = strdup(prog);
		return *out ? VIV_OK : VIV_ERR_NOMEM;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *cand = viv_path_join(dirs[i], prog);
		if (!cand)
			return VIV_ERR_NOMEM;
		if (access(cand, X_OK) == 0) {
			*out = cand;
			return VIV_OK;
		}
		free(cand);
	}
	return VIV_ERR_NOT_FOUND;
}

/* The top-level system paths that Debian needs inside the sandbox: merged
 * /usr makes them symlinks into /usr, older layouts real directories. */
static enum viv_err plan_system_dir(struct spawn_plan *p, size_t cap, const char *dir)
{
	struct stat st;
	char target[PATH_MAX];
	ssize_t n;
	enum viv_err err;

	if (lstat(dir, &st) != 0)
		return VIV_OK;
	if (S_ISLNK(st.st_mode)) {
		n = readlink(dir, target, sizeof(target) - 1);
		if (n <= 0)
			return VIV_OK;
		target[n] = '\0';
		err = plan_arg(p, cap, "--symlink");
		if (!err)
			err = plan_arg(p, cap, plan_keep(p, strdup(target)));
		if (!err)
			err = plan_arg(p, cap, dir);
		return err;
	}
	if (!S_ISDIR(st.st_mode))
		return VIV_OK;
	err = plan_arg(p, cap, "--ro-bind");
	if (!err)
		err = plan_arg(p, cap, dir);
	if (!err)
		err = plan_arg(p, cap, dir);
	return err;
}

/* Where the sandbox shows the build folder and the platform's folders:
 * fixed names, so that neither the tools' output nor the build log shows
 * where anything is on the server. */
#define VIEW_BUILD "/build"
#define VIEW_INCLUDE "/vivarium/include"
#define VIEW_SDK "/vivarium/sdk"
#define VIEW_TOOLS "/vivarium/tools"

/* The rest of path after the folder dir, "" for dir itself, or NULL when
 * path is not in dir. */
static const char *path_in(const char *path, const char *dir)
{
	size_t n;

	if (!dir || !*dir)
		return NULL;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (strncmp(path, dir, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return path + n;
}

/* pipe_tool_path() for a build folder and a configuration. */
static char *tool_path(const struct pipe_config *cfg, const char *scratch, const char *path)
{
	const struct {
		const char *dir, *view;
	} views[] = {
	        {scratch, VIEW_BUILD},
	        {cfg->include_dir, VIEW_INCLUDE},
	        {cfg->sdk_dir, VIEW_SDK},
	        {cfg->tool_dir, VIEW_TOOLS},
	};
	char *out;

	if (cfg->sandbox) {
		for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
			const char *rest = path_in(path, views[i].dir);
			if (rest)
				return asprintf(&out, "%s%s", views[i].view, rest) < 0 ? NULL : out;
		}
	}
	return strdup(path);
}

char *pipe_tool_path(const struct pipe_ctx *ctx, const char *path)
{
	return tool_path(ctx->cfg, ctx->scratch, path);
}

/* The bubblewrap arguments: no namespaces shared with the host (so no
 * network), a read-only system, private /proc, /dev and /tmp, the build
 * folder writable at /build and the platform's include, SDK and tool
 * folders read-only under /vivarium. */
static enum viv_err plan_sandbox(struct spawn_plan *p, size_t cap, const struct pipe_config *cfg,
                                 const char *scratch, const char *cwd)
{
	static const char *const head[] = {
	        BWRAP,           "--unshare-all", "--die-with-parent",
	        "--new-session", "--cap-drop",    "ALL",
	        "--ro-bind",     "/usr",          "/usr",
	};
	static const char *const sysdirs[] = {"/bin",   "/sbin",  "/lib",
	                                      "/lib32", "/lib64", "/libx32"};
	static const char *const tail[] = {
	        "--ro-bind-try",
	        "/etc/alternatives",
	        "/etc/alternatives",
	        "--ro-bind-try",
	        "/etc/ld.so.cache",
	        "/etc/ld.so.cache",
	        "--proc",
	        "/proc",
	        "--dev",
	        "/dev",
	        "--tmpfs",
	        "/tmp",
	};
	const struct {
		const char *how, *dir, *view;
	} binds[] = {
	        {"--bind", scratch, VIEW_BUILD},
	        {"--ro-bind-try", cfg->include_dir, VIEW_INCLUDE},
	        {"--ro-bind-try", cfg->sdk_dir, VIEW_SDK},
	        {"--ro-bind-try", cfg->tool_dir, VIEW_TOOLS},
	};
	enum viv_err err = VIV_OK;
	size_t i;

	for (i = 0; !err && i < sizeof(head) / sizeof(head[0]); i++)
		err = plan_arg(p, cap, head[i]);
	for (i = 0; !err && i < sizeof(sysdirs) / sizeof(sysdirs[0]); i++)
		err = plan_system_dir(p, cap, sysdirs[i]);
	for (i = 0; !err && i < sizeof(tail) / sizeof(tail[0]); i++)
		err = plan_arg(p, cap, tail[i]);
	for (i = 0; !err && i < sizeof(binds) / sizeof(binds[0]); i++) {
		if (!binds[i].dir || !*binds[i].dir)
			continue;
		err = plan_arg(p, cap, binds[i].how);
		if (!err)
			err = plan_arg(p, cap, binds[i].dir);
		if (!err)
			err = plan_arg(p, cap, binds[i].view);
	}
	if (!err)
		err = plan_arg(p, cap, "--chdir");
	if (!err)
		err = plan_arg(p, cap, plan_keep(p, tool_path(cfg, scratch, cwd)));
	if (!err)
		err = plan_arg(p, cap, "--");
	return err;
}

/* True when entry is "NAME=value" with a NAME that is not one of the base
 * entries every tool gets. */
static bool env_extra_valid(const char *entry)
{
	static const char *const base[] = {"PATH", "HOME", "LANG", "TMPDIR"};
	size_t n = strcspn(entry, "=");

	if (n == 0 || entry[n] != '=')
		return false;
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		if (strlen(base[i]) == n && strncmp(entry, base[i], n) == 0)
			return false;
	}
	return true;
}

static enum viv_err plan_env(struct spawn_plan *p, const struct pipe_config *cfg,
                             const char *scratch, const char *const *extra)
{
	size_t n_extra = 0, k = 0;
	char *home;

	for (; extra && extra[n_extra]; n_extra++) {
		if (n_extra >= SPAWN_MAX_ARGS || !env_extra_valid(extra[n_extra]))
			return VIV_ERR_INVALID;
	}
	p->env = calloc(sizeof(p->env_own) / sizeof(p->env_own[0]) + n_extra + 1, sizeof(*p->env));
	home = tool_path(cfg, scratch, scratch);
	if (!p->env || !home) {
		free(home);
		return VIV_ERR_NOMEM;
	}
	if (asprintf(&p->env_own[0], "PATH=/usr/bin:/bin") < 0 ||
	    asprintf(&p->env_own[1], "HOME=%s", home) < 0 ||
	    asprintf(&p->env_own[2], "LANG=C.UTF-8") < 0 ||
	    asprintf(&p->env_own[3], "TMPDIR=%s/tmp", home) < 0) {
		/* asprintf leaves the pointer undefined on failure. */
		memset(p->env_own, 0, sizeof(p->env_own));
		free(home);
		return VIV_ERR_NOMEM;
	}
	free(home);
	for (size_t i = 0; i < sizeof(p->env_own) / sizeof(p->env_own[0]); i++)
		p->env[k++] = p->env_own[i];
	for (size_t i = 0; i < n_extra; i++)
		p->env[k++] = extra[i];
	p->env[k] = NULL;
	return VIV_OK;
}

static enum viv_err plan_make(struct spawn_plan *p, const struct pipe_config *cfg,
                              const struct pipe_cmd *cmd, const char *cwd)
{
	const char *const *argv = cmd->argv;
	enum viv_err err;
	char *prog = NULL;
	size_t n, cap, i;

	memset(p, 0, sizeof(*p));
	for (n = 0; argv[n]; n++) {
		if (n >= SPAWN_MAX_ARGS)
			return VIV_ERR_TOO_BIG;
	}
	if (n == 0)
		return VIV_ERR_INVALID;
	if (!path_in(cwd, cmd->scratch))
		return VIV_ERR_INVALID;
	cap = n + 64;
	p->argv = calloc(cap, sizeof(*p->argv));
	if (!p->argv)
		return VIV_ERR_NOMEM;
	err = find_program(argv[0], &prog);
	if (err)
		goto out;
	if (cfg->sandbox) {
		/* argv[0] keeps its name inside, where /usr is the same. */
		err = plan_sandbox(p, cap, cfg, cmd->scratch, cwd);
		if (err)
			goto out;
		p->path = strdup(BWRAP);
		if (!p->path) {
			err = VIV_ERR_NOMEM;
			goto out;
		}
		err = plan_arg(p, cap, plan_keep(p, prog));
		prog = NULL;
		if (err)
			goto out;
	} else {
		p->path = prog;
		prog = NULL;
		p->cwd = cwd;
		err = plan_arg(p, cap, argv[0]);
		if (err)
			goto out;
	}
	for (i = 1; i < n; i++) {
		err = plan_arg(p, cap, argv[i]);
		if (err)
			goto out;
	}
	err = plan_env(p, cfg, cmd->scratch, cmd->env);
	if (err)
		goto out;
	/* CPU seconds: the timeout, rounded up, plus one, so that the wall
	 * clock timeout normally fires first with a clearer message. */
	p->cpu_s = (rlim_t)(cfg->step_timeout_ms / 1000 + 2);
	p->cfg = cfg;
	p->confined = cmd->confined;
out:
	free(prog);
	if (err)
		plan_free(p);
	return err;
}

/* ---- In the child -------------------------------------------------------------- */

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn))
child_exec(const struct spawn_plan *p, int devnull, int out_w, int err_w)
{
	struct sigaction sa;
	struct rlimit rl;
	sigset_t none;
	int e;
	int sig;

	setpgid(0, 0);
	/* Signal dispositions and masks of the server must not leak into
	 * tools: an ignored SIGPIPE would survive exec. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0)
		goto fail;
	if (p->cwd && chdir(p->cwd) != 0)
		goto fail;
	rl.rlim_cur = rl.rlim_max = p->cpu_s;
	setrlimit(RLIMIT_CPU, &rl);
	rl.rlim_cur = rl.rlim_max = SPAWN_FSIZE_MAX;
	setrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = rl.rlim_max = 0;
	setrlimit(RLIMIT_CORE, &rl);
	if (p->confined) {
		if (p->cg) {
			if (pipe_cg_join(p->cg) != 0)
				goto fail;
		} else {
			pipe_limits_rlimit(p->cfg);
		}
	}
	umask(022);
	/* Every descriptor we opened is CLOEXEC; this covers any that other
	 * code in the process opened without it. */
	close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	execve(p->path, (char *const *)p->argv, (char *const *)p->env);
fail:
	e = errno;
	if (write(err_w, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* ---- Running children: start, pump, reap ------------------------------------- */

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* True when the child has ended (it is left a zombie, so its pid and
 * process group id cannot be reused until we reap it). */
static bool child_ended(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

static void read_some(int *fd, struct viv_buf *output, size_t *kept, size_t cap, bool *truncated)
{
	char chunk[16384];
	ssize_t r;

	r = read(*fd, chunk, sizeof(chunk));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (*kept < cap) {
		size_t take = (size_t)r;
		if (take > cap - *kept) {
			take = cap - *kept;
			*truncated = true;
		}
		viv_buf_append_trunc(output, chunk, take);
		*kept += take;
	} else {
		*truncated = true;
	}
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* What tools print when an allocation or a fork fails: without cgroups
 * to count what hit a limit, the rlimits' failures are known by these.
 * The output is the tenant's, who can only mislabel their own failure. */
static enum pipe_limit limit_said(const struct viv_buf *output)
{
	static const char *const memory[] = {"memory exhausted", "Cannot allocate memory",
	                                     "out of memory", "memory allocation of",
	                                     "std::bad_alloc"};
	static const char *const procs[] = {"Cannot fork", "Resource temporarily unavailable"};

	if (!output->data)
		return PIPE_LIMIT_NONE;
	for (size_t i = 0; i < sizeof(memory) / sizeof(memory[0]); i++) {
		if (strstr(output->data, memory[i]))
			return PIPE_LIMIT_MEMORY;
	}
	for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
		if (strstr(output->data, procs[i]))
			return PIPE_LIMIT_PROCS;
	}
	return PIPE_LIMIT_NONE;
}

/* The limit a failed confined command ran into, if any. */
static enum pipe_limit limit_of(const struct pipe_config *cfg, const struct pipe_cmd *cmd,
                                const struct pipe_exit *ex, const struct viv_buf *output,
                                enum pipe_limit from_cgroup)
{
	if (ex->code == 0)
		return PIPE_LIMIT_NONE;
	/* A full folder first: filling it may have cost the memory too. */
	if (cmd->confined && pipe_disk_check(cmd->scratch))
		return pipe_disk_check(cmd->scratch);
	if (from_cgroup)
		return from_cgroup;
	if (ex->signal == SIGXFSZ)
		return PIPE_LIMIT_FILE_SIZE;
	if (ex->signal == SIGXCPU)
		return PIPE_LIMIT_CPU;
	if (!cmd->confined || cfg->cgroups.memory)
		return PIPE_LIMIT_NONE;
	return limit_said(output);
}

/*
 * A child goes through three stages, as in libuv: pipe_proc_start() forks
 * and execs it; pipe_procs_wait() runs one loop that polls the output pipes,
 * pidfds and abort descriptors of any number of children, pumps what they
 * print into their buffers and notes when each ends, is stopped or runs out
 * of time; pipe_proc_finish() reaps it and says how it ended. No thread
 * waits for a child.
 */
struct pipe_proc {
	const struct pipe_config *cfg;
	const struct pipe_cmd *cmd; /* borrowed until pipe_proc_finish() */
	struct viv_buf *output;     /* borrowed likewise */
	struct spawn_plan plan;
	struct pipe_cg *cg;
	pid_t pid;
	int pidfd;  /* -1 where the kernel has no pidfds: polled every 20 ms */
	int out_fd; /* the read end of stdout and stderr; -1 once closed */
	unsigned timeout_ms;
	uint64_t start, deadline;
	size_t kept;
	bool ended;     /* the child has exited (a zombie until reaped) */
	bool timed_out; /* it was still running at its deadline */
	bool aborted;   /* its abort descriptor fired */
	bool truncated; /* output past the cap was dropped */
	bool done;      /* nothing more to wait for */
	int wait_errno; /* the loop failed while it waited: errno */
	/* Where this child's output pipe and abort descriptor sit in the
	 * loop's poll set; (nfds_t)-1 when they are not in it. */
	nfds_t out_i, abort_i;
};

/* How long a child that has ended may keep its output pipe open through a
 * process that left its group, before the pipe is no longer read. */
#define DRAIN_AFTER_END_NS 2000000000ull
/* How often a child is checked for its end without a pidfd. */
#define NO_PIDFD_POLL_MS 20

static void proc_free(struct pipe_proc *p)
{
	if (!p)
		return;
	if (p->pid > 0) {
		kill(-p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	pipe_cg_end(p->cg);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	plan_free(&p->plan);
	free(p);
}

enum viv_err pipe_proc_start(const struct pipe_config *cfg, const struct pipe_cmd *cmd,
                             struct viv_buf *output, struct pipe_proc **out, char *err_text,
                             size_t errlen)
{
	const char *const *argv = cmd->argv;
	const char *cwd = cmd->cwd ? cmd->cwd : cmd->scratch;
	struct pipe_proc *p;
	int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, devnull = -1, child_errno = 0;
	enum viv_err err;
	ssize_t r;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		viv_errf(err_text, errlen, "could not prepare %s: %s", argv[0] ? argv[0] : "",
		         viv_strerror(VIV_ERR_NOMEM));
		return VIV_ERR_NOMEM;
	}
	p->cfg = cfg;
	p->cmd = cmd;
	p->output = output;
	p->pid = -1;
	p->pidfd = -1;
	p->out_fd = -1;
	p->timeout_ms = cmd->timeout_ms ? cmd->timeout_ms : cfg->step_timeout_ms;
	err = plan_make(&p->plan, cfg, cmd, cwd);
	if (err == VIV_ERR_NOT_FOUND) {
		viv_errf(err_text, errlen, "%s is not installed on this server",
		         base_name(argv[0]));
		goto fail;
	}
	if (err) {
		viv_errf(err_text, errlen, "could not prepare %s: %s", argv[0] ? argv[0] : "",
		         viv_strerror(err));
		goto fail;
	}
	if (cmd->confined) {
		err = pipe_cg_make(cfg, &p->cg);
		if (err && err != VIV_ERR_UNSUPPORTED) {
			viv_errf(err_text, errlen, "could not set the build limits for %s: %s",
			         base_name(argv[0]), viv_strerror(err));
			goto fail;
		}
		p->plan.cg = p->cg;
	}
	err = VIV_ERR_IO;
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(out_p, O_CLOEXEC) != 0 || pipe2(err_p, O_CLOEXEC) != 0) {
		viv_errf(err_text, errlen, "could not set up %s: %s", argv[0], strerror(errno));
		goto fail;
	}
	p->start = viv_mono_ns();
	p->deadline = p->start + (uint64_t)p->timeout_ms * 1000000u;
	p->pid = fork();
	if (p->pid < 0) {
		viv_errf(err_text, errlen, "could not start %s: %s", argv[0], strerror(errno));
		goto fail;
	}
	if (p->pid == 0)
		child_exec(&p->plan, devnull, out_p[1], err_p[1]);
	/* Set the group here too, so that a kill cannot race the child's own
	 * setpgid; EACCES after its exec is harmless. */
	setpgid(p->pid, p->pid);
	close(out_p[1]);
	out_p[1] = -1;
	close(err_p[1]);
	err_p[1] = -1;
	close(devnull);
	devnull = -1;
	/* The exec closes err_p's write end; a failure before it writes errno. */
	do {
		r = read(err_p[0], &child_errno, sizeof(child_errno));
	} while (r < 0 && errno == EINTR);
	close(err_p[0]);
	err_p[0] = -1;
	if (r == (ssize_t)sizeof(child_errno)) {
		viv_errf(err_text, errlen, "could not start %s: %s", argv[0],
		         strerror(child_errno));
		err = child_errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
		goto fail;
	}
	fcntl(out_p[0], F_SETFL, O_NONBLOCK);
	p->out_fd = out_p[0];
	p->pidfd = pidfd_open_compat(p->pid);
	*out = p;
	return VIV_OK;
fail:
	for (int i = 0; i < 2; i++) {
		if (out_p[i] >= 0)
			close(out_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
	}
	if (devnull >= 0)
		close(devnull);
	proc_free(p);
	return err;
}

/* The deadline first: past it, a child still running has timed out, and
 * one already gone has only an escaped grandchild holding its pipe, which
 * is no longer read. */
static void proc_check_deadline(struct pipe_proc *p, uint64_t now)
{
	if (p->done || now < p->deadline)
		return;
	p->timed_out = !p->ended;
	p->done = true;
}

/* Adds the child's descriptors to the poll set at fds[*nfds] and cuts
 * *timeout_ms to its deadline. */
static void proc_add_fds(struct pipe_proc *p, struct pollfd *fds, nfds_t *nfds, uint64_t now,
                         int *timeout_ms)
{
	uint64_t left_ms = (p->deadline - now + 999999) / 1000000;

	p->out_i = p->abort_i = (nfds_t)-1;
	if (p->out_fd >= 0) {
		p->out_i = *nfds;
		fds[(*nfds)++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
	}
	if (!p->ended && p->pidfd >= 0)
		fds[(*nfds)++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
	if (!p->ended && p->cmd->abort_fd >= 0) {
		p->abort_i = *nfds;
		fds[(*nfds)++] = (struct pollfd){.fd = p->cmd->abort_fd, .events = POLLIN};
	}
	if (!p->ended && p->pidfd < 0 && left_ms > NO_PIDFD_POLL_MS)
		left_ms = NO_PIDFD_POLL_MS;
	if (*timeout_ms < 0 || left_ms < (uint64_t)*timeout_ms)
		*timeout_ms = (int)left_ms;
}

/* After a poll: reads what the child printed, and notes its end. Once it
 * has ended, whatever is left of its group is killed, so that no tool
 * outlives its step, and its pipe is read until it closes. */
static void proc_pump(struct pipe_proc *p, const struct pollfd *fds)
{
	if (p->abort_i != (nfds_t)-1 && fds[p->abort_i].revents) {
		p->aborted = true;
		p->done = true;
		return;
	}
	if (p->out_i != (nfds_t)-1 && fds[p->out_i].revents)
		read_some(&p->out_fd, p->output, &p->kept, p->cfg->step_output_cap, &p->truncated);
	if (!p->ended && child_ended(p->pid)) {
		uint64_t drain = viv_mono_ns() + DRAIN_AFTER_END_NS;

		p->ended = true;
		kill(-p->pid, SIGKILL);
		if (p->deadline > drain)
			p->deadline = drain;
	}
	if (p->ended && p->out_fd < 0)
		p->done = true;
}

enum viv_err pipe_procs_wait(struct pipe_proc *const *procs, size_t n)
{
	struct pollfd small[3 * 4], *fds = small;
	enum viv_err err = VIV_OK;

	if (n > sizeof(small) / sizeof(small[0]) / 3) {
		fds = calloc(n * 3, sizeof(*fds));
		if (!fds)
			return VIV_ERR_NOMEM;
	}
	for (;;) {
		uint64_t now = viv_mono_ns();
		nfds_t nfds = 0;
		size_t active = 0;
		int timeout_ms = -1, rc;

		for (size_t i = 0; i < n; i++) {
			proc_check_deadline(procs[i], now);
			if (procs[i]->done)
				continue;
			proc_add_fds(procs[i], fds, &nfds, now, &timeout_ms);
			active++;
		}
		if (active == 0)
			break;
		if (nfds == 0) {
			/* Every pipe is closed, and the children still run
			 * with no pidfd: look for their end shortly. */
			nanosleep(&(struct timespec){0, NO_PIDFD_POLL_MS * 1000000L}, NULL);
			rc = 0;
		} else {
			rc = poll(fds, nfds, timeout_ms);
		}
		if (rc < 0 && errno != EINTR) {
			/* Waiting itself failed: every child still waited for
			 * ends with that error, not as if it had timed out. */
			int e = errno;

			for (size_t i = 0; i < n; i++) {
				if (!procs[i]->done) {
					procs[i]->wait_errno = e;
					procs[i]->done = true;
				}
			}
			err = VIV_ERR_IO;
			break;
		}
		for (size_t i = 0; rc >= 0 && i < n; i++) {
			if (!procs[i]->done)
				proc_pump(procs[i], fds);
		}
	}
	if (fds != small)
		free(fds);
	return err;
}

enum viv_err pipe_proc_finish(struct pipe_proc *p, struct pipe_exit *exit_out, char *err_text,
                              size_t errlen)
{
	const char *tool = base_name(p->cmd->argv[0]);
	enum pipe_limit cg_limit;
	enum viv_err err = VIV_OK;
	int status = 0;

	if (!p->done) {
		/* Finished before the loop was done with it: stopped. */
		p->aborted = true;
	}
	if (p->timed_out || p->aborted || p->wait_errno || !p->ended) {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
	}
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = -1;
	cg_limit = pipe_cg_end(p->cg);
	p->cg = NULL;
	if (p->truncated)
		viv_buf_append_trunc(p->output, "\n[output truncated]\n", 20);
	memset(exit_out, 0, sizeof(*exit_out));
	exit_out->truncated = p->truncated;
	exit_out->ms = (int64_t)((viv_mono_ns() - p->start) / 1000000);
	if (WIFEXITED(status)) {
		exit_out->code = WEXITSTATUS(status);
	} else {
		exit_out->code = -1;
		exit_out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	if (p->wait_errno) {
		viv_errf(err_text, errlen, "waiting for %s failed: %s", tool,
		         strerror(p->wait_errno));
		err = VIV_ERR_IO;
	} else if (p->aborted) {
		viv_errf(err_text, errlen, "%s was stopped: the build was cancelled", tool);
		err = VIV_ERR_IO;
	} else if (p->timed_out) {
		viv_errf(err_text, errlen, "%s took longer than %g s and was stopped", tool,
		         p->timeout_ms / 1000.0);
		err = VIV_ERR_TIMEOUT;
	} else {
		exit_out->limit = limit_of(p->cfg, p->cmd, exit_out, p->output, cg_limit);
		if (exit_out->limit) {
			pipe_limit_text(p->cfg, exit_out->limit, tool, err_text, errlen);
			err = VIV_ERR_TOO_BIG;
		}
	}
	proc_free(p);
	return err;
}

enum viv_err pipe_spawn_cmd(const struct pipe_config *cfg, const struct pipe_cmd *cmd,
                            struct viv_buf *output, struct pipe_exit *exit_out, char *err_text,
                            size_t errlen)
{
	struct pipe_proc *p = NULL;
	enum viv_err err, finish;

	err = pipe_proc_start(cfg, cmd, output, &p, err_text, errlen);
	if (err)
		return err;
	/* A failed wait is also recorded in p, and pipe_proc_finish says so
	 * in err_text. */
	err = pipe_procs_wait(&p, 1);
	finish = pipe_proc_finish(p, exit_out, err_text, errlen);
	return finish ? finish : err;
}

enum viv_err pipe_spawn(const struct pipe_config *cfg, const char *scratch, const char *cwd,
                        const char *const *argv, struct viv_buf *output, struct pipe_exit *exit_out,
                        char *err_text, size_t errlen)
{
	struct pipe_cmd cmd = {scratch, cwd, argv, NULL, 0, false, -1};

	return pipe_spawn_cmd(cfg, &cmd, output, exit_out, err_text, errlen);
}

/* The command that runs argv for ctx, its timeout cut to the build's
 * deadline; VIV_ERR_TIMEOUT, with the sentence in err, when that has
 * passed. */
static enum viv_err ctx_cmd(const struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                            struct pipe_cmd *cmd, char *err_text, size_t errlen)
{
	*cmd = (struct pipe_cmd){ctx->scratch, cwd, argv, ctx->env, 0, ctx->confined, -1};
	if (ctx->deadline_ns) {
		uint64_t now = viv_mono_ns();
		uint64_t left_ms = ctx->deadline_ns > now ? (ctx->deadline_ns - now) / 1000000 : 0;

		if (left_ms == 0) {
			viv_errf(err_text, errlen,
			         "the build took longer than its %u s and was stopped",
			         ctx->cfg->build_timeout_ms / 1000);
			return VIV_ERR_TIMEOUT;
		}
		if (left_ms < ctx->cfg->step_timeout_ms)
			cmd->timeout_ms = (unsigned)left_ms;
	}
	return VIV_OK;
}

/* Whether ctx's commands go to the launcher (the language step's, when
 * there is one) rather than run here. */
static bool ctx_remote(const struct pipe_ctx *ctx)
{
	return ctx->confined && ctx->cfg->launcher;
}

/* Runs argv for ctx: in the launcher when the command is the language
 * step's and there is one, else here; the timeout cut to the build's
 * deadline. */
static enum viv_err ctx_spawn(const struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                              struct viv_buf *output, struct pipe_exit *ex, char *err_text,
                              size_t errlen)
{
	struct pipe_cmd cmd;
	enum viv_err err;

	err = ctx_cmd(ctx, cwd, argv, &cmd, err_text, errlen);
	if (err)
		return err;
	if (ctx_remote(ctx))
		return pipe_launcher_run(ctx->cfg, &cmd, output, ex, err_text, errlen);
	return pipe_spawn_cmd(ctx->cfg, &cmd, output, ex, err_text, errlen);
}

enum viv_err pipe_read_built(const struct pipe_ctx *ctx, const char *rel, const char *what,
                             size_t cap, char **out, size_t *len_out, char *err, size_t errlen)
{
	char why[160];
	enum viv_err e;
	int dfd;

	*out = NULL;
	dfd = open(ctx->scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		viv_errf(err, errlen, "could not open the build folder: %s", strerror(errno));
		return VIV_ERR_IO;
	}
	e = viv_read_beneath(dfd, rel, cap, out, len_out, why, sizeof(why));
	close(dfd);
	if (e)
		viv_errf(err, errlen, "%s (%s) cannot be used: %s", what, rel, why);
	return e;
}

/* ---- With the build log ------------------------------------------------------- */

/* Appends arg to the log as a shell would need it quoted, so that the
 * command line can be read (and pasted) unambiguously. Nothing runs it. */
static void log_arg(struct pipe_ctx *ctx, const char *arg)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                           "0123456789_-+=/.,:@%";
	const char *p;

	if (*arg && strspn(arg, safe) == strlen(arg)) {
		viv_buf_append_trunc(&ctx->log, arg, strlen(arg));
		return;
	}
	viv_buf_append_trunc(&ctx->log, "'", 1);
	for (p = arg; *p; p++) {
		if (*p == '\'')
			viv_buf_append_trunc(&ctx->log, "'\\''", 4);
		else
			viv_buf_append_trunc(&ctx->log, p, 1);
	}
	viv_buf_append_trunc(&ctx->log, "'", 1);
}

static void log_command(struct pipe_ctx *ctx, const char *const *argv)
{
	size_t i;

	viv_buf_append_trunc(&ctx->log, "$", 1);
	for (i = 0; argv[i]; i++) {
		viv_buf_append_trunc(&ctx->log, " ", 1);
		log_arg(ctx, argv[i]);
	}
	viv_buf_append_trunc(&ctx->log, "\n", 1);
}

static void log_status(struct pipe_ctx *ctx, enum viv_err err, const struct pipe_exit *ex,
                       const char *msg)
{
	if (err == VIV_ERR_TIMEOUT)
		pipe_logf(ctx, "[%s]\n", msg);
	else if (err)
		pipe_logf(ctx, "[%s]\n", msg);
	else if (ex->signal)
		pipe_logf(ctx, "[killed by signal %d after %lld ms]\n", ex->signal,
		          (long long)ex->ms);
	else
		pipe_logf(ctx, "[exit status %d, %lld ms]\n", ex->code, (long long)ex->ms);
}

/* Before the first command of a language step that runs as the build
 * user, what the toolchain prepared in the build folder becomes the build
 * user's group's to write. */
static enum viv_err ctx_share(struct pipe_ctx *ctx, char *err_text, size_t errlen)
{
	enum viv_err err;

	if (!ctx->confined || ctx->shared || ctx->cfg->build_gid == (gid_t)-1)
		return VIV_OK;
	err = pipe_share_tree(ctx->scratch, ctx->cfg->build_gid);
	if (err)
		viv_errf(err_text, errlen, "could not hand the build folder to the build user: %s",
		         viv_strerror(err));
	ctx->shared = !err;
	return err;
}

static enum viv_err run_into(struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                             bool log_output, struct viv_buf *output, struct pipe_exit *ex,
                             char *err_text, size_t errlen)
{
	enum viv_err err;

	log_command(ctx, argv);
	err = ctx_share(ctx, err_text, errlen);
	if (!err)
		err = ctx_spawn(ctx, cwd, argv, output, ex, err_text, errlen);
	if (log_output && output->len > 0) {
		viv_buf_append_trunc(&ctx->log, output->data, output->len);
		if (output->data[output->len - 1] != '\n')
			viv_buf_append_trunc(&ctx->log, "\n", 1);
	}
	log_status(ctx, err, ex, err_text);
	return err;
}

enum viv_err pipe_run_output(struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                             struct pipe_exit *exit_out, char **output_out, char *err_text,
                             size_t errlen)
{
	struct viv_buf output;
	struct pipe_exit ex;
	enum viv_err err;

	if (output_out)
		*output_out = NULL;
	memset(&ex, 0, sizeof(ex));
	viv_buf_init(&output, ctx->cfg->step_output_cap + 64);
	err = run_into(ctx, cwd, argv, true, &output, &ex, err_text, errlen);
	pipe_log_flush(ctx);
	if (!err || err == VIV_ERR_TIMEOUT)
		*exit_out = ex;
	if (output_out && (!err || err == VIV_ERR_TIMEOUT)) {
		*output_out = viv_buf_steal(&output);
		if (!*output_out)
			err = VIV_ERR_NOMEM;
	}
	viv_buf_free(&output);
	return err;
}

enum viv_err pipe_run(struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                      struct pipe_exit *exit_out, char *err_text, size_t errlen)
{
	return pipe_run_output(ctx, cwd, argv, exit_out, NULL, err_text, errlen);
}

enum viv_err pipe_run_ok(struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                         char *err_text, size_t errlen)
{
	struct pipe_exit ex;
	enum viv_err err;

	err = pipe_run(ctx, cwd, argv, &ex, err_text, errlen);
	if (err)
		return err;
	if (ex.code != 0) {
		if (ex.signal)
			viv_errf(err_text, errlen, "%s was killed by signal %d", base_name(argv[0]),
			         ex.signal);
		else
			viv_errf(err_text, errlen, "%s failed (exit status %d)", base_name(argv[0]),
			         ex.code);
		return VIV_ERR_BUILD;
	}
	return VIV_OK;
}

/* ---- Several at once ---------------------------------------------------------- */

/* One command of pipe_run_all(). */
struct run_job {
	const char *const *argv;
	struct pipe_cmd cmd;
	struct pipe_proc *proc; /* while it runs */
	struct viv_buf output;
	struct pipe_exit ex;
	enum viv_err err;
	char err_text[256];
};

/* Starts every job here, waits for them all in one loop, and reaps them. */
static void run_jobs_here(struct pipe_ctx *ctx, struct run_job *jobs, size_t n)
{
	struct pipe_proc **procs;
	size_t running = 0;
	enum viv_err err;

	procs = calloc(n, sizeof(*procs));
	for (size_t i = 0; i < n; i++) {
		struct run_job *j = &jobs[i];

		if (j->err)
			continue;
		if (!procs) {
			j->err = VIV_ERR_NOMEM;
			viv_errf(j->err_text, sizeof(j->err_text), "could not start %s: %s",
			         j->argv[0], viv_strerror(j->err));
			continue;
		}
		j->err = pipe_proc_start(ctx->cfg, &j->cmd, &j->output, &j->proc, j->err_text,
		                         sizeof(j->err_text));
		if (!j->err)
			procs[running++] = j->proc;
	}
	if (procs) {
		err = pipe_procs_wait(procs, running);
		if (err == VIV_ERR_NOMEM)
			viv_log(VIV_ERROR, "could not wait for %zu commands: %s", running,
			        viv_strerror(err));
	}
	for (size_t i = 0; i < n; i++) {
		struct run_job *j = &jobs[i];

		if (j->proc)
			j->err =
			        pipe_proc_finish(j->proc, &j->ex, j->err_text, sizeof(j->err_text));
		j->proc = NULL;
	}
	free(procs);
}

enum viv_err pipe_run_all(struct pipe_ctx *ctx, const char *cwd, const char *const *const *argvs,
                          size_t n, char *err_text, size_t errlen)
{
	struct run_job *jobs;
	enum viv_err err = VIV_OK;

	if (n == 0)
		return VIV_OK;
	err = ctx_share(ctx, err_text, errlen);
	if (err)
		return err;
	jobs = calloc(n, sizeof(*jobs));
	if (!jobs)
		return VIV_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		jobs[i].argv = argvs[i];
		viv_buf_init(&jobs[i].output, ctx->cfg->step_output_cap + 64);
		jobs[i].err = ctx_cmd(ctx, cwd, argvs[i], &jobs[i].cmd, jobs[i].err_text,
		                      sizeof(jobs[i].err_text));
	}
	if (ctx_remote(ctx)) {
		/* The launcher runs one command per request, each in a
		 * process of its own there: these go one after another. */
		for (size_t i = 0; i < n; i++) {
			if (!jobs[i].err)
				jobs[i].err = pipe_launcher_run(
				        ctx->cfg, &jobs[i].cmd, &jobs[i].output, &jobs[i].ex,
				        jobs[i].err_text, sizeof(jobs[i].err_text));
		}
	} else {
		run_jobs_here(ctx, jobs, n);
	}
	/* The log reads as if they had run one after another. */
	for (size_t i = 0; i < n; i++) {
		struct run_job *j = &jobs[i];

		log_command(ctx, j->argv);
		if (j->output.len > 0) {
			viv_buf_append_trunc(&ctx->log, j->output.data, j->output.len);
			if (j->output.data[j->output.len - 1] != '\n')
				viv_buf_append_trunc(&ctx->log, "\n", 1);
		}
		log_status(ctx, j->err, &j->ex, j->err_text);
		if (err)
			continue;
		if (j->err) {
			err = j->err;
			viv_errf(err_text, errlen, "%s", j->err_text);
		} else if (j->ex.code != 0) {
			err = VIV_ERR_BUILD;
			if (j->ex.signal)
				viv_errf(err_text, errlen, "%s was killed by signal %d",
				         base_name(j->argv[0]), j->ex.signal);
			else
				viv_errf(err_text, errlen, "%s failed (exit status %d)",
				         base_name(j->argv[0]), j->ex.code);
		}
	}
	pipe_log_flush(ctx);
	for (size_t i = 0; i < n; i++)
		viv_buf_free(&jobs[i].output);
	free(jobs);
	return err;
}

/* ---- Sandbox check ------------------------------------------------------------ */

bool pipe_sandbox_available(const struct pipe_config *with, char *errbuf, size_t errlen)
{
	static const char *const argv[] = {"/bin/true", NULL};
	struct pipe_config cfg;
	struct viv_buf output;
	struct pipe_exit ex;
	char dir[] = "/tmp/viv-sandbox-XXXXXX";
	char tmp[sizeof(dir) + 4];
	char detail[256];
	enum viv_err err;
	bool ok = false;

	viv_errf(errbuf, errlen, "%s", "");
	if (access(BWRAP, X_OK) != 0) {
		viv_errf(errbuf, errlen, "bubblewrap (%s) is not installed", BWRAP);
		return false;
	}
	if (!mkdtemp(dir)) {
		viv_errf(errbuf, errlen, "could not make a temporary directory: %s",
		         strerror(errno));
		return false;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	mkdir(tmp, 0700);
	if (with)
		cfg = *with;
	else
		pipe_config_defaults(&cfg);
	cfg.sandbox = true;
	cfg.step_timeout_ms = 10000;
	cfg.step_output_cap = 4096;
	viv_buf_init(&output, 8192);
	memset(&ex, 0, sizeof(ex));
	err = pipe_spawn(&cfg, dir, dir, argv, &output, &ex, detail, sizeof(detail));
	if (err) {
		viv_errf(errbuf, errlen, "bubblewrap could not run: %s", detail);
	} else if (ex.code != 0) {
		/* bwrap's own complaint, e.g. about user namespaces. */
		char *nl = output.data ? strchr(output.data, '\n') : NULL;
		if (nl)
			*nl = '\0';
		viv_errf(errbuf, errlen, "bubblewrap could not make a sandbox: %s",
		         output.data && *output.data ? output.data : "no reason given");
	} else {
		ok = true;
	}
	viv_buf_free(&output);
	viv_rmtree_or_log(dir);
	return ok;
}
