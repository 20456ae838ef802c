/* Vivarium's C SDK: read the request, build the response, keep data in the
 * app's key-value store, read its configuration, write to its log and fetch
 * from other servers. Header-only: include it, define `void run(void)`, and
 * Vivarium calls run once per request, in a fresh instance.
 *
 *     #include <vivarium.h>
 *
 *     void run(void)
 *     {
 *             viv_respondf(200, "text/plain", "Hello from %s\n", viv_path());
 *     }
 *
 * Ownership, in one rule: what the viv_ request accessors return (method,
 * path, query, headers, body) is borrowed until the request ends; every
 * other function that returns a char * hands over a copy that the caller
 * frees with free(). Each request runs in a fresh instance, so nothing
 * leaks past it either way.
 *
 * The raw Terrarium host calls stay available from <http_hostcalls.h>. */
#ifndef VIVARIUM_H
#define VIVARIUM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_hostcalls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The app's request handler, which every app defines; this declaration
 * exports it from the module. */
#if defined(__wasm__)
__attribute__((export_name("run")))
#endif
void run(void);

/* ---- Setup ------------------------------------------------------------------------ */

/* Registers malloc() and free() with the host, which uses them to hand back
 * strings and bodies. Every function below calls it first, so an app needs
 * to call it only before using the raw host calls itself. */
static inline void viv_init(void)
{
	static bool done;

	if (!done) {
		hostcall_init_mm(malloc, free);
		done = true;
	}
}

/* ---- The request ------------------------------------------------------------------- */

/* The request's method, "GET". Borrowed until the request ends. */
static inline const char *viv_method(void)
{
	static const char *method;
	char *s = NULL;
	size_t len = 0;

	if (!method) {
		viv_init();
		hostcall_req_get_method(&s, &len, REQUEST_INCOMING);
		method = s ? s : "";
	}
	return method;
}

/* The request target as the client sent it: path and query, "/a/b?x=1".
 * Borrowed until the request ends. */
static inline const char *viv_target(void)
{
	static const char *target;
	char *s = NULL;
	size_t len = 0;

	if (!target) {
		viv_init();
		hostcall_req_get_path(&s, &len, REQUEST_INCOMING);
		target = s ? s : "/";
	}
	return target;
}

/* The path of the request, "/a/b", still percent-encoded. Borrowed until the
 * request ends. */
static inline const char *viv_path(void)
{
	static const char *path;
	const char *t;
	char *s;

	if (!path) {
		t = viv_target();
		s = strndup(t, strcspn(t, "?"));
		path = s ? s : "/";
	}
	return path;
}

/* The query string after the '?', "x=1&y=2", or "" when there is none.
 * Borrowed until the request ends. */
static inline const char *viv_query(void)
{
	const char *q = strchr(viv_target(), '?');

	return q ? q + 1 : "";
}

/* One request header value. A header sent several times appears once per
 * value. */
struct viv_header {
	const char *name;
	const char *value;
};

/* Every header of the request, *n_out of them, one entry per value, names in
 * the host's order. Borrowed until the request ends; NULL with *n_out 0 when
 * there are none. */
static inline const struct viv_header *viv_headers(size_t *n_out)
{
	static struct viv_header *headers;
	static size_t n_headers;
	static bool loaded;
	struct string_slice *names = NULL, *values;
	size_t n_names = 0, n_values, i, j;
	struct viv_header *grown;

	if (!loaded) {
		loaded = true;
		viv_init();
		hostcall_req_get_headers(&names, &n_names, REQUEST_INCOMING);
		for (i = 0; names && i < n_names; i++) {
			values = NULL;
			n_values = 0;
			hostcall_req_get_header(&values, &n_values, REQUEST_INCOMING, names[i].ptr,
			                        names[i].len);
			grown = NULL;
			if (values && n_values > 0)
				grown = realloc(headers, (n_headers + n_values) * sizeof(*headers));
			if (grown)
				headers = grown;
			else
				n_values = 0;
			for (j = 0; j < n_values; j++) {
				headers[n_headers].name = names[i].ptr;
				headers[n_headers].value = values[j].ptr ? values[j].ptr : "";
				n_headers++;
			}
			/* The value strings stay, borrowed; only the array goes. */
			free(values);
		}
		free(names);
	}
	*n_out = n_headers;
	return headers;
}

