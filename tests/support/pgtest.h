/* A scratch PostgreSQL server for tests: made with initdb in a folder of
 * its own under /tmp, run by the test binary (as the user postgres when the
 * tests run as root) on a unix socket in that folder, and gone with it.
 * One server per test binary; each test makes a database of its own. */
#ifndef TESTS_PGTEST_H
#define TESTS_PGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the environment asks for the store tests on PostgreSQL
 * (VIV_TEST_STORE=postgres). */
bool tpg_wanted(void);

/* Starts the server, once per process tree: the server and its socket
 * folder are named in the environment (VIV_TEST_PG_HOST), so test processes
 * forked or started later find it. False with the reason in why when it
 * cannot start; the reason is also kept for tpg_database_new(). Call from
 * the process that runs the tests (Criterion's PRE_ALL report hook). */
bool tpg_start(char *why, size_t len);

/* Stops the server and removes its folder; does nothing when none was
 * started by this process. */
void tpg_stop(void);

/* Makes a new, empty UTF8 database on the server and returns its URL
 * (postgresql:///NAME?host=...&user=postgres), in a static buffer that the
 * next call reuses. Fails the test, with the reason the server did not
 * start, when there is no server. */
const char *tpg_database_new(void);

/* Drops the database of url, whoever is still connected. */
void tpg_database_drop(const char *url);

/* Runs one statement on url's database and returns the first column of its
 * first row as an integer (0 when none; a boolean reads 0 or 1). Fails the
 * test on error. */
int64_t tpg_sql_int(const char *url, const char *sql);

/* Runs statements (separated by ';') on url's database, failing the test on
 * error. */
void tpg_sql_exec(const char *url, const char *sql);

#endif
