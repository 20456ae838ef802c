/* Finding a project's files: a bounded recursive walk and globbing, both
 * giving sorted relative paths so that builds are reproducible; and copying
 * a tree a toolchain prepared. */
#include "pipeline_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_DEPTH_MAX 64
#define GLOB_FILES_MAX 4096

struct strv {
	char **v;
	size_t n, alloc, max;
};

static enum viv_err strv_push(struct strv *s, char *str)
{
	if (!str)
		return VIV_ERR_NOMEM;
	if (s->n >= s->max) {
		free(str);
		return VIV_ERR_TOO_BIG;
	}
	if (s->n + 1 >= s->alloc) {
		size_t alloc = s->alloc ? s->alloc * 2 : 16;
		char **v = realloc(s->v, alloc * sizeof(*v));
		if (!v) {
			free(str);
			return VIV_ERR_NOMEM;
		}
		s->v = v;
		s->alloc = alloc;
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return VIV_OK;
}

void pipe_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Length of the path component at p. */
static size_t component(const char *p)
{
	return strcspn(p, "/");
}

static const char *skip_slashes(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

enum viv_err pipe_relpath(const char *from, const char *to, char **out)
{
	struct viv_buf b;
	const char *f = skip_slashes(from), *t = skip_slashes(to);
	enum viv_err err = VIV_OK;

	*out = NULL;
	if (from[0] != '/' || to[0] != '/')
		return VIV_ERR_INVALID;
	/* Drop the components both share. */
	while (*f && *t && component(f) == component(t) && strncmp(f, t, component(f)) == 0) {
		f = skip_slashes(f + component(f));
		t = skip_slashes(t + component(t));
	}
	viv_buf_init(&b, 0);
	for (; *f && !err; f = skip_slashes(f + component(f)))
		err = viv_buf_append(&b, "../", 3);
	if (!err && *t)
		err = viv_buf_append(&b, t, strlen(t));
	if (!err && b.len == 0)
		err = viv_buf_append(&b, ".", 1);
	if (!err && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	if (err) {
		viv_buf_free(&b);
		return err;
	}
	*out = viv_buf_steal(&b);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

bool pipe_exists(const char *root, const char *rel, bool want_dir)
{
	struct stat st;
	char *path = viv_path_join(root, rel);
	bool ok;

	if (!path)
		return false;
	ok = lstat(path, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
	free(path);
	return ok;
}

bool pipe_relpath_safe(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel || rel[0] == '/')
		return false;
	for (const char *c = rel; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
			return false;
	}
	while (*p) {
		size_t len = strcspn(p, "/");
		bool last = p[len] == '\0' || (p[len] == '/' && p[len + 1] == '\0');
		if (len == 0 && !last)
			return false;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += len;
		if (*p == '/')
			p++;
	}
	return true;
}

static bool has_suffix(const char *name, const char *const *suffixes)
{
	size_t n = strlen(name);

	if (!suffixes)
		return true;
	for (size_t i = 0; suffixes[i]; i++) {
		size_t k = strlen(suffixes[i]);
		if (n > k && strcmp(name + n - k, suffixes[i]) == 0)
			return true;
	}
	return false;
}

/* Walks the folder open at dirfd (closed here), whose path relative to the
 * root is rel ("" at the root) and which is depth folders below it. */
static enum viv_err walk_dir(const struct pipe_walk *w, int dirfd, const char *rel, int depth)
{
	DIR *d;
	struct dirent *de;
	enum viv_err err = VIV_OK;

	if (depth > w->depth_max) {
		close(dirfd);
		return w->too_deep ? w->too_deep(w->ctx, rel) : VIV_OK;
	}
	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return VIV_ERR_IO;
	}
	for (de = readdir(d); !err && de; de = readdir(d)) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (w->unreadable_is_error)
				err = VIV_ERR_IO;
			continue;
		}
		if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0) {
			err = VIV_ERR_NOMEM;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				err = VIV_ERR_IO;
			} else {
				err = w->visit(w->ctx, path, de->d_name, &st);
				if (!err)
					err = walk_dir(w, sub, path, depth + 1);
				else
					close(sub);
			}
		} else {
			err = w->visit(w->ctx, path, de->d_name, &st);
		}
		free(path);
	}
	closedir(d);
	return err;
}

enum viv_err pipe_walk(const struct pipe_walk *w, int dirfd)
{
	return walk_dir(w, dirfd, "", 0);
}

