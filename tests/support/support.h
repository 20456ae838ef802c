/* Helpers for tests that use the real vivd: starting it on free loopback
 * ports with a fresh data directory, HTTP through libcurl, tarballs built in
 * memory, and deployments through the API. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

/* A running vivd serve. */
struct tsup_vivd {
	pid_t pid;
	char dir[256]; /* temporary directory holding data/ and vivd.log */
	char data[300];
	char log[300];
	unsigned api_port;
	unsigned apps_port;
	char api[64]; /* http://127.0.0.1:PORT */
	char token[128];
};

/* Starts vivd serve with extra arguments (NULL-terminated list, may be
 * NULL), waits until /healthz answers and reads the admin token. Fails the
 * test on error. Builds run without bubblewrap only when it cannot run here. */
void tsup_vivd_start(struct tsup_vivd *v, const char *const *extra);
/* tsup_vivd_start with another vivd program: an installed one. */
void tsup_vivd_start_bin(struct tsup_vivd *v, const char *bin, const char *const *extra);
/* Stops it (SIGTERM, waits) and removes the directory. */
void tsup_vivd_stop(struct tsup_vivd *v);
/* The last lines of vivd's own log, for failure messages. Caller frees. */
char *tsup_vivd_log_tail(const struct tsup_vivd *v, size_t bytes);

/* Whether builds can run inside bubblewrap here (else vivd needs
 * --no-sandbox, which tsup_vivd_start() then gives it). */
bool tsup_bwrap_works(void);

/* The pids of parent's children whose name starts with prefix ("worker"),
 * at most max of them, into out; returns how many. */
size_t tsup_children_named(pid_t parent, const char *prefix, pid_t *out, size_t max);

/* One HTTP exchange. */
struct tsup_resp {
	long status;
	char *body; /* NUL-terminated */
	size_t len;
	char *headers;               /* raw header block */
	char error[CURL_ERROR_SIZE]; /* why no response came, when none did */
};

void tsup_resp_free(struct tsup_resp *r);

/* Sends a request. host (may be NULL) overrides the Host header; token (may
 * be NULL) is sent as a bearer token; body may be NULL for none. Returns
 * false when no HTTP response came back at all. */
bool tsup_http(const char *method, const char *url, const char *host, const char *token,
               const void *body, size_t body_len, struct tsup_resp *out);

/* GET http://APP.localhost:APPS_PORT/path through the runners. */
bool tsup_app_get(const struct tsup_vivd *v, const char *app, const char *path,
                  struct tsup_resp *out);

/* As tsup_http, with extra request header lines ("Name: value", a
 * NULL-terminated list; may be NULL). "Name:" with no value removes a header
 * libcurl would send by itself (Accept, Content-Type). */
bool tsup_http_headers(const char *method, const char *url, const char *host,
                       const char *const *headers, const void *body, size_t body_len,
                       struct tsup_resp *out);

/* Any request to http://APP.localhost:APPS_PORT/path, with extra header
 * lines as for tsup_http_headers. */
bool tsup_app_request(const struct tsup_vivd *v, const char *app, const char *method,
                      const char *path, const char *const *headers, const void *body,
                      size_t body_len, struct tsup_resp *out);

/* The value of the response header called name (any case) in r->headers, or
 * NULL when there is none. Caller frees. */
char *tsup_resp_header(const struct tsup_resp *r, const char *name);

/* A file for tsup_tar: name (relative path) and text contents. */
struct tsup_file {
	const char *name;
	const char *text;
};

/* A tarball of the files in memory, gzip-compressed or not (caller frees
 * *out). An entry whose name ends in '/' is a directory. */
void tsup_tar(const struct tsup_file *files, size_t n, bool gzip, char **out, size_t *len);

/* A tarball of the folder dir as viv deploy packs one: its regular files
 * and folders at their paths under dir, in name order, leaving out folders
 * called .git, target and node_modules. files (n of them; may be NULL) are
 * put in place of the files of the same name, or added. Anything other than
 * a file or folder fails the test. Caller frees *out. */
void tsup_tar_dir(const char *dir, const struct tsup_file *files, size_t n, bool gzip, char **out,
                  size_t *len);

/* POSTs an upload to /v1/apps/APP/deployments and returns the HTTP status;
 * *id_out is the deployment id on 202. */
long tsup_deploy(const struct tsup_vivd *v, const char *app, const void *body, size_t len,
                 long *id_out, struct tsup_resp *resp_out);

/* Polls GET /v1/deployments/ID until it is ready or failed, or timeout_ms
 * passes, and returns its JSON as it then is (caller json_decref): callers
 * check the status. */
json_t *tsup_wait_deployment(const struct tsup_vivd *v, long id, unsigned timeout_ms);

/* tsup_deploy then tsup_wait_deployment; asserts a 202. */
json_t *tsup_deploy_wait(const struct tsup_vivd *v, const char *app, const void *body, size_t len);

/* Reads a whole file (caller frees) or fails the test. */
char *tsup_read_file(const char *path, size_t *len);

/* Compiles WebAssembly text to a binary with wat2wasm (caller frees). */
char *tsup_wat2wasm(const char *wat, size_t *len);

/* Runs argv to completion and returns its exit status; its stdout and
 * stderr together are in *output (caller frees; may be NULL). */
int tsup_run(const char *const *argv, const char *const *env, char **output);

/* Milliseconds on the monotonic clock. */
double tsup_now_ms(void);

/* A loopback port no one listens on, below the kernel's ephemeral range. */
unsigned tsup_free_port(void);

/* A CGI program in WebAssembly text that prints TEXT (at most 200 bytes)
 * and a line break. Caller frees. */
char *tsup_cgi_wat(const char *text);

#endif
