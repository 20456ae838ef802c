/* A guest whose allocator re-enters the host. For every host call that
 * places its result through the guest's allocator, the path names the call;
 * while the host is inside it, each call of the allocator first makes the
 * host call that would free or replace the data being returned (a new body,
 * a new header, the same KV key or DNS name again). The answer is one line:
 * "<call> original" when the guest received exactly the data it had before,
 * "<call> error" when the call failed cleanly, "<call> corrupt ..." when it
 * received anything else; then what the nested calls returned.
 *
 * Two more paths change a request after sending it, while the host still
 * sends it: /send_then_replace?URL posts BODY and a header to URL, replaces
 * both at once and answers with what came back; /slow_echo?URL first
 * fetches URL (the guest waits), then answers with its own request's body and
 * header, for a sender that is the app itself. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_hostcalls.h>

/* The originals, long enough that a freed copy's first bytes (where the C
 * library's allocator keeps its links) would differ, and of other sizes than
 * the replacements, so that a replacement does not land in the same block. */
#define BODY "the original body, forty-eight bytes long......."
#define VALUE "the original header value, thirty-nine"
#define NAME "X-Original-Header-Name"
#define KV_VALUE "the original value under the key, long enough"
#define REPLACEMENT "r"

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

/* What the allocator does before allocating, while armed. */
enum nest {
	NEST_NONE,
	NEST_REQ_SET_BODY,
	NEST_REQ_SET_HEADER,
	NEST_REQ_GET_METHOD,
	NEST_REQ_GET_PATH,
	NEST_RESP_SET_BODY,
	NEST_RESP_SET_HEADER,
	NEST_KV_GET,
	NEST_CONFIG_GET,
	NEST_DNS_IP,
	NEST_DNS_RAW,
	NEST_INCOMING_BODY,
};

static enum nest nest;
static int nesting;
static request_t req_h;
/* What each nested call returned, in order. */
static int nested[16];
static size_t n_nested;

static const char dns_query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 9,    'l',  'o',  'c',  'a',  'l',
                                 'h',  'o',  's',  't',  0,    0x00, 0x01, 0x00, 0x01};

/* Makes the nested call for nest; returns its result as an int (for calls
 * that return data: 1 when data came back, 0 when it did not). */
static int nest_once(void)
{
	struct string_slice v = {{REPLACEMENT}, 1}, *slices = NULL;
	char *p = NULL;
	size_t len = 0;

	switch (nest) {
	case NEST_NONE:
		return 0;
	case NEST_REQ_SET_BODY:
		return hostcall_req_set_body(req_h, REPLACEMENT, 1);
	case NEST_REQ_SET_HEADER:
		return hostcall_req_set_header(req_h, NAME, strlen(NAME), &v, 1);
	case NEST_REQ_GET_METHOD:
		hostcall_req_get_method(&p, &len, req_h);
		break;
	case NEST_REQ_GET_PATH:
		hostcall_req_get_path(&p, &len, req_h);
		break;
	case NEST_RESP_SET_BODY:
		return hostcall_resp_set_body(RESPONSE_OUTGOING, REPLACEMENT, 1);
	case NEST_RESP_SET_HEADER:
		return hostcall_resp_set_header(RESPONSE_OUTGOING, NAME, strlen(NAME), &v, 1);
	case NEST_KV_GET:
		return hostcall_kvstore_get(&p, &len, "key", 3);
	case NEST_CONFIG_GET:
		return hostcall_config_get(&p, &len, "GREETING", 8);
	case NEST_DNS_IP:
		return hostcall_dns_query_ip(&slices, &len, "localhost", 9, false);
	case NEST_DNS_RAW:
		return hostcall_dns_query_raw(&p, &len, dns_query, sizeof(dns_query));
	case NEST_INCOMING_BODY:
		hostcall_req_get_body(&p, &len, REQUEST_INCOMING);
		break;
	}
	return p != NULL;
}

static void *reenter_malloc(size_t n)
{
	if (nest != NEST_NONE && !nesting) {
		int r;

		nesting = 1;
		r = nest_once();
		nesting = 0;
		if (n_nested < sizeof(nested) / sizeof(nested[0]))
			nested[n_nested++] = r;
	}
	return malloc(n);
}

