/* DNS lookups for guests. The system resolver blocks, so each lookup runs on
 * a short-lived thread while the loop goes on; the thread reports through
 * an eventfd that the loop watches, and the completion runs on the loop's
 * thread. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dns.h"

#define DNS_ANSWER_MAX 65535

/* The service's state on one loop. */
struct dns_svc {
	struct run_loop *loop;
	struct run_watch watch; /* the eventfd */
	pthread_mutex_t lock;
	struct run_dns_op *finished; /* under lock */
	int running;                 /* lookup threads, atomically */
};

struct run_dns_op {
	struct run_dns_op *next;
	struct dns_svc *svc;
	run_dns_done_fn done; /* NULL once cancelled */
	void *ctx;
	bool raw;
	bool ipv6;
	char name[RUN_DNS_NAME_MAX + 1];
	uint8_t *query;
	size_t qlen;
	/* Results, written by the lookup's thread. */
	bool ok;
	uint8_t addrs[RUN_DNS_MAX_ADDRS][16];
	size_t n_addrs;
	uint8_t *answer;
	size_t alen;
};

static void lookup_ip(struct run_dns_op *j)
{
	struct addrinfo hints, *res = NULL, *ai;
	size_t len = j->ipv6 ? 16 : 4, k;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = j->ipv6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(j->name, NULL, &hints, &res) != 0)
		return;
	for (ai = res; ai && j->n_addrs < RUN_DNS_MAX_ADDRS; ai = ai->ai_next) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ai->ai_addr;
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ai->ai_addr;
		const void *a =
		        j->ipv6 ? (const void *)&s6->sin6_addr : (const void *)&s4->sin_addr;
		bool dup = false;

		for (k = 0; k < j->n_addrs && !dup; k++)
			dup = memcmp(j->addrs[k], a, len) == 0;
		if (!dup)
			memcpy(j->addrs[j->n_addrs++], a, len);
	}
	freeaddrinfo(res);
	j->ok = true;
}

static void lookup_raw(struct run_dns_op *j)
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
	struct run_dns_op *j = arg;
	struct dns_svc *svc = j->svc;
	uint64_t one = 1;

	if (j->raw)
		lookup_raw(j);
	else
		lookup_ip(j);
	pthread_mutex_lock(&svc->lock);
	j->next = svc->finished;
	svc->finished = j;
	pthread_mutex_unlock(&svc->lock);
	if (write(svc->watch.fd, &one, sizeof(one)) < 0)
		viv_log(VIV_WARN, "dns: cannot signal the worker");
	__atomic_sub_fetch(&svc->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void op_free(struct run_dns_op *j)
{
	free(j->query);
	free(j->answer);
	free(j);
}

/* The eventfd is readable: finished lookups complete. */
static void on_event(struct run_watch *w, uint32_t events)
{
	struct dns_svc *svc = (struct dns_svc *)((char *)w - offsetof(struct dns_svc, watch));
	struct run_dns_op *list, *j;
	struct run_dns_answer a;
	uint64_t n;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&svc->lock);
	list = svc->finished;
	svc->finished = NULL;
	pthread_mutex_unlock(&svc->lock);
	while ((j = list)) {
		list = j->next;
		if (j->done) {
			memset(&a, 0, sizeof(a));
			a.ok = j->ok;
			a.addrs = (const uint8_t(*)[16])j->addrs;
			a.n_addrs = j->n_addrs;
			a.addr_len = j->ipv6 ? 16 : 4;
			a.wire = j->answer;
			a.wire_len = j->alen;
			j->done(j->ctx, &a);
		}
		op_free(j);
	}
}

/* ---- The service on a loop ----------------------------------------------------------- */

static enum viv_err svc_make(struct run_loop *loop, void **state)
{
	struct dns_svc *svc = calloc(1, sizeof(*svc));

	*state = NULL;
	if (!svc)
		return VIV_ERR_NOMEM;
	svc->loop = loop;
	svc->watch.ready = on_event;
	svc->watch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (svc->watch.fd < 0 || run_loop_watch(loop, &svc->watch, EPOLLIN)) {
		if (svc->watch.fd >= 0)
			close(svc->watch.fd);
		free(svc);
		return VIV_ERR_IO;
	}
	pthread_mutex_init(&svc->lock, NULL);
	*state = svc;
	return VIV_OK;
}

static void svc_destroy(void *state)
{
	struct dns_svc *svc = state;
	struct run_dns_op *j;
	int waited = 0;

	/* Lookups still running write to the eventfd and the list when they
	 * end: wait for them (the resolver gives up within seconds). */
	while (__atomic_load_n(&svc->running, __ATOMIC_ACQUIRE) > 0 && waited++ < 3000)
		usleep(10000);
	pthread_mutex_lock(&svc->lock);
	while ((j = svc->finished)) {
		svc->finished = j->next;
		op_free(j);
	}
	pthread_mutex_unlock(&svc->lock);
	run_loop_unwatch(svc->loop, &svc->watch);
	close(svc->watch.fd);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}

static const struct run_loop_ext_ops dns_ext = {.make = svc_make, .destroy = svc_destroy};

/* ---- Lookups ------------------------------------------------------------------------------- */

enum viv_err run_dns_start(struct run_loop *loop, const struct run_dns_query *q,
                           run_dns_done_fn done, void *ctx, struct run_dns_op **out)
{
	struct dns_svc *svc;
	struct run_dns_op *j;
	pthread_attr_t attr;
	pthread_t t;
	enum viv_err err;
	void *state;
	int rc;

	*out = NULL;
	if (!q->raw && q->name_len > RUN_DNS_NAME_MAX)
		return VIV_ERR_INVALID;
	err = run_loop_ext(loop, &dns_ext, &state);
	if (err)
		return err;
	svc = state;
	j = calloc(1, sizeof(*j));
	if (!j)
		return VIV_ERR_NOMEM;
	j->svc = svc;
	j->done = done;
	j->ctx = ctx;
	j->raw = q->raw;
	j->ipv6 = q->ipv6;
	if (q->raw) {
		j->query = malloc(q->wire_len ? q->wire_len : 1);
		if (!j->query) {
			free(j);
			return VIV_ERR_NOMEM;
		}
		memcpy(j->query, q->wire, q->wire_len);
		j->qlen = q->wire_len;
	} else {
		memcpy(j->name, q->name, q->name_len);
	}
	__atomic_add_fetch(&svc->running, 1, __ATOMIC_ACQ_REL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, lookup_thread, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		__atomic_sub_fetch(&svc->running, 1, __ATOMIC_RELEASE);
		op_free(j);
		return VIV_ERR_INTERNAL;
	}
	*out = j;
	return VIV_OK;
}

void run_dns_cancel(struct run_dns_op *op)
{
	/* Still running: the event handler frees it when it ends. */
	if (op)
		op->done = NULL;
}
