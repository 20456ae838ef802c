/* A worker's metrics: a pool serves real guests in process (answers,
 * traps, limits, KV calls), the worker's counting and its writer thread
 * make the file, and the file is parsed as Prometheus text format 0.0.4
 * and checked; the writer also puts app log lines into a real store. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "metrics.h"
#include "store.h"
#include "writer.h"

static struct run_pool *pool;
static struct store *st;
static struct run_metrics *metrics;
static char datadir[] = "/tmp/viv-metrics-XXXXXX";
static char prom[300];
static struct run_app app = {.name = "counted", .limits = {2, 50, 5000}};

static void setup(void)
{
	struct run_pool_config pc;
	struct run_services sv = {0};
	char err[256];

	cr_assert_eq(run_thread_init(), VIV_OK);
	run_pool_config_defaults(&pc);
	pc.slots = 4;
	cr_assert_eq(run_pool_create(&pc, &pool), VIV_OK);
	cr_assert_not_null(mkdtemp(datadir));
	cr_assert_eq(store_open(datadir, &st, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(store_app_ensure(st, "counted", &app.id), VIV_OK);
	sv.store = st;
	run_pool_set_services(pool, &sv);
	cr_assert_eq(run_metrics_create(1000, &metrics), VIV_OK);
	snprintf(prom, sizeof(prom), "%s/run/metrics/worker-3.prom", datadir);
}

static void teardown(void)
{
	run_metrics_destroy(metrics);
	store_close(st);
	run_pool_destroy(pool);
	viv_rmtree_or_log(datadir);
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 120);

/* A CGI guest in WebAssembly text: prelude runs, then it prints head and
 * the body "ok". */
static char *cgi_wat(const char *prelude, const char *head)
{
	char *wat = NULL, text[128];
	int n = snprintf(text, sizeof(text), "%s\\0a\\0aok", head);

	cr_assert(n > 0 && (size_t)n < sizeof(text));
	cr_assert(asprintf(&wat,
	                   "(module\n"
	                   " (import \"wasi_snapshot_preview1\" \"fd_write\""
	                   "  (func $w (param i32 i32 i32 i32) (result i32)))\n"
	                   " (memory 1)\n"
	                   " (data (i32.const 64) \"%s\")\n"
	                   " (func (export \"_start\")\n"
	                   "  %s\n"
	                   "  (i32.store (i32.const 0) (i32.const 64))\n"
	                   "  (i32.store (i32.const 4) (i32.const %zu))\n"
	                   "  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1)"
	                   " (i32.const 16)))))\n",
	                   text, prelude, strlen(head) + 4) > 0);
	return wat;
}

static const char kv_wat[] =
        "(module\n"
        " (import \"env\" \"hostcall_kvstore_insert\""
        "  (func $ins (param i32 i32 i32 i32) (result i32)))\n"
        " (import \"env\" \"hostcall_kvstore_remove\" (func $rm (param i32 i32) (result i32)))\n"
        " (memory 1)\n"
        " (data (i32.const 16) \"kv\")\n"
        " (func (export \"run\")\n"
        "  (drop (call $ins (i32.const 16) (i32.const 1) (i32.const 17) (i32.const 1)))\n"
        "  (drop (call $ins (i32.const 16) (i32.const 1) (i32.const 17) (i32.const 1)))\n"
        "  (drop (call $rm (i32.const 16) (i32.const 1)))))\n";

/* Serves one request with m as the worker does and counts it. */
static unsigned serve(struct run_module *m, struct run_metrics_app *a)
{
	struct run_request req = trun_req("GET", "/", NULL);
	struct run_instance_stats stats;
	struct run_instance *in;
	uint64_t t0 = viv_mono_ns();
	unsigned status;

	in = trun_run(pool, m, &app, &req);
	run_instance_stats(in, &stats);
	status = run_instance_response(in)->status;
	run_metrics_request(metrics, a, status, viv_mono_ns() - t0, &stats);
	run_instance_end(in);
	return status;
}

static struct run_module *load_wat(char *wat)
{
	struct run_module *m = trun_load("app.wat", wat);

	free(wat);
	return m;
}

