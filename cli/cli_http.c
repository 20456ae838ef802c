/* The CLI's HTTP calls to the API with libcurl: bearer token, capped
 * replies, an upload's progress, event streams, and one clear sentence for
 * every way a call can go wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

/* Nanoseconds between two redraws of the progress bar. */
#define CLI_PROGRESS_REDRAW_NS 100000000ull

/* An upload's progress display. */
struct progress {
	struct cli *c;
	uint64_t last_draw_ns;
	unsigned quarter; /* quarters already reported as lines (not a terminal) */
	bool drawn;       /* a bar is on the terminal's line */
};

/* The reply being read, capped by its buffer. */
struct reply_ctx {
	struct viv_buf body;
	bool too_big;
};

/* An event stream being read. */
struct stream_ctx {
	struct cli *c;
	struct cli_sse *p;
	bool checked; /* the status and type were looked at */
	bool is_sse;  /* 200 with text/event-stream */
	long status;
	struct viv_buf other; /* the body of any other reply, capped */
	enum viv_err perr;    /* why the parser stopped, when it did */
	uint64_t last_rx_ns;  /* when the last bytes came */
	bool idle;            /* nothing came for CLI_STREAM_IDLE_S */
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct reply_ctx *rep = ctx;
	size_t bytes = size * n;

	if (viv_buf_append(&rep->body, p, bytes)) {
		rep->too_big = true;
		return 0; /* anything short aborts the transfer */
	}
	return bytes;
}

static void draw_progress(struct progress *pr, uint64_t done, uint64_t total)
{
	char line[256], a[32];
	unsigned q;

	if (pr->c->tty) {
		cli_progress_line(done, total, pr->c->width > 1 ? pr->c->width - 1 : 1, line,
		                  sizeof(line));
		printf("\r%s", line);
		pr->drawn = true;
		fflush(stdout);
		return;
	}
	/* Not a terminal: a line for each quarter reached. */
	q = total ? (unsigned)(done * 4 / total) : 4;
	if (q <= pr->quarter)
		return;
	pr->quarter = q;
	cli_size_text(total, a, sizeof(a));
	printf("uploading: %u%% of %s\n", q * 25, a);
	fflush(stdout);
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct progress *pr = ctx;
	uint64_t now = viv_mono_ns();

	(void)dltotal;
	(void)dlnow;
	if (ultotal <= 0)
		return 0;
	if (pr->c->tty && ulnow < ultotal && pr->drawn &&
	    now - pr->last_draw_ns < CLI_PROGRESS_REDRAW_NS)
		return 0;
	pr->last_draw_ns = now;
	draw_progress(pr, (uint64_t)ulnow, (uint64_t)ultotal);
	return 0;
}

/* The "error" sentence of a JSON reply, or NULL. Borrowed from j. */
static const char *api_error_of(json_t *j)
{
	json_t *e = j ? json_object_get(j, "error") : NULL;

	return json_is_string(e) ? json_string_value(e) : NULL;
}

/* Fills errbuf for a reply whose status was not 2xx. */
static enum viv_err reply_error(struct cli *c, long status, json_t *j, char *errbuf, size_t errlen)
{
	const char *msg = api_error_of(j);

	if (status == 401) {
		if (!c->token)
			viv_errf(
			        errbuf, errlen,
			        "the API needs a token and none was given: pass --token TOKEN, set "
			        "VIV_TOKEN, put \"token = ...\" in viv's configuration file (viv "
			        "help config), or run viv where %s is readable (the server said: "
			        "%s)",
			        CLI_TOKEN_FILE, msg ? msg : "401 Unauthorized");
		else
			viv_errf(errbuf, errlen,
			         "the API at %s refused the token from %s: %s; pass a valid one "
			         "with --token, VIV_TOKEN or viv's configuration file",
			         c->api, c->token_from, msg ? msg : "401 Unauthorized");
		return VIV_ERR_AUTH;
	}
	if (status == 403) {
		viv_errf(errbuf, errlen,
		         "%s (the token from %s is not allowed this; an admin token is, or one "
		         "made for this app with viv token create)",
		         msg ? msg : "403 Forbidden", c->token_from ? c->token_from : "nowhere");
		return VIV_ERR_AUTH;
	}
	if (!msg) {
		viv_errf(errbuf, errlen,
		         "the server at %s (from %s) answered HTTP %ld without a Vivarium error "
		         "message; is that the address of the Vivarium API?",
		         c->api, c->api_from, status);
		return status == 404 ? VIV_ERR_NOT_FOUND : VIV_ERR_INVALID;
	}
	viv_errf(errbuf, errlen, "%s", msg);
	if (status == 404)
		return VIV_ERR_NOT_FOUND;
	if (status == 413)
		return VIV_ERR_TOO_BIG;
	return VIV_ERR_INVALID;
}

