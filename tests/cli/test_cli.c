/* Tests of the viv client: the built binary against the real API in a
 * forked child (tests/api's fixture), checking what a user reads and the
 * exit status of every command; on a pseudo-terminal for what only a
 * terminal gets; through a relay that cuts streams, for reconnection; plus
 * the directory packer on its own. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_server.h"
#include "cli.h"
#include "cli_run.h"
#include "relay.h"
#include "store.h"
#include "viv.h"

/* Runs viv against the API at api (s's own address when NULL) with s's
 * token, extra environment entries (NULL-terminated, may be NULL) and
 * stdin (may be NULL). */
static void viv_in(const struct tsrv *s, const char *api, const char *const *extra, const char *in,
                   size_t in_len, const char *const *args, struct crun *r)
{
	char api_env[128], token_env[256];
	const char *env[16];
	struct crun_opts o = {.env = env, .in = in, .in_len = in_len};
	size_t n = 0;

	snprintf(api_env, sizeof(api_env), "VIV_API=%s", api ? api : s->base);
	snprintf(token_env, sizeof(token_env), "VIV_TOKEN=%s", s->token);
	env[n++] = api_env;
	env[n++] = token_env;
	while (extra && *extra && n < 15)
		env[n++] = *extra++;
	env[n] = NULL;
	crun(r, &o, args);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Runs viv with s's address and token. */
#define VIV(s, r, ...) viv_in(s, NULL, NULL, NULL, 0, ARGV(__VA_ARGS__), r)
/* The same with extra environment entries. */
#define VIV_ENV(s, r, env, ...) viv_in(s, NULL, env, NULL, 0, ARGV(__VA_ARGS__), r)

/* Asserts the exit status, showing what viv printed when it differs. */
static void assert_exit(const struct crun *r, int status)
{
	cr_assert_eq(r->status, status, "viv exited with %d, not %d; it printed:\n%s\nstderr:\n%s",
	             r->status, status, r->out.data, r->err.data);
}

/* Writes text to dir/name, making parent folders. */
static void put(const char *dir, const char *name, const char *text, size_t len)
{
	char *p = viv_path_join(dir, name), *slash;

	cr_assert_not_null(p);
	slash = strrchr(p, '/');
	*slash = '\0';
	cr_assert_eq(viv_mkdirs(p, 0755), VIV_OK);
	*slash = '/';
	cr_assert_eq(viv_write_file_atomic(p, text, len, 0644), VIV_OK);
	free(p);
}

static void put_text(const char *dir, const char *name, const char *text)
{
	put(dir, name, text, strlen(text));
}

/* A WASI command in WAT that answers with text (at most 40 bytes). */
static char *wat_saying(const char *text)
{
	char *wat = NULL;

	cr_assert_geq(asprintf(&wat,
	                       "(module\n"
	                       "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	                       "    (func $w (param i32 i32 i32 i32) (result i32)))\n"
	                       "  (memory (export \"memory\") 1)\n"
	                       "  (data (i32.const 64) \"Content-Type: text/plain\\n\\n%s\\n\")\n"
	                       "  (func (export \"_start\")\n"
	                       "    (i32.store (i32.const 0) (i32.const 64))\n"
	                       "    (i32.store (i32.const 4) (i32.const %zu))\n"
	                       "    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) "
	                       "(i32.const 16)))))\n",
	                       text, strlen("Content-Type: text/plain\n\n\n") + strlen(text)),
	              0);
	return wat;
}

/* Deploys the minimal module as app without waiting; returns its id. */
static long long deploy_min(const struct tsrv *s, const char *app)
{
	char file[160], *p;
	struct crun r;
	long long id;

	snprintf(file, sizeof(file), "%s/%s.wasm", s->root, app);
	cr_assert_eq(viv_write_file_atomic(file, twasm_min, twasm_min_len, 0644), VIV_OK);
	VIV(s, &r, "deploy", file, "--no-wait");
	assert_exit(&r, 0);
	p = strstr(r.out.data, ": deployment ");
	cr_assert_not_null(p, "%s", r.out.data);
	id = atoll(p + 13);
	crun_free(&r);
	return id;
}

/* Deploys the minimal module as app and waits until it is ready. */
static long long deploy_min_ready(const struct tsrv *s, const char *app)
{
	long long id = deploy_min(s, app);
	json_t *d = twait_deployment(s, id, 120);

	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready");
	json_decref(d);
	return id;
}

/* How many times needle occurs in hay. */
static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

/* Whether this machine's resolver finds host, as wget and Python would. */
static bool resolves(const char *host)
{
	struct addrinfo *res = NULL;

	if (getaddrinfo(host, "80", NULL, &res) != 0)
		return false;
	freeaddrinfo(res);
	return true;
}

/* ---- deploy and status ------------------------------------------------------------------ */

