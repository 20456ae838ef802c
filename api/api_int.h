/* Private to api/: the server state, the per-request state and the helpers
 * that the request handlers of api.c, api_routes.c, api_upload.c and
 * api_static.c share. Nothing outside api/ includes this header. */
#ifndef API_INT_H
#define API_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "pipeline.h"
#include "store.h"
#include "viv.h"

/* Connections served at once, and from one address. */
#define API_CONN_LIMIT 256
#define API_CONN_PER_IP 64
/* Seconds a connection may stay idle (slow-client defence). */
#define API_CONN_TIMEOUT_S 60
/* Seconds a shutdown waits for requests in flight. */
#define API_DRAIN_WAIT_S 5
/* Bytes of an over-cap upload without Content-Length that are read and
 * thrown away so that the client can still see the 413; past this the
 * connection is closed instead. */
#define API_DISCARD_MAX (8u << 20)
/* Longest bearer token looked at; longer ones are refused unread. */
#define API_TOKEN_MAX 512
/* Bytes of the upload kept for pipe_sniff(): tar's magic sits at 257. */
#define API_SNIFF_LEN 512
/* Deployments listed with an app. */
#define API_APP_DEPLOYMENTS 20
/* Log lines per page: default and maximum. */
#define API_LOGS_DEFAULT 100
#define API_LOGS_MAX 1000
/* Largest static file of the web page that is served. */
#define API_STATIC_MAX (32u << 20)
/* Room for an app URL: scheme, a 63-byte label, the domain and a port. */
#define API_URL_MAX 512
/* Room kept for the request path in the operator log. */
#define API_LOG_PATH_MAX 200

/* Everything the request handlers share. Lives on api_main's stack; used
 * from the one libmicrohttpd polling thread while the daemon runs. */
struct api_server {
	const struct api_config *cfg;
	const char *domain;           /* cfg->domain, or "localhost" */
	struct store *st;             /* this thread's own connection */
	struct pipe_builder *builder; /* woken after each upload */
};

/* Where a request path leads. */
enum api_route {
	API_R_NONE,       /* no such path: 404 */
	API_R_INDEX,      /* GET / */
	API_R_WEB,        /* GET /web/FILE and /web/vendor/PACKAGE/PATH */
	API_R_HEALTHZ,    /* GET /healthz */
	API_R_V1,         /* GET /v1: the API index */
	API_R_APPS,       /* GET /v1/apps */
	API_R_APP,        /* GET /v1/apps/APP */
	API_R_DEPLOY,     /* POST /v1/apps/APP/deployments */
	API_R_APP_LOGS,   /* GET /v1/apps/APP/logs */
	API_R_DEPLOYMENT, /* GET /v1/deployments/ID */
	API_R_CONFIG,     /* GET /v1/apps/APP/config */
	API_R_CONFIG_KEY, /* PUT or DELETE /v1/apps/APP/config/KEY */
};

