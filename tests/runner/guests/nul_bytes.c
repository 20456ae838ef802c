/* Arguments with NUL bytes where the host expects text, each found by the
 * host-call fuzz target (tests/fuzz): a method, a header name, a
 * configuration key. The host refuses each without reading past what it
 * copied; the answer says what every call returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_hostcalls.h>

void run(void)
{
	struct string_slice v = {{"v"}, 1};
	char out[256], *val = NULL;
	size_t len = 0;
	int n;

	hostcall_init_mm(malloc, free);
	n = snprintf(out, sizeof(out), "create %d\n",
	             hostcall_req_create("G\0T", 3, "http://example.com/", 19));
	n += snprintf(out + n, sizeof(out) - (size_t)n, "header %d\n",
	              hostcall_resp_set_header(RESPONSE_OUTGOING, "X\0A", 3, &v, 1));
	n += snprintf(out + n, sizeof(out) - (size_t)n, "config %d\n",
	              hostcall_config_get(&val, &len, "EMPTY=\0", 7));
	hostcall_resp_set_body(RESPONSE_OUTGOING, out, (size_t)n);
}
