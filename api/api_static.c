/* The web page's static files: plain file names inside cfg->web_dir only,
 * regular files only, with a content type chosen by extension. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

struct api_mime {
	const char *ext;
	const char *type;
};

static const struct api_mime api_mimes[] = {
	{"html", "text/html; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"json", "application/json"},
	{"map", "application/json"},
	{"txt", "text/plain; charset=utf-8"},
	{"svg", "image/svg+xml"},
	{"png", "image/png"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"ico", "image/x-icon"},
	{"woff", "font/woff"},
	{"woff2", "font/woff2"},
	{"wasm", "application/wasm"},
};

static const char *mime_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	if (dot) {
		for (i = 0; i < sizeof(api_mimes) / sizeof(api_mimes[0]); i++) {
			if (strcasecmp(dot + 1, api_mimes[i].ext) == 0)
				return api_mimes[i].type;
		}
	}
	return "application/octet-stream";
}

/* A plain file name: letters, digits, '.', '_' and '-', not starting with
 * '.', so no directories, no "..", no hidden files. */
static bool name_ok(const char *name)
{
	size_t i;

	if (!name[0] || name[0] == '.')
		return false;
	for (i = 0; name[i]; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
		if (i >= 128)
			return false;
	}
	return true;
}

enum MHD_Result api_static_serve(struct api_server *s, struct MHD_Connection *c,
				 struct api_req *r, const char *name, bool *served)
{
	struct MHD_Response *resp = NULL;
	struct stat sb;
	char *path = NULL;
	int fd = -1;

	*served = false;
	if (!s->cfg->web_dir || !name_ok(name))
		return MHD_YES;
	path = viv_path_join(s->cfg->web_dir, name);
	if (!path)
		return MHD_NO;
	/* O_NOFOLLOW: a symlink planted in web_dir must not lead out of it.
	 * O_NONBLOCK: a FIFO must not hang the server's only thread. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT && errno != ELOOP)
			viv_log(VIV_WARN, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return MHD_YES;
	}
	free(path);
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > API_STATIC_MAX) {
		close(fd);
		return MHD_YES;
	}
	*served = true;
	/* On success the response owns fd and closes it. */
	resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime_of(name)) !=
		    MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Frame-Options", "DENY") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_OK, resp);
}
