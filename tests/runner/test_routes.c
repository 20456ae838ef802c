/* A worker's routes on a real store with real artifacts: preview addresses
 * answer with their own deployment (artifact, configuration, the app's
 * settings and secrets) before and after it is current, nothing answers for
 * a deployment that is unknown, not ready or another app's, and previews
 * are cached, with a bound, so that an artifact is not loaded per request. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "helpers.h"
#include "routes.h"
#include "store.h"

static char datadir[] = "/tmp/viv-routes-XXXXXX";
static struct store *st;
static struct run_routes *rt;
static struct run_pool *pool;
/* Two real artifacts: CGI programs that print the value of GREETING and
 * "one" or "two". */
static char *so_one, *so_two;

static const char guest_fmt[] =
        "#include <stdio.h>\n"
        "#include <stdlib.h>\n"
        "int main(void)\n"
        "{\n"
        "\tconst char *g = getenv(\"GREETING\");\n"
        "\tprintf(\"Content-Type: text/plain\\n\\n%%s %s\\n\", g ? g : \"-\");\n"
        "\treturn 0;\n"
        "}\n";

static char *build_guest(const char *word)
{
	char src[512];

	snprintf(src, sizeof(src), guest_fmt, word);
	return tsup_artifact("main.c", src);
}

static void setup(void)
{
	struct run_pool_config pc;
	char err[256];

	cr_assert_not_null(mkdtemp(datadir));
	cr_assert_eq(store_open(datadir, &st, err, sizeof(err)), VIV_OK, "%s", err);
	cr_assert_eq(run_routes_open(datadir, NULL, "example.test", &rt, err, sizeof(err)), VIV_OK,
	             "%s", err);
	cr_assert_eq(run_thread_init(), VIV_OK);
	run_pool_config_defaults(&pc);
	pc.slots = 2;
	cr_assert_eq(run_pool_create(&pc, &pool), VIV_OK);
	so_one = build_guest("one");
	so_two = build_guest("two");
}

static void teardown(void)
{
	run_routes_close(rt);
	store_close(st);
	run_pool_destroy(pool);
	free(so_one);
	free(so_two);
	viv_rmtree_or_log(datadir);
}

TestSuite(routes, .init = setup, .fini = teardown, .timeout = 300);

/* A deployment of app queued with an upload of its own. */
static int64_t queue(const char *app)
{
	static int uploads;
	char *tmp = NULL, body[64], hex[VIV_SHA256_HEX_LEN + 1];
	int64_t id = 0;
	int n = snprintf(body, sizeof(body), "upload %d", ++uploads);

	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	cr_assert_eq(viv_write_file_atomic(tmp, body, (size_t)n, 0600), VIV_OK);
	viv_sha256_hex(body, (size_t)n, hex);
	cr_assert_eq(store_deployment_create(st, app, tmp, hex, n, &id), VIV_OK);
	free(tmp);
	return id;
}

/* Builds the queued deployment id with the artifact at so and a manifest
 * env of GREETING=greeting; it becomes its app's current one. */
static void make_ready(int64_t id, const char *so, const char *greeting)
{
	const char *base = strrchr(so, '/') + 1;
	char hash[VIV_SHA256_HEX_LEN + 1];
	struct store_env_var env = {"GREETING", (char *)greeting};
	struct store_deploy_config config = {
	        .mode = STORE_MODE_CGI,
	        .limits = {VIV_LIMIT_MEMORY_MB_DEFAULT, VIV_LIMIT_CPU_MS_DEFAULT,
	                   VIV_LIMIT_WALL_MS_DEFAULT},
	        .env = &env,
	        .n_env = 1,
	};
	struct store_build b = {0};
	int64_t claimed = 0;

	snprintf(hash, sizeof(hash), "%.*s", (int)(strlen(base) - 3), base);
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	cr_assert_eq(store_artifact_put(st, hash, "so", so), VIV_OK);
	b.artifact = hash;
	b.config = &config;
	b.artifact_size = 1;
	b.wasm_size = 1;
	cr_assert_eq(store_deployment_ready(st, id, &b), VIV_OK);
}

