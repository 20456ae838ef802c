/* The handles of the host-call mode: request, response and pending handles
 * are indices into an instance's tables, and what they stand for (a message
 * the host holds, an outbound request in flight) lives here. The services
 * that do the work know nothing of handles. */
#include <string.h>

#include "dns.h"
#include "hostcall.h"
#include "outbound.h"

void run_handles_init(struct run_handles *h, size_t body_max)
{
	h->reqs[0].used = true;
	h->resps[0].used = true;
	h->resps[0].m.status = 200;
	viv_buf_init(&h->resps[0].m.body, body_max);
}

void run_handles_free(struct run_handles *h)
{
	int i;

	for (i = 0; i < RUN_HC_HANDLES; i++) {
		struct run_pending *p = &h->pend[i];

		if (p->used && p->op) {
			run_outbound_cancel(p->op);
			p->op = NULL;
			p->done = true;
		}
		run_msg_clear(&h->reqs[i].m);
		h->reqs[i].used = false;
		run_msg_clear(&h->resps[i].m);
		h->resps[i].used = false;
	}
	if (h->dns) {
		run_dns_cancel(h->dns);
		h->dns = NULL;
	}
}

struct run_hmsg *run_handles_req(struct run_handles *h, uint32_t handle)
{
	if (handle >= RUN_HC_HANDLES || !h->reqs[handle].used)
		return NULL;
	return &h->reqs[handle];
}

struct run_hmsg *run_handles_resp(struct run_handles *h, uint32_t handle)
{
	if (handle >= RUN_HC_HANDLES || !h->resps[handle].used)
		return NULL;
	return &h->resps[handle];
}

/* A free handle of arr, never 0 (the incoming request and the outgoing
 * response); -1 when none is free. */
static int free_msg(struct run_hmsg *arr)
{
	int i;

	for (i = 1; i < RUN_HC_HANDLES; i++) {
		if (!arr[i].used)
			return i;
	}
	return -1;
}

int run_handles_new_req(struct run_handles *h)
{
	int i = free_msg(h->reqs);

	if (i >= 0) {
		memset(&h->reqs[i], 0, sizeof(h->reqs[i]));
		h->reqs[i].used = true;
	}
	return i;
}

int run_handles_new_pending(struct run_handles *h, int req)
{
	int pi;

	for (pi = 0; pi < RUN_HC_HANDLES && h->pend[pi].used; pi++)
		;
	if (pi == RUN_HC_HANDLES)
		return -1;
	memset(&h->pend[pi], 0, sizeof(h->pend[pi]));
	h->pend[pi].used = true;
	h->pend[pi].req = req;
	h->pend[pi].resp = -1;
	return pi;
}

struct run_pending *run_handles_pending(struct run_handles *h, uint32_t p)
{
	if (p >= RUN_HC_HANDLES || !h->pend[p].used)
		return NULL;
	return &h->pend[p];
}

void run_handles_complete(struct run_handles *h, int pi, struct run_msg *resp)
{
	struct run_pending *p = &h->pend[pi];
	int r = resp ? free_msg(h->resps) : -1;

	p->op = NULL;
	p->done = true;
	p->resp = -1;
	if (resp && r >= 0) {
		h->resps[r].m = *resp;
		h->resps[r].used = true;
		p->resp = r;
	} else if (resp) {
		run_msg_clear(resp);
	}
}

uint32_t run_handles_finish(struct run_handles *h, int pi)
{
	struct run_pending *p = &h->pend[pi];
	int resp = p->resp;

	memset(p, 0, sizeof(*p));
	return resp < 0 ? HANDLE_ERROR : (uint32_t)resp;
}

bool run_handles_any_done(const struct run_handles *h, uint64_t mask)
{
	int i;

	for (i = 0; i < RUN_HC_HANDLES; i++) {
		if ((mask & ((uint64_t)1 << i)) && h->pend[i].done)
			return true;
	}
	return false;
}
