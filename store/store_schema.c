/* The database schema as an ordered list of migrations, and the code that
 * brings a database up to the newest one. */
#include "store_int.h"

#include <stdio.h>

/*
 * Migration N (counting from 1) is migrations[N - 1]; PRAGMA user_version
 * holds the number of migrations applied (PostgreSQL: pg_migrations below). A migration is never
 * edited once released: a change of schema is a new entry at the end. Each runs inside the one
 * transaction that also sets user_version, so a database is always at exactly one version.
 *
 * Constraints state the rules the code relies on, so that a bug shows up as
 * an error instead of as bad data. Every foreign key has an index on its
 * child column: SQLite does not make one, and without it deleting a parent
 * row scans the whole child table.
 */
static const char *const migrations[] = {
        /* 1: apps, deployments, artifacts, tokens and app logs. */
        "CREATE TABLE apps ("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE"
        "    CHECK (length(name) BETWEEN 1 AND 63 AND name NOT GLOB '*[^a-z0-9-]*'"
        "           AND name NOT GLOB '-*' AND name NOT GLOB '*-'),"
        "  created_at INTEGER NOT NULL,"
        "  current_deployment INTEGER REFERENCES deployments(id) ON DELETE SET NULL"
        ");"
        "CREATE INDEX apps_by_current ON apps(current_deployment);"
        ""
        "CREATE TABLE artifacts ("
        "  hash TEXT NOT NULL PRIMARY KEY"
        "    CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),"
        "  mode TEXT NOT NULL CHECK (mode IN ('cgi', 'hostcall')),"
        "  so_size INTEGER NOT NULL CHECK (so_size >= 0),"
        "  wasm_size INTEGER NOT NULL CHECK (wasm_size >= 0),"
        "  created_at INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        ""
        /* AUTOINCREMENT: a deployment id is never reused, because it names the
         * upload file and the build directory. */
        "CREATE TABLE deployments ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  status TEXT NOT NULL DEFAULT 'queued'"
        "    CHECK (status IN ('queued', 'building', 'ready', 'failed')),"
        "  created_at INTEGER NOT NULL,"
        "  started_at INTEGER,"
        "  finished_at INTEGER,"
        "  upload_sha256 TEXT NOT NULL"
        "    CHECK (length(upload_sha256) = 64 AND upload_sha256 NOT GLOB '*[^0-9a-f]*'),"
        "  upload_size INTEGER NOT NULL CHECK (upload_size >= 0),"
        "  language TEXT,"
        "  mode TEXT CHECK (mode IN ('cgi', 'hostcall')),"
        "  artifact TEXT REFERENCES artifacts(hash),"
        "  log TEXT NOT NULL DEFAULT '',"
        "  timings TEXT NOT NULL DEFAULT '{}'"
        "    CHECK (CASE WHEN json_valid(timings) THEN json_type(timings) = 'object' ELSE 0 END),"
        "  config TEXT NOT NULL DEFAULT '{}'"
        "    CHECK (CASE WHEN json_valid(config) THEN json_type(config) = 'object' ELSE 0 END),"
        "  error TEXT,"
        "  CHECK (status <> 'ready' OR (mode IS NOT NULL AND artifact IS NOT NULL)),"
        "  CHECK (status <> 'failed' OR error IS NOT NULL)"
        ");"
        "CREATE INDEX deployments_by_app ON deployments(app_id, id);"
        "CREATE INDEX deployments_by_status ON deployments(status, id);"
        "CREATE INDEX deployments_by_artifact ON deployments(artifact);"
        ""
        /* An app serves only a ready deployment of its own. */
        "CREATE TRIGGER apps_current_is_ready"
        "  BEFORE UPDATE OF current_deployment ON apps"
        "  WHEN NEW.current_deployment IS NOT NULL AND NOT EXISTS ("
        "    SELECT 1 FROM deployments"
        "    WHERE id = NEW.current_deployment AND app_id = NEW.id AND status = 'ready')"
        "BEGIN"
        "  SELECT RAISE(ABORT, 'an app can only serve one of its own ready deployments');"
        "END;"
        ""
        /* Only the sha256 of a token is kept. */
        "CREATE TABLE tokens ("
        "  id INTEGER PRIMARY KEY,"
        "  hash TEXT NOT NULL UNIQUE"
        "    CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),"
        "  label TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL"
        ");"
        ""
        /* AUTOINCREMENT: readers page through logs by id, so ids only grow. */
        "CREATE TABLE app_logs ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  deployment_id INTEGER REFERENCES deployments(id) ON DELETE SET NULL,"
        "  ts INTEGER NOT NULL,"
        "  stream TEXT NOT NULL"
        "    CHECK (stream IN ('stdout', 'stderr', 'debug', 'trap', 'panic', 'system')),"
        "  message TEXT NOT NULL"
        ");"
        "CREATE INDEX app_logs_by_app ON app_logs(app_id, id);"
        "CREATE INDEX app_logs_by_deployment ON app_logs(deployment_id);",

        /* 2: apps' KV data, and configuration values set through the API. */
        "CREATE TABLE kv ("
        "  app_id INTEGER NOT NULL REFERENCES apps(id),"
        "  key BLOB NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),"
        "  value BLOB NOT NULL CHECK (length(value) <= 1048576),"
        "  PRIMARY KEY (app_id, key)"
        ") WITHOUT ROWID;"
        "CREATE TABLE app_config ("
        "  app_id INTEGER NOT NULL REFERENCES apps(id),"
        "  key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 128),"
        "  value TEXT NOT NULL CHECK (length(CAST(value AS BLOB)) <= 65536),"
        "  PRIMARY KEY (app_id, key)"
        ") WITHOUT ROWID;",

        /* 3: the build key of a ready deployment (a sha256 over its upload and
         * everything on the server that decides the build's outcome), so that
         * an identical upload reuses the build instead of running it again. */
        "ALTER TABLE deployments ADD COLUMN build_key TEXT"
        "  CHECK (build_key IS NULL OR"
        "         (length(build_key) = 64 AND build_key NOT GLOB '*[^0-9a-f]*'));"
        "CREATE INDEX deployments_by_build_key ON deployments(build_key, id);",

        /* 4: scoped tokens, who made each deployment, secrets, the access log
         * stream, and build counters kept by a trigger. */
        /* A token's label is its name. The admin token of DATADIR/admin-token
         * is builtin: it cannot be revoked through the API, and a new file
         * replaces it. An apps token's app names are in token_apps; they need
         * not exist yet. last_used_at is kept to about a minute. */
        "ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'"
        "  CHECK (scope IN ('admin', 'apps'));"
        "ALTER TABLE tokens ADD COLUMN builtin INTEGER NOT NULL DEFAULT 0"
        "  CHECK (builtin IN (0, 1));"
        "ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;"
        "UPDATE tokens SET builtin = 1 WHERE label = 'admin';"
        "CREATE TABLE token_apps ("
        "  token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,"
        "  app TEXT NOT NULL"
        "    CHECK (length(app) BETWEEN 1 AND 63 AND app NOT GLOB '*[^a-z0-9-]*'"
        "           AND app NOT GLOB '-*' AND app NOT GLOB '*-'),"
        "  PRIMARY KEY (token_id, app)"
        ") WITHOUT ROWID;"
        ""
        /* The name of the token that uploaded a deployment; NULL before. */
        "ALTER TABLE deployments ADD COLUMN deployed_by TEXT;"
        ""
        /* Secrets: like app_config, but their values never leave the store
         * except towards runners. */
        "CREATE TABLE secrets ("
        "  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
        "  value TEXT NOT NULL CHECK (length(CAST(value AS BLOB)) <= 65536),"
        "  updated_at INTEGER NOT NULL,"
        "  PRIMARY KEY (app_id, name)"
        ") WITHOUT ROWID;"
        ""
        /* app_logs again with 'access' among the streams: SQLite cannot change
         * a CHECK in place. Ids only grow, so the AUTOINCREMENT counter moves
         * over with the rows. No other table refers to app_logs. */
        "CREATE TABLE app_logs_new ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  deployment_id INTEGER REFERENCES deployments(id) ON DELETE SET NULL,"
        "  ts INTEGER NOT NULL,"
        "  stream TEXT NOT NULL"
        "    CHECK (stream IN ('stdout', 'stderr', 'debug', 'trap', 'panic', 'system',"
        "                      'access')),"
        "  message TEXT NOT NULL"
        ");"
        "INSERT INTO app_logs_new (id, app_id, deployment_id, ts, stream, message)"
        "  SELECT id, app_id, deployment_id, ts, stream, message FROM app_logs;"
        "DELETE FROM sqlite_sequence WHERE name = 'app_logs_new';"
        "INSERT INTO sqlite_sequence (name, seq)"
        "  SELECT 'app_logs_new', seq FROM sqlite_sequence WHERE name = 'app_logs';"
        "DROP TABLE app_logs;"
        "ALTER TABLE app_logs_new RENAME TO app_logs;"
        "CREATE INDEX app_logs_by_app ON app_logs(app_id, id);"
        "CREATE INDEX app_logs_by_deployment ON app_logs(deployment_id);"
        ""
        /* Builds that ended, by outcome, and a histogram of how long they took
         * (seconds from claim to outcome; cumulative buckets), for /metrics.
         * A trigger keeps them, so they count every build whoever ran it and
         * outlive the deployments they count. */
        "CREATE TABLE build_counts ("
        "  result TEXT NOT NULL PRIMARY KEY CHECK (result IN ('ready', 'failed')),"
        "  count INTEGER NOT NULL DEFAULT 0,"
        "  seconds REAL NOT NULL DEFAULT 0"
        ") WITHOUT ROWID;"
        "INSERT INTO build_counts (result) VALUES ('ready'), ('failed');"
        "CREATE TABLE build_seconds_buckets ("
        "  le REAL NOT NULL PRIMARY KEY,"
        "  count INTEGER NOT NULL DEFAULT 0"
        ") WITHOUT ROWID;"
        "INSERT INTO build_seconds_buckets (le) VALUES (0.1), (0.25), (0.5), (1), (2.5), (5),"
        "  (10), (30), (60), (120), (300), (600);"
        "CREATE TRIGGER deployments_count_outcome"
        "  AFTER UPDATE OF status ON deployments"
        "  WHEN NEW.status IN ('ready', 'failed') AND OLD.status IS NOT NEW.status "
        "BEGIN"
        "  UPDATE build_counts SET count = count + 1,"
        "    seconds = seconds + max(0, coalesce(NEW.finished_at, NEW.created_at) -"
        "      coalesce(NEW.started_at, NEW.created_at)) / 1000.0"
        "    WHERE result = NEW.status;"
        "  UPDATE build_seconds_buckets SET count = count + 1"
        "    WHERE le >= max(0, coalesce(NEW.finished_at, NEW.created_at) -"
        "      coalesce(NEW.started_at, NEW.created_at)) / 1000.0;"
        "END;",

        /* 5: the builder's lease on a deployment it builds: who claimed it
         * (store_owner()) and until when (ms since the epoch) it is
         * theirs without a heartbeat. A build in flight when this ran has
         * no builder any more. */
        "ALTER TABLE deployments ADD COLUMN claimed_by TEXT;"
        "ALTER TABLE deployments ADD COLUMN lease_until INTEGER;"
        "UPDATE deployments SET lease_until = 0 WHERE status = 'building';",

        /* 6: what a runner host that fetches an artifact checks it against:
         * the sha256 of its .so, and the platform (architecture and C
         * library) it was built for. NULL for artifacts built before. */
        "ALTER TABLE artifacts ADD COLUMN so_sha256 TEXT"
        "  CHECK (so_sha256 IS NULL OR (length(so_sha256) = 64"
        "    AND so_sha256 NOT GLOB '*[^0-9a-f]*'));"
        "ALTER TABLE artifacts ADD COLUMN platform TEXT;",
};