Test(cli, deploy_streams_the_build_and_prints_the_addresses, .timeout = 240)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", dir[128], step[256], *line, *save = NULL, *copy;
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	/* The folder's name, lowercased and cleaned up, is the app name. */
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/Hello_World", tmp);
	put_text(dir, "hello.wat", twat_hello);
	put_text(dir, ".git/config", "[core]\n");
	put_text(dir, "node_modules/x/index.js", "module.exports = 1;\n");
	VIV(&s, &r, "deploy", dir);
	assert_exit(&r, 0);
	crun_says(&r, "uploading: 100% of ");
	crun_says(&r, "as app \"hello-world\": deployment 1");
	crun_says(&r, "(1 file)");
	crun_says(&r, "==> ");
	crun_says(&r, "ready in ");
	crun_says(&r, " s: http://hello-world.localhost:8000/\n");
	crun_says(&r, "preview: http://d1-hello-world.localhost:8000/\n");
	if (resolves("hello-world.localhost"))
		cr_assert_null(strstr(r.out.data, "curl -H"), "%s", r.out.data);
	else
		crun_says(&r, "curl -H 'Host: hello-world.localhost' http://127.0.0.1:8000/");
	/* Each step is announced once, and not in colour off a terminal. */
	copy = strdup(r.out.data);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		snprintf(step, sizeof(step), "%s\n", line);
		if (strncmp(line, "==> ", 4) == 0)
			cr_assert_eq(count_of(r.out.data, step), 1, "%s", r.out.data);
	}
	free(copy);
	cr_assert_null(strchr(r.out.data, '\x1b'));
	crun_free(&r);

	VIV(&s, &r, "apps");
	assert_exit(&r, 0);
	crun_says(&r, "NAME");
	crun_says(&r, "hello-world");
	crun_says(&r, "serving");
	crun_says(&r, "http://hello-world.localhost:8000/");
	crun_free(&r);

	VIV(&s, &r, "status", "1");
	assert_exit(&r, 0);
	crun_says(&r, "deployment 1 of hello-world: ready (serving)");
	crun_says(&r, "timings");
	crun_says(&r, "language      wat");
	crun_says(&r, "preview       http://d1-hello-world.localhost:8000/");
	crun_says(&r, "deployed by   admin");
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

Test(cli, a_failed_build_shows_the_error_and_exits_6, .timeout = 240)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX";
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	put_text(tmp, "broken.wat", "(module (func $f (result i32)))\n");
	VIV(&s, &r, "deploy", tmp, "--app", "broken");
	assert_exit(&r, CLI_EXIT_BUILD);
	crun_says(&r, "deployment 1 failed: ");
	crun_says(&r, "the app serves what it served before");
	crun_free(&r);

	VIV(&s, &r, "status", "1");
	assert_exit(&r, CLI_EXIT_BUILD);
	crun_says(&r, "deployment 1 of broken: failed");
	crun_says(&r, "build log:");
	crun_free(&r);
	VIV(&s, &r, "status", "1", "--json");
	assert_exit(&r, CLI_EXIT_BUILD);
	cr_assert_eq(r.out.data[0], '{', "%s", r.out.data);
	crun_says(&r, "\"status\":\"failed\"");
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

Test(cli, a_cut_build_stream_is_resumed_without_repeats, .timeout = 240)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", *heads, *log_line, *save = NULL, *log;
	struct relay rl;
	struct tsrv s;
	struct crun r, st;
	json_t *d;

	tsrv_start(&s, 0, NULL);
	relay_start(&rl, s.port, "/events");
	cr_assert_not_null(mkdtemp(tmp));
	put_text(tmp, "hello.wat", twat_hello);
	viv_in(&s, rl.base, NULL, NULL, 0, ARGV("deploy", tmp, "--app", "cut"), &r);
	assert_exit(&r, 0);
	heads = relay_heads(&rl);
	cr_assert(relay_cut_done(&rl), "the relay never cut the stream:\n%s\n%s", heads,
	          r.out.data);
	cr_assert_geq(count_of(heads, "/v1/deployments/1/events"), 2, "%s", heads);
	free(heads);
	crun_says(&r, "reconnecting");
	crun_says(&r, "ready in ");

	/* The log went out once, whatever the reconnection replayed, and so
	 * did each step. */
	cr_assert_eq(count_of(r.out.data, "==> compile\n"), 1, "%s", r.out.data);
	VIV(&s, &st, "status", "1", "--json");
	assert_exit(&st, 0);
	d = json_loads(st.out.data, 0, NULL);
	cr_assert_not_null(d);
	log = strdup(json_string_value(json_object_get(d, "log")));
	for (log_line = strtok_r(log, "\n", &save); log_line;
	     log_line = strtok_r(NULL, "\n", &save)) {
		/* The log's own "== STEP" headings give way to viv's "==> STEP". */
		if (strlen(log_line) > 8 && strncmp(log_line, "== ", 3) != 0)
			cr_assert_eq(
			        count_of(r.out.data, log_line),
			        count_of(json_string_value(json_object_get(d, "log")), log_line),
			        "\"%s\" printed a wrong number of times:\n%s", log_line,
			        r.out.data);
	}
	free(log);
	json_decref(d);
	crun_free(&st);
	crun_free(&r);
	relay_stop(&rl);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

Test(cli, deploy_of_a_file_and_no_wait)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", file[128];
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(file, sizeof(file), "%s/Tiny.wasm", tmp);
	cr_assert_eq(viv_write_file_atomic(file, twasm_min, twasm_min_len, 0644), VIV_OK);
	VIV(&s, &r, "deploy", "--no-wait", file);
	assert_exit(&r, 0);
	crun_says(&r, "as app \"tiny\": deployment 1");
	crun_says(&r, "viv status 1");
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

