/* The viv command-line client: how its parts (arguments, configuration,
 * HTTP calls and event streams, output, packing, the commands) talk to each
 * other. Only cli/ and its tests use this header; the program's interface is
 * its command line (viv help). */
#ifndef CLI_H
#define CLI_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "viv.h"

/* Bytes of one API reply that are read; build logs are the largest. */
#define CLI_RESP_MAX (16u << 20)
/* Bytes of an error reply (to a stream request) that are read. */
#define CLI_ERROR_BODY_MAX (64u << 10)
/* Where the token is looked for when nothing else names one. */
#define CLI_TOKEN_FILE "./vivarium-data/admin-token"
#define CLI_API_DEFAULT "http://127.0.0.1:8080"
/* Longest token read from anywhere. */
#define CLI_TOKEN_MAX 4096
/* Largest configuration file read. */
#define CLI_CONF_MAX (64u << 10)
/* Longest vivarium.json read to find the app name. */
#define CLI_MANIFEST_MAX (1u << 20)
/* Limits on what a packed directory may hold. */
#define CLI_PACK_MAX_ENTRIES 20000
#define CLI_PACK_MAX_DEPTH 32
#define CLI_PACK_MAX_PATH 1024
/* Largest value (KV, setting or secret) read from a file or stdin: the
 * API's own KV limit. */
#define CLI_VALUE_MAX (1u << 20)
/* Caps of the event-stream parser: one line, and one event's data. */
#define CLI_SSE_LINE_MAX (4u << 20)
#define CLI_SSE_DATA_MAX (8u << 20)
#define CLI_SSE_FIELD_MAX 1024
/* Seconds without a byte after which a stream is taken for dead: the API
 * sends a keep-alive comment every 15 s. */
#define CLI_STREAM_IDLE_S 45L
/* Reconnection waits of a stream, in milliseconds: the first, and the
 * longest after doubling. */
#define CLI_RETRY_MS 500
#define CLI_RETRY_MAX_MS 5000
/* Deployment polls when the server has no event stream. */
#define CLI_POLL_MS 250
/* Most arguments of a command besides its name and verb. */
#define CLI_ARGS_MAX 4
/* Most --app options one command takes. */
#define CLI_APPS_MAX 64
/* Most columns of a table, and the narrowest a cut column gets. */
#define CLI_TABLE_COLS 8
#define CLI_COL_MIN 5
/* Columns assumed when neither the terminal nor COLUMNS says. */
#define CLI_WIDTH_DEFAULT 80

/* Exit statuses, as viv help documents them. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1      /* the API refused the request, or a local error */
#define CLI_EXIT_USAGE 2     /* the command line or the configuration is wrong */
#define CLI_EXIT_CONN 3      /* the API could not be reached */
#define CLI_EXIT_AUTH 4      /* no token, a refused token, or one without the scope */
#define CLI_EXIT_NOT_FOUND 5 /* no such app, deployment, key, setting or token */
#define CLI_EXIT_BUILD 6     /* the deployment failed to build */

/* ---- Arguments (cli_args.c) ---------------------------------------------------------- */

/* Options, as bits of struct cli_cmd's opts and struct cli_args's given. */
enum cli_opt {
	CLI_O_APP = 1u << 0,     /* --app NAME (repeatable for token create) */
	CLI_O_NO_WAIT = 1u << 1, /* --no-wait */
	CLI_O_FOLLOW = 1u << 2,  /* --follow, -f */
	CLI_O_JSON = 1u << 3,    /* --json */
	CLI_O_YES = 1u << 4,     /* --yes, -y */
	CLI_O_ADMIN = 1u << 5,   /* --admin */
	CLI_O_LIMIT = 1u << 6,   /* --limit N */
	CLI_O_BEFORE = 1u << 7,  /* --before ID */
};

struct cli;
struct cli_args;

