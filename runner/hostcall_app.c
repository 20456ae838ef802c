/* The host calls of the Terrarium ABI that serve the app rather than HTTP:
 * its KV data, its configuration, time, randomness, its log and panics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostcall.h"
#include "store.h"

/* ---- KV ------------------------------------------------------------------------------- */

/* The key (and value, when val is not NULL) of a KV call, checked; false
 * when there is no store or an argument is bad. */
static bool kv_args(struct run_instance *in, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl,
                    const uint8_t **key, const uint8_t **val)
{
	*key = kl ? run_hc_arg(in, k, kl, STORE_KV_KEY_MAX) : NULL;
	if (val) {
		*val = run_hc_arg(in, v, vl, STORE_KV_VALUE_MAX);
		if (!*val)
			return false;
	}
	return in->pool->services.store && *key;
}

static void kv_failed(struct run_instance *in, const char *op, enum viv_err err)
{
	run_hc_logf(in, "kvstore_%s failed: %s", op, viv_strerror(err));
}

typedef enum viv_err (*kv_write_fn)(struct store *, int64_t, const void *, size_t, const void *,
                                    size_t, bool *);

static uint32_t kv_write(struct run_instance *in, kv_write_fn fn, enum run_kv_op op, uint32_t k,
                         uint32_t kl, uint32_t v, uint32_t vl)
{
	const uint8_t *key, *val;
	bool yes = false;
	enum viv_err err;

	in->kv_calls[op]++;
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
	HC_BEGIN(0);
	/* A map's insert: the value replaces what was there (Terrarium's
	 * KVStore::insert); true if the key was new. */
	return kv_write(in, store_kv_put, RUN_KV_INSERT, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_upsert, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl)
{
	HC_BEGIN(0);
	/* Only if absent (Terrarium's KVStore::upsert); true if the key was
	 * new, and the stored value stays otherwise. */
	return kv_write(in, store_kv_put_new, RUN_KV_UPSERT, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_append, uint32_t k, uint32_t kl, uint32_t v, uint32_t vl)
{
	HC_BEGIN(0);
	return kv_write(in, store_kv_append, RUN_KV_APPEND, k, kl, v, vl);
}

ENV_CALL(uint32_t, hostcall_kvstore_get, uint32_t v_p, uint32_t vl_p, uint32_t k, uint32_t kl)
{
	const uint8_t *key;
	char *val = NULL;
	size_t len = 0;
	enum viv_err err;
	bool held;

	HC_BEGIN(0);
	in->kv_calls[RUN_KV_GET]++;
	if (!kv_args(in, k, kl, 0, 0, &key, NULL) || !run_hc_outs(in, v_p, vl_p))
		return 0;
	err = store_kv_get(in->pool->services.store, in->app->id, key, kl, &val, &len);
	if (err) {
		if (err != VIV_ERR_NOT_FOUND)
			kv_failed(in, "get", err);
		return 0;
	}
	/* Copied and freed before the guest's allocator runs, which may
	 * trap. */
	run_hc_hold_clear(in);
	held = run_hc_hold(in, val, len);
	free(val);
	if (!held)
		return run_hc_result_none(in, v_p, vl_p);
	return run_hc_give_bytes(in, v_p, vl_p);
}

ENV_CALL(uint32_t, hostcall_kvstore_remove, uint32_t k, uint32_t kl)
{
	const uint8_t *key;
	bool existed = false;
	enum viv_err err;

	HC_BEGIN(0);
	in->kv_calls[RUN_KV_REMOVE]++;
	if (!kv_args(in, k, kl, 0, 0, &key, NULL))
		return 0;
	err = store_kv_remove(in->pool->services.store, in->app->id, key, kl, &existed);
	if (err) {
		kv_failed(in, "remove", err);
		return 0;
	}
	return existed;
}

/* ---- Configuration ------------------------------------------------------------------- */

ENV_CALL(uint32_t, hostcall_config_get, uint32_t v_p, uint32_t vl_p, uint32_t k, uint32_t kl)
{
	const uint8_t *key;
	size_t i;

	HC_BEGIN(0);
	key = kl ? run_hc_arg(in, k, kl, HC_NAME_MAX) : NULL;
	if (!key || !run_hc_outs(in, v_p, vl_p))
		return 0;
	for (i = 0; i < in->app->n_env; i++) {
		const char *e = in->app->env[i];

		/* The key may hold NULs: compare bytes, within the entry. */
		if (strlen(e) > kl && memcmp(e, key, kl) == 0 && e[kl] == '=')
			return run_hc_result_bytes(in, v_p, vl_p, e + kl + 1, strlen(e + kl + 1));
	}
	return 0;
}

/* ---- Calls that may nest: time, randomness, logs ---------------------------------------- */

ENV_CALL(uint64_t, hostcall_rng_next_u64)
{
	struct run_instance *in = run_enter();
	uint64_t v = 0;

	if (viv_random(&v, sizeof(v)))
		run_host_fail(in, "the host's random number generator failed");
	return v;
}

ENV_CALL(uint64_t, hostcall_time_now, uint32_t subsec_p)
{
	struct run_instance *in = run_enter();
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* Terrarium guests pass NULL when they want whole seconds only. */
	if (subsec_p)
		run_hc_put_u32(in, subsec_p, (uint32_t)ts.tv_nsec);
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
	struct run_instance *in = run_enter();
	const uint8_t *p = log_text(in, msg, &len);

	if (p)
		run_log_add(in, "debug", (const char *)p, len);
}

ENV_CALL(void, hostcall_panic_hook, uint32_t msg, uint32_t len)
{
	struct run_instance *in = run_enter();
	const uint8_t *p = log_text(in, msg, &len);

	/* The request ends with a 500, whatever the guest does next. */
	in->failure = "panic";
	if (p)
		run_log_add(in, "panic", (const char *)p, len);
	else
		run_log_add(in, "panic", "(message out of bounds)", 23);
}
