/* Deployments: the build queue (create, claim, requeue), what a build
 * records on the way (log, language, timings) and how it ends (ready or
 * failed). */
#include "store_int.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRUNCATED_LINE "[build log truncated at 1 MiB]\n"
#define REQUEUED_LINE "[vivd restarted during this build; it was queued again]\n"
#define LANGUAGE_MAX 32
#define TIMING_STEP_MAX 64
#define ERROR_MAX 4096

const char *store_dep_status_name(enum store_dep_status s)
{
	switch (s) {
	case STORE_DEP_QUEUED:
		return "queued";
	case STORE_DEP_BUILDING:
		return "building";
	case STORE_DEP_READY:
		return "ready";
	case STORE_DEP_FAILED:
		return "failed";
	}
	return "unknown";
}

static enum store_dep_status status_parse(const char *s)
{
	if (s && strcmp(s, "building") == 0)
		return STORE_DEP_BUILDING;
	if (s && strcmp(s, "ready") == 0)
		return STORE_DEP_READY;
	if (s && strcmp(s, "failed") == 0)
		return STORE_DEP_FAILED;
	/* The schema allows no other value than "queued" here. */
	return STORE_DEP_QUEUED;
}

/* ---- Reading ------------------------------------------------------------------- */

#define DEP_SELECT                                                                                 \
	"SELECT d.id, d.app_id, a.name, d.status, d.created_at, d.started_at,"                     \
	" d.finished_at, d.upload_sha256, d.upload_size, d.language, d.mode, d.artifact,"          \
	" d.log, d.timings, d.config, d.error,"                                                    \
	" (a.current_deployment IS NOT NULL AND a.current_deployment = d.id),"                     \
	" d.deployed_by, ar.so_size"                                                               \
	" FROM deployments d JOIN apps a ON a.id = d.app_id"                                       \
	" LEFT JOIN artifacts ar ON ar.hash = d.artifact"

static const char sql_dep_get[] = DEP_SELECT " WHERE d.id = ?1";
static const char sql_dep_list[] =
        DEP_SELECT " WHERE d.app_id = ?1 AND d.id < ?3 ORDER BY d.id DESC LIMIT ?2";

static enum viv_err read_dep(struct store_stmt *stmt, void *elem)
{
	struct store_deployment *d = elem;
	enum viv_err err;

	memset(d, 0, sizeof(*d));
	store_deploy_config_defaults(&d->config);
	d->id = store_col_int64(stmt, 0);
	d->app_id = store_col_int64(stmt, 1);
	d->status = status_parse(store_col_str(stmt, 3));
	d->created_at = store_col_int64(stmt, 4);
	d->started_at = store_col_int64(stmt, 5);
	d->finished_at = store_col_int64(stmt, 6);
	d->upload_size = store_col_int64(stmt, 8);
	d->current = store_col_int64(stmt, 16) != 0;
	d->artifact_size = store_col_int64(stmt, 18);
	err = store_col_text_or(stmt, 2, "", &d->app);
	if (!err)
		err = store_col_text_or(stmt, 7, "", &d->upload_sha256);
	if (!err)
		err = store_col_text(stmt, 9, &d->language);
	if (!err)
		err = store_col_text(stmt, 11, &d->artifact);
	if (!err)
		err = store_col_text_or(stmt, 12, "", &d->log);
	if (!err)
		err = store_col_text_or(stmt, 13, "{}", &d->timings);
	if (!err)
		err = store_deploy_config_read(d->id, store_col_str(stmt, 10),
		                               store_col_str(stmt, 14), &d->config);
	if (!err)
		err = store_col_text(stmt, 15, &d->error);
	if (!err)
		err = store_col_text(stmt, 17, &d->deployed_by);
	return err;
}

static void dep_clear(void *elem)
{
	struct store_deployment *d = elem;

	free(d->app);
	free(d->upload_sha256);
	free(d->language);
	free(d->artifact);
	free(d->log);
	free(d->timings);
	store_deploy_config_clear(&d->config);
	free(d->error);
	free(d->deployed_by);
}

/* Prepares sql, binds a deployment's id to ?1 and steps to its row:
 * VIV_ERR_NOT_FOUND when there is none. On success the row is ready to read
 * in *out, to hand back with store_release(); on failure the statement has
 * been released and *out is NULL. */
static enum viv_err dep_row(struct store *st, const char *sql, int64_t id, struct store_stmt **out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*out = NULL;
	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (err) {
		store_release(st, stmt);
		return err;
	}
	*out = stmt;
	return VIV_OK;
}

