/* libFuzzer target for the CGI response parser (run_cgi_response()): each
 * input is what a WASI command wrote to stdout. Whatever it is, the parser
 * either refuses it with a line in the app's log, or gives a status from
 * 100 to 599 and headers and a body that lie inside the output, with names
 * that are HTTP tokens and values without control characters. The output
 * sits in a buffer of exactly its size, so AddressSanitizer sees any read
 * past it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_cgi: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run_pool pool;
	struct run_instance in;
	char *copy = malloc(size ? size : 1);
	bool ok;

	memset(&pool, 0, sizeof(pool));
	memset(&in, 0, sizeof(in));
	pool.cfg.log_line_max = 4096;
	pool.cfg.log_bytes_max = 65536;
	in.pool = &pool;
	memcpy(copy, data, size);
	ok = run_cgi_response(&in, size ? copy : NULL, size);
	if (ok) {
		const char *lo = copy, *hi = copy + size;

		check(in.resp.status >= 100 && in.resp.status <= 599, "status out of range");
		check(in.resp.body >= lo && in.resp.body + in.resp.body_len == hi,
		      "the body is not the rest of the output");
		for (size_t i = 0; i < in.resp.n_headers; i++) {
			const struct run_header *h = &in.resp.headers[i];

			check(h->name >= lo && h->name + h->name_len <= hi, "a name lies outside");
			check(h->value >= lo && h->value + h->value_len <= hi,
			      "a value lies outside");
			check(run_http_token(h->name, h->name_len), "a name is not a token");
			for (size_t k = 0; k < h->value_len; k++)
				check((unsigned char)h->value[k] >= 0x20 || h->value[k] == '\t',
				      "a value has a control character");
		}
	} else {
		check(in.n_logs > 0, "refused without a word in the log");
	}
	for (size_t i = 0; i < in.n_logs; i++)
		free(in.logs[i].message);
	free(in.resp.headers);
	free(copy);
	return 0;
}
