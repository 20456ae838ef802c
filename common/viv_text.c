/* Bytes from outside, read once and the same way everywhere: UTF-8,
 * decimal numbers, and WebAssembly's LEB128 integers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "viv.h"

/* ---- UTF-8 ----------------------------------------------------------------------- */

size_t viv_utf8_seq(const void *p, size_t n)
{
	const unsigned char *s = p;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		/* No overlong forms and no UTF-16 surrogates. */
		len = 3;
		lo = s[0] == 0xe0 ? 0xa0 : 0x80;
		hi = s[0] == 0xed ? 0x9f : 0xbf;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		/* No overlong forms and nothing past U+10FFFF. */
		len = 4;
		lo = s[0] == 0xf0 ? 0x90 : 0x80;
		hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

bool viv_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0, k;

	while (i < n) {
		k = viv_utf8_seq(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

size_t viv_utf8_cut(const char *text, size_t max)
{
	while (max > 0 && ((unsigned char)text[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* ---- Numbers --------------------------------------------------------------------- */

bool viv_parse_u64(const char *s, const char **end, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *stop;

	/* strtoull would take a sign and leading space: only digits here. */
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &stop, 10);
	if (errno == ERANGE || v > max)
		return false;
	if (end)
		*end = stop;
	else if (*stop != '\0')
		return false;
	*out = (uint64_t)v;
	return true;
}

int viv_leb_u32(const void *p, size_t n, uint32_t *out)
{
	const unsigned char *b = p;
	uint32_t v = 0;

	*out = 0;
	for (size_t i = 0; i < 5; i++) {
		if (i >= n)
			return 0;
		/* The fifth byte holds bits 28 to 31 only, and ends it. */
		if (i == 4 && (b[i] & 0xf0))
			return -1;
		v |= (uint32_t)(b[i] & 0x7f) << (7 * i);
		if (!(b[i] & 0x80)) {
			*out = v;
			return (int)i + 1;
		}
	}
	return -1;
}

bool viv_header_take(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
	size_t k = strlen(name), v;

	if (cap == 0 || n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	line += k + 1;
	n -= k + 1;
	while (n && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' ' ||
	             line[n - 1] == '\t'))
		n--;
	v = n < cap - 1 ? n : cap - 1;
	memcpy(dst, line, v);
	dst[v] = '\0';
	return true;
}