enum viv_err store_deployment_get(struct store *st, int64_t id, struct store_deployment **out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	void *d;

	*out = NULL;
	err = store_prepare(st, sql_dep_get, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	err = store_row_fetch(st, stmt, sizeof(**out), read_dep, dep_clear, &d);
	if (!err)
		*out = d;
	return err;
}

enum viv_err store_deployment_list(struct store *st, const char *app, int64_t before_id,
                                   size_t limit, struct store_deployment **out, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	int64_t app_id;
	void *ds;

	*out = NULL;
	*n_out = 0;
	err = store_app_id(st, app, &app_id);
	if (err)
		return err;
	err = store_prepare(st, sql_dep_list, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_count(st, stmt, 2, limit);
	store_bind_int64(st, stmt, 3, before_id > 0 ? before_id : INT64_MAX);
	err = store_rows_collect(st, stmt, sizeof(**out), read_dep, dep_clear, &ds, n_out);
	if (!err)
		*out = ds;
	return err;
}

void store_deployment_free(struct store_deployment *d)
{
	store_row_free(d, dep_clear);
}

void store_deployment_list_free(struct store_deployment *ds, size_t n)
{
	store_rows_free(ds, n, sizeof(*ds), dep_clear);
}

/* The log's bytes from ?2 (counting from 1), ?3 of them at most. */
static const char sql_dep_progress[] =
        "SELECT status, length(CAST(log AS BLOB)), substr(CAST(log AS BLOB), ?2, ?3)"
        " FROM deployments WHERE id = ?1";
static const char sql_dep_progress_pg[] =
        "SELECT status, octet_length(log), substring(convert_to(log, 'UTF8')"
        " FROM least(?2::bigint, 2147483647)::int FOR least(?3::bigint, 2147483647)::int)"
        " FROM deployments WHERE id = ?1";

enum viv_err store_deployment_progress(struct store *st, int64_t id, int64_t log_offset, size_t max,
                                       struct store_dep_progress *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;

	memset(out, 0, sizeof(*out));
	if (log_offset < 0)
		return VIV_ERR_INVALID;
	err = store_prepare(st, store_sql(st, sql_dep_progress, sql_dep_progress_pg), &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	/* substr counts from 1. */
	store_bind_int64(st, stmt, 2, log_offset + 1);
	store_bind_count(st, stmt, 3, max);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (err)
		goto out;
	out->status = status_parse(store_col_str(stmt, 0));
	out->log_size = store_col_int64(stmt, 1);
	err = store_col_bytes(stmt, 2, &out->log_tail, &out->tail_len);
out:
	store_release(st, stmt);
	return err;
}

/* ---- The queue ------------------------------------------------------------------- */

static const char sql_dep_insert[] =
        "INSERT INTO deployments (app_id, created_at, upload_sha256, upload_size, deployed_by)"
        " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id";

static enum viv_err dep_insert(struct store *st, int64_t app_id, const char *deployed_by,
                               const char *upload_sha256, int64_t upload_size, int64_t *id_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*id_out = 0;
	err = store_prepare(st, sql_dep_insert, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, app_id);
	store_bind_int64(st, stmt, 2, viv_now_ms());
	store_bind_text(st, stmt, 3, upload_sha256);
	store_bind_int64(st, stmt, 4, upload_size);
	store_bind_text(st, stmt, 5, deployed_by);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_INTERNAL;
	if (!err)
		*id_out = store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/*
 * The upload is renamed into place inside the transaction that creates the
 * deployment, and the rename is made durable before the commit: a builder
 * that sees the queued row always finds its upload, and a crash before the
 * commit leaves only a temporary upload for store_open() to remove. If the
 * commit fails, the rename is undone, so the caller's file is where it was.
 */
enum viv_err store_deployment_create(struct store *st, const char *app, const char *upload_tmp,
                                     const char *upload_sha256, int64_t upload_size,
                                     int64_t *id_out)
{
	return store_deployment_create_by(st, app, NULL, upload_tmp, upload_sha256, upload_size,
	                                  id_out);
}

enum viv_err store_deployment_create_by(struct store *st, const char *app, const char *deployed_by,
                                        const char *upload_tmp, const char *upload_sha256,
                                        int64_t upload_size, int64_t *id_out)
{
	char *path = NULL;
	bool moved = false;
	enum viv_err err;
	int64_t app_id, id = 0;

	*id_out = 0;
	if (!viv_app_name_valid(app) || !upload_tmp || !viv_hex64_valid(upload_sha256) ||
	    upload_size < 0 || (deployed_by && strlen(deployed_by) > STORE_TOKEN_NAME_MAX))
		return VIV_ERR_INVALID;
	err = store_begin(st);
	if (err)
		return err;
	err = store_app_ensure(st, app, &app_id);
	if (!err)
		err = dep_insert(st, app_id, deployed_by, upload_sha256, upload_size, &id);
	if (err)
		goto out;
	path = store_upload_path(st, id);
	if (!path) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	if (rename(upload_tmp, path) != 0) {
		viv_log(VIV_ERROR, "store: cannot move upload %s to %s: %s", upload_tmp, path,
		        strerror(errno));
		err = VIV_ERR_IO;
		goto out;
	}
	moved = true;
	err = store_fsync_dir(st->uploads_dir);
	if (err) {
		viv_log(VIV_ERROR, "store: cannot sync %s: %s", st->uploads_dir, strerror(errno));
		goto out;
	}
	err = store_commit(st);
out:
	store_rollback(st);
	if (err && moved && rename(path, upload_tmp) != 0)
		viv_log(VIV_ERROR, "store: cannot move upload %s back to %s: %s", path, upload_tmp,
		        strerror(errno));
	free(path);
	if (err)
		return err;
	*id_out = id;
	/* After the commit: a builder that wakes finds it. */
	store_queue_bump(st);
	return VIV_OK;
}

static enum viv_err log_append_locked(struct store *st, int64_t id, const char *text, size_t len,
                                      bool own_line);

static const char sql_dep_any_queued[] =
        "SELECT 1 FROM deployments WHERE status = 'queued'"
        " OR (status = 'building' AND coalesce(lease_until, 0) < ?1) LIMIT 1";
/*
 * What a claim may take: a deployment whose builder's lease ran out, or the
 * oldest queued deployment of an app that has none building. An app's
 * deployments build one after another, in order, and never hold another
 * app's behind them, however long one of them takes. On SQLite the claim's
 * write lock excludes every other claim.
 */
#define CLAIMABLE                                                                                  \
	"((d.status = 'building' AND coalesce(d.lease_until, 0) < ?1)"                             \
	" OR (d.status = 'queued' AND NOT EXISTS (SELECT 1 FROM deployments b"                     \
	"   WHERE b.app_id = d.app_id AND b.status = 'building')))"
static const char sql_dep_pick[] = "SELECT d.id, d.status, d.claimed_by FROM deployments d"
                                   " WHERE " CLAIMABLE " ORDER BY d.id LIMIT 1";
/*
 * On PostgreSQL builders on many machines claim at once. Each locks the
 * app of the first deployment it could take, passing over apps another
 * claim holds (SKIP LOCKED, so no claim waits for another), and then picks
 * within that app: the second statement sees every claim committed before
 * the lock was granted, so an app never builds two deployments at once.
 */
static const char sql_dep_pick_app_pg[] =
        "SELECT a.id FROM deployments d JOIN apps a ON a.id = d.app_id"
        " WHERE " CLAIMABLE " ORDER BY d.id LIMIT 1 FOR UPDATE OF a SKIP LOCKED";
static const char sql_dep_pick_pg[] =
        "SELECT d.id, d.status, d.claimed_by FROM deployments d"
        " WHERE d.app_id = ?2 AND " CLAIMABLE " ORDER BY d.id LIMIT 1";
/* The claim itself checks again what made the row claimable: a heartbeat
 * may have renewed the lease since. */
static const char sql_dep_claim[] =
        "UPDATE deployments SET status = 'building', started_at = ?1, claimed_by = ?2,"
        " lease_until = ?3 WHERE id = ?4 AND (status = 'queued'"
        "   OR (status = 'building' AND coalesce(lease_until, 0) < ?1))";
/* A claim that lost its pick to a claim or a heartbeat that committed in
 * between looks again, a few times. */
#define CLAIM_TRIES 4

static int64_t lease_end(const struct store *st, int64_t now)
{
	return now + (int64_t)(st->lease_ms ? st->lease_ms : STORE_LEASE_MS_DEFAULT);
}

static enum viv_err any_claimable(struct store *st, int64_t now, bool *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_dep_any_queued, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, now);
	err = store_step(st, stmt, out);
	store_release(st, stmt);
	return err;
}

/* What a claim picked. */
struct pick {
	int64_t id;
	bool taken_over;              /* it was building under a lease that ran out */
	char by[STORE_OWNER_MAX + 1]; /* whose lease that was */
};

/* Inside the claim's transaction: the deployment to claim. */
static enum viv_err pick(struct store *st, int64_t now, struct pick *p)
{
	struct store_stmt *stmt = NULL;
	int64_t app_id = 0;
	enum viv_err err;
	bool row = false;

	memset(p, 0, sizeof(*p));
	if (st->kind == STORE_POSTGRES) {
		err = store_prepare(st, sql_dep_pick_app_pg, &stmt);
		if (err)
			return err;
		store_bind_int64(st, stmt, 1, now);
		err = store_step(st, stmt, &row);
		if (!err && row)
			app_id = store_col_int64(stmt, 0);
		store_release(st, stmt);
		if (err || !row)
			return err ? err : VIV_ERR_NOT_FOUND;
	}
	err = store_prepare(st, store_sql(st, sql_dep_pick, sql_dep_pick_pg), &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, now);
	if (st->kind == STORE_POSTGRES)
		store_bind_int64(st, stmt, 2, app_id);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (!err) {
		const char *status = store_col_str(stmt, 1), *by = store_col_str(stmt, 2);

		p->id = store_col_int64(stmt, 0);
		p->taken_over = status && strcmp(status, "building") == 0;
		snprintf(p->by, sizeof(p->by), "%s", by ? by : "a builder of an older vivd");
	}
	store_release(st, stmt);
	return err;
}

/* Inside the claim's transaction: claims what pick() found. */
static enum viv_err claim_locked(struct store *st, int64_t now, int64_t *id_out)
{
	struct store_stmt *stmt = NULL;
	struct viv_buf line;
	struct pick p;
	enum viv_err err;

	*id_out = 0;
	err = pick(st, now, &p);
	if (!err)
		err = store_prepare(st, sql_dep_claim, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, now);
	store_bind_text(st, stmt, 2, st->owner);
	store_bind_int64(st, stmt, 3, lease_end(st, now));
	store_bind_int64(st, stmt, 4, p.id);
	err = store_run(st, stmt);
	if (!err && store_changes(st) == 0)
		err = VIV_ERR_NOT_FOUND;
	store_release(st, stmt);
	if (err || !p.taken_over)
		goto out;
	viv_buf_init(&line, 0);
	err = viv_buf_printf(&line,
	                     "[the builder %s stopped renewing its lease on this build; "
	                     "it is built again]\n",
	                     p.by);
	if (!err)
		err = log_append_locked(st, p.id, line.data, line.len, true);
	viv_buf_free(&line);
	if (!err)
		viv_log(VIV_INFO, "store: deployment %lld taken over from %s, whose lease ran out",
		        (long long)p.id, p.by);
out:
	if (!err)
		*id_out = p.id;
	return err;
}

/*
 * Idle builders poll this, so a look without the write lock comes first.
 * The claim itself runs under BEGIN IMMEDIATE on SQLite: builders in other
 * processes wait on the busy timeout for the lock rather than fail, and
 * whoever gets it sees every earlier claim.
 */
enum viv_err store_deployment_claim(struct store *st, int64_t *id_out)
{
	int64_t now = viv_now_ms();
	enum viv_err err;
	bool row;

	*id_out = 0;
	err = any_claimable(st, now, &row);
	if (err)
		return err;
	if (!row)
		return VIV_ERR_NOT_FOUND;
	for (int tries = 0; tries < CLAIM_TRIES; tries++) {
		err = store_begin(st);
		if (err)
			return err;
		err = claim_locked(st, now, id_out);
		if (!err)
			err = store_commit(st);
		store_rollback(st);
		if (err != VIV_ERR_NOT_FOUND || st->kind != STORE_POSTGRES)
			break;
		/* What it passed over may be free now, or nothing is left. */
		err = any_claimable(st, now, &row);
		if (!err && !row)
			err = VIV_ERR_NOT_FOUND;
		if (err)
			break;
		err = VIV_ERR_NOT_FOUND;
	}
	if (err)
		*id_out = 0;
	return err;
}

/* ---- Leases ------------------------------------------------------------------------ */

const char *store_owner(const struct store *st)
{
	return st->owner;
}

enum viv_err store_set_owner(struct store *st, const char *owner)
{
	size_t n = owner ? strlen(owner) : 0;

	if (n < 1 || n > STORE_OWNER_MAX)
		return VIV_ERR_INVALID;
	for (size_t i = 0; i < n; i++) {
		if (owner[i] < 0x20 || owner[i] > 0x7e)
			return VIV_ERR_INVALID;
	}
	memcpy(st->owner, owner, n + 1);
	return VIV_OK;
}

void store_set_lease_ms(struct store *st, unsigned ms)
{
	st->lease_ms = ms > 86400000u ? 86400000u : ms;
}

enum viv_err store_owner_default(struct store *st)
{
	char host[64], nonce[17];
	enum viv_err err;

	err = store_random_hex(nonce, 8);
	if (err)
		return err;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	/* Printable ASCII only, and no ':' but the separators. */
	for (char *c = host; *c; c++) {
		if (*c < 0x21 || *c > 0x7e || *c == ':')
			*c = '_';
	}
	snprintf(st->owner, sizeof(st->owner), "%s:%ld:%s", host, (long)getpid(), nonce);
	return VIV_OK;
}

static const char sql_lease_renew[] = "UPDATE deployments SET lease_until = ?2"
                                      " WHERE claimed_by = ?1 AND status = 'building'";

enum viv_err store_lease_renew(struct store *st, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	if (n_out)
		*n_out = 0;
	err = store_prepare(st, sql_lease_renew, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, st->owner);
	store_bind_int64(st, stmt, 2, lease_end(st, viv_now_ms()));
	err = store_run(st, stmt);
	if (!err && n_out)
		*n_out = (size_t)store_changes(st);
	store_release(st, stmt);
	return err;
}

/* Whether owner (of store_owner()'s form) names a process of this machine
 * that is gone. */
static bool owner_gone_here(const char *owner)
{
	char host[64], mine[64];
	const char *last, *mid;
	char *end;
	long pid;

	if (!owner || gethostname(mine, sizeof(mine)) != 0)
		return false;
	mine[sizeof(mine) - 1] = '\0';
	for (char *c = mine; *c; c++) {
		if (*c < 0x21 || *c > 0x7e || *c == ':')
			*c = '_';
	}
	last = strrchr(owner, ':');
	if (!last || last == owner)
		return false;
	for (mid = last - 1; mid > owner && *mid != ':'; mid--)
		;
	if (*mid != ':' || (size_t)(mid - owner) >= sizeof(host))
		return false;
	memcpy(host, owner, (size_t)(mid - owner));
	host[mid - owner] = '\0';
	errno = 0;
	pid = strtol(mid + 1, &end, 10);
	if (end != last || errno || pid <= 0 || pid > INT_MAX || strcmp(host, mine) != 0)
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* ---- The build log ------------------------------------------------------------- */

/* On PostgreSQL the row stays locked until the append commits. */
static const char sql_dep_log_state[] =
        "SELECT length(CAST(log AS BLOB)), log = '' OR substr(log, -1) = char(10)"
        " FROM deployments WHERE id = ?1";
static const char sql_dep_log_state_pg[] =
        "SELECT octet_length(log), log = '' OR right(log, 1) = chr(10)"
        " FROM deployments WHERE id = ?1 FOR UPDATE";
static const char sql_dep_log_append[] = "UPDATE deployments SET log = log || ?2 WHERE id = ?1";

/* The size of a build log in bytes, and whether it ends a line. */
static enum viv_err log_state(struct store *st, int64_t id, int64_t *size, bool *at_line_start)
{
	struct store_stmt *stmt;
	enum viv_err err;

	err = dep_row(st, store_sql(st, sql_dep_log_state, sql_dep_log_state_pg), id, &stmt);
	if (err)
		return err;
	*size = store_col_int64(stmt, 0);
	*at_line_start = store_col_int64(stmt, 1) != 0;
	store_release(st, stmt);
	return VIV_OK;
}

/* The bytes to append to a log of size bytes so that its contents stay
 * under the cap, with the truncation line when they would not. */
static enum viv_err log_piece(struct viv_buf *b, int64_t size, bool at_line_start, const char *text,
                              size_t len, bool own_line)
{
	size_t room = (size_t)(STORE_BUILD_LOG_MAX - size);
	size_t keep;
	enum viv_err err;

	if (own_line && !at_line_start) {
		err = viv_buf_append(b, "\n", 1);
		if (err)
			return err;
	}
	if (b->len <= room && len <= room - b->len)
		return viv_buf_append(b, text, len);
	keep = b->len < room ? viv_utf8_cut(text, room - b->len) : 0;
	err = viv_buf_append(b, text, keep);
	if (err)
		return err;
	/* The truncation line starts a line of its own. */
	if (b->len > 0 ? b->data[b->len - 1] != '\n' : !at_line_start)
		err = viv_buf_append(b, "\n", 1);
	if (!err)
		err = viv_buf_append(b, TRUNCATED_LINE, strlen(TRUNCATED_LINE));
	return err;
}

/*
 * Appends to a build log inside the caller's write transaction. The text of
 * a log never goes past STORE_BUILD_LOG_MAX bytes; the truncation line goes
 * beyond it, so a log longer than the cap is one that was cut, and later
 * text is dropped. With own_line, text starts on a line of its own.
 */
static enum viv_err log_append_locked(struct store *st, int64_t id, const char *text, size_t len,
                                      bool own_line)
{
	struct store_stmt *stmt = NULL;
	struct viv_buf b;
	bool at_line_start = true;
	enum viv_err err;
	int64_t size = 0;

	err = log_state(st, id, &size, &at_line_start);
	if (err || size > STORE_BUILD_LOG_MAX || len == 0)
		return err;
	viv_buf_init(&b, 0);
	err = log_piece(&b, size, at_line_start, text, len, own_line);
	if (!err)
		err = store_prepare(st, sql_dep_log_append, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, id);
	store_bind_textn(st, stmt, 2, b.data, b.len);
	err = store_run(st, stmt);
	store_release(st, stmt);
out:
	viv_buf_free(&b);
	return err;
}

/* Whether the deployment is being built under another owner's claim (on
 * PostgreSQL, with its row locked until the transaction ends). */
static const char sql_dep_foreign[] =
        "SELECT status = 'building' AND coalesce(claimed_by, '') <> ?2, claimed_by"
        " FROM deployments WHERE id = ?1";
static const char sql_dep_foreign_pg[] =
        "SELECT status = 'building' AND coalesce(claimed_by, '') <> ?2, claimed_by"
        " FROM deployments WHERE id = ?1 FOR UPDATE";

/* Inside a write transaction: VIV_ERR_INVALID when another builder has
 * taken the deployment over, whose build this connection's no longer is. */
static enum viv_err check_not_taken(struct store *st, int64_t id, const char *what)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;

	err = store_prepare(st, store_sql(st, sql_dep_foreign, sql_dep_foreign_pg), &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, st->owner);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (!err && store_col_int64(stmt, 0)) {
		viv_log(VIV_WARN,
		        "store: deployment %lld is built by %s now (the lease of %s ran out): "
		        "%s dropped",
		        (long long)id, store_col_str(stmt, 1), st->owner, what);
		err = VIV_ERR_INVALID;
	}
	store_release(st, stmt);
	return err;
}

enum viv_err store_deployment_log(struct store *st, int64_t id, const char *text)
{
	enum viv_err err;

	if (!text)
		return VIV_ERR_INVALID;
	err = store_begin(st);
	if (err)
		return err;
	err = check_not_taken(st, id, "its log");
	if (!err)
		err = log_append_locked(st, id, text, strlen(text), false);
	if (!err)
		err = store_commit(st);
	store_rollback(st);
	return err;
}

/* Deployments being built, and the claims this machine made of them. On
 * PostgreSQL the rows stay locked until the requeue commits. */
static const char sql_dep_building[] =
        "SELECT id, claimed_by, coalesce(lease_until, 0) FROM deployments"
        " WHERE status = 'building' ORDER BY id";
static const char sql_dep_building_pg[] =
        "SELECT id, claimed_by, coalesce(lease_until, 0) FROM deployments"
        " WHERE status = 'building' ORDER BY id FOR UPDATE";
static const char sql_dep_requeue[] =
        "UPDATE deployments SET status = 'queued', started_at = NULL, claimed_by = NULL,"
        " lease_until = NULL WHERE id = ?1 AND status = 'building'";

/* A deployment being built, with what its claim says. */
struct building {
	int64_t id;
	bool gone; /* its builder is gone */
};

static enum viv_err read_building(struct store_stmt *stmt, void *elem)
{
	struct building *b = elem;
	const char *by = store_col_str(stmt, 1);

	b->id = store_col_int64(stmt, 0);
	b->gone = store_col_int64(stmt, 2) < viv_now_ms() || owner_gone_here(by);
	return VIV_OK;
}

enum viv_err store_deployment_requeue_interrupted(struct store *st, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	struct building *rows = NULL;
	size_t n = 0, i, requeued = 0;
	enum viv_err err;
	void *arr;

	if (n_out)
		*n_out = 0;
	err = store_begin(st);
	if (err)
		return err;
	err = store_prepare(st, store_sql(st, sql_dep_building, sql_dep_building_pg), &stmt);
	if (err)
		goto out;
	err = store_rows_collect(st, stmt, sizeof(*rows), read_building, NULL, &arr, &n);
	rows = arr;
	for (i = 0; !err && i < n; i++) {
		if (!rows[i].gone)
			continue;
		err = store_prepare(st, sql_dep_requeue, &stmt);
		if (err)
			break;
		store_bind_int64(st, stmt, 1, rows[i].id);
		err = store_run(st, stmt);
		store_release(st, stmt);
		if (!err)
			err = log_append_locked(st, rows[i].id, REQUEUED_LINE,
			                        strlen(REQUEUED_LINE), true);
		requeued++;
	}
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	free(rows);
	if (err)
		return err;
	if (requeued > 0) {
		viv_log(VIV_INFO, "store: %zu interrupted build(s) queued again", requeued);
		store_queue_bump(st);
	}
	if (n_out)
		*n_out = requeued;
	return VIV_OK;
}

/* ---- Details recorded during a build ---------------------------------------------- */

/* Runs an UPDATE of one deployment: VIV_ERR_NOT_FOUND when no row changed. */
static enum viv_err run_update(struct store *st, struct store_stmt *stmt)
{
	enum viv_err err;

	err = store_run(st, stmt);
	if (!err && store_changes(st) == 0)
		err = VIV_ERR_NOT_FOUND;
	store_release(st, stmt);
	return err;
}

static const char sql_dep_language[] = "UPDATE deployments SET language = ?2 WHERE id = ?1";

enum viv_err store_deployment_set_language(struct store *st, int64_t id, const char *language)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	if (!language || !*language || strlen(language) > LANGUAGE_MAX)
		return VIV_ERR_INVALID;
	err = store_prepare(st, sql_dep_language, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, language);
	return run_update(st, stmt);
}

/* A step name goes into a JSON path, so it is held to characters that mean
 * nothing there. */
static bool step_name_valid(const char *step)
{
	size_t n;

	if (!step)
		return false;
	n = strlen(step);
	return n >= 1 && n <= TIMING_STEP_MAX &&
	       strspn(step, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
	               n;
}

static const char sql_dep_timing[] =
        "UPDATE deployments SET timings = json_set(timings, ?2, ?3) WHERE id = ?1";

/* PostgreSQL's jsonb would sort the steps by the length of their names and
 * space the text out: the object is read, changed and written back here
 * instead, in the order the steps ran, as SQLite's json_set() keeps it. */
static const char sql_dep_timings_pg[] = "SELECT timings FROM deployments WHERE id = ?1 FOR UPDATE";
static const char sql_dep_timings_set[] = "UPDATE deployments SET timings = ?2 WHERE id = ?1";

static enum viv_err timing_pg(struct store *st, int64_t id, const char *step, int64_t ms)
{
	struct store_stmt *stmt = NULL;
	json_t *obj = NULL;
	char *text = NULL;
	enum viv_err err;

	err = store_begin(st);
	if (!err)
		err = dep_row(st, sql_dep_timings_pg, id, &stmt);
	if (err)
		goto out;
	obj = json_loads(store_col_str(stmt, 0), 0, NULL);
	store_release(st, stmt);
	if (!json_is_object(obj)) {
		json_decref(obj);
		obj = json_object();
	}
	if (!obj || json_object_set_new(obj, step, json_integer(ms)) != 0) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	text = json_dumps(obj, JSON_COMPACT);
	if (!text) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = store_prepare(st, sql_dep_timings_set, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, text);
	err = run_update(st, stmt);
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	json_decref(obj);
	free(text);
	return err;
}

enum viv_err store_deployment_timing(struct store *st, int64_t id, const char *step, int64_t ms)
{
	char path[TIMING_STEP_MAX + 8];
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	if (!step_name_valid(step))
		return VIV_ERR_INVALID;
	if (st->kind == STORE_POSTGRES)
		return timing_pg(st, id, step, ms);
	snprintf(path, sizeof(path), "$.\"%s\"", step);
	err = store_prepare(st, sql_dep_timing, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, path);
	store_bind_int64(st, stmt, 3, ms);
	return run_update(st, stmt);
}

/* ---- The end of a build ----------------------------------------------------------- */

static const char sql_dep_status[] = "SELECT status FROM deployments WHERE id = ?1";

/* Explains why an update that finishes a deployment changed nothing:
 * VIV_ERR_NOT_FOUND when there is no such deployment, VIV_ERR_INVALID when it
 * is not in a state that may finish that way. */
static enum viv_err finish_refused(struct store *st, int64_t id, const char *to)
{
	struct store_stmt *stmt;
	enum viv_err err;

	err = dep_row(st, sql_dep_status, id, &stmt);
	if (err)
		return err;
	viv_log(VIV_ERROR, "store: deployment %lld is %s, so it cannot become %s", (long long)id,
	        store_col_str(stmt, 0), to);
	store_release(st, stmt);
	return VIV_ERR_INVALID;
}

/* Runners would fail on every request to a route whose .so or static
 * files are missing: VIV_ERR_NOT_FOUND then. */
static enum viv_err check_files(struct store *st, int64_t id, const char *artifact,
                                const struct store_deploy_config *config)
{
	struct stat sb;
	char *path;
	enum viv_err err = VIV_OK;

	if (!store_artifact_exists(st, artifact)) {
		viv_log(VIV_ERROR, "store: deployment %lld: artifact %s is not in %s",
		        (long long)id, artifact, st->artifacts_dir);
		return VIV_ERR_NOT_FOUND;
	}
	if (!config->assets)
		return VIV_OK;
	path = store_assets_path(st, config->assets);
	if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		viv_log(VIV_ERROR, "store: deployment %lld: static files %s are not stored",
		        (long long)id, config->assets);
		err = VIV_ERR_NOT_FOUND;
	}
	free(path);
	return err;
}

static const char sql_artifact_insert[] =
        "INSERT INTO artifacts (hash, mode, so_size, wasm_size, created_at, so_sha256, platform)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO UPDATE"
        " SET so_sha256 = coalesce(artifacts.so_sha256, excluded.so_sha256),"
        " platform = coalesce(artifacts.platform, excluded.platform)";
static const char sql_dep_ready[] =
        "UPDATE deployments SET status = 'ready', mode = ?2, artifact = ?3, config = ?4,"
        " finished_at = ?5, error = NULL, build_key = ?6, language = coalesce(?7, language)"
        " WHERE id = ?1 AND status = 'building'";
static const char sql_app_current[] = "UPDATE apps SET current_deployment = ?1"
                                      " WHERE id = (SELECT app_id FROM deployments WHERE id = ?1)";

static const char sql_artifact_info[] =
        "SELECT so_sha256, platform, so_size FROM artifacts WHERE hash = ?1";

enum viv_err store_artifact_info(struct store *st, const char *hash,
                                 struct store_artifact_info *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	const char *v;
	bool row = false;

	memset(out, 0, sizeof(*out));
	if (!viv_hex64_valid(hash))
		return VIV_ERR_INVALID;
	err = store_prepare(st, sql_artifact_info, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, hash);
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_NOT_FOUND;
	if (!err) {
		v = store_col_str(stmt, 0);
		if (v && viv_hex64_valid(v))
			memcpy(out->so_sha256, v, VIV_SHA256_HEX_LEN + 1);
		v = store_col_str(stmt, 1);
		if (v)
			snprintf(out->platform, sizeof(out->platform), "%s", v);
		out->so_size = store_col_int64(stmt, 2);
	}
	store_release(st, stmt);
	return err;
}

static enum viv_err artifact_record(struct store *st, const struct store_build *b, int64_t now)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_artifact_insert, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, b->artifact);
	store_bind_text(st, stmt, 2, store_mode_name(b->config->mode));
	store_bind_int64(st, stmt, 3, b->artifact_size);
	store_bind_int64(st, stmt, 4, b->wasm_size);
	store_bind_int64(st, stmt, 5, now);
	store_bind_text(st, stmt, 6, b->so_sha256);
	store_bind_text(st, stmt, 7, b->platform);
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

static enum viv_err dep_mark_ready(struct store *st, int64_t id, const struct store_build *b,
                                   const char *config, int64_t now)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_dep_ready, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	store_bind_text(st, stmt, 2, store_mode_name(b->config->mode));
	store_bind_text(st, stmt, 3, b->artifact);
	store_bind_text(st, stmt, 4, config);
	store_bind_int64(st, stmt, 5, now);
	store_bind_text(st, stmt, 6, b->build_key);
	store_bind_text(st, stmt, 7, b->language);
	err = run_update(st, stmt);
	if (err == VIV_ERR_NOT_FOUND)
		err = finish_refused(st, id, "ready");
	return err;
}