/*
 * The same schema on PostgreSQL, version for version: a database made on
 * PostgreSQL starts at STORE_PG_FIRST, with everything the SQLite
 * migrations up to it made, and later versions are an entry in both lists.
 * The version is the one row of vivarium_schema. BIGINT where SQLite's
 * INTEGER holds milliseconds and ids; identity columns never hand an id out
 * twice, as AUTOINCREMENT does not; text that is sorted or compared sorts
 * by its bytes (COLLATE "C"), as in SQLite; KV keys and values are bytea.
 */
#define STORE_PG_FIRST 4

static const char *const pg_migrations[] = {
        /* 4: everything SQLite's migrations 1 to 4 made, and the routes
         * generation, which SQLite keeps in the data directory's page. */
        "CREATE TABLE vivarium_schema (version INTEGER NOT NULL);"
        "INSERT INTO vivarium_schema VALUES (0);"
        ""
        "CREATE TABLE apps ("
        "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        "  name TEXT COLLATE \"C\" NOT NULL UNIQUE"
        "    CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),"
        "  created_at BIGINT NOT NULL,"
        "  current_deployment BIGINT"
        ");"
        "CREATE INDEX apps_by_current ON apps(current_deployment);"
        ""
        "CREATE TABLE artifacts ("
        "  hash TEXT COLLATE \"C\" NOT NULL PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),"
        "  mode TEXT NOT NULL CHECK (mode IN ('cgi', 'hostcall')),"
        "  so_size BIGINT NOT NULL CHECK (so_size >= 0),"
        "  wasm_size BIGINT NOT NULL CHECK (wasm_size >= 0),"
        "  created_at BIGINT NOT NULL"
        ");"
        ""
        "CREATE TABLE deployments ("
        "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        "  app_id BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  status TEXT NOT NULL DEFAULT 'queued'"
        "    CHECK (status IN ('queued', 'building', 'ready', 'failed')),"
        "  created_at BIGINT NOT NULL,"
        "  started_at BIGINT,"
        "  finished_at BIGINT,"
        "  upload_sha256 TEXT NOT NULL CHECK (upload_sha256 ~ '^[0-9a-f]{64}$'),"
        "  upload_size BIGINT NOT NULL CHECK (upload_size >= 0),"
        "  language TEXT,"
        "  mode TEXT CHECK (mode IN ('cgi', 'hostcall')),"
        "  artifact TEXT COLLATE \"C\" REFERENCES artifacts(hash),"
        "  log TEXT NOT NULL DEFAULT '',"
        "  timings TEXT NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(timings::jsonb) = 'object'),"
        "  config TEXT NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config::jsonb) = 'object'),"
        "  error TEXT,"
        "  build_key TEXT CHECK (build_key IS NULL OR build_key ~ '^[0-9a-f]{64}$'),"
        "  deployed_by TEXT,"
        "  CHECK (status <> 'ready' OR (mode IS NOT NULL AND artifact IS NOT NULL)),"
        "  CHECK (status <> 'failed' OR error IS NOT NULL)"
        ");"
        "CREATE INDEX deployments_by_app ON deployments(app_id, id);"
        "CREATE INDEX deployments_by_status ON deployments(status, id);"
        "CREATE INDEX deployments_by_artifact ON deployments(artifact);"
        "CREATE INDEX deployments_by_build_key ON deployments(build_key, id);"
        "ALTER TABLE apps ADD FOREIGN KEY (current_deployment)"
        "  REFERENCES deployments(id) ON DELETE SET NULL;"
        ""
        /* An app serves only a ready deployment of its own. */
        "CREATE FUNCTION apps_current_is_ready() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  IF NEW.current_deployment IS NOT NULL AND NOT EXISTS ("
        "    SELECT 1 FROM deployments"
        "    WHERE id = NEW.current_deployment AND app_id = NEW.id AND status = 'ready') THEN"
        "   RAISE EXCEPTION 'an app can only serve one of its own ready deployments';"
        "  END IF;"
        "  RETURN NEW;"
        " END $$;"
        "CREATE TRIGGER apps_current_is_ready"
        "  BEFORE UPDATE OF current_deployment ON apps"
        "  FOR EACH ROW EXECUTE FUNCTION apps_current_is_ready();"
        ""
        "CREATE TABLE tokens ("
        "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        "  hash TEXT COLLATE \"C\" NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),"
        "  label TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL,"
        "  scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('admin', 'apps')),"
        "  builtin INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),"
        "  last_used_at BIGINT"
        ");"
        "CREATE TABLE token_apps ("
        "  token_id BIGINT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,"
        "  app TEXT COLLATE \"C\" NOT NULL"
        "    CHECK (app ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),"
        "  PRIMARY KEY (token_id, app)"
        ");"
        ""
        "CREATE TABLE app_logs ("
        "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        "  app_id BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  deployment_id BIGINT REFERENCES deployments(id) ON DELETE SET NULL,"
        "  ts BIGINT NOT NULL,"
        "  stream TEXT NOT NULL"
        "    CHECK (stream IN ('stdout', 'stderr', 'debug', 'trap', 'panic', 'system',"
        "                      'access')),"
        "  message TEXT NOT NULL"
        ");"
        "CREATE INDEX app_logs_by_app ON app_logs(app_id, id);"
        "CREATE INDEX app_logs_by_deployment ON app_logs(deployment_id);"
        ""
        "CREATE TABLE kv ("
        "  app_id BIGINT NOT NULL REFERENCES apps(id),"
        "  key BYTEA NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),"
        "  value BYTEA NOT NULL CHECK (length(value) <= 1048576),"
        "  PRIMARY KEY (app_id, key)"
        ");"
        "CREATE TABLE app_config ("
        "  app_id BIGINT NOT NULL REFERENCES apps(id),"
        "  key TEXT COLLATE \"C\" NOT NULL CHECK (length(key) BETWEEN 1 AND 128),"
        "  value TEXT NOT NULL CHECK (octet_length(value) <= 65536),"
        "  PRIMARY KEY (app_id, key)"
        ");"
        "CREATE TABLE secrets ("
        "  app_id BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
        "  name TEXT COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
        "  value TEXT NOT NULL CHECK (octet_length(value) <= 65536),"
        "  updated_at BIGINT NOT NULL,"
        "  PRIMARY KEY (app_id, name)"
        ");"
        ""
        "CREATE TABLE build_counts ("
        "  result TEXT NOT NULL PRIMARY KEY CHECK (result IN ('ready', 'failed')),"
        "  count BIGINT NOT NULL DEFAULT 0,"
        "  seconds DOUBLE PRECISION NOT NULL DEFAULT 0"
        ");"
        "INSERT INTO build_counts (result) VALUES ('ready'), ('failed');"
        "CREATE TABLE build_seconds_buckets ("
        "  le DOUBLE PRECISION NOT NULL PRIMARY KEY,"
        "  count BIGINT NOT NULL DEFAULT 0"
        ");"
        "INSERT INTO build_seconds_buckets (le) VALUES (0.1), (0.25), (0.5), (1), (2.5), (5),"
        "  (10), (30), (60), (120), (300), (600);"
        "CREATE FUNCTION deployments_count_outcome() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE s DOUBLE PRECISION := greatest(0, coalesce(NEW.finished_at, NEW.created_at) -"
        "   coalesce(NEW.started_at, NEW.created_at)) / 1000.0;"
        " BEGIN"
        "  UPDATE build_counts SET count = count + 1, seconds = seconds + s"
        "    WHERE result = NEW.status;"
        "  UPDATE build_seconds_buckets SET count = count + 1 WHERE le >= s;"
        "  RETURN NULL;"
        " END $$;"
        "CREATE TRIGGER deployments_count_outcome"
        "  AFTER UPDATE OF status ON deployments FOR EACH ROW"
        "  WHEN (NEW.status IN ('ready', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)"
        "  EXECUTE FUNCTION deployments_count_outcome();"
        ""
        /* What runners serve changed this many times (store_routes_changed()). */
        "CREATE TABLE routes_generation ("
        "  one INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (one = 1),"
        "  gen BIGINT NOT NULL DEFAULT 0"
        ");"
        "INSERT INTO routes_generation DEFAULT VALUES;",

        /* 5: as SQLite's 5, the builder's lease; and a name of this database
         * that a data folder's routes page records, so that a page that
         * counted for another database (SQLite's, before) starts again from
         * this one's generation. */
        "ALTER TABLE vivarium_schema ADD COLUMN id TEXT NOT NULL"
        "  DEFAULT md5(random()::text || clock_timestamp()::text);"
        "ALTER TABLE deployments ADD COLUMN claimed_by TEXT;"
        "ALTER TABLE deployments ADD COLUMN lease_until BIGINT;"
        "UPDATE deployments SET lease_until = 0 WHERE status = 'building';",

        /* 6: as SQLite's 6. */
        "ALTER TABLE artifacts ADD COLUMN so_sha256 TEXT"
        "  CHECK (so_sha256 ~ '^[0-9a-f]{64}$');"
        "ALTER TABLE artifacts ADD COLUMN platform TEXT;",
};

