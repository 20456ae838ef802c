/* Reading wasm2c 1.0.32's C line by line, for the steps that reshape it
 * before it is compiled (pipe_aot_split.c, pipe_aot_rewrite.c). */
#include "pipeline_int.h"

#include <stdlib.h>
#include <string.h>

#define STATIC_KW "static "
#define INSTANCE_PARAM "(Z_guest_instance_t*"

bool pipe_line_starts(const struct pipe_line *l, const char *s)
{
	size_t n = strlen(s);

	return l->n >= n && memcmp(l->p, s, n) == 0;
}

bool pipe_line_ends(const struct pipe_line *l, const char *s)
{
	size_t n = strlen(s);

	return l->n >= n && memcmp(l->p + l->n - n, s, n) == 0;
}

bool pipe_line_is(const struct pipe_line *l, const char *s)
{
	return l->n == strlen(s) && memcmp(l->p, s, l->n) == 0;
}

bool pipe_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

bool pipe_func_start(const struct pipe_line *l)
{
	const char *paren, *name;
	size_t head;

	if (!pipe_line_starts(l, STATIC_KW))
		return false;
	paren = memmem(l->p, l->n, INSTANCE_PARAM, strlen(INSTANCE_PARAM));
	if (!paren)
		return false;
	head = (size_t)(paren - l->p);
	for (size_t i = strlen(STATIC_KW); i < head; i++) {
		if (!pipe_ident_char(l->p[i]) && l->p[i] != ' ')
			return false;
	}
	for (name = paren; name > l->p && pipe_ident_char(name[-1]); name--)
		;
	return paren - name >= 5 && strncmp(name, "w2c_", 4) == 0 &&
	       name - l->p > (ptrdiff_t)strlen(STATIC_KW) && name[-1] == ' ';
}

/* Lines that wasm2c wraps a long parameter list onto are indented, and
 * carry parameters only. */
static bool head_continues(const struct pipe_line *l)
{
	return l->n > 0 && l->p[0] == ' ' && !memchr(l->p, ';', l->n) &&
	       (!memchr(l->p, '{', l->n) || pipe_line_ends(l, ") {"));
}

bool pipe_func_head(const struct pipe_line *lines, size_t n, size_t i, bool *is_def,
                    size_t *last_out)
{
	if (i >= n || !pipe_func_start(&lines[i]))
		return false;
	for (size_t j = i; j < n && (j == i || head_continues(&lines[j])); j++) {
		if (pipe_line_ends(&lines[j], ");") || pipe_line_ends(&lines[j], ") {")) {
			*is_def = pipe_line_ends(&lines[j], ") {");
			*last_out = j;
			return true;
		}
	}
	return false;
}

enum viv_err pipe_lines_split(const char *text, size_t len, struct pipe_line **out, size_t *n_out)
{
	size_t n = 1, k = 0;
	const char *p = text, *end = text + len;
	struct pipe_line *lines;

	*out = NULL;
	*n_out = 0;
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	lines = calloc(n, sizeof(*lines));
	if (!lines)
		return VIV_ERR_NOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t m = nl ? (size_t)(nl - p) : (size_t)(end - p);

		lines[k].p = p;
		lines[k].n = m;
		k++;
		p += m + (nl ? 1 : 0);
	}
	*out = lines;
	*n_out = k;
	return VIV_OK;
}
