/* Server-Sent Events over HTTP: a build followed as it happens and after
 * the fact, an app's log as it is written, keep-alives, and streams that
 * neither block other requests nor outlive their clients. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_server.h"
#include "store.h"
#include "viv.h"

static struct tsrv srv;

static void setup(void)
{
	/* Keep-alives every second, so that a test sees them soon. */
	tsrv_start_with(&srv, 0, NULL, 1);
}

static void teardown(void)
{
	tsrv_stop(&srv);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 240);

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One event stream read by libcurl. */
struct sse {
	CURL *h;
	struct curl_slist *hdrs;
	struct viv_buf text;
	const char *until; /* stop reading once the text holds it */
	char url[256];
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sse *e = ctx;

	if (viv_buf_append(&e->text, p, size * n))
		return 0;
	if (e->until && memmem(e->text.data, e->text.len, e->until, strlen(e->until)))
		return 0;
	return size * n;
}

static void sse_init(struct sse *e, const char *path, const char *extra, const char *until)
{
	char auth[256];

	memset(e, 0, sizeof(*e));
	viv_buf_init(&e->text, 8u << 20);
	e->until = until;
	snprintf(e->url, sizeof(e->url), "%s%s", srv.base, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", srv.token);
	e->hdrs = curl_slist_append(NULL, auth);
	if (extra)
		e->hdrs = curl_slist_append(e->hdrs, extra);
	e->h = curl_easy_init();
	curl_easy_setopt(e->h, CURLOPT_URL, e->url);
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
}

static void sse_free(struct sse *e)
{
	curl_easy_cleanup(e->h);
	curl_slist_free_all(e->hdrs);
	viv_buf_free(&e->text);
}

/* Reads the stream at path until it ends, or holds until, or timeout_ms
 * passes: *ended says whether the server ended it. Returns the text
 * (caller frees) and the status in *status. */
static char *sse_read(const char *path, const char *extra, const char *until, long timeout_ms,
                      long *status, bool *ended)
{
	struct sse e;
	CURLcode rc;
	char *text;

	sse_init(&e, path, extra, until);
	curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, timeout_ms);
	rc = curl_easy_perform(e.h);
	cr_assert(rc == CURLE_OK || rc == CURLE_WRITE_ERROR || rc == CURLE_OPERATION_TIMEDOUT,
	          "%s: %s", path, curl_easy_strerror(rc));
	*ended = rc == CURLE_OK;
	curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, status);
	cr_assert_eq(viv_buf_append(&e.text, "", 1), VIV_OK);
	text = viv_buf_steal(&e.text);
	sse_free(&e);
	return text;
}

/* The data lines of the events called name, in order, joined. */
static size_t events_named(const char *text, const char *name, char **datas, size_t max)
{
	char head[64];
	size_t n = 0;

	snprintf(head, sizeof(head), "event: %s\ndata: ", name);
	for (const char *p = strstr(text, head); p && n < max; p = strstr(p + 1, head)) {
		const char *d = p + strlen(head), *end = strchr(d, '\n');

		datas[n++] = strndup(d, end ? (size_t)(end - d) : strlen(d));
	}
	return n;
}

