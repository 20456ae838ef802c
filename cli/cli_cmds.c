/* The viv commands: deploy (pack or read, upload, follow the build), apps,
 * status and logs, printed for a human. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *cli_name_rule =
	"app names are DNS labels: 1-63 lowercase letters, digits and '-', not starting or "
	"ending with '-'";

/* ---- Small helpers -------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Writes text to f with control characters (bar newline and tab, when
 * asked) shown as '?': log lines come from guests and compilers, and must
 * not drive the user's terminal with escape sequences. */
static void print_safe(FILE *f, const char *text, bool keep_newlines)
{
	const unsigned char *p;

	for (p = (const unsigned char *)text; *p; p++) {
		if ((*p == '\n' && keep_newlines) || *p == '\t' || (*p >= 0x20 && *p != 0x7f))
			fputc(*p, f);
		else
			fputc('?', f);
	}
}

/* "2024-05-01T12:00:00.123Z" to ms since the epoch. */
static bool parse_iso(const char *s, int64_t *ms_out)
{
	struct tm tm = {0};
	int ms = 0;
	time_t t;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms_out = (int64_t)t * 1000 + ms;
	return true;
}

/* A JSON time of the API shown in local time, or "-" for null. */
static void show_time(json_t *v, bool with_ms, char *buf, size_t len)
{
	struct tm tm;
	int64_t ms;
	time_t t;
	size_t n;

	if (!parse_iso(json_string_value(v), &ms)) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)(ms / 1000);
	localtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	if (with_ms && n > 0)
		snprintf(buf + n, len - n, ".%03d", (int)(ms % 1000));
}

/* The string member key of obj, or dflt. Borrowed from obj. */
static const char *str_of(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

static void human_size(size_t n, char *buf, size_t len)
{
	if (n < 1024)
		snprintf(buf, len, "%zu bytes", n);
	else if (n < (1u << 20))
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
}

/* ---- deploy ------------------------------------------------------------------------- */

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
				 "%s is not a JSON object (line %d: %s); fix it or remove it",
				 path, jerr.line, m ? "not an object" : jerr.text);
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

/* The app name for a file: its name without the archive or .wasm
 * extension. */
