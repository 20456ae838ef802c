/* A runner worker: one single-threaded libh2o event loop that accepts on the
 * shared port, routes each request by its Host header to an app (or to one
 * of its deployments, at a preview address), runs it in a fresh sandbox and
 * sends the response. Each request counts in the worker's metrics and gets
 * an access line in its app's log; app logs and the metrics file are
 * written by the worker's writer thread, off the event loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <unistd.h>

#include <h2o.h>

#include "metrics.h"
#include "routes.h"
#include "runner_int.h"
#include "store.h"
#include "writer.h"

/* App log lines kept in memory before they go to the writer thread, and
 * how long a line may wait. */
#define LOG_BATCH_MAX 512
#define LOG_FLUSH_NS (200u * 1000u * 1000u)
/* Access lines an app's log takes from one worker in a second. An app's log
 * keeps its newest STORE_LOG_LINES_PER_APP lines, so more would be deleted
 * about as soon as written, and each costs the store more than the request
 * it describes costs the worker; the requests past it are counted in one
 * line a second instead. */
#define ACCESS_LINES_PER_SECOND STORE_LOG_LINES_PER_APP
#define TICK_NS (1000u * 1000u * 1000u)
/* How long a stopping worker waits for requests in flight. */
#define DRAIN_NS (10000ull * 1000u * 1000u)

struct worker {
	const struct run_worker_config *cfg;
	h2o_globalconf_t conf;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept;
	h2o_socket_t *listener;
	h2o_socket_t *timer_sock;
	struct run_pool *pool;
	struct run_routes *routes;
	struct store_log logs[LOG_BATCH_MAX];
	size_t n_logs;
	struct run_timer flush_timer;
	struct run_metrics *metrics;
	struct run_writer *writer;
	struct run_timer tick_timer; /* every second: budgets, gauge, pruning */
	uint64_t pruned_gen;         /* the routes generation metrics were pruned for */
	size_t dropped_logs;         /* lines the writer's full queue refused */
};

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

static volatile sig_atomic_t stopping;

static void on_stop_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* ---- App logs ---------------------------------------------------------------------- */

/* Hands the batch to the writer thread. */
static void flush_logs(struct worker *w)
{
	size_t dropped;

	if (!w->n_logs)
		return;
	dropped = run_writer_logs(w->writer, w->logs, w->n_logs);
	if (dropped && !w->dropped_logs)
		viv_log(VIV_WARN, "the store is behind: app log lines are being dropped");
	w->dropped_logs += dropped;
	w->n_logs = 0;
}

static void on_flush_timer(struct run_timer *t)
{
	struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, flush_timer));

	flush_logs(w);
}

/* Adds one line to the batch. Takes ownership of message; NULL (out of
 * memory) adds nothing. */
static void keep_line(struct worker *w, int64_t app_id, int64_t deployment_id, const char *stream,
		      char *message)
{
	struct store_log *l;

	if (!message)
		return;
	if (w->n_logs == LOG_BATCH_MAX)
		flush_logs(w);
	l = &w->logs[w->n_logs++];
	l->id = 0;
	l->app_id = app_id;
	l->deployment_id = deployment_id;
	l->ts = viv_now_ms();
	l->stream = (char *)stream;
	l->message = message;
	if (w->flush_timer.heap_index == SIZE_MAX)
		run_timer_arm(w->pool->loop, &w->flush_timer, viv_mono_ns() + LOG_FLUSH_NS);
}

static void keep_logs(struct worker *w, const struct run_route *r, struct run_instance *inst)
{
	const struct run_log_line *lines;
	size_t n, i;

	lines = run_instance_logs(inst, &n);
	for (i = 0; i < n; i++)
		keep_line(w, r->app_id, r->deployment_id, lines[i].stream,
			  strdup(lines[i].message));
}

/* Counts a request the worker answered for route's app in its metrics and
 * gives it its access line. st (NULL when no instance finished) is what the
 * instance that answered met; an instance stopped because its client went
 * away took the whole time. */
