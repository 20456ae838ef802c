/* Serving a worker's requests: each is routed by its Host header to an app
 * (or to one of its deployments, at a preview address), answered from the
 * app's static files or by a fresh instance, and accounted for
 * (account.c). Requests an app sends to itself are served here too, by a
 * second instance or a static file, as the pool's self_request service. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker.h"

/* The readiness of this host, at an address that is no app's (its IP, or
 * the bare domain), for a load balancer's health checks. */
#define RUN_READY_PATH "/healthz"
/* How long a host waits for missing artifacts before it says it is ready
 * all the same. */
#define READY_GRACE_NS (30000ull * 1000u * 1000u)

/* A request an app sent to itself, served by a second instance. */
struct wsub {
	struct worker *w;
	struct run_subrequest *sr; /* NULL once the sender is gone */
	struct run_route *route;
	struct run_instance *inst;
	uint64_t t0; /* when it reached the worker, CLOCK_MONOTONIC */
};

/* One request in flight. Allocated on the request's memory pool, so its
 * dispose callback tells us when h2o is done with the request (the client
 * may go away while the guest still runs). */
struct wreq {
	struct worker *w;
	h2o_req_t *req; /* NULL once h2o disposed it */
	struct run_route *route;
	struct run_instance *inst;
	struct run_request rr;
	uint64_t t0; /* when it reached the worker, CLOCK_MONOTONIC */
	/* The method, then the target, copied when the instance outlives
	 * on_req(): the client may go away and take h2o's request with it. */
	char *saved;
	size_t saved_method_len, saved_target_len;
};

/* The handler of every request: h2o hands it back to on_req(). */
struct whandler {
	h2o_handler_t super;
	struct worker *w;
};

/* account_request() for a request an instance answered, before it ends. */
static void account_instance(struct worker *w, const struct run_route *r,
                             const struct run_request *req, uint64_t t0, struct run_instance *inst)
{
	struct run_instance_stats st;

	run_instance_stats(inst, &st);
	run_account_request(w->acct, r, req->method, req->method_len, req->target, req->target_len,
	                    run_instance_response(inst)->status, t0, &st, RUN_ACCESS_INSTANCE);
}

/* Keeps the instance's log lines for the route's app. */
static void keep_logs(struct worker *w, const struct run_route *r, struct run_instance *inst)
{
	const struct run_log_line *lines;
	size_t n;

	lines = run_instance_logs(inst, &n);
	run_account_logs(w->acct, r, lines, n);
}

/* ---- Responses --------------------------------------------------------------------- */

static const char *reason(unsigned status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	}
	return status < 200   ? "Informational"
	       : status < 300 ? "OK"
	       : status < 400 ? "Redirect"
	       : status < 500 ? "Client Error"
	                      : "Server Error";
}

static void send_text(h2o_req_t *req, unsigned status, const char *body)
{
	req->res.status = (int)status;
	req->res.reason = reason(status);
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("text/plain; charset=utf-8"));
	req->res.content_length = strlen(body);
	h2o_send_inline(req, body, strlen(body));
}

static void send_response(h2o_req_t *req, const struct run_response *resp)
{
	size_t i, j;

	req->res.status = (int)resp->status;
	req->res.reason = reason(resp->status);
	for (i = 0; i < resp->n_headers; i++) {
		const struct run_header *h = &resp->headers[i];
		char *name = h2o_mem_alloc_pool(&req->pool, h->name_len);

		/* HTTP/2 wants lower-case names, and h2o's known headers are
		 * matched that way. */
		for (j = 0; j < h->name_len; j++)
			name[j] = (char)tolower((unsigned char)h->name[j]);
		h2o_add_header_by_str(&req->pool, &req->res.headers, name, h->name_len, 1, NULL,
		                      h->value, h->value_len);
	}
	req->res.content_length = resp->body_len;
	h2o_send_inline(req, resp->body ? resp->body : "", resp->body_len);
}

/* Sends what the instance produced (if anyone still waits), keeps its log
 * lines and frees everything. */