/* The first value of the request header called name (in any case), or NULL
 * when the request has none. Borrowed until the request ends. */
static inline const char *viv_header(const char *name)
{
	size_t n, i;
	const struct viv_header *h = viv_headers(&n);

	for (i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	}
	return NULL;
}

/* The request body, NUL-terminated after *len_out bytes (len_out may be
 * NULL). Borrowed until the request ends; "" when there is none. */
static inline const char *viv_body(size_t *len_out)
{
	static const char *body;
	static size_t body_len;
	char *s = NULL;
	size_t len = 0;

	if (!body) {
		viv_init();
		hostcall_req_get_body(&s, &len, REQUEST_INCOMING);
		body = s ? s : "";
		body_len = s ? len : 0;
	}
	if (len_out)
		*len_out = body_len;
	return body;
}

/* ---- The response ------------------------------------------------------------------- */

/* The response starts as 200, no headers, an empty body; it is sent when run
 * returns. These return false when the host refuses (a status outside
 * 100..599, for one). */

/* Sets the status code. */
static inline bool viv_set_status(unsigned code)
{
	return hostcall_resp_set_response_code(RESPONSE_OUTGOING, code) == value_status_ok;
}

/* Sets the response header called name to value, replacing it. */
static inline bool viv_set_header(const char *name, const char *value)
{
	struct string_slice v;

	v.ptr = value;
	v.len = strlen(value);
	return hostcall_resp_set_header(RESPONSE_OUTGOING, name, strlen(name), &v, 1) ==
	       value_status_ok;
}

/* Sets the body to len bytes of data, replacing it. */
static inline bool viv_set_body(const void *data, size_t len)
{
	return hostcall_resp_set_body(RESPONSE_OUTGOING, data, len) == value_status_ok;
}

/* Status, Content-Type and a text body in one call. */
static inline bool viv_respond(unsigned status, const char *content_type, const char *body)
{
	bool ok = viv_set_status(status);

	ok = viv_set_header("Content-Type", content_type) && ok;
	return viv_set_body(body, strlen(body)) && ok;
}

/* As viv_respond, with the body formatted as by printf. */
static inline bool viv_respondf(unsigned status, const char *content_type, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static inline bool viv_respondf(unsigned status, const char *content_type, const char *fmt, ...)
{
	va_list ap;
	char *body = NULL;
	int n;
	bool ok;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	ok = viv_set_status(status);
	ok = viv_set_header("Content-Type", content_type) && ok;
	ok = viv_set_body(body, (size_t)n) && ok;
	free(body);
	return ok;
}

/* ---- Key-value store ------------------------------------------------------------------- */

/* The app's own data: keys and values are bytes (here keys are C strings),
 * kept across requests, deploys and restarts, visible to no other app. The
 * bool results come straight from the host, which also answers false when
 * a call fails (a value over 1 MiB, for one). */

/* A copy of the value of key, NUL-terminated after *len_out bytes (len_out
 * may be NULL), or NULL when the key is absent. Caller frees with free(). */
static inline char *viv_kv_get(const char *key, size_t *len_out)
{
	char *value = NULL;
	size_t len = 0;

	viv_init();
	if (!hostcall_kvstore_get(&value, &len, key, strlen(key))) {
		free(value);
		value = NULL;
	}
	if (len_out)
		*len_out = value ? len : 0;
	return value;
}

/* Sets key to len bytes of value, replacing it: true if the key was new. */
static inline bool viv_kv_set(const char *key, const void *value, size_t len)
{
	return hostcall_kvstore_insert(key, strlen(key), value, len);
}

/* Sets key only if it is absent, else leaves it as it is: true if it did. */
static inline bool viv_kv_set_if_absent(const char *key, const void *value, size_t len)
{
	return hostcall_kvstore_upsert(key, strlen(key), value, len);
}

/* Appends len bytes to the value of key, creating it: true if it was new. */
static inline bool viv_kv_append(const char *key, const void *value, size_t len)
{
	return hostcall_kvstore_append(key, strlen(key), value, len);
}

/* Removes key: true if it existed. */
static inline bool viv_kv_remove(const char *key)
{
	return hostcall_kvstore_remove(key, strlen(key));
}

/* ---- Configuration and log ---------------------------------------------------------------- */

/* The app's configuration value called key (the manifest's "env", or one set
 * through the API), or NULL when it is unset. Caller frees with free(). */
static inline char *viv_config(const char *key)
{
	char *value = NULL;
	size_t len = 0;

	viv_init();
	if (!hostcall_config_get(&value, &len, key, strlen(key))) {
		free(value);
		return NULL;
	}
	return value;
}

/* Writes one line, formatted as by printf, to the app's log. */
static inline void viv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void viv_log(const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n >= 0)
		hostcall_debug(line, (size_t)n);
	free(line);
}

