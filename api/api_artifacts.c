/* Artifacts by hash, for runner hosts that do not share this host's data
 * folder: GET /v1/artifacts/{hash} gives the artifact's .so with what the
 * host checks before it loads it (the sha256 of the bytes and the platform
 * they were built for). An artifact never changes once made. */
#include <errno.h>
#include <fcntl.h>
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
