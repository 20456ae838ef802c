/* The system of record: apps, deployments, artifacts, tokens, KV data and
 * app logs, in a SQLite database in WAL mode inside the data directory, or
 * in PostgreSQL (libpq) when a postgres:// URL is given; and the
 * content-addressed artifact directory, uploads and build folders, which
 * stay in the data directory either way. Everything the API, the pipeline
 * and the runners know about apps goes through this header, whichever
 * database is under it.
 *
 * A struct store is one database connection: use it from one thread at a
 * time and never across fork(); each process and thread opens its own.
 *
 * Errors common to every call that reaches the database: VIV_ERR_DB when
 * the database fails (its message goes to the operator log), VIV_ERR_BUSY
 * when other connections kept what it needed locked past the busy timeout
 * (10 s), VIV_ERR_NOMEM. */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "viv.h"

struct store;

/* ---- Opening ------------------------------------------------------------ */

/* Opens (creating if needed) the data directory at datadir with its
 * subdirectories, the database file, WAL mode and a busy timeout, and runs
 * every pending schema migration. On failure a sentence for the operator is
 * written to errbuf; VIV_ERR_UNSUPPORTED when the database was written by a
 * newer vivd. Caller frees with store_close(). */
VIV_MUST_CHECK enum viv_err store_open(const char *datadir, struct store **out, char *errbuf,
                                       size_t errlen);

/* store_open() with the records in the PostgreSQL database that db_url
 * names (postgres://USER@HOST/DB, or postgresql:// with libpq's
 * parameters; the database is UTF8 and the user may create tables), or,
 * when db_url is NULL or "", in SQLite as store_open() has them. The files
 * stay in datadir. VIV_ERR_INVALID for another kind of URL,
 * VIV_ERR_UNSUPPORTED for a database that is not UTF8. */
VIV_MUST_CHECK enum viv_err store_open_db(const char *datadir, const char *db_url,
                                          struct store **out, char *errbuf, size_t errlen);

/* True when url is a postgres:// or postgresql:// URL. */
bool store_url_is_postgres(const char *url);

/* True when st keeps its records in PostgreSQL. */
bool store_is_postgres(const struct store *st);

/* Closes the connection; accepts NULL. */
void store_close(struct store *st);

/* The data directory this store was opened on. Borrowed for the life of st. */
const char *store_datadir(const struct store *st);

/* The schema version after migrations (PRAGMA user_version; on
 * PostgreSQL the table vivarium_schema); -1 when it cannot be read. */
int store_schema_version(struct store *st);

/* ---- Tokens --------------------------------------------------------------- */

/* Creates the admin token on first start: when the token file
 * DATADIR/admin-token does not exist, makes a new random token, stores its
 * sha256 in the database and writes the token to the file (mode 0600).
 * Either way, *token_out is the admin token (caller frees with free()) and
 * *created_out (may be NULL) says whether it was made now. A token file from
 * an earlier start is read back and its digest stored again if it is
 * missing; VIV_ERR_INVALID when the file does not hold a token. The file
 * is the one admin token: when it was replaced (removed, and a new one made
 * at the next start), the token it held before is revoked. With the records
 * in PostgreSQL, which hosts with data folders of their own share, a host
 * without the file makes no token when one was made already:
 * VIV_ERR_EXISTS, with a warning that says to copy the file. */
VIV_MUST_CHECK enum viv_err store_admin_token_ensure(struct store *st, char **token_out,
                                                     bool *created_out);

/* What a token may do: everything, or read and deploy the apps it names
 * (the API decides which calls those are). */
enum store_scope {
	STORE_SCOPE_ADMIN,
	STORE_SCOPE_APPS,
};

/* "admin" or "apps". */
const char *store_scope_name(enum store_scope scope);

/* A token as the store knows it; the secret itself is never kept. */
struct store_token {
	int64_t id;
	char *name;
	enum store_scope scope;
	char **apps; /* scope apps: the app names, sorted; NULL otherwise */
	size_t n_apps;
	int64_t created_at;   /* ms since the epoch */
	int64_t last_used_at; /* ms since the epoch, to about a minute; 0: never */
	bool builtin;         /* the admin token of DATADIR/admin-token */
};

/* Token names: 1 to 64 printable ASCII characters, not starting or ending
 * with a space; "admin" is the builtin token's. Apps of a token: 1 to
 * STORE_TOKEN_APPS_MAX app names (they need not exist). */
#define STORE_TOKEN_NAME_MAX 64
#define STORE_TOKEN_APPS_MAX 100

/* True when name may name a new token. */
bool store_token_name_valid(const char *name);

