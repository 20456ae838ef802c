/* A scratch PostgreSQL server for tests; see pgtest.h. */
#include "pgtest.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "viv.h"

/* The server listens on a unix socket only (no TCP port to collide on),
 * under this port number's name in its run/ folder. */
#define PG_PORT "5432"
#define PG_START_TIMEOUT_MS 60000
#define HOST_ENV "VIV_TEST_PG_HOST"
#define WHY_ENV "VIV_TEST_PG_WHY"

static char pg_dir[64]; /* the scratch folder, when this process made it */
static pid_t pg_pid;    /* the server, when this process started it */
static char url_buf[512];
static unsigned n_databases;

bool tpg_wanted(void)
{
	const char *v = getenv("VIV_TEST_STORE");

	return v && (!strcmp(v, "postgres") || !strcmp(v, "postgresql"));
}

static void whyf(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void whyf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	setenv(WHY_ENV, why, 1);
}

/* The newest installed server's programs: /usr/lib/postgresql/N/bin. */
static bool find_bin(char *out, size_t len)
{
	const char *env = getenv("VIV_PG_BIN");
	glob_t g;
	bool ok = false;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return true;
	}
	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0)
		return false;
	if (g.gl_pathc > 0) {
		/* The paths sort by version when the versions have as many
		 * digits, as Debian's 13 to 17 do. */
		snprintf(out, len, "%s", g.gl_pathv[g.gl_pathc - 1]);
		*strrchr(out, '/') = '\0';
		ok = true;
	}
	globfree(&g);
	return ok;
}

/* Who runs the server: the user postgres when we are root (initdb and
 * postgres refuse to run as root), else ourselves. */
struct runas {
	bool drop;
	uid_t uid;
	gid_t gid;
};

static bool runas_get(struct runas *r, char *why, size_t len)
{
	struct passwd *pw;

	memset(r, 0, sizeof(*r));
	if (geteuid() != 0)
		return true;
	pw = getpwnam("postgres");
	if (!pw) {
		whyf(why, len,
		     "the tests run as root and there is no user postgres to run "
		     "PostgreSQL as (install the postgresql package)");
		return false;
	}
	r->drop = true;
	r->uid = pw->pw_uid;
	r->gid = pw->pw_gid;
	return true;
}

/* In a child: becomes the server's user, with its output into log. */
static void child_setup(const struct runas *r, const char *log, pid_t parent, int deathsig)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(126);
	if (r->drop && (setgroups(0, NULL) != 0 || setgid(r->gid) != 0 || setuid(r->uid) != 0))
		_exit(126);
	/* After the change of user, which clears it: the server goes with
	 * the test binary, however that ends. */
	if (deathsig && (prctl(PR_SET_PDEATHSIG, deathsig) != 0 || getppid() != parent))
		_exit(126);
}

static bool chown_to(const struct runas *r, const char *path)
{
	return !r->drop || chown(path, r->uid, r->gid) == 0;
}

/* The last bytes of a log file, for a reason. */
static void log_tail(const char *path, char *out, size_t len)
{
	char *data = NULL;
	size_t n = 0;

	out[0] = '\0';
	if (viv_read_file(path, 1 << 20, &data, &n) != VIV_OK)
		return;
	snprintf(out, len, "%s", n > len - 1 ? data + n - (len - 1) : data);
	free(data);
}

