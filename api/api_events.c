/* Server-Sent Events: a build as it happens (GET /v1/deployments/ID/events)
 * and an app's log as it is written (GET /v1/apps/APP/logs/stream).
 *
 * libmicrohttpd serves every connection from one thread, which must never
 * wait. A stream's response reads from a buffer; when the buffer is empty
 * the connection is suspended, and a thread of its own with its own store
 * connection looks at the store for each suspended stream a few times a
 * second, fills its buffer (or a keep-alive comment, or nothing) and
 * resumes it. A suspended stream belongs to that thread; a running one to
 * libmicrohttpd's. The thread also notices clients that hung up, since a
 * suspended connection is not polled; such a stream is resumed to end. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api_int.h"

/* How often suspended streams look at the store. */
#define STREAM_POLL_MS 250
/* Build log bytes read from the store at once, and at most per look. */
#define STREAM_LOG_CHUNK (256u << 10)
#define STREAM_LOG_LOOK_MAX (STORE_BUILD_LOG_MAX + 4096)
/* App log lines read at once, and at most per look. */
#define STREAM_LINES_CHUNK 100
#define STREAM_LINES_LOOK_MAX 1000
/* Room for a client's address. */
#define STREAM_ADDR_MAX 64

enum stream_kind {
	STREAM_BUILD, /* a deployment's build */
	STREAM_LOGS,  /* an app's log */
};

struct api_stream {
	struct api_stream *prev, *next; /* in the registry; under its lock */
	struct api_streams *reg;
	struct MHD_Connection *conn;
	enum stream_kind kind;
	char addr[STREAM_ADDR_MAX]; /* the client's, for the per-address cap */
	bool suspended;             /* under the registry's lock */

	/* Owned by whichever thread holds the stream (see the top). */
	struct viv_buf out; /* what is to be sent */
	size_t sent;        /* bytes of out already sent */
	uint64_t last_ns;   /* when something was last queued */
	bool ended;         /* send what is left, then end the response */
	bool gone;          /* the client hung up: end at once */

	int64_t deployment; /* STREAM_BUILD */
	int64_t log_offset; /* bytes of the build log sent */
	int status;         /* the status last sent; -1: none yet */
	char app[64];       /* STREAM_LOGS */
	int64_t after;      /* the last log line id sent */
	bool tail;          /* after is 0: start with the newest lines */
};

struct api_streams {
	struct api_server *s;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;  /* the thread was started and not yet joined */
	bool stopping; /* no stream may wait any more */
	struct api_stream *head;
	size_t count;
	uint64_t keepalive_ns;
};

/* ---- Formatting events ----------------------------------------------------------- */

/* Appends "event: NAME\ndata: JSON\n\n" (with "id: ID\n" first when id is
 * positive) for data, which it takes ownership of. */
static enum viv_err put_event(struct api_stream *sm, const char *name, int64_t id, json_t *data)
{
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
	enum viv_err err = VIV_ERR_NOMEM;

	json_decref(data);
	if (!text)
		return err;
	if (id > 0)
		err = viv_buf_printf(&sm->out, "id: %lld\n", (long long)id);
	else
		err = VIV_OK;
	if (!err)
		err = viv_buf_printf(&sm->out, "event: %s\ndata: %s\n\n", name, text);
	free(text);
	sm->last_ns = viv_mono_ns();
	return err;
}

/* The build log text of one look, cut into "log" events, with a "step"
 * event before each step heading ("== NAME" lines) the pipeline writes. */
static enum viv_err put_log_text(struct api_stream *sm, const char *text, size_t n)
{
	size_t start = 0, i = 0;
	enum viv_err err = VIV_OK;

	while (!err && i < n) {
		size_t end = i;

		while (end < n && text[end] != '\n')
			end++;
		if (end < n)
			end++;
		if (end - i > 3 && memcmp(text + i, "== ", 3) == 0) {
			size_t name_len = end - i - 3;

			if (i > start)
				err = put_event(sm, "log", 0,
				                json_pack("{s:o}", "text",
				                          api_json_textn(text + start, i - start)));
			while (name_len > 0 && (text[i + 3 + name_len - 1] == '\n' ||
			                        text[i + 3 + name_len - 1] == '\r'))
				name_len--;
			if (!err)
				err = put_event(sm, "step", 0,
				                json_pack("{s:o}", "step",
				                          json_stringn(text + i + 3, name_len)));
			start = i;
		}
		i = end;
	}
	if (!err && n > start)
		err = put_event(
		        sm, "log", 0,
		        json_pack("{s:o}", "text", api_json_textn(text + start, n - start)));
	return err;
}

