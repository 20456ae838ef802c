/* Running guest code, and stopping it: each instance runs on its slot's own
 * native stack, a coroutine that the event loop's side resumes and that
 * yields back when the guest waits for something or is done. run_current
 * names the instance whose code runs on this thread, for the runtime and the
 * signal handlers. A trap, a host call that cannot go on, or a passed
 * deadline unwind to the jump buffer at the bottom of that stack. */
#include <stdlib.h>

#include "runner_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define RUN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUN_ASAN 1
#endif
#endif

/* AddressSanitizer must know which stack the thread runs on, to clean up
 * after a longjmp, and must not see the poison that frames abandoned by a
 * trap leave on a guest stack: the slot's next instance reuses it. */
#ifdef RUN_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define asan_leave(save, lo, size) __sanitizer_start_switch_fiber(save, lo, size)
#define asan_arrive(saved, lo_out, size_out)                                                       \
	__sanitizer_finish_switch_fiber(saved, lo_out, size_out)
#define asan_unpoison(p, n) __asan_unpoison_memory_region(p, n)
#else
#define asan_leave(save, lo, size) ((void)0)
#define asan_arrive(saved, lo_out, size_out) ((void)0)
#define asan_unpoison(p, n) ((void)0)
#endif

__thread struct run_instance *run_current __attribute__((tls_model("initial-exec")));

void run_stop_guest(struct run_instance *in, enum run_stop why, int trap)
{
	in->stop = why;
	in->trap = trap;
	siglongjmp(in->jmp, 1);
}

/* ---- Traps ----------------------------------------------------------------------------- */

void wasm_rt_trap(wasm_rt_trap_t code)
{
	struct run_instance *in = run_current;

	if (!in) {
		/* A trap outside guest code is a bug in the host. */
		viv_log(VIV_ERROR, "wasm trap (%s) outside guest code", wasm_rt_strerror(code));
		abort();
	}
	run_stop_guest(in, RUN_STOP_TRAP, (int)code);
}

const char *wasm_rt_strerror(wasm_rt_trap_t trap)
{
	switch (trap) {
	case WASM_RT_TRAP_NONE:
		return "no error";
	case WASM_RT_TRAP_OOB:
		return "out of bounds memory access";
	case WASM_RT_TRAP_INT_OVERFLOW:
		return "integer overflow";
	case WASM_RT_TRAP_DIV_BY_ZERO:
		return "integer divide by zero";
	case WASM_RT_TRAP_INVALID_CONVERSION:
		return "invalid conversion to integer";
	case WASM_RT_TRAP_UNREACHABLE:
		return "unreachable executed";
	case WASM_RT_TRAP_CALL_INDIRECT:
		return "indirect call to a missing or mistyped function";
	case WASM_RT_TRAP_UNCAUGHT_EXCEPTION:
		return "uncaught exception";
	case WASM_RT_TRAP_EXHAUSTION:
		return "call stack exhausted";
	}
	return "unknown trap";
}

const char *run_trap_kind(int trap)
{
	switch ((wasm_rt_trap_t)trap) {
	case WASM_RT_TRAP_NONE:
		break;
	case WASM_RT_TRAP_OOB:
		return "out_of_bounds";
	case WASM_RT_TRAP_INT_OVERFLOW:
		return "integer_overflow";
	case WASM_RT_TRAP_DIV_BY_ZERO:
		return "division_by_zero";
	case WASM_RT_TRAP_INVALID_CONVERSION:
		return "invalid_conversion";
	case WASM_RT_TRAP_UNREACHABLE:
		return "unreachable";
	case WASM_RT_TRAP_CALL_INDIRECT:
		return "indirect_call";
	case WASM_RT_TRAP_UNCAUGHT_EXCEPTION:
		return "uncaught_exception";
	case WASM_RT_TRAP_EXHAUSTION:
		return "stack_exhausted";
	}
	return "unknown";
}

/* ---- The guest's stack ------------------------------------------------------------------ */

/* The body of every guest stack. */
static void guest_main(void *arg)
{
	struct run_instance *in = arg;
	const struct viv_guest *g = in->m->g;

	asan_arrive(NULL, &in->home_lo, &in->home_size);
	if (sigsetjmp(in->jmp, 0) == 0) {
		g->instantiate(in->wasm, in);
		if (g->initialize)
			g->initialize(in->wasm);
		in->entry_ns = viv_mono_ns();
		g->entry(in->wasm);
		in->stop = RUN_STOP_RETURNED;
	}
	in->state = RUN_STATE_DONE;
	asan_leave(NULL, in->home_lo, in->home_size);
	run_coro_switch(&in->coro, &in->home);
	abort(); /* a finished guest is never switched to again */
}

void run_exec_prepare(struct run_instance *in)
{
	struct run_slot *s = in->slot;

	asan_unpoison(s->stack_lo, (size_t)(s->stack_hi - s->stack_lo));
	run_coro_make(&in->coro, s->stack_lo, s->stack_hi, guest_main, in);
}

void run_exec_resume(struct run_instance *in, uint64_t now)
{
	/* An instance may start another from inside a host call (a request
	 * an app sends to itself): the caller is running guest code again
	 * when this returns, and is charged CPU time from then on. */
	struct run_instance *caller = run_current;

	in->ran_since_ns = now;
	in->state = RUN_STATE_RUNNING;
	atomic_signal_fence(memory_order_seq_cst);
	run_current = in;
	asan_leave(&in->asan_home, in->slot->stack_lo,
	           (size_t)(in->slot->stack_hi - in->slot->stack_lo));
	run_coro_switch(&in->home, &in->coro);
	asan_arrive(in->asan_home, NULL, NULL);
	if (caller)
		caller->ran_since_ns = viv_mono_ns();
	atomic_signal_fence(memory_order_seq_cst);
	run_current = caller;
}

void run_exec_yield(struct run_instance *in)
{
	asan_leave(&in->asan_guest, in->home_lo, in->home_size);
	run_coro_switch(&in->coro, &in->home);
	/* Resumed: back in the guest's context, perhaps from another stack
	 * than before. */
	asan_arrive(in->asan_guest, &in->home_lo, &in->home_size);
}
