/* Artifacts and static files by hash, for runner hosts that do not share
 * this host's data folder: GET /v1/artifacts/{hash} gives the artifact's .so
 * with what the host checks before it loads it (the sha256 of the bytes and
 * the platform they were built for); GET /v1/assets/{hash} a deployment's
 * static files as a tar, which the host checks against the hash that names
 * them. Neither ever changes once made. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

/* The sha256 of what fd holds, from its start, back at its start after. */
static enum viv_err hash_fd(int fd, char hex[VIV_SHA256_HEX_LEN + 1])
{
	struct viv_sha256 h;
	char chunk[65536];
	enum viv_err err = viv_sha256_begin(&h);
	ssize_t n;

	if (err)
		return err;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		viv_sha256_update(&h, chunk, (size_t)n);
	viv_sha256_end(&h, hex);
	if (n < 0 || lseek(fd, 0, SEEK_SET) != 0)
		return VIV_ERR_IO;
	return VIV_OK;
}

static bool etag_matches(struct MHD_Connection *c, const char *etag)
{
	const char *inm =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

	return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag));
}

enum MHD_Result api_get_artifact(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_artifact_info info;
	struct MHD_Response *resp;
	char etag[VIV_SHA256_HEX_LEN + 3], *path;
	struct stat sb;
	enum viv_err err;
	int fd;

	if (r->param_bad || !viv_hex64_valid(r->param))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "An artifact is named by its hash, 64 lowercase hex digits, "
		                       "as a deployment's \"artifact\" gives it.");
	err = store_artifact_info(s->st, r->param, &info);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "There is no artifact %s; a deployment's \"artifact\" names "
		                       "the one it runs.",
		                       r->param);
	if (err)
		return api_reply_store_error(c, r, err, "reading the artifact's record");
	snprintf(etag, sizeof(etag), "\"%.64s\"", r->param);
	path = store_artifact_path(s->st, r->param, "so");
	fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	free(path);
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		if (errno == ENOMEM)
			return MHD_NO;
		/* Its deployments were removed (and the file with them), or the
		 * file went missing from this host's artifact folder. */
		return api_reply_error(
		        c, r, MHD_HTTP_GONE,
		        "Artifact %s is recorded but its file is not on this host any "
		        "more; deploy its app again to rebuild it.",
		        r->param);
	}
	/* Built before the store kept it: runner hosts can still check that
	 * the bytes arrived whole. */
	if (!info.so_sha256[0] && hash_fd(fd, info.so_sha256) != VIV_OK) {
		close(fd);
		return api_reply_store_error(c, r, VIV_ERR_IO, "reading the artifact");
	}
	if (etag_matches(c, etag)) {
		close(fd);
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (!resp || MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES) {
			if (resp)
				MHD_destroy_response(resp);
			return MHD_NO;
		}
		return api_reply(c, r, MHD_HTTP_NOT_MODIFIED, resp);
	}
	/* On success the response owns fd and closes it. */
	resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                            "application/octet-stream") != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	                            "private, max-age=31536000, immutable") != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(resp, API_ARTIFACT_SHA256_HEADER, info.so_sha256) != MHD_YES ||
	    (info.platform[0] && MHD_add_response_header(resp, API_ARTIFACT_PLATFORM_HEADER,
	                                                 info.platform) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_OK, resp);
}

/* ---- Static files ---------------------------------------------------------------- */

struct tar_out {
	struct viv_buf buf;
};

static la_ssize_t tar_write(struct archive *a, void *ctx, const void *data, size_t n)
{
	struct tar_out *t = ctx;

	(void)a;
	return viv_buf_append(&t->buf, data, n) == VIV_OK ? (la_ssize_t)n : -1;
}

/* Adds the tree under dirfd (whose path in the archive is rel) to a: its
 * folders and regular files, nothing else (the stored tree holds nothing
 * else; a stray entry is left out, not followed). */
static enum viv_err tar_tree(struct archive *a, int dirfd, const char *rel, unsigned depth)
{
	struct archive_entry *e = NULL;
	struct dirent *de;
	enum viv_err err = VIV_OK;
	DIR *d;

	if (depth > API_ASSETS_DEPTH_MAX)
		return VIV_ERR_TOO_BIG;
	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return VIV_ERR_IO;
	}
	while (!err && (de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat sb;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", rel, de->d_name) >= (int)sizeof(path)) {
			err = VIV_ERR_TOO_BIG;
			break;
		}
		fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || fstat(fd, &sb) != 0 ||
		    (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		e = archive_entry_new();
		if (!e) {
			close(fd);
			err = VIV_ERR_NOMEM;
			break;
		}
		archive_entry_set_pathname(e, path);
		archive_entry_set_filetype(e, S_ISDIR(sb.st_mode) ? AE_IFDIR : AE_IFREG);
		archive_entry_set_perm(e, S_ISDIR(sb.st_mode) ? 0755 : 0644);
		archive_entry_set_size(e, S_ISDIR(sb.st_mode) ? 0 : sb.st_size);
		if (archive_write_header(a, e) != ARCHIVE_OK)
			err = VIV_ERR_IO;
		archive_entry_free(e);
		if (!err && S_ISDIR(sb.st_mode)) {
			err = tar_tree(a, fd, path, depth + 1);
			continue;
		}
		if (!err) {
			char chunk[65536];
			ssize_t n;

			while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
				if (archive_write_data(a, chunk, (size_t)n) != n) {
					err = VIV_ERR_IO;
					break;
				}
			}
			if (n < 0)
				err = VIV_ERR_IO;
		}
		close(fd);
	}
	closedir(d);
	return err;
}

enum MHD_Result api_get_assets(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct MHD_Response *resp;
	struct tar_out t;
	struct archive *a;
	char etag[VIV_SHA256_HEX_LEN + 3], *path;
	enum viv_err err = VIV_ERR_NOMEM;
	int fd;

	if (r->param_bad || !viv_hex64_valid(r->param))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "Static files are named by their hash, 64 lowercase hex "
		                       "digits.");
	path = store_assets_path(s->st, r->param);
	fd = path ? open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	free(path);
	if (fd < 0)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "There are no static files %s on this host; a deployment's "
		                       "\"assets\" names the ones it serves.",
		                       r->param);
	snprintf(etag, sizeof(etag), "\"%.64s\"", r->param);
	viv_buf_init(&t.buf, API_ASSETS_TAR_MAX);
	a = archive_write_new();
	if (a && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
	    archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
	    archive_write_open(a, &t, NULL, tar_write, NULL) == ARCHIVE_OK) {
		/* One folder at the top, whatever the tree holds. */
		err = tar_tree(a, fd, "assets", 0);
		fd = -1;
		if (archive_write_close(a) != ARCHIVE_OK && !err)
			err = VIV_ERR_IO;
	}
	if (fd >= 0)
		close(fd);
	if (a)
		archive_write_free(a);
	if (err) {
		viv_buf_free(&t.buf);
		return api_reply_store_error(c, r, err, "packing the static files");
	}
	resp = MHD_create_response_from_buffer(t.buf.len, t.buf.data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		viv_buf_free(&t.buf);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-tar") !=
	            MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	                            "private, max-age=31536000, immutable") != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_OK, resp);
}
