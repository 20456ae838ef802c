/* Files for every module: making folders, writing files so that they
 * appear whole, reading with a cap, and the descriptor-based operations
 * used on folders that hostile processes have written (a build's folder):
 * opening beneath a folder without following links, and removing a tree
 * without ever leaving it. */
#include "viv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum viv_err viv_mkdirs(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	size_t i;

	if (n == 0 || n >= sizeof(buf))
		return VIV_ERR_INVALID;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return VIV_ERR_IO;
		buf[i] = i == n ? '\0' : '/';
	}
	return VIV_OK;
}

char *viv_path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	char *p;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if (asprintf(&p, "%.*s/%s", (int)la, a, b) < 0)
		return NULL;
	return p;
}

/* ---- Writing whole files ---------------------------------------------------------- */

enum viv_err viv_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return VIV_ERR_IO;
		p += w;
		len -= (size_t)w;
	}
	return VIV_OK;
}

enum viv_err viv_copy_fd(int in, int out, uint64_t max, uint64_t *copied_out)
{
	char buf[65536];
	uint64_t copied = 0;
	enum viv_err err = VIV_OK;

	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? VIV_ERR_IO : VIV_OK;
			break;
		}
		if ((uint64_t)r > max - copied) {
			/* What fits goes, so the cap is exact. */
			r = (ssize_t)(max - copied);
			err = viv_write_all(out, buf, (size_t)r);
			if (!err) {
				copied += (uint64_t)r;
				err = VIV_ERR_TOO_BIG;
			}
			break;
		}
		err = viv_write_all(out, buf, (size_t)r);
		if (err)
			break;
		copied += (uint64_t)r;
	}
	if (copied_out)
		*copied_out = copied;
	return err;
}

enum viv_err viv_write_file_at(int dirfd, const char *name, const void *data, size_t len,
                               unsigned mode)
{
	unsigned char rnd[8];
	char tmp[NAME_MAX + 1];
	enum viv_err err;
	int fd, n;

	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return VIV_ERR_INVALID;
	err = viv_random(rnd, sizeof(rnd));
	if (err)
		return err;
	/* A name nobody can guess, created only if it is not there: whatever
	 * else writes the folder, the file written is a new one of ours. */
	n = snprintf(tmp, sizeof(tmp), ".%.200s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", name, rnd[0],
	             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return VIV_ERR_INVALID;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return VIV_ERR_IO;
	err = viv_write_all(fd, data, len);
	if (!err && fsync(fd) != 0)
		err = VIV_ERR_IO;
	if (close(fd) != 0 && !err)
		err = VIV_ERR_IO;
	/* rename replaces what is at name, a link included, without
	 * following it. */
	if (!err && renameat(dirfd, tmp, dirfd, name) != 0)
		err = VIV_ERR_IO;
	if (!err && fsync(dirfd) != 0)
		err = VIV_ERR_IO;
	if (err)
		unlinkat(dirfd, tmp, 0);
	return err;
}

static int open_parent(const char *path, char buf[PATH_MAX], const char **name_out);

enum viv_err viv_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char buf[PATH_MAX];
	const char *name;
	enum viv_err err;
	int dfd;

	dfd = open_parent(path, buf, &name);
	if (dfd < 0)
		return errno == EINVAL ? VIV_ERR_INVALID : VIV_ERR_IO;
	err = viv_write_file_at(dfd, name, data, len, mode);
	close(dfd);
	return err;
}

/* ---- Reading with a cap -------------------------------------------------------------- */

enum viv_err viv_read_fd(int fd, size_t cap, char **out, size_t *len_out)
{
	struct viv_buf b;
	char chunk[65536];
	enum viv_err err = VIV_OK;

	*out = NULL;
	if (len_out)
		*len_out = 0;
	viv_buf_init(&b, cap);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = VIV_ERR_IO;
			break;
		}
		if (r == 0)
			break;
		err = viv_buf_append(&b, chunk, (size_t)r);
		if (err)
			break;
	}
	if (err) {
		viv_buf_free(&b);
		return err;
	}
	if (len_out)
		*len_out = b.len;
	*out = viv_buf_steal(&b);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

enum viv_err viv_read_file(const char *path, size_t cap, char **out, size_t *len_out)
{
	enum viv_err err;
	int fd;

	*out = NULL;
	if (len_out)
		*len_out = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
	err = viv_read_fd(fd, cap, out, len_out);
	close(fd);
	return err;
}

/* ---- Beneath a folder ------------------------------------------------------------------- */

/* openat2 is missing from glibc 2.36's headers. */
static int openat2_call(int dirfd, const char *rel, int flags, unsigned mode)
{
#ifdef SYS_openat2
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)flags;
	/* The kernel refuses a mode without a flag that creates. */
	how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
#else
	(void)dirfd;
	(void)rel;
	(void)flags;
	(void)mode;
	errno = ENOSYS;
	return -1;
#endif
}

/* The same walk for kernels without openat2 (before 5.6): one component at
 * a time, each opened without following a link, ".." refused. */
