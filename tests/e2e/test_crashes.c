/* End to end: vivd killed with SIGKILL at random moments while apps
 * deploy, then started again on the same data folder, round after round
 * (20 in the suite; VIV_PROOF_CRASHES=N for more). Odd rounds kill only
 * the supervisor (its roles then get SIGTERM from the kernel), even rounds
 * every process of vivd at once, as a power cut would. After each restart:
 * SQLite's integrity_check says ok; every deployment vivd had acknowledged
 * ready is still ready and its app serves it or a newer one; no ready
 * deployment points at a missing artifact; and every upload vivd had
 * accepted ends ready (rebuilt) or failed with a reason. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "figure.h"
#include "support.h"

#define APPS 4
#define MAX_DEPLOYS 1024

struct deploy {
	long id;
	int app;
	char text[48];    /* what it answers */
	bool acked_ready; /* the API said ready before a kill */
	bool was_open;    /* queued or building at a kill */
	bool settled;     /* ready or failed after it */
};

static struct deploy deps[MAX_DEPLOYS];
static size_t n_deps;
static char argv_buf[4096];
static const char *vivd_argv[40];

static struct {
	size_t rounds, supervisor_kills, group_kills, acked, rebuilt, failed_with_reason;
	size_t checks_served, integrity_ok;
	double orphan_ms; /* the longest the roles outlived a killed supervisor */
} fig;

static char *cgi_wat(const char *text)
{
	char *wat = NULL;

	cr_assert(asprintf(&wat,
	                   "(module\n"
	                   "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
	                   "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
	                   "  (memory 1)\n"
	                   "  (data (i32.const 64) \"Content-Type: text/plain\\0a\\0a%s\")\n"
	                   "  (func (export \"_start\")\n"
	                   "    (i32.store (i32.const 0) (i32.const 64))\n"
	                   "    (i32.store (i32.const 4) (i32.const %zu))\n"
	                   "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1)"
	                   " (i32.const 16)))))\n",
	                   text, strlen(text) + 26) > 0);
	return wat;
}

/* vivd's command line, from /proc, to start it again the same way. */
static void save_argv(pid_t pid)
{
	char path[64];
	size_t n = 0, k = 0;
	int fd;
	ssize_t r;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	r = read(fd, argv_buf, sizeof(argv_buf) - 1);
	close(fd);
	cr_assert_gt(r, 0);
	argv_buf[r] = '\0';
	while (n < (size_t)r && k < 39) {
		vivd_argv[k++] = argv_buf + n;
		n += strlen(argv_buf + n) + 1;
	}
	vivd_argv[k] = NULL;
}

/* Whether a process of the group pgid is alive; the /proc stat line of
 * one of them goes to survivors (256 bytes; may be NULL). */
static bool group_alive(pid_t pgid, char *survivors)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool alive = false;

	while (!alive && (de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		char path[64], buf[256], *p;
		int fd;
		ssize_t n;

		if (pid <= 0 || getpgid(pid) != pgid)
			continue;
		/* A zombie is dead; only its parent's wait is missing. */
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		p = strrchr(buf, ')');
		alive = !p || p[2] != 'Z';
		if (alive && survivors)
			snprintf(survivors, 256, "%s", buf);
	}
	closedir(d);
	return alive;
}

/* Kills vivd: the supervisor alone, or its whole process group; then waits
 * until nothing of it is left (its roles stop on their own when only the
 * supervisor was killed; what is left after 20 s is killed too). */
static void crash(struct tsup_vivd *v, bool whole)
{
	pid_t pgid = v->pid;
	double t0 = tsup_now_ms();
	char left[256] = "";
	int status;

	if (whole) {
		kill(-pgid, SIGKILL);
		fig.group_kills++;
	} else {
		kill(v->pid, SIGKILL);
		fig.supervisor_kills++;
	}
	waitpid(v->pid, &status, 0);
	/* The roles stop by themselves once the supervisor is gone (the API
	 * gives requests in flight 5 s); what is left after 15 s is a
	 * process that outlives its supervisor. */
	while (group_alive(pgid, left) && tsup_now_ms() - t0 < 15000)
		usleep(50000);
	if (group_alive(pgid, left)) {
		kill(-pgid, SIGKILL);
		while (group_alive(pgid, NULL))
			usleep(50000);
		cr_assert_fail("15 s after the supervisor's SIGKILL, this was still there: %.120s",
		               left);
	}
	cr_log_info("%s: gone after %.0f ms", whole ? "all of vivd" : "the supervisor",
	            tsup_now_ms() - t0);
	if (!whole && tsup_now_ms() - t0 > fig.orphan_ms)
		fig.orphan_ms = tsup_now_ms() - t0;
}

