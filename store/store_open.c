/* Opening and closing a store: the data directory and its subdirectories,
 * the database connection, migrations and the routes generation mapping. */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bool store_url_is_postgres(const char *url)
{
	return url &&
	       (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

enum viv_err store_open(const char *datadir, struct store **out, char *errbuf, size_t errlen)
{
	return store_open_db(datadir, NULL, out, errbuf, errlen);
}

enum viv_err store_open_db(const char *datadir, const char *db_url, struct store **out,
                           char *errbuf, size_t errlen)
{
	struct store *st = NULL;
	enum viv_err err;

	*out = NULL;
	viv_errf(errbuf, errlen, "%s", "");
	if (!datadir || !*datadir) {
		viv_errf(errbuf, errlen, "no data directory was given");
		return VIV_ERR_INVALID;
	}
	if (db_url && *db_url && !store_url_is_postgres(db_url)) {
		viv_errf(errbuf, errlen,
		         "the store must be a postgres:// or postgresql:// URL, or none for SQLite "
		         "in the data folder");
		return VIV_ERR_INVALID;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		viv_errf(errbuf, errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	st->kind = db_url && *db_url ? STORE_POSTGRES : STORE_SQLITE;
	st->be = st->kind == STORE_POSTGRES ? &store_pg_backend : &store_sqlite_backend;
	err = store_owner_default(st);
	if (!err)
		err = open_dirs(st, datadir, errbuf, errlen);
	if (!err)
		err = st->be->open(st, db_url, errbuf, errlen);
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

bool store_is_postgres(const struct store *st)
{
	return st->kind == STORE_POSTGRES;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->be) {
		store_stmts_finalize(st);
		st->be->close(st);
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
