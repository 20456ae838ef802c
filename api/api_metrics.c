/* GET /metrics in the Prometheus text format 0.0.4: the API's own counters,
 * the build counters the store keeps, and the metrics every runner worker
 * writes to DATADIR/run/metrics/worker-N.prom, gathered with a worker="N"
 * label on each series. The families of all workers are merged, since a
 * family may appear only once in an exposition. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_int.h"

#define METRICS_DIR "run/metrics"
/* Caps on what the workers' files bring in. */
#define WORKER_FILES_MAX 256
#define WORKER_FILE_MAX (1u << 20)
#define FAMILIES_MAX 256
#define NAME_MAX_LEN 200
#define LINE_MAX_LEN 4096
/* A worker rewrites its file every second; an older file is a worker that
 * is gone (the fleet got smaller, or it is being restarted). */
#define WORKER_FILE_STALE_S 60

struct family {
	char name[NAME_MAX_LEN + 1];
	char *help;           /* NULL: none seen */
	char type[16];        /* "" : untyped */
	struct viv_buf lines; /* its samples, worker labels added */
};

struct gather {
	struct family fams[FAMILIES_MAX];
	size_t n;
};

static bool name_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
	       (!first && ch >= '0' && ch <= '9');
}

/* The length of the metric name at s, 0 when there is none. */
static size_t name_len(const char *s)
{
	size_t n = 0;

	while (s[n] && name_char(s[n], n == 0))
		n++;
	return n > NAME_MAX_LEN ? 0 : n;
}

static struct family *family_find(struct gather *g, const char *name, size_t len, bool make)
{
	struct family *f;

	for (size_t i = 0; i < g->n; i++) {
		if (strlen(g->fams[i].name) == len && memcmp(g->fams[i].name, name, len) == 0)
			return &g->fams[i];
	}
	if (!make || g->n >= FAMILIES_MAX)
		return NULL;
	f = &g->fams[g->n++];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, len);
	viv_buf_init(&f->lines, 0);
	return f;
}

/* The family a sample called name belongs to: a histogram's or summary's
 * _bucket, _sum and _count series belong to it. */
static struct family *family_of_sample(struct gather *g, const char *name, size_t len)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	struct family *f;

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t k = strlen(suffixes[i]);

		if (len > k && memcmp(name + len - k, suffixes[i], k) == 0) {
			f = family_find(g, name, len - k, false);
			if (f &&
			    (strcmp(f->type, "histogram") == 0 || strcmp(f->type, "summary") == 0))
				return f;
		}
	}
	return family_find(g, name, len, true);
}

/* The end of the label set that starts at s[0] == '{': the index of its
 * '}', or 0 when it is malformed (quoted values may hold '}' and escapes). */
static size_t labels_end(const char *s)
{
	bool quoted = false;

	for (size_t i = 1; s[i]; i++) {
		if (quoted && s[i] == '\\' && s[i + 1])
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (!quoted && s[i] == '}')
			return i;
	}
	return 0;
}

/* "# HELP name text" and "# TYPE name type"; other comments are dropped. */
static void take_comment(struct gather *g, const char *line)
{
	bool help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
	struct family *f;
	const char *rest;
	size_t n;

	if (!help && !type)
		return;
	n = name_len(line + 7);
	if (n == 0 || (line[7 + n] != ' ' && line[7 + n] != '\0'))
		return;
	f = family_find(g, line + 7, n, true);
	rest = line + 7 + n + (line[7 + n] == ' ');
	if (!f)
		return;
	if (help && !f->help)
		f->help = strdup(rest);
	if (type && !f->type[0] && strlen(rest) < sizeof(f->type) &&
	    strspn(rest, "abcdefghijklmnopqrstuvwxyz") == strlen(rest))
		snprintf(f->type, sizeof(f->type), "%s", rest);
}

/* Whether s is a sample's value (a number, +Inf, -Inf or NaN), with an
 * optional integer timestamp after one space, and nothing else. */
static bool value_ok(const char *s)
{
	char *end;

	if (!*s || isspace((unsigned char)*s))
		return false;
	(void)strtod(s, &end);
	if (end == s)
		return false;
	if (*end == ' ') {
		s = end + 1 + (end[1] == '-');
		if (!isdigit((unsigned char)*s))
			return false;
		s += strspn(s, "0123456789");
		end = (char *)s;
	}
	return *end == '\0';
}

/* A sample line, appended to its family with worker="N" among its labels;
 * a malformed line is dropped. */
static void take_sample(struct gather *g, const char *line, const char *worker)
{
	size_t n = name_len(line), end = 0;
	const char *rest;
	struct family *f;

	if (n == 0)
		return;
	if (line[n] == '{') {
		end = labels_end(line + n);
		if (end == 0)
			return;
		rest = line + n + end + 1;
	} else {
		rest = line + n;
	}
	if (*rest != ' ' || !value_ok(rest + 1))
		return;
	f = family_of_sample(g, line, n);
	if (!f)
		return;
	if (end > 1)
		viv_buf_printf_trunc(&f->lines, "%.*s,worker=\"%s\"}%s\n", (int)(n + end), line,
		                     worker, rest);
	else
		viv_buf_printf_trunc(&f->lines, "%.*s{worker=\"%s\"}%s\n", (int)n, line, worker,
		                     rest);
}

static void take_file(struct gather *g, char *text, const char *worker)
{
	char *line = text, *nl;

	for (; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strlen(line) > LINE_MAX_LEN)
			continue;
		if (line[0] == '#')
			take_comment(g, line);
		else if (line[0])
			take_sample(g, line, worker);
	}
}