/* Creates a new token: "viv_" and 64 hex digits, returned once in
 * *token_out (caller frees with free()); only its sha256 is stored. For
 * STORE_SCOPE_APPS, apps holds n_apps app names (duplicates are merged);
 * for STORE_SCOPE_ADMIN n_apps must be 0. VIV_ERR_INVALID for a bad name,
 * app name or count. *info_out (may be NULL) is the new token's record;
 * caller frees with store_token_free(). */
VIV_MUST_CHECK enum viv_err store_token_create(struct store *st, const char *name,
                                               enum store_scope scope, const char *const *apps,
                                               size_t n_apps, char **token_out,
                                               struct store_token **info_out);

/* Looks a presented token up: VIV_ERR_AUTH when it is not a known token.
 * The comparison is of sha256 digests. Records the use (last_used_at) when
 * the recorded one is over a minute old, so that most requests write
 * nothing. Caller frees *out with store_token_free(). */
VIV_MUST_CHECK enum viv_err store_token_auth(struct store *st, const char *token,
                                             struct store_token **out);

/* VIV_OK when token is a known token, VIV_ERR_AUTH when it is not. */
VIV_MUST_CHECK enum viv_err store_token_check(struct store *st, const char *token);

/* Every token, ordered by id (*out is NULL when there are none). Caller
 * frees with store_token_list_free(). */
VIV_MUST_CHECK enum viv_err store_token_list(struct store *st, struct store_token **out,
                                             size_t *n_out);

/* Revokes a token. VIV_ERR_NOT_FOUND when there is none with that id,
 * VIV_ERR_UNSUPPORTED for the builtin admin token (replace its file and
 * restart vivd instead). */
VIV_MUST_CHECK enum viv_err store_token_delete(struct store *st, int64_t id);

/* True when the token may act on the app called app: an admin token on
 * any, an apps token on those it names. */
bool store_token_allows(const struct store_token *t, const char *app);

/* Accept NULL. */
void store_token_free(struct store_token *t);
void store_token_list_free(struct store_token *ts, size_t n);

/* ---- Apps ----------------------------------------------------------------- */

/* What an app is doing, from its deployments: serving when it has a current
 * deployment; else building when one is queued or building; else failed
 * when every deployment failed; else empty. */
enum store_app_state {
	STORE_APP_EMPTY,
	STORE_APP_SERVING,
	STORE_APP_BUILDING,
	STORE_APP_FAILED,
};

/* "empty", "serving", "building" or "failed". */
const char *store_app_state_name(enum store_app_state s);

struct store_app {
	int64_t id;
	char *name;
	int64_t created_at;         /* ms since the epoch */
	int64_t current_deployment; /* 0 when nothing is serving yet */
	enum store_app_state state;
	char *language;     /* of the current deployment; NULL when none */
	int64_t updated_at; /* when the newest deployment was made; 0 when none */
};

/* Creates the app if it does not exist; *id_out is its id either way. The
 * caller has checked the name with viv_app_name_valid(); an invalid name is
 * VIV_ERR_INVALID all the same. */
VIV_MUST_CHECK enum viv_err store_app_ensure(struct store *st, const char *name, int64_t *id_out);

/* VIV_ERR_NOT_FOUND when there is no such app. Caller frees with
 * store_app_free(). */
VIV_MUST_CHECK enum viv_err store_app_get(struct store *st, const char *name,
                                          struct store_app **out);

/* Every app, ordered by name (*out is NULL when there are none). Caller
 * frees with store_app_list_free(). */
VIV_MUST_CHECK enum viv_err store_app_list(struct store *st, struct store_app **out, size_t *n_out);

/* Free one app / an array of n apps; both accept NULL. */
void store_app_free(struct store_app *app);
void store_app_list_free(struct store_app *apps, size_t n);

/* What store_app_delete() removed. */
struct store_app_deleted {
	size_t deployments;       /* deployments of the app */
	size_t artifacts_removed; /* artifacts no other deployment used (.so and .wasm) */
	size_t assets_removed;    /* static-asset trees no other deployment used */
};

/* Deletes the app with its deployments, KV data, settings, secrets and
 * logs, and the uploads of its queued deployments; bumps the routes
 * generation so that runners stop serving it; then removes from disk the
 * artifacts and static-asset trees that its deployments used and no
 * remaining deployment does. VIV_ERR_NOT_FOUND when there is no such app.
 * A failure to remove a file is logged, never an error: the app is gone.
 * *out (may be NULL) says what went. */
VIV_MUST_CHECK enum viv_err store_app_delete(struct store *st, const char *name,
                                             struct store_app_deleted *out);

/* Makes a ready deployment of the app its current one and bumps the routes
 * generation. deployment_id 0 means the newest ready deployment older than
 * the current one. *current_out is the deployment now current,
 * *previous_out the one before (0 when none); either may be NULL.
 * VIV_ERR_NOT_FOUND when there is no such app, or deployment_id is not one
 * of the app's; VIV_ERR_INVALID when that deployment is not ready, or
 * (deployment_id 0) there is no ready deployment older than the current
 * one. */