static enum viv_err name_of_file(const char *file, char *name, size_t len, char *errbuf,
				 size_t errlen)
{
	static const char *const exts[] = {".tar.gz", ".tgz",  ".tar.xz", ".tar.bz2", ".tar.zst",
					   ".tar",    ".wasm", ".zip",    ".gz"};
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
		viv_errf(errbuf, errlen,
			 "cannot make an app name out of the file name \"%s\"; pass --app NAME (%s)",
			 base, cli_name_rule);
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

/* Prints a failed deployment's error and build log on stderr. */
static void print_failure(json_t *d)
{
	const char *log = str_of(d, "log", "");

	fprintf(stderr, "failed: ");
	print_safe(stderr, str_of(d, "error", "the build failed without a message"), false);
	fputc('\n', stderr);
	if (log[0]) {
		fprintf(stderr, "build log:\n");
		print_safe(stderr, log, true);
		if (log[strlen(log) - 1] != '\n')
			fputc('\n', stderr);
	}
}

/* Polls the deployment until it is ready or failed, printing each status. */
static int follow_build(struct cli *c, int64_t id, uint64_t started_ns)
{
	char path[64], errbuf[1024], last[32] = "queued";
	const char *status;
	json_t *d = NULL;
	int64_t t0, t1;
	double secs;
	int failures = 0, polls = 0, ret = CLI_EXIT_FAIL;
	enum viv_err err;

	snprintf(path, sizeof(path), "/v1/deployments/%lld", (long long)id);
	for (;;) {
		err = cli_call(c, "GET", path, NULL, 0, 200, &d, errbuf, sizeof(errbuf));
		if (err == VIV_ERR_IO && ++failures < 5) {
			/* vivd may be restarting; builds survive that. */
			sleep_ms(1000);
			continue;
		}
		if (err) {
			fprintf(stderr, "viv: %s\n", errbuf);
			goto out;
		}
		failures = 0;
		status = str_of(d, "status", "?");
		if (strcmp(status, last) != 0) {
			snprintf(last, sizeof(last), "%s", status);
			if (strcmp(status, "ready") != 0 && strcmp(status, "failed") != 0)
				printf("%s\n", status);
		}
		if (strcmp(status, "ready") == 0) {
			if (parse_iso(str_of(d, "created_at", NULL), &t0) &&
			    parse_iso(str_of(d, "finished_at", NULL), &t1) && t1 >= t0)
				secs = (double)(t1 - t0) / 1000;
			else
				secs = (double)(viv_mono_ns() - started_ns) / 1e9;
			printf("ready in %.1f s: %s\n", secs, str_of(d, "url", "?"));
			ret = CLI_EXIT_OK;
			goto out;
		}
		if (strcmp(status, "failed") == 0) {
			print_failure(d);
			goto out;
		}
		fflush(stdout);
		json_decref(d);
		d = NULL;
		/* Quick builds show up quickly; long ones are not polled hard. */
		sleep_ms(++polls < CLI_POLL_FAST_COUNT ? CLI_POLL_MS : CLI_POLL_SLOW_MS);
	}
out:
	json_decref(d);
	return ret;
}

int cli_deploy(struct cli *c, const char *path, const char *app, bool wait)
{
	char name[64], errbuf[1024], size_txt[32], url[128];
	struct stat sb;
	json_t *idx = NULL, *rep = NULL, *v;
	char *body = NULL;
	size_t len = 0, files = 0, upload_max;
	uint64_t t0 = viv_mono_ns();
	int64_t id;
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
	if (app) {
		if (!viv_app_name_valid(app)) {
			fprintf(stderr, "viv: --app \"%s\" is not a valid app name: %s\n", app,
				cli_name_rule);
			return CLI_EXIT_USAGE;
		}
		snprintf(name, sizeof(name), "%s", app);
	} else {
		err = S_ISDIR(sb.st_mode)
			      ? name_of_dir(path, name, sizeof(name), errbuf, sizeof(errbuf))
			      : name_of_file(path, name, sizeof(name), errbuf, sizeof(errbuf));
		if (err) {
			fprintf(stderr, "viv: %s\n", errbuf);
			return CLI_EXIT_FAIL;
		}
	}

	/* Asking the API first checks the address and the token before any
	 * packing, and tells how large an upload may be. */
	err = cli_call(c, "GET", "/v1", NULL, 0, 200, &idx, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "viv: %s\n", errbuf);
		goto out;
	}
	v = json_object_get(idx, "upload_max");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		fprintf(stderr, "viv: the server at %s did not say how large an upload may be; is "
				"--api pointing at the Vivarium API?\n",
			c->api);
		goto out;
	}
	upload_max = (size_t)json_integer_value(v);

	if (S_ISDIR(sb.st_mode)) {
		err = cli_pack_dir(path, upload_max, &body, &len, &files, errbuf, sizeof(errbuf));
		if (err) {
			fprintf(stderr, "viv: %s\n", errbuf);
			goto out;
		}
		if (files == 0) {
			fprintf(stderr, "viv: %s has no files to deploy\n", path);
			goto out;
		}
	} else {
		err = viv_read_file(path, upload_max, &body, &len);
		if (err == VIV_ERR_TOO_BIG) {
			fprintf(stderr,
				"viv: %s is %lld bytes, over the server's upload limit of %zu bytes\n",
				path, (long long)sb.st_size, upload_max);
			goto out;
		}
		if (err) {
			fprintf(stderr, "viv: cannot read %s: %s\n", path, viv_strerror(err));
			goto out;
		}
		if (len == 0) {
			fprintf(stderr, "viv: %s is empty\n", path);
			goto out;
		}
	}

	human_size(len, size_txt, sizeof(size_txt));
	snprintf(url, sizeof(url), "/v1/apps/%s/deployments", name);
	err = cli_call(c, "POST", url, body, len, 202, &rep, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "viv: %s\n", errbuf);
		goto out;
	}
	v = json_object_get(rep, "id");
	if (!json_is_integer(v)) {
		fprintf(stderr, "viv: the API accepted the upload but did not say its deployment "
				"id\n");
		goto out;
	}
	id = (int64_t)json_integer_value(v);
	if (S_ISDIR(sb.st_mode))
		printf("uploaded %s (%zu file%s) as app \"%s\": deployment %lld\n", size_txt,
		       files, files == 1 ? "" : "s", name, (long long)id);
	else
		printf("uploaded %s as app \"%s\": deployment %lld\n", size_txt, name,
		       (long long)id);
	if (!wait) {
		printf("queued; follow it with: viv status %lld\n", (long long)id);
		ret = CLI_EXIT_OK;
		goto out;
	}
	printf("queued\n");
	fflush(stdout);
	ret = follow_build(c, id, t0);
