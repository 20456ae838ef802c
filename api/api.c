/* The control-plane API's server: libmicrohttpd setup, routing, token
 * checks, JSON replies, the operator log line of each request, and
 * api_main's start, signal wait and clean shutdown. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_int.h"

/* ---- Replies ------------------------------------------------------------ */

enum MHD_Result api_reply(struct MHD_Connection *c, struct api_req *r, unsigned status,
                          struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->status = status;
	return ret;
}

struct MHD_Response *api_json_response(json_t *body)
{
	struct MHD_Response *resp = NULL;
	char *text = NULL;

	if (!body)
		return NULL;
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return NULL;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return NULL;
	}
	/* From here on the response owns text. */
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
	            MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES) {
		MHD_destroy_response(resp);
		return NULL;
	}
	return resp;
}

enum MHD_Result api_reply_json(struct MHD_Connection *c, struct api_req *r, unsigned status,
                               json_t *body)
{
	struct MHD_Response *resp;
	const char *name = NULL, *value = NULL;

	if (!body) {
		viv_log(VIV_ERROR, "%s %s: building the JSON reply failed (out of memory?)",
		        r->method, r->path);
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		body = json_pack("{s:s}", "error",
		                 "The server could not build its reply; try again, and "
		                 "tell the operator if it keeps happening.");
	}
	resp = api_json_response(body);
	if (!resp)
		return MHD_NO;
	if (status == MHD_HTTP_UNAUTHORIZED) {
		name = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
		value = "Bearer realm=\"vivarium\"";
	} else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
		name = MHD_HTTP_HEADER_ALLOW;
		value = r->allow;
	} else if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
		name = MHD_HTTP_HEADER_RETRY_AFTER;
		value = "10";
	}
	if (name && MHD_add_response_header(resp, name, value) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, status, resp);
}

enum MHD_Result api_reply_error(struct MHD_Connection *c, struct api_req *r, unsigned status,
                                const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_reply_json(c, r, status, json_pack("{s:o}", "error", api_json_text(msg)));
}

enum MHD_Result api_reply_empty(struct MHD_Connection *c, struct api_req *r)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	return api_reply(c, r, MHD_HTTP_NO_CONTENT, resp);
}

enum MHD_Result api_reply_bytes(struct MHD_Connection *c, struct api_req *r, unsigned status,
                                const char *content_type, const void *body, size_t len)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return api_reply(c, r, status, resp);
}

enum MHD_Result api_reply_store_error(struct MHD_Connection *c, struct api_req *r, enum viv_err err,
                                      const char *doing)
{
	viv_log(VIV_ERROR, "%s %s: %s failed: %s", r->method, r->path, doing, viv_strerror(err));
	return api_reply_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
	                       "The server failed while %s (%s); try again, and if it keeps "
	                       "failing the operator's log of vivd has the details.",
	                       doing, viv_strerror(err));
}

enum MHD_Result api_reply_no_such_app(struct MHD_Connection *c, struct api_req *r)
{
	return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
	                       "There is no app named \"%s\"; GET /v1/apps (viv apps) lists them, "
	                       "and a first deployment creates one.",
	                       r->app);
}

enum MHD_Result api_reply_forbidden(struct MHD_Connection *c, struct api_req *r, const char *app)
{
	const char *name = r->token ? r->token->name : "?";

	if (app)
		return api_reply_error(c, r, MHD_HTTP_FORBIDDEN,
		                       "The token \"%s\" may not act on the app \"%s\"; use a "
		                       "token made for that app, or an admin token.",
		                       name, app);
	return api_reply_error(c, r, MHD_HTTP_FORBIDDEN,
	                       "The token \"%s\" may deploy and read its apps only; %s %s needs "
	                       "an admin token.",
	                       name, r->method, r->route ? r->route->pattern : r->path);
}

json_t *api_body_json(struct MHD_Connection *c, struct api_req *r, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *j;

	if (r->body.len == 0)
		return json_object();
	j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (j && json_is_object(j))
		return j;
	json_decref(j);
	*ret = api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
	                       "The request body must be a JSON object%s%s; send it with "
	                       "Content-Type: application/json.",
	                       j ? "" : ": ", j ? "" : jerr.text);
	return NULL;
}