static void complete(struct wreq *wr)
{
	struct worker *w = wr->w;

	if (wr->req)
		send_response(wr->req, run_instance_response(wr->inst));
	keep_logs(w, wr->route, wr->inst);
	if (wr->req)
		account_instance(w, wr->route, &wr->rr, wr->t0, wr->inst);
	else if (wr->saved) /* 499: what nginx logs for a client that closed first */
		run_account_request(w->acct, wr->route, wr->saved, wr->saved_method_len,
		                    wr->saved + wr->saved_method_len, wr->saved_target_len, 499,
		                    wr->t0, NULL, RUN_ACCESS_INSTANCE);
	run_instance_end(wr->inst);
	wr->inst = NULL;
	run_route_release(wr->route);
	wr->route = NULL;
	free(wr->saved);
	wr->saved = NULL;
}

static void on_instance_done(struct run_instance *inst, void *arg)
{
	struct wreq *wr = arg;

	(void)inst;
	complete(wr);
}

static void on_req_dispose(void *p)
{
	struct wreq *wr = p;

	/* The client went away while the guest was still running: stop it. */
	wr->req = NULL;
	if (wr->inst)
		complete(wr);
}

/* ---- Requests ------------------------------------------------------------------------ */

/* The app label of a Host value "APP.DOMAIN[:port]", or NULL. */
static const char *app_of_host(const struct worker *w, h2o_iovec_t host, size_t *len)
{
	const char *colon = memchr(host.base, ':', host.len);
	size_t n = colon ? (size_t)(colon - host.base) : host.len;
	size_t dl = strlen(w->cfg->domain);
	char label[64];

	if (n > 0 && host.base[n - 1] == '.')
		n--; /* a fully qualified name */
	if (n <= dl + 1 || host.base[n - dl - 1] != '.' ||
	    strncasecmp(host.base + n - dl, w->cfg->domain, dl) != 0)
		return NULL;
	*len = n - dl - 1;
	if (*len >= sizeof(label))
		return NULL;
	memcpy(label, host.base, *len);
	label[*len] = '\0';
	if (!viv_app_name_valid(label))
		return NULL;
	return host.base;
}

/* The dotted quad of the 4 bytes at a into buf (16 bytes at least), by
 * hand: inet_ntop() formats it through sprintf(), which cost as much as
 * everything else the worker does to route a request. */
static void ipv4_text(const uint8_t *a, char *buf)
{
	int i;

	for (i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*buf++ = (char)('0' + v / 100);
		if (v >= 10)
			*buf++ = (char)('0' + v / 10 % 10);
		*buf++ = (char)('0' + v % 10);
		*buf++ = i < 3 ? '.' : '\0';
	}
}