VIV_MUST_CHECK enum viv_err store_app_rollback(struct store *st, const char *name,
                                               int64_t deployment_id, int64_t *current_out,
                                               int64_t *previous_out);

/* ---- A deployment's configuration ---------------------------------------- */

/* How a deployment's module is served (GUEST-ABI.md). */
enum store_mode {
	STORE_MODE_NONE = 0, /* not built yet */
	STORE_MODE_HOSTCALL, /* host calls: the module exports run */
	STORE_MODE_CGI,      /* WASI command: the module exports _start */
};

/* "hostcall" or "cgi"; NULL for STORE_MODE_NONE or a value out of range. */
const char *store_mode_name(enum store_mode mode);

/* One configuration variable a guest sees. */
struct store_env_var {
	char *name;
	char *value;
};

/*
 * What a build resolved from the manifest, and what runners serve a
 * deployment with. The store keeps it in an encoding of its own; every
 * other module reads and writes only this struct.
 */
struct store_deploy_config {
	enum store_mode mode;
	struct viv_limits limits;  /* resolved against the platform's defaults and maxima */
	struct store_env_var *env; /* the manifest's env, in its order */
	size_t n_env;
	char **outbound; /* allowed outbound URL patterns */
	size_t n_outbound;
	char *assets; /* the hash of the stored static files; NULL: none */
};

/* Frees what c owns and zeroes it; accepts NULL and a zeroed struct. */
void store_deploy_config_clear(struct store_deploy_config *c);

/* Makes dst (zeroed first) a deep copy of src. Caller clears dst with
 * store_deploy_config_clear(), whatever the result. */
VIV_MUST_CHECK enum viv_err store_deploy_config_copy(struct store_deploy_config *dst,
                                                     const struct store_deploy_config *src);

/* Appends one env variable (both strings copied). */
VIV_MUST_CHECK enum viv_err store_deploy_config_add_env(struct store_deploy_config *c,
                                                        const char *name, const char *value);

/* Appends one outbound URL pattern (copied). */
VIV_MUST_CHECK enum viv_err store_deploy_config_add_outbound(struct store_deploy_config *c,
                                                             const char *pattern);

/* The value of the env variable name, or NULL. Borrowed from c. */
const char *store_deploy_config_env(const struct store_deploy_config *c, const char *name);

/* ---- Deployments ------------------------------------------------------------ */

enum store_dep_status {
	STORE_DEP_QUEUED,
	STORE_DEP_BUILDING,
	STORE_DEP_READY,
	STORE_DEP_FAILED,
};

/* "queued", "building", "ready" or "failed". */
const char *store_dep_status_name(enum store_dep_status s);

struct store_deployment {
	int64_t id;
	int64_t app_id;
	char *app; /* the app's name */
	enum store_dep_status status;
	int64_t created_at;  /* ms since the epoch */
	int64_t started_at;  /* 0 until the build starts */
	int64_t finished_at; /* 0 until it is ready or failed */
	char *upload_sha256; /* of the uploaded bytes */
	int64_t upload_size;
	char *language; /* NULL until detected */
	char *artifact; /* artifact hash; NULL until built */
	char *log;      /* the build log so far; never NULL */
	char *timings;  /* JSON object: step name -> milliseconds; never NULL */
	/* The mode (STORE_MODE_NONE until built), resolved limits, env,
	 * outbound patterns and static files; the platform's defaults until
	 * built. */
	struct store_deploy_config config;
	char *error;           /* one sentence when failed, else NULL */
	bool current;          /* this is the app's serving deployment */
	char *deployed_by;     /* the name of the token that uploaded it; NULL: unknown */
	int64_t artifact_size; /* bytes of the artifact's .so; 0 until built */
};

/* A fresh path in the data directory's upload area for the caller to write
 * an upload to before store_deployment_create(). Caller frees with free()
 * and removes the file if it does not pass it on. The name carries the
 * caller's pid: store_open() removes temporary uploads whose process is gone
 * (a crash left them behind) or that nobody wrote to for a day, and never
 * those a live process is still writing. */
VIV_MUST_CHECK enum viv_err store_upload_tmp(const struct store *st, char **path_out);

/* Creates the app if needed and a queued deployment for it, and moves the
 * file at upload_tmp (from store_upload_tmp) to the deployment's upload path,
 * store_upload_path(), before the deployment becomes visible to builders.
 * upload_sha256 is 64 lowercase hex digits. On failure the file is left where
 * it was: VIV_ERR_INVALID for a bad argument, VIV_ERR_IO when the file cannot
 * be moved (it must be on the data directory's file system). */
