/* Deadlines for the API's connections: libmicrohttpd's own timeout counts
 * idleness, which any byte resets, so a client that sends one byte every
 * few seconds could hold its connection for ever. Here every connection
 * has a clock that activity does not reset: its headers must arrive
 * within a deadline, and a request must end within another that grows only
 * with the bytes of its body. A thread of its own looks four times a second
 * and shuts down the sockets past their deadline; libmicrohttpd then sees
 * the connection end and closes it as if the client had gone. Event streams
 * are meant to last, and have caps of their own: they have no deadline.
 *
 * Deadlines bound how long a slow client holds a connection, not how many
 * it holds: clients from enough addresses could still fill the server
 * (libmicrohttpd then closes every new connection at once). So while more
 * than three quarters of the connections are open, those that have waited
 * more than API_PRESSURE_WAIT_MS for their headers are cut too, which keeps
 * room for clients that send a request as soon as they connect. */
#include "api_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Where a connection is. */
enum conn_phase {
	CONN_WAITING,   /* for the headers of its first or next request */
	CONN_SERVING,   /* a request, its body and its reply */
	CONN_STREAMING, /* an event stream: no deadline */
};

/* One connection, from libmicrohttpd's "started" notice to its "closed"
 * one. Fields are under the registry's lock. */
struct api_conn {
	struct api_conn *prev, *next;
	int fd;
	enum conn_phase phase;
	uint64_t since_ns; /* when the phase began */
	uint64_t body;     /* bytes of the current request's body */
	unsigned requests; /* ended on this connection */
	bool cut;          /* shut down for its deadline */
};

/* Sockets shut down per look (see deadline_thread()). */
#define API_CUT_BATCH 64

struct api_deadlines {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool started;
	bool stop;
	struct api_conn *head;
	size_t n;     /* connections listed */
	uint64_t cut; /* connections cut, for the operator log */
};

/* When conn's current phase must be over; 0: never. */
static uint64_t deadline_of(const struct api_conn *conn)
{
	const uint64_t s = 1000000000ull;

	switch (conn->phase) {
	case CONN_WAITING:
		return conn->since_ns +
		       (conn->requests ? API_IDLE_DEADLINE_S : API_HEADER_DEADLINE_S) * s;
	case CONN_SERVING:
		return conn->since_ns + API_REQUEST_DEADLINE_S * s +
		       conn->body / API_BODY_MIN_RATE * s;
	case CONN_STREAMING:
		break;
	}
	return 0;
}

static void *deadline_thread(void *arg)
{
	struct api_deadlines *d = arg;
	struct timespec ts;

	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		uint64_t now = viv_mono_ns(), cut = 0;
		bool pressed = d->n > API_CONN_LIMIT / 4 * 3;

		for (struct api_conn *conn = d->head; conn; conn = conn->next) {
			uint64_t end = deadline_of(conn);

			if (pressed && conn->phase == CONN_WAITING)
				end = conn->since_ns + API_PRESSURE_WAIT_MS * 1000000ull;
			/* The socket stays open until libmicrohttpd closes it,
			 * which happens only after its "closed" notice has
			 * taken conn off this list under the lock: fd is still
			 * this connection's. */
			if (conn->cut || !end || now < end)
				continue;
			/* libmicrohttpd takes at most 128 events from one
			 * epoll_wait(); with more sockets shut down at once it
			 * was seen to miss them all while at its connection
			 * limit, so at most API_CUT_BATCH go per look. */
			if (cut == API_CUT_BATCH)
				break;
			shutdown(conn->fd, SHUT_RDWR);
			conn->cut = true;
			cut++;
		}
		if (cut) {
			d->cut += cut;
			viv_log(VIV_WARN,
			        "closed %llu connection%s past their deadline (%llu in all): "
			        "headers take at most %u s (%u ms while %zu of %u connections are "
			        "open), a request %u s",
			        (unsigned long long)cut, cut == 1 ? "" : "s",
			        (unsigned long long)d->cut, (unsigned)API_HEADER_DEADLINE_S,
			        (unsigned)API_PRESSURE_WAIT_MS, d->n, (unsigned)API_CONN_LIMIT,
			        (unsigned)API_REQUEST_DEADLINE_S);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 250 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

enum viv_err api_deadlines_start(struct api_deadlines **out)
{
	struct api_deadlines *d;
	pthread_condattr_t ca;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return VIV_ERR_NOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&d->th, NULL, deadline_thread, d) != 0) {
		api_deadlines_stop(d);
		return VIV_ERR_IO;
	}
	d->started = true;
	*out = d;
	return VIV_OK;
}

void api_deadlines_stop(struct api_deadlines *d)
{
	if (!d)
		return;
	if (d->started) {
		pthread_mutex_lock(&d->mu);
		d->stop = true;
		pthread_cond_signal(&d->cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->th, NULL);
	}
	/* Connections still listed belong to a daemon that was stopped
	 * without closing them; they are freed with it. */
	while (d->head) {
		struct api_conn *next = d->head->next;

		free(d->head);
		d->head = next;
	}
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void api_deadlines_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct api_deadlines *d = cls;
	struct api_conn *conn = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		conn = info ? calloc(1, sizeof(*conn)) : NULL;
		/* Without memory the connection simply has no deadline. */
		if (!conn)
			return;
		conn->fd = info->connect_fd;
		conn->phase = CONN_WAITING;
		conn->since_ns = viv_mono_ns();
		pthread_mutex_lock(&d->mu);
		conn->next = d->head;
		if (d->head)
			d->head->prev = conn;
		d->head = conn;
		d->n++;
		pthread_mutex_unlock(&d->mu);
		*socket_context = conn;
		return;
	}
	if (!conn)
		return;
	pthread_mutex_lock(&d->mu);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		d->head = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	d->n--;
	pthread_mutex_unlock(&d->mu);
	free(conn);
	*socket_context = NULL;
}

/* The record of c, or NULL when it has none. */
static struct api_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

void api_deadlines_phase(struct api_deadlines *d, struct MHD_Connection *c, enum api_conn_event ev,
                         size_t bytes)
{
	struct api_conn *conn;

	if (!d)
		return;
	conn = conn_of(c);
	if (!conn)
		return;
	pthread_mutex_lock(&d->mu);
	switch (ev) {
	case API_CONN_REQUEST:
		conn->phase = CONN_SERVING;
		conn->since_ns = viv_mono_ns();
		conn->body = 0;
		break;
	case API_CONN_BODY:
		conn->body += bytes;
		break;
	case API_CONN_STREAM:
		conn->phase = CONN_STREAMING;
		break;
	case API_CONN_DONE:
		conn->phase = CONN_WAITING;
		conn->since_ns = viv_mono_ns();
		conn->requests++;
		break;
	}
	pthread_mutex_unlock(&d->mu);
}
