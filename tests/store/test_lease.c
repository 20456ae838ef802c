/* Tests of builders' leases: a claim holds while its builder renews it, a
 * deployment whose builder stopped renewing is claimed again, and built and
 * recorded once, however many builders look for work at that moment. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(lease, .init = store_test_setup, .fini = store_test_teardown, .timeout = 60);

#define TAKEN_OVER "stopped renewing its lease on this build; it is built again]\n"

static struct store_deployment *get(struct store *st, int64_t id)
{
	struct store_deployment *d = NULL;

	cr_assert_eq(store_deployment_get(st, id, &d), VIV_OK);
	return d;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

Test(lease, claim_records_owner_and_lease)
{
	struct store *st = test_open();
	char sql[256];
	int64_t id, got = 0, before = viv_now_ms();

	cr_assert_gt(strlen(store_owner(st)), 0);
	cr_assert_eq(store_set_owner(st, ""), VIV_ERR_INVALID);
	cr_assert_eq(store_set_owner(st, "bad\nname"), VIV_ERR_INVALID);
	cr_assert_eq(store_set_owner(st, "builder-1"), VIV_OK);
	cr_assert_str_eq(store_owner(st), "builder-1");
	store_set_lease_ms(st, 60000);
	id = test_queue(st, "hello", "src");
	cr_assert_eq(store_deployment_claim(st, &got), VIV_OK);
	cr_assert_eq(got, id);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM deployments WHERE id = %lld AND claimed_by = 'builder-1'"
	         " AND lease_until >= %lld AND lease_until <= %lld",
	         (long long)id, (long long)(before + 60000), (long long)(viv_now_ms() + 60000));
	cr_assert_eq(test_sql_int(sql), 1);
	store_close(st);
}

/* While its builder renews the lease, nobody else may take the build; once
 * it stops, the next claim does. */
Test(lease, heartbeat_keeps_the_claim)
{
	struct store *a = test_open(), *b = test_open();
	int64_t id, got = 0;
	size_t n = 0;

	store_set_lease_ms(a, 1000);
	id = test_queue(a, "hello", "src");
	cr_assert_eq(store_deployment_claim(a, &got), VIV_OK);
	for (int i = 0; i < 8; i++) {
		sleep_ms(250);
		cr_assert_eq(store_lease_renew(a, &n), VIV_OK);
		cr_assert_eq(n, 1);
		cr_assert_eq(store_deployment_claim(b, &got), VIV_ERR_NOT_FOUND,
		             "a renewed claim was taken after %d ms", (i + 1) * 250);
	}
	sleep_ms(1300);
	cr_assert_eq(store_deployment_claim(b, &got), VIV_OK);
	cr_assert_eq(got, id);
	cr_assert_eq(store_lease_renew(a, &n), VIV_OK);
	cr_assert_eq(n, 0, "the lease of a build taken over was renewed");
	store_close(a);
	store_close(b);
}

/* A builder whose lease ran out comes back too late: what it sends is
 * dropped, and the builder that took over records the outcome. The app's
 * next deployment still waits for that build. */
Test(lease, taken_over_builder_cannot_record)
{
	struct store *a = test_open(), *b = test_open();
	struct store_build sb = {.config = &test_cgi, .artifact_size = 1, .wasm_size = 1};
	struct store_deployment *d;
	int64_t id, next, got = 0;
	char hash[65];

	test_hash("artifact", hash);
	test_put_so(a, hash);
	sb.artifact = hash;
	store_set_lease_ms(a, 200);
	id = test_queue(a, "hello", "1");
	cr_assert_eq(store_deployment_claim(a, &got), VIV_OK);
	cr_assert_eq(store_deployment_log(a, id, "a: compiling\n"), VIV_OK);
	next = test_queue(a, "hello", "2");
	sleep_ms(300);

	cr_assert_eq(store_deployment_claim(b, &got), VIV_OK);
	cr_assert_eq(got, id, "the build whose lease ran out goes before the app's next one");
	cr_assert_eq(store_deployment_claim(b, &got), VIV_ERR_NOT_FOUND);

	cr_assert_eq(store_deployment_log(a, id, "a: still here\n"), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_ready(a, id, &sb), VIV_ERR_INVALID);
	cr_assert_eq(store_deployment_failed(a, id, "a gave up"), VIV_ERR_INVALID);
	d = get(b, id);
	cr_assert_eq(d->status, STORE_DEP_BUILDING);
	cr_assert_eq(count(d->log, TAKEN_OVER), 1, "log: %s", d->log);
	cr_assert_null(strstr(d->log, "still here"));
	cr_assert_not_null(strstr(d->log, store_owner(a)), "log: %s", d->log);
	store_deployment_free(d);

	cr_assert_eq(store_deployment_log(b, id, "b: compiling\n"), VIV_OK);
	cr_assert_eq(store_deployment_ready(b, id, &sb), VIV_OK);
	d = get(b, id);
	cr_assert_eq(d->status, STORE_DEP_READY);
	cr_assert(d->current);
	store_deployment_free(d);
	cr_assert_eq(store_deployment_claim(b, &got), VIV_OK);
	cr_assert_eq(got, next);
	store_close(a);
	store_close(b);
}

