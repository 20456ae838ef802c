/* The API's route table and the matching of request paths against it:
 * methods, path parameters (percent-decoded here, as libmicrohttpd is told
 * to leave paths and query arguments as they came), and who may call each
 * route. The table is also the index of GET /v1, and openapi.json
 * documents every entry (a test holds the two together). */
#include <stdio.h>
#include <string.h>

#include "api_int.h"

#define SETTING_TOO_BIG                                                                            \
	"A setting or secret is at most 64 KiB; keep larger data in static assets or the "         \
	"app's KV store."

/* Order matters only for the Allow header and the index: routes are listed
 * as a reader of the API would look for them. */
const struct api_route api_routes[] = {
        {"GET", "/", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_root},
        {"GET", "/web/{file}", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_web},
        {"GET", "/web/vendor/{path}", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_web_vendor},
        {"GET", "/healthz", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_healthz},
        {"GET", "/metrics", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_metrics},
        {"GET", "/v1", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_index},
        {"GET", "/v1/openapi.json", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_openapi},
        {"GET", "/v1/templates", API_PUBLIC, API_BODY_NONE, 0, NULL, api_get_templates},
        {"GET", "/v1/tokens", API_ADMIN, API_BODY_NONE, 0, NULL, api_get_tokens},
        {"POST", "/v1/tokens", API_ADMIN, API_BODY_SMALL, API_JSON_BODY_MAX,
         "A token request is a small JSON object; send {\"name\", \"scope\", \"apps\"}.",
         api_post_token},
        {"DELETE", "/v1/tokens/{id}", API_ADMIN, API_BODY_NONE, 0, NULL, api_delete_token},
        {"GET", "/v1/apps", API_ANY_TOKEN, API_BODY_NONE, 0, NULL, api_get_apps},
        {"GET", "/v1/apps/{app}", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_app},
        {"DELETE", "/v1/apps/{app}", API_ADMIN, API_BODY_NONE, 0, NULL, api_delete_app},
        {"POST", "/v1/apps/{app}/deployments", API_APP_TOKEN, API_BODY_UPLOAD, 0, NULL, NULL},
        {"GET", "/v1/apps/{app}/deployments", API_APP_TOKEN, API_BODY_NONE, 0, NULL,
         api_get_deployments},
        {"POST", "/v1/apps/{app}/rollback", API_APP_TOKEN, API_BODY_SMALL, API_JSON_BODY_MAX,
         "A rollback request is a small JSON object: {\"deployment\": ID}, or nothing.",
         api_post_rollback},
        {"GET", "/v1/deployments/{id}", API_DEP_TOKEN, API_BODY_NONE, 0, NULL, api_get_deployment},
        {"GET", "/v1/deployments/{id}/events", API_DEP_TOKEN, API_BODY_NONE, 0, NULL,
         api_get_events},
        {"GET", "/v1/apps/{app}/logs", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_app_logs},
        {"GET", "/v1/apps/{app}/logs/stream", API_APP_TOKEN, API_BODY_NONE, 0, NULL,
         api_get_log_stream},
        {"GET", "/v1/apps/{app}/config", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_config},
        {"PUT", "/v1/apps/{app}/config/{key}", API_ADMIN, API_BODY_SMALL, STORE_CONFIG_VALUE_MAX,
         SETTING_TOO_BIG, api_put_config},
        {"DELETE", "/v1/apps/{app}/config/{key}", API_ADMIN, API_BODY_NONE, 0, NULL,
         api_delete_config},
        {"GET", "/v1/apps/{app}/secrets", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_secrets},
        {"PUT", "/v1/apps/{app}/secrets/{name}", API_ADMIN, API_BODY_SMALL, STORE_CONFIG_VALUE_MAX,
         SETTING_TOO_BIG, api_put_secret},
        {"DELETE", "/v1/apps/{app}/secrets/{name}", API_ADMIN, API_BODY_NONE, 0, NULL,
         api_delete_secret},
        {"GET", "/v1/apps/{app}/kv", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_kv_list},
        {"GET", "/v1/apps/{app}/kv/{key}", API_APP_TOKEN, API_BODY_NONE, 0, NULL, api_get_kv},
        {"PUT", "/v1/apps/{app}/kv/{key}", API_ADMIN, API_BODY_SMALL, STORE_KV_VALUE_MAX,
         "A KV value is at most 1 MiB.", api_put_kv},
        {"DELETE", "/v1/apps/{app}/kv/{key}", API_ADMIN, API_BODY_NONE, 0, NULL, api_delete_kv},
        {"GET", "/v1/artifacts/{hash}", API_ADMIN, API_BODY_NONE, 0, NULL, api_get_artifact},
        {"GET", "/v1/assets/{hash}", API_ADMIN, API_BODY_NONE, 0, NULL, api_get_assets},
};
const size_t api_n_routes = sizeof(api_routes) / sizeof(api_routes[0]);

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

long api_percent_decode(const char *src, size_t n, char *dst, size_t cap)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		char ch = src[i];

		if (ch == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		if (k >= cap)
			return -1;
		dst[k++] = ch;
	}
	dst[k] = '\0';
	return (long)k;
}