Test(cli, invalid_names_are_refused_before_upload)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX";
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	put_text(tmp, "hello.wat", twat_hello);
	put_text(tmp, "vivarium.json", "{\"name\": \"Not Valid\"}");
	VIV(&s, &r, "deploy", tmp);
	assert_exit(&r, 1);
	crun_says(&r, "names the app \"Not Valid\", which is not a valid name");
	crun_free(&r);
	VIV(&s, &r, "deploy", tmp, "--app", "-no");
	assert_exit(&r, 2);
	crun_says(&r, "is not a valid app name");
	crun_free(&r);
	/* vivarium.json's name wins over the folder's. */
	put_text(tmp, "vivarium.json", "{\"name\": \"from-manifest\"}");
	VIV(&s, &r, "deploy", tmp, "--no-wait");
	assert_exit(&r, 0);
	crun_says(&r, "as app \"from-manifest\"");
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

/* ---- deployments and rollback --------------------------------------------------------------- */

Test(cli, deployments_list_and_rollback_moves_between_them, .timeout = 300)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", *wat;
	struct tsrv s;
	struct crun r;
	json_t *j;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	wat = wat_saying("one");
	put_text(tmp, "app.wat", wat);
	free(wat);
	VIV(&s, &r, "deploy", tmp, "--app", "roll");
	assert_exit(&r, 0);
	crun_free(&r);
	wat = wat_saying("two");
	put_text(tmp, "app.wat", wat);
	free(wat);
	VIV(&s, &r, "deploy", tmp, "--app", "roll");
	assert_exit(&r, 0);
	crun_free(&r);
	put_text(tmp, "app.wat", "(module (func $f (result i32)))\n");
	VIV(&s, &r, "deploy", tmp, "--app", "roll");
	assert_exit(&r, CLI_EXIT_BUILD);
	crun_free(&r);

	VIV(&s, &r, "deployments", "roll");
	assert_exit(&r, 0);
	crun_says(&r, "ID  STATUS");
	crun_says(&r, "2   ready, current");
	crun_says(&r, "3   failed");
	crun_says(&r, "1   ready ");
	crun_free(&r);
	VIV(&s, &r, "deployments", "roll", "--limit", "1");
	assert_exit(&r, 0);
	crun_says(&r, "older ones: viv deployments roll --before 3");
	cr_assert_null(strstr(r.out.data, "ready, current"), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "deployments", "roll", "--json");
	assert_exit(&r, 0);
	j = json_loads(r.out.data, 0, NULL);
	cr_assert(json_is_array(json_object_get(j, "deployments")), "%s", r.out.data);
	cr_assert_eq(json_array_size(json_object_get(j, "deployments")), 3);
	json_decref(j);
	crun_free(&r);

	VIV(&s, &r, "rollback", "roll");
	assert_exit(&r, 0);
	crun_says(&r, "roll now serves deployment 1 (it served 2)");
	crun_free(&r);
	VIV(&s, &r, "rollback", "roll", "2");
	assert_exit(&r, 0);
	crun_says(&r, "roll now serves deployment 2 (it served 1)");
	crun_free(&r);
	/* A failed deployment cannot serve: the API's reason is shown. */
	VIV(&s, &r, "rollback", "roll", "3");
	assert_exit(&r, 1);
	cr_assert_gt(r.err.len, 10);
	crun_free(&r);
	VIV(&s, &r, "rollback", "roll", "99");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	VIV(&s, &r, "deployments", "ghost");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

/* ---- logs --------------------------------------------------------------------------------------
 */

Test(cli, logs_prints_lines_and_defuses_escapes)
{
	struct store_log lines[] = {
	        {.deployment_id = 1,
	         .ts = viv_now_ms(),
	         .stream = "stdout",
	         .message = "hello from the guest"},
	        {.deployment_id = 1,
	         .ts = viv_now_ms(),
	         .stream = "stderr",
	         .message = "red \x1b[31mtext"},
	};
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "app");
	tsrv_append_logs(&s, "app", lines, 2);

	VIV(&s, &r, "logs", "app");
	assert_exit(&r, 0);
	crun_says(&r, "[1 stdout] hello from the guest");
	crun_says(&r, "red ?[31mtext");
	cr_assert_null(strchr(r.out.data, '\x1b'), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "logs", "app", "--limit", "1", "--json");
	assert_exit(&r, 0);
	crun_says(&r, "{\"logs\":");
	cr_assert_eq(count_of(r.out.data, "\"message\""), 1, "%s", r.out.data);
	crun_free(&r);

	VIV(&s, &r, "logs", "ghost");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_says(&r, "no app named \"ghost\"");
	crun_free(&r);
	tsrv_stop(&s);
}

