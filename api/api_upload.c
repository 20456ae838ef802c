/* POST /v1/apps/APP/deployments: streams the raw body to a temporary file in
 * the data directory while hashing it and holding it to the upload cap, then
 * creates a queued deployment (recording the token's name), which wakes the
 * builders through the store. A tarball, a .wasm module or one WebAssembly
 * text file is accepted; what `curl -d` made of a file is refused with the
 * fix. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_int.h"

void api_upload_init(struct api_upload *up)
{
	memset(up, 0, sizeof(*up));
	up->fd = -1;
}

void api_upload_cleanup(struct api_upload *up)
{
	char hex[VIV_SHA256_HEX_LEN + 1];

	if (up->fd >= 0) {
		close(up->fd);
		up->fd = -1;
	}
	if (up->hashing) {
		viv_sha256_end(&up->hash, hex);
		up->hashing = false;
	}
	if (up->tmp_path) {
		if (unlink(up->tmp_path) != 0 && errno != ENOENT)
			viv_log(VIV_WARN, "cannot remove the temporary upload %s: %s", up->tmp_path,
			        strerror(errno));
		free(up->tmp_path);
		up->tmp_path = NULL;
	}
}

bool api_content_length(struct MHD_Connection *c, uint64_t *out)
{
	const char *v =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n = 0;

	if (!v || !v[0] || strspn(v, "0123456789") != strlen(v))
		return false;
	/* Digits past what 64 bits hold are far past any cap anyway. */
	if (!viv_parse_u64(v, NULL, UINT64_MAX, &n))
		n = UINT64_MAX;
	*out = n;
	return true;
}

/* The upload cap as a phrase for messages, e.g. "64 MiB" or "1000 bytes". */
static void cap_phrase(size_t cap, char *buf, size_t len)
{
	if (cap >= (1u << 20) && cap % (1u << 20) == 0)
		snprintf(buf, len, "%zu MiB", cap >> 20);
	else if (cap >= 1024 && cap % 1024 == 0)
		snprintf(buf, len, "%zu KiB", cap >> 10);
	else
		snprintf(buf, len, "%zu bytes", cap);
}

static enum MHD_Result reply_too_big(struct api_server *s, struct MHD_Connection *c,
                                     struct api_req *r)
{
	char cap[64];

	cap_phrase(s->upload_max, cap, sizeof(cap));
	return api_reply_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
	                       "The upload is larger than this server's limit of %s; leave build "
	                       "output and dependencies (target/, node_modules/) out of it, or "
	                       "ask the operator to raise the limit.",
	                       cap);
}

static enum MHD_Result reply_empty(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
	                       "The upload is empty; send a tarball (.tar, .tar.gz) or a .wasm "
	                       "module as the request body, e.g. curl --data-binary @app.tar.gz.");
}

/* True for names of the form d<digits>-<name>, the preview addresses of
 * deployments. */
static bool preview_shaped(const char *app)
{
	size_t digits = strspn(app + 1, "0123456789");

	return app[0] == 'd' && digits > 0 && app[1 + digits] == '-' && app[2 + digits];
}

/* Whether the body came with the form type, as with curl -d (and also
 * curl --data-binary, which sends the same type but the bytes unchanged). */
