/* End to end, with the real vivd: preview addresses (a deployment answers
 * at d{ID}-{app} before and after it is replaced, after a rollback, with
 * its own configuration and the app's settings), the access line every
 * request leaves in its app's log, and the metrics file of each worker. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"
#include "viv.h"

static struct tsup_vivd vivd;

static void start(void)
{
	tsup_vivd_start(&vivd, NULL);
}

static void stop(void)
{
	tsup_vivd_stop(&vivd);
}

TestSuite(runner_flow, .init = start, .fini = stop, .timeout = 300);

/* A C app that prints its GREETING setting and word, with a static file. */
static long deploy_c(const char *app, const char *greeting, const char *word)
{
	char manifest[128], source[512];
	struct tsup_file files[] = {
	        {"vivarium.json", manifest},
	        {"main.c", source},
	        {"assets/hello.txt", "static hello\n"},
	};
	char *tgz;
	size_t len;
	json_t *d;
	long id;

	snprintf(manifest, sizeof(manifest), "{\"env\": {\"GREETING\": \"%s\"}}", greeting);
	snprintf(source, sizeof(source),
	         "#include <stdio.h>\n"
	         "#include <stdlib.h>\n"
	         "int main(void)\n"
	         "{\n"
	         "\tprintf(\"Content-Type: text/plain\\n\\n%%s %s\\n\", getenv(\"GREETING\"));\n"
	         "\treturn 0;\n"
	         "}\n",
	         word);
	tsup_tar(files, 3, true, &tgz, &len);
	d = tsup_deploy_wait(&vivd, app, tgz, len);
	free(tgz);
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready", "%s",
	                 json_string_value(json_object_get(d, "log")));
	id = (long)json_integer_value(json_object_get(d, "id"));
	json_decref(d);
	return id;
}

/* GET path at LABEL.localhost on the apps port. */
static void get_at(const char *label, const char *path, struct tsup_resp *r)
{
	char url[256], host[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", vivd.apps_port, path);
	snprintf(host, sizeof(host), "%s.localhost", label);
	cr_assert(tsup_http("GET", url, host, NULL, NULL, 0, r), "no answer at %s: %s", host,
	          r->error);
}

static void expect_at(const char *label, long status, const char *body)
{
	struct tsup_resp r;

	get_at(label, "/", &r);
	cr_assert_eq(r.status, status, "%s answered %ld: %s", label, r.status, r.body);
	cr_assert_str_eq(r.body, body, "%s answered '%s'", label, r.body);
	tsup_resp_free(&r);
}

static void expect_preview(long id, const char *app, long status, const char *body)
{
	char label[96];

	snprintf(label, sizeof(label), "d%ld-%s", id, app);
	expect_at(label, status, body);
}

/* What an unknown app's address answers. */
static char *unknown_page(void)
{
	struct tsup_resp r;
	char *body;

	get_at("no-such-app", "/", &r);
	cr_assert_eq(r.status, 404);
	body = strdup(r.body);
	tsup_resp_free(&r);
	return body;
}

/* An API call that must succeed (what it answers is the API's tests'
 * business). */
static void api_call(const char *method, const char *path, const char *body)
{
	char url[256];
	struct tsup_resp r;

	snprintf(url, sizeof(url), "%s%s", vivd.api, path);
	cr_assert(tsup_http(method, url, NULL, vivd.token, body, body ? strlen(body) : 0, &r));
	cr_assert(r.status >= 200 && r.status < 300, "%s %s answered %ld: %s", method, path,
	          r.status, r.body);
	tsup_resp_free(&r);
}

Test(runner_flow, a_deployment_answers_at_its_preview_address_whatever_is_current)
{
	long d1 = deploy_c("flow", "hi", "one"), d2, other;
	char rollback[64], *unknown = unknown_page();

	expect_at("flow", 200, "hi one\n");
	expect_preview(d1, "flow", 200, "hi one\n");
	d2 = deploy_c("flow", "hey", "two");
	expect_at("flow", 200, "hey two\n");
	expect_preview(d1, "flow", 200, "hi one\n");
	expect_preview(d2, "flow", 200, "hey two\n");
	/* A setting made through the API applies to every deployment. */
	api_call("PUT", "/v1/apps/flow/config/GREETING", "set");
	expect_preview(d1, "flow", 200, "set one\n");
	expect_preview(d2, "flow", 200, "set two\n");
	api_call("DELETE", "/v1/apps/flow/config/GREETING", NULL);
	expect_preview(d1, "flow", 200, "hi one\n");
	/* After a rollback the replaced one answers at its address too. */
	snprintf(rollback, sizeof(rollback), "{\"deployment\": %ld}", d1);
	api_call("POST", "/v1/apps/flow/rollback", rollback);
	expect_at("flow", 200, "hi one\n");
	expect_preview(d2, "flow", 200, "hey two\n");
	expect_preview(d1, "flow", 200, "hi one\n");
	/* Unknown, not this app's: the page an unknown app gets. */
	other = deploy_c("other", "yo", "three");
	expect_preview(other, "flow", 404, unknown);
	expect_preview(d1, "other", 404, unknown);
	expect_preview(99999, "flow", 404, unknown);
	expect_preview(other, "other", 200, "yo three\n");
	free(unknown);
}

Test(runner_flow, a_failed_deployment_has_no_preview)
{
	struct tsup_file bad[] = {{"main.c", "int main(void) { return syntax error; }\n"}};
	char *tgz, *unknown = unknown_page();
	size_t len;
	json_t *d;
	long id;

	deploy_c("flow", "hi", "one");
	tsup_tar(bad, 1, true, &tgz, &len);
	d = tsup_deploy_wait(&vivd, "flow", tgz, len);
	free(tgz);
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "failed");
	id = (long)json_integer_value(json_object_get(d, "id"));
	json_decref(d);
	expect_preview(id, "flow", 404, unknown);
	free(unknown);
}

