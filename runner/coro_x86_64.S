/* Context switch for x86-64 (System V): guests run on their own stacks, and
 * a switch costs a few nanoseconds because it saves only what the ABI says a
 * callee must preserve, plus the SSE and x87 control words. */

	.text
	.globl run_coro_switch
	.hidden run_coro_switch
	.type run_coro_switch, @function
/* void run_coro_switch(struct run_coro *from, struct run_coro *to) */
run_coro_switch:
	.cfi_startproc
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	subq $8, %rsp
	stmxcsr (%rsp)
	fnstcw 4(%rsp)
	movq %rsp, (%rdi)
	movq (%rsi), %rsp
	ldmxcsr (%rsp)
	fldcw 4(%rsp)
	addq $8, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.cfi_endproc
	.size run_coro_switch, .-run_coro_switch

	.globl run_coro_trampoline
	.hidden run_coro_trampoline
	.type run_coro_trampoline, @function
/* The first switch to a new context "returns" here with the argument in
 * r12 and the function in r13 (see run_coro_make). The function never
 * returns; ud2 makes sure a bug cannot run on past it. */
run_coro_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq %r12, %rdi
	callq *%r13
	ud2
	.cfi_endproc
	.size run_coro_trampoline, .-run_coro_trampoline

	.section .note.GNU-stack,"",@progbits
