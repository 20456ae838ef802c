/* Outbound HTTP for guests: libcurl's multi interface driven by the pool's
 * epoll descriptor, so a guest waiting for an upstream is suspended and its
 * worker goes on serving. Deny by default: only URLs the app's manifest
 * allows, checked again on every redirect; loopback, private, link-local and
 * metadata addresses are refused after DNS resolution unless the operator
 * allows them. Requests to the app's own host name never leave the worker. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "runner_int.h"

/* Redirects followed for one request, and bytes of response headers kept. */
#define MAX_REDIRECTS 5
#define MAX_RESP_HEADERS 100
#define MAX_SELF_DEPTH 3

/* A transfer owns copies of everything it sends: the guest goes on running
 * while it is in flight and may change or replace its request handle's
 * headers and body. */
struct run_xfer {
	struct run_pool *pool;
	struct run_instance *in;
	int pi;
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	char *method;
	char *body; /* NULL for none */
	size_t body_len;
	unsigned redirects;
	struct run_hmsg resp;
	bool too_big;
	bool refused_address;
	char refused[INET6_ADDRSTRLEN];
	char errbuf[CURL_ERROR_SIZE];
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
	return (a >> 24) == 0 ||                 /* 0.0.0.0/8 */
	       (a >> 24) == 10 ||                /* 10/8 */
	       (a >> 24) == 127 ||               /* loopback */
	       (a >> 22) == (100u << 2 | 1) ||   /* 100.64/10, shared address space */
	       (a >> 16) == (169u << 8 | 254) || /* link-local, cloud metadata */
	       (a >> 20) == (172u << 4 | 1) ||   /* 172.16/12 */
	       (a >> 16) == (192u << 8 | 168) || /* 192.168/16 */
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
		       (a->s6_addr[0] == 0x20 && a->s6_addr[1] == 0x01 &&
			a->s6_addr[2] == 0x0d && a->s6_addr[3] == 0xb8) || /* documentation */
		       (a->s6_addr[0] == 0x00 && a->s6_addr[1] == 0x64 &&
			a->s6_addr[2] == 0xff && a->s6_addr[3] == 0x9b); /* NAT64 */
	}
	return true;
}

/* The parts of a URL that the allow list compares. */
struct url_parts {
	char *scheme, *host, *port, *path;
};

static void url_parts_free(struct url_parts *u)
{
	curl_free(u->scheme);
	curl_free(u->host);
	curl_free(u->port);
	curl_free(u->path);
	memset(u, 0, sizeof(*u));
}

static bool url_split(const char *url, struct url_parts *u)
{
	CURLU *h = curl_url();
	bool ok;

	memset(u, 0, sizeof(*u));
	if (!h)
		return false;
	ok = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_HOST, &u->host, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_PORT, &u->port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_PATH, &u->path, 0) == CURLUE_OK;
	curl_url_cleanup(h);
	if (!ok)
		url_parts_free(u);
	return ok;
}

/* "*.example.org" matches any name below example.org, not example.org
 * itself; anything else matches exactly, ignoring case. */
static bool host_matches(const char *pattern, const char *host)
{
	size_t pl, hl;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, host) == 0;
	pl = strlen(pattern + 1); /* ".example.org" */
	hl = strlen(host);
	return hl > pl && strcasecmp(host + hl - pl, pattern + 1) == 0;
}

static bool pattern_allows(const char *pattern, const struct url_parts *u)
{
	struct url_parts p;
	char *wild = NULL;
	const char *star = strstr(pattern, "://*.");
	bool ok;

	/* libcurl does not parse a '*' in a host name: swap it for a label
	 * and put it back when comparing. */
	if (star) {
		if (asprintf(&wild, "%.*s://x-wild.%s", (int)(star - pattern), pattern,
			     star + 5) < 0)
			return false;
	}
	if (!url_split(wild ? wild : pattern, &p)) {
		free(wild);
		return false;
	}
	ok = strcasecmp(p.scheme, u->scheme) == 0 && strcmp(p.port, u->port) == 0;
	if (ok && star) {
		char host[300];
		snprintf(host, sizeof(host), "*%s", p.host + strlen("x-wild"));
		ok = host_matches(host, u->host);
	} else if (ok) {
		ok = host_matches(p.host, u->host);
	}
	/* A pattern with a path allows that path and what is below it. */
	if (ok && strcmp(p.path, "/") != 0) {
		size_t n = strlen(p.path);
		ok = strncmp(u->path, p.path, n) == 0 &&
		     (p.path[n - 1] == '/' || u->path[n] == '\0' || u->path[n] == '/');
	}
	url_parts_free(&p);
	free(wild);
	return ok;
}

