/* Requests an app sends to itself; see self_request.h. */
#include "self_request.h"

static void self_done(struct run_instance *in, void *arg)
{
	struct run_subrequest *sr = arg;

	sr->done(sr, run_instance_response(in));
	run_instance_end(in);
}

static enum viv_err self_request(void *ctx, struct run_instance *from, struct run_subrequest *sr)
{
	struct tsup_self *self = ctx;
	struct run_instance *in = NULL;
	enum viv_err err;

	err = run_instance_start(self->pool, self->module, run_instance_app(from), &sr->req,
	                         self_done, sr, &in);
	if (err)
		return err;
	sr->data = in;
	if (run_instance_done(in))
		self_done(in, sr);
	return VIV_OK;
}

/* The sender ended first: the second instance's response has nobody to go
 * to. */
static void self_cancel(void *ctx, struct run_subrequest *sr)
{
	(void)ctx;
	run_instance_end(sr->data);
}

void tsup_self_services(struct run_services *sv, struct tsup_self *self)
{
	sv->self_request = self_request;
	sv->self_cancel = self_cancel;
	sv->ctx = self;
}