#define STORE_PG_LATEST                                                                            \
	(STORE_PG_FIRST - 1 + (int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

#define STORE_SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(STORE_PG_LATEST == STORE_SCHEMA_LATEST,
               "each schema version is a migration on SQLite and on PostgreSQL");

static const char sql_pg_has_version[] =
        "SELECT count(*) FROM pg_catalog.pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'vivarium_schema'";
static const char sql_pg_version[] = "SELECT version FROM vivarium_schema";

/* Runs sql, which gives one integer, into *out (0 without a row). */
static enum viv_err read_int(struct store *st, const char *sql, int *out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	*out = 0;
	err = store_prepare(st, sql, &stmt);
	if (err)
		return err;
	err = store_step(st, stmt, &row);
	if (!err && row)
		*out = (int)store_col_int64(stmt, 0);
	store_release(st, stmt);
	return err;
}

/* SQLite keeps the version in the file's header (PRAGMA user_version);
 * PostgreSQL in a table, which a new database does not have yet. */
static enum viv_err read_version(struct store *st, int *out)
{
	enum viv_err err;
	int has = 0;

	*out = 0;
	if (st->kind != STORE_POSTGRES)
		return read_int(st, "PRAGMA user_version", out);
	err = read_int(st, sql_pg_has_version, &has);
	if (err || !has)
		return err;
	return read_int(st, sql_pg_version, out);
}

static enum viv_err check_not_newer(int version, char *errbuf, size_t errlen)
{
	if (version <= STORE_SCHEMA_LATEST)
		return VIV_OK;
	viv_errf(errbuf, errlen,
	         "the data directory was written by a newer vivd (schema %d); upgrade vivd",
	         version);
	return VIV_ERR_UNSUPPORTED;
}

/* Runs one migration script; the database's message goes to errbuf and the
 * log. */
static enum viv_err apply(struct store *st, int to, const char *sql, char *errbuf, size_t errlen)
{
	char msg[512];
	enum viv_err err;

	err = st->be->exec_script(st, sql, msg, sizeof(msg));
	if (err)
		viv_errf(errbuf, errlen, "cannot upgrade the database %s to schema %d: %s",
		         st->db_path, to, msg);
	return err;
}

enum viv_err store_migrate(struct store *st, char *errbuf, size_t errlen)
{
	char sql[64];
	enum viv_err err;
	int version, v;

	err = read_version(st, &version);
	if (err) {
		viv_errf(errbuf, errlen, "cannot read the schema version of %s", st->db_path);
		return err;
	}
	err = check_not_newer(version, errbuf, errlen);
	if (err || version == STORE_SCHEMA_LATEST)
		return err;

	/* Several processes may start on a new data directory at once: the
	 * write lock makes one of them migrate, and the others then find the
	 * version already current. */
	err = store_begin(st);
	if (!err)
		err = store_lock(st, STORE_LOCK_SCHEMA, 0);
	if (err) {
		viv_errf(errbuf, errlen, "cannot lock %s to upgrade its schema", st->db_path);
		store_rollback(st);
		return err;
	}
	err = read_version(st, &version);
	if (err) {
		viv_errf(errbuf, errlen, "cannot read the schema version of %s", st->db_path);
		goto out;
	}
	err = check_not_newer(version, errbuf, errlen);
	if (err || version == STORE_SCHEMA_LATEST)
		goto out;
	for (v = version; v < STORE_SCHEMA_LATEST; v++) {
		if (st->kind == STORE_POSTGRES && v + 1 < STORE_PG_FIRST)
			continue;
		err = apply(st, v + 1,
		            st->kind == STORE_POSTGRES ? pg_migrations[v + 1 - STORE_PG_FIRST]
		                                       : migrations[v],
		            errbuf, errlen);
		if (err)
			goto out;
	}
	snprintf(sql, sizeof(sql),
	         st->kind == STORE_POSTGRES ? "UPDATE vivarium_schema SET version = %d"
	                                    : "PRAGMA user_version = %d",
	         STORE_SCHEMA_LATEST);
	err = apply(st, STORE_SCHEMA_LATEST, sql, errbuf, errlen);
	if (err)
		goto out;
	err = store_commit(st);
	if (err) {
		viv_errf(errbuf, errlen, "cannot commit the schema upgrade of %s", st->db_path);
		goto out;
	}
	viv_log(VIV_INFO, "store: %s upgraded from schema %d to %d", st->db_path, version,
	        STORE_SCHEMA_LATEST);
out:
	store_rollback(st);
	return err;
}

int store_schema_version(struct store *st)
{
	int version;

	if (read_version(st, &version))
		return -1;
	return version;
}
