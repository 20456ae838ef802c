/* The test upstream; see upstream.h. */
#include "upstream.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "viv.h"

struct tsup_upstream {
	struct MHD_Daemon *d;
	unsigned port;
	unsigned hits;
};

struct body {
	struct viv_buf b;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text,
                             size_t len, const char *hname, const char *hval)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (hname)
		MHD_add_response_header(r, hname, hval);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_len, void **state)
{
	struct tsup_upstream *u = cls;
	struct body *b = *state;
	const char *arg;

	(void)version;
	if (!b) {
		b = calloc(1, sizeof(*b));
		viv_buf_init(&b->b, 1 << 20);
		*state = b;
		return MHD_YES;
	}
	if (*data_len) {
		if (viv_buf_append(&b->b, data, *data_len))
			abort();
		*data_len = 0;
		return MHD_YES;
	}
	__atomic_add_fetch(&u->hits, 1, __ATOMIC_SEQ_CST);
	if (strcmp(url, "/hello") == 0)
		return reply(c, 200, "upstream says hi", 16, "X-Upstream", "yes");
	if (strcmp(url, "/echo") == 0) {
		char *out;
		int n = asprintf(&out, "%s\n%s", method, b->b.data ? b->b.data : "");
		enum MHD_Result rc = reply(c, 200, out, (size_t)n, NULL, NULL);
		free(out);
		return rc;
	}
	if (strcmp(url, "/slow") == 0) {
		arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ms");
		usleep((useconds_t)(arg ? atoi(arg) : 1000) * 1000);
		return reply(c, 200, "slow", 4, NULL, NULL);
	}
	if (strcmp(url, "/redirect") == 0) {
		arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
		return reply(c, 302, "", 0, "Location", arg ? arg : "/hello");
	}
	if (strcmp(url, "/status") == 0) {
		arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "code");
		return reply(c, arg ? (unsigned)atoi(arg) : 200, "", 0, NULL, NULL);
	}
	return reply(c, 404, "no such thing", 13, NULL, NULL);
}

static void on_done(void *cls, struct MHD_Connection *c, void **state,
                    enum MHD_RequestTerminationCode code)
{
	struct body *b = *state;

	(void)cls;
	(void)c;
	(void)code;
	if (b) {
		viv_buf_free(&b->b);
		free(b);
	}
}

struct tsup_upstream *tsup_upstream_start(void)
{
	struct tsup_upstream *u = calloc(1, sizeof(*u));
	const union MHD_DaemonInfo *info;
	struct sockaddr_in a;

	cr_assert_not_null(u);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
	                        NULL, NULL, on_request, u, MHD_OPTION_SOCK_ADDR, &a,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_done, u, MHD_OPTION_END);
	cr_assert_not_null(u->d, "cannot start the test upstream");
	info = MHD_get_daemon_info(u->d, MHD_DAEMON_INFO_BIND_PORT);
	u->port = info->port;
	return u;
}

void tsup_upstream_stop(struct tsup_upstream *u)
{
	if (!u)
		return;
	MHD_stop_daemon(u->d);
	free(u);
}

unsigned tsup_upstream_port(const struct tsup_upstream *u)
{
	return u->port;
}

unsigned tsup_upstream_hits(const struct tsup_upstream *u)
{
	return __atomic_load_n(&u->hits, __ATOMIC_SEQ_CST);
}

struct tsup_outbound_fixture tsup_ofx;

void tsup_ofx_start_with(const char *const *extra)
{
	const char *argv[16] = {"--outbound-allow-private"};
	size_t n = 1;

	for (size_t i = 0; extra && extra[i]; i++) {
		cr_assert(n < sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	tsup_ofx.up = tsup_upstream_start();
	tsup_vivd_start(&tsup_ofx.vivd, argv);
}

void tsup_ofx_start(void)
{
	tsup_ofx_start_with(NULL);
}

void tsup_ofx_stop(void)
{
	tsup_vivd_stop(&tsup_ofx.vivd);
	tsup_upstream_stop(tsup_ofx.up);
}
