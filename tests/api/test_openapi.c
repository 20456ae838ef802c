/* The OpenAPI document against the server: every documented route answers
 * its method (neither 404 nor 405), and every route the router knows (its
 * table, as GET /v1 lists it) is documented. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_server.h"
#include "viv.h"

static struct tsrv srv;
static char web[] = "/tmp/viv-openapi-web-XXXXXX";

static void setup(void)
{
	char *p;

	cr_assert_not_null(mkdtemp(web));
	p = viv_path_join(web, "index.html");
	cr_assert_eq(viv_write_file_atomic(p, "<p>hi", 5, 0644), VIV_OK);
	free(p);
	p = viv_path_join(web, "app.js");
	cr_assert_eq(viv_write_file_atomic(p, "1;", 2, 0644), VIV_OK);
	free(p);
	tsrv_start(&srv, 0, web);
}

static void teardown(void)
{
	tsrv_stop(&srv);
	viv_rmtree_or_log(web);
}

TestSuite(openapi, .init = setup, .fini = teardown, .timeout = 240);

static size_t first_bytes_only(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)size;
	(void)n;
	(void)ctx;
	/* The status is known; an event stream would never end. */
	return 0;
}

/* The status of a request, reading no more than the first bytes of the
 * reply. */
static long status_of(const char *method, const char *path, const void *body, size_t len)
{
	char url[512], auth[256];
	struct curl_slist *hdrs = NULL;
	long status = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", srv.base, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", srv.token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, first_bytes_only);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	rc = curl_easy_perform(h);
	cr_assert(rc == CURLE_OK || rc == CURLE_WRITE_ERROR, "%s %s: %s", method, path,
	          curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return status;
}

/* path with its parameters replaced by things that exist. */
static void fill(const char *pattern, long long dep, long long token, char *out, size_t len)
{
	struct {
		const char *name, *value;
	} vals[] = {{"{app}", "probe"},
	            {"{key}", strstr(pattern, "/kv/") ? "k" : "K"},
	            {"{name}", "S"},
	            {"{file}", "app.js"},
	            {"{path}", "codemirror/lib/codemirror.js"}};
	char ids[2][32];
	size_t k = 0;

	snprintf(ids[0], sizeof(ids[0]), "%lld", dep);
	snprintf(ids[1], sizeof(ids[1]), "%lld", token);
	for (const char *p = pattern; *p && k + 1 < len;) {
		bool done = false;

		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]) && !done; i++) {
			size_t n = strlen(vals[i].name);

			if (strncmp(p, vals[i].name, n) == 0) {
				k += (size_t)snprintf(out + k, len - k, "%s", vals[i].value);
				p += n;
				done = true;
			}
		}
		if (!done && strncmp(p, "{id}", 4) == 0) {
			k += (size_t)snprintf(out + k, len - k, "%s",
			                      strncmp(pattern, "/v1/tokens", 10) == 0 ? ids[1]
			                                                              : ids[0]);
			p += 4;
			done = true;
		}
		if (!done)
			out[k++] = *p++;
	}
	out[k] = '\0';
}

/* The body a documented operation is sent with. */
static const char *body_for(const char *method, const char *path, size_t *len)
{
	static const char token[] = "{\"name\": \"probe\", \"scope\": \"admin\"}";

	*len = 0;
	if (strcmp(method, "POST") == 0 && strstr(path, "/deployments")) {
		*len = twasm_min_len;
		return (const char *)twasm_min;
	}
	if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/tokens") == 0) {
		*len = strlen(token);
		return token;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		*len = strcmp(method, "POST") == 0 ? 2 : 1;
		return strcmp(method, "POST") == 0 ? "{}" : "v";
	}
	return NULL;
}

struct op {
	char method[8];
	char path[128];
};

static int op_order(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	int dx = strcmp(x->method, "DELETE") == 0, dy = strcmp(y->method, "DELETE") == 0;

	/* Deletions last, and the app's deletion after every other. */
	if (dx != dy)
		return dx - dy;
	if (dx)
		return (strcmp(x->path, "/v1/apps/{app}") == 0) -
		       (strcmp(y->path, "/v1/apps/{app}") == 0);
	return 0;
}

Test(openapi, documents_every_route_and_every_documented_route_answers)
{
	struct op ops[64];
	size_t n_ops = 0, i;
	json_t *doc, *index, *endpoints, *item, *tok, *v;
	const char *path, *method, *token_body;
	struct tresp r;
	long long dep, token_id;

	dep = tupload(&srv, "probe", NULL, twasm_min, twasm_min_len);
	json_decref(twait_deployment(&srv, dep, 200));
	thttp(&srv, "PUT", "/v1/apps/probe/kv/k", srv.token, "v", 1, false, &r);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/probe/config/K", srv.token, "v", 1, false, &r);
	tresp_free(&r);
	thttp(&srv, "PUT", "/v1/apps/probe/secrets/S", srv.token, "v", 1, false, &r);
	tresp_free(&r);
	token_body = "{\"name\":\"t\",\"scope\":\"admin\"}";
	thttp(&srv, "POST", "/v1/tokens", srv.token, token_body, strlen(token_body), false, &r);
	cr_assert_eq(r.status, 201, "%s", r.body);
	token_id = json_integer_value(json_object_get(r.json, "id"));
	tresp_free(&r);

	thttp(&srv, "GET", "/v1/openapi.json", NULL, NULL, 0, false, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.content_type, "application/json");
	doc = json_incref(r.json);
	cr_assert_not_null(doc, "the document is not JSON");
	tresp_free(&r);
	cr_assert_str_eq(tjstr(doc, "openapi"), "3.1.0");
	json_object_foreach(json_object_get(doc, "paths"), path, item)
	{
		json_object_foreach(item, method, v)
		{
			cr_assert_lt(n_ops, sizeof(ops) / sizeof(ops[0]));
			for (i = 0; method[i] && i + 1 < sizeof(ops[0].method); i++)
				ops[n_ops].method[i] = (char)(method[i] - 'a' + 'A');
			ops[n_ops].method[i] = '\0';
			snprintf(ops[n_ops].path, sizeof(ops[0].path), "%s", path);
			n_ops++;
		}
	}

	/* The router's table, as the index lists it, is the document's. */
	thttp(&srv, "GET", "/v1", NULL, NULL, 0, false, &r);
	index = json_incref(r.json);
	tresp_free(&r);
	endpoints = json_object_get(index, "endpoints");
	cr_assert_eq(json_array_size(endpoints), n_ops,
	             "the router has %zu routes, the document %zu", json_array_size(endpoints),
	             n_ops);
	json_array_foreach(endpoints, i, tok)
	{
		bool found = false;

		for (size_t k = 0; k < n_ops && !found; k++) {
			const char *line = json_string_value(tok);
			size_t ml = strlen(ops[k].method);

			found = strncmp(line, ops[k].method, ml) == 0 && line[ml] == ' ' &&
			        strcmp(line + ml + 1, ops[k].path) == 0;
		}
		cr_assert(found, "the route %s is not documented", json_string_value(tok));
	}

	qsort(ops, n_ops, sizeof(ops[0]), op_order);
	for (i = 0; i < n_ops; i++) {
		char url[256];
		const char *body;
		size_t len;
		long status;

		fill(ops[i].path, dep, token_id, url, sizeof(url));
		body = body_for(ops[i].method, ops[i].path, &len);
		status = status_of(ops[i].method, url, body, len);
		cr_assert(status != 404 && status != 405 && status != 0,
		          "%s %s (documented as %s) answered %ld", ops[i].method, url, ops[i].path,
		          status);
	}
	json_decref(index);
	json_decref(doc);
}
