/* Outbound HTTP for guests, a service of the pool's loop: libcurl's multi
 * interface driven by the loop's descriptors and timers, so that a guest
 * waiting for an upstream is suspended and its worker goes on serving. Deny
 * by default: only URLs the app's manifest allows, checked again on every
 * redirect; loopback, private, link-local and metadata addresses are refused
 * after DNS resolution unless the operator allows them. Requests to the
 * app's own host name never leave the worker: they go to the pool's
 * self_request service. Whoever sends learns the outcome through a
 * completion callback. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "outbound.h"

/* Redirects followed for one request, and bytes of response headers kept. */
#define MAX_REDIRECTS 5
#define MAX_RESP_HEADERS 100
#define MAX_SELF_DEPTH 3
/* Bytes of a line for the app's log about a request. */
#define WHY_MAX 1024
/* Transfers in flight on one loop past which a new one opens a connection
 * of its own and closes it after use. To reuse a connection, libcurl
 * (7.88) looks through every connection it holds to the same host, busy
 * ones included, and comparing them costs it more than a new connection
 * to a slow upstream saves: with 8,000 guests waiting on one upstream, a
 * worker spent 70 % of its time there and took 19 s to start them all. */
#define REUSE_MAX 128

/* The service's state on one loop. */
struct http_svc {
	struct run_loop *loop;
	CURLM *curlm;
	struct run_timer timer;
	unsigned transfers; /* easy handles in curlm */
};

/* What every request in flight starts with. */
struct run_outbound_op {
	bool self; /* a struct self_op, else a struct xfer */
	run_outbound_done_fn done;
	void *ctx;
};

/* A transfer owns copies of everything it sends: the guest goes on running
 * while it is in flight and may change or replace its request handle's
 * headers and body. */
struct xfer {
	struct run_outbound_op op;
	struct http_svc *svc;
	const struct run_app *app; /* lives as long as its instance, which cancels first */
	bool allow_private;
	size_t body_max;
	unsigned timeout_ms;
	uint64_t deadline_ns;
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	char *method;
	char *body; /* NULL for none */
	size_t body_len;
	unsigned redirects;
	struct run_msg resp;
	bool too_big;
	bool refused_address;
	char refused[INET6_ADDRSTRLEN];
	char errbuf[CURL_ERROR_SIZE];
};

/* A request to the app itself, with copies of its method, headers and body
 * in the block it is allocated in (freed with it). */
struct self_op {
	struct run_outbound_op op;
	struct run_services services;
	struct run_subrequest sr;
	bool sending;  /* inside run_outbound_send() */
	bool finished; /* completed while sending */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- Address and URL policy ------------------------------------------------------------ */

static bool v4_private(uint32_t a)
{
	return (a >> 24) == 0 ||                        /* 0.0.0.0/8 */
	       (a >> 24) == 10 ||                       /* 10/8 */
	       (a >> 24) == 127 ||                      /* loopback */
	       (a >> 22) == (100u << 2 | 1) ||          /* 100.64/10, shared address space */
	       (a >> 16) == (169u << 8 | 254) ||        /* link-local, cloud metadata */
	       (a >> 20) == (172u << 4 | 1) ||          /* 172.16/12 */
	       (a >> 16) == (192u << 8 | 168) ||        /* 192.168/16 */
	       (a >> 8) == (192u << 16 | 0 << 8 | 0) || /* 192.0.0/24 */
	       (a >> 17) == (198u << 9 | 18 >> 1) ||    /* 198.18/15, benchmarking */
	       (a >> 28) >= 14;                         /* multicast, reserved, broadcast */
}

bool run_address_is_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return v4_private(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		uint32_t v4;

		if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
			memcpy(&v4, &a->s6_addr[12], 4);
			return v4_private(ntohl(v4));
		}
		return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
		       IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) ||
		       IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xfe) == 0xfc || /* ULA */
		       (a->s6_addr[0] == 0x20 && a->s6_addr[1] == 0x01 && a->s6_addr[2] == 0x0d &&
		        a->s6_addr[3] == 0xb8) || /* documentation */
		       (a->s6_addr[0] == 0x00 && a->s6_addr[1] == 0x64 && a->s6_addr[2] == 0xff &&
		        a->s6_addr[3] == 0x9b); /* NAT64 */
	}
	return true;
}

