/* The Terrarium host-call ABI (GUEST-ABI.md section 1): request and response
 * handles, headers and bodies, outbound requests and their pending handles,
 * KV, time, randomness, DNS lookups, logs, panics and configuration.
 *
 * Guest memory is hostile: every (pointer, length) is checked against the
 * memory's current size before use, and results are written into memory the
 * guest's own allocator hands out. A bad handle or pointer makes the call
 * fail (invalid, -1, false, or an empty result) and never touches host
 * memory.
 *
 * The guest's allocator is guest code running in the middle of a host call:
 * it may trap (which longjmps out of the host call), grow its memory, or
 * call the host again. So a result is copied into the instance's scratch
 * buffer before the allocator first runs and placed from there; the host
 * holds no other pointer, lock or allocation across the call, and re-reads
 * guest memory only through run_mem() afterwards. Host calls made from the
 * allocator are refused (run_hc_enter()), so none can replace the scratch
 * buffer or the data it was copied from. As in wasi.c, the import instance
 * argument wasm2c passes is ignored for run_current. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner_int.h"
#include "store.h"

enum { HC_OK = 0, HC_INVALID = 1 };
#define HANDLE_ERROR ((uint32_t)-1)
#define HANDLE_NOT_READY ((uint32_t)-2)

/* Caps on what a guest hands the host in one call. */
#define HC_NAME_MAX 1024
#define HC_VALUE_MAX (64u << 10)
#define HC_URL_MAX (8u << 10)
#define HC_HEADERS_MAX 100
#define HC_BODY_MAX (16u << 20)

/* ---- State ------------------------------------------------------------------------ */

void run_hmsg_clear(struct run_hmsg *m)
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

