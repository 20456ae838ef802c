/* vivd's settings table and the three things that read it: the command
 * line, the configuration file (`name = value` lines) and --help. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "viv.h"

#define CONFIG_MAX (64 * 1024)
#define LINE_SHOWN 60

enum kind {
	K_STRING,
	K_ADDR,  /* HOST:PORT or [IPV6]:PORT */
	K_NAME,  /* a domain name or a user name: letters, digits, '-', '.', '_' */
	K_UINT,  /* a whole number from min to max */
	K_BOOL,  /* --name / --no-name; true or false in the file */
	K_LEVEL, /* a log level */
	K_STORE, /* a postgres:// or postgresql:// URL */
};

struct setting {
	const char *name;
	enum kind kind;
	size_t offset;
	unsigned min, max;
	const char *arg;  /* what --help shows after the name */
	const char *help; /* one line; the default follows it */
};

#define AT(field) offsetof(struct vivd_options, field)

static const struct setting settings[] = {
        {"config", K_STRING, AT(config), 0, 0, "FILE",
         "read settings from FILE first (name = value lines)"},
        {"data", K_STRING, AT(datadir), 0, 0, "DIR", "the data folder"},
        {"store", K_STORE, AT(store_url), 0, 0, "URL",
         "keep the records in PostgreSQL (postgres://...; default: SQLite in the data folder)"},
        {"artifacts-from", K_STRING, AT(artifacts_from), 0, 0, "URL",
         "vivd runner on a host of its own: fetch artifacts from this API (http://HOST:PORT)"},
        {"token-file", K_STRING, AT(token_file), 0, 0, "FILE",
         "the file that holds an admin token for --artifacts-from"},
        {"api", K_ADDR, AT(api_addr), 0, 0, "ADDR:PORT",
         "the control-plane API ([::1]:8080 for IPv6)"},
        {"listen", K_ADDR, AT(apps_addr), 0, 0, "ADDR:PORT", "where apps are served"},
        {"domain", K_NAME, AT(domain), 0, 0, "NAME",
         "apps answer at APP.NAME (a wildcard DNS name)"},
        {"workers", K_UINT, AT(workers), 1, 256, "N",
         "runner worker processes (default: one per core)"},
        {"sandboxes", K_UINT, AT(sandboxes), 1, 16000, "N",
         "instances one worker runs at once (8 GiB of address space each)"},
        {"builders", K_UINT, AT(builders), 1, 64, "N", "builds that run at once"},
        {"upload-max", K_UINT, AT(upload_max_mb), 1, 4096, "MB", "the largest upload accepted"},
        {"request-max", K_UINT, AT(request_max_mb), 1, 1024, "MB",
         "the largest request body an app is sent"},
        {"build-memory", K_UINT, AT(build_memory_mb), 64, 1u << 20, "MB",
         "memory of a build's language step (its files come on top)"},
        {"build-disk", K_UINT, AT(build_disk_mb), 16, 1u << 20, "MB",
         "files one build may write (a tmpfs per builder, as root)"},
        {"build-procs", K_UINT, AT(build_procs), 16, 1u << 20, "N",
         "processes and threads of one build at once"},
        {"build-lease", K_UINT, AT(build_lease_s), 2, 3600, "S",
         "a builder's claim on a build without its heartbeat (every third of it)"},
        {"build-timeout", K_UINT, AT(build_timeout_s), 10, 86400, "S",
         "wall time of one build, every step"},
        {"app-memory", K_UINT, AT(app_memory_mb), 1, VIV_LIMIT_MEMORY_MB_MAX, "MB",
         "an app's linear memory when its manifest says nothing"},
        {"app-memory-max", K_UINT, AT(app_memory_max_mb), 1, 4096, "MB",
         "the most a manifest may ask for (limits.memory_mb)"},
        {"app-cpu", K_UINT, AT(app_cpu_ms), 1, 3600000, "MS",
         "an app's CPU time per request when its manifest says nothing"},
        {"app-cpu-max", K_UINT, AT(app_cpu_max_ms), 1, 3600000, "MS",
         "the most a manifest may ask for (limits.cpu_ms)"},
        {"app-wall", K_UINT, AT(app_wall_ms), 1, 3600000, "MS",
         "an app's wall time per request when its manifest says nothing"},
        {"app-wall-max", K_UINT, AT(app_wall_max_ms), 1, 3600000, "MS",
         "the most a manifest may ask for (limits.wall_ms)"},
        {"sandbox", K_BOOL, AT(sandbox), 0, 0, NULL,
         "build inside bubblewrap (--no-sandbox where it cannot run)"},
        {"cpu-limit", K_BOOL, AT(cpu_limit), 0, 0, NULL,
         "enforce apps' CPU time (turn off only to benchmark)"},
        {"outbound-allow-private", K_BOOL, AT(outbound_allow_private), 0, 0, NULL,
         "apps' outbound requests may reach private addresses"},
        {"user", K_NAME, AT(user), 0, 0, "NAME",
         "as root: the user of the API, builders and workers"},
        {"build-user", K_NAME, AT(build_user), 0, 0, "NAME",
         "as root: the user of tenants' build steps"},
        {"log-level", K_LEVEL, AT(log_level), 0, 0, "LEVEL",
         "debug, info, warn or error: the least the operator log shows"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void defaults(struct vivd_options *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	o->datadir = "./vivarium-data";
	o->api_addr = "127.0.0.1:8080";
	o->apps_addr = "127.0.0.1:8000";
	o->domain = "localhost";
	o->user = "vivarium";
	o->build_user = "vivarium-build";
	o->log_level = "info";
	o->workers = cpus > 0 ? (unsigned)(cpus > 256 ? 256 : cpus) : 1;
	o->builders = 2;
	o->sandboxes = 64;
	o->upload_max_mb = 64;
	o->request_max_mb = 16;
	o->build_memory_mb = 2048;
	o->build_disk_mb = 1024;
	o->build_procs = 512;
	o->build_timeout_s = 600;
	o->build_lease_s = STORE_LEASE_MS_DEFAULT / 1000;
	o->app_memory_mb = VIV_LIMIT_MEMORY_MB_DEFAULT;
	o->app_memory_max_mb = VIV_LIMIT_MEMORY_MB_MAX;
	o->app_cpu_ms = VIV_LIMIT_CPU_MS_DEFAULT;
	o->app_cpu_max_ms = VIV_LIMIT_CPU_MS_MAX;
	o->app_wall_ms = VIV_LIMIT_WALL_MS_DEFAULT;
	o->app_wall_max_ms = VIV_LIMIT_WALL_MS_MAX;
	o->sandbox = true;
	o->cpu_limit = true;
}

/* The default of s as text, for --help. */
static void default_text(const struct setting *s, const struct vivd_options *d, char *buf,
                         size_t len)
{
	const char *p = (const char *)d + s->offset;

	switch (s->kind) {
	case K_UINT:
		snprintf(buf, len, "%u", *(const unsigned *)(const void *)p);
		break;
	case K_BOOL:
		snprintf(buf, len, "%s", *(const bool *)(const void *)p ? "on" : "off");
		break;
	default:
		snprintf(buf, len, "%s",
		         *(const char *const *)(const void *)p
		                 ? *(const char *const *)(const void *)p
		                 : "none");
		break;
	}
}

void vivd_usage(FILE *f)
{
	struct vivd_options d;

	defaults(&d);
	fprintf(f, "usage: vivd serve|api|builder|runner [options]\n"
	           "       vivd version\n"
	           "\n"
	           "  serve    the API, the builders and the runner fleet on this machine\n"
	           "  api      the API only (it queues builds for builders on the same data)\n"
	           "  builder  the builders only (they build what the API queued)\n"
	           "  runner   the runner fleet only (serving apps)\n"
	           "\n"
	           "Every option may also be set in the file --config names, as `name = value`\n"
	           "(scripts/vivd.conf documents them all); the command line wins.\n"
	           "\n"
	           "options:\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		char head[64], dflt[96];

		if (s->kind == K_BOOL)
			snprintf(head, sizeof(head), "--%s, --no-%s", s->name, s->name);
		else
			snprintf(head, sizeof(head), "--%s %s", s->name, s->arg);
		default_text(s, &d, dflt, sizeof(dflt));
		/* A long head puts its text on the next line. */
		if (strlen(head) > 28)
			fprintf(f, "  %s\n  %-28s %s", head, "", s->help);
		else
			fprintf(f, "  %-28s %s", head, s->help);
		if (strcmp(s->name, "config") && strcmp(s->name, "workers"))
			fprintf(f, " [%s]", dflt);
		fprintf(f, "\n");
	}
	fprintf(f, "  %-28s this text\n", "--help");
}

const char *const *vivd_setting_names(void)
{
	static const char *names[N_SETTINGS + 1];

	for (size_t i = 0; i < N_SETTINGS; i++)
		names[i] = settings[i].name;
	names[N_SETTINGS] = NULL;
	return names;
}

/* ---- Values ---------------------------------------------------------------------- */

bool vivd_addr_split(const char *spec, char *host, size_t hostlen, unsigned *port, char *err,
                     size_t errlen)
{
	const char *colon, *h = spec;
	size_t hl;
	uint64_t p;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':') {
			viv_errf(err, errlen, "'%.60s' is not [IPV6]:PORT", spec);
			return false;
		}
		h = spec + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || memchr(spec, ':', (size_t)(colon - spec))) {
			viv_errf(err, errlen,
			         "'%.60s' is not ADDR:PORT (write an IPv6 address in brackets: "
			         "[::1]:8080)",
			         spec);
			return false;
		}
		hl = (size_t)(colon - spec);
	}
	if (hl >= hostlen) {
		viv_errf(err, errlen, "the address in '%.60s' is too long", spec);
		return false;
	}
	if (!viv_parse_u64(colon + 1, NULL, 65535, &p) || p < 1) {
		viv_errf(err, errlen, "the port in '%.60s' must be a number from 1 to 65535", spec);
		return false;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return true;
}

