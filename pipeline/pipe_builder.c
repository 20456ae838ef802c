/* The builders: cfg->builders threads, each with its own store connection
 * and its own folder, that claim queued deployments and build them, several
 * at once; a heartbeat that renews the leases of their builds; and the
 * builder role's process around them. A thread with nothing to do waits on
 * the store's queue notification, which any process that queues a
 * deployment on this data directory moves. */
#include "pipeline_int.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a builder waits for the queue's notification before it looks
 * anyway: what a store on another machine queued is found within this. */
#define IDLE_WAIT_MS 1000
/* Any upload hash: a build key made at start warms what keys need. */
#define KEY_WARM_UPLOAD "0000000000000000000000000000000000000000000000000000000000000000"
#define BUILDERS_MAX 64

struct pipe_builder;

/* One builder thread and its folder. */
struct builder_thread {
	struct pipe_builder *b;
	unsigned index;
	pthread_t thread;
	bool started;
	char *dir; /* builds_dir/INDEX */
};

struct pipe_builder {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled as threads finish store_open, and at stop */
	bool stop;           /* read and written atomically */
	unsigned opened;     /* threads that finished store_open */
	enum viv_err open_err;
	char open_msg[256];
	char *datadir;
	struct pipe_config cfg;
	/* Owned copies cfg points to. */
	char *include_dir, *sdk_dir, *tool_dir, *builds_dir, *store_url;
	struct builder_thread *threads;
	unsigned n;
	/* A connection used for waking the threads (its mapping of the queue's
	 * word, from whichever thread stops or wakes them) and by the
	 * heartbeat, whose database connection it is. Its owner is the
	 * builders' owner: one renewal keeps all their leases. */
	struct store *waker;
	pthread_t heartbeat;
	bool heartbeat_started;
};

static bool stopping(struct pipe_builder *b)
{
	return __atomic_load_n(&b->stop, __ATOMIC_ACQUIRE);
}

/* Asks the AOT tools for their versions and hashes this program for build
 * keys now, so that the first build a user waits for does not pay for it. A
 * failure here is only logged: the build that needs the tools reports it to
 * the user. */
static void warm_tools(struct pipe_builder *b, struct store *st)
{
	const struct pipe_tools *tools;
	struct pipe_ctx ctx;
	char *scratch = NULL, *tmp = NULL, err[256], key[VIV_SHA256_HEX_LEN + 1];

	if (store_build_dir(st, b->builds_dir, 0, &scratch))
		return;
	tmp = viv_path_join(scratch, "tmp");
	if (tmp && viv_mkdirs(tmp, 0700) == VIV_OK) {
		pipe_ctx_init(&ctx, &b->cfg, scratch);
		if (pipe_tools_get(&ctx, &tools, err, sizeof(err)))
			viv_log(VIV_WARN, "builder: %s", err);
		else if (pipe_build_key(&ctx, KEY_WARM_UPLOAD, key, err, sizeof(err)))
			viv_log(VIV_WARN,
			        "builder: no build keys, so no reuse of identical "
			        "uploads: %s",
			        err);
		pipe_ctx_free(&ctx);
	}
	free(tmp);
	viv_rmtree_or_log(scratch);
	free(scratch);
}

/* Removes a build's folder that an interrupted build left: its language
 * step's files belong to the build user, so the launcher empties tenant/
 * first. */
static bool remove_left(struct pipe_builder *b, const char *dir, const char *name)
{
	char *path = viv_path_join(dir, name);
	char *tenant = path ? viv_path_join(path, "tenant") : NULL;
	bool ok = false;

	if (tenant) {
		/* What the launcher could not empty, viv_rmtree tries again. */
		if (pipe_launcher_empty(&b->cfg, tenant))
			viv_log(VIV_WARN, "builder: the launcher could not empty %s", tenant);
		ok = viv_rmtree(path) == VIV_OK;
		if (!ok)
			viv_log(VIV_WARN, "builder: could not remove %s", path);
	}
	free(path);
	free(tenant);
	return ok;
}

/* Removes what interrupted builds (vivd stopped or crashed) left in the
 * builds folder: folders in the builders' own folders (which stay, and may
 * be mount points), and any other folder. */
