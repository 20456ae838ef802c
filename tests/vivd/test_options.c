/* vivd's settings: the command line and the configuration file refuse bad
 * values with the reason, IPv6 addresses are written in brackets, and the
 * documented configuration file covers every setting. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

static int parse(struct vivd_options *o, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	bool done;

	argv[argc++] = (char *)"vivd";
	for (; *args && argc < 31; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return vivd_options_parse(argc, argv, o, &done);
}

static void redirect(void)
{
	cr_redirect_stderr();
	cr_redirect_stdout();
}

Test(options, good_values_are_taken, .init = redirect)
{
	struct vivd_options o;
	const char *args[] = {"serve", "--workers",  "3",        "--upload-max=128", "--no-sandbox",
	                      "--api", "[::1]:9090", "--domain", "apps.example.com", NULL};

	cr_assert_eq(parse(&o, args), 0);
	cr_assert_str_eq(o.role, "serve");
	cr_assert_eq(o.workers, 3);
	cr_assert_eq(o.upload_max_mb, 128);
	cr_assert_not(o.sandbox);
	cr_assert(o.cpu_limit);
	cr_assert_str_eq(o.api_addr, "[::1]:9090");
	cr_assert_str_eq(o.domain, "apps.example.com");
}

Test(options, every_role_is_a_command, .init = redirect)
{
	static const char *const roles[] = {"serve", "api", "builder", "runner"};
	struct vivd_options o;

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		const char *args[] = {roles[i], "--builders", "3", NULL};

		cr_assert_eq(parse(&o, args), 0, "%s", roles[i]);
		cr_assert_str_eq(o.role, roles[i]);
		cr_assert_eq(o.builders, 3);
	}
}

Test(options, bad_values_are_refused_with_the_reason, .init = redirect)
{
	static const char *const bad[][4] = {
	        {"serve", "--workers", "3x", NULL},
	        {"serve", "--upload-max", "-1", NULL},
	        {"serve", "--workers", "0", NULL},
	        {"serve", "--workers", "", NULL},
	        {"serve", "--api", "::1:8080", NULL},
	        {"serve", "--api", "[::1]8080", NULL},
	        {"serve", "--listen", "x:99999", NULL},
	        {"serve", "--domain", "a b", NULL},
	        {"serve", "--sandbox=maybe", NULL},
	        {"serve", "--no-sandbox=1", NULL},
	        {"serve", "--nope", NULL},
	        {"serve", "--workers", NULL},
	        {"deploy", NULL},
	        {"serve", "--app-cpu", "20000", NULL},
	};
	struct vivd_options o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(&o, bad[i]), 2, "accepted %s %s %s", bad[i][0], bad[i][1],
		             bad[i][2] ? bad[i][2] : "");
	fflush(stderr);
}

Test(options, a_bad_value_names_itself)
{
	struct vivd_options o;
	const char *args[] = {"serve", "--workers", "3x", NULL};

	cr_redirect_stderr();
	cr_assert_eq(parse(&o, args), 2);
	fflush(stderr);
	cr_assert_stderr_eq_str("vivd: --workers takes a whole number from 1 to 256, not '3x'\n");
}

Test(options, addresses_split_in_both_families)
{
	char host[64], err[200];
	unsigned port;

	cr_assert(vivd_addr_split("127.0.0.1:8080", host, sizeof(host), &port, err, sizeof(err)));
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 8080);
	cr_assert(vivd_addr_split("[::1]:8000", host, sizeof(host), &port, err, sizeof(err)));
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 8000);
	cr_assert(vivd_addr_split(":80", host, sizeof(host), &port, err, sizeof(err)));
	cr_assert_str_eq(host, "");
	cr_assert_not(vivd_addr_split("[::1]", host, sizeof(host), &port, err, sizeof(err)));
	cr_assert_not(vivd_addr_split("host:0", host, sizeof(host), &port, err, sizeof(err)));
	cr_assert_not(vivd_addr_split("host:80x", host, sizeof(host), &port, err, sizeof(err)));
}

/* A configuration file sets what it names; the command line wins; a
 * mistake names the file and the line. */
Test(options, the_configuration_file, .init = redirect)
{
	char path[] = "/tmp/viv-conf-XXXXXX";
	struct vivd_options o;
	FILE *f;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fputs("# a comment\n\nworkers = 5\n  domain=apps.test  \nsandbox = false\n", f);
	fclose(f);
	{
		const char *args[] = {"serve", "--config", path, "--workers", "7", NULL};
		cr_assert_eq(parse(&o, args), 0);
		cr_assert_eq(o.workers, 7);
		cr_assert_str_eq(o.domain, "apps.test");
		cr_assert_not(o.sandbox);
	}
	f = fopen(path, "w");
	fputs("workers = 5\nbogus = 1\n", f);
	fclose(f);
	{
		const char *args[] = {"serve", "--config", path, NULL};
		cr_assert_eq(parse(&o, args), 2);
	}
	unlink(path);
}

/* scripts/vivd.conf documents every setting, and is itself valid. */
Test(options, the_documented_file_covers_every_setting, .init = redirect)
{
	const char *const *names = vivd_setting_names();
	struct vivd_options o;
	char *text;
	FILE *f = fopen(VIVD_CONF, "r");
	long n;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (size_t i = 0; names[i]; i++) {
		char want[80], commented[80];

		if (!strcmp(names[i], "config"))
			continue;
		snprintf(want, sizeof(want), "\n%s = ", names[i]);
		snprintf(commented, sizeof(commented), "\n# %s = ", names[i]);
		cr_assert(strstr(text, want) || strstr(text, commented),
		          "scripts/vivd.conf does not document %s", names[i]);
	}
	free(text);
	{
		const char *args[] = {"serve", "--config", VIVD_CONF, NULL};
		cr_assert_eq(parse(&o, args), 0);
		cr_assert_str_eq(o.datadir, "/var/lib/vivarium");
	}
}

/* --help names every setting. */
Test(options, help_lists_every_setting)
{
	const char *const *names = vivd_setting_names();
	char buf[16384];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	vivd_usage(f);
	fclose(f);
	for (size_t i = 0; names[i]; i++) {
		char want[80];
		snprintf(want, sizeof(want), "--%s", names[i]);
		cr_assert(strstr(buf, want), "--help does not list %s", names[i]);
	}
}

/* A runner host that fetches artifacts names the API by URL and a token
 * file, both; no other role takes them. */
Test(options, artifacts_from_is_a_runner_hosts_with_its_token_file, .init = redirect)
{
	struct vivd_options o;
	const char *good[] = {"runner",       "--artifacts-from", "http://10.0.0.2:8080",
	                      "--token-file", "/etc/vivarium/t",  NULL};
	const char *serve[] = {
	        "serve", "--artifacts-from", "http://10.0.0.2:8080", "--token-file", "/t", NULL};
	const char *no_token[] = {"runner", "--artifacts-from", "http://10.0.0.2:8080", NULL};
	const char *no_url[] = {"runner", "--token-file", "/t", NULL};
	const char *ftp[] = {"runner", "--artifacts-from", "ftp://10.0.0.2", "--token-file", "/t",
	                     NULL};

	cr_assert_eq(parse(&o, good), 0);
	cr_assert_str_eq(o.artifacts_from, "http://10.0.0.2:8080");
	cr_assert_str_eq(o.token_file, "/etc/vivarium/t");
	cr_assert_eq(parse(&o, serve), 2);
	cr_assert_eq(parse(&o, no_token), 2);
	cr_assert_eq(parse(&o, no_url), 2);
	cr_assert_eq(parse(&o, ftp), 2);
}