VIV_MUST_CHECK enum viv_err store_deployment_create(struct store *st, const char *app,
                                                    const char *upload_tmp,
                                                    const char *upload_sha256, int64_t upload_size,
                                                    int64_t *id_out);

/* store_deployment_create(), recording who made the deployment: the name
 * of the token it came with (at most STORE_TOKEN_NAME_MAX bytes; NULL
 * records none). */
VIV_MUST_CHECK enum viv_err store_deployment_create_by(struct store *st, const char *app,
                                                       const char *deployed_by,
                                                       const char *upload_tmp,
                                                       const char *upload_sha256,
                                                       int64_t upload_size, int64_t *id_out);

/* VIV_ERR_NOT_FOUND when there is none. Caller frees with
 * store_deployment_free(). */
VIV_MUST_CHECK enum viv_err store_deployment_get(struct store *st, int64_t id,
                                                 struct store_deployment **out);

/* The app's deployments with ids below before_id (0: all), newest first,
 * at most limit (*out is NULL when there are none). Caller frees with
 * store_deployment_list_free(). VIV_ERR_NOT_FOUND when there is no such
 * app. */
VIV_MUST_CHECK enum viv_err store_deployment_list(struct store *st, const char *app,
                                                  int64_t before_id, size_t limit,
                                                  struct store_deployment **out, size_t *n_out);

/* How far a deployment has got, cheaply, for following a build. */
struct store_dep_progress {
	enum store_dep_status status;
	int64_t log_size; /* bytes of the build log */
	char *log_tail;   /* the log's bytes from the offset asked for; never NULL */
	size_t tail_len;
};

/* The status, the log's size and the log's bytes from log_offset on (at
 * most max bytes of them). VIV_ERR_NOT_FOUND when there is no such
 * deployment. Caller frees out->log_tail with free(). */
VIV_MUST_CHECK enum viv_err store_deployment_progress(struct store *st, int64_t id,
                                                      int64_t log_offset, size_t max,
                                                      struct store_dep_progress *out);

void store_deployment_free(struct store_deployment *d);
void store_deployment_list_free(struct store_deployment *ds, size_t n);

/* Moves the oldest queued deployment of an app with none building to
 * building (setting started_at, and the lease: store_owner() and now plus
 * the lease) and returns its id; VIV_ERR_NOT_FOUND when there is none. A
 * deployment building under a lease that ran out comes first, and is taken
 * again with a line in its log. An app's deployments so build in order,
 * one at a time, and a slow build never holds another app's deployment in
 * the queue. Atomic, so several builders may call it at once, from any
 * number of processes and (PostgreSQL) machines. */
VIV_MUST_CHECK enum viv_err store_deployment_claim(struct store *st, int64_t *id_out);

/* Deployments queued on this data directory move a counter in a small
 * page shared by every process on it (beside the routes generation), and
 * wake whoever waits on it: a builder in any process learns of new work at
 * once. On PostgreSQL queueing also notifies every builder of the database,
 * on any machine, which waits on its connection for it. */
uint32_t store_queue_generation(const struct store *st);

/* Waits until the queue generation is no longer seen (the value read before
 * the last store_deployment_claim() found nothing), store_queue_wake() is
 * called, or timeout_ms pass; returns at once when it has already moved. A
 * signal may end the wait early too: callers check what they wait for
 * again. */
void store_queue_wait(struct store *st, uint32_t seen, unsigned timeout_ms);

/* Wakes every store_queue_wait() on this data directory, in every process,
 * without moving the counter: for stopping builders. */
void store_queue_wake(const struct store *st);

/* At a builder's start: deployments whose builder is gone are queued again,
 * with a line in their log saying so: those whose lease ran out, and those
 * claimed on this machine (by an owner of store_owner()'s form) by a
 * process that no longer exists, whatever their lease says. *n_out (may be
 * NULL) is how many. */
VIV_MUST_CHECK enum viv_err store_deployment_requeue_interrupted(struct store *st, size_t *n_out);

/* ---- Leases of builds ------------------------------------------------------------- */

/*
 * A claim holds a deployment for its owner until lease_until (the claim's
 * time plus the connection's lease), and a builder renews the leases of the
 * builds it runs with store_lease_renew() while it runs them. A deployment
 * whose lease ran out (its builder died, hung, or lost the database) is
 * claimed again by the next store_deployment_claim(), anywhere; from then
 * on the builder that had it can no longer record its outcome or its log
 * (VIV_ERR_INVALID), so it is built, and recorded, once. Hosts' clocks must
 * agree to well within a lease.
 */
#define STORE_LEASE_MS_DEFAULT 30000
#define STORE_OWNER_MAX 128