/* What pipe_find_files() keeps of a walk. */
struct find {
	const char *const *suffixes;
	struct strv files;
};

static enum viv_err find_visit(void *ctx, const char *rel, const char *name, const struct stat *st)
{
	struct find *f = ctx;

	if (!S_ISREG(st->st_mode) || !has_suffix(name, f->suffixes))
		return VIV_OK;
	return strv_push(&f->files, strdup(rel));
}

/* Hands s to the caller as a NULL-terminated array (an empty one rather
 * than NULL) when err is VIV_OK, or frees it; returns err. */
static enum viv_err strv_finish(struct strv *s, enum viv_err err, char ***out, size_t *n_out)
{
	if (!err && !s->v) {
		s->v = calloc(1, sizeof(char *));
		if (!s->v)
			err = VIV_ERR_NOMEM;
	}
	if (err) {
		pipe_strv_free(s->v, s->n);
		return err;
	}
	*out = s->v;
	*n_out = s->n;
	return VIV_OK;
}

enum viv_err pipe_find_files(const char *root, const char *const *suffixes, size_t max, char ***out,
                             size_t *n_out)
{
	struct find f = {suffixes, {NULL, 0, 0, max}};
	/* Deeper folders are not searched: no build looks that far. Entries
	 * that cannot be examined are passed over. */
	struct pipe_walk w = {.visit = find_visit, .ctx = &f, .depth_max = WALK_DEPTH_MAX};
	enum viv_err err;
	int fd;

	*out = NULL;
	*n_out = 0;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
	err = pipe_walk(&w, fd);
	if (!err && f.files.n > 0)
		qsort(f.files.v, f.files.n, sizeof(char *), cmp_str);
	return strv_finish(&f.files, err, out, n_out);
}

/* root with glob's special characters escaped, so that only the pattern
 * part is a pattern. */
static char *glob_escape(const char *root)
{
	size_t n = strlen(root);
	char *out = malloc(2 * n + 1);
	size_t j = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", root[i]))
			out[j++] = '\\';
		out[j++] = root[i];
	}
	out[j] = '\0';
	return out;
}

static bool strv_has(const struct strv *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i], str) == 0)
			return true;
	}
	return false;
}

enum viv_err pipe_glob(const char *root, char *const *patterns, size_t n_patterns, char ***out,
                       size_t *n_out, char *errbuf, size_t errlen)
{
	struct strv s = {NULL, 0, 0, GLOB_FILES_MAX};
	char *eroot = NULL;
	enum viv_err err = VIV_OK;
	size_t rootlen = strlen(root);

	*out = NULL;
	*n_out = 0;
	eroot = glob_escape(root);
	if (!eroot)
		return VIV_ERR_NOMEM;
	for (size_t i = 0; !err && i < n_patterns; i++) {
		glob_t g;
		char *full;
		size_t matched = 0;
		int r;

		if (!pipe_relpath_safe(patterns[i])) {
			viv_errf(errbuf, errlen,
			         "the source pattern '%.100s' must be a relative path inside the "
			         "project, without '..'",
			         patterns[i]);
			err = VIV_ERR_INVALID;
			break;
		}
		full = viv_path_join(eroot, patterns[i]);
		if (!full) {
			err = VIV_ERR_NOMEM;
			break;
		}
		memset(&g, 0, sizeof(g));
		/* Folders that cannot be read (or do not exist) match nothing. */
		r = glob(full, 0, NULL, &g);
		free(full);
		if (r != 0 && r != GLOB_NOMATCH && r != GLOB_ABORTED) {
			globfree(&g);
			err = r == GLOB_NOSPACE ? VIV_ERR_NOMEM : VIV_ERR_IO;
			break;
		}
		if (r == 0)
			qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_str);
		for (size_t k = 0; r == 0 && !err && k < g.gl_pathc; k++) {
			const char *p = g.gl_pathv[k];
			struct stat st;

			if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			if (strncmp(p, root, rootlen) != 0 || p[rootlen] != '/')
				continue;
			matched++;
			if (strv_has(&s, p + rootlen + 1))
				continue;
			err = strv_push(&s, strdup(p + rootlen + 1));
		}
		globfree(&g);
		if (!err && matched == 0) {
			viv_errf(errbuf, errlen,
			         "vivarium.json: build.sources pattern '%.100s' matches no file",
			         patterns[i]);
			err = VIV_ERR_INVALID;
		} else if (err == VIV_ERR_TOO_BIG) {
			viv_errf(errbuf, errlen, "build.sources matches more than %d files",
			         GLOB_FILES_MAX);
		}
	}
	free(eroot);
	return strv_finish(&s, err, out, n_out);
}