/* The sentence for a transfer that got no reply. */
static enum viv_err transport_error(struct cli *c, CURLcode rc, const char *cerr, char *errbuf,
                                    size_t errlen)
{
	if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
		viv_errf(errbuf, errlen,
		         "the API address %s (from %s) is not a valid http:// or https:// URL "
		         "(%s); set it with --api URL, VIV_API or \"api = URL\" in viv's "
		         "configuration file",
		         c->api, c->api_from, cerr[0] ? cerr : curl_easy_strerror(rc));
		return VIV_ERR_INVALID;
	}
	viv_errf(errbuf, errlen,
	         "cannot reach the Vivarium API at %s (from %s): %s; is vivd running there? "
	         "Set the address with --api URL, VIV_API or \"api = URL\" in viv's "
	         "configuration file (viv help config)",
	         c->api, c->api_from, cerr[0] ? cerr : curl_easy_strerror(rc));
	return VIV_ERR_IO;
}

/* The headers every call sends, plus extra (may be NULL). NULL when memory
 * ran out; caller frees with curl_slist_free_all(). */
static struct curl_slist *base_headers(struct cli *c, const char *accept, const char *extra,
                                       const char *extra2)
{
	const char *lines[4] = {accept, extra, extra2, NULL};
	struct curl_slist *list = NULL, *h;
	struct viv_buf auth;
	size_t i;

	viv_buf_init(&auth, 0);
	if (c->token && viv_buf_printf(&auth, "Authorization: Bearer %s", c->token)) {
		viv_buf_free(&auth);
		return NULL;
	}
	lines[3] = c->token ? auth.data : NULL;
	for (i = 0; i < 4; i++) {
		if (!lines[i])
			continue;
		h = curl_slist_append(list, lines[i]);
		if (!h) {
			curl_slist_free_all(list);
			list = NULL;
			break;
		}
		list = h;
	}
	viv_buf_free(&auth);
	return list;
}

/* Options every call sets on the easy handle. */
static void common_options(struct cli *c, const char *url, struct curl_slist *headers, char *cerr)
{
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "viv/" VIV_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
}

enum viv_err cli_send(struct cli *c, const struct cli_request *rq, struct cli_reply *out,
                      char *errbuf, size_t errlen)
{
	struct reply_ctx rep = {.too_big = false};
	struct progress pr = {.c = c};
	struct curl_slist *headers = NULL;
	struct viv_buf url, ctype;
	char cerr[CURL_ERROR_SIZE] = "";
	bool sends = strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PUT") == 0;
	json_t *j = NULL;
	long status = 0;
	CURLcode rc;
	enum viv_err err = VIV_OK;

	memset(out, 0, sizeof(*out));
	viv_buf_init(&rep.body, CLI_RESP_MAX);
	viv_buf_init(&url, 0);
	viv_buf_init(&ctype, 0);
	err = viv_buf_printf(&url, "%s%s", c->api, rq->path);
	/* Every body is labelled, so that none passes for a form. */
	if (!err && sends)
		err = viv_buf_printf(&ctype, "Content-Type: %s",
		                     rq->content_type ? rq->content_type
		                                      : "application/octet-stream");
	if (!err) {
		headers = base_headers(c, "Accept: application/json", sends ? ctype.data : NULL,
		                       NULL);
		if (!headers)
			err = VIV_ERR_NOMEM;
	}
	if (err) {
		viv_errf(errbuf, errlen, "out of memory");
		err = VIV_ERR_NOMEM;
		goto out;
	}

	common_options(c, url.data, headers, cerr);
	/* Uploads may be large and slow; replies to the rest are quick. */
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, rq->has_body && rq->len > 65536 ? 600L : 60L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &rep);
	if (sends) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(rq->has_body ? rq->len : 0));
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, rq->has_body ? rq->body : "");
	}
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, rq->method);
	if (rq->progress) {
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &pr);
	}

	rc = curl_easy_perform(c->curl);
	if (rq->progress && rc == CURLE_OK) {
		/* The last callback may have come before the last byte left. */
		draw_progress(&pr, rq->len, rq->len);
		if (pr.drawn)
			printf("\n");
	} else if (pr.drawn) {
		printf("\n");
	}
	if (rc == CURLE_WRITE_ERROR && rep.too_big) {
		err = VIV_ERR_TOO_BIG;
		viv_errf(errbuf, errlen,
		         "the reply from %s was larger than %u MiB; is that the address of the "
		         "Vivarium API?",
		         c->api, CLI_RESP_MAX >> 20);
		goto out;
	}
	if (rc != CURLE_OK) {
		err = transport_error(c, rc, cerr, errbuf, errlen);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (rep.body.len > 0)
		j = json_loadb(rep.body.data, rep.body.len, 0, NULL);
	if (status < 200 || status > 299) {
		err = reply_error(c, status, j, errbuf, errlen);
		goto out;
	}
	out->status = status;
	out->len = rep.body.len;
	out->body = viv_buf_steal(&rep.body);
	out->json = j;
	j = NULL;
	if (!out->body) {
		cli_reply_free(out);
		err = VIV_ERR_NOMEM;
		viv_errf(errbuf, errlen, "out of memory");
	}
out:
	/* The handle must not keep pointers to this call's headers, buffers
	 * and callbacks. */
	curl_easy_reset(c->curl);
	json_decref(j);
	curl_slist_free_all(headers);
	viv_buf_free(&rep.body);
	viv_buf_free(&url);
	viv_buf_free(&ctype);
	return err;
}