static void restart(struct tsup_vivd *v)
{
	char url[128];
	double t0 = tsup_now_ms();

	v->pid = fork();
	cr_assert_geq(v->pid, 0);
	if (v->pid == 0) {
		int fd = open(v->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		if (chdir(v->dir) != 0)
			_exit(126);
		execv(vivd_argv[0], (char *const *)vivd_argv);
		_exit(127);
	}
	snprintf(url, sizeof(url), "%s/healthz", v->api);
	for (;;) {
		struct tsup_resp r;
		int status;

		cr_assert_eq(waitpid(v->pid, &status, WNOHANG), 0, "vivd did not start again:\n%s",
		             tsup_vivd_log_tail(v, 3000));
		if (tsup_http("GET", url, NULL, NULL, NULL, 0, &r) && r.status == 200) {
			tsup_resp_free(&r);
			break;
		}
		tsup_resp_free(&r);
		cr_assert_lt(tsup_now_ms() - t0, 30000, "vivd did not answer after a restart:\n%s",
		             tsup_vivd_log_tail(v, 3000));
		usleep(50000);
	}
}

static json_t *deployment(const struct tsup_vivd *v, long id)
{
	return tsup_wait_deployment(v, id, 1);
}

static const char *status_of(json_t *d)
{
	const char *s = json_string_value(json_object_get(d, "status"));

	return s ? s : "";
}

/* The database as SQLite sees it: integrity, artifacts of ready
 * deployments, and each app's current deployment (current[app], 0 for
 * none). */
static void check_database(const struct tsup_vivd *v, long *current)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;
	int rc;

	snprintf(path, sizeof(path), "%s/vivarium.db", v->data);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	fig.integrity_ok++;
	cr_assert_eq(sqlite3_prepare_v2(
	                     db, "SELECT id, artifact FROM deployments WHERE status = 'ready'", -1,
	                     &st, NULL),
	             SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(st, 1);
		char so[600];

		cr_assert(hash && strlen(hash) == 64, "deployment %lld has no artifact",
		          (long long)sqlite3_column_int64(st, 0));
		snprintf(so, sizeof(so), "%s/artifacts/%.2s/%s.so", v->data, hash, hash);
		cr_assert_eq(access(so, R_OK), 0, "deployment %lld points at a missing artifact %s",
		             (long long)sqlite3_column_int64(st, 0), so);
	}
	cr_assert_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	for (int a = 0; a < APPS; a++) {
		char name[16];

		snprintf(name, sizeof(name), "crash%d", a);
		current[a] = 0;
		cr_assert_eq(
		        sqlite3_prepare_v2(db, "SELECT current_deployment FROM apps WHERE name = ?",
		                           -1, &st, NULL),
		        SQLITE_OK);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			current[a] = (long)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/* Everything the restart must have kept, once the builds settled. */
static void check_after_restart(const struct tsup_vivd *v)
{
	long current[APPS], latest_acked[APPS] = {0};
	double t0 = tsup_now_ms();

	/* Interrupted uploads end one way or the other. */
	for (size_t i = 0; i < n_deps; i++) {
		struct deploy *d = &deps[i];

		while (!d->settled) {
			json_t *j = deployment(v, d->id);
			const char *s = status_of(j);

			if (strcmp(s, "ready") == 0 || strcmp(s, "failed") == 0) {
				d->settled = true;
				if (d->was_open && strcmp(s, "ready") == 0)
					fig.rebuilt++;
				if (strcmp(s, "failed") == 0) {
					const char *e =
					        json_string_value(json_object_get(j, "error"));

					cr_assert(e && strlen(e) > 10,
					          "deployment %ld failed with no reason", d->id);
					fig.failed_with_reason++;
				}
			}
			json_decref(j);
			if (!d->settled) {
				cr_assert_lt(tsup_now_ms() - t0, 90000,
				             "deployment %ld never ended: %s", d->id, s);
				usleep(100000);
			}
		}
		if (d->acked_ready) {
			json_t *j = deployment(v, d->id);

			cr_assert_str_eq(status_of(j), "ready",
			                 "deployment %ld was ready before the crash", d->id);
			json_decref(j);
			if (d->id > latest_acked[d->app])
				latest_acked[d->app] = d->id;
		}
		d->was_open = false;
	}
	check_database(v, current);
	/* Each app serves its current deployment, never one older than what
	 * was acknowledged. */
	for (int a = 0; a < APPS; a++) {
		char name[16];
		const char *want = NULL;
		struct tsup_resp r;

		if (!current[a]) {
			cr_assert_eq(latest_acked[a], 0, "app %d lost its deployment", a);
			continue;
		}
		cr_assert_geq(current[a], latest_acked[a],
		              "app %d went back to an older deployment", a);
		for (size_t i = 0; i < n_deps; i++)
			if (deps[i].id == current[a])
				want = deps[i].text;
		cr_assert_not_null(want);
		snprintf(name, sizeof(name), "crash%d", a);
		for (double t1 = tsup_now_ms();; usleep(100000)) {
			cr_assert(tsup_app_get(v, name, "/", &r), "%s", r.error);
			if (r.status == 200 && strcmp(r.body, want) == 0)
				break;
			cr_assert_lt(tsup_now_ms() - t1, 10000, "%s answers %ld '%s', not '%s'",
			             name, r.status, r.body, want);
			tsup_resp_free(&r);
		}
		tsup_resp_free(&r);
		fig.checks_served++;
	}
}

Test(crashes, sigkill_at_random_moments_loses_nothing_acknowledged, .timeout = 900)
{
	const char *env = getenv("VIV_PROOF_CRASHES");
	size_t rounds = env ? strtoul(env, NULL, 10) : 20;
	unsigned seed = 13;
	struct tsup_vivd v;
	double t0 = tsup_now_ms(), crash_ms = 0, restart_ms = 0, check_ms = 0;

	tsup_vivd_start(&v, NULL);
	save_argv(v.pid);
	for (size_t round = 0; round < rounds && n_deps + 2 < MAX_DEPLOYS; round++) {
		unsigned wait_ms = (unsigned)(rand_r(&seed) % 3000);
		size_t first = n_deps;
		double t1;

		/* Two uploads, to two of the apps. */
		for (int k = 0; k < 2; k++) {
			struct deploy *d = &deps[n_deps];
			char app[16], *wat;

			d->app = (int)((round * 2 + (size_t)k) % APPS);
			snprintf(d->text, sizeof(d->text), "round %zu upload %d", round, k);
			snprintf(app, sizeof(app), "crash%d", d->app);
			wat = cgi_wat(d->text);
			cr_assert_eq(tsup_deploy(&v, app, wat, strlen(wat), &d->id, NULL), 202);
			free(wat);
			n_deps++;
		}
		/* Watch them until the moment of the crash. */
		for (t1 = tsup_now_ms(); tsup_now_ms() - t1 < wait_ms; usleep(20000)) {
			for (size_t i = first; i < n_deps; i++) {
				json_t *j;

				if (deps[i].acked_ready)
					continue;
				j = deployment(&v, deps[i].id);
				if (strcmp(status_of(j), "ready") == 0) {
					deps[i].acked_ready = true;
					fig.acked++;
				}
				json_decref(j);
			}
		}
		for (size_t i = first; i < n_deps; i++)
			deps[i].was_open = !deps[i].acked_ready;
		t1 = tsup_now_ms();
		crash(&v, round % 2 == 0);
		crash_ms += tsup_now_ms() - t1;
		t1 = tsup_now_ms();
		restart(&v);
		restart_ms += tsup_now_ms() - t1;
		t1 = tsup_now_ms();
		check_after_restart(&v);
		check_ms += tsup_now_ms() - t1;
		fig.rounds++;
	}
	FIGURE("crashes: %zu SIGKILLs (%zu of the supervisor, %zu of every process) across %zu "
	       "deploys in %.0f s; integrity_check ok %zu times; %zu deployments acknowledged "
	       "ready all still ready and served (%zu checks of apps); builds open at a kill: %zu "
	       "ended ready, %zu failed with a reason; 0 missing artifacts; roles gone at most "
	       "%.0f ms "
	       "after their supervisor",
	       fig.supervisor_kills + fig.group_kills, fig.supervisor_kills, fig.group_kills,
	       n_deps, (tsup_now_ms() - t0) / 1000, fig.integrity_ok, fig.acked, fig.checks_served,
	       fig.rebuilt, fig.failed_with_reason, fig.orphan_ms);
	cr_log_info("time spent stopping %.0f ms, starting %.0f ms, checking %.0f ms", crash_ms,
	            restart_ms, check_ms);
	tsup_vivd_stop(&v);
}