static bool name_ok(const char *v)
{
	if (!*v || strlen(v) > 253)
		return false;
	for (const char *c = v; *c; c++) {
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_')
			return false;
	}
	return true;
}

/* Sets setting s of o from text v (borrowed for the life of the process);
 * false with the reason in err. */
static bool set_value(struct vivd_options *o, const struct setting *s, const char *v, char *err,
                      size_t errlen)
{
	char *p = (char *)o + s->offset;
	char host[256];
	unsigned port;

	switch (s->kind) {
	case K_STRING:
		if (!*v) {
			viv_errf(err, errlen, "%s needs a value", s->name);
			return false;
		}
		*(const char **)(void *)p = v;
		return true;
	case K_ADDR: {
		char why[200];

		if (!vivd_addr_split(v, host, sizeof(host), &port, why, sizeof(why))) {
			viv_errf(err, errlen, "%s: %s", s->name, why);
			return false;
		}
		*(const char **)(void *)p = v;
		return true;
	}
	case K_NAME:
		if (!name_ok(v)) {
			viv_errf(err, errlen,
			         "%s takes a name of letters, digits, '-', '.' and '_', not '%.*s'",
			         s->name, LINE_SHOWN, v);
			return false;
		}
		*(const char **)(void *)p = v;
		return true;
	case K_STORE:
		if (!store_url_is_postgres(v)) {
			viv_errf(err, errlen,
			         "store takes a postgres:// or postgresql:// URL, not '%.*s'",
			         LINE_SHOWN, v);
			return false;
		}
		*(const char **)(void *)p = v;
		return true;
	case K_LEVEL:
		if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") &&
		    strcmp(v, "error")) {
			viv_errf(err, errlen, "log-level is debug, info, warn or error, not '%.*s'",
			         LINE_SHOWN, v);
			return false;
		}
		*(const char **)(void *)p = v;
		return true;
	case K_UINT: {
		uint64_t n;

		if (!viv_parse_u64(v, NULL, s->max, &n) || n < s->min) {
			viv_errf(err, errlen, "%s takes a whole number from %u to %u, not '%.*s'",
			         s->name, s->min, s->max, LINE_SHOWN, v);
			return false;
		}
		*(unsigned *)(void *)p = (unsigned)n;
		return true;
	}
	case K_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(bool *)(void *)p = true;
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
		         !strcmp(v, "0"))
			*(bool *)(void *)p = false;
		else {
			viv_errf(err, errlen, "%s is true or false, not '%.*s'", s->name,
			         LINE_SHOWN, v);
			return false;
		}
		return true;
	}
	return false;
}