/* ---- Requests ------------------------------------------------------------------- */

/* VIV_OK with r->token for a known bearer token, VIV_ERR_AUTH for a missing
 * or unknown one, another error when the store failed to answer. */
static enum viv_err check_token(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	char copy[API_TOKEN_MAX + 1];
	const char *h, *tok;
	size_t n;

	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return VIV_ERR_AUTH;
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	n = strlen(tok);
	while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
		n--;
	if (n == 0 || n > API_TOKEN_MAX)
		return VIV_ERR_AUTH;
	memcpy(copy, tok, n);
	copy[n] = '\0';
	return store_token_auth(s->st, copy, &r->token);
}

/* Copies text into dst (size len) with control characters and bytes
 * outside ASCII shown as '?', so that a request path cannot forge lines in
 * the operator log. */
static void copy_printable(char *dst, size_t len, const char *text)
{
	size_t i;

	for (i = 0; i + 1 < len && text[i]; i++) {
		unsigned char ch = (unsigned char)text[i];

		dst[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
	}
	dst[i] = '\0';
}

static const char *bad_name_msg =
        "app names are DNS labels: 1-63 lowercase letters, digits and '-', not starting or "
        "ending with '-' (for example \"hello-world\"); choose such a name.";

/* The token checks of a route: 401 without a known token, 403 when its
 * scope does not allow the call. True when the request may go on; else a
 * reply is queued and *ret set. */
static bool authorize(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                      enum MHD_Result *ret)
{
	const struct api_route *rt = r->route;
	enum viv_err err;

	/* GET /v1 needs no token, but checks one that is sent, so that a client
	 * can try its token before an upload. */
	if (rt->access == API_PUBLIC &&
	    !(rt->handle == api_get_index &&
	      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)))
		return true;
	err = check_token(s, c, r);
	if (err == VIV_ERR_AUTH) {
		*ret = api_reply_error(
		        c, r, MHD_HTTP_UNAUTHORIZED,
		        "This endpoint needs a token as \"Authorization: Bearer TOKEN\"; vivd "
		        "wrote the admin token to the file admin-token in its data folder when it "
		        "first started.");
		return false;
	}
	if (err) {
		*ret = api_reply_store_error(c, r, err, "checking the token");
		return false;
	}
	if (rt->access == API_ADMIN && r->token->scope != STORE_SCOPE_ADMIN) {
		*ret = api_reply_forbidden(c, r, NULL);
		return false;
	}
	if (rt->access == API_APP_TOKEN && !r->app_bad && viv_app_name_valid(r->app) &&
	    !store_token_allows(r->token, r->app)) {
		*ret = api_reply_forbidden(c, r, r->app);
		return false;
	}
	return true;
}

/* The first call of a request: routing, method, token and parameter checks.
 * It either queues a reply or leaves the body to the following calls. */
static enum MHD_Result handle_first(struct api_server *s, struct MHD_Connection *c,
                                    struct api_req *r)
{
	const struct api_route *rt = r->route;
	enum MHD_Result ret = MHD_YES;
	uint64_t declared;

	if (!rt && !r->allow[0])
		return api_reply_error(c, r, MHD_HTTP_NOT_FOUND,
		                       "Nothing is at %s; GET /v1 lists the API's endpoints.",
		                       r->path);
	if (!rt)
		return api_reply_error(c, r, MHD_HTTP_METHOD_NOT_ALLOWED,
		                       "%s does not accept %s; the Allow header lists what it "
		                       "accepts.",
		                       r->path, r->method);
	if (!authorize(s, c, r, &ret))
		return ret;
	if (strstr(rt->pattern, "{app}") && (r->app_bad || !viv_app_name_valid(r->app)))
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", bad_name_msg);
	if (strstr(rt->pattern, "{id}") && r->id_bad)
		return api_reply_error(c, r, MHD_HTTP_BAD_REQUEST,
		                       "Ids are positive whole numbers, such as the \"id\" that "
		                       "created the thing.");
	switch (rt->body) {
	case API_BODY_UPLOAD:
		return api_upload_begin(s, c, r);
	case API_BODY_SMALL:
		if (api_content_length(c, &declared) && declared > rt->body_max)
			return api_reply_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE, "%s", rt->too_big);
		viv_buf_init(&r->body, rt->body_max);
		r->collecting = true;
		return MHD_YES;
	case API_BODY_NONE:
		break;
	}
	return rt->handle(s, c, r);
}

