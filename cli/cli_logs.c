/* viv logs: an app's recent log lines, or with --follow its log stream,
 * resumed with Last-Event-ID whenever the connection drops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* A log being followed over one or more connections. */
struct log_follow {
	struct cli *c;
	bool json;
	char last_id[CLI_SSE_FIELD_MAX + 1]; /* of the last line printed */
	size_t lines;
};

/* Prints one log line object: "TIME [DEPLOYMENT STREAM] message". */
static void print_line(struct cli *c, json_t *l)
{
	const char *stream = cli_str(l, "stream", "?"), *msg = cli_str(l, "message", "");
	json_t *dep = json_object_get(l, "deployment");
	enum cli_colour colour = CLI_PLAIN;
	char when[64], tag[96];
	size_t i;

	cli_time_text(json_object_get(l, "time"), true, when, sizeof(when));
	if (json_is_integer(dep))
		snprintf(tag, sizeof(tag), "[%lld %.32s]", (long long)json_integer_value(dep),
		         stream);
	else
		snprintf(tag, sizeof(tag), "[%.32s]", stream);
	if (strcmp(stream, "stderr") == 0 || strcmp(stream, "trap") == 0)
		colour = CLI_RED;
	else if (strcmp(stream, "access") == 0)
		colour = CLI_DIM;
	/* The tag is a number and the stream's name, which is a word. */
	for (i = 0; tag[i]; i++) {
		if ((unsigned char)tag[i] < 0x20 || (unsigned char)tag[i] >= 0x7f)
			tag[i] = '?';
	}
	printf("%s ", when);
	cli_put_colour(stdout, c->colour, colour, tag);
	fputc(' ', stdout);
	cli_print_safe(stdout, msg, strlen(msg), false);
	fputc('\n', stdout);
}

static bool on_log_event(void *ctx, const struct cli_sse_event *ev)
{
	struct log_follow *f = ctx;
	json_t *l;
	char *compact;

	if (strcmp(ev->type, "log") != 0)
		return true;
	snprintf(f->last_id, sizeof(f->last_id), "%s", ev->id);
	l = json_loadb(ev->data, ev->len, 0, NULL);
	if (!json_is_object(l)) {
		json_decref(l);
		return true;
	}
	f->lines++;
	if (!f->json) {
		print_line(f->c, l);
	} else if (!memchr(ev->data, '\n', ev->len)) {
		fwrite(ev->data, 1, ev->len, stdout);
		fputc('\n', stdout);
	} else {
		/* One object a line, whatever lines the stream split it into. */
		compact = json_dumps(l, JSON_COMPACT);
		if (compact)
			printf("%s\n", compact);
		free(compact);
	}
	fflush(stdout);
	json_decref(l);
	return true;
}

/* Follows the log stream at path until the API refuses it or viv is
 * stopped. */
static int follow(struct cli *c, const struct cli_args *a, const char *path)
{
	struct log_follow f = {.c = c, .json = (a->given & CLI_O_JSON) != 0};
	struct cli_sse p;
	char errbuf[1024];
	unsigned wait_ms = CLI_RETRY_MS;
	bool opened, told = false;
	enum viv_err err;

	if (c->tty)
		fprintf(stderr, "viv: following the log of %s; Ctrl-C stops\n", a->arg[0]);
	for (;;) {
		cli_sse_init(&p, on_log_event, &f);
		err = cli_stream(c, path, f.last_id, &p, errbuf, sizeof(errbuf));
		opened = p.events > 0 || p.comments > 0 || p.started;
		cli_sse_free(&p);
		if (err != VIV_ERR_IO || (!f.last_id[0] && !opened && !told))
			return cli_fail(err ? err : VIV_ERR_IO, errbuf);
		if (opened) {
			wait_ms = CLI_RETRY_MS;
			told = false;
		}
		if (!told)
			fprintf(stderr, "viv: %s; reconnecting%s%s\n", errbuf,
			        f.last_id[0] ? " after line " : "", f.last_id);
		told = true;
		cli_sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 > CLI_RETRY_MAX_MS ? CLI_RETRY_MAX_MS : wait_ms * 2;
	}
}

int cli_logs(struct cli *c, const struct cli_args *a)
{
	struct cli_reply r = {0};
	char path[160];
	json_t *lines, *l;
	size_t i;
	int ret = CLI_EXIT_FAIL;

	if (!cli_app_ok(a->arg[0]))
		return CLI_EXIT_USAGE;
	if (a->given & CLI_O_FOLLOW) {
		if (a->given & CLI_O_LIMIT) {
			fprintf(stderr, "viv: --follow starts with the last 100 lines; --limit "
			                "goes without it\n");
			return CLI_EXIT_USAGE;
		}
		snprintf(path, sizeof(path), "/v1/apps/%s/logs/stream", a->arg[0]);
		return follow(c, a, path);
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/logs?limit=%lld", a->arg[0],
	         a->given & CLI_O_LIMIT ? a->limit : 100LL);
	if (!cli_get_list(c, a, path, "logs", "log lines", &r, &lines, &ret))
		goto out;
	json_array_foreach(lines, i, l) print_line(c, l);
	if (json_array_size(lines) == 0)
		fprintf(stderr, "viv: no log lines for %s yet\n", a->arg[0]);
	ret = CLI_EXIT_OK;
out:
	cli_reply_free(&r);
	return ret;
}
