/* The README's path for a user of viv, end to end against the real vivd:
 * deploy with the build streamed, the URL answering, logs --follow showing a
 * request as it happens, rollback and rm changing what is served, KV,
 * settings and secrets reaching the guest, and a token scoped to one app
 * refused everywhere else. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "support.h"

static struct tsup_vivd vivd;

static void start(void)
{
	tsup_vivd_start(&vivd, NULL);
}

static void stop(void)
{
	tsup_vivd_stop(&vivd);
}

TestSuite(cli_flow, .init = start, .fini = stop, .timeout = 400);

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Runs viv with this vivd's address and token (or token, when not NULL)
 * and stdin (NULL: none), to completion; returns its exit status. */
static int viv_as(const char *token, const char *in, const char *const *args, struct crun *r)
{
	char api[96], tok[200];
	struct crun_opts o = {.env = ARGV(api, tok), .in = in, .in_len = in ? strlen(in) : 0};

	snprintf(api, sizeof(api), "VIV_API=%s", vivd.api);
	snprintf(tok, sizeof(tok), "VIV_TOKEN=%s", token ? token : vivd.token);
	crun(r, &o, args);
	return r->status;
}

#define VIV(r, ...) viv_as(NULL, NULL, ARGV(__VA_ARGS__), r)

/* Asserts that viv succeeded, showing what it printed when it did not. */
static void assert_ok(const struct crun *r)
{
	cr_assert_eq(r->status, 0, "viv exited with %d:\n%s\nstderr:\n%s", r->status, r->out.data,
	             r->err.data);
}

/* Polls GET / of app until its body holds text, for up to 5 s. */
static void wait_for_body(const char *app, const char *path, const char *text)
{
	struct tsup_resp r;
	double deadline = tsup_now_ms() + 5000;
	char last[256] = "(no answer)";

	for (;;) {
		if (tsup_app_get(&vivd, app, path, &r)) {
			snprintf(last, sizeof(last), "%ld %s", r.status, r.body);
			if (strstr(r.body, text)) {
				tsup_resp_free(&r);
				return;
			}
		}
		tsup_resp_free(&r);
		cr_assert(tsup_now_ms() < deadline, "%s never answered \"%s\"; last: %s", app, text,
		          last);
		usleep(100000);
	}
}

/* Writes a WASI command in WAT answering text (at most 40 bytes) into
 * folder dir. */
static void write_wat_app(const char *dir, const char *text)
{
	char path[300], wat[1024];
	FILE *f;

	snprintf(
	        wat, sizeof(wat),
	        "(module\n"
	        "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	        "    (func $w (param i32 i32 i32 i32) (result i32)))\n"
	        "  (memory (export \"memory\") 1)\n"
	        "  (data (i32.const 64) \"Content-Type: text/plain\\n\\n%s\\n\")\n"
	        "  (func (export \"_start\")\n"
	        "    (i32.store (i32.const 0) (i32.const 64))\n"
	        "    (i32.store (i32.const 4) (i32.const %zu))\n"
	        "    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))\n",
	        text, strlen("Content-Type: text/plain\n\n\n") + strlen(text));
	snprintf(path, sizeof(path), "%s/app.wat", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(wat, f);
	fclose(f);
}