bool run_outbound_url_valid(const char *url)
{
	struct url_parts u;
	bool ok;

	if (!url_split(url, &u))
		return false;
	ok = strcasecmp(u.scheme, "http") == 0 || strcasecmp(u.scheme, "https") == 0;
	url_parts_free(&u);
	return ok;
}

bool run_outbound_allowed(const struct run_app *app, const char *url)
{
	struct url_parts u;
	bool ok = false;
	size_t i;

	if (!url_split(url, &u))
		return false;
	if (strcasecmp(u.scheme, "http") == 0 || strcasecmp(u.scheme, "https") == 0) {
		for (i = 0; i < app->n_outbound && !ok; i++)
			ok = pattern_allows(app->outbound[i], &u);
	}
	url_parts_free(&u);
	return ok;
}

static void logf_in(struct run_instance *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void logf_in(struct run_instance *in, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		run_log_add(in, "system", msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* ---- libcurl callbacks ---------------------------------------------------------------- */

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct run_xfer *x = arg;

	(void)purpose;
	if (!x->pool->cfg.outbound_allow_private &&
	    run_address_is_private((const struct sockaddr *)&addr->addr)) {
		const void *a = addr->family == AF_INET6
					? (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr
					: (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr;
		inet_ntop(addr->family, a, x->refused, sizeof(x->refused));
		x->refused_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct run_xfer *x = arg;

	if (viv_buf_append(&x->resp.body, p, size * n)) {
		x->too_big = true;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct run_xfer *x = arg;
	size_t len = size * n, nl;
	char *colon, *v;

	/* A status line starts a new response (after 100 Continue). */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		struct viv_buf body = x->resp.body;
		memset(&x->resp.body, 0, sizeof(x->resp.body));
		run_hmsg_clear(&x->resp);
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
	if (!run_hmsg_add_header(&x->resp, p, nl, v, len))
		return 0;
	return size * n;
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct run_pool *p = userp;
	struct epoll_event ev;

	(void)e;
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(p->curlm, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (socketp) {
		epoll_ctl(p->epfd, EPOLL_CTL_MOD, s, &ev);
	} else {
		epoll_ctl(p->epfd, EPOLL_CTL_ADD, s, &ev);
		curl_multi_assign(p->curlm, s, p);
	}
	return 0;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct run_pool *p = userp;

	(void)m;
	if (timeout_ms < 0)
		run_timer_cancel(p, &p->curl_timer);
	else
		run_timer_arm(p, &p->curl_timer, viv_mono_ns() + (uint64_t)timeout_ms * 1000000u);
	return 0;
}

static void check_done(struct run_pool *p);

static void fire_curl_timer(struct run_timer *t)
{
	struct run_pool *p = (struct run_pool *)((char *)t - offsetof(struct run_pool, curl_timer));
	int running = 0;

	curl_multi_socket_action(p->curlm, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(p);
}

void run_outbound_socket(struct run_pool *p, int fd, uint32_t events)
{
	int mask = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
		   (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
		   (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	int running = 0;

	curl_multi_socket_action(p->curlm, fd, mask, &running);
	check_done(p);
}

/* ---- Transfers ---------------------------------------------------------------------------- */

static void xfer_free(struct run_xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		curl_multi_remove_handle(x->pool->curlm, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->hdrs);
	run_hmsg_clear(&x->resp);
	free(x->url);
	free(x->method);
	free(x->body);
	free(x);
}

static unsigned remaining_ms(const struct run_instance *in)
{
	uint64_t now = viv_mono_ns(), left;
	unsigned cap = in->pool->cfg.outbound_timeout_ms;

	left = in->wall_deadline_ns > now ? (in->wall_deadline_ns - now) / 1000000u : 1;
	return left < cap ? (unsigned)(left ? left : 1) : cap;
}

/* Copies what req sends into x. */
static bool xfer_copy_request(struct run_xfer *x, const struct run_hmsg *req)
{
	struct curl_slist *l;
	size_t i;

	x->url = strdup(req->url);
	x->method = strdup(req->method);
	if (!x->url || !x->method)
		return false;
	for (i = 0; i < req->n_hdrs; i++) {
		char *line;

		if (asprintf(&line, "%s: %s", req->hdrs[i].name, req->hdrs[i].value) < 0)
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
	if (req->body.data) {
		x->body = malloc(req->body.len + 1);
		if (!x->body)
			return false;
		memcpy(x->body, req->body.data, req->body.len);
		x->body_len = req->body.len;
	}
	return true;
}

/* Sets up and adds an easy handle for x->url. */
static bool xfer_go(struct run_xfer *x)
{
	struct run_instance *in = x->in;
	CURL *e = curl_easy_init();

	if (!e)
		return false;
	x->easy = e;
	run_hmsg_clear(&x->resp);
	viv_buf_init(&x->resp.body, in->pool->cfg.outbound_body_max);
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
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)remaining_ms(in));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)in->pool->cfg.outbound_body_max);
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
	x->errbuf[0] = '\0';
	return curl_multi_add_handle(x->pool->curlm, e) == CURLM_OK;
}

/* A finished transfer: a redirect to follow, a response, or a failure. */
static void xfer_done(struct run_xfer *x, CURLcode rc)
{
	struct run_instance *in = x->in;
	struct run_hmsg resp;
	long status = 0;
	char *location = NULL;
	int pi = x->pi;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &location);
	if (rc == CURLE_OK && location &&
	    (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)) {
		char *next = strdup(location);

		if (!next || ++x->redirects > MAX_REDIRECTS) {
			logf_in(in, "outbound request to %s failed: more than %d redirects", x->url,
				MAX_REDIRECTS);
			free(next);
			goto fail;
		}
		if (!run_outbound_allowed(in->app, next)) {
			logf_in(in,
				"outbound request refused: %s redirected to %s, which is not in "
				"the app's outbound list (vivarium.json)",
				x->url, next);
			free(next);
			goto fail;
		}
		/* 303, and 301/302 after a POST, go on as GET, as browsers do. */
		if (status == 303 || ((status == 301 || status == 302) &&
				      strcmp(x->method, "POST") == 0)) {
			free(x->method);
			x->method = strdup("GET");
			free(x->body);
			x->body = NULL;
			x->body_len = 0;
		}
		curl_multi_remove_handle(x->pool->curlm, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		free(x->url);
		x->url = next;
		if (x->method && xfer_go(x))
			return;
		goto fail;
	}
	if (rc != CURLE_OK) {
		if (x->refused_address)
			logf_in(in,
				"outbound request refused: %s resolves to %s, a private or local "
				"address",
				x->url, x->refused);
		else if (x->too_big)
			logf_in(in, "outbound request to %s failed: the response is over %zu bytes",
				x->url, in->pool->cfg.outbound_body_max);
		else
			logf_in(in, "outbound request to %s failed: %s", x->url,
				x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		goto fail;
	}
	/* The response leaves the transfer, which is gone before the guest
	 * runs again. */
	resp = x->resp;
	resp.status = (unsigned)status;
	resp.used = true;
	memset(&x->resp, 0, sizeof(x->resp));
	in->hc->pend[pi].xfer = NULL;
	xfer_free(x);
	run_hc_complete(in, pi, &resp);
	return;
fail:
	in->hc->pend[pi].xfer = NULL;
	xfer_free(x);
	run_hc_complete(in, pi, NULL);
}

static void check_done(struct run_pool *p)
{
	CURLMsg *msg;
	int left;

	/* One message at a time: finishing a transfer runs its guest, which
	 * may start transfers or end, and an ending guest removes its other
	 * transfers, messages included. */
	while ((msg = curl_multi_info_read(p->curlm, &left))) {
		struct run_xfer *x = NULL;
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

/* A subrequest owns copies of its method, headers and body in the block it
 * is allocated in (freed with it): the sender goes on running while another
 * instance serves it, and may change or replace its request handle. */
static bool self_request(struct run_instance *in, int pi, const char *url)
{
	struct run_hmsg *req = &in->hc->reqs[in->hc->pend[pi].req];
	struct run_subrequest *sr;
	struct run_header *hs;
	CURLU *h = curl_url();
	char *path = NULL, *query = NULL, *at;
	size_t tl, size, i;

	if (!h || curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) ||
	    curl_url_get(h, CURLUPART_PATH, &path, 0)) {
		curl_url_cleanup(h);
		return false;
	}
	curl_url_get(h, CURLUPART_QUERY, &query, 0);
	tl = strlen(path) + (query ? strlen(query) + 1 : 0);
	size = sizeof(*sr) + req->n_hdrs * sizeof(*hs) + tl + 1 + strlen(req->method) + 1 +
	       req->body.len + 1;
	for (i = 0; i < req->n_hdrs; i++)
		size += req->hdrs[i].name_len + req->hdrs[i].value_len + 2;
	sr = calloc(1, size);
	if (!sr) {
		curl_free(path);
		curl_free(query);
		curl_url_cleanup(h);
		return false;
	}
	hs = (struct run_header *)(sr + 1);
	at = (char *)(hs + req->n_hdrs);
	sr->req.target = at;
	snprintf(at, tl + 1, "%s%s%s", path, query ? "?" : "", query ? query : "");
	at += tl + 1;
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(h);
	sr->from = in;
	sr->pending = pi;
	sr->req.method_len = strlen(req->method);
	sr->req.method = put_text(&at, req->method, sr->req.method_len);
	sr->req.target_len = tl;
	for (i = 0; i < req->n_hdrs; i++) {
		hs[i].name_len = req->hdrs[i].name_len;
		hs[i].name = put_text(&at, req->hdrs[i].name, hs[i].name_len);
		hs[i].value_len = req->hdrs[i].value_len;
		hs[i].value = put_text(&at, req->hdrs[i].value, hs[i].value_len);
	}
	sr->req.headers = hs;
	sr->req.n_headers = req->n_hdrs;
	sr->req.body_len = req->body.len;
	sr->req.body = put_text(&at, req->body.data, req->body.len);
	sr->req.client_addr = in->req->client_addr;
	sr->req.server_name = in->app->host;
	sr->req.server_port = in->req->server_port;
	sr->req.protocol = "HTTP/1.1";
	sr->req.depth = in->req->depth + 1;
	in->hc->pend[pi].sub = sr;
	if (in->pool->services.self_request(in->pool->services.ctx, in, sr) != VIV_OK) {
		if (in->hc->pend[pi].sub == sr) {
			in->hc->pend[pi].sub = NULL;
			free(sr);
		}
		return false;
	}
	return true;
}

void run_subrequest_done(struct run_subrequest *sr, const struct run_response *resp)
{
	struct run_instance *in = sr->from;
	int pi = sr->pending;
	struct run_hmsg m;
	size_t i;
	bool ok = resp != NULL;

	memset(&m, 0, sizeof(m));
	if (resp) {
		m.used = true;
		m.status = resp->status;
		viv_buf_init(&m.body, 0);
		for (i = 0; ok && i < resp->n_headers; i++)
			ok = run_hmsg_add_header(&m, resp->headers[i].name, resp->headers[i].name_len,
						 resp->headers[i].value,
						 resp->headers[i].value_len);
		if (ok && resp->body_len)
			ok = viv_buf_append(&m.body, resp->body, resp->body_len) == VIV_OK;
	}
	in->hc->pend[pi].sub = NULL;
	free(sr);
	if (!ok)
		run_hmsg_clear(&m);
	run_hc_complete(in, pi, ok ? &m : NULL);
}

/* ---- Starting and stopping ---------------------------------------------------------------- */

static bool is_self(const struct run_app *app, const char *url)
{
	struct url_parts u;
	bool self;

	if (!app->host || !url_split(url, &u))
		return false;
	self = strcasecmp(u.host, app->host) == 0;
	url_parts_free(&u);
	return self;
}

bool run_outbound_start(struct run_instance *in, int pi)
{
	struct run_hmsg *req = &in->hc->reqs[in->hc->pend[pi].req];
	struct run_xfer *x;

	if (is_self(in->app, req->url) && in->pool->services.self_request) {
		if (in->req->depth >= MAX_SELF_DEPTH) {
			logf_in(in, "request to %s refused: the app called itself %d deep",
				req->url, MAX_SELF_DEPTH);
			return false;
		}
		return self_request(in, pi, req->url);
	}
	if (!run_outbound_allowed(in->app, req->url)) {
		logf_in(in,
			"outbound request refused: %s is not in the app's outbound list "
			"(\"outbound\" in vivarium.json)",
			req->url);
		return false;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return false;
	x->pool = in->pool;
	x->in = in;
	x->pi = pi;
	if (!xfer_copy_request(x, req) || !xfer_go(x)) {
		xfer_free(x);
		return false;
	}
	in->hc->pend[pi].xfer = x;
	return true;
}

void run_outbound_cancel(struct run_instance *in, int pi)
{
	struct run_pending *p = &in->hc->pend[pi];

	if (p->xfer) {
		xfer_free(p->xfer);
		p->xfer = NULL;
	}
	if (p->sub) {
		if (in->pool->services.self_cancel)
			in->pool->services.self_cancel(in->pool->services.ctx, p->sub);
		free(p->sub);
		p->sub = NULL;
	}
	p->done = true;
}

enum viv_err run_outbound_init(struct run_pool *p)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return VIV_ERR_INTERNAL;
	p->curlm = curl_multi_init();
	if (!p->curlm)
		return VIV_ERR_NOMEM;
	p->curl_timer.heap_index = SIZE_MAX;
	p->curl_timer.fire = fire_curl_timer;
	curl_multi_setopt(p->curlm, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(p->curlm, CURLMOPT_SOCKETDATA, p);
	curl_multi_setopt(p->curlm, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(p->curlm, CURLMOPT_TIMERDATA, p);
	return VIV_OK;
}

void run_outbound_free(struct run_pool *p)
{
	if (p->curlm)
		curl_multi_cleanup(p->curlm);
	p->curlm = NULL;
}