/* The app's access lines, once at least n of them are in its log (lines
 * are written in batches): a JSON array of messages; caller json_decref. */
static json_t *access_lines(const char *app, size_t n)
{
	double deadline = tsup_now_ms() + 10000;
	char url[256];

	snprintf(url, sizeof(url), "%s/v1/apps/%s/logs?limit=1000", vivd.api, app);
	for (;;) {
		json_t *root, *lines = json_array(), *l;
		struct tsup_resp r;
		json_error_t jerr;
		size_t i;

		cr_assert(tsup_http("GET", url, NULL, vivd.token, NULL, 0, &r));
		cr_assert_eq(r.status, 200, "%s", r.body);
		root = json_loads(r.body, 0, &jerr);
		cr_assert_not_null(root, "the logs are not JSON: %s\n%s", jerr.text, r.body);
		json_array_foreach(json_object_get(root, "logs"), i, l)
		{
			if (strcmp(json_string_value(json_object_get(l, "stream")), "access") == 0)
				json_array_append(lines, json_object_get(l, "message"));
		}
		json_decref(root);
		if (json_array_size(lines) >= n || tsup_now_ms() > deadline) {
			cr_assert_geq(json_array_size(lines), n,
			              "%s's log has too few access lines:\n%s", app, r.body);
			tsup_resp_free(&r);
			return lines;
		}
		tsup_resp_free(&r);
		json_decref(lines);
		usleep(100000);
	}
}

/* Whether line is "METHOD TARGET STATUS T ms (WHAT)" with the given
 * method, target and status, T a number with two decimals, and WHAT
 * "instance T ms", "static file" or "no instance" as by says. */
static bool access_line_is(const char *line, const char *method, const char *target,
                           unsigned status, const char *by)
{
	char head[512], tail[64];
	double total, inst;
	int used = 0;

	snprintf(head, sizeof(head), "%s %s %u ", method, target, status);
	if (strncmp(line, head, strlen(head)) != 0)
		return false;
	line += strlen(head);
	if (sscanf(line, "%lf ms (%n", &total, &used) != 1 || used == 0 || total < 0)
		return false;
	line += used;
	if (strcmp(by, "instance") == 0)
		return sscanf(line, "instance %lf ms)%n", &inst, &used) == 1 &&
		       line[used] == '\0' && inst <= total + 0.01;
	snprintf(tail, sizeof(tail), "%s)", by);
	return strcmp(line, tail) == 0;
}

static bool has_access_line(json_t *lines, const char *method, const char *target, unsigned status,
                            const char *by)
{
	json_t *l;
	size_t i;

	json_array_foreach(lines, i, l)
	{
		if (access_line_is(json_string_value(l), method, target, status, by))
			return true;
	}
	return false;
}