Test(cli_flow, deploy_streams_the_build_and_logs_follow_a_request)
{
	static const char *src = "#include <stdio.h>\n"
	                         "#include <stdlib.h>\n"
	                         "int main(void)\n{\n"
	                         "\tconst char *p = getenv(\"PATH_INFO\");\n"
	                         "\tfprintf(stderr, \"noted: %s\\n\", p ? p : \"?\");\n"
	                         "\tprintf(\"Content-Type: text/plain\\n\\nok\\n\");\n"
	                         "\treturn 0;\n}\n";
	char tmp[] = "/tmp/viv-flow-XXXXXX", file[128], api[96], tok[200];
	struct crun_opts o = {.env = ARGV(api, tok)};
	struct crun r, follow;
	struct tsup_resp resp;
	char url[128];
	FILE *f;

	/* The README's hello, with each build step announced as it starts. */
	VIV(&r, "deploy", VIV_SOURCE_DIR "/sdk/examples/c-hello", "--app", "hello");
	assert_ok(&r);
	crun_says(&r, "==> ");
	crun_says(&r, "ready in ");
	snprintf(url, sizeof(url), "http://hello.localhost:%u/", vivd.apps_port);
	crun_says(&r, url);
	crun_free(&r);
	/* libcurl resolves *.localhost to loopback itself, as curl does. */
	cr_assert(tsup_http("GET", url, NULL, NULL, NULL, 0, &resp));
	cr_assert_eq(resp.status, 200);
	cr_assert_str_eq(resp.body, "Hello, world!\n");
	tsup_resp_free(&resp);
	VIV(&r, "status", "1");
	assert_ok(&r);
	crun_says(&r, "ready (serving)");
	crun_says(&r, "wasm2c");
	crun_free(&r);

	/* A guest that notes each request on stderr, followed live. */
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(file, sizeof(file), "%s/main.c", tmp);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(src, f);
	fclose(f);
	VIV(&r, "deploy", tmp, "--app", "noter");
	assert_ok(&r);
	crun_free(&r);
	cr_assert(tsup_app_get(&vivd, "noter", "/first", &resp));
	cr_assert_eq(resp.status, 200);
	tsup_resp_free(&resp);

	snprintf(api, sizeof(api), "VIV_API=%s", vivd.api);
	snprintf(tok, sizeof(tok), "VIV_TOKEN=%s", vivd.token);
	crun_start(&follow, &o, ARGV("logs", "noter", "--follow"));
	/* The stream starts with the lines so far, which shows it is open. */
	cr_assert(crun_wait_for(&follow, "noted: /first", 20000), "%s\n%s", follow.out.data,
	          follow.err.data);
	cr_assert(tsup_app_get(&vivd, "noter", "/second?x=1", &resp));
	tsup_resp_free(&resp);
	cr_assert(crun_wait_for(&follow, "noted: /second", 5000), "%s\n%s", follow.out.data,
	          follow.err.data);
	crun_stop(&follow);
	cr_assert_null(strstr(strstr(follow.out.data, "noted: /first") + 1, "noted: /first"),
	               "a line came twice:\n%s", follow.out.data);
	crun_free(&follow);
	viv_rmtree_or_log(tmp);
}

Test(cli_flow, rollback_and_rm_change_what_is_served)
{
	char tmp[] = "/tmp/viv-flow-XXXXXX";
	struct crun r;

	cr_assert_not_null(mkdtemp(tmp));
	write_wat_app(tmp, "first version");
	VIV(&r, "deploy", tmp, "--app", "flip");
	assert_ok(&r);
	crun_free(&r);
	write_wat_app(tmp, "second version");
	VIV(&r, "deploy", tmp, "--app", "flip");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("flip", "/", "second version");

	VIV(&r, "rollback", "flip");
	assert_ok(&r);
	crun_says(&r, "flip now serves deployment");
	crun_free(&r);
	wait_for_body("flip", "/", "first version");

	VIV(&r, "rm", "flip", "--yes");
	assert_ok(&r);
	crun_says(&r, "deleted flip: 2 deployments");
	crun_free(&r);
	{
		struct tsup_resp resp;
		double deadline = tsup_now_ms() + 3000;

		/* Within a second or so the address stops answering with the app. */
		for (;;) {
			cr_assert(tsup_app_get(&vivd, "flip", "/", &resp));
			if (resp.status == 404)
				break;
			tsup_resp_free(&resp);
			cr_assert(tsup_now_ms() < deadline, "flip still answers after rm");
			usleep(100000);
		}
		tsup_resp_free(&resp);
	}
	viv_rmtree_or_log(tmp);
}