enum viv_err cli_call(struct cli *c, const char *method, const char *path, const void *body,
                      size_t len, json_t **out, char *errbuf, size_t errlen)
{
	struct cli_request rq = {
	        .method = method, .path = path, .body = body, .len = len, .has_body = body != NULL};
	struct cli_reply r;
	enum viv_err err;

	*out = NULL;
	err = cli_send(c, &rq, &r, errbuf, errlen);
	if (err)
		return err;
	if (r.len > 0 && !r.json) {
		viv_errf(errbuf, errlen,
		         "the server at %s answered %s %s with something that is not JSON; is "
		         "that the address of the Vivarium API?",
		         c->api, method, path);
		cli_reply_free(&r);
		return VIV_ERR_INVALID;
	}
	*out = r.json;
	r.json = NULL;
	cli_reply_free(&r);
	return VIV_OK;
}

void cli_reply_free(struct cli_reply *r)
{
	if (!r)
		return;
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

char *cli_escape(struct cli *c, const char *bytes, size_t len)
{
	if (len > 1u << 20)
		return NULL;
	return curl_easy_escape(c->curl, bytes, (int)len);
}

int cli_exit_of(enum viv_err err)
{
	switch (err) {
	case VIV_OK:
		return CLI_EXIT_OK;
	case VIV_ERR_IO:
		return CLI_EXIT_CONN;
	case VIV_ERR_AUTH:
		return CLI_EXIT_AUTH;
	case VIV_ERR_NOT_FOUND:
		return CLI_EXIT_NOT_FOUND;
	default:
		return CLI_EXIT_FAIL;
	}
}

int cli_fail(enum viv_err err, const char *errbuf)
{
	fprintf(stderr, "viv: %s\n", errbuf);
	return cli_exit_of(err);
}

bool cli_get_list(struct cli *c, const struct cli_args *a, const char *path, const char *member,
                  const char *what, struct cli_reply *r, json_t **list, int *exit_out)
{
	struct cli_request rq = {.method = "GET", .path = path};
	char errbuf[1024];
	enum viv_err err;

	*list = NULL;
	*exit_out = CLI_EXIT_FAIL;
	err = cli_send(c, &rq, r, errbuf, sizeof(errbuf));
	if (err) {
		*exit_out = cli_fail(err, errbuf);
		return false;
	}
	if (a->given & CLI_O_JSON) {
		cli_print_json(r);
		*exit_out = CLI_EXIT_OK;
		return false;
	}
	*list = json_is_object(r->json) ? json_object_get(r->json, member) : NULL;
	if (!json_is_array(*list)) {
		fprintf(stderr, "viv: the API's reply to GET %s has no list of %s\n", path, what);
		*list = NULL;
		return false;
	}
	return true;
}

/* ---- Event streams ------------------------------------------------------------------ */

/* Looks at the reply's status and type when its first bytes arrive. */
static void check_stream(struct stream_ctx *s)
{
	const char *type = NULL;

	s->checked = true;
	curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &s->status);
	curl_easy_getinfo(s->c->curl, CURLINFO_CONTENT_TYPE, &type);
	s->is_sse = s->status == 200 && type && strncasecmp(type, "text/event-stream", 17) == 0;
}

