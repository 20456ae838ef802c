/* The Terrarium host-call ABI for C guests: the types, constants and host
 * calls that Fastly Terrarium's C guests were written against, so that their
 * sources compile unchanged, plus Vivarium's hostcall_config_get.
 *
 * The contract is GUEST-ABI.md, section 1. Everything here is wasm32: a
 * pointer, a size_t and a bool are one i32 each, a uint64_t is an i64.
 *
 * Memory the host hands back (the `*_p` out-parameters) is allocated by
 * calling the guest's own allocator, which the guest registers first with
 * hostcall_init_mm(). Free it with the matching free(). Strings come
 * NUL-terminated after their length; the length excludes the NUL. Most
 * programs include <vivarium.h> instead, which does all of this for them. */
#ifndef VIVARIUM_HTTP_HOSTCALLS_H
#define VIVARIUM_HTTP_HOSTCALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every host call is imported from module "env" under its own name. */
#if defined(__wasm__)
#define HOSTCALL_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#else
#define HOSTCALL_IMPORT(name)
#endif

/* Handles: small integers the host hands out for one request's lifetime. */
typedef int32_t request_t;
typedef int32_t response_t;
typedef int32_t pending_request_t;

/* The request being served and the response being built for it. */
#define REQUEST_INCOMING ((request_t)0)
#define RESPONSE_OUTGOING ((response_t)0)

/* What handle-returning calls return on failure, and what
 * hostcall_pending_req_poll() returns while the response is not there yet. */
#define HOSTCALL_ERROR (-1)
#define HOSTCALL_NOT_READY (-2)

/* The status of calls that change a request or a response. */
enum value_status {
	value_status_ok = 0,
	value_status_invalid = 1,
};

/* A GuestSlice: 8 bytes in guest memory, a pointer and a length. The
 * pointer is called ptr in Terrarium's sources and str in some others; both
 * names work. The bytes need not be NUL-terminated when the guest passes a
 * slice to the host; the host's own slices are. */
struct string_slice {
	union {
		const char *ptr;
		const char *str;
	};
	size_t len;
};

#if defined(__wasm32__)
_Static_assert(sizeof(struct string_slice) == 8, "a GuestSlice is 8 bytes on wasm32");
#endif

/* ---- Memory ------------------------------------------------------------------- */

/* Registers the functions the host calls to place results in guest memory:
 * malloc_fn(size) returns a block or NULL, free_fn(block) releases one. A
 * function pointer is an index into the module's function table, which is
 * what the host keeps. Call it once, before any call that returns memory. */
HOSTCALL_IMPORT(hostcall_init_mm)
void hostcall_init_mm(void *(*malloc_fn)(size_t), void (*free_fn)(void *));

/* ---- Reading requests -------------------------------------------------------- */

/* The method ("GET") of req. *method_p is NUL-terminated; caller frees it.
 * A call like this one that returns nothing may leave its out-parameters
 * as they were when it fails: set them to NULL and 0 first. */
HOSTCALL_IMPORT(hostcall_req_get_method)
void hostcall_req_get_method(char **method_p, size_t *len_p, request_t req);

/* The request target of req: the path and the query, "/a/b?x=1". Caller
 * frees *path_p. */
HOSTCALL_IMPORT(hostcall_req_get_path)
void hostcall_req_get_path(char **path_p, size_t *len_p, request_t req);

/* The whole body of req. body_p is the address of any byte pointer (char *,
 * uint8_t *, ...); caller frees what it receives. */
HOSTCALL_IMPORT(hostcall_req_get_body)
void hostcall_req_get_body(void *body_p, size_t *len_p, request_t req);

/* The header names of req, one slice per name. Caller frees each name's ptr
 * and then the array. */
HOSTCALL_IMPORT(hostcall_req_get_headers)
void hostcall_req_get_headers(struct string_slice **names_p, size_t *len_p, request_t req);

