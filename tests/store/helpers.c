/* Fixtures and shortcuts shared by the store tests. */
#include "helpers.h"
#include "pgtest.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char test_datadir[64];
const char *test_db_url;

/* What setup made; a test may point test_datadir below it. */
static char test_root[64];
static char db_url[512];

/* The store tests run twice: as they are, on SQLite, and with
 * VIV_TEST_STORE=postgres on a scratch PostgreSQL server that this binary
 * starts before its first test and stops after its last. A server that
 * cannot start fails every test with the reason. */
ReportHook(PRE_ALL)(struct criterion_test_set *tests)
{
	char why[1024];

	(void)tests;
	if (tpg_wanted() && !tpg_start(why, sizeof(why)))
		fprintf(stderr, "store tests: PostgreSQL: %s\n", why);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	tpg_stop();
}

bool test_is_pg(void)
{
	return test_db_url != NULL;
}

void store_test_setup(void)
{
	/* The database first: a server that is not there fails the test before
	 * it made anything to leave behind. */
	test_db_url = NULL;
	if (tpg_wanted()) {
		snprintf(db_url, sizeof(db_url), "%s", tpg_database_new());
		test_db_url = db_url;
	}
	strcpy(test_root, "/tmp/viv-store-test-XXXXXX");
	cr_assert_not_null(mkdtemp(test_root));
	strcpy(test_datadir, test_root);
}

void store_test_teardown(void)
{
	if (test_root[0])
		viv_rmtree_or_log(test_root);
	test_root[0] = '\0';
	if (test_db_url)
		tpg_database_drop(test_db_url);
	test_db_url = NULL;
}

enum viv_err test_store_open_at(const char *datadir, struct store **out, char *errbuf,
                                size_t errlen)
{
	return store_open_db(datadir, test_db_url, out, errbuf, errlen);
}

struct store *test_open(void)
{
	struct store *st = NULL;
	char errbuf[256] = "";
	enum viv_err err;

	err = test_store_open_at(test_datadir, &st, errbuf, sizeof(errbuf));
	cr_assert_eq(err, VIV_OK, "store_open: %s: %s", viv_strerror(err), errbuf);
	cr_assert_not_null(st);
	return st;
}

void test_write(const char *path, const char *contents)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_eq(fwrite(contents, 1, strlen(contents), f), strlen(contents));
	cr_assert_eq(fclose(f), 0);
}

char *test_read(const char *path)
{
	char *data = NULL;
	size_t len = 0;

	if (viv_read_file(path, 64 << 20, &data, &len) != VIV_OK)
		return NULL;
	return data;
}

int64_t test_queue(struct store *st, const char *app, const char *contents)
{
	char hash[65];
	char *tmp = NULL;
	int64_t id = 0;
	enum viv_err err;

	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	test_write(tmp, contents);
	viv_sha256_hex(contents, strlen(contents), hash);
	err = store_deployment_create(st, app, tmp, hash, (int64_t)strlen(contents), &id);
	cr_assert_eq(err, VIV_OK, "store_deployment_create: %s", viv_strerror(err));
	cr_assert_gt(id, 0);
	free(tmp);
	return id;
}

void test_hash(const char *text, char hash[65])
{
	viv_sha256_hex(text, strlen(text), hash);
}

void test_put_so(struct store *st, const char *hash)
{
	char src[128];

	snprintf(src, sizeof(src), "%s/so-%.8s", test_datadir, hash);
	test_write(src, "\177ELF pretend shared object");
	cr_assert_eq(store_artifact_put(st, hash, "so", src), VIV_OK);
	unlink(src);
}

const struct store_deploy_config test_cgi = {
        .mode = STORE_MODE_CGI,
        .limits = {VIV_LIMIT_MEMORY_MB_DEFAULT, VIV_LIMIT_CPU_MS_DEFAULT,
                   VIV_LIMIT_WALL_MS_DEFAULT},
};
const struct store_deploy_config test_hostcall = {
        .mode = STORE_MODE_HOSTCALL,
        .limits = {VIV_LIMIT_MEMORY_MB_DEFAULT, VIV_LIMIT_CPU_MS_DEFAULT,
                   VIV_LIMIT_WALL_MS_DEFAULT},
};

int64_t test_deploy(struct store *st, const char *app, const char *hash)
{
	struct store_build b = {
	        .artifact = hash,
	        .config = &test_hostcall,
	        .artifact_size = 100,
	        .wasm_size = 50,
	};
	int64_t id, claimed = 0;
	enum viv_err err;

	id = test_queue(st, app, app);
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	if (!store_artifact_exists(st, hash))
		test_put_so(st, hash);
	err = store_deployment_ready(st, id, &b);
	cr_assert_eq(err, VIV_OK, "store_deployment_ready: %s", viv_strerror(err));
	return id;
}

int64_t test_sql_int(const char *sql)
{
	char path[128];
	if (test_db_url)
		return tpg_sql_int(test_db_url, sql);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t v = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/vivarium.db", test_datadir);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	rc = sqlite3_step(stmt);
	cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

void test_sql_exec(const char *sql)
{
	char path[128];
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	if (test_db_url) {
		tpg_sql_exec(test_db_url, sql);
		return;
	}
	snprintf(path, sizeof(path), "%s/vivarium.db", test_datadir);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "");
	sqlite3_free(msg);
	sqlite3_close(db);
}

void test_downgrade_to_3(void)
{
	test_sql_exec("BEGIN;"
	              "ALTER TABLE artifacts DROP COLUMN so_sha256;"
	              "ALTER TABLE artifacts DROP COLUMN platform;"
	              "ALTER TABLE deployments DROP COLUMN claimed_by;"
	              "ALTER TABLE deployments DROP COLUMN lease_until;"
	              "DROP TRIGGER deployments_count_outcome;"
	              "DROP TABLE build_counts;"
	              "DROP TABLE build_seconds_buckets;"
	              "DROP TABLE secrets;"
	              "DROP TABLE token_apps;"
	              "ALTER TABLE tokens DROP COLUMN scope;"
	              "ALTER TABLE tokens DROP COLUMN builtin;"
	              "ALTER TABLE tokens DROP COLUMN last_used_at;"
	              "ALTER TABLE deployments DROP COLUMN deployed_by;"
	              "CREATE TABLE app_logs_old ("
	              "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	              "  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
	              "  deployment_id INTEGER REFERENCES deployments(id) ON DELETE SET NULL,"
	              "  ts INTEGER NOT NULL,"
	              "  stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'debug',"
	              "    'trap', 'panic', 'system')),"
	              "  message TEXT NOT NULL);"
	              "INSERT INTO app_logs_old SELECT * FROM app_logs;"
	              "DELETE FROM sqlite_sequence WHERE name = 'app_logs_old';"
	              "INSERT INTO sqlite_sequence (name, seq)"
	              "  SELECT 'app_logs_old', seq FROM sqlite_sequence WHERE name = 'app_logs';"
	              "DROP TABLE app_logs;"
	              "ALTER TABLE app_logs_old RENAME TO app_logs;"
	              "CREATE INDEX app_logs_by_app ON app_logs(app_id, id);"
	              "CREATE INDEX app_logs_by_deployment ON app_logs(deployment_id);"
	              "PRAGMA user_version = 3;"
	              "COMMIT;");
}