/* Sends raw bytes as a request to the apps port and returns the status. */
static int raw_request(const char *bytes, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char buf[256];
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
	ssize_t n;

	sa.sin_port = htons((uint16_t)vivd.apps_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	sscanf(buf, "HTTP/1.%*d %d", &status);
	close(fd);
	return status;
}

Test(runner_flow, every_request_leaves_an_access_line_in_its_apps_log)
{
	static const char hostile[] = "GET /caf\xc3\xa9?q=\xff%0a HTTP/1.1\r\n"
	                              "Host: logged.localhost\r\nConnection: close\r\n\r\n";
	struct tsup_resp r;
	json_t *lines, *l;
	long id = deploy_c("logged", "hi", "one");
	char preview[64];
	size_t i;

	get_at("logged", "/a?x=1", &r);
	cr_assert_eq(r.status, 200);
	tsup_resp_free(&r);
	get_at("logged", "/hello.txt", &r);
	cr_assert_str_eq(r.body, "static hello\n");
	tsup_resp_free(&r);
	snprintf(preview, sizeof(preview), "d%ld-logged", id);
	get_at(preview, "/from-preview", &r);
	cr_assert_eq(r.status, 200);
	tsup_resp_free(&r);
	cr_assert_eq(raw_request(hostile, sizeof(hostile) - 1), 200);
	lines = access_lines("logged", 4);
	cr_assert(has_access_line(lines, "GET", "/a?x=1", 200, "instance"),
	          "no access line for /a?x=1 in %s", json_dumps(lines, 0));
	cr_assert(has_access_line(lines, "GET", "/hello.txt", 200, "static file"),
	          "no access line for the static file in %s", json_dumps(lines, 0));
	cr_assert(has_access_line(lines, "GET", "/from-preview", 200, "instance"),
	          "no access line for the preview in %s", json_dumps(lines, 0));
	/* Bytes past ASCII come escaped: the log stays one valid line. */
	cr_assert(has_access_line(lines, "GET", "/caf\\xc3\\xa9?q=\\xff%0a", 200, "instance"),
	          "the hostile target was not escaped in %s", json_dumps(lines, 0));
	json_array_foreach(lines, i, l) cr_assert_null(strpbrk(json_string_value(l), "\r\n"));
	json_decref(lines);
}

/* The sum over the workers' metrics files of the sample whose line starts
 * with prefix (its name and labels), waiting up to 5 s for it to reach
 * want (files are written about once a second). */
static double metric_sum(const char *prefix, double want)
{
	double deadline = tsup_now_ms() + 5000, sum = 0;

	for (;;) {
		unsigned w;

		sum = 0;
		for (w = 0; w < 2; w++) {
			char path[400], *text = NULL, *line;
			size_t len;

			snprintf(path, sizeof(path), "%s/run/metrics/worker-%u.prom", vivd.data, w);
			if (viv_read_file(path, 1 << 20, &text, &len) != VIV_OK)
				continue;
			for (line = text; line && *line; line = strchr(line, '\n')) {
				if (*line == '\n')
					line++;
				if (strncmp(line, prefix, strlen(prefix)) == 0 &&
				    line[strlen(prefix)] == ' ')
					sum += strtod(line + strlen(prefix) + 1, NULL);
			}
			free(text);
		}
		if (sum >= want || tsup_now_ms() > deadline)
			return sum;
		usleep(100000);
	}
}

Test(runner_flow, each_worker_writes_its_metrics_for_the_api)
{
	static const char trap_wat[] = "(module (func (export \"_start\") unreachable))";
	struct tsup_file trap_files[] = {{"app.wat", trap_wat}};
	char *tgz;
	size_t len;
	json_t *d;
	struct tsup_resp r;
	int i;

	deploy_c("measured", "hi", "one");
	tsup_tar(trap_files, 1, true, &tgz, &len);
	d = tsup_deploy_wait(&vivd, "trapper", tgz, len);
	free(tgz);
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready", "%s\n%s",
	                 json_string_value(json_object_get(d, "error")),
	                 json_string_value(json_object_get(d, "log")));
	json_decref(d);
	for (i = 0; i < 10; i++) {
		get_at("measured", "/", &r);
		cr_assert_eq(r.status, 200);
		tsup_resp_free(&r);
	}
	get_at("measured", "/hello.txt", &r);
	tsup_resp_free(&r);
	for (i = 0; i < 3; i++) {
		get_at("trapper", "/", &r);
		cr_assert_eq(r.status, 500);
		tsup_resp_free(&r);
	}
	cr_assert_eq(metric_sum("vivarium_requests_total{app=\"measured\",code=\"200\"}", 11), 11);
	cr_assert_eq(metric_sum("vivarium_request_seconds_count{app=\"measured\"}", 11), 11);
	cr_assert_eq(metric_sum("vivarium_requests_total{app=\"trapper\",code=\"500\"}", 3), 3);
	cr_assert_eq(metric_sum("vivarium_traps_total{app=\"trapper\",kind=\"unreachable\"}", 3),
	             3);
	cr_assert_eq(metric_sum("vivarium_limits_total{app=\"trapper\",limit=\"cpu\"}", 0), 0);
	/* Ten instances of one app and three of the other started; the static
	 * file needed none. */
	cr_assert_eq(metric_sum("vivarium_instance_start_seconds_count", 13), 13);
	cr_assert_eq(metric_sum("vivarium_instances", 0), 0);
}
