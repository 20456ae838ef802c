/* The web page's static files: plain file names inside cfg->web_dir, and
 * vendor/PACKAGE/PATH from the npm packages the page uses (installed by
 * scripts/setup.sh into the tool folder); regular files only, reached
 * without links, with a content type chosen by extension. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

/* The npm packages of the tool folder that the page loads, by name; nothing
 * else under node_modules is served. */
static const char *const api_vendor_packages[] = {"codemirror"};

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

/* For "vendor/PACKAGE/PATH": true when PACKAGE is one the page uses and
 * every part of PATH is a plain name (so no "..", no hidden files); *rel is
 * then "PACKAGE/PATH", relative to the tool folder's node_modules. */
static bool vendor_ok(const char *name, const char **rel)
{
	char part[129];
	const char *p, *slash;
	size_t i, n;
	bool known = false;

	if (strncmp(name, "vendor/", 7) != 0)
		return false;
	*rel = name + 7;
	for (p = *rel; *p; p = slash + 1) {
		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (n >= sizeof(part))
			return false;
		memcpy(part, p, n);
		part[n] = '\0';
		if (!name_ok(part))
			return false;
		if (p == *rel) {
			for (i = 0;
			     i < sizeof(api_vendor_packages) / sizeof(api_vendor_packages[0]); i++)
				known = known || strcmp(part, api_vendor_packages[i]) == 0;
		}
		if (!slash)
			break;
	}
	return known && strchr(*rel, '/') != NULL;
}

enum MHD_Result api_static_serve(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                                 const char *name, bool *served)
{
	struct MHD_Response *resp = NULL;
	struct stat sb;
	char *root = NULL;
	const char *rel = name;
	int dirfd = -1, fd = -1;

	*served = false;
	if (name_ok(name) && s->cfg->web_dir)
		root = strdup(s->cfg->web_dir);
	else if (vendor_ok(name, &rel) && s->cfg->tool_dir)
		root = viv_path_join(s->cfg->tool_dir, "node_modules");
	else
		return MHD_YES;
	if (!root)
		return MHD_NO;
	/* Beneath the root without following links: a symlink planted there
	 * must not lead out of it. O_NONBLOCK: a FIFO must not hang the
	 * server's only thread. */
	dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd >= 0)
		fd = viv_open_beneath(dirfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		if (errno != ENOENT && errno != ELOOP && errno != EXDEV)
			viv_log(VIV_WARN, "cannot open %s/%s: %s", root, rel, strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		free(root);
		return MHD_YES;
	}
	close(dirfd);
	free(root);
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
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime_of(name)) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Frame-Options", "DENY") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_OK, resp);
}