static void sweep(struct pipe_builder *b)
{
	struct dirent *de;
	size_t removed = 0;
	DIR *d = opendir(b->builds_dir);

	if (!d) {
		viv_log(VIV_WARN, "builder: cannot list %s: %s", b->builds_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *slot;
		struct dirent *in;
		uint64_t k;
		DIR *sd;

		if (de->d_name[0] == '.')
			continue;
		if (!viv_parse_u64(de->d_name, NULL, UINT32_MAX, &k) || k >= b->n) {
			removed += remove_left(b, b->builds_dir, de->d_name);
			continue;
		}
		slot = viv_path_join(b->builds_dir, de->d_name);
		sd = slot ? opendir(slot) : NULL;
		while (sd && (in = readdir(sd)) != NULL) {
			if (strcmp(in->d_name, ".") && strcmp(in->d_name, ".."))
				removed += remove_left(b, slot, in->d_name);
		}
		if (sd)
			closedir(sd);
		free(slot);
	}
	closedir(d);
	if (removed)
		viv_log(VIV_INFO, "builder: removed %zu folders of interrupted builds", removed);
}

static void *builder_main(void *arg)
{
	struct builder_thread *t = arg;
	struct pipe_builder *b = t->b;
	struct store *st = NULL;
	char msg[256];
	enum viv_err err;

	err = store_open_db(b->datadir, b->cfg.store_url, &st, msg, sizeof(msg));
	if (!err)
		err = store_set_owner(st, store_owner(b->waker));
	if (!err)
		store_set_lease_ms(st, b->cfg.lease_ms);
	pthread_mutex_lock(&b->lock);
	b->opened++;
	if (err && !b->open_err) {
		b->open_err = err;
		snprintf(b->open_msg, sizeof(b->open_msg), "%s", msg);
	}
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (err)
		return NULL;

	while (!stopping(b)) {
		uint32_t seen = store_queue_generation(st);
		int64_t id = 0;

		err = store_deployment_claim(st, &id);
		if (err == VIV_OK) {
			err = pipe_build(st, &b->cfg, t->dir, id);
			if (err)
				viv_log(VIV_ERROR, "builder %u: deployment %lld: %s", t->index,
				        (long long)id, viv_strerror(err));
			continue;
		}
		if (err != VIV_ERR_NOT_FOUND)
			viv_log(VIV_ERROR, "builder %u: could not claim a deployment: %s", t->index,
			        viv_strerror(err));
		if (!stopping(b))
			store_queue_wait(st, seen, IDLE_WAIT_MS);
	}
	store_close(st);
	return NULL;
}

/* Renews the leases of the builds in progress every third of a lease, until
 * the builder stops. A renewal that fails is said: if they keep failing,
 * the builds are taken over when their leases run out, and their outcomes
 * here are dropped. */
static void *heartbeat_main(void *arg)
{
	struct pipe_builder *b = arg;
	unsigned lease = b->cfg.lease_ms ? b->cfg.lease_ms : STORE_LEASE_MS_DEFAULT;
	struct timespec at;
	enum viv_err err;
	size_t n;

	pthread_mutex_lock(&b->lock);
	while (!stopping(b)) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += lease / 3000;
		at.tv_nsec += (long)(lease / 3 % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&b->cond, &b->lock, &at);
		if (stopping(b))
			break;
		pthread_mutex_unlock(&b->lock);
		err = store_lease_renew(b->waker, &n);
		if (err)
			viv_log(VIV_WARN, "builder: could not renew the leases of its builds: %s",
			        viv_strerror(err));
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static void builder_free(struct pipe_builder *b)
{
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	for (unsigned i = 0; b->threads && i < b->n; i++)
		free(b->threads[i].dir);
	free(b->threads);
	store_close(b->waker);
	free(b->datadir);
	free(b->include_dir);
	free(b->sdk_dir);
	free(b->tool_dir);
	free(b->builds_dir);
	free(b->store_url);
	free(b);
}

static enum viv_err dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return VIV_OK;
	*out = strdup(s);
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

/* What is done once before the builders start: the interrupted builds go
 * back to the queue and their folders away, and the tools are probed. */
static enum viv_err prepare(struct pipe_builder *b)
{
	struct store *st = NULL;
	size_t requeued = 0;
	enum viv_err err;

	err = store_open_db(b->datadir, b->cfg.store_url, &st, b->open_msg, sizeof(b->open_msg));
	if (err)
		return err;
	if (!b->builds_dir) {
		err = dup_opt(store_builds_dir(st), &b->builds_dir);
		b->cfg.builds_dir = b->builds_dir;
	}
	if (!err)
		err = store_deployment_requeue_interrupted(st, &requeued);
	if (err)
		viv_log(VIV_ERROR, "builder: could not requeue interrupted builds: %s",
		        viv_strerror(err));
	else if (requeued > 0)
		viv_log(VIV_INFO, "builder: requeued %zu interrupted builds", requeued);
	if (!err) {
		sweep(b);
		warm_tools(b, st);
		/* Kept to wake the threads with, and for the heartbeat. */
		store_set_lease_ms(st, b->cfg.lease_ms);
		b->waker = st;
		st = NULL;
	}
	store_close(st);
	return err;
}

enum viv_err pipe_builder_start(const char *datadir, const struct pipe_config *cfg,
                                struct pipe_builder **out)
{
	struct pipe_builder *b;
	pthread_condattr_t ca;
	enum viv_err err;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return VIV_ERR_NOMEM;
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	b->cfg = *cfg;
	b->n = cfg->builders ? cfg->builders : 1;
	if (b->n > BUILDERS_MAX)
		b->n = BUILDERS_MAX;
	err = dup_opt(datadir, &b->datadir);
	if (!err)
		err = dup_opt(cfg->include_dir, &b->include_dir);
	if (!err)
		err = dup_opt(cfg->sdk_dir, &b->sdk_dir);
	if (!err)
		err = dup_opt(cfg->tool_dir, &b->tool_dir);
	if (!err)
		err = dup_opt(cfg->builds_dir, &b->builds_dir);
	if (!err)
		err = dup_opt(cfg->store_url, &b->store_url);
	b->cfg.include_dir = b->include_dir;
	b->cfg.sdk_dir = b->sdk_dir;
	b->cfg.tool_dir = b->tool_dir;
	b->cfg.builds_dir = b->builds_dir;
	b->cfg.store_url = b->store_url;
	if (!err) {
		b->threads = calloc(b->n, sizeof(*b->threads));
		err = b->threads ? VIV_OK : VIV_ERR_NOMEM;
	}
	if (!err)
		err = prepare(b);
	for (unsigned i = 0; !err && i < b->n; i++) {
		struct builder_thread *t = &b->threads[i];
		char name[16];

		t->b = b;
		t->index = i;
		snprintf(name, sizeof(name), "%u", i);
		t->dir = viv_path_join(b->builds_dir, name);
		if (!t->dir) {
			err = VIV_ERR_NOMEM;
			break;
		}
		if (mkdir(t->dir, 0700) != 0 && errno != EEXIST) {
			viv_errf(b->open_msg, sizeof(b->open_msg), "cannot make %s: %s", t->dir,
			         strerror(errno));
			err = VIV_ERR_IO;
		}
	}
	if (err) {
		viv_log(VIV_ERROR, "builder: %s", b->open_msg[0] ? b->open_msg : viv_strerror(err));
		builder_free(b);
		return err;
	}
	for (unsigned i = 0; i < b->n; i++) {
		struct builder_thread *t = &b->threads[i];

		t->started = pthread_create(&t->thread, NULL, builder_main, t) == 0;
		if (!t->started) {
			err = VIV_ERR_INTERNAL;
			break;
		}
	}
	if (!err) {
		b->heartbeat_started = pthread_create(&b->heartbeat, NULL, heartbeat_main, b) == 0;
		if (!b->heartbeat_started)
			err = VIV_ERR_INTERNAL;
	}
	/* Wait for the stores to open, so that a bad data directory is an
	 * error here rather than silent builders. */
	pthread_mutex_lock(&b->lock);
	while (!err && b->opened < b->n)
		pthread_cond_wait(&b->cond, &b->lock);
	if (!err)
		err = b->open_err;
	pthread_mutex_unlock(&b->lock);
	if (err) {
		viv_log(VIV_ERROR, "builder: %s", b->open_msg[0] ? b->open_msg : viv_strerror(err));
		pipe_builder_stop(b);
		return err;
	}
	viv_log(VIV_INFO, "builder: %u builds at once, in %s", b->n, b->builds_dir);
	*out = b;
	return VIV_OK;
}

void pipe_builder_wake(struct pipe_builder *b)
{
	if (b && b->waker)
		store_queue_wake(b->waker);
}

void pipe_builder_stop(struct pipe_builder *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	__atomic_store_n(&b->stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pipe_builder_wake(b);
	for (unsigned i = 0; i < b->n; i++) {
		if (b->threads[i].started)
			pthread_join(b->threads[i].thread, NULL);
	}
	/* Last: the builds that were still running kept their leases. */
	if (b->heartbeat_started)
		pthread_join(b->heartbeat, NULL);
	builder_free(b);
}

/* ---- The builder role -------------------------------------------------------- */

int pipe_builder_main(const char *datadir, const struct pipe_config *cfg)
{
	struct pipe_builder *b = NULL;
	sigset_t mask, old;
	enum viv_err err;
	int sig = 0;

	/* The stop signals are taken by sigwait below, never by a handler;
	 * blocked before the threads start, so that they all inherit the
	 * mask. SIGPIPE too: a write to a closed socket fails with EPIPE. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &mask, &old) != 0) {
		viv_log(VIV_ERROR, "builder: cannot block SIGTERM and SIGINT: %s", strerror(errno));
		return 1;
	}
	err = pipe_builder_start(datadir, cfg, &b);
	if (err) {
		viv_log(VIV_ERROR, "cannot start the builder: %s", viv_strerror(err));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	sigdelset(&mask, SIGPIPE);
	while (sig != SIGTERM && sig != SIGINT) {
		if (sigwait(&mask, &sig) != 0)
			sig = 0;
	}
	viv_log(VIV_INFO, "%s received, stopping the builder after the builds in progress",
	        sig == SIGTERM ? "SIGTERM" : "SIGINT");
	pipe_builder_stop(b);
	/* Signals that came during the wait asked for what is done. */
	sigaddset(&mask, SIGPIPE);
	while (sigtimedwait(&mask, NULL, &(struct timespec){0}) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	viv_log(VIV_INFO, "builder stopped");
	return 0;
}