#define BUILDERS 4
#define BUILDER_LOOK_MS 6000
#define DEAD_LEASE_MS 1500

/* A builder process: waits for the start, then claims for
 * BUILDER_LOOK_MS; each claim it gets it "builds" (readies with hash),
 * writing its id to out. Exits 0, or the step that failed. */
static void builder_child(int go, int out, const char *hash)
{
	struct store_build sb = {.config = &test_cgi, .artifact_size = 1, .wasm_size = 1};
	struct store *st = NULL;
	int64_t start, id;
	char errbuf[256], byte;
	enum viv_err err;

	sb.artifact = hash;
	if (test_store_open_at(test_datadir, &st, errbuf, sizeof(errbuf)))
		_exit(2);
	if (read(go, &byte, 1) != 1)
		_exit(3);
	start = viv_now_ms();
	while (viv_now_ms() - start < BUILDER_LOOK_MS) {
		err = store_deployment_claim(st, &id);
		if (err == VIV_ERR_NOT_FOUND) {
			usleep(20000);
			continue;
		}
		if (err)
			_exit(4);
		if (store_deployment_log(st, id, "built here\n") ||
		    store_deployment_ready(st, id, &sb))
			_exit(5);
		if (write(out, &id, sizeof(id)) != sizeof(id))
			_exit(6);
	}
	store_close(st);
	_exit(0);
}

/*
 * A builder claims a deployment and dies without a word. Until its lease
 * runs out nobody takes the deployment; then BUILDERS processes looking for
 * work at once claim it, and exactly one builds it: one claim, one ready,
 * one count in the build counters, one line in the log.
 */
Test(lease, dead_builders_job_is_built_exactly_once)
{
	struct store *st = test_open();
	struct store_deployment *d;
	int go[2], out[2], dead[2], status;
	pid_t kids[BUILDERS], pid;
	int64_t id, got = 0, built[8];
	char hash[65], owner[STORE_OWNER_MAX + 1] = "";
	ssize_t n;
	size_t builds = 0;

	test_hash("artifact", hash);
	test_put_so(st, hash);
	id = test_queue(st, "hello", "src");
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(dead), 0);

	/* The builder that dies: it claims, starts its log, says who it is
	 * and exits without renewing or finishing. */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct store *mine = NULL;
		char errbuf[256];
		int64_t claimed = 0;

		if (test_store_open_at(test_datadir, &mine, errbuf, sizeof(errbuf)))
			_exit(2);
		store_set_lease_ms(mine, DEAD_LEASE_MS);
		if (store_deployment_claim(mine, &claimed) || claimed != id ||
		    store_deployment_log(mine, id, "compiling\n"))
			_exit(3);
		if (write(dead[1], store_owner(mine), strlen(store_owner(mine))) < 0)
			_exit(4);
		_exit(0);
	}
	close(dead[1]);
	n = read(dead[0], owner, sizeof(owner) - 1);
	cr_assert_gt(n, 0);
	owner[n] = '\0';
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	/* Under its lease, the build is nobody else's. */
	cr_assert_eq(store_deployment_claim(st, &got), VIV_ERR_NOT_FOUND);

	for (int i = 0; i < BUILDERS; i++) {
		kids[i] = fork();
		cr_assert_neq(kids[i], -1);
		if (kids[i] == 0) {
			close(go[1]);
			close(out[0]);
			builder_child(go[0], out[1], hash);
		}
	}
	close(go[0]);
	close(out[1]);
	cr_assert_eq(write(go[1], "gggg", BUILDERS), BUILDERS);
	for (int i = 0; i < BUILDERS; i++) {
		cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "builder %d: status %d", i,
		          status);
	}
	while ((n = read(out[0], &built[builds], sizeof(built[0]))) == sizeof(built[0]) &&
	       builds < 7)
		builds++;
	cr_assert_eq(builds, 1, "the deployment was built %zu times", builds);
	cr_assert_eq(built[0], id);

	d = get(st, id);
	cr_assert_eq(d->status, STORE_DEP_READY);
	cr_assert_eq(count(d->log, TAKEN_OVER), 1, "log: %s", d->log);
	cr_assert_eq(count(d->log, "built here\n"), 1, "log: %s", d->log);
	cr_assert_not_null(strstr(d->log, owner), "log: %s", d->log);
	cr_assert(strncmp(d->log, "compiling\n", 10) == 0, "log: %s", d->log);
	store_deployment_free(d);
	cr_assert_eq(test_sql_int("SELECT count FROM build_counts WHERE result = 'ready'"), 1);
	cr_assert_eq(test_sql_int("SELECT count(*) FROM deployments WHERE status <> 'ready'"), 0);
	close(go[1]);
	close(out[0]);
	close(dead[0]);
	store_close(st);
}
