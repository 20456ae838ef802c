/* The helpers declared in viv.h: errors, buffers, time, files, hashing and
 * the operator log. */
#include "viv.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *viv_strerror(enum viv_err err)
{
	switch (err) {
	case VIV_OK:
		return "success";
	case VIV_ERR_NOMEM:
		return "out of memory";
	case VIV_ERR_IO:
		return "input/output error";
	case VIV_ERR_INVALID:
		return "invalid input";
	case VIV_ERR_NOT_FOUND:
		return "not found";
	case VIV_ERR_EXISTS:
		return "already exists";
	case VIV_ERR_TOO_BIG:
		return "too big";
	case VIV_ERR_DB:
		return "database error";
	case VIV_ERR_BUILD:
		return "build failed";
	case VIV_ERR_TIMEOUT:
		return "timed out";
	case VIV_ERR_UNSUPPORTED:
		return "not supported";
	case VIV_ERR_AUTH:
		return "not authorized";
	case VIV_ERR_BUSY:
		return "busy";
	case VIV_ERR_TRAP:
		return "guest trapped";
	case VIV_ERR_INTERNAL:
		return "internal error";
	}
	return "unknown error";
}

void viv_errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- Capped growable buffer ------------------------------------------ */

void viv_buf_init(struct viv_buf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap ? cap : SIZE_MAX;
}

static enum viv_err buf_reserve(struct viv_buf *b, size_t extra)
{
	size_t want, alloc;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return VIV_ERR_TOO_BIG;
	want = b->len + extra + 1;
	if (want <= b->alloc)
		return VIV_OK;
	alloc = b->alloc ? b->alloc : 256;
	while (alloc < want)
		alloc = alloc > SIZE_MAX / 2 ? want : alloc * 2;
	p = realloc(b->data, alloc);
	if (!p)
		return VIV_ERR_NOMEM;
	b->data = p;
	b->alloc = alloc;
	return VIV_OK;
}

enum viv_err viv_buf_append(struct viv_buf *b, const void *p, size_t n)
{
	enum viv_err err;

	if (b->cap == 0)
		b->cap = SIZE_MAX;
	if (n > b->cap || b->len > b->cap - n)
		return VIV_ERR_TOO_BIG;
	err = buf_reserve(b, n);
	if (err)
		return err;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return VIV_OK;
}

bool viv_buf_append_trunc(struct viv_buf *b, const void *p, size_t n)
{
	size_t room;

	if (b->cap == 0)
		b->cap = SIZE_MAX;
	room = b->len < b->cap ? b->cap - b->len : 0;
	if (viv_buf_append(b, p, n <= room ? n : room) != VIV_OK)
		return false;
	return n <= room;
}

bool viv_buf_printf_trunc(struct viv_buf *b, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	bool all;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	all = viv_buf_append_trunc(b, text, (size_t)n);
	free(text);
	return all;
}

enum viv_err viv_buf_printf(struct viv_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[512];
	char *big = NULL;
	int n;
	enum viv_err err;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return VIV_ERR_INVALID;
	if ((size_t)n < sizeof(small))
		return viv_buf_append(b, small, (size_t)n);
	big = malloc((size_t)n + 1);
	if (!big)
		return VIV_ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	err = viv_buf_append(b, big, (size_t)n);
	free(big);
	return err;
}

char *viv_buf_steal(struct viv_buf *b)
{
	char *p = b->data;
	size_t cap = b->cap;

	if (!p)
		p = strdup("");
	memset(b, 0, sizeof(*b));
	b->cap = cap;
	return p;
}

void viv_buf_free(struct viv_buf *b)
{
	size_t cap;

	if (!b)
		return;
	cap = b->cap;
	free(b->data);
	memset(b, 0, sizeof(*b));
	b->cap = cap;
}

/* ---- Time --------------------------------------------------------------- */

int64_t viv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t viv_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Hashing and randomness ----------------------------------------- */

static void to_hex(const unsigned char *md, unsigned n, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

void viv_sha256_hex(const void *data, size_t len, char hex[VIV_SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	to_hex(md, n, hex);
}

enum viv_err viv_sha256_begin(struct viv_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	h->ctx = NULL;
	if (!ctx)
		return VIV_ERR_NOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return VIV_ERR_INTERNAL;
	}
	h->ctx = ctx;
	return VIV_OK;
}

void viv_sha256_update(struct viv_sha256 *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->ctx, data, len);
}

void viv_sha256_end(struct viv_sha256 *h, char hex[VIV_SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	to_hex(md, n, hex);
}

enum viv_err viv_sha256_file(const char *path, char hex[VIV_SHA256_HEX_LEN + 1])
{
	struct viv_sha256 h;
	char chunk[65536];
	enum viv_err err;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
	err = viv_sha256_begin(&h);
	if (err) {
		close(fd);
		return err;
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err = VIV_ERR_IO;
		if (r <= 0)
			break;
		viv_sha256_update(&h, chunk, (size_t)r);
	}
	close(fd);
	viv_sha256_end(&h, hex);
	return err;
}

enum viv_err viv_random(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return VIV_ERR_IO;
		p += r;
		n -= (size_t)r;
	}
	return VIV_OK;
}

/* ---- Operator log -------------------------------------------------------- */

static const char *log_role = "vivd";
static enum viv_level log_min = VIV_INFO;

void viv_log_role(const char *role)
{
	log_role = role;
}

void viv_log_level(enum viv_level min)
{
	log_min = min;
}

void viv_log(enum viv_level level, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s %ld] ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000, names[level], log_role, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	/* One write per line so that lines from many processes do not mix. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

/* ---- Names -------------------------------------------------------------- */

bool viv_app_name_valid(const char *s)
{
	size_t n, i;

	if (!s)
		return false;
	n = strlen(s);
	if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

bool viv_hex64_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < VIV_SHA256_HEX_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[i] == '\0';
}