/* One look at a build: log text not sent yet (whole lines, unless the
 * build is over), then the status when it changed, the log being complete
 * first; the stream ends after ready or failed. */
static enum viv_err look_build(struct api_streams *ss, struct store *st, struct api_stream *sm)
{
	struct store_dep_progress p;
	struct store_deployment *d = NULL;
	bool done = false;
	enum viv_err err = VIV_OK;
	size_t looked = 0, keep;

	while (!err && looked < STREAM_LOG_LOOK_MAX) {
		err = store_deployment_progress(st, sm->deployment, sm->log_offset,
		                                STREAM_LOG_CHUNK, &p);
		if (err)
			break;
		done = p.status == STORE_DEP_READY || p.status == STORE_DEP_FAILED;
		keep = p.tail_len;
		if (!done || p.tail_len == STREAM_LOG_CHUNK) {
			while (keep > 0 && p.log_tail[keep - 1] != '\n')
				keep--;
		}
		/* A line longer than a chunk goes as it is. */
		if (keep == 0 && p.tail_len == STREAM_LOG_CHUNK)
			keep = p.tail_len;
		if (keep > 0)
			err = put_log_text(sm, p.log_tail, keep);
		sm->log_offset += (int64_t)keep;
		looked += keep;
		free(p.log_tail);
		if (keep == 0 || sm->log_offset >= p.log_size)
			break;
	}
	if (err == VIV_ERR_NOT_FOUND) {
		/* The deployment went with its app. */
		sm->ended = true;
		return VIV_OK;
	}
	if (err || (int)p.status == sm->status || (done && sm->log_offset < p.log_size))
		return err;
	err = store_deployment_get(st, sm->deployment, &d);
	if (err == VIV_ERR_NOT_FOUND) {
		sm->ended = true;
		return VIV_OK;
	}
	if (err)
		return err;
	err = put_event(sm, "status", 0, api_deployment_json(ss->s, d, false));
	if (!err) {
		sm->status = (int)d->status;
		sm->ended = d->status == STORE_DEP_READY || d->status == STORE_DEP_FAILED;
	}
	store_deployment_free(d);
	return err;
}

/* One look at an app's log: the lines after the last one sent. */
static enum viv_err look_logs(struct store *st, struct api_stream *sm)
{
	struct store_log *lines = NULL;
	enum viv_err err = VIV_OK;
	size_t n = 0, looked = 0;

	while (!err && looked < STREAM_LINES_LOOK_MAX) {
		err = store_logs_get(st, sm->app, sm->tail ? 0 : sm->after, STREAM_LINES_CHUNK,
		                     &lines, &n);
		if (err)
			break;
		for (size_t i = 0; !err && i < n; i++) {
			err = put_event(sm, "log", lines[i].id, api_log_json(&lines[i]));
			sm->after = lines[i].id;
		}
		store_logs_free(lines, n);
		looked += n;
		/* The tail is the newest lines: the next look continues after it. */
		if (n > 0)
			sm->tail = false;
		if (n < STREAM_LINES_CHUNK)
			break;
	}
	if (err == VIV_ERR_NOT_FOUND) {
		/* The app was deleted. */
		sm->ended = true;
		err = VIV_OK;
	}
	return err;
}

/* ---- The streams' thread ------------------------------------------------------------ */

/* Whether the client of a suspended stream hung up (libmicrohttpd does not
 * look at a suspended connection). */
static bool client_gone(struct api_stream *sm)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(sm->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd pfd;
	char byte;

	if (!ci)
		return false;
	pfd = (struct pollfd){.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))
		return true;
	/* Readable: bytes of a next request, or the end. */
	return recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Works on one suspended stream: true when it has something to send (or
 * must end) and is to be resumed. */
static bool serve_one(struct api_streams *ss, struct store *st, struct api_stream *sm)
{
	enum viv_err err;

	if (client_gone(sm)) {
		sm->gone = true;
		return true;
	}
	err = sm->kind == STREAM_BUILD ? look_build(ss, st, sm) : look_logs(st, sm);
	if (err) {
		viv_log(VIV_WARN, "event stream: reading the store failed: %s", viv_strerror(err));
		/* Tried again at the next look; a broken stream still gets
		 * its keep-alives. */
	}
	if (sm->out.len == sm->sent && !sm->ended &&
	    viv_mono_ns() - sm->last_ns >= ss->keepalive_ns) {
		if (viv_buf_append(&sm->out, ": keep-alive\n\n", 14) == VIV_OK)
			sm->last_ns = viv_mono_ns();
	}
	return sm->out.len > sm->sent || sm->ended;
}

