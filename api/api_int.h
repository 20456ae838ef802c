/* Private to api/: the server state, the route table, the per-request state
 * and the helpers that the request handlers of the api_*.c files share.
 * Nothing outside api/ includes this header. */
#ifndef API_INT_H
#define API_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "store.h"
#include "viv.h"

/* Connections served at once, and from one address. Event streams hold
 * their connection for as long as the client listens, so they have caps of
 * their own well below these: API_STREAMS_MAX of API_CONN_LIMIT, and
 * API_STREAMS_PER_IP of API_CONN_PER_IP, which leaves any client room to
 * upload however many streams are open. One address holds at most a
 * sixteenth of the whole, so that a few addresses cannot fill it. */
#define API_CONN_LIMIT 256
#define API_CONN_PER_IP 16
#define API_STREAMS_MAX 64
#define API_STREAMS_PER_IP 8
/* Seconds a connection may stay idle (slow-client defence). */
#define API_CONN_TIMEOUT_S 60
/* Deadlines that no byte resets (api_deadline.c): seconds for the headers
 * of a connection's first request, and between the end of one request and
 * the headers of the next; seconds a request may take, plus one per
 * API_BODY_MIN_RATE bytes of its body. */
#define API_HEADER_DEADLINE_S 10
#define API_IDLE_DEADLINE_S 30
#define API_REQUEST_DEADLINE_S 120
#define API_BODY_MIN_RATE (64u * 1024)
/* Milliseconds a connection may wait for its headers while more than
 * three quarters of API_CONN_LIMIT are open. */
#define API_PRESSURE_WAIT_MS 1000
/* Seconds a shutdown waits for requests in flight. */
#define API_DRAIN_WAIT_S 5
/* Bytes of an over-cap upload without Content-Length that are read and
 * thrown away so that the client can still see the 413; past this the
 * connection is closed instead. */
#define API_DISCARD_MAX (8u << 20)
/* Longest bearer token looked at; longer ones are refused unread. */
#define API_TOKEN_MAX 512
/* Bytes of the upload kept for viv_upload_sniff(). */
#define API_SNIFF_LEN VIV_UPLOAD_SNIFF_MAX
/* Deployments listed with an app, and per page of a listing (default and
 * maximum). */
#define API_APP_DEPLOYMENTS 20
#define API_DEPLOYMENTS_MAX 100
/* Log lines per page: default and maximum. */
#define API_LOGS_DEFAULT 100
#define API_LOGS_MAX 1000
/* KV keys per page: default and maximum. */
#define API_KV_DEFAULT 100
#define API_KV_MAX 1000
/* Largest static file of the web page that is served. */
#define API_STATIC_MAX (32u << 20)
/* Room for an app URL: scheme, a 63-byte label, the domain and a port. */
#define API_URL_MAX 512
/* Room kept for the request path in the operator log. */
#define API_LOG_PATH_MAX 200
/* The largest JSON request body (POST /v1/tokens, rollback). */
#define API_JSON_BODY_MAX (64u << 10)
/* Seconds between keep-alive comments of an event stream (default). */
#define API_KEEPALIVE_S 15
/* HTTP status codes counted for /metrics: 100 to 599. */
#define API_STATUS_MIN 100
#define API_STATUS_MAX 599

struct api_streams;
struct api_deadlines;

/* Everything the request handlers share. Lives on api_main's stack; used
 * from the one libmicrohttpd polling thread while the daemon runs, except
 * cfg and domain, which the event streams' thread reads too. */
struct api_server {
	const struct api_config *cfg;
	const char *domain;              /* cfg->domain, or "localhost" */
	size_t upload_max;               /* cfg->upload_max, or the default */
	struct store *st;                /* this thread's own connection */
	struct api_streams *streams;     /* the event streams' thread */
	struct api_deadlines *deadlines; /* the connections' deadlines */
	/* Requests answered, by status, for /metrics. */
	uint64_t requests[API_STATUS_MAX - API_STATUS_MIN + 1];
};

/* ---- Routes (api_router.c) ---------------------------------------------------- */

struct api_req;

/* A handler answers a request by queuing a reply (errors included); its
 * result is what the access handler returns. */
typedef enum MHD_Result (*api_handler_fn)(struct api_server *s, struct MHD_Connection *c,
                                          struct api_req *r);

/* Who may call a route. */
enum api_access {
	API_PUBLIC,    /* anyone, no token */
	API_ANY_TOKEN, /* any valid token; the handler limits what it shows */
	API_APP_TOKEN, /* a token allowed on the {app} of the path */
	API_DEP_TOKEN, /* a token allowed on the app of the deployment {id} */
	API_ADMIN,     /* an admin token */
};