static void reenter_free(void *p)
{
	free(p);
}

/* Reports what came back: want is the original, NULL when the call may
 * only fail. */
static void judge(const char *call, const char *got, size_t len, const char *want)
{
	size_t i;

	if (!got || (want && len == 0))
		say("%s error", call);
	else if (want && len == strlen(want) && memcmp(got, want, len) == 0 && got[len] == 0)
		say("%s original", call);
	else {
		say("%s corrupt %zu:", call, len);
		for (i = 0; i < len && i < 24; i++)
			say("%02x", (unsigned char)got[i]);
	}
}

/* The same for an array of slices that should hold one string. */
static void judge_slices(const char *call, struct string_slice *s, size_t n, const char *want)
{
	if (!s || n == 0)
		say("%s error", call);
	else if (n != 1)
		say("%s corrupt %zu slices", call, n);
	else
		judge(call, s[0].ptr, s[0].len, want);
}

/* Sends BODY and NAME: VALUE to url, replaces both while the request is in
 * flight, and says what the upstream answered. */
static void send_then_replace(const char *url)
{
	static char big[300];
	struct string_slice v = {{VALUE}, strlen(VALUE)}, w = {{big}, 200};
	request_t h = hostcall_req_create("POST", 4, url, strlen(url));
	pending_request_t pend;
	response_t resp;
	char *p = NULL;
	size_t len = 0;

	memset(big, 'z', sizeof(big) - 1);
	hostcall_req_set_body(h, BODY, strlen(BODY));
	hostcall_req_set_header(h, NAME, strlen(NAME), &v, 1);
	pend = hostcall_req_send_async(h);
	hostcall_req_set_body(h, big, sizeof(big) - 1);
	hostcall_req_set_header(h, NAME, strlen(NAME), &w, 1);
	resp = hostcall_pending_req_wait(pend);
	if (resp < 0) {
		say("send failed\n");
		return;
	}
	hostcall_resp_get_body(&p, &len, resp);
	say("sent %.*s\n", (int)len, p);
}

/* Waits for url, then echoes this request's body and NAME header. */
static void slow_echo(const char *url)
{
	struct string_slice *vals = NULL;
	char *p = NULL;
	size_t len = 0, n = 0;
	request_t h = hostcall_req_create("GET", 3, url, strlen(url));

	hostcall_req_send(h);
	hostcall_req_get_body(&p, &len, REQUEST_INCOMING);
	hostcall_req_get_header(&vals, &n, REQUEST_INCOMING, NAME, strlen(NAME));
	say("%.*s|%.*s", (int)len, p, n ? (int)vals[0].len : 0, n ? vals[0].ptr : "");
	hostcall_resp_set_body(RESPONSE_OUTGOING, out, out_len);
}

static void lower(char *dst, const char *src)
{
	while ((*dst++ = (char)(*src >= 'A' && *src <= 'Z' ? *src + 32 : *src)))
		src++;
}

