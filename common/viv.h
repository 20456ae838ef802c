/* Shared by every Vivarium module: the status enum, capped buffers, files,
 * hashing, time and the operator log. Nothing here knows about apps. */
#ifndef VIV_H
#define VIV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The one status type of the project. VIV_OK is zero so that
 * "err = f(); if (err) goto out;" reads naturally. */
/* On a function that returns an enum viv_err: a caller that drops the
 * result is a compile error (GCC ignores a cast to void here; a caller that
 * truly has nothing to do with a failure says so in an if). */
#define VIV_MUST_CHECK __attribute__((warn_unused_result))

enum viv_err {
	VIV_OK = 0,
	VIV_ERR_NOMEM,       /* an allocation failed */
	VIV_ERR_IO,          /* a file or socket operation failed */
	VIV_ERR_INVALID,     /* input was malformed or broke a rule */
	VIV_ERR_NOT_FOUND,   /* no such app, deployment, key or file */
	VIV_ERR_EXISTS,      /* it is already there */
	VIV_ERR_TOO_BIG,     /* a hard cap was reached */
	VIV_ERR_DB,          /* SQLite reported an error */
	VIV_ERR_BUILD,       /* a build step failed; details are in the log */
	VIV_ERR_TIMEOUT,     /* a deadline passed */
	VIV_ERR_UNSUPPORTED, /* valid, but not something Vivarium provides */
	VIV_ERR_AUTH,        /* missing or wrong credentials */
	VIV_ERR_BUSY,        /* try again later */
	VIV_ERR_TRAP,        /* guest code trapped */
	VIV_ERR_INTERNAL,    /* a bug or an unexpected system state */
};

/* A short English phrase for err; never NULL, static storage. */
const char *viv_strerror(enum viv_err err);

/* Writes printf-style text into buf (size len, may be 0) and always
 * NUL-terminates when len > 0. Used for the caller-supplied detail buffers
 * that go with enum viv_err results. */
void viv_errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Capped growable buffer ------------------------------------------ */

/* A byte buffer that refuses to grow past cap. data is NUL-terminated after
 * len bytes whenever it is non-NULL, so text can be used as a C string. */
struct viv_buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0 means SIZE_MAX */
};

/* Sets up an empty buffer with the given cap (0: no cap). */
void viv_buf_init(struct viv_buf *b, size_t cap);
/* Appends n bytes. VIV_ERR_TOO_BIG leaves the buffer unchanged when
 * len + n > cap; VIV_ERR_NOMEM when allocation fails. */
