/* viv, the Vivarium command-line client: parses the command line, finds the
 * API's address and the token (flag, environment, configuration file,
 * local token file), looks at the terminal, and runs one command. */
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

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

/* Reads viv's configuration file into conf, when there is one; *path_out
 * (caller frees) is its name, or NULL when no home is known. */
static enum viv_err load_conf(struct cli_conf *conf, char **path_out)
{
	char *path = cli_conf_path(getenv("XDG_CONFIG_HOME"), getenv("HOME"));
	char *text = NULL, errbuf[512];
	struct stat sb;
	size_t len = 0;
	enum viv_err err;

	memset(conf, 0, sizeof(*conf));
	*path_out = path;
	if (!path)
		return VIV_OK;
	err = viv_read_file(path, CLI_CONF_MAX, &text, &len);
	if (err == VIV_ERR_NOT_FOUND)
		return VIV_OK;
	if (err == VIV_ERR_TOO_BIG)
		fprintf(stderr,
		        "viv: %s is larger than %u KiB; is it viv's configuration file? "
		        "(viv help config)\n",
		        path, CLI_CONF_MAX >> 10);
	else if (err)
		fprintf(stderr, "viv: cannot read %s: %s\n", path, viv_strerror(err));
	if (err)
		return err;
	err = cli_conf_parse(text, len, path, conf, errbuf, sizeof(errbuf));
	free(text);
	if (err) {
		fprintf(stderr, "viv: %s (viv help config)\n", errbuf);
		return err;
	}
	if (conf->token && stat(path, &sb) == 0 && (sb.st_mode & 077))
		fprintf(stderr,
		        "viv: warning: %s holds a token and others may read it; chmod "
		        "600 %s\n",
		        path, path);
	return VIV_OK;
}

/* The local token file's text without its line end; NULL when there is
 * none. Caller frees. */
static char *local_token(void)
{
	char *text = NULL;
	size_t len = 0;

	if (viv_read_file(CLI_TOKEN_FILE, CLI_TOKEN_MAX, &text, &len) != VIV_OK)
		return NULL;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
	                   text[len - 1] == '\t'))
		text[--len] = '\0';
	return text;
}

/* Fills c->api and c->token by precedence: flag, environment,
 * configuration file, then the default address and the local token
 * file. conf_path is borrowed by c for messages. */
static enum viv_err settle(struct cli *c, const struct cli_args *a, const struct cli_conf *conf,
                           const char *conf_path, char *local)
{
	struct cli_choice api = {.value = {a->api, getenv("VIV_API"), conf->api, CLI_API_DEFAULT},
	                         .from = {"--api", "VIV_API", conf_path, "the default"}};
	struct cli_choice token = {.value = {a->token, getenv("VIV_TOKEN"), conf->token, local},
	                           .from = {"--token", "VIV_TOKEN", conf_path, CLI_TOKEN_FILE}};
	const char *url = cli_choose(&api, &c->api_from), *tok;
	size_t n;

	tok = cli_choose(&token, &c->token_from);
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr,
		        "viv: the API address \"%s\" from %s must start with http:// or "
		        "https://\n",
		        url, c->api_from);
		return VIV_ERR_INVALID;
	}
	if (tok && !token_ok(tok)) {
		fprintf(stderr,
		        "viv: the token from %s holds characters a Vivarium token never "
		        "has\n",
		        c->token_from);
		return VIV_ERR_INVALID;
	}
	c->api = strdup(url);
	c->token = tok ? strdup(tok) : NULL;
	if (!c->api || (tok && !c->token)) {
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
	struct cli c = {.api = NULL};
	struct cli_args a;
	struct cli_conf conf = {0};
	char errbuf[512], *conf_path = NULL, *local = NULL;
	bool curl_up = false;
	int ret = CLI_EXIT_USAGE;

	/* Text follows the user's locale; numbers stay "C". */
	setlocale(LC_CTYPE, "");
	if (cli_args_parse(argc, argv, &a, errbuf, sizeof(errbuf))) {
		fprintf(stderr, "viv: %s\n", errbuf);
		return CLI_EXIT_USAGE;
	}
	if (a.version) {
		printf("viv %s\n", VIV_VERSION);
		return CLI_EXIT_OK;
	}
	if (a.help) {
		if (cli_help(stdout, a.topic) == VIV_OK)
			return CLI_EXIT_OK;
		fprintf(stderr, "viv: there is no command \"%s\"; viv help lists them\n", a.topic);
		return CLI_EXIT_USAGE;
	}

	if (load_conf(&conf, &conf_path))
		goto out;
	local = local_token();
	if (settle(&c, &a, &conf, conf_path, local))
		goto out;
	c.tty = isatty(1);
	c.colour = cli_colour_wanted(c.tty, getenv("NO_COLOR"));
	c.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	c.width = cli_term_width(1, getenv("COLUMNS"));
	ret = CLI_EXIT_FAIL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "viv: cannot set up libcurl\n");
		goto out;
	}
	curl_up = true;
	c.curl = curl_easy_init();
	if (!c.curl) {
		fprintf(stderr, "viv: cannot set up libcurl\n");
		goto out;
	}
	ret = a.cmd->run(&c, &a);
	fflush(stdout);
out:
	if (c.curl)
		curl_easy_cleanup(c.curl);
	if (curl_up)
		curl_global_cleanup();
	free(c.api);
	free(c.token);
	free(local);
	free(conf_path);
	cli_conf_free(&conf);
	return ret;
}
