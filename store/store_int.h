/* Private to store/: the body of struct store and the small SQLite helpers
 * (statement cache, binding, stepping, transactions) the query files share. */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* Prepared statements are cached per connection, keyed by the address of
 * their static SQL text. The store runs a few dozen distinct statements; any
 * beyond this many are prepared and finalized on each use instead. */
#define STORE_STMT_CACHE 64

/* The routes generation file is one page; the counter sits at offset 0,
 * and the build queue's (a 32-bit futex word) on a cache line of its own. */
#define STORE_ROUTES_GEN_SIZE 4096
#define STORE_QUEUE_GEN_OFFSET 64

struct store_stmt_slot {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct store {
	sqlite3 *db;
	char *datadir;       /* absolute */
	char *db_path;       /* DATADIR/vivarium.db */
	char *artifacts_dir; /* DATADIR/artifacts */
	char *uploads_dir;   /* DATADIR/uploads */
	char *builds_dir;    /* DATADIR/builds */
	char *cache_dir;     /* DATADIR/cache */

	/* The shared routes generation counter, mapped from DATADIR/routes.gen. */
	uint64_t *routes_gen;

	/* The first error of a bind since the last step; reported by the step. */
	enum viv_err bind_err;

	struct store_stmt_slot stmts[STORE_STMT_CACHE];
	size_t n_stmts;
};

/* ---- SQLite helpers (store_db.c) ------------------------------------------------- */

/* Logs SQLite's error text for rc with what was being done, and maps rc to a
 * status: VIV_ERR_BUSY when the database stayed locked past the busy
 * timeout, VIV_ERR_NOMEM, else VIV_ERR_DB. */
VIV_MUST_CHECK enum viv_err store_db_error(struct store *st, int rc, const char *what);

/* The prepared statement for sql, which must be a string with static storage
 * (its address is the cache key). Hand it back with store_release(). */
VIV_MUST_CHECK enum viv_err store_prepare(struct store *st, const char *sql, sqlite3_stmt **out);

/* Resets a statement from store_prepare() and clears its bindings, so that
 * it holds no read transaction and no pointers to the caller's strings.
 * Accepts NULL. */
void store_release(struct store *st, sqlite3_stmt *stmt);

/* Bind helpers. Text is bound without a copy: the string must live until the
 * statement is released. A NULL string binds SQL NULL. A failure is logged
 * and reported by the next store_step() or store_run(). */
void store_bind_int64(struct store *st, sqlite3_stmt *stmt, int idx, int64_t v);
/* Binds v, or SQL NULL when v is 0 (for optional row ids). */
void store_bind_id(struct store *st, sqlite3_stmt *stmt, int idx, int64_t v);
void store_bind_text(struct store *st, sqlite3_stmt *stmt, int idx, const char *s);
void store_bind_textn(struct store *st, sqlite3_stmt *stmt, int idx, const char *s, size_t n);

/* Steps once: *row_out says whether a row is ready to read. */
VIV_MUST_CHECK enum viv_err store_step(struct store *st, sqlite3_stmt *stmt, bool *row_out);

/* Steps until the statement is done, ignoring any rows. */
VIV_MUST_CHECK enum viv_err store_run(struct store *st, sqlite3_stmt *stmt);

/* Runs one statement that takes no parameters, such as a PRAGMA; sql has
 * static storage, as for store_prepare(). */
VIV_MUST_CHECK enum viv_err store_exec(struct store *st, const char *sql);

/* Copies a text column: *out is NULL for SQL NULL, else a string the caller
 * frees with free(). */
VIV_MUST_CHECK enum viv_err store_col_text(sqlite3_stmt *stmt, int col, char **out);

/* Like store_col_text(), but SQL NULL reads as dflt, so *out is never NULL on
 * success. */
VIV_MUST_CHECK enum viv_err store_col_text_or(sqlite3_stmt *stmt, int col, const char *dflt,
                                              char **out);

/* Runs sql (static storage) with text bound to ?1: *out says whether it
 * gave a row. */
VIV_MUST_CHECK enum viv_err store_text_exists(struct store *st, const char *sql, const char *text,
                                              bool *out);

/* Binds a count, such as a LIMIT, clamped to INT64_MAX. */
void store_bind_count(struct store *st, sqlite3_stmt *stmt, int idx, size_t v);

/* Makes room for element n of an array of elements of size bytes with
 * *alloc slots, growing it by doubling. Returns the array (moved or not), or
 * NULL when out of memory, in which case arr is left as it was. */
void *store_grow(void *arr, size_t *alloc, size_t n, size_t size);

/* ---- Rows into structs (store_db.c) ------------------------------------------------- */

/* Reads the current row of stmt into *elem, a struct of the caller's type.
 * Whatever the result, *elem is left fit for the matching clear function. */
typedef enum viv_err (*store_row_read_fn)(sqlite3_stmt *stmt, void *elem);

/* Frees what a read function put into *elem, but not elem itself. */
typedef void (*store_row_clear_fn)(void *elem);

/* Steps stmt, prepared and bound by the caller, once and reads its row into
 * a new element of size bytes: VIV_ERR_NOT_FOUND when there is no row.
 * Releases stmt whatever the result. *out is set only on success; caller
 * frees it with store_row_free() and the same clear. */
VIV_MUST_CHECK enum viv_err store_row_fetch(struct store *st, sqlite3_stmt *stmt, size_t size,
                                            store_row_read_fn read, store_row_clear_fn clear,
                                            void **out);

/* Steps stmt, prepared and bound by the caller, to the end and reads every
 * row into a growing array of elements of size bytes. Releases stmt whatever
 * the result. On success *out is the array (NULL when there were no rows)
 * and *n_out its length; caller frees it with store_rows_free() and the same
 * clear. On failure the rows read so far are freed and the outputs stay
 * cleared. clear may be NULL when elements own nothing. */
VIV_MUST_CHECK enum viv_err store_rows_collect(struct store *st, sqlite3_stmt *stmt, size_t size,
                                               store_row_read_fn read, store_row_clear_fn clear,
                                               void **out, size_t *n_out);

/* Clears one element with clear (unless it is NULL) and frees it. Accepts
 * NULL. */
void store_row_free(void *elem, store_row_clear_fn clear);

/* Clears each of the n elements of size bytes in arr with clear (unless it
 * is NULL) and frees arr. Accepts NULL. */
void store_rows_free(void *arr, size_t n, size_t size, store_row_clear_fn clear);

/* Starts a write transaction that holds the write lock from the start
 * (BEGIN IMMEDIATE): waits for other writers through the busy timeout, and
 * can never fail later because another process wrote in between. */
VIV_MUST_CHECK enum viv_err store_begin(struct store *st);
VIV_MUST_CHECK enum viv_err store_commit(struct store *st);
/* Rolls back the open transaction, if any; failures are only logged. */
void store_rollback(struct store *st);

/* A subquery giving, as one JSON object text, what guests of the app whose
 * id is the SQL expression app_id see: its settings and secrets, a secret
 * winning over a setting of the same name, keys sorted. */
#define STORE_GUEST_CONFIG_SQL(app_id)                                                             \
	"(SELECT json_group_object(key, value) FROM"                                               \
	" (SELECT key, value FROM app_config c WHERE c.app_id = " app_id                           \
	"   AND NOT EXISTS (SELECT 1 FROM secrets s"                                               \
	"                   WHERE s.app_id = c.app_id AND s.name = c.key)"                         \
	"  UNION ALL SELECT name, value FROM secrets WHERE app_id = " app_id "  ORDER BY 1))"

/* ---- Schema (store_schema.c) ------------------------------------------------------ */

/* Applies every pending migration; refuses a database from a newer vivd. */
VIV_MUST_CHECK enum viv_err store_migrate(struct store *st, char *errbuf, size_t errlen);

/* ---- A deployment's configuration (store_deploy_config.c) ------------------------- */

/* The mode named name ("hostcall" or "cgi"); STORE_MODE_NONE otherwise. */
enum store_mode store_mode_parse(const char *name);

/* The platform's default limits, and nothing else, in c (zeroed first). */
void store_deploy_config_defaults(struct store_deploy_config *c);

/* Whether c may be recorded: a mode, named env variables with values,
 * patterns, and an assets hash of 64 lowercase hex digits when there is
 * one. */
bool store_deploy_config_valid(const struct store_deploy_config *c);

/* The JSON text of deployments.config for c (the mode goes apart, in
 * deployments.mode). Caller frees *out with free(). */
VIV_MUST_CHECK enum viv_err store_deploy_config_encode(const struct store_deploy_config *c,
                                                       char **out);

/* The configuration from the mode column's text (NULL: not built) and the
 * config column's JSON text (NULL or "": the defaults). VIV_ERR_INVALID when
 * the JSON is not an object. Missing or malformed members read as the
 * defaults. Caller clears *out with store_deploy_config_clear() whatever
 * the result. */
VIV_MUST_CHECK enum viv_err store_deploy_config_decode(const char *mode, const char *json,
                                                       struct store_deploy_config *out);

/* store_deploy_config_decode() for a row that must be served or shown
 * whatever it holds: malformed JSON is logged (naming the deployment) and
 * read as the defaults. */
VIV_MUST_CHECK enum viv_err store_deploy_config_read(int64_t deployment_id, const char *mode,
                                                     const char *json,
                                                     struct store_deploy_config *out);

/* The string members of a JSON object text (NULL: none) as env variables,
 * in its order. VIV_ERR_INVALID when it is not an object. Caller frees *out
 * with store_env_free(). */
VIV_MUST_CHECK enum viv_err store_env_decode(const char *json, struct store_env_var **out,
                                             size_t *n_out);

/* Frees n variables and the array; accepts NULL. */
void store_env_free(struct store_env_var *env, size_t n);

/* ---- Pieces shared between query files -------------------------------------- */

/* n random bytes as 2n lowercase hex digits plus NUL in hex. */
VIV_MUST_CHECK enum viv_err store_random_hex(char *hex, size_t n);

/* The id of the app called name; VIV_ERR_NOT_FOUND when there is none. */
VIV_MUST_CHECK enum viv_err store_app_id(struct store *st, const char *name, int64_t *id_out);

/* fsync of a directory, so that a rename in it survives a power cut. */
VIV_MUST_CHECK enum viv_err store_fsync_dir(const char *path);

/* Maps DATADIR/routes.gen (creating it) into st->routes_gen. */
VIV_MUST_CHECK enum viv_err store_routes_gen_map(struct store *st, char *errbuf, size_t errlen);
void store_routes_gen_unmap(struct store *st);
/* Moves the routes generation on; call after the change has committed. */
void store_routes_gen_bump(struct store *st);
/* Moves the build queue's generation on and wakes its waiters; call after
 * the deployments queued have committed. */
void store_queue_bump(struct store *st);

/* Reads a row of the routes' columns (app name, app id, deployment id,
 * artifact, mode, config, the app's settings and secrets) into *r (zeroed
 * first). Whatever the result, clear *r with store_route_clear(). */
VIV_MUST_CHECK enum viv_err store_route_read(sqlite3_stmt *stmt, struct store_route *r);
void store_route_clear(struct store_route *r);

/* Removes the temporary uploads that processes which are gone left behind. */
void store_uploads_sweep(struct store *st);

/* Removes the upload of a deployment, if it is there; failures are only
 * logged. */
void store_upload_remove(struct store *st, int64_t deployment_id);

/* Garbage collection after deletions. Each takes the write lock, and
 * removes the artifact (its row, .so and .wasm) or the static-asset tree
 * only when no deployment refers to it any more: a build that records a
 * deployment with it checks, under the same lock, that its files are still
 * there. *removed_out says whether files were removed. */
VIV_MUST_CHECK enum viv_err store_artifact_collect(struct store *st, const char *hash,
                                                   bool *removed_out);
VIV_MUST_CHECK enum viv_err store_assets_collect(struct store *st, const char *hash,
                                                 bool *removed_out);

#endif