static const char *client_addr(h2o_req_t *req)
{
	struct sockaddr_storage ss;
	char *buf = h2o_mem_alloc_pool(&req->pool, INET6_ADDRSTRLEN);
	socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

	strcpy(buf, "0.0.0.0");
	if (len && ss.ss_family == AF_INET)
		ipv4_text((const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr, buf);
	else if (len && ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf,
		          INET6_ADDRSTRLEN);
	return buf;
}

static bool is_client_ip_header(const h2o_iovec_t *name)
{
	return (name->len == 9 && strncasecmp(name->base, "x-real-ip", 9) == 0) ||
	       (name->len == 16 && strncasecmp(name->base, "fastly-client-ip", 16) == 0);
}

/* Fills wr->rr from the h2o request; everything points into req's pool. */
static void describe(struct wreq *wr, h2o_req_t *req, h2o_iovec_t host)
{
	struct run_request *rr = &wr->rr;
	struct run_header *hs;
	const char *colon = memchr(host.base, ':', host.len);
	size_t hn = colon ? (size_t)(colon - host.base) : host.len, i, n = 0;
	char *server_name = h2o_mem_alloc_pool(&req->pool, hn + 1);

	memcpy(server_name, host.base, hn);
	server_name[hn] = '\0';
	rr->method = req->method.base;
	rr->method_len = req->method.len;
	rr->target = req->input.path.base;
	rr->target_len = req->input.path.len;
	rr->body = req->entity.base;
	rr->body_len = req->entity.base ? req->entity.len : 0;
	rr->client_addr = client_addr(req);
	rr->server_name = server_name;
	rr->server_port = wr->w->cfg->port;
	rr->protocol = req->version >= 0x200   ? "HTTP/2"
	               : req->version == 0x100 ? "HTTP/1.0"
	                                       : "HTTP/1.1";
	hs = h2o_mem_alloc_pool(&req->pool, (req->headers.size + 4) * sizeof(*hs));
	/* h2o keeps Host and Content-Length apart from the other headers;
	 * guests see them as the client sent them. */
	hs[n++] = (struct run_header){"Host", 4, host.base, host.len};
	if (rr->body) {
		char *cl = h2o_mem_alloc_pool(&req->pool, 24);
		int cn = snprintf(cl, 24, "%zu", rr->body_len);
		hs[n++] = (struct run_header){"Content-Length", 14, cl, (size_t)cn};
	}
	for (i = 0; i < req->headers.size; i++) {
		const h2o_header_t *h = &req->headers.entries[i];

		/* The client address comes from the connection, never from
		 * what the client says it is. */
		if (is_client_ip_header(h->name))
			continue;
		hs[n].name = h->orig_name ? h->orig_name : h->name->base;
		hs[n].name_len = h->name->len;
		hs[n].value = h->value.base;
		hs[n].value_len = h->value.len;
		n++;
	}
	hs[n++] = (struct run_header){"X-Real-IP", 9, rr->client_addr, strlen(rr->client_addr)};
	hs[n++] = (struct run_header){"Fastly-Client-IP", 16, rr->client_addr,
	                              strlen(rr->client_addr)};
	rr->headers = hs;
	rr->n_headers = n;
}

static bool is_get_or_head(const char *m, size_t n)
{
	return (n == 3 && memcmp(m, "GET", 3) == 0) || (n == 4 && memcmp(m, "HEAD", 4) == 0);
}

/* Static assets come before the app: true when target was one and has
 * been answered. */
static bool serve_asset(struct run_route *route, h2o_req_t *req)
{
	struct run_asset f;

	if (!is_get_or_head(req->method.base, req->method.len) ||
	    !run_route_asset(route, req->input.path.base, req->input.path.len, &f))
		return false;
	return h2o_file_send(req, 200, "OK", f.path, h2o_iovec_init(f.type, f.type_len), 0) == 0;
}

/* ---- Requests an app sends to itself --------------------------------------------------- */

static void wsub_free(struct wsub *ws)
{
	run_route_release(ws->route);
	free(ws);
}

static void on_sub_done(struct run_instance *inst, void *arg)
{
	struct wsub *ws = arg;

	keep_logs(ws->w, ws->route, inst);
	if (ws->sr) {
		account_instance(ws->w, ws->route, &ws->sr->req, ws->t0, inst);
		ws->sr->done(ws->sr, run_instance_response(inst));
	}
	run_instance_end(inst);
	wsub_free(ws);
}

/* Answers a self request from the app's static files. */
static bool sub_asset(struct worker *w, struct run_route *route, struct run_subrequest *sr,
                      uint64_t t0)
{
	struct run_response resp;
	struct run_header ct;
	struct run_asset f;
	char *data = NULL;
	size_t len = 0;

	if (!is_get_or_head(sr->req.method, sr->req.method_len) ||
	    !run_route_asset(route, sr->req.target, sr->req.target_len, &f))
		return false;
	if (viv_read_file(f.path, w->cfg->pool.outbound_body_max, &data, &len)) {
		sr->done(sr, NULL);
		return true;
	}
	ct = (struct run_header){"content-type", 12, f.type, f.type_len};
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.headers = &ct;
	resp.n_headers = 1;
	resp.body = data;
	resp.body_len = sr->req.method_len == 4 ? 0 : len;
	run_account_request(w->acct, route, sr->req.method, sr->req.method_len, sr->req.target,
	                    sr->req.target_len, 200, t0, NULL, RUN_ACCESS_STATIC);
	sr->done(sr, &resp);
	free(data);
	return true;
}

static enum viv_err on_self_request(void *ctx, struct run_instance *from, struct run_subrequest *sr)
{
	struct worker *w = ctx;
	struct run_route *route = run_instance_app(from)->owner;
	struct run_module *m;
	struct wsub *ws;
	const char *why;
	enum viv_err err;
	uint64_t t0 = viv_mono_ns();

	if (sub_asset(w, route, sr, t0))
		return VIV_OK;
	err = run_route_module(w->routes, route, &m, &why);
	if (err)
		return err;
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return VIV_ERR_NOMEM;
	ws->w = w;
	ws->sr = sr;
	ws->route = route;
	ws->t0 = t0;
	route->refs++;
	sr->data = ws;
	err = run_instance_start(w->pool, m, &route->app, &sr->req, on_sub_done, ws, &ws->inst);
	if (err) {
		sr->data = NULL;
		wsub_free(ws);
		return err;
	}
	if (run_instance_done(ws->inst))
		on_sub_done(ws->inst, ws);
	return VIV_OK;
}

static void on_self_cancel(void *ctx, struct run_subrequest *sr)
{
	struct wsub *ws = sr->data;

	(void)ctx;
	if (!ws)
		return;
	/* Stop the second instance; its response has nobody to go to. */
	ws->sr = NULL;
	keep_logs(ws->w, ws->route, ws->inst);
	run_instance_end(ws->inst);
	wsub_free(ws);
}

/* The trimmed value of the header line [p, end) if its name is name
 * (any case), else NULL. */
static const char *header_value(const char *p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);

	if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n) != 0)
		return NULL;
	p += n + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - p);
	return p;
}