/* The N of "worker-N.prom", or -1. */
static long worker_index(const char *name)
{
	int64_t v;
	char digits[16];
	size_t n;

	if (strncmp(name, "worker-", 7) != 0)
		return -1;
	n = strspn(name + 7, "0123456789");
	if (n == 0 || n >= sizeof(digits) || strcmp(name + 7 + n, ".prom") != 0)
		return -1;
	memcpy(digits, name + 7, n);
	digits[n] = '\0';
	return api_parse_uint(digits, &v) && v < 100000 ? (long)v : -1;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Reads every fresh worker file, in the order of their numbers. */
static void gather_workers(struct gather *g, const char *datadir)
{
	long idx[WORKER_FILES_MAX];
	size_t n = 0;
	struct dirent *de;
	char *dir;
	DIR *d;
	int dfd;

	dir = viv_path_join(datadir, METRICS_DIR);
	d = dir ? opendir(dir) : NULL;
	free(dir);
	if (!d)
		return;
	while ((de = readdir(d)) && n < WORKER_FILES_MAX) {
		long k = worker_index(de->d_name);

		if (k >= 0)
			idx[n++] = k;
	}
	qsort(idx, n, sizeof(idx[0]), cmp_long);
	dfd = dirfd(d);
	for (size_t i = 0; i < n; i++) {
		char name[64], worker[16], *text = NULL;
		struct stat sb;
		size_t len = 0;
		int fd;

		snprintf(name, sizeof(name), "worker-%ld.prom", idx[i]);
		snprintf(worker, sizeof(worker), "%ld", idx[i]);
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    time(NULL) - sb.st_mtime <= WORKER_FILE_STALE_S &&
		    viv_read_fd(fd, WORKER_FILE_MAX, &text, &len) == VIV_OK)
			take_file(g, text, worker);
		free(text);
		close(fd);
	}
	closedir(d);
}

/* The API's own metrics, then the build counters. */
static enum viv_err put_own(struct api_server *s, struct viv_buf *b)
{
	struct store_build_metrics m;
	enum viv_err err;

	viv_buf_printf_trunc(b, "# HELP vivarium_api_requests_total Requests the API answered, by "
	                        "status code.\n# TYPE vivarium_api_requests_total counter\n");
	for (int code = API_STATUS_MIN; code <= API_STATUS_MAX; code++) {
		uint64_t v = s->requests[code - API_STATUS_MIN];

		if (v)
			viv_buf_printf_trunc(b, "vivarium_api_requests_total{code=\"%d\"} %llu\n",
			                     code, (unsigned long long)v);
	}
	err = store_build_metrics(s->st, &m);
	if (err)
		return err;
	viv_buf_printf_trunc(
	        b,
	        "# HELP vivarium_builds_total Builds that ended, by result.\n"
	        "# TYPE vivarium_builds_total counter\n"
	        "vivarium_builds_total{result=\"ready\"} %llu\n"
	        "vivarium_builds_total{result=\"failed\"} %llu\n"
	        "# HELP vivarium_build_seconds How long builds took, from the start of "
	        "the build to its outcome.\n"
	        "# TYPE vivarium_build_seconds histogram\n",
	        (unsigned long long)m.ready, (unsigned long long)m.failed);
	for (size_t i = 0; i < STORE_BUILD_BUCKETS; i++)
		viv_buf_printf_trunc(b, "vivarium_build_seconds_bucket{le=\"%g\"} %llu\n", m.le[i],
		                     (unsigned long long)m.le_count[i]);
	viv_buf_printf_trunc(b,
	                     "vivarium_build_seconds_bucket{le=\"+Inf\"} %llu\n"
	                     "vivarium_build_seconds_sum %.3f\n"
	                     "vivarium_build_seconds_count %llu\n"
	                     "# HELP vivarium_build_queue Deployments waiting for a builder.\n"
	                     "# TYPE vivarium_build_queue gauge\n"
	                     "vivarium_build_queue %llu\n"
	                     "# HELP vivarium_builds_running Deployments being built now.\n"
	                     "# TYPE vivarium_builds_running gauge\n"
	                     "vivarium_builds_running %llu\n",
	                     (unsigned long long)(m.ready + m.failed),
	                     m.ready_seconds + m.failed_seconds,
	                     (unsigned long long)(m.ready + m.failed), (unsigned long long)m.queued,
	                     (unsigned long long)m.building);
	return VIV_OK;
}

enum MHD_Result api_get_metrics(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct gather *g;
	struct viv_buf b;
	enum MHD_Result ret;
	enum viv_err err;

	g = calloc(1, sizeof(*g));
	if (!g)
		return MHD_NO;
	viv_buf_init(&b, 0);
	err = put_own(s, &b);
	if (err) {
		ret = api_reply_store_error(c, r, err, "reading the build counters");
		goto out;
	}
	gather_workers(g, store_datadir(s->st));
	for (size_t i = 0; i < g->n; i++) {
		struct family *f = &g->fams[i];

		if (f->lines.len == 0)
			continue;
		if (f->help)
			viv_buf_printf_trunc(&b, "# HELP %s %s\n", f->name, f->help);
		viv_buf_printf_trunc(&b, "# TYPE %s %s\n", f->name,
		                     f->type[0] ? f->type : "untyped");
		viv_buf_append_trunc(&b, f->lines.data, f->lines.len);
	}
	ret = api_reply_bytes(c, r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
	                      b.data ? b.data : "", b.len);
out:
	for (size_t i = 0; i < g->n; i++) {
		free(g->fams[i].help);
		viv_buf_free(&g->fams[i].lines);
	}
	viv_buf_free(&b);
	free(g);
	return ret;
}