Test(cli, logs_follow_streams_and_resumes_after_a_cut, .timeout = 120)
{
	struct store_log first = {.deployment_id = 1,
	                          .ts = viv_now_ms(),
	                          .stream = "stderr",
	                          .message = "the first line"};
	struct store_log second = {.deployment_id = 1,
	                           .ts = viv_now_ms(),
	                           .stream = "access",
	                           .message = "GET /after 200 1.00 ms (instance 0.50 ms)"};
	const char *env[] = {NULL};
	char api[128], token[256], want[64], *heads;
	struct crun_opts o = {.env = env};
	struct relay rl;
	struct tsrv s;
	struct crun r, lj;
	json_t *j;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "app");
	tsrv_append_logs(&s, "app", &first, 1);
	relay_start(&rl, s.port, "/logs/stream");
	snprintf(api, sizeof(api), "VIV_API=%s", rl.base);
	snprintf(token, sizeof(token), "VIV_TOKEN=%s", s.token);
	o.env = (const char *const[]){api, token, NULL};
	crun_start(&r, &o, ARGV("logs", "app", "--follow"));
	cr_assert(crun_wait_for(&r, "the first line", 20000), "%s\n%s", r.out.data, r.err.data);
	for (int i = 0; i < 100 && !relay_cut_done(&rl); i++)
		usleep(50000);
	cr_assert(relay_cut_done(&rl));
	tsrv_append_logs(&s, "app", &second, 1);
	cr_assert(crun_wait_for(&r, "GET /after 200", 20000), "%s\n%s", r.out.data, r.err.data);
	crun_stop(&r);
	cr_assert_eq(count_of(r.out.data, "the first line"), 1, "%s", r.out.data);
	crun_says(&r, "[1 access] GET /after 200 1.00 ms (instance 0.50 ms)");

	/* The second connection said which line it had seen last. */
	VIV(&s, &lj, "logs", "app", "--json");
	j = json_loads(lj.out.data, 0, NULL);
	snprintf(want, sizeof(want), "Last-Event-ID: %lld",
	         (long long)json_integer_value(
	                 json_object_get(json_array_get(json_object_get(j, "logs"), 0), "id")));
	heads = relay_heads(&rl);
	cr_assert_eq(count_of(heads, "GET /v1/apps/app/logs/stream"), 2, "%s", heads);
	cr_assert_not_null(strstr(heads, want), "no %s in:\n%s", want, heads);
	free(heads);
	json_decref(j);
	crun_free(&lj);
	crun_free(&r);
	relay_stop(&rl);
	tsrv_stop(&s);
}

/* ---- rm
 * ------------------------------------------------------------------------------------------ */

Test(cli, rm_asks_on_a_terminal_and_needs_yes_elsewhere, .timeout = 120)
{
	char api[128], token[256];
	struct crun_opts o = {.pty = true, .cols = 100};
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "gone");
	deploy_min(&s, "asked");
	VIV(&s, &r, "rm", "gone");
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_says(&r, "pass --yes");
	crun_free(&r);
	VIV(&s, &r, "rm", "gone", "--yes");
	assert_exit(&r, 0);
	crun_says(&r, "deleted gone: 1 deployment,");
	crun_free(&r);
	VIV(&s, &r, "apps");
	cr_assert_null(strstr(r.out.data, "gone"), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "rm", "gone", "-y");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);

	snprintf(api, sizeof(api), "VIV_API=%s", s.base);
	snprintf(token, sizeof(token), "VIV_TOKEN=%s", s.token);
	o.env = (const char *const[]){api, token, NULL};
	crun_start(&r, &o, ARGV("rm", "asked"));
	cr_assert(crun_wait_for(&r, "Type its name to confirm: ", 10000), "%s", r.out.data);
	crun_type(&r, "nope\n");
	cr_assert_eq(crun_finish(&r, 10000), CLI_EXIT_FAIL, "%s", r.out.data);
	crun_says(&r, "asked was not deleted");
	crun_free(&r);
	crun_start(&r, &o, ARGV("rm", "asked"));
	cr_assert(crun_wait_for(&r, "Type its name to confirm: ", 10000), "%s", r.out.data);
	crun_type(&r, "asked\n");
	cr_assert_eq(crun_finish(&r, 10000), 0, "%s", r.out.data);
	crun_says(&r, "deleted asked");
	crun_free(&r);
	tsrv_stop(&s);
}

/* ---- kv
 * ------------------------------------------------------------------------------------------ */

Test(cli, kv_values_from_text_files_and_stdin)
{
	static const char binary[] = "bytes\0with\xff nul and \x1b escape";
	char file[160], big[160], at[200], *bigdata;
	struct tsrv s;
	struct crun r;
	json_t *j;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "app");
	VIV(&s, &r, "kv", "app", "set", "greeting", "hello");
	assert_exit(&r, 0);
	crun_says(&r, "greeting created in app");
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "set", "greeting", "hello!");
	assert_exit(&r, 0);
	crun_says(&r, "greeting replaced in app");
	crun_free(&r);
	snprintf(file, sizeof(file), "%s/value.bin", s.root);
	cr_assert_eq(viv_write_file_atomic(file, binary, sizeof(binary) - 1, 0644), VIV_OK);
	snprintf(at, sizeof(at), "@%s", file);
	VIV(&s, &r, "kv", "app", "set", "a key/with?odd&chars \xc3\xa9", at);
	assert_exit(&r, 0);
	crun_free(&r);
	viv_in(&s, NULL, NULL, "line1\nline2\n", 12, ARGV("kv", "app", "set", "piped", "-"), &r);
	assert_exit(&r, 0);
	crun_free(&r);

	VIV(&s, &r, "kv", "app", "get", "greeting");
	assert_exit(&r, 0);
	cr_assert_str_eq(r.out.data, "hello!");
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "get", "a key/with?odd&chars \xc3\xa9");
	assert_exit(&r, 0);
	cr_assert_eq(r.out.len, sizeof(binary) - 1);
	cr_assert_eq(memcmp(r.out.data, binary, sizeof(binary) - 1), 0);
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "get", "piped");
	cr_assert_str_eq(r.out.data, "line1\nline2\n");
	crun_free(&r);

	VIV(&s, &r, "kv", "app", "ls");
	assert_exit(&r, 0);
	crun_says(&r, "KEY");
	crun_says(&r, "greeting");
	crun_says(&r, "a key/with?odd&chars \xc3\xa9");
	crun_says(&r, "piped");
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "ls", "gr");
	assert_exit(&r, 0);
	crun_says(&r, "greeting  6");
	cr_assert_null(strstr(r.out.data, "piped"), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "ls", "--json");
	assert_exit(&r, 0);
	j = json_loads(r.out.data, 0, NULL);
	cr_assert_eq(json_array_size(json_object_get(j, "keys")), 3, "%s", r.out.data);
	json_decref(j);
	crun_free(&r);

	VIV(&s, &r, "kv", "app", "rm", "greeting");
	assert_exit(&r, 0);
	crun_says(&r, "greeting removed from app");
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "get", "greeting");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "rm", "greeting");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);

	/* Values over the limit and missing files are caught here. */
	snprintf(big, sizeof(big), "%s/big.bin", s.root);
	bigdata = calloc(1, CLI_VALUE_MAX + 1);
	cr_assert_eq(viv_write_file_atomic(big, bigdata, CLI_VALUE_MAX + 1, 0644), VIV_OK);
	free(bigdata);
	snprintf(at, sizeof(at), "@%s", big);
	VIV(&s, &r, "kv", "app", "set", "big", at);
	assert_exit(&r, 1);
	crun_says(&r, "is larger than 1 MiB");
	crun_free(&r);
	VIV(&s, &r, "kv", "app", "set", "x", "@/no/such/file");
	assert_exit(&r, 1);
	crun_says(&r, "there is no file /no/such/file");
	crun_free(&r);
	tsrv_stop(&s);
}

