/* Access lines: the one line per request that an app's log gets, written
 * without printf on the request path and escaped so that whatever a client
 * puts in its request line stays inside one line of the agreed shape. */
#include <string.h>

#include "runner_int.h"

/* The most bytes the method and the target take in a line, escaped. */
#define METHOD_OUT_MAX 64
#define TARGET_OUT_MAX 2048

/* Appends bytes as they may appear in a line: printable ASCII but the
 * space and the backslash as they are, the backslash doubled, everything
 * else as \xHH. Stops before the output would pass max bytes and marks the
 * cut with "..."; nothing at all is "-". */
static char *put_escaped(char *p, const char *s, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	char *end = p + max;
	size_t i;

	if (n == 0) {
		*p++ = '-';
		return p;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = c > 0x20 && c < 0x7f ? (c == '\\' ? 2 : 1) : 4;

		if (need > (size_t)(end - p))
			break;
		if (need == 1) {
			*p++ = (char)c;
		} else if (need == 2) {
			*p++ = '\\';
			*p++ = '\\';
		} else {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	if (i < n) {
		memcpy(p, "...", 3);
		p += 3;
	}
	return p;
}

static char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static char *put_uint(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Nanoseconds as milliseconds with two decimals, rounded: "1.83". */
static char *put_ms(char *p, uint64_t ns)
{
	uint64_t hundredths = (ns + 5000) / 10000;

	p = put_uint(p, hundredths / 100);
	*p++ = '.';
	*p++ = (char)('0' + hundredths % 100 / 10);
	*p++ = (char)('0' + hundredths % 10);
	return p;
}

size_t run_access_line(char *buf, const struct run_access *a)
{
	char *p = buf;

	/* The escaped fields, their cut marks, three numbers of at most 20
	 * digits and the fixed words. */
	_Static_assert(METHOD_OUT_MAX + TARGET_OUT_MAX + 2 * 3 + 3 * 20 + 48 < RUN_ACCESS_LINE_MAX,
	               "an access line may not fit its buffer");
	p = put_escaped(p, a->method, a->method_len, METHOD_OUT_MAX);
	*p++ = ' ';
	p = put_escaped(p, a->target, a->target_len, TARGET_OUT_MAX);
	*p++ = ' ';
	p = put_uint(p, a->status);
	*p++ = ' ';
	p = put_ms(p, a->total_ns);
	switch (a->by) {
	case RUN_ACCESS_INSTANCE:
		p = put_str(p, " ms (instance ");
		p = put_ms(p, a->instance_ns);
		p = put_str(p, " ms)");
		break;
	case RUN_ACCESS_STATIC:
		p = put_str(p, " ms (static file)");
		break;
	case RUN_ACCESS_NONE:
		p = put_str(p, " ms (no instance)");
		break;
	}
	*p = '\0';
	return (size_t)(p - buf);
}
