/* See bench_common.h. */
#include "bench_common.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum viv_err bench_build(struct store *st, const struct pipe_config *cfg, const char *app,
                         const char *upload, struct store_deployment **d_out, char *err,
                         size_t errlen)
{
	char hex[VIV_SHA256_HEX_LEN + 1];
	int64_t id = 0, claimed = 0;
	struct stat sb;
	enum viv_err e;

	*d_out = NULL;
	e = viv_sha256_file(upload, hex);
	if (!e && stat(upload, &sb))
		e = VIV_ERR_IO;
	if (!e)
		e = store_deployment_create(st, app, upload, hex, (int64_t)sb.st_size, &id);
	if (e) {
		unlink(upload);
		viv_errf(err, errlen, "cannot record the upload of %s: %s", app, viv_strerror(e));
		return e;
	}
	e = store_deployment_claim(st, &claimed);
	if (!e && claimed != id)
		e = VIV_ERR_INTERNAL;
	if (!e)
		e = pipe_build(st, cfg, NULL, id);
	if (!e)
		e = store_deployment_get(st, id, d_out);
	if (e)
		viv_errf(err, errlen, "building %s: %s", app, viv_strerror(e));
	return e;
}

void bench_request(struct run_request *req)
{
	memset(req, 0, sizeof(*req));
	req->method = "GET";
	req->method_len = 3;
	req->target = "/";
	req->target_len = 1;
	req->client_addr = "127.0.0.1";
	req->server_name = "bench.localhost";
	req->server_port = 8000;
	req->protocol = "HTTP/1.1";
}
