/* DNS for guests (hostcall_dns_query_ip and hostcall_dns_query_raw). The
 * system resolver blocks, so each lookup runs on a short-lived thread while
 * the guest is suspended and its worker serves others; the thread reports
 * through an eventfd in the pool's epoll set. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runner_int.h"

#define DNS_NAME_MAX 253
#define DNS_MAX_ADDRS 32
#define DNS_ANSWER_MAX 65535

struct run_dns_job {
	struct run_dns_job *next;
	struct run_pool *pool;
	struct run_instance *in; /* NULL once the guest is gone */
	bool raw;
	bool ipv6;
	char name[DNS_NAME_MAX + 1];
	uint8_t *query;
	size_t qlen;
	/* Results. */
	bool ok;
	uint8_t addrs[DNS_MAX_ADDRS][16];
	size_t n_addrs;
	uint8_t *answer;
	size_t alen;
	bool done;
};

static void lookup_ip(struct run_dns_job *j)
{
	struct addrinfo hints, *res = NULL, *ai;
	size_t len = j->ipv6 ? 16 : 4, k;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = j->ipv6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(j->name, NULL, &hints, &res) != 0)
		return;
	for (ai = res; ai && j->n_addrs < DNS_MAX_ADDRS; ai = ai->ai_next) {
		const void *a = j->ipv6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
					: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		bool dup = false;

		for (k = 0; k < j->n_addrs && !dup; k++)
			dup = memcmp(j->addrs[k], a, len) == 0;
		if (!dup)
			memcpy(j->addrs[j->n_addrs++], a, len);
	}
	freeaddrinfo(res);
	j->ok = true;
}

static void lookup_raw(struct run_dns_job *j)
{
	struct __res_state rs;
	int n;

	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return;
	j->answer = malloc(DNS_ANSWER_MAX);
	if (j->answer) {
		n = res_nsend(&rs, j->query, (int)j->qlen, j->answer, DNS_ANSWER_MAX);
		if (n > 0) {
			j->alen = (size_t)n;
			j->ok = true;
		}
	}
	res_nclose(&rs);
}

static void *lookup_thread(void *arg)
{
	struct run_dns_job *j = arg;
	struct run_pool *p = j->pool;
	uint64_t one = 1;

	if (j->raw)
		lookup_raw(j);
	else
		lookup_ip(j);
	pthread_mutex_lock(&p->dns_lock);
	j->done = true;
	j->next = p->dns_done;
	p->dns_done = j;
	pthread_mutex_unlock(&p->dns_lock);
	if (write(p->dns_fd, &one, sizeof(one)) < 0)
		viv_log(VIV_WARN, "dns: cannot signal the worker");
	__atomic_sub_fetch(&p->dns_running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void job_free(struct run_dns_job *j)
{
	free(j->query);
	free(j->answer);
	free(j);
}

enum viv_err run_dns_init(struct run_pool *p)
{
	struct epoll_event ev;

	pthread_mutex_init(&p->dns_lock, NULL);
	p->dns_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->dns_fd < 0)
		return VIV_ERR_IO;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = p->dns_fd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->dns_fd, &ev))
		return VIV_ERR_IO;
	return VIV_OK;
}

void run_dns_free(struct run_pool *p)
{
	struct run_dns_job *j;
	int waited = 0;

	/* Lookups still running write to the eventfd and the list when they
	 * end: wait for them (the resolver gives up within seconds). */
	while (__atomic_load_n(&p->dns_running, __ATOMIC_ACQUIRE) > 0 && waited++ < 3000)
		usleep(10000);
	pthread_mutex_lock(&p->dns_lock);
	while ((j = p->dns_done)) {
		p->dns_done = j->next;
		job_free(j);
	}
	pthread_mutex_unlock(&p->dns_lock);
	if (p->dns_fd >= 0)
		close(p->dns_fd);
	pthread_mutex_destroy(&p->dns_lock);
}

