/* Tests of the viv client: the built binary against the real API in a
 * forked child, checking what a user reads and the exit status, plus the
 * directory packer on its own. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_server.h"
#include "cli.h"
#include "store.h"
#include "viv.h"

/* What a run of viv printed (stdout and stderr together) and its status. */
struct trun {
	int status; /* exit status, or -1 when killed */
	char *out;
};

/* Runs viv with args in cwd (NULL: a fresh empty directory, so that no
 * token file is found), with VIV_API and VIV_TOKEN as given (NULL: unset). */
static void run_viv(const char *cwd, const char *api_env, const char *token_env,
		    const char *const *args, struct trun *r)
{
	char empty[] = "/tmp/viv-cli-cwd-XXXXXX";
	const char *argv[16];
	struct viv_buf out;
	char chunk[4096];
	int fds[2], status = 0;
	size_t n = 0;
	ssize_t got;
	pid_t pid;

	if (!cwd) {
		cr_assert_not_null(mkdtemp(empty));
		cwd = empty;
	}
	argv[n++] = "viv";
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		if (chdir(cwd) != 0)
			_exit(126);
		unsetenv("VIV_API");
		unsetenv("VIV_TOKEN");
		if (api_env)
			setenv("VIV_API", api_env, 1);
		if (token_env)
			setenv("VIV_TOKEN", token_env, 1);
		execv(VIV_BIN, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	viv_buf_init(&out, 1u << 20);
	for (;;) {
		got = read(fds[0], chunk, sizeof(chunk));
		if (got <= 0)
			break;
		viv_buf_append_trunc(&out, chunk, (size_t)got);
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	r->out = viv_buf_steal(&out);
	cr_assert_not_null(r->out);
	if (cwd == empty)
		rmdir(empty);
}

/* Asserts that what viv printed contains text. */
static void assert_says(const struct trun *r, const char *text)
{
	cr_assert_not_null(strstr(r->out, text), "viv did not say \"%s\":\n%s", text, r->out);
}

/* Writes text to dir/name, making parent folders. */
static void put(const char *dir, const char *name, const char *text)
{
	char *p = viv_path_join(dir, name), *slash;

	cr_assert_not_null(p);
	slash = strrchr(p, '/');
	*slash = '\0';
	cr_assert_eq(viv_mkdirs(p, 0755), VIV_OK);
	*slash = '/';
	cr_assert_eq(viv_write_file_atomic(p, text, strlen(text), 0644), VIV_OK);
	free(p);
}

Test(cli, apps_lists_nothing_then_a_deployed_app, .timeout = 240)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", dir[128];
	struct tsrv s;
	struct trun r;

	tsrv_start(&s, 0, NULL);
	run_viv(NULL, NULL, NULL, (const char *[]){"--api", s.base, "--token", s.token, "apps", NULL},
		&r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "no apps yet");
	free(r.out);

	/* The folder's name, lowercased and cleaned up, is the app name. */
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/Hello_World", tmp);
	put(dir, "hello.wat", twat_hello);
	put(dir, ".git/config", "[core]\n");
	put(dir, "node_modules/x/index.js", "module.exports = 1;\n");
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", dir, NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "as app \"hello-world\": deployment ");
	assert_says(&r, "(1 file)");
	assert_says(&r, "ready in ");
	assert_says(&r, " s: http://hello-world.localhost:8000/");
	free(r.out);

	run_viv(NULL, s.base, s.token, (const char *[]){"apps", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "hello-world");
	assert_says(&r, "http://hello-world.localhost:8000/");
	free(r.out);

	run_viv(NULL, s.base, s.token, (const char *[]){"status", "1", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "deployment 1 of hello-world: ready (serving)");
	assert_says(&r, "timings");
	assert_says(&r, "language  wat");
	free(r.out);

	viv_rmtree(tmp);
	tsrv_stop(&s);
}

Test(cli, deploy_of_a_broken_app_shows_the_error_and_log, .timeout = 240)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX";
	struct tsrv s;
	struct trun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	put(tmp, "broken.wat", "(module (func $f (result i32)))\n");
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", tmp, "--app", "broken", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "failed: ");
	assert_says(&r, "build log:");
	free(r.out);
	viv_rmtree(tmp);
	tsrv_stop(&s);
}

Test(cli, deploy_of_a_file_and_no_wait)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", file[128];
	struct tsrv s;
	struct trun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(file, sizeof(file), "%s/Tiny.wasm", tmp);
	cr_assert_eq(viv_write_file_atomic(file, twasm_min, twasm_min_len, 0644), VIV_OK);
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", "--no-wait", file, NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "as app \"tiny\": deployment 1");
	assert_says(&r, "viv status 1");
	free(r.out);
	viv_rmtree(tmp);
	tsrv_stop(&s);
}