static const struct setting *find(const char *name, size_t n)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strlen(settings[i].name) == n && strncmp(settings[i].name, name, n) == 0)
			return &settings[i];
	}
	return NULL;
}

/* Checks what only makes sense together. */
static bool consistent(const struct vivd_options *o, char *err, size_t errlen)
{
	if (o->app_memory_mb > o->app_memory_max_mb || o->app_cpu_ms > o->app_cpu_max_ms ||
	    o->app_wall_ms > o->app_wall_max_ms) {
		viv_errf(err, errlen,
		         "an app default (app-memory, app-cpu, app-wall) is above its "
		         "maximum (app-memory-max, app-cpu-max, app-wall-max)");
		return false;
	}
	if (o->app_cpu_ms > o->app_wall_ms) {
		viv_errf(err, errlen,
		         "app-cpu (%u ms) is above app-wall (%u ms): a request "
		         "could never use its CPU time",
		         o->app_cpu_ms, o->app_wall_ms);
		return false;
	}
	if (o->artifacts_from && strcmp(o->role, "runner")) {
		viv_errf(err, errlen,
		         "artifacts-from is for `vivd runner` on a host that does not share the "
		         "builders' data folder");
		return false;
	}
	if (o->artifacts_from && (strncmp(o->artifacts_from, "http://", 7) != 0 &&
	                          strncmp(o->artifacts_from, "https://", 8) != 0)) {
		viv_errf(err, errlen, "artifacts-from is the API's URL, http://HOST:PORT, not '%s'",
		         o->artifacts_from);
		return false;
	}
	if (!o->artifacts_from != !o->token_file) {
		viv_errf(err, errlen, "artifacts-from and token-file go together");
		return false;
	}
	if (!strcmp(o->api_addr, o->apps_addr)) {
		viv_errf(err, errlen, "api and listen are the same address, %s", o->api_addr);
		return false;
	}
	return true;
}