static void account(struct worker *w, const struct run_route *r, const char *method,
		    size_t method_len, const char *target, size_t target_len, unsigned status,
		    uint64_t t0, const struct run_instance_stats *st, enum run_access_by by)
{
	struct run_metrics_app *ma = run_metrics_app(w->metrics, r->name);
	struct run_access a;
	char line[RUN_ACCESS_LINE_MAX];
	size_t len;

	a.total_ns = viv_mono_ns() - t0;
	if (ma) {
		run_metrics_request(w->metrics, ma, status, a.total_ns, st);
		ma->app_id = r->app_id;
		ma->deployment_id = r->deployment_id;
		if (!ma->access_budget) {
			ma->access_unlogged++;
			return;
		}
		ma->access_budget--;
	}
	a.method = method;
	a.method_len = method_len;
	a.target = target;
	a.target_len = target_len;
	a.status = status;
	a.instance_ns = st ? st->run_ns : a.total_ns;
	a.by = by;
	len = run_access_line(line, &a);
	keep_line(w, r->app_id, r->deployment_id, "access", strndup(line, len));
}

/* account() for a request an instance answered, before it ends. */
static void account_instance(struct worker *w, const struct run_route *r,
			     const struct run_request *req, uint64_t t0, struct run_instance *inst)
{
	struct run_instance_stats st;

	run_instance_stats(inst, &st);
	account(w, r, req->method, req->method_len, req->target, req->target_len,
		run_instance_response(inst)->status, t0, &st, RUN_ACCESS_INSTANCE);
}

static bool app_routable(void *ctx, const char *name)
{
	struct worker *w = ctx;

	return run_routes_has(w->routes, name);
}

/* Every second: new access budgets (after a line for each app whose
 * requests went past the last one), the live instances, and metrics of
 * apps that are gone dropped. */
static void on_tick(struct run_timer *t)
{
	struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, tick_timer));
	struct run_metrics_app *a, *tmp;
	char *msg;

	HASH_ITER(hh, w->metrics->apps, a, tmp)
	{
		a->access_budget = ACCESS_LINES_PER_SECOND;
		if (!a->access_unlogged)
			continue;
		if (asprintf(&msg,
			     "%llu more requests in the last second have no access line: "
			     "a worker logs at most %u a second for each app",
			     (unsigned long long)a->access_unlogged,
			     (unsigned)ACCESS_LINES_PER_SECOND) >= 0)
			keep_line(w, a->app_id, a->deployment_id, "system", msg);
		a->access_unlogged = 0;
	}
	run_metrics_set_instances(w->metrics, w->pool->n_busy);
	if (run_routes_refresh(w->routes) == VIV_OK &&
	    w->pruned_gen != run_routes_generation(w->routes)) {
		w->pruned_gen = run_routes_generation(w->routes);
		run_metrics_prune(w->metrics, app_routable, w);
	}
	run_timer_arm(w->pool->loop, &w->tick_timer, viv_mono_ns() + TICK_NS);
}

/* ---- Responses --------------------------------------------------------------------- */

