/* The CGI mode: CGI 1.1 (RFC 3875) for WASI command guests. The request as
 * environment variables, and the guest's stdout, which this mode keeps,
 * parsed back into a response: its header block by picohttpparser (which
 * libh2o carries), then held to what a response may hold. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runner_int.h"

/* Headers one response may carry, and bytes of all the environment. */
#define CGI_MAX_HEADERS 100
#define CGI_ENV_MAX ((size_t)256 << 10)

/* picohttpparser, as libh2o exports it; h2o installs no header for it. A
 * header whose name is NULL continues the line before it. */
struct phr_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};
int phr_parse_headers(const char *buf, size_t len, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

static enum viv_err env_add(struct run_instance *in, size_t *bytes, const char *name,
                            size_t name_len, const char *value, size_t value_len)
{
	char *s;

	if (*bytes + name_len + value_len + 2 > CGI_ENV_MAX)
		return VIV_ERR_TOO_BIG;
	s = malloc(name_len + value_len + 2);
	if (!s)
		return VIV_ERR_NOMEM;
	memcpy(s, name, name_len);
	s[name_len] = '=';
	memcpy(s + name_len + 1, value, value_len);
	s[name_len + 1 + value_len] = '\0';
	in->envp[in->n_envp++] = s;
	*bytes += name_len + value_len + 2;
	return VIV_OK;
}

static enum viv_err env_str(struct run_instance *in, size_t *bytes, const char *name,
                            const char *value)
{
	return env_add(in, bytes, name, strlen(name), value, strlen(value));
}

/* Percent-decodes a path for PATH_INFO; a malformed escape stays as it is. */
static size_t url_decode(char *dst, const char *src, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (src[i] == '%' && i + 2 < n && isxdigit((unsigned char)src[i + 1]) &&
		    isxdigit((unsigned char)src[i + 2])) {
			char hex[3] = {src[i + 1], src[i + 2], 0};
			dst[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			dst[o++] = src[i];
		}
	}
	return o;
}

static bool header_is(const struct run_header *h, const char *name)
{
	return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

enum viv_err run_cgi_env(struct run_instance *in)
{
	const struct run_request *r = in->req;
	const struct run_app *app = in->app;
	const char *q = memchr(r->target, '?', r->target_len);
	size_t path_len = q ? (size_t)(q - r->target) : r->target_len;
	size_t bytes = 0, n = 20 + r->n_headers + app->n_env, i;
	char port[16], len[32], *path = NULL, name[128];
	enum viv_err err = VIV_ERR_NOMEM;

	in->envp = calloc(n, sizeof(*in->envp));
	if (!in->envp)
		return VIV_ERR_NOMEM;
	path = malloc(path_len + 1);
	if (!path)
		goto out;
	snprintf(port, sizeof(port), "%u", r->server_port);
	snprintf(len, sizeof(len), "%zu", r->body_len);
	err = env_str(in, &bytes, "GATEWAY_INTERFACE", "CGI/1.1");
	if (!err)
		err = env_add(in, &bytes, "REQUEST_METHOD", 14, r->method, r->method_len);
	if (!err)
		err = env_add(in, &bytes, "PATH_INFO", 9, path,
		              url_decode(path, r->target, path_len));
	if (!err)
		err = env_add(in, &bytes, "X_RAW_PATH_INFO", 15, r->target, path_len);
	if (!err)
		err = env_add(in, &bytes, "REQUEST_URI", 11, r->target, r->target_len);
	if (!err)
		err = env_add(in, &bytes, "QUERY_STRING", 12, q ? q + 1 : "",
		              q ? r->target_len - path_len - 1 : 0);
	if (!err)
		err = env_str(in, &bytes, "SCRIPT_NAME", "");
	if (!err)
		err = env_str(in, &bytes, "SERVER_NAME", r->server_name);
	if (!err)
		err = env_str(in, &bytes, "SERVER_PORT", port);
	if (!err)
		err = env_str(in, &bytes, "SERVER_PROTOCOL", r->protocol);
	if (!err)
		err = env_str(in, &bytes, "SERVER_SOFTWARE", "vivarium/" VIV_VERSION);
	if (!err)
		err = env_str(in, &bytes, "REMOTE_ADDR", r->client_addr);
	if (!err && r->body_len)
		err = env_str(in, &bytes, "CONTENT_LENGTH", len);
	for (i = 0; !err && i < r->n_headers; i++) {
		const struct run_header *h = &r->headers[i];
		size_t j;

		if (header_is(h, "content-type")) {
			err = env_add(in, &bytes, "CONTENT_TYPE", 12, h->value, h->value_len);
			continue;
		}
		if (header_is(h, "content-length") || h->name_len + 5 >= sizeof(name))
			continue;
		memcpy(name, "HTTP_", 5);
		for (j = 0; j < h->name_len; j++) {
			char c = h->name[j];
			name[5 + j] = c == '-' ? '_' : (char)toupper((unsigned char)c);
		}
		err = env_add(in, &bytes, name, 5 + h->name_len, h->value, h->value_len);
	}
	/* The app's own variables; the request's win on a clash. */
	for (i = 0; !err && i < app->n_env; i++) {
		const char *eq = strchr(app->env[i], '=');
		bool clash = false;
		size_t k;

		if (!eq)
			continue;
		for (k = 0; k < in->n_envp && !clash; k++)
			clash = strncmp(in->envp[k], app->env[i], (size_t)(eq - app->env[i]) + 1) ==
			        0;
		if (!clash)
			err = env_add(in, &bytes, app->env[i], (size_t)(eq - app->env[i]), eq + 1,
			              strlen(eq + 1));
	}
out:
	free(path);
	return err;
}

static bool cgi_fail(struct run_instance *in, const char *why)
{
	char msg[512];

	snprintf(msg, sizeof(msg),
	         "bad CGI output: %s. A CGI program prints header lines such as "
	         "'Content-Type: text/plain', an empty line, then the body",
	         why);
	run_log_add(in, "trap", msg, strlen(msg));
	return false;
}

/* Why a header block that picohttpparser refused is bad, in the words of
 * the log: the first line at fault, or what no line shows. */
static const char *explain(const char *p, const char *end, size_t capacity)
{
	size_t lines = 0;

	for (;;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end, *colon, *v;

		if (!eol)
			return "the header block has no empty line after it";
		line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if (line_end == p)
			break;
		colon = memchr(p, ':', (size_t)(line_end - p));
		if (!colon || colon == p)
			return "a header line has no 'Name:' part";
		if (!run_http_token(p, (size_t)(colon - p)))
			return "a header name has a character that is not allowed";
		for (v = colon + 1; v < line_end && (*v == ' ' || *v == '\t'); v++)
			;
		if (!run_http_value(v, (size_t)(line_end - v)))
			return "a header value has a control character";
		if (++lines > capacity)
			return "more than 256 header lines";
		p = eol + 1;
	}
	return "the header block is malformed";
}

/* Header lines of one response, the Status line and those the server
 * drops included: picohttpparser fills an array of them (8 KiB, on the
 * stack: this runs once per response, and a calloc would cost more than the
 * parse). */
#define CGI_MAX_LINES 256

bool run_cgi_response(struct run_instance *in, char *out, size_t len)
{
	struct phr_header lines[CGI_MAX_LINES];
	struct run_header *hs = NULL;
	size_t n_lines = CGI_MAX_LINES, n = 0, i;
	unsigned status = 0;
	bool location = false, ok = false;
	const char *why = NULL;
	int parsed;

	if (!out || len == 0)
		return cgi_fail(in, "the program wrote nothing to stdout");
	parsed = phr_parse_headers(out, len, lines, &n_lines, 0);
	if (parsed == -2) {
		why = "the header block has no empty line after it";
		goto out;
	}
	for (i = 0; parsed > 0 && i < n_lines; i++) {
		/* A line that continues the one before (obs-fold) is refused. */
		if (!lines[i].name)
			parsed = -1;
	}
	if (parsed < 0) {
		why = explain(out, out + len, CGI_MAX_LINES);
		goto out;
	}
	/* Room for every line kept, and no more: the most a response may hold
	 * (CGI_MAX_HEADERS) cleared on every request cost more than the
	 * parse. */
	hs = malloc((n_lines < CGI_MAX_HEADERS ? n_lines + 1 : CGI_MAX_HEADERS) * sizeof(*hs));
	if (!hs) {
		why = "out of memory";
		goto out;
	}
	for (i = 0; i < n_lines; i++) {
		const struct phr_header *l = &lines[i];

		/* picohttpparser checks this much already; the response must
		 * hold whatever it lets through. */
		if (!run_http_token(l->name, l->name_len)) {
			why = "a header name has a character that is not allowed";
			goto out;
		}
		if (!run_http_value(l->value, l->value_len)) {
			why = "a header value has a control character";
			goto out;
		}
		if (l->name_len == 6 && strncasecmp(l->name, "status", 6) == 0) {
			char code[4] = {0};

			if (l->value_len < 3) {
				why = "the Status header has no 3-digit code";
				goto out;
			}
			memcpy(code, l->value, 3);
			status = (unsigned)atoi(code);
			if (!isdigit((unsigned char)code[0]) || !isdigit((unsigned char)code[1]) ||
			    !isdigit((unsigned char)code[2]) || status < 100 || status > 599) {
				why = "the Status header's code is not 100 to 599";
				goto out;
			}
		} else if (!run_header_is_hop_by_hop(l->name, l->name_len)) {
			if (n == CGI_MAX_HEADERS) {
				why = "more than 100 headers";
				goto out;
			}
			if (l->name_len == 8 && strncasecmp(l->name, "location", 8) == 0)
				location = true;
			hs[n].name = l->name;
			hs[n].name_len = l->name_len;
			hs[n].value = l->value;
			hs[n].value_len = l->value_len;
			n++;
		}
	}
	if (n == 0 && status == 0) {
		why = "the header block is empty";
		goto out;
	}
	free(in->resp.headers);
	in->resp.status = status ? status : location ? 302 : 200;
	in->resp.headers = hs;
	in->resp.n_headers = n;
	in->resp.body = out + parsed;
	in->resp.body_len = len - (size_t)parsed;
	hs = NULL;
	ok = true;
out:
	free(hs);
	return ok ? true : cgi_fail(in, why);
}

/* ---- The mode ------------------------------------------------------------------------- */

struct cgi_state {
	struct viv_buf out; /* stdout: the response */
	bool out_overflow;
};

static enum viv_err cgi_start(struct run_instance *in)
{
	struct cgi_state *cs = in->mode_state;

	/* The body's cap plus room for the header block. */
	viv_buf_init(&cs->out, in->pool->cfg.response_max + RUN_CGI_HEADERS_MAX);
	return VIV_OK;
}

static void cgi_finish(struct run_instance *in)
{
	struct cgi_state *cs = in->mode_state;
	size_t max = in->pool->cfg.response_max;
	char msg[128];

	if (cs->out_overflow ||
	    (run_cgi_response(in, cs->out.data, cs->out.len) && in->resp.body_len > max)) {
		in->outcome = RUN_TOO_BIG;
		snprintf(msg, sizeof(msg), "the response was larger than the limit of %zu bytes",
		         max);
		run_log_add(in, "trap", msg, strlen(msg));
		run_error_response(in, 500, "The app's response was too large.\n");
	} else if (in->resp.status) {
		in->outcome = RUN_DONE;
	} else {
		in->outcome = RUN_BAD_OUTPUT;
		run_error_response(in, 500, "The app did not produce a valid response.\n");
	}
}

static bool cgi_write_stdout(struct run_instance *in, const uint8_t *p, size_t n)
{
	struct cgi_state *cs = in->mode_state;

	if (viv_buf_append(&cs->out, p, n)) {
		cs->out_overflow = true;
		return false;
	}
	return true;
}

static void cgi_end(struct run_instance *in)
{
	struct cgi_state *cs = in->mode_state;

	viv_buf_free(&cs->out);
}

const struct run_mode_ops run_mode_cgi = {
        .name = "cgi",
        .state_size = sizeof(struct cgi_state),
        .start = cgi_start,
        .finish = cgi_finish,
        .write_stdout = cgi_write_stdout,
        .end = cgi_end,
};
