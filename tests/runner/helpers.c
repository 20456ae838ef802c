/* Shared by the runner tests; see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"

struct run_module *trun_load(const char *name, const char *source)
{
	char *so = tsup_artifact(name, source), err[512];
	struct run_module *m = NULL;

	cr_assert_eq(run_module_load(so, NULL, &m, err, sizeof(err)), VIV_OK, "%s", err);
	free(so);
	return m;
}

struct run_request trun_req(const char *method, const char *target, const char *body)
{
	struct run_request r = {0};

	r.method = method;
	r.method_len = strlen(method);
	r.target = target;
	r.target_len = strlen(target);
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.client_addr = "192.0.2.1";
	r.server_name = "test.localhost";
	r.server_port = 8000;
	r.protocol = "HTTP/1.1";
	return r;
}

struct run_instance *trun_run(struct run_pool *pool, struct run_module *m,
                              const struct run_app *app, const struct run_request *req)
{
	struct run_instance *in = NULL;

	cr_assert_eq(run_instance_start(pool, m, app, req, NULL, NULL, &in), VIV_OK);
	while (!run_instance_done(in)) {
		struct pollfd p = {run_pool_fd(pool), POLLIN, 0};
		int ms = run_pool_poll(pool);

		if (!run_instance_done(in))
			poll(&p, 1, ms < 0 || ms > 100 ? 100 : ms);
	}
	return in;
}

char *trun_body(struct run_instance *in)
{
	const struct run_response *r = run_instance_response(in);

	return strndup(r->body ? r->body : "", r->body_len);
}

bool trun_logged(struct run_instance *in, const char *needle)
{
	size_t n, i;
	const struct run_log_line *l = run_instance_logs(in, &n);

	for (i = 0; i < n; i++) {
		if (strstr(l[i].message, needle))
			return true;
	}
	return false;
}