/* One command, or one verb of a command with verbs (kv ls, kv get...). */
struct cli_cmd {
	const char *name;  /* "kv" */
	const char *verb;  /* "ls", or NULL for a command without verbs */
	int verb_at;       /* where the verb is among the words after viv: 1 or 2 */
	int min, max;      /* arguments besides the command and the verb */
	unsigned opts;     /* enum cli_opt bits it takes */
	const char *usage; /* "kv APP ls [PREFIX]" */
	int (*run)(struct cli *c, const struct cli_args *a);
};

/* A parsed command line. The strings are borrowed from argv. */
struct cli_args {
	const char *api;   /* --api, or NULL */
	const char *token; /* --token, or NULL */
	const char *apps[CLI_APPS_MAX];
	size_t napps;
	long long limit;               /* --limit, when given */
	long long before;              /* --before, when given */
	unsigned given;                /* enum cli_opt bits given */
	bool help;                     /* --help or help COMMAND */
	bool version;                  /* --version or version */
	const struct cli_cmd *cmd;     /* NULL with help or version and no command */
	const char *topic;             /* the word after help, or the command's name */
	const char *arg[CLI_ARGS_MAX]; /* arguments besides the command and the verb */
	int argc;
};

/* The command table, ending with an entry whose name is NULL. */
extern const struct cli_cmd cli_cmds[];

/* Parses argv (argc words, argv[0] the program) into *out. getopt_long
 * permutes argv. VIV_ERR_INVALID when the command line is wrong: errbuf
 * then says how, and what to run for help. */
VIV_MUST_CHECK enum viv_err cli_args_parse(int argc, char **argv, struct cli_args *out,
                                           char *errbuf, size_t errlen);

/* Writes viv's help on topic (NULL: the overview; a command's name; or
 * "config", which also explains viv's own configuration file) to f.
 * VIV_ERR_NOT_FOUND when there is no such topic. */
VIV_MUST_CHECK enum viv_err cli_help(FILE *f, const char *topic);

/* ---- Configuration (cli_config.c) ---------------------------------------------------- */

/* The values of one configuration file. */
struct cli_conf {
	char *api;   /* NULL when the file sets none; owned */
	char *token; /* NULL when the file sets none; owned */
};

/* Parses the text of a configuration file: "key = value" lines (keys api
 * and token), blank lines and lines starting with '#'; a value may be
 * quoted with "". name is the file's name for messages. Clears *out first;
 * on success the caller frees it with cli_conf_free(). VIV_ERR_INVALID
 * when a line is wrong; errbuf names the file, the line and the fix. */
VIV_MUST_CHECK enum viv_err cli_conf_parse(const char *text, size_t len, const char *name,
                                           struct cli_conf *out, char *errbuf, size_t errlen);

/* Where the configuration file is: $XDG_CONFIG_HOME/viv/config when xdg is
 * an absolute path, else $HOME/.config/viv/config; NULL when neither is
 * known or memory ran out. Caller frees with free(). */
char *cli_conf_path(const char *xdg, const char *home);

/* Frees what cli_conf_parse() filled; accepts a zeroed struct. */
void cli_conf_free(struct cli_conf *conf);

/* One setting's candidates, highest precedence first: the flag, the
 * environment, the configuration file, and a last resort. */
struct cli_choice {
	const char *value[4]; /* NULL or "" when that place has none */
	const char *from[4];  /* where each comes from, for messages */
};

/* The first non-empty candidate, and where it came from (both NULL when
 * there is none). Borrowed from ch. */
const char *cli_choose(const struct cli_choice *ch, const char **from);

/* ---- The connection to the API (cli_http.c) --------------------------------------- */

