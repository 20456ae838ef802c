/* A guest written the way Terrarium's C guests were: the host calls of
 * http_hostcalls.h, an allocator registered at start, one run() for every
 * request. The path picks what it exercises. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_hostcalls.h>

static char out[8192];
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

static void header(const char *name, const char *value)
{
	struct string_slice v;

	v.ptr = value;
	v.len = strlen(value);
	hostcall_resp_set_header(RESPONSE_OUTGOING, name, strlen(name), &v, 1);
}

static void echo(void)
{
	char *method = NULL, *path = NULL, *body = NULL;
	size_t ml = 0, pl = 0, bl = 0, n = 0, i;
	struct string_slice *vals = NULL, *names = NULL;

	hostcall_req_get_method(&method, &ml, REQUEST_INCOMING);
	hostcall_req_get_path(&path, &pl, REQUEST_INCOMING);
	hostcall_req_get_body(&body, &bl, REQUEST_INCOMING);
	say("%s %s %zu:%s\n", method, path, bl, body);
	hostcall_req_get_header(&vals, &n, REQUEST_INCOMING, "X-TEST", 6);
	for (i = 0; i < n; i++) {
		say("x-test=%.*s\n", (int)vals[i].len, vals[i].ptr);
		free((void *)vals[i].ptr);
	}
	free(vals);
	hostcall_req_get_headers(&names, &n, REQUEST_INCOMING);
	for (i = 0; i < n; i++) {
		if (strcmp(names[i].ptr, "x-real-ip") == 0)
			say("has x-real-ip\n");
		if (strcmp(names[i].ptr, "host") == 0)
			say("has host\n");
		free((void *)names[i].ptr);
	}
	free(names);
	free(method);
	free(path);
	free(body);
	header("X-Echo", "1");
	hostcall_resp_set_response_code(RESPONSE_OUTGOING, 201);
}

static void kv(void)
{
	char *v = NULL;
	size_t vl = 0;

	say("insert %d\n", hostcall_kvstore_insert("k", 1, "a", 1));
	say("insert again %d\n", hostcall_kvstore_insert("k", 1, "b", 1));
	say("append %d\n", hostcall_kvstore_append("k", 1, "c", 1));
	if (hostcall_kvstore_get(&v, &vl, "k", 1))
		say("get %.*s\n", (int)vl, v);
	free(v);
	say("upsert %d\n", hostcall_kvstore_upsert("k", 1, "z", 1));
	say("upsert new %d\n", hostcall_kvstore_upsert("k2", 2, "y", 1));
	say("remove %d\n", hostcall_kvstore_remove("k", 1));
	say("remove again %d\n", hostcall_kvstore_remove("k", 1));
	say("get missing %d\n", hostcall_kvstore_get(&v, &vl, "k", 1));
	/* A counter that lives across requests. */
	v = NULL;
	if (hostcall_kvstore_get(&v, &vl, "count", 5)) {
		int c = atoi(v) + 1;
		char buf[16];
		snprintf(buf, sizeof(buf), "%d", c);
		hostcall_kvstore_insert("count", 5, buf, strlen(buf));
		say("count %d\n", c);
		free(v);
	} else {
		hostcall_kvstore_upsert("count", 5, "1", 1);
		say("count 1\n");
	}
}

/* The URL to fetch is the query string. */
static void fetch(const char *url)
{
	request_t req = hostcall_req_create("GET", 3, url, strlen(url));
	response_t resp;
	char *body = NULL;
	size_t bl = 0, n = 0;
	struct string_slice *vals = NULL;

	resp = hostcall_req_send(req);
	if (resp < 0) {
		say("fetch failed\n");
		return;
	}
	hostcall_resp_get_body(&body, &bl, resp);
	hostcall_resp_get_header(&vals, &n, resp, "x-upstream", 10);
	say("%u %.*s %s\n", hostcall_resp_get_response_code(resp), (int)bl, body,
	    n ? vals[0].ptr : "-");
	free(body);
}