static void *streams_main(void *arg)
{
	struct api_streams *ss = arg;
	struct api_stream **mine = NULL;
	struct store *st = NULL;
	char errbuf[256] = "";
	size_t n, cap = 0;
	enum viv_err err;

	err = store_open_db(ss->s->cfg->datadir, ss->s->cfg->store_url, &st, errbuf,
	                    sizeof(errbuf));
	if (err)
		viv_log(VIV_ERROR, "event streams: cannot open the store: %s", errbuf);
	pthread_mutex_lock(&ss->lock);
	while (!ss->stopping) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += STREAM_POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ss->wake, &ss->lock, &until);
		if (ss->stopping || !st)
			continue;
		/* The suspended streams are this thread's until it resumes them,
		 * so they may be worked on without the lock. */
		if (cap < ss->count) {
			struct api_stream **grown = realloc(mine, ss->count * sizeof(*mine));

			if (!grown)
				continue;
			mine = grown;
			cap = ss->count;
		}
		n = 0;
		for (struct api_stream *sm = ss->head; sm; sm = sm->next) {
			if (sm->suspended)
				mine[n++] = sm;
		}
		pthread_mutex_unlock(&ss->lock);
		for (size_t i = 0; i < n; i++) {
			if (!serve_one(ss, st, mine[i]))
				continue;
			/* Handed back: libmicrohttpd's thread may free it as soon
			 * as it is resumed, and it is called without the lock. */
			pthread_mutex_lock(&ss->lock);
			mine[i]->suspended = false;
			pthread_mutex_unlock(&ss->lock);
			MHD_resume_connection(mine[i]->conn);
		}
		pthread_mutex_lock(&ss->lock);
	}
	pthread_mutex_unlock(&ss->lock);
	free(mine);
	store_close(st);
	return NULL;
}

enum viv_err api_streams_start(struct api_server *s, struct api_streams **out)
{
	struct api_streams *ss;
	unsigned keepalive_s = s->cfg->keepalive_s ? s->cfg->keepalive_s : API_KEEPALIVE_S;

	*out = NULL;
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return VIV_ERR_NOMEM;
	ss->s = s;
	ss->keepalive_ns = (uint64_t)keepalive_s * 1000000000u;
	pthread_mutex_init(&ss->lock, NULL);
	pthread_cond_init(&ss->wake, NULL);
	if (pthread_create(&ss->thread, NULL, streams_main, ss) != 0) {
		api_streams_free(ss);
		return VIV_ERR_NOMEM;
	}
	ss->running = true;
	*out = ss;
	return VIV_OK;
}

void api_streams_stop(struct api_streams *ss)
{
	struct api_stream *sm;

	if (!ss)
		return;
	pthread_mutex_lock(&ss->lock);
	ss->stopping = true;
	pthread_cond_signal(&ss->wake);
	pthread_mutex_unlock(&ss->lock);
	if (ss->running) {
		pthread_join(ss->thread, NULL);
		ss->running = false;
	}
	/* The thread is gone, so the suspended streams are this caller's:
	 * resumed, each sees stopping and ends its response. libmicrohttpd is
	 * never called with the lock held (it calls stream_free, which takes
	 * it), so they are collected first. */
	for (;;) {
		struct api_stream *batch[32];
		size_t n = 0;

		pthread_mutex_lock(&ss->lock);
		for (sm = ss->head; sm && n < 32; sm = sm->next) {
			if (!sm->suspended)
				continue;
			sm->suspended = false;
			sm->ended = true;
			batch[n++] = sm;
		}
		pthread_mutex_unlock(&ss->lock);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++)
			MHD_resume_connection(batch[i]->conn);
	}
}

void api_streams_free(struct api_streams *ss)
{
	if (!ss)
		return;
	pthread_mutex_destroy(&ss->lock);
	pthread_cond_destroy(&ss->wake);
	free(ss);
}

/* ---- Responses ----------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct api_stream *sm = cls;
	struct api_streams *ss = sm->reg;
	size_t n = sm->out.len - sm->sent;
	bool stopping;

	(void)pos;
	if (sm->gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n > 0) {
		if (n > max)
			n = max;
		memcpy(buf, sm->out.data + sm->sent, n);
		sm->sent += n;
		if (sm->sent == sm->out.len) {
			sm->out.len = 0;
			sm->sent = 0;
		}
		return (ssize_t)n;
	}
	pthread_mutex_lock(&ss->lock);
	stopping = ss->stopping;
	pthread_mutex_unlock(&ss->lock);
	if (sm->ended || stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send: wait, suspended, for the streams' thread. */
	MHD_suspend_connection(sm->conn);
	pthread_mutex_lock(&ss->lock);
	if (ss->stopping) {
		/* The shutdown's pass over suspended streams may be over. */
		pthread_mutex_unlock(&ss->lock);
		sm->ended = true;
		MHD_resume_connection(sm->conn);
		return 0;
	}
	sm->suspended = true;
	pthread_cond_signal(&ss->wake);
	pthread_mutex_unlock(&ss->lock);
	return 0;
}