bool run_hmsg_add_header(struct run_hmsg *m, const char *name, size_t nlen, const char *value,
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

static void remove_header(struct run_hmsg *m, const char *name, size_t nlen)
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

/* The host-call state, made on first use; the outgoing response starts as
 * 200 with no headers and an empty body. */
static struct run_hc *hc_of(struct run_instance *in)
{
	struct run_hc *hc = in->hc;

	if (hc)
		return hc;
	hc = calloc(1, sizeof(*hc));
	if (!hc) {
		run_log_add(in, "trap", "the host is out of memory", 25);
		run_stop_guest(in, RUN_STOP_HOST, 0);
	}
	hc->reqs[0].used = true;
	hc->resps[0].used = true;
	hc->resps[0].status = 200;
	viv_buf_init(&hc->resps[0].body, in->pool->cfg.response_max);
	in->hc = hc;
	return hc;
}

void run_hc_free(struct run_instance *in)
{
	struct run_hc *hc = in->hc;
	int i;

	if (!hc)
		return;
	for (i = 0; i < RUN_HC_HANDLES; i++) {
		if (hc->pend[i].used && !hc->pend[i].done)
			run_outbound_cancel(in, i);
		run_hmsg_clear(&hc->reqs[i]);
		run_hmsg_clear(&hc->resps[i]);
	}
	free(hc);
	in->hc = NULL;
}

void run_hc_response(struct run_instance *in)
{
	struct run_hc *hc = hc_of(in);
	struct run_hmsg *out = &hc->resps[0];
	size_t i, n = 0;

	free(in->resp.headers);
	memset(&in->resp, 0, sizeof(in->resp));
	in->resp.status = out->status;
	in->resp.headers = calloc(out->n_hdrs ? out->n_hdrs : 1, sizeof(*in->resp.headers));
	if (!in->resp.headers) {
		run_error_response(in, 500, "The host is out of memory.\n");
		return;
	}
	for (i = 0; i < out->n_hdrs; i++)
		in->resp.headers[n++] = out->hdrs[i];
	in->resp.n_headers = n;
	in->resp.body = out->body.data;
	in->resp.body_len = out->body.len;
}

/* ---- Entering host calls ------------------------------------------------------------ */

bool run_hc_enter(struct run_instance *in, const char *name)
{
	char msg[256];
	int n;

	run_hostcall_enter(in);
	if (!in->callbacks)
		return true;
	n = snprintf(msg, sizeof(msg),
		     "%s refused: the guest called it from its allocator while the host was "
		     "placing a result there (host calls do not nest)",
		     name);
	run_log_add(in, "system", msg, (size_t)n);
	return false;
}

/* ---- Guest memory and the guest's allocator -------------------------------------- */

/* Copies the len bytes at ptr of guest memory, and a NUL, into a new host
 * string, or NULL when they are out of bounds, over max, or memory ran out.
 * All len bytes: the caller checks them, NULs included. */
static char *copy_in(struct run_instance *in, uint32_t ptr, uint32_t len, size_t max)
{
	const uint8_t *p;

	if (len > max)
		return NULL;
	p = run_mem(in, ptr, len);
	return p ? dup_bytes(p, len) : NULL;
}

static uint32_t type_malloc;

/* Calls the guest's allocator. 0 when it has none or it failed. Host calls
 * the allocator makes are refused meanwhile; if it traps, the instance ends
 * and the count no longer matters. */
static uint32_t guest_malloc(struct run_instance *in, uint32_t size)
{
	struct run_hc *hc = hc_of(in);
	const struct viv_guest *g = in->m->g;
	wasm_rt_funcref_table_t *t;
	wasm_rt_funcref_t f;
	uint32_t p;

	if (hc->mm_set) {
		t = g->table ? g->table(in->wasm) : NULL;
		if (!type_malloc)
			type_malloc = wasm_rt_register_func_type(1, 1, WASM_RT_I32, WASM_RT_I32);
		if (!t || hc->mm_malloc >= t->size)
			return 0;
		f = t->data[hc->mm_malloc];
		if (!f.func || f.func_type != type_malloc)
			return 0;
		in->callbacks++;
		p = ((uint32_t (*)(void *, uint32_t))f.func)(f.module_instance, size);
		in->callbacks--;
		return p;
	}
	if (g->export_malloc) {
		in->callbacks++;
		p = g->export_malloc(in->wasm, size);
		in->callbacks--;
		return p;
	}
	if (!hc->mm_missing_logged) {
		static const char msg[] =
			"the guest never registered an allocator with hostcall_init_mm (and exports "
			"no default_malloc_impl), so host calls cannot return data to it";
		run_log_add(in, "trap", msg, sizeof(msg) - 1);
		hc->mm_missing_logged = true;
	}
	return 0;
}

static void put_u32(struct run_instance *in, uint32_t at, uint32_t v)
{
	uint8_t *p = run_mem(in, at, 4);

	if (p)
		memcpy(p, &v, 4);
}

/* ---- Results ------------------------------------------------------------------------- */

/* Empties the scratch buffer, keeping its storage for the next result. */
static void hold_clear(struct run_instance *in)
{
	in->scratch.len = 0;
}

/* Appends a copy of len bytes of data to the scratch buffer. */
static bool hold(struct run_instance *in, const void *data, size_t len)
{
	return viv_buf_append(&in->scratch, len ? data : "", len) == VIV_OK;
}

/* Allocates len + 1 bytes in the guest and copies there the len bytes held
 * at off in the scratch buffer, then a NUL; 0 when that fails. The guest's
 * memory is looked up after its allocator ran, which may have grown it. */
static uint32_t place(struct run_instance *in, size_t off, size_t len)
{
	uint32_t p;
	uint8_t *dst;

	if (len >= UINT32_MAX)
		return 0;
	p = guest_malloc(in, (uint32_t)len + 1);
	dst = p ? run_mem(in, p, (uint64_t)len + 1) : NULL;
	if (!dst)
		return 0;
	memcpy(dst, in->scratch.data + off, len);
	dst[len] = 0;
	return p;
}

bool run_hc_result_none(struct run_instance *in, uint32_t ptr_p, uint32_t len_p)
{
	put_u32(in, ptr_p, 0);
	put_u32(in, len_p, 0);
	return false;
}

/* Places the whole scratch buffer as one result. */
static bool give_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p)
{
	size_t len = in->scratch.len;
	uint32_t p;

	if (!run_mem(in, ptr_p, 4) || !run_mem(in, len_p, 4))
		return false;
	run_hc_result_none(in, ptr_p, len_p);
	p = place(in, 0, len);
	if (!p)
		return false;
	put_u32(in, ptr_p, p);
	put_u32(in, len_p, (uint32_t)len);
	return true;
}

/* Places the n strings held back to back in the scratch buffer, lens[i]
 * bytes each, as an array of GuestSlice {ptr, len}, each string in its own
 * allocation. */
static bool give_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
			const size_t *lens, size_t n)
{
	uint32_t arr, s;
	size_t i, off = 0;

	if (!run_mem(in, slices_p, 4) || !run_mem(in, len_p, 4))
		return false;
	run_hc_result_none(in, slices_p, len_p);
	if (n > UINT32_MAX / 8)
		return false;
	arr = guest_malloc(in, (uint32_t)(n ? n * 8 : 8));
	if (!arr || !run_mem(in, arr, (uint64_t)n * 8))
		return false;
	for (i = 0; i < n; i++) {
		s = place(in, off, lens[i]);
		if (!s)
			return false;
		put_u32(in, arr + (uint32_t)(8 * i), s);
		put_u32(in, arr + (uint32_t)(8 * i + 4), (uint32_t)lens[i]);
		off += lens[i];
	}
	put_u32(in, slices_p, arr);
	put_u32(in, len_p, (uint32_t)n);
	return true;
}