static size_t on_stream(char *buf, size_t size, size_t n, void *ctx)
{
	struct stream_ctx *s = ctx;
	size_t bytes = size * n;

	s->last_rx_ns = viv_mono_ns();
	if (!s->checked)
		check_stream(s);
	if (!s->is_sse)
		return viv_buf_append(&s->other, buf, bytes) ? 0 : bytes;
	s->perr = cli_sse_feed(s->p, buf, bytes);
	return s->perr ? 0 : bytes;
}

/* Called about once a second while a stream is open: a stream that sends
 * nothing, not even a keep-alive comment, for CLI_STREAM_IDLE_S is dead. */
static int on_stream_tick(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
	struct stream_ctx *s = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (viv_mono_ns() - s->last_rx_ns > (uint64_t)CLI_STREAM_IDLE_S * 1000000000ull) {
		s->idle = true;
		return 1;
	}
	return 0;
}

enum viv_err cli_stream(struct cli *c, const char *path, const char *last_id, struct cli_sse *p,
                        char *errbuf, size_t errlen)
{
	struct stream_ctx s = {.c = c, .p = p};
	struct curl_slist *headers = NULL;
	struct viv_buf url, idh;
	char cerr[CURL_ERROR_SIZE] = "";
	json_t *j = NULL;
	CURLcode rc;
	enum viv_err err = VIV_OK;

	viv_buf_init(&s.other, CLI_ERROR_BODY_MAX);
	viv_buf_init(&url, 0);
	viv_buf_init(&idh, 0);
	err = viv_buf_printf(&url, "%s%s", c->api, path);
	if (!err && last_id && last_id[0])
		err = viv_buf_printf(&idh, "Last-Event-ID: %s", last_id);
	if (!err) {
		headers = base_headers(c, "Accept: text/event-stream", "Cache-Control: no-cache",
		                       idh.len ? idh.data : NULL);
		if (!headers)
			err = VIV_ERR_NOMEM;
	}
	if (err) {
		viv_errf(errbuf, errlen, "out of memory");
		err = VIV_ERR_NOMEM;
		goto out;
	}
	common_options(c, url.data, headers, cerr);
	/* A stream has no end to wait for; a silent one is dead after three
	 * missed keep-alives. */
	s.last_rx_ns = viv_mono_ns();
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_stream_tick);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &s);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);

	rc = curl_easy_perform(c->curl);
	if (s.perr == VIV_ERR_BUSY)
		goto out; /* the caller has what it wanted */
	if (s.perr) {
		err = s.perr;
		viv_errf(errbuf, errlen,
		         "an event from %s%s was larger than the %u MiB viv reads; is that the "
		         "Vivarium API?",
		         c->api, path, CLI_SSE_DATA_MAX >> 20);
		goto out;
	}
	if (!s.checked && rc == CURLE_OK)
		check_stream(&s);
	if (!s.checked && s.idle) {
		err = VIV_ERR_IO;
		viv_errf(errbuf, errlen, "the API at %s sent nothing for %ld s", c->api,
		         CLI_STREAM_IDLE_S);
		goto out;
	}
	if (!s.checked) {
		err = transport_error(c, rc, cerr, errbuf, errlen);
		goto out;
	}
	if (s.is_sse) {
		err = VIV_ERR_IO;
		viv_errf(errbuf, errlen, "the stream from %s ended: %s", c->api,
		         s.idle           ? "nothing came for a while"
		         : rc == CURLE_OK ? "the API closed it"
		                          : (cerr[0] ? cerr : curl_easy_strerror(rc)));
		goto out;
	}
	if (s.other.len > 0)
		j = json_loadb(s.other.data, s.other.len, 0, NULL);
	if (s.status < 200 || s.status > 299) {
		err = reply_error(c, s.status, j, errbuf, errlen);
		goto out;
	}
	err = VIV_ERR_UNSUPPORTED;
	viv_errf(errbuf, errlen,
	         "the server at %s answered GET %s with HTTP %ld but not with an event stream; "
	         "is that a Vivarium API of this version?",
	         c->api, path, s.status);
out:
	curl_easy_reset(c->curl);
	json_decref(j);
	curl_slist_free_all(headers);
	viv_buf_free(&s.other);
	viv_buf_free(&url);
	viv_buf_free(&idh);
	return err;
}