/* Whom this connection claims builds for: by default "HOST:PID:NONCE" of
 * this process with a nonce of the connection's own. Borrowed for the life
 * of st. */
const char *store_owner(const struct store *st);

/* Claims for owner (1 to STORE_OWNER_MAX printable ASCII bytes, else
 * VIV_ERR_INVALID) from now on: the builders of one process share one
 * owner, so that one heartbeat renews all their leases. */
VIV_MUST_CHECK enum viv_err store_set_owner(struct store *st, const char *owner);

/* How long this connection's claims and renewals hold, in milliseconds
 * (0: STORE_LEASE_MS_DEFAULT; at most a day). */
void store_set_lease_ms(struct store *st, unsigned ms);

/* The heartbeat: moves the lease of every deployment this connection's
 * owner is building to now plus the lease. *n_out (may be NULL) is how
 * many it renewed; one taken over by another builder is not among them. */
VIV_MUST_CHECK enum viv_err store_lease_renew(struct store *st, size_t *n_out);

/* The most build log text kept per deployment. */
#define STORE_BUILD_LOG_MAX (1024 * 1024)

/* Appends text to the build log; the log is capped at STORE_BUILD_LOG_MAX
 * bytes (the cap is noted once in the log when reached, and later text is
 * dropped). VIV_ERR_NOT_FOUND when there is no such deployment,
 * VIV_ERR_INVALID when it is building under another owner's claim (this
 * connection's lease ran out and another builder took it over). */
VIV_MUST_CHECK enum viv_err store_deployment_log(struct store *st, int64_t id, const char *text);

/* Records the detected language (at most 32 bytes). VIV_ERR_NOT_FOUND when
 * there is no such deployment. */
VIV_MUST_CHECK enum viv_err store_deployment_set_language(struct store *st, int64_t id,
                                                          const char *language);

/* Records one step's duration in the timings object, replacing an earlier
 * value for the same step. A step name is 1 to 64 letters, digits, '_' or
 * '-' (VIV_ERR_INVALID otherwise). VIV_ERR_NOT_FOUND when there is no such
 * deployment. */
VIV_MUST_CHECK enum viv_err store_deployment_timing(struct store *st, int64_t id, const char *step,
                                                    int64_t ms);

/* A finished, successful build. */
struct store_build {
	const char *artifact; /* artifact hash; the file is already in place */
	/* The mode and what the build resolved from the manifest. Borrowed
	 * for the call. */
	const struct store_deploy_config *config;
	int64_t artifact_size; /* bytes of the .so */
	int64_t wasm_size;     /* bytes of the optimized wasm */
	/* The sha256 of the .so's bytes (64 lowercase hex digits), and the
	 * platform it was built for (viv_platform()), which hosts that fetch
	 * it check; NULL records none. */
	const char *so_sha256;
	const char *platform;
	/* 64 lowercase hex digits that name the build's inputs (the upload and
	 * the server's build tools and settings), for
	 * store_deployment_find_build(); NULL records none. */
	const char *build_key;
	/* The language (at most 32 bytes), when store_deployment_set_language()
	 * did not record it during the build; NULL keeps what is recorded. */
	const char *language;
};

/* In one transaction: records the artifact, marks the deployment ready (with
 * its build key), makes it the app's current deployment and moves the
 * routes generation on. VIV_ERR_INVALID for a bad hash, build key,
 * language, config (no config, no mode, an env variable without a name, an
 * assets hash that is not one), when the deployment is not building, or
 * when it is building under another owner's claim; VIV_ERR_NOT_FOUND when
 * there is no such deployment or the artifact's .so is not in the artifact
 * directory. */
VIV_MUST_CHECK enum viv_err store_deployment_ready(struct store *st, int64_t id,
                                                   const struct store_build *b);

/* An earlier successful build, as store_deployment_find_build() finds it. */
struct store_prior_build {
	int64_t deployment_id;
	char *artifact;                    /* hash */
	struct store_deploy_config config; /* its mode and configuration */
	char *language;                    /* NULL when none was recorded */
	int64_t artifact_size;
	int64_t wasm_size;
};

/* The newest ready deployment, of any app, recorded with build_key whose
 * artifact .so is still in the artifact directory (of the few newest with
 * that key). VIV_ERR_NOT_FOUND when there is none, VIV_ERR_INVALID when
 * build_key is not 64 lowercase hex digits. Caller frees with
 * store_prior_build_free(). */
VIV_MUST_CHECK enum viv_err store_deployment_find_build(struct store *st, const char *build_key,
                                                        struct store_prior_build **out);

/* Accepts NULL. */
void store_prior_build_free(struct store_prior_build *b);