static int open_by_components(int dirfd, const char *rel, int flags, unsigned mode)
{
	char comp[NAME_MAX + 1];
	const char *p = rel;
	int cur = dirfd, next, saved;

	if (*p == '/') {
		errno = EXDEV;
		return -1;
	}
	for (;;) {
		size_t n = strcspn(p, "/");
		const char *rest = p + n;
		bool last;

		while (*rest == '/')
			rest++;
		last = *rest == '\0';
		if (n >= sizeof(comp)) {
			errno = ENAMETOOLONG;
			goto fail;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			goto fail;
		}
		if (n == 0)
			strcpy(comp, ".");
		if (last)
			next = openat(cur, comp, flags | O_NOFOLLOW, mode);
		else
			next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			goto fail;
		if (cur != dirfd)
			close(cur);
		cur = next;
		if (last)
			return cur;
		p = rest;
	}
fail:
	saved = errno;
	if (cur != dirfd)
		close(cur);
	errno = saved;
	return -1;
}

int viv_open_beneath(int dirfd, const char *rel, int flags, unsigned mode)
{
	static int have_openat2 = 1;
	int fd;

	flags |= O_CLOEXEC;
	if (!*rel) {
		errno = ENOENT;
		return -1;
	}
	if (__atomic_load_n(&have_openat2, __ATOMIC_RELAXED)) {
		fd = openat2_call(dirfd, rel, flags, mode);
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		__atomic_store_n(&have_openat2, 0, __ATOMIC_RELAXED);
	}
	return open_by_components(dirfd, rel, flags, mode);
}

enum viv_err viv_open_regular_beneath(int dirfd, const char *rel, int *fd_out, struct stat *st_out,
                                      char *why, size_t whylen)
{
	struct stat st;
	int fd;

	*fd_out = -1;
	viv_errf(why, whylen, "%s", "");
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = viv_open_beneath(dirfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd < 0) {
		switch (errno) {
		case ENOENT:
			viv_errf(why, whylen, "it does not exist");
			return VIV_ERR_NOT_FOUND;
		case ELOOP:
			viv_errf(why, whylen, "it is, or is reached through, a symbolic link");
			return VIV_ERR_INVALID;
		case EXDEV:
			viv_errf(why, whylen, "it is outside the folder");
			return VIV_ERR_INVALID;
		default:
			viv_errf(why, whylen, "%s", strerror(errno));
			return VIV_ERR_IO;
		}
	}
	if (fstat(fd, &st) != 0) {
		viv_errf(why, whylen, "%s", strerror(errno));
		close(fd);
		return VIV_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		viv_errf(why, whylen, "it is not a regular file");
		close(fd);
		return VIV_ERR_INVALID;
	}
	if (st.st_nlink != 1) {
		viv_errf(why, whylen, "it has other names (a hard link)");
		close(fd);
		return VIV_ERR_INVALID;
	}
	/* Reads block as usual from here. */
	fcntl(fd, F_SETFL, 0);
	*fd_out = fd;
	if (st_out)
		*st_out = st;
	return VIV_OK;
}

enum viv_err viv_read_beneath(int dirfd, const char *rel, size_t cap, char **out, size_t *len_out,
                              char *why, size_t whylen)
{
	struct stat st;
	enum viv_err err;
	int fd;

	*out = NULL;
	if (len_out)
		*len_out = 0;
	err = viv_open_regular_beneath(dirfd, rel, &fd, &st, why, whylen);
	if (err)
		return err;
	if ((uint64_t)st.st_size > cap) {
		viv_errf(why, whylen, "it is larger than %zu bytes", cap);
		close(fd);
		return VIV_ERR_TOO_BIG;
	}
	err = viv_read_fd(fd, cap, out, len_out);
	if (err == VIV_ERR_TOO_BIG)
		viv_errf(why, whylen, "it is larger than %zu bytes", cap);
	else if (err)
		viv_errf(why, whylen, "it could not be read: %s", viv_strerror(err));
	close(fd);
	return err;
}

/* ---- Removing a tree ---------------------------------------------------------------------- */

/* Folders nested deeper than this are moved up to the top of the tree and
 * removed from there, so that no tree, however deep, exhausts the stack or
 * the descriptors. */
#define RM_DEPTH_MAX 32

struct rm {
	int top;             /* the folder being emptied */
	unsigned long moved; /* names given to folders moved to the top */
	bool again;          /* something was moved to the top: scan it again */
};

/* Makes a folder we own readable, writable and searchable, through a
 * descriptor that cannot be a link. */
static void rm_open_up(int dirfd, const char *name)
{
	char proc[64];
	int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (chmod(proc, 0700) != 0)
		viv_log(VIV_DEBUG, "cannot open up a folder to remove it: %s", strerror(errno));
	close(fd);
}

static enum viv_err rm_entry(struct rm *r, int dirfd, const char *name, int depth);

/* Removes what the folder open at fd holds (fd is closed here). */
static enum viv_err rm_contents(struct rm *r, int fd, int depth)
{
	enum viv_err err = VIV_OK;
	struct dirent *de;
	DIR *d = fdopendir(fd);

