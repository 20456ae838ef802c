/* Private to store/: the body of struct store, the backend-neutral
 * statement layer the query files share (statement cache, binding, stepping,
 * columns, transactions), and the plug point each database backend fills. */
#ifndef STORE_INT_H
#define STORE_INT_H

#include "store.h"

/* Prepared statements are cached per connection, keyed by the address of
 * their static SQL text. The store runs a few dozen distinct statements; any
 * beyond this many are prepared and finalized on each use instead. */
#define STORE_STMT_CACHE 64

/* The routes generation file is one page; the counter sits at offset 0,
 * and the build queue's (a 32-bit futex word) on a cache line of its own. */
#define STORE_ROUTES_GEN_SIZE 4096
#define STORE_QUEUE_GEN_OFFSET 64
/* On PostgreSQL: the name of the database whose generation the page
 * holds (vivarium_schema.id, 32 hex digits). */
#define STORE_ROUTES_DB_OFFSET 128
#define STORE_ROUTES_DB_LEN 32

/* Which database holds the records. */
enum store_kind {
	STORE_SQLITE,
	STORE_POSTGRES,
};

/* One prepared statement of a connection. Query files hold it between
 * store_prepare() and store_release() and touch it only through the
 * functions below. */
struct store_stmt {
	struct store *st;
	const char *sql; /* static text: the cache key */
	bool cached;     /* in st->stmts, else finalized on release */
	void *impl;      /* the backend's own statement */
};

/* A value to bind: NULL, an integer, text (NUL-free, n bytes) or bytes. */
enum store_val_kind {
	STORE_VAL_NULL,
	STORE_VAL_INT,
	STORE_VAL_TEXT,
	STORE_VAL_BLOB,
};

struct store_val {
	enum store_val_kind kind;
	int64_t i;
	const void *p; /* borrowed until the statement is released */
	size_t n;
};

/*
 * What a database backend provides (store_sqlite.c, store_pg.c). A
 * backend's statement (stmt->impl) is its own; the neutral layer caches,
 * binds and steps it through these. Errors are logged by the backend with
 * its own text, and mapped: VIV_ERR_BUSY when locks were held past the
 * busy timeout, VIV_ERR_NOMEM, else VIV_ERR_DB.
 */
struct store_backend {
	const char *name;
	/* Connects st->conn to url (SQLite: the file st->db_path) and sets the
	 * connection up; a sentence for the operator goes to errbuf. */
	enum viv_err (*open)(struct store *st, const char *url, char *errbuf, size_t errlen);
	/* Closes st->conn; st->conn may be NULL. */
	void (*close)(struct store *st);
	/* Prepares stmt->sql into stmt->impl. */
	enum viv_err (*prepare)(struct store *st, struct store_stmt *stmt);
	/* Frees stmt->impl. */
	void (*finalize)(struct store_stmt *stmt);
	/* Ends any step in progress and clears the bindings. */
	void (*reset)(struct store_stmt *stmt);
	/* Binds v to parameter idx (from 1). */
	enum viv_err (*bind)(struct store_stmt *stmt, int idx, const struct store_val *v);
	/* Runs the statement (first step) or moves to its next row. */
	enum viv_err (*step)(struct store_stmt *stmt, bool *row_out);
	/* Columns of the current row, from 0. Text and bytes are borrowed
	 * until the next step or the release; text is NUL-terminated; NULL for
	 * SQL NULL. */
	int64_t (*col_int64)(struct store_stmt *stmt, int col);
	double (*col_double)(struct store_stmt *stmt, int col);
	const char *(*col_text)(struct store_stmt *stmt, int col);
	const void *(*col_blob)(struct store_stmt *stmt, int col, size_t *len_out);
	bool (*col_null)(struct store_stmt *stmt, int col);
	/* Rows the last INSERT, UPDATE or DELETE changed. */
	int64_t (*changes)(struct store *st);
	/* Whether a transaction is open on the connection. */
	bool (*in_transaction)(struct store *st);
	/* Runs a script of statements without parameters (a migration); the
	 * database's message goes to msg. */
	enum viv_err (*exec_script)(struct store *st, const char *sql, char *msg, size_t msglen);
	/* The last error's text, for operator messages. Borrowed. */
	const char *(*errmsg)(struct store *st);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

struct store {
	enum store_kind kind;
	const struct store_backend *be;
	void *conn;          /* the backend's connection */
	char *datadir;       /* absolute */
	char *db_path;       /* DATADIR/vivarium.db (SQLite) */
	char *artifacts_dir; /* DATADIR/artifacts */
	char *uploads_dir;   /* DATADIR/uploads */
	char *builds_dir;    /* DATADIR/builds */
	char *cache_dir;     /* DATADIR/cache */