/* ---- Fetching from other servers ----------------------------------------------------------- */

/* An app reaches only the origins its manifest lists in "outbound"; any
 * other request fails as if the server were unreachable. Handles are
 * negative (HOSTCALL_ERROR) on failure, and every function here accepts a
 * failed handle and fails in turn, so a chain needs one check at the end:
 *
 *     response_t resp = viv_fetch("https://api.example.com/v1/time");
 *     if (resp < 0) {
 *             viv_respond(502, "text/plain", "the time server is out of reach\n");
 *             return;
 *     }
 */

/* A new outbound request to an absolute URL, or HOSTCALL_ERROR. */
static inline request_t viv_request(const char *method, const char *url)
{
	return hostcall_req_create(method, strlen(method), url, strlen(url));
}

/* Sets a header of an outbound request, replacing it. */
static inline bool viv_request_header(request_t req, const char *name, const char *value)
{
	struct string_slice v;

	if (req < 0)
		return false;
	v.ptr = value;
	v.len = strlen(value);
	return hostcall_req_set_header(req, name, strlen(name), &v, 1) == value_status_ok;
}

/* Sets the body of an outbound request. */
static inline bool viv_request_body(request_t req, const void *body, size_t len)
{
	if (req < 0)
		return false;
	return hostcall_req_set_body(req, body, len) == value_status_ok;
}

/* Sends req and waits: its response, or HOSTCALL_ERROR when it failed (not
 * allowed, unreachable, timed out). */
static inline response_t viv_send(request_t req)
{
	if (req < 0)
		return HOSTCALL_ERROR;
	return hostcall_req_send(req);
}

/* Starts sending req and returns at once: a pending request to pass to
 * viv_wait(), or HOSTCALL_ERROR. Several can be under way together. */
static inline pending_request_t viv_send_async(request_t req)
{
	if (req < 0)
		return HOSTCALL_ERROR;
	return hostcall_req_send_async(req);
}

/* Waits for a pending request: its response, or HOSTCALL_ERROR. */
static inline response_t viv_wait(pending_request_t pending)
{
	if (pending < 0)
		return HOSTCALL_ERROR;
	return hostcall_pending_req_wait(pending);
}

/* GET url and wait: the response, or HOSTCALL_ERROR. */
static inline response_t viv_fetch(const char *url)
{
	return viv_send(viv_request("GET", url));
}

/* The status code of a response, 0 for a failed handle. */
static inline unsigned viv_response_status(response_t resp)
{
	if (resp < 0)
		return 0;
	return hostcall_resp_get_response_code(resp);
}

/* A copy of a response's body, NUL-terminated after *len_out bytes (len_out
 * may be NULL), or NULL for a failed handle. Caller frees with free(). */
static inline char *viv_response_body(response_t resp, size_t *len_out)
{
	char *body = NULL;
	size_t len = 0;

	if (resp >= 0) {
		viv_init();
		hostcall_resp_get_body(&body, &len, resp);
		if (!body)
			body = calloc(1, 1);
	}
	if (len_out)
		*len_out = body ? len : 0;
	return body;
}

/* A copy of the first value of a response's header called name (in any
 * case), or NULL when it has none. Caller frees with free(). */
static inline char *viv_response_header(response_t resp, const char *name)
{
	struct string_slice *values = NULL;
	size_t n = 0, i;
	char *first;

	if (resp < 0)
		return NULL;
	viv_init();
	hostcall_resp_get_header(&values, &n, resp, name, strlen(name));
	if (!values || n == 0) {
		free(values);
		return NULL;
	}
	first = (char *)values[0].ptr;
	for (i = 1; i < n; i++)
		free((char *)values[i].ptr);
	free(values);
	return first;
}

#ifdef __cplusplus
}
#endif

#endif
