/* The host calls of the Terrarium ABI for DNS (hostcall_dns_query_ip and
 * hostcall_dns_query_raw): the guest is suspended while the DNS service
 * looks the name up, and what it found is held in the host-call state's
 * scratch buffer until the guest's allocator has room for it. */
#include <arpa/nameser.h>
#include <string.h>

#include "dns.h"
#include "hostcall.h"

/* The DNS service finished the instance's lookup. */
static void looked_up(void *ctx, const struct run_dns_answer *a)
{
	struct run_instance *in = ctx;
	struct run_hc *hc = run_hc_of(in);
	size_t i;

	hc->h.dns = NULL;
	hc->dns_ok = a->ok;
	hc->dns_n = 0;
	hc->dns_addr_len = a->addr_len;
	run_hc_hold_clear(in);
	if (a->ok && a->wire && !run_hc_hold(in, a->wire, a->wire_len))
		hc->dns_ok = false;
	for (i = 0; a->ok && i < a->n_addrs; i++) {
		if (!run_hc_hold(in, a->addrs[i], a->addr_len)) {
			hc->dns_ok = false;
			break;
		}
		hc->dns_n++;
	}
	hc->dns_done = true;
	run_instance_wake(in);
}

/* Runs q and suspends the guest until it is done; false when it could not
 * start. What it found is then in hc and its scratch buffer. */
static bool look_up(struct run_instance *in, struct run_hc *hc, const struct run_dns_query *q)
{
	hc->dns_done = false;
	if (run_dns_start(in->pool->loop, q, looked_up, in, &hc->h.dns))
		return false;
	while (!hc->dns_done)
		run_instance_suspend(in);
	return true;
}

ENV_CALL(uint32_t, hostcall_dns_query_ip, uint32_t slices_p, uint32_t len_p, uint32_t name,
         uint32_t nlen, uint32_t ipv6)
{
	struct run_dns_query q;
	const uint8_t *nm;
	size_t lens[RUN_DNS_MAX_ADDRS], i;

	HC_BEGIN(0);
	nm = nlen ? run_hc_arg(in, name, nlen, RUN_DNS_NAME_MAX) : NULL;
	if (!nm || memchr(nm, 0, nlen) || !run_hc_outs(in, slices_p, len_p))
		return 0;
	memset(&q, 0, sizeof(q));
	q.name = (const char *)nm;
	q.name_len = nlen;
	q.ipv6 = ipv6 != 0;
	if (!look_up(in, hc, &q) || !hc->dns_ok)
		return 0;
	for (i = 0; i < hc->dns_n; i++)
		lens[i] = hc->dns_addr_len;
	return run_hc_give_slices(in, slices_p, len_p, lens, hc->dns_n);
}

ENV_CALL(uint32_t, hostcall_dns_query_raw, uint32_t resp_p, uint32_t len_p, uint32_t query,
         uint32_t qlen)
{
	struct run_dns_query q;
	const uint8_t *wire;

	HC_BEGIN(0);
	wire = qlen >= HFIXEDSZ ? run_hc_arg(in, query, qlen, 512) : NULL;
	if (!wire || !run_hc_outs(in, resp_p, len_p))
		return 0;
	run_hc_result_none(in, resp_p, len_p);
	memset(&q, 0, sizeof(q));
	q.raw = true;
	q.wire = wire;
	q.wire_len = qlen;
	if (!look_up(in, hc, &q) || !hc->dns_ok)
		return 0;
	return run_hc_give_bytes(in, resp_p, len_p);
}