/* Marks the deployment failed with a one-sentence reason (what went wrong
 * and what to do; cut at 4096 bytes); the app keeps serving its current
 * deployment. VIV_ERR_INVALID when the deployment is already ready or
 * failed, or building under another owner's claim; VIV_ERR_NOT_FOUND when
 * there is none. */
VIV_MUST_CHECK enum viv_err store_deployment_failed(struct store *st, int64_t id,
                                                    const char *error);

/* What hosts that fetch an artifact check it against. */
struct store_artifact_info {
	char so_sha256[VIV_SHA256_HEX_LEN + 1]; /* "" when not recorded */
	char platform[VIV_PLATFORM_MAX];        /* "" when not recorded */
	int64_t so_size;
};

/* The record of artifact hash. VIV_ERR_NOT_FOUND when there is none,
 * VIV_ERR_INVALID for a malformed hash. */
VIV_MUST_CHECK enum viv_err store_artifact_info(struct store *st, const char *hash,
                                                struct store_artifact_info *out);

/* ---- Files in the data directory ----------------------------------------------- */

/* Where the upload of a deployment is kept until its build ends. Caller frees
 * with free(); NULL on allocation failure. */
char *store_upload_path(const struct store *st, int64_t deployment_id);

/* The folder under the data directory where builds make their folders. */
const char *store_builds_dir(const struct store *st);

/* A fresh, empty, private (mode 0700) folder for one build in parent, or
 * NULL: in store_builds_dir(). Caller removes it with viv_rmtree() and
 * frees the string with free(). */
VIV_MUST_CHECK enum viv_err store_build_dir(const struct store *st, const char *parent,
                                            int64_t deployment_id, char **out);

/* DATADIR/cache, private (mode 0700): where the pipeline keeps what it
 * prepares for builds itself, from the platform's own files only (never
 * from an upload or what a build of one wrote), such as the SDK crates
 * compiled once per toolchain. Anything in it may be removed while no build
 * runs. Borrowed for the life of st. */
const char *store_cache_dir(const struct store *st);

/* The path of an artifact file, DATADIR/artifacts/XX/HASH.EXT: hash is 64
 * lowercase hex digits and ext is "so" or "wasm". Caller frees with free();
 * NULL when hash or ext is invalid, or on allocation failure. */
char *store_artifact_path(const struct store *st, const char *hash, const char *ext);

/* True when the artifact's .so is in the artifact directory. */
bool store_artifact_exists(const struct store *st, const char *hash);

/* Copies src into the artifact directory as HASH.EXT so that it appears only
 * complete (write, fsync, rename). An existing file is left as it is.
 * VIV_ERR_INVALID for a bad hash or ext, VIV_ERR_NOT_FOUND when src does not
 * exist, VIV_ERR_IO for other file errors. src is opened by its path:
 * only for files the platform made (store_artifact_put_fd() otherwise). */
VIV_MUST_CHECK enum viv_err store_artifact_put(const struct store *st, const char *hash,
                                               const char *ext, const char *src);

/* store_artifact_put from the file open at src_fd (read from its start),
 * which the caller opened as it sees fit (a build's output: beneath its
 * folder, without following links). */
VIV_MUST_CHECK enum viv_err store_artifact_put_fd(const struct store *st, const char *hash,
                                                  const char *ext, int src_fd);

/* ---- Routes (read by runners) ------------------------------------------- */

struct store_route {
	char *app;
	int64_t app_id;
	int64_t deployment_id;
	char *artifact;                    /* hash */
	struct store_deploy_config config; /* the deployment's mode and configuration */
	/* The settings and secrets set through the API, which win over the
	 * manifest's env (store_app_config_get()), ordered by name. */
	struct store_env_var *app_env;
	size_t n_app_env;
};

/* Every app with a current deployment, ordered by app name (*out is NULL
 * when there are none). Caller frees with store_routes_free(). */
VIV_MUST_CHECK enum viv_err store_routes_load(struct store *st, struct store_route **out,
                                              size_t *n_out);
void store_routes_free(struct store_route *routes, size_t n);

/* A counter that changes whenever any app's current deployment changes. It
 * lives in a small shared file mapped by every process on this data
 * directory, so reading it is one memory load: a runner compares it on each
 * request and reloads routes when it moved. On PostgreSQL the database
 * counts the changes, and this page holds the highest count this machine
 * has seen: a connection that asks learns of changes made from other
 * machines through LISTEN/NOTIFY (it looks every 50 ms at most) and by
 * reading the count every 5 s. */
uint64_t store_routes_generation(struct store *st);

/* ---- App configuration set through the API ---------------------------------- */

/* Configuration values an operator sets on an app through the API; they
 * override the manifest's env of the same name for every deployment. Keys are
 * 1 to 128 letters, digits and '_' (not starting with a digit); values are at
 * most 64 KiB. Setting or unsetting bumps the routes generation. */
