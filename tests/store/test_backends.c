/* Tests of what differs between the two databases: route changes reaching
 * another machine's store (PostgreSQL's notifications), a connection the
 * server dropped, and text that is not UTF-8. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "pgtest.h"

TestSuite(backends, .init = store_test_setup, .fini = store_test_teardown, .timeout = 60);

/*
 * Two data folders on one PostgreSQL database are two machines: they share
 * no page, so a runner on the second learns of a change made on the first
 * from the database's notification (within its 50 ms look, well before the
 * 5 s reread), and its generation becomes the database's.
 */
Test(backends, route_change_reaches_another_machine)
{
	struct store *here, *there;
	char dir_here[128], dir_there[128], errbuf[256], hash[65];
	uint64_t before, now;
	double start;

	if (!test_is_pg())
		test_skip("on SQLite each data folder has a database of its own");
	snprintf(dir_here, sizeof(dir_here), "%s/here", test_datadir);
	snprintf(dir_there, sizeof(dir_there), "%s/there", test_datadir);
	cr_assert_eq(test_store_open_at(dir_here, &here, errbuf, sizeof(errbuf)), VIV_OK, "%s",
	             errbuf);
	cr_assert_eq(test_store_open_at(dir_there, &there, errbuf, sizeof(errbuf)), VIV_OK, "%s",
	             errbuf);
	before = store_routes_generation(there);
	/* test_deploy() puts its artifact in test_datadir's own folders. */
	strcpy(test_datadir, dir_here);
	test_hash("artifact", hash);
	test_deploy(here, "hello", hash);
	cr_assert_eq(store_routes_generation(here), before + 1);

	start = (double)viv_now_ms();
	do {
		now = store_routes_generation(there);
		if (now != before)
			break;
		usleep(10000);
	} while ((double)viv_now_ms() - start < 3000);
	cr_assert_eq(now, before + 1, "the other machine saw generation %llu after %.0f ms",
	             (unsigned long long)now, (double)viv_now_ms() - start);
	cr_assert_lt((double)viv_now_ms() - start, 2000, "only the 5 s reread saw it");
	cr_assert_eq(test_sql_int("SELECT gen FROM routes_generation"), (int64_t)now);
	store_close(here);
	store_close(there);
}

/* The server ends the connection while it is idle (a restart, an idle
 * timeout): the next read connects again, and what follows works. */
Test(backends, connects_again_after_the_server_dropped_it)
{
	struct store *st = NULL;
	struct store_app *app = NULL;
	int64_t id = 0, id2 = 0;

	if (!test_is_pg())
		test_skip("SQLite has no server to drop the connection");
	st = test_open();
	cr_assert_eq(store_app_ensure(st, "hello", &id), VIV_OK);
	cr_assert_eq(
	        test_sql_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
	                     " WHERE datname = current_database() AND pid <> pg_backend_pid()"),
	        1);
	usleep(100000);
	cr_assert_eq(store_app_get(st, "hello", &app), VIV_OK);
	cr_assert_eq(app->id, id);
	store_app_free(app);
	cr_assert_eq(store_app_ensure(st, "other", &id2), VIV_OK);
	cr_assert_neq(id2, id);
	store_close(st);
}

/* PostgreSQL's text is UTF-8 only: bytes that are not (a guest's output) are
 * kept as U+FFFD, as the API shows them anyway; SQLite keeps them as they
 * came. Either way the line is kept, and the rest of it is intact. */
Test(backends, log_text_that_is_not_utf8)
{
	struct store *st = test_open();
	struct store_log line = {.stream = "stdout", .message = "caf\xc3\xa9 \xff\xfe end"};
	struct store_log *got = NULL;
	size_t n = 0;

	cr_assert_eq(store_app_ensure(st, "hello", &line.app_id), VIV_OK);
	cr_assert_eq(store_logs_append(st, &line, 1), VIV_OK);
	cr_assert_eq(store_logs_get(st, "hello", 0, 10, &got, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(got[0].message, test_is_pg() ? "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end"
	                                              : "caf\xc3\xa9 \xff\xfe end");
	store_logs_free(got, n);
	store_close(st);
}

/* A data folder that served on SQLite and now keeps its records in
 * PostgreSQL: its page counted SQLite's changes, and from now on it follows
 * the database's generation, so that a change of routes still shows. */
Test(backends, a_data_folder_moved_from_sqlite)
{
	struct store *lite = NULL, *st;
	char errbuf[256];
	uint64_t gen;

	if (!test_is_pg())
		test_skip("this is the move to PostgreSQL");
	cr_assert_eq(store_open(test_datadir, &lite, errbuf, sizeof(errbuf)), VIV_OK, "%s", errbuf);
	for (int i = 0; i < 5; i++) {
		char value[8];
		int64_t id;

		snprintf(value, sizeof(value), "%d", i);
		cr_assert_eq(store_app_ensure(lite, "hello", &id), VIV_OK);
		cr_assert_eq(store_app_config_set(lite, "hello", "N", value), VIV_OK);
	}
	cr_assert_eq(store_routes_generation(lite), 5);
	store_close(lite);

	st = test_open();
	gen = store_routes_generation(st);
	cr_assert_eq(gen, 0, "the page kept SQLite's count: %llu", (unsigned long long)gen);
	cr_assert_eq(store_app_ensure(st, "hello", &(int64_t){0}), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "hello", "N", "1"), VIV_OK);
	cr_assert_eq(store_routes_generation(st), 1);
	store_close(st);
}
