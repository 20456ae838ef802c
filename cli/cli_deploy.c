/* viv deploy (pack or read, upload with its progress, then the build's
 * steps and log as the API's event stream tells them) and viv status. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Steps remembered so that a replayed stream shows each once. */
#define CLI_STEPS_MAX 32
/* Reconnections of one build's stream before viv gives up on it. */
#define CLI_BUILD_RETRIES 30

/* A build being followed over one or more connections. */
struct build_watch {
	struct cli *c;
	size_t log_seen;    /* log bytes the current connection has sent */
	size_t log_printed; /* log bytes printed, over every connection */
	char steps[CLI_STEPS_MAX][48];
	size_t nsteps;
	char status[16]; /* the status last printed */
	char header[64]; /* the log's own "== STEP" line that the step's "==> STEP" replaces */
	bool line_start; /* the output is at the start of a line */
	json_t *final;   /* the deployment once ready or failed; owned */
};

/* ---- App names ----------------------------------------------------------------------- */

/* The app name for a directory: vivarium.json's "name", else the folder's
 * own name. Writes into name (64 bytes) or explains in errbuf. */
static enum viv_err name_of_dir(const char *dir, char *name, size_t len, char *errbuf,
                                size_t errlen)
{
	char *path = NULL, *text = NULL, *real = NULL;
	json_error_t jerr;
	json_t *m = NULL, *v;
	size_t tlen = 0;
	enum viv_err err = VIV_OK;

	path = viv_path_join(dir, "vivarium.json");
	if (!path) {
		viv_errf(errbuf, errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	err = viv_read_file(path, CLI_MANIFEST_MAX, &text, &tlen);
	if (err == VIV_OK) {
		m = json_loadb(text, tlen, 0, &jerr);
		if (!m || !json_is_object(m)) {
			viv_errf(errbuf, errlen,
			         "%s is not a JSON object (line %d: %s); fix it or remove it", path,
			         jerr.line, m ? "not an object" : jerr.text);
			err = VIV_ERR_INVALID;
			goto out;
		}
		v = json_object_get(m, "name");
		if (v && !json_is_string(v)) {
			viv_errf(errbuf, errlen, "\"name\" in %s must be a string", path);
			err = VIV_ERR_INVALID;
			goto out;
		}
		if (v) {
			if (!viv_app_name_valid(json_string_value(v))) {
				viv_errf(errbuf, errlen,
				         "%s names the app \"%s\", which is not a valid name: %s",
				         path, json_string_value(v), cli_name_rule);
				err = VIV_ERR_INVALID;
				goto out;
			}
			snprintf(name, len, "%s", json_string_value(v));
			goto out;
		}
	} else if (err != VIV_ERR_NOT_FOUND) {
		viv_errf(errbuf, errlen, "cannot read %s: %s", path, viv_strerror(err));
		goto out;
	}
	err = VIV_OK;
	real = realpath(dir, NULL);
	if (!real) {
		viv_errf(errbuf, errlen, "cannot resolve %s: %s", dir, strerror(errno));
		err = VIV_ERR_IO;
		goto out;
	}
	cli_name_from(basename(real), name, len);
	if (!viv_app_name_valid(name)) {
		viv_errf(errbuf, errlen,
		         "cannot make an app name out of the folder name \"%s\"; pass --app NAME "
		         "(%s)",
		         basename(real), cli_name_rule);
		err = VIV_ERR_INVALID;
	}
out:
	json_decref(m);
	free(text);
	free(path);
	free(real);
	return err;
}

/* The app name for a file: its name without the archive, .wasm or .wat
 * extension. */
static enum viv_err name_of_file(const char *file, char *name, size_t len, char *errbuf,
                                 size_t errlen)
{
	static const char *const exts[] = {".tar.gz", ".tgz",  ".tar.xz", ".tar.bz2", ".tar.zst",
	                                   ".tar",    ".wasm", ".wat",    ".zip",     ".gz"};
	const char *base = strrchr(file, '/');
	char stem[256];
	size_t n, e, i;

	base = base ? base + 1 : file;
	snprintf(stem, sizeof(stem), "%s", base);
	n = strlen(stem);
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		e = strlen(exts[i]);
		if (n > e && strcmp(stem + n - e, exts[i]) == 0) {
			stem[n - e] = '\0';
			break;
		}
	}
	cli_name_from(stem, name, len);
	if (!viv_app_name_valid(name)) {
		viv_errf(
		        errbuf, errlen,
		        "cannot make an app name out of the file name \"%s\"; pass --app NAME (%s)",
		        base, cli_name_rule);
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

/* ---- Following a build --------------------------------------------------------------- */

static void end_line(struct build_watch *w)
{
	if (!w->line_start)
		fputc('\n', stdout);
	w->line_start = true;
}

static void on_step(struct build_watch *w, json_t *d)
{
	const char *step = cli_str(d, "step", NULL);
	size_t i;

	if (!step)
		return;
	for (i = 0; i < w->nsteps; i++) {
		if (strcmp(w->steps[i], step) == 0)
			return; /* a replay after a reconnection */
	}
	if (w->nsteps < CLI_STEPS_MAX)
		snprintf(w->steps[w->nsteps++], sizeof(w->steps[0]), "%s", step);
	end_line(w);
	cli_put_colour(stdout, w->c->colour, CLI_BOLD, "==> ");
	cli_print_safe(stdout, step, strlen(step), false);
	fputc('\n', stdout);
	snprintf(w->header, sizeof(w->header), "== %s\n", step);
}

/* Prints the part of a log chunk that no earlier connection printed: a
 * stream opened late starts again from the log's first byte. The log's
 * own heading of a step just announced is left out. */
static void on_log(struct build_watch *w, json_t *d)
{
	const char *text = cli_str(d, "text", "");
	size_t len = strlen(text), skip = 0, hlen = strlen(w->header);

	if (w->log_seen + len > w->log_printed) {
		if (w->log_printed > w->log_seen)
			skip = w->log_printed - w->log_seen;
		if (hlen && len - skip >= hlen && memcmp(text + skip, w->header, hlen) == 0)
			skip += hlen;
		cli_print_safe(stdout, text + skip, len - skip, true);
		w->log_printed = w->log_seen + len;
		if (len > skip)
			w->line_start = text[len - 1] == '\n';
	}
	w->header[0] = '\0';
	w->log_seen += len;
}

/* Returns false once the build is over. */
static bool on_status(struct build_watch *w, json_t *d)
{
	const char *status = cli_str(d, "status", "?");

	if (strcmp(status, "ready") == 0 || strcmp(status, "failed") == 0) {
		w->final = json_incref(d);
		return false;
	}
	if (strcmp(status, w->status) != 0) {
		snprintf(w->status, sizeof(w->status), "%s", status);
		end_line(w);
		cli_put_colour(stdout, w->c->colour, cli_status_colour(status), status);
		fputc('\n', stdout);
	}
	return true;
}

static bool on_build_event(void *ctx, const struct cli_sse_event *ev)
{
	struct build_watch *w = ctx;
	json_t *d = json_loadb(ev->data, ev->len, 0, NULL);
	bool go_on = true;

	/* Events viv does not know, or cannot read, are for newer clients. */
	if (!json_is_object(d)) {
		json_decref(d);
		return true;
	}
	if (strcmp(ev->type, "step") == 0)
		on_step(w, d);
	else if (strcmp(ev->type, "log") == 0)
		on_log(w, d);
	else if (strcmp(ev->type, "status") == 0)
		go_on = on_status(w, d);
	fflush(stdout);
	json_decref(d);
	return go_on;
}

/* Follows the build at path until it is ready or failed; *final_out is
 * the deployment then (caller frees with json_decref()). */
static int watch_build(struct cli *c, const char *path, long long id, json_t **final_out)
{
	struct build_watch w = {.c = c, .line_start = true};
	struct cli_sse p;
	char errbuf[1024];
	unsigned wait_ms = CLI_RETRY_MS;
	int tries = 0;
	enum viv_err err;

	*final_out = NULL;
	for (;;) {
		cli_sse_init(&p, on_build_event, &w);
		w.log_seen = 0;
		err = cli_stream(c, path, NULL, &p, errbuf, sizeof(errbuf));
		cli_sse_free(&p);
		if (!err && w.final)
			break;
		end_line(&w);
		if (err != VIV_ERR_IO || ++tries > CLI_BUILD_RETRIES) {
			fprintf(stderr,
			        "viv: %s\nviv: the build goes on; viv status %lld shows it\n",
			        errbuf, id);
			return cli_exit_of(err ? err : VIV_ERR_IO);
		}
		if (tries == 1)
			fprintf(stderr, "viv: %s; reconnecting\n", errbuf);
		cli_sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 > CLI_RETRY_MAX_MS ? CLI_RETRY_MAX_MS : wait_ms * 2;
	}
	end_line(&w);
	*final_out = w.final;
	return CLI_EXIT_OK;
}

/* Prints how a finished build ended; returns the exit status. */
static int report_build(struct cli *c, json_t *d, uint64_t started_ns)
{
	const char *err = cli_str(d, "error", NULL), *url = cli_str(d, "url", NULL);
	const char *preview = cli_str(d, "preview_url", NULL);
	int64_t t0, t1;
	double secs;

	if (strcmp(cli_str(d, "status", ""), "failed") == 0) {
		fprintf(stderr, "viv: deployment %lld failed: ",
		        (long long)json_integer_value(json_object_get(d, "id")));
		err = err ? err : "the build failed without a message";
		cli_print_safe(stderr, err, strlen(err), true);
		fputc('\n', stderr);
		fprintf(stderr, "viv: the app serves what it served before\n");
		return CLI_EXIT_BUILD;
	}
	if (cli_parse_time(cli_str(d, "created_at", NULL), &t0) &&
	    cli_parse_time(cli_str(d, "finished_at", NULL), &t1) && t1 >= t0)
		secs = (double)(t1 - t0) / 1000;
	else
		secs = (double)(viv_mono_ns() - started_ns) / 1e9;
	cli_put_colour(stdout, c->colour, CLI_GREEN, "ready");
	printf(" in %.1f s: %s\n", secs, url ? url : "(no address)");
	if (preview)
		printf("preview: %s\n", preview);
	cli_localhost_hint(url);
	return CLI_EXIT_OK;
}

/* ---- deploy --------------------------------------------------------------------------- */

/* Reads what deploy uploads: a packed folder or a file as it is. */
static enum viv_err read_upload(const char *path, bool dir, size_t max, char **body, size_t *len,
                                size_t *files)
{
	char errbuf[1024];
	enum viv_err err;

	if (dir) {
		err = cli_pack_dir(path, max, body, len, files, errbuf, sizeof(errbuf));
		if (err)
			fprintf(stderr, "viv: %s\n", errbuf);
		else if (*files == 0) {
			fprintf(stderr, "viv: %s has no files to deploy\n", path);
			err = VIV_ERR_INVALID;
		}
		return err;
	}
	err = viv_read_file(path, max, body, len);
	if (err == VIV_ERR_TOO_BIG)
		fprintf(stderr, "viv: %s is over the server's upload limit of %zu bytes\n", path,
		        max);
	else if (err)
		fprintf(stderr, "viv: cannot read %s: %s\n", path, viv_strerror(err));
	else if (*len == 0) {
		fprintf(stderr, "viv: %s is empty\n", path);
		err = VIV_ERR_INVALID;
	}
	return err;
}

int cli_deploy(struct cli *c, const struct cli_args *a)
{
	const char *path = a->argc > 0 ? a->arg[0] : ".";
	char name[64], errbuf[1024], size_txt[32], url[128], events[128];
	struct cli_request rq = {.method = "POST", .has_body = true, .progress = true};
	struct cli_reply rep = {0};
	struct stat sb;
	json_t *idx = NULL, *v, *final = NULL;
	char *body = NULL;
	size_t len = 0, files = 0, upload_max;
	uint64_t t0 = viv_mono_ns();
	long long id;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	if (stat(path, &sb) != 0) {
		fprintf(stderr, "viv: cannot read %s: %s\n", path, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "viv: %s is neither a folder nor a file\n", path);
		return CLI_EXIT_FAIL;
	}
	if (a->napps > 0) {
		if (!cli_app_ok(a->apps[0]))
			return CLI_EXIT_USAGE;
		snprintf(name, sizeof(name), "%s", a->apps[0]);
	} else {
		err = S_ISDIR(sb.st_mode)
		              ? name_of_dir(path, name, sizeof(name), errbuf, sizeof(errbuf))
		              : name_of_file(path, name, sizeof(name), errbuf, sizeof(errbuf));
		if (err) {
			fprintf(stderr, "viv: %s\n", errbuf);
			return CLI_EXIT_FAIL;
		}
	}

	/* Asking the API first checks its address before any packing, and
	 * tells how large an upload may be. */
	err = cli_call(c, "GET", "/v1", NULL, 0, &idx, errbuf, sizeof(errbuf));
	if (err) {
		ret = cli_fail(err, errbuf);
		goto out;
	}
	v = json_object_get(idx, "upload_max");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		fprintf(stderr,
		        "viv: the server at %s did not say how large an upload may be; is "
		        "that the address of the Vivarium API?\n",
		        c->api);
		goto out;
	}
	upload_max = (size_t)json_integer_value(v);
	if (read_upload(path, S_ISDIR(sb.st_mode), upload_max, &body, &len, &files))
		goto out;

	snprintf(url, sizeof(url), "/v1/apps/%s/deployments", name);
	rq.path = url;
	rq.body = body;
	rq.len = len;
	err = cli_send(c, &rq, &rep, errbuf, sizeof(errbuf));
	if (err) {
		ret = cli_fail(err, errbuf);
		goto out;
	}
	v = json_object_get(rep.json, "id");
	if (!json_is_integer(v)) {
		fprintf(stderr, "viv: the API accepted the upload but did not say its deployment "
		                "id\n");
		goto out;
	}
	id = (long long)json_integer_value(v);
	cli_size_text(len, size_txt, sizeof(size_txt));
	if (S_ISDIR(sb.st_mode))
		printf("uploaded %s (%zu file%s) as app \"%s\": deployment %lld\n", size_txt, files,
		       files == 1 ? "" : "s", name, id);
	else
		printf("uploaded %s as app \"%s\": deployment %lld\n", size_txt, name, id);
	if (a->given & CLI_O_NO_WAIT) {
		printf("queued; follow it with: viv status %lld\n", id);
		ret = CLI_EXIT_OK;
		goto out;
	}
	fflush(stdout);
	/* The reply names the stream; only a path on the same API is used. */
	v = json_object_get(rep.json, "events_url");
	if (json_is_string(v) && strncmp(json_string_value(v), "/v1/", 4) == 0 &&
	    strlen(json_string_value(v)) < sizeof(events))
		snprintf(events, sizeof(events), "%s", json_string_value(v));
	else
		snprintf(events, sizeof(events), "/v1/deployments/%lld/events", id);
	ret = watch_build(c, events, id, &final);
	if (ret == CLI_EXIT_OK)
		ret = report_build(c, final, t0);
out:
	json_decref(final);
	json_decref(idx);
	cli_reply_free(&rep);
	free(body);
	return ret;
}

/* ---- status ----------------------------------------------------------------------------- */

/* Prints "  label         value" for a string member, when it is one;
 * multi-line values (a compiler's error) keep their lines. */
static void print_row(const char *label, json_t *v, bool lines)
{
	const char *s = json_string_value(v);

	if (!s)
		return;
	printf("  %-13s ", label);
	cli_print_safe(stdout, s, strlen(s), lines);
	fputc('\n', stdout);
}

int cli_status(struct cli *c, const struct cli_args *a)
{
	static const char *const times[][2] = {
	        {"created", "created_at"}, {"started", "started_at"}, {"finished", "finished_at"}};
	static const char *const rows[][2] = {
	        {"language", "language"}, {"mode", "mode"}, {"deployed by", "deployed_by"},
	        {"artifact", "artifact"}, {"url", "url"},   {"preview", "preview_url"}};
	char path[64], errbuf[1024], when[64], size[32];
	struct cli_reply r = {0};
	struct cli_request rq = {.method = "GET", .path = path};
	json_t *d, *timings, *v;
	const char *key, *log, *status;
	long long id;
	size_t i;
	enum viv_err err;
	int ret;

	if (!cli_id_ok(a->arg[0], &id)) {
		fprintf(stderr,
		        "viv: \"%s\" is not a deployment id; ids are whole numbers like "
		        "the one viv deploy printed\n",
		        a->arg[0]);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/deployments/%lld", id);
	err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
	if (err)
		return cli_fail(err, errbuf);
	d = r.json;
	status = cli_str(d, "status", "?");
	ret = strcmp(status, "failed") == 0 ? CLI_EXIT_BUILD : CLI_EXIT_OK;
	if (a->given & CLI_O_JSON) {
		cli_print_json(&r);
		goto out;
	}
	printf("deployment %lld of ", id);
	cli_print_safe(stdout, cli_str(d, "app", "?"), strlen(cli_str(d, "app", "?")), false);
	printf(": ");
	cli_put_colour(stdout, c->colour, cli_status_colour(status), status);
	printf("%s\n", json_is_true(json_object_get(d, "current")) ? " (serving)" : "");
	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		v = json_object_get(d, times[i][1]);
		if (json_is_string(v)) {
			cli_time_text(v, true, when, sizeof(when));
			printf("  %-13s %s\n", times[i][0], when);
		}
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		print_row(rows[i][0], json_object_get(d, rows[i][1]), false);
	v = json_object_get(d, "upload_size");
	if (json_is_integer(v)) {
		cli_size_text((uint64_t)json_integer_value(v), size, sizeof(size));
		printf("  %-13s %s\n", "upload", size);
	}
	v = json_object_get(d, "artifact_size");
	if (json_is_integer(v)) {
		cli_size_text((uint64_t)json_integer_value(v), size, sizeof(size));
		printf("  %-13s %s\n", "artifact size", size);
	}
	timings = json_object_get(d, "timings");
	if (json_is_object(timings) && json_object_size(timings) > 0) {
		bool first = true;

		printf("  %-13s ", "timings");
		json_object_foreach(timings, key, v)
		{
			printf("%s", first ? "" : ", ");
			cli_print_safe(stdout, key, strlen(key), false);
			printf(" %lld ms",
			       json_is_integer(v) ? (long long)json_integer_value(v) : 0LL);
			first = false;
		}
		printf("\n");
	}
	print_row("error", json_object_get(d, "error"), true);
	log = cli_str(d, "log", "");
	if (log[0]) {
		printf("build log:\n");
		cli_print_safe(stdout, log, strlen(log), true);
		if (log[strlen(log) - 1] != '\n')
			printf("\n");
	}
out:
	cli_reply_free(&r);
	return ret;
}