static const char *reason(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return status < 200 ? "Informational" : status < 300 ? "OK" : status < 400 ? "Redirect"
		: status < 500 ? "Client Error" : "Server Error";
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
		account(w, wr->route, wr->saved, wr->saved_method_len,
			wr->saved + wr->saved_method_len, wr->saved_target_len, 499, wr->t0, NULL,
			RUN_ACCESS_INSTANCE);
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

static const char *client_addr(h2o_req_t *req)
{
	struct sockaddr_storage ss;
	char *buf = h2o_mem_alloc_pool(&req->pool, INET6_ADDRSTRLEN);
	socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

	strcpy(buf, "0.0.0.0");
	if (len && ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, INET6_ADDRSTRLEN);
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
	rr->protocol = req->version >= 0x200 ? "HTTP/2" : req->version == 0x100 ? "HTTP/1.0"
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

static struct worker *the_worker;

static bool is_get_or_head(const char *m, size_t n)
{
	return (n == 3 && memcmp(m, "GET", 3) == 0) || (n == 4 && memcmp(m, "HEAD", 4) == 0);
}

/* Static assets come before the app: true when target was one and has
 * been answered. */
static bool serve_asset(struct worker *w, struct run_route *route, h2o_req_t *req)
{
	struct run_assets *a = run_route_assets(route);
	struct run_asset f;

	(void)w;
	if (!a || !is_get_or_head(req->method.base, req->method.len) ||
	    !run_assets_find(a, req->input.path.base, req->input.path.len, &f))
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
	struct run_assets *a = run_route_assets(route);
	struct run_response resp;
	struct run_header ct;
	struct run_asset f;
	char *data = NULL;
	size_t len = 0;

	if (!a || !is_get_or_head(sr->req.method, sr->req.method_len) ||
	    !run_assets_find(a, sr->req.target, sr->req.target_len, &f))
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
	account(w, route, sr->req.method, sr->req.method_len, sr->req.target, sr->req.target_len,
		200, t0, NULL, RUN_ACCESS_STATIC);
	sr->done(sr, &resp);
	free(data);
	return true;
}

static enum viv_err on_self_request(void *ctx, struct run_instance *from,
				    struct run_subrequest *sr)
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

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct worker *w = the_worker;
	struct run_route *route;
	struct run_module *m;
	struct wreq *wr;
	const char *label, *why;
	size_t label_len = 0;
	enum viv_err err;
	uint64_t t0 = viv_mono_ns();

	(void)self;
	err = run_routes_refresh(w->routes);
	if (err)
		viv_log(VIV_ERROR, "cannot reload routes: %s", viv_strerror(err));
	label = app_of_host(w, req->authority, &label_len);
	route = label ? run_routes_find(w->routes, label, label_len) : NULL;
	if (!route) {
		send_text(req, 404,
			  "No app is deployed at this address.\n"
			  "Apps answer at http://APP.DOMAIN/ once a deployment is ready.\n");
		return 0;
	}
	if (serve_asset(w, route, req)) {
		account(w, route, req->method.base, req->method.len, req->input.path.base,
			req->input.path.len, (unsigned)req->res.status, t0, NULL, RUN_ACCESS_STATIC);
		run_route_release(route);
		return 0;
	}
	err = run_route_module(w->routes, route, &m, &why);
	if (err) {
		send_text(req, 500, "This app could not be loaded; its operator has the details.\n");
		account(w, route, req->method.base, req->method.len, req->input.path.base,
			req->input.path.len, 500, t0, NULL, RUN_ACCESS_NONE);
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
	err = run_instance_start(w->pool, m, &route->app, &wr->rr, on_instance_done, wr,
				 &wr->inst);
	if (err) {
		wr->route = NULL;
		send_text(req, 503, err == VIV_ERR_BUSY
					    ? "The server is busy; try again in a moment.\n"
					    : "The server could not start the app.\n");
		account(w, route, req->method.base, req->method.len, req->input.path.base,
			req->input.path.len, 503, t0, NULL, RUN_ACCESS_NONE);
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

/* ---- Event loop -------------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = the_worker;
	h2o_socket_t *sock;

	if (err)
		return;
	sock = h2o_evloop_socket_accept(listener);
	if (sock)
		h2o_accept(&w->accept, sock);
}

static void on_timerfd(h2o_socket_t *sock, const char *err)
{
	(void)sock;
	(void)err;
	run_pool_poll(the_worker->pool);
}

static enum viv_err worker_setup(struct worker *w, const struct run_worker_config *cfg)
{
	h2o_hostconf_t *host;
	h2o_pathconf_t *path;
	h2o_handler_t *handler;
	struct run_services services;
	char err[512], *metrics_path = NULL;
	enum viv_err e;

	w->cfg = cfg;
	w->flush_timer.heap_index = SIZE_MAX;
	w->flush_timer.fire = on_flush_timer;
	w->tick_timer.heap_index = SIZE_MAX;
	w->tick_timer.fire = on_tick;
	e = run_pool_create(&cfg->pool, &w->pool);
	if (e) {
		viv_log(VIV_ERROR, "cannot reserve %u sandbox slots: %s", cfg->pool.slots,
			viv_strerror(e));
		return e;
	}
	e = run_routes_open(cfg->datadir, cfg->domain, &w->routes, err, sizeof(err));
	if (e) {
		viv_log(VIV_ERROR, "cannot open the store: %s", err);
		return e;
	}
	e = run_metrics_create(ACCESS_LINES_PER_SECOND, &w->metrics);
	if (!e && asprintf(&metrics_path, "%s/run/metrics/worker-%u.prom", cfg->datadir,
			   cfg->index) < 0)
		e = VIV_ERR_NOMEM;
	if (!e)
		e = run_writer_start(cfg->datadir, w->metrics, metrics_path, &w->writer, err,
				     sizeof(err));
	free(metrics_path);
	if (e) {
		viv_log(VIV_ERROR, "cannot start the writer: %s", e == VIV_ERR_NOMEM ? "out of memory" : err);
		return e;
	}
	run_timer_arm(w->pool->loop, &w->tick_timer, viv_mono_ns() + TICK_NS);
	services.store = run_routes_store(w->routes);
	services.self_request = on_self_request;
	services.self_cancel = on_self_cancel;
	services.ctx = w;
	run_pool_set_services(w->pool, &services);
	h2o_config_init(&w->conf);
	w->conf.server_name = h2o_iovec_init(H2O_STRLIT("vivarium"));
	w->conf.max_request_entity_size = cfg->request_body_max;
	host = h2o_config_register_host(&w->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	path = h2o_config_register_path(host, "/", 0);
	handler = h2o_create_handler(path, sizeof(*handler));
	handler->on_req = on_req;
	h2o_context_init(&w->ctx, h2o_evloop_create(), &w->conf);
	w->accept.ctx = &w->ctx;
	w->accept.hosts = w->conf.hosts;
	w->listener = h2o_evloop_socket_create(w->ctx.loop, cfg->listen_fd,
					       H2O_SOCKET_FLAG_DONT_READ);
	h2o_socket_read_start(w->listener, on_accept);
	w->timer_sock = h2o_evloop_socket_create(w->ctx.loop, dup(run_pool_fd(w->pool)),
						 H2O_SOCKET_FLAG_DONT_READ);
	h2o_socket_read_start(w->timer_sock, on_timerfd);
	return VIV_OK;
}

int run_worker_main(const struct run_worker_config *cfg)
{
	struct worker *w;
	struct sigaction sa;
	uint64_t drain_until;

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	w = calloc(1, sizeof(*w));
	if (!w)
		return 1;
	the_worker = w;
	if (worker_setup(w, cfg))
		return 1;
	viv_log(VIV_INFO, "serving apps at http://APP.%s:%u/ (%zu routable)", cfg->domain,
		cfg->port, (run_routes_refresh(w->routes), run_routes_count(w->routes)));
	while (!stopping)
		h2o_evloop_run(w->ctx.loop, 1000);
	/* Stop taking connections, let requests in flight finish. */
	h2o_socket_read_stop(w->listener);
	h2o_context_request_shutdown(&w->ctx);
	drain_until = viv_mono_ns() + DRAIN_NS;
	while (w->pool->n_busy && viv_mono_ns() < drain_until)
		h2o_evloop_run(w->ctx.loop, 100);
	flush_logs(w);
	run_metrics_set_instances(w->metrics, w->pool->n_busy);
	run_writer_stop(w->writer);
	viv_log(VIV_INFO, "stopped");
	return 0;
}
