/* See bench_vivd.h. */
#include "bench_vivd.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	return viv_buf_append(arg, p, size * n) ? 0 : size * n;
}

long bench_http(const char *method, const char *url, const char *host, const char *token,
                const void *body, size_t len, struct viv_buf *out)
{
	struct curl_slist *h = NULL;
	char line[256];
	long status = 0;
	static CURL *c;

	viv_buf_free(out);
	viv_buf_init(out, 1 << 20);
	if (!c)
		c = curl_easy_init();
	if (!c)
		return 0;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	if (host) {
		snprintf(line, sizeof(line), "Host: %s", host);
		h = curl_slist_append(h, line);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

/* The port in the line of vivd's standard output that starts with prefix
 * ("API:  http://127.0.0.1:"), or 0 when it has not printed it yet. */
static unsigned printed_port(const char *out, const char *prefix)
{
	FILE *f = fopen(out, "r");
	char line[512];
	unsigned port = 0;

	if (!f)
		return 0;
	while (!port && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, prefix), *colon;

		if (p && (colon = strrchr(p, ':')) && colon > p + strlen(prefix) - 1)
			port = (unsigned)atoi(colon + 1);
	}
	fclose(f);
	return port;
}

/* A port of 127.0.0.1 that nothing listens on now, for vivd to bind (it
 * takes no port 0), or 0. */
static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

bool bench_vivd_start(struct bench_vivd *v, const char *bin, const char *const *extra)
{
	const char *argv[48];
	char out[128], log[128], url[128], path[160], api[32], apps[32];
	struct viv_buf b = {0};
	unsigned api_port = 0;
	size_t n = 0, i;
	double deadline;
	char *tok = NULL;
	size_t tlen = 0;

	memset(v, 0, sizeof(*v));
	strcpy(v->dir, "/tmp/viv-bench-XXXXXX");
	if (!mkdtemp(v->dir)) {
		perror("bench: mkdtemp");
		return false;
	}
	/* A vivd started as root runs its roles as the user vivarium, who must
	 * reach the data folder inside. */
	chmod(v->dir, 0755);
	snprintf(v->data, sizeof(v->data), "%s/data", v->dir);
	snprintf(out, sizeof(out), "%s/vivd.out", v->dir);
	snprintf(log, sizeof(log), "%s/vivd.log", v->dir);
	snprintf(api, sizeof(api), "127.0.0.1:%u", free_port());
	snprintf(apps, sizeof(apps), "127.0.0.1:%u", free_port());
	argv[n++] = bin;
	argv[n++] = "serve";
	argv[n++] = "--data";
	argv[n++] = v->data;
	argv[n++] = "--api";
	argv[n++] = api;
	argv[n++] = "--listen";
	argv[n++] = apps;
	for (i = 0; extra && extra[i] && n < 47; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	v->pid = fork();
	if (v->pid < 0)
		return false;
	if (v->pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		setpgid(0, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	deadline = now_s() + 60;
	while (!api_port || !v->apps_port) {
		int st;

		if (waitpid(v->pid, &st, WNOHANG) != 0 || now_s() > deadline) {
			fprintf(stderr, "bench: vivd did not start; see %s\n", log);
			v->pid = 0;
			return false;
		}
		api_port = printed_port(out, "API:  http://");
		v->apps_port = printed_port(out, "Apps: http://");
		usleep(20000);
	}
	snprintf(v->api, sizeof(v->api), "http://127.0.0.1:%u", api_port);
	snprintf(url, sizeof(url), "%s/healthz", v->api);
	while (bench_http("GET", url, NULL, NULL, NULL, 0, &b) != 200) {
		if (now_s() > deadline) {
			fprintf(stderr, "bench: vivd's API did not answer; see %s\n", log);
			viv_buf_free(&b);
			bench_vivd_stop(v);
			return false;
		}
		usleep(50000);
	}
	viv_buf_free(&b);
	snprintf(path, sizeof(path), "%s/admin-token", v->data);
	if (viv_read_file(path, 4096, &tok, &tlen)) {
		fprintf(stderr, "bench: cannot read %s\n", path);
		bench_vivd_stop(v);
		return false;
	}
	tok[strcspn(tok, " \r\n")] = '\0';
	snprintf(v->token, sizeof(v->token), "%s", tok);
	free(tok);
	return true;
}

void bench_vivd_stop(struct bench_vivd *v)
{
	double deadline = now_s() + 20;
	int st;

	if (v->pid > 0) {
		kill(v->pid, SIGTERM);
		while (waitpid(v->pid, &st, WNOHANG) == 0) {
			if (now_s() > deadline) {
				kill(-v->pid, SIGKILL);
				waitpid(v->pid, &st, 0);
				break;
			}
			usleep(20000);
		}
		v->pid = 0;
	}
	if (v->dir[0])
		nftw(v->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	v->dir[0] = '\0';
}

bool bench_tar(const struct bench_file *files, size_t n, char **out, size_t *len)
{
	struct archive *a = archive_write_new();
	size_t cap = 1 << 20, used = 0, i;
	char *buf = malloc(cap);
	bool ok = a && buf && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
	          archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK;

	for (i = 0; ok && i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)files[i].len);
		ok = archive_write_header(a, e) == ARCHIVE_OK &&
		     archive_write_data(a, files[i].data, files[i].len) == (la_ssize_t)files[i].len;
		archive_entry_free(e);
	}
	ok = ok && archive_write_close(a) == ARCHIVE_OK;
	archive_write_free(a);
	if (!ok) {
		free(buf);
		return false;
	}
	*out = buf;
	*len = used;
	return true;
}

bool bench_deploy(const struct bench_vivd *v, const char *app, const void *upload, size_t len,
                  unsigned timeout_s)
{
	struct viv_buf b = {0};
	char url[256];
	double deadline = now_s() + timeout_s;
	json_t *j;
	long id, status;

	snprintf(url, sizeof(url), "%s/v1/apps/%s/deployments", v->api, app);
	status = bench_http("POST", url, NULL, v->token, upload, len, &b);
	j = status == 202 ? json_loads(b.data, 0, NULL) : NULL;
	if (!j) {
		fprintf(stderr, "bench: deploying %s answered %ld: %s\n", app, status,
		        b.data ? b.data : "");
		viv_buf_free(&b);
		return false;
	}
	id = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(url, sizeof(url), "%s/v1/deployments/%ld", v->api, id);
	while (now_s() < deadline) {
		const char *st;
		bool ready, failed;

		bench_http("GET", url, NULL, v->token, NULL, 0, &b);
		j = json_loads(b.data ? b.data : "", 0, NULL);
		st = json_string_value(json_object_get(j, "status"));
		ready = st && strcmp(st, "ready") == 0;
		failed = st && strcmp(st, "failed") == 0;
		if (failed)
			fprintf(stderr, "bench: deployment %ld of %s failed: %s\n", id, app,
			        json_string_value(json_object_get(j, "error")));
		json_decref(j);
		if (ready || failed) {
			viv_buf_free(&b);
			return ready;
		}
		usleep(50000);
	}
	fprintf(stderr, "bench: deployment %ld of %s was not ready after %u s\n", id, app,
	        timeout_s);
	viv_buf_free(&b);
	return false;
}

/* A line "Key:\tvalue" of /proc/PID/status, copied into val. */
static bool status_field(pid_t pid, const char *key, char *val, size_t len)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			snprintf(val, len, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
			val[strcspn(val, "\n")] = '\0';
			found = true;
		}
	}
	fclose(f);
	return found;
}

size_t bench_workers(pid_t parent, pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char name[64], ppid[32];
		int pid = atoi(e->d_name);

		if (pid <= 0 || !status_field(pid, "Name", name, sizeof(name)) ||
		    !status_field(pid, "PPid", ppid, sizeof(ppid)) || atoi(ppid) != parent ||
		    strncmp(name, "worker", 6) != 0)
			continue;
		if (n < max)
			out[n] = pid;
		n++;
	}
	closedir(d);
	return n;
}

long bench_rss_kb(pid_t pid)
{
	char v[64];

	return status_field(pid, "VmRSS", v, sizeof(v)) ? atol(v) : -1;
}