Test(cli, invalid_names_are_refused_before_upload)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX";
	struct tsrv s;
	struct trun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	put(tmp, "hello.wat", twat_hello);
	put(tmp, "vivarium.json", "{\"name\": \"Not Valid\"}");
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", tmp, NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "names the app \"Not Valid\", which is not a valid name");
	free(r.out);
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", tmp, "--app", "-no", NULL}, &r);
	cr_assert_eq(r.status, 2, "%s", r.out);
	assert_says(&r, "is not a valid app name");
	free(r.out);
	/* vivarium.json's name wins over the folder's. */
	put(tmp, "vivarium.json", "{\"name\": \"from-manifest\"}");
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", tmp, "--no-wait", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "as app \"from-manifest\"");
	free(r.out);
	viv_rmtree(tmp);
	tsrv_stop(&s);
}

Test(cli, logs_prints_lines_and_defuses_escapes)
{
	struct store_log lines[] = {
		{.deployment_id = 1, .ts = viv_now_ms(), .stream = "stdout",
		 .message = "hello from the guest"},
		{.deployment_id = 1, .ts = viv_now_ms(), .stream = "stderr",
		 .message = "red \x1b[31mtext"},
	};
	struct tsrv s;
	struct trun r;
	char file[128];

	tsrv_start(&s, 0, NULL);
	snprintf(file, sizeof(file), "%s/app.wasm", s.root);
	cr_assert_eq(viv_write_file_atomic(file, twasm_min, twasm_min_len, 0644), VIV_OK);
	run_viv(NULL, s.base, s.token, (const char *[]){"deploy", file, "--no-wait", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	free(r.out);
	tsrv_append_logs(&s, "app", lines, 2);

	run_viv(NULL, s.base, s.token, (const char *[]){"logs", "app", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	assert_says(&r, "[1 stdout] hello from the guest");
	assert_says(&r, "red ?[31mtext");
	cr_assert_null(strchr(r.out, '\x1b'), "%s", r.out);
	free(r.out);

	run_viv(NULL, s.base, s.token, (const char *[]){"logs", "ghost", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "no app named \"ghost\"");
	free(r.out);
	tsrv_stop(&s);
}

Test(cli, token_sources_and_refusals)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX";
	struct tsrv s;
	struct trun r;

	tsrv_start(&s, 0, NULL);
	run_viv(NULL, s.base, "wrong-token", (const char *[]){"apps", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "refused the token from VIV_TOKEN");
	free(r.out);

	run_viv(NULL, s.base, NULL, (const char *[]){"apps", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "needs a token and none was given");
	free(r.out);

	/* ./vivarium-data/admin-token is read when nothing else is given. */
	cr_assert_not_null(mkdtemp(tmp));
	put(tmp, "vivarium-data/admin-token", s.token);
	run_viv(tmp, s.base, NULL, (const char *[]){"apps", NULL}, &r);
	cr_assert_eq(r.status, 0, "%s", r.out);
	free(r.out);
	viv_rmtree(tmp);
	tsrv_stop(&s);
}

Test(cli, unreachable_server_says_so)
{
	struct trun r;

	run_viv(NULL, NULL, "t", (const char *[]){"--api", "http://127.0.0.1:1", "apps", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "cannot reach the Vivarium API at http://127.0.0.1:1");
	assert_says(&r, "is vivd running?");
	free(r.out);

	run_viv(NULL, "http://127.0.0.1:1", "t", (const char *[]){"status", "3", NULL}, &r);
	cr_assert_eq(r.status, 1, "%s", r.out);
	assert_says(&r, "cannot reach the Vivarium API");
	free(r.out);
}

Test(cli, usage_and_help)
{
	struct trun r;

	run_viv(NULL, NULL, NULL, (const char *[]){"help", NULL}, &r);
	cr_assert_eq(r.status, 0);
	assert_says(&r, "usage: viv");
	assert_says(&r, "deploy PATH");
	free(r.out);
	run_viv(NULL, NULL, NULL, (const char *[]){"--help", NULL}, &r);
	cr_assert_eq(r.status, 0);
	free(r.out);
	run_viv(NULL, NULL, NULL, (const char *[]){"frobnicate", NULL}, &r);
	cr_assert_eq(r.status, 2);
	assert_says(&r, "no command \"frobnicate\"");
	free(r.out);
	run_viv(NULL, NULL, NULL, (const char *[]){"status", NULL}, &r);
	cr_assert_eq(r.status, 2);
	free(r.out);
	run_viv(NULL, NULL, NULL, (const char *[]){"status", "12x", NULL}, &r);
	cr_assert_eq(r.status, 2);
	assert_says(&r, "not a deployment id");
	free(r.out);
}

Test(cli_pack, skips_build_output_and_large_files)
{
	char tmp[] = "/tmp/viv-pack-XXXXXX", errbuf[256];
	const char *want[] = {"a.c", "src", "src/b.c", "src/run.sh"};
	char big[5000], *data = NULL, *p;
	struct archive *a;
	struct archive_entry *e;
	size_t len = 0, files = 0, i = 0;

	cr_assert_not_null(mkdtemp(tmp));
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(tmp, "src/b.c", "int b;\n");
	put(tmp, "a.c", "int a;\n");
	put(tmp, "src/run.sh", "#!/bin/sh\n");
	p = viv_path_join(tmp, "src/run.sh");
	chmod(p, 0755);
	free(p);
	put(tmp, "big.bin", big);
	put(tmp, ".git/HEAD", "ref\n");
	put(tmp, "target/debug/x", "x");
	put(tmp, "node_modules/m/i.js", "x");
	put(tmp, "src/build/o.o", "x");
	put(tmp, "vivarium-data/admin-token", "secret");
	p = viv_path_join(tmp, "link");
	cr_assert_eq(symlink("/etc/passwd", p), 0);
	free(p);

	cr_assert_eq(cli_pack_dir(tmp, 4096, &data, &len, &files, errbuf, sizeof(errbuf)), VIV_OK,
		     "%s", errbuf);
	cr_assert_eq(files, 3);
	a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	cr_assert_eq(archive_read_open_memory(a, data, len), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		size_t n = strlen(name);

		cr_assert_lt(i, sizeof(want) / sizeof(want[0]), "unexpected entry %s", name);
		/* Directory entries may carry a trailing '/'. */
		cr_assert(strncmp(name, want[i], strlen(want[i])) == 0 &&
				  (n == strlen(want[i]) || (n == strlen(want[i]) + 1 && name[n - 1] == '/')),
			  "entry %zu is %s, expected %s", i, name, want[i]);
		if (strcmp(want[i], "src/run.sh") == 0)
			cr_assert_eq(archive_entry_perm(e), 0755);
		i++;
	}
	cr_assert_eq(i, sizeof(want) / sizeof(want[0]));
	archive_read_free(a);
	free(data);

	/* An archive that cannot fit says so. */
	cr_assert_eq(cli_pack_dir(tmp, 100, &data, &len, &files, errbuf, sizeof(errbuf)),
		     VIV_ERR_TOO_BIG);
	cr_assert_not_null(strstr(errbuf, "upload limit"), "%s", errbuf);
	viv_rmtree(tmp);
}

Test(cli_pack, names_from_folders)
{
	char buf[64];

	cli_name_from("Hello_World", buf, sizeof(buf));
	cr_assert_str_eq(buf, "hello-world");
	cli_name_from("--My..App--", buf, sizeof(buf));
	cr_assert_str_eq(buf, "my-app");
	cli_name_from("___", buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
	cli_name_from("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", buf,
		      sizeof(buf));
	cr_assert_eq(strlen(buf), 63);
	/* A cut never leaves a '-' at the end. */
	cli_name_from("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_bcd", buf,
		      sizeof(buf));
	cr_assert_str_eq(buf, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	cr_assert(viv_app_name_valid(buf));
}
