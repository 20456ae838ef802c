/* The life of one instance: a fresh slot, the guest run until it finishes
 * or waits, its deadlines, how it ended turned into an outcome, a response
 * and log lines, and everything given back at the end. What differs between
 * the guest modes is behind the instance's struct run_mode_ops. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_int.h"

const char *run_outcome_name(enum run_outcome o)
{
	switch (o) {
	case RUN_DONE:
		return "done";
	case RUN_TRAPPED:
		return "trapped";
	case RUN_CPU_EXCEEDED:
		return "cpu time limit exceeded";
	case RUN_WALL_EXCEEDED:
		return "wall time limit exceeded";
	case RUN_BAD_OUTPUT:
		return "bad output";
	case RUN_TOO_BIG:
		return "response too big";
	case RUN_NO_SLOT:
		return "no free slot";
	case RUN_HOST_ERROR:
		return "host error";
	}
	return "unknown";
}

const char *run_kv_op_name(enum run_kv_op op)
{
	static const char *const names[RUN_KV_OPS] = {"get", "insert", "upsert", "append",
	                                              "remove"};

	return (unsigned)op < RUN_KV_OPS ? names[op] : "unknown";
}

/* ---- What guest-facing code uses ------------------------------------------------------ */

void run_log_add(struct run_instance *in, const char *stream, const char *msg, size_t len)
{
	size_t max = in->pool->cfg.log_line_max;
	char *copy;

	if (len > max)
		len = max;
	if (in->n_logs >= RUN_MAX_LOG_LINES || in->log_bytes + len > in->pool->cfg.log_bytes_max)
		return;
	copy = malloc(len + 1);
	if (!copy)
		return;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	in->logs[in->n_logs].stream = stream;
	in->logs[in->n_logs].message = copy;
	in->n_logs++;
	in->log_bytes += len;
}

void run_error_response(struct run_instance *in, unsigned status, const char *text)
{
	viv_buf_free(&in->resp_store);
	free(in->resp.headers);
	memset(&in->resp, 0, sizeof(in->resp));
	in->resp.status = status;
	viv_buf_init(&in->resp_store, 0);
	if (viv_buf_append(&in->resp_store, text, strlen(text)) == VIV_OK) {
		in->resp.body = in->resp_store.data;
		in->resp.body_len = in->resp_store.len;
	}
}

void run_hostcall_enter(struct run_instance *in)
{
	uint8_t probe;

	if ((size_t)(&probe - in->slot->stack_lo) < RUN_HOST_STACK_HEADROOM)
		run_stop_guest(in, RUN_STOP_TRAP, WASM_RT_TRAP_EXHAUSTION);
	if (in->interrupt)
		run_stop_guest(in, (enum run_stop)in->interrupt, 0);
}

void run_host_fail(struct run_instance *in, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	run_log_add(in, "trap", msg, strlen(msg));
	run_stop_guest(in, RUN_STOP_HOST, 0);
}

void run_instance_exit(struct run_instance *in, int code)
{
	in->exit_code = code;
	run_stop_guest(in, RUN_STOP_EXIT, 0);
}

bool run_instance_attach(struct run_instance *in, const struct run_attach_ops *ops, void *state)
{
	if (in->n_attached == RUN_MAX_ATTACHED)
		return false;
	in->attached[in->n_attached].ops = ops;
	in->attached[in->n_attached].state = state;
	in->n_attached++;
	return true;
}

void *run_instance_attached(const struct run_instance *in, const struct run_attach_ops *ops)
{
	size_t i;

	for (i = 0; i < in->n_attached; i++) {
		if (in->attached[i].ops == ops)
			return in->attached[i].state;
	}
	return NULL;
}

/* ---- How it ended --------------------------------------------------------------------- */

static void flush_stderr(struct run_instance *in)
{
	if (in->errln.len)
		run_log_add(in, "stderr", in->errln.data, in->errln.len);
	viv_buf_free(&in->errln);
}