/* ---- Copying a tree ------------------------------------------------------------------ */

struct copy {
	int dest_fd; /* the destination folder */
	size_t entries, max_entries;
	uint64_t bytes, max_bytes;
	int src_fd; /* the source folder */
};

static enum viv_err copy_file(struct copy *c, const char *rel)
{
	uint64_t copied = 0;
	enum viv_err err;
	int in, out;

	in = openat(c->src_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return VIV_ERR_IO;
	out = openat(c->dest_fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return VIV_ERR_IO;
	}
	err = viv_copy_fd(in, out, c->max_bytes - c->bytes, &copied);
	c->bytes += copied;
	close(in);
	if (close(out) != 0 && !err)
		err = VIV_ERR_IO;
	return err;
}

static enum viv_err copy_too_deep(void *ctx, const char *rel)
{
	(void)ctx;
	(void)rel;
	return VIV_ERR_TOO_BIG;
}

static enum viv_err copy_visit(void *ctx, const char *rel, const char *name, const struct stat *st)
{
	struct copy *c = ctx;

	(void)name;
	if (++c->entries > c->max_entries)
		return VIV_ERR_TOO_BIG;
	if (S_ISDIR(st->st_mode))
		return mkdirat(c->dest_fd, rel, 0755) == 0 ? VIV_OK : VIV_ERR_IO;
	if (S_ISREG(st->st_mode))
		return copy_file(c, rel);
	return VIV_ERR_INVALID;
}

enum viv_err pipe_copy_tree(const char *src, const char *dest, size_t max_entries,
                            uint64_t max_bytes)
{
	struct copy c = {-1, 0, max_entries, 0, max_bytes, -1};
	/* Deeper than any tree a toolchain prepares: refused, not skipped. */
	struct pipe_walk w = {.visit = copy_visit,
	                      .too_deep = copy_too_deep,
	                      .ctx = &c,
	                      .depth_max = 32,
	                      .unreadable_is_error = true};
	int walk_fd;
	enum viv_err err;

	if (mkdir(dest, 0755) != 0)
		return VIV_ERR_IO;
	c.dest_fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	c.src_fd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	walk_fd = c.src_fd >= 0 ? fcntl(c.src_fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (c.dest_fd < 0 || c.src_fd < 0 || walk_fd < 0) {
		err = c.src_fd < 0 && errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
		if (walk_fd >= 0)
			close(walk_fd);
		goto out;
	}
	err = pipe_walk(&w, walk_fd);
out:
	if (c.dest_fd >= 0)
		close(c.dest_fd);
	if (c.src_fd >= 0)
		close(c.src_fd);
	return err;
}

/* ---- Handing a tree to the build user ------------------------------------------------ */

struct share {
	int top;
	gid_t gid;
};

static enum viv_err share_visit(void *ctx, const char *rel, const char *name, const struct stat *st)
{
	struct share *sh = ctx;
	mode_t m = st->st_mode & 07777;

	(void)name;
	if (S_ISLNK(st->st_mode))
		return fchownat(sh->top, rel, (uid_t)-1, sh->gid, AT_SYMLINK_NOFOLLOW) == 0
		               ? VIV_OK
		               : VIV_ERR_IO;
	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
		return VIV_ERR_INVALID;
	/* The group gets what the owner has; folders keep it for what is
	 * made in them. */
	m |= (m & 0700) >> 3;
	if (S_ISDIR(st->st_mode))
		m |= 02070;
	if (fchownat(sh->top, rel, (uid_t)-1, sh->gid, AT_SYMLINK_NOFOLLOW) != 0 ||
	    fchmodat(sh->top, rel, m, 0) != 0)
		return VIV_ERR_IO;
	return VIV_OK;
}

enum viv_err pipe_share_tree(const char *dir, gid_t gid)
{
	struct share sh = {-1, gid};
	struct pipe_walk w = {
	        .visit = share_visit, .ctx = &sh, .depth_max = 256, .unreadable_is_error = true};
	enum viv_err err;
	int walk_fd;

	sh.top = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sh.top < 0)
		return VIV_ERR_IO;
	walk_fd = fcntl(sh.top, F_DUPFD_CLOEXEC, 0);
	err = walk_fd < 0 ? VIV_ERR_IO : pipe_walk(&w, walk_fd);
	close(sh.top);
	return err;
}
