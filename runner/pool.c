/* Pools of sandboxes: memory slots reserved once (RUN_SLOT_RESERVE of
 * address space each) with a native stack and its guard for each, handed to
 * instances and cleaned when they end; and the pool's thread: its signals
 * and its event loop. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner_int.h"

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
	cfg->clean_whole = false;
	cfg->pagemap_fd = -1;
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

/* Slots in chunk i of p's memory reservations. */
static size_t chunk_slots(const struct run_pool *p, size_t i)
{
	size_t left = p->n_slots - i * RUN_CHUNK_SLOTS;

	return left < RUN_CHUNK_SLOTS ? left : RUN_CHUNK_SLOTS;
}

/* Gives back the chunks reserved so far. */
static void unreserve(struct run_pool *p)
{
	size_t i;

	for (i = 0; p->chunks && i < p->n_chunks; i++) {
		if (p->chunks[i])
			munmap(p->chunks[i], RUN_SLOT_RESERVE * chunk_slots(p, i));
	}
}

/* The thread a pool belongs to runs guests: it needs the signal set-up, and
 * the CPU tick off when the configuration says so. */
static enum viv_err thread_setup(const struct run_pool_config *cfg)
{
	enum viv_err err = run_thread_init();

	if (!err && !cfg->cpu_limit)
		err = run_thread_cpu_limit(false);
	return err;
}

enum viv_err run_pool_create(const struct run_pool_config *cfg, struct run_pool **out)
{
	struct run_pool *p;
	size_t stack = page_round(cfg->stack_bytes), per_stack, i;
	uint8_t *stacks = MAP_FAILED;
	enum viv_err err;

	*out = NULL;
	if (cfg->slots == 0 || stack < RUN_HOST_STACK_HEADROOM * 2)
		return VIV_ERR_INVALID;
	err = thread_setup(cfg);
	if (err)
		return err;
	err = VIV_ERR_NOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		return VIV_ERR_NOMEM;
	p->pagemap_fd = -1;
	p->cfg = *cfg;
	p->cfg.stack_bytes = stack;
	p->n_slots = cfg->slots;
	p->slots = calloc(cfg->slots, sizeof(*p->slots));
	p->n_chunks = (cfg->slots + RUN_CHUNK_SLOTS - 1) / RUN_CHUNK_SLOTS;
	p->chunks = calloc(p->n_chunks, sizeof(*p->chunks));
	if (!p->slots || !p->chunks)
		goto out;
	/* The slots' memories in chunks, each a reservation of its own: the
	 * address space has room for about 16,000 slots, but not in one
	 * piece (a PIE program sits at about 85 TiB of the 128). */
	for (i = 0; i < p->n_chunks; i++) {
		p->chunks[i] = mmap(NULL, RUN_SLOT_RESERVE * chunk_slots(p, i), PROT_NONE,
		                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p->chunks[i] == MAP_FAILED) {
			p->chunks[i] = NULL;
			viv_log(VIV_ERROR,
			        "cannot reserve the address space of %u sandbox slots (%zu GiB "
			        "each): %zu fit",
			        cfg->slots, RUN_SLOT_RESERVE >> 30, i * RUN_CHUNK_SLOTS);
			goto out;
		}
	}
	per_stack = RUN_STACK_GUARD + stack;
	stacks = mmap(NULL, per_stack * cfg->slots, PROT_NONE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (stacks == MAP_FAILED)
		goto out;
	for (i = 0; i < cfg->slots; i++) {
		struct run_slot *s = &p->slots[i];

		s->pool = p;
		s->index = (unsigned)i;
		s->mem = p->chunks[i / RUN_CHUNK_SLOTS] + (i % RUN_CHUNK_SLOTS) * RUN_SLOT_RESERVE;
		s->guard_lo = stacks + i * per_stack;
		s->stack_lo = s->guard_lo + RUN_STACK_GUARD;
		s->stack_hi = s->stack_lo + stack;
		if (mprotect(s->stack_lo, stack, PROT_READ | PROT_WRITE))
			goto out;
		s->next_free = (unsigned)i + 1;
	}
	p->free_head = 0;
	/* Which pages of a memory the kernel has mapped: the others were never
	 * written, so only the mapped ones need zeroing (slot_clean()). */
	if (!cfg->clean_whole && cfg->pagemap_fd >= 0)
		p->pagemap_fd = cfg->pagemap_fd;
	else if (!cfg->clean_whole)
		p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	err = run_loop_create(&p->loop);
	if (err)
		goto out;
	*out = p;
	return VIV_OK;
out:
	unreserve(p);
	if (stacks != MAP_FAILED)
		munmap(stacks, (RUN_STACK_GUARD + stack) * cfg->slots);
	if (p->pagemap_fd >= 0 && p->pagemap_fd != p->cfg.pagemap_fd)
		close(p->pagemap_fd);
	free(p->slots);
	free(p->chunks);
	free(p);
	return err;
}

void run_pool_destroy(struct run_pool *p)
{
	if (!p)
		return;
	if (p->n_busy)
		viv_log(VIV_WARN, "destroying a pool with %u instances still running", p->n_busy);
	unreserve(p);
	munmap(p->slots[0].guard_lo, (RUN_STACK_GUARD + p->cfg.stack_bytes) * p->n_slots);
	run_loop_destroy(p->loop);
	if (p->pagemap_fd >= 0 && p->pagemap_fd != p->cfg.pagemap_fd)
		close(p->pagemap_fd);
	free(p->slots);
	free(p->chunks);
	free(p);
}

int run_pool_fd(const struct run_pool *p)
{
	return run_loop_fd(p->loop);
}

int run_pool_poll(struct run_pool *p)
{
	return run_loop_poll(p->loop);
}

void run_pool_set_services(struct run_pool *p, const struct run_services *services)
{
	p->services = *services;
}

/* ---- Slots ------------------------------------------------------------------------------ */

struct run_slot *run_slot_take(struct run_pool *p, struct run_module *m)
{
	struct run_slot *s;

