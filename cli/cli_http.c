/* The CLI's HTTP calls to the API with libcurl: bearer token, capped reply,
 * and one clear sentence for every way a call can go wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The reply being read, capped by its buffer. */
struct cli_reply {
	struct viv_buf body;
	bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct cli_reply *rep = ctx;
	size_t bytes = size * n;

	if (viv_buf_append(&rep->body, p, bytes)) {
		rep->too_big = true;
		return 0; /* anything short aborts the transfer */
	}
	return bytes;
}

/* The "error" sentence of a JSON reply, or NULL. Borrowed from j. */
static const char *api_error_of(json_t *j)
{
	json_t *e = j ? json_object_get(j, "error") : NULL;

	return json_is_string(e) ? json_string_value(e) : NULL;
}

/* Fills errbuf for a reply whose status was not the expected one. */
static enum viv_err reply_error(struct cli *c, long status, json_t *j, char *errbuf,
				size_t errlen)
{
	const char *msg = api_error_of(j);

	if (status == 401) {
		if (!c->token)
			viv_errf(errbuf, errlen,
				 "the API needs a token and none was given: pass --token TOKEN, "
				 "set VIV_TOKEN, or run viv where %s is readable (the server "
				 "said: %s)",
				 CLI_TOKEN_FILE, msg ? msg : "401 Unauthorized");
		else
			viv_errf(errbuf, errlen,
				 "the API at %s refused the token from %s; pass the admin token "
				 "with --token TOKEN or VIV_TOKEN (the server said: %s)",
				 c->api, c->token_from, msg ? msg : "401 Unauthorized");
		return VIV_ERR_AUTH;
	}
	if (!msg) {
		viv_errf(errbuf, errlen,
			 "the server at %s answered HTTP %ld without a Vivarium error message; "
			 "is --api pointing at the Vivarium API?",
			 c->api, status);
		return VIV_ERR_INVALID;
	}
	viv_errf(errbuf, errlen, "%s", msg);
	if (status == 404)
		return VIV_ERR_NOT_FOUND;
	if (status == 413)
		return VIV_ERR_TOO_BIG;
	return VIV_ERR_INVALID;
}

enum viv_err cli_call(struct cli *c, const char *method, const char *path, const void *body,
		      size_t len, long expect, json_t **out, char *errbuf, size_t errlen)
{
	struct cli_reply rep = {.too_big = false};
	struct curl_slist *headers = NULL, *h;
	struct viv_buf url, auth;
	char cerr[CURL_ERROR_SIZE] = "";
	json_t *j = NULL;
	long status = 0;
	CURLcode rc;
	enum viv_err err = VIV_OK;

	*out = NULL;
	viv_buf_init(&rep.body, CLI_RESP_MAX);
	viv_buf_init(&url, 0);
	viv_buf_init(&auth, 0);
	err = viv_buf_printf(&url, "%s%s", c->api, path);
	if (!err && c->token)
		err = viv_buf_printf(&auth, "Authorization: Bearer %s", c->token);
	if (err) {
		viv_errf(errbuf, errlen, "out of memory");
		goto out;
	}
	h = curl_slist_append(headers, "Accept: application/json");
	if (h)
		headers = h;
	if (h && c->token) {
		h = curl_slist_append(headers, auth.data);
		if (h)
			headers = h;
	}
	if (h && body) {
		h = curl_slist_append(headers, "Content-Type: application/octet-stream");
		if (h)
			headers = h;
	}
	if (!h) {
		err = VIV_ERR_NOMEM;
		viv_errf(errbuf, errlen, "out of memory");
		goto out;
	}

	curl_easy_setopt(c->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "viv/" VIV_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	/* Uploads may be large and slow; replies to reads are quick. */
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, body ? 600L : 60L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &rep);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);

	rc = curl_easy_perform(c->curl);
	if (rc == CURLE_WRITE_ERROR && rep.too_big) {
		err = VIV_ERR_TOO_BIG;
		viv_errf(errbuf, errlen,
			 "the reply from %s was larger than %u MiB; is --api pointing at the "
			 "Vivarium API?",
			 c->api, CLI_RESP_MAX >> 20);
		goto out;
	}
	if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
		err = VIV_ERR_INVALID;
		viv_errf(errbuf, errlen, "the API address %s is not a valid http:// URL (%s)",
			 c->api, cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	if (rc != CURLE_OK) {
		err = VIV_ERR_IO;
		viv_errf(errbuf, errlen, "cannot reach the Vivarium API at %s: %s; is vivd running?",
			 c->api, cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (rep.body.len > 0)
		j = json_loadb(rep.body.data, rep.body.len, 0, NULL);
	if (status != expect) {
		err = reply_error(c, status, j, errbuf, errlen);
		goto out;
	}
	if (!j) {
		err = VIV_ERR_INVALID;
		viv_errf(errbuf, errlen,
			 "the server at %s answered HTTP %ld with something that is not JSON; is "
			 "--api pointing at the Vivarium API?",
			 c->api, status);
		goto out;
	}
	*out = j;
	j = NULL;
out:
	/* The handle must not keep pointers to this call's header list and
	 * error buffer. */
	curl_easy_reset(c->curl);
	json_decref(j);
	curl_slist_free_all(headers);
	viv_buf_free(&rep.body);
	viv_buf_free(&url);
	viv_buf_free(&auth);
	return err;
}
