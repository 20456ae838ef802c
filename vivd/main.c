/* vivd: Vivarium's daemon. `vivd serve` runs the API, the builder and the
 * runner fleet on one machine; `vivd api` and `vivd runner` run the roles
 * apart on a shared data directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "pipeline.h"
#include "runner.h"
#include "store.h"

struct options {
	const char *role;
	const char *datadir;
	const char *api_addr;
	const char *apps_addr;
	const char *domain;
	unsigned workers;
	bool no_sandbox;
	bool outbound_private;
	bool no_cpu_limit;
	size_t upload_max;
};

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

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{"data", required_argument, NULL, 'd'},
		{"api", required_argument, NULL, 'a'},
		{"listen", required_argument, NULL, 'l'},
		{"domain", required_argument, NULL, 'D'},
		{"workers", required_argument, NULL, 'w'},
		{"upload-max", required_argument, NULL, 'u'},
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
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
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

struct api_child {
	struct api_config cfg;
};

static int api_child_main(void *arg)
{
	struct api_child *a = arg;

	return api_main(&a->cfg);
}

static int worker_child_main(void *arg)
{
	return run_worker_main(arg);
}

int main(int argc, char **argv)
{
	struct options o;
	struct run_child_spec *kids;
	struct run_worker_config *wcfg;
	struct api_child api;
	char api_url[300], why[512];
	unsigned api_port = 0, apps_port = 0, i;
	int api_fd = -1, apps_fd = -1, rc;
	size_t n = 0;
	bool want_api, want_runner;

	rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	want_api = strcmp(o.role, "runner") != 0;
	want_runner = strcmp(o.role, "api") != 0;
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
	snprintf(api_url, sizeof(api_url), "http://%.*s:%u",
		 (int)(strrchr(o.api_addr, ':') - o.api_addr), o.api_addr, api_port);
	if (prepare_store(&o, want_api, api_url))
		return 1;

	memset(&api, 0, sizeof(api));
	pipe_config_defaults(&api.cfg.pipe);
	api.cfg.pipe.upload_max = o.upload_max;
	if (want_api && !o.no_sandbox && !pipe_sandbox_available(why, sizeof(why))) {
		fprintf(stderr,
			"vivd: builds run inside bubblewrap, which cannot run here: %s\n"
			"vivd: fix that (install bubblewrap; allow user namespaces), or start vivd "
			"with --no-sandbox to build without it\n",
			why);
		return 1;
	}
	api.cfg.pipe.sandbox = !o.no_sandbox;
	api.cfg.datadir = o.datadir;
	api.cfg.listen_fd = api_fd;
	api.cfg.domain = o.domain;
	api.cfg.apps_port = (int)apps_port;
	api.cfg.web_dir = VIV_SOURCE_DIR "/web";

	kids = calloc(o.workers + 1, sizeof(*kids));
	wcfg = calloc(o.workers, sizeof(*wcfg));
	if (!kids || !wcfg)
		return 1;
	if (want_api)
		kids[n++] = (struct run_child_spec){"api", api_child_main, &api};
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
	if (want_api)
		printf("API:  %s\n", api_url);
	if (want_runner)
		printf("Apps: http://APP.%s:%u/ (%u workers)\n", o.domain, apps_port, o.workers);
	fflush(stdout);
	return run_supervise(kids, n, 15000);
}