/* Why the framing of an HTTP/1 request is invalid under RFC 9112, or NULL
 * when it is not. h2o keeps only the last Host line and reads the body by
 * the first Content-Length (or by Transfer-Encoding when both came), which
 * a proxy in front of vivd may read otherwise, so the header block is read
 * again here as the client sent it: it is still at the start of the
 * connection's input buffer while the request is handled. */
static const char *bad_framing(h2o_req_t *req)
{
	h2o_socket_t *sock;
	const char *p, *end, *cl = NULL, *v;
	size_t cl_len = 0, len, hosts = 0;
	bool te = false;

	if (req->version >= 0x200 || !req->conn->callbacks->get_socket)
		return NULL;
	sock = req->conn->callbacks->get_socket(req->conn);
	if (!sock || !sock->input)
		return NULL;
	p = sock->input->bytes;
	end = p + sock->input->size;
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	p = memchr(p, '\n', (size_t)(end - p)); /* past the request line */
	while (p && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol;

		if (!eol)
			break;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
		if (line_end == p)
			break; /* the empty line that ends the header block */
		if (*p == ' ' || *p == '\t')
			return "A header line continues the one before it (obs-fold), which "
			       "HTTP/1.1 no longer allows.\n";
		if (header_value(p, line_end, "host", &len))
			hosts++;
		if (header_value(p, line_end, "transfer-encoding", &len))
			te = true;
		v = header_value(p, line_end, "content-length", &len);
		if (v && cl && (len != cl_len || memcmp(v, cl, len) != 0))
			return "The request has two different Content-Length values.\n";
		if (v) {
			cl = v;
			cl_len = len;
		}
		p = eol;
	}
	if (hosts > 1)
		return "The request has more than one Host header.\n";
	if (te && cl)
		return "The request has both Content-Length and Transfer-Encoding.\n";
	return NULL;
}

/* Whether this host should be sent requests, for the load balancer in
 * front (a path on no app's address): once the routes were read from the
 * store and every artifact they name is here; or, so that one artifact this
 * host cannot have does not take every host out, after READY_GRACE_NS
 * however many are still missing. */