long api_query_arg(struct MHD_Connection *c, const char *name, char *dst, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	long n;

	if (!v)
		return -1;
	n = api_percent_decode(v, strlen(v), dst, cap);
	return n < 0 ? -2 : n;
}

bool api_parse_uint(const char *s, int64_t *out)
{
	uint64_t v;

	if (!viv_parse_u64(s, NULL, INT64_MAX, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

bool api_query_int(struct MHD_Connection *c, struct api_req *r, const char *name, int64_t min,
                   int64_t max, int64_t *out, enum MHD_Result *ret)
{
	char buf[32];
	long n = api_query_arg(c, name, buf, sizeof(buf) - 1);
	int64_t v = 0;

	if (n == -1)
		return true;
	if (n >= 0 && api_parse_uint(buf, &v) && v >= min && v <= max) {
		*out = v;
		return true;
	}
	*ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
	                       "\"%s\" is a whole number from %lld to %lld.", name, (long long)min,
	                       (long long)max);
	return false;
}

/* ---- Matching ------------------------------------------------------------------ */

/* A path parameter found while matching: its name in the pattern and the
 * raw bytes in the request path. */
struct seg {
	const char *name;
	size_t name_len;
	const char *raw;
	size_t raw_len;
};

#define SEGS_MAX 3

/* Whether url (without its query) has the shape of pattern; the parameters
 * go to segs. A single trailing '/' of url is ignored. A {path} parameter,
 * last in its pattern, takes the rest of the path, slashes included. */
static bool path_matches(const char *pattern, const char *url, size_t url_len, struct seg *segs,
                         size_t *n_segs)
{
	const char *p = pattern, *u = url, *uend = url + url_len;

	*n_segs = 0;
	if (url_len > 1 && url[url_len - 1] == '/')
		uend--;
	if (strcmp(pattern, "/") == 0)
		return url_len == 1 && url[0] == '/';
	while (*p) {
		size_t plen, ulen;

		if (*p != '/' || u >= uend || *u != '/')
			return false;
		p++;
		u++;
		plen = strcspn(p, "/");
		ulen = (size_t)(uend - u);
		for (size_t i = 0; i < ulen && strncmp(p, "{path}", 6) != 0; i++) {
			if (u[i] == '/') {
				ulen = i;
				break;
			}
		}
		if (p[0] == '{') {
			if (ulen == 0 || *n_segs >= SEGS_MAX)
				return false;
			segs[*n_segs] = (struct seg){p + 1, plen - 2, u, ulen};
			(*n_segs)++;
		} else if (plen != ulen || memcmp(p, u, plen) != 0) {
			return false;
		}
		p += plen;
		u += ulen;
	}
	return u == uend;
}

static bool seg_is(const struct seg *sg, const char *name)
{
	return sg->name_len == strlen(name) && memcmp(sg->name, name, sg->name_len) == 0;
}

/* Decodes the parameters of the chosen route into r. */
static void take_params(struct api_req *r, const struct seg *segs, size_t n)
{
	char idbuf[32];
	long len;

	for (size_t i = 0; i < n; i++) {
		const struct seg *sg = &segs[i];

		if (seg_is(sg, "app")) {
			len = api_percent_decode(sg->raw, sg->raw_len, r->app, sizeof(r->app) - 1);
			r->app_bad = len < 0;
			if (len < 0)
				r->app[0] = '\0';
		} else if (seg_is(sg, "id")) {
			len = api_percent_decode(sg->raw, sg->raw_len, idbuf, sizeof(idbuf) - 1);
			r->id_bad = len < 0 || !api_parse_uint(idbuf, &r->id) || r->id <= 0;
		} else {
			len = api_percent_decode(sg->raw, sg->raw_len, r->param,
			                         sizeof(r->param) - 1);
			r->param_bad = len <= 0;
			r->param_len = len > 0 ? (size_t)len : 0;
			r->param[r->param_len] = '\0';
		}
	}
}

/* Adds method to r->allow unless it is there ("GET" brings "HEAD"). */
static void allow_add(struct api_req *r, const char *method)
{
	size_t n = strlen(r->allow);
	const char *add = strcmp(method, "GET") == 0 ? "GET, HEAD" : method;

	if (strstr(r->allow, method))
		return;
	snprintf(r->allow + n, sizeof(r->allow) - n, "%s%s", n ? ", " : "", add);
}

void api_route_match(const char *url, const char *method, struct api_req *r)
{
	struct seg segs[SEGS_MAX];
	size_t n_segs, url_len = strcspn(url, "?");
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

	r->route = NULL;
	r->allow[0] = '\0';
	for (size_t i = 0; i < api_n_routes; i++) {
		const struct api_route *rt = &api_routes[i];

		if (!path_matches(rt->pattern, url, url_len, segs, &n_segs))
			continue;
		allow_add(r, rt->method);
		if (!r->route && strcmp(rt->method, want) == 0) {
			r->route = rt;
			take_params(r, segs, n_segs);
		}
	}
}