/* How a route reads its request body. */
enum api_body {
	API_BODY_NONE,   /* the handler answers at once; a body is ignored */
	API_BODY_SMALL,  /* read into r->body up to body_max, then the handler */
	API_BODY_UPLOAD, /* streamed to a file (POST .../deployments) */
};

/* One route of the table: a method and a path pattern whose segments are
 * literal or one of {app}, {id}, {key}, {name} and {file}. GET routes
 * answer HEAD too. */
struct api_route {
	const char *method;
	const char *pattern;
	enum api_access access;
	enum api_body body;
	size_t body_max;     /* API_BODY_SMALL: the cap */
	const char *too_big; /* API_BODY_SMALL: the 413 message */
	api_handler_fn handle;
};

/* The table, for the index (GET /v1) and tests of the OpenAPI document. */
extern const struct api_route api_routes[];
extern const size_t api_n_routes;

/* Matches the raw (still percent-encoded) path against the table: sets
 * r->route (NULL when nothing matches the method), r->allow (the methods
 * that match the path; "" when none does), r->app, r->id and r->param. */
void api_route_match(const char *url, const char *method, struct api_req *r);

/* Decodes %XX escapes of src[0, n) into dst (room for cap bytes plus a NUL):
 * the decoded length, or -1 for a malformed escape or when it does not fit. */
long api_percent_decode(const char *src, size_t n, char *dst, size_t cap);

/* The query argument name, percent-decoded into dst (cap bytes plus a NUL):
 * its length; -1 when it is absent, -2 when it is malformed or too long. */
long api_query_arg(struct MHD_Connection *c, const char *name, char *dst, size_t cap);

/* Parses 1 to 18 decimal digits, nothing else, into *out. */
bool api_parse_uint(const char *s, int64_t *out);

/* A whole-number query argument in [min, max]: false (after queuing a 400
 * that names it, with *ret set) when it is there and not one; *out keeps
 * its value when the argument is absent. */
bool api_query_int(struct MHD_Connection *c, struct api_req *r, const char *name, int64_t min,
                   int64_t max, int64_t *out, enum MHD_Result *ret);

/* ---- Requests ------------------------------------------------------------------ */

/* One upload being streamed to a temporary file. */
struct api_upload {
	int fd;                 /* -1 when closed */
	char *tmp_path;         /* owned until the store takes the file */
	struct viv_sha256 hash; /* live while hashing is true */
	bool hashing;
	uint64_t size;       /* bytes written */
	uint64_t discarded;  /* bytes thrown away after the cap */
	bool too_big;        /* the cap was passed mid-stream */
	bool line_break;     /* a CR or LF byte was seen */
	enum viv_err io_err; /* the first write error, if any */
	unsigned char head[API_SNIFF_LEN];
	size_t head_len;
};

/* The state of one request, from its first handler call to the completion
 * callback, which frees it. */
struct api_req {
	uint64_t start_ns;
	char method[16];
	char path[API_LOG_PATH_MAX + 1]; /* for the operator log */
	unsigned status;                 /* 0 until a response is queued */
	const struct api_route *route;   /* NULL: nothing answers this method here */
	char allow[64];                  /* methods the path answers, for a 405 */
	/* Path parameters: {app} (empty when the route has none; a name too
	 * long to be valid is cut and app_bad set), {id}, and the decoded
	 * bytes of {key}, {name} or {file} (NUL-terminated after param_len). */
	char app[64];
	bool app_bad;
	int64_t id;
	bool id_bad;
	char param[STORE_KV_KEY_MAX + 1];
	size_t param_len;
	bool param_bad;            /* malformed or too long */
	struct store_token *token; /* the caller's; NULL on public routes */
	bool uploading;            /* api_upload_begin accepted the request */
	struct api_upload up;
	bool collecting;       /* a small body is read into body */
	struct viv_buf body;   /* capped at the route's body_max */
	bool body_too_big;     /* the cap was passed; the rest is dropped */
	uint64_t body_dropped; /* bytes dropped after the cap */
};

/* ---- Replies (api.c) ---------------------------------------------------- */

/* A response carrying body as compact JSON with the API's headers
 * (Content-Type, Cache-Control: no-store, nosniff). Takes ownership of body
 * whatever the result; NULL when body is NULL or memory ran out. Caller
 * passes it to api_reply() or frees it with MHD_destroy_response(). */
struct MHD_Response *api_json_response(json_t *body);

/* Queues a JSON reply with the given status. Takes ownership of body
 * whatever the result; NULL body (a failed json_pack) becomes a 500. The
 * result is what the access handler returns. */
enum MHD_Result api_reply_json(struct MHD_Connection *c, struct api_req *r, unsigned status,
                               json_t *body);

/* Queues {"error": TEXT} with the given status; TEXT is one sentence saying
 * what went wrong and what to do. */
