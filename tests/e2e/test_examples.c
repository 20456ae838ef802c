/* Every example in sdk/examples, deployed on the real vivd from a tarball of
 * its folder: hello, echo, a KV counter, a fetch from an upstream, a config
 * value and a static asset, in C, Rust and AssemblyScript. The same app
 * answers the same bytes in every language. The fetch examples reach a
 * local upstream that their manifest allows, and fail, without touching it,
 * when their configuration, set through the API, aims elsewhere; the KV
 * counter counts on across requests, redeploys and languages. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "upstream.h"

#define N_LANGS 3
static const char *const langs[N_LANGS] = {"c", "rust", "assemblyscript"};

/* Rust and AssemblyScript builds take a while; each test builds several. */
TestSuite(examples, .init = tsup_ofx_start, .fini = tsup_ofx_stop, .timeout = 900);

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

/* Deploys sdk/examples/EXAMPLE to app, with files (may be NULL) in place of
 * or beside the folder's own, and checks the build: ready, in lang, served
 * in mode. Returns the deployment id. */
static long deploy_example(const char *app, const char *example, const struct tsup_file *files,
                           size_t n, const char *lang, const char *mode)
{
	char dir[512], *tgz;
	size_t len;
	json_t *d;
	long id;

	snprintf(dir, sizeof(dir), "%s/sdk/examples/%s", VIV_SOURCE_DIR, example);
	tsup_tar_dir(dir, files, n, true, &tgz, &len);
	d = tsup_deploy_wait(&tsup_ofx.vivd, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s as %s: %s\n%s", example, app,
	                 jstr(d, "error"), jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "language"), lang, "%s", example);
	cr_assert_str_eq(jstr(d, "mode"), mode, "%s", example);
	id = (long)json_integer_value(json_object_get(d, "id"));
	json_decref(d);
	free(tgz);
	return id;
}