Test(events, a_build_as_it_happens_and_after)
{
	char path[64], *text, *statuses[16], *steps[32], *logs[64];
	size_t n_status, n_steps, n_logs;
	struct viv_buf log;
	json_t *last, *d;
	long long id;
	long status;
	bool ended;

	id = tupload(&srv, "live", NULL, twasm_min, twasm_min_len);
	snprintf(path, sizeof(path), "/v1/deployments/%lld/events", id);
	text = sse_read(path, NULL, NULL, 120000, &status, &ended);
	cr_assert_eq(status, 200);
	cr_assert(ended, "the stream did not end after the build:\n%s", text);
	n_status = events_named(text, "status", statuses, 16);
	cr_assert_geq(n_status, 1, "%s", text);
	last = json_loads(statuses[n_status - 1], 0, NULL);
	cr_assert_str_eq(tjstr(last, "status"), "ready", "%s", text);
	cr_assert_eq(json_integer_value(json_object_get(last, "id")), id);
	cr_assert(json_is_string(json_object_get(last, "preview_url")));
	json_decref(last);
	/* Nothing after the final status. */
	cr_assert_null(strstr(strstr(text, statuses[n_status - 1]), "event:"), "%s", text);
	n_steps = events_named(text, "step", steps, 32);
	cr_assert_geq(n_steps, 3, "%s", text);
	cr_assert_str_eq(steps[0], "{\"step\":\"unpack\"}", "%s", text);

	/* A late client gets the same log whole, then the final status. */
	n_logs = 0;
	free(text);
	text = sse_read(path, NULL, NULL, 30000, &status, &ended);
	cr_assert(ended);
	n_logs = events_named(text, "log", logs, 64);
	viv_buf_init(&log, 0);
	for (size_t i = 0; i < n_logs; i++) {
		json_t *j = json_loads(logs[i], 0, NULL);

		cr_assert_eq(viv_buf_append(&log, tjstr(j, "text"), strlen(tjstr(j, "text"))),
		             VIV_OK);
		json_decref(j);
		free(logs[i]);
	}
	cr_assert_eq(viv_buf_append(&log, "", 1), VIV_OK);
	d = twait_deployment(&srv, id, 10);
	cr_assert_str_eq(log.data, tjstr(d, "log"));
	json_decref(d);
	cr_assert_eq(events_named(text, "status", statuses + n_status, 1), 1, "%s", text);
	cr_assert_not_null(strstr(statuses[n_status], "\"ready\""), "%s", text);
	viv_buf_free(&log);
	free(text);
	for (size_t i = 0; i <= n_status; i++)
		free(statuses[i]);
	for (size_t i = 0; i < n_steps; i++)
		free(steps[i]);

	text = sse_read("/v1/deployments/999/events", NULL, NULL, 5000, &status, &ended);
	cr_assert_eq(status, 404);
	free(text);
}

static void append_line(const char *message)
{
	struct store_log line = {.stream = "stdout", .message = (char *)message};

	tsrv_append_logs(&srv, "talk", &line, 1);
}

Test(events, an_app_log_as_it_is_written)
{
	struct sse e;
	CURLM *m;
	char *text, *logs[8];
	double t0;
	int running = 1;
	long status;
	bool ended;
	size_t n;
	json_t *j;

	tupload(&srv, "talk", NULL, twasm_min, twasm_min_len);
	append_line("one");
	append_line("two");

	/* First the lines already there, with their ids. */
	text = sse_read("/v1/apps/talk/logs/stream", NULL, "\"two\"", 10000, &status, &ended);
	cr_assert_eq(status, 200);
	n = events_named(text, "log", logs, 8);
	cr_assert_eq(n, 2, "%s", text);
	j = json_loads(logs[1], 0, NULL);
	cr_assert_str_eq(tjstr(j, "message"), "two");
	cr_assert_str_eq(tjstr(j, "stream"), "stdout");
	cr_assert_not_null(strstr(text, "id: "), "%s", text);
	free(text);

	/* From a Last-Event-ID on: only newer lines. */
	{
		char hdr[64];

		snprintf(hdr, sizeof(hdr), "Last-Event-ID: %lld",
		         (long long)json_integer_value(json_object_get(j, "id")) - 1);
		text = sse_read("/v1/apps/talk/logs/stream", hdr, "\"two\"", 10000, &status,
		                &ended);
		cr_assert_null(strstr(text, "\"one\""), "%s", text);
		free(text);
	}
	json_decref(j);
	for (size_t i = 0; i < n; i++)
		free(logs[i]);

	/* A line written while a client listens arrives within a second, and
	 * keep-alives come while nothing is written. */
	sse_init(&e, "/v1/apps/talk/logs/stream", NULL, "\"three\"");
	m = curl_multi_init();
	curl_multi_add_handle(m, e.h);
	t0 = now_ms();
	while (now_ms() - t0 < 2500) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	cr_assert(running);
	cr_assert_not_null(memmem(e.text.data, e.text.len, ": keep-alive\n\n", 14), "%.*s",
	                   (int)e.text.len, e.text.data);
	append_line("three");
	t0 = now_ms();
	while (running && now_ms() - t0 < 5000) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	cr_assert_not(running, "the new line did not arrive");
	cr_assert_lt(now_ms() - t0, 1500, "the new line took %.0f ms", now_ms() - t0);
	curl_multi_remove_handle(m, e.h);
	curl_multi_cleanup(m);
	sse_free(&e);

	text = sse_read("/v1/apps/nobody/logs/stream", NULL, NULL, 5000, &status, &ended);
	cr_assert_eq(status, 404);
	free(text);
	text = sse_read("/v1/apps/talk/logs/stream?after=x", NULL, NULL, 5000, &status, &ended);
	cr_assert_eq(status, 400);
	free(text);
}