	/* The shared routes generation counter, mapped from DATADIR/routes.gen:
	 * the database's own on PostgreSQL, where this page is what this
	 * machine has seen of it. */
	uint64_t *routes_gen;
	/* A change of routes in the open transaction, published at its commit:
	 * on PostgreSQL, the database's generation it moved to. */
	bool routes_pending;
	uint64_t routes_pending_gen;

	/* The first error of a bind since the last step; reported by the step. */
	enum viv_err bind_err;

	/* Whom this connection claims builds for (store_owner()), and for how
	 * long a claim or renewal holds. */
	char owner[STORE_OWNER_MAX + 1];
	unsigned lease_ms;

	struct store_stmt stmts[STORE_STMT_CACHE];
	size_t n_stmts;
};

/* The text of a statement for st's database: lite for SQLite, pg for
 * PostgreSQL. For the few statements whose dialects differ; both texts
 * have static storage, and each is its own cache key. */
static inline const char *store_sql(const struct store *st, const char *lite, const char *pg)
{
	return st->kind == STORE_POSTGRES ? pg : lite;
}

/* ---- Statements (store_db.c) ----------------------------------------------------- */

/* The prepared statement for sql, which must be a string with static storage
 * (its address is the cache key). Parameters are written ?1, ?2, ... in
 * every dialect. Hand it back with store_release(). */
VIV_MUST_CHECK enum viv_err store_prepare(struct store *st, const char *sql,
                                          struct store_stmt **out);

/* Resets a statement from store_prepare() and clears its bindings, so that
 * it holds no read transaction and no pointers to the caller's strings.
 * Accepts NULL. */
void store_release(struct store *st, struct store_stmt *stmt);

/* Bind helpers. Text and bytes are bound without a copy: they must live
 * until the statement is released. A NULL string binds SQL NULL. A failure
 * is logged and reported by the next store_step() or store_run(). */
void store_bind_int64(struct store *st, struct store_stmt *stmt, int idx, int64_t v);
/* Binds v, or SQL NULL when v is 0 (for optional row ids). */
void store_bind_id(struct store *st, struct store_stmt *stmt, int idx, int64_t v);
void store_bind_text(struct store *st, struct store_stmt *stmt, int idx, const char *s);
void store_bind_textn(struct store *st, struct store_stmt *stmt, int idx, const char *s, size_t n);
/* Binds n bytes (a BLOB, or bytea); n may be 0. */
void store_bind_blob(struct store *st, struct store_stmt *stmt, int idx, const void *p, size_t n);
/* Binds a count, such as a LIMIT, clamped to INT64_MAX. */
void store_bind_count(struct store *st, struct store_stmt *stmt, int idx, size_t v);

/* Steps once: *row_out says whether a row is ready to read. */
VIV_MUST_CHECK enum viv_err store_step(struct store *st, struct store_stmt *stmt, bool *row_out);

/* Steps until the statement is done, ignoring any rows. */
VIV_MUST_CHECK enum viv_err store_run(struct store *st, struct store_stmt *stmt);

/* Rows the last INSERT, UPDATE or DELETE on st changed. */
int64_t store_changes(struct store *st);

/* Runs one statement that takes no parameters; sql has static storage, as
 * for store_prepare(). */
VIV_MUST_CHECK enum viv_err store_exec(struct store *st, const char *sql);

/* Columns of the current row, counted from 0. A boolean reads as 0 or 1
 * from either database; SQL NULL reads as 0. */
int64_t store_col_int64(struct store_stmt *stmt, int col);
double store_col_double(struct store_stmt *stmt, int col);
/* NUL-terminated text, or NULL for SQL NULL; borrowed until the next step
 * or the release. */
const char *store_col_str(struct store_stmt *stmt, int col);
/* Bytes (*len_out of them; the pointer may be NULL when there are none),
 * borrowed until the next step or the release. */
const void *store_col_blob(struct store_stmt *stmt, int col, size_t *len_out);

/* Copies a text column: *out is NULL for SQL NULL, else a string the caller
 * frees with free(). */
VIV_MUST_CHECK enum viv_err store_col_text(struct store_stmt *stmt, int col, char **out);

/* Like store_col_text(), but SQL NULL reads as dflt, so *out is never NULL on
 * success. */
VIV_MUST_CHECK enum viv_err store_col_text_or(struct store_stmt *stmt, int col, const char *dflt,
                                              char **out);

/* Copies a bytes column into a new buffer of *len_out bytes plus a NUL,
 * which the caller frees with free(). */
VIV_MUST_CHECK enum viv_err store_col_bytes(struct store_stmt *stmt, int col, char **out,
                                            size_t *len_out);

/* Runs sql (static storage) with text bound to ?1: *out says whether it
 * gave a row. */
VIV_MUST_CHECK enum viv_err store_text_exists(struct store *st, const char *sql, const char *text,
                                              bool *out);

/* Makes room for element n of an array of elements of size bytes with
 * *alloc slots, growing it by doubling. Returns the array (moved or not), or
 * NULL when out of memory, in which case arr is left as it was. */
void *store_grow(void *arr, size_t *alloc, size_t n, size_t size);

/* Finalizes every cached statement (before the connection closes). */
void store_stmts_finalize(struct store *st);

/* ---- Rows into structs (store_db.c) ------------------------------------------------- */

/* Reads the current row of stmt into *elem, a struct of the caller's type.
 * Whatever the result, *elem is left fit for the matching clear function. */
typedef enum viv_err (*store_row_read_fn)(struct store_stmt *stmt, void *elem);

/* Frees what a read function put into *elem, but not elem itself. */
typedef void (*store_row_clear_fn)(void *elem);

/* Steps stmt, prepared and bound by the caller, once and reads its row into
 * a new element of size bytes: VIV_ERR_NOT_FOUND when there is no row.
 * Releases stmt whatever the result. *out is set only on success; caller
 * frees it with store_row_free() and the same clear. */
VIV_MUST_CHECK enum viv_err store_row_fetch(struct store *st, struct store_stmt *stmt, size_t size,
                                            store_row_read_fn read, store_row_clear_fn clear,
                                            void **out);

/* Steps stmt, prepared and bound by the caller, to the end and reads every
 * row into a growing array of elements of size bytes. Releases stmt whatever
 * the result. On success *out is the array (NULL when there were no rows)
 * and *n_out its length; caller frees it with store_rows_free() and the same
 * clear. On failure the rows read so far are freed and the outputs stay
 * cleared. clear may be NULL when elements own nothing. */
VIV_MUST_CHECK enum viv_err store_rows_collect(struct store *st, struct store_stmt *stmt,
                                               size_t size, store_row_read_fn read,
                                               store_row_clear_fn clear, void **out, size_t *n_out);

/* Clears one element with clear (unless it is NULL) and frees it. Accepts
 * NULL. */
void store_row_free(void *elem, store_row_clear_fn clear);

/* Clears each of the n elements of size bytes in arr with clear (unless it
 * is NULL) and frees arr. Accepts NULL. */
void store_rows_free(void *arr, size_t n, size_t size, store_row_clear_fn clear);

/* Starts a write transaction. On SQLite it holds the write lock from the
 * start (BEGIN IMMEDIATE): it waits for other writers through the busy
 * timeout, and can never fail later because another process wrote in
 * between. */
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

/* On PostgreSQL: a JSON object text of the text columns k and v of a
 * query's rows, keys sorted, written as SQLite writes it ({"k":"v"}, no
 * spaces); {} for no rows. */
#define STORE_JSON_OBJECT_PG(k, v)                                                                 \
	"coalesce('{' || string_agg(to_json(" k ")::text || ':' || to_json(" v ")::text, ','"      \
	" ORDER BY " k ") || '}', '{}')"

#define STORE_GUEST_CONFIG_SQL_PG(app_id)                                                          \
	"(SELECT " STORE_JSON_OBJECT_PG(                                                           \
	        "k",                                                                               \
	        "v") " FROM"                                                                       \
	             " (SELECT key AS k, value AS v FROM app_config c WHERE c.app_id = " app_id    \
	             "   AND NOT EXISTS (SELECT 1 FROM secrets s"                                  \
	             "                   WHERE s.app_id = c.app_id AND s.name = c.key)"            \
	             "  UNION ALL SELECT name, value FROM secrets WHERE app_id = " app_id          \
	             ") AS g)"

/* Locks a transaction takes where SQLite's BEGIN IMMEDIATE, which excludes
 * every other writer, was what kept a rule: on PostgreSQL, transaction-level
 * advisory locks; on SQLite, nothing more. */
enum store_lock {
	STORE_LOCK_SCHEMA = 1, /* migrations */
	STORE_LOCK_FILES,      /* artifacts and static files: collection, readiness */
	STORE_LOCK_ADMIN,      /* the admin token */
	STORE_LOCK_KV,         /* an app's KV writes that look before they write */
};

/* Takes lock (with key: 0, or the app's id) until the open transaction
 * ends. */
VIV_MUST_CHECK enum viv_err store_lock(struct store *st, enum store_lock lock, int64_t key);

/* ---- PostgreSQL only (store_pg.c) ------------------------------------------------ */

/* The database's routes generation, and (db_id_out, may be NULL; 33
 * bytes) its name. */
VIV_MUST_CHECK enum viv_err store_pg_routes_read(struct store *st, uint64_t *gen_out,
                                                 char *db_id_out);
/* What runners look at on each request: at most every few milliseconds,
 * the notifications of route changes that arrived; now and then the
 * generation itself. True, with the highest generation heard in *gen_out,
 * when it learned something. */
bool store_pg_routes_poll(struct store *st, uint64_t *gen_out);
/* Waits up to timeout_ms for a notification that work was queued, on any
 * machine; true when one came (or came earlier and was not taken yet). */
bool store_pg_queue_wait(struct store *st, unsigned timeout_ms);
/* Tells every builder of the database that work was queued. */
void store_pg_queue_notify(struct store *st);

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

/* Sets st->owner to "HOST:PID:NONCE" (store_owner()). */
VIV_MUST_CHECK enum viv_err store_owner_default(struct store *st);

/* store_app_id() inside a write transaction, with the app's row locked
 * until it ends (PostgreSQL; SQLite's transaction excludes every writer). */
VIV_MUST_CHECK enum viv_err store_app_lock(struct store *st, const char *name, int64_t *id_out);

/* fsync of a directory, so that a rename in it survives a power cut. */
VIV_MUST_CHECK enum viv_err store_fsync_dir(const char *path);

/* Maps DATADIR/routes.gen (creating it) into st->routes_gen; on
 * PostgreSQL, brings it up to the database's generation. */
VIV_MUST_CHECK enum viv_err store_routes_gen_map(struct store *st, char *errbuf, size_t errlen);
void store_routes_gen_unmap(struct store *st);
/* Inside a write transaction that changes what runners serve: the routes
 * generation moves on when it commits (on PostgreSQL the database's
 * counter moves in the transaction, and a notification goes to runners on
 * every machine with the commit). */
VIV_MUST_CHECK enum viv_err store_routes_changed(struct store *st);
/* After a commit: publishes a pending change to this machine's page. */
void store_routes_publish(struct store *st);
/* Moves the build queue's generation on and wakes its waiters; call after
 * the deployments queued have committed. */
void store_queue_bump(struct store *st);

/* Reads a row of the routes' columns (app name, app id, deployment id,
 * artifact, mode, config, the app's settings and secrets) into *r (zeroed
 * first). Whatever the result, clear *r with store_route_clear(). */
VIV_MUST_CHECK enum viv_err store_route_read(struct store_stmt *stmt, struct store_route *r);
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