/* ---- A parser of the text format, as strict as the format ---------------------------- */

struct sample {
	char name[128];
	char labels[512]; /* as written, between the braces */
	double value;
};

struct parsed {
	struct sample s[512];
	size_t n;
	char types[32][128]; /* families in the order their TYPE came */
	char type_of[32][16];
	size_t n_types;
};

static bool name_ok(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!(isalpha((unsigned char)s[i]) || s[i] == '_' || s[i] == ':' ||
		      (i > 0 && isdigit((unsigned char)s[i]))))
			return false;
	}
	return n > 0;
}

/* The family a sample's name belongs to: a histogram's _bucket, _sum and
 * _count are its own. */
static const char *family_of(const struct parsed *p, const char *name, const char **type)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	size_t i, j;

	for (i = 0; i < p->n_types; i++) {
		size_t fl = strlen(p->types[i]);

		if (strncmp(name, p->types[i], fl) != 0)
			continue;
		if (name[fl] == '\0') {
			*type = p->type_of[i];
			return p->types[i];
		}
		for (j = 0; j < 3; j++) {
			if (strcmp(p->type_of[i], "histogram") == 0 &&
			    strcmp(name + fl, suffixes[j]) == 0) {
				*type = p->type_of[i];
				return p->types[i];
			}
		}
	}
	return NULL;
}

/* Checks the labels between braces: name="value" pairs, values with no
 * escape but \\, \" and \n. */
static void check_labels(const char *s, size_t n, const char *line)
{
	size_t i = 0;

	while (i < n) {
		size_t start = i;

		while (i < n && s[i] != '=')
			i++;
		cr_assert(name_ok(s + start, i - start), "bad label name in: %s", line);
		cr_assert(i + 1 < n && s[i + 1] == '"', "label value not quoted in: %s", line);
		i += 2;
		while (i < n && s[i] != '"') {
			if (s[i] == '\\') {
				cr_assert(i + 1 < n && strchr("\\\"n", s[i + 1]),
				          "bad escape in: %s", line);
				i++;
			}
			cr_assert_neq(s[i], '\n', "raw line feed in: %s", line);
			i++;
		}
		cr_assert(i < n, "unterminated label value in: %s", line);
		i++;
		if (i < n) {
			cr_assert_eq(s[i], ',', "labels not separated by commas in: %s", line);
			i++;
		}
	}
}

/* Parses text, failing the test on anything the format does not allow:
 * every sample after its family's TYPE, each family's samples together. */
static void parse(const char *text, struct parsed *p)
{
	const char *line = text, *current = NULL;
	char buf[1024];

	memset(p, 0, sizeof(*p));
	cr_assert(text[0] && text[strlen(text) - 1] == '\n', "the text must end with a newline");
	while (*line) {
		const char *nl = strchr(line, '\n'), *brace, *sp, *fam, *type;
		size_t len = (size_t)(nl - line);
		struct sample *s;
		char *end;

		cr_assert_lt(len, sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = nl + 1;
		if (strncmp(buf, "# HELP ", 7) == 0)
			continue;
		if (strncmp(buf, "# TYPE ", 7) == 0) {
			char name[128], kind[16];
			size_t i;

			cr_assert_eq(sscanf(buf + 7, "%127s %15s", name, kind), 2, "%s", buf);
			cr_assert(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0 ||
			                  strcmp(kind, "histogram") == 0,
			          "%s", buf);
			for (i = 0; i < p->n_types; i++)
				cr_assert_str_neq(p->types[i], name, "TYPE twice: %s", buf);
			cr_assert_lt(p->n_types, 32);
			strcpy(p->types[p->n_types], name);
			strcpy(p->type_of[p->n_types], kind);
			p->n_types++;
			current = p->types[p->n_types - 1];
			continue;
		}
		cr_assert_neq(buf[0], '#', "unknown comment: %s", buf);
		cr_assert_lt(p->n, 512);
		s = &p->s[p->n++];
		brace = strchr(buf, '{');
		sp = strrchr(buf, ' ');
		cr_assert_not_null(sp, "%s", buf);
		if (brace && brace < sp) {
			const char *close = strrchr(buf, '}');

			cr_assert(close && close + 1 == sp, "%s", buf);
			cr_assert(name_ok(buf, (size_t)(brace - buf)), "%s", buf);
			snprintf(s->name, sizeof(s->name), "%.*s", (int)(brace - buf), buf);
			check_labels(brace + 1, (size_t)(close - brace - 1), buf);
			snprintf(s->labels, sizeof(s->labels), "%.*s", (int)(close - brace - 1),
			         brace + 1);
		} else {
			cr_assert(name_ok(buf, (size_t)(sp - buf)), "%s", buf);
			snprintf(s->name, sizeof(s->name), "%.*s", (int)(sp - buf), buf);
		}
		s->value = strtod(sp + 1, &end);
		cr_assert(*end == '\0' && end != sp + 1, "bad value in: %s", buf);
		fam = family_of(p, s->name, &type);
		cr_assert_not_null(fam, "sample before its TYPE: %s", buf);
		cr_assert_eq(fam, current, "the samples of %s are not together: %s", fam, buf);
	}
}

/* The value of the sample with this name and exactly these labels; fails
 * the test when there is none, or several. */
static double value_of(const struct parsed *p, const char *name, const char *labels)
{
	size_t i, found = 0;
	double v = NAN;

	for (i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, name) == 0 && strcmp(p->s[i].labels, labels) == 0) {
			v = p->s[i].value;
			found++;
		}
	}
	cr_assert_eq(found, 1, "%s{%s} appears %zu times", name, labels, found);
	return v;
}

