/* Child processes: exit status, output cap, timeout, argv without a
 * shell, and the sandbox. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static char *scratch;
static struct pipe_config cfg;
static struct viv_buf out;
static struct pipe_exit ex;
static char err[1024];

static void setup(void)
{
	char *tmp;

	scratch = t_tmpdir();
	tmp = viv_path_join(scratch, "tmp");
	cr_assert_eq(viv_mkdirs(tmp, 0755), VIV_OK);
	free(tmp);
	t_config(&cfg, false);
	cfg.step_timeout_ms = 10000;
	viv_buf_init(&out, 0);
	memset(&ex, 0, sizeof(ex));
	err[0] = '\0';
}

static void teardown(void)
{
	viv_buf_free(&out);
	viv_rmtree_or_log(scratch);
	free(scratch);
}

TestSuite(spawn, .init = setup, .fini = teardown);

static enum viv_err run(const char *const *argv)
{
	out.len = 0;
	if (out.data)
		out.data[0] = '\0';
	return pipe_spawn(&cfg, scratch, NULL, argv, &out, &ex, err, sizeof(err));
}

Test(spawn, exit_status_and_output)
{
	const char *ok[] = {"sh", "-c", "echo out; echo err >&2; exit 0", NULL};
	const char *fail[] = {"sh", "-c", "echo failing; exit 3", NULL};

	cr_assert_eq(run(ok), VIV_OK, "%s", err);
	cr_assert_eq(ex.code, 0);
	cr_assert_str_eq(out.data, "out\nerr\n");
	cr_assert_eq(run(fail), VIV_OK, "%s", err);
	cr_assert_eq(ex.code, 3);
	cr_assert_str_eq(out.data, "failing\n");
}

Test(spawn, killed_by_a_signal)
{
	const char *argv[] = {"sh", "-c", "kill -SEGV $$", NULL};

	cr_assert_eq(run(argv), VIV_OK, "%s", err);
	cr_assert_eq(ex.code, -1);
	cr_assert_eq(ex.signal, SIGSEGV);
}

Test(spawn, environment_is_minimal_and_cwd_is_set)
{
	const char *argv[] = {"sh", "-c", "env | sort; pwd", NULL};
	char want[1024];

	setenv("VIV_SECRET_TEST", "leak", 1);
	cr_assert_eq(run(argv), VIV_OK, "%s", err);
	cr_assert_null(strstr(out.data, "VIV_SECRET_TEST"), "%s", out.data);
	snprintf(want, sizeof(want), "HOME=%s\n", scratch);
	cr_assert(strstr(out.data, want), "%s", out.data);
	snprintf(want, sizeof(want), "TMPDIR=%s/tmp\n", scratch);
	cr_assert(strstr(out.data, want), "%s", out.data);
	cr_assert(strstr(out.data, "PATH=/usr/bin:/bin\n"), "%s", out.data);
	cr_assert(strstr(out.data, "LANG=C.UTF-8\n"), "%s", out.data);
	snprintf(want, sizeof(want), "%s\n", scratch);
	cr_assert(strstr(out.data, want), "%s", out.data);
}

Test(spawn, output_cap_keeps_reading_and_notes_truncation)
{
	const char *argv[] = {"sh", "-c",
	                      "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo done >&2", NULL};

	cfg.step_output_cap = 1000;
	cr_assert_eq(run(argv), VIV_OK, "%s", err);
	/* The child was not blocked on a full pipe: it finished. */
	cr_assert_eq(ex.code, 0);
	cr_assert(ex.truncated);
	cr_assert_eq(out.len, 1000 + strlen("\n[output truncated]\n"));
	cr_assert(strstr(out.data, "[output truncated]"));
}

Test(spawn, timeout_kills_the_whole_group)
{
	/* The shell's child sleep holds the pipe; both must go. */
	const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30; echo never", NULL};
	uint64_t t0 = viv_mono_ns();

	cfg.step_timeout_ms = 300;
	cr_assert_eq(run(argv), VIV_ERR_TIMEOUT);
	cr_assert_str_eq(err, "sh took longer than 0.3 s and was stopped");
	cr_assert_lt((viv_mono_ns() - t0) / 1000000, 5000);
	cr_assert_eq(ex.signal, SIGKILL);
}

