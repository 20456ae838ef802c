/* Tests of app logs: appending, the per-app and per-line caps, and reading
 * back by position. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

TestSuite(logs, .init = store_test_setup, .fini = store_test_teardown);

/* Appends lines "PREFIX FIRST" .. "PREFIX LAST-1" to app in one call. */
static void append_range(struct store *st, int64_t app_id, const char *prefix, int first, int last)
{
	size_t n = (size_t)(last - first), i;
	struct store_log *lines = calloc(n, sizeof(*lines));
	char(*msgs)[32] = calloc(n, sizeof(*msgs));

	for (i = 0; i < n; i++) {
		snprintf(msgs[i], sizeof(msgs[i]), "%s %d", prefix, first + (int)i);
		lines[i].app_id = app_id;
		lines[i].stream = "stdout";
		lines[i].message = msgs[i];
		lines[i].ts = 1000 + first + (int)i;
	}
	cr_assert_eq(store_logs_append(st, lines, n), VIV_OK);
	free(lines);
	free(msgs);
}

Test(logs, trimmed_to_newest_per_app)
{
	struct store *st = test_open();
	struct store_log *got = NULL;
	int64_t hello, other;
	size_t n = 0, i;
	char want[32];

	cr_assert_eq(store_app_ensure(st, "hello", &hello), VIV_OK);
	cr_assert_eq(store_app_ensure(st, "other", &other), VIV_OK);
	append_range(st, other, "other", 0, 10);
	append_range(st, hello, "line", 0, 600);
	append_range(st, hello, "line", 600, 1005);

	cr_assert_eq(store_logs_get(st, "hello", 0, 5000, &got, &n), VIV_OK);
	cr_assert_eq(n, STORE_LOG_LINES_PER_APP);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "line %zu", i + 5);
		cr_assert_str_eq(got[i].message, want);
		cr_assert_eq(got[i].app_id, hello);
		cr_assert_str_eq(got[i].stream, "stdout");
		cr_assert_eq(got[i].ts, 1000 + 5 + (int64_t)i);
		cr_assert_eq(got[i].deployment_id, 0);
		if (i)
			cr_assert_gt(got[i].id, got[i - 1].id);
	}
	store_logs_free(got, n);

	/* The other app lost nothing. */
	cr_assert_eq(store_logs_get(st, "other", 0, 100, &got, &n), VIV_OK);
	cr_assert_eq(n, 10);
	cr_assert_str_eq(got[0].message, "other 0");
	store_logs_free(got, n);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM app_logs"), 1010);
	store_close(st);
}

Test(logs, get_tail_and_after_id)
{
	struct store *st = test_open();
	struct store_log *got = NULL;
	int64_t app, mark;
	size_t n = 0;

	cr_assert_eq(store_app_ensure(st, "hello", &app), VIV_OK);
	append_range(st, app, "line", 0, 50);

	/* The newest lines, oldest first. */
	cr_assert_eq(store_logs_get(st, "hello", 0, 3, &got, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(got[0].message, "line 47");
	cr_assert_str_eq(got[2].message, "line 49");
	store_logs_free(got, n);

	cr_assert_eq(store_logs_get(st, "hello", 0, 50, &got, &n), VIV_OK);
	mark = got[39].id;
	cr_assert_str_eq(got[39].message, "line 39");
	store_logs_free(got, n);

	/* After an id: the next lines, oldest first. */
	cr_assert_eq(store_logs_get(st, "hello", mark, 4, &got, &n), VIV_OK);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(got[0].message, "line 40");
	cr_assert_str_eq(got[3].message, "line 43");
	store_logs_free(got, n);
	cr_assert_eq(store_logs_get(st, "hello", mark, 100, &got, &n), VIV_OK);
	cr_assert_eq(n, 10);
	cr_assert_str_eq(got[9].message, "line 49");
	mark = got[9].id;
	store_logs_free(got, n);
	cr_assert_eq(store_logs_get(st, "hello", mark, 100, &got, &n), VIV_OK);
	cr_assert_eq(n, 0);
	store_logs_free(got, n);

	append_range(st, app, "line", 50, 51);
	cr_assert_eq(store_logs_get(st, "hello", mark, 100, &got, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(got[0].message, "line 50");
	store_logs_free(got, n);

	got = (void *)1;
	cr_assert_eq(store_logs_get(st, "nope", 0, 10, &got, &n), VIV_ERR_NOT_FOUND);
	cr_assert_null(got);
	store_close(st);
}

Test(logs, long_messages_cut_and_fields_kept)
{
	struct store *st = test_open();
	struct store_log *got = NULL, line = {0};
	char *big = malloc(5001);
	char hash[65];
	int64_t app, dep, before = viv_now_ms();
	size_t n = 0;

	test_hash("a", hash);
	dep = test_deploy(st, "hello", hash);
	cr_assert_eq(store_app_ensure(st, "hello", &app), VIV_OK);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	line.app_id = app;
	line.deployment_id = dep;
	line.stream = "trap";
	line.message = big;
	cr_assert_eq(store_logs_append(st, &line, 1), VIV_OK);
	cr_assert_eq(store_logs_get(st, "hello", 0, 10, &got, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(strlen(got[0].message), STORE_LOG_LINE_MAX);
	cr_assert_eq(got[0].deployment_id, dep);
	cr_assert_str_eq(got[0].stream, "trap");
	cr_assert_geq(got[0].ts, before);
	store_logs_free(got, n);
	free(big);
	store_close(st);
}

Test(logs, bad_lines_write_nothing)
{
	struct store *st = test_open();
	struct store_log lines[2] = {{0}};
	int64_t app;

	cr_assert_eq(store_app_ensure(st, "hello", &app), VIV_OK);
	lines[0].app_id = app;
	lines[0].stream = "stdout";
	lines[0].message = "fine";
	lines[1] = lines[0];
	lines[1].stream = "telepathy";
	cr_assert_eq(store_logs_append(st, lines, 2), VIV_ERR_INVALID);
	lines[1].stream = "stderr";
	lines[1].message = NULL;
	cr_assert_eq(store_logs_append(st, lines, 2), VIV_ERR_INVALID);
	lines[1].message = "fine too";
	lines[1].app_id = 0;
	cr_assert_eq(store_logs_append(st, lines, 2), VIV_ERR_INVALID);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM app_logs"), 0);
	cr_assert_eq(store_logs_append(st, lines, 0), VIV_OK);
	lines[1].app_id = app;
	cr_assert_eq(store_logs_append(st, lines, 2), VIV_OK);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM app_logs"), 2);
	store_close(st);
}