bool run_hc_result_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p, const void *data,
			 size_t len)
{
	hold_clear(in);
	if (!hold(in, data, len))
		return run_hc_result_none(in, ptr_p, len_p);
	return give_bytes(in, ptr_p, len_p);
}

bool run_hc_result_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
			  const char *const *strs, const size_t *lens, size_t n)
{
	size_t i;

	hold_clear(in);
	for (i = 0; i < n; i++) {
		if (!hold(in, strs[i], lens[i]))
			return run_hc_result_none(in, slices_p, len_p);
	}
	return give_slices(in, slices_p, len_p, lens, n);
}

/* ---- Handles ------------------------------------------------------------------------- */

static struct run_hmsg *req_of(struct run_instance *in, uint32_t h)
{
	struct run_hc *hc = hc_of(in);

	if (h >= RUN_HC_HANDLES || !hc->reqs[h].used)
		return NULL;
	return &hc->reqs[h];
}

static struct run_hmsg *resp_of(struct run_instance *in, uint32_t h)
{
	struct run_hc *hc = hc_of(in);

	if (h >= RUN_HC_HANDLES || !hc->resps[h].used)
		return NULL;
	return &hc->resps[h];
}

static int free_slot(struct run_hmsg *arr)
{
	int i;

	for (i = 1; i < RUN_HC_HANDLES; i++) {
		if (!arr[i].used)
			return i;
	}
	return -1;
}

/* The headers of a message: the incoming request's come from the request
 * itself, every other handle's from its own list. */
static void headers_of(struct run_instance *in, struct run_hmsg *m, bool incoming,
		       const struct run_header **hs, size_t *n)
{
	if (incoming) {
		*hs = in->req->headers;
		*n = in->req->n_headers;
	} else {
		*hs = m->hdrs;
		*n = m->n_hdrs;
	}
}

/* Every distinct header name, lower-cased. */
static void get_header_names(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
			     struct run_hmsg *m, bool incoming)
{
	const struct run_header *hs;
	const char *names[HC_HEADERS_MAX * 2];
	size_t lens[HC_HEADERS_MAX * 2], n, i, j, k = 0;

	headers_of(in, m, incoming, &hs, &n);
	hold_clear(in);
	for (i = 0; i < n && k < HC_HEADERS_MAX * 2; i++) {
		bool seen = false;

		for (j = 0; j < k && !seen; j++)
			seen = lens[j] == hs[i].name_len &&
			       strncasecmp(names[j], hs[i].name, lens[j]) == 0;
		if (seen)
			continue;
		if (!hold(in, hs[i].name, hs[i].name_len)) {
			run_hc_result_none(in, slices_p, len_p);
			return;
		}
		/* The copy is lowered, so the host's own headers stay as they
		 * came. */
		for (j = in->scratch.len - hs[i].name_len; j < in->scratch.len; j++)
			in->scratch.data[j] = (char)tolower((unsigned char)in->scratch.data[j]);
		names[k] = hs[i].name;
		lens[k] = hs[i].name_len;
		k++;
	}
	give_slices(in, slices_p, len_p, lens, k);
}

