/* The event loop of a pool's thread: timers in a binary min-heap on one
 * timerfd, descriptors in an epoll set, and the state services keep per
 * loop. The worker's own event loop watches run_loop_fd() and calls
 * run_loop_poll() when it is readable. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* Services that keep state on one loop: outbound HTTP and DNS today. */
#define LOOP_EXTS 4

struct loop_ext {
	const struct run_loop_ext_ops *ops;
	void *state;
};

struct run_loop {
	int epfd;
	struct run_watch timer_watch; /* the timerfd */
	uint64_t timerfd_at;          /* what the timerfd is armed for; 0 when disarmed */
	struct run_timer **heap;
	size_t heap_len, heap_alloc;
	/* The watch of each descriptor, by number: an event names its
	 * descriptor, not its watch, so that an event that was already
	 * waiting when a callback before it dropped the watch finds none. */
	struct run_watch **watches;
	size_t n_watches;
	struct loop_ext exts[LOOP_EXTS];
	size_t n_exts;
};

/* ---- The heap ------------------------------------------------------------------------ */

static void heap_swap(struct run_loop *l, size_t a, size_t b)
{
	struct run_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_index = a;
	l->heap[b]->heap_index = b;
}

static void heap_up(struct run_loop *l, size_t i)
{
	while (i > 0 && l->heap[(i - 1) / 2]->at_ns > l->heap[i]->at_ns) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct run_loop *l, size_t i)
{
	for (;;) {
		size_t left = 2 * i + 1, right = left + 1, m = i;

		if (left < l->heap_len && l->heap[left]->at_ns < l->heap[m]->at_ns)
			m = left;
		if (right < l->heap_len && l->heap[right]->at_ns < l->heap[m]->at_ns)
			m = right;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

/* Points the timerfd at the earliest timer, if that changed. */
static void timerfd_sync(struct run_loop *l)
{
	struct itimerspec its;
	uint64_t at = l->heap_len ? l->heap[0]->at_ns : 0;

	if (at == l->timerfd_at)
		return;
	memset(&its, 0, sizeof(its));
	if (at) {
		its.it_value.tv_sec = (time_t)(at / 1000000000u);
		its.it_value.tv_nsec = (long)(at % 1000000000u);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(l->timer_watch.fd, TFD_TIMER_ABSTIME, &its, NULL);
	l->timerfd_at = at;
}

void run_timer_arm(struct run_loop *l, struct run_timer *t, uint64_t at_ns)
{
	if (t->heap_index != SIZE_MAX)
		run_timer_cancel(l, t);
	if (l->heap_len == l->heap_alloc) {
		size_t na = l->heap_alloc ? l->heap_alloc * 2 : 64;
		struct run_timer **nh = realloc(l->heap, na * sizeof(*nh));
		if (!nh)
			abort();
		l->heap = nh;
		l->heap_alloc = na;
	}
	t->at_ns = at_ns;
	t->heap_index = l->heap_len;
	l->heap[l->heap_len++] = t;
	heap_up(l, t->heap_index);
	timerfd_sync(l);
}

void run_timer_cancel(struct run_loop *l, struct run_timer *t)
{
	size_t i = t->heap_index;

	if (i == SIZE_MAX)
		return;
	l->heap_len--;
	if (i != l->heap_len) {
		l->heap[i] = l->heap[l->heap_len];
		l->heap[i]->heap_index = i;
		heap_down(l, i);
		heap_up(l, i);
	}
	t->heap_index = SIZE_MAX;
	timerfd_sync(l);
}

/* ---- Descriptors ----------------------------------------------------------------------- */

enum viv_err run_loop_watch(struct run_loop *l, struct run_watch *w, uint32_t events)
{
	struct epoll_event ev;
	size_t fd = (size_t)w->fd;

	if (w->fd < 0)
		return VIV_ERR_INVALID;
	if (fd >= l->n_watches) {
		size_t n = fd < 64 ? 64 : fd * 2;
		struct run_watch **nw = realloc(l->watches, n * sizeof(*nw));

		if (!nw)
			return VIV_ERR_NOMEM;
		memset(nw + l->n_watches, 0, (n - l->n_watches) * sizeof(*nw));
		l->watches = nw;
		l->n_watches = n;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.fd = w->fd;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0 &&
	    (errno != EEXIST || epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0))
		return VIV_ERR_IO;
	l->watches[fd] = w;
	return VIV_OK;
}

void run_loop_unwatch(struct run_loop *l, struct run_watch *w)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	if (w->fd >= 0 && (size_t)w->fd < l->n_watches && l->watches[w->fd] == w)
		l->watches[w->fd] = NULL;
}

/* The timerfd fired: the timers run after the descriptors, in
 * run_loop_poll(). */
static void on_timerfd(struct run_watch *w, uint32_t events)
{
	struct run_loop *l =
	        (struct run_loop *)((char *)w - offsetof(struct run_loop, timer_watch));
	uint64_t expirations;

	(void)events;
	if (read(w->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		viv_log(VIV_WARN, "timerfd read: %s", strerror(errno));
	l->timerfd_at = 0;
}

/* ---- Services' state --------------------------------------------------------------------- */

enum viv_err run_loop_ext(struct run_loop *l, const struct run_loop_ext_ops *ops, void **out)
{
	enum viv_err err;
	size_t i;

	*out = NULL;
	for (i = 0; i < l->n_exts; i++) {
		if (l->exts[i].ops == ops) {
			*out = l->exts[i].state;
			return VIV_OK;
		}
	}
	if (l->n_exts == LOOP_EXTS)
		return VIV_ERR_INTERNAL;
	err = ops->make(l, &l->exts[l->n_exts].state);
	if (err)
		return err;
	l->exts[l->n_exts].ops = ops;
	*out = l->exts[l->n_exts++].state;
	return VIV_OK;
}

/* ---- The loop ------------------------------------------------------------------------------ */

enum viv_err run_loop_create(struct run_loop **out)
{
	struct run_loop *l;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return VIV_ERR_NOMEM;
	l->timer_watch.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	l->timer_watch.ready = on_timerfd;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->timer_watch.fd < 0 || l->epfd < 0) {
		run_loop_destroy(l);
		return VIV_ERR_IO;
	}
	if (run_loop_watch(l, &l->timer_watch, EPOLLIN)) {
		run_loop_destroy(l);
		return VIV_ERR_IO;
	}
	*out = l;
	return VIV_OK;
}

void run_loop_destroy(struct run_loop *l)
{
	if (!l)
		return;
	while (l->n_exts > 0) {
		struct loop_ext *e = &l->exts[--l->n_exts];

		e->ops->destroy(e->state);
	}
	if (l->timer_watch.fd >= 0)
		close(l->timer_watch.fd);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->heap);
	free(l->watches);
	free(l);
}

int run_loop_fd(const struct run_loop *l)
{
	return l->epfd;
}

int run_loop_poll(struct run_loop *l)
{
	struct epoll_event evs[64];
	uint64_t now;
	int n, i;

	n = epoll_wait(l->epfd, evs, 64, 0);
	for (i = 0; i < n; i++) {
		size_t fd = (size_t)evs[i].data.fd;
		struct run_watch *w = fd < l->n_watches ? l->watches[fd] : NULL;

		if (w)
			w->ready(w, evs[i].events);
	}
	now = viv_mono_ns();
	while (l->heap_len && l->heap[0]->at_ns <= now) {
		struct run_timer *t = l->heap[0];

		run_timer_cancel(l, t);
		t->fire(t);
		now = viv_mono_ns();
	}
	timerfd_sync(l);
	if (!l->heap_len)
		return -1;
	return (int)((l->heap[0]->at_ns - now + 999999) / 1000000);
}