Test(spawn, timeout_of_sleep)
{
	const char *argv[] = {"sleep", "60", NULL};

	cfg.step_timeout_ms = 1000;
	cr_assert_eq(run(argv), VIV_ERR_TIMEOUT);
	cr_assert_str_eq(err, "sleep took longer than 1 s and was stopped");
}

Test(spawn, argv_is_not_interpreted_by_a_shell)
{
	const char *argv[] = {"printf", "[%s]\\n", "a b", "'q'", "\"d\"",
	                      "$(id)",  ";ls",     "*",   NULL};

	cr_assert_eq(run(argv), VIV_OK, "%s", err);
	cr_assert_str_eq(out.data, "[a b]\n['q']\n[\"d\"]\n[$(id)]\n[;ls]\n[*]\n");
}

Test(spawn, missing_program)
{
	const char *argv[] = {"no-such-tool-here", NULL};

	cr_assert_eq(run(argv), VIV_ERR_NOT_FOUND);
	cr_assert_str_eq(err, "no-such-tool-here is not installed on this server");
}

Test(spawn, stdin_is_empty_and_no_fd_leaks)
{
	const char *argv[] = {"sh", "-c", "cat; ls /proc/self/fd | wc -l", NULL};
	int fd = dup(1); /* without CLOEXEC, as careless code might */

	cr_assert_eq(run(argv), VIV_OK, "%s", err);
	/* 0, 1, 2 and the fd ls opens to read the folder */
	cr_assert_str_eq(out.data, "4\n", "%s", out.data);
	close(fd);
}

/* Several children in one loop: each keeps its own output, cap and
 * timeout, and they run at the same time, not one after another. */
Test(spawn, one_loop_waits_for_several)
{
	const char *a[] = {"sh", "-c", "sleep 0.5; echo first", NULL};
	const char *b[] = {"sh", "-c", "echo second; sleep 0.5; echo again >&2", NULL};
	const char *c[] = {"sh", "-c", "sleep 30", NULL};
	const char *const *argvs[] = {a, b, c};
	struct pipe_cmd cmds[3];
	struct pipe_proc *procs[3];
	struct viv_buf outs[3];
	struct pipe_exit exits[3];
	enum viv_err errs[3];
	uint64_t t0 = viv_mono_ns();

	for (int i = 0; i < 3; i++) {
		cmds[i] = (struct pipe_cmd){scratch,           NULL,  argvs[i], NULL,
		                            i == 2 ? 1000 : 0, false, -1};
		viv_buf_init(&outs[i], 0);
		cr_assert_eq(pipe_proc_start(&cfg, &cmds[i], &outs[i], &procs[i], err, sizeof(err)),
		             VIV_OK, "%s", err);
	}
	cr_assert_eq(pipe_procs_wait(procs, 3), VIV_OK);
	for (int i = 0; i < 3; i++)
		errs[i] = pipe_proc_finish(procs[i], &exits[i], err, sizeof(err));
	/* Side by side: about one second (the timeout), not two. */
	cr_assert_lt(viv_mono_ns() - t0, 1900000000ull);
	cr_assert_eq(errs[0], VIV_OK);
	cr_assert_str_eq(outs[0].data, "first\n");
	cr_assert_eq(errs[1], VIV_OK);
	cr_assert_str_eq(outs[1].data, "second\nagain\n");
	cr_assert_eq(exits[1].code, 0);
	cr_assert_eq(errs[2], VIV_ERR_TIMEOUT);
	cr_assert_str_eq(err, "sh took longer than 1 s and was stopped");
	for (int i = 0; i < 3; i++)
		viv_buf_free(&outs[i]);
}

/* A wait that fails is that failure, not a timeout: here poll() is
 * refused (more descriptors than RLIMIT_NOFILE allows). */
