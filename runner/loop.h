/* Private to the runner: the event loop of a pool's thread (loop.c). Timers
 * in a binary min-heap on one timerfd, descriptors in an epoll set, and the
 * state services keep per loop; one descriptor (run_loop_fd()) tells the
 * caller's own event loop when run_loop_poll() has work. */
#ifndef RUNNER_LOOP_H
#define RUNNER_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "viv.h"

struct run_loop;

/* A timer, embedded in whatever it times. */
struct run_timer {
	uint64_t at_ns;    /* CLOCK_MONOTONIC */
	size_t heap_index; /* SIZE_MAX when not armed */
	void (*fire)(struct run_timer *t);
};

/* Prepares t, unarmed, to call fire when it is due. */
static inline void run_timer_init(struct run_timer *t, void (*fire)(struct run_timer *t))
{
	t->at_ns = 0;
	t->heap_index = SIZE_MAX;
	t->fire = fire;
}

/* Whether t is armed. */
static inline bool run_timer_armed(const struct run_timer *t)
{
	return t->heap_index != SIZE_MAX;
}

/* Arms t (again, if it was) for at_ns; t is borrowed until it fires or is
 * cancelled. Aborts when out of memory: a timer that silently never fires
 * would leave a guest suspended for good. */
void run_timer_arm(struct run_loop *l, struct run_timer *t, uint64_t at_ns);
/* Disarms t; nothing when it is not armed. */
void run_timer_cancel(struct run_loop *l, struct run_timer *t);

/* A descriptor the loop watches, embedded in its owner. */
struct run_watch {
	int fd;
	void (*ready)(struct run_watch *w, uint32_t events); /* EPOLLIN, EPOLLOUT, ... */
};

/* Watches w->fd for events (EPOLLIN, EPOLLOUT), or changes the events of a
 * watch already added. w is borrowed until run_loop_unwatch(). */
VIV_MUST_CHECK enum viv_err run_loop_watch(struct run_loop *l, struct run_watch *w,
                                           uint32_t events);
void run_loop_unwatch(struct run_loop *l, struct run_watch *w);

/* What a service keeps per loop: made on first use by make, freed by
 * destroy when the loop is destroyed (in the reverse order of making). */
struct run_loop_ext_ops {
	enum viv_err (*make)(struct run_loop *l, void **state);
	void (*destroy)(void *state);
};

/* The state ops keeps on l (ops is the key), made on first use. Borrowed
 * for the life of l. */
VIV_MUST_CHECK enum viv_err run_loop_ext(struct run_loop *l, const struct run_loop_ext_ops *ops,
                                         void **out);

/* Caller frees with run_loop_destroy(). */
VIV_MUST_CHECK enum viv_err run_loop_create(struct run_loop **out);
/* Destroys the services' states, then the loop. Accepts NULL. */
void run_loop_destroy(struct run_loop *l);

/* Readable when run_loop_poll() has work. Borrowed for the life of l. */
int run_loop_fd(const struct run_loop *l);

/* Handles every ready descriptor and every timer whose time has come;
 * returns the milliseconds until the next timer, or -1 for none. */
int run_loop_poll(struct run_loop *l);

#endif
