/* Tests of opening a store (directories, schema, migrations), tokens and
 * apps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(open, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(tokens, .init = store_test_setup, .fini = store_test_teardown);
TestSuite(apps, .init = store_test_setup, .fini = store_test_teardown);

#define TABLE_NAMES                                                                                \
	" IN ('apps', 'deployments', 'artifacts', 'tokens', 'app_logs', 'kv', 'app_config',"       \
	" 'secrets', 'token_apps', 'build_counts', 'build_seconds_buckets')"
#define TABLES_SQLITE "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name" TABLE_NAMES
#define TABLES_PG                                                                                  \
	"SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "                  \
	"tablename" TABLE_NAMES

/* Where each database keeps the schema version. */
#define VERSION_GET(pg) ((pg) ? "SELECT version FROM vivarium_schema" : "PRAGMA user_version")

static void assert_private_dir(const char *name)
{
	char path[256];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", test_datadir, name);
	cr_assert_eq(stat(path, &sb), 0, "%s is missing", path);
	cr_assert(S_ISDIR(sb.st_mode), "%s is not a directory", path);
	cr_assert_eq(sb.st_mode & 0777, 0700, "%s has mode %o", path, sb.st_mode & 0777);
}

Test(open, creates_directories_and_schema)
{
	char path[256];
	struct store *st;
	struct stat sb;

	/* A data directory that does not exist yet, two levels down. */
	strcat(test_datadir, "/data/dir");
	st = test_open();
	cr_assert_str_eq(store_datadir(st), test_datadir);
	assert_private_dir("artifacts");
	assert_private_dir("uploads");
	assert_private_dir("builds");
	assert_private_dir("cache");
	snprintf(path, sizeof(path), "%s/cache", test_datadir);
	cr_assert_str_eq(store_cache_dir(st), path);
	cr_assert_eq(store_schema_version(st), 6);
	cr_assert_eq(test_sql_int(test_is_pg() ? TABLES_PG : TABLES_SQLITE), 11);
	if (test_is_pg()) {
		/* No database file beside the data: the records are the server's. */
		snprintf(path, sizeof(path), "%s/vivarium.db", test_datadir);
		cr_assert_neq(stat(path, &sb), 0);
		cr_assert_eq(test_sql_int("SELECT gen FROM routes_generation"), 0);
	} else {
		cr_assert_eq(test_sql_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode"),
		             1);
	}
	snprintf(path, sizeof(path), "%s/routes.gen", test_datadir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_size, 4096);
	cr_assert_eq(store_routes_generation(st), 0);
	store_close(st);
}

Test(open, relative_datadir_becomes_absolute)
{
	struct store *st = NULL;
	char errbuf[256];

	cr_assert_eq(chdir(test_datadir), 0);
	cr_assert_eq(test_store_open_at("rel", &st, errbuf, sizeof(errbuf)), VIV_OK, "%s", errbuf);
	cr_assert_eq(store_datadir(st)[0], '/');
	cr_assert_not_null(strstr(store_datadir(st), "/rel"));
	store_close(st);
}

Test(open, reopen_keeps_data_and_schema)
{
	struct store *st;
	struct store_app *app = NULL;
	int64_t id = 0;

	st = test_open();
	cr_assert_eq(store_app_ensure(st, "hello", &id), VIV_OK);
	store_close(st);
	st = test_open();
	cr_assert_eq(store_schema_version(st), 6);
	cr_assert_eq(store_app_get(st, "hello", &app), VIV_OK);
	cr_assert_eq(app->id, id);
	store_app_free(app);
	store_close(st);
	cr_assert_eq(test_sql_int(VERSION_GET(test_is_pg())), 6);
}

Test(open, upgrade_from_schema_2_keeps_deployments)
{
	struct store_deployment *d = NULL;
	struct store *st = NULL;
	char hash[65];
	int64_t id;

	if (test_is_pg())
		test_skip("a PostgreSQL database starts at schema 4; SQLite's migrations 3 and 4 "
		          "are SQLite's own");
	st = test_open();
	test_hash("artifact", hash);
	id = test_deploy(st, "hello", hash);
	store_close(st);
	/* Back to what schema 2 had: no build keys. */
	test_downgrade_to_3();
	test_sql_int("DROP INDEX deployments_by_build_key");
	test_sql_int("ALTER TABLE deployments DROP COLUMN build_key");
	test_sql_int("PRAGMA user_version = 2");

	st = test_open();
	cr_assert_eq(store_schema_version(st), 6);
	cr_assert_eq(store_deployment_get(st, id, &d), VIV_OK);
	cr_assert_eq(d->status, STORE_DEP_READY);
	cr_assert_str_eq(d->artifact, hash);
	cr_assert(d->current);
	store_deployment_free(d);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE build_key IS NULL"), 1);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
	                          " name = 'deployments_by_build_key'"),
	             1);
	store_close(st);
}

