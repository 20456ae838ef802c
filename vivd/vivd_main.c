/* vivd: Vivarium's daemon. `vivd serve` runs the API, the builders and the
 * runner fleet on one machine, each role in processes of its own under one
 * supervisor; `vivd api`, `vivd builder` and `vivd runner` run the roles
 * apart on a shared data directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "fetch.h"
#include "pipeline.h"
#include "options.h"
#include "privileges.h"
#include "runner.h"
#include "store.h"
#include "supervisor.h"

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

/* Binds and listens on "ADDR:PORT" or "[IPV6]:PORT"; the socket survives
 * child restarts because the supervisor holds it. */
static int listen_on(const char *spec, unsigned *port_out)
{
	char host[256], port[16], err[256];
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned p;
	int fd = -1, one = 1, rc;

	if (!vivd_addr_split(spec, host, sizeof(host), &p, err, sizeof(err))) {
		fprintf(stderr, "vivd: %s\n", err);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
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

/* Opens the store once (creating the data directory and the schema) and,
 * for the API, makes the admin token on first start, then closes it again:
 * children open their own connections. A builder or runner alone makes no
 * token: with the records in PostgreSQL, its data folder is not the API's,
 * and a token file of its own would replace the API's admin token. */
static int prepare_store(const struct vivd_options *o, bool print_token, const char *api_url)
{
	struct store *st = NULL;
	char err[512], *token = NULL;
	bool created = false;
	enum viv_err e;

	e = store_open_db(o->datadir, o->store_url, &st, err, sizeof(err));
	if (e) {
		fprintf(stderr, "vivd: %s\n", err);
		return 1;
	}
	if (!print_token) {
		store_close(st);
		return 0;
	}
	e = store_admin_token_ensure(st, &token, &created);
	store_close(st);
	if (e == VIV_ERR_EXISTS) {
		printf("Admin token: made by another host of this database; copy its "
		       "admin-token file to %s/admin-token\n",
		       o->datadir);
		fflush(stdout);
		return 0;
	}
	if (e) {
		fprintf(stderr, "vivd: cannot create the admin token: %s\n", viv_strerror(e));
		return 1;
	}
	if (print_token && created) {
		printf("\nFirst start: created the admin token, saved in %s/admin-token.\n"
		       "Use it as a bearer token with the API, or let the viv CLI find it:\n\n"
		       "  export VIV_TOKEN=%s\n"
		       "  curl -H \"Authorization: Bearer $VIV_TOKEN\" --data-binary @app.tar.gz "
		       "\\\n"
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
	pid_t supervisor = getppid();
	int rc = ids.drop ? vivd_become(u, err, sizeof(err)) : vivd_no_new_privs(err, sizeof(err));

	if (rc != 0) {
		viv_log(VIV_ERROR, "%s: %s", role, err);
		_exit(1);
	}
	/* A change of user clears the signal the kernel sends when the
	 * supervisor dies, which the fleet set: without it a role outlived
	 * a supervisor killed with SIGKILL (the launcher did, for ever). Set
	 * again, it cannot miss a death that came before it: that one
	 * shows in getppid(). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != supervisor) {
		viv_log(VIV_ERROR, "%s: the supervisor is gone", role);
		_exit(1);
	}
	/* What a role makes is its own unless it says otherwise (the build
	 * folder's files say so explicitly). */
	umask(077);
}

/* The launcher's listening socket, which every role inherits. Only the
 * launcher and the supervisor (which hands it to a launcher it restarts)
 * keep it: while any other process holds it, a builder's request to a
 * launcher that is gone waits in its backlog for the full timeout instead
 * of failing at once. */
static int launcher_socket = -1;

static void close_launcher_socket(void)
{
	if (launcher_socket >= 0)
		close(launcher_socket);
	launcher_socket = -1;
}

static int api_child_main(void *arg)
{
	close_launcher_socket();
	become(&ids.user, "api");
	return api_main(arg);
}

/* The builder role: as the platform's user, like the API before it; its
 * language steps go to the launcher, which runs them as the build user. */
struct builder_child {
	const char *datadir;
	const struct pipe_config *cfg;
};

static int builder_child_main(void *arg)
{
	struct builder_child *b = arg;

	close_launcher_socket();
	become(&ids.user, "builder");
	return pipe_builder_main(b->datadir, b->cfg);
}

static int worker_child_main(void *arg)
{
	struct run_worker_config *cfg = arg;

	close_launcher_socket();
	/* The worker's pool reads which pages of a guest's memory are mapped
	 * from here, which it could not open once it has changed its user
	 * (this is the child's own copy of the configuration). Opened with
	 * root's capabilities, it would show the physical address of every
	 * page to the process that runs tenants' code, which helps attacks
	 * on DRAM (Rowhammer): opened without them, it shows none. */
	if (ids.drop)
		cfg->pool.pagemap_fd =
		        vivd_open_without_caps("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	become(&ids.user, "worker");
	return run_worker_main(cfg);
}

static int fetcher_child_main(void *arg)
{
	close_launcher_socket();
	become(&ids.user, "fetcher");
	return vivd_fetch_main(arg);
}

/* The admin token in path, its first line, for a runner host's fetcher:
 * read before the roles change user, as the file may be root's. */
static char *read_token(const char *path)
{
	char *text = NULL;
	size_t len = 0;

	if (viv_read_file(path, 4096, &text, &len) != VIV_OK) {
		fprintf(stderr, "vivd: cannot read the token file %s: %s\n", path, strerror(errno));
		return NULL;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (!text[0]) {
		fprintf(stderr, "vivd: the token file %s is empty\n", path);
		free(text);
		return NULL;
	}
	return text;
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
static int prepare_store_as_user(const struct vivd_options *o, bool print_token,
                                 const char *api_url)
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
static int identities_setup(const struct vivd_options *o)
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
static int platform_setup(const struct vivd_options *o, const char **dirs[], size_t n)
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
static int builds_setup(const struct vivd_options *o, struct pipe_config *pc, char *builds,
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
	pc->lease_ms = o->build_lease_s * 1000u;
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
	static char builds[PATH_MAX], launcher_name[108], web_dir[PATH_MAX], web_real[PATH_MAX];
	static char datadir_abs[PATH_MAX];
	struct vivd_options o;
	struct vivd_child *kids;
	struct run_worker_config *wcfg;
	struct api_config api;
	struct pipe_config pipe;
	struct builder_child builder;
	struct launcher_child launcher;
	struct vivd_fetch_config fetch;
	char api_url[300], why[512];
	unsigned api_port = 0, apps_port = 0, i;
	int api_fd = -1, apps_fd = -1, launcher_fd = -1, rc;
	size_t n = 0;
	bool want_api, want_builder, want_runner, done;

	rc = vivd_options_parse(argc, argv, &o, &done);
	if (rc || done)
		return rc;
	viv_log_level(!strcmp(o.log_level, "debug")   ? VIV_DEBUG
	              : !strcmp(o.log_level, "warn")  ? VIV_WARN
	              : !strcmp(o.log_level, "error") ? VIV_ERROR
	                                              : VIV_INFO);
	/* Every role and the launcher work with the data folder's real,
	 * absolute path: builds run in other folders and mount namespaces,
	 * where a relative one leads elsewhere, and the launcher compares
	 * paths with it. */
	if ((mkdir(o.datadir, 0700) != 0 && errno != EEXIST) || !realpath(o.datadir, datadir_abs)) {
		fprintf(stderr, "vivd: cannot make or reach the data folder %s: %s\n", o.datadir,
		        strerror(errno));
		return 1;
	}
	o.datadir = datadir_abs;
	want_api = !strcmp(o.role, "serve") || !strcmp(o.role, "api");
	want_builder = !strcmp(o.role, "serve") || !strcmp(o.role, "builder");
	want_runner = !strcmp(o.role, "serve") || !strcmp(o.role, "runner");
	memset(&api, 0, sizeof(api));
	pipe_config_defaults(&pipe);
	pipe.upload_max = (size_t)o.upload_max_mb << 20;
	pipe.store_url = o.store_url;
	pipe.limits_default = (struct viv_limits){o.app_memory_mb, o.app_cpu_ms, o.app_wall_ms};
	pipe.limits_max =
	        (struct viv_limits){o.app_memory_max_mb, o.app_cpu_max_ms, o.app_wall_max_ms};
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
	if (!viv_share_dir()) {
		fprintf(stderr, "vivd: cannot find the platform's files (share/vivarium beside the "
		                "program, "
		                "holding sdk/ and include/); install Vivarium whole, or set "
		                "VIVARIUM_SHARE\n");
		return 1;
	}
	snprintf(web_dir, sizeof(web_dir), "%s/web", viv_share_dir());
	api.web_dir = realpath(web_dir, web_real) ? web_real : web_dir;
	if (ids.drop) {
		const char **platform[] = {&pipe.include_dir, &pipe.sdk_dir, &pipe.tool_dir,
		                           &api.web_dir};

		if (vivd_datadir_prepare(o.datadir, ids.user.uid, ids.user.gid, why, sizeof(why))) {
			fprintf(stderr, "vivd: %s\n", why);
			return 1;
		}
		if (platform_setup(&o, platform, sizeof(platform) / sizeof(platform[0])))
			return 1;
	}
	/* The address as given, brackets of an IPv6 one kept, with the port
	 * that was bound (0 picks one). */
	snprintf(api_url, sizeof(api_url), "http://%.*s:%u",
	         (int)(strrchr(o.api_addr, ':') - o.api_addr), o.api_addr, api_port);
	if (prepare_store_as_user(&o, want_api, api_url))
		return 1;

	if (want_builder && o.sandbox) {
		bool ok = ids.drop ? vivd_user_sandbox(&ids.build_user, &pipe, why, sizeof(why)) &&
		                             vivd_user_sandbox(&ids.user, &pipe, why, sizeof(why))
		                   : pipe_sandbox_available(&pipe, why, sizeof(why));
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
	pipe.sandbox = o.sandbox;
	if (want_builder) {
		if (builds_setup(&o, &pipe, builds, sizeof(builds)))
			return 1;
		launcher_fd = pipe_launcher_listen(launcher_name, sizeof(launcher_name));
		if (launcher_fd < 0) {
			fprintf(stderr, "vivd: cannot make the launcher's socket: %s\n",
			        strerror(errno));
			return 1;
		}
		pipe.launcher = launcher_name;
	}
	api.datadir = o.datadir;
	api.store_url = o.store_url;
	api.listen_fd = api_fd;
	api.domain = o.domain;
	api.apps_port = (int)apps_port;
	api.upload_max = pipe.upload_max;
	api.sdk_dir = pipe.sdk_dir;
	api.tool_dir = pipe.tool_dir;
	builder.datadir = o.datadir;
	builder.cfg = &pipe;
	launcher.cfg = &pipe;
	launcher.listen_fd = launcher_fd;
	launcher_socket = launcher_fd;

	kids = calloc(o.workers + 4, sizeof(*kids));
	wcfg = calloc(o.workers, sizeof(*wcfg));
	if (!kids || !wcfg)
		return 1;
	if (want_builder) {
		kids[n++] = (struct vivd_child){"launcher", launcher_child_main, &launcher,
		                                VIVD_NICE_BUILD};
		kids[n++] = (struct vivd_child){"builder", builder_child_main, &builder,
		                                VIVD_NICE_BUILD};
	}
	if (want_api)
		kids[n++] = (struct vivd_child){"api", api_child_main, &api, VIVD_NICE_API};
	for (i = 0; want_runner && i < o.workers; i++) {
		char *role = NULL;

		wcfg[i].datadir = o.datadir;
		wcfg[i].store_url = o.store_url;
		wcfg[i].domain = o.domain;
		wcfg[i].listen_fd = apps_fd;
		wcfg[i].port = apps_port;
		wcfg[i].index = i;
		wcfg[i].request_body_max = (size_t)o.request_max_mb << 20;
		run_pool_config_defaults(&wcfg[i].pool);
		wcfg[i].pool.outbound_allow_private = o.outbound_allow_private;
		wcfg[i].pool.cpu_limit = o.cpu_limit;
		wcfg[i].pool.slots = o.sandboxes;
		if (asprintf(&role, "worker %u", i) < 0)
			return 1;
		kids[n++] =
		        (struct vivd_child){role, worker_child_main, &wcfg[i], VIVD_NICE_WORKER};
	}
	if (want_runner && o.artifacts_from) {
		fetch = (struct vivd_fetch_config){o.datadir, o.store_url, o.artifacts_from,
		                                   read_token(o.token_file), &pipe};
		if (!fetch.token)
			return 1;
		kids[n++] =
		        (struct vivd_child){"fetcher", fetcher_child_main, &fetch, VIVD_NICE_API};
	}
	viv_log_role("supervisor");
	/* Every request in flight in a worker holds descriptors and
	 * mappings: say so now when the machine's limits leave fewer than
	 * its sandboxes, rather than fail requests later. */
	if (want_runner && !vivd_raise_nofile(o.sandboxes, why, sizeof(why)))
		viv_log(VIV_WARN, "%s", why);
	if (want_runner && !vivd_map_count_fits(o.sandboxes, why, sizeof(why)))
		viv_log(VIV_WARN, "%s", why);
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
	return vivd_supervise(kids, n, 15000);
}