static bool run_initdb(const struct runas *r, const char *bin, char *why, size_t len)
{
	char prog[600], data[128], log[128], tail[600];
	int status = 0;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/initdb", bin);
	snprintf(data, sizeof(data), "%s/data", pg_dir);
	snprintf(log, sizeof(log), "%s/initdb.log", pg_dir);
	pid = fork();
	if (pid < 0) {
		whyf(why, len, "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		child_setup(r, log, 0, 0);
		execl(prog, prog, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		      "--no-locale", "--no-sync", (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	log_tail(log, tail, sizeof(tail));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		whyf(why, len, "cannot run %s", prog);
	else
		whyf(why, len, "%s failed (status %d): %s", prog, status, tail);
	return false;
}

/* The server's folder: this process's, or the one it inherited. */
static const char *server_dir(void)
{
	const char *env = getenv(HOST_ENV);

	return pg_dir[0] ? pg_dir : env ? env : "";
}

static void conninfo(char *out, size_t len, const char *db)
{
	snprintf(out, len, "host=%s/run port=" PG_PORT " user=postgres dbname=%s", server_dir(),
	         db);
}

static bool wait_ready(const char *log, char *why, size_t len)
{
	char info[256], tail[600];
	int64_t start = viv_now_ms();
	int status;

	conninfo(info, sizeof(info), "postgres");
	while (viv_now_ms() - start < PG_START_TIMEOUT_MS) {
		if (PQping(info) == PQPING_OK)
			return true;
		if (waitpid(pg_pid, &status, WNOHANG) == pg_pid) {
			pg_pid = 0;
			log_tail(log, tail, sizeof(tail));
			whyf(why, len, "PostgreSQL exited at start (status %d): %s", status, tail);
			return false;
		}
		usleep(20000);
	}
	log_tail(log, tail, sizeof(tail));
	whyf(why, len, "PostgreSQL did not answer within %d s: %s", PG_START_TIMEOUT_MS / 1000,
	     tail);
	return false;
}

bool tpg_start(char *why, size_t len)
{
	char bin[512], prog[600], data[128], run[128], log[128];
	struct runas r;
	pid_t parent = getpid();

	unsetenv(WHY_ENV);
	if (!find_bin(bin, sizeof(bin))) {
		whyf(why, len,
		     "no PostgreSQL server is installed (/usr/lib/postgresql/*/bin; "
		     "scripts/setup.sh installs the postgresql package)");
		return false;
	}
	if (!runas_get(&r, why, len))
		return false;
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/viv-pg-XXXXXX");
	if (!mkdtemp(pg_dir)) {
		whyf(why, len, "mkdtemp: %s", strerror(errno));
		pg_dir[0] = '\0';
		return false;
	}
	snprintf(data, sizeof(data), "%s/data", pg_dir);
	snprintf(run, sizeof(run), "%s/run", pg_dir);
	snprintf(log, sizeof(log), "%s/postgres.log", pg_dir);
	/* The socket folder is reachable by everyone, so that vivd's users
	 * connect; the data folder is the server's alone. */
	if (chmod(pg_dir, 0755) != 0 || mkdir(data, 0700) != 0 || mkdir(run, 0755) != 0 ||
	    !chown_to(&r, data) || !chown_to(&r, run) || !chown_to(&r, pg_dir)) {
		whyf(why, len, "cannot prepare %s: %s", pg_dir, strerror(errno));
		return false;
	}
	if (!run_initdb(&r, bin, why, len))
		return false;
	snprintf(prog, sizeof(prog), "%s/postgres", bin);
	pg_pid = fork();
	if (pg_pid < 0) {
		pg_pid = 0;
		whyf(why, len, "fork: %s", strerror(errno));
		return false;
	}
	if (pg_pid == 0) {
		/* SIGQUIT: an immediate shutdown, should the tests die. */
		child_setup(&r, log, parent, SIGQUIT);
		execl(prog, prog, "-D", data, "-k", run, "-p", PG_PORT, "-c",
		      "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
		      "full_page_writes=off", "-c", "max_connections=300", "-c",
		      "shared_buffers=32MB", "-c", "unix_socket_permissions=0777", (char *)NULL);
		_exit(127);
	}
	if (!wait_ready(log, why, len))
		return false;
	setenv(HOST_ENV, pg_dir, 1);
	return true;
}

void tpg_stop(void)
{
	int status;

	if (pg_pid > 0) {
		/* A fast shutdown: connections that tests left open end. */
		kill(pg_pid, SIGINT);
		while (waitpid(pg_pid, &status, 0) < 0 && errno == EINTR)
			;
		pg_pid = 0;
	}
	if (pg_dir[0]) {
		viv_rmtree_or_log(pg_dir);
		pg_dir[0] = '\0';
	}
	unsetenv(HOST_ENV);
}

static PGconn *connect_or_fail(const char *info)
{
	PGconn *c = PQconnectdb(info);

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect to %s: %s", info,
	             PQerrorMessage(c));
	return c;
}

static void admin_exec(const char *sql)
{
	char info[256];
	PGconn *c;
	PGresult *res;

	conninfo(info, sizeof(info), "postgres");
	c = connect_or_fail(info);
	res = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}

const char *tpg_database_new(void)
{
	const char *host = getenv(HOST_ENV), *why = getenv(WHY_ENV);
	char sql[256], name[64];

	cr_assert(host && *host, "the scratch PostgreSQL server is not running: %s",
	          why ? why : "it was not started (tpg_start)");
	snprintf(name, sizeof(name), "t_%ld_%u", (long)getpid(), ++n_databases);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'", name);
	admin_exec(sql);
	snprintf(url_buf, sizeof(url_buf),
	         "postgresql:///%s?host=%s/run&port=" PG_PORT "&user=postgres", name, host);
	return url_buf;
}

void tpg_database_drop(const char *url)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	char sql[256];

	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!strcmp(o->keyword, "dbname") && o->val) {
			snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
			         o->val);
			admin_exec(sql);
		}
	}
	PQconninfoFree(opts);
}

int64_t tpg_sql_int(const char *url, const char *sql)
{
	PGconn *c = connect_or_fail(url);
	PGresult *res = PQexec(c, sql);
	int64_t v = 0;
	const char *s;

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
	          "%s: %s", sql, PQerrorMessage(c));
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
	    !PQgetisnull(res, 0, 0)) {
		s = PQgetvalue(res, 0, 0);
		v = !strcmp(s, "t") ? 1 : !strcmp(s, "f") ? 0 : strtoll(s, NULL, 10);
	}
	PQclear(res);
	PQfinish(c);
	return v;
}

void tpg_sql_exec(const char *url, const char *sql)
{
	PGconn *c = connect_or_fail(url);
	PGresult *res = PQexec(c, sql);

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
	          "%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}