/* Every value of one header (case-insensitive name). */
static void get_header_values(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
			      struct run_hmsg *m, bool incoming, uint32_t name, uint32_t name_len)
{
	const struct run_header *hs;
	const char *strs[HC_HEADERS_MAX * 2];
	size_t lens[HC_HEADERS_MAX * 2], n, i, k = 0;
	const uint8_t *want = name_len <= HC_NAME_MAX ? run_mem(in, name, name_len) : NULL;

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

enum header_call { REQ_NAMES, REQ_VALUES, RESP_NAMES, RESP_VALUES };

static const char *const header_call_name[] = {
	"hostcall_req_get_headers", "hostcall_req_get_header", "hostcall_resp_get_headers",
	"hostcall_resp_get_header"};

/* The four header getters: the names, or the values of the header called
 * (name, name_len), of request or response handle h; an empty result for a
 * bad handle. */
static void get_headers(struct run_instance *in, enum header_call call, uint32_t slices_p,
			uint32_t len_p, uint32_t h, uint32_t name, uint32_t name_len)
{
	bool is_req = call == REQ_NAMES || call == REQ_VALUES;
	struct run_hmsg *m;

	if (!run_hc_enter(in, header_call_name[call])) {
		run_hc_result_none(in, slices_p, len_p);
		return;
	}
	m = is_req ? req_of(in, h) : resp_of(in, h);
	if (!m)
		run_hc_result_slices(in, slices_p, len_p, NULL, NULL, 0);
	else if (call == REQ_NAMES || call == RESP_NAMES)
		get_header_names(in, slices_p, len_p, m, is_req && h == 0);
	else
		get_header_values(in, slices_p, len_p, m, is_req && h == 0, name, name_len);
}

ENV_CALL(void, hostcall_req_get_headers, uint32_t slices_p, uint32_t len_p, uint32_t req)
{
	get_headers(run_current, REQ_NAMES, slices_p, len_p, req, 0, 0);
}

ENV_CALL(void, hostcall_req_get_header, uint32_t slices_p, uint32_t len_p, uint32_t req, uint32_t name, uint32_t name_len)
{
	get_headers(run_current, REQ_VALUES, slices_p, len_p, req, name, name_len);
}

ENV_CALL(void, hostcall_resp_get_headers, uint32_t slices_p, uint32_t len_p, uint32_t resp)
{
	get_headers(run_current, RESP_NAMES, slices_p, len_p, resp, 0, 0);
}

ENV_CALL(void, hostcall_resp_get_header, uint32_t slices_p, uint32_t len_p, uint32_t resp, uint32_t name, uint32_t name_len)
{
	get_headers(run_current, RESP_VALUES, slices_p, len_p, resp, name, name_len);
}

static bool valid_value(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* Replaces header name of m with the n values in the guest's slices. */
static uint32_t set_header(struct run_instance *in, struct run_hmsg *m, uint32_t name,
			   uint32_t name_len, uint32_t slices, uint32_t n)
{
	const uint8_t *nm = name_len <= HC_NAME_MAX ? run_mem(in, name, name_len) : NULL;
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
		v = l <= HC_VALUE_MAX ? run_mem(in, p, l) : NULL;
		if (!v || !valid_value((const char *)v, l))
			return HC_INVALID;
	}
	if (m->n_hdrs + n > HC_HEADERS_MAX)
		return HC_INVALID;
	remove_header(m, (const char *)nm, name_len);
	for (i = 0; i < n; i++) {
		uint32_t p, l;

		memcpy(&p, vec + 8 * i, 4);
		memcpy(&l, vec + 8 * i + 4, 4);
		if (!run_hmsg_add_header(m, (const char *)nm, name_len,
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
	viv_buf_free(&m->body);
	viv_buf_init(&m->body, cap);
	if (viv_buf_append(&m->body, p, len))
		return HC_INVALID;
	return HC_OK;
}

/* ---- Requests ----------------------------------------------------------------------- */

ENV_CALL(void, hostcall_init_mm, uint32_t malloc_idx, uint32_t free_idx)
{
	struct run_instance *in = run_current;
	struct run_hc *hc;

	if (!run_hc_enter(in, "hostcall_init_mm"))
		return;
	hc = hc_of(in);
	hc->mm_malloc = malloc_idx;
	hc->mm_free = free_idx;
	hc->mm_set = true;
}

enum req_part { PART_METHOD, PART_TARGET, PART_BODY };

static const char *const req_part_call[] = {"hostcall_req_get_method", "hostcall_req_get_path",
					    "hostcall_req_get_body"};

/* Copies one part of a request to the guest: the incoming request's from the
 * request itself, a created one's from its handle; empty for a bad handle. */
static void get_req_part(struct run_instance *in, uint32_t ptr_p, uint32_t len_p, uint32_t req,
			 enum req_part part)
{
	const struct run_request *r = in->req;
	struct run_hmsg *m;
	const char *p = "";
	size_t n = 0;

	if (!run_hc_enter(in, req_part_call[part])) {
		run_hc_result_none(in, ptr_p, len_p);
		return;
	}
	m = req_of(in, req);
	if (req == 0) {
		p = part == PART_METHOD ? r->method : part == PART_TARGET ? r->target : r->body;
		n = part == PART_METHOD	  ? r->method_len
		    : part == PART_TARGET ? r->target_len
					  : r->body_len;
	} else if (m) {
		p = part == PART_METHOD ? m->method : part == PART_TARGET ? m->url : m->body.data;
		n = part == PART_BODY ? m->body.len : strlen(p);
	}
	run_hc_result_bytes(in, ptr_p, len_p, p, n);
}

ENV_CALL(void, hostcall_req_get_method, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	get_req_part(run_current, ptr_p, len_p, req, PART_METHOD);
}

ENV_CALL(void, hostcall_req_get_path, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	get_req_part(run_current, ptr_p, len_p, req, PART_TARGET);
}

ENV_CALL(void, hostcall_req_get_body, uint32_t ptr_p, uint32_t len_p, uint32_t req)
{
	get_req_part(run_current, ptr_p, len_p, req, PART_BODY);
}

ENV_CALL(uint32_t, hostcall_req_create, uint32_t method, uint32_t mlen, uint32_t url, uint32_t ulen)
{
	struct run_instance *in = run_current;
	struct run_hc *hc;
	char *m, *u;
	int h;

	if (!run_hc_enter(in, "hostcall_req_create"))
		return HANDLE_ERROR;
	hc = hc_of(in);
	h = free_slot(hc->reqs);
	if (h < 0)
		return HANDLE_ERROR;
	m = copy_in(in, method, mlen, 32);
	u = copy_in(in, url, ulen, HC_URL_MAX);
	/* A URL that does not parse, or is not http or https, fails here, as
	 * Terrarium's did; one the app may not reach fails when sent. */
	if (!m || !u || !run_http_token(m, mlen) || strlen(u) != ulen ||
	    !run_outbound_url_valid(u)) {
		free(m);
		free(u);
		return HANDLE_ERROR;
	}
	hc->reqs[h].used = true;
	hc->reqs[h].method = m;
	hc->reqs[h].url = u;
	viv_buf_init(&hc->reqs[h].body, HC_BODY_MAX);
	return (uint32_t)h;
}

ENV_CALL(uint32_t, hostcall_req_set_header, uint32_t req, uint32_t name, uint32_t nlen, uint32_t slices, uint32_t n)
{
	struct run_instance *in = run_current;

	if (!run_hc_enter(in, "hostcall_req_set_header"))
		return HC_INVALID;
	/* The incoming request is read-only. */
	if (req == 0)
		return HC_INVALID;
	return set_header(in, req_of(in, req), name, nlen, slices, n);
}

ENV_CALL(uint32_t, hostcall_req_set_body, uint32_t req, uint32_t ptr, uint32_t len)
{
	struct run_instance *in = run_current;

	if (!run_hc_enter(in, "hostcall_req_set_body"))
		return HC_INVALID;
	if (req == 0)
		return HC_INVALID;
	return set_body(in, req_of(in, req), ptr, len, HC_BODY_MAX);
}

/* ---- Sending and waiting ------------------------------------------------------------ */

static int send_async(struct run_instance *in, uint32_t req)
{
	struct run_hc *hc = hc_of(in);
	int pi;

	if (req == 0 || !req_of(in, req))
		return -1;
	if (hc->sent >= in->pool->cfg.outbound_max) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg),
				 "outbound request refused: a request may send at most %u",
				 in->pool->cfg.outbound_max);
		run_log_add(in, "system", msg, (size_t)n);
		return -1;
	}
	for (pi = 0; pi < RUN_HC_HANDLES && hc->pend[pi].used; pi++)
		;
	if (pi == RUN_HC_HANDLES)
		return -1;
	memset(&hc->pend[pi], 0, sizeof(hc->pend[pi]));
	hc->pend[pi].used = true;
	hc->pend[pi].req = (int)req;
	hc->pend[pi].resp = -1;
	hc->sent++;
	if (!run_outbound_start(in, pi)) {
		hc->pend[pi].done = true;
		hc->pend[pi].resp = -1;
	}
	return pi;
}

void run_hc_complete(struct run_instance *in, int pi, struct run_hmsg *resp)
{
	struct run_hc *hc = in->hc;
	struct run_pending *p = &hc->pend[pi];
	int h = resp ? free_slot(hc->resps) : -1;

	p->xfer = NULL;
	p->sub = NULL;
	p->done = true;
	p->resp = -1;
	if (resp && h >= 0) {
		hc->resps[h] = *resp;
		hc->resps[h].used = true;
		p->resp = h;
	} else if (resp) {
		run_hmsg_clear(resp);
	}
	if (in->state == RUN_STATE_SUSPENDED && (hc->waiting & ((uint64_t)1 << pi))) {
		hc->waiting = 0;
		run_instance_wake(in);
	}
}

/* Suspends the guest until one of the pending handles in mask is done. */
static void wait_for(struct run_instance *in, uint64_t mask)
{
	struct run_hc *hc = in->hc;
	int i;

	for (;;) {
		for (i = 0; i < RUN_HC_HANDLES; i++) {
			if ((mask & ((uint64_t)1 << i)) && hc->pend[i].done)
				return;
		}
		hc->waiting = mask;
		run_instance_suspend(in);
	}
}

/* What a pending request that has completed gave (a response handle, or
 * HANDLE_ERROR when it failed), its handle freed: as Terrarium's SDKs
 * document, a completed pending request may not be used again, and wait,
 * poll and select then refuse its handle. A guest that makes many requests
 * one after another so never runs out of handles. */
static uint32_t pending_finish(struct run_instance *in, int pi)
{
	struct run_pending *p = &in->hc->pend[pi];
	int resp = p->resp;

	memset(p, 0, sizeof(*p));
	return resp < 0 ? HANDLE_ERROR : (uint32_t)resp;
}

static struct run_pending *pending_of(struct run_instance *in, uint32_t p)
{
	struct run_hc *hc = hc_of(in);