	if (p->free_head >= p->n_slots)
		return NULL;
	s = &p->slots[p->free_head];
	p->free_head = s->next_free;
	p->n_busy++;
	s->module = run_module_ref(m);
	return s;
}

/* Pages of a memory whose pagemap entries one read takes. */
#define CLEAN_BATCH 512
/* A pagemap entry's bits: the page is mapped, or swapped out (migration
 * entries count as swapped). An entry with neither has no page behind it:
 * the first access gets a zeroed one. */
#define PM_PRESENT ((uint64_t)1 << 63)
#define PM_SWAPPED ((uint64_t)1 << 62)

/* Zeroes the pages of [mem, mem + bytes) that the kernel has a page for,
 * runs of them at a time; false when the pagemap could not be read (nothing
 * is known then). A page the kernel never mapped was never written, by the
 * guest or by the host: every write maps one. So the pages a request never
 * touched are not touched here either, which on a 2-core VM made the C
 * hello's 128 KiB memory cost one read of 256 bytes and 3 pages of memset
 * instead of 32. A page that stays mapped after it is zeroed is zeroed
 * again after every request; memories are small here (clean_in_place_max),
 * so those are few. */
static bool clean_mapped(int fd, uint8_t *mem, size_t bytes, size_t page)
{
	uint64_t ent[CLEAN_BATCH];
	size_t pages = bytes / page, i, n, j, run = 0;

	for (i = 0; i < pages; i += n) {
		off_t at = (off_t)(((uintptr_t)mem / page + i) * sizeof(ent[0]));
		ssize_t got;

		n = pages - i < CLEAN_BATCH ? pages - i : CLEAN_BATCH;
		got = pread(fd, ent, n * sizeof(ent[0]), at);
		if (got != (ssize_t)(n * sizeof(ent[0])))
			return false;
		for (j = 0; j < n; j++) {
			if (ent[j] & (PM_PRESENT | PM_SWAPPED)) {
				run++;
				continue;
			}
			if (run)
				memset(mem + (i + j - run) * page, 0, run * page);
			run = 0;
		}
		if (run)
			memset(mem + (i + n - run) * page, 0, run * page);
		run = 0;
	}
	return true;
}

/* Returns the slot's memory to zeroes for the next instance. A small memory
 * is cleared in place: its pages stay mapped, so the next instance takes no
 * page faults and the kernel flushes no TLB entries, which cost far more
 * than the memset (on a 2-core VM, 1.3 us per C hello request against 69 us
 * with madvise). A large one is handed back to the kernel instead, so that
 * one greedy request does not keep its memory resident. */
static void slot_clean(struct run_slot *s)
{
	struct run_pool *p = s->pool;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (s->used_bytes > p->cfg.clean_in_place_max)
		madvise(s->mem, s->used_bytes, MADV_DONTNEED);
	else if (s->used_bytes &&
	         (p->pagemap_fd < 0 || !clean_mapped(p->pagemap_fd, s->mem, s->used_bytes, page)))
		memset(s->mem, 0, s->used_bytes);
	s->used_bytes = 0;
}

void run_slot_give(struct run_slot *s)
{
	struct run_pool *p = s->pool;

	slot_clean(s);
	s->inst = NULL;
	s->next_free = p->free_head;
	p->free_head = s->index;
	p->n_busy--;
	run_module_release(s->module);
	s->module = NULL;
}