static bool has_series(const struct parsed *p, const char *name, const char *labels_part)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, name) == 0 && strstr(p->s[i].labels, labels_part))
			return true;
	}
	return false;
}

/* A histogram's buckets are cumulative, end with +Inf, and +Inf is the
 * count. Returns the count. */
static double check_histogram(const struct parsed *p, const char *metric, const char *app_label)
{
	char bucket[160], sum[160], count[160];
	double last = 0, inf = -1;
	size_t i, buckets = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", metric);
	snprintf(sum, sizeof(sum), "%s_sum", metric);
	snprintf(count, sizeof(count), "%s_count", metric);
	for (i = 0; i < p->n; i++) {
		const struct sample *s = &p->s[i];

		if (strcmp(s->name, bucket) != 0 ||
		    strncmp(s->labels, app_label, strlen(app_label)))
			continue;
		cr_assert_geq(s->value, last, "%s{%s} is not cumulative", s->name, s->labels);
		last = s->value;
		buckets++;
		if (strstr(s->labels, "le=\"+Inf\""))
			inf = s->value;
	}
	cr_assert_gt(buckets, 2, "%s has no buckets for %s", metric, app_label);
	cr_assert_eq(inf, last, "%s's +Inf bucket is not its last", metric);
	cr_assert_eq(value_of(p, count, strchr(app_label, '=') ? app_label : ""), inf);
	cr_assert_geq(value_of(p, sum, strchr(app_label, '=') ? app_label : ""), 0);
	return inf;
}

/* Writes the metrics as a worker's writer does when it stops, and parses
 * the file. */
static void write_and_parse(struct parsed *p)
{
	struct run_writer *w = NULL;
	char err[256], *text;
	size_t len;

	cr_assert_eq(run_writer_start(datadir, NULL, metrics, prom, &w, err, sizeof(err)), VIV_OK,
	             "%s", err);
	run_writer_stop(w);
	cr_assert_eq(viv_read_file(prom, 1 << 20, &text, &len), VIV_OK, "no file at %s", prom);
	parse(text, p);
	free(text);
}

