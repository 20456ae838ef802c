/* The background builder: one thread with its own store connection that
 * claims queued deployments and builds them one at a time. */
#include "pipeline_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the builder sleeps when nothing is queued: deployments queued
 * by another process (which cannot wake us) are found within this. */
#define IDLE_WAIT_MS 1000
/* Any upload hash: a build key made at start warms what keys need. */
#define KEY_WARM_UPLOAD "0000000000000000000000000000000000000000000000000000000000000000"

struct pipe_builder {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool woken;
	bool opened; /* the thread finished store_open */
	enum viv_err open_err;
	char open_msg[256];
	char *datadir;
	struct pipe_config cfg;
	char *include_dir, *sdk_dir, *tool_dir; /* owned copies cfg points to */
};

static void wait_idle(struct pipe_builder *b)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += IDLE_WAIT_MS / 1000;
	ts.tv_nsec += (long)(IDLE_WAIT_MS % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&b->lock);
	while (!b->stop && !b->woken) {
		if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) == ETIMEDOUT)
			break;
	}
	b->woken = false;
	pthread_mutex_unlock(&b->lock);
}

static bool stopping(struct pipe_builder *b)
{
	bool stop;

	pthread_mutex_lock(&b->lock);
	stop = b->stop;
	pthread_mutex_unlock(&b->lock);
	return stop;
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

	if (store_build_dir(st, 0, &scratch))
		return;
	tmp = viv_path_join(scratch, "tmp");
	if (tmp && viv_mkdirs(tmp, 0700) == VIV_OK) {
		pipe_ctx_init(&ctx, &b->cfg, scratch);
		if (pipe_tools_get(&ctx, &tools, err, sizeof(err)))
			viv_log(VIV_WARN, "builder: %s", err);
		else if (pipe_build_key(&ctx, KEY_WARM_UPLOAD, key, err, sizeof(err)))
			viv_log(VIV_WARN, "builder: no build keys, so no reuse of identical "
					  "uploads: %s",
				err);
		pipe_ctx_free(&ctx);
	}
	free(tmp);
	viv_rmtree(scratch);
	free(scratch);
}

static void *builder_main(void *arg)
{
	struct pipe_builder *b = arg;
	struct store *st = NULL;
	enum viv_err err;
	size_t requeued = 0;

	err = store_open(b->datadir, &st, b->open_msg, sizeof(b->open_msg));
	pthread_mutex_lock(&b->lock);
	b->opened = true;
	b->open_err = err;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (err)
		return NULL;

	err = store_deployment_requeue_interrupted(st, &requeued);
	if (err)
		viv_log(VIV_ERROR, "builder: could not requeue interrupted builds: %s",
			viv_strerror(err));
	else if (requeued > 0)
		viv_log(VIV_INFO, "builder: requeued %zu interrupted builds", requeued);
	warm_tools(b, st);

	while (!stopping(b)) {
		int64_t id = 0;

		err = store_deployment_claim(st, &id);
		if (err == VIV_OK) {
			err = pipe_build(st, &b->cfg, id);
			if (err)
				viv_log(VIV_ERROR, "builder: deployment %lld: %s", (long long)id,
					viv_strerror(err));
			continue;
		}
		if (err != VIV_ERR_NOT_FOUND)
			viv_log(VIV_ERROR, "builder: could not claim a deployment: %s",
				viv_strerror(err));
		wait_idle(b);
	}
	store_close(st);
	return NULL;
}

static void builder_free(struct pipe_builder *b)
{
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b->datadir);
	free(b->include_dir);
	free(b->sdk_dir);
	free(b->tool_dir);
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
	err = dup_opt(datadir, &b->datadir);
	if (!err)
		err = dup_opt(cfg->include_dir, &b->include_dir);
	if (!err)
		err = dup_opt(cfg->sdk_dir, &b->sdk_dir);
	if (!err)
		err = dup_opt(cfg->tool_dir, &b->tool_dir);
	if (err) {
		builder_free(b);
		return err;
	}
	b->cfg.include_dir = b->include_dir;
	b->cfg.sdk_dir = b->sdk_dir;
	b->cfg.tool_dir = b->tool_dir;
	if (pthread_create(&b->thread, NULL, builder_main, b) != 0) {
		builder_free(b);
		return VIV_ERR_INTERNAL;
	}
	/* Wait for the store to open, so that a bad data directory is an
	 * error here rather than a silent builder. */
	pthread_mutex_lock(&b->lock);
	while (!b->opened)
		pthread_cond_wait(&b->cond, &b->lock);
	err = b->open_err;
	pthread_mutex_unlock(&b->lock);
	if (err) {
		viv_log(VIV_ERROR, "builder: %s", b->open_msg);
		pthread_join(b->thread, NULL);
		builder_free(b);
		return err;
	}
	*out = b;
	return VIV_OK;
}

void pipe_builder_wake(struct pipe_builder *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->woken = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void pipe_builder_stop(struct pipe_builder *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	builder_free(b);
}