/* ---- The configuration file ------------------------------------------------------ */

/* Applies the file at path. Its text is kept: the values point into it. */
static bool read_config(struct vivd_options *o, const char *path, char *err, size_t errlen)
{
	char *text = NULL, *line, *next;
	size_t len = 0;
	unsigned lineno = 0;
	enum viv_err e;

	e = viv_read_file(path, CONFIG_MAX, &text, &len);
	if (e) {
		viv_errf(err, errlen, "cannot read the configuration file %s: %s", path,
		         e == VIV_ERR_NOT_FOUND ? "there is no such file"
		         : e == VIV_ERR_TOO_BIG ? "it is larger than 64 KiB"
		                                : strerror(errno));
		return false;
	}
	if (memchr(text, '\0', len)) {
		viv_errf(err, errlen, "%s is not a text file", path);
		free(text);
		return false;
	}
	for (line = text; line; line = next) {
		char *eq, *name, *value, *end;
		const struct setting *s;
		char why[256];

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (isspace((unsigned char)*line))
			line++;
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			viv_errf(err, errlen, "%s:%u: '%.*s' is not name = value", path, lineno,
			         LINE_SHOWN, line);
			free(text);
			return false;
		}
		for (end = eq; end > line && isspace((unsigned char)end[-1]); end--)
			;
		name = line;
		*end = '\0';
		for (value = eq + 1; isspace((unsigned char)*value); value++)
			;
		for (end = value + strlen(value); end > value && isspace((unsigned char)end[-1]);
		     end--)
			;
		*end = '\0';
		s = find(name, strlen(name));
		if (!s || !strcmp(name, "config")) {
			viv_errf(err, errlen,
			         "%s:%u: there is no setting '%.*s' (vivd --help lists "
			         "them)",
			         path, lineno, LINE_SHOWN, name);
			free(text);
			return false;
		}
		if (!set_value(o, s, value, why, sizeof(why))) {
			viv_errf(err, errlen, "%s:%u: %s", path, lineno, why);
			free(text);
			return false;
		}
	}
	/* The values point into text, which lives as long as vivd. */
	return true;
}

