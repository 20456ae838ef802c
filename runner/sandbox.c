/* The sandbox: loading artifacts, pools of memory slots and stacks, the
 * fault and deadline signals, and the life of one instance from a fresh slot
 * to a response. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

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
#define asan_arrive(saved, lo_out, size_out) \
	__sanitizer_finish_switch_fiber(saved, lo_out, size_out)
#define asan_unpoison(p, n) __asan_unpoison_memory_region(p, n)
#else
#define asan_leave(save, lo, size) ((void)0)
#define asan_arrive(saved, lo_out, size_out) ((void)0)
#define asan_unpoison(p, n) ((void)0)
#endif

__thread struct run_instance *run_current __attribute__((tls_model("initial-exec")));

/* ---- Loading artifacts -------------------------------------------------------------- */

struct text_search {
	uintptr_t base;
	const char *name;
	uintptr_t lo, hi;
};

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct text_search *ts = arg;
	int i;

	(void)size;
	if (info->dlpi_addr != ts->base || !info->dlpi_name || strcmp(info->dlpi_name, ts->name))
		return 0;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo, hi;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		lo = info->dlpi_addr + ph->p_vaddr;
		hi = lo + ph->p_memsz;
		if (!ts->lo || lo < ts->lo)
			ts->lo = lo;
		if (hi > ts->hi)
			ts->hi = hi;
	}
	return 1;
}

static bool hash_is_hex(const char *h)
{
	size_t i;

	for (i = 0; i < VIV_SHA256_HEX_LEN; i++) {
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	}
	return h[i] == '\0';
}

enum viv_err run_module_load(const char *path, const char *expect_hash, struct run_module **out,
			     char *err, size_t errlen)
{
	struct run_module *m = NULL;
	const struct viv_guest *g;
	struct link_map *lm = NULL;
	struct text_search ts = {0};
	enum viv_err rc = VIV_ERR_INVALID;
	void *dl;

	*out = NULL;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		viv_errf(err, errlen, "cannot load artifact: %s", dlerror());
		return VIV_ERR_IO;
	}
	g = dlsym(dl, VIV_GUEST_SYMBOL);
	if (!g) {
		viv_errf(err, errlen, "%s has no %s symbol; it is not a Vivarium artifact", path,
			 VIV_GUEST_SYMBOL);
		goto out;
	}
	if (g->abi != VIV_GUEST_ABI) {
		viv_errf(err, errlen,
			 "%s was built for guest ABI %u but this runner speaks %u; redeploy the app",
			 path, g->abi, VIV_GUEST_ABI);
		goto out;
	}
	if (!g->hash || !hash_is_hex(g->hash) || (expect_hash && strcmp(g->hash, expect_hash))) {
		viv_errf(err, errlen, "%s does not hold artifact %s", path,
			 expect_hash ? expect_hash : "(any)");
		goto out;
	}
	if ((g->mode != VIV_GUEST_CGI && g->mode != VIV_GUEST_HOSTCALL) || !g->entry ||
	    !g->instantiate || !g->free_instance || !g->init_module || g->instance_size == 0 ||
	    g->instance_size > (1u << 20)) {
		viv_errf(err, errlen, "%s has a malformed %s record", path, VIV_GUEST_SYMBOL);
		goto out;
	}
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
		viv_errf(err, errlen, "cannot inspect %s: %s", path, dlerror());
		goto out;
	}
	ts.base = lm->l_addr;
	ts.name = lm->l_name;
	dl_iterate_phdr(find_text, &ts);
	if (!ts.lo) {
		viv_errf(err, errlen, "%s has no executable segment", path);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = VIV_ERR_NOMEM;
		goto out;
	}
	m->refs = 1;
	m->dl = dl;
	m->g = g;
	memcpy(m->hash, g->hash, sizeof(m->hash));
	m->text_lo = ts.lo;
	m->text_hi = ts.hi;
	if (!wasm_rt_is_initialized())
		wasm_rt_init();
	g->init_module();
	*out = m;
	return VIV_OK;
out:
	dlclose(dl);
	return rc;
}

struct run_module *run_module_ref(struct run_module *m)
{
	m->refs++;
	return m;
}

void run_module_release(struct run_module *m)
{
	if (!m || --m->refs > 0)
		return;
	dlclose(m->dl);
	free(m);
}

const char *run_module_mode(const struct run_module *m)
{
	return m->g->mode == VIV_GUEST_CGI ? "cgi" : "hostcall";
}