Test(cli_flow, kv_settings_and_secrets_reach_the_guest)
{
	struct crun r;

	VIV(&r, "deploy", VIV_SOURCE_DIR "/sdk/examples/c-kv-counter", "--app", "counter");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("counter", "/", "visits: 1");
	wait_for_body("counter", "/", "visits: 2");
	VIV(&r, "kv", "counter", "get", "visits");
	assert_ok(&r);
	cr_assert_str_eq(r.out.data, "2");
	crun_free(&r);
	VIV(&r, "kv", "counter", "set", "visits", "41");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("counter", "/", "visits: 42");
	VIV(&r, "kv", "counter", "ls");
	assert_ok(&r);
	crun_says(&r, "visits  2");
	crun_free(&r);

	VIV(&r, "deploy", VIV_SOURCE_DIR "/sdk/examples/c-config", "--app", "greeter");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("greeter", "/", "Bonjour, world!");
	VIV(&r, "config", "greeter", "set", "GREETING", "Hola");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("greeter", "/", "Hola, world!");
	/* A secret of the same name wins, and is never shown. */
	cr_assert_eq(viv_as(NULL, "Psst\n", ARGV("secret", "greeter", "set", "GREETING"), &r), 0,
	             "%s", r.err.data);
	crun_free(&r);
	wait_for_body("greeter", "/", "Psst, world!");
	VIV(&r, "config", "greeter", "ls");
	assert_ok(&r);
	crun_says(&r, "Hola");
	crun_says(&r, "(not shown)");
	cr_assert_null(strstr(r.out.data, "Psst"), "%s", r.out.data);
	crun_free(&r);
	VIV(&r, "secret", "greeter", "rm", "GREETING");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("greeter", "/", "Hola, world!");
	VIV(&r, "config", "greeter", "rm", "GREETING");
	assert_ok(&r);
	crun_free(&r);
	wait_for_body("greeter", "/", "Bonjour, world!");
}

Test(cli_flow, a_token_for_one_app_is_refused_elsewhere)
{
	char tmp[] = "/tmp/viv-flow-XXXXXX", token[200];
	struct crun r;

	cr_assert_not_null(mkdtemp(tmp));
	write_wat_app(tmp, "mine");
	VIV(&r, "deploy", tmp, "--app", "mine");
	assert_ok(&r);
	crun_free(&r);
	VIV(&r, "deploy", tmp, "--app", "theirs");
	assert_ok(&r);
	crun_free(&r);

	VIV(&r, "token", "create", "ci", "--app", "mine");
	assert_ok(&r);
	snprintf(token, sizeof(token), "%.*s", (int)strcspn(r.out.data, "\n"), r.out.data);
	crun_free(&r);

	/* It deploys and reads its app... */
	write_wat_app(tmp, "mine again");
	cr_assert_eq(viv_as(token, NULL, ARGV("deploy", tmp, "--app", "mine"), &r), 0, "%s",
	             r.err.data);
	crun_free(&r);
	wait_for_body("mine", "/", "mine again");
	cr_assert_eq(viv_as(token, NULL, ARGV("logs", "mine"), &r), 0, "%s", r.err.data);
	crun_free(&r);
	cr_assert_eq(viv_as(token, NULL, ARGV("deployments", "mine"), &r), 0, "%s", r.err.data);
	crun_says(&r, "ci");
	crun_free(&r);
	/* ...and nothing else. */
	cr_assert_eq(viv_as(token, NULL, ARGV("deploy", tmp, "--app", "theirs"), &r), 4, "%s",
	             r.out.data);
	crun_says(&r, "not allowed");
	crun_free(&r);
	cr_assert_eq(viv_as(token, NULL, ARGV("kv", "theirs", "ls"), &r), 4, "%s", r.out.data);
	crun_free(&r);
	cr_assert_eq(viv_as(token, NULL, ARGV("rm", "mine", "--yes"), &r), 4, "%s", r.out.data);
	crun_free(&r);
	cr_assert_eq(viv_as(token, NULL, ARGV("apps"), &r), 0, "%s", r.err.data);
	cr_assert_null(strstr(r.out.data, "theirs"), "%s", r.out.data);
	crun_free(&r);
	wait_for_body("theirs", "/", "mine");
	viv_rmtree_or_log(tmp);
}
