/* The read-only file system of WASI guests: an app's static assets,
 * preopened as /assets (descriptor 3). Paths resolve with openat2 and
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so nothing outside the assets tree
 * is reachable whatever the guest asks; anything that would write is
 * refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runner_int.h"

/* Descriptors one instance may hold open, besides the preopen. */
#define FS_FDS 32
#define FS_PREOPEN 3
#define FS_FIRST (FS_PREOPEN + 1)

enum {
	W_SUCCESS = 0,
	W_ACCES = 2,
	W_BADF = 8,
	W_EXIST = 20,
	W_FAULT = 21,
	W_INVAL = 28,
	W_IO = 29,
	W_ISDIR = 31,
	W_LOOP = 32,
	W_MFILE = 33,
	W_NAMETOOLONG = 37,
	W_NOENT = 44,
	W_NOMEM = 48,
	W_NOTDIR = 54,
	W_NOTCAPABLE = 76,
};

enum { FT_UNKNOWN = 0, FT_CHAR = 2, FT_DIR = 3, FT_REG = 4 };

/* Rights this file system grants: reading, seeking, stat, readdir, and
 * opening below a directory. */
#define R_FD_READ ((uint64_t)1 << 1)
#define R_FD_SEEK ((uint64_t)1 << 2)
#define R_FD_TELL ((uint64_t)1 << 5)
#define R_FD_ADVISE ((uint64_t)1 << 7)
#define R_PATH_OPEN ((uint64_t)1 << 13)
#define R_FD_READDIR ((uint64_t)1 << 14)
#define R_PATH_FILESTAT_GET ((uint64_t)1 << 18)
#define R_FD_FILESTAT_GET ((uint64_t)1 << 21)
#define R_POLL ((uint64_t)1 << 27)
#define RIGHTS_FILE (R_FD_READ | R_FD_SEEK | R_FD_TELL | R_FD_ADVISE | R_FD_FILESTAT_GET | R_POLL)
#define RIGHTS_DIR (R_PATH_OPEN | R_FD_READDIR | R_PATH_FILESTAT_GET | R_FD_FILESTAT_GET)
/* Rights that would change something. */
#define RIGHTS_WRITE                                                                               \
	(((uint64_t)1 << 0) | ((uint64_t)1 << 3) | ((uint64_t)1 << 4) | ((uint64_t)1 << 6) |       \
	 ((uint64_t)1 << 8) | ((uint64_t)1 << 9) | ((uint64_t)1 << 10) | ((uint64_t)1 << 11) |     \
	 ((uint64_t)1 << 12) | ((uint64_t)1 << 15) | ((uint64_t)1 << 16) | ((uint64_t)1 << 19) |   \
	 ((uint64_t)1 << 20) | ((uint64_t)1 << 22) | ((uint64_t)1 << 23) | ((uint64_t)1 << 24) |   \
	 ((uint64_t)1 << 25) | ((uint64_t)1 << 26))

struct fs_fd {
	int host; /* -1 when free */
	bool dir;
};

struct run_fs {
	int root; /* the assets directory; -1 until first use */
	struct fs_fd fds[FS_FDS];
};

static uint32_t errno_to_wasi(int e)
{
	switch (e) {
	case ENOENT:
		return W_NOENT;
	case ENOTDIR:
		return W_NOTDIR;
	case EISDIR:
		return W_ISDIR;
	case EACCES:
	case EPERM:
		return W_ACCES;
	case ELOOP:
		return W_LOOP;
	case EXDEV: /* RESOLVE_BENEATH: the path tried to leave */
		return W_NOTCAPABLE;
	case ENAMETOOLONG:
		return W_NAMETOOLONG;
	case EMFILE:
	case ENFILE:
		return W_MFILE;
	case ENOMEM:
		return W_NOMEM;
	case EEXIST:
		return W_EXIST;
	case EINVAL:
		return W_INVAL;
	}
	return W_IO;
}

/* Closes every descriptor, at the instance's end. */
static void fs_end(void *state);

static const struct run_attach_ops fs_attach = {.name = "wasi_fs", .end = fs_end};

