/* viv, the Vivarium command-line client: parses the command line, finds the
 * API address and the token, and runs one command. */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *cli_usage =
	"usage: viv [--api URL] [--token TOKEN] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  deploy PATH [--app NAME] [--no-wait]\n"
	"                  deploy a folder (packed as a .tar.gz), or a .tar, .tar.gz or\n"
	"                  .wasm file as it is; waits for the build and prints the URL.\n"
	"                  The app name is --app, else vivarium.json's \"name\", else the\n"
	"                  folder's or file's name\n"
	"  apps            list the apps\n"
	"  status ID       a deployment's status, timings and build log\n"
	"  logs APP [--follow]\n"
	"                  an app's recent log lines; --follow keeps printing new ones\n"
	"  help            this text\n"
	"\n"
	"options:\n"
	"  --api URL       the Vivarium API (default: $VIV_API, else " CLI_API_DEFAULT ")\n"
	"  --token TOKEN   the API token (default: $VIV_TOKEN, else the file\n"
	"                  " CLI_TOKEN_FILE ")\n"
	"  --version       print the version\n";

/* A token is visible ASCII only: anything else would break the header. */
static bool token_ok(const char *t)
{
	size_t i;

	for (i = 0; t[i]; i++) {
		if (t[i] < 0x21 || t[i] > 0x7e || i >= CLI_TOKEN_MAX)
			return false;
	}
	return i > 0;
}

/* Fills c->token and c->token_from from --token, VIV_TOKEN or the token
 * file, in that order; no token at all is not an error (the API says so). */
static enum viv_err find_token(struct cli *c, const char *opt)
{
	const char *env = getenv("VIV_TOKEN");
	char *text = NULL;
	size_t len = 0;

	if (opt) {
		c->token = strdup(opt);
		c->token_from = "--token";
	} else if (env && env[0]) {
		c->token = strdup(env);
		c->token_from = "VIV_TOKEN";
	} else if (viv_read_file(CLI_TOKEN_FILE, CLI_TOKEN_MAX, &text, &len) == VIV_OK) {
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
				   text[len - 1] == ' ' || text[len - 1] == '\t'))
			text[--len] = '\0';
		if (len == 0) {
			free(text);
			return VIV_OK;
		}
		c->token = text;
		c->token_from = CLI_TOKEN_FILE;
	} else {
		return VIV_OK;
	}
	if (!c->token) {
		fprintf(stderr, "viv: out of memory\n");
		return VIV_ERR_NOMEM;
	}
	if (!token_ok(c->token)) {
		fprintf(stderr, "viv: the token from %s holds characters a Vivarium token never has\n",
			c->token_from);
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

static enum viv_err set_api(struct cli *c, const char *opt)
{
	const char *env = getenv("VIV_API");
	const char *url = opt ? opt : (env && env[0]) ? env : CLI_API_DEFAULT;
	size_t n;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "viv: the API address \"%s\" must start with http:// or https://\n",
			url);
		return VIV_ERR_INVALID;
	}
	c->api = strdup(url);
	if (!c->api) {
		fprintf(stderr, "viv: out of memory\n");
		return VIV_ERR_NOMEM;
	}
	n = strlen(c->api);
	while (n > 0 && c->api[n - 1] == '/')
		c->api[--n] = '\0';
	return VIV_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"api", required_argument, NULL, 'a'},   {"token", required_argument, NULL, 't'},
		{"app", required_argument, NULL, 'n'},   {"no-wait", no_argument, NULL, 'W'},
		{"follow", no_argument, NULL, 'f'},      {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
	};
	struct cli c = {.api = NULL};
	const char *api = NULL, *token = NULL, *app = NULL, *cmd;
	bool no_wait = false, follow = false, curl_up = false;
	int opt, nargs, ret = CLI_EXIT_USAGE;

	/* File names in archives follow the user's locale; numbers stay "C". */
	setlocale(LC_CTYPE, "");
	for (;;) {
		opt = getopt_long(argc, argv, "fh", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'a':
			api = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case 'n':
			app = optarg;
			break;
		case 'W':
			no_wait = true;
			break;
		case 'f':
			follow = true;
			break;
		case 'h':
			fputs(cli_usage, stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("viv %s\n", VIV_VERSION);
			return CLI_EXIT_OK;
		default:
			fprintf(stderr, "viv: run \"viv help\" for the commands and options\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(cli_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(cmd, "help") == 0) {
		fputs(cli_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "version") == 0) {
		printf("viv %s\n", VIV_VERSION);
		return CLI_EXIT_OK;
	}
	if ((strcmp(cmd, "deploy") == 0 && nargs != 1) || (strcmp(cmd, "apps") == 0 && nargs != 0) ||
	    (strcmp(cmd, "status") == 0 && nargs != 1) || (strcmp(cmd, "logs") == 0 && nargs != 1)) {
		fprintf(stderr, "viv: wrong arguments for %s\n\n%s", cmd, cli_usage);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(cmd, "deploy") != 0 && strcmp(cmd, "apps") != 0 && strcmp(cmd, "status") != 0 &&
	    strcmp(cmd, "logs") != 0) {
		fprintf(stderr, "viv: there is no command \"%s\"\n\n%s", cmd, cli_usage);
		return CLI_EXIT_USAGE;
	}
	if ((app || no_wait) && strcmp(cmd, "deploy") != 0) {
		fprintf(stderr, "viv: --app and --no-wait go with deploy\n");
		return CLI_EXIT_USAGE;
	}
	if (follow && strcmp(cmd, "logs") != 0) {
		fprintf(stderr, "viv: --follow goes with logs\n");
		return CLI_EXIT_USAGE;
	}

	if (set_api(&c, api) || find_token(&c, token))
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "viv: cannot set up libcurl\n");
		ret = CLI_EXIT_FAIL;
		goto out;
	}
	curl_up = true;
	c.curl = curl_easy_init();
	if (!c.curl) {
		fprintf(stderr, "viv: cannot set up libcurl\n");
		ret = CLI_EXIT_FAIL;
		goto out;
	}
	if (strcmp(cmd, "deploy") == 0)
		ret = cli_deploy(&c, argv[optind + 1], app, !no_wait);
	else if (strcmp(cmd, "apps") == 0)
		ret = cli_apps(&c);
	else if (strcmp(cmd, "status") == 0)
		ret = cli_status(&c, argv[optind + 1]);
	else
		ret = cli_logs(&c, argv[optind + 1], follow);
out:
	if (c.curl)
		curl_easy_cleanup(c.curl);
	if (curl_up)
		curl_global_cleanup();
	free(c.api);
	free(c.token);
	return ret;
}
