/* The API test fixture: see api_server.h. */
#include "api_server.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "pipeline.h"
#include "store.h"
#include "viv.h"

const unsigned char twasm_min[] = {
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,       /* magic, version */
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00,                   /* type 0: [] -> [] */
        0x03, 0x02, 0x01, 0x00,                               /* func 0 has type 0 */
        0x07, 0x07, 0x01, 0x03, 'r',  'u',  'n',  0x00, 0x00, /* export "run" */
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,                   /* body: end */
};
const size_t twasm_min_len = sizeof(twasm_min);

const char *twat_hello =
        "(module\n"
        "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
        "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
        "  (memory (export \"memory\") 1)\n"
        "  (data (i32.const 64) \"Content-Type: text/plain\\n\\nhello from wat\\n\")\n"
        "  (func (export \"_start\")\n"
        "    (i32.store (i32.const 0) (i32.const 64))\n"
        "    (i32.store (i32.const 4) (i32.const 41))\n"
        "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))\n";

void tsrv_start(struct tsrv *s, size_t upload_max, const char *web_dir)
{
	tsrv_start_with(s, upload_max, web_dir, 0);
}

void tsrv_start_with(struct tsrv *s, size_t upload_max, const char *web_dir, unsigned keepalive_s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct store *st = NULL;
	char errbuf[256] = "", logpath[128];
	bool created = false;
	int fd, one = 1;
	sigset_t stop_sigs, old_sigs;
	pid_t parent;

	memset(s, 0, sizeof(*s));
	snprintf(s->root, sizeof(s->root), "/tmp/viv-api-test-XXXXXX");
	cr_assert_not_null(mkdtemp(s->root));
	snprintf(s->datadir, sizeof(s->datadir), "%s/data", s->root);
	snprintf(logpath, sizeof(logpath), "%s/api.log", s->root);

	/* The token exists before the server starts, as with vivd. The
	 * connection is closed before fork: SQLite connections never cross
	 * one. */
	cr_assert_eq(store_open(s->datadir, &st, errbuf, sizeof(errbuf)), VIV_OK, "%s", errbuf);
	cr_assert_eq(store_admin_token_ensure(st, &s->token, &created), VIV_OK);
	store_close(st);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);

	/* The children are born with SIGTERM and SIGINT blocked, as the
	 * builder and the API block them to sigwait: one sent before they
	 * get there waits for them instead of killing them. */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	cr_assert_eq(sigprocmask(SIG_BLOCK, &stop_sigs, &old_sigs), 0);
	parent = getpid();
	s->builder_pid = fork();
	cr_assert_geq(s->builder_pid, 0);
	if (s->builder_pid == 0) {
		struct pipe_config pc;
		char err2[256];
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(1);
		if (logfd >= 0)
			dup2(logfd, 2);
		close(fd);
		viv_log_role("builder");
		pipe_config_defaults(&pc);
		if (upload_max)
			pc.upload_max = upload_max;
		pc.sandbox = pc.sandbox && pipe_sandbox_available(NULL, err2, sizeof(err2));
		_exit(pipe_builder_main(s->datadir, &pc));
	}
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (s->pid == 0) {
		struct api_config cfg = {0};
		struct pipe_config pc;
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		/* A test that fails before tsrv_stop must not leave its server
		 * running: it stops with the test's process. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(1);

		if (logfd >= 0)
			dup2(logfd, 2);
		cfg.datadir = s->datadir;
		cfg.listen_fd = fd;
		cfg.domain = "localhost";
		cfg.apps_port = 8000;
		cfg.web_dir = web_dir;
		cfg.upload_max = upload_max;
		/* The platform's folders, where vivd finds them. */
		pipe_config_defaults(&pc);
		cfg.sdk_dir = pc.sdk_dir;
		cfg.tool_dir = pc.tool_dir;
		cfg.keepalive_s = keepalive_s;
		_exit(api_main(&cfg));
	}
	cr_assert_eq(sigprocmask(SIG_SETMASK, &old_sigs, NULL), 0);
	close(fd);
	s->upload_max = upload_max ? upload_max : VIV_UPLOAD_MAX_DEFAULT;
	/* Answering means its stop signals are taken: a SIGTERM sent before
	 * that would kill it instead of stopping it. */
	for (int i = 0; i < 200; i++) {
		struct tresp r;

		thttp(s, "GET", "/healthz", NULL, NULL, 0, false, &r);
		if (r.status == 200) {
			tresp_free(&r);
			return;
		}
		tresp_free(&r);
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
	cr_assert_fail("the API did not answer /healthz within 10 s");
}

/* Stops the child pid with SIGTERM and asserts that it exits with status 0
 * within 10 s. */