enum MHD_Result api_reply_error(struct MHD_Connection *c, struct api_req *r, unsigned status,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Queues a reply and records its status; takes ownership of resp whatever
 * the result. */
enum MHD_Result api_reply(struct MHD_Connection *c, struct api_req *r, unsigned status,
                          struct MHD_Response *resp);

/* Queues an empty 204. */
enum MHD_Result api_reply_empty(struct MHD_Connection *c, struct api_req *r);

/* Queues body (len bytes, copied) with the given status and content type,
 * and the API's headers. */
enum MHD_Result api_reply_bytes(struct MHD_Connection *c, struct api_req *r, unsigned status,
                                const char *content_type, const void *body, size_t len);

/* The 500 for a store failure: logs err with what was being done, and
 * tells the client that the operator's log has the detail. */
enum MHD_Result api_reply_store_error(struct MHD_Connection *c, struct api_req *r, enum viv_err err,
                                      const char *doing);

/* The 404 for r->app that has no app. */
enum MHD_Result api_reply_no_such_app(struct MHD_Connection *c, struct api_req *r);

/* The 403 for a token that may not act on app (NULL: may not make this
 * call at all). */
enum MHD_Result api_reply_forbidden(struct MHD_Connection *c, struct api_req *r, const char *app);

/* Parses r->body as a JSON object: NULL (after queuing a 400, with *ret
 * set) when it is not one. An empty body is an empty object. New
 * reference. */
json_t *api_body_json(struct MHD_Connection *c, struct api_req *r, enum MHD_Result *ret);

/* The request's Content-Length, when it is plain decimal digits (saturating
 * at UINT64_MAX); false when there is none or it is malformed. */
bool api_content_length(struct MHD_Connection *c, uint64_t *out);

/* ---- JSON values (api_routes.c) -------------------------------------------- */

/* A JSON string of s with any invalid UTF-8 replaced by U+FFFD, since app
 * and build logs carry whatever bytes a guest or compiler wrote; json_null()
 * for NULL. New reference, NULL only on allocation failure. */
json_t *api_json_text(const char *s);

/* As api_json_text for the n bytes at s, which may hold NUL bytes (shown
 * as U+FFFD); s[n] must be a NUL byte. */
json_t *api_json_textn(const char *s, size_t n);

/* True when the n bytes at s are well-formed UTF-8 without NUL bytes; s[n]
 * must be a NUL byte. */
bool api_utf8_valid(const char *s, size_t n);

/* An ISO 8601 UTC time with milliseconds for ms since the epoch, or
 * json_null() for 0. New reference, NULL only on allocation failure. */
json_t *api_json_time(int64_t ms);

/* A row id, or json_null() for 0. New reference. */
json_t *api_json_id(int64_t id);

/* Writes the app's public URL, http://APP.DOMAIN[:PORT]/, into buf. */
void api_app_url(const struct api_server *s, const char *app, char *buf, size_t len);

/* The deployment object of the API (GET /v1/deployments/ID adds the log,
 * timings and upload digest when full is true). New reference; NULL on
 * allocation failure. */
json_t *api_deployment_json(const struct api_server *s, const struct store_deployment *d,
                            bool full);

/* One app log line as the API shows it. New reference; NULL on allocation
 * failure. */
json_t *api_log_json(const struct store_log *line);

/* ---- Handlers --------------------------------------------------------------------- */

/* Each answers one route of the table (api_router.c), after the token, the
 * scope and the {app} of the path were checked. */

/* api_routes.c: index, health, apps, deployments, logs, rollback. */
enum MHD_Result api_get_index(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_root(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_web(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_web_vendor(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r);
enum MHD_Result api_get_healthz(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_apps(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_delete_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_deployments(struct api_server *s, struct MHD_Connection *c,
                                    struct api_req *r);
enum MHD_Result api_get_deployment(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r);
enum MHD_Result api_get_app_logs(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_post_rollback(struct api_server *s, struct MHD_Connection *c,
                                  struct api_req *r);

/* api_config.c: settings and secrets. */
enum MHD_Result api_get_config(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_put_config(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_delete_config(struct api_server *s, struct MHD_Connection *c,
                                  struct api_req *r);
enum MHD_Result api_get_secrets(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_put_secret(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_delete_secret(struct api_server *s, struct MHD_Connection *c,
                                  struct api_req *r);

/* api_tokens.c */
enum MHD_Result api_get_tokens(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_post_token(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_delete_token(struct api_server *s, struct MHD_Connection *c, struct api_req *r);

/* api_artifacts.c: GET /v1/artifacts/{hash}, the .so, with these headers. */
#define API_ARTIFACT_SHA256_HEADER "X-Vivarium-Sha256"
#define API_ARTIFACT_PLATFORM_HEADER "X-Vivarium-Platform"
enum MHD_Result api_get_artifact(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
/* GET /v1/assets/{hash}: the tree under one folder "assets", at most
 * API_ASSETS_TAR_MAX bytes of tar and API_ASSETS_DEPTH_MAX folders deep. */
#define API_ASSETS_TAR_MAX ((size_t)1 << 30)
#define API_ASSETS_DEPTH_MAX 64
enum MHD_Result api_get_assets(struct api_server *s, struct MHD_Connection *c, struct api_req *r);

/* api_kv.c */
enum MHD_Result api_get_kv_list(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_put_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_delete_kv(struct api_server *s, struct MHD_Connection *c, struct api_req *r);

/* api_events.c: Server-Sent Events. */
enum MHD_Result api_get_events(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_log_stream(struct api_server *s, struct MHD_Connection *c,
                                   struct api_req *r);

/* api_templates.c, api_openapi.c, api_metrics.c */
enum MHD_Result api_get_templates(struct api_server *s, struct MHD_Connection *c,
                                  struct api_req *r);
enum MHD_Result api_get_openapi(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_metrics(struct api_server *s, struct MHD_Connection *c, struct api_req *r);

/* ---- Event streams' thread (api_events.c) ------------------------------------------ */

/* Starts the thread that feeds event streams from its own store connection.
 * Caller stops it with api_streams_stop(). */
VIV_MUST_CHECK enum viv_err api_streams_start(struct api_server *s, struct api_streams **out);

/* Ends every stream (each finishes its response, and no new one starts)
 * and stops the thread; called before the daemon stops, which must not find
 * a connection suspended. Accepts NULL. */
void api_streams_stop(struct api_streams *ss);

/* Frees the registry once the daemon has stopped (the streams' responses,
 * freed by the daemon, unregister from it). Accepts NULL. */
void api_streams_free(struct api_streams *ss);

/* ---- Uploads (api_upload.c) -------------------------------------------------------- */

/* Sets up r->up empty, so that api_upload_cleanup() is always safe. */
void api_upload_init(struct api_upload *up);

/* The first call of POST /v1/apps/APP/deployments, after the token and the
 * name were checked: refuses by Content-Length (413, or 400 when empty) or
 * opens the temporary file and sets r->uploading. */
enum MHD_Result api_upload_begin(struct api_server *s, struct MHD_Connection *c, struct api_req *r);

/* One piece of the body: writes, hashes and counts it against the cap.
 * Always consumes all n bytes; MHD_NO closes a connection that keeps
 * sending long after the cap. */
enum MHD_Result api_upload_data(struct api_server *s, struct api_req *r, const char *data,
                                size_t n);

/* The body is complete: checks it, creates the deployment (the store wakes
 * the builders) and replies 202, or replies with what was wrong. */
enum MHD_Result api_upload_finish(struct api_server *s, struct MHD_Connection *c,
                                  struct api_req *r);

/* Closes the file, stops hashing and removes the temporary file if the
 * store did not take it. Safe to call more than once. */
void api_upload_cleanup(struct api_upload *up);

/* ---- Static files (api_static.c) ----------------------------------------------- */

/* Serves the file name (a plain name, no directories) from cfg->web_dir, or
 * "vendor/PACKAGE/PATH" from the tool folder's node_modules for the few
 * packages the page loads.
 * When there is no such file, or no web_dir, it queues nothing and sets
 * *served to false so that the caller answers (a 404, or the JSON index for
 * GET /); otherwise *served is true and the result is the handler's. */
enum MHD_Result api_static_serve(struct api_server *s, struct MHD_Connection *c, struct api_req *r,
                                 const char *name, bool *served);

/* ---- Connection deadlines (api_deadline.c) ------------------------------------ */

/* Starts the thread that cuts connections past their deadline. Caller
 * stops it with api_deadlines_stop() after the daemon has stopped. */
enum viv_err api_deadlines_start(struct api_deadlines **out);
/* Stops the thread and frees d; accepts NULL. */
void api_deadlines_stop(struct api_deadlines *d);
/* The daemon's MHD_OPTION_NOTIFY_CONNECTION callback, with d as cls: a
 * started connection gets a record (its socket context), a closed one
 * loses it. */
void api_deadlines_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);

/* What happened on a connection. */
enum api_conn_event {
	API_CONN_REQUEST, /* a request's headers arrived: its deadline starts */
	API_CONN_BODY,    /* bytes of its body arrived: its deadline grows */
	API_CONN_STREAM,  /* it is an event stream: no deadline */
	API_CONN_DONE,    /* it ended: the wait for the next one starts */
};

/* Tells d of ev on c (bytes for API_CONN_BODY). d may be NULL. */
void api_deadlines_phase(struct api_deadlines *d, struct MHD_Connection *c, enum api_conn_event ev,
                         size_t bytes);

#endif