void run(void)
{
	struct string_slice v = {{VALUE}, strlen(VALUE)}, *slices = NULL;
	char *path = NULL, *p = NULL, name_lc[64];
	size_t pl = 0, len = 0, i;
	const char *call;

	hostcall_init_mm(reenter_malloc, reenter_free);
	hostcall_req_get_path(&path, &pl, REQUEST_INCOMING);
	call = path + 1;
	if (strncmp(call, "slow_echo?", 10) == 0) {
		slow_echo(call + 10);
		return;
	}
	if (strncmp(call, "send_then_replace?", 18) == 0) {
		send_then_replace(call + 18);
		hostcall_resp_set_body(RESPONSE_OUTGOING, out, out_len);
		return;
	}
	lower(name_lc, NAME);
	req_h = hostcall_req_create("GET", 3, "http://example.com/", 19);
	hostcall_req_set_body(req_h, BODY, strlen(BODY));
	hostcall_req_set_header(req_h, NAME, strlen(NAME), &v, 1);
	hostcall_resp_set_body(RESPONSE_OUTGOING, BODY, strlen(BODY));
	hostcall_resp_set_header(RESPONSE_OUTGOING, NAME, strlen(NAME), &v, 1);
	hostcall_kvstore_upsert("key", 3, KV_VALUE, strlen(KV_VALUE));

	if (strcmp(call, "req_get_body") == 0) {
		nest = NEST_REQ_SET_BODY;
		hostcall_req_get_body(&p, &len, req_h);
		nest = NEST_NONE;
		judge(call, p, len, BODY);
	} else if (strcmp(call, "req_get_header") == 0) {
		nest = NEST_REQ_SET_HEADER;
		hostcall_req_get_header(&slices, &len, req_h, NAME, strlen(NAME));
		nest = NEST_NONE;
		judge_slices(call, slices, len, VALUE);
	} else if (strcmp(call, "req_get_headers") == 0) {
		nest = NEST_REQ_SET_HEADER;
		hostcall_req_get_headers(&slices, &len, req_h);
		nest = NEST_NONE;
		judge_slices(call, slices, len, name_lc);
	} else if (strcmp(call, "req_get_method") == 0) {
		nest = NEST_REQ_GET_METHOD;
		hostcall_req_get_method(&p, &len, req_h);
		nest = NEST_NONE;
		judge(call, p, len, "GET");
	} else if (strcmp(call, "req_get_path") == 0) {
		nest = NEST_REQ_GET_PATH;
		hostcall_req_get_path(&p, &len, req_h);
		nest = NEST_NONE;
		judge(call, p, len, "http://example.com/");
	} else if (strcmp(call, "incoming_req_get_body") == 0) {
		nest = NEST_INCOMING_BODY;
		hostcall_req_get_body(&p, &len, REQUEST_INCOMING);
		nest = NEST_NONE;
		judge(call, p, len, BODY);
	} else if (strcmp(call, "resp_get_body") == 0) {
		nest = NEST_RESP_SET_BODY;
		hostcall_resp_get_body(&p, &len, RESPONSE_OUTGOING);
		nest = NEST_NONE;
		judge(call, p, len, BODY);
	} else if (strcmp(call, "resp_get_header") == 0) {
		nest = NEST_RESP_SET_HEADER;
		hostcall_resp_get_header(&slices, &len, RESPONSE_OUTGOING, NAME, strlen(NAME));
		nest = NEST_NONE;
		judge_slices(call, slices, len, VALUE);
	} else if (strcmp(call, "resp_get_headers") == 0) {
		nest = NEST_RESP_SET_HEADER;
		hostcall_resp_get_headers(&slices, &len, RESPONSE_OUTGOING);
		nest = NEST_NONE;
		judge_slices(call, slices, len, name_lc);
	} else if (strcmp(call, "kvstore_get") == 0) {
		nest = NEST_KV_GET;
		if (!hostcall_kvstore_get(&p, &len, "key", 3))
			p = NULL;
		nest = NEST_NONE;
		judge(call, p, len, KV_VALUE);
	} else if (strcmp(call, "config_get") == 0) {
		nest = NEST_CONFIG_GET;
		if (!hostcall_config_get(&p, &len, "GREETING", 8))
			p = NULL;
		nest = NEST_NONE;
		judge(call, p, len, "hello from config");
	} else if (strcmp(call, "dns_query_ip") == 0) {
		nest = NEST_DNS_IP;
		if (!hostcall_dns_query_ip(&slices, &len, "localhost", 9, false))
			slices = NULL;
		nest = NEST_NONE;
		if (slices && len >= 1 && slices[0].len == 4 &&
		    memcmp(slices[0].ptr, "\x7f\x00\x00\x01", 4) == 0)
			say("%s original", call);
		else
			judge_slices(call, slices, len, NULL);
	} else if (strcmp(call, "dns_query_raw") == 0) {
		/* Needs a resolver that answers: without one the call fails
		 * before it allocates, which is an error too. */
		nest = NEST_DNS_RAW;
		if (!hostcall_dns_query_raw(&p, &len, dns_query, sizeof(dns_query)))
			p = NULL;
		nest = NEST_NONE;
		if (p && len >= 12 && memcmp(p, dns_query, 2) == 0)
			say("%s original", call);
		else
			judge(call, p, 0, NULL);
	} else {
		say("%s unknown", call);
	}
	say(" nested");
	for (i = 0; i < n_nested; i++)
		say(" %d", nested[i]);
	say("\n");
	hostcall_resp_set_body(RESPONSE_OUTGOING, out, out_len);
}
