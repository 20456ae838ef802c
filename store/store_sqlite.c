/* The SQLite backend: the database file DATADIR/vivarium.db in WAL mode,
 * one connection per struct store, and its statements under the neutral
 * statement layer of store_db.c. */
#include "store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a write waits for another process's transaction to end. */
#define STORE_BUSY_TIMEOUT_MS 10000

static sqlite3 *db_of(struct store *st)
{
	return st->conn;
}

static sqlite3_stmt *stmt_of(struct store_stmt *stmt)
{
	return stmt->impl;
}

/* Logs SQLite's error text for rc with what was being done, and maps rc to
 * a status. */
static enum viv_err db_error(struct store *st, int rc, const char *what)
{
	viv_log(VIV_ERROR, "store: %s: %s (%s)", what ? what : "sqlite", sqlite3_errmsg(db_of(st)),
	        sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return VIV_ERR_NOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return VIV_ERR_BUSY;
	default:
		return VIV_ERR_DB;
	}
}

static enum viv_err lite_prepare(struct store *st, struct store_stmt *stmt)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v3(db_of(st), stmt->sql, -1,
	                        stmt->cached ? SQLITE_PREPARE_PERSISTENT : 0, &s, NULL);
	if (rc != SQLITE_OK)
		return db_error(st, rc, stmt->sql);
	stmt->impl = s;
	return VIV_OK;
}

static void lite_finalize(struct store_stmt *stmt)
{
	sqlite3_finalize(stmt_of(stmt));
}

static void lite_reset(struct store_stmt *stmt)
{
	/* The result of reset repeats the last step's error, already reported. */
	sqlite3_reset(stmt_of(stmt));
	sqlite3_clear_bindings(stmt_of(stmt));
}

static enum viv_err lite_bind(struct store_stmt *stmt, int idx, const struct store_val *v)
{
	sqlite3_stmt *s = stmt_of(stmt);
	int rc = SQLITE_MISUSE;

	switch (v->kind) {
	case STORE_VAL_NULL:
		rc = sqlite3_bind_null(s, idx);
		break;
	case STORE_VAL_INT:
		rc = sqlite3_bind_int64(s, idx, v->i);
		break;
	case STORE_VAL_TEXT:
		rc = sqlite3_bind_text64(s, idx, v->p, v->n, SQLITE_STATIC, SQLITE_UTF8);
		break;
	case STORE_VAL_BLOB:
		rc = sqlite3_bind_blob64(s, idx, v->p, v->n, SQLITE_STATIC);
		break;
	}
	return rc == SQLITE_OK ? VIV_OK : db_error(stmt->st, rc, sqlite3_sql(s));
}

static enum viv_err lite_step(struct store_stmt *stmt, bool *row_out)
{
	int rc = sqlite3_step(stmt_of(stmt));

	*row_out = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return VIV_OK;
	return db_error(stmt->st, rc, sqlite3_sql(stmt_of(stmt)));
}

static int64_t lite_col_int64(struct store_stmt *stmt, int col)
{
	return sqlite3_column_int64(stmt_of(stmt), col);
}

static double lite_col_double(struct store_stmt *stmt, int col)
{
	return sqlite3_column_double(stmt_of(stmt), col);
}

static const char *lite_col_text(struct store_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt_of(stmt), col);
}

static const void *lite_col_blob(struct store_stmt *stmt, int col, size_t *len_out)
{
	const void *p = sqlite3_column_blob(stmt_of(stmt), col);

	*len_out = (size_t)sqlite3_column_bytes(stmt_of(stmt), col);
	return p;
}

static bool lite_col_null(struct store_stmt *stmt, int col)
{
	return sqlite3_column_type(stmt_of(stmt), col) == SQLITE_NULL;
}

static int64_t lite_changes(struct store *st)
{
	return sqlite3_changes64(db_of(st));
}

static bool lite_in_transaction(struct store *st)
{
	return !sqlite3_get_autocommit(db_of(st));
}

static enum viv_err lite_exec_script(struct store *st, const char *sql, char *msg, size_t msglen)
{
	int rc = sqlite3_exec(db_of(st), sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return VIV_OK;
	viv_errf(msg, msglen, "%s", sqlite3_errmsg(db_of(st)));
	return db_error(st, rc, "script");
}

static const char *lite_errmsg(struct store *st)
{
	return sqlite3_errmsg(db_of(st));
}

/* Runs a PRAGMA that answers with one text value and checks the answer. */
static enum viv_err pragma_expect(struct store *st, const char *sql, const char *want, char *errbuf,
                                  size_t errlen)
{
	struct store_stmt *stmt = NULL;
	const char *got = NULL;
	enum viv_err err;
	bool row;

	err = store_prepare(st, sql, &stmt);
	if (!err)
		err = store_step(st, stmt, &row);
	if (err) {
		viv_errf(errbuf, errlen, "cannot set up %s (%s): %s", st->db_path, sql,
		         lite_errmsg(st));
		goto out;
	}
	if (row)
		got = store_col_str(stmt, 0);
	if (!got || strcmp(got, want) != 0) {
		viv_errf(errbuf, errlen, "cannot set up %s: %s gave %s, not %s", st->db_path, sql,
		         got ? got : "nothing", want);
		err = VIV_ERR_DB;
	}
out:
	store_release(st, stmt);
	return err;
}

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

/* Connection settings. These pragmas are per connection (journal_mode is
 * persistent, but asking costs nothing), and none may run inside a
 * transaction. */
static enum viv_err lite_open(struct store *st, const char *url, char *errbuf, size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	            SQLITE_OPEN_EXRESCODE;
	sqlite3 *db = NULL;
	enum viv_err err;
	int rc;

	(void)url;
	rc = sqlite3_open_v2(st->db_path, &db, flags, NULL);
	st->conn = db;
	if (rc != SQLITE_OK) {
		viv_errf(errbuf, errlen, "cannot open the database %s: %s", st->db_path,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		return db ? db_error(st, rc, "open") : VIV_ERR_DB;
	}
	db_private(st);
	/* First, so that the following pragmas wait for other processes too. */
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
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
		viv_errf(errbuf, errlen, "cannot set up %s: %s", st->db_path, lite_errmsg(st));
	return err;
}

static void lite_close(struct store *st)
{
	int rc;

	if (!st->conn)
		return;
	rc = sqlite3_close(db_of(st));
	if (rc != SQLITE_OK)
		viv_log(VIV_ERROR, "store: closing %s: %s", st->db_path, sqlite3_errstr(rc));
	st->conn = NULL;
}

const struct store_backend store_sqlite_backend = {
        .name = "SQLite",
        .open = lite_open,
        .close = lite_close,
        .prepare = lite_prepare,
        .finalize = lite_finalize,
        .reset = lite_reset,
        .bind = lite_bind,
        .step = lite_step,
        .col_int64 = lite_col_int64,
        .col_double = lite_col_double,
        .col_text = lite_col_text,
        .col_blob = lite_col_blob,
        .col_null = lite_col_null,
        .changes = lite_changes,
        .in_transaction = lite_in_transaction,
        .exec_script = lite_exec_script,
        .errmsg = lite_errmsg,
};