#define STORE_CONFIG_KEY_MAX 128
#define STORE_CONFIG_VALUE_MAX (64 * 1024)

/* VIV_ERR_NOT_FOUND when there is no such app, VIV_ERR_INVALID for a bad key
 * or value. */
VIV_MUST_CHECK enum viv_err store_app_config_set(struct store *st, const char *app, const char *key,
                                                 const char *value);
/* *existed_out (may be NULL) says whether the key was set. */
VIV_MUST_CHECK enum viv_err store_app_config_unset(struct store *st, const char *app,
                                                   const char *key, bool *existed_out);
/* The values set through the API (settings, no secrets) as a JSON object
 * text, keys sorted. Caller frees with free(). VIV_ERR_NOT_FOUND when there
 * is no such app. */
VIV_MUST_CHECK enum viv_err store_app_settings_get(struct store *st, const char *app,
                                                   char **json_out);

/* What guests of the app see on top of the manifest's env: the settings,
 * and the secrets, a secret winning over a setting of the same name; as a
 * JSON object text, keys sorted (store_route.app_config is the same).
 * For runners only: it holds secret values. Caller frees with free().
 * VIV_ERR_NOT_FOUND when there is no such app. */
VIV_MUST_CHECK enum viv_err store_app_config_get(struct store *st, const char *app,
                                                 char **json_out);

/* ---- Secrets -------------------------------------------------------------------- */

/* Secrets are settings whose values never come back out of the store except
 * to runners (store_routes_load(), store_app_config_get()). Names and values
 * follow the rules of settings; setting or unsetting bumps the routes
 * generation. */
struct store_secret {
	char *name;
	int64_t updated_at; /* ms since the epoch */
};

/* VIV_ERR_NOT_FOUND when there is no such app, VIV_ERR_INVALID for a bad
 * name or value. */
VIV_MUST_CHECK enum viv_err store_secret_set(struct store *st, const char *app, const char *name,
                                             const char *value);
/* *existed_out (may be NULL) says whether the secret was set. */
VIV_MUST_CHECK enum viv_err store_secret_unset(struct store *st, const char *app, const char *name,
                                               bool *existed_out);
/* The app's secrets, names only, ordered by name (*out is NULL when there
 * are none). Caller frees with store_secret_list_free().
 * VIV_ERR_NOT_FOUND when there is no such app. */
VIV_MUST_CHECK enum viv_err store_secret_list(struct store *st, const char *app,
                                              struct store_secret **out, size_t *n_out);
void store_secret_list_free(struct store_secret *list, size_t n);

/* True when key may name a setting or a secret. */
bool store_config_key_valid(const char *key);

/* ---- Key-value data of apps --------------------------------------------------- */

/* Each app has its own keys; no app sees another's. Keys and values are
 * bytes. */
#define STORE_KV_KEY_MAX 1024
#define STORE_KV_VALUE_MAX (1024 * 1024)

/* The value of key; VIV_ERR_NOT_FOUND when absent. *val_out (caller frees
 * with free()) is NUL-terminated after *len_out bytes. */
VIV_MUST_CHECK enum viv_err store_kv_get(struct store *st, int64_t app_id, const void *key,
                                         size_t klen, char **val_out, size_t *len_out);
/* Sets key to val, replacing what was there: *was_new_out says whether the
 * key was new. */
VIV_MUST_CHECK enum viv_err store_kv_put(struct store *st, int64_t app_id, const void *key,
                                         size_t klen, const void *val, size_t vlen,
                                         bool *was_new_out);
/* Sets key to val only when it is absent, else leaves the stored value:
 * *inserted_out says whether it did. */
VIV_MUST_CHECK enum viv_err store_kv_put_new(struct store *st, int64_t app_id, const void *key,
                                             size_t klen, const void *val, size_t vlen,
                                             bool *inserted_out);
/* Appends to the value, or inserts when absent: *was_new_out says whether the
 * key was new. VIV_ERR_TOO_BIG when the value would pass STORE_KV_VALUE_MAX
 * (nothing changes). */
VIV_MUST_CHECK enum viv_err store_kv_append(struct store *st, int64_t app_id, const void *key,
                                            size_t klen, const void *val, size_t vlen,
                                            bool *was_new_out);
/* Removes the key: *existed_out says whether it was there. */
VIV_MUST_CHECK enum viv_err store_kv_remove(struct store *st, int64_t app_id, const void *key,
                                            size_t klen, bool *existed_out);
/* All of these: VIV_ERR_INVALID for an empty key or one past
 * STORE_KV_KEY_MAX, VIV_ERR_TOO_BIG for a value past STORE_KV_VALUE_MAX. */

/* One key of a listing: its bytes (NUL-terminated after len, for
 * convenience) and the size of its value. */