static void stop_child(pid_t pid, const char *what)
{
	int status = 0, i;
	pid_t r = 0;

	cr_assert_eq(kill(pid, SIGTERM), 0);
	for (i = 0; i < 200; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
	if (r != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		cr_assert_fail("the %s did not stop within 10 s of SIGTERM", what);
	}
	cr_assert(WIFEXITED(status), "the %s died of signal %d", what, WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "the %s exited with %d", what, WEXITSTATUS(status));
}

void tsrv_stop(struct tsrv *s)
{
	stop_child(s->pid, "API");
	stop_child(s->builder_pid, "builder");
	viv_rmtree_or_log(s->root);
	free(s->token);
	s->token = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct viv_buf *b = ctx;

	return viv_buf_append(b, p, size * n) ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct tresp *r = ctx;

	viv_header_take(p, size * n, "Location", r->location, sizeof(r->location));
	viv_header_take(p, size * n, "Allow", r->allow, sizeof(r->allow));
	viv_header_take(p, size * n, "WWW-Authenticate", r->www_auth, sizeof(r->www_auth));
	viv_header_take(p, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
	viv_header_take(p, size * n, "ETag", r->etag, sizeof(r->etag));
	viv_header_take(p, size * n, "X-Vivarium-Sha256", r->sha256, sizeof(r->sha256));
	viv_header_take(p, size * n, "X-Vivarium-Platform", r->platform, sizeof(r->platform));
	return size * n;
}

/* Feeds a body through a read callback so that curl sends it chunked. */
struct tsource {
	const char *p;
	size_t left;
};

static size_t on_read(char *dst, size_t size, size_t n, void *ctx)
{
	struct tsource *src = ctx;
	size_t k = size * n;

	if (k > src->left)
		k = src->left;
	if (k > 1000)
		k = 1000; /* several chunks even for small bodies */
	memcpy(dst, src->p, k);
	src->p += k;
	src->left -= k;
	return k;
}

void thttp(const struct tsrv *s, const char *method, const char *path, const char *token,
           const void *body, size_t len, bool chunked, struct tresp *out)
{
	thttp_h(s, method, path, token, NULL, body, len, chunked, out);
}

void thttp_h(const struct tsrv *s, const char *method, const char *path, const char *token,
             const char *const *headers, const void *body, size_t len, bool chunked,
             struct tresp *out)
{
	struct curl_slist *hdrs = NULL;
	struct tsource src = {.p = body, .left = len};
	struct viv_buf url, auth, buf;
	CURL *h;
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	viv_buf_init(&url, 0);
	viv_buf_init(&auth, 0);
	viv_buf_init(&buf, 64u << 20);
	cr_assert_eq(viv_buf_printf(&url, "%s%s", s->base, path), VIV_OK);
	h = curl_easy_init();
	cr_assert_not_null(h);
	if (token) {
		cr_assert_eq(viv_buf_printf(&auth, "Authorization: Bearer %s", token), VIV_OK);
		hdrs = curl_slist_append(hdrs, auth.data);
	}
	if (chunked)
		hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	for (size_t i = 0; headers && headers[i]; i++)
		hdrs = curl_slist_append(hdrs, headers[i]);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	/* A PUT sends its body as a POST would, under its own method name. */
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (chunked) {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, &src);
		} else {
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		}
	}
	rc = curl_easy_perform(h);
	cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	out->len = buf.len;
	out->body = viv_buf_steal(&buf);
	cr_assert_not_null(out->body);
	out->json = json_loadb(out->body, out->len, 0, NULL);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	viv_buf_free(&url);
	viv_buf_free(&auth);
}

void tresp_free(struct tresp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

const char *tjstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

long long tupload(const struct tsrv *s, const char *app, const char *token, const void *body,
                  size_t len)
{
	char path[128];
	struct tresp r;
	long long id;

	snprintf(path, sizeof(path), "/v1/apps/%s/deployments", app);
	thttp(s, "POST", path, token ? token : s->token, body, len, false, &r);
	cr_assert_eq(r.status, 202, "upload to %s: %ld %s", app, r.status, r.body);
	id = json_integer_value(json_object_get(r.json, "id"));
	cr_assert_gt(id, 0);
	tresp_free(&r);
	return id;
}

json_t *twait_deployment(const struct tsrv *s, long long id, int timeout_s)
{
	char path[64];
	struct tresp r;
	json_t *last = NULL;
	const char *status;
	int i;

	snprintf(path, sizeof(path), "/v1/deployments/%lld", id);
	for (i = 0; i < timeout_s * 10; i++) {
		thttp(s, "GET", path, s->token, NULL, 0, false, &r);
		cr_assert_eq(r.status, 200, "%s", r.body);
		cr_assert_not_null(r.json);
		json_decref(last);
		last = json_incref(r.json);
		tresp_free(&r);
		status = json_string_value(json_object_get(last, "status"));
		cr_assert_not_null(status);
		if (strcmp(status, "ready") == 0 || strcmp(status, "failed") == 0)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	}
	return last;
}

void tsrv_append_logs(const struct tsrv *s, const char *app, struct store_log *lines, size_t n)
{
	struct store *st = NULL;
	struct store_app *a = NULL;
	char errbuf[256];
	size_t i;

	cr_assert_eq(store_open(s->datadir, &st, errbuf, sizeof(errbuf)), VIV_OK, "%s", errbuf);
	cr_assert_eq(store_app_get(st, app, &a), VIV_OK, "no app %s", app);
	for (i = 0; i < n; i++)
		lines[i].app_id = a->id;
	cr_assert_eq(store_logs_append(st, lines, n), VIV_OK);
	store_app_free(a);
	store_close(st);
}

static la_ssize_t on_archive(struct archive *a, void *ctx, const void *p, size_t n)
{
	(void)a;
	return viv_buf_append(ctx, p, n) ? -1 : (la_ssize_t)n;
}

void tmake_targz(const char *const *names, const char *const *texts, size_t n, char **out,
                 size_t *len_out)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	struct viv_buf buf;
	size_t i;

	viv_buf_init(&buf, 0);
	cr_assert_not_null(a);
	cr_assert_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	cr_assert_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	/* As gzip and tar write it: no padding after the compressed stream. */
	cr_assert_eq(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	cr_assert_eq(archive_write_open2(a, &buf, NULL, on_archive, NULL, NULL), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		e = archive_entry_new();
		archive_entry_set_pathname(e, names[i]);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)strlen(texts[i]));
		cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK);
		cr_assert_eq(archive_write_data(a, texts[i], strlen(texts[i])),
		             (la_ssize_t)strlen(texts[i]));
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*len_out = buf.len;
	*out = viv_buf_steal(&buf);
}
