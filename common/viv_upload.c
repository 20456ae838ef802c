/* What an upload is, from its first bytes: the one check the API makes
 * before it accepts an upload and the one the pipeline makes before it
 * unpacks it. */
#include <stdbool.h>
#include <string.h>

#include "viv.h"

const char *viv_upload_kind_name(enum viv_upload_kind kind)
{
	switch (kind) {
	case VIV_UPLOAD_WASM:
		return "wasm";
	case VIV_UPLOAD_ARCHIVE:
		return "archive";
	case VIV_UPLOAD_WAT:
		return "wat";
	case VIV_UPLOAD_UNKNOWN:
		break;
	}
	return NULL;
}

/* A tar header without the ustar magic (old v7 archives): its checksum
 * field is the octal sum of the header's bytes with that field as spaces. */
static bool tar_checksum_ok(const unsigned char *h)
{
	unsigned long want = 0, sum = 0;
	int i, digits = 0;

	for (i = 148; i < 156 && (h[i] == ' ' || h[i] == '\0'); i++)
		;
	for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++, digits++)
		want = want * 8 + (unsigned long)(h[i] - '0');
	if (digits == 0)
		return false;
	for (i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum == want && h[0] != '\0';
}

/* Skips whitespace and WebAssembly text comments (";;" to the end of the
 * line, and "(;" ... ";)", which nest) from h[i]: the index of the first
 * token, or n when the bytes end first. */
static size_t wat_skip(const unsigned char *h, size_t n, size_t i)
{
	while (i < n) {
		if (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r') {
			i++;
		} else if (i + 1 < n && h[i] == ';' && h[i + 1] == ';') {
			while (i < n && h[i] != '\n')
				i++;
		} else if (i + 1 < n && h[i] == '(' && h[i + 1] == ';') {
			size_t depth = 0;

			do {
				if (i + 1 < n && h[i] == '(' && h[i + 1] == ';') {
					depth++;
					i += 2;
				} else if (i + 1 < n && h[i] == ';' && h[i + 1] == ')') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			} while (depth > 0 && i < n);
			if (depth > 0)
				return n;
		} else {
			return i;
		}
	}
	return n;
}

/* Text whose first token is "(module" followed by a delimiter. */
static bool wat_head(const unsigned char *h, size_t n)
{
	size_t i = 0;

	if (n >= 3 && memcmp(h, "\xef\xbb\xbf", 3) == 0)
		i = 3; /* a UTF-8 byte order mark */
	i = wat_skip(h, n, i);
	if (n - i < 8 || memcmp(h + i, "(module", 7) != 0)
		return false;
	return strchr(" \t\r\n();$", h[i + 7]) != NULL && h[i + 7] != '\0';
}

enum viv_upload_kind viv_upload_sniff(const void *head, size_t n)
{
	const unsigned char *h = head;

	if (!head || n == 0)
		return VIV_UPLOAD_UNKNOWN;
	if (n >= 4 && memcmp(h, "\0asm", 4) == 0)
		return VIV_UPLOAD_WASM;
	if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
		return VIV_UPLOAD_ARCHIVE; /* gzip */
	if (n >= 3 && memcmp(h, "BZh", 3) == 0)
		return VIV_UPLOAD_ARCHIVE;
	if (n >= 6 && memcmp(h,
	                     "\xfd"
	                     "7zXZ\0",
	                     6) == 0)
		return VIV_UPLOAD_ARCHIVE;
	if (n >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0)
		return VIV_UPLOAD_ARCHIVE; /* zstd */
	if (n >= 4 && (memcmp(h, "PK\3\4", 4) == 0 || memcmp(h, "PK\5\6", 4) == 0))
		return VIV_UPLOAD_ARCHIVE;
	if (n >= 262 && memcmp(h + 257, "ustar", 5) == 0)
		return VIV_UPLOAD_ARCHIVE;
	if (n >= 512 && tar_checksum_ok(h))
		return VIV_UPLOAD_ARCHIVE;
	if (wat_head(h, n))
		return VIV_UPLOAD_WAT;
	return VIV_UPLOAD_UNKNOWN;
}
