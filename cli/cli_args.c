/* viv's command line: the table of commands, the parser that checks a
 * command line against it, and the help texts. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const struct cli_cmd cli_cmds[] = {
        {"deploy", NULL, 0, 0, 1, CLI_O_APP | CLI_O_NO_WAIT,
         "deploy [PATH] [--app NAME] [--no-wait]", cli_deploy},
        {"apps", NULL, 0, 0, 0, CLI_O_JSON, "apps", cli_apps},
        {"deployments", NULL, 0, 1, 1, CLI_O_JSON | CLI_O_LIMIT | CLI_O_BEFORE,
         "deployments APP [--limit N] [--before ID]", cli_deployments},
        {"status", NULL, 0, 1, 1, CLI_O_JSON, "status ID", cli_status},
        {"logs", NULL, 0, 1, 1, CLI_O_FOLLOW | CLI_O_JSON | CLI_O_LIMIT,
         "logs APP [--follow] [--limit N]", cli_logs},
        {"rollback", NULL, 0, 1, 2, 0, "rollback APP [ID]", cli_rollback},
        {"rm", NULL, 0, 1, 1, CLI_O_YES, "rm APP [--yes]", cli_rm},
        {"open", NULL, 0, 1, 1, 0, "open APP", cli_open},
        {"kv", "ls", 2, 1, 2, CLI_O_JSON, "kv APP ls [PREFIX]", cli_kv_ls},
        {"kv", "get", 2, 2, 2, 0, "kv APP get KEY", cli_kv_get},
        {"kv", "set", 2, 3, 3, 0, "kv APP set KEY VALUE|@FILE|-", cli_kv_set},
        {"kv", "rm", 2, 2, 2, 0, "kv APP rm KEY", cli_kv_rm},
        {"config", "ls", 2, 1, 1, CLI_O_JSON, "config APP ls", cli_config_ls},
        {"config", "get", 2, 2, 2, 0, "config APP get KEY", cli_config_get},
        {"config", "set", 2, 3, 3, 0, "config APP set KEY VALUE|@FILE|-", cli_config_set},
        {"config", "rm", 2, 2, 2, 0, "config APP rm KEY", cli_config_rm},
        {"secret", "ls", 2, 1, 1, CLI_O_JSON, "secret APP ls", cli_secret_ls},
        {"secret", "set", 2, 2, 3, 0, "secret APP set NAME [VALUE|@FILE|-]", cli_secret_set},
        {"secret", "rm", 2, 2, 2, 0, "secret APP rm NAME", cli_secret_rm},
        {"token", "create", 1, 1, 1, CLI_O_ADMIN | CLI_O_APP | CLI_O_JSON,
         "token create NAME --admin | --app APP [--app APP...]", cli_token_create},
        {"token", "ls", 1, 0, 0, CLI_O_JSON, "token ls", cli_token_ls},
        {"token", "revoke", 1, 1, 1, 0, "token revoke ID", cli_token_revoke},
        {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* The long options and the bits they set; global options set none. */
static const struct {
	const char *name;
	unsigned bit;
} opt_names[] = {
        {"--app", CLI_O_APP},     {"--no-wait", CLI_O_NO_WAIT}, {"--follow", CLI_O_FOLLOW},
        {"--json", CLI_O_JSON},   {"--yes", CLI_O_YES},         {"--admin", CLI_O_ADMIN},
        {"--limit", CLI_O_LIMIT}, {"--before", CLI_O_BEFORE},
};

