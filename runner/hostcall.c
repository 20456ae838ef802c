/* The host calls of the Terrarium ABI on requests and responses
 * (GUEST-ABI.md section 1): the guest's allocator, methods, targets,
 * headers and bodies of the incoming request, of requests the guest
 * creates, of the outgoing response and of responses that came back.
 *
 * Guest memory is hostile: every (pointer, length) is checked against the
 * memory's current size before use, and results are written into memory the
 * guest's own allocator hands out (hostcall.h). A bad handle or pointer makes
 * the call fail (invalid, -1, false, or an empty result) and never touches
 * host memory. As in wasi.c, the import instance argument wasm2c passes is
 * ignored for run_current. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hostcall.h"

/* A copy of the len bytes at ptr of guest memory, and a NUL, or NULL when
 * they are out of bounds, over max, or memory ran out. All len bytes: the
 * caller checks them, NULs included. */
static char *copy_in(struct run_instance *in, uint32_t ptr, uint32_t len, uint32_t max)
{
	const uint8_t *p = run_hc_arg(in, ptr, len, max);
	char *s;

	if (!p)
		return NULL;
	s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

ENV_CALL(void, hostcall_init_mm, uint32_t malloc_idx, uint32_t free_idx)
{
	HC_BEGIN();
	hc->mm_malloc = malloc_idx;
	hc->mm_free = free_idx;
	hc->mm_set = true;
}

/* ---- Headers ---------------------------------------------------------------------------- */

/* The headers of a message: the incoming request's come from the request
 * itself, every other handle's from its own list. */
static void headers_of(struct run_instance *in, struct run_hmsg *m, bool incoming,
                       const struct run_header **hs, size_t *n)
{
	if (incoming) {
		*hs = in->req->headers;
		*n = in->req->n_headers;
	} else {
		*hs = m->m.hdrs;
		*n = m->m.n_hdrs;
	}
}

/* Every distinct header name, lower-cased. */
static void get_header_names(struct run_instance *in, struct run_hc *hc, uint32_t slices_p,
                             uint32_t len_p, struct run_hmsg *m, bool incoming)
{
	const struct run_header *hs;
	const char *names[HC_HEADERS_MAX * 2];
	size_t lens[HC_HEADERS_MAX * 2], n, i, j, k = 0;

	headers_of(in, m, incoming, &hs, &n);
	run_hc_hold_clear(in);
	for (i = 0; i < n && k < HC_HEADERS_MAX * 2; i++) {
		bool seen = false;

		for (j = 0; j < k && !seen; j++)
			seen = lens[j] == hs[i].name_len &&
			       strncasecmp(names[j], hs[i].name, lens[j]) == 0;
		if (seen)
			continue;
		if (!run_hc_hold(in, hs[i].name, hs[i].name_len)) {
			run_hc_result_none(in, slices_p, len_p);
			return;
		}
		/* The copy is lowered, so the host's own headers stay as they
		 * came. */
		for (j = hc->scratch.len - hs[i].name_len; j < hc->scratch.len; j++)
			hc->scratch.data[j] = (char)tolower((unsigned char)hc->scratch.data[j]);
		names[k] = hs[i].name;
		lens[k] = hs[i].name_len;
		k++;
	}
	run_hc_give_slices(in, slices_p, len_p, lens, k);
}

/* Every value of one header (case-insensitive name). */
static void get_header_values(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
                              struct run_hmsg *m, bool incoming, uint32_t name, uint32_t name_len)
{
	const struct run_header *hs;
	const char *strs[HC_HEADERS_MAX * 2];
	size_t lens[HC_HEADERS_MAX * 2], n, i, k = 0;
	const uint8_t *want = run_hc_arg(in, name, name_len, HC_NAME_MAX);

	if (!want) {
		run_hc_result_slices(in, slices_p, len_p, NULL, NULL, 0);
		return;
	}
	headers_of(in, m, incoming, &hs, &n);
	for (i = 0; i < n && k < HC_HEADERS_MAX * 2; i++) {
		if (hs[i].name_len != name_len ||
		    strncasecmp(hs[i].name, (const char *)want, name_len) != 0)
			continue;
		strs[k] = hs[i].value;
		lens[k] = hs[i].value_len;
		k++;
	}
	run_hc_result_slices(in, slices_p, len_p, strs, lens, k);
}

/* The names, or the values of the header called (name, name_len), of
 * message m (NULL: a bad handle, which gets an empty result). */
static void get_headers(struct run_instance *in, struct run_hc *hc, struct run_hmsg *m,
                        bool incoming, bool names, uint32_t slices_p, uint32_t len_p, uint32_t name,
                        uint32_t name_len)
{
	if (!m)
		run_hc_result_slices(in, slices_p, len_p, NULL, NULL, 0);
	else if (names)
		get_header_names(in, hc, slices_p, len_p, m, incoming);
	else
		get_header_values(in, slices_p, len_p, m, incoming, name, name_len);
}

ENV_CALL(void, hostcall_req_get_headers, uint32_t slices_p, uint32_t len_p, uint32_t req)
{
	HC_BEGIN_OUT(slices_p, len_p);
	get_headers(in, hc, run_handles_req(&hc->h, req), req == 0, true, slices_p, len_p, 0, 0);
}

ENV_CALL(void, hostcall_req_get_header, uint32_t slices_p, uint32_t len_p, uint32_t req,
         uint32_t name, uint32_t name_len)
{
	HC_BEGIN_OUT(slices_p, len_p);
	get_headers(in, hc, run_handles_req(&hc->h, req), req == 0, false, slices_p, len_p, name,
	            name_len);
}

ENV_CALL(void, hostcall_resp_get_headers, uint32_t slices_p, uint32_t len_p, uint32_t resp)
{
	HC_BEGIN_OUT(slices_p, len_p);
	get_headers(in, hc, run_handles_resp(&hc->h, resp), false, true, slices_p, len_p, 0, 0);
}

ENV_CALL(void, hostcall_resp_get_header, uint32_t slices_p, uint32_t len_p, uint32_t resp,
         uint32_t name, uint32_t name_len)
{
	HC_BEGIN_OUT(slices_p, len_p);
	get_headers(in, hc, run_handles_resp(&hc->h, resp), false, false, slices_p, len_p, name,
	            name_len);
}

/* Replaces header name of m with the n values in the guest's slices. */
static uint32_t set_header(struct run_instance *in, struct run_hmsg *m, uint32_t name,
                           uint32_t name_len, uint32_t slices, uint32_t n)
{
	const uint8_t *nm = run_hc_arg(in, name, name_len, HC_NAME_MAX);
	const uint8_t *vec = n <= HC_HEADERS_MAX ? run_mem(in, slices, (uint64_t)n * 8) : NULL;
	uint32_t i;

	if (!m || !nm || !vec || !run_http_token((const char *)nm, name_len))
		return HC_INVALID;
	/* Check every value before changing anything. */
	for (i = 0; i < n; i++) {
		uint32_t p, l;
		const uint8_t *v;

		memcpy(&p, vec + 8 * i, 4);
		memcpy(&l, vec + 8 * i + 4, 4);
		v = run_hc_arg(in, p, l, HC_VALUE_MAX);
		if (!v || !run_http_value((const char *)v, l))
			return HC_INVALID;
	}
	if (m->m.n_hdrs + n > HC_HEADERS_MAX)
		return HC_INVALID;
	run_msg_remove_header(&m->m, (const char *)nm, name_len);
	for (i = 0; i < n; i++) {
		uint32_t p, l;

		memcpy(&p, vec + 8 * i, 4);
		memcpy(&l, vec + 8 * i + 4, 4);
		if (!run_msg_add_header(&m->m, (const char *)nm, name_len,
		                        (const char *)run_mem(in, p, l), l))
			return HC_INVALID;
	}
	return HC_OK;
}

static uint32_t set_body(struct run_instance *in, struct run_hmsg *m, uint32_t ptr, uint32_t len,
                         size_t cap)
{
	const uint8_t *p = run_mem(in, ptr, len);

	if (!m || !p || len > cap)
		return HC_INVALID;
	viv_buf_free(&m->m.body);
	viv_buf_init(&m->m.body, cap);
	if (viv_buf_append(&m->m.body, p, len))
		return HC_INVALID;
	return HC_OK;
}

/* ---- Requests ----------------------------------------------------------------------- */

enum req_part { PART_METHOD, PART_TARGET, PART_BODY };

/* Copies one part of a request to the guest: the incoming request's from the
 * request itself, a created one's from its handle; empty for a bad handle. */
static void get_req_part(struct run_instance *in, struct run_hc *hc, uint32_t ptr_p, uint32_t len_p,
                         uint32_t req, enum req_part part)
{
	const struct run_request *r = in->req;
	struct run_hmsg *m = run_handles_req(&hc->h, req);
	const char *p = "";
	size_t n = 0;

	if (req == 0) {
		p = part == PART_METHOD ? r->method : part == PART_TARGET ? r->target : r->body;
		n = part == PART_METHOD   ? r->method_len
		    : part == PART_TARGET ? r->target_len
		                          : r->body_len;
	} else if (m) {
		p = part == PART_METHOD   ? m->m.method
		    : part == PART_TARGET ? m->m.url
		                          : m->m.body.data;
		n = part == PART_BODY ? m->m.body.len : strlen(p);
	}
	run_hc_result_bytes(in, ptr_p, len_p, p, n);
}

ENV_CALL(void, hostcall_req_get_method, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	HC_BEGIN_OUT(ptr_p, len_p);
	get_req_part(in, hc, ptr_p, len_p, req, PART_METHOD);
}

ENV_CALL(void, hostcall_req_get_path, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	HC_BEGIN_OUT(ptr_p, len_p);
	get_req_part(in, hc, ptr_p, len_p, req, PART_TARGET);
}

ENV_CALL(void, hostcall_req_get_body, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	HC_BEGIN_OUT(ptr_p, len_p);
	get_req_part(in, hc, ptr_p, len_p, req, PART_BODY);
}

ENV_CALL(uint32_t, hostcall_req_create, uint32_t method, uint32_t mlen, uint32_t url, uint32_t ulen)
{
	char *m, *u;
	int h;

	HC_BEGIN(HANDLE_ERROR);
	h = run_handles_new_req(&hc->h);
	if (h < 0)
		return HANDLE_ERROR;
	m = copy_in(in, method, mlen, 32);
	u = copy_in(in, url, ulen, HC_URL_MAX);
	/* A URL that does not parse, or is not http or https, fails here, as
	 * Terrarium's did; one the app may not reach fails when sent. */
	if (!m || !u || !run_http_token(m, mlen) || strlen(u) != ulen || !run_http_url_valid(u)) {
		free(m);
		free(u);
		hc->h.reqs[h].used = false;
		return HANDLE_ERROR;
	}
	hc->h.reqs[h].m.method = m;
	hc->h.reqs[h].m.url = u;
	viv_buf_init(&hc->h.reqs[h].m.body, HC_BODY_MAX);
	return (uint32_t)h;
}

ENV_CALL(uint32_t, hostcall_req_set_header, uint32_t req, uint32_t name, uint32_t nlen,
         uint32_t slices, uint32_t n)
{
	HC_BEGIN(HC_INVALID);
	/* The incoming request is read-only. */
	if (req == 0)
		return HC_INVALID;
	return set_header(in, run_handles_req(&hc->h, req), name, nlen, slices, n);
}

ENV_CALL(uint32_t, hostcall_req_set_body, uint32_t req, uint32_t ptr, uint32_t len)
{
	HC_BEGIN(HC_INVALID);
	if (req == 0)
		return HC_INVALID;
	return set_body(in, run_handles_req(&hc->h, req), ptr, len, HC_BODY_MAX);
}

/* ---- Responses ----------------------------------------------------------------------- */

ENV_CALL(void, hostcall_resp_get_body, uint32_t ptr_p, uint32_t len_p, uint32_t resp)
{
	struct run_hmsg *m;

	HC_BEGIN_OUT(ptr_p, len_p);
	m = run_handles_resp(&hc->h, resp);
	if (m)
		run_hc_result_bytes(in, ptr_p, len_p, m->m.body.data, m->m.body.len);
	else
		run_hc_result_bytes(in, ptr_p, len_p, "", 0);
}

ENV_CALL(uint32_t, hostcall_resp_get_response_code, uint32_t resp)
{
	struct run_hmsg *m;

	HC_BEGIN(0);
	m = run_handles_resp(&hc->h, resp);
	return m ? m->m.status : 0;
}

ENV_CALL(uint32_t, hostcall_resp_set_header, uint32_t resp, uint32_t name, uint32_t nlen,
         uint32_t slices, uint32_t n)
{
	const uint8_t *nm;

	HC_BEGIN(HC_INVALID);
	/* Only the outgoing response is written; a received one is read-only. */
	if (resp != 0)
		return HC_INVALID;
	/* Framing and connection headers belong to the server. */
	nm = run_hc_arg(in, name, nlen, HC_NAME_MAX);
	if (nm && run_header_is_hop_by_hop((const char *)nm, nlen))
		return HC_INVALID;
	return set_header(in, run_handles_resp(&hc->h, resp), name, nlen, slices, n);
}

ENV_CALL(uint32_t, hostcall_resp_set_body, uint32_t resp, uint32_t ptr, uint32_t len)
{
	HC_BEGIN(HC_INVALID);
	if (resp != 0)
		return HC_INVALID;
	return set_body(in, run_handles_resp(&hc->h, resp), ptr, len, in->pool->cfg.response_max);
}

ENV_CALL(uint32_t, hostcall_resp_set_response_code, uint32_t resp, uint32_t code)
{
	struct run_hmsg *m;

	HC_BEGIN(HC_INVALID);
	m = resp == 0 ? run_handles_resp(&hc->h, resp) : NULL;
	if (!m || code < 100 || code > 599)
		return HC_INVALID;
	m->m.status = code;
	return HC_OK;
}
