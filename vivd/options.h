/* vivd's settings: one table that the command line, the configuration file
 * and --help all read, so that every setting is named, checked and
 * documented in one place. Private to vivd/. */
#ifndef VIVD_OPTIONS_H
#define VIVD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Every setting of vivd, after defaults, the configuration file and the
 * command line. Strings are borrowed from argv or from the configuration
 * file's text, which vivd_options_parse() keeps for the life of the
 * process. */
struct vivd_options {
	const char *role; /* "serve", "api", "builder" or "runner" */
	const char *config;
	const char *datadir;
	const char *store_url;      /* PostgreSQL; NULL: SQLite in the data folder */
	const char *artifacts_from; /* a runner host's API to fetch artifacts from; NULL: none */
	const char *token_file;     /* an admin token for it */
	const char *api_addr;       /* "HOST:PORT" or "[IPV6]:PORT" */
	const char *apps_addr;
	const char *domain;
	const char *user;
	const char *build_user;
	const char *log_level; /* "debug", "info", "warn" or "error" */
	unsigned workers;
	unsigned sandboxes; /* instances one worker runs at once */
	unsigned builders;
	unsigned upload_max_mb;
	unsigned request_max_mb;
	unsigned build_memory_mb;
	unsigned build_disk_mb;
	unsigned build_procs;
	unsigned build_timeout_s;
	unsigned build_lease_s;
	unsigned app_memory_mb;
	unsigned app_memory_max_mb;
	unsigned app_cpu_ms;
	unsigned app_cpu_max_ms;
	unsigned app_wall_ms;
	unsigned app_wall_max_ms;
	bool sandbox;
	bool cpu_limit;
	bool outbound_allow_private;
};

/* Fills o from the defaults, then the configuration file that --config
 * names (if any), then the rest of the command line, and checks every
 * value. Returns 0 when vivd should go on, else the exit status: 0 after
 * printing what --help or `vivd version` asked for (*done set), 2 for a
 * bad command line or configuration, with the reason on stderr ("vivd:
 * --workers takes a whole number from 1 to 256, not '3x'"). */
int vivd_options_parse(int argc, char **argv, struct vivd_options *o, bool *done);

/* Splits "HOST:PORT" or "[IPV6]:PORT" into host (without brackets; "" for
 * all addresses) and port. False, with the reason in err, when it is not
 * of that shape or the port is not 1 to 65535. */
bool vivd_addr_split(const char *spec, char *host, size_t hostlen, unsigned *port, char *err,
                     size_t errlen);

/* Writes the usage text, every setting with its argument, meaning and
 * default, to f. */
void vivd_usage(FILE *f);

/* The name of every setting, in the order --help lists them, ended by NULL:
 * what the documented configuration file must cover. */
const char *const *vivd_setting_names(void);

#endif