static void fs_end(void *state)
{
	struct run_fs *fs = state;
	int i;

	for (i = 0; i < FS_FDS; i++) {
		if (fs->fds[i].host >= 0)
			close(fs->fds[i].host);
	}
	if (fs->root >= 0)
		close(fs->root);
	free(fs);
}

/* The instance's descriptors, made on first use and closed when it ends;
 * NULL when out of memory. */
static struct run_fs *fs_of(struct run_instance *in)
{
	struct run_fs *fs = run_instance_attached(in, &fs_attach);
	int i;

	if (fs)
		return fs;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->root = -1;
	for (i = 0; i < FS_FDS; i++)
		fs->fds[i].host = -1;
	if (!run_instance_attach(in, &fs_attach, fs)) {
		free(fs);
		return NULL;
	}
	return fs;
}

bool run_fs_has(struct run_instance *in, uint32_t fd)
{
	struct run_fs *fs;

	if (!in->app->assets_dir)
		return false;
	if (fd == FS_PREOPEN)
		return true;
	fs = run_instance_attached(in, &fs_attach);
	return fs && fd >= FS_FIRST && fd < FS_FIRST + FS_FDS && fs->fds[fd - FS_FIRST].host >= 0;
}

/* The host descriptor behind a guest's, opening the assets directory on
 * first use; -1 when there is none. */