/* What main sets up and every command uses. */
struct cli {
	char *api;              /* base URL without a trailing '/'; owned */
	const char *api_from;   /* where api came from, for messages; borrowed */
	char *token;            /* NULL when none was found; owned */
	const char *token_from; /* where token came from, for messages; borrowed */
	CURL *curl;             /* one easy handle, reused across calls */
	bool tty;               /* stdout is a terminal */
	bool colour;            /* colour on stdout */
	bool utf8;              /* the locale's characters are UTF-8 */
	size_t width;           /* columns of stdout */
};

/* One request to the API. */
struct cli_request {
	const char *method; /* GET, POST, PUT, DELETE */
	const char *path;   /* starts with '/', already percent-encoded */
	const void *body;   /* sent when has_body */
	size_t len;
	bool has_body;
	const char *content_type; /* of body; NULL: application/octet-stream */
	bool progress;            /* show the upload's progress on stdout */
};

/* The API's reply. */
struct cli_reply {
	long status;
	char *body; /* NUL-terminated after len bytes; owned */
	size_t len;
	json_t *json; /* body as JSON when it parses, else NULL; owned */
};

/* Sends one request and reads the reply, capped at CLI_RESP_MAX. A 2xx
 * reply fills *out (caller frees with cli_reply_free()); anything else is
 * an error with one sentence for the user in errbuf: VIV_ERR_IO when the
 * API cannot be reached (the sentence names the address, where it came
 * from and how to set it), VIV_ERR_AUTH for 401 and 403,
 * VIV_ERR_NOT_FOUND for 404, VIV_ERR_TOO_BIG for 413 and VIV_ERR_INVALID
 * for anything else, with the API's own "error" text. */
VIV_MUST_CHECK enum viv_err cli_send(struct cli *c, const struct cli_request *rq,
                                     struct cli_reply *out, char *errbuf, size_t errlen);

/* cli_send() without a body, or with one as application/octet-stream
 * (body may be NULL: none); *out is the reply's JSON, or NULL for a reply
 * without a body (204). Caller frees with json_decref(). */
VIV_MUST_CHECK enum viv_err cli_call(struct cli *c, const char *method, const char *path,
                                     const void *body, size_t len, json_t **out, char *errbuf,
                                     size_t errlen);

/* Frees a reply; accepts a zeroed one. */
void cli_reply_free(struct cli_reply *r);

/* Percent-encodes bytes for a path segment or query value. Caller frees
 * with curl_free(); NULL when memory ran out. */
char *cli_escape(struct cli *c, const char *bytes, size_t len);

/* The exit status for an error of cli_send() or cli_call(). */
int cli_exit_of(enum viv_err err);

/* Prints "viv: " and errbuf on stderr and returns cli_exit_of(err). */
int cli_fail(enum viv_err err, const char *errbuf);

/* GETs path for a listing. With --json it prints the reply as it is.
 * Returns true with *list set to the reply's array member (borrowed from r,
 * which the caller frees with cli_reply_free()) when the caller is to show
 * the list; false otherwise, with the error said on stderr and the exit
 * status in *exit_out. what names the list in that error ("apps"). */
bool cli_get_list(struct cli *c, const struct cli_args *a, const char *path, const char *member,
                  const char *what, struct cli_reply *r, json_t **list, int *exit_out);

/* ---- Server-Sent Events (cli_sse.c) ------------------------------------------------- */

/* One dispatched event. Borrowed until the callback returns. */
struct cli_sse_event {
	const char *type; /* the event field, or "message" when none came */
	const char *data; /* the data lines joined with '\n', NUL-terminated */
	size_t len;       /* bytes of data */
	const char *id;   /* the last event id so far ("" when none) */
};

/* Gets each event; returns false to stop the stream (nothing more is
 * parsed, and cli_sse_feed() reports the stop). */
typedef bool (*cli_sse_fn)(void *ctx, const struct cli_sse_event *ev);

/* An event-stream parser as the HTML standard describes the format: lines
 * end with CRLF, LF or CR; a leading byte order mark is skipped; "field:
 * value" with one space after the colon dropped; lines starting with ':'
 * are comments; data lines accumulate; a blank line dispatches; an id with
 * a NUL is ignored; retry takes digits only. */
