/* The host calls that send requests and wait for their responses: a pending
 * handle stands for a request the outbound service has in flight, and
 * becomes a response handle when the service completes it. A guest that
 * waits is suspended, and its worker serves others meanwhile. */
#include <string.h>

#include "hostcall.h"
#include "outbound.h"

/* The outbound service completed pending request p. */
static void sent(void *ctx, struct run_msg *resp, const char *why)
{
	struct run_pending *p = ctx;
	struct run_instance *in = p->in;
	struct run_hc *hc = run_hc_of(in);

	if (!resp && why[0])
		run_hc_logf(in, "%s", why);
	run_handles_complete(&hc->h, (int)(p - hc->h.pend), resp);
	run_hc_notify(in, (int)(p - hc->h.pend));
}

/* Starts sending request handle req; the pending handle, or -1. */
static int send_async(struct run_instance *in, struct run_hc *hc, uint32_t req)
{
	const struct run_pool_config *cfg = &in->pool->cfg;
	struct run_outbound_req r;
	struct run_outbound_op *op = NULL;
	struct run_pending *p;
	struct run_hmsg *m;
	char why[1024];
	int pi;

	m = req == 0 ? NULL : run_handles_req(&hc->h, req);
	if (!m)
		return -1;
	if (hc->sent >= cfg->outbound_max) {
		run_hc_logf(in, "outbound request refused: a request may send at most %u",
		            cfg->outbound_max);
		return -1;
	}
	pi = run_handles_new_pending(&hc->h, (int)req);
	if (pi < 0)
		return -1;
	p = &hc->h.pend[pi];
	p->in = in;
	hc->sent++;
	memset(&r, 0, sizeof(r));
	r.method = m->m.method;
	r.url = m->m.url;
	r.headers = m->m.hdrs;
	r.n_headers = m->m.n_hdrs;
	r.body = m->m.body.data;
	r.body_len = m->m.body.len;
	r.app = in->app;
	r.allow_private = cfg->outbound_allow_private;
	r.body_max = cfg->outbound_body_max;
	r.timeout_ms = cfg->outbound_timeout_ms;
	r.deadline_ns = in->wall_deadline_ns;
	r.self = &in->pool->services;
	r.from = in;
	r.origin = in->req;
	if (run_outbound_send(in->pool->loop, &r, sent, p, &op, why, sizeof(why))) {
		if (why[0])
			run_hc_logf(in, "%s", why);
		p->done = true;
		p->resp = -1;
	} else if (!p->done) {
		p->op = op;
	}
	return pi;
}

ENV_CALL(uint32_t, hostcall_req_send_async, uint32_t req)
{
	int pi;

	HC_BEGIN(HANDLE_ERROR);
	pi = send_async(in, hc, req);
	return pi < 0 ? HANDLE_ERROR : (uint32_t)pi;
}

ENV_CALL(uint32_t, hostcall_req_send, uint32_t req)
{
	int pi;

	HC_BEGIN(HANDLE_ERROR);
	pi = send_async(in, hc, req);
	if (pi < 0)
		return HANDLE_ERROR;
	run_hc_wait(in, (uint64_t)1 << pi);
	return run_handles_finish(&hc->h, pi);
}

ENV_CALL(uint32_t, hostcall_pending_req_wait, uint32_t p)
{
	HC_BEGIN(HANDLE_ERROR);
	if (!run_handles_pending(&hc->h, p))
		return HANDLE_ERROR;
	run_hc_wait(in, (uint64_t)1 << p);
	return run_handles_finish(&hc->h, (int)p);
}

ENV_CALL(uint32_t, hostcall_pending_req_poll, uint32_t p)
{
	struct run_pending *pend;

	HC_BEGIN(HANDLE_ERROR);
	pend = run_handles_pending(&hc->h, p);
	if (!pend)
		return HANDLE_ERROR;
	if (!pend->done)
		return HANDLE_NOT_READY;
	return run_handles_finish(&hc->h, (int)p);
}

ENV_CALL(uint32_t, hostcall_pending_req_select, uint32_t handles, uint32_t n, uint32_t out_p)
{
	const uint8_t *vec;
	struct run_pending *pend;
	uint64_t mask = 0;
	uint32_t i, h;

	HC_BEGIN(HANDLE_ERROR);
	vec = n <= RUN_HC_HANDLES ? run_mem(in, handles, (uint64_t)n * 4) : NULL;
	if (!vec || n == 0 || !run_mem(in, out_p, 4))
		return HANDLE_ERROR;
	for (i = 0; i < n; i++) {
		memcpy(&h, vec + 4 * i, 4);
		if (!run_handles_pending(&hc->h, h))
			return HANDLE_ERROR;
		mask |= (uint64_t)1 << h;
	}
	run_hc_wait(in, mask);
	/* The first of the list, in the guest's order, that is done. */
	vec = run_mem(in, handles, (uint64_t)n * 4);
	for (i = 0; vec && i < n; i++) {
		memcpy(&h, vec + 4 * i, 4);
		pend = run_handles_pending(&hc->h, h);
		if (pend && pend->done) {
			run_hc_put_u32(in, out_p, h);
			return run_handles_finish(&hc->h, (int)h);
		}
	}
	return HANDLE_ERROR;
}
