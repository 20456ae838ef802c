/* The terms of Terrarium's SDKs that its guests rely on, one path each:
 * a completed pending request is spent, a received response is read-only,
 * and a request with a URL that does not parse is refused when it is
 * made. The query string is the upstream's base URL. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_hostcalls.h>

static char out[4096];
static size_t out_len;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + out_len, sizeof(out) - out_len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(out) - out_len)
		out_len += (size_t)n;
}

static request_t get(const char *base, const char *path)
{
	char url[256];

	snprintf(url, sizeof(url), "%s%s", base, path);
	return hostcall_req_create("GET", 3, url, strlen(url));
}

static void spent(const char *base)
{
	pending_request_t p = hostcall_req_send_async(get(base, "/hello"));
	pending_request_t two[2], done = -1;
	response_t r;

	r = hostcall_pending_req_wait(p);
	say("wait %s\n", r >= 0 ? "ok" : "failed");
	say("wait again %d\n", hostcall_pending_req_wait(p));
	say("poll again %d\n", hostcall_pending_req_poll(p));
	say("select again %d\n", hostcall_pending_req_select(&p, 1, &done));
	two[0] = hostcall_req_send_async(get(base, "/slow?ms=300"));
	two[1] = hostcall_req_send_async(get(base, "/hello"));
	r = hostcall_pending_req_select(two, 2, &done);
	say("select %s\n", r >= 0 && done == two[1] ? "fast" : "other");
	say("select the spent one %d\n", hostcall_pending_req_select(&done, 1, &done));
	r = hostcall_pending_req_wait(two[0]);
	say("the other %s\n", r >= 0 ? "ok" : "failed");
}

static void readonly(const char *base)
{
	response_t r = hostcall_req_send(get(base, "/hello"));
	struct string_slice v = {{"x"}, 1};
	char *body = NULL;
	size_t bl = 0;

	say("set body %d\n", hostcall_resp_set_body(r, "changed", 7));
	say("set header %d\n", hostcall_resp_set_header(r, "X-A", 3, &v, 1));
	say("set code %d\n", hostcall_resp_set_response_code(r, 201));
	hostcall_resp_get_body(&body, &bl, r);
	say("body %.*s code %u\n", (int)bl, body, hostcall_resp_get_response_code(r));
	free(body);
}

static void urls(const char *base)
{
	static const char *const bad[] = {"not a url", "/relative", "ftp://127.0.0.1/x", "http://",
	                                  ""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		say("create '%s' %d\n", bad[i],
		    hostcall_req_create("GET", 3, bad[i], strlen(bad[i])) < 0 ? -1 : 1);
	say("create good %s\n", get(base, "/hello") >= 0 ? "ok" : "failed");
}

void run(void)
{
	char *path = NULL, *q;
	size_t pl = 0;

	hostcall_init_mm(malloc, free);
	hostcall_req_get_path(&path, &pl, REQUEST_INCOMING);
	q = path ? strchr(path, '?') : NULL;
	if (q)
		*q++ = '\0';
	if (path && q && strcmp(path, "/spent") == 0)
		spent(q);
	else if (path && q && strcmp(path, "/readonly") == 0)
		readonly(q);
	else if (path && q && strcmp(path, "/urls") == 0)
		urls(q);
	free(path);
	hostcall_resp_set_body(RESPONSE_OUTGOING, out, out_len);
}