static enum viv_err app_set_current(struct store *st, int64_t id)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;

	err = store_prepare(st, sql_app_current, &stmt);
	if (err)
		return err;
	store_bind_int64(st, stmt, 1, id);
	return run_update(st, stmt);
}

enum viv_err store_deployment_ready(struct store *st, int64_t id, const struct store_build *b)
{
	char *config = NULL;
	enum viv_err err;
	int64_t now = viv_now_ms();

	if (!b || !viv_hex64_valid(b->artifact) || !store_deploy_config_valid(b->config) ||
	    b->artifact_size < 0 || b->wasm_size < 0 ||
	    (b->build_key && !viv_hex64_valid(b->build_key)) ||
	    (b->language && (!*b->language || strlen(b->language) > LANGUAGE_MAX)))
		return VIV_ERR_INVALID;
	err = store_deploy_config_encode(b->config, &config);
	if (err)
		return err;
	err = store_begin(st);
	if (err) {
		free(config);
		return err;
	}
	/* Under the lock that garbage collection takes to remove files. */
	err = store_lock(st, STORE_LOCK_FILES, 0);
	if (!err)
		err = check_not_taken(st, id, "its outcome");
	if (!err)
		err = check_files(st, id, b->artifact, b->config);
	if (!err)
		err = artifact_record(st, b, now);
	if (!err)
		err = dep_mark_ready(st, id, b, config, now);
	if (!err)
		err = app_set_current(st, id);
	/* Published after the commit: a runner that sees the new generation
	 * and then loads routes is sure to read this change. */
	if (!err)
		err = store_routes_changed(st);
	if (!err)
		err = store_commit(st);
	store_rollback(st);
	free(config);
	return err;
}