/* Every value of the header called name (compared case-insensitively), one
 * slice per value; *len_p is 0 when there is none. Caller frees each value's
 * ptr and then the array. */
HOSTCALL_IMPORT(hostcall_req_get_header)
void hostcall_req_get_header(struct string_slice **values_p, size_t *len_p, request_t req,
                             const char *name, size_t name_len);

/* ---- Outbound requests ---------------------------------------------------------- */

/* A new outbound request, or HOSTCALL_ERROR when the method is not an HTTP
 * token or the URL is not an absolute http or https URL. It may only go
 * where the app's manifest allows ("outbound"; elsewhere sending fails),
 * and a request to the app's own host name is answered without the
 * network. */
HOSTCALL_IMPORT(hostcall_req_create)
request_t hostcall_req_create(const char *method, size_t method_len, const char *url,
                              size_t url_len);

/* Replaces the header called name with n values. */
HOSTCALL_IMPORT(hostcall_req_set_header)
enum value_status hostcall_req_set_header(request_t req, const char *name, size_t name_len,
                                          const struct string_slice *values, size_t n);

/* Replaces the body. */
HOSTCALL_IMPORT(hostcall_req_set_body)
enum value_status hostcall_req_set_body(request_t req, const void *body, size_t len);

/* Sends req and waits: the response, or HOSTCALL_ERROR when the request
 * failed (refused by the allow list, unreachable, timed out). */
HOSTCALL_IMPORT(hostcall_req_send)
response_t hostcall_req_send(request_t req);

/* Starts sending req: a pending request, or HOSTCALL_ERROR. */
HOSTCALL_IMPORT(hostcall_req_send_async)
pending_request_t hostcall_req_send_async(request_t req);

/* Waits for a pending request: its response, or HOSTCALL_ERROR. */
HOSTCALL_IMPORT(hostcall_pending_req_wait)
response_t hostcall_pending_req_wait(pending_request_t pending);

/* Its response when there is one, HOSTCALL_NOT_READY while it is still
 * under way, HOSTCALL_ERROR when it failed. Once a pending request has
 * given its response or its failure (here, in wait or in select), its
 * handle is spent: using it again is HOSTCALL_ERROR. */
HOSTCALL_IMPORT(hostcall_pending_req_poll)
response_t hostcall_pending_req_poll(pending_request_t pending);

/* Waits for the first of n pending requests to finish: its response (or
 * HOSTCALL_ERROR if that one failed), with the pending request that
 * finished in *pending_out. That one is spent; the others stay valid. */
HOSTCALL_IMPORT(hostcall_pending_req_select)
response_t hostcall_pending_req_select(const pending_request_t *pendings, size_t n,
                                       pending_request_t *pending_out);

/* ---- Responses ------------------------------------------------------------------- */

/* As the hostcall_req_get_* calls, on a response (an upstream's). */
HOSTCALL_IMPORT(hostcall_resp_get_headers)
void hostcall_resp_get_headers(struct string_slice **names_p, size_t *len_p, response_t resp);

HOSTCALL_IMPORT(hostcall_resp_get_header)
void hostcall_resp_get_header(struct string_slice **values_p, size_t *len_p, response_t resp,
                              const char *name, size_t name_len);

HOSTCALL_IMPORT(hostcall_resp_get_body)
void hostcall_resp_get_body(void *body_p, size_t *len_p, response_t resp);

/* The status code of resp, 0 for an invalid handle. */
HOSTCALL_IMPORT(hostcall_resp_get_response_code)
uint32_t hostcall_resp_get_response_code(response_t resp);

/* Replaces the header called name of the response being built (resp is
 * RESPONSE_OUTGOING; a received response is read-only) with n values. */
HOSTCALL_IMPORT(hostcall_resp_set_header)
enum value_status hostcall_resp_set_header(response_t resp, const char *name, size_t name_len,
                                           const struct string_slice *values, size_t n);

