/* Outbound URLs and the patterns that allow them (a manifest's
 * "outbound"), split by libcurl's URL parser: the manifest checks patterns
 * with it, and runners can compare a guest's URL with the same parts. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "viv.h"

/* libcurl does not take '*' in a host name: a pattern's "*." is swapped
 * for this label while it is parsed. */
#define WILD_LABEL "x-vivarium-wild."

void viv_origin_clear(struct viv_origin *o)
{
	if (!o)
		return;
	free(o->path);
	memset(o, 0, sizeof(*o));
}

/* Host names as patterns have them: letters, digits, '-' and '.', not
 * starting or ending with '.' or '-', no empty label. */
static bool host_valid(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n >= VIV_ORIGIN_HOST_MAX || h[0] == '.' || h[0] == '-' || h[n - 1] == '.' ||
	    h[n - 1] == '-' || strstr(h, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* The part of h, or NULL when it has none (or on allocation failure, which
 * the caller cannot tell from none: it refuses the URL either way). */
static char *part(CURLU *h, CURLUPart what, unsigned flags)
{
	char *v = NULL;

	if (curl_url_get(h, what, &v, flags) != CURLUE_OK)
		return NULL;
	return v;
}

enum viv_err viv_origin_parse(const char *text, bool pattern, struct viv_origin *out)
{
	const char *star = NULL, *rest;
	char *swapped = NULL, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *user = NULL, *query = NULL, *fragment = NULL;
	enum viv_err err = VIV_ERR_INVALID;
	uint64_t port_n = 0;
	CURLU *h = NULL;
	size_t i;

	memset(out, 0, sizeof(out[0]));
	if (!text)
		return VIV_ERR_INVALID;
	/* The scheme as it must be written, and nothing libcurl would guess
	 * or mend: no blanks, controls or bytes past ASCII. */
	if (strncmp(text, "https://", 8) == 0)
		rest = text + 8;
	else if (strncmp(text, "http://", 7) == 0)
		rest = text + 7;
	else
		return VIV_ERR_INVALID;
	for (i = 0; text[i]; i++) {
		if ((unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f)
			return VIV_ERR_INVALID;
	}
	if (pattern && strncmp(rest, "*.", 2) == 0) {
		star = rest;
		if (asprintf(&swapped, "%.*s%s%s", (int)(rest - text), text, WILD_LABEL, rest + 2) <
		    0)
			return VIV_ERR_NOMEM;
	}
	h = curl_url();
	if (!h) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	if (curl_url_set(h, CURLUPART_URL, swapped ? swapped : text, 0) != CURLUE_OK)
		goto out;
	scheme = part(h, CURLUPART_SCHEME, 0);
	host = part(h, CURLUPART_HOST, 0);
	port = part(h, CURLUPART_PORT, 0);
	path = part(h, CURLUPART_PATH, 0);
	user = part(h, CURLUPART_USER, 0);
	query = part(h, CURLUPART_QUERY, 0);
	fragment = part(h, CURLUPART_FRAGMENT, 0);
	if (!scheme || !host || !path)
		goto out;
	/* A pattern names where requests may go, nothing more: no user, no
	 * query, no fragment. */
	if (pattern && (user || query || fragment))
		goto out;
	if (star) {
		if (strncasecmp(host, WILD_LABEL, strlen(WILD_LABEL)) != 0)
			goto out;
		memmove(host, host + strlen(WILD_LABEL), strlen(host + strlen(WILD_LABEL)) + 1);
	}
	if ((pattern && !host_valid(host)) || strlen(host) >= VIV_ORIGIN_HOST_MAX)
		goto out;
	if (port && !viv_parse_u64(port, NULL, 65535, &port_n))
		goto out;
	if (port && port_n == 0)
		goto out;
	if (strlen(scheme) >= sizeof(out->scheme))
		goto out;
	for (i = 0; scheme[i]; i++)
		out->scheme[i] =
		        (char)(scheme[i] >= 'A' && scheme[i] <= 'Z' ? scheme[i] + 32 : scheme[i]);
	for (i = 0; host[i]; i++)
		out->host[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
	out->wildcard = star != NULL;
	out->port_given = port != NULL;
	out->port = port ? (unsigned)port_n : strcmp(out->scheme, "https") == 0 ? 443 : 80;
	out->path = strdup(path);
	if (!out->path) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = VIV_OK;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(h);
	free(swapped);
	if (err)
		viv_origin_clear(out);
	return err;
}

bool viv_origin_allows(const struct viv_origin *pattern, const struct viv_origin *url)
{
	size_t n;

	if (strcmp(pattern->scheme, url->scheme) != 0 || pattern->port != url->port)
		return false;
	if (pattern->wildcard) {
		/* "*.example.org": any name below example.org, not itself. */
		size_t pl = strlen(pattern->host), hl = strlen(url->host);

		if (hl <= pl + 1 || url->host[hl - pl - 1] != '.' ||
		    strcmp(url->host + hl - pl, pattern->host) != 0)
			return false;
	} else if (strcmp(pattern->host, url->host) != 0) {
		return false;
	}
	/* A pattern with a path allows that path and what is below it. */
	if (strcmp(pattern->path, "/") == 0)
		return true;
	n = strlen(pattern->path);
	return strncmp(url->path, pattern->path, n) == 0 &&
	       (pattern->path[n - 1] == '/' || url->path[n] == '\0' || url->path[n] == '/');
}
