/* WASI preview 1, deny by default: arguments, environment, clocks,
 * randomness, stdin from the request body, stdout to the response, stderr to
 * the app's log, sleeping through poll_oneoff, proc_exit. The file system is
 * the app's static assets, read-only at /assets (wasi_fs.c), and sockets do
 * not exist; refused calls return an error, never crash.
 *
 * The functions carry the C names wasm2c gives the imports. Their first
 * argument is the import instance that wasm2c passes, and they ignore it:
 * wasm2c 1.0.32 passes the right pointer on direct calls but, when the guest
 * calls an import through its function table, a pointer into the guest's
 * own instance structure, whose fields the guest controls. The caller is
 * always the guest running on this thread, so run_current names it:
 * run_enter(), every call's prologue, takes it from there. stdout goes to
 * the guest's mode (the CGI mode's response). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "runner_int.h"

/* WASI errno values. */
enum {
	E_SUCCESS = 0,
	E_2BIG = 1,
	E_BADF = 8,
	E_FAULT = 21,
	E_FBIG = 22,
	E_INVAL = 28,
	E_IO = 29,
	E_NOSYS = 52,
	E_NOTSUP = 58,
	E_SPIPE = 70,
	E_NOTCAPABLE = 76,
};

enum { FILETYPE_CHARACTER_DEVICE = 2 };
enum { EVENTTYPE_CLOCK = 0, EVENTTYPE_FD_READ = 1, EVENTTYPE_FD_WRITE = 2 };

/* Rights of the three standard streams. */
#define RIGHT_FD_READ ((uint64_t)1 << 1)
#define RIGHT_FD_WRITE ((uint64_t)1 << 6)
#define RIGHT_POLL_FD_READWRITE ((uint64_t)1 << 27)

static void put_u16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Writes a u32 result to guest memory; false when ptr is out of bounds. */
static bool out_u32(struct run_instance *in, uint32_t ptr, uint32_t v)
{
	uint8_t *p = run_mem(in, ptr, 4);

	if (!p)
		return false;
	put_u32(p, v);
	return true;
}

static bool is_stdio(uint32_t fd)
{
	return fd <= 2;
}

/* ---- Arguments and environment -------------------------------------------------- */

static enum viv_err ensure_env(struct run_instance *in)
{
	if (in->envp)
		return VIV_OK;
	return run_cgi_env(in);
}

/* Writes a NUL-separated list and its pointer array into guest memory. */
static uint32_t put_list(struct run_instance *in, const char *const *items, size_t n, uint32_t ptrs,
                         uint32_t buf)
{
	size_t i, total = 0;
	uint8_t *pp, *bp;

	for (i = 0; i < n; i++)
		total += strlen(items[i]) + 1;
	pp = run_mem(in, ptrs, (uint64_t)n * 4);
	bp = run_mem(in, buf, total);
	if (!pp || !bp)
		return E_FAULT;
	for (i = 0; i < n; i++) {
		size_t len = strlen(items[i]) + 1;

		put_u32(pp + 4 * i, buf);
		memcpy(bp, items[i], len);
		bp += len;
		buf += (uint32_t)len;
	}
	return E_SUCCESS;
}

static uint32_t put_sizes(struct run_instance *in, const char *const *items, size_t n,
                          uint32_t count_p, uint32_t size_p)
{
	size_t i, total = 0;

	for (i = 0; i < n; i++)
		total += strlen(items[i]) + 1;
	if (!out_u32(in, count_p, (uint32_t)n) || !out_u32(in, size_p, (uint32_t)total))
		return E_FAULT;
	return E_SUCCESS;
}

WASI_CALL(uint32_t, args_get, uint32_t argv, uint32_t buf)
{
	struct run_instance *in = run_enter();
	const char *args[1];

	args[0] = in->app->name;
	return put_list(in, args, 1, argv, buf);
}

WASI_CALL(uint32_t, args_sizes_get, uint32_t argc_p, uint32_t size_p)
{
	struct run_instance *in = run_enter();
	const char *args[1];

	args[0] = in->app->name;
	return put_sizes(in, args, 1, argc_p, size_p);
}

WASI_CALL(uint32_t, environ_get, uint32_t envp, uint32_t buf)
{
	struct run_instance *in = run_enter();

	if (ensure_env(in))
		return E_2BIG;
	return put_list(in, (const char *const *)in->envp, in->n_envp, envp, buf);
}