	if (!d) {
		close(fd);
		return VIV_ERR_IO;
	}
	for (;;) {
		enum viv_err e;

		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Removing the entry just read leaves the listing of the
		 * others as it was. */
		e = rm_entry(r, dirfd(d), de->d_name, depth);
		if (e && !err)
			err = e;
	}
	closedir(d);
	return err;
}

static enum viv_err rm_entry(struct rm *r, int dirfd, const char *name, int depth)
{
	int fd;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return VIV_OK;
	if (errno == EACCES || errno == EPERM) {
		/* A folder that is not writable holds it; the caller's folder
		 * is opened up, then the removal is tried once more. */
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", dirfd);
		if (chmod(self, 0700) == 0 && unlinkat(dirfd, name, 0) == 0)
			return VIV_OK;
	}
	if (errno != EISDIR)
		return VIV_ERR_IO;
	if (depth >= RM_DEPTH_MAX && dirfd != r->top) {
		char up[40];
		snprintf(up, sizeof(up), ".viv-rm-%lu", r->moved++);
		if (renameat(dirfd, name, r->top, up) != 0)
			return VIV_ERR_IO;
		r->again = true;
		return VIV_OK;
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		rm_open_up(dirfd, name);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? VIV_OK : VIV_ERR_IO;
	{
		/* Its entries cannot be removed while it is not writable. */
		struct stat st;
		if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
			fchmod(fd, 0700);
	}
	rm_contents(r, fd, depth + 1);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return VIV_OK;
	return VIV_ERR_IO;
}

enum viv_err viv_empty_dir_fd(int dirfd)
{
	struct rm r = {dirfd, 0, true};
	enum viv_err err = VIV_OK;
	int fd;

	/* Each pass removes what it can; folders moved to the top by a pass
	 * are removed by the next. */
	for (int pass = 0; r.again && pass < 100000; pass++) {
		r.again = false;
		fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return VIV_ERR_IO;
		err = rm_contents(&r, fd, 0);
	}
	return err;
}

enum viv_err viv_rmtree_at(int dirfd, const char *name)
{
	enum viv_err err;
	struct stat st;
	int fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? VIV_OK : VIV_ERR_IO;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? VIV_OK : VIV_ERR_IO;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		rm_open_up(dirfd, name);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? VIV_OK : VIV_ERR_IO;
	if ((st.st_mode & 0700) != 0700)
		fchmod(fd, 0700);
	err = viv_empty_dir_fd(fd);
	close(fd);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		return err ? err : VIV_ERR_IO;
	return err;
}

/* Splits path into its folder, opened, and its last component (a pointer
 * into buf, which holds a copy of path without trailing slashes). */
static int open_parent(const char *path, char buf[PATH_MAX], const char **name_out)
{
	size_t n = strlen(path);
	char *slash;
	int fd;

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0 || n >= PATH_MAX) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, path, n);
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash) {
		*name_out = buf;
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (slash == buf || slash[1] == '\0') {
		errno = EINVAL; /* "/" itself */
		return -1;
	}
	*slash = '\0';
	fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*name_out = slash + 1;
	return fd;
}

enum viv_err viv_rmtree(const char *path)
{
	char buf[PATH_MAX];
	const char *name;
	enum viv_err err;
	int dfd;

	dfd = open_parent(path, buf, &name);
	if (dfd < 0)
		return errno == ENOENT ? VIV_OK : VIV_ERR_IO;
	err = viv_rmtree_at(dfd, name);
	close(dfd);
	return err;
}

void viv_rmtree_or_log(const char *path)
{
	enum viv_err err = viv_rmtree(path);

	if (err)
		viv_log(VIV_WARN, "could not remove %s: %s", path, viv_strerror(err));
}

/* ---- The platform's own files ------------------------------------------------------------ */

/* How many folders up from the program's own the search goes: bin/ of an
 * installation, and vivd/ or tests/NAME/ of a build tree. */
#define SHARE_LEVELS 3

static char share_dir[PATH_MAX];

/* Whether dir holds the platform's files (its sdk/ at least). */
static bool share_holds(const char *dir)
{
	char probe[PATH_MAX];
	struct stat st;

	return snprintf(probe, sizeof(probe), "%s/sdk", dir) < (int)sizeof(probe) &&
	       stat(probe, &st) == 0 && S_ISDIR(st.st_mode);
}

static void share_find(void)
{
	const char *env = getenv("VIVARIUM_SHARE");
	char exe[PATH_MAX], cand[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (strlen(env) < sizeof(share_dir))
			strcpy(share_dir, env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	for (int level = 0; level < SHARE_LEVELS; level++) {
		char *slash = strrchr(exe, '/');

		if (!slash || slash == exe)
			return;
		*slash = '\0';
		if (snprintf(cand, sizeof(cand), "%s/../share/vivarium", exe) >= (int)sizeof(cand))
			return;
		if (share_holds(cand) && realpath(cand, share_dir))
			return;
	}
	share_dir[0] = '\0';
}

const char *viv_share_dir(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, share_find);
	return share_dir[0] ? share_dir : NULL;
}