struct cli_sse {
	struct viv_buf line; /* the line being read, capped at CLI_SSE_LINE_MAX */
	struct viv_buf data; /* the event's data so far, capped at CLI_SSE_DATA_MAX */
	struct viv_buf type; /* the event's type so far */
	struct viv_buf id;   /* the last event id, kept across events */
	bool after_cr;       /* the last byte ended a line with CR */
	bool started;        /* the first line was seen (for the BOM) */
	long retry_ms;       /* the last retry field, -1 when none came */
	size_t comments;     /* comment lines seen (keep-alives) */
	size_t events;       /* events dispatched */
	cli_sse_fn fn;
	void *ctx;
};

/* Sets up a parser that calls fn(ctx, event) for each event. */
void cli_sse_init(struct cli_sse *p, cli_sse_fn fn, void *ctx);

/* Parses n more bytes of the stream. VIV_ERR_BUSY when the callback asked
 * to stop; VIV_ERR_TOO_BIG when a line or an event's data passed its cap
 * (the stream cannot be trusted further). */
VIV_MUST_CHECK enum viv_err cli_sse_feed(struct cli_sse *p, const char *buf, size_t n);

/* Frees the parser's buffers; the last id is gone with them. */
void cli_sse_free(struct cli_sse *p);

/* Reads the event stream at path (GET, Accept: text/event-stream), with
 * Last-Event-ID: last_id unless it is NULL or "", feeding p until the
 * callback stops it (VIV_OK), the connection ends or breaks, or nothing
 * arrives for CLI_STREAM_IDLE_S (VIV_ERR_IO: the caller may reconnect), or
 * the API refuses (errors as cli_send()). A reply that is not an event
 * stream is VIV_ERR_UNSUPPORTED. errbuf says what happened. */
VIV_MUST_CHECK enum viv_err cli_stream(struct cli *c, const char *path, const char *last_id,
                                       struct cli_sse *p, char *errbuf, size_t errlen);

/* ---- Output (cli_out.c) ---------------------------------------------------------------- */

enum cli_colour {
	CLI_PLAIN = 0,
	CLI_GREEN,  /* ready, serving */
	CLI_YELLOW, /* queued, building */
	CLI_RED,    /* failed */
	CLI_DIM,    /* empty, absent */
	CLI_BOLD,   /* headings */
};

/* The colour that goes with a status word ("ready", "failed"...). */
enum cli_colour cli_status_colour(const char *status);

/* Writes text to f with colour when on: the escape sequences go around the
 * text, which is never the only carrier of meaning. */
void cli_put_colour(FILE *f, bool on, enum cli_colour colour, const char *text);

/* Writes text to f with control characters (bar newline and tab when
 * keep_newlines) shown as '?': log lines come from guests and compilers and
 * must not drive the user's terminal with escape sequences. */
void cli_print_safe(FILE *f, const char *text, size_t len, bool keep_newlines);

/* Columns that text takes on a terminal: one per character, two for wide
 * East Asian characters and emoji, none for combining marks; control
 * characters and invalid UTF-8 bytes count one each (they show as '?'). */
size_t cli_text_width(const char *text);

/* Appends text to out as it shows in a cell of width columns: control
 * characters and invalid bytes become '?', and text wider than width is
 * cut to end with ellipsis (which must be one column wide). Appends at
 * most width columns; the number appended is *used. */
VIV_MUST_CHECK enum viv_err cli_cut(const char *text, size_t width, const char *ellipsis,
                                    struct viv_buf *out, size_t *used);

/* A table of text cells, laid out to a width. */
struct cli_cell {
	char *text; /* owned */
	enum cli_colour colour;
};

struct cli_table {
	size_t ncols;
	const char *heads[CLI_TABLE_COLS]; /* borrowed, static */
	struct cli_cell *cells;            /* nrows * ncols, row by row */
	size_t nrows, alloc;
};