	if (p >= RUN_HC_HANDLES || !hc->pend[p].used)
		return NULL;
	return &hc->pend[p];
}

ENV_CALL(uint32_t, hostcall_req_send_async, uint32_t req)
{
	struct run_instance *in = run_current;
	int pi;

	if (!run_hc_enter(in, "hostcall_req_send_async"))
		return HANDLE_ERROR;
	pi = send_async(in, req);
	return pi < 0 ? HANDLE_ERROR : (uint32_t)pi;
}

ENV_CALL(uint32_t, hostcall_pending_req_wait, uint32_t p)
{
	struct run_instance *in = run_current;
	struct run_pending *pend;

	if (!run_hc_enter(in, "hostcall_pending_req_wait"))
		return HANDLE_ERROR;
	pend = pending_of(in, p);
	if (!pend)
		return HANDLE_ERROR;
	wait_for(in, (uint64_t)1 << p);
	return pending_finish(in, (int)p);
}

ENV_CALL(uint32_t, hostcall_req_send, uint32_t req)
{
	struct run_instance *in = run_current;
	int pi;

	if (!run_hc_enter(in, "hostcall_req_send"))
		return HANDLE_ERROR;
	pi = send_async(in, req);
	if (pi < 0)
		return HANDLE_ERROR;
	wait_for(in, (uint64_t)1 << pi);
	return pending_finish(in, pi);
}

ENV_CALL(uint32_t, hostcall_pending_req_poll, uint32_t p)
{
	struct run_instance *in = run_current;
	struct run_pending *pend;

	if (!run_hc_enter(in, "hostcall_pending_req_poll"))
		return HANDLE_ERROR;
	pend = pending_of(in, p);
	if (!pend)
		return HANDLE_ERROR;
	if (!pend->done)
		return HANDLE_NOT_READY;
	return pending_finish(in, (int)p);
}

ENV_CALL(uint32_t, hostcall_pending_req_select, uint32_t handles, uint32_t n, uint32_t out_p)
{
	struct run_instance *in = run_current;
	const uint8_t *vec;
	uint64_t mask = 0;
	uint32_t i, h;

	if (!run_hc_enter(in, "hostcall_pending_req_select"))
		return HANDLE_ERROR;
	hc_of(in);
	vec = n <= RUN_HC_HANDLES ? run_mem(in, handles, (uint64_t)n * 4) : NULL;
	if (!vec || n == 0 || !run_mem(in, out_p, 4))
		return HANDLE_ERROR;
	for (i = 0; i < n; i++) {
		memcpy(&h, vec + 4 * i, 4);
		if (!pending_of(in, h))
			return HANDLE_ERROR;
		mask |= (uint64_t)1 << h;
	}
	wait_for(in, mask);
	/* The first of the list, in the guest's order, that is done. */
	vec = run_mem(in, handles, (uint64_t)n * 4);
	for (i = 0; vec && i < n; i++) {
		memcpy(&h, vec + 4 * i, 4);
		if (h < RUN_HC_HANDLES && in->hc->pend[h].used && in->hc->pend[h].done) {
			put_u32(in, out_p, h);
			return pending_finish(in, (int)h);
		}
	}
	return HANDLE_ERROR;
}

/* ---- Responses ----------------------------------------------------------------------- */

ENV_CALL(void, hostcall_resp_get_body, uint32_t ptr_p, uint32_t len_p, uint32_t resp)
{
	struct run_instance *in = run_current;
	struct run_hmsg *m;

	if (!run_hc_enter(in, "hostcall_resp_get_body")) {
		run_hc_result_none(in, ptr_p, len_p);
		return;
	}
	m = resp_of(in, resp);
	if (m)
		run_hc_result_bytes(in, ptr_p, len_p, m->body.data, m->body.len);
	else
		run_hc_result_bytes(in, ptr_p, len_p, "", 0);
}

ENV_CALL(uint32_t, hostcall_resp_get_response_code, uint32_t resp)
{
	struct run_instance *in = run_current;
	struct run_hmsg *m;

	if (!run_hc_enter(in, "hostcall_resp_get_response_code"))
		return 0;
	m = resp_of(in, resp);
	return m ? m->status : 0;
}

ENV_CALL(uint32_t, hostcall_resp_set_header, uint32_t resp, uint32_t name, uint32_t nlen, uint32_t slices, uint32_t n)
{
	struct run_instance *in = run_current;
	const uint8_t *nm;

	if (!run_hc_enter(in, "hostcall_resp_set_header"))
		return HC_INVALID;
	/* Only the outgoing response is written; a received one is read-only. */
	if (resp != 0)
		return HC_INVALID;
	/* Framing and connection headers belong to the server. */
	nm = nlen <= HC_NAME_MAX ? run_mem(in, name, nlen) : NULL;
	if (nm && run_header_is_hop_by_hop((const char *)nm, nlen))
		return HC_INVALID;
	return set_header(in, resp_of(in, resp), name, nlen, slices, n);
}

ENV_CALL(uint32_t, hostcall_resp_set_body, uint32_t resp, uint32_t ptr, uint32_t len)
{
	struct run_instance *in = run_current;

	if (!run_hc_enter(in, "hostcall_resp_set_body"))
		return HC_INVALID;
	if (resp != 0)
		return HC_INVALID;
	return set_body(in, resp_of(in, resp), ptr, len, in->pool->cfg.response_max);
}

ENV_CALL(uint32_t, hostcall_resp_set_response_code, uint32_t resp, uint32_t code)
{
	struct run_instance *in = run_current;
	struct run_hmsg *m;

	if (!run_hc_enter(in, "hostcall_resp_set_response_code"))
		return HC_INVALID;
	m = resp == 0 ? resp_of(in, resp) : NULL;
	if (!m || code < 100 || code > 599)
		return HC_INVALID;
	m->status = code;
	return HC_OK;
}

/* ---- KV ------------------------------------------------------------------------------- */

/* The key (and value, when val is not NULL) of a KV call, checked; false
 * when there is no store or an argument is bad. */
static bool kv_args(struct run_instance *in, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl,
		    const uint8_t **key, const uint8_t **val)
{
	*key = kl && kl <= STORE_KV_KEY_MAX ? run_mem(in, k, kl) : NULL;
	if (val) {
		*val = vl <= STORE_KV_VALUE_MAX ? run_mem(in, v, vl) : NULL;
		if (!*val)
			return false;
	}
	return in->pool->services.store && *key;
}

static void kv_failed(struct run_instance *in, const char *op, enum viv_err err)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "kvstore_%s failed: %s", op, viv_strerror(err));

	run_log_add(in, "system", msg, (size_t)n);
}