/* Opens n log streams at once and drives them until each got its headers. */
static void open_streams(CURLM *m, struct sse *es, size_t n)
{
	int running = 1;
	double t0 = now_ms();
	size_t answered = 0;

	for (size_t i = 0; i < n; i++) {
		sse_init(&es[i], "/v1/apps/talk/logs/stream", NULL, NULL);
		curl_multi_add_handle(m, es[i].h);
	}
	while (answered < n && now_ms() - t0 < 10000) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
		answered = 0;
		for (size_t i = 0; i < n; i++) {
			long status = 0;

			curl_easy_getinfo(es[i].h, CURLINFO_RESPONSE_CODE, &status);
			answered += status == 200;
		}
	}
	cr_assert_eq(answered, n, "only %zu of %zu streams answered", answered, n);
}

static void close_streams(CURLM *m, struct sse *es, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, es[i].h);
		sse_free(&es[i]);
	}
}

Test(events, streams_neither_block_nor_outlive_their_clients)
{
	struct sse es[8];
	struct tresp r;
	CURLM *m;
	char *text;
	double t0;
	long status = 0;
	bool ended;
	int round;

	tupload(&srv, "talk", NULL, twasm_min, twasm_min_len);
	m = curl_multi_init();
	open_streams(m, es, 8);

	/* Other requests are answered while they are open, uploads too. */
	t0 = now_ms();
	thttp(&srv, "GET", "/healthz", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	tresp_free(&r);
	tupload(&srv, "talk", NULL, twasm_min, twasm_min_len);
	cr_assert_lt(now_ms() - t0, 1000);

	/* A ninth from the same address is refused, and says why. */
	text = sse_read("/v1/apps/talk/logs/stream", NULL, NULL, 5000, &status, &ended);
	cr_assert_eq(status, 503, "%s", text);
	cr_assert_not_null(strstr(text, "Too many event streams"), "%s", text);
	free(text);

	/* Clients that leave free their streams: eight more fit, twice. */
	for (round = 0; round < 2; round++) {
		close_streams(m, es, 8);
		for (int tries = 0; tries < 50; tries++) {
			text = sse_read("/v1/apps/talk/logs/stream", NULL, NULL, 300, &status,
			                &ended);
			free(text);
			if (status == 200)
				break;
			usleep(100000);
		}
		cr_assert_eq(status, 200, "the server did not notice the clients leave");
		/* The probe's own stream is gone too once noticed. */
		usleep(600000);
		open_streams(m, es, 8);
	}
	/* The server stops cleanly (tsrv_stop checks) with streams open. */
	tsrv_stop(&srv);
	close_streams(m, es, 8);
	curl_multi_cleanup(m);
	tsrv_start_with(&srv, 0, NULL, 1);
}