void run_dns_event(struct run_pool *p)
{
	struct run_dns_job *list, *j;
	uint64_t n;

	if (read(p->dns_fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&p->dns_lock);
	list = p->dns_done;
	p->dns_done = NULL;
	pthread_mutex_unlock(&p->dns_lock);
	while ((j = list)) {
		struct run_instance *in = j->in;

		list = j->next;
		if (!in) {
			job_free(j); /* its guest is gone */
			continue;
		}
		/* The job now belongs to the guest, which frees it. */
		in->dns = NULL;
		in->dns_result = j;
		run_instance_wake(in);
	}
}

void run_dns_cancel(struct run_instance *in)
{
	if (in->dns) {
		/* Still running: the event handler frees it when it ends. */
		in->dns->in = NULL;
		in->dns = NULL;
	}
	if (in->dns_result) {
		job_free(in->dns_result);
		in->dns_result = NULL;
	}
}

/* Runs j on a thread and suspends the guest until it is done; returns the
 * finished job (the caller frees it) or NULL when it could not start. */
static struct run_dns_job *run_lookup(struct run_instance *in, struct run_dns_job *j)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	j->pool = in->pool;
	j->in = in;
	__atomic_add_fetch(&in->pool->dns_running, 1, __ATOMIC_ACQ_REL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, lookup_thread, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		__atomic_sub_fetch(&in->pool->dns_running, 1, __ATOMIC_RELEASE);
		job_free(j);
		return NULL;
	}
	in->dns = j;
	while (!in->dns_result)
		run_instance_suspend(in);
	return in->dns_result;
}

ENV_CALL(uint32_t, hostcall_dns_query_ip, uint32_t slices_p, uint32_t len_p, uint32_t name, uint32_t nlen, uint32_t ipv6)
{
	struct run_instance *in = run_current;
	const uint8_t *nm;
	struct run_dns_job *j;
	const char *strs[DNS_MAX_ADDRS];
	size_t lens[DNS_MAX_ADDRS], i;
	uint32_t ok;

	if (!run_hc_enter(in, "hostcall_dns_query_ip"))
		return 0;
	nm = nlen && nlen <= DNS_NAME_MAX ? run_mem(in, name, nlen) : NULL;
	if (!nm || memchr(nm, 0, nlen) || !run_mem(in, slices_p, 4) || !run_mem(in, len_p, 4))
		return 0;
	j = calloc(1, sizeof(*j));
	if (!j)
		return 0;
	memcpy(j->name, nm, nlen);
	j->ipv6 = ipv6 != 0;
	/* The finished job stays parked on the instance while the guest's
	 * allocator runs, so that a trap there frees it at the end; the
	 * addresses are copied before the allocator first runs. */
	j = run_lookup(in, j);
	if (!j)
		return 0;
	for (i = 0; i < j->n_addrs; i++) {
		strs[i] = (const char *)j->addrs[i];
		lens[i] = j->ipv6 ? 16 : 4;
	}
	ok = j->ok && run_hc_result_slices(in, slices_p, len_p, strs, lens, j->n_addrs);
	in->dns_result = NULL;
	job_free(j);
	return ok;
}

ENV_CALL(uint32_t, hostcall_dns_query_raw, uint32_t resp_p, uint32_t len_p, uint32_t query, uint32_t qlen)
{
	struct run_instance *in = run_current;
	const uint8_t *q;
	struct run_dns_job *j;
	uint32_t ok;

	if (!run_hc_enter(in, "hostcall_dns_query_raw"))
		return 0;
	q = qlen >= HFIXEDSZ && qlen <= 512 ? run_mem(in, query, qlen) : NULL;
	if (!q || !run_mem(in, resp_p, 4) || !run_mem(in, len_p, 4))
		return 0;
	run_hc_result_none(in, resp_p, len_p);
	j = calloc(1, sizeof(*j));
	if (!j)
		return 0;
	j->raw = true;
	j->query = malloc(qlen);
	if (!j->query) {
		free(j);
		return 0;
	}
	memcpy(j->query, q, qlen);
	j->qlen = qlen;
	j = run_lookup(in, j);
	if (!j)
		return 0;
	ok = j->ok && run_hc_result_bytes(in, resp_p, len_p, j->answer, j->alen);
	in->dns_result = NULL;
	job_free(j);
	return ok;
}