out:
	json_decref(idx);
	json_decref(rep);
	free(body);
	return ret;
}

/* ---- apps -------------------------------------------------------------------------- */

int cli_apps(struct cli *c)
{
	char errbuf[1024], when[64], dep[32];
	json_t *rep = NULL, *apps, *a, *cur;
	size_t i;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	err = cli_call(c, "GET", "/v1/apps", NULL, 0, 200, &rep, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "viv: %s\n", errbuf);
		goto out;
	}
	apps = json_object_get(rep, "apps");
	if (!json_is_array(apps)) {
		fprintf(stderr, "viv: the API's reply has no list of apps\n");
		goto out;
	}
	ret = CLI_EXIT_OK;
	if (json_array_size(apps) == 0) {
		printf("no apps yet; deploy one with: viv deploy FOLDER\n");
		goto out;
	}
	printf("%-24s %-10s %-19s  %s\n", "NAME", "SERVING", "CREATED", "URL");
	json_array_foreach(apps, i, a)
	{
		cur = json_object_get(a, "current_deployment");
		if (json_is_integer(cur))
			snprintf(dep, sizeof(dep), "%lld", (long long)json_integer_value(cur));
		else
			snprintf(dep, sizeof(dep), "-");
		show_time(json_object_get(a, "created_at"), false, when, sizeof(when));
		printf("%-24s %-10s %-19s  %s\n", str_of(a, "name", "?"), dep, when,
		       str_of(a, "url", "-"));
	}
out:
	json_decref(rep);
	return ret;
}

/* ---- status ------------------------------------------------------------------------- */

static bool digits_only(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 18)
			return false;
	}
	return i > 0;
}

int cli_status(struct cli *c, const char *id)
{
	char path[64], errbuf[1024], when[64];
	json_t *d = NULL, *timings, *v;
	const char *key, *log;
	const char *const rows[][2] = {{"language", "language"}, {"mode", "mode"},
				       {"artifact", "artifact"}, {"url", "url"}};
	const char *const times[][2] = {
		{"created", "created_at"}, {"started", "started_at"}, {"finished", "finished_at"}};
	size_t i;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	if (!digits_only(id)) {
		fprintf(stderr, "viv: \"%s\" is not a deployment id; ids are whole numbers like "
				"the one viv deploy printed\n",
			id);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/deployments/%s", id);
	err = cli_call(c, "GET", path, NULL, 0, 200, &d, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "viv: %s\n", errbuf);
		goto out;
	}
	printf("deployment %s of %s: %s%s\n", id, str_of(d, "app", "?"), str_of(d, "status", "?"),
	       json_is_true(json_object_get(d, "current")) ? " (serving)" : "");
	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		v = json_object_get(d, times[i][1]);
		if (json_is_string(v)) {
			show_time(v, true, when, sizeof(when));
			printf("  %-9s %s\n", times[i][0], when);
		}
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *val = str_of(d, rows[i][1], NULL);

		if (val)
			printf("  %-9s %s\n", rows[i][0], val);
	}
	timings = json_object_get(d, "timings");
	if (json_is_object(timings) && json_object_size(timings) > 0) {
		bool first = true;

		printf("  %-9s ", "timings");
		json_object_foreach(timings, key, v)
		{
			printf("%s%s %lld ms", first ? "" : ", ", key,
			       json_is_integer(v) ? (long long)json_integer_value(v) : 0LL);
			first = false;
		}
		printf("\n");
	}
	if (str_of(d, "error", NULL)) {
		printf("  %-9s ", "error");
		print_safe(stdout, str_of(d, "error", ""), false);
		printf("\n");
	}
	log = str_of(d, "log", "");
	if (log[0]) {
		printf("build log:\n");
		print_safe(stdout, log, true);
		if (log[strlen(log) - 1] != '\n')
			printf("\n");
	}
	ret = CLI_EXIT_OK;