/* One piece of a small body: kept up to the route's cap, then dropped so
 * that the client sees the 413; a client that keeps sending is cut off. */
static enum MHD_Result collect(struct api_req *r, const char *data, size_t n)
{
	if (!r->body_too_big) {
		enum viv_err err = viv_buf_append(&r->body, data, n);

		if (err == VIV_ERR_TOO_BIG)
			r->body_too_big = true;
		else if (err)
			return MHD_NO;
	}
	if (r->body_too_big) {
		r->body_dropped += n;
		if (r->body_dropped > API_DISCARD_MAX)
			return MHD_NO;
	}
	return MHD_YES;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_req *r = *con_cls;
	size_t n;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->start_ns = viv_mono_ns();
		api_upload_init(&r->up);
		viv_buf_init(&r->body, 0);
		copy_printable(r->method, sizeof(r->method), method);
		copy_printable(r->path, sizeof(r->path), url);
		api_route_match(url, method, r);
		*con_cls = r;
		/* An event stream lasts as long as its client listens; any
		 * other request has a deadline. */
		api_deadlines_phase(s->deadlines, c,
		                    r->route && (r->route->handle == api_get_events ||
		                                 r->route->handle == api_get_log_stream)
		                            ? API_CONN_STREAM
		                            : API_CONN_REQUEST,
		                    0);
		return handle_first(s, c, r);
	}
	n = *upload_data_size;
	*upload_data_size = 0;
	if (n > 0)
		api_deadlines_phase(s->deadlines, c, API_CONN_BODY, n);
	if (r->collecting) {
		if (n > 0)
			return collect(r, upload_data, n);
		r->collecting = false;
		if (r->body_too_big)
			return api_reply_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE, "%s",
			                       r->route->too_big);
		return r->route->handle(s, c, r);
	}
	if (!r->uploading)
		/* A reply was queued on the first call, so MHD discards the
		 * rest of the body; this is never reached in practice. */
		return MHD_NO;
	if (n > 0)
		return api_upload_data(s, r, upload_data, n);
	return api_upload_finish(s, c, r);
}

static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
	struct api_server *s = cls;
	struct api_req *r = *con_cls;
	double ms;

	api_deadlines_phase(s->deadlines, c, API_CONN_DONE, 0);
	if (!r)
		return;
	api_upload_cleanup(&r->up);
	viv_buf_free(&r->body);
	store_token_free(r->token);
	ms = (double)(viv_mono_ns() - r->start_ns) / 1e6;
	if (r->status >= API_STATUS_MIN && r->status <= API_STATUS_MAX)
		s->requests[r->status - API_STATUS_MIN]++;
	if (r->status)
		viv_log(VIV_INFO, "%s %s %u %.1f ms", r->method, r->path, r->status, ms);
	else
		viv_log(VIV_INFO, "%s %s - %.1f ms (connection ended before a reply: %s)",
		        r->method, r->path, ms,
		        toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
		        : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT  ? "client went away"
		                                                      : "closed");
	free(r);
	*con_cls = NULL;
}

/* Paths and query arguments are left percent-encoded: the router decodes
 * each part by itself, so that an encoded '/' or NUL byte in a KV key stays
 * inside its segment. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	viv_log(VIV_WARN, "libmicrohttpd: %s", line);
}

/* ---- api_main ----------------------------------------------------------------- */

/* Says where the API listens, for the operator log. */
static void log_listening(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			port = ntohs(in6->sin6_port);
		}
	}
	viv_log(VIV_INFO, "API listening on %s port %u", host, port);
}

/* Stops accepting, gives requests in flight a few seconds, then stops. */
static void stop_daemon(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info;
	int fd;
	unsigned waited_ms = 0;

	fd = MHD_quiesce_daemon(d);
	while (waited_ms < API_DRAIN_WAIT_S * 1000u) {
		info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (!info || info->num_connections == 0)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
		waited_ms += 50;
	}
	MHD_stop_daemon(d);
	if (fd >= 0)
		close(fd);
}

