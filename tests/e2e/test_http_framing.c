/* End to end: request framing on the apps port that RFC 9112 calls
 * invalid (two Content-Length values, two Host lines, Content-Length with
 * Transfer-Encoding, a folded header line) is answered 400 and the
 * connection closed, so that nothing the client sent after it is read as
 * another request; well-framed pipelined requests are all answered. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "figure.h"
#include "rawnet.h"
#include "support.h"

static struct tsup_vivd vivd;

/* A WASI command that answers "app NAME" to everything. */
static char *cgi_wat(const char *name)
{
	char text[128];

	snprintf(text, sizeof(text), "app %s", name);
	return tsup_cgi_wat(text);
}

static void deploy(const char *app)
{
	char *wat = cgi_wat(app);
	json_t *d = tsup_deploy_wait(&vivd, app, wat, strlen(wat));
	const char *status = json_string_value(json_object_get(d, "status"));

	cr_assert_str_eq(status ? status : "", "ready", "%s",
	                 json_string_value(json_object_get(d, "error")));
	json_decref(d);
	free(wat);
}

static void setup(void)
{
	tsup_vivd_start(&vivd, NULL);
	deploy("first");
	deploy("second");
}

static void teardown(void)
{
	tsup_vivd_stop(&vivd);
}

/* Sends raw on a new connection and reads what comes back within
 * timeout_ms; *closed says whether vivd closed the connection. */
static char *exchange(const char *raw, unsigned timeout_ms, bool *closed)
{
	int fd = rawnet_connect(NULL, vivd.apps_port);
	char *out;

	cr_assert_geq(fd, 0);
	cr_assert(rawnet_send(fd, raw, strlen(raw)));
	out = rawnet_read(fd, timeout_ms, NULL, closed);
	close(fd);
	return out;
}

TestSuite(framing, .init = setup, .fini = teardown, .timeout = 180);

Test(framing, well_framed_pipelined_requests_are_all_answered)
{
	bool closed;
	char *out =
	        exchange("GET / HTTP/1.1\r\nHost: first.localhost\r\n\r\n"
	                 "POST / HTTP/1.1\r\nHost: second.localhost\r\nContent-Length: 5\r\n\r\n"
	                 "hello"
	                 "GET / HTTP/1.1\r\nHost: first.localhost\r\nConnection: close\r\n\r\n",
	                 3000, &closed);

	cr_assert_eq(rawnet_count(out, "HTTP/1.1 200"), 3, "%s", out);
	cr_assert_eq(rawnet_count(out, "app first"), 2, "%s", out);
	cr_assert_eq(rawnet_count(out, "app second"), 1, "%s", out);
	free(out);
}

Test(framing, two_content_lengths_are_refused_and_the_rest_never_read)
{
	bool closed;
	/* Read with the first length, the body's tail is a request of its
	 * own, smuggled past whatever stands in front of vivd. */
	char *out = exchange("POST / HTTP/1.1\r\nHost: first.localhost\r\n"
	                     "Content-Length: 5\r\nContent-Length: 47\r\n\r\n"
	                     "helloGET / HTTP/1.1\r\nHost: second.localhost\r\n\r\n",
	                     3000, &closed);

	FIGURE("two Content-Length values: %.12s, closed %d", out, closed);
	cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
	cr_assert_eq(rawnet_count(out, "HTTP/1."), 1, "a second response came:\n%s", out);
	cr_assert_null(strstr(out, "app second"), "%s", out);
	cr_assert(closed, "the connection stayed open");
	free(out);
}

Test(framing, the_same_content_length_twice_is_one_length)
{
	bool closed;
	char *out = exchange("POST / HTTP/1.1\r\nHost: first.localhost\r\n"
	                     "Content-Length: 5\r\ncontent-length:  5\r\nConnection: close\r\n\r\n"
	                     "hello",
	                     3000, &closed);

	cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
	free(out);
}

Test(framing, two_host_lines_are_refused)
{
	bool closed;
	char *out = exchange("GET / HTTP/1.1\r\nHost: first.localhost\r\n"
	                     "Host: second.localhost\r\n\r\n",
	                     3000, &closed);

	FIGURE("two Host lines: %.12s, closed %d", out, closed);
	cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
	cr_assert_null(strstr(out, "app "), "routed to an app:\n%s", out);
	cr_assert(closed, "the connection stayed open");
	free(out);
}

Test(framing, content_length_with_transfer_encoding_is_refused_and_closed)
{
	bool closed;
	double t0 = tsup_now_ms();
	char *out = exchange("POST / HTTP/1.1\r\nHost: first.localhost\r\n"
	                     "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
	                     "5\r\nhello\r\n0\r\n\r\n"
	                     "GET / HTTP/1.1\r\nHost: second.localhost\r\n\r\n",
	                     3000, &closed);

	FIGURE("Content-Length and Transfer-Encoding: %.12s, closed %d after %.0f ms", out, closed,
	       tsup_now_ms() - t0);
	cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
	cr_assert_eq(rawnet_count(out, "HTTP/1."), 1, "a second response came:\n%s", out);
	cr_assert(closed, "the connection stayed open");
	free(out);
}

Test(framing, a_folded_header_line_is_refused)
{
	bool closed;
	char *out = exchange("GET / HTTP/1.1\r\nHost: first.localhost\r\n"
	                     "X-Long: a\r\n  continued\r\n\r\n",
	                     3000, &closed);

	cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
	cr_assert(closed, "the connection stayed open");
	free(out);
}
