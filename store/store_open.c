/* Opening and closing a store: the data directory and its subdirectories,
 * the SQLite connection and its settings, migrations and the routes
 * generation mapping. */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a write waits for another process's transaction to end. */
#define STORE_BUSY_TIMEOUT_MS 10000

static enum viv_err make_dir(const char *path, char *errbuf, size_t errlen)
{
	enum viv_err err;

	err = viv_mkdirs(path, 0700);
	if (err)
		viv_errf(errbuf, errlen, "cannot create the directory %s: %s", path,
		         strerror(errno));
	return err;
}

static enum viv_err sub_dir(const struct store *st, const char *name, char **out, char *errbuf,
                            size_t errlen)
{
	*out = viv_path_join(st->datadir, name);
	if (!*out)
		return VIV_ERR_NOMEM;
	return make_dir(*out, errbuf, errlen);
}

static enum viv_err open_dirs(struct store *st, const char *datadir, char *errbuf, size_t errlen)
{
	char real[PATH_MAX];
	enum viv_err err;

	err = make_dir(datadir, errbuf, errlen);
	if (err)
		return err;
	/* Absolute, so that paths handed out stay right after a chdir and can
	 * be bind-mounted into a build sandbox. */
	if (!realpath(datadir, real)) {
		viv_errf(errbuf, errlen, "cannot resolve the data directory %s: %s", datadir,
		         strerror(errno));
		return VIV_ERR_IO;
	}
	st->datadir = strdup(real);
	st->db_path = viv_path_join(real, "vivarium.db");
	if (!st->datadir || !st->db_path)
		return VIV_ERR_NOMEM;
	err = sub_dir(st, "artifacts", &st->artifacts_dir, errbuf, errlen);
	if (!err)
		err = sub_dir(st, "uploads", &st->uploads_dir, errbuf, errlen);
	if (!err)
		err = sub_dir(st, "builds", &st->builds_dir, errbuf, errlen);
	if (!err)
		err = sub_dir(st, "cache", &st->cache_dir, errbuf, errlen);
	return err;
}

/* Runs a PRAGMA that answers with one text value and checks the answer. */
static enum viv_err pragma_expect(struct store *st, const char *sql, const char *want, char *errbuf,
                                  size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	const char *got = NULL;
	enum viv_err err;
	bool row;

	err = store_prepare(st, sql, &stmt);
	if (!err)
		err = store_step(st, stmt, &row);
	if (err) {
		viv_errf(errbuf, errlen, "cannot set up %s (%s): %s", st->db_path, sql,
		         sqlite3_errmsg(st->db));
		goto out;
	}
	if (row)
		got = (const char *)sqlite3_column_text(stmt, 0);
	if (!got || strcmp(got, want) != 0) {
		viv_errf(errbuf, errlen, "cannot set up %s: %s gave %s, not %s", st->db_path, sql,
		         got ? got : "nothing", want);
		err = VIV_ERR_DB;
	}
out:
	store_release(st, stmt);
	return err;
}

/* Connection settings. These pragmas are per connection (journal_mode is
 * persistent, but asking costs nothing), and none may run inside a
 * transaction. */
/* The database holds every app's data: only its owner may read it, and
 * SQLite gives its -wal and -shm files the database's own mode. A database
 * an older vivd made readable to all is closed up here, by path: opening
 * and closing the file would drop the POSIX locks of every other
 * connection this process has to it. */
static void db_private(const struct store *st)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char path[4096];
		struct stat sb;

		snprintf(path, sizeof(path), "%s%s", st->db_path, suffixes[i]);
		if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || !(sb.st_mode & 077) ||
		    sb.st_uid != geteuid())
			continue;
		if (chmod(path, sb.st_mode & 0600) != 0)
			viv_log(VIV_WARN, "store: cannot make %s private: %s", path,
			        strerror(errno));
	}
}

static enum viv_err open_db(struct store *st, char *errbuf, size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	            SQLITE_OPEN_EXRESCODE;
	enum viv_err err;
	int rc;

	rc = sqlite3_open_v2(st->db_path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		viv_errf(errbuf, errlen, "cannot open the database %s: %s", st->db_path,
		         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		return st->db ? store_db_error(st, rc, "open") : VIV_ERR_DB;
	}
	db_private(st);
	/* First, so that the following pragmas wait for other processes too. */
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	/* WAL: runner processes read while one process writes. */
	err = pragma_expect(st, "PRAGMA journal_mode=WAL", "wal", errbuf, errlen);
	if (err)
		return err;
	/* FULL also syncs the WAL on every commit: with NORMAL, a commit that
	 * was reported to a user could vanish in a power cut, and this database
	 * is the system of record. */
	err = store_exec(st, "PRAGMA synchronous=FULL");
	if (!err)
		err = store_exec(st, "PRAGMA foreign_keys=ON");
	if (err)
		viv_errf(errbuf, errlen, "cannot set up %s: %s", st->db_path,
		         sqlite3_errmsg(st->db));
	return err;
}

enum viv_err store_open(const char *datadir, struct store **out, char *errbuf, size_t errlen)
{
	struct store *st = NULL;
	enum viv_err err;

	*out = NULL;
	viv_errf(errbuf, errlen, "%s", "");
	if (!datadir || !*datadir) {
		viv_errf(errbuf, errlen, "no data directory was given");
		return VIV_ERR_INVALID;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		viv_errf(errbuf, errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	err = open_dirs(st, datadir, errbuf, errlen);
	if (!err)
		err = open_db(st, errbuf, errlen);
	if (!err)
		err = store_migrate(st, errbuf, errlen);
	if (!err)
		err = store_routes_gen_map(st, errbuf, errlen);
	if (err) {
		if (err == VIV_ERR_NOMEM)
			viv_errf(errbuf, errlen, "out of memory");
		goto out;
	}
	store_uploads_sweep(st);
	*out = st;
	st = NULL;
out:
	store_close(st);
	return err;
}

void store_close(struct store *st)
{
	size_t i;
	int rc;

	if (!st)
		return;
	for (i = 0; i < st->n_stmts; i++)
		sqlite3_finalize(st->stmts[i].stmt);
	if (st->db) {
		rc = sqlite3_close(st->db);
		if (rc != SQLITE_OK)
			viv_log(VIV_ERROR, "store: closing %s: %s", st->db_path,
			        sqlite3_errstr(rc));
	}
	store_routes_gen_unmap(st);
	free(st->datadir);
	free(st->db_path);
	free(st->artifacts_dir);
	free(st->uploads_dir);
	free(st->builds_dir);
	free(st->cache_dir);
	free(st);
}

const char *store_datadir(const struct store *st)
{
	return st->datadir;
}

const char *store_cache_dir(const struct store *st)
{
	return st->cache_dir;
}