static int64_t deploy(const char *app, const char *so, const char *greeting)
{
	int64_t id = queue(app);

	make_ready(id, so, greeting);
	return id;
}

static struct run_route *find(const char *label)
{
	cr_assert_eq(run_routes_refresh(rt), VIV_OK);
	return run_routes_find(rt, label, strlen(label));
}

/* What the route answers to a request, run in the pool. */
static char *answer(struct run_route *r)
{
	struct run_request req = trun_req("GET", "/", NULL);
	struct run_module *m = NULL;
	struct run_instance *in;
	const char *why = NULL;
	char *body;

	cr_assert_eq(run_route_module(rt, r, &m, &why), VIV_OK, "%s", why ? why : "");
	in = trun_run(pool, m, &r->app, &req);
	body = trun_body(in);
	run_instance_end(in);
	return body;
}

static void expect_answer(const char *label, int64_t deployment, const char *body)
{
	struct run_route *r = find(label);
	char host[128], *got;

	cr_assert_not_null(r, "nothing answers at %s", label);
	cr_assert_eq(r->deployment_id, deployment, "%s is deployment %lld", label,
	             (long long)r->deployment_id);
	snprintf(host, sizeof(host), "%s.example.test", label);
	cr_assert_str_eq(r->app.host, host);
	got = answer(r);
	cr_assert_str_eq(got, body, "%s answered '%s'", label, got);
	free(got);
	run_route_release(r);
}

static void expect_nothing(const char *label)
{
	struct run_route *r = find(label);

	cr_assert_null(r, "%s answers with deployment %lld", label,
	               r ? (long long)r->deployment_id : 0LL);
}

Test(routes, a_preview_answers_with_its_own_deployment_before_and_after_it_is_current)
{
	int64_t d1 = deploy("hello", so_one, "hi"), d2;

	expect_answer("hello", d1, "hi one\n");
	/* Current, and at its preview address too. */
	expect_answer("d1-hello", d1, "hi one\n");
	d2 = deploy("hello", so_two, "hey");
	expect_answer("hello", d2, "hey two\n");
	/* Replaced: still at its own address, with its own configuration. */
	expect_answer("d1-hello", d1, "hi one\n");
	expect_answer("d2-hello", d2, "hey two\n");
	/* After a rollback both still answer at their addresses. */
	cr_assert_eq(store_app_rollback(st, "hello", d1, NULL, NULL), VIV_OK);
	expect_answer("hello", d1, "hi one\n");
	expect_answer("d2-hello", d2, "hey two\n");
	expect_answer("d1-hello", d1, "hi one\n");
}

Test(routes, nothing_answers_for_a_deployment_unknown_not_ready_or_another_apps)
{
	int64_t d1 = deploy("hello", so_one, "hi");
	int64_t other = deploy("other", so_two, "yo");
	int64_t queued = queue("hello");
	char label[64];

	snprintf(label, sizeof(label), "d%lld-hello", (long long)other);
	expect_nothing(label);
	snprintf(label, sizeof(label), "d%lld-other", (long long)other);
	expect_answer(label, other, "yo two\n");
	/* Asked for as another app's first, it still answers at its own. */
	snprintf(label, sizeof(label), "d%lld-hello", (long long)d1);
	expect_nothing("d1-other");
	expect_answer(label, d1, "hi one\n");
	snprintf(label, sizeof(label), "d%lld-hello", (long long)queued);
	expect_nothing(label);
	expect_nothing("d999-hello");
	expect_nothing("d9223372036854775807-hello");
	expect_nothing("d99999999999999999999-hello");
	expect_nothing("d1-nosuchapp");
	/* Not the shape: an id with a leading zero, no app, no id. */
	expect_nothing("d01-hello");
	expect_nothing("d1-");
	expect_nothing("d-hello");
	/* Once ready it answers, though a miss for it was cached. */
	make_ready(queued, so_two, "later");
	expect_answer(label, queued, "later two\n");
}