static int send_readiness(struct worker *w, h2o_req_t *req, enum viv_err routes_err)
{
	size_t missing = run_routes_missing(w->routes);
	bool loaded = run_routes_loaded(w->routes);
	char text[160];

	if (!loaded || routes_err) {
		send_text(req, 503, "not ready: the routes could not be read from the store yet\n");
		return 0;
	}
	if (missing && viv_mono_ns() - w->started_ns < READY_GRACE_NS) {
		snprintf(text, sizeof(text), "not ready: %zu artifacts are still on their way\n",
		         missing);
		send_text(req, 503, text);
		return 0;
	}
	snprintf(text, sizeof(text), "ready: %zu apps, %zu artifacts missing\n",
	         run_routes_count(w->routes), missing);
	send_text(req, 200, text);
	return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct worker *w = ((struct whandler *)self)->w;
	struct run_route *route;
	struct run_module *m;
	struct wreq *wr;
	const char *label, *why;
	size_t label_len = 0;
	enum viv_err err;
	uint64_t t0 = viv_mono_ns();

	why = bad_framing(req);
	if (why) {
		/* Whatever follows on the connection cannot be told apart from
		 * this request's body: it is closed after the answer. */
		req->http1_is_persistent = 0;
		send_text(req, 400, why);
		return 0;
	}
	err = run_routes_refresh(w->routes);
	if (err)
		viv_log(VIV_ERROR, "cannot reload routes: %s", viv_strerror(err));
	label = app_of_host(w, req->authority, &label_len);
	if (!label && h2o_memis(req->path_normalized.base, req->path_normalized.len,
	                        H2O_STRLIT(RUN_READY_PATH)))
		return send_readiness(w, req, err);
	route = label ? run_routes_find(w->routes, label, label_len) : NULL;
	if (!route) {
		send_text(req, 404,
		          "No app is deployed at this address.\n"
		          "Apps answer at http://APP.DOMAIN/ once a deployment is ready.\n");
		return 0;
	}
	if (serve_asset(route, req)) {
		run_account_request(w->acct, route, req->method.base, req->method.len,
		                    req->input.path.base, req->input.path.len,
		                    (unsigned)req->res.status, t0, NULL, RUN_ACCESS_STATIC);
		run_route_release(route);
		return 0;
	}
	err = run_route_module(w->routes, route, &m, &why);
	if (err) {
		send_text(req, 500,
		          "This app could not be loaded; its operator has the details.\n");
		run_account_request(w->acct, route, req->method.base, req->method.len,
		                    req->input.path.base, req->input.path.len, 500, t0, NULL,
		                    RUN_ACCESS_NONE);
		run_route_release(route);
		return 0;
	}
	wr = h2o_mem_alloc_shared(&req->pool, sizeof(*wr), on_req_dispose);
	memset(wr, 0, sizeof(*wr));
	wr->w = w;
	wr->req = req;
	wr->route = route;
	wr->t0 = t0;
	describe(wr, req, req->authority);
	err = run_instance_start(w->pool, m, &route->app, &wr->rr, on_instance_done, wr, &wr->inst);
	if (err) {
		wr->route = NULL;
		send_text(req, 503,
		          err == VIV_ERR_BUSY ? "The server is busy; try again in a moment.\n"
		                              : "The server could not start the app.\n");
		run_account_request(w->acct, route, req->method.base, req->method.len,
		                    req->input.path.base, req->input.path.len, 503, t0, NULL,
		                    RUN_ACCESS_NONE);
		run_route_release(route);
		return 0;
	}
	if (run_instance_done(wr->inst)) {
		complete(wr);
		return 0;
	}
	wr->saved = malloc(req->method.len + req->input.path.len + 1);
	if (wr->saved) {
		memcpy(wr->saved, req->method.base, req->method.len);
		memcpy(wr->saved + req->method.len, req->input.path.base, req->input.path.len);
		wr->saved_method_len = req->method.len;
		wr->saved_target_len = req->input.path.len;
	}
	return 0;
}

/* ---- The worker's side ------------------------------------------------------------------- */

enum viv_err run_serve_open(struct worker *w, h2o_pathconf_t *path, char *err, size_t errlen)
{
	struct whandler *h;
	enum viv_err e;

	e = run_routes_open(w->cfg->datadir, w->cfg->store_url, w->cfg->domain, &w->routes, err,
	                    errlen);
	if (e)
		return e;
	h = (struct whandler *)h2o_create_handler(path, sizeof(*h));
	h->super.on_req = on_req;
	h->w = w;
	return VIV_OK;
}

void run_serve_services(struct worker *w, struct run_services *out)
{
	memset(out, 0, sizeof(*out));
	out->store = run_routes_store(w->routes);
	out->self_request = on_self_request;
	out->self_cancel = on_self_cancel;
	out->ctx = w;
}

static bool app_routable(void *ctx, const char *name)
{
	struct worker *w = ctx;

	return run_routes_has(w->routes, name);
}

void run_serve_tick(struct worker *w)
{
	if (run_routes_refresh(w->routes) == VIV_OK &&
	    w->pruned_gen != run_routes_generation(w->routes)) {
		w->pruned_gen = run_routes_generation(w->routes);
		run_account_prune(w->acct, app_routable, w);
	}
}

size_t run_serve_routable(struct worker *w)
{
	enum viv_err err = run_routes_refresh(w->routes);

	/* A refresh that fails keeps the last table, which the worker serves. */
	if (err)
		viv_log(VIV_ERROR, "cannot reload routes: %s", viv_strerror(err));
	return run_routes_count(w->routes);
}
