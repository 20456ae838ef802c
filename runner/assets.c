/* The static assets of a deployment: an index of the files under its assets
 * directory, built once per worker, so that finding out whether a request
 * path is an asset costs a hash lookup and no system call; and their media
 * types, by extension, from h2o's mimemap. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

#include <h2o.h>

#include "runner_int.h"

/* Files one index holds, and directory depth it walks. */
#define ASSETS_MAX_FILES 20000
#define ASSETS_MAX_DEPTH 32

struct asset {
	UT_hash_handle hh;
	char *rel; /* "img/cat.jpg" */
	off_t size;
};

struct run_assets {
	char *dir;
	struct asset *files;
	size_t n;
	h2o_mimemap_t *types; /* h2o's defaults */
};

static enum viv_err add_file(struct run_assets *a, const char *rel, off_t size)
{
	struct asset *f;

	if (a->n >= ASSETS_MAX_FILES)
		return VIV_ERR_TOO_BIG;
	f = calloc(1, sizeof(*f));
	if (!f)
		return VIV_ERR_NOMEM;
	f->rel = strdup(rel);
	if (!f->rel) {
		free(f);
		return VIV_ERR_NOMEM;
	}
	f->size = size;
	HASH_ADD_KEYPTR(hh, a->files, f->rel, strlen(f->rel), f);
	a->n++;
	return VIV_OK;
}

/* Walks dirfd (which it closes), recording regular files under prefix. */
static enum viv_err walk(struct run_assets *a, int dirfd, const char *prefix, int depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *e;
	enum viv_err err = VIV_OK;

	if (!d) {
		close(dirfd);
		return VIV_ERR_IO;
	}
	while (!err && (e = readdir(d))) {
		char rel[4096];
		struct stat st;

		if (e->d_name[0] == '.' &&
		    (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		if (snprintf(rel, sizeof(rel), "%s%s", prefix, e->d_name) >= (int)sizeof(rel))
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISREG(st.st_mode)) {
			err = add_file(a, rel, st.st_size);
		} else if (S_ISDIR(st.st_mode) && depth < ASSETS_MAX_DEPTH) {
			int sub = openat(dirfd, e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			size_t n = strlen(rel);

			if (sub < 0 || n + 2 > sizeof(rel)) {
				if (sub >= 0)
					close(sub);
				continue;
			}
			rel[n] = '/';
			rel[n + 1] = '\0';
			err = walk(a, sub, rel, depth + 1);
		}
	}
	closedir(d);
	return err;
}

enum viv_err run_assets_open(const char *dir, struct run_assets **out)
{
	struct run_assets *a;
	enum viv_err err;
	int fd;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return VIV_ERR_NOMEM;
	a->dir = strdup(dir);
	a->types = h2o_mimemap_create();
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!a->dir || !a->types || fd < 0) {
		if (fd >= 0)
			close(fd);
		run_assets_close(a);
		return a->dir ? VIV_ERR_NOT_FOUND : VIV_ERR_NOMEM;
	}
	err = walk(a, fd, "", 0);
	if (err) {
		run_assets_close(a);
		return err;
	}
	*out = a;
	return VIV_OK;
}

void run_assets_close(struct run_assets *a)
{
	struct asset *f, *tmp;

	if (!a)
		return;
	HASH_ITER(hh, a->files, f, tmp)
	{
		HASH_DEL(a->files, f);
		free(f->rel);
		free(f);
	}
	if (a->types)
		h2o_mem_release_shared(a->types);
	free(a->dir);
	free(a);
}

/* Decodes %XX escapes and turns the path part of target into a relative
 * path with no empty, "." or ".." segments; a trailing '/' names the
 * directory's index.html. false for paths that try to climb out. */
static bool normalize(const char *target, size_t len, char *out, size_t outlen)
{
	const char *q = memchr(target, '?', len);
	size_t end = q ? (size_t)(q - target) : len, i, o = 0, seg;
	bool dir = end > 0 && target[end - 1] == '/';

	for (i = 0; i < end; i++) {
		char c = target[i];

		if (c == '%' && i + 2 < end && isxdigit((unsigned char)target[i + 1]) &&
		    isxdigit((unsigned char)target[i + 2])) {
			char hex[3] = {target[i + 1], target[i + 2], 0};
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		}
		if (c == '\0' || o + 1 >= outlen)
			return false;
		if (c == '/') {
			if (o == 0 || out[o - 1] == '/')
				continue;
		}
		out[o++] = c;
		out[o] = '\0';
		/* Look at the segment that just ended. */
		if (c == '/' || i + 1 == end) {
			size_t stop = c == '/' ? o - 1 : o;
			seg = stop;
			while (seg > 0 && out[seg - 1] != '/')
				seg--;
			if (stop - seg == 2 && out[seg] == '.' && out[seg + 1] == '.')
				return false;
			if (stop - seg == 1 && out[seg] == '.')
				o = seg;
		}
	}
	while (o > 0 && out[o - 1] == '/')
		o--;
	out[o] = '\0';
	if (dir || o == 0) {
		const char *idx = o ? "/index.html" : "index.html";
		if (o + strlen(idx) + 1 > outlen)
			return false;
		strcpy(out + o, idx);
	}
	return true;
}

/* The media type of a file called rel: h2o's for its extension, or
 * application/octet-stream when it has none (or h2o knows it not). */
static h2o_iovec_t type_of(const struct run_assets *a, const char *rel)
{
	const char *dot = strrchr(rel, '.'), *slash = strrchr(rel, '/');

	if (!dot || (slash && dot < slash))
		return h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
	return h2o_mimemap_get_type_by_extension(a->types, h2o_iovec_init(dot + 1, strlen(dot + 1)))
	        ->data.mimetype;
}

bool run_assets_find(const struct run_assets *a, const char *target, size_t len,
                     struct run_asset *out)
{
	char rel[2048];
	struct asset *f = NULL;
	h2o_iovec_t type;

	if (!a || !normalize(target, len, rel, sizeof(rel)))
		return false;
	HASH_FIND_STR(a->files, rel, f);
	if (!f)
		return false;
	if (snprintf(out->path, sizeof(out->path), "%s/%s", a->dir, f->rel) >=
	    (int)sizeof(out->path))
		return false;
	out->size = f->size;
	type = type_of(a, f->rel);
	out->type = type.base;
	out->type_len = type.len;
	return true;
}

size_t run_assets_count(const struct run_assets *a)
{
	return a ? a->n : 0;
}