Test(open, upgrade_from_schema_3_keeps_tokens_logs_and_their_ids)
{
	struct store_log line = {.stream = "stdout", .message = "before"};
	struct store_log access = {.stream = "access", .message = "GET / 200 1.00 ms"};
	struct store_token *t = NULL;
	struct store_log *lines = NULL;
	struct store *st = NULL;
	char *admin = NULL, hash[65];
	int64_t app_id = 0, last = 0;
	size_t n = 0;

	if (test_is_pg())
		test_skip("a PostgreSQL database starts at schema 4; SQLite's migration 4 is "
		          "SQLite's own");
	st = test_open();

	test_hash("artifact", hash);
	test_deploy(st, "hello", hash);
	cr_assert_eq(store_app_ensure(st, "hello", &app_id), VIV_OK);
	cr_assert_eq(store_admin_token_ensure(st, &admin, NULL), VIV_OK);
	line.app_id = app_id;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(store_logs_append(st, &line, 1), VIV_OK);
	store_close(st);
	test_downgrade_to_3();
	/* The newest line was trimmed away: its id must never come back. */
	last = test_sql_int("SELECT max(id) FROM app_logs");
	test_sql_int("DELETE FROM app_logs WHERE id = (SELECT max(id) FROM app_logs)");
	cr_assert_eq(test_sql_int("PRAGMA user_version"), 3);

	st = test_open();
	cr_assert_eq(store_schema_version(st), 6);
	cr_assert_eq(store_token_auth(st, admin, &t), VIV_OK);
	cr_assert(t->builtin);
	cr_assert_eq(t->scope, STORE_SCOPE_ADMIN);
	cr_assert_str_eq(t->name, "admin");
	store_token_free(t);
	access.app_id = app_id;
	cr_assert_eq(store_logs_append(st, &access, 1), VIV_OK);
	cr_assert_eq(store_logs_get(st, "hello", 0, 10, &lines, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(lines[2].stream, "access");
	cr_assert_gt(lines[2].id, last);
	store_logs_free(lines, n);
	free(admin);
	store_close(st);
}

Test(open, refuses_newer_schema)
{
	struct store *st = test_open();
	char errbuf[256] = "";

	store_close(st);
	test_sql_exec(test_is_pg() ? "UPDATE vivarium_schema SET version = 7"
	                           : "PRAGMA user_version = 7");
	st = NULL;
	cr_assert_eq(test_store_open_at(test_datadir, &st, errbuf, sizeof(errbuf)),
	             VIV_ERR_UNSUPPORTED);
	cr_assert_null(st);
	cr_assert_str_eq(errbuf,
	                 "the data directory was written by a newer vivd (schema 7); upgrade vivd");
	/* The refusal changed nothing. */
	cr_assert_eq(test_sql_int(VERSION_GET(test_is_pg())), 7);
}

Test(open, reports_unusable_datadir)
{
	struct store *st = NULL;
	char errbuf[256] = "";
	char path[256];

	snprintf(path, sizeof(path), "%s/file", test_datadir);
	test_write(path, "not a directory");
	cr_assert_neq(test_store_open_at(path, &st, errbuf, sizeof(errbuf)), VIV_OK);
	cr_assert_null(st);
	cr_assert_not_null(strstr(errbuf, path), "errbuf: %s", errbuf);
}

Test(open, close_accepts_null)
{
	store_close(NULL);
}

static bool token_well_formed(const char *t)
{
	size_t i;

	if (strncmp(t, "viv_", 4) != 0 || strlen(t) != 68)
		return false;
	for (i = 4; i < 68; i++) {
		if (!strchr("0123456789abcdef", t[i]))
			return false;
	}
	return true;
}

Test(tokens, admin_token_made_once_and_kept)
{
	struct store *st = test_open();
	char *token = NULL, *again = NULL, *file;
	char path[256], want[128];
	bool created = false;
	struct stat sb;

	cr_assert_eq(store_admin_token_ensure(st, &token, &created), VIV_OK);
	cr_assert(created);
	cr_assert(token_well_formed(token), "token %s", token);
	snprintf(path, sizeof(path), "%s/admin-token", test_datadir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);
	file = test_read(path);
	snprintf(want, sizeof(want), "%s\n", token);
	cr_assert_str_eq(file, want);
	free(file);

	cr_assert_eq(store_admin_token_ensure(st, &again, &created), VIV_OK);
	cr_assert_not(created);
	cr_assert_str_eq(again, token);
	free(again);
	store_close(st);

	st = test_open();
	created = true;
	cr_assert_eq(store_admin_token_ensure(st, &again, &created), VIV_OK);
	cr_assert_not(created);
	cr_assert_str_eq(again, token);
	cr_assert_eq(store_token_check(st, token), VIV_OK);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM tokens"), 1);
	free(again);
	free(token);
	store_close(st);
}

Test(tokens, check_rejects_others)
{
	struct store *st = test_open();
	char *token = NULL;
	char other[69];

	cr_assert_eq(store_admin_token_ensure(st, &token, NULL), VIV_OK);
	cr_assert_eq(store_token_check(st, token), VIV_OK);
	strcpy(other, token);
	other[67] = other[67] == '0' ? '1' : '0';
	cr_assert_eq(store_token_check(st, other), VIV_ERR_AUTH);
	cr_assert_eq(store_token_check(st, "viv_"), VIV_ERR_AUTH);
	cr_assert_eq(store_token_check(st, ""), VIV_ERR_AUTH);
	cr_assert_eq(store_token_check(st, NULL), VIV_ERR_AUTH);
	/* The digest itself is not a token. */
	cr_assert_eq(store_token_check(st, token + 4), VIV_ERR_AUTH);
	free(token);
	store_close(st);
}

Test(tokens, admin_token_file_read_back_and_digest_restored)
{
	struct store *st = test_open();
	char token[] = "viv_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char path[256], contents[128];
	char *got = NULL;
	bool created = true;

	/* An operator-written file with stray whitespace, whose digest is not in
	 * the database (as after a crash between the file and the commit). */
	snprintf(path, sizeof(path), "%s/admin-token", test_datadir);
	snprintf(contents, sizeof(contents), "  %s \n\n", token);
	test_write(path, contents);
	cr_assert_eq(store_token_check(st, token), VIV_ERR_AUTH);
	cr_assert_eq(store_admin_token_ensure(st, &got, &created), VIV_OK);
	cr_assert_not(created);
	cr_assert_str_eq(got, token);
	cr_assert_eq(store_token_check(st, token), VIV_OK);
	free(got);
	store_close(st);
}

Test(tokens, admin_token_file_with_garbage_is_refused)
{
	struct store *st = test_open();
	char path[256];
	char *got = NULL;

	snprintf(path, sizeof(path), "%s/admin-token", test_datadir);
	test_write(path, "hunter2\n");
	cr_assert_eq(store_admin_token_ensure(st, &got, NULL), VIV_ERR_INVALID);
	cr_assert_null(got);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM tokens"), 0);
	store_close(st);
}

Test(tokens, create_stores_only_digest)
{
	struct store *st = test_open();
	char *a = NULL, *b = NULL, *none = (char *)"unset";
	char digest[65], sql[256];

	cr_assert_eq(store_token_create(st, "laptop", STORE_SCOPE_ADMIN, NULL, 0, &a, NULL),
	             VIV_OK);
	cr_assert_eq(store_token_create(st, "ci", STORE_SCOPE_ADMIN, NULL, 0, &b, NULL), VIV_OK);
	cr_assert(token_well_formed(a));
	cr_assert_str_neq(a, b);
	cr_assert_eq(store_token_check(st, a), VIV_OK);
	cr_assert_eq(store_token_check(st, b), VIV_OK);
	viv_sha256_hex(a, strlen(a), digest);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM tokens WHERE hash = '%s' AND label = 'laptop'", digest);
	cr_assert_eq(test_sql_int(sql), 1);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM tokens WHERE hash LIKE '%%%s%%' OR label LIKE '%%%s%%'",
	         a + 4, a + 4);
	cr_assert_eq(test_sql_int(sql), 0);
	cr_assert_eq(store_token_create(st, NULL, STORE_SCOPE_ADMIN, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_null(none);
	free(a);
	free(b);
	store_close(st);
}

Test(apps, ensure_get_list)
{
	struct store *st = test_open();
	struct store_app *app = NULL, *apps = NULL;
	int64_t hello = 0, again = 0, world = 0;
	int64_t before = viv_now_ms();
	size_t n = 99;

	cr_assert_eq(store_app_list(st, &apps, &n), VIV_OK);
	cr_assert_eq(n, 0);
	store_app_list_free(apps, n);

	cr_assert_eq(store_app_ensure(st, "world", &world), VIV_OK);
	cr_assert_eq(store_app_ensure(st, "hello", &hello), VIV_OK);
	cr_assert_eq(store_app_ensure(st, "hello", &again), VIV_OK);
	cr_assert_gt(hello, 0);
	cr_assert_eq(again, hello);
	cr_assert_neq(world, hello);

	cr_assert_eq(store_app_get(st, "hello", &app), VIV_OK);
	cr_assert_eq(app->id, hello);
	cr_assert_str_eq(app->name, "hello");
	cr_assert_geq(app->created_at, before);
	cr_assert_leq(app->created_at, viv_now_ms());
	cr_assert_eq(app->current_deployment, 0);
	store_app_free(app);

	app = (void *)1;
	cr_assert_eq(store_app_get(st, "nope", &app), VIV_ERR_NOT_FOUND);
	cr_assert_null(app);

	cr_assert_eq(store_app_list(st, &apps, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(apps[0].name, "hello");
	cr_assert_str_eq(apps[1].name, "world");
	cr_assert_eq(apps[1].id, world);
	store_app_list_free(apps, n);
	store_app_free(NULL);
	store_app_list_free(NULL, 0);
	store_close(st);
}

Test(apps, ensure_rejects_bad_names)
{
	struct store *st = test_open();
	int64_t id = 5;

	cr_assert_eq(store_app_ensure(st, "Hello", &id), VIV_ERR_INVALID);
	cr_assert_eq(id, 0);
	cr_assert_eq(store_app_ensure(st, "-x", &id), VIV_ERR_INVALID);
	cr_assert_eq(store_app_ensure(st, "a.b", &id), VIV_ERR_INVALID);
	cr_assert_eq(store_app_ensure(st, NULL, &id), VIV_ERR_INVALID);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM apps"), 0);
	store_close(st);
}

Test(tokens, scopes_names_list_and_revoke)
{
	const char *apps[] = {"web", "api", "web"};
	struct store_token *info = NULL, *t = NULL, *list = NULL;
	struct store *st = test_open();
	char *admin = NULL, *ci = NULL, *bot = NULL, *none = NULL;
	size_t n = 0;

	cr_assert_eq(store_admin_token_ensure(st, &admin, NULL), VIV_OK);
	cr_assert_eq(store_token_create(st, "ci", STORE_SCOPE_APPS, apps, 3, &ci, &info), VIV_OK);
	cr_assert_str_eq(info->name, "ci");
	cr_assert_eq(info->scope, STORE_SCOPE_APPS);
	cr_assert_eq(info->n_apps, 2);
	cr_assert_str_eq(info->apps[0], "api");
	cr_assert_str_eq(info->apps[1], "web");
	cr_assert_eq(info->last_used_at, 0);
	cr_assert_not(info->builtin);
	cr_assert(store_token_allows(info, "web"));
	cr_assert_not(store_token_allows(info, "other"));
	cr_assert_not(store_token_allows(info, NULL));
	cr_assert_eq(store_token_create(st, "deploy bot", STORE_SCOPE_ADMIN, NULL, 0, &bot, NULL),
	             VIV_OK);

	/* Bad names, scopes and app lists. */
	cr_assert_eq(store_token_create(st, "admin", STORE_SCOPE_ADMIN, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_eq(store_token_create(st, "", STORE_SCOPE_ADMIN, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_eq(store_token_create(st, " x", STORE_SCOPE_ADMIN, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_eq(store_token_create(st, "a\nb", STORE_SCOPE_ADMIN, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_eq(store_token_create(st, "x", STORE_SCOPE_APPS, NULL, 0, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_eq(store_token_create(st, "x", STORE_SCOPE_ADMIN, apps, 1, &none, NULL),
	             VIV_ERR_INVALID);
	apps[0] = "Bad_Name";
	cr_assert_eq(store_token_create(st, "x", STORE_SCOPE_APPS, apps, 1, &none, NULL),
	             VIV_ERR_INVALID);
	cr_assert_null(none);

	/* A use is recorded. */
	cr_assert_eq(store_token_auth(st, ci, &t), VIV_OK);
	cr_assert_eq(t->id, info->id);
	cr_assert_gt(t->last_used_at, 0);
	store_token_free(t);

	cr_assert_eq(store_token_list(st, &list, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert(list[0].builtin);
	cr_assert_str_eq(list[0].name, "admin");
	cr_assert_eq(list[0].n_apps, 0);
	cr_assert_str_eq(list[1].name, "ci");
	cr_assert_gt(list[1].last_used_at, 0);
	cr_assert_eq(list[2].last_used_at, 0);
	cr_assert_eq(store_token_delete(st, list[0].id), VIV_ERR_UNSUPPORTED);
	store_token_list_free(list, n);

	cr_assert_eq(store_token_delete(st, info->id), VIV_OK);
	cr_assert_eq(store_token_delete(st, info->id), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_token_check(st, ci), VIV_ERR_AUTH);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM token_apps"), 0);
	cr_assert_eq(store_token_check(st, bot), VIV_OK);
	store_token_free(info);
	free(admin);
	free(ci);
	free(bot);
	store_close(st);
}

Test(tokens, a_new_admin_token_file_revokes_the_old_one)
{
	struct store *st = test_open();
	char *old = NULL, *fresh = NULL, path[256];
	bool created = false;

	cr_assert_eq(store_admin_token_ensure(st, &old, NULL), VIV_OK);
	snprintf(path, sizeof(path), "%s/admin-token", test_datadir);
	cr_assert_eq(unlink(path), 0);
	/* On PostgreSQL a host without the file may be another host, not this
	 * one with its file removed: the builtin token is replaced by
	 * removing its row too (a_second_host_...). */
	if (test_is_pg()) {
		cr_assert_eq(store_admin_token_ensure(st, &fresh, &created), VIV_ERR_EXISTS);
		test_sql_int("DELETE FROM tokens WHERE builtin = 1 RETURNING 1");
	}
	cr_assert_eq(store_admin_token_ensure(st, &fresh, &created), VIV_OK);
	cr_assert(created);
	cr_assert_str_neq(old, fresh);
	cr_assert_eq(store_token_check(st, fresh), VIV_OK);
	cr_assert_eq(store_token_check(st, old), VIV_ERR_AUTH);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM tokens WHERE builtin = 1"), 1);
	free(old);
	free(fresh);
	store_close(st);
}

/* Hosts with data folders of their own share a PostgreSQL database: one
 * without the token file makes no token of its own, which would revoke the
 * one the others use, and says to copy the file; the first host's token
 * still works, and the second host uses it once the file is there. On
 * SQLite, whose records live in the data folder, a removed file still
 * means a new token and the old one revoked. */
Test(tokens, a_second_host_of_a_shared_database_keeps_the_admin_token)
{
	struct store *st = test_open(), *other = NULL;
	char *token = NULL, *again = NULL, dir[] = "/tmp/viv-store-other-XXXXXX";
	char path[300], err[256], line[128];
	bool created = false;

	cr_assert_eq(store_admin_token_ensure(st, &token, &created), VIV_OK);
	cr_assert(created);
	cr_assert_not_null(mkdtemp(dir));
	if (!test_is_pg()) {
		snprintf(path, sizeof(path), "%s/admin-token", test_datadir);
		cr_assert_eq(unlink(path), 0);
		cr_assert_eq(store_admin_token_ensure(st, &again, &created), VIV_OK);
		cr_assert(created);
		cr_assert_eq(store_token_check(st, token), VIV_ERR_AUTH);
		cr_assert_eq(store_token_check(st, again), VIV_OK);
		goto out;
	}
	cr_assert_eq(store_open_db(dir, test_db_url, &other, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(store_admin_token_ensure(other, &again, &created), VIV_ERR_EXISTS);
	cr_assert_null(again);
	snprintf(path, sizeof(path), "%s/admin-token", dir);
	cr_assert_neq(access(path, F_OK), 0, "the second host wrote a token file");
	cr_assert_eq(store_token_check(st, token), VIV_OK);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM tokens WHERE builtin = 1"), 1);
	/* The file copied over: the same token, on both hosts. */
	snprintf(line, sizeof(line), "%s\n", token);
	cr_assert_eq(viv_write_file_atomic(path, line, strlen(line), 0600), VIV_OK);
	cr_assert_eq(store_admin_token_ensure(other, &again, &created), VIV_OK);
	cr_assert_not(created);
	cr_assert_str_eq(again, token);
	cr_assert_eq(store_token_check(other, token), VIV_OK);
	store_close(other);
out:
	free(again);
	free(token);
	store_close(st);
	viv_rmtree_or_log(dir);
}