/* Turns how the guest stopped into an outcome, a response and log lines. */
static void finish(struct run_instance *in)
{
	char msg[256];

	flush_stderr(in);
	switch (in->stop) {
	case RUN_STOP_RETURNED:
	case RUN_STOP_EXIT:
		if (in->stop == RUN_STOP_EXIT && in->exit_code != 0) {
			snprintf(msg, sizeof(msg), "the program exited with status %d",
			         in->exit_code);
			run_log_add(in, "system", msg, strlen(msg));
		}
		in->mode->finish(in);
		break;
	case RUN_STOP_TRAP:
		in->outcome = RUN_TRAPPED;
		/* A failure the guest reported (a panic) already explains it. */
		if (!in->failure) {
			snprintf(msg, sizeof(msg), "trap: %s",
			         wasm_rt_strerror((wasm_rt_trap_t)in->trap));
			run_log_add(in, "trap", msg, strlen(msg));
		}
		run_error_response(in, 500, "The app failed while handling this request.\n");
		break;
	case RUN_STOP_CPU:
		in->outcome = RUN_CPU_EXCEEDED;
		snprintf(msg, sizeof(msg),
		         "stopped: the request used more than its CPU time limit of %u ms "
		         "(limits.cpu_ms)",
		         in->app->limits.cpu_ms);
		run_log_add(in, "trap", msg, strlen(msg));
		run_error_response(in, 500, "The app ran out of CPU time for this request.\n");
		break;
	case RUN_STOP_WALL:
		in->outcome = RUN_WALL_EXCEEDED;
		snprintf(msg, sizeof(msg),
		         "stopped: the request took longer than its time limit of %u ms "
		         "(limits.wall_ms)",
		         in->app->limits.wall_ms);
		run_log_add(in, "trap", msg, strlen(msg));
		run_error_response(in, 504, "The app took too long to answer.\n");
		break;
	case RUN_STOP_HOST:
	case RUN_STOP_NONE:
		in->outcome = RUN_HOST_ERROR;
		run_error_response(in, 500, "The app could not run.\n");
		break;
	}
}

/* ---- Running, waiting, waking ------------------------------------------------------------- */

/* Runs the guest until it finishes or suspends; now is CLOCK_MONOTONIC. */
static void resume(struct run_instance *in, uint64_t now)
{
	run_exec_resume(in, now);
	if (in->state == RUN_STATE_DONE) {
		in->end_ns = viv_mono_ns();
		run_timer_cancel(in->pool->loop, &in->wall_timer);
		run_timer_cancel(in->pool->loop, &in->wake_timer);
		finish(in);
	}
}

void run_instance_suspend(struct run_instance *in)
{
	in->state = RUN_STATE_SUSPENDED;
	run_exec_yield(in);
	/* Resumed by run_instance_wake(). */
	if (in->interrupt)
		run_stop_guest(in, (enum run_stop)in->interrupt, 0);
}

void run_instance_wake(struct run_instance *in)
{
	if (in->state != RUN_STATE_SUSPENDED)
		return;
	resume(in, viv_mono_ns());
	if (in->state == RUN_STATE_DONE && in->done)
		in->done(in, in->done_arg);
}

static void fire_wake(struct run_timer *t)
{
	struct run_instance *in =
	        (struct run_instance *)((char *)t - offsetof(struct run_instance, wake_timer));

	run_instance_wake(in);
}

void run_instance_sleep(struct run_instance *in, uint64_t at_ns)
{
	run_timer_arm(in->pool->loop, &in->wake_timer, at_ns);
	run_instance_suspend(in);
}

static void fire_wall(struct run_timer *t)
{
	struct run_instance *in =
	        (struct run_instance *)((char *)t - offsetof(struct run_instance, wall_timer));

	in->interrupt = RUN_STOP_WALL;
	run_instance_wake(in);
}

/* ---- Start and end ------------------------------------------------------------------------ */

/* Stops and frees what the mode and the other layers keep for the
 * instance. */
static void end_states(struct run_instance *in)
{
	in->mode->end(in);
	while (in->n_attached > 0) {
		struct run_attached *a = &in->attached[--in->n_attached];

		a->ops->end(a->state);
	}
}

static size_t align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