/* Removes the first line of text equal to line (with its newline). */
static void drop_line(char *text, size_t *len, const char *line)
{
	size_t ll = strlen(line);
	char *p = text;

	while (p && *p) {
		if (strncmp(p, line, ll) == 0 && p[ll] == '\n') {
			memmove(p, p + ll + 1, strlen(p + ll + 1) + 1);
			*len -= ll + 1;
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

/* Sends the request and checks the status, the Content-Type and the whole
 * body. headers and body may be NULL. Lines of the body equal to one of
 * optional (a NULL-terminated list; may be NULL) may be there or not. */
static void expect_opt(const char *app, const char *method, const char *path,
                       const char *const *headers, const char *body, long status, const char *type,
                       const char *const *optional, const char *want)
{
	struct tsup_resp r;
	char *ct;

	cr_assert(tsup_app_request(&tsup_ofx.vivd, app, method, path, headers, body,
	                           body ? strlen(body) : 0, &r),
	          "no answer from %s%s", app, path);
	for (size_t i = 0; optional && optional[i]; i++)
		drop_line(r.body, &r.len, optional[i]);
	cr_assert_eq(r.status, status, "%s %s%s answered %ld:\n%s", method, app, path, r.status,
	             r.body);
	cr_assert_eq(r.len, strlen(want), "%s %s%s answered %zu bytes:\n%s\nnot:\n%s", method, app,
	             path, r.len, r.body, want);
	cr_assert_str_eq(r.body, want, "%s %s%s", method, app, path);
	ct = tsup_resp_header(&r, "Content-Type");
	cr_assert_not_null(ct, "%s%s has no Content-Type:\n%s", app, path, r.headers);
	cr_assert_str_eq(ct, type, "%s%s", app, path);
	free(ct);
	tsup_resp_free(&r);
}

static void expect(const char *app, const char *method, const char *path,
                   const char *const *headers, const char *body, long status, const char *type,
                   const char *want)
{
	expect_opt(app, method, path, headers, body, status, type, NULL, want);
}

static void expect_get(const char *app, const char *path, long status, const char *type,
                       const char *want)
{
	expect(app, "GET", path, NULL, NULL, status, type, want);
}

/* The app's log holds needle within a few seconds (lines are batched). */
static void expect_logged(const char *app, const char *needle)
{
	char url[256];
	double deadline = tsup_now_ms() + 10000;

	snprintf(url, sizeof(url), "%s/v1/apps/%s/logs", tsup_ofx.vivd.api, app);
	for (;;) {
		struct tsup_resp r;
		bool found;

		cr_assert(tsup_http("GET", url, NULL, tsup_ofx.vivd.token, NULL, 0, &r));
		cr_assert_eq(r.status, 200, "%s", r.body);
		found = strstr(r.body, needle) != NULL;
		if (found || tsup_now_ms() > deadline)
			cr_assert(found, "%s's log has no '%s':\n%s", app, needle, r.body);
		tsup_resp_free(&r);
		if (found)
			return;
		usleep(100000);
	}
}

/* Sets (value not NULL) or unsets the app's configuration value key through
 * the API. */
static void set_config(const char *app, const char *key, const char *value)
{
	char url[256];
	struct tsup_resp r;

	snprintf(url, sizeof(url), "%s/v1/apps/%s/config/%s", tsup_ofx.vivd.api, app, key);
	cr_assert(tsup_http(value ? "PUT" : "DELETE", url, NULL, tsup_ofx.vivd.token, value,
	                    value ? strlen(value) : 0, &r));
	cr_assert(r.status >= 200 && r.status < 300, "%s %s: %ld %s", value ? "PUT" : "DELETE", url,
	          r.status, r.body);
	tsup_resp_free(&r);
}

Test(examples, hello_in_every_language)
{
	char app[64], example[64];

	deploy_example("hello-c", "c-hello", NULL, 0, "c", "cgi");
	expect_get("hello-c", "/", 200, "text/plain", "Hello, world!\n");
	for (size_t i = 1; i < N_LANGS; i++) {
		snprintf(app, sizeof(app), "hello-%s", langs[i]);
		snprintf(example, sizeof(example), "%s-hello", langs[i]);
		deploy_example(app, example, NULL, 0, langs[i], "hostcall");
		expect_get(app, "/", 200, "text/plain", "Hello, world!\n");
		expect_get(app, "/any/path?at=all", 200, "text/plain", "Hello, world!\n");
	}
}

Test(examples, echo_answers_with_the_request)
{
	const char *const headers[] = {
	        "Content-Type: text/plain", "Accept:", "X-Echo: 1", "X-Multi: one", "X-Multi: two",
	        "x-lower: Mixed Case",      NULL};
	char app[64], example[64], host[128], *optional[3];

	for (size_t i = 0; i < N_LANGS; i++) {
		snprintf(app, sizeof(app), "echo-%s", langs[i]);
		snprintf(example, sizeof(example), "%s-echo", langs[i]);
		deploy_example(app, example, NULL, 0, langs[i], "hostcall");
		/* The HTTP server may keep Host and Content-Length out of the
		 * headers a guest sees (it has them elsewhere); when they are
		 * there, they are right. */
		snprintf(host, sizeof(host), "header host: %s.localhost:%u", app,
		         tsup_ofx.vivd.apps_port);
		optional[0] = host;
		optional[1] = "header content-length: 13";
		optional[2] = NULL;
		/* Headers sorted by lower-case name, the values of one name in
		 * the order sent; the runner adds the client's address. */
		expect_opt(app, "POST", "/some/where?x=1&y=two%20words", headers, "hello, echo\n!",
		           200, "text/plain", (const char *const *)optional,
		           "method: POST\n"
		           "path: /some/where\n"
		           "query: x=1&y=two%20words\n"
		           "header content-type: text/plain\n"
		           "header fastly-client-ip: 127.0.0.1\n"
		           "header x-echo: 1\n"
		           "header x-lower: Mixed Case\n"
		           "header x-multi: one\n"
		           "header x-multi: two\n"
		           "header x-real-ip: 127.0.0.1\n"
		           "body: hello, echo\n!\n");
		optional[1] = NULL;
		expect_opt(app, "GET", "/", (const char *const[]){"Accept:", NULL}, NULL, 200,
		           "text/plain", (const char *const *)optional,
		           "method: GET\n"
		           "path: /\n"
		           "query: \n"
		           "header fastly-client-ip: 127.0.0.1\n"
		           "header x-real-ip: 127.0.0.1\n"
		           "body: \n");
	}
}

static void count(const char *app, unsigned from, unsigned to)
{
	char want[64];

	for (unsigned v = from; v <= to; v++) {
		snprintf(want, sizeof(want), "visits: %u\n", v);
		expect_get(app, "/", 200, "text/plain", want);
	}
}

/* The store belongs to the app, not to a deployment or a language: one app
 * counts on through a redeploy and through the counter in each SDK, which
 * all keep the count as decimal text under "visits". */
Test(examples, kv_counter_counts_across_requests_redeploys_and_languages)
{
	long first, second;
	char url[256];
	struct tsup_resp r;
	json_t *j;

	first = deploy_example("counter", "c-kv-counter", NULL, 0, "c", "hostcall");
	count("counter", 1, 3);
	second = deploy_example("counter", "c-kv-counter", NULL, 0, "c", "hostcall");
	cr_assert_neq(first, second);
	snprintf(url, sizeof(url), "%s/v1/apps/counter", tsup_ofx.vivd.api);
	cr_assert(tsup_http("GET", url, NULL, tsup_ofx.vivd.token, NULL, 0, &r));
	j = json_loads(r.body, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(j, "current_deployment")), second, "%s",
	             r.body);
	json_decref(j);
	tsup_resp_free(&r);
	count("counter", 4, 5);
	deploy_example("counter", "rust-kv-counter", NULL, 0, "rust", "hostcall");
	count("counter", 6, 7);
	deploy_example("counter", "assemblyscript-kv-counter", NULL, 0, "assemblyscript",
	               "hostcall");
	count("counter", 8, 9);
	/* Another app running the same code starts from nothing. */
	deploy_example("counter-two", "rust-kv-counter", NULL, 0, "rust", "hostcall");
	count("counter-two", 1, 2);
	count("counter", 10, 10);
}

Test(examples, fetch_reaches_the_allowed_upstream_and_nothing_else)
{
	char manifest[512], app[64], example[64], want[256], needle[256], denied[128];
	unsigned port = tsup_upstream_port(tsup_ofx.up), hits;
	const char *ok = "upstream answered 200 (text/plain): upstream says hi";

	/* The example's own manifest allows https://example.com; here the
	 * upstream is local. */
	snprintf(manifest, sizeof(manifest),
	         "{\"outbound\": [\"http://127.0.0.1:%u\"],"
	         " \"env\": {\"UPSTREAM\": \"http://127.0.0.1:%u/hello\"}}",
	         port, port);
	/* The same server under a name the allow list does not have. */
	snprintf(denied, sizeof(denied), "http://localhost:%u/hello", port);
	for (size_t i = 0; i < N_LANGS; i++) {
		struct tsup_file files[] = {{"vivarium.json", manifest}};

		snprintf(example, sizeof(example), "%s-fetch", langs[i]);
		snprintf(app, sizeof(app), "fetch-%s", langs[i]);
		deploy_example(app, example, files, 1, langs[i], "hostcall");
		hits = tsup_upstream_hits(tsup_ofx.up);
		expect_get(app, "/", 200, "text/plain", ok);
		cr_assert_eq(tsup_upstream_hits(tsup_ofx.up), hits + 1);

		/* UPSTREAM set through the API wins over the manifest's. */
		set_config(app, "UPSTREAM", denied);
		hits = tsup_upstream_hits(tsup_ofx.up);
		snprintf(want, sizeof(want), "could not fetch %s\n", denied);
		expect_get(app, "/", 502, "text/plain", want);
		cr_assert_eq(tsup_upstream_hits(tsup_ofx.up), hits,
		             "the denied request reached the upstream");
		snprintf(needle, sizeof(needle), "fetching %s failed", denied);
		expect_logged(app, needle);

		/* Unset, the manifest's value is back. */
		set_config(app, "UPSTREAM", NULL);
		expect_get(app, "/", 200, "text/plain", ok);
	}
}

Test(examples, config_value_from_the_manifest_or_the_api)
{
	char app[64], example[64];
	struct tsup_file unset[] = {{"vivarium.json", "{}"}};

	for (size_t i = 0; i < N_LANGS; i++) {
		snprintf(example, sizeof(example), "%s-config", langs[i]);
		snprintf(app, sizeof(app), "greet-%s", langs[i]);
		deploy_example(app, example, NULL, 0, langs[i], "hostcall");
		expect_get(app, "/", 200, "text/plain", "Bonjour, world!\n");
		set_config(app, "GREETING", "Hola");
		expect_get(app, "/", 200, "text/plain", "Hola, world!\n");
		set_config(app, "GREETING", NULL);
		expect_get(app, "/", 200, "text/plain", "Bonjour, world!\n");
		/* Without the setting the app falls back to its default. */
		snprintf(app, sizeof(app), "plain-%s", langs[i]);
		deploy_example(app, example, unset, 1, langs[i], "hostcall");
		expect_get(app, "/", 200, "text/plain", "Hello, world!\n");
		set_config(app, "GREETING", "Hallo");
		expect_get(app, "/", 200, "text/plain", "Hallo, world!\n");
	}
}

Test(examples, static_asset_at_the_root_and_the_app_elsewhere)
{
	static const char page[] =
	        "<!doctype html>\n"
	        "<link rel=\"stylesheet\" href=\"/style.css\">\n"
	        "<h1>Hello, world!</h1>\n"
	        "<p>This page comes from the app; its style sheet is a static file.</p>\n";
	char app[64], example[64], path[512], *css;

	for (size_t i = 0; i < N_LANGS; i++) {
		snprintf(example, sizeof(example), "%s-static", langs[i]);
		snprintf(app, sizeof(app), "page-%s", langs[i]);
		snprintf(path, sizeof(path), "%s/sdk/examples/%s/assets/style.css", VIV_SOURCE_DIR,
		         example);
		css = tsup_read_file(path, NULL);
		deploy_example(app, example, NULL, 0, langs[i], "hostcall");
		expect_get(app, "/style.css", 200, "text/css", css);
		expect_get(app, "/", 200, "text/html", page);
		expect_get(app, "/about", 200, "text/html", page);
		free(css);
	}
}

/* ---- The rest of each SDK ------------------------------------------------------------ */

/* The same small app in each language, for what the examples leave out:
 * every key-value call with its result, two outbound requests under way
 * together (one a POST with a body) waited for in the other order, and a
 * response header with two values (Rust and AssemblyScript; C's
 * viv_set_header sets one). */
static const char tour_c[] =
        "#include <stdio.h>\n"
        "#include <stdlib.h>\n"
        "#include <string.h>\n"
        "#include <vivarium.h>\n"
        "\n"
        "static void kv(void)\n"
        "{\n"
        "\tbool a = viv_kv_set_if_absent(\"k\", \"a\", 1);\n"
        "\tbool b = viv_kv_set_if_absent(\"k\", \"b\", 1);\n"
        "\tbool c = viv_kv_append(\"k\", \"c\", 1);\n"
        "\tchar *v1 = viv_kv_get(\"k\", NULL);\n"
        "\tbool d = viv_kv_set(\"k\", \"d\", 1);\n"
        "\tbool e = viv_kv_remove(\"k\");\n"
        "\tbool f = viv_kv_remove(\"k\");\n"
        "\tchar *v2 = viv_kv_get(\"k\", NULL);\n"
        "\n"
        "\tviv_respondf(200, \"text/plain\", \"kv: %d %d %d %s %d %d %d %s\\n\", a, b, c,\n"
        "\t\t     v1 ? v1 : \"none\", d, e, f, v2 ? v2 : \"none\");\n"
        "\tfree(v1);\n"
        "\tfree(v2);\n"
        "}\n"
        "\n"
        "static void async(void)\n"
        "{\n"
        "\tchar *base = viv_config(\"UPSTREAM\"), url[256];\n"
        "\trequest_t post;\n"
        "\tpending_request_t hello, echo;\n"
        "\tresponse_t r1, r2;\n"
        "\tchar *b1, *b2;\n"
        "\n"
        "\tsnprintf(url, sizeof(url), \"%s/hello\", base);\n"
        "\thello = viv_send_async(viv_request(\"GET\", url));\n"
        "\tsnprintf(url, sizeof(url), \"%s/echo\", base);\n"
        "\tpost = viv_request(\"POST\", url);\n"
        "\tviv_request_body(post, \"x\", 1);\n"
        "\techo = viv_send_async(post);\n"
        "\tr2 = viv_wait(echo);\n"
        "\tr1 = viv_wait(hello);\n"
        "\tb1 = viv_response_body(r1, NULL);\n"
        "\tb2 = viv_response_body(r2, NULL);\n"
        "\tviv_respondf(200, \"text/plain\", \"async: %u %s | %u %s\\n\", "
        "viv_response_status(r1),\n"
        "\t\t     b1 ? b1 : \"-\", viv_response_status(r2), b2 ? b2 : \"-\");\n"
        "\tfree(b1);\n"
        "\tfree(b2);\n"
        "\tfree(base);\n"
        "}\n"
        "\n"
        "void run(void)\n"
        "{\n"
        "\tif (strcmp(viv_path(), \"/kv\") == 0)\n"
        "\t\tkv();\n"
        "\telse\n"
        "\t\tasync();\n"
        "}\n";

static const char tour_rust_toml[] = "[package]\n"
                                     "name = \"tour\"\n"
                                     "version = \"0.1.0\"\n"
                                     "edition = \"2021\"\n"
                                     "\n"
                                     "[lib]\n"
                                     "crate-type = [\"cdylib\"]\n"
                                     "\n"
                                     "[dependencies]\n"
                                     "vivarium = \"0.1\"\n";

static const char tour_rust[] =
        "use vivarium::{kv, Request, Response};\n"
        "\n"
        "fn b(x: bool) -> u8 {\n"
        "    x as u8\n"
        "}\n"
        "\n"
        "fn tour(req: Request) -> Response {\n"
        "    if req.path() == \"/kv\" {\n"
        "        let a = kv::set_if_absent(\"k\", \"a\");\n"
        "        let b_ = kv::set_if_absent(\"k\", \"b\");\n"
        "        let c = kv::append(\"k\", \"c\");\n"
        "        let v1 = kv::get_string(\"k\").unwrap_or_else(|| \"none\".to_string());\n"
        "        let (d, e, f) = (kv::set(\"k\", \"d\"), kv::remove(\"k\"), kv::remove(\"k\"));\n"
        "        let v2 = kv::get_string(\"k\").unwrap_or_else(|| \"none\".to_string());\n"
        "        return Response::text(format!(\n"
        "            \"kv: {} {} {} {} {} {} {} {}\\n\",\n"
        "            b(a), b(b_), b(c), v1, b(d), b(e), b(f), v2\n"
        "        ));\n"
        "    }\n"
        "    let base = vivarium::config(\"UPSTREAM\").unwrap_or_default();\n"
        "    let hello = Request::get(&format!(\"{}/hello\", base)).send_async().unwrap();\n"
        "    let echo = Request::new(\"POST\", &format!(\"{}/echo\", base))\n"
        "        .with_body(\"x\")\n"
        "        .send_async()\n"
        "        .unwrap();\n"
        "    let r2 = echo.wait().unwrap();\n"
        "    let r1 = hello.wait().unwrap();\n"
        "    Response::text(format!(\n"
        "        \"async: {} {} | {} {}\\n\",\n"
        "        r1.status(),\n"
        "        r1.text_body(),\n"
        "        r2.status(),\n"
        "        r2.text_body()\n"
        "    ))\n"
        "    .with_header(\"X-Tour\", \"one\")\n"
        "    .with_header(\"x-tour\", \"two\")\n"
        "}\n"
        "\n"
        "vivarium::handler!(tour);\n";

static const char tour_as[] =
        "import { Request, Response, config, kv, serve } from \"vivarium\";\n"
        "\n"
        "function b(x: bool): string {\n"
        "  return x ? \"1\" : \"0\";\n"
        "}\n"
        "\n"
        "function tour(req: Request): Response {\n"
        "  if (req.path == \"/kv\") {\n"
        "    const a = kv.setIfAbsent(\"k\", \"a\");\n"
        "    const b_ = kv.setIfAbsent(\"k\", \"b\");\n"
        "    const c = kv.append(\"k\", \"c\");\n"
        "    const v1 = kv.get(\"k\");\n"
        "    const d = kv.set(\"k\", \"d\");\n"
        "    const e = kv.remove(\"k\");\n"
        "    const f = kv.remove(\"k\");\n"
        "    const v2 = kv.get(\"k\");\n"
        "    return Response.text(\"kv: \" + b(a) + \" \" + b(b_) + \" \" + b(c) + \" \" +\n"
        "      (v1 !== null ? v1 : \"none\") + \" \" + b(d) + \" \" + b(e) + \" \" + b(f) + \" \" "
        "+\n"
        "      (v2 !== null ? v2 : \"none\") + \"\\n\");\n"
        "  }\n"
        "  const base = config(\"UPSTREAM\");\n"
        "  const hello = Request.get(base! + \"/hello\").sendAsync()!;\n"
        "  const echo = new Request(\"POST\", base! + \"/echo\").withText(\"x\").sendAsync()!;\n"
        "  const r2 = echo.wait()!;\n"
        "  const r1 = hello.wait()!;\n"
        "  return Response.text(\"async: \" + r1.status.toString() + \" \" + r1.text() + \" | \" "
        "+\n"
        "    r2.status.toString() + \" \" + r2.text() + \"\\n\")\n"
        "    .withHeader(\"X-Tour\", \"one\")\n"
        "    .withHeader(\"x-tour\", \"two\");\n"
        "}\n"
        "\n"
        "export function run(): void {\n"
        "  serve(tour);\n"
        "}\n";

/* Deploys the tour in lang with UPSTREAM at the local upstream. */
static void deploy_tour(const char *app, const char *lang)
{
	char manifest[512], *tgz;
	size_t len;
	unsigned port = tsup_upstream_port(tsup_ofx.up);
	json_t *d;
	struct tsup_file c[] = {{"vivarium.json", manifest}, {"tour.c", tour_c}};
	struct tsup_file rust[] = {{"vivarium.json", manifest},
	                           {"Cargo.toml", tour_rust_toml},
	                           {"src/", NULL},
	                           {"src/lib.rs", tour_rust}};
	struct tsup_file as[] = {
	        {"vivarium.json", manifest}, {"assembly/", NULL}, {"assembly/index.ts", tour_as}};

	snprintf(manifest, sizeof(manifest),
	         "{\"outbound\": [\"http://127.0.0.1:%u\"],"
	         " \"env\": {\"UPSTREAM\": \"http://127.0.0.1:%u\"}}",
	         port, port);
	if (strcmp(lang, "c") == 0)
		tsup_tar(c, 2, true, &tgz, &len);
	else if (strcmp(lang, "rust") == 0)
		tsup_tar(rust, 4, true, &tgz, &len);
	else
		tsup_tar(as, 3, true, &tgz, &len);
	d = tsup_deploy_wait(&tsup_ofx.vivd, app, tgz, len);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s: %s\n%s", app, jstr(d, "error"),
	                 jstr(d, "log"));
	cr_assert_str_eq(jstr(d, "language"), lang);
	json_decref(d);
	free(tgz);
}

Test(examples, every_sdk_does_kv_async_fetch_and_multi_value_headers)
{
	char app[64];
	struct tsup_resp r;

	for (size_t i = 0; i < N_LANGS; i++) {
		snprintf(app, sizeof(app), "tour-%s", langs[i]);
		deploy_tour(app, langs[i]);
		/* insert a, insert b (refused), append c, get, set d, remove,
		 * remove again, get: the same twice, as the first ends with the
		 * key gone. */
		expect_get(app, "/kv", 200, "text/plain", "kv: 1 0 0 ac 0 1 0 none\n");
		expect_get(app, "/kv", 200, "text/plain", "kv: 1 0 0 ac 0 1 0 none\n");
		expect_get(app, "/async", 200, "text/plain",
		           "async: 200 upstream says hi | 200 POST\nx\n");
		if (i == 0)
			continue;
		cr_assert(tsup_app_get(&tsup_ofx.vivd, app, "/async", &r));
		cr_assert_not_null(strcasestr(r.headers, "\r\nx-tour: one\r\n"), "%s", r.headers);
		cr_assert_not_null(strcasestr(r.headers, "\r\nx-tour: two\r\n"), "%s", r.headers);
		tsup_resp_free(&r);
	}
}