Test(metrics, requests_traps_limits_and_kv_calls_as_prometheus_text)
{
	struct run_metrics_app *a = run_metrics_app(metrics, "counted");
	struct run_module *ok = load_wat(cgi_wat("", "Content-Type: text/plain"));
	struct run_module *missing = load_wat(cgi_wat("", "Status: 404 Not Found"));
	struct run_module *trap = load_wat(cgi_wat("(unreachable)", "X: y"));
	struct run_module *spin = load_wat(cgi_wat("(loop (br 0))", "X: y"));
	struct run_module *greedy =
	        load_wat(cgi_wat("(drop (memory.grow (i32.const 100)))", "Content-Type: a/b"));
	struct run_module *kv = trun_load("app.wat", kv_wat);
	static struct parsed p;
	int i;

	cr_assert_not_null(a);
	for (i = 0; i < 3; i++)
		cr_assert_eq(serve(ok, a), 200);
	cr_assert_eq(serve(missing, a), 404);
	cr_assert_eq(serve(trap, a), 500);
	cr_assert_eq(serve(spin, a), 500);
	cr_assert_eq(serve(greedy, a), 200);
	cr_assert_eq(serve(kv, a), 200);
	run_metrics_set_instances(metrics, pool->n_busy);
	write_and_parse(&p);

	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"counted\",code=\"200\""), 5);
	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"counted\",code=\"404\""), 1);
	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"counted\",code=\"500\""), 2);
	cr_assert_eq(value_of(&p, "vivarium_traps_total", "app=\"counted\",kind=\"unreachable\""),
	             1);
	cr_assert_not(has_series(&p, "vivarium_traps_total", "kind=\"out_of_bounds\""));
	cr_assert_eq(value_of(&p, "vivarium_limits_total", "app=\"counted\",limit=\"cpu\""), 1);
	cr_assert_eq(value_of(&p, "vivarium_limits_total", "app=\"counted\",limit=\"wall\""), 0);
	cr_assert_eq(value_of(&p, "vivarium_limits_total", "app=\"counted\",limit=\"memory\""), 1);
	cr_assert_eq(value_of(&p, "vivarium_kv_calls_total", "app=\"counted\",op=\"insert\""), 2);
	cr_assert_eq(value_of(&p, "vivarium_kv_calls_total", "app=\"counted\",op=\"remove\""), 1);
	cr_assert_eq(value_of(&p, "vivarium_kv_calls_total", "app=\"counted\",op=\"get\""), 0);
	cr_assert_eq(check_histogram(&p, "vivarium_request_seconds", "app=\"counted\""), 8);
	/* Every instance reached its entry point; none is alive. */
	cr_assert_eq(check_histogram(&p, "vivarium_instance_start_seconds", ""), 8);
	cr_assert_eq(value_of(&p, "vivarium_instances", ""), 0);
	/* The CPU-bound request took at least its 50 ms limit: it lies past
	 * the 0.05 bucket. */
	cr_assert_leq(
	        value_of(&p, "vivarium_request_seconds_bucket", "app=\"counted\",le=\"0.05\""), 7);
	run_module_release(ok);
	run_module_release(missing);
	run_module_release(trap);
	run_module_release(spin);
	run_module_release(greedy);
	run_module_release(kv);
}

Test(metrics, live_instances_are_a_gauge)
{
	static const char sleeper[] =
	        "(module\n"
	        " (import \"wasi_snapshot_preview1\" \"poll_oneoff\""
	        "  (func $poll (param i32 i32 i32 i32) (result i32)))\n"
	        " (memory 1)\n"
	        " (func (export \"_start\")\n"
	        "  (i32.store8 (i32.const 8) (i32.const 0))\n"
	        "  (i64.store (i32.const 24) (i64.const 5000000000))\n"
	        "  (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1)"
	        " (i32.const 200)))))\n";
	struct run_module *m = trun_load("app.wat", sleeper);
	struct run_request req = trun_req("GET", "/", NULL);
	struct run_instance *in = NULL;
	static struct parsed p;

	cr_assert_eq(run_instance_start(pool, m, &app, &req, NULL, NULL, &in), VIV_OK);
	cr_assert_not(run_instance_done(in), "the guest should be asleep");
	run_metrics_set_instances(metrics, pool->n_busy);
	write_and_parse(&p);
	cr_assert_eq(value_of(&p, "vivarium_instances", ""), 1);
	run_instance_end(in);
	run_module_release(m);
}

