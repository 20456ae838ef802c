/* An app's KV data through the API: listing by prefix, and one key's value
 * read, written and removed. Keys are bytes: percent-encoded in paths and
 * query arguments, and in JSON "key" when they are UTF-8 text, else
 * "key_base64". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding of n bytes into out (room for
 * 4 * ((n + 2) / 3) + 1 bytes). */
static void b64_encode(const unsigned char *p, size_t n, char *out)
{
	size_t i, k = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[k++] = b64_digits[v >> 18];
		out[k++] = b64_digits[(v >> 12) & 63];
		out[k++] = b64_digits[(v >> 6) & 63];
		out[k++] = b64_digits[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		out[k++] = b64_digits[v >> 18];
		out[k++] = b64_digits[(v >> 12) & 63];
		out[k++] = i + 1 < n ? b64_digits[(v >> 6) & 63] : '=';
		out[k++] = '=';
	}
	out[k] = '\0';
}

/* Decodes standard base64 (padding optional) into out (room for cap
 * bytes): the length, or -1 when s is not base64 or does not fit. */
static long b64_decode(const char *s, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	size_t n = 0, bits = 0, len = strlen(s);

	while (len > 0 && s[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		const char *d = s[i] ? strchr(b64_digits, s[i]) : NULL;

		if (!d)
			return -1;
		acc = acc << 6 | (uint32_t)(d - b64_digits);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return bits >= 6 ? -1 : (long)n;
}

/* Sets "key" or "key_base64" of obj (prefix "key" or "next_after") to the
 * n bytes at key (NUL-terminated after them). */
static int set_key(json_t *obj, const char *name, const char *key, size_t n)
{
	char field[32], b64[(STORE_KV_KEY_MAX + 2) / 3 * 4 + 1];

	if (api_utf8_valid(key, n))
		return json_object_set_new(obj, name, json_stringn(key, n));
	b64_encode((const unsigned char *)key, n, b64);
	snprintf(field, sizeof(field), "%s_base64", name);
	return json_object_set_new(obj, field, json_string(b64));
}

/* The app's id, or 0 after queuing the 404 (or a 500) with *ret set. */
static int64_t app_id(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                      enum MHD_Result *ret)
{
	struct store_app *app = NULL;
	enum viv_err err;
	int64_t id;

	err = store_app_get(s->st, r->app, &app);
	if (err == VIV_ERR_NOT_FOUND) {
		*ret = api_reply_no_such_app(c, r);
		return 0;
	}
	if (err) {
		*ret = api_reply_store_error(c, r, err, "reading the app");
		return 0;
	}
	id = app->id;
	store_app_free(app);
	return id;
}

/* A key query argument (percent-encoded bytes, or base64 in NAME_base64):
 * its length in buf, 0 when absent; -1 after queuing a 400 with *ret set. */
static long key_arg(struct MHD_Connection *c, struct api_req *r, const char *name, char *buf,
                    enum MHD_Result *ret)
{
	char b64name[32], b64[(STORE_KV_KEY_MAX + 2) / 3 * 4 + 8];
	long n = api_query_arg(c, name, buf, STORE_KV_KEY_MAX), m;

	if (n == -1) {
		snprintf(b64name, sizeof(b64name), "%s_base64", name);
		m = api_query_arg(c, b64name, b64, sizeof(b64) - 1);
		if (m == -1)
			return 0;
		n = m < 0 ? -2 : b64_decode(b64, (unsigned char *)buf, STORE_KV_KEY_MAX);
	}
	if (n >= 0)
		return n;
	*ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
	                       "\"%s\" is at most %d bytes, percent-encoded (or base64 in "
	                       "\"%s_base64\").",
	                       name, STORE_KV_KEY_MAX, name);
	return -1;
}

enum MHD_Result api_get_kv_list(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	char prefix[STORE_KV_KEY_MAX + 1], after[STORE_KV_KEY_MAX + 1];
	struct store_kv_key *keys = NULL;
	enum MHD_Result ret = MHD_YES;
	int64_t id, limit = API_KV_DEFAULT;
	long plen, alen;
	json_t *list, *obj = NULL;
	size_t n = 0, shown;
	enum viv_err err;

	plen = key_arg(c, r, "prefix", prefix, &ret);
	alen = plen < 0 ? -1 : key_arg(c, r, "after", after, &ret);
	if (alen < 0 || !api_query_int(c, r, "limit", 1, API_KV_MAX, &limit, &ret))
		return ret;
	id = app_id(s, c, r, &ret);
	if (!id)
		return ret;
	/* One more than asked says whether there is a next page. */
	err = store_kv_list(s->st, id, prefix, (size_t)plen, after, (size_t)alen, (size_t)limit + 1,
	                    &keys, &n);
	if (err)
		return api_reply_store_error(c, r, err, "listing the keys");
	shown = n > (size_t)limit ? (size_t)limit : n;
	list = json_array();
	for (size_t i = 0; list && i < shown; i++) {
		json_t *k = json_pack("{s:I}", "size", (json_int_t)keys[i].size);

		if (!k || set_key(k, "key", keys[i].key, keys[i].len) != 0 ||
		    json_array_append_new(list, k) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	obj = list ? json_pack("{s:o,s:n}", "keys", list, "next_after") : NULL;
	if (obj && n > shown &&
	    set_key(obj, "next_after", keys[shown - 1].key, keys[shown - 1].len) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	store_kv_list_free(keys, n);
	return api_reply_json(c, r, MHD_HTTP_OK, obj);
}

/* Checks the {key} of the path: false after queuing a 400 with *ret set. */
static bool key_ok(struct MHD_Connection *c, struct api_req *r, enum MHD_Result *ret)
{
	if (!r->param_bad && r->param_len >= 1 && r->param_len <= STORE_KV_KEY_MAX)
		return true;
	*ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
	                       "A KV key is 1 to %d bytes, percent-encoded in the path.",
	                       STORE_KV_KEY_MAX);
	return false;
}

static enum MHD_Result no_such_key(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
	                       "The app \"%s\" has no such key; GET /v1/apps/%s/kv lists them.",
	                       r->app, r->app);
}

enum MHD_Result api_get_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	enum MHD_Result ret = MHD_YES;
	char *val = NULL;
	size_t len = 0;
	enum viv_err err;
	int64_t id;

	if (!key_ok(c, r, &ret))
		return ret;
	id = app_id(s, c, r, &ret);
	if (!id)
		return ret;
	err = store_kv_get(s->st, id, r->param, r->param_len, &val, &len);
	if (err == VIV_ERR_NOT_FOUND)
		return no_such_key(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the key");
	ret = api_reply_bytes(c, r, MHD_HTTP_OK, "application/octet-stream", val, len);
	free(val);
	return ret;
}

enum MHD_Result api_put_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	enum MHD_Result ret = MHD_YES;
	json_t *obj;
	bool was_new = false;
	enum viv_err err;
	int64_t id;

	if (!key_ok(c, r, &ret))
		return ret;
	id = app_id(s, c, r, &ret);
	if (!id)
		return ret;
	err = store_kv_put(s->st, id, r->param, r->param_len, r->body.data ? r->body.data : "",
	                   r->body.len, &was_new);
	if (err)
		return api_reply_store_error(c, r, err, "writing the key");
	if (!was_new)
		return api_reply_empty(c, r);
	obj = json_pack("{s:I}", "size", (json_int_t)r->body.len);
	if (obj && set_key(obj, "key", r->param, r->param_len) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	return api_reply_json(c, r, MHD_HTTP_CREATED, obj);
}

enum MHD_Result api_delete_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	enum MHD_Result ret = MHD_YES;
	bool existed = false;
	enum viv_err err;
	int64_t id;

	if (!key_ok(c, r, &ret))
		return ret;
	id = app_id(s, c, r, &ret);
	if (!id)
		return ret;
	err = store_kv_remove(s->st, id, r->param, r->param_len, &existed);
	if (err)
		return api_reply_store_error(c, r, err, "removing the key");
	if (!existed)
		return no_such_key(c, r);
	return api_reply_empty(c, r);
}