/* ---- The command line -------------------------------------------------------------- */

/* The setting an argument "--name" or "--name=value" names, its inline
 * value (or NULL), and whether it was "--no-name". */
static const struct setting *option_of(const char *arg, const char **inline_value, bool *negated)
{
	const char *name = arg + 2, *eq = strchr(name, '=');
	size_t n = eq ? (size_t)(eq - name) : strlen(name);
	const struct setting *s = find(name, n);

	*inline_value = eq ? eq + 1 : NULL;
	*negated = false;
	if (!s && n > 3 && strncmp(name, "no-", 3) == 0) {
		s = find(name + 3, n - 3);
		if (s && s->kind != K_BOOL)
			s = NULL;
		*negated = s != NULL;
	}
	return s;
}

int vivd_options_parse(int argc, char **argv, struct vivd_options *o, bool *done)
{
	char err[512];
	int i;

	*done = false;
	defaults(o);
	/* The file first, wherever --config stands, so that the command line
	 * wins over it. */
	for (i = 1; i < argc; i++) {
		const char *path = NULL;

		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path) {
			o->config = path;
			if (!read_config(o, path, err, sizeof(err))) {
				fprintf(stderr, "vivd: %s\n", err);
				return 2;
			}
		}
	}
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *value;
		const struct setting *s;
		bool negated;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			vivd_usage(stdout);
			*done = true;
			return 0;
		}
		if (strncmp(arg, "--", 2) != 0) {
			if (o->role) {
				fprintf(stderr, "vivd: '%s' is not an option; the command is %s\n",
				        arg, o->role);
				return 2;
			}
			o->role = arg;
			continue;
		}
		s = option_of(arg, &value, &negated);
		if (!s) {
			fprintf(stderr, "vivd: there is no option %s (vivd --help lists them)\n",
			        arg);
			return 2;
		}
		if (s->kind == K_BOOL) {
			if (value && negated) {
				fprintf(stderr, "vivd: %s takes no value\n", arg);
				return 2;
			}
			if (!value)
				value = negated ? "false" : "true";
		} else if (!value) {
			if (i + 1 >= argc) {
				fprintf(stderr, "vivd: --%s needs a value (%s)\n", s->name, s->arg);
				return 2;
			}
			value = argv[++i];
		}
		if (!strcmp(s->name, "config"))
			continue;
		if (!set_value(o, s, value, err, sizeof(err))) {
			fprintf(stderr, "vivd: --%s\n", err);
			return 2;
		}
	}
	if (o->role && strcmp(o->role, "version") == 0) {
		printf("vivd %s\n", VIV_VERSION);
		*done = true;
		return 0;
	}
	if (!o->role || (strcmp(o->role, "serve") && strcmp(o->role, "api") &&
	                 strcmp(o->role, "builder") && strcmp(o->role, "runner"))) {
		if (o->role)
			fprintf(stderr, "vivd: unknown command '%s'\n", o->role);
		vivd_usage(stderr);
		return 2;
	}
	if (!consistent(o, err, sizeof(err))) {
		fprintf(stderr, "vivd: %s\n", err);
		return 2;
	}
	return 0;
}
