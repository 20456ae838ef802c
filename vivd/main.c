/* vivd: Vivarium's daemon. `vivd serve` runs the API, the builder and the
 * runner fleet on one machine; `vivd api` and `vivd runner` run the roles
 * apart on a shared data directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "pipeline.h"
#include "privileges.h"
#include "runner.h"
#include "store.h"

struct options {
	const char *role;
	const char *datadir;
	const char *api_addr;
	const char *apps_addr;
	const char *domain;
	const char *user;
	const char *build_user;
	unsigned workers;
	unsigned builders;
	unsigned build_memory_mb;
	unsigned build_disk_mb;
	unsigned build_procs;
	unsigned build_timeout_s;
	bool no_sandbox;
	bool outbound_private;
	bool no_cpu_limit;
	size_t upload_max;
};

/* Who the roles run as: when vivd starts as root, the API, the builders
 * and the runner workers become user, and the launcher, which runs the
 * language steps of builds (the tenants' build scripts), becomes
 * build_user. Otherwise everything stays the user that started vivd. */
struct identities {
	bool drop;
	struct vivd_user user;
	struct vivd_user build_user;
};

static struct identities ids;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vivd serve|api|runner [options]\n"
		"       vivd version\n"
		"\n"
		"  serve    the API, the builder and the runner fleet on this machine\n"
		"  api      only the API and the builder\n"
		"  runner   only the runner fleet (serving apps)\n"
		"\n"
		"options:\n"
		"  --data DIR          data directory (default ./vivarium-data)\n"
		"  --api ADDR:PORT     control-plane API (default 127.0.0.1:8080)\n"
		"  --listen ADDR:PORT  apps (default 127.0.0.1:8000)\n"
		"  --domain NAME       apps answer at APP.NAME (default localhost)\n"
		"  --workers N         runner worker processes (default: one per core)\n"
		"  --upload-max MB     largest upload accepted (default 64)\n"
		"  --builders N        builds that run at once (default 2)\n"
		"  --build-memory MB   memory of one build's language step (default 2048)\n"
		"  --build-disk MB     what one build may write (default 1024; a tmpfs per\n"
		"                      builder when vivd starts as root)\n"
		"  --build-procs N     processes and threads of one build (default 512)\n"
		"  --build-timeout S   wall time of one build, every step (default 600)\n"
		"  --user NAME         when started as root, the user the API, builders and\n"
		"                      workers become (default vivarium)\n"
		"  --build-user NAME   when started as root, the user tenants' build steps\n"
		"                      run as (default vivarium-build)\n"
		"  --no-sandbox        build without bubblewrap, where it cannot run\n"
		"  --outbound-allow-private\n"
		"                      let apps' outbound requests reach loopback and private\n"
		"                      addresses (refused by default; for tests and trusted\n"
		"                      networks)\n"
		"  --no-cpu-limit      do not enforce apps' CPU time limits (limits.cpu_ms):\n"
		"                      only for benchmarks and hosts running trusted code\n");
}

/* Binds and listens on "ADDR:PORT"; the socket survives child restarts
 * because the supervisor holds it. */
