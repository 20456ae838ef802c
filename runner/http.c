/* HTTP as the runner holds guests to it: tokens, header values, the headers
 * only the server may set, absolute http(s) URLs, and the messages the host
 * keeps for guests. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* RFC 9110's tchar, without the locale isalnum() consults and without a
 * strchr() per byte: every response header name goes through here. */
static bool tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '.':
	case '^':
	case '_':
	case '`':
	case '|':
	case '~':
		return true;
	}
	return false;
}

bool run_http_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!tchar((unsigned char)s[i]))
			return false;
	}
	return true;
}

bool run_http_value(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

bool run_header_is_hop_by_hop(const char *name, size_t n)
{
	static const char *const drop[] = {
	        "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
	        "te",         "trailer",    "proxy-connection",  "status"};
	size_t i;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		if (strlen(drop[i]) == n && strncasecmp(drop[i], name, n) == 0)
			return true;
	}
	return false;
}

bool run_http_url_valid(const char *url)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	bool ok;

	if (!h)
		return false;
	/* Every part the outbound allow list compares must be there. */
	ok = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
	     (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(h);
	return ok;
}

/* ---- Messages ------------------------------------------------------------------------ */

/* A NUL-terminated copy of exactly n bytes, NULs among them included (the
 * lengths that go with the copy are n), or NULL when memory ran out. */
static char *dup_bytes(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

bool run_msg_add_header(struct run_msg *m, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
	struct run_header *h;
	char *n, *v;

	if (m->n_hdrs == m->alloc_hdrs) {
		size_t na = m->alloc_hdrs ? m->alloc_hdrs * 2 : 8;
		struct run_header *nh = realloc(m->hdrs, na * sizeof(*nh));
		if (!nh)
			return false;
		m->hdrs = nh;
		m->alloc_hdrs = na;
	}
	n = dup_bytes(name, nlen);
	v = dup_bytes(value, vlen);
	if (!n || !v) {
		free(n);
		free(v);
		return false;
	}
	h = &m->hdrs[m->n_hdrs++];
	h->name = n;
	h->name_len = nlen;
	h->value = v;
	h->value_len = vlen;
	return true;
}

void run_msg_remove_header(struct run_msg *m, const char *name, size_t nlen)
{
	size_t i = 0;

	while (i < m->n_hdrs) {
		struct run_header *h = &m->hdrs[i];

		if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0) {
			free((char *)h->name);
			free((char *)h->value);
			memmove(h, h + 1, (m->n_hdrs - i - 1) * sizeof(*h));
			m->n_hdrs--;
		} else {
			i++;
		}
	}
}

void run_msg_clear(struct run_msg *m)
{
	size_t i;

	for (i = 0; i < m->n_hdrs; i++) {
		free((char *)m->hdrs[i].name);
		free((char *)m->hdrs[i].value);
	}
	free(m->hdrs);
	free(m->method);
	free(m->url);
	viv_buf_free(&m->body);
	memset(m, 0, sizeof(*m));
}