static bool sent_as_form(struct MHD_Connection *c)
{
	const char *ct =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

/* The most sections looked at; modules have a few dozen. */
#define WASM_SECTIONS_MAX 1000

/* Whether the sections of the module in fd add up to its size, as they do
 * in any module a toolchain wrote, and hardly ever once its CR and LF bytes
 * were dropped (the code section's id is 10, a LF). */
static bool wasm_sections_fit(int fd, uint64_t size)
{
	uint64_t off = 8;
	unsigned char b[6];
	uint32_t len;
	ssize_t got;
	int k;

	for (int s = 0; off < size && s < WASM_SECTIONS_MAX; s++) {
		got = pread(fd, b, sizeof(b), (off_t)off);
		if (got < 2 || b[0] > 13)
			return false;
		k = viv_leb_u32(b + 1, (size_t)got - 1, &len);
		if (k <= 0)
			return false;
		off += 1 + (uint64_t)k + len;
	}
	return off == size;
}

/*
 * curl -d @FILE drops every CR and LF byte of the file and sends the rest
 * with the form type. That body is refused when it shows it: it is not an
 * upload at all, or it is 1 KiB or more without a single line break (any
 * tarball or module that size has some), an archive that no longer reads
 * to its end, or a module whose sections no longer add up.
 */
/* How far an archive sent as a form is read to see whether it is whole: a
 * stream that goes on this long without an error was not cut by curl -d
 * (and a compression bomb costs no more than this). */
#define FORM_ARCHIVE_READ_MAX (256u << 20)

/* Whether the archive in fd reads from start to end (or for the first
 * FORM_ARCHIVE_READ_MAX bytes) without an error. Dropped CR and LF bytes
 * break a compressed stream or a tar header's checksum almost always. */
static bool archive_reads_whole(int fd)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	uint64_t total = 0;
	char buf[16384];
	bool ok = false;
	la_ssize_t got;
	int rc;

	if (!a || lseek(fd, 0, SEEK_SET) != 0)
		goto out;
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	if (archive_read_open_fd(a, fd, sizeof(buf)) != ARCHIVE_OK)
		goto out;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		while ((got = archive_read_data(a, buf, sizeof(buf))) > 0) {
			total += (uint64_t)got;
			if (total >= FORM_ARCHIVE_READ_MAX) {
				ok = true;
				goto out;
			}
		}
		if (got < 0)
			goto out;
	}
	ok = rc == ARCHIVE_EOF;
out:
	archive_read_free(a);
	return ok;
}

static bool mangled_by_curl_d(const struct api_upload *up, enum viv_upload_kind kind)
{
	if (kind == VIV_UPLOAD_UNKNOWN)
		return true;
	if (up->size >= 1024 && !up->line_break)
		return true;
	if (kind == VIV_UPLOAD_ARCHIVE)
		return !archive_reads_whole(up->fd);
	return kind == VIV_UPLOAD_WASM && !wasm_sections_fit(up->fd, up->size);
}

enum MHD_Result api_upload_begin(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct api_upload *up = &r->up;
	uint64_t declared;
	enum viv_err err;

	if (api_content_length(c, &declared)) {
		if (declared > s->upload_max)
			return reply_too_big(s, c, r);
		if (declared == 0)
			return reply_empty(c, r);
	}
	if (preview_shaped(r->app)) {
		struct store_app *app = NULL;

		err = store_app_get(s->st, r->app, &app);
		store_app_free(app);
		if (err == VIV_ERR_NOT_FOUND)
			return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
			                       "Names of the form d<number>-<name> are the preview "
			                       "addresses of deployments (d12-hello is deployment "
			                       "12 of hello); choose another app name.");
		if (err)
			return api_reply_store_error(c, r, err, "reading the app");
	}
	err = store_upload_tmp(s->st, &up->tmp_path);
	if (err)
		return api_reply_store_error(c, r, err, "making room for the upload");
	up->fd = open(up->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (up->fd < 0) {
		viv_log(VIV_ERROR, "cannot create the temporary upload %s: %s", up->tmp_path,
		        strerror(errno));
		free(up->tmp_path);
		up->tmp_path = NULL;
		return api_reply_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                       "The server could not store the upload (it could not create "
		                       "a file in its data directory); the operator's log of vivd "
		                       "has the details.");
	}
	err = viv_sha256_begin(&up->hash);
	if (err)
		return api_reply_store_error(c, r, err, "starting the upload's hash");
	up->hashing = true;
	r->uploading = true;
	return MHD_YES;
}

enum MHD_Result api_upload_data(struct api_server *s, struct api_req *r, const char *data, size_t n)
{
	struct api_upload *up = &r->up;
	size_t keep;