static const char help_overview[] =
        "usage: viv [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Deploys and manages apps on a Vivarium server.\n"
        "\n"
        "commands:\n"
        "  deploy [PATH] [--app NAME]   build a folder or a file and serve it\n"
        "  apps                         list the apps\n"
        "  deployments APP              an app's deployments, newest first\n"
        "  status ID                    one deployment: status, timings, build log\n"
        "  logs APP [--follow]          an app's log; --follow streams new lines\n"
        "  rollback APP [ID]            serve an earlier deployment again\n"
        "  rm APP [--yes]               delete an app and everything it holds\n"
        "  open APP                     print the app's address and open it\n"
        "  kv APP ls|get|set|rm         the app's key-value data\n"
        "  config APP ls|get|set|rm     the app's settings\n"
        "  secret APP ls|set|rm         the app's secrets\n"
        "  token create|ls|revoke       API tokens\n"
        "  help [COMMAND]               this text, or a command's (viv help kv)\n"
        "\n"
        "options, anywhere on the line:\n"
        "  --api URL       the Vivarium API, such as http://127.0.0.1:8080\n"
        "  --token TOKEN   the API token\n"
        "  --json          listings print the API's JSON as it is\n"
        "  -h, --help      help on the command\n"
        "  --version       viv's version\n"
        "  --              ends the options, for arguments that start with '-'\n"
        "\n"
        "The API's address comes from --api, else VIV_API, else the configuration\n"
        "file, else " CLI_API_DEFAULT "; the token from --token, else VIV_TOKEN, else\n"
        "the configuration file, else " CLI_TOKEN_FILE ". viv help config says\n"
        "where the file is.\n"
        "\n"
        "Tables fit the terminal's width (else $COLUMNS, else 80 columns) and cut\n"
        "long values with an ellipsis; --json has them whole. Colour shows only on a\n"
        "terminal and never when NO_COLOR is set.\n"
        "\n"
        "exit status:\n"
        "  0  done\n"
        "  1  the API refused the request, or something on this machine failed\n"
        "  2  the command line or the configuration file is wrong\n"
        "  3  the API cannot be reached\n"
        "  4  no token, a refused token, or a token whose scope does not allow it\n"
        "  5  no such app, deployment, key, setting, secret or token\n"
        "  6  the deployment failed to build (deploy, status)\n";

