/* A deployment's static files: a bounded walk of the assets folder that
 * refuses anything but regular files and folders, and the content hash that
 * names the stored tree. */
#include "pipeline_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASSETS_DEPTH_MAX 32
#define ASSETS_HASH_TAG "vivarium-assets 1"

struct asset_entry {
	char *rel; /* relative path */
	bool is_dir;
	uint64_t size;
};

struct asset_list {
	struct asset_entry *v;
	size_t n, alloc;
	size_t max_entries;
	uint64_t bytes, max_bytes;
	const char *label; /* the folder as the user named it, for messages */
	char *err;
	size_t errlen;
};

static void list_free(struct asset_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].rel);
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

/* Takes ownership of rel whatever the result. */
static enum viv_err list_push(struct asset_list *l, char *rel, bool is_dir, uint64_t size)
{
	if (!rel)
		return VIV_ERR_NOMEM;
	if (l->n >= l->max_entries) {
		viv_errf(l->err, l->errlen,
		         "the %s folder holds more than %zu files and folders, the most this "
		         "server stores",
		         l->label, l->max_entries);
		free(rel);
		return VIV_ERR_TOO_BIG;
	}
	if (size > l->max_bytes - l->bytes) {
		viv_errf(l->err, l->errlen,
		         "the %s folder holds more than %llu MiB, the most this server stores",
		         l->label, (unsigned long long)(l->max_bytes / (1024 * 1024)));
		free(rel);
		return VIV_ERR_TOO_BIG;
	}
	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? l->alloc * 2 : 32;
		struct asset_entry *v = realloc(l->v, alloc * sizeof(*v));
		if (!v) {
			free(rel);
			return VIV_ERR_NOMEM;
		}
		l->v = v;
		l->alloc = alloc;
	}
	l->v[l->n].rel = rel;
	l->v[l->n].is_dir = is_dir;
	l->v[l->n].size = size;
	l->n++;
	l->bytes += size;
	return VIV_OK;
}

/* A tree nested deeper than ASSETS_DEPTH_MAX is refused, rather than
 * stored with its deepest folders silently left out. */
static enum viv_err assets_too_deep(void *ctx, const char *rel)
{
	struct asset_list *l = ctx;

	(void)rel;
	viv_errf(l->err, l->errlen, "the %s folder is nested more than %d folders deep", l->label,
	         ASSETS_DEPTH_MAX);
	return VIV_ERR_INVALID;
}

static enum viv_err assets_visit(void *ctx, const char *rel, const char *name,
                                 const struct stat *st)
{
	struct asset_list *l = ctx;

	(void)name;
	if (S_ISDIR(st->st_mode))
		return list_push(l, strdup(rel), true, 0);
	if (S_ISREG(st->st_mode))
		return list_push(l, strdup(rel), false, (uint64_t)st->st_size);
	viv_errf(l->err, l->errlen,
	         "%s/%.200s is %s; static assets must be regular files and folders", l->label, rel,
	         S_ISLNK(st->st_mode) ? "a symbolic link" : "a special file");
	return VIV_ERR_INVALID;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct asset_entry *)a)->rel, ((const struct asset_entry *)b)->rel);
}

/* Adds the file's bytes to the hash; its size must still be what the walk
 * saw, so that a file that changes under us is an error, not a wrong hash. */
static enum viv_err hash_file(struct viv_sha256 *h, int rootfd, const struct asset_entry *e)
{
	char chunk[65536];
	uint64_t left = e->size;
	enum viv_err err = VIV_OK;
	int fd;

	fd = openat(rootfd, e->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return VIV_ERR_IO;
	while (left > 0) {
		ssize_t r = read(fd, chunk, left < sizeof(chunk) ? (size_t)left : sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = VIV_ERR_IO;
			break;
		}
		viv_sha256_update(h, chunk, (size_t)r);
		left -= (uint64_t)r;
	}
	close(fd);
	return err;
}

enum viv_err pipe_assets_hash(const char *dir, const char *label, size_t max_entries,
                              uint64_t max_bytes, char hex[VIV_SHA256_HEX_LEN + 1],
                              struct pipe_assets_stats *stats_out, char *err, size_t errlen)
{
	struct asset_list l;
	/* Every entry is hashed, so one that cannot be examined is an error. */
	struct pipe_walk w = {.visit = assets_visit,
	                      .too_deep = assets_too_deep,
	                      .ctx = &l,
	                      .depth_max = ASSETS_DEPTH_MAX,
	                      .unreadable_is_error = true};
	struct viv_sha256 h;
	enum viv_err e;
	int rootfd, walkfd;

	hex[0] = '\0';
	memset(stats_out, 0, sizeof(*stats_out));
	memset(&l, 0, sizeof(l));
	l.max_entries = max_entries;
	l.max_bytes = max_bytes;
	l.label = label;
	l.err = err;
	l.errlen = errlen;
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		viv_errf(err, errlen, "%s is not a folder in the upload", label);
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? VIV_ERR_INVALID
		                                                             : VIV_ERR_IO;
	}
	walkfd = dup(rootfd);
	if (walkfd < 0) {
		close(rootfd);
		return VIV_ERR_IO;
	}
	e = pipe_walk(&w, walkfd);
	if (e)
		goto out;
	/* One order for every machine: sorted relative paths, bytewise. */
	if (l.n > 0)
		qsort(l.v, l.n, sizeof(l.v[0]), cmp_entry);
	e = viv_sha256_begin(&h);
	if (e)
		goto out;
	/* Each entry is its kind, its path, its size and its bytes, with NUL
	 * separators, so that no two trees hash the same text. */
	viv_sha256_update(&h, ASSETS_HASH_TAG, sizeof(ASSETS_HASH_TAG));
	for (size_t i = 0; !e && i < l.n; i++) {
		char size[32];
		int n = snprintf(size, sizeof(size), "%llu", (unsigned long long)l.v[i].size);

		viv_sha256_update(&h, l.v[i].is_dir ? "d" : "f", 2);
		viv_sha256_update(&h, l.v[i].rel, strlen(l.v[i].rel) + 1);
		if (l.v[i].is_dir)
			continue;
		viv_sha256_update(&h, size, (size_t)n + 1);
		e = hash_file(&h, rootfd, &l.v[i]);
		if (e)
			viv_errf(err, errlen, "could not read %s/%.200s", label, l.v[i].rel);
	}
	viv_sha256_end(&h, hex);
	if (e) {
		hex[0] = '\0';
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].is_dir)
			stats_out->dirs++;
		else
			stats_out->files++;
	}
	stats_out->bytes = l.bytes;
out:
	if (e)
		hex[0] = '\0';
	list_free(&l);
	close(rootfd);
	return e;
}

enum viv_err pipe_assets_fetched(const struct pipe_config *cfg, const char *tar,
                                 const char *scratch, const char *hash, char **root_out, char *why,
                                 size_t whylen)
{
	struct pipe_assets_stats stats;
	char got[VIV_SHA256_HEX_LEN + 1];
	char *root = NULL;
	enum viv_err e;

	*root_out = NULL;
	e = pipe_unpack(tar, scratch, cfg, NULL, &root, why, whylen);
	if (e)
		return e;
	e = pipe_assets_hash(root, "assets", cfg->assets_max_entries, cfg->assets_max_bytes, got,
	                     &stats, why, whylen);
	if (!e && strcmp(got, hash) != 0) {
		viv_errf(why, whylen, "the static files that came hash to %s, not %s; not used",
		         got, hash);
		e = VIV_ERR_INVALID;
	}
	if (e) {
		free(root);
		return e;
	}
	*root_out = root;
	return VIV_OK;
}
