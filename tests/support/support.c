/* Test helpers around the real vivd; see support.h. */
#include "support.h"

#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "viv.h"

double tsup_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* A port no one listens on, below the kernel's ephemeral range (32768 and
 * up): a port from that range can be taken by any process's outgoing
 * connection while its vivd is down, and a restart on it then fails with
 * "Address already in use". Random, so that tests running at once do not
 * pick alike. */
unsigned tsup_free_port(void)
{
	for (int tries = 0; tries < 1000; tries++) {
		struct sockaddr_in a;
		unsigned short port;
		int fd, ok;

		cr_assert_eq(getrandom(&port, sizeof(port), 0), (ssize_t)sizeof(port));
		port = (unsigned short)(10000 + port % 20000);
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons(port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(fd, 0);
		ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	cr_assert_fail("no free port between 10000 and 29999");
	return 0;
}

char *tsup_read_file(const char *path, size_t *len)
{
	char *data = NULL;
	size_t n = 0;
	enum viv_err err = viv_read_file(path, (size_t)256 << 20, &data, &n);

	cr_assert_eq(err, VIV_OK, "cannot read %s: %s", path, viv_strerror(err));
	if (len)
		*len = n;
	return data;
}

char *tsup_vivd_log_tail(const struct tsup_vivd *v, size_t bytes)
{
	char *data = NULL, *tail;
	size_t n = 0;

	if (viv_read_file(v->log, (size_t)64 << 20, &data, &n))
		return strdup("(no vivd log)");
	tail = strdup(n > bytes ? data + n - bytes : data);
	free(data);
	return tail;
}

/* Whether builds can be sandboxed here; vivd refuses to start otherwise
 * unless told --no-sandbox, and CI machines differ. Asked as a user that
 * is not root when the tests run as root, as vivd's users are not. */
bool tsup_bwrap_works(void)
{
	const char *argv[] = {"bwrap",     "--unshare-all", "--die-with-parent",
	                      "--ro-bind", "/usr",          "/usr",
	                      "--symlink", "usr/bin",       "/bin",
	                      "--symlink", "usr/lib",       "/lib",
	                      "--symlink", "usr/lib64",     "/lib64",
	                      "--proc",    "/proc",         "--dev",
	                      "/dev",      "/bin/true",     NULL};
	int status = 0;
	pid_t pid;

	if (geteuid() != 0)
		return tsup_run(argv, NULL, NULL) == 0;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

void tsup_vivd_start(struct tsup_vivd *v, const char *const *extra)
{
	tsup_vivd_start_bin(v, VIVD_BIN, extra);
}

void tsup_vivd_start_bin(struct tsup_vivd *v, const char *bin, const char *const *extra)
{
	const char *argv[40];
	char api[64], apps[64], *tok;
	size_t n = 0, i;
	double deadline;
	int fd;

	memset(v, 0, sizeof(*v));
	strcpy(v->dir, "/tmp/viv-e2e-XXXXXX");
	cr_assert_not_null(mkdtemp(v->dir));
	/* A vivd started as root runs as its own users, which pass through
	 * to the data folder. */
	cr_assert_eq(chmod(v->dir, 0711), 0);
	snprintf(v->data, sizeof(v->data), "%s/data", v->dir);
	snprintf(v->log, sizeof(v->log), "%s/vivd.log", v->dir);
	v->api_port = tsup_free_port();
	v->apps_port = tsup_free_port();
	snprintf(api, sizeof(api), "127.0.0.1:%u", v->api_port);
	snprintf(apps, sizeof(apps), "127.0.0.1:%u", v->apps_port);
	snprintf(v->api, sizeof(v->api), "http://127.0.0.1:%u", v->api_port);
	argv[n++] = bin;
	argv[n++] = "serve";
	/* As scripts/run.sh starts it: in a folder, with its data folder
	 * named relative to it. */
	argv[n++] = "--data";
	argv[n++] = "data";
	argv[n++] = "--api";
	argv[n++] = api;
	argv[n++] = "--listen";
	argv[n++] = apps;
	argv[n++] = "--workers";
	argv[n++] = "2";
	if (!tsup_bwrap_works())
		argv[n++] = "--no-sandbox";
	for (i = 0; extra && extra[i] && n < 38; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	v->pid = fork();
	cr_assert(v->pid >= 0);
	if (v->pid == 0) {
		fd = open(v->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		if (chdir(v->dir) != 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	deadline = tsup_now_ms() + 30000;
	for (;;) {
		struct tsup_resp r;
		char url[128];
		int status;

		cr_assert(waitpid(v->pid, &status, WNOHANG) == 0, "vivd exited early:\n%s",
		          tsup_vivd_log_tail(v, 4000));
		snprintf(url, sizeof(url), "%s/healthz", v->api);
		if (tsup_http("GET", url, NULL, NULL, NULL, 0, &r) && r.status == 200) {
			tsup_resp_free(&r);
			break;
		}
		tsup_resp_free(&r);
		cr_assert(tsup_now_ms() < deadline, "vivd did not answer /healthz:\n%s",
		          tsup_vivd_log_tail(v, 4000));
		usleep(50000);
	}
	{
		char path[400];
		snprintf(path, sizeof(path), "%s/admin-token", v->data);
		tok = tsup_read_file(path, NULL);
		tok[strcspn(tok, " \r\n")] = '\0';
		snprintf(v->token, sizeof(v->token), "%s", tok);
		free(tok);
	}
}

void tsup_vivd_stop(struct tsup_vivd *v)
{
	int status;
	double deadline = tsup_now_ms() + 20000;

	if (v->pid <= 0)
		return;
	kill(v->pid, SIGTERM);
	while (waitpid(v->pid, &status, WNOHANG) == 0) {
		if (tsup_now_ms() > deadline) {
			kill(-v->pid, SIGKILL);
			waitpid(v->pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	v->pid = 0;
	if (!getenv("VIV_TEST_KEEP"))
		viv_rmtree_or_log(v->dir);
}

size_t tsup_children_named(pid_t parent, const char *prefix, pid_t *out, size_t max)
{
	char path[64], comm[64];
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) && n < max) {
		FILE *f;
		int pid, ppid;
		char state;

		pid = atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%d (%63[^)]) %c %d", &pid, comm, &state, &ppid) == 4 &&
		    ppid == parent && strncmp(comm, prefix, strlen(prefix)) == 0)
			out[n++] = pid;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* ---- HTTP --------------------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct viv_buf *b = arg;

	if (viv_buf_append(b, p, size * n))
		return 0;
	return size * n;
}

void tsup_resp_free(struct tsup_resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

static bool http_exchange(const char *method, const char *url, const char *host, const char *token,
                          const char *const *extra, const void *body, size_t body_len,
                          struct tsup_resp *out);

bool tsup_http(const char *method, const char *url, const char *host, const char *token,
               const void *body, size_t body_len, struct tsup_resp *out)
{
	return http_exchange(method, url, host, token, NULL, body, body_len, out);
}

bool tsup_http_headers(const char *method, const char *url, const char *host,
                       const char *const *headers, const void *body, size_t body_len,
                       struct tsup_resp *out)
{
	return http_exchange(method, url, host, NULL, headers, body, body_len, out);
}

static bool http_exchange(const char *method, const char *url, const char *host, const char *token,
                          const char *const *extra, const void *body, size_t body_len,
                          struct tsup_resp *out)
{
	struct viv_buf b, h;
	struct curl_slist *hdrs = NULL;
	char line[300];
	CURL *c = curl_easy_init();
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	viv_buf_init(&b, (size_t)64 << 20);
	viv_buf_init(&h, (size_t)1 << 20);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, out->error);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (host) {
		snprintf(line, sizeof(line), "Host: %s", host);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, line);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	for (size_t i = 0; extra && extra[i]; i++)
		hdrs = curl_slist_append(hdrs, extra[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	else if (!out->error[0])
		snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	out->len = b.len;
	out->body = viv_buf_steal(&b);
	out->headers = viv_buf_steal(&h);
	return rc == CURLE_OK;
}

bool tsup_app_get(const struct tsup_vivd *v, const char *app, const char *path,
                  struct tsup_resp *out)
{
	char url[512], host[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", v->apps_port, path);
	snprintf(host, sizeof(host), "%s.localhost:%u", app, v->apps_port);
	return tsup_http("GET", url, host, NULL, NULL, 0, out);
}

bool tsup_app_request(const struct tsup_vivd *v, const char *app, const char *method,
                      const char *path, const char *const *headers, const void *body,
                      size_t body_len, struct tsup_resp *out)
{
	char url[512], host[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", v->apps_port, path);
	snprintf(host, sizeof(host), "%s.localhost:%u", app, v->apps_port);
	return tsup_http_headers(method, url, host, headers, body, body_len, out);
}

char *tsup_resp_header(const struct tsup_resp *r, const char *name)
{
	size_t nl = strlen(name);
	const char *line = r->headers;
	char *found = NULL;

	/* The block holds every response's headers (after a 100 Continue, say);
	 * the last one found is the final response's. */

	while (line && *line) {
		const char *end = strstr(line, "\r\n");
		size_t ll = end ? (size_t)(end - line) : strlen(line);

		if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			size_t vl = ll - nl - 1;

			while (vl && (*v == ' ' || *v == '\t')) {
				v++;
				vl--;
			}
			free(found);
			found = strndup(v, vl);
		}
		line = end ? end + 2 : NULL;
	}
	return found;
}

/* ---- Tarballs ----------------------------------------------------------------------- */

void tsup_tar(const struct tsup_file *files, size_t n, bool gzip, char **out, size_t *len)
{
	size_t cap = (size_t)8 << 20, used = 0, i;
	struct archive *a = archive_write_new();
	char *buf = malloc(cap);

	cr_assert_not_null(buf);
	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	cr_assert_eq(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t nl = strlen(files[i].name);
		bool dir = nl && files[i].name[nl - 1] == '/';
		size_t tl = files[i].text ? strlen(files[i].text) : 0;

		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
		archive_entry_set_perm(e, dir ? 0755 : 0644);
		archive_entry_set_size(e, dir ? 0 : (la_int64_t)tl);
		cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK);
		if (!dir && tl)
			cr_assert_eq(archive_write_data(a, files[i].text, tl), (la_ssize_t)tl);
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*out = buf;
	*len = used;
}

static la_ssize_t tar_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	if (viv_buf_append(ctx, buf, n))
		return -1;
	return (la_ssize_t)n;
}

static void tar_add(struct archive *a, const char *name, bool dir, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(e, dir ? 0755 : 0644);
	archive_entry_set_size(e, dir ? 0 : (la_int64_t)len);
	cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK, "%s: %s", name,
	             archive_error_string(a));
	if (!dir && len)
		cr_assert_eq(archive_write_data(a, data, len), (la_ssize_t)len, "%s", name);
	archive_entry_free(e);
}

static int by_name(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Adds the tree at root/rel (rel "" for root itself), skipping files that
 * the overrides replace. */
static void tar_tree(struct archive *a, const char *root, const char *rel,
                     const struct tsup_file *files, size_t n)
{
	static const char *const skip[] = {".git", "target", "node_modules"};
	char path[1024], **names = NULL;
	size_t n_names = 0, i, k;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	d = opendir(path);
	cr_assert_not_null(d, "cannot open %s", path);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = realloc(names, (n_names + 1) * sizeof(*names));
		cr_assert_not_null(names);
		names[n_names++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n_names, sizeof(*names), by_name);
	for (i = 0; i < n_names; i++) {
		char child[1024], full[1100];
		struct stat sb;
		bool replaced = false, skipped = false;

		snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
		snprintf(full, sizeof(full), "%s/%s", root, child);
		cr_assert_eq(lstat(full, &sb), 0, "cannot stat %s", full);
		if (S_ISDIR(sb.st_mode)) {
			for (k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
				skipped = skipped || strcmp(names[i], skip[k]) == 0;
			if (!skipped) {
				char dirname[1030];

				snprintf(dirname, sizeof(dirname), "%s/", child);
				tar_add(a, dirname, true, NULL, 0);
				tar_tree(a, root, child, files, n);
			}
		} else {
			cr_assert(S_ISREG(sb.st_mode), "%s is neither a file nor a folder", full);
			for (k = 0; k < n; k++)
				replaced = replaced || strcmp(files[k].name, child) == 0;
			if (!replaced) {
				size_t len;
				char *data = tsup_read_file(full, &len);

				tar_add(a, child, false, data, len);
				free(data);
			}
		}
		free(names[i]);
	}
	free(names);
}

void tsup_tar_dir(const char *dir, const struct tsup_file *files, size_t n, bool gzip, char **out,
                  size_t *len)
{
	struct archive *a = archive_write_new();
	struct viv_buf b;
	size_t i;

	viv_buf_init(&b, (size_t)256 << 20);
	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	/* Without this libarchive pads the last block to 10 KiB, which is
	 * harmless but not what tar czf writes. */
	archive_write_set_bytes_in_last_block(a, 1);
	cr_assert_eq(archive_write_open(a, &b, NULL, tar_write, NULL), ARCHIVE_OK);
	tar_tree(a, dir, "", files, n);
	for (i = 0; i < n; i++) {
		size_t nl = strlen(files[i].name);
		bool is_dir = nl && files[i].name[nl - 1] == '/';
		const char *text = files[i].text ? files[i].text : "";

		tar_add(a, files[i].name, is_dir, text, is_dir ? 0 : strlen(text));
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK, "%s", archive_error_string(a));
	archive_write_free(a);
	*len = b.len;
	*out = viv_buf_steal(&b);
}

/* ---- Deployments --------------------------------------------------------------------- */

long tsup_deploy(const struct tsup_vivd *v, const char *app, const void *body, size_t len,
                 long *id_out, struct tsup_resp *resp_out)
{
	char url[256];
	struct tsup_resp r;
	json_t *j;
	long status;

	snprintf(url, sizeof(url), "%s/v1/apps/%s/deployments", v->api, app);
	cr_assert(tsup_http("POST", url, NULL, v->token, body, len, &r), "no answer from the API");
	status = r.status;
	if (id_out) {
		*id_out = 0;
		j = json_loads(r.body, 0, NULL);
		if (j && json_is_integer(json_object_get(j, "id")))
			*id_out = (long)json_integer_value(json_object_get(j, "id"));
		json_decref(j);
	}
	if (resp_out)
		*resp_out = r;
	else
		tsup_resp_free(&r);
	return status;
}

json_t *tsup_wait_deployment(const struct tsup_vivd *v, long id, unsigned timeout_ms)
{
	double deadline = tsup_now_ms() + timeout_ms;
	char url[256];

	snprintf(url, sizeof(url), "%s/v1/deployments/%ld", v->api, id);
	for (;;) {
		struct tsup_resp r;
		json_t *j;
		const char *st;

		cr_assert(tsup_http("GET", url, NULL, v->token, NULL, 0, &r));
		cr_assert_eq(r.status, 200, "GET %s: %ld %s", url, r.status, r.body);
		j = json_loads(r.body, 0, NULL);
		cr_assert_not_null(j, "not JSON: %s", r.body);
		tsup_resp_free(&r);
		st = json_string_value(json_object_get(j, "status"));
		cr_assert_not_null(st);
		if (strcmp(st, "ready") == 0 || strcmp(st, "failed") == 0 ||
		    tsup_now_ms() >= deadline)
			return j;
		json_decref(j);
		usleep(20000);
	}
}

json_t *tsup_deploy_wait(const struct tsup_vivd *v, const char *app, const void *body, size_t len)
{
	struct tsup_resp r;
	long id = 0;
	long status = tsup_deploy(v, app, body, len, &id, &r);

	cr_assert_eq(status, 202, "deploy %s: %ld %s", app, status, r.body);
	tsup_resp_free(&r);
	return tsup_wait_deployment(v, id, 120000);
}

/* ---- Processes ------------------------------------------------------------------------ */

int tsup_run(const char *const *argv, const char *const *env, char **output)
{
	int pfd[2], status = 0;
	struct viv_buf b;
	pid_t pid;
	char chunk[4096];
	ssize_t r;

	cr_assert(pipe(pfd) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	viv_buf_init(&b, (size_t)16 << 20);
	while ((r = read(pfd[0], chunk, sizeof(chunk))) > 0 || (r < 0 && errno == EINTR)) {
		if (r > 0)
			viv_buf_append_trunc(&b, chunk, (size_t)r);
	}
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (output)
		*output = viv_buf_steal(&b);
	else
		viv_buf_free(&b);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *tsup_wat2wasm(const char *wat, size_t *len)
{
	char dir[] = "/tmp/viv-wat-XXXXXX", in[64], outp[64], *out = NULL, *data;
	const char *argv[] = {"wat2wasm", in, "-o", outp, NULL};
	int rc;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(in, sizeof(in), "%s/m.wat", dir);
	snprintf(outp, sizeof(outp), "%s/m.wasm", dir);
	cr_assert_eq(viv_write_file_atomic(in, wat, strlen(wat), 0644), VIV_OK);
	rc = tsup_run(argv, NULL, &out);
	cr_assert_eq(rc, 0, "wat2wasm failed: %s", out);
	free(out);
	data = tsup_read_file(outp, len);
	viv_rmtree_or_log(dir);
	return data;
}

/* See support.h. */
char *tsup_cgi_wat(const char *text)
{
	char *wat = NULL;
	char body[512];
	int n = snprintf(body, sizeof(body), "Content-Type: text/plain\\0a\\0a%s\\0a", text);
	size_t len = strlen(text) + 26 + 1;

	cr_assert(n > 0 && (size_t)n < sizeof(body));
	cr_assert(asprintf(&wat,
	                   "(module\n"
	                   "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	                   "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
	                   "  (memory 1)\n"
	                   "  (data (i32.const 64) \"%s\")\n"
	                   "  (func (export \"_start\")\n"
	                   "    (i32.store (i32.const 0) (i32.const 64))\n"
	                   "    (i32.store (i32.const 4) (i32.const %zu))\n"
	                   "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
	                   " (i32.const 16)))))\n",
	                   body, len) > 0);
	return wat;
}
