/* Unit tests of viv's pure parts: the event-stream parser, text width and
 * cutting, table layout, the configuration file and its precedence, the
 * command-line parser, and the progress line. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- Server-Sent Events ------------------------------------------------------------------ */

/* Events as a parser handed them over, as "type|id|data" lines. */
struct seen {
	struct viv_buf log;
	size_t stop_after; /* 0: never stop */
	size_t n;
};

static bool record(void *ctx, const struct cli_sse_event *ev)
{
	struct seen *s = ctx;

	cr_assert_eq(viv_buf_printf(&s->log, "%s|%s|", ev->type, ev->id), VIV_OK);
	cr_assert_eq(viv_buf_append(&s->log, ev->data, ev->len), VIV_OK);
	cr_assert_eq(viv_buf_append(&s->log, "\n", 1), VIV_OK);
	s->n++;
	return !(s->stop_after && s->n >= s->stop_after);
}

/* Feeds text to a fresh parser in pieces of step bytes (0: all at once)
 * and returns what it dispatched (caller frees). */
static char *parse(const char *text, size_t len, size_t step, struct cli_sse *keep)
{
	struct seen s = {.stop_after = 0};
	struct cli_sse p;
	size_t off = 0, n;

	viv_buf_init(&s.log, 0);
	cr_assert_eq(viv_buf_append(&s.log, "", 0), VIV_OK);
	cli_sse_init(&p, record, &s);
	while (off < len) {
		n = step && len - off > step ? step : len - off;
		cr_assert_eq(cli_sse_feed(&p, text + off, n), VIV_OK);
		off += n;
	}
	if (keep)
		*keep = p;
	else
		cli_sse_free(&p);
	return viv_buf_steal(&s.log);
}

Test(sse, events_in_every_split_give_the_same_result)
{
	static const char stream[] = "\xef\xbb\xbf: a comment first\r\n"
	                             "event: step\r\n"
	                             "data: {\"step\": \"compile\"}\r\n"
	                             "\r\n"
	                             "id: 7\n"
	                             "event: log\n"
	                             "data: line one\n"
	                             "data:line two\n"
	                             "data\n"
	                             "\n"
	                             ": keep-alive\r"
	                             "data: after a CR\r"
	                             "\r"
	                             "event: nodata\n"
	                             "\n"
	                             "data: last, id kept\n\n"
	                             "data: never finished\n";
	const char *want = "step||{\"step\": \"compile\"}\n"
	                   "log|7|line one\nline two\n\n"
	                   "message|7|after a CR\n"
	                   "message|7|last, id kept\n";
	size_t step;
	char *got;

	for (step = 0; step <= sizeof(stream); step++) {
		got = parse(stream, sizeof(stream) - 1, step, NULL);
		cr_assert_str_eq(got, want, "pieces of %zu bytes gave:\n%s", step, got);
		free(got);
	}
}

Test(sse, fields_follow_the_standard)
{
	struct cli_sse p;
	char *got;
	static const char stream[] = "retry: 2500\n"
	                             "data:  two spaces keep one\n"
	                             "unknown: ignored\n"
	                             "data: x: y\n"
	                             "\n"
	                             "id: 12\n"
	                             "id\n"
	                             "data: an empty id field resets it\n"
	                             "\n"
	                             "retry: 12x\n"
	                             ": one\n: two\n";

	got = parse(stream, sizeof(stream) - 1, 0, &p);
	cr_assert_str_eq(got, "message|| two spaces keep one\nx: y\n"
	                      "message||an empty id field resets it\n");
	cr_assert_eq(p.retry_ms, 2500);
	cr_assert_eq(p.comments, 2);
	cr_assert_eq(p.events, 2);
	cli_sse_free(&p);
	free(got);
}

Test(sse, an_id_with_nul_is_ignored)
{
	static const char stream[] = "id: 5\n\nid: 6\0x\ndata: d\n\n";
	char *got = parse(stream, sizeof(stream) - 1, 0, NULL);

	cr_assert_str_eq(got, "message|5|d\n");
	free(got);
}