Test(spawn, a_failed_wait_is_an_error_not_a_timeout)
{
	const char *argv[] = {"sleep", "30", NULL};
	struct pipe_cmd cmd = {scratch, NULL, argv, NULL, 0, false, -1};
	struct pipe_proc *procs[4];
	struct rlimit rl;
	enum viv_err e;
	uint64_t t0;

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pipe_proc_start(&cfg, &cmd, &out, &procs[i], err, sizeof(err)), VIV_OK,
		             "%s", err);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 2;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	t0 = viv_mono_ns();
	cr_assert_eq(pipe_procs_wait(procs, 4), VIV_ERR_IO);
	cr_assert_lt(viv_mono_ns() - t0, 5000000000ull);
	for (int i = 0; i < 4; i++) {
		e = pipe_proc_finish(procs[i], &ex, err, sizeof(err));
		cr_assert_eq(e, VIV_ERR_IO);
		cr_assert_str_eq(err, "waiting for sleep failed: Invalid argument");
		cr_assert_eq(ex.signal, SIGKILL);
	}
}

Test(spawn, run_logs_the_command_and_status)
{
	struct pipe_ctx ctx;
	const char *argv[] = {"sh", "-c", "echo hi; exit 2", NULL};
	struct pipe_exit e;

	pipe_ctx_init(&ctx, &cfg, scratch);
	cr_assert_eq(pipe_run(&ctx, NULL, argv, &e, err, sizeof(err)), VIV_OK);
	cr_assert_eq(e.code, 2);
	cr_assert(strncmp(ctx.log.data, "$ sh -c 'echo hi; exit 2'\nhi\n[exit status 2, ", 44) == 0,
	          "%s", ctx.log.data);
	cr_assert_eq(pipe_run_ok(&ctx, NULL, argv, err, sizeof(err)), VIV_ERR_BUILD);
	cr_assert_str_eq(err, "sh failed (exit status 2)");
	pipe_ctx_free(&ctx);
}

Test(sandbox, cannot_see_root_or_reach_the_network)
{
	int lfd;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	char cmd[256];

	if (!t_sandbox_ok())
		cr_skip_test("bubblewrap cannot run here");
	setup();
	/* A listener on the host's loopback: reachable outside the sandbox,
	 * not from inside. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	getsockname(lfd, (struct sockaddr *)&sa, &salen);
	snprintf(cmd, sizeof(cmd),
	         "ls /root >/dev/null 2>&1 && echo root-visible;"
	         "echo > /dev/tcp/127.0.0.1/%d && echo net-reachable;"
	         "touch /usr/x 2>/dev/null && echo usr-writable;"
	         "touch \"$HOME/ok\" && echo scratch-writable; echo end",
	         ntohs(sa.sin_port));
	{
		const char *argv[] = {"bash", "-c", cmd, NULL};

		/* Control: without the sandbox the listener is reachable. */
		cr_assert_eq(run(argv), VIV_OK, "%s", err);
		cr_assert(strstr(out.data, "net-reachable"), "%s", out.data);
		cfg.sandbox = true;
		cr_assert_eq(run(argv), VIV_OK, "%s", err);
		cr_assert_null(strstr(out.data, "root-visible"), "%s", out.data);
		cr_assert_null(strstr(out.data, "net-reachable"), "%s", out.data);
		cr_assert_null(strstr(out.data, "usr-writable"), "%s", out.data);
		cr_assert(strstr(out.data, "scratch-writable"), "%s", out.data);
		cr_assert(strstr(out.data, "end"), "%s", out.data);
	}
	close(lfd);
	teardown();
}

Test(sandbox, timeout_inside_the_sandbox)
{
	const char *argv[] = {"sleep", "60", NULL};

	if (!t_sandbox_ok())
		cr_skip_test("bubblewrap cannot run here");
	setup();
	cfg.sandbox = true;
	cfg.step_timeout_ms = 500;
	cr_assert_eq(run(argv), VIV_ERR_TIMEOUT);
	cr_assert_str_eq(err, "sleep took longer than 0.5 s and was stopped");
	teardown();
}

Test(sandbox, available_reports)
{
	char why[256] = "unset";
	bool ok = pipe_sandbox_available(NULL, why, sizeof(why));

	if (ok)
		cr_assert_str_eq(why, "");
	else
		cr_assert(strstr(why, "bubblewrap"), "%s", why);
}
