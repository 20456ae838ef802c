/* The host-call mode (the Terrarium ABI): its operations and per-instance
 * state, and what every host call shares: the prologue, the checks of
 * guest arguments, the guest's allocator, how results are placed in guest
 * memory, and waiting for pending requests. See hostcall.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hostcall.h"

/* ---- The state ------------------------------------------------------------------------- */

static void hc_end(void *state)
{
	struct run_hc *hc = state;

	run_handles_free(&hc->h);
	viv_buf_free(&hc->scratch);
	free(hc);
}

static const struct run_attach_ops hc_attach = {.name = "hostcall", .end = hc_end};

/* Makes and attaches the state; NULL when out of memory. */
static struct run_hc *hc_make(struct run_instance *in)
{
	struct run_hc *hc = calloc(1, sizeof(*hc));

	if (!hc)
		return NULL;
	run_handles_init(&hc->h, in->pool->cfg.response_max);
	if (!run_instance_attach(in, &hc_attach, hc)) {
		hc_end(hc);
		return NULL;
	}
	return hc;
}

struct run_hc *run_hc_of(struct run_instance *in)
{
	struct run_hc *hc = run_instance_attached(in, &hc_attach);

	if (hc)
		return hc;
	hc = hc_make(in);
	if (!hc)
		run_host_fail(in, "the host is out of memory");
	return hc;
}

/* ---- The mode ------------------------------------------------------------------------------ */

/* The mode's own state: what its guest wrote to stdout, which goes nowhere
 * but is held to the same cap as in the CGI mode. */
struct hc_mode {
	size_t stdout_bytes;
};

static enum viv_err mode_start(struct run_instance *in)
{
	return hc_make(in) ? VIV_OK : VIV_ERR_NOMEM;
}

/* The response the guest built through its outgoing handle. */
static void mode_finish(struct run_instance *in)
{
	struct run_hc *hc = run_instance_attached(in, &hc_attach);
	struct run_msg *out;
	size_t i;

	if (in->failure) {
		in->outcome = RUN_TRAPPED;
		run_error_response(in, 500, "The app failed while handling this request.\n");
		return;
	}
	in->outcome = RUN_DONE;
	if (!hc) {
		run_error_response(in, 200, "");
		return;
	}
	out = &hc->h.resps[0].m;
	free(in->resp.headers);
	memset(&in->resp, 0, sizeof(in->resp));
	in->resp.status = out->status;
	in->resp.headers = calloc(out->n_hdrs ? out->n_hdrs : 1, sizeof(*in->resp.headers));
	if (!in->resp.headers) {
		run_error_response(in, 500, "The host is out of memory.\n");
		return;
	}
	/* The headers and the body stay the handle's until the instance ends. */
	for (i = 0; i < out->n_hdrs; i++)
		in->resp.headers[i] = out->hdrs[i];
	in->resp.n_headers = out->n_hdrs;
	in->resp.body = out->body.data;
	in->resp.body_len = out->body.len;
}

static bool mode_write_stdout(struct run_instance *in, const uint8_t *p, size_t n)
{
	struct hc_mode *hm = in->mode_state;

	(void)p;
	if (n > in->pool->cfg.response_max + RUN_CGI_HEADERS_MAX - hm->stdout_bytes)
		return false;
	hm->stdout_bytes += n;
	return true;
}

static void mode_end(struct run_instance *in)
{
	/* The host-call state is attached, and ends with the instance. */
	(void)in;
}

const struct run_mode_ops run_mode_hostcall = {
        .name = "hostcall",
        .state_size = sizeof(struct hc_mode),
        .start = mode_start,
        .finish = mode_finish,
        .write_stdout = mode_write_stdout,
        .end = mode_end,
};

/* ---- Entering host calls ------------------------------------------------------------ */

/* A fault in host code on purpose, for the test that shows one ends the
 * worker (its supervisor logs it and starts another) and is never taken
 * for the guest's trap: when vivd's environment has VIV_TEST_HOST_FAULT,
 * the host calls of the app it names write to a page that forbids it. Only
 * whoever starts vivd sets its environment; no tenant reaches it. */
static void test_host_fault(const struct run_instance *in)
{
	static const char *app;
	static bool read;
	void *page;

	if (!read) {
		app = getenv("VIV_TEST_HOST_FAULT");
		read = true;
	}
	if (!app || strcmp(app, in->app->name) != 0)
		return;
	page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page != MAP_FAILED)
		*(volatile char *)page = 1;
}

struct run_hc *run_hc_begin(struct run_instance *in, const char *name)
{
	struct run_hc *hc;

	test_host_fault(in);
	run_hostcall_enter(in);
	hc = run_hc_of(in);
	if (!hc->callbacks)
		return hc;
	run_hc_logf(in,
	            "%s refused: the guest called it from its allocator while the host was "
	            "placing a result there (host calls do not nest)",
	            name);
	return NULL;
}

const uint8_t *run_hc_arg(struct run_instance *in, uint32_t ptr, uint32_t len, uint32_t max)
{
	return len <= max ? run_mem(in, ptr, len) : NULL;
}

bool run_hc_outs(struct run_instance *in, uint32_t a, uint32_t b)
{
	return run_mem(in, a, 4) && run_mem(in, b, 4);
}