/* Each command's help, after its usage lines. */
static const struct {
	const char *name;
	const char *text;
} help_texts[] = {
        {"deploy", "Uploads PATH (default: the current folder) and follows its build: the\n"
                   "upload's progress, each build step and the build log as they happen, then\n"
                   "the app's address and the deployment's own preview address.\n"
                   "\n"
                   "A folder is packed as a .tar.gz without .git, target, node_modules, build\n"
                   "and vivarium-data folders, symbolic links and special files. A .tar.gz,\n"
                   ".tar, .wasm or .wat file is uploaded as it is.\n"
                   "\n"
                   "The app's name is --app NAME, else the \"name\" in the folder's\n"
                   "vivarium.json, else the folder's or file's name made into a DNS label.\n"
                   "\n"
                   "  --app NAME   the app to deploy to\n"
                   "  --no-wait    print the deployment's id and leave the build running\n"
                   "\n"
                   "Exits with 6 when the build fails; its error and log are shown.\n"},
        {"apps", "Lists the apps this token may see: each one's state (serving, building,\n"
                 "failed or empty), the deployment it serves, when it last changed, and its\n"
                 "address. --json adds each one's language and times.\n"},
        {"deployments", "Lists an app's deployments, newest first: status, when, language, who\n"
                        "deployed it, and the error of a failed one. The one being served says\n"
                        "\"current\".\n"
                        "\n"
                        "  --limit N     how many (1 to 100; the API's default is 20)\n"
                        "  --before ID   the ones older than deployment ID, for the next page\n"},
        {"status", "Shows one deployment: its status, times, language, mode, artifact,\n"
                   "addresses, step timings, error and build log. Exits with 6 when it\n"
                   "failed.\n"},
        {"logs", "Prints an app's recent log lines: what guests wrote to stderr, traps,\n"
                 "limits hit, and one access line per request served.\n"
                 "\n"
                 "  --follow, -f  keep printing new lines as they come (an event stream that\n"
                 "                resumes where it left off when the connection drops);\n"
                 "                Ctrl-C stops\n"
                 "  --limit N     how many recent lines (1 to 1000; default 100)\n"},
        {"rollback", "Serves an earlier ready deployment of APP again: deployment ID, or\n"
                     "without it, the newest ready one older than the one being served.\n"},
        {"rm", "Deletes APP: its deployments, KV data, settings, secrets and logs; its\n"
               "address stops answering within a second. On a terminal viv asks you to\n"
               "type the app's name first; elsewhere it needs --yes.\n"
               "\n"
               "  --yes, -y   delete without asking\n"},
        {"open", "Prints APP's address, and opens it in a browser (xdg-open) when there is\n"
                 "a display.\n"},
        {"kv", "The app's key-value data, which its code reads and writes.\n"
               "\n"
               "  ls [PREFIX]      the keys (those starting with PREFIX) and their sizes\n"
               "  get KEY          the value, as it is\n"
               "  set KEY VALUE    store VALUE; @FILE stores the file's bytes and - what\n"
               "                   stdin holds (at most 1 MiB; to store text that starts\n"
               "                   with '@', send it on stdin)\n"
               "  rm KEY           remove the key\n"},
        {"config", "The app's settings, which its code reads as environment variables (CGI)\n"
                   "or with hostcall_config_get. A setting made here overrides the one in the\n"
                   "manifest's \"env\"; rm removes what was set here only.\n"
                   "\n"
                   "  ls               every setting, where it comes from, and the names of\n"
                   "                   secrets\n"
                   "  get KEY          one setting's value\n"
                   "  set KEY VALUE    set one; @FILE and - read the value from a file or stdin\n"
                   "  rm KEY           remove one\n"
                   "\n"
                   "viv's own configuration file is $XDG_CONFIG_HOME/viv/config, else\n"
                   "~/.config/viv/config. It holds \"key = value\" lines, blank lines and\n"
                   "lines starting with '#':\n"
                   "\n"
                   "  # The Vivarium this machine deploys to.\n"
                   "  api = https://vivarium.example.com\n"
                   "  token = viv_...\n"
                   "\n"
                   "A flag wins over the environment (VIV_API, VIV_TOKEN), which wins over the\n"
                   "file, which wins over " CLI_TOKEN_FILE " in the current folder.\n"
                   "Keep a file holding a token readable by you alone (chmod 600).\n"},
        {"secret", "The app's secrets: read by its code as settings are (a secret wins over a\n"
                   "setting of the same name), never shown by any command or log.\n"
                   "\n"
                   "  ls                  the names of the secrets, and when each was set\n"
                   "  set NAME [VALUE]    set one; without VALUE, viv asks for it without echo\n"
                   "                      on a terminal, or reads stdin (without one trailing\n"
                   "                      newline); @FILE and - read a file or stdin as they are\n"
                   "  rm NAME             remove one\n"},
        {"token", "API tokens. An admin token may do everything. A token for apps may deploy,\n"
                  "roll back and read those apps only (names that need not exist yet).\n"
                  "\n"
                  "  create NAME --admin           a token that may do everything\n"
                  "  create NAME --app APP ...     a token for these apps\n"
                  "  ls                            the tokens, their scope and last use\n"
                  "  revoke ID                     revoke a token\n"
                  "\n"
                  "create prints the token alone on stdout, so that TOKEN=$(viv token create\n"
                  "...) works; it is shown only then.\n"},
};

/* The option name that goes with bit, for messages. */
static const char *opt_name(unsigned bit)
{
	size_t i;

	for (i = 0; i < sizeof(opt_names) / sizeof(opt_names[0]); i++) {
		if (opt_names[i].bit == bit)
			return opt_names[i].name;
	}
	return "an option";
}

/* Finds the command for the words after the options; fills out->cmd and
 * out->arg, or explains in errbuf. */