struct store_kv_key {
	char *key;
	size_t len;
	int64_t size;
};

/* The app's keys that start with prefix (plen bytes; 0: any) and sort after
 * after (alen bytes; 0: from the first), in the order of their bytes, at
 * most limit of them (*out is NULL when there are none). Caller frees with
 * store_kv_list_free(). VIV_ERR_INVALID for a prefix or after key past
 * STORE_KV_KEY_MAX. */
VIV_MUST_CHECK enum viv_err store_kv_list(struct store *st, int64_t app_id, const void *prefix,
                                          size_t plen, const void *after, size_t alen, size_t limit,
                                          struct store_kv_key **out, size_t *n_out);
void store_kv_list_free(struct store_kv_key *keys, size_t n);

/* Lets this connection's commits skip the fsync (SQLite's synchronous=NORMAL
 * in WAL mode): they survive a crash of the process, and a power failure may
 * lose the last ones. For runners, which write KV data and logs on the
 * request path. */
VIV_MUST_CHECK enum viv_err store_sync_relaxed(struct store *st);

/* ---- Static assets ------------------------------------------------------------------ */

/* A deployment's static files, stored as a directory tree named by a hash of
 * its content: DATADIR/assets/<hash>/. The pipeline computes the hash. The
 * path, or NULL for a malformed hash or no memory; caller frees with free(). */
char *store_assets_path(const struct store *st, const char *hash);

/* True when the tree hash names is in the static files folder (a folder,
 * not a link to one). */
bool store_assets_exists(const struct store *st, const char *hash);

/* Copies the tree at src_dir (regular files and directories only) into place
 * so that it appears only complete (a temporary directory, then rename). An
 * existing tree is left as it is. */
VIV_MUST_CHECK enum viv_err store_assets_put(const struct store *st, const char *hash,
                                             const char *src_dir);

/* ---- App logs --------------------------------------------------------------- */

struct store_log {
	int64_t id;
	int64_t app_id;
	int64_t deployment_id;
	int64_t ts; /* ms since the epoch */
	/* "stdout", "stderr", "debug", "trap", "panic", "system", or "access"
	 * (one line per request a runner served) */
	char *stream;
	char *message;
};

/* The longest message kept, in bytes, and how many lines an app keeps. */
#define STORE_LOG_LINE_MAX 4096
#define STORE_LOG_LINES_PER_APP 1000

/* Appends n lines in one transaction and trims each app's log to
 * STORE_LOG_LINES_PER_APP lines (the newest are kept). Messages longer than
 * STORE_LOG_LINE_MAX are cut. Each line needs app_id, stream (one of the
 * names above) and message, else VIV_ERR_INVALID and nothing is written;
 * deployment_id 0 means none, ts 0 means now; id is ignored. The lines are
 * borrowed for the call. */
VIV_MUST_CHECK enum viv_err store_logs_append(struct store *st, const struct store_log *lines,
                                              size_t n);

/* The app's lines with id > after_id, oldest first, at most limit (the newest
 * limit lines when after_id is 0). VIV_ERR_NOT_FOUND when there is no such
 * app. Caller frees with store_logs_free(). */
VIV_MUST_CHECK enum viv_err store_logs_get(struct store *st, const char *app, int64_t after_id,
                                           size_t limit, struct store_log **out, size_t *n_out);
void store_logs_free(struct store_log *lines, size_t n);

/* ---- Build metrics ------------------------------------------------------------ */

/* The upper bounds (seconds) of the build duration histogram's buckets. */
#define STORE_BUILD_BUCKETS 12

/* Counters of every build that ended on this data directory, kept by the
 * database itself, and the queue as it is now. */
struct store_build_metrics {
	uint64_t ready, failed;                 /* builds by outcome */
	double ready_seconds, failed_seconds;   /* their summed durations */
	double le[STORE_BUILD_BUCKETS];         /* bucket upper bounds, ascending */
	uint64_t le_count[STORE_BUILD_BUCKETS]; /* builds at most that long */
	uint64_t queued, building;              /* deployments in each state now */
};

VIV_MUST_CHECK enum viv_err store_build_metrics(struct store *st, struct store_build_metrics *out);

/* ---- For runners only (store/store_runner_queries.c, kept by the runner) ---------- */

/* The route of one ready deployment of any app, as store_routes_load()
 * gives an app's current one (its artifact, mode and configuration, with
 * the settings and secrets of its app), whether or not it is the
 * app's current deployment: for serving it at its preview address.
 * VIV_ERR_NOT_FOUND when there is no such deployment or it is not ready.
 * Caller frees with store_routes_free(*out, 1). */
VIV_MUST_CHECK enum viv_err store_route_of_deployment(struct store *st, int64_t deployment_id,
                                                      struct store_route **out);

#endif