/* ---- config and secret ------------------------------------------------------------------------
 */

Test(cli, settings_and_secrets, .timeout = 120)
{
	char api[128], token[256];
	struct crun_opts o = {.pty = true, .cols = 100};
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "app");
	VIV(&s, &r, "config", "app", "set", "GREETING", "hi there");
	assert_exit(&r, 0);
	crun_says(&r, "GREETING set for app");
	crun_free(&r);
	VIV(&s, &r, "config", "app", "get", "GREETING");
	assert_exit(&r, 0);
	cr_assert_str_eq(r.out.data, "hi there\n");
	crun_free(&r);

	VIV(&s, &r, "secret", "app", "set", "API_KEY", "s3cret-value");
	assert_exit(&r, 0);
	crun_says(&r, "API_KEY set for app");
	crun_free(&r);
	viv_in(&s, NULL, NULL, "from-stdin\n", 11, ARGV("secret", "app", "set", "PIPED"), &r);
	assert_exit(&r, 0);
	crun_free(&r);
	viv_in(&s, NULL, NULL, "", 0, ARGV("secret", "app", "set", "EMPTY"), &r);
	assert_exit(&r, 1);
	crun_says(&r, "the value is empty");
	crun_free(&r);

	VIV(&s, &r, "secret", "app", "ls");
	assert_exit(&r, 0);
	crun_says(&r, "NAME");
	crun_says(&r, "API_KEY");
	crun_says(&r, "PIPED");
	crun_free(&r);
	VIV(&s, &r, "config", "app", "ls");
	assert_exit(&r, 0);
	crun_says(&r, "GREETING  hi there     set");
	crun_says(&r, "API_KEY   (not shown)  secret");
	cr_assert_null(strstr(r.out.data, "s3cret"), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "config", "app", "ls", "--json");
	assert_exit(&r, 0);
	crun_says(&r, "\"GREETING\":\"hi there\"");
	cr_assert_null(strstr(r.out.data, "s3cret"), "%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "config", "app", "get", "API_KEY");
	assert_exit(&r, 1);
	crun_says(&r, "API_KEY is a secret of app");
	crun_free(&r);
	VIV(&s, &r, "config", "app", "get", "NOPE");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);

	VIV(&s, &r, "config", "app", "rm", "GREETING");
	assert_exit(&r, 0);
	crun_says(&r, "GREETING removed from the settings of app");
	crun_free(&r);
	VIV(&s, &r, "config", "app", "rm", "GREETING");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	VIV(&s, &r, "secret", "app", "rm", "API_KEY");
	assert_exit(&r, 0);
	crun_free(&r);
	VIV(&s, &r, "secret", "app", "rm", "API_KEY");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);

	/* On a terminal the value is asked for and not echoed. */
	snprintf(api, sizeof(api), "VIV_API=%s", s.base);
	snprintf(token, sizeof(token), "VIV_TOKEN=%s", s.token);
	o.env = (const char *const[]){api, token, NULL};
	crun_start(&r, &o, ARGV("secret", "app", "set", "TYPED"));
	cr_assert(crun_wait_for(&r, "(not shown): ", 10000), "%s", r.out.data);
	crun_type(&r, "hunter2\n");
	cr_assert_eq(crun_finish(&r, 10000), 0, "%s", r.out.data);
	crun_says(&r, "TYPED set for app");
	cr_assert_null(strstr(r.out.data, "hunter2"), "the secret was echoed:\n%s", r.out.data);
	crun_free(&r);
	VIV(&s, &r, "secret", "app", "ls", "--json");
	crun_says(&r, "\"TYPED\"");
	crun_free(&r);
	tsrv_stop(&s);
}