static void stream_free(void *cls)
{
	struct api_stream *sm = cls;
	struct api_streams *ss = sm->reg;

	pthread_mutex_lock(&ss->lock);
	if (sm->prev)
		sm->prev->next = sm->next;
	else
		ss->head = sm->next;
	if (sm->next)
		sm->next->prev = sm->prev;
	ss->count--;
	pthread_mutex_unlock(&ss->lock);
	viv_buf_free(&sm->out);
	free(sm);
}

/* The client's address as text, for the per-address cap. */
static void client_addr(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
		          (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)len);
}

/* Registers sm and answers with its event stream; 503 when too many are
 * open (in all, or from the client's address) or the API is stopping.
 * Takes ownership of sm whatever the result. */
static enum MHD_Result start_stream(struct api_server *s, struct MHD_Connection *c,
                                    struct api_req *r, struct api_stream *sm)
{
	struct api_streams *ss = s->streams;
	struct MHD_Response *resp;
	size_t same_addr = 0;
	bool full;

	sm->reg = ss;
	sm->conn = c;
	sm->status = -1;
	sm->last_ns = viv_mono_ns();
	viv_buf_init(&sm->out, 0);
	client_addr(c, sm->addr, sizeof(sm->addr));
	pthread_mutex_lock(&ss->lock);
	for (struct api_stream *o = ss->head; o; o = o->next)
		same_addr += strcmp(o->addr, sm->addr) == 0;
	full = ss->stopping || ss->count >= API_STREAMS_MAX || same_addr >= API_STREAMS_PER_IP;
	if (!full) {
		sm->next = ss->head;
		if (ss->head)
			ss->head->prev = sm;
		ss->head = sm;
		ss->count++;
	}
	pthread_mutex_unlock(&ss->lock);
	if (full) {
		free(sm);
		return api_reply_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                       "Too many event streams are open (at most %d, %d from one "
		                       "address); close one, or poll the JSON endpoints instead.",
		                       API_STREAMS_MAX, API_STREAMS_PER_IP);
	}
	/* From here the response owns sm: stream_free unregisters it. */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, sm,
	                                         stream_free);
	if (!resp) {
		stream_free(sm);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") !=
	            MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Accel-Buffering", "no") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, MHD_HTTP_OK, resp);
}

enum MHD_Result api_get_events(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	struct store_deployment *d = NULL;
	struct api_stream *sm;
	enum viv_err err;
	bool allowed;

	err = store_deployment_get(s->st, r->id, &d);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "There is no deployment %lld; GET "
		                       "/v1/apps/{app}/deployments lists an app's deployments.",
		                       (long long)r->id);
	if (err)
		return api_reply_store_error(c, r, err, "reading the deployment");
	allowed = store_token_allows(r->token, d->app);
	if (!allowed) {
		enum MHD_Result ret = api_reply_forbidden(c, r, d->app);

		store_deployment_free(d);
		return ret;
	}
	store_deployment_free(d);
	sm = calloc(1, sizeof(*sm));
	if (!sm)
		return MHD_NO;
	sm->kind = STREAM_BUILD;
	sm->deployment = r->id;
	return start_stream(s, c, r, sm);
}

enum MHD_Result api_get_log_stream(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r)
{
	struct store_app *app = NULL;
	enum MHD_Result ret = MHD_YES;
	struct api_stream *sm;
	const char *last;
	int64_t after = 0;
	enum viv_err err;

	if (!api_query_int(c, r, "after", 0, INT64_MAX, &after, &ret))
		return ret;
	/* A browser's EventSource sends the id of the last event it got when
	 * it reconnects. */
	last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	if (last && !api_parse_uint(last, &after))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "Last-Event-ID is the id of a log line, a whole number.");
	err = store_app_get(s->st, r->app, &app);
	store_app_free(app);
	if (err == VIV_ERR_NOT_FOUND)
		return api_reply_no_such_app(c, r);
	if (err)
		return api_reply_store_error(c, r, err, "reading the app");
	sm = calloc(1, sizeof(*sm));
	if (!sm)
		return MHD_NO;
	sm->kind = STREAM_LOGS;
	snprintf(sm->app, sizeof(sm->app), "%s", r->app);
	sm->after = after;
	sm->tail = after == 0;
	return start_stream(s, c, r, sm);
}