bool run_outbound_allowed(const struct run_app *app, const char *url)
{
	struct viv_origin u, p;
	bool ok = false;

	/* One parser for both sides, the manifest's (which checked these
	 * patterns when the app was deployed) and this one. */
	if (viv_origin_parse(url, false, &u) != VIV_OK)
		return false;
	for (size_t i = 0; i < app->n_outbound && !ok; i++) {
		if (viv_origin_parse(app->outbound[i], true, &p) != VIV_OK)
			continue;
		ok = viv_origin_allows(&p, &u);
		viv_origin_clear(&p);
	}
	viv_origin_clear(&u);
	return ok;
}

static void whyf(char *why, size_t whylen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void whyf(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ---- libcurl callbacks ---------------------------------------------------------------- */

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct xfer *x = arg;

	(void)purpose;
	if (!x->allow_private && run_address_is_private((const struct sockaddr *)&addr->addr)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&addr->addr;
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&addr->addr;
		const void *a = addr->family == AF_INET6 ? (const void *)&s6->sin6_addr
		                                         : (const void *)&s4->sin_addr;
		inet_ntop(addr->family, a, x->refused, sizeof(x->refused));
		x->refused_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	if (viv_buf_append(&x->resp.body, p, size * n)) {
		x->too_big = true;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, nl;
	char *colon, *v;

	/* A status line starts a new response (after 100 Continue). */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		struct viv_buf body = x->resp.body;
		memset(&x->resp.body, 0, sizeof(x->resp.body));
		run_msg_clear(&x->resp);
		x->resp.body = body;
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon || x->resp.n_hdrs >= MAX_RESP_HEADERS)
		return len;
	nl = (size_t)(colon - p);
	v = colon + 1;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	len = (size_t)(p + len - v);
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	if (!run_msg_add_header(&x->resp, p, nl, v, len))
		return 0;
	return size * n;
}

static void check_done(struct http_svc *svc);

/* A socket libcurl watches, watched by the loop for it. */
struct sock_watch {
	struct run_watch w;
	struct http_svc *svc;
};

static void on_socket_ready(struct run_watch *w, uint32_t events)
{
	struct http_svc *svc = ((struct sock_watch *)w)->svc;
	int mask = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
	           (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
	           (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	int running = 0;

	curl_multi_socket_action(svc->curlm, w->fd, mask, &running);
	check_done(svc);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_svc *svc = userp;
	struct sock_watch *sw = socketp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sw) {
			run_loop_unwatch(svc->loop, &sw->w);
			free(sw);
		}
		curl_multi_assign(svc->curlm, s, NULL);
		return 0;
	}
	if (!sw) {
		sw = calloc(1, sizeof(*sw));
		if (!sw)
			return -1;
		sw->w.fd = s;
		sw->w.ready = on_socket_ready;
		sw->svc = svc;
		curl_multi_assign(svc->curlm, s, sw);
	}
	/* curl fails the transfers on this socket when the loop cannot watch it. */
	if (run_loop_watch(svc->loop, &sw->w,
	                   (what & CURL_POLL_IN ? EPOLLIN : 0) |
	                           (what & CURL_POLL_OUT ? EPOLLOUT : 0)) != VIV_OK)
		return -1;
	return 0;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct http_svc *svc = userp;

	(void)m;
	if (timeout_ms < 0)
		run_timer_cancel(svc->loop, &svc->timer);
	else
		run_timer_arm(svc->loop, &svc->timer,
		              viv_mono_ns() + (uint64_t)timeout_ms * 1000000u);
	return 0;
}

static void fire_curl_timer(struct run_timer *t)
{
	struct http_svc *svc = (struct http_svc *)((char *)t - offsetof(struct http_svc, timer));
	int running = 0;

	curl_multi_socket_action(svc->curlm, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(svc);
}

/* ---- The service on a loop ------------------------------------------------------------ */

static enum viv_err svc_make(struct run_loop *loop, void **state)
{
	struct http_svc *svc;

	*state = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return VIV_ERR_INTERNAL;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return VIV_ERR_NOMEM;
	svc->loop = loop;
	svc->curlm = curl_multi_init();
	if (!svc->curlm) {
		free(svc);
		return VIV_ERR_NOMEM;
	}
	run_timer_init(&svc->timer, fire_curl_timer);
	curl_multi_setopt(svc->curlm, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(svc->curlm, CURLMOPT_SOCKETDATA, svc);
	curl_multi_setopt(svc->curlm, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(svc->curlm, CURLMOPT_TIMERDATA, svc);
	*state = svc;
	return VIV_OK;
}

static void svc_destroy(void *state)
{
	struct http_svc *svc = state;

	curl_multi_cleanup(svc->curlm);
	run_timer_cancel(svc->loop, &svc->timer);
	free(svc);
}

static const struct run_loop_ext_ops http_ext = {.make = svc_make, .destroy = svc_destroy};

/* ---- Transfers ---------------------------------------------------------------------------- */

/* Takes x's easy handle out of the service and frees it. */
static void xfer_drop_easy(struct xfer *x)
{
	if (!x->easy)
		return;
	curl_multi_remove_handle(x->svc->curlm, x->easy);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
	x->svc->transfers--;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	xfer_drop_easy(x);
	curl_slist_free_all(x->hdrs);
	run_msg_clear(&x->resp);
	free(x->url);
	free(x->method);
	free(x->body);
	free(x);
}

/* What is left of the request's time, within the service's cap. */
static unsigned remaining_ms(const struct xfer *x)
{
	uint64_t now = viv_mono_ns(), left;
	unsigned cap = x->timeout_ms;

	left = x->deadline_ns > now ? (x->deadline_ns - now) / 1000000u : 1;
	return left < cap ? (unsigned)(left ? left : 1) : cap;
}

/* Copies what req sends into x. */
static bool xfer_copy_request(struct xfer *x, const struct run_outbound_req *req)
{
	struct curl_slist *l;
	size_t i;

	x->url = strdup(req->url);
	x->method = strdup(req->method);
	if (!x->url || !x->method)
		return false;
	for (i = 0; i < req->n_headers; i++) {
		char *line;

		if (asprintf(&line, "%s: %s", req->headers[i].name, req->headers[i].value) < 0)
			return false;
		l = curl_slist_append(x->hdrs, line);
		free(line);
		if (!l)
			return false;
		x->hdrs = l;
	}
	/* No "Expect: 100-continue" round trip. */
	l = curl_slist_append(x->hdrs, "Expect:");
	if (!l)
		return false;
	x->hdrs = l;
	if (req->body) {
		x->body = malloc(req->body_len + 1);
		if (!x->body)
			return false;
		memcpy(x->body, req->body, req->body_len);
		x->body_len = req->body_len;
	}
	return true;
}

/* Sets up and adds an easy handle for x->url. */
static bool xfer_go(struct xfer *x)
{
	CURL *e = curl_easy_init();

	if (!e)
		return false;
	x->easy = e;
	run_msg_clear(&x->resp);
	viv_buf_init(&x->resp.body, x->body_max);
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)remaining_ms(x));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->body_max);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "vivarium/" VIV_VERSION);
	if (strcmp(x->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
		if (x->body_len || strcmp(x->method, "POST") == 0 ||
		    strcmp(x->method, "PUT") == 0 || strcmp(x->method, "PATCH") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
		}
	}
	if (x->svc->transfers >= REUSE_MAX) {
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	x->errbuf[0] = '\0';
	if (curl_multi_add_handle(x->svc->curlm, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		x->easy = NULL;
		return false;
	}
	x->svc->transfers++;
	return true;
}

/* Ends a transfer: frees it, then tells whoever sent it (who may start or
 * stop other transfers from there). Takes over resp's contents. */
static void xfer_complete(struct xfer *x, struct run_msg *resp, const char *why)
{
	run_outbound_done_fn done = x->op.done;
	void *ctx = x->op.ctx;

	xfer_free(x);
	done(ctx, resp, why);
}

/* A finished transfer: a redirect to follow, a response, or a failure. */
static void xfer_done(struct xfer *x, CURLcode rc)
{
	struct run_msg resp;
	long status = 0;
	char *location = NULL, why[WHY_MAX];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &location);
	if (rc == CURLE_OK && location &&
	    (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)) {
		char *next = strdup(location);

		if (!next || ++x->redirects > MAX_REDIRECTS) {
			whyf(why, sizeof(why),
			     "outbound request to %s failed: more than %d redirects", x->url,
			     MAX_REDIRECTS);
			free(next);
			goto fail;
		}
		if (!run_outbound_allowed(x->app, next)) {
			whyf(why, sizeof(why),
			     "outbound request refused: %s redirected to %s, which is not in "
			     "the app's outbound list (vivarium.json)",
			     x->url, next);
			free(next);
			goto fail;
		}
		/* 303, and 301/302 after a POST, go on as GET, as browsers do. */
		if (status == 303 ||
		    ((status == 301 || status == 302) && strcmp(x->method, "POST") == 0)) {
			free(x->method);
			x->method = strdup("GET");
			free(x->body);
			x->body = NULL;
			x->body_len = 0;
		}
		xfer_drop_easy(x);
		free(x->url);
		x->url = next;
		why[0] = '\0';
		if (x->method && xfer_go(x))
			return;
		goto fail;
	}
	if (rc != CURLE_OK) {
		if (x->refused_address)
			whyf(why, sizeof(why),
			     "outbound request refused: %s resolves to %s, a private or local "
			     "address",
			     x->url, x->refused);
		else if (x->too_big)
			whyf(why, sizeof(why),
			     "outbound request to %s failed: the response is over %zu bytes",
			     x->url, x->body_max);
		else
			whyf(why, sizeof(why), "outbound request to %s failed: %s", x->url,
			     x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		goto fail;
	}
	/* The response leaves the transfer, which is gone before whoever sent
	 * it hears of it. */
	resp = x->resp;
	resp.status = (unsigned)status;
	memset(&x->resp, 0, sizeof(x->resp));
	xfer_complete(x, &resp, "");
	return;
fail:
	xfer_complete(x, NULL, why);
}

static void check_done(struct http_svc *svc)
{
	CURLMsg *msg;
	int left;

	/* One message at a time: finishing a transfer runs its guest, which
	 * may start transfers or end, and an ending guest removes its other
	 * transfers, messages included. */
	while ((msg = curl_multi_info_read(svc->curlm, &left))) {
		struct xfer *x = NULL;
		CURLcode rc = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		xfer_done(x, rc);
	}
}

/* ---- Requests to the app itself ------------------------------------------------------ */

/* Appends n bytes and a NUL at *at; returns where they went. */
static char *put_text(char **at, const char *p, size_t n)
{
	char *s = *at;

	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	*at += n + 1;
	return s;
}

/* The self_request service answered: its response, copied, goes to whoever
 * sent the request. */
static void self_done(struct run_subrequest *sr, const struct run_response *resp)
{
	struct self_op *op = (struct self_op *)((char *)sr - offsetof(struct self_op, sr));
	struct run_msg m;
	size_t i;
	bool ok = resp != NULL;

	memset(&m, 0, sizeof(m));
	if (resp) {
		m.status = resp->status;
		viv_buf_init(&m.body, 0);
		for (i = 0; ok && i < resp->n_headers; i++) {
			const struct run_header *h = &resp->headers[i];

			ok = run_msg_add_header(&m, h->name, h->name_len, h->value, h->value_len);
		}
		if (ok && resp->body_len)
			ok = viv_buf_append(&m.body, resp->body, resp->body_len) == VIV_OK;
	}
	if (!ok)
		run_msg_clear(&m);
	op->op.done(op->op.ctx, ok ? &m : NULL, "");
	if (op->sending)
		op->finished = true;
	else
		free(op);
}

/* Sends req to the app's own self_request service. */
static enum viv_err self_send(const struct run_outbound_req *req, run_outbound_done_fn done,
                              void *ctx, struct run_outbound_op **out)
{
	struct self_op *op;
	struct run_header *hs;
	CURLU *h = curl_url();
	char *path = NULL, *query = NULL, *at;
	size_t tl, size, i;
	enum viv_err err;

	if (!h || curl_url_set(h, CURLUPART_URL, req->url, CURLU_NON_SUPPORT_SCHEME) ||
	    curl_url_get(h, CURLUPART_PATH, &path, 0)) {
		curl_url_cleanup(h);
		return VIV_ERR_INVALID;
	}
	curl_url_get(h, CURLUPART_QUERY, &query, 0);
	tl = strlen(path) + (query ? strlen(query) + 1 : 0);
	size = sizeof(*op) + req->n_headers * sizeof(*hs) + tl + 1 + strlen(req->method) + 1 +
	       req->body_len + 1;
	for (i = 0; i < req->n_headers; i++)
		size += req->headers[i].name_len + req->headers[i].value_len + 2;
	op = calloc(1, size);
	if (!op) {
		curl_free(path);
		curl_free(query);
		curl_url_cleanup(h);
		return VIV_ERR_NOMEM;
	}
	hs = (struct run_header *)(op + 1);
	at = (char *)(hs + req->n_headers);
	op->sr.req.target = at;
	snprintf(at, tl + 1, "%s%s%s", path, query ? "?" : "", query ? query : "");
	at += tl + 1;
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(h);
	op->op.self = true;
	op->op.done = done;
	op->op.ctx = ctx;
	op->services = *req->self;
	op->sr.done = self_done;
	op->sr.req.method_len = strlen(req->method);
	op->sr.req.method = put_text(&at, req->method, op->sr.req.method_len);
	op->sr.req.target_len = tl;
	for (i = 0; i < req->n_headers; i++) {
		hs[i].name_len = req->headers[i].name_len;
		hs[i].name = put_text(&at, req->headers[i].name, hs[i].name_len);
		hs[i].value_len = req->headers[i].value_len;
		hs[i].value = put_text(&at, req->headers[i].value, hs[i].value_len);
	}
	op->sr.req.headers = hs;
	op->sr.req.n_headers = req->n_headers;
	op->sr.req.body_len = req->body_len;
	op->sr.req.body = put_text(&at, req->body ? req->body : "", req->body_len);
	op->sr.req.client_addr = req->origin->client_addr;
	op->sr.req.server_name = req->app->host;
	op->sr.req.server_port = req->origin->server_port;
	op->sr.req.protocol = "HTTP/1.1";
	op->sr.req.depth = req->origin->depth + 1;
	op->sending = true;
	err = op->services.self_request(op->services.ctx, req->from, &op->sr);
	op->sending = false;
	if (op->finished) {
		/* Answered at once: done was called, whatever the result says. */
		free(op);
		return VIV_OK;
	}
	if (err) {
		free(op);
		return err;
	}
	*out = &op->op;
	return VIV_OK;
}

/* ---- Sending and cancelling ----------------------------------------------------------------- */

static bool is_self(const struct run_app *app, const char *url)
{
	struct viv_origin u;
	bool self;

	if (!app->host || viv_origin_parse(url, false, &u) != VIV_OK)
		return false;
	self = strcasecmp(u.host, app->host) == 0;
	viv_origin_clear(&u);
	return self;
}

enum viv_err run_outbound_send(struct run_loop *loop, const struct run_outbound_req *req,
                               run_outbound_done_fn done, void *ctx, struct run_outbound_op **out,
                               char *why, size_t whylen)
{
	struct xfer *x;
	enum viv_err err;
	void *state;

	*out = NULL;
	if (whylen)
		why[0] = '\0';
	if (req->self && req->self->self_request && is_self(req->app, req->url)) {
		if (req->origin->depth >= MAX_SELF_DEPTH) {
			whyf(why, whylen, "request to %s refused: the app called itself %d deep",
			     req->url, MAX_SELF_DEPTH);
			return VIV_ERR_INVALID;
		}
		return self_send(req, done, ctx, out);
	}
	if (!run_outbound_allowed(req->app, req->url)) {
		whyf(why, whylen,
		     "outbound request refused: %s is not in the app's outbound list "
		     "(\"outbound\" in vivarium.json)",
		     req->url);
		return VIV_ERR_INVALID;
	}
	err = run_loop_ext(loop, &http_ext, &state);
	if (err) {
		whyf(why, whylen,
		     "outbound request to %s failed: the host cannot send requests (%s)", req->url,
		     viv_strerror(err));
		return err;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return VIV_ERR_NOMEM;
	x->op.done = done;
	x->op.ctx = ctx;
	x->svc = state;
	x->app = req->app;
	x->allow_private = req->allow_private;
	x->body_max = req->body_max;
	x->timeout_ms = req->timeout_ms;
	x->deadline_ns = req->deadline_ns;
	if (!xfer_copy_request(x, req) || !xfer_go(x)) {
		xfer_free(x);
		return VIV_ERR_NOMEM;
	}
	*out = &x->op;
	return VIV_OK;
}

void run_outbound_cancel(struct run_outbound_op *op)
{
	struct self_op *s;

	if (!op)
		return;
	if (!op->self) {
		xfer_free((struct xfer *)op);
		return;
	}
	s = (struct self_op *)op;
	if (s->services.self_cancel)
		s->services.self_cancel(s->services.ctx, &s->sr);
	free(s);
}
