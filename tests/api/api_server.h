/* Test fixture shared by tests/api and tests/cli: the real API (api_main)
 * in a forked child on a loopback port with a fresh data directory, the
 * builder role (pipe_builder_main) in another, as vivd runs them, and a
 * small libcurl client to talk to the API. */
#ifndef TESTS_API_SERVER_H
#define TESTS_API_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tsrv {
	pid_t pid;         /* the API's process */
	pid_t builder_pid; /* the builder's */
	int port;
	char base[64];     /* the API's URL, http://127.0.0.1:PORT */
	char root[64];     /* temporary directory holding data/ and api.log */
	char datadir[96];  /* root/data */
	char *token;       /* the admin token; freed by tsrv_stop */
	size_t upload_max; /* what the server was started with */
};

/* Starts the API and the builder in child processes. upload_max 0 keeps
 * the default; web_dir may be NULL. Asserts on failure. */
void tsrv_start(struct tsrv *s, size_t upload_max, const char *web_dir);

/* tsrv_start with event stream keep-alives every keepalive_s seconds (0:
 * the default). */
void tsrv_start_with(struct tsrv *s, size_t upload_max, const char *web_dir, unsigned keepalive_s);

/* Sends SIGTERM, asserts that both children exit with status 0 within a
 * few seconds, and removes the temporary directory. */
void tsrv_stop(struct tsrv *s);

/* One reply as the client saw it. */
struct tresp {
	long status;
	char *body; /* NUL-terminated, never NULL after thttp */
	size_t len;
	json_t *json;       /* body parsed, or NULL */
	char location[256]; /* selected response headers, "" when absent */
	char allow[64];
	char www_auth[128];
	char content_type[128];
	char etag[80];
	char sha256[80];    /* X-Vivarium-Sha256 */
	char platform[128]; /* X-Vivarium-Platform */
};

/* Sends a request; token NULL sends none. POST and PUT send body; with
 * chunked, the body goes with Transfer-Encoding: chunked and no
 * Content-Length. Asserts that the transfer itself worked; fills *out (free
 * with tresp_free). */
void thttp(const struct tsrv *s, const char *method, const char *path, const char *token,
           const void *body, size_t len, bool chunked, struct tresp *out);
void tresp_free(struct tresp *r);

/* thttp with extra request header lines ("Name: value"; NULL-terminated,
 * may be NULL). */
void thttp_h(const struct tsrv *s, const char *method, const char *path, const char *token,
             const char *const *headers, const void *body, size_t len, bool chunked,
             struct tresp *out);

/* The string member key of j, or NULL. */
const char *tjstr(json_t *j, const char *key);

/* POSTs body as an upload of app with token (NULL: the admin token),
 * asserts the 202 and returns the deployment id. */
long long tupload(const struct tsrv *s, const char *app, const char *token, const void *body,
                  size_t len);

/* Polls GET /v1/deployments/ID until the status is ready or failed, for at
 * most timeout_s seconds; returns the last reply's JSON (caller frees with
 * json_decref). */
json_t *twait_deployment(const struct tsrv *s, long long id, int timeout_s);

struct store_log;

/* Appends the n lines to the logs of app through a store of the test's own
 * on s's data directory, as a runner would; sets each line's app_id, the
 * caller the rest. Asserts on failure. */
void tsrv_append_logs(const struct tsrv *s, const char *app, struct store_log *lines, size_t n);

/* A gzipped tar in memory holding the given files (names[i], texts[i]).
 * Caller frees *out with free(). */
void tmake_targz(const char *const *names, const char *const *texts, size_t n, char **out,
                 size_t *len_out);

/* A minimal valid module exporting run: [] -> [] (host-call mode). */
extern const unsigned char twasm_min[];
extern const size_t twasm_min_len;

/* A WASI command in WAT that answers "hello from wat" (CGI mode). */
extern const char *twat_hello;

#endif
