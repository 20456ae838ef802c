/* What the benchmarks that talk to a running vivd share: starting one of
 * their own, HTTP through libcurl, tarballs made in memory, deployments
 * through the API, and finding its worker processes. */
#ifndef BENCH_VIVD_H
#define BENCH_VIVD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "viv.h"

/* A vivd serve this process started. */
struct bench_vivd {
	pid_t pid;
	char dir[64]; /* temporary folder: data/, vivd.out, vivd.log */
	char data[96];
	char api[64]; /* http://127.0.0.1:PORT */
	unsigned apps_port;
	char token[128];
};

/* Starts bin serve on 127.0.0.1 at ports free when it starts and a fresh
 * data folder, with extra arguments (NULL-terminated, may be NULL), and
 * waits until its API answers. false, with why on stderr, on failure (what
 * was started is stopped). */
bool bench_vivd_start(struct bench_vivd *v, const char *bin, const char *const *extra);
/* Stops it (SIGTERM, then SIGKILL after 20 s) and removes its folder. */
void bench_vivd_stop(struct bench_vivd *v);

/* One request. host (may be NULL) overrides the Host header, token (may be
 * NULL) is sent as a bearer token, body may be NULL. The response body is
 * in out (freed and made anew first); returns the status, 0 when none came.
 * One handle serves every call, so connections are reused: call it from one
 * thread only. */
long bench_http(const char *method, const char *url, const char *host, const char *token,
                const void *body, size_t len, struct viv_buf *out);

/* A file for bench_tar: its path in the tarball and its contents. */
struct bench_file {
	const char *name;
	const char *data;
	size_t len;
};

/* A tarball of the files, in memory; caller frees *out. false on failure. */
bool bench_tar(const struct bench_file *files, size_t n, char **out, size_t *len);

/* Uploads a deployment of app and waits up to timeout_s until it is ready;
 * false (why on stderr) when it failed or did not finish. */
bool bench_deploy(const struct bench_vivd *v, const char *app, const void *upload, size_t len,
                  unsigned timeout_s);

/* The pids of the supervisor's children called "worker ...", at most max,
 * into out; returns how many there are. */
size_t bench_workers(pid_t parent, pid_t *out, size_t max);
/* Resident kilobytes (VmRSS) of a process, -1 when it cannot be read. */
long bench_rss_kb(pid_t pid);

#endif