static enum viv_err find_command(char **words, int n, struct cli_args *out, char *errbuf,
                                 size_t errlen)
{
	const struct cli_cmd *first = NULL, *c;
	struct viv_buf verbs;
	int i, k = 0;

	for (c = cli_cmds; c->name; c++) {
		if (strcmp(c->name, words[0]) == 0) {
			first = c;
			break;
		}
	}
	if (!first) {
		viv_errf(errbuf, errlen, "there is no command \"%s\"; viv help lists them",
		         words[0]);
		return VIV_ERR_INVALID;
	}
	out->topic = first->name;
	if (!first->verb) {
		out->cmd = first;
	} else if (n > first->verb_at) {
		for (c = first; c->name && strcmp(c->name, first->name) == 0; c++) {
			if (strcmp(c->verb, words[first->verb_at]) == 0) {
				out->cmd = c;
				break;
			}
		}
	}
	if (!out->cmd && out->help)
		return VIV_OK;
	if (!out->cmd) {
		viv_buf_init(&verbs, 256);
		for (c = first; c->name && strcmp(c->name, first->name) == 0; c++)
			viv_buf_printf_trunc(&verbs, "%s%s", c == first ? "" : ", ", c->verb);
		if (n > first->verb_at)
			viv_errf(errbuf, errlen, "viv %s has no \"%s\"; it has %s (viv help %s)",
			         first->name, words[first->verb_at], verbs.data, first->name);
		else
			viv_errf(errbuf, errlen, "viv %s needs one of %s%s (viv help %s)",
			         first->name, verbs.data,
			         first->verb_at == 2 ? " after the app's name" : "", first->name);
		viv_buf_free(&verbs);
		return VIV_ERR_INVALID;
	}
	for (i = 1; i < n; i++) {
		if (out->cmd->verb && i == out->cmd->verb_at)
			continue;
		if (k == CLI_ARGS_MAX || k == out->cmd->max) {
			k = CLI_ARGS_MAX + 1;
			break;
		}
		out->arg[k++] = words[i];
	}
	out->argc = k;
	return VIV_OK;
}

/* Checks the arguments and options against the command. */
static enum viv_err check_command(const struct cli_args *a, char *errbuf, size_t errlen)
{
	const struct cli_cmd *c = a->cmd;
	unsigned extra = a->given & ~c->opts, bit;