	if (up->too_big || up->io_err) {
		/* The reply is decided; read and drop the rest, up to a point. */
		up->discarded += n;
		if (up->discarded > API_DISCARD_MAX) {
			viv_log(VIV_WARN,
			        "%s %s: closing a connection that sent %llu bytes past "
			        "the upload limit",
			        r->method, r->path, (unsigned long long)up->discarded);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (n > s->upload_max - up->size) {
		/* The body had no Content-Length or it lied: stop keeping it. */
		up->too_big = true;
		up->discarded = n;
		api_upload_cleanup(up);
		return MHD_YES;
	}
	if (!up->line_break && (memchr(data, '\n', n) || memchr(data, '\r', n)))
		up->line_break = true;
	if (up->head_len < sizeof(up->head)) {
		keep = sizeof(up->head) - up->head_len;
		if (keep > n)
			keep = n;
		memcpy(up->head + up->head_len, data, keep);
		up->head_len += keep;
	}
	if (viv_write_all(up->fd, data, n)) {
		viv_log(VIV_ERROR, "%s %s: writing the upload to %s failed: %s", r->method, r->path,
		        up->tmp_path, strerror(errno));
		up->io_err = VIV_ERR_IO;
		api_upload_cleanup(up);
		return MHD_YES;
	}
	viv_sha256_update(&up->hash, data, n);
	up->size += n;
	return MHD_YES;
}

enum MHD_Result api_upload_finish(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct api_upload *up = &r->up;
	char hex[VIV_SHA256_HEX_LEN + 1];
	char url[API_URL_MAX], preview[API_URL_MAX + 32], label[96];
	char status_url[64], events_url[80];
	struct MHD_Response *resp = NULL;
	enum viv_upload_kind kind;
	int64_t id = 0;
	enum viv_err err;

	r->uploading = false;
	if (up->too_big)
		return reply_too_big(s, c, r);
	if (up->io_err)
		return api_reply_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                       "The server could not write the upload to its data "
		                       "directory (is the disk full?); the operator's log of vivd "
		                       "has the details.");
	if (up->size == 0) {
		api_upload_cleanup(up);
		return reply_empty(c, r);
	}
	kind = viv_upload_sniff(up->head, up->head_len);
	if (sent_as_form(c) && mangled_by_curl_d(up, kind)) {
		api_upload_cleanup(up);
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "The upload came as a form and looks changed on the way: "
		                       "send the file with --data-binary @FILE (curl -d strips "
		                       "newlines and changes the bytes).");
	}
	if (kind == VIV_UPLOAD_UNKNOWN) {
		api_upload_cleanup(up);
		return api_reply_error(c, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                       "The upload is neither a tarball (.tar, .tar.gz, ...), a "
		                       ".wasm module nor a WebAssembly text file (starting with "
		                       "\"(module\"); send one of those as the raw request body.");
	}
	/* The deployment must not point at a file that a crash could leave
	 * short, so the bytes reach the disk before the store sees them. */
	if (fsync(up->fd) != 0 || close(up->fd) != 0) {
		viv_log(VIV_ERROR, "%s %s: flushing the upload %s failed: %s", r->method, r->path,
		        up->tmp_path, strerror(errno));
		up->fd = -1;
		api_upload_cleanup(up);
		return api_reply_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                       "The server could not write the upload to its data "
		                       "directory (is the disk full?); the operator's log of vivd "
		                       "has the details.");
	}
	up->fd = -1;
	viv_sha256_end(&up->hash, hex);
	up->hashing = false;

	err = store_deployment_create_by(s->st, r->app, r->token->name, up->tmp_path, hex,
	                                 (int64_t)up->size, &id);
	if (err) {
		api_upload_cleanup(up);
		return api_reply_store_error(c, r, err, "recording the deployment");
	}
	/* The store moved the file to the deployment's upload path, and told
	 * the builders. */
	free(up->tmp_path);
	up->tmp_path = NULL;
	viv_log(VIV_INFO,
	        "deployment %lld of %s queued by token \"%s\": %llu bytes (%s), "
	        "sha256 %s",
	        (long long)id, r->app, r->token->name, (unsigned long long)up->size,
	        viv_upload_kind_name(kind), hex);

	api_app_url(s, r->app, url, sizeof(url));
	snprintf(label, sizeof(label), "d%lld-%s", (long long)id, r->app);
	api_app_url(s, label, preview, sizeof(preview));
	snprintf(status_url, sizeof(status_url), "/v1/deployments/%lld", (long long)id);
	snprintf(events_url, sizeof(events_url), "/v1/deployments/%lld/events", (long long)id);
	resp = api_json_response(json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)id,
	                                   "app", r->app, "status", "queued", "status_url",
	                                   status_url, "events_url", events_url, "url", url,
	                                   "preview_url", preview));
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, status_url) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_ACCEPTED, resp);
}