const char *run_module_hash(const struct run_module *m)
{
	return m->hash;
}

/* ---- Signals: faults and the CPU tick ---------------------------------------------- */

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

/* ---- Pools ------------------------------------------------------------------------ */

void run_pool_config_defaults(struct run_pool_config *cfg)
{
	cfg->slots = 64;
	cfg->stack_bytes = (size_t)2 << 20;
	cfg->response_max = (size_t)16 << 20;
	cfg->log_line_max = 4096;
	cfg->log_bytes_max = (size_t)64 << 10;
	cfg->outbound_allow_private = false;
	cfg->outbound_body_max = (size_t)16 << 20;
	cfg->outbound_timeout_ms = 30000;
	cfg->outbound_max = 32;
	cfg->cpu_limit = true;
	cfg->clean_in_place_max = (size_t)2 << 20;
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

enum viv_err run_pool_create(const struct run_pool_config *cfg, struct run_pool **out)
{
	struct run_pool *p;
	size_t stack = page_round(cfg->stack_bytes), per_stack, i;
	uint8_t *mem = MAP_FAILED, *stacks = MAP_FAILED;
	enum viv_err err = VIV_ERR_NOMEM;
	struct epoll_event ev;

	*out = NULL;
	if (cfg->slots == 0 || stack < RUN_HOST_STACK_HEADROOM * 2)
		return VIV_ERR_INVALID;
	p = calloc(1, sizeof(*p));
	if (!p)
		return VIV_ERR_NOMEM;
	p->cfg = *cfg;
	p->cfg.stack_bytes = stack;
	p->n_slots = cfg->slots;
	p->timerfd = -1;
	p->epfd = -1;
	p->dns_fd = -1;
	p->slots = calloc(cfg->slots, sizeof(*p->slots));
	if (!p->slots)
		goto out;
	mem = mmap(NULL, RUN_SLOT_RESERVE * cfg->slots, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		goto out;
	per_stack = RUN_STACK_GUARD + stack;
	stacks = mmap(NULL, per_stack * cfg->slots, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (stacks == MAP_FAILED)
		goto out;
	for (i = 0; i < cfg->slots; i++) {
		struct run_slot *s = &p->slots[i];

		s->pool = p;
		s->index = (unsigned)i;
		s->mem = mem + i * RUN_SLOT_RESERVE;
		s->guard_lo = stacks + i * per_stack;
		s->stack_lo = s->guard_lo + RUN_STACK_GUARD;
		s->stack_hi = s->stack_lo + stack;
		if (mprotect(s->stack_lo, stack, PROT_READ | PROT_WRITE))
			goto out;
		s->next_free = (unsigned)i + 1;
	}
	p->free_head = 0;
	p->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->timerfd < 0 || p->epfd < 0) {
		err = VIV_ERR_IO;
		goto out;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = p->timerfd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timerfd, &ev)) {
		err = VIV_ERR_IO;
		goto out;
	}
	err = run_outbound_init(p);
	if (!err)
		err = run_dns_init(p);
	if (err)
		goto out;
	*out = p;
	return VIV_OK;
out:
	if (p->timerfd >= 0)
		close(p->timerfd);
	if (p->epfd >= 0)
		close(p->epfd);
	if (mem != MAP_FAILED)
		munmap(mem, RUN_SLOT_RESERVE * cfg->slots);
	if (stacks != MAP_FAILED)
		munmap(stacks, (RUN_STACK_GUARD + stack) * cfg->slots);
	free(p->slots);
	free(p);
	return err;
}

void run_pool_destroy(struct run_pool *p)
{
	if (!p)
		return;
	if (p->n_busy)
		viv_log(VIV_WARN, "destroying a pool with %u instances still running", p->n_busy);
	munmap(p->slots[0].mem, RUN_SLOT_RESERVE * p->n_slots);
	munmap(p->slots[0].guard_lo, (RUN_STACK_GUARD + p->cfg.stack_bytes) * p->n_slots);
	run_outbound_free(p);
	run_dns_free(p);
	if (p->timerfd >= 0)
		close(p->timerfd);
	if (p->epfd >= 0)
		close(p->epfd);
	free(p->heap);
	free(p->slots);
	free(p);
}

int run_pool_fd(const struct run_pool *p)
{
	return p->epfd;
}

void run_pool_set_services(struct run_pool *p, const struct run_services *services)
{
	p->services = *services;
}

/* Returns the slot's memory to zeroes for the next instance. A small memory
 * is cleared in place: its pages stay mapped, so the next instance takes no
 * page faults and the kernel flushes no TLB entries, which cost far more
 * than the memset (on a 2-core VM, 1.3 us per C hello request against 69 us
 * with madvise). A large one is handed back to the kernel instead, so that
 * one greedy request does not keep its memory resident. */
static void slot_clean(struct run_slot *s)
{
	if (s->used_bytes > s->pool->cfg.clean_in_place_max)
		madvise(s->mem, s->used_bytes, MADV_DONTNEED);
	else if (s->used_bytes)
		memset(s->mem, 0, s->used_bytes);
	s->used_bytes = 0;
}

/* ---- Timers ----------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	return viv_mono_ns();
}

static void heap_swap(struct run_pool *p, size_t a, size_t b)
{
	struct run_timer *t = p->heap[a];

	p->heap[a] = p->heap[b];
	p->heap[b] = t;
	p->heap[a]->heap_index = a;
	p->heap[b]->heap_index = b;
}

static void heap_up(struct run_pool *p, size_t i)
{
	while (i > 0 && p->heap[(i - 1) / 2]->at_ns > p->heap[i]->at_ns) {
		heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct run_pool *p, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < p->heap_len && p->heap[l]->at_ns < p->heap[m]->at_ns)
			m = l;
		if (r < p->heap_len && p->heap[r]->at_ns < p->heap[m]->at_ns)
			m = r;
		if (m == i)
			return;
		heap_swap(p, i, m);
		i = m;
	}
}

/* Points the timerfd at the earliest timer, if that changed. */
static void timerfd_sync(struct run_pool *p)
{
	struct itimerspec its;
	uint64_t at = p->heap_len ? p->heap[0]->at_ns : 0;

	if (at == p->timerfd_at)
		return;
	memset(&its, 0, sizeof(its));
	if (at) {
		its.it_value.tv_sec = (time_t)(at / 1000000000u);
		its.it_value.tv_nsec = (long)(at % 1000000000u);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(p->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	p->timerfd_at = at;
}

void run_timer_arm(struct run_pool *p, struct run_timer *t, uint64_t at_ns)
{
	if (t->heap_index != SIZE_MAX)
		run_timer_cancel(p, t);
	if (p->heap_len == p->heap_alloc) {
		size_t na = p->heap_alloc ? p->heap_alloc * 2 : 64;
		struct run_timer **nh = realloc(p->heap, na * sizeof(*nh));
		if (!nh)
			abort();
		p->heap = nh;
		p->heap_alloc = na;
	}
	t->at_ns = at_ns;
	t->heap_index = p->heap_len;
	p->heap[p->heap_len++] = t;
	heap_up(p, t->heap_index);
	timerfd_sync(p);
}

void run_timer_cancel(struct run_pool *p, struct run_timer *t)
{
	size_t i = t->heap_index;

	if (i == SIZE_MAX)
		return;
	p->heap_len--;
	if (i != p->heap_len) {
		p->heap[i] = p->heap[p->heap_len];
		p->heap[i]->heap_index = i;
		heap_down(p, i);
		heap_up(p, i);
	}
	t->heap_index = SIZE_MAX;
	timerfd_sync(p);
}

int run_pool_poll(struct run_pool *p)
{
	struct epoll_event evs[64];
	uint64_t now, expirations;
	int n, i;

	n = epoll_wait(p->epfd, evs, 64, 0);
	for (i = 0; i < n; i++) {
		if (evs[i].data.fd == p->dns_fd) {
			run_dns_event(p);
		} else if (evs[i].data.fd == p->timerfd) {
			if (read(p->timerfd, &expirations, sizeof(expirations)) < 0 &&
			    errno != EAGAIN)
				viv_log(VIV_WARN, "timerfd read: %s", strerror(errno));
			p->timerfd_at = 0;
		} else {
			run_outbound_socket(p, evs[i].data.fd, evs[i].events);
		}
	}
	now = mono_ns();
	while (p->heap_len && p->heap[0]->at_ns <= now) {
		struct run_timer *t = p->heap[0];

		run_timer_cancel(p, t);
		t->fire(t);
		now = mono_ns();
	}
	timerfd_sync(p);
	if (!p->heap_len)
		return -1;
	return (int)((p->heap[0]->at_ns - now + 999999) / 1000000);
}

/* ---- Instances --------------------------------------------------------------------- */

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

void run_stop_guest(struct run_instance *in, enum run_stop why, int trap)
{
	in->stop = why;
	in->trap = trap;
	siglongjmp(in->jmp, 1);
}

void run_hostcall_enter(struct run_instance *in)
{
	uint8_t probe;

	if ((size_t)(&probe - in->slot->stack_lo) < RUN_HOST_STACK_HEADROOM)
		run_stop_guest(in, RUN_STOP_TRAP, WASM_RT_TRAP_EXHAUSTION);
	if (in->interrupt)
		run_stop_guest(in, (enum run_stop)in->interrupt, 0);
}

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
		in->entry_ns = mono_ns();
		g->entry(in->wasm);
		in->stop = RUN_STOP_RETURNED;
	}
	in->state = RUN_STATE_DONE;
	asan_leave(NULL, in->home_lo, in->home_size);
	run_coro_switch(&in->coro, &in->home);
	abort(); /* a finished guest is never switched to again */
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

static void flush_stderr(struct run_instance *in)
{
	if (in->errln.len)
		run_log_add(in, "stderr", in->errln.data, in->errln.len);
	viv_buf_free(&in->errln);
}

/* The response a host-call guest built through its outgoing handle. */
static void finish_hostcall(struct run_instance *in)
{
	if (in->hc && in->hc->panicked) {
		in->outcome = RUN_TRAPPED;
		run_error_response(in, 500, "The app failed while handling this request.\n");
		return;
	}
	in->outcome = RUN_DONE;
	if (in->hc) {
		run_hc_response(in);
		return;
	}
	/* It never touched its response: 200, no headers, empty body. */
	run_error_response(in, 200, "");
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
		if (in->m->g->mode == VIV_GUEST_HOSTCALL) {
			finish_hostcall(in);
			break;
		}
		if (in->out_overflow || (run_cgi_response(in) &&
					 in->resp.body_len > in->pool->cfg.response_max)) {
			in->outcome = RUN_TOO_BIG;
			snprintf(msg, sizeof(msg),
				 "the response was larger than the limit of %zu bytes",
				 in->pool->cfg.response_max);
			run_log_add(in, "trap", msg, strlen(msg));
			run_error_response(in, 500, "The app's response was too large.\n");
		} else if (in->resp.status) {
			in->outcome = RUN_DONE;
		} else {
			in->outcome = RUN_BAD_OUTPUT;
			run_error_response(in, 500, "The app did not produce a valid response.\n");
		}
		break;
	case RUN_STOP_TRAP:
		in->outcome = RUN_TRAPPED;
		if (in->hc && in->hc->panicked) {
			run_error_response(in, 500, "The app failed while handling this request.\n");
			break;
		}
		snprintf(msg, sizeof(msg), "trap: %s",
			 wasm_rt_strerror((wasm_rt_trap_t)in->trap));
		run_log_add(in, "trap", msg, strlen(msg));
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

static void fire_wall(struct run_timer *t);

/* Runs the guest until it finishes or suspends; now is CLOCK_MONOTONIC. */
static void resume(struct run_instance *in, uint64_t now)
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
		caller->ran_since_ns = mono_ns();
	atomic_signal_fence(memory_order_seq_cst);
	run_current = caller;
	if (in->state == RUN_STATE_DONE) {
		in->end_ns = mono_ns();
		run_timer_cancel(in->pool, &in->wall_timer);
		run_timer_cancel(in->pool, &in->wake_timer);
		finish(in);
	}
}

void run_instance_suspend(struct run_instance *in)
{
	in->state = RUN_STATE_SUSPENDED;
	asan_leave(&in->asan_guest, in->home_lo, in->home_size);
	run_coro_switch(&in->coro, &in->home);
	/* Resumed by run_instance_wake(): back in the guest's context, perhaps
	 * from another stack than before. */
	asan_arrive(in->asan_guest, &in->home_lo, &in->home_size);
	if (in->interrupt)
		run_stop_guest(in, (enum run_stop)in->interrupt, 0);
}

void run_instance_wake(struct run_instance *in)
{
	if (in->state != RUN_STATE_SUSPENDED)
		return;
	resume(in, mono_ns());
	if (in->state == RUN_STATE_DONE && in->done)
		in->done(in, in->done_arg);
}

static void fire_wall(struct run_timer *t)
{
	struct run_instance *in = (struct run_instance *)((char *)t -
							  offsetof(struct run_instance, wall_timer));

	in->interrupt = RUN_STOP_WALL;
	run_instance_wake(in);
}

enum viv_err run_instance_start(struct run_pool *pool, struct run_module *m,
				const struct run_app *app, const struct run_request *req,
				run_done_fn done, void *arg, struct run_instance **out)
{
	struct run_instance *in;
	struct run_slot *s;
	uint64_t now;

	*out = NULL;
	if (pool->free_head >= pool->n_slots)
		return VIV_ERR_BUSY;
	in = calloc(1, sizeof(*in) + m->g->instance_size + 16);
	if (!in)
		return VIV_ERR_NOMEM;
	s = &pool->slots[pool->free_head];
	pool->free_head = s->next_free;
	pool->n_busy++;
	s->inst = in;
	in->pool = pool;
	in->slot = s;
	in->m = run_module_ref(m);
	in->app = app;
	in->req = req;
	in->done = done;
	in->done_arg = arg;
	in->wasm = (void *)(((uintptr_t)(in + 1) + 15) & ~(uintptr_t)15);
	in->cpu_max_ns = (uint64_t)(app->limits.cpu_ms ? app->limits.cpu_ms : 1) * 1000000u;
	now = mono_ns();
	in->start_ns = now;
	in->wall_deadline_ns = now + (uint64_t)app->limits.wall_ms * 1000000u;
	in->wall_timer.heap_index = SIZE_MAX;
	in->wall_timer.fire = fire_wall;
	in->wake_timer.heap_index = SIZE_MAX;
	/* The body's cap plus room for the CGI header block. */
	viv_buf_init(&in->out, pool->cfg.response_max + RUN_CGI_HEADERS_MAX);
	viv_buf_init(&in->errln, pool->cfg.log_line_max);
	viv_buf_init(&in->resp_store, 0);
	asan_unpoison(s->stack_lo, (size_t)(s->stack_hi - s->stack_lo));
	run_coro_make(&in->coro, s->stack_lo, s->stack_hi, guest_main, in);
	*out = in;
	resume(in, now);
	if (in->state != RUN_STATE_DONE)
		run_timer_arm(pool, &in->wall_timer, in->wall_deadline_ns);
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

void run_instance_end(struct run_instance *in)
{
	struct run_pool *p;
	struct run_slot *s;
	size_t i;

	if (!in)
		return;
	p = in->pool;
	s = in->slot;
	if (in->state == RUN_STATE_SUSPENDED) {
		/* Let it unwind through its own jump buffer. */
		in->interrupt = RUN_STOP_WALL;
		in->done = NULL;
		run_instance_wake(in);
	}
	run_timer_cancel(p, &in->wall_timer);
	run_timer_cancel(p, &in->wake_timer);
	run_hc_free(in);
	run_dns_cancel(in);
	run_fs_close(in);
	in->m->g->free_instance(in->wasm);
	slot_clean(s);
	s->inst = NULL;
	s->next_free = p->free_head;
	p->free_head = s->index;
	p->n_busy--;
	run_module_release(in->m);
	for (i = 0; i < in->n_logs; i++)
		free(in->logs[i].message);
	for (i = 0; i < in->n_envp; i++)
		free(in->envp[i]);
	free(in->envp);
	viv_buf_free(&in->out);
	viv_buf_free(&in->errln);
	viv_buf_free(&in->resp_store);
	viv_buf_free(&in->scratch);
	free(in->resp.headers);
	free(in);
}

const char *run_kv_op_name(enum run_kv_op op)
{
	static const char *const names[RUN_KV_OPS] = {"get", "insert", "upsert", "append",
						      "remove"};

	return (unsigned)op < RUN_KV_OPS ? names[op] : "unknown";
}

/* The label of a wasm trap, for metrics: stable words, unlike the phrases
 * of wasm_rt_strerror() that logs show. */
static const char *trap_kind(wasm_rt_trap_t trap)
{
	switch (trap) {
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

void run_instance_stats(const struct run_instance *in, struct run_instance_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->outcome = in->outcome;
	if (in->entry_ns > in->start_ns)
		out->start_ns = in->entry_ns - in->start_ns;
	if (in->end_ns > in->start_ns)
		out->run_ns = in->end_ns - in->start_ns;
	if (in->outcome == RUN_TRAPPED)
		out->trap = in->hc && in->hc->panicked ? "panic"
							: trap_kind((wasm_rt_trap_t)in->trap);
	else if (in->outcome == RUN_HOST_ERROR)
		out->trap = "host_error";
	out->memory_limited = in->memory_limited;
	memcpy(out->kv_calls, in->kv_calls, sizeof(out->kv_calls));
}

const struct run_app *run_instance_app(const struct run_instance *in)
{
	return in->app;
}