WASI_CALL(uint32_t, environ_sizes_get, uint32_t count_p, uint32_t size_p)
{
	struct run_instance *in = run_enter();

	if (ensure_env(in))
		return E_2BIG;
	return put_sizes(in, (const char *const *)in->envp, in->n_envp, count_p, size_p);
}

/* ---- Clocks and randomness ---------------------------------------------------------- */

static bool clock_of(uint32_t id, clockid_t *out)
{
	switch (id) {
	case 0:
		*out = CLOCK_REALTIME;
		return true;
	case 1:
		*out = CLOCK_MONOTONIC;
		return true;
	case 2:
		*out = CLOCK_PROCESS_CPUTIME_ID;
		return true;
	case 3:
		*out = CLOCK_THREAD_CPUTIME_ID;
		return true;
	}
	return false;
}

WASI_CALL(uint32_t, clock_res_get, uint32_t id, uint32_t res_p)
{
	struct run_instance *in = run_enter();
	struct timespec ts;
	clockid_t c;
	uint8_t *p;

	if (!clock_of(id, &c))
		return E_INVAL;
	p = run_mem(in, res_p, 8);
	if (!p)
		return E_FAULT;
	clock_getres(c, &ts);
	put_u64(p, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	return E_SUCCESS;
}

WASI_CALL(uint32_t, clock_time_get, uint32_t id, uint64_t precision, uint32_t time_p)
{
	struct run_instance *in = run_enter();
	struct timespec ts;
	clockid_t c;
	uint8_t *p;

	(void)precision;
	if (!clock_of(id, &c))
		return E_INVAL;
	p = run_mem(in, time_p, 8);
	if (!p)
		return E_FAULT;
	clock_gettime(c, &ts);
	put_u64(p, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	return E_SUCCESS;
}

WASI_CALL(uint32_t, random_get, uint32_t buf, uint32_t len)
{
	struct run_instance *in = run_enter();
	uint8_t *p;

	p = run_mem(in, buf, len);
	if (!p)
		return E_FAULT;
	if (viv_random(p, len))
		return E_IO;
	return E_SUCCESS;
}

/* ---- Standard streams ---------------------------------------------------------------- */

/* stderr goes to the app's log a line at a time. */
static void write_stderr(struct run_instance *in, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t chunk = nl ? (size_t)(nl - p) : n;

		viv_buf_append_trunc(&in->errln, p, chunk);
		if (!nl)
			return;
		run_log_add(in, "stderr", in->errln.data ? in->errln.data : "", in->errln.len);
		in->errln.len = 0;
		p = nl + 1;
		n -= chunk + 1;
	}
}

WASI_CALL(uint32_t, fd_write, uint32_t fd, uint32_t iovs, uint32_t n, uint32_t nwritten_p)
{
	struct run_instance *in = run_enter();
	const uint8_t *vec;
	uint64_t total = 0;
	uint32_t i;

	if (fd != 1 && fd != 2)
		return is_stdio(fd) || run_fs_has(in, fd) ? E_NOTCAPABLE : E_BADF;
	vec = run_mem(in, iovs, (uint64_t)n * 8);
	if (!vec)
		return E_FAULT;
	for (i = 0; i < n; i++) {
		uint32_t ptr = get_u32(vec + 8 * i), len = get_u32(vec + 8 * i + 4);
		const uint8_t *p = run_mem(in, ptr, len);

		if (!p)
			return E_FAULT;
		if (fd == 1) {
			if (!in->mode->write_stdout(in, p, len))
				return E_FBIG;
		} else {
			write_stderr(in, p, len);
		}
		total += len;
	}
	if (!out_u32(in, nwritten_p, (uint32_t)total))
		return E_FAULT;
	return E_SUCCESS;
}

WASI_CALL(uint32_t, fd_read, uint32_t fd, uint32_t iovs, uint32_t n, uint32_t nread_p)
{
	struct run_instance *in = run_enter();
	const struct run_request *r = in->req;
	const uint8_t *vec;
	uint32_t i, total = 0;

	if (!is_stdio(fd))
		return run_fs_read(in, fd, iovs, n, nread_p);
	if (fd != 0)
		return E_NOTCAPABLE;
	vec = run_mem(in, iovs, (uint64_t)n * 8);
	if (!vec)
		return E_FAULT;
	for (i = 0; i < n && in->stdin_off < r->body_len; i++) {
		uint32_t ptr = get_u32(vec + 8 * i), len = get_u32(vec + 8 * i + 4);
		uint8_t *p = run_mem(in, ptr, len);
		size_t left = r->body_len - in->stdin_off;
		size_t take = len < left ? len : left;

		if (!p)
			return E_FAULT;
		memcpy(p, r->body + in->stdin_off, take);
		in->stdin_off += take;
		total += (uint32_t)take;
	}
	if (!out_u32(in, nread_p, total))
		return E_FAULT;
	return E_SUCCESS;
}

WASI_CALL(uint32_t, fd_pread, uint32_t fd, uint32_t iovs, uint32_t n, uint64_t off,
          uint32_t nread_p)
{
	struct run_instance *in = run_enter();

	if (!is_stdio(fd))
		return run_fs_pread(in, fd, iovs, n, off, nread_p);
	return E_SPIPE;
}

WASI_CALL(uint32_t, fd_pwrite, uint32_t fd, uint32_t iovs, uint32_t n, uint64_t off,
          uint32_t nwritten_p)
{
	struct run_instance *in = run_enter();

	(void)iovs, (void)n, (void)off, (void)nwritten_p;
	return is_stdio(fd) ? E_SPIPE : run_fs_has(in, fd) ? E_NOTCAPABLE : E_BADF;
}

WASI_CALL(uint32_t, fd_close, uint32_t fd)
{
	struct run_instance *in = run_enter();

	return is_stdio(fd) ? E_SUCCESS : run_fs_close_fd(in, fd);
}

WASI_CALL(uint32_t, fd_fdstat_get, uint32_t fd, uint32_t stat_p)
{
	struct run_instance *in = run_enter();
	uint8_t *p;

	if (!is_stdio(fd))
		return run_fs_fdstat_get(in, fd, stat_p);
	p = run_mem(in, stat_p, 24);
	if (!p)
		return E_FAULT;
	memset(p, 0, 24);
	p[0] = FILETYPE_CHARACTER_DEVICE;
	put_u64(p + 8, (fd == 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE) | RIGHT_POLL_FD_READWRITE);
	return E_SUCCESS;
}

WASI_CALL(uint32_t, fd_filestat_get, uint32_t fd, uint32_t stat_p)
{
	struct run_instance *in = run_enter();
	uint8_t *p;

	if (!is_stdio(fd))
		return run_fs_filestat_get(in, fd, stat_p);
	p = run_mem(in, stat_p, 64);
	if (!p)
		return E_FAULT;
	memset(p, 0, 64);
	p[16] = FILETYPE_CHARACTER_DEVICE;
	put_u64(p + 24, 1);
	return E_SUCCESS;
}

WASI_CALL(uint32_t, fd_seek, uint32_t fd, uint64_t off, uint32_t whence, uint32_t newoff_p)
{
	struct run_instance *in = run_enter();

	if (!is_stdio(fd))
		return run_fs_seek(in, fd, (int64_t)off, whence, newoff_p);
	return E_SPIPE;
}

WASI_CALL(uint32_t, fd_tell, uint32_t fd, uint32_t off_p)
{
	struct run_instance *in = run_enter();

	if (!is_stdio(fd))
		return run_fs_seek(in, fd, 0, 1, off_p);
	return E_SPIPE;
}

/* Calls on descriptors: the standard streams do not support them, and no
 * other descriptor exists. */
#define FD_DENIED(name, params, args)                                                              \
	WASI_CALL(uint32_t, name, uint32_t fd params)                                              \
	{                                                                                          \
		struct run_instance *in = run_enter();                                             \
                                                                                                   \
		args;                                                                              \
		return is_stdio(fd) || run_fs_has(in, fd) ? E_NOTCAPABLE : E_BADF;                 \
	}
#define P(...) , __VA_ARGS__

FD_DENIED(fd_advise, P(uint64_t off, uint64_t len, uint32_t advice), (void)off; (void)len;
          (void)advice)
FD_DENIED(fd_allocate, P(uint64_t off, uint64_t len), (void)off; (void)len)
FD_DENIED(fd_datasync, , (void)0)
FD_DENIED(fd_sync, , (void)0)
FD_DENIED(fd_fdstat_set_flags, P(uint32_t flags), (void)flags)
FD_DENIED(fd_fdstat_set_rights, P(uint64_t base, uint64_t inheriting), (void)base; (void)inheriting)
FD_DENIED(fd_filestat_set_size, P(uint64_t size), (void)size)
FD_DENIED(fd_filestat_set_times, P(uint64_t atim, uint64_t mtim, uint32_t flags), (void)atim;
          (void)mtim; (void)flags)
FD_DENIED(fd_renumber, P(uint32_t to), (void)to)

/* Writes to the read-only /assets tree and everything else that names a
 * path are refused. */
FD_DENIED(path_create_directory, P(uint32_t path, uint32_t len), (void)path; (void)len)
FD_DENIED(path_filestat_set_times,
          P(uint32_t flags, uint32_t path, uint32_t len, uint64_t atim, uint64_t mtim,
            uint32_t fst),
          (void)flags;
          (void)path; (void)len; (void)atim; (void)mtim; (void)fst)
FD_DENIED(path_link,
          P(uint32_t oflags, uint32_t opath, uint32_t olen, uint32_t nfd, uint32_t npath,
            uint32_t nlen),
          (void)oflags;
          (void)opath; (void)olen; (void)nfd; (void)npath; (void)nlen)
FD_DENIED(path_readlink,
          P(uint32_t path, uint32_t len, uint32_t buf, uint32_t buflen, uint32_t used_p),
          (void)path;
          (void)len; (void)buf; (void)buflen; (void)used_p)
FD_DENIED(path_remove_directory, P(uint32_t path, uint32_t len), (void)path; (void)len)
FD_DENIED(path_rename,
          P(uint32_t opath, uint32_t olen, uint32_t nfd, uint32_t npath, uint32_t nlen),
          (void)opath;
          (void)olen; (void)nfd; (void)npath; (void)nlen)
FD_DENIED(path_symlink, P(uint32_t opath, uint32_t olen, uint32_t npath, uint32_t nlen),
          (void)opath;
          (void)olen; (void)npath; (void)nlen)
FD_DENIED(path_unlink_file, P(uint32_t path, uint32_t len), (void)path; (void)len)

/* The /assets tree (wasi_fs.c). */
WASI_CALL(uint32_t, fd_prestat_get, uint32_t fd, uint32_t buf)
{
	struct run_instance *in = run_enter();

	return run_fs_prestat_get(in, fd, buf);
}

WASI_CALL(uint32_t, fd_prestat_dir_name, uint32_t fd, uint32_t path, uint32_t len)
{
	struct run_instance *in = run_enter();

	return run_fs_prestat_dir_name(in, fd, path, len);
}

WASI_CALL(uint32_t, path_open, uint32_t fd, uint32_t dirflags, uint32_t path, uint32_t len,
          uint32_t oflags, uint64_t base, uint64_t inheriting, uint32_t fdflags, uint32_t fd_p)
{
	struct run_instance *in = run_enter();

	return run_fs_path_open(in, fd, dirflags, path, len, oflags, base, inheriting, fdflags,
	                        fd_p);
}

WASI_CALL(uint32_t, path_filestat_get, uint32_t fd, uint32_t flags, uint32_t path, uint32_t len,
          uint32_t stat_p)
{
	struct run_instance *in = run_enter();

	return run_fs_path_filestat_get(in, fd, flags, path, len, stat_p);
}

WASI_CALL(uint32_t, fd_readdir, uint32_t fd, uint32_t buf, uint32_t len, uint64_t cookie,
          uint32_t used_p)
{
	struct run_instance *in = run_enter();

	if (is_stdio(fd))
		return E_NOTCAPABLE;
	return run_fs_readdir(in, fd, buf, len, cookie, used_p);
}

/* Sockets: a guest has none; outbound HTTP goes through host calls. */
FD_DENIED(sock_accept, P(uint32_t flags, uint32_t fd_p), (void)flags; (void)fd_p)
FD_DENIED(sock_recv,
          P(uint32_t iovs, uint32_t n, uint32_t flags, uint32_t nread_p, uint32_t oflags_p),
          (void)iovs;
          (void)n; (void)flags; (void)nread_p; (void)oflags_p)
FD_DENIED(sock_send, P(uint32_t iovs, uint32_t n, uint32_t flags, uint32_t nsent_p), (void)iovs;
          (void)n; (void)flags; (void)nsent_p)
FD_DENIED(sock_shutdown, P(uint32_t how), (void)how)

/* ---- Process --------------------------------------------------------------------- */

WASI_CALL(void, proc_exit, uint32_t code)
{
	struct run_instance *in = run_current;

	run_instance_exit(in, (int)code);
}

WASI_CALL(uint32_t, proc_raise, uint32_t sig)
{
	(void)sig;
	run_enter();
	return E_NOSYS;
}

WASI_CALL(uint32_t, sched_yield)
{
	run_enter();
	return E_SUCCESS;
}

/* ---- poll_oneoff ----------------------------------------------------------------- */

#define SUB_SIZE 48
#define EVENT_SIZE 32
#define SUBCLOCK_ABSTIME 1

/* When a clock subscription fires, on the monotonic clock; false for a bad
 * clock id. */
static bool sub_deadline(const uint8_t *sub, uint64_t now, uint64_t *at)
{
	uint64_t timeout = get_u64(sub + 24);
	struct timespec ts;
	clockid_t c;

	if (!clock_of(get_u32(sub + 16), &c))
		return false;
	if (get_u32(sub + 40) & SUBCLOCK_ABSTIME) {
		uint64_t cnow;

		clock_gettime(c, &ts);
		cnow = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		*at = now + (timeout > cnow ? timeout - cnow : 0);
	} else {
		*at = timeout > UINT64_MAX - now ? UINT64_MAX : now + timeout;
	}
	return true;
}

/* Standard streams are always ready, so only clock subscriptions wait: the
 * instance sleeps while its worker serves others. */
WASI_CALL(uint32_t, poll_oneoff, uint32_t subs, uint32_t events, uint32_t n, uint32_t nevents_p)
{
	struct run_instance *in = run_enter();
	const uint8_t *s;
	uint8_t *ev;
	uint64_t start = viv_mono_ns(), wake = UINT64_MAX, at, now;
	uint32_t i, out = 0;
	bool ready;

	if (n == 0)
		return E_INVAL;
	s = run_mem(in, subs, (uint64_t)n * SUB_SIZE);
	ev = run_mem(in, events, (uint64_t)n * EVENT_SIZE);
	if (!s || !ev || !run_mem(in, nevents_p, 4))
		return E_FAULT;
	/* Descriptors are ready at once; clocks give the time to sleep. */
	for (i = 0; i < n; i++) {
		const uint8_t *sub = s + (size_t)i * SUB_SIZE;
		uint8_t tag = sub[8];
		uint8_t *e = ev + (size_t)out * EVENT_SIZE;

		if (tag == EVENTTYPE_CLOCK) {
			if (!sub_deadline(sub, start, &at))
				return E_INVAL;
			if (at < wake)
				wake = at;
			continue;
		}
		if (tag != EVENTTYPE_FD_READ && tag != EVENTTYPE_FD_WRITE)
			return E_INVAL;
		memset(e, 0, EVENT_SIZE);
		put_u64(e, get_u64(sub));
		e[10] = tag;
		if (!is_stdio(get_u32(sub + 16)))
			put_u16(e + 8, E_BADF);
		else if (tag == EVENTTYPE_FD_READ)
			put_u64(e + 16, in->req->body_len - in->stdin_off);
		out++;
	}
	ready = out > 0;
	if (!ready && wake > start) {
		run_instance_sleep(in, wake);
		/* Guest memory is looked up again after the guest was away. */
		s = run_mem(in, subs, (uint64_t)n * SUB_SIZE);
		ev = run_mem(in, events, (uint64_t)n * EVENT_SIZE);
		if (!s || !ev)
			return E_FAULT;
	}
	now = viv_mono_ns();
	for (i = 0; !ready && i < n; i++) {
		const uint8_t *sub = s + (size_t)i * SUB_SIZE;
		uint8_t *e;

		if (!sub_deadline(sub, start, &at) || at > now)
			continue;
		e = ev + (size_t)out * EVENT_SIZE;
		memset(e, 0, EVENT_SIZE);
		put_u64(e, get_u64(sub));
		e[10] = EVENTTYPE_CLOCK;
		out++;
	}
	out_u32(in, nevents_p, out);
	return E_SUCCESS;
}