int api_main(const struct api_config *cfg)
{
	struct api_server s = {.cfg = cfg};
	struct MHD_Daemon *d = NULL;
	sigset_t mask, old;
	char errbuf[512] = "";
	char *token = NULL;
	bool created = false;
	enum viv_err err;
	int sig = 0, status = 1;

	viv_log_role("api");
	s.domain = cfg->domain && cfg->domain[0] ? cfg->domain : "localhost";
	s.upload_max = cfg->upload_max ? cfg->upload_max : VIV_UPLOAD_MAX_DEFAULT;

	/* Block the stop signals before any thread starts, so that every
	 * thread inherits the mask and only sigwait below sees them. SIGPIPE
	 * is blocked too: a write to a closed socket then fails with EPIPE. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &mask, &old) != 0) {
		viv_log(VIV_ERROR, "cannot block SIGTERM and SIGINT: %s", strerror(errno));
		return 1;
	}

	err = store_open_db(cfg->datadir, cfg->store_url, &s.st, errbuf, sizeof(errbuf));
	if (err) {
		viv_log(VIV_ERROR, "cannot open the data directory %s: %s", cfg->datadir,
		        errbuf[0] ? errbuf : viv_strerror(err));
		goto out;
	}
	err = store_admin_token_ensure(s.st, &token, &created);
	/* Made by another API host of the same database: the store knows it. */
	if (err == VIV_ERR_EXISTS)
		err = VIV_OK;
	if (err) {
		viv_log(VIV_ERROR, "cannot set up the admin token in %s: %s", cfg->datadir,
		        viv_strerror(err));
		goto out;
	}
	if (created)
		viv_log(VIV_INFO, "created the admin token in %s/admin-token", cfg->datadir);
	free(token);
	token = NULL;

	err = api_streams_start(&s, &s.streams);
	if (err) {
		viv_log(VIV_ERROR, "cannot start the event streams: %s", viv_strerror(err));
		goto out;
	}

	err = api_deadlines_start(&s.deadlines);
	if (err) {
		viv_log(VIV_ERROR, "cannot start the connection deadlines: %s", viv_strerror(err));
		goto out;
	}

	/* One internal polling thread (no thread pool), so that the store
	 * connection s.st is only ever used from that thread; event streams
	 * wait suspended, and their own thread resumes them. The logger comes
	 * first so that it also gets the messages about later options. */
	d = MHD_start_daemon(
	        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0,
	        NULL, NULL, api_access, &s, MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, &s,
	        MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned int)API_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
	        (unsigned int)API_CONN_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	        (unsigned int)API_CONN_PER_IP, MHD_OPTION_NOTIFY_COMPLETED, api_completed, &s,
	        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, MHD_OPTION_NOTIFY_CONNECTION,
	        api_deadlines_notify, s.deadlines, MHD_OPTION_END);
	if (!d) {
		viv_log(VIV_ERROR, "cannot start the HTTP server on the listening socket (fd %d)",
		        cfg->listen_fd);
		goto out;
	}
	log_listening(cfg->listen_fd);

	sigdelset(&mask, SIGPIPE);
	while (sig != SIGTERM && sig != SIGINT) {
		if (sigwait(&mask, &sig) != 0)
			sig = 0;
	}
	viv_log(VIV_INFO, "%s received, stopping the API", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	api_streams_stop(s.streams);
	stop_daemon(d);
	d = NULL;
	status = 0;
out:
	api_streams_stop(s.streams);
	if (d)
		MHD_stop_daemon(d);
	api_streams_free(s.streams);
	api_deadlines_stop(s.deadlines);
	store_close(s.st);
	/* A second SIGTERM or SIGINT that came during the shutdown would
	 * kill the process as soon as the mask is restored; it asked for what
	 * is already done, so it is taken off first (a stray SIGPIPE too). */
	sigaddset(&mask, SIGPIPE);
	while (sigtimedwait(&mask, NULL, &(struct timespec){0}) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (status == 0)
		viv_log(VIV_INFO, "API stopped");
	return status;
}
