/* Echo: answers with the method, path, query, headers and body it received,
 * headers one per line with lower-case names, sorted by name. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <vivarium.h>

static int by_name(const void *a, const void *b)
{
	const struct viv_header *x = *(const struct viv_header *const *)a;
	const struct viv_header *y = *(const struct viv_header *const *)b;
	int c = strcasecmp(x->name, y->name);

	/* Values of one header keep the order they came in. */
	if (c == 0)
		c = x < y ? -1 : x > y;
	return c;
}

void run(void)
{
	size_t n, body_len, i, out_len = 0;
	const struct viv_header *headers = viv_headers(&n);
	const struct viv_header **sorted = calloc(n + 1, sizeof(*sorted));
	const char *body = viv_body(&body_len);
	char *out = NULL;
	FILE *f = open_memstream(&out, &out_len);

	if (!sorted || !f) {
		viv_respond(500, "text/plain", "out of memory\n");
		return;
	}
	fprintf(f, "method: %s\npath: %s\nquery: %s\n", viv_method(), viv_path(), viv_query());
	for (i = 0; i < n; i++)
		sorted[i] = &headers[i];
	qsort(sorted, n, sizeof(*sorted), by_name);
	for (i = 0; i < n; i++) {
		fputs("header ", f);
		for (const char *c = sorted[i]->name; *c; c++)
			fputc(tolower((unsigned char)*c), f);
		fprintf(f, ": %s\n", sorted[i]->value);
	}
	fputs("body: ", f);
	fwrite(body, 1, body_len, f);
	fputc('\n', f);
	fclose(f);

	viv_set_header("Content-Type", "text/plain");
	viv_set_body(out, out_len);
	free(out);
	free(sorted);
}
