/* The README's path for a new user, end to end: `viv deploy` of the C hello
 * example against the real vivd, then the URL it prints answers; `viv apps`,
 * `viv status` and `viv logs` show what happened. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

TestSuite(cli_flow, .init = start, .fini = stop, .timeout = 300);

/* Runs viv with the API address and token of this vivd. */
static int viv(const char *const *args, char **out)
{
	const char *argv[16];
	char api[96], token[160];
	size_t n = 0;

	snprintf(api, sizeof(api), "VIV_API=%s", vivd.api);
	snprintf(token, sizeof(token), "VIV_TOKEN=%s", vivd.token);
	const char *env[] = {api, token, NULL};
	argv[n++] = VIV_BIN;
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return tsup_run(argv, env, out);
}

Test(cli_flow, deploy_the_c_hello_example_and_call_it)
{
	const char *deploy[] = {"deploy", VIV_SOURCE_DIR "/sdk/examples/c-hello", "--app", "hello",
				NULL};
	const char *apps[] = {"apps", NULL};
	const char *status[] = {"status", "1", NULL};
	char *out = NULL, url[128], *p;
	struct tsup_resp r;
	int rc;

	rc = viv(deploy, &out);
	cr_assert_eq(rc, 0, "viv deploy failed:\n%s", out);
	snprintf(url, sizeof(url), "http://hello.localhost:%u/", vivd.apps_port);
	p = strstr(out, url);
	cr_assert_not_null(p, "viv deploy did not print %s:\n%s", url, out);
	free(out);
	/* libcurl resolves *.localhost to loopback itself, as curl does. */
	cr_assert(tsup_http("GET", url, NULL, NULL, NULL, 0, &r));
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "Hello, world!\n");
	tsup_resp_free(&r);

	cr_assert_eq(viv(apps, &out), 0, "%s", out);
	cr_assert_not_null(strstr(out, "hello"), "%s", out);
	free(out);
	cr_assert_eq(viv(status, &out), 0, "%s", out);
	cr_assert_not_null(strstr(out, "ready"), "%s", out);
	cr_assert_not_null(strstr(out, "wasm2c"), "the build log is missing:\n%s", out);
	free(out);
}

Test(cli_flow, logs_show_what_a_guest_wrote_to_stderr)
{
	static const char *src = "#include <stdio.h>\n"
				 "int main(void)\n{\n"
				 "\tfprintf(stderr, \"noted: a request came in\\n\");\n"
				 "\tprintf(\"Content-Type: text/plain\\n\\nok\\n\");\n"
				 "\treturn 0;\n}\n";
	struct tsup_file f[] = {{"main.c", src}};
	const char *logs[] = {"logs", "noter", NULL};
	char *tgz, *out = NULL;
	size_t len;
	json_t *d;
	struct tsup_resp r;
	double deadline;

	tsup_tar(f, 1, true, &tgz, &len);
	d = tsup_deploy_wait(&vivd, "noter", tgz, len);
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready");
	json_decref(d);
	cr_assert(tsup_app_get(&vivd, "noter", "/", &r));
	cr_assert_eq(r.status, 200);
	tsup_resp_free(&r);
	deadline = tsup_now_ms() + 5000;
	for (;;) {
		cr_assert_eq(viv(logs, &out), 0, "%s", out);
		if (strstr(out, "noted: a request came in"))
			break;
		cr_assert(tsup_now_ms() < deadline, "viv logs never showed the line:\n%s", out);
		free(out);
		usleep(100000);
	}
	free(out);
	free(tgz);
}