typedef enum viv_err (*kv_write_fn)(struct store *, int64_t, const void *, size_t, const void *,
				    size_t, bool *);

/* The host calls' names, for run_hc_enter(). */
static const char *const kv_call_names[RUN_KV_OPS] = {
	[RUN_KV_GET] = "hostcall_kvstore_get",
	[RUN_KV_INSERT] = "hostcall_kvstore_insert",
	[RUN_KV_UPSERT] = "hostcall_kvstore_upsert",
	[RUN_KV_APPEND] = "hostcall_kvstore_append",
	[RUN_KV_REMOVE] = "hostcall_kvstore_remove",
};

/* Starts a KV host call and counts it. */
static bool kv_enter(struct run_instance *in, enum run_kv_op op)
{
	if (!run_hc_enter(in, kv_call_names[op]))
		return false;
	in->kv_calls[op]++;
	return true;
}

static uint32_t kv_write(struct run_instance *in, kv_write_fn fn, enum run_kv_op op, uint32_t k,
			 uint32_t kl, uint32_t v, uint32_t vl)
{
	const uint8_t *key, *val;
	bool yes = false;
	enum viv_err err;

	if (!kv_enter(in, op))
		return 0;
	if (!kv_args(in, k, kl, v, vl, &key, &val))
		return 0;
	err = fn(in->pool->services.store, in->app->id, key, kl, val, vl, &yes);
	if (err) {
		kv_failed(in, run_kv_op_name(op), err);
		return 0;
	}
	return yes;
}