Test(sse, the_callback_stops_the_stream)
{
	static const char stream[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	struct seen s = {.stop_after = 2};
	struct cli_sse p;

	viv_buf_init(&s.log, 0);
	cli_sse_init(&p, record, &s);
	cr_assert_eq(cli_sse_feed(&p, stream, sizeof(stream) - 1), VIV_ERR_BUSY);
	cr_assert_eq(s.n, 2);
	cli_sse_free(&p);
	viv_buf_free(&s.log);
}

Test(sse, lines_and_events_are_capped)
{
	struct seen s = {.stop_after = 0};
	struct cli_sse p;
	char *big = malloc(CLI_SSE_LINE_MAX + 2);
	size_t i;

	cr_assert_not_null(big);
	memset(big, 'a', CLI_SSE_LINE_MAX + 1);
	viv_buf_init(&s.log, 0);
	cli_sse_init(&p, record, &s);
	cr_assert_eq(cli_sse_feed(&p, "data: ", 6), VIV_OK);
	cr_assert_eq(cli_sse_feed(&p, big, CLI_SSE_LINE_MAX + 1), VIV_ERR_TOO_BIG);
	cli_sse_free(&p);

	/* Many data lines under the line cap still pass the event's cap. */
	cli_sse_init(&p, record, &s);
	big[0] = 'd', big[1] = 'a', big[2] = 't', big[3] = 'a', big[4] = ':';
	big[1u << 20] = '\n';
	for (i = 0; i < CLI_SSE_DATA_MAX / (1u << 20) + 1; i++) {
		if (cli_sse_feed(&p, big, (1u << 20) + 1) != VIV_OK)
			break;
	}
	cr_assert_leq(i, CLI_SSE_DATA_MAX / (1u << 20));
	cr_assert_eq(s.n, 0);
	cli_sse_free(&p);
	viv_buf_free(&s.log);
	free(big);
}

/* ---- Text and tables ------------------------------------------------------------------------- */

/* Cuts text to width with "~" and returns it (caller frees). */
static char *cut(const char *text, size_t width, size_t *used)
{
	struct viv_buf b;

	viv_buf_init(&b, 0);
	cr_assert_eq(cli_cut(text, width, "~", &b, used), VIV_OK);
	cr_assert_eq(viv_buf_append(&b, "", 0), VIV_OK);
	return viv_buf_steal(&b);
}

Test(text, width_counts_columns_not_bytes)
{
	cr_assert_eq(cli_text_width("hello"), 5);
	cr_assert_eq(cli_text_width("h\xc3\xa9llo"), 5);             /* é */
	cr_assert_eq(cli_text_width("\xe6\x97\xa5\xe6\x9c\xac"), 4); /* two CJK */
	cr_assert_eq(cli_text_width("e\xcc\x81"), 1);                /* e + combining acute */
	cr_assert_eq(cli_text_width("a\x1b[31mb"), 7);               /* the ESC shows as '?' */
	cr_assert_eq(cli_text_width("\xff\xfe"), 2);                 /* not UTF-8 */
	cr_assert_eq(cli_text_width("\xc0\xaf"), 2);                 /* an overlong '/' */
}

Test(text, cutting_ends_with_the_ellipsis_and_defuses_controls)
{
	size_t used;
	char *s;

	s = cut("short", 10, &used);
	cr_assert_str_eq(s, "short");
	cr_assert_eq(used, 5);
	free(s);
	s = cut("http://a-very-long-name.localhost:8000/", 12, &used);
	cr_assert_str_eq(s, "http://a-ve~");
	cr_assert_eq(used, 12);
	free(s);
	s = cut("red \x1b[31m\xc2\x9b\xe2\x80\xae.", 40, &used);
	cr_assert_str_eq(s, "red ?[31m??.");
	free(s);
	s = cut("tab\there\nnext", 40, &used);
	cr_assert_str_eq(s, "tab here next");
	free(s);
	/* A wide character that would straddle the edge is left out whole. */
	s = cut("ab\xe6\x97\xa5\xe6\x9c\xac", 4, &used);
	cr_assert_str_eq(s, "ab~");
	cr_assert_eq(used, 3);
	free(s);
	s = cut("anything", 0, &used);
	cr_assert_str_eq(s, "");
	free(s);
}

/* Renders t to width with "~" (caller frees). */
static char *render(const struct cli_table *t, size_t width, bool colour)
{
	struct viv_buf b;

	viv_buf_init(&b, 0);
	cr_assert_eq(cli_table_render(t, width, colour, "~", &b), VIV_OK);
	return viv_buf_steal(&b);
}

/* Asserts that every line of text is at most width columns. */
static void assert_fits(const char *text, size_t width)
{
	char *copy = strdup(text), *line, *save = NULL;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		cr_assert_leq(cli_text_width(line), width, "\"%s\" is wider than %zu", line, width);
	free(copy);
}

Test(table, columns_fit_or_give_way_widest_first)
{
	static const char *const heads[] = {"NAME", "STATE", "URL", NULL};
	const char *r1[] = {"hello", "serving", "http://hello.localhost:8000/"};
	const char *r2[] = {"a-rather-long-application-name-that-goes-on", "failed", NULL};
	struct cli_table t;
	size_t widths[3];
	char *out;

	cli_table_init(&t, heads);
	cr_assert_eq(t.ncols, 3);
	cr_assert_eq(cli_table_add(&t, r1, NULL), VIV_OK);
	out = render(&t, 80, false);
	cr_assert_str_eq(out, "NAME   STATE    URL\n"
	                      "hello  serving  http://hello.localhost:8000/\n");
	free(out);

	cr_assert_eq(cli_table_add(&t, r2, NULL), VIV_OK);
	cli_table_layout(&t, 200, widths);
	cr_assert_eq(widths[0], 43);
	cr_assert_eq(widths[2], 28);
	cli_table_layout(&t, 60, widths);
	cr_assert_eq(widths[0] + widths[1] + widths[2] + 4, 60);
	cr_assert_eq(widths[1], 7, "a short column keeps its width");
	out = render(&t, 60, false);
	assert_fits(out, 60);
	cr_assert(strstr(out, "a-rather-long-applicati~"), "%s", out);
	cr_assert(strstr(out, "http://hello.localhost:8~"), "%s", out);
	/* Every row's second column starts where the heading's does. */
	cr_assert_eq(strstr(out, "STATE") - out, strstr(out, "serving") - strchr(out, '\n') - 1);
	free(out);

	/* Narrower than the columns' minimum: the columns stay aligned. */
	out = render(&t, 10, false);
	cr_assert_str_eq(out, "NAME   STATE  URL\nhello  serv~  http~\na-ra~  fail~  -\n");
	free(out);
	cli_table_free(&t);
}

Test(table, colour_surrounds_cells_without_counting)
{
	static const char *const heads[] = {"ID", "STATUS", "ERROR", NULL};
	const char *row[] = {"7", "failed", ""};
	enum cli_colour colours[] = {CLI_PLAIN, CLI_RED, CLI_PLAIN};
	struct cli_table t;
	char *out;

	cli_table_init(&t, heads);
	cr_assert_eq(cli_table_add(&t, row, colours), VIV_OK);
	out = render(&t, 80, true);
	cr_assert_str_eq(out, "\x1b[1mID\x1b[0m  \x1b[1mSTATUS\x1b[0m  \x1b[1mERROR\x1b[0m\n"
	                      "7   \x1b[31mfailed\x1b[0m\n");
	free(out);
	out = render(&t, 80, false);
	cr_assert_str_eq(out, "ID  STATUS  ERROR\n7   failed\n", "no trailing blanks:\n%s", out);
	free(out);
	cli_table_free(&t);
}

Test(table, status_words_have_colours_but_keep_their_words)
{
	cr_assert_eq(cli_status_colour("ready"), CLI_GREEN);
	cr_assert_eq(cli_status_colour("serving"), CLI_GREEN);
	cr_assert_eq(cli_status_colour("building"), CLI_YELLOW);
	cr_assert_eq(cli_status_colour("failed"), CLI_RED);
	cr_assert_eq(cli_status_colour("empty"), CLI_DIM);
	cr_assert_eq(cli_status_colour("unheard-of"), CLI_PLAIN);
}

Test(terminal, width_and_colour_choices)
{
	int null = open("/dev/null", O_WRONLY);

	cr_assert_geq(null, 0);
	cr_assert_eq(cli_term_width(null, NULL), 80);
	cr_assert_eq(cli_term_width(null, "132"), 132);
	cr_assert_eq(cli_term_width(null, "wide"), 80);
	cr_assert_eq(cli_term_width(null, "-3"), 80);
	close(null);
	cr_assert(cli_colour_wanted(true, NULL));
	cr_assert(cli_colour_wanted(true, ""));
	cr_assert_not(cli_colour_wanted(true, "1"));
	cr_assert_not(cli_colour_wanted(false, NULL));
}

Test(terminal, progress_line_fits)
{
	char buf[256];
	size_t w;

	for (w = 30; w <= 120; w += 7) {
		cli_progress_line(512 * 1024, 2u << 20, w, buf, sizeof(buf));
		cr_assert_leq(strlen(buf), w, "%zu: %s", w, buf);
		cr_assert(strstr(buf, " 25%  512.0 KiB of 2.0 MiB"), "%s", buf);
	}
	cli_progress_line(10, 10, 80, buf, sizeof(buf));
	cr_assert(strstr(buf, "[########################################] 100%"), "%s", buf);
}

Test(terminal, ages_for_tables)
{
	json_t *t = json_string("2026-12-04T21:30:19.327Z");
	int64_t at = 0;
	char buf[32];

	cr_assert(cli_parse_time(json_string_value(t), &at));
	cli_age_text(t, at + 3000, buf, sizeof(buf));
	cr_assert_str_eq(buf, "just now");
	cli_age_text(t, at + 42000, buf, sizeof(buf));
	cr_assert_str_eq(buf, "42 s ago");
	cli_age_text(t, at + 5 * 60000 + 999, buf, sizeof(buf));
	cr_assert_str_eq(buf, "5 min ago");
	cli_age_text(t, at + 47 * 3600000LL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "47 h ago");
	cli_age_text(t, at + 4 * 86400000LL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "4 days ago");
	cli_age_text(t, at + 90 * 86400000LL, buf, sizeof(buf));
	cr_assert_eq(strlen(buf), 10, "a date: %s", buf);
	cr_assert_eq(strncmp(buf, "2026-12-0", 9), 0, "%s", buf);
	cli_age_text(json_null(), at, buf, sizeof(buf));
	cr_assert_str_eq(buf, "-");
	json_decref(t);
}

/* ---- Configuration ------------------------------------------------------------------------ */

static enum viv_err conf(const char *text, struct cli_conf *out, char *errbuf)
{
	return cli_conf_parse(text, strlen(text), "cfg", out, errbuf, 256);
}

Test(config, key_value_lines)
{
	struct cli_conf c;
	char errbuf[256];

	cr_assert_eq(conf("# viv\n\n  api = https://v.example.com  \r\n"
	                  "token=\"viv_abc\"\n\t# done\n",
	                  &c, errbuf),
	             VIV_OK, "%s", errbuf);
	cr_assert_str_eq(c.api, "https://v.example.com");
	cr_assert_str_eq(c.token, "viv_abc");
	cli_conf_free(&c);
	cr_assert_eq(conf("", &c, errbuf), VIV_OK);
	cr_assert_null(c.api);
	cr_assert_null(c.token);
	cli_conf_free(&c);
}

Test(config, mistakes_name_the_line_and_the_fix)
{
	static const char *const bad[][2] = {
	        {"api = http://x\nuser = me\n",
	         "cfg, line 2: unknown key \"user\"; the keys are api "
	         "and token"},
	        {"token\n", "cfg, line 1: expected \"key = value\""},
	        {"token = a\n#\ntoken = b\n", "cfg, line 3: token is set again (first on line 1)"},
	        {"api =   \n", "cfg, line 1: api has no value"},
	        {"api = a\x1b[31m\n", "cfg, line 1: a control character"},
	};
	struct cli_conf c;
	char errbuf[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(conf(bad[i][0], &c, errbuf), VIV_ERR_INVALID, "%s", bad[i][0]);
		cr_assert(strstr(errbuf, bad[i][1]), "\"%s\" gave \"%s\"", bad[i][0], errbuf);
		cr_assert_null(c.api);
		cr_assert_null(c.token);
	}
}

Test(config, where_the_file_is)
{
	char *p;

	p = cli_conf_path("/x/cfg", "/home/u");
	cr_assert_str_eq(p, "/x/cfg/viv/config");
	free(p);
	/* A relative XDG_CONFIG_HOME is ignored, as the XDG rules say. */
	p = cli_conf_path("rel", "/home/u");
	cr_assert_str_eq(p, "/home/u/.config/viv/config");
	free(p);
	p = cli_conf_path(NULL, "/home/u");
	cr_assert_str_eq(p, "/home/u/.config/viv/config");
	free(p);
	cr_assert_null(cli_conf_path("", ""));
}

Test(config, precedence_is_flag_env_file_then_local)
{
	struct cli_choice ch = {.value = {"f", "e", "c", "l"}, .from = {"F", "E", "C", "L"}};
	const char *from;

	cr_assert_str_eq(cli_choose(&ch, &from), "f");
	cr_assert_str_eq(from, "F");
	ch.value[0] = NULL;
	cr_assert_str_eq(cli_choose(&ch, &from), "e");
	ch.value[1] = ""; /* an empty VIV_TOKEN counts as unset */
	cr_assert_str_eq(cli_choose(&ch, &from), "c");
	ch.value[2] = NULL;
	cr_assert_str_eq(cli_choose(&ch, &from), "l");
	cr_assert_str_eq(from, "L");
	ch.value[3] = NULL;
	cr_assert_null(cli_choose(&ch, &from));
	cr_assert_null(from);
}

/* ---- Arguments ------------------------------------------------------------------------------ */

/* Parses the words after "viv" (a NULL-terminated list). */
static enum viv_err args(struct cli_args *a, char *errbuf, const char *const *words)
{
	char *argv[16];
	int argc = 0;

	argv[argc++] = "viv";
	while (*words && argc < 15)
		argv[argc++] = (char *)*words++;
	argv[argc] = NULL;
	return cli_args_parse(argc, argv, a, errbuf, 512);
}

#define ARGS(a, e, ...) args(a, e, (const char *const[]){__VA_ARGS__, NULL})

Test(args, commands_verbs_and_options_anywhere)
{
	struct cli_args a;
	char e[512];

	cr_assert_eq(ARGS(&a, e, "kv", "hello", "set", "--api", "http://x", "k", "-"), VIV_OK, "%s",
	             e);
	cr_assert_eq(a.cmd->run, cli_kv_set);
	cr_assert_eq(a.argc, 3);
	cr_assert_str_eq(a.arg[0], "hello");
	cr_assert_str_eq(a.arg[1], "k");
	cr_assert_str_eq(a.arg[2], "-");
	cr_assert_str_eq(a.api, "http://x");

	cr_assert_eq(ARGS(&a, e, "token", "create", "ci", "--app", "a", "--app", "b"), VIV_OK, "%s",
	             e);
	cr_assert_eq(a.napps, 2);
	cr_assert_str_eq(a.apps[1], "b");

	cr_assert_eq(ARGS(&a, e, "logs", "-f", "hello", "--json"), VIV_OK, "%s", e);
	cr_assert_eq(a.given, CLI_O_FOLLOW | CLI_O_JSON);

	/* Words after -- are arguments even when they look like options. */
	cr_assert_eq(ARGS(&a, e, "kv", "hello", "set", "--", "n", "-5"), VIV_OK, "%s", e);
	cr_assert_str_eq(a.arg[2], "-5");

	cr_assert_eq(ARGS(&a, e, "deploy"), VIV_OK, "%s", e);
	cr_assert_eq(a.argc, 0);
	cr_assert_eq(ARGS(&a, e, "deployments", "hello", "--limit", "5", "--before", "9"), VIV_OK,
	             "%s", e);
	cr_assert_eq(a.limit, 5);
	cr_assert_eq(a.before, 9);
}

Test(args, help_and_version)
{
	struct cli_args a;
	char e[512];

	cr_assert_eq(ARGS(&a, e, "help"), VIV_OK);
	cr_assert(a.help);
	cr_assert_null(a.topic);
	cr_assert_eq(ARGS(&a, e, "help", "kv"), VIV_OK);
	cr_assert_str_eq(a.topic, "kv");
	/* --help works even where the arguments would be wrong. */
	cr_assert_eq(ARGS(&a, e, "kv", "--help"), VIV_OK, "%s", e);
	cr_assert(a.help);
	cr_assert_str_eq(a.topic, "kv");
	cr_assert_eq(ARGS(&a, e, "rm", "-h"), VIV_OK, "%s", e);
	cr_assert_str_eq(a.topic, "rm");
	cr_assert_eq(ARGS(&a, e, "--version"), VIV_OK);
	cr_assert(a.version);
	cr_assert_eq(cli_help(stderr, "nothing-like-it"), VIV_ERR_NOT_FOUND);
}

Test(args, mistakes_say_what_to_do)
{
	static const char *const cases[][8] = {
	        {"there is no command \"frob\"", "frob"},
	        {"no command given", "--json"},
	        {"viv kv needs one of ls, get, set, rm after the app's name", "kv", "hello"},
	        {"viv kv has no \"put\"; it has ls, get, set, rm", "kv", "hello", "put", "k"},
	        {"viv token needs one of create, ls, revoke", "token"},
	        {"missing arguments for viv kv set; usage: viv kv APP set KEY VALUE", "kv", "a",
	         "set", "k"},
	        {"too many arguments for viv apps", "apps", "x"},
	        {"too many arguments for viv status", "status", "1", "2"},
	        {"--follow does not go with viv apps", "apps", "-f"},
	        {"--json does not go with viv kv set", "kv", "a", "set", "k", "v", "--json"},
	        {"--app is given 2 times", "deploy", "--app", "a", "--app", "b"},
	        {"--limit takes a whole number above zero, not \"0\"", "logs", "a", "--limit", "0"},
	        {"--before takes a deployment id", "deployments", "a", "--before", "x"},
	        {"--api needs a value", "apps", "--api"},
	        {"there is no option --bogus", "apps", "--bogus"},
	        {"there is no option -q", "apps", "-q"},
	        {"either --admin or for --app APP..., not both", "token", "create", "t", "--admin",
	         "--app", "a"},
	        {"say what the token may do", "token", "create", "t"},
	        {"viv help takes one command", "help", "a", "b"},
	};
	struct cli_args a;
	char e[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(args(&a, e, cases[i] + 1), VIV_ERR_INVALID, "case %zu passed", i);
		cr_assert(strstr(e, cases[i][0]), "case %zu said \"%s\"", i, e);
	}
}