	if (a->argc < c->min || a->argc > c->max) {
		viv_errf(errbuf, errlen, "%s arguments for viv %s%s%s; usage: viv %s",
		         a->argc < c->min ? "missing" : "too many", c->name, c->verb ? " " : "",
		         c->verb ? c->verb : "", c->usage);
		return VIV_ERR_INVALID;
	}
	if (extra) {
		for (bit = 1; !(extra & bit); bit <<= 1)
			;
		viv_errf(errbuf, errlen,
		         "%s does not go with viv %s%s%s; viv help %s says what does",
		         opt_name(bit), c->name, c->verb ? " " : "", c->verb ? c->verb : "",
		         c->name);
		return VIV_ERR_INVALID;
	}
	if (a->napps > 1 && c->run != cli_token_create) {
		viv_errf(errbuf, errlen, "--app is given %zu times; viv %s deploys one app",
		         a->napps, c->name);
		return VIV_ERR_INVALID;
	}
	if (c->run == cli_token_create && (a->given & CLI_O_ADMIN) && a->napps > 0) {
		viv_errf(errbuf, errlen, "a token is either --admin or for --app APP..., not both");
		return VIV_ERR_INVALID;
	}
	if (c->run == cli_token_create && !(a->given & CLI_O_ADMIN) && a->napps == 0) {
		viv_errf(errbuf, errlen,
		         "say what the token may do: --admin for everything, or --app APP (as "
		         "many as needed) for those apps");
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

enum viv_err cli_args_parse(int argc, char **argv, struct cli_args *out, char *errbuf,
                            size_t errlen)
{
	static const struct option opts[] = {
	        {"api", required_argument, NULL, 'a'},
	        {"token", required_argument, NULL, 't'},
	        {"app", required_argument, NULL, 'n'},
	        {"no-wait", no_argument, NULL, 'W'},
	        {"follow", no_argument, NULL, 'f'},
	        {"json", no_argument, NULL, 'j'},
	        {"yes", no_argument, NULL, 'y'},
	        {"admin", no_argument, NULL, 'A'},
	        {"limit", required_argument, NULL, 'L'},
	        {"before", required_argument, NULL, 'B'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	char **words;
	int opt, n;

	memset(out, 0, sizeof(*out));
	/* Zero makes GNU getopt start afresh, as each parse must. */
	optind = 0;
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, ":fhy", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'a':
			out->api = optarg;
			break;
		case 't':
			out->token = optarg;
			break;
		case 'n':
			if (out->napps == CLI_APPS_MAX) {
				viv_errf(errbuf, errlen, "more than %d --app options",
				         CLI_APPS_MAX);
				return VIV_ERR_INVALID;
			}
			out->apps[out->napps++] = optarg;
			out->given |= CLI_O_APP;
			break;
		case 'W':
			out->given |= CLI_O_NO_WAIT;
			break;
		case 'f':
			out->given |= CLI_O_FOLLOW;
			break;
		case 'j':
			out->given |= CLI_O_JSON;
			break;
		case 'y':
			out->given |= CLI_O_YES;
			break;
		case 'A':
			out->given |= CLI_O_ADMIN;
			break;
		case 'L':
			if (!cli_id_ok(optarg, &out->limit)) {
				viv_errf(errbuf, errlen,
				         "--limit takes a whole number above zero, not \"%s\"",
				         optarg);
				return VIV_ERR_INVALID;
			}
			out->given |= CLI_O_LIMIT;
			break;
		case 'B':
			if (!cli_id_ok(optarg, &out->before)) {
				viv_errf(errbuf, errlen,
				         "--before takes a deployment id (a whole number), not "
				         "\"%s\"",
				         optarg);
				return VIV_ERR_INVALID;
			}
			out->given |= CLI_O_BEFORE;
			break;
		case 'h':
			out->help = true;
			break;
		case 'V':
			out->version = true;
			break;
		case ':':
			viv_errf(errbuf, errlen, "%s needs a value", argv[optind - 1]);
			return VIV_ERR_INVALID;
		default:
			if (optopt)
				viv_errf(errbuf, errlen,
				         "there is no option -%c; viv help lists the options",
				         optopt);
			else
				viv_errf(errbuf, errlen,
				         "there is no option %s; viv help lists the options",
				         argv[optind - 1]);
			return VIV_ERR_INVALID;
		}
	}
	words = argv + optind;
	n = argc - optind;
	if (n > 0 && strcmp(words[0], "help") == 0) {
		if (n > 2) {
			viv_errf(errbuf, errlen, "viv help takes one command, such as viv help kv");
			return VIV_ERR_INVALID;
		}
		out->help = true;
		out->topic = n == 2 ? words[1] : NULL;
		return VIV_OK;
	}
	if (n > 0 && strcmp(words[0], "version") == 0) {
		out->version = true;
		return VIV_OK;
	}
	if (n == 0) {
		if (out->help || out->version)
			return VIV_OK;
		viv_errf(errbuf, errlen, "no command given; viv help lists them");
		return VIV_ERR_INVALID;
	}
	if (find_command(words, n, out, errbuf, errlen))
		return VIV_ERR_INVALID;
	if (out->help || out->version)
		return VIV_OK;
	return check_command(out, errbuf, errlen);
}

enum viv_err cli_help(FILE *f, const char *topic)
{
	const struct cli_cmd *c;
	size_t i;

	if (!topic) {
		fputs(help_overview, f);
		return VIV_OK;
	}
	for (i = 0; i < sizeof(help_texts) / sizeof(help_texts[0]); i++) {
		if (strcmp(help_texts[i].name, topic) != 0)
			continue;
		for (c = cli_cmds; c->name; c++) {
			if (strcmp(c->name, topic) == 0)
				fprintf(f, "%s viv %s\n",
				        c == cli_cmds || strcmp(c[-1].name, topic) != 0 ? "usage:"
				                                                        : "      ",
				        c->usage);
		}
		fprintf(f, "\n%s", help_texts[i].text);
		fputs("\nviv help lists every command, the options and the exit statuses.\n", f);
		return VIV_OK;
	}
	return VIV_ERR_NOT_FOUND;
}