out:
	json_decref(d);
	return ret;
}

/* ---- logs ------------------------------------------------------------------------------ */

/* Prints one page of log lines and moves *after past them. */
static enum viv_err print_logs(json_t *rep, int64_t *after, size_t *printed)
{
	json_t *lines = json_object_get(rep, "logs"), *l, *next, *dep;
	char when[64];
	size_t i;

	if (!json_is_array(lines))
		return VIV_ERR_INVALID;
	json_array_foreach(lines, i, l)
	{
		show_time(json_object_get(l, "time"), true, when, sizeof(when));
		dep = json_object_get(l, "deployment");
		if (json_is_integer(dep))
			printf("%s [%lld %s] ", when, (long long)json_integer_value(dep),
			       str_of(l, "stream", "?"));
		else
			printf("%s [%s] ", when, str_of(l, "stream", "?"));
		print_safe(stdout, str_of(l, "message", ""), false);
		printf("\n");
		(*printed)++;
	}
	next = json_object_get(rep, "next_after");
	if (json_is_integer(next) && json_integer_value(next) > *after)
		*after = (int64_t)json_integer_value(next);
	fflush(stdout);
	return VIV_OK;
}

int cli_logs(struct cli *c, const char *app, bool follow)
{
	char path[160], errbuf[1024];
	json_t *rep = NULL;
	int64_t after = 0;
	size_t printed = 0;
	int failures = 0;
	bool first = true;
	enum viv_err err;

	if (!viv_app_name_valid(app)) {
		fprintf(stderr, "viv: \"%s\" is not a valid app name: %s\n", app, cli_name_rule);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/logs?limit=100", app);
	for (;;) {
		err = cli_call(c, "GET", path, NULL, 0, 200, &rep, errbuf, sizeof(errbuf));
		if (err == VIV_ERR_IO && follow && ++failures < 30) {
			/* Keep following across a restart of vivd. */
			sleep_ms(CLI_FOLLOW_MS);
			continue;
		}
		if (err) {
			fprintf(stderr, "viv: %s\n", errbuf);
			return CLI_EXIT_FAIL;
		}
		failures = 0;
		err = print_logs(rep, &after, &printed);
		json_decref(rep);
		rep = NULL;
		if (err) {
			fprintf(stderr, "viv: the API's reply has no list of log lines\n");
			return CLI_EXIT_FAIL;
		}
		if (!follow)
			break;
		if (first && printed == 0)
			fprintf(stderr, "viv: no log lines for %s yet; waiting for new ones "
					"(Ctrl-C stops)\n",
				app);
		first = false;
		sleep_ms(CLI_FOLLOW_MS);
		snprintf(path, sizeof(path), "/v1/apps/%s/logs?after=%lld&limit=1000", app,
			 (long long)after);
	}
	if (printed == 0)
		fprintf(stderr, "viv: no log lines for %s yet\n", app);
	return CLI_EXIT_OK;
}