enum viv_err run_instance_start(struct run_pool *pool, struct run_module *m,
                                const struct run_app *app, const struct run_request *req,
                                run_done_fn done, void *arg, struct run_instance **out)
{
	const struct run_mode_ops *mode = m->mode;
	struct run_instance *in;
	struct run_slot *s;
	enum viv_err err;
	uint64_t now;

	*out = NULL;
	s = run_slot_take(pool, m);
	if (!s)
		return VIV_ERR_BUSY;
	/* One block: the instance, the mode's state, the wasm2c instance. */
	in = calloc(1, align16(sizeof(*in)) + align16(mode->state_size) + m->g->instance_size);
	if (!in) {
		run_slot_give(s);
		return VIV_ERR_NOMEM;
	}
	s->inst = in;
	in->pool = pool;
	in->slot = s;
	in->m = m;
	in->mode = mode;
	in->mode_state = (char *)in + align16(sizeof(*in));
	in->wasm = (char *)in->mode_state + align16(mode->state_size);
	in->app = app;
	in->req = req;
	in->done = done;
	in->done_arg = arg;
	in->cpu_max_ns = (uint64_t)(app->limits.cpu_ms ? app->limits.cpu_ms : 1) * 1000000u;
	now = viv_mono_ns();
	in->start_ns = now;
	in->wall_deadline_ns = now + (uint64_t)app->limits.wall_ms * 1000000u;
	run_timer_init(&in->wall_timer, fire_wall);
	run_timer_init(&in->wake_timer, fire_wake);
	viv_buf_init(&in->errln, pool->cfg.log_line_max);
	viv_buf_init(&in->resp_store, 0);
	err = mode->start(in);
	if (err) {
		end_states(in);
		s->inst = NULL;
		run_slot_give(s);
		free(in);
		return err;
	}
	run_exec_prepare(in);
	*out = in;
	resume(in, now);
	if (in->state != RUN_STATE_DONE)
		run_timer_arm(pool->loop, &in->wall_timer, in->wall_deadline_ns);
	return VIV_OK;
}

bool run_instance_done(const struct run_instance *in)
{
	return in->state == RUN_STATE_DONE;
}

enum run_outcome run_instance_outcome(const struct run_instance *in)
{
	return in->outcome;
}

const struct run_response *run_instance_response(const struct run_instance *in)
{
	return &in->resp;
}

const struct run_log_line *run_instance_logs(const struct run_instance *in, size_t *n_out)
{
	*n_out = in->n_logs;
	return in->logs;
}

const struct run_app *run_instance_app(const struct run_instance *in)
{
	return in->app;
}

void run_instance_end(struct run_instance *in)
{
	size_t i;

	if (!in)
		return;
	if (in->state == RUN_STATE_SUSPENDED) {
		/* Let it unwind through its own jump buffer. */
		in->interrupt = RUN_STOP_WALL;
		in->done = NULL;
		run_instance_wake(in);
	}
	run_timer_cancel(in->pool->loop, &in->wall_timer);
	run_timer_cancel(in->pool->loop, &in->wake_timer);
	end_states(in);
	in->m->g->free_instance(in->wasm);
	run_slot_give(in->slot);
	for (i = 0; i < in->n_logs; i++)
		free(in->logs[i].message);
	for (i = 0; i < in->n_envp; i++)
		free(in->envp[i]);
	free(in->envp);
	viv_buf_free(&in->errln);
	viv_buf_free(&in->resp_store);
	free(in->resp.headers);
	free(in);
}

/* ---- What it cost ------------------------------------------------------------------------- */

void run_instance_stats(const struct run_instance *in, struct run_instance_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->outcome = in->outcome;
	if (in->entry_ns > in->start_ns)
		out->start_ns = in->entry_ns - in->start_ns;
	if (in->end_ns > in->start_ns)
		out->run_ns = in->end_ns - in->start_ns;
	if (in->outcome == RUN_TRAPPED)
		out->trap = in->failure ? in->failure : run_trap_kind(in->trap);
	else if (in->outcome == RUN_HOST_ERROR)
		out->trap = "host_error";
	out->memory_limited = in->memory_limited;
	memcpy(out->kv_calls, in->kv_calls, sizeof(out->kv_calls));
}