/* One upload being streamed to a temporary file. */
struct api_upload {
	int fd;                 /* -1 when closed */
	char *tmp_path;         /* owned until the store takes the file */
	struct viv_sha256 hash; /* live while hashing is true */
	bool hashing;
	uint64_t size;          /* bytes written */
	uint64_t discarded;     /* bytes thrown away after the cap */
	bool too_big;           /* the cap was passed mid-stream */
	enum viv_err io_err;    /* the first write error, if any */
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
	enum api_route route;
	char segment[256]; /* the APP or ID part of the path, cut to fit */
	bool segment_cut;  /* the path segment did not fit */
	bool uploading;    /* api_upload_begin accepted the request */
	struct api_upload up;
	char key[STORE_CONFIG_KEY_MAX + 1]; /* the KEY part of a config path */
	bool key_cut;                       /* it did not fit */
	bool collecting;                    /* a small body is read into body */
	struct viv_buf body;                /* capped at STORE_CONFIG_VALUE_MAX */
	bool body_too_big;                  /* the cap was passed; the rest is dropped */
	uint64_t body_dropped;              /* bytes dropped after the cap */
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

/* The 500 for a store failure: logs err with what was being done, and
 * tells the client that the operator's log has the detail. */
enum MHD_Result api_reply_store_error(struct MHD_Connection *c, struct api_req *r,
				      enum viv_err err, const char *doing);

/* ---- JSON values (api_routes.c) -------------------------------------------- */

/* A JSON string of s with any invalid UTF-8 replaced by U+FFFD, since app
 * and build logs carry whatever bytes a guest or compiler wrote; json_null()
 * for NULL. New reference, NULL only on allocation failure. */
json_t *api_json_text(const char *s);

/* An ISO 8601 UTC time with milliseconds for ms since the epoch, or
 * json_null() for 0. New reference, NULL only on allocation failure. */
json_t *api_json_time(int64_t ms);

/* Writes the app's public URL, http://APP.DOMAIN[:PORT]/, into buf. */
void api_app_url(const struct api_server *s, const char *app, char *buf, size_t len);

/* ---- Handlers ------------------------------------------------------------------- */

/* Each handler answers one GET route of enum api_route, after the token
 * and the APP segment were checked, by queuing a JSON reply (errors
 * included); the result is what the access handler returns.
 *
 * api_get_index: GET /v1, and GET / when there is no web page: the
 * endpoints and the upload limit. api_get_healthz: GET /healthz, 200 when
 * the database answers, else 503. api_get_apps: every app. api_get_app: one
 * app and its newest deployments. api_get_app_logs: a page of the app's log
 * lines (after, limit). api_get_deployment: one deployment in full. */
enum MHD_Result api_get_index(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_healthz(struct api_server *s, struct MHD_Connection *c,
				struct api_req *r);
enum MHD_Result api_get_apps(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_app(struct api_server *s, struct MHD_Connection *c, struct api_req *r);
enum MHD_Result api_get_app_logs(struct api_server *s, struct MHD_Connection *c,
				 struct api_req *r);
enum MHD_Result api_get_deployment(struct api_server *s, struct MHD_Connection *c,
				   struct api_req *r);

/* The request's Content-Length, when it is plain decimal digits (saturating
 * at UINT64_MAX); false when there is none or it is malformed. */
bool api_content_length(struct MHD_Connection *c, uint64_t *out);

/* Queues the 404 for an app name (r->segment) that has no app. */
enum MHD_Result api_reply_no_such_app(struct MHD_Connection *c, struct api_req *r);

/* ---- App configuration (api_config.c) --------------------------------------------- */

/* GET /v1/apps/APP/config: the app's values as one JSON object. */
enum MHD_Result api_get_config(struct api_server *s, struct MHD_Connection *c,
			       struct api_req *r);

/* DELETE /v1/apps/APP/config/KEY: removes the value (404 when it was not
 * set) and answers with the values left. */
enum MHD_Result api_delete_config(struct api_server *s, struct MHD_Connection *c,
				  struct api_req *r);

/* The first call of PUT /v1/apps/APP/config/KEY: checks the key and
 * Content-Length (413 past STORE_CONFIG_VALUE_MAX) and sets r->collecting
 * so that the body is read into r->body. */
enum MHD_Result api_put_config_begin(struct api_server *s, struct MHD_Connection *c,
				     struct api_req *r);

/* The body is complete: stores it as the value (the raw bytes, UTF-8 text
 * without NUL) and answers with the app's values. */
enum MHD_Result api_put_config_finish(struct api_server *s, struct MHD_Connection *c,
				      struct api_req *r);

/* ---- Uploads (api_upload.c) -------------------------------------------------------- */

/* Sets up r->up empty, so that api_upload_cleanup() is always safe. */
void api_upload_init(struct api_upload *up);

/* The first call of POST /v1/apps/APP/deployments, after the token and the
 * name were checked: refuses by Content-Length (413, or 400 when empty) or
 * opens the temporary file and sets r->uploading. */
enum MHD_Result api_upload_begin(struct api_server *s, struct MHD_Connection *c,
				 struct api_req *r);

/* One piece of the body: writes, hashes and counts it against the cap.
 * Always consumes all n bytes; MHD_NO closes a connection that keeps
 * sending long after the cap. */
enum MHD_Result api_upload_data(struct api_server *s, struct api_req *r, const char *data,
				size_t n);

/* The body is complete: checks it, creates the deployment, wakes the
 * builder and replies 202, or replies with what was wrong. */
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
enum MHD_Result api_static_serve(struct api_server *s, struct MHD_Connection *c,
				 struct api_req *r, const char *name, bool *served);

#endif
