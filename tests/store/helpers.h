/* Shared by the store tests: a fresh data directory per test and shortcuts
 * for putting deployments into a known state. */
#ifndef STORE_TEST_HELPERS_H
#define STORE_TEST_HELPERS_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* The data directory of the running test, made by store_test_setup(). A
 * test may append to it to use a directory below. */
extern char test_datadir[];

/* Criterion fixtures: a new empty directory under /tmp, removed afterwards. */
void store_test_setup(void);
void store_test_teardown(void);

/* The database of the running test: NULL on SQLite (the data directory's
 * own), else the URL of a PostgreSQL database made for the test. */
extern const char *test_db_url;

/* True when the tests run on PostgreSQL. */
bool test_is_pg(void);

/* Skips the running test, saying why: Criterion does not run the fixture's
 * teardown after a skip, so this does. */
#define test_skip(...)                                                                             \
	do {                                                                                       \
		store_test_teardown();                                                             \
		cr_skip_test(__VA_ARGS__);                                                         \
	} while (0)

/* Opens the store on test_datadir, failing the test on error. */
struct store *test_open(void);

/* store_open() on datadir with the test's database: for children and
 * tests that expect it to fail. */
enum viv_err test_store_open_at(const char *datadir, struct store **out, char *errbuf,
                                size_t errlen);

/* Writes an upload with the given contents to a temporary upload path and
 * queues a deployment of app with it; returns the deployment id. */
int64_t test_queue(struct store *st, const char *app, const char *contents);

/* The sha256 of text, as an artifact hash. */
void test_hash(const char *text, char hash[65]);

/* Puts a .so for hash into the artifact directory. */
void test_put_so(struct store *st, const char *hash);

/* Configurations with a mode and the default limits, nothing else. */
extern const struct store_deploy_config test_cgi, test_hostcall;

/* Queues, claims and readies a deployment of app serving artifact hash;
 * returns its id. Nothing else may be queued. */
int64_t test_deploy(struct store *st, const char *app, const char *hash);

/* Runs one SQL statement on the test's database with a connection of its
 * own and returns the first column of the first row as an integer (0 if
 * none; a boolean reads 0 or 1). */
int64_t test_sql_int(const char *sql);

/* Runs SQL statements (several, separated by ';') on the test's database
 * with a connection of its own, failing the test on error. */
void test_sql_exec(const char *sql);

/* Turns the database of test_datadir (closed) back into what schema 3 made:
 * migrations 5 and 4 undone, as a vivd of before would have left it. */
void test_downgrade_to_3(void);

/* Writes a file, failing the test on error. */
void test_write(const char *path, const char *contents);

/* Reads a file into a string the caller frees, or NULL if it is missing. */
char *test_read(const char *path);

#endif