/* Sets up a table with ncols (at most CLI_TABLE_COLS) columns named by
 * the NULL-terminated heads. */
void cli_table_init(struct cli_table *t, const char *const *heads);

/* Adds a row of ncols cells: texts (NULL shows as "-") and colours (may be
 * NULL: all plain). The texts are copied. */
VIV_MUST_CHECK enum viv_err cli_table_add(struct cli_table *t, const char *const *texts,
                                          const enum cli_colour *colours);

/* Computes each column's width (into widths, ncols of them) so that the
 * rows fit width columns with two spaces between columns: columns keep
 * their natural width when all fit; otherwise the widest are narrowed
 * first, down to CLI_COL_MIN (or their natural width when less). */
void cli_table_layout(const struct cli_table *t, size_t width, size_t *widths);

/* Renders the table (headings first) into out as lines of at most width
 * columns once CLI_COL_MIN allows it, cutting cells with ellipsis; with
 * colour, the escape sequences do not count as columns. */
VIV_MUST_CHECK enum viv_err cli_table_render(const struct cli_table *t, size_t width, bool colour,
                                             const char *ellipsis, struct viv_buf *out);

/* Renders the table to stdout for c's terminal. */
VIV_MUST_CHECK enum viv_err cli_table_print(struct cli *c, const struct cli_table *t);

/* Frees the cells; accepts a zeroed table. */
void cli_table_free(struct cli_table *t);

/* The ellipsis that c's locale can show: "…" in UTF-8, else "~". */
const char *cli_ellipsis(const struct cli *c);

/* The width of stdout: TIOCGWINSZ, else COLUMNS, else
 * CLI_WIDTH_DEFAULT. */
size_t cli_term_width(int fd, const char *columns_env);

/* Whether to colour stdout: it is a terminal and NO_COLOR is unset or
 * empty. */
bool cli_colour_wanted(bool tty, const char *no_color_env);

/* An upload's progress as one line of at most width columns:
 * "[#####.....]  45%  1.2 MiB of 2.6 MiB". */
void cli_progress_line(uint64_t done, uint64_t total, size_t width, char *buf, size_t len);

/* n bytes for a human: "512 bytes", "1.5 KiB", "2.3 MiB". */
void cli_size_text(uint64_t n, char *buf, size_t len);

/* A JSON time of the API ("2026-12-04T21:30:19.327Z") in local time
 * ("2026-12-04 21:30:19", with ".327" when with_ms), or "-" for null. */
void cli_time_text(json_t *v, bool with_ms, char *buf, size_t len);

/* How long before now_ms (ms since the epoch) the API time v was, for a
 * table: "just now", "42 s ago", "5 min ago", "3 h ago", "4 days ago",
 * else its local date; "-" for null. */
void cli_age_text(json_t *v, int64_t now_ms, char *buf, size_t len);

/* Parses an API time into milliseconds since the epoch. */
bool cli_parse_time(const char *s, int64_t *ms_out);

/* The string member key of obj, or dflt. Borrowed from obj. */
const char *cli_str(json_t *obj, const char *key, const char *dflt);

/* The first line of text, at most len - 1 bytes of it, into buf. */
void cli_first_line(const char *text, char *buf, size_t len);

/* Prints the raw body of a reply for --json, with a newline after it. */
void cli_print_json(const struct cli_reply *r);

/* When the host of url ends in ".localhost" and this machine's resolver
 * cannot find it (as wget and Python cannot), prints on stderr how to reach
 * the app anyway: curl with a Host header to 127.0.0.1, or vivd's --domain
 * with a wildcard DNS name. */
void cli_localhost_hint(const char *url);

/* ---- Packing (cli_pack.c) --------------------------------------------------------- */