/* Replaces the body of the response being built (RESPONSE_OUTGOING). */
HOSTCALL_IMPORT(hostcall_resp_set_body)
enum value_status hostcall_resp_set_body(response_t resp, const void *body, size_t len);

/* Sets the status of the response being built (RESPONSE_OUTGOING), 100 to
 * 599. It starts as 200, no headers, an empty body. */
HOSTCALL_IMPORT(hostcall_resp_set_response_code)
enum value_status hostcall_resp_set_response_code(response_t resp, uint32_t code);

/* ---- Key-value store --------------------------------------------------------------- */

/* The app's own keys and values, bytes both, kept across requests, deploys
 * and restarts. Every call returns false also when it fails (a key or value
 * too big, a bad pointer). */

/* Sets the key to the value, replacing what was there (a map's insert):
 * true if the key was new. */
HOSTCALL_IMPORT(hostcall_kvstore_insert)
bool hostcall_kvstore_insert(const void *key, size_t key_len, const void *value, size_t value_len);

/* Sets the key only if it is absent, else leaves the stored value: true if
 * the key was new. */
HOSTCALL_IMPORT(hostcall_kvstore_upsert)
bool hostcall_kvstore_upsert(const void *key, size_t key_len, const void *value, size_t value_len);

/* Appends to the value, or inserts it: true if the key was new. */
HOSTCALL_IMPORT(hostcall_kvstore_append)
bool hostcall_kvstore_append(const void *key, size_t key_len, const void *value, size_t value_len);

/* The value of key: true and a copy in *value_p (the address of any byte
 * pointer; caller frees it), or false when absent. */
HOSTCALL_IMPORT(hostcall_kvstore_get)
bool hostcall_kvstore_get(void *value_p, size_t *len_p, const void *key, size_t key_len);

/* Removes key: true if it existed. */
HOSTCALL_IMPORT(hostcall_kvstore_remove)
bool hostcall_kvstore_remove(const void *key, size_t key_len);

/* ---- Randomness, time, DNS ----------------------------------------------------------- */

/* 64 bits from a cryptographically secure generator. */
HOSTCALL_IMPORT(hostcall_rng_next_u64)
uint64_t hostcall_rng_next_u64(void);

/* Seconds since the Unix epoch, and the nanoseconds within the second in
 * *subsec_nanos_p. */
HOSTCALL_IMPORT(hostcall_time_now)
uint64_t hostcall_time_now(uint32_t *subsec_nanos_p);

/* Sends a DNS query in wire format and returns the answer in wire format
 * (caller frees *response_p); false when it failed. */
HOSTCALL_IMPORT(hostcall_dns_query_raw)
bool hostcall_dns_query_raw(void *response_p, size_t *len_p, const void *query, size_t query_len);

/* The IPv4 (ipv6 false) or IPv6 addresses of name, one slice of 4 or 16 raw
 * bytes each; caller frees each ptr and the array. False when it failed. */
HOSTCALL_IMPORT(hostcall_dns_query_ip)
bool hostcall_dns_query_ip(struct string_slice **addrs_p, size_t *len_p, const char *name,
                           size_t name_len, bool ipv6);

/* ---- Logging ----------------------------------------------------------------------- */

/* One line to the app's log (GET /v1/apps/APP/logs). */
HOSTCALL_IMPORT(hostcall_debug)
void hostcall_debug(const char *msg, size_t len);

/* Logs msg as the reason the guest gave up; the request ends with a 500. */
HOSTCALL_IMPORT(hostcall_panic_hook)
void hostcall_panic_hook(const char *msg, size_t len);

/* ---- Vivarium additions ------------------------------------------------------------ */

/* The app's configuration value called key: the manifest's "env", or a value
 * set through the API (which wins). True and a NUL-terminated copy in
 * *value_p (caller frees), or false when it is unset. */
HOSTCALL_IMPORT(hostcall_config_get)
bool hostcall_config_get(char **value_p, size_t *len_p, const char *key, size_t key_len);

#ifdef __cplusplus
}
#endif

#endif