Test(routes, settings_and_secrets_set_through_the_api_apply_to_previews)
{
	int64_t d1 = deploy("hello", so_one, "hi");
	int64_t d2 = deploy("hello", so_two, "hey");

	(void)d2;
	expect_answer("d1-hello", d1, "hi one\n");
	cr_assert_eq(store_app_config_set(st, "hello", "GREETING", "set"), VIV_OK);
	expect_answer("d1-hello", d1, "set one\n");
	cr_assert_eq(store_secret_set(st, "hello", "GREETING", "secret"), VIV_OK);
	expect_answer("d1-hello", d1, "secret one\n");
	expect_answer("hello", d2, "secret two\n");
}

Test(routes, previews_are_cached_with_their_artifact_and_the_cache_is_bounded)
{
	int64_t d1 = deploy("hello", so_one, "hi"), i, last = 0;
	struct run_route *a = find("d1-hello"), *b, *c;
	struct run_module *ma = NULL, *mb = NULL, *mc = NULL;
	const char *why;
	char label[64];

	cr_assert_not_null(a);
	cr_assert_eq(run_route_module(rt, a, &ma, &why), VIV_OK);
	b = find("d1-hello");
	cr_assert_eq(b, a, "a second request made a new route");
	cr_assert_eq(run_route_module(rt, b, &mb, &why), VIV_OK);
	cr_assert_eq(mb, ma, "a second request loaded the artifact again");
	run_route_release(b);
	/* Forty other deployments, each asked for at its address once. */
	for (i = 0; i < 40; i++)
		last = deploy("hello", i % 2 ? so_one : so_two, "many");
	for (i = d1 + 1; i <= last; i++) {
		snprintf(label, sizeof(label), "d%lld-hello", (long long)i);
		c = find(label);
		cr_assert_not_null(c, "nothing at %s", label);
		run_route_release(c);
	}
	/* The first one fell out of the cache: asked for again, it comes back
	 * as a new route, and the route held meanwhile still works. */
	c = find("d1-hello");
	cr_assert_not_null(c);
	cr_assert_neq(c, a);
	cr_assert_eq(run_route_module(rt, c, &mc, &why), VIV_OK);
	cr_assert_str_eq(run_module_hash(mc), run_module_hash(ma));
	run_route_release(c);
	run_route_release(a);
}

/* A runner host that fetches artifacts from the API may learn of a
 * deployment before its artifact has arrived: the app keeps answering with
 * the deployment it had (a new app answers not at all) until the file is
 * in the artifact folder, and then switches without a new generation. */
Test(routes, a_route_whose_artifact_is_not_here_yet_waits_for_it)
{
	const char *base = strrchr(so_two, '/') + 1;
	char hash[VIV_SHA256_HEX_LEN + 1], *stored;
	int64_t first, second, fresh;

	snprintf(hash, sizeof(hash), "%.*s", (int)(strlen(base) - 3), base);
	first = deploy("wait", so_one, "hi");
	expect_answer("wait", first, "hi one\n");
	second = queue("wait");
	make_ready(second, so_two, "hi");
	fresh = queue("fresh");
	make_ready(fresh, so_two, "yo");
	/* As on a host that has not fetched it yet. */
	stored = store_artifact_path(st, hash, "so");
	cr_assert_eq(unlink(stored), 0);
	expect_answer("wait", first, "hi one\n");
	expect_nothing("fresh");
	/* Still missing after the first look again. */
	usleep(50000);
	expect_answer("wait", first, "hi one\n");
	cr_assert_eq(store_artifact_put(st, hash, "so", so_two), VIV_OK);
	for (int i = 0; i < 100; i++) {
		struct run_route *r = find("fresh");

		if (r) {
			run_route_release(r);
			break;
		}
		usleep(10000);
	}
	expect_answer("wait", second, "hi two\n");
	expect_answer("fresh", fresh, "yo two\n");
	free(stored);
}