/* ---- Earlier builds ----------------------------------------------------------------- */

/* Builds with one key normally share one artifact; a few rows are enough to
 * get past one whose file was removed. */
#define PRIOR_BUILDS_LOOKED_AT 8

static const char sql_dep_by_build_key[] =
        "SELECT d.id, d.artifact, d.mode, d.config, d.language, ar.so_size, ar.wasm_size"
        " FROM deployments d JOIN artifacts ar ON ar.hash = d.artifact"
        " WHERE d.build_key = ?1 AND d.status = 'ready' ORDER BY d.id DESC LIMIT ?2";

static enum viv_err read_prior(struct store_stmt *stmt, void *elem)
{
	struct store_prior_build *b = elem;
	enum viv_err err;

	memset(b, 0, sizeof(*b));
	b->deployment_id = store_col_int64(stmt, 0);
	b->artifact_size = store_col_int64(stmt, 5);
	b->wasm_size = store_col_int64(stmt, 6);
	err = store_col_text_or(stmt, 1, "", &b->artifact);
	if (!err)
		err = store_deploy_config_read(b->deployment_id, store_col_str(stmt, 2),
		                               store_col_str(stmt, 3), &b->config);
	if (!err)
		err = store_col_text(stmt, 4, &b->language);
	return err;
}