/* Two requests at once; select returns the fast one first. */
static void race(const char *base)
{
	char slow[256], fast[256];
	pending_request_t p[2], done = -1;
	response_t r;
	char *body = NULL;
	size_t bl = 0;

	snprintf(slow, sizeof(slow), "%s/slow?ms=400", base);
	snprintf(fast, sizeof(fast), "%s/hello", base);
	p[0] = hostcall_req_send_async(hostcall_req_create("GET", 3, slow, strlen(slow)));
	p[1] = hostcall_req_send_async(hostcall_req_create("GET", 3, fast, strlen(fast)));
	say("poll %d\n", hostcall_pending_req_poll(p[0]));
	r = hostcall_pending_req_select(p, 2, &done);
	hostcall_resp_get_body(&body, &bl, r);
	say("first %s %.*s\n", done == p[1] ? "fast" : "slow", (int)bl, body);
	free(body);
	r = hostcall_pending_req_wait(p[0]);
	body = NULL;
	hostcall_resp_get_body(&body, &bl, r);
	say("then %.*s\n", (int)bl, body);
	free(body);
}

static void config(void)
{
	char *v = NULL;
	size_t vl = 0;

	if (hostcall_config_get(&v, &vl, "GREETING", 8))
		say("GREETING=%.*s\n", (int)vl, v);
	say("missing %d\n", hostcall_config_get(&v, &vl, "NOPE", 4));
	free(v);
}

static void misc(void)
{
	uint32_t ns = 0;
	uint64_t t = hostcall_time_now(&ns);
	uint64_t a = hostcall_rng_next_u64(), b = hostcall_rng_next_u64();
	struct string_slice *addrs = NULL;
	size_t n = 0;

	say("time %s\n", t > 1700000000ull && ns < 1000000000u ? "ok" : "bad");
	say("rng %s\n", a != b ? "ok" : "bad");
	if (hostcall_dns_query_ip(&addrs, &n, "localhost", 9, false) && n > 0 && addrs[0].len == 4)
		say("dns %u.%u.%u.%u\n", (unsigned char)addrs[0].ptr[0],
		    (unsigned char)addrs[0].ptr[1], (unsigned char)addrs[0].ptr[2],
		    (unsigned char)addrs[0].ptr[3]);
	hostcall_debug("a debug line", 12);
	/* Terrarium's template passes -1 for a NUL-terminated message, and
	 * NULL when it wants whole seconds only. */
	hostcall_debug("a line up to its NUL", (size_t)-1);
	say("seconds %s\n",
	    hostcall_time_now(NULL) == t || hostcall_time_now(NULL) == t + 1 ? "ok" : "bad");
}

/* Out-of-range handles and pointers fail without harm. */
static void bad(void)
{
	struct string_slice v = {{(const char *)0x7ffffff0}, 64};

	say("set header %d\n", hostcall_resp_set_header(RESPONSE_OUTGOING, "X-A", 3, &v, 1));
	say("set body %d\n", hostcall_resp_set_body(RESPONSE_OUTGOING, (void *)0x7ffffff0, 64));
	say("code %d\n", hostcall_resp_set_response_code(RESPONSE_OUTGOING, 42));
	say("bad handle %d\n", hostcall_resp_set_response_code(77, 200));
	say("send 0 %d\n", hostcall_req_send(0));
	say("hop %d\n", hostcall_resp_set_header(RESPONSE_OUTGOING, "Content-Length", 14, &v, 0));
	say("status of nothing %u\n", hostcall_resp_get_response_code(12345));
}

void run(void)
{
	char *path = NULL, *q;
	size_t pl = 0;

	hostcall_init_mm(malloc, free);
	hostcall_req_get_path(&path, &pl, REQUEST_INCOMING);
	q = strchr(path, '?');
	if (q)
		*q++ = '\0';
	out_len = 0;
	if (strcmp(path, "/echo") == 0)
		echo();
	else if (strcmp(path, "/kv") == 0)
		kv();
	else if (strcmp(path, "/fetch") == 0 && q)
		fetch(q);
	else if (strcmp(path, "/fetch-then-trap") == 0 && q) {
		fetch(q);
		__builtin_trap();
	} else if (strcmp(path, "/race") == 0 && q)
		race(q);
	else if (strcmp(path, "/config") == 0)
		config();
	else if (strcmp(path, "/misc") == 0)
		misc();
	else if (strcmp(path, "/bad") == 0)
		bad();
	else if (strcmp(path, "/panic") == 0) {
		hostcall_panic_hook("it went wrong", 13);
		abort();
	} else
		hostcall_resp_set_response_code(RESPONSE_OUTGOING, 404);
	header("Content-Type", "text/plain");
	hostcall_resp_set_body(RESPONSE_OUTGOING, out, out_len);
	free(path);
}