static int listen_on(const char *spec, unsigned *port_out)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;

	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "vivd: '%s' is not ADDR:PORT\n", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (rc) {
		fprintf(stderr, "vivd: cannot resolve %s: %s\n", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
		fprintf(stderr, "vivd: cannot listen on %s: %s%s\n", spec, strerror(errno),
			errno == EADDRINUSE ? " (is another vivd running?)" : "");
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* A whole number from lo to hi for option name. */
static int number(const char *text, unsigned lo, unsigned hi, const char *name, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || v < lo || v > hi) {
		fprintf(stderr, "vivd: %s takes a whole number from %u to %u\n", name, lo, hi);
		return 1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{"data", required_argument, NULL, 'd'},
		{"api", required_argument, NULL, 'a'},
		{"listen", required_argument, NULL, 'l'},
		{"domain", required_argument, NULL, 'D'},
		{"workers", required_argument, NULL, 'w'},
		{"upload-max", required_argument, NULL, 'u'},
		{"builders", required_argument, NULL, 'b'},
		{"build-memory", required_argument, NULL, 'm'},
		{"build-disk", required_argument, NULL, 'k'},
		{"build-procs", required_argument, NULL, 'p'},
		{"build-timeout", required_argument, NULL, 't'},
		{"user", required_argument, NULL, 'U'},
		{"build-user", required_argument, NULL, 'B'},
		{"no-sandbox", no_argument, NULL, 'S'},
		{"outbound-allow-private", no_argument, NULL, 'P'},
		{"no-cpu-limit", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	memset(o, 0, sizeof(*o));
	o->datadir = "./vivarium-data";
	o->api_addr = "127.0.0.1:8080";
	o->apps_addr = "127.0.0.1:8000";
	o->domain = "localhost";
	o->workers = n > 0 ? (unsigned)n : 1;
	o->upload_max = (size_t)64 << 20;
	o->user = "vivarium";
	o->build_user = "vivarium-build";
	o->builders = 2;
	o->build_memory_mb = 2048;
	o->build_disk_mb = 1024;
	o->build_procs = 512;
	o->build_timeout_s = 600;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (number(optarg, 1, 64, "--builders", &o->builders))
				return 2;
			break;
		case 'm':
			if (number(optarg, 64, 1u << 20, "--build-memory", &o->build_memory_mb))
				return 2;
			break;
		case 'k':
			if (number(optarg, 16, 1u << 20, "--build-disk", &o->build_disk_mb))
				return 2;
			break;
		case 'p':
			if (number(optarg, 16, 1u << 20, "--build-procs", &o->build_procs))
				return 2;
			break;
		case 't':
			if (number(optarg, 10, 86400, "--build-timeout", &o->build_timeout_s))
				return 2;
			break;
		case 'U':
			o->user = optarg;
			break;
		case 'B':
			o->build_user = optarg;
			break;
		case 'd':
			o->datadir = optarg;
			break;
		case 'a':
			o->api_addr = optarg;
			break;
		case 'l':
			o->apps_addr = optarg;
			break;
		case 'D':
			o->domain = optarg;
			break;
		case 'w':
			o->workers = (unsigned)strtoul(optarg, NULL, 10);
			if (o->workers < 1 || o->workers > 256) {
				fprintf(stderr, "vivd: --workers takes 1 to 256\n");
				return 2;
			}
			break;
		case 'u':
			o->upload_max = (size_t)strtoul(optarg, NULL, 10) << 20;
			if (o->upload_max == 0) {
				fprintf(stderr, "vivd: --upload-max takes a size in MB\n");
				return 2;
			}
			break;
		case 'S':
			o->no_sandbox = true;
			break;
		case 'P':
			o->outbound_private = true;
			break;
		case 'C':
			o->no_cpu_limit = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o->role = argv[optind];
	if (strcmp(o->role, "version") == 0) {
		printf("vivd %s\n", VIV_VERSION);
		exit(0);
	}
	if (strcmp(o->role, "serve") && strcmp(o->role, "api") && strcmp(o->role, "runner")) {
		fprintf(stderr, "vivd: unknown command '%s'\n", o->role);
		usage(stderr);
		return 2;
	}
	return 0;
}

/* Opens the store once (creating the data directory and the schema) and
 * makes the admin token on first start, then closes it again: children open
 * their own connections. */
static int prepare_store(const struct options *o, bool print_token, const char *api_url)
{
	struct store *st = NULL;
	char err[512], *token = NULL;
	bool created = false;
	enum viv_err e;

	e = store_open(o->datadir, &st, err, sizeof(err));
	if (e) {
		fprintf(stderr, "vivd: %s\n", err);
		return 1;
	}
	e = store_admin_token_ensure(st, &token, &created);
	store_close(st);
	if (e) {
		fprintf(stderr, "vivd: cannot create the admin token: %s\n", viv_strerror(e));
		return 1;
	}
	if (print_token && created) {
		printf("\nFirst start: created the admin token, saved in %s/admin-token.\n"
		       "Use it as a bearer token with the API, or let the viv CLI find it:\n\n"
		       "  export VIV_TOKEN=%s\n"
		       "  curl -H \"Authorization: Bearer $VIV_TOKEN\" --data-binary @app.tar.gz \\\n"
		       "       %s/v1/apps/hello/deployments\n\n",
		       o->datadir, token, api_url);
	} else if (print_token) {
		printf("Admin token: %s/admin-token\n", o->datadir);
	}
	fflush(stdout);
	free(token);
	return 0;
}

/* What a role does first in its child: become its user (or, when vivd
 * is not root, keep none of its privileges), or end the child. */
static void become(const struct vivd_user *u, const char *role)
{
	char err[256];
	int rc = ids.drop ? vivd_become(u, err, sizeof(err)) : vivd_no_new_privs(err, sizeof(err));

	if (rc != 0) {
		viv_log(VIV_ERROR, "%s: %s", role, err);
		_exit(1);
	}
	/* What a role makes is its own unless it says otherwise (the build
	 * folder's files say so explicitly). */
	umask(077);
}

struct api_child {
	struct api_config cfg;
};

static int api_child_main(void *arg)
{
	struct api_child *a = arg;

	become(&ids.user, "api");
	return api_main(&a->cfg);
}

static int worker_child_main(void *arg)
{
	become(&ids.user, "worker");
	return run_worker_main(arg);
}

struct launcher_child {
	const struct pipe_config *cfg;
	int listen_fd;
};

static int launcher_child_main(void *arg)
{
	struct launcher_child *l = arg;

	become(&ids.build_user, "launcher");
	return pipe_launcher_main(l->cfg, l->listen_fd, ids.drop ? ids.user.uid : getuid());
}

/* prepare_store as the user the roles run as, so that the database and the
 * admin token are theirs. */
static int prepare_store_as_user(const struct options *o, bool print_token, const char *api_url)
{
	int status = 0;
	pid_t pid;

	if (!ids.drop)
		return prepare_store(o, print_token, api_url);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		become(&ids.user, "setup");
		_exit(prepare_store(o, print_token, api_url));
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* The users of the roles, when vivd starts as root: they must exist and
 * the user must be able to reach the data folder's parent. vivd gets a
 * mount namespace of its own for what it mounts. */
static int identities_setup(const struct options *o)
{
	char err[512], parent[PATH_MAX];
	char *slash;

	memset(&ids, 0, sizeof(ids));
	ids.drop = geteuid() == 0;
	if (!ids.drop)
		return 0;
	if (vivd_user_lookup(o->user, &ids.user, err, sizeof(err)) ||
	    vivd_user_lookup(o->build_user, &ids.build_user, err, sizeof(err))) {
		fprintf(stderr, "vivd: %s\n", err);
		return 1;
	}
	if (ids.user.uid == 0 || ids.build_user.uid == 0 || ids.user.uid == ids.build_user.uid ||
	    ids.user.gid == ids.build_user.gid) {
		fprintf(stderr,
			"vivd: --user and --build-user must be two users that are not root, each "
			"with a group of its own (now %s and %s)\n",
			o->user, o->build_user);
		return 1;
	}
	/* The user may write what the build user made in a build's folder
	 * through the build user's group, and nothing else of its. */
	ids.user.groups[ids.user.n_groups++] = ids.build_user.gid;
	if (vivd_private_mounts(err, sizeof(err))) {
		fprintf(stderr, "vivd: %s\n", err);
		return 1;
	}
	snprintf(parent, sizeof(parent), "%s", o->datadir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
	if (!vivd_user_can(&ids.user, parent, X_OK)) {
		fprintf(stderr,
			"vivd: the user %s cannot reach %s, where the data folder is; pick a data "
			"folder it can reach (--data), or open the folders on the way to it\n",
			o->user, parent);
		return 1;
	}
	return 0;
}

/* The platform's own folders (artifact headers, SDKs, npm tools, the web
 * page), which the roles read and builds see: where the users cannot
 * reach them (a checkout in root's home), each is shown read-only under
 * DATADIR/platform, a bind mount in vivd's own mount namespace. */
static int platform_setup(const struct options *o, const char **dirs[], size_t n)
{
	static char shown[8][PATH_MAX];
	char err[512], base[PATH_MAX];

	if (!ids.drop)
		return 0;
	snprintf(base, sizeof(base), "%s/platform", o->datadir);
	for (size_t i = 0; i < n && i < 8; i++) {
		const char *dir = *dirs[i], *name;

		if (!dir || access(dir, F_OK) != 0)
			continue;
		if (vivd_user_can(&ids.user, dir, R_OK | X_OK) &&
		    vivd_user_can(&ids.build_user, dir, R_OK | X_OK))
			continue;
		name = strrchr(dir, '/');
		name = name ? name + 1 : dir;
		snprintf(shown[i], sizeof(shown[i]), "%.3000s/%zu-%.200s", base, i, name);
		if ((mkdir(base, 0755) != 0 && errno != EEXIST) || chown(base, 0, 0) != 0 ||
		    vivd_bind_readonly(dir, shown[i], err, sizeof(err))) {
			fprintf(stderr, "vivd: %s\n", err[0] ? err : strerror(errno));
			return 1;
		}
		if (!vivd_user_can(&ids.user, shown[i], R_OK | X_OK) ||
		    !vivd_user_can(&ids.build_user, shown[i], R_OK | X_OK)) {
			fprintf(stderr,
				"vivd: the users %s and %s cannot read %s, which builds need; let "
				"them read it\n",
				o->user, o->build_user, dir);
			return 1;
		}
		viv_log(VIV_INFO, "%s is shown to vivd's users as %s", dir, shown[i]);
		*dirs[i] = shown[i];
	}
	return 0;
}

/* The builders' folders: DATADIR/builds/K for builder K, each a tmpfs of
 * the build disk size when vivd is root (in its own mount namespace, so
 * that they vanish with it), and where the build cgroups are. */
static int builds_setup(const struct options *o, struct pipe_config *pc, char *builds,
			size_t len)
{
	char err[512], slot[PATH_MAX + 16];

	snprintf(builds, len, "%s/builds", o->datadir);
	pc->builds_dir = builds;
	pc->builders = o->builders;
	pc->build_memory_mb = o->build_memory_mb;
	pc->build_disk_mb = o->build_disk_mb;
	pc->build_procs_max = o->build_procs;
	pc->build_timeout_ms = o->build_timeout_s * 1000u;
	if (!ids.drop)
		return 0;
	pc->build_gid = ids.build_user.gid;
	if (mkdir(builds, 0711) != 0 && errno != EEXIST) {
		fprintf(stderr, "vivd: cannot make %s: %s\n", builds, strerror(errno));
		return 1;
	}
	if (chown(builds, ids.user.uid, ids.user.gid) != 0 || chmod(builds, 0711) != 0) {
		fprintf(stderr, "vivd: cannot set up %s: %s\n", builds, strerror(errno));
		return 1;
	}
	for (unsigned k = 0; k < o->builders; k++) {
		snprintf(slot, sizeof(slot), "%s/%u", builds, k);
		if ((mkdir(slot, 0700) != 0 && errno != EEXIST) ||
		    vivd_mount_tmpfs(slot, o->build_disk_mb, ids.user.uid, ids.build_user.gid, err,
				     sizeof(err))) {
			fprintf(stderr, "vivd: %s\n", err[0] ? err : strerror(errno));
			return 1;
		}
	}
	if (pipe_cgroups_setup(&pc->cgroups, ids.build_user.uid, ids.build_user.gid, err,
			       sizeof(err)) != VIV_OK)
		viv_log(VIV_WARN,
			"builds are bounded by rlimits (RLIMIT_DATA %u MiB per process, "
			"RLIMIT_NPROC %u), not cgroups: %s",
			o->build_memory_mb, o->build_procs, err);
	return 0;
}

int main(int argc, char **argv)
{
	static char builds[PATH_MAX], launcher_name[108];
	struct options o;
	struct run_child_spec *kids;
	struct run_worker_config *wcfg;
	struct api_child api;
	struct launcher_child launcher;
	char api_url[300], why[512];
	unsigned api_port = 0, apps_port = 0, i;
	int api_fd = -1, apps_fd = -1, launcher_fd = -1, rc;
	size_t n = 0;
	bool want_api, want_runner;

	rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	want_api = strcmp(o.role, "runner") != 0;
	want_runner = strcmp(o.role, "api") != 0;
	memset(&api, 0, sizeof(api));
	pipe_config_defaults(&api.cfg.pipe);
	api.cfg.pipe.upload_max = o.upload_max;
	if (identities_setup(&o))
		return 1;
	if (want_api) {
		api_fd = listen_on(o.api_addr, &api_port);
		if (api_fd < 0)
			return 1;
	}
	if (want_runner) {
		apps_fd = listen_on(o.apps_addr, &apps_port);
		if (apps_fd < 0)
			return 1;
	}
	api.cfg.web_dir = VIV_SOURCE_DIR "/web";
	if (ids.drop) {
		const char **platform[] = {&api.cfg.pipe.include_dir, &api.cfg.pipe.sdk_dir,
					   &api.cfg.pipe.tool_dir, &api.cfg.web_dir};

		if (vivd_datadir_prepare(o.datadir, ids.user.uid, ids.user.gid, why, sizeof(why))) {
			fprintf(stderr, "vivd: %s\n", why);
			return 1;
		}
		if (platform_setup(&o, platform, sizeof(platform) / sizeof(platform[0])))
			return 1;
	}
	snprintf(api_url, sizeof(api_url), "http://%.*s:%u",
		 (int)(strrchr(o.api_addr, ':') - o.api_addr), o.api_addr, api_port);
	if (prepare_store_as_user(&o, want_api, api_url))
		return 1;

	if (want_api && !o.no_sandbox) {
		bool ok = ids.drop ? vivd_user_sandbox(&ids.build_user, &api.cfg.pipe, why,
						       sizeof(why)) &&
					     vivd_user_sandbox(&ids.user, &api.cfg.pipe, why,
							       sizeof(why))
				   : pipe_sandbox_available(&api.cfg.pipe, why, sizeof(why));
		if (!ok) {
			fprintf(stderr,
				"vivd: builds run inside bubblewrap, which cannot run here: %s\n"
				"vivd: fix that (install bubblewrap; allow unprivileged user "
				"namespaces),\nvivd: or start vivd with --no-sandbox to build "
				"without it\n",
				why);
			return 1;
		}
	}
	api.cfg.pipe.sandbox = !o.no_sandbox;
	if (want_api) {
		if (builds_setup(&o, &api.cfg.pipe, builds, sizeof(builds)))
			return 1;
		launcher_fd = pipe_launcher_listen(launcher_name, sizeof(launcher_name));
		if (launcher_fd < 0) {
			fprintf(stderr, "vivd: cannot make the launcher's socket: %s\n",
				strerror(errno));
			return 1;
		}
		api.cfg.pipe.launcher = launcher_name;
	}
	api.cfg.datadir = o.datadir;
	api.cfg.listen_fd = api_fd;
	api.cfg.domain = o.domain;
	api.cfg.apps_port = (int)apps_port;
	launcher.cfg = &api.cfg.pipe;
	launcher.listen_fd = launcher_fd;

	kids = calloc(o.workers + 2, sizeof(*kids));
	wcfg = calloc(o.workers, sizeof(*wcfg));
	if (!kids || !wcfg)
		return 1;
	if (want_api) {
		kids[n++] = (struct run_child_spec){"launcher", launcher_child_main, &launcher};
		kids[n++] = (struct run_child_spec){"api", api_child_main, &api};
	}
	for (i = 0; want_runner && i < o.workers; i++) {
		char *role = NULL;

		wcfg[i].datadir = o.datadir;
		wcfg[i].domain = o.domain;
		wcfg[i].listen_fd = apps_fd;
		wcfg[i].port = apps_port;
		wcfg[i].index = i;
		wcfg[i].request_body_max = (size_t)16 << 20;
		run_pool_config_defaults(&wcfg[i].pool);
		wcfg[i].pool.outbound_allow_private = o.outbound_private;
		wcfg[i].pool.cpu_limit = !o.no_cpu_limit;
		if (asprintf(&role, "worker %u", i) < 0)
			return 1;
		kids[n++] = (struct run_child_spec){role, worker_child_main, &wcfg[i]};
	}
	viv_log_role("supervisor");
	if (ids.drop)
		viv_log(VIV_INFO,
			"started as root: the API, builders and workers run as %s (uid %ld), "
			"tenants' build steps as %s (uid %ld); this supervisor only starts them",
			ids.user.name, (long)ids.user.uid, ids.build_user.name,
			(long)ids.build_user.uid);
	if (want_api)
		printf("API:  %s\n", api_url);
	if (want_runner)
		printf("Apps: http://APP.%s:%u/ (%u workers)\n", o.domain, apps_port, o.workers);
	fflush(stdout);
	return run_supervise(kids, n, 15000);
}