static void prior_clear(void *elem)
{
	struct store_prior_build *b = elem;

	free(b->artifact);
	store_deploy_config_clear(&b->config);
	free(b->language);
}

enum viv_err store_deployment_find_build(struct store *st, const char *build_key,
                                         struct store_prior_build **out)
{
	struct store_prior_build *rows = NULL, *found = NULL;
	struct store_stmt *stmt = NULL;
	size_t n = 0;
	enum viv_err err;
	void *arr;

	*out = NULL;
	if (!viv_hex64_valid(build_key))
		return VIV_ERR_INVALID;
	err = store_prepare(st, sql_dep_by_build_key, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, build_key);
	store_bind_count(st, stmt, 2, PRIOR_BUILDS_LOOKED_AT);
	err = store_rows_collect(st, stmt, sizeof(*rows), read_prior, prior_clear, &arr, &n);
	if (err)
		return err;
	rows = arr;
	for (size_t i = 0; i < n && !found; i++) {
		if (!store_artifact_exists(st, rows[i].artifact))
			continue;
		found = malloc(sizeof(*found));
		if (!found) {
			err = VIV_ERR_NOMEM;
			break;
		}
		/* The row's strings move to found. */
		*found = rows[i];
		memset(&rows[i], 0, sizeof(rows[i]));
	}
	store_rows_free(rows, n, sizeof(*rows), prior_clear);
	if (!err && !found)
		err = VIV_ERR_NOT_FOUND;
	if (!err)
		*out = found;
	return err;
}

void store_prior_build_free(struct store_prior_build *b)
{
	store_row_free(b, prior_clear);
}

static const char sql_dep_failed[] =
        "UPDATE deployments SET status = 'failed', error = ?2, finished_at = ?3"
        " WHERE id = ?1 AND status IN ('queued', 'building')";

enum viv_err store_deployment_failed(struct store *st, int64_t id, const char *error)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	size_t len;

	if (!error || !*error)
		return VIV_ERR_INVALID;
	len = strlen(error);
	if (len > ERROR_MAX)
		len = viv_utf8_cut(error, ERROR_MAX);
	err = store_begin(st);
	if (!err)
		err = check_not_taken(st, id, "its outcome");
	if (!err)
		err = store_prepare(st, sql_dep_failed, &stmt);
	if (err)
		goto out;
	store_bind_int64(st, stmt, 1, id);
	store_bind_textn(st, stmt, 2, error, len);
	store_bind_int64(st, stmt, 3, viv_now_ms());
	err = run_update(st, stmt);
	if (err == VIV_ERR_NOT_FOUND)
		err = finish_refused(st, id, "failed");
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	return err;
}
