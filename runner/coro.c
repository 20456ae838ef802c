/* Setting up guest stacks for run_coro_switch: the x86-64 assembly in
 * coro_x86_64.S, or ucontext on other architectures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner_int.h"

#if defined(__x86_64__)

void run_coro_trampoline(void);

void run_coro_make(struct run_coro *to, void *lo, void *hi, void (*fn)(void *), void *arg)
{
	uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top;
	uint32_t ctl[2] = {0x1f80, 0x037f}; /* MXCSR and x87 control word defaults */

	(void)lo;
	/* The frame run_coro_switch pops: control words, r15, r14, r13, r12,
	 * rbx, rbp, then the return address. After that ret the stack pointer
	 * is 16-byte aligned, as a call site needs it. */
	*--sp = (uint64_t)(uintptr_t)run_coro_trampoline;
	*--sp = 0;                        /* rbp */
	*--sp = 0;                        /* rbx */
	*--sp = (uint64_t)(uintptr_t)arg; /* r12 */
	*--sp = (uint64_t)(uintptr_t)fn;  /* r13 */
	*--sp = 0;                        /* r14 */
	*--sp = 0;                        /* r15 */
	--sp;
	memcpy(sp, ctl, sizeof(ctl));
	to->sp = sp;
}

#else

static __thread void (*start_fn)(void *);
static __thread void *start_arg;

static void coro_start(void)
{
	start_fn(start_arg);
	abort();
}

void run_coro_make(struct run_coro *to, void *lo, void *hi, void (*fn)(void *), void *arg)
{
	getcontext(&to->uc);
	to->uc.uc_stack.ss_sp = lo;
	to->uc.uc_stack.ss_size = (size_t)((uint8_t *)hi - (uint8_t *)lo);
	to->uc.uc_link = NULL;
	to->fn = fn;
	to->arg = arg;
	makecontext(&to->uc, coro_start, 0);
}

void run_coro_switch(struct run_coro *from, struct run_coro *to)
{
	if (to->fn) {
		start_fn = to->fn;
		start_arg = to->arg;
		to->fn = NULL;
	}
	swapcontext(&from->uc, &to->uc);
}

#endif