VIV_MUST_CHECK enum viv_err viv_buf_append(struct viv_buf *b, const void *p, size_t n);
/* Appends formatted text, with the same errors as viv_buf_append. */
VIV_MUST_CHECK enum viv_err viv_buf_printf(struct viv_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Appends as much of p as fits under the cap and reports whether all did:
 * for text such as a log, whose cap is a limit and not an error. */
bool viv_buf_append_trunc(struct viv_buf *b, const void *p, size_t n);
/* viv_buf_append_trunc of formatted text. */
bool viv_buf_printf_trunc(struct viv_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Detaches the data (caller frees with free()) and resets the buffer. Never
 * returns NULL: an empty buffer yields an empty string, or NULL only when
 * that allocation fails. */
char *viv_buf_steal(struct viv_buf *b);
/* Frees the data and resets the buffer; accepts a zeroed buffer. */
void viv_buf_free(struct viv_buf *b);

/* ---- Time --------------------------------------------------------------- */

/* Milliseconds since the Unix epoch (wall clock), for records. */
int64_t viv_now_ms(void);
/* Monotonic nanoseconds, for measuring durations. */
uint64_t viv_mono_ns(void);

/* ---- Files -------------------------------------------------------------- */

/* mkdir -p with the given mode for any directory it creates. */
VIV_MUST_CHECK enum viv_err viv_mkdirs(const char *path, unsigned mode);
/* Writes data to path so that path appears only complete: a new temporary
 * file beside it (a random name, created with O_EXCL and O_NOFOLLOW, so
 * that nothing planted in the folder is written through), fsync, rename
 * over path (which replaces a link at path rather than following it),
 * fsync of the folder. */
VIV_MUST_CHECK enum viv_err viv_write_file_atomic(const char *path, const void *data, size_t len,
                                                  unsigned mode);
/* viv_write_file_atomic for name (one component) in the folder open at
 * dirfd. VIV_ERR_INVALID for a name with a '/', "." or "..". */
VIV_MUST_CHECK enum viv_err viv_write_file_at(int dirfd, const char *name, const void *data,
                                              size_t len, unsigned mode);
/* Writes all len bytes of data to fd, going on after short writes and
 * EINTR. VIV_ERR_IO (errno says why) when a write fails. */
VIV_MUST_CHECK enum viv_err viv_write_all(int fd, const void *data, size_t len);
/* Copies what is left to read of in to out, up to its end: at most max
 * bytes (UINT64_MAX: no cap), else VIV_ERR_TOO_BIG after copying max.
 * *copied_out (may be NULL) is how many bytes were written, whatever the
 * result. VIV_ERR_IO when a read or a write fails. */
VIV_MUST_CHECK enum viv_err viv_copy_fd(int in, int out, uint64_t max, uint64_t *copied_out);
/* Reads a whole file of at most cap bytes. On success *out (caller frees
 * with free()) is NUL-terminated after *len_out bytes. VIV_ERR_TOO_BIG when
 * the file is larger than cap, VIV_ERR_NOT_FOUND when it does not exist.
 * Follows links: only for files the platform itself made. */
VIV_MUST_CHECK enum viv_err viv_read_file(const char *path, size_t cap, char **out,
                                          size_t *len_out);
/* viv_read_file from an open descriptor, read to its end. */
VIV_MUST_CHECK enum viv_err viv_read_fd(int fd, size_t cap, char **out, size_t *len_out);
/* Removes a directory tree (or a file); missing paths are not an error.
 * Works from descriptors and never follows a link, so a tree that hostile
 * processes wrote is removed without touching anything outside it;
 * folders it owns but cannot write or read are opened up first. */
VIV_MUST_CHECK enum viv_err viv_rmtree(const char *path);
/* viv_rmtree for clean-up that has nothing else to do when it fails: the
 * failure is logged as a warning with the reason. */
void viv_rmtree_or_log(const char *path);
/* viv_rmtree of name in the folder open at dirfd. */
VIV_MUST_CHECK enum viv_err viv_rmtree_at(int dirfd, const char *name);
/* Removes everything in the folder open at dirfd, as viv_rmtree would,
 * and leaves the folder. */
VIV_MUST_CHECK enum viv_err viv_empty_dir_fd(int dirfd);
/* Joins two path parts with one '/'. Caller frees with free(); NULL on
 * allocation failure. */
char *viv_path_join(const char *a, const char *b);

/* The folder of the platform's own files (include/ for artifact builds,
 * sdk/, tools/ with the npm toolchains, web/ with the page): the
 * environment's VIVARIUM_SHARE, else share/vivarium found beside the
 * program (PREFIX/bin/vivd finds PREFIX/share/vivarium; a build tree has
 * one that points into the source tree). Static storage; NULL when there is
 * none. Nothing of the source tree is compiled in. */
const char *viv_share_dir(void);

/* ---- Files that hostile processes wrote ---------------------------------- */

/* Opens rel beneath the folder open at dirfd, never following a symbolic
 * or magic link in any component and never leaving the folder (by ".."
 * or an absolute path): openat2 with RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS and
 * RESOLVE_NO_MAGICLINKS, or one O_NOFOLLOW component at a time on kernels
 * without it (which refuses every ".."). flags and mode as for openat; O_CLOEXEC is added. Returns
 * the descriptor, or -1 with errno (ELOOP for a link, EXDEV for a path
 * that leaves the folder). */
int viv_open_beneath(int dirfd, const char *rel, int flags, unsigned mode);

struct stat;

/* Opens rel beneath dirfd (viv_open_beneath) for reading, only if it is a
 * regular file with no other name: a link, a folder, a FIFO, a device or a
 * file with several hard links is VIV_ERR_INVALID; a missing file
 * VIV_ERR_NOT_FOUND; otherwise VIV_ERR_IO. why (may be NULL) gets a phrase
 * that completes "FILE ...: " ("it is a symbolic link"). On success *fd_out
 * is the descriptor (caller closes it) and *st_out (may be NULL) its
 * fstat. Opening never blocks on a FIFO. */
VIV_MUST_CHECK enum viv_err viv_open_regular_beneath(int dirfd, const char *rel, int *fd_out,
                                                     struct stat *st_out, char *why, size_t whylen);

/* Reads the file rel beneath dirfd as viv_open_regular_beneath() opens it,
 * at most cap bytes (VIV_ERR_TOO_BIG beyond). Results as viv_read_file(),
 * with the reason for a refusal in why. */
VIV_MUST_CHECK enum viv_err viv_read_beneath(int dirfd, const char *rel, size_t cap, char **out,
                                             size_t *len_out, char *why, size_t whylen);

/* ---- Hashing and randomness ----------------------------------------- */

#define VIV_SHA256_HEX_LEN 64

/* sha256 of data as 64 lowercase hex digits plus NUL in hex (65 bytes). */
void viv_sha256_hex(const void *data, size_t len, char hex[VIV_SHA256_HEX_LEN + 1]);

/* Incremental sha256 over several parts. */
struct viv_sha256 {
	void *ctx; /* EVP_MD_CTX */
};
VIV_MUST_CHECK enum viv_err viv_sha256_begin(struct viv_sha256 *h);
void viv_sha256_update(struct viv_sha256 *h, const void *data, size_t len);
/* Finishes and frees the context whatever happens. */
void viv_sha256_end(struct viv_sha256 *h, char hex[VIV_SHA256_HEX_LEN + 1]);
/* sha256 of a file's contents. */
VIV_MUST_CHECK enum viv_err viv_sha256_file(const char *path, char hex[VIV_SHA256_HEX_LEN + 1]);

/* Fills buf with n bytes from the kernel CSPRNG. */
VIV_MUST_CHECK enum viv_err viv_random(void *buf, size_t n);

/* ---- Operator log -------------------------------------------------------- */

enum viv_level { VIV_DEBUG, VIV_INFO, VIV_WARN, VIV_ERROR };

/* One line on stderr with a timestamp, the level, the process role (set by
 * viv_log_role) and the pid. This is the operator's log, not an app's. */
void viv_log(enum viv_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Names the process in every following log line, e.g. "api" or "worker 1".
 * The string is borrowed for the life of the process. */
void viv_log_role(const char *role);
/* Lines below this level are dropped (default VIV_INFO). */
void viv_log_level(enum viv_level min);

/* ---- Names -------------------------------------------------------------- */

/* True when s is a valid app name: a DNS label of 1 to 63 characters,
 * lowercase letters, digits and '-', not starting or ending with '-'. */
bool viv_app_name_valid(const char *s);

/* True when s is 64 lowercase hex digits, as a sha256 is written (artifact
 * hashes, upload digests, build keys); false for NULL. */
bool viv_hex64_valid(const char *s);

/* When the n bytes at line are the header line "name: value" (the name in
 * any case), copies the value, without the blanks around it and the line
 * end, into dst (cap bytes, cut to fit) and returns true: for libcurl's
 * header callbacks. */
bool viv_header_take(const char *line, size_t n, const char *name, char *dst, size_t cap);

/* ---- Platforms (viv_platform.c) ------------------------------------------------- */

/* An artifact is machine code for one CPU architecture, linked against one C
 * library: "x86_64-linux-gnu glibc 2.36". */
#define VIV_PLATFORM_MAX 96

/* This host's platform, in buf. */
void viv_platform(char buf[VIV_PLATFORM_MAX]);

/* Whether an artifact built on platform built loads on platform host (the
 * same architecture and C library, the host's glibc no older); why says
 * what differs when not. */
bool viv_platform_runs(const char *built, const char *host, char *why, size_t whylen);

/* ---- Bytes from outside (viv_text.c) ----------------------------------------- */

/* The length (1 to 4) of the well-formed UTF-8 sequence that starts the n
 * bytes at p, or 0 when they do not start with one (an overlong form, a
 * UTF-16 surrogate, past U+10FFFF, or cut short). A NUL byte is U+0000. */
size_t viv_utf8_seq(const void *p, size_t n);
/* Whether the n bytes at s are well-formed UTF-8 (NUL bytes included). */
bool viv_utf8_valid(const void *s, size_t n);
/* How many of the first max bytes of text can be kept without cutting a
 * UTF-8 sequence in two; text has more than max bytes. */
size_t viv_utf8_cut(const char *text, size_t max);

/* Parses the decimal number at s: one or more digits (no sign, no blank),
 * at most max. With end NULL, the digits must be the whole string; else
 * *end is where they stop. False, with *out untouched, otherwise. */
bool viv_parse_u64(const char *s, const char **end, uint64_t max, uint64_t *out);

/* Reads an unsigned LEB128 number of at most 32 bits (WebAssembly's u32)
 * from the n bytes at p: its length in bytes (1 to 5) with *out set, 0
 * when the bytes end before the number does, -1 when it does not fit in 32
 * bits. */
int viv_leb_u32(const void *p, size_t n, uint32_t *out);

/* ---- Outbound URLs (viv_origin.c) -------------------------------------------- */

#define VIV_ORIGIN_HOST_MAX 256

/* A URL, or a pattern of URLs an app may send requests to (a manifest's
 * "outbound": "https://api.example.com", "http://x.test:8080/api", or a
 * host of "*.example.org" for the names below example.org), in the parts
 * the allow list compares, as libcurl's URL parser splits them. */
struct viv_origin {
	char scheme[8];                 /* "http" or "https" */
	bool wildcard;                  /* a pattern's "*.": names below host only */
	char host[VIV_ORIGIN_HOST_MAX]; /* lowercase; without the "*." */
	unsigned port;                  /* as given, else the scheme's (80, 443) */
	bool port_given;
	char *path; /* "/" when none; owned */
};

/* Splits text, which must start "http://" or "https://" and hold no blank,
 * control or non-ASCII byte. A pattern (pattern true) may start its host
 * with "*.", and must have a host of letters, digits, '-' and '.' (no
 * empty label, none starting or ending the name with '.' or '-'), no user,
 * query or fragment. VIV_ERR_INVALID when text is not such a URL,
 * VIV_ERR_NOMEM. Caller clears *out with viv_origin_clear() (it is zeroed
 * on failure). */
VIV_MUST_CHECK enum viv_err viv_origin_parse(const char *text, bool pattern,
                                             struct viv_origin *out);

/* Frees the path and zeroes o; accepts NULL. */
void viv_origin_clear(struct viv_origin *o);

/* Whether the pattern allows a request to url: the same scheme and port,
 * the same host (or, for "*.", a name below it), and, when the pattern has
 * a path, that path or one below it. */
bool viv_origin_allows(const struct viv_origin *pattern, const struct viv_origin *url);

/* ---- Uploads ------------------------------------------------------------------ */

/* The largest upload accepted unless the operator says otherwise. */
#define VIV_UPLOAD_MAX_DEFAULT (64u * 1024 * 1024)

/* What the first bytes of an upload say it is. */
enum viv_upload_kind {
	VIV_UPLOAD_UNKNOWN = 0,
	VIV_UPLOAD_WASM,    /* a WebAssembly binary */
	VIV_UPLOAD_ARCHIVE, /* tar, gzip, bzip2, xz, zstd or zip */
	VIV_UPLOAD_WAT,     /* one WebAssembly text file: its first token is "(module" */
};

/* "wasm", "archive" or "wat"; NULL for VIV_UPLOAD_UNKNOWN. */
const char *viv_upload_kind_name(enum viv_upload_kind kind);

/* The kind of an upload whose first n bytes are head. n may be short (0
 * gives VIV_UPLOAD_UNKNOWN); WebAssembly text whose comments fill all n
 * bytes is unknown. */
enum viv_upload_kind viv_upload_sniff(const void *head, size_t n);

/* The most bytes viv_upload_sniff() needs: tar's magic sits at 257, and
 * WebAssembly text may start with a long comment. */
#define VIV_UPLOAD_SNIFF_MAX 4096

/* ---- Guest limits ------------------------------------------------------------ */

/* Per-request limits of an app. A manifest may lower them, and raise them
 * only up to the platform maxima. */
struct viv_limits {
	uint32_t memory_mb; /* linear memory */
	uint32_t cpu_ms;    /* time spent running guest code */
	uint32_t wall_ms;   /* time from request to response */
};

#define VIV_LIMIT_MEMORY_MB_DEFAULT 128
#define VIV_LIMIT_MEMORY_MB_MAX 1024
#define VIV_LIMIT_CPU_MS_DEFAULT 500
#define VIV_LIMIT_CPU_MS_MAX 10000
#define VIV_LIMIT_WALL_MS_DEFAULT 10000
#define VIV_LIMIT_WALL_MS_MAX 60000

#endif
