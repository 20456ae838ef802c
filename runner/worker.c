/* A runner worker: one single-threaded libh2o event loop that accepts on the
 * shared port and serves apps (serve.c) from its own pool of sandboxes,
 * whose descriptor the loop watches. Each request counts in the worker's
 * metrics and gets an access line in its app's log (account.c); app logs
 * and the metrics file are written by the worker's writer thread, off the
 * event loop. On SIGTERM it stops taking connections and drains. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker.h"

/* Every second: budgets, the instances gauge, routes. */
#define TICK_MS 1000
/* How long accepting waits when the process is out of descriptors. */
#define ACCEPT_PAUSE_MS 100
/* How long a stopping worker waits for requests in flight. */
#define DRAIN_NS (10000ull * 1000u * 1000u)

/* The worker's one global: set by the SIGTERM and SIGINT handler, which can
 * reach nothing else, and read by the event loop between its runs. */
static volatile sig_atomic_t stopping;

static void on_stop_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_tick(h2o_timeout_entry_t *e)
{
	struct worker *w = (struct worker *)((char *)e - offsetof(struct worker, tick));

	run_account_tick(w->acct, w->pool->n_busy);
	run_serve_tick(w);
	h2o_timeout_link(w->ctx.loop, &w->tick_timeout, &w->tick);
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_resume(h2o_timeout_entry_t *e)
{
	struct worker *w = (struct worker *)((char *)e - offsetof(struct worker, accept_resume));

	h2o_socket_read_start(w->listener, on_accept);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = listener->data;
	h2o_socket_t *sock;

	if (err)
		return;
	sock = h2o_evloop_socket_accept(listener);
	if (sock) {
		h2o_accept(&w->accept, sock);
		return;
	}
	/* Out of descriptors (or of kernel memory for them): the connection
	 * stays in the backlog and the listener stays readable, so the loop
	 * would wake for it again at once, over and over, and starve the
	 * requests in flight. Accepting waits while some of them end. */
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		h2o_socket_read_stop(w->listener);
		if (!h2o_timeout_is_linked(&w->accept_resume))
			h2o_timeout_link(w->ctx.loop, &w->accept_pause_timeout, &w->accept_resume);
		if (w->accept_pauses++ % 1000 == 0)
			viv_log(VIV_WARN,
			        "no descriptor to accept a connection with (%s; %u requests in "
			        "flight): not accepting for %d ms; raise the descriptor limit "
			        "(LimitNOFILE=) for more",
			        strerror(errno), w->pool->n_busy, ACCEPT_PAUSE_MS);
	}
}

/* The pool has timers due or descriptors ready. */
static void on_pool(h2o_socket_t *sock, const char *err)
{
	struct worker *w = sock->data;

	(void)err;
	run_pool_poll(w->pool);
}

static enum viv_err worker_setup(struct worker *w, const struct run_worker_config *cfg)
{
	h2o_hostconf_t *host;
	h2o_pathconf_t *path;
	struct run_services services;
	char err[512];
	enum viv_err e;

	w->cfg = cfg;
	e = run_pool_create(&cfg->pool, &w->pool);
	if (e) {
		viv_log(VIV_ERROR, "cannot reserve %u sandbox slots: %s", cfg->pool.slots,
		        viv_strerror(e));
		return e;
	}
	h2o_config_init(&w->conf);
	w->conf.server_name = h2o_iovec_init(H2O_STRLIT("vivarium"));
	w->conf.max_request_entity_size = cfg->request_body_max;
	host = h2o_config_register_host(&w->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	path = h2o_config_register_path(host, "/", 0);
	e = run_serve_open(w, path, err, sizeof(err));
	if (e) {
		viv_log(VIV_ERROR, "cannot open the store: %s", err);
		return e;
	}
	h2o_context_init(&w->ctx, h2o_evloop_create(), &w->conf);
	err[0] = '\0';
	e = run_account_start(cfg->datadir, cfg->store_url, cfg->index, w->ctx.loop, &w->acct, err,
	                      sizeof(err));
	if (e) {
		viv_log(VIV_ERROR, "cannot start the writer: %s",
		        e == VIV_ERR_NOMEM ? "out of memory" : err);
		return e;
	}
	run_serve_services(w, &services);
	run_pool_set_services(w->pool, &services);
	h2o_timeout_init(w->ctx.loop, &w->tick_timeout, TICK_MS);
	w->tick.cb = on_tick;
	h2o_timeout_link(w->ctx.loop, &w->tick_timeout, &w->tick);
	h2o_timeout_init(w->ctx.loop, &w->accept_pause_timeout, ACCEPT_PAUSE_MS);
	w->accept_resume.cb = on_accept_resume;
	w->accept.ctx = &w->ctx;
	w->accept.hosts = w->conf.hosts;
	w->listener =
	        h2o_evloop_socket_create(w->ctx.loop, cfg->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
	w->listener->data = w;
	h2o_socket_read_start(w->listener, on_accept);
	w->pool_sock = h2o_evloop_socket_create(w->ctx.loop, dup(run_pool_fd(w->pool)),
	                                        H2O_SOCKET_FLAG_DONT_READ);
	w->pool_sock->data = w;
	h2o_socket_read_start(w->pool_sock, on_pool);
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
	if (worker_setup(w, cfg))
		return 1;
	w->started_ns = viv_mono_ns();
	viv_log(VIV_INFO, "serving apps at http://APP.%s:%u/ (%zu routable)", cfg->domain,
	        cfg->port, run_serve_routable(w));
	while (!stopping)
		h2o_evloop_run(w->ctx.loop, 1000);
	/* Stop taking connections, let requests in flight finish. */
	if (h2o_timeout_is_linked(&w->accept_resume))
		h2o_timeout_unlink(&w->accept_resume);
	h2o_socket_read_stop(w->listener);
	h2o_context_request_shutdown(&w->ctx);
	drain_until = viv_mono_ns() + DRAIN_NS;
	while (w->pool->n_busy && viv_mono_ns() < drain_until)
		h2o_evloop_run(w->ctx.loop, 100);
	run_account_stop(w->acct, w->pool->n_busy);
	viv_log(VIV_INFO, "stopped");
	return 0;
}