ENV_CALL(uint32_t, hostcall_kvstore_insert, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl)
{
	struct run_instance *in = run_current;

	/* A map's insert: the value replaces what was there (Terrarium's
	 * KVStore::insert); true if the key was new. */
	return kv_write(in, store_kv_put, RUN_KV_INSERT, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_upsert, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl)
{
	struct run_instance *in = run_current;

	/* Only if absent (Terrarium's KVStore::upsert); true if the key was
	 * new, and the stored value stays otherwise. */
	return kv_write(in, store_kv_put_new, RUN_KV_UPSERT, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_append, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl)
{
	struct run_instance *in = run_current;

	return kv_write(in, store_kv_append, RUN_KV_APPEND, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_get, uint32_t v_p, uint32_t vl_p, uint32_t k, uint32_t kl)
{
	struct run_instance *in = run_current;
	const uint8_t *key;
	char *val = NULL;
	size_t len = 0;
	enum viv_err err;
	bool held;

	if (!kv_enter(in, RUN_KV_GET))
		return 0;
	if (!kv_args(in, k, kl, 0, 0, &key, NULL) || !run_mem(in, v_p, 4) ||
	    !run_mem(in, vl_p, 4))
		return 0;
	err = store_kv_get(in->pool->services.store, in->app->id, key, kl, &val, &len);
	if (err) {
		if (err != VIV_ERR_NOT_FOUND)
			kv_failed(in, "get", err);
		return 0;
	}
	/* Copied and freed before the guest's allocator runs, which may
	 * trap. */
	hold_clear(in);
	held = hold(in, val, len);
	free(val);
	if (!held)
		return run_hc_result_none(in, v_p, vl_p);
	return give_bytes(in, v_p, vl_p);
}

ENV_CALL(uint32_t, hostcall_kvstore_remove, uint32_t k, uint32_t kl)
{
	struct run_instance *in = run_current;
	const uint8_t *key;
	bool existed = false;
	enum viv_err err;

	if (!kv_enter(in, RUN_KV_REMOVE))
		return 0;
	if (!kv_args(in, k, kl, 0, 0, &key, NULL))
		return 0;
	err = store_kv_remove(in->pool->services.store, in->app->id, key, kl, &existed);
	if (err) {
		kv_failed(in, "remove", err);
		return 0;
	}
	return existed;
}

/* ---- Time, randomness, logs, configuration ------------------------------------------- */

ENV_CALL(uint64_t, hostcall_rng_next_u64)
{
	struct run_instance *in = run_current;
	uint64_t v = 0;

	run_hostcall_enter(in);
	if (viv_random(&v, sizeof(v))) {
		run_log_add(in, "trap", "the host's random number generator failed", 41);
		run_stop_guest(in, RUN_STOP_HOST, 0);
	}
	return v;
}

ENV_CALL(uint64_t, hostcall_time_now, uint32_t subsec_p)
{
	struct run_instance *in = run_current;
	struct timespec ts;

	run_hostcall_enter(in);
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Terrarium guests pass NULL when they want whole seconds only. */
	if (subsec_p)
		put_u32(in, subsec_p, (uint32_t)ts.tv_nsec);
	return (uint64_t)ts.tv_sec;
}

/* A message for the log: (msg, len), or with len -1 (as Terrarium's C
 * template passes it) the NUL-terminated string at msg, within the first
 * HC_VALUE_MAX bytes. NULL when out of bounds. */
static const uint8_t *log_text(struct run_instance *in, uint32_t msg, uint32_t *len)
{
	const uint8_t *p, *nul;
	uint64_t room;

	if (*len != UINT32_MAX)
		return run_mem(in, msg, *len);
	if (!in->mem || msg >= in->mem->size)
		return NULL;
	room = in->mem->size - msg;
	if (room > HC_VALUE_MAX)
		room = HC_VALUE_MAX;
	p = in->mem->data + msg;
	nul = memchr(p, 0, (size_t)room);
	*len = (uint32_t)(nul ? (size_t)(nul - p) : (size_t)room);
	return p;
}

ENV_CALL(void, hostcall_debug, uint32_t msg, uint32_t len)
{
	struct run_instance *in = run_current;
	const uint8_t *p;

	run_hostcall_enter(in);
	p = log_text(in, msg, &len);
	if (p)
		run_log_add(in, "debug", (const char *)p, len);
}

ENV_CALL(void, hostcall_panic_hook, uint32_t msg, uint32_t len)
{
	struct run_instance *in = run_current;
	const uint8_t *p;

	run_hostcall_enter(in);
	p = log_text(in, msg, &len);
	hc_of(in)->panicked = true;
	if (p)
		run_log_add(in, "panic", (const char *)p, len);
	else
		run_log_add(in, "panic", "(message out of bounds)", 23);
}

ENV_CALL(uint32_t, hostcall_config_get, uint32_t v_p, uint32_t vl_p, uint32_t k, uint32_t kl)
{
	struct run_instance *in = run_current;
	const uint8_t *key;
	size_t i;

	if (!run_hc_enter(in, "hostcall_config_get"))
		return 0;
	key = kl && kl <= HC_NAME_MAX ? run_mem(in, k, kl) : NULL;
	if (!key || !run_mem(in, v_p, 4) || !run_mem(in, vl_p, 4))
		return 0;
	for (i = 0; i < in->app->n_env; i++) {
		const char *e = in->app->env[i];

		/* The key may hold NULs: compare bytes, within the entry. */
		if (strlen(e) > kl && memcmp(e, key, kl) == 0 && e[kl] == '=')
			return run_hc_result_bytes(in, v_p, vl_p, e + kl + 1, strlen(e + kl + 1));
	}
	return 0;
}