/* ---- tokens ------------------------------------------------------------------------------------
 */

Test(cli, a_scoped_token_reaches_its_app_only, .timeout = 120)
{
	char scoped[256], revoked[256], idtext[32];
	const char *as_scoped[] = {scoped, NULL}, *as_revoked[] = {revoked, NULL};
	struct tsrv s;
	struct crun r;
	json_t *j;
	long long id;

	tsrv_start(&s, 0, NULL);
	deploy_min(&s, "mine");
	deploy_min(&s, "other");
	VIV(&s, &r, "token", "create", "ci", "--app", "mine");
	assert_exit(&r, 0);
	cr_assert_eq(strncmp(r.out.data, "viv_", 4), 0, "%s", r.out.data);
	cr_assert_eq(count_of(r.out.data, "\n"), 1, "stdout is the token alone:\n%s", r.out.data);
	crun_says(&r, "shown only now");
	r.out.data[strcspn(r.out.data, "\n")] = '\0';
	snprintf(scoped, sizeof(scoped), "VIV_TOKEN=%s", r.out.data);
	crun_free(&r);

	VIV_ENV(&s, &r, as_scoped, "apps");
	assert_exit(&r, 0);
	crun_says(&r, "mine");
	cr_assert_null(strstr(r.out.data, "other"), "%s", r.out.data);
	crun_free(&r);
	VIV_ENV(&s, &r, as_scoped, "kv", "mine", "ls");
	assert_exit(&r, 0);
	crun_free(&r);
	VIV_ENV(&s, &r, as_scoped, "kv", "other", "ls");
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_says(&r, "the token from VIV_TOKEN is not allowed this");
	crun_free(&r);
	VIV_ENV(&s, &r, as_scoped, "kv", "mine", "set", "k", "v");
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_free(&r);
	VIV_ENV(&s, &r, as_scoped, "token", "ls");
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_free(&r);

	VIV(&s, &r, "token", "ls");
	assert_exit(&r, 0);
	crun_says(&r, "ID");
	crun_says(&r, "ci");
	crun_says(&r, "mine");
	crun_says(&r, "admin");
	crun_free(&r);
	VIV(&s, &r, "token", "create", "temp", "--admin", "--json");
	assert_exit(&r, 0);
	j = json_loads(r.out.data, 0, NULL);
	cr_assert_not_null(j, "%s", r.out.data);
	id = json_integer_value(json_object_get(j, "id"));
	snprintf(revoked, sizeof(revoked), "VIV_TOKEN=%s",
	         json_string_value(json_object_get(j, "token")));
	json_decref(j);
	crun_free(&r);
	VIV_ENV(&s, &r, as_revoked, "token", "ls", "--json");
	assert_exit(&r, 0);
	crun_says(&r, "\"name\":\"temp\"");
	crun_free(&r);
	snprintf(idtext, sizeof(idtext), "%lld", id);
	VIV(&s, &r, "token", "revoke", idtext);
	assert_exit(&r, 0);
	crun_says(&r, "revoked");
	crun_free(&r);
	VIV_ENV(&s, &r, as_revoked, "apps");
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_says(&r, "refused the token from VIV_TOKEN");
	crun_free(&r);
	VIV(&s, &r, "token", "revoke", idtext);
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	tsrv_stop(&s);
}

/* ---- open ------------------------------------------------------------------------------------ */

Test(cli, open_prints_the_address_and_opens_it_with_a_display, .timeout = 120)
{
	char bin[160], script[300], path[600], seen_file[200], display[] = "DISPLAY=:0";
	const char *env[] = {path, display, NULL};
	struct tsrv s;
	struct crun r;
	char *seen = NULL;
	size_t len = 0;

	tsrv_start(&s, 0, NULL);
	deploy_min_ready(&s, "shown");
	VIV(&s, &r, "open", "shown");
	assert_exit(&r, 0);
	cr_assert_eq(strncmp(r.out.data, "http://shown.localhost:8000/\n", 29), 0, "%s",
	             r.out.data);
	crun_free(&r);

	/* With a display, xdg-open gets the address. */
	snprintf(bin, sizeof(bin), "%s/bin", s.root);
	snprintf(seen_file, sizeof(seen_file), "%s/opened", s.root);
	snprintf(script, sizeof(script), "#!/bin/sh\nprintf '%%s' \"$1\" > %s\n", seen_file);
	put(bin, "xdg-open", script, strlen(script));
	snprintf(path, sizeof(path), "%s/xdg-open", bin);
	chmod(path, 0755);
	snprintf(path, sizeof(path), "PATH=%s:%s", bin, getenv("PATH"));
	VIV_ENV(&s, &r, env, "open", "shown");
	assert_exit(&r, 0);
	cr_assert_eq(viv_read_file(seen_file, 4096, &seen, &len), VIV_OK);
	cr_assert_str_eq(seen, "http://shown.localhost:8000/");
	free(seen);
	crun_free(&r);

	/* An app whose only build failed serves nothing. */
	put_text(s.root, "unbuilt.wat", "(module (func $f (result i32)))\n");
	snprintf(path, sizeof(path), "%s/unbuilt.wat", s.root);
	VIV(&s, &r, "deploy", path);
	assert_exit(&r, CLI_EXIT_BUILD);
	crun_free(&r);
	VIV(&s, &r, "open", "unbuilt");
	assert_exit(&r, CLI_EXIT_FAIL);
	crun_says(&r, "unbuilt serves nothing yet");
	crun_free(&r);
	VIV(&s, &r, "open", "nothing-here");
	assert_exit(&r, CLI_EXIT_NOT_FOUND);
	crun_free(&r);
	tsrv_stop(&s);
}

