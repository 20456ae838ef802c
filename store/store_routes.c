/* What runners serve: the routes table (each app's current deployment) and
 * the routes generation counter shared by every process on the data
 * directory through a mapped file; and, in the same page, the build queue's
 * counter that builders wait on. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Moves this machine's page to gen, if it is behind. */
static void page_raise(struct store *st, uint64_t gen)
{
	uint64_t cur = __atomic_load_n(st->routes_gen, __ATOMIC_ACQUIRE);

	while (cur < gen && !__atomic_compare_exchange_n(st->routes_gen, &cur, gen, false,
	                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/*
 * The counter lives in DATADIR/routes.gen, one page mapped MAP_SHARED by
 * every store, so all processes on this machine see the same memory: a
 * writer bumps it with an atomic add after its transaction commits, and a
 * runner reads it with one acquire load per request. A runner that sees the
 * new value and then loads routes reads a snapshot taken after the commit.
 * The file is never shrunk, so a concurrent creator's ftruncate cannot zero
 * a counter that another process has already moved. On PostgreSQL the
 * database holds the generation, and the page is the highest of it that
 * this machine has seen: a store raises it as it opens, commits a change,
 * or (a runner) hears of one.
 */
enum viv_err store_routes_gen_map(struct store *st, char *errbuf, size_t errlen)
{
	enum viv_err err = VIV_ERR_IO;
	struct stat sb;
	char *path;
	void *map;
	int fd;

	path = viv_path_join(st->datadir, "routes.gen");
	if (!path)
		return VIV_ERR_NOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		viv_errf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0 ||
	    (sb.st_size < STORE_ROUTES_GEN_SIZE && ftruncate(fd, STORE_ROUTES_GEN_SIZE) != 0)) {
		viv_errf(errbuf, errlen, "cannot size %s: %s", path, strerror(errno));
		goto out;
	}
	map = mmap(NULL, STORE_ROUTES_GEN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		viv_errf(errbuf, errlen, "cannot map %s: %s", path, strerror(errno));
		goto out;
	}
	st->routes_gen = map;
	err = VIV_OK;
	if (st->kind == STORE_POSTGRES) {
		char id[STORE_ROUTES_DB_LEN + 1] = {0};
		char *tag = (char *)map + STORE_ROUTES_DB_OFFSET;
		uint64_t gen = 0;

		err = store_pg_routes_read(st, &gen, id);
		if (err) {
			viv_errf(errbuf, errlen, "cannot read the routes generation of %s",
			         st->db_path);
		} else if (memcmp(tag, id, STORE_ROUTES_DB_LEN) != 0) {
			/* A page that counted for another database: this one's
			 * generation from now on. Runners reload on any change
			 * of the count, down as well as up. */
			memcpy(tag, id, STORE_ROUTES_DB_LEN);
			__atomic_store_n(st->routes_gen, gen, __ATOMIC_RELEASE);
		} else {
			page_raise(st, gen);
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return err;
}

void store_routes_gen_unmap(struct store *st)
{
	if (st->routes_gen)
		munmap(st->routes_gen, STORE_ROUTES_GEN_SIZE);
	st->routes_gen = NULL;
}

/* On PostgreSQL the counter is a row: a change takes its lock until the
 * commit, so generations follow the order of commits, and the notification
 * goes out with the commit or not at all. */
static const char sql_pg_gen_bump[] =
        "WITH g AS (UPDATE routes_generation SET gen = gen + 1 RETURNING gen)"
        " SELECT gen, pg_notify('vivarium_routes', gen::text) FROM g";

enum viv_err store_routes_changed(struct store *st)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;

	if (st->kind != STORE_POSTGRES) {
		st->routes_pending = true;
		return VIV_OK;
	}
	err = store_prepare(st, sql_pg_gen_bump, &stmt);
	if (err)
		return err;
	err = store_step(st, stmt, &row);
	if (!err && !row)
		err = VIV_ERR_INTERNAL;
	if (!err) {
		st->routes_pending = true;
		st->routes_pending_gen = (uint64_t)store_col_int64(stmt, 0);
	}
	store_release(st, stmt);
	return err;
}

void store_routes_publish(struct store *st)
{
	if (!st->routes_pending)
		return;
	st->routes_pending = false;
	if (st->kind == STORE_POSTGRES)
		page_raise(st, st->routes_pending_gen);
	else
		__atomic_add_fetch(st->routes_gen, 1, __ATOMIC_ACQ_REL);
}

uint64_t store_routes_generation(struct store *st)
{
	uint64_t gen;

	if (st->kind == STORE_POSTGRES && store_pg_routes_poll(st, &gen))
		page_raise(st, gen);
	return __atomic_load_n(st->routes_gen, __ATOMIC_ACQUIRE);
}

/* ---- The build queue's notification --------------------------------------------- */

/*
 * The queue's word sits in the same shared page, so waiting on it is a
 * futex wait on a file mapping: the kernel keys it by the file and offset,
 * so every process that maps DATADIR/routes.gen waits on the same word,
 * whatever user it runs as.
 */
/* How long a builder on PostgreSQL waits on its socket between looks at the
 * shared word. */
#define QUEUE_SLICE_MS 100u

static uint32_t *queue_word(const struct store *st)
{
	return (uint32_t *)(void *)((char *)st->routes_gen + STORE_QUEUE_GEN_OFFSET);
}

uint32_t store_queue_generation(const struct store *st)
{
	return __atomic_load_n(queue_word(st), __ATOMIC_ACQUIRE);
}

static void queue_wake_all(const struct store *st)
{
	syscall(SYS_futex, queue_word(st), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void store_queue_bump(struct store *st)
{
	__atomic_add_fetch(queue_word(st), 1, __ATOMIC_ACQ_REL);
	queue_wake_all(st);
	if (st->kind == STORE_POSTGRES)
		store_pg_queue_notify(st);
}

void store_queue_wake(const struct store *st)
{
	queue_wake_all(st);
}

void store_queue_wait(struct store *st, uint32_t seen, unsigned timeout_ms)
{
	struct timespec ts = {
	        .tv_sec = (time_t)(timeout_ms / 1000),
	        .tv_nsec = (long)(timeout_ms % 1000) * 1000000L,
	};

	/* On PostgreSQL work queued on any machine is notified on the
	 * connection's socket; the shared word is looked at between slices
	 * (a stop, store_queue_wake(), is seen by the caller within one). */
	if (st->kind == STORE_POSTGRES) {
		for (unsigned waited = 0; waited < timeout_ms; waited += QUEUE_SLICE_MS) {
			if (store_queue_generation(st) != seen)
				return;
			if (store_pg_queue_wait(st, QUEUE_SLICE_MS))
				return;
		}
		return;
	}
	/* EAGAIN: it moved before the wait began; ETIMEDOUT, EINTR and a
	 * wake-up all end the wait alike. */
	syscall(SYS_futex, queue_word(st), FUTEX_WAIT, seen, &ts, NULL, 0);
}

static const char sql_routes[] =
        "SELECT a.name, a.id, d.id, d.artifact, d.mode, d.config, " STORE_GUEST_CONFIG_SQL(
                "a.id") " FROM apps a JOIN deployments d ON d.id = a.current_deployment"
                        " ORDER BY a.name";
static const char sql_routes_pg[] =
        "SELECT a.name, a.id, d.id, d.artifact, d.mode, d.config, " STORE_GUEST_CONFIG_SQL_PG(
                "a.id") " FROM apps a JOIN deployments d ON d.id = a.current_deployment"
                        " ORDER BY a.name";

static enum viv_err read_route(struct store_stmt *stmt, void *elem)
{
	return store_route_read(stmt, (struct store_route *)elem);
}

static void route_clear(void *elem)
{
	store_route_clear((struct store_route *)elem);
}

enum viv_err store_routes_load(struct store *st, struct store_route **out, size_t *n_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	void *routes;

	*out = NULL;
	*n_out = 0;
	err = store_prepare(st, store_sql(st, sql_routes, sql_routes_pg), &stmt);
	if (err)
		return err;
	err = store_rows_collect(st, stmt, sizeof(**out), read_route, route_clear, &routes, n_out);
	if (!err)
		*out = routes;
	return err;
}

void store_routes_free(struct store_route *routes, size_t n)
{
	store_rows_free(routes, n, sizeof(*routes), route_clear);
}

enum viv_err store_route_read(struct store_stmt *stmt, struct store_route *r)
{
	enum viv_err err;

	memset(r, 0, sizeof(*r));
	r->app_id = store_col_int64(stmt, 1);
	r->deployment_id = store_col_int64(stmt, 2);
	store_deploy_config_defaults(&r->config);
	err = store_col_text_or(stmt, 0, "", &r->app);
	if (!err)
		err = store_col_text_or(stmt, 3, "", &r->artifact);
	if (!err)
		err = store_deploy_config_read(r->deployment_id, store_col_str(stmt, 4),
		                               store_col_str(stmt, 5), &r->config);
	if (!err) {
		err = store_env_decode(store_col_str(stmt, 6), &r->app_env, &r->n_app_env);
		if (err == VIV_ERR_INVALID) {
			viv_log(VIV_ERROR, "store: app %s has malformed settings", r->app);
			err = VIV_OK;
		}
	}
	return err;
}

void store_route_clear(struct store_route *r)
{
	free(r->app);
	free(r->artifact);
	store_deploy_config_clear(&r->config);
	store_env_free(r->app_env, r->n_app_env);
	memset(r, 0, sizeof(*r));
}
