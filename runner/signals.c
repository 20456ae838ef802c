/* Signals of a thread that runs guests: faults in guest memory or on a
 * guest's stack guard become traps, anything else stays fatal; a tick of the
 * thread's CPU clock enforces the CPU and wall limits of the running
 * instance. Both handlers find that instance through run_current (exec.c),
 * which a signal handler can reach no other way. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "runner_int.h"

/* Deadlines are checked on ticks of the worker thread's own CPU clock, so
 * there is one timer per thread instead of one per request, and a worker
 * that waits in epoll is not woken at all.
 *
 * A tick does not stand for RUN_TICK_NS of CPU time: the kernel checks CPU
 * timers on its scheduler tick (every 4 ms at HZ=250), so a 1 ms timer fires
 * once per 4 ms and counting its signals made a 500 ms limit stop a loop
 * after 2 s. The handler reads the thread's CPU clock instead and charges
 * the running instance with what the thread used since the previous tick,
 * capped by the time since the instance started running, so that what the
 * event loop and other instances used before it is not charged to it. A
 * limit is then enforced within one scheduler tick, and a request costs no
 * system call: the clock is read on ticks only. */
#define RUN_TICK_NS 1000000L
#define RUN_ALTSTACK_BYTES ((size_t)256 << 10)

static int tick_signal(void)
{
	return SIGRTMIN + 3;
}

static uintptr_t fault_pc(void *ucv)
{
	ucontext_t *uc = ucv;

#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "Vivarium's runner needs the faulting instruction address on this architecture"
#endif
}

static bool pc_in_guest(const struct run_instance *in, void *ucv)
{
	uintptr_t pc = fault_pc(ucv);

	return pc >= in->m->text_lo && pc < in->m->text_hi;
}

/* Leaves a signal handler for the guest's jump buffer. The signal is still
 * blocked inside the handler and sigsetjmp did not save the mask (saving it
 * costs a system call per request), so unblock it first. */
static void unwind_from_signal(struct run_instance *in, int sig, enum run_stop why, int trap)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	in->stop = why;
	in->trap = trap;
	siglongjmp(in->jmp, 1);
}

static void say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		return;
}

/* The handlers the runner's replaced. */
static struct sigaction prev_segv, prev_bus;

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	struct run_instance *in = run_current;
	uint8_t *addr = si->si_addr;
	struct sigaction dfl, *prev;

	if (in && in->state == RUN_STATE_RUNNING && pc_in_guest(in, ucv)) {
		struct run_slot *s = in->slot;

		if (addr >= s->mem && addr < s->mem + RUN_SLOT_RESERVE)
			unwind_from_signal(in, sig, RUN_STOP_TRAP, WASM_RT_TRAP_OOB);
		if (addr >= s->guard_lo && addr < s->stack_lo)
			unwind_from_signal(in, sig, RUN_STOP_TRAP, WASM_RT_TRAP_EXHAUSTION);
	}
	/* Not provably the guest's: a bug in the host. Die loudly: put back
	 * what handled the signal before the runner (the default action, or
	 * a sanitizer that reports the fault) and return, which re-runs the
	 * faulting instruction. */
	say(sig == SIGBUS ? "vivd: fatal SIGBUS outside guest memory\n"
	                  : "vivd: fatal SIGSEGV outside guest memory\n");
	prev = sig == SIGBUS ? &prev_bus : &prev_segv;
	if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler == SIG_IGN) {
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		prev = &dfl;
	}
	sigaction(sig, prev, NULL);
}

/* The thread's CPU time when the tick last looked at it. */
static __thread uint64_t tick_cpu_ns;

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_tick(int sig, siginfo_t *si, void *ucv)
{
	struct run_instance *in = run_current;
	enum run_stop why = RUN_STOP_NONE;
	uint64_t cpu, used, now, since;
	int saved_errno = errno;

	(void)si;
	cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	used = cpu - tick_cpu_ns;
	tick_cpu_ns = cpu;
	if (!in || in->state != RUN_STATE_RUNNING) {
		errno = saved_errno;
		return;
	}
	now = clock_ns(CLOCK_MONOTONIC);
	since = now > in->ran_since_ns ? now - in->ran_since_ns : 0;
	in->cpu_used_ns += used < since ? used : since;
	if (in->cpu_used_ns > in->cpu_max_ns)
		why = RUN_STOP_CPU;
	else if (now > in->wall_deadline_ns)
		why = RUN_STOP_WALL;
	errno = saved_errno;
	if (why == RUN_STOP_NONE)
		return;
	if (pc_in_guest(in, ucv))
		unwind_from_signal(in, sig, why, 0);
	/* In host code: the next host call, or the next tick that finds the
	 * guest's own code running, ends it. */
	in->interrupt = why;
}

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
static int handlers_err;

static void install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &prev_segv) || sigaction(SIGBUS, &sa, &prev_bus))
		handlers_err = errno;
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	if (sigaction(tick_signal(), &sa, NULL))
		handlers_err = errno;
}

static __thread bool thread_ready;
static __thread timer_t thread_tick;

/* Arms (every RUN_TICK_NS of the thread's CPU time) or disarms the tick. */
static enum viv_err tick_set(bool on)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_interval.tv_nsec = RUN_TICK_NS;
		its.it_value = its.it_interval;
		tick_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	}
	return timer_settime(thread_tick, 0, &its, NULL) ? VIV_ERR_INTERNAL : VIV_OK;
}

enum viv_err run_thread_cpu_limit(bool on)
{
	if (!thread_ready)
		return VIV_ERR_INVALID;
	return tick_set(on);
}

enum viv_err run_thread_init(void)
{
	struct sigevent sev;
	stack_t ss;
	void *alt;

	if (thread_ready)
		return VIV_OK;
	pthread_once(&handlers_once, install_handlers);
	if (handlers_err)
		return VIV_ERR_INTERNAL;
	alt = mmap(NULL, RUN_ALTSTACK_BYTES, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (alt == MAP_FAILED)
		return VIV_ERR_NOMEM;
	ss.ss_sp = alt;
	ss.ss_size = RUN_ALTSTACK_BYTES;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		munmap(alt, RUN_ALTSTACK_BYTES);
		return VIV_ERR_INTERNAL;
	}
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = tick_signal();
	/* glibc 2.36 names this field only through its union. */
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &thread_tick))
		return VIV_ERR_INTERNAL;
	if (tick_set(true)) {
		timer_delete(thread_tick);
		return VIV_ERR_INTERNAL;
	}
	thread_ready = true;
	return VIV_OK;
}