/* ---- configuration ------------------------------------------------------------------------------
 */

Test(cli, configuration_file_and_precedence)
{
	char tmp[] = "/tmp/viv-cli-XXXXXX", home[128], text[512], file[200], xdg[200];
	char home_env[160], xdg_env[220], api_env[128], token_env[256];
	const char *env_home[] = {home_env, NULL};
	struct crun_opts o = {.env = env_home};
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(home, sizeof(home), "%s/home", tmp);
	snprintf(home_env, sizeof(home_env), "HOME=%s", home);
	snprintf(text, sizeof(text), "# viv\napi = %s\ntoken = %s\n", s.base, s.token);
	put_text(home, ".config/viv/config", text);
	snprintf(file, sizeof(file), "%s/.config/viv/config", home);
	chmod(file, 0600);
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, 0);
	crun_says(&r, "no apps yet");
	cr_assert_null(strstr(r.err.data, "warning"), "%s", r.err.data);
	crun_free(&r);

	chmod(file, 0644);
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, 0);
	crun_says(&r, "holds a token and others may read it; chmod 600");
	crun_free(&r);
	chmod(file, 0600);

	/* The environment wins over the file, and a flag over both. */
	snprintf(token_env, sizeof(token_env), "VIV_TOKEN=wrong-token");
	o.env = (const char *const[]){home_env, token_env, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_says(&r, "refused the token from VIV_TOKEN");
	crun_free(&r);
	crun(&r, &o, ARGV("apps", "--token", s.token));
	assert_exit(&r, 0);
	crun_free(&r);
	snprintf(api_env, sizeof(api_env), "VIV_API=http://127.0.0.1:1");
	o.env = (const char *const[]){home_env, api_env, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, CLI_EXIT_CONN);
	crun_says(&r, "cannot reach the Vivarium API at http://127.0.0.1:1 (from VIV_API)");
	crun_says(&r, "Set the address with --api URL, VIV_API or \"api = URL\"");
	crun_free(&r);
	crun(&r, &o, ARGV("apps", "--api", s.base));
	assert_exit(&r, 0);
	crun_free(&r);

	/* XDG_CONFIG_HOME names another folder. */
	snprintf(xdg, sizeof(xdg), "%s/xdg", tmp);
	snprintf(xdg_env, sizeof(xdg_env), "XDG_CONFIG_HOME=%s", xdg);
	snprintf(text, sizeof(text), "api = %s\ntoken = \"not-the-token\"\n", s.base);
	put_text(xdg, "viv/config", text);
	o.env = (const char *const[]){home_env, xdg_env, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_says(&r, "refused the token from ");
	crun_says(&r, "/xdg/viv/config");
	crun_free(&r);

	put_text(xdg, "viv/config", "colour = on\n");
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_says(&r, "/xdg/viv/config, line 1: unknown key \"colour\"");
	crun_free(&r);

	/* Nothing anywhere: the API's 401 comes with every way to give one. */
	snprintf(api_env, sizeof(api_env), "VIV_API=%s", s.base);
	o.env = (const char *const[]){api_env, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, CLI_EXIT_AUTH);
	crun_says(&r, "needs a token and none was given");
	crun_free(&r);

	/* ./vivarium-data/admin-token is the last resort. */
	put_text(tmp, "vivarium-data/admin-token", s.token);
	o.cwd = tmp;
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, 0);
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

/* ---- Terminals ------------------------------------------------------------------------------- */

/* Asserts that every line that text shows is at most width columns, once
 * colour sequences and carriage returns are taken out. */
static void assert_lines_fit(const char *text, size_t width)
{
	struct viv_buf plain;
	char *line, *save = NULL;
	const char *p;

	viv_buf_init(&plain, 0);
	for (p = text; *p; p++) {
		if (*p == '\x1b') {
			p += strcspn(p, "m");
			continue;
		}
		if (*p != '\r')
			cr_assert_eq(viv_buf_append(&plain, p, 1), VIV_OK);
	}
	cr_assert_eq(viv_buf_append(&plain, "", 0), VIV_OK);
	for (line = strtok_r(plain.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		cr_assert_leq(cli_text_width(line), width, "\"%s\" is wider than %zu", line, width);
	viv_buf_free(&plain);
}

Test(cli, tables_fit_the_terminal_and_colour_only_there, .timeout = 240)
{
	static const char longname[] =
	        "an-app-with-a-name-as-long-as-dns-allows-which-is-sixty-three-c";
	char api[128], token[256], lang[] = "LANG=C.UTF-8", nocolor[] = "NO_COLOR=1";
	char columns[] = "COLUMNS=50", tmp[] = "/tmp/viv-cli-XXXXXX";
	const char *env_columns[] = {columns, NULL};
	struct crun_opts o = {.pty = true, .cols = 60};
	struct tsrv s;
	struct crun r;

	tsrv_start(&s, 0, NULL);
	deploy_min_ready(&s, longname);
	snprintf(api, sizeof(api), "VIV_API=%s", s.base);
	snprintf(token, sizeof(token), "VIV_TOKEN=%s", s.token);
	o.env = (const char *const[]){api, token, lang, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, 0);
	assert_lines_fit(r.out.data, 60);
	crun_says(&r, "\xe2\x80\xa6");           /* the ellipsis */
	crun_says(&r, "\x1b[32mserving\x1b[0m"); /* in words, and in colour */
	crun_free(&r);

	o.env = (const char *const[]){api, token, lang, nocolor, NULL};
	crun(&r, &o, ARGV("apps"));
	assert_exit(&r, 0);
	cr_assert_null(strchr(r.out.data, '\x1b'), "%s", r.out.data);
	crun_says(&r, "serving");
	crun_free(&r);

	/* Not a terminal: COLUMNS, no colour. */
	VIV_ENV(&s, &r, env_columns, "apps");
	assert_exit(&r, 0);
	assert_lines_fit(r.out.data, 50);
	cr_assert_null(strchr(r.out.data, '\x1b'), "%s", r.out.data);
	crun_free(&r);

	/* On a terminal the upload draws a bar. */
	cr_assert_not_null(mkdtemp(tmp));
	put_text(tmp, "hello.wat", twat_hello);
	o.env = (const char *const[]){api, token, lang, NULL};
	crun(&r, &o, ARGV("deploy", tmp, "--app", "barred"));
	assert_exit(&r, 0);
	crun_says(&r, "\r[#");
	crun_says(&r, "] 100%");
	crun_says(&r, "\x1b[1m==> \x1b[0m");
	crun_free(&r);
	viv_rmtree_or_log(tmp);
	tsrv_stop(&s);
}

/* ---- Errors and help ----------------------------------------------------------------------------
 */

Test(cli, unreachable_server_says_where_and_how_to_set_it)
{
	struct crun_opts o = {.env = ARGV("VIV_TOKEN=t")};
	struct crun r;

	crun(&r, &o, ARGV("--api", "http://127.0.0.1:1", "apps"));
	assert_exit(&r, CLI_EXIT_CONN);
	crun_says(&r, "cannot reach the Vivarium API at http://127.0.0.1:1 (from --api)");
	crun_says(&r, "is vivd running there?");
	crun_free(&r);
	crun(&r, &o, ARGV("status", "3"));
	assert_exit(&r, CLI_EXIT_CONN);
	crun_says(&r, "at http://127.0.0.1:8080 (from the default)");
	crun_free(&r);
	crun(&r, &o, ARGV("--api", "ftp://x", "apps"));
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_says(&r, "must start with http:// or https://");
	crun_free(&r);
}

Test(cli, help_for_everything)
{
	const char *const names[] = {"deploy", "apps",     "deployments", "status",
	                             "logs",   "rollback", "rm",          "open",
	                             "kv",     "config",   "secret",      "token"};
	struct crun_opts o = {0};
	char want[64];
	struct crun r;
	size_t i;

	crun(&r, &o, ARGV("help"));
	assert_exit(&r, 0);
	crun_says(&r, "usage: viv");
	crun_says(&r, "exit status:");
	crun_says(&r, "  3  the API cannot be reached");
	crun_says(&r, "NO_COLOR");
	crun_free(&r);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		crun(&r, &o, ARGV(names[i], "--help"));
		assert_exit(&r, 0);
		snprintf(want, sizeof(want), "usage: viv %s", names[i]);
		crun_says(&r, want);
		crun_free(&r);
	}
	crun(&r, &o, ARGV("help", "config"));
	assert_exit(&r, 0);
	crun_says(&r, "~/.config/viv/config");
	crun_says(&r, "api = https://");
	crun_free(&r);
	crun(&r, &o, ARGV("--version"));
	assert_exit(&r, 0);
	crun_says(&r, "viv " VIV_VERSION);
	crun_free(&r);
	crun(&r, &o, ARGV("help", "frobnicate"));
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_free(&r);
	crun(&r, &o, ARGV("frobnicate"));
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_says(&r, "no command \"frobnicate\"");
	crun_free(&r);
	crun(&r, &o, ARGV("status", "12x"));
	assert_exit(&r, CLI_EXIT_USAGE);
	crun_says(&r, "not a deployment id");
	crun_free(&r);
}

/* ---- The packer
 * ----------------------------------------------------------------------------------- */

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
	put_text(tmp, "src/b.c", "int b;\n");
	put_text(tmp, "a.c", "int a;\n");
	put_text(tmp, "src/run.sh", "#!/bin/sh\n");
	p = viv_path_join(tmp, "src/run.sh");
	chmod(p, 0755);
	free(p);
	put_text(tmp, "big.bin", big);
	put_text(tmp, ".git/HEAD", "ref\n");
	put_text(tmp, "target/debug/x", "x");
	put_text(tmp, "node_modules/m/i.js", "x");
	put_text(tmp, "src/build/o.o", "x");
	put_text(tmp, "vivarium-data/admin-token", "secret");
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
		                  (n == strlen(want[i]) ||
		                   (n == strlen(want[i]) + 1 && name[n - 1] == '/')),
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
	viv_rmtree_or_log(tmp);
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
	cli_name_from("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	              buf, sizeof(buf));
	cr_assert_eq(strlen(buf), 63);
	/* A cut never leaves a '-' at the end. */
	cli_name_from("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_bcd", buf,
	              sizeof(buf));
	cr_assert_str_eq(buf, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	cr_assert(viv_app_name_valid(buf));
}