static int host_fd(struct run_instance *in, uint32_t fd, bool *dir)
{
	struct run_fs *fs;

	if (!run_fs_has(in, fd) || !(fs = fs_of(in)))
		return -1;
	if (fd == FS_PREOPEN) {
		if (fs->root < 0)
			fs->root = open(in->app->assets_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		*dir = true;
		return fs->root;
	}
	*dir = fs->fds[fd - FS_FIRST].dir;
	return fs->fds[fd - FS_FIRST].host;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static void put_filestat(uint8_t *p, const struct stat *st)
{
	memset(p, 0, 64);
	put_u64(p, (uint64_t)st->st_dev);
	put_u64(p + 8, (uint64_t)st->st_ino);
	p[16] = S_ISDIR(st->st_mode) ? FT_DIR : S_ISREG(st->st_mode) ? FT_REG : FT_UNKNOWN;
	put_u64(p + 24, (uint64_t)st->st_nlink);
	put_u64(p + 32, (uint64_t)st->st_size);
	put_u64(p + 40, ts_ns(&st->st_atim));
	put_u64(p + 48, ts_ns(&st->st_mtim));
	put_u64(p + 56, ts_ns(&st->st_ctim));
}

/* Opens path below dirfd without leaving it and without symlinks. */
static int open_beneath(int dirfd, const char *path, uint64_t flags)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* The guest's path as a host string; NULL when out of bounds or holding a
 * NUL. Caller frees. */
static char *path_in(struct run_instance *in, uint32_t ptr, uint32_t len)
{
	const uint8_t *p = len <= 4096 ? run_mem(in, ptr, len) : NULL;
	char *s;

	if (!p || memchr(p, 0, len))
		return NULL;
	s = malloc(len + 2);
	if (!s)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	if (len == 0)
		strcpy(s, ".");
	return s;
}

uint32_t run_fs_prestat_get(struct run_instance *in, uint32_t fd, uint32_t buf)
{
	uint8_t *p;

	if (fd != FS_PREOPEN || !in->app->assets_dir)
		return W_BADF;
	p = run_mem(in, buf, 8);
	if (!p)
		return W_FAULT;
	memset(p, 0, 8);
	put_u32(p + 4, 7);
	return W_SUCCESS;
}

uint32_t run_fs_prestat_dir_name(struct run_instance *in, uint32_t fd, uint32_t path, uint32_t len)
{
	uint8_t *p;

	if (fd != FS_PREOPEN || !in->app->assets_dir)
		return W_BADF;
	if (len < 7)
		return W_NAMETOOLONG;
	p = run_mem(in, path, 7);
	if (!p)
		return W_FAULT;
	memcpy(p, "/assets", 7);
	return W_SUCCESS;
}

uint32_t run_fs_path_open(struct run_instance *in, uint32_t dirfd, uint32_t dirflags, uint32_t path,
                          uint32_t path_len, uint32_t oflags, uint64_t rights, uint64_t inheriting,
                          uint32_t fdflags, uint32_t fd_p)
{
	struct run_fs *fs;
	bool dir = false;
	int base = host_fd(in, dirfd, &dir), h, slot;
	char *p;
	struct stat st;

	(void)dirflags;
	(void)inheriting;
	if (base < 0)
		return W_BADF;
	if (!dir)
		return W_NOTDIR;
	/* CREAT, EXCL, TRUNC, or rights and flags that write: read-only. */
	if ((oflags & (1 | 4 | 8)) || (rights & RIGHTS_WRITE) || (fdflags & (1 | 2 | 8 | 16)))
		return W_NOTCAPABLE;
	if (!run_mem(in, fd_p, 4))
		return W_FAULT;
	fs = fs_of(in);
	if (!fs)
		return W_NOMEM;
	for (slot = 0; slot < FS_FDS && fs->fds[slot].host >= 0; slot++)
		;
	if (slot == FS_FDS)
		return W_MFILE;
	p = path_in(in, path, path_len);
	if (!p)
		return W_FAULT;
	h = open_beneath(base, p, O_RDONLY | ((oflags & 2) ? O_DIRECTORY : 0));
	free(p);
	if (h < 0)
		return errno_to_wasi(errno);
	if (fstat(h, &st) || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
		close(h);
		return W_ACCES;
	}
	fs->fds[slot].host = h;
	fs->fds[slot].dir = S_ISDIR(st.st_mode);
	put_u32(run_mem(in, fd_p, 4), FS_FIRST + (uint32_t)slot);
	return W_SUCCESS;
}

uint32_t run_fs_close_fd(struct run_instance *in, uint32_t fd)
{
	struct run_fs *fs = run_instance_attached(in, &fs_attach);

	if (!run_fs_has(in, fd))
		return W_BADF;
	if (fd == FS_PREOPEN)
		return W_SUCCESS; /* the preopen stays; later calls still work */
	close(fs->fds[fd - FS_FIRST].host);
	fs->fds[fd - FS_FIRST].host = -1;
	return W_SUCCESS;
}

/* Reads or preads into the guest's iovecs. */
static uint32_t do_read(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n,
                        int64_t off, uint32_t nread_p)
{
	const uint8_t *vec = n <= 1024 ? run_mem(in, iovs, (uint64_t)n * 8) : NULL;
	struct iovec v[64];
	bool dir = false;
	int h = host_fd(in, fd, &dir);
	uint32_t i, k = 0;
	ssize_t r;

	if (h < 0)
		return W_BADF;
	if (dir)
		return W_ISDIR;
	if (!vec || !run_mem(in, nread_p, 4))
		return W_FAULT;
	for (i = 0; i < n && k < 64; i++) {
		uint32_t ptr = get_u32(vec + 8 * i), len = get_u32(vec + 8 * i + 4);
		uint8_t *p = run_mem(in, ptr, len);

		if (!p)
			return W_FAULT;
		v[k].iov_base = p;
		v[k].iov_len = len;
		k++;
	}
	r = off < 0 ? readv(h, v, (int)k) : preadv(h, v, (int)k, off);
	if (r < 0)
		return errno_to_wasi(errno);
	put_u32(run_mem(in, nread_p, 4), (uint32_t)r);
	return W_SUCCESS;
}

uint32_t run_fs_read(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n,
                     uint32_t nread_p)
{
	return do_read(in, fd, iovs, n, -1, nread_p);
}

uint32_t run_fs_pread(struct run_instance *in, uint32_t fd, uint32_t iovs, uint32_t n, uint64_t off,
                      uint32_t nread_p)
{
	if (off > INT64_MAX)
		return W_INVAL;
	return do_read(in, fd, iovs, n, (int64_t)off, nread_p);
}

uint32_t run_fs_seek(struct run_instance *in, uint32_t fd, int64_t off, uint32_t whence,
                     uint32_t newoff_p)
{
	bool dir = false;
	int h = host_fd(in, fd, &dir), w;
	off_t r;

	if (h < 0)
		return W_BADF;
	if (dir)
		return W_ISDIR;
	w = whence == 0 ? SEEK_SET : whence == 1 ? SEEK_CUR : whence == 2 ? SEEK_END : -1;
	if (w < 0)
		return W_INVAL;
	if (!run_mem(in, newoff_p, 8))
		return W_FAULT;
	r = lseek(h, off, w);
	if (r < 0)
		return errno_to_wasi(errno);
	put_u64(run_mem(in, newoff_p, 8), (uint64_t)r);
	return W_SUCCESS;
}

uint32_t run_fs_fdstat_get(struct run_instance *in, uint32_t fd, uint32_t buf)
{
	bool dir = false;
	uint8_t *p;

	if (host_fd(in, fd, &dir) < 0)
		return W_BADF;
	p = run_mem(in, buf, 24);
	if (!p)
		return W_FAULT;
	memset(p, 0, 24);
	p[0] = dir ? FT_DIR : FT_REG;
	put_u64(p + 8, dir ? RIGHTS_DIR : RIGHTS_FILE);
	put_u64(p + 16, dir ? RIGHTS_DIR | RIGHTS_FILE : 0);
	return W_SUCCESS;
}

uint32_t run_fs_filestat_get(struct run_instance *in, uint32_t fd, uint32_t buf)
{
	bool dir = false;
	int h = host_fd(in, fd, &dir);
	struct stat st;
	uint8_t *p;

	if (h < 0)
		return W_BADF;
	p = run_mem(in, buf, 64);
	if (!p)
		return W_FAULT;
	if (fstat(h, &st))
		return errno_to_wasi(errno);
	put_filestat(p, &st);
	return W_SUCCESS;
}

uint32_t run_fs_path_filestat_get(struct run_instance *in, uint32_t dirfd, uint32_t flags,
                                  uint32_t path, uint32_t len, uint32_t buf)
{
	bool dir = false;
	int base = host_fd(in, dirfd, &dir), h;
	struct stat st;
	uint8_t *p;
	char *s;

	(void)flags;
	if (base < 0)
		return W_BADF;
	if (!dir)
		return W_NOTDIR;
	p = run_mem(in, buf, 64);
	s = path_in(in, path, len);
	if (!p || !s) {
		free(s);
		return W_FAULT;
	}
	h = open_beneath(base, s, O_PATH);
	free(s);
	if (h < 0)
		return errno_to_wasi(errno);
	if (fstat(h, &st)) {
		close(h);
		return errno_to_wasi(errno);
	}
	close(h);
	put_filestat(p, &st);
	return W_SUCCESS;
}

/* WASI directory entries: a 24-byte header (next cookie, inode, name
 * length, type) and the name, packed; the last may be cut short, which
 * tells the guest to call again from its cookie. */
uint32_t run_fs_readdir(struct run_instance *in, uint32_t fd, uint32_t buf, uint32_t buf_len,
                        uint64_t cookie, uint32_t used_p)
{
	bool dir = false;
	int h = host_fd(in, fd, &dir), dup_fd;
	uint8_t *out = run_mem(in, buf, buf_len), hdr[24];
	uint64_t idx = 0;
	uint32_t used = 0;
	struct dirent *e;
	DIR *d;

	if (h < 0)
		return W_BADF;
	if (!dir)
		return W_NOTDIR;
	if (!out || !run_mem(in, used_p, 4))
		return W_FAULT;
	dup_fd = openat(h, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return errno_to_wasi(errno);
	}
	while (used < buf_len && (e = readdir(d))) {
		size_t nl = strlen(e->d_name), take;

		if (idx++ < cookie)
			continue;
		put_u64(hdr, idx);
		put_u64(hdr + 8, (uint64_t)e->d_ino);
		put_u32(hdr + 16, (uint32_t)nl);
		memset(hdr + 20, 0, 4);
		hdr[20] = e->d_type == DT_DIR ? FT_DIR : e->d_type == DT_REG ? FT_REG : FT_UNKNOWN;
		take = buf_len - used < 24 ? buf_len - used : 24;
		memcpy(out + used, hdr, take);
		used += (uint32_t)take;
		take = buf_len - used < nl ? buf_len - used : nl;
		memcpy(out + used, e->d_name, take);
		used += (uint32_t)take;
	}
	closedir(d);
	put_u32(run_mem(in, used_p, 4), used);
	return W_SUCCESS;
}