/* Packs the directory dir as a gzipped tar in memory, leaving out .git/,
 * target/, node_modules/, build/ and vivarium-data/ at any depth, symlinks,
 * special files and files larger than max (each skip is reported on
 * stderr). The archive holds paths relative to dir. On success *out (caller
 * frees with free()) has *len_out bytes and *files_out is how many files
 * went in. VIV_ERR_TOO_BIG when the archive would pass max or the tree
 * passes the entry, depth or path caps; errbuf says which. */
VIV_MUST_CHECK enum viv_err cli_pack_dir(const char *dir, size_t max, char **out, size_t *len_out,
                                         size_t *files_out, char *errbuf, size_t errlen);

/* Turns text (a directory or file name) into an app name: lowercase, runs of
 * other characters become one '-', no '-' at either end, at most 63
 * characters. Writes into buf (at least 64 bytes); the result may still be
 * invalid (empty), which the caller checks with viv_app_name_valid(). */
void cli_name_from(const char *text, char *buf, size_t len);

/* ---- Shared by the commands (cli_util.c) ---------------------------------------------- */

/* The rule for app names, for messages. */
extern const char *const cli_name_rule;

/* Checks that name is a valid app name, saying why not on stderr. */
bool cli_app_ok(const char *name);

/* Parses a deployment or token id, or a count (1 to 18 digits, not zero). */
bool cli_id_ok(const char *s, long long *out);

/* Reads the value that arg names: "@FILE" the file's bytes, "-" stdin's,
 * anything else the text itself, at most CLI_VALUE_MAX bytes. On success
 * *out (caller frees with free()) is NUL-terminated after *len_out bytes.
 * Errors are printed on stderr. */
VIV_MUST_CHECK enum viv_err cli_read_value(const char *arg, char **out, size_t *len_out);

/* Reads a secret from the terminal without echo after printing prompt on
 * stderr, or when stdin is not a terminal, all of stdin without one
 * trailing newline. As cli_read_value(). */
VIV_MUST_CHECK enum viv_err cli_read_secret(const char *prompt, char **out, size_t *len_out);

/* Asks on the terminal for the word that confirms a deletion. True when
 * the answer is exactly word. */
bool cli_confirm(const char *question, const char *word);

/* Sleeps ms milliseconds, resuming after signals. */
void cli_sleep_ms(unsigned ms);

/* ---- The commands (cli_deploy.c, cli_apps.c, cli_logs.c, cli_data.c, cli_token.c) -- */

int cli_deploy(struct cli *c, const struct cli_args *a);
int cli_status(struct cli *c, const struct cli_args *a);
int cli_apps(struct cli *c, const struct cli_args *a);
int cli_deployments(struct cli *c, const struct cli_args *a);
int cli_rollback(struct cli *c, const struct cli_args *a);
int cli_rm(struct cli *c, const struct cli_args *a);
int cli_open(struct cli *c, const struct cli_args *a);
int cli_logs(struct cli *c, const struct cli_args *a);
int cli_kv_ls(struct cli *c, const struct cli_args *a);
int cli_kv_get(struct cli *c, const struct cli_args *a);
int cli_kv_set(struct cli *c, const struct cli_args *a);
int cli_kv_rm(struct cli *c, const struct cli_args *a);
int cli_config_ls(struct cli *c, const struct cli_args *a);
int cli_config_get(struct cli *c, const struct cli_args *a);
int cli_config_set(struct cli *c, const struct cli_args *a);
int cli_config_rm(struct cli *c, const struct cli_args *a);
int cli_secret_ls(struct cli *c, const struct cli_args *a);
int cli_secret_set(struct cli *c, const struct cli_args *a);
int cli_secret_rm(struct cli *c, const struct cli_args *a);
int cli_token_create(struct cli *c, const struct cli_args *a);
int cli_token_ls(struct cli *c, const struct cli_args *a);
int cli_token_revoke(struct cli *c, const struct cli_args *a);

#endif