Test(metrics, label_values_are_escaped_as_the_format_requires)
{
	struct run_metrics_app *a = run_metrics_app(metrics, "we\"ird\\app\nname");
	static struct parsed p;

	cr_assert_not_null(a);
	run_metrics_request(metrics, a, 200, 1000, NULL);
	write_and_parse(&p);
	cr_assert_eq(value_of(&p, "vivarium_requests_total",
	                      "app=\"we\\\"ird\\\\app\\nname\",code=\"200\""),
	             1);
}

Test(metrics, status_codes_past_the_cap_count_as_other)
{
	struct run_metrics_app *a = run_metrics_app(metrics, "chatty");
	static struct parsed p;
	unsigned code;

	for (code = 200; code < 200 + RUN_METRICS_CODES + 5; code++)
		run_metrics_request(metrics, a, code, 1000, NULL);
	run_metrics_request(metrics, a, 200, 1000, NULL);
	write_and_parse(&p);
	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"chatty\",code=\"200\""), 2);
	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"chatty\",code=\"other\""), 5);
	cr_assert_eq(check_histogram(&p, "vivarium_request_seconds", "app=\"chatty\""),
	             RUN_METRICS_CODES + 6);
}

static bool keep_only_kept(void *ctx, const char *name)
{
	(void)ctx;
	return strcmp(name, "kept") == 0;
}

Test(metrics, apps_that_are_gone_are_dropped)
{
	static struct parsed p;

	run_metrics_request(metrics, run_metrics_app(metrics, "kept"), 200, 1000, NULL);
	run_metrics_request(metrics, run_metrics_app(metrics, "gone"), 200, 1000, NULL);
	run_metrics_prune(metrics, keep_only_kept, NULL);
	write_and_parse(&p);
	cr_assert_eq(value_of(&p, "vivarium_requests_total", "app=\"kept\",code=\"200\""), 1);
	cr_assert_not(has_series(&p, "vivarium_requests_total", "app=\"gone\""));
	cr_assert_not(has_series(&p, "vivarium_request_seconds_bucket", "app=\"gone\""));
}

static ino_t inode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

Test(metrics, the_file_is_rewritten_about_once_a_second_only_after_a_change)
{
	struct run_metrics_app *a = run_metrics_app(metrics, "counted");
	struct run_writer *w = NULL;
	char err[256];
	ino_t first, now;
	int i;

	cr_assert_eq(run_writer_start(datadir, NULL, metrics, prom, &w, err, sizeof(err)), VIV_OK,
	             "%s", err);
	for (i = 0; i < 100 && !inode_of(prom); i++)
		usleep(20000);
	first = inode_of(prom);
	cr_assert_neq(first, 0, "the writer wrote no file at its start");
	/* Every write replaces the file by a new one. */
	usleep(1500000);
	cr_assert_eq(inode_of(prom), first, "the file was rewritten though nothing changed");
	run_metrics_request(metrics, a, 200, 1000, NULL);
	now = first;
	for (i = 0; i < 150 && now == first; i++) {
		usleep(20000);
		now = inode_of(prom);
	}
	cr_assert_neq(now, first, "a change was not written within 3 s");
	run_writer_stop(w);
}

Test(metrics, the_writer_puts_log_lines_into_the_store_in_order)
{
	struct run_writer *w = NULL;
	struct store_log lines[600], *got = NULL;
	char err[256];
	size_t n = 0, i;

	cr_assert_eq(run_writer_start(datadir, NULL, metrics, prom, &w, err, sizeof(err)), VIV_OK,
	             "%s", err);
	for (i = 0; i < 600; i++) {
		memset(&lines[i], 0, sizeof(lines[i]));
		lines[i].app_id = app.id;
		lines[i].stream = i % 2 ? "access" : "stderr";
		cr_assert(asprintf(&lines[i].message, "line %zu", i) > 0);
	}
	cr_assert_eq(run_writer_logs(w, lines, 600), 0);
	run_writer_stop(w);
	cr_assert_eq(store_logs_get(st, "counted", 0, 1000, &got, &n), VIV_OK);
	cr_assert_eq(n, 600);
	for (i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "line %zu", i);
		cr_assert_str_eq(got[i].message, want);
		cr_assert_str_eq(got[i].stream, i % 2 ? "access" : "stderr");
	}
	store_logs_free(got, n);
}