void run_hc_put_u32(struct run_instance *in, uint32_t at, uint32_t v)
{
	uint8_t *p = run_mem(in, at, 4);

	if (p)
		memcpy(p, &v, 4);
}

void run_hc_logf(struct run_instance *in, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		run_log_add(in, "system", msg,
		            (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* ---- The guest's allocator -------------------------------------------------------------- */

static uint32_t type_malloc;

/* Calls the guest's allocator. 0 when it has none or it failed. Host calls
 * the allocator makes are refused meanwhile; if it traps, the instance ends
 * and the count no longer matters. */
static uint32_t guest_malloc(struct run_instance *in, uint32_t size)
{
	struct run_hc *hc = run_hc_of(in);
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
		hc->callbacks++;
		p = ((uint32_t(*)(void *, uint32_t))f.func)(f.module_instance, size);
		hc->callbacks--;
		return p;
	}
	if (g->export_malloc) {
		hc->callbacks++;
		p = g->export_malloc(in->wasm, size);
		hc->callbacks--;
		return p;
	}
	if (!hc->mm_missing_logged) {
		static const char msg[] =
		        "the guest never registered an allocator with hostcall_init_mm (and "
		        "exports no default_malloc_impl), so host calls cannot return data to it";
		run_log_add(in, "trap", msg, sizeof(msg) - 1);
		hc->mm_missing_logged = true;
	}
	return 0;
}

/* ---- Results ------------------------------------------------------------------------- */

void run_hc_hold_clear(struct run_instance *in)
{
	struct run_hc *hc = run_hc_of(in);

	/* The storage stays for the next result. */
	hc->scratch.len = 0;
}

bool run_hc_hold(struct run_instance *in, const void *data, size_t len)
{
	struct run_hc *hc = run_hc_of(in);

	return viv_buf_append(&hc->scratch, len ? data : "", len) == VIV_OK;
}

/* Allocates len + 1 bytes in the guest and copies there the len bytes held
 * at off in the scratch buffer, then a NUL; 0 when that fails. The guest's
 * memory is looked up after its allocator ran, which may have grown it. */
static uint32_t place(struct run_instance *in, size_t off, size_t len)
{
	struct run_hc *hc = run_hc_of(in);
	uint32_t p;
	uint8_t *dst;

	if (len >= UINT32_MAX)
		return 0;
	p = guest_malloc(in, (uint32_t)len + 1);
	dst = p ? run_mem(in, p, (uint64_t)len + 1) : NULL;
	if (!dst)
		return 0;
	memcpy(dst, hc->scratch.data + off, len);
	dst[len] = 0;
	return p;
}

bool run_hc_result_none(struct run_instance *in, uint32_t ptr_p, uint32_t len_p)
{
	run_hc_put_u32(in, ptr_p, 0);
	run_hc_put_u32(in, len_p, 0);
	return false;
}

bool run_hc_give_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p)
{
	struct run_hc *hc = run_hc_of(in);
	size_t len = hc->scratch.len;
	uint32_t p;

	if (!run_hc_outs(in, ptr_p, len_p))
		return false;
	run_hc_result_none(in, ptr_p, len_p);
	p = place(in, 0, len);
	if (!p)
		return false;
	run_hc_put_u32(in, ptr_p, p);
	run_hc_put_u32(in, len_p, (uint32_t)len);
	return true;
}

bool run_hc_give_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
                        const size_t *lens, size_t n)
{
	uint32_t arr, s;
	size_t i, off = 0;

	if (!run_hc_outs(in, slices_p, len_p))
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
		run_hc_put_u32(in, arr + (uint32_t)(8 * i), s);
		run_hc_put_u32(in, arr + (uint32_t)(8 * i + 4), (uint32_t)lens[i]);
		off += lens[i];
	}
	run_hc_put_u32(in, slices_p, arr);
	run_hc_put_u32(in, len_p, (uint32_t)n);
	return true;
}

bool run_hc_result_bytes(struct run_instance *in, uint32_t ptr_p, uint32_t len_p, const void *data,
                         size_t len)
{
	run_hc_hold_clear(in);
	if (!run_hc_hold(in, data, len))
		return run_hc_result_none(in, ptr_p, len_p);
	return run_hc_give_bytes(in, ptr_p, len_p);
}

bool run_hc_result_slices(struct run_instance *in, uint32_t slices_p, uint32_t len_p,
                          const char *const *strs, const size_t *lens, size_t n)
{
	size_t i;

	run_hc_hold_clear(in);
	for (i = 0; i < n; i++) {
		if (!run_hc_hold(in, strs[i], lens[i]))
			return run_hc_result_none(in, slices_p, len_p);
	}
	return run_hc_give_slices(in, slices_p, len_p, lens, n);
}

/* ---- Waiting ----------------------------------------------------------------------------- */

void run_hc_wait(struct run_instance *in, uint64_t mask)
{
	struct run_hc *hc = run_hc_of(in);

	while (!run_handles_any_done(&hc->h, mask)) {
		hc->waiting = mask;
		run_instance_suspend(in);
	}
}

void run_hc_notify(struct run_instance *in, int pi)
{
	/* From the loop: the state exists, since pending handles are in it. */
	struct run_hc *hc = run_instance_attached(in, &hc_attach);

	if (hc && in->state == RUN_STATE_SUSPENDED && (hc->waiting & ((uint64_t)1 << pi))) {
		hc->waiting = 0;
		run_instance_wake(in);
	}
}
