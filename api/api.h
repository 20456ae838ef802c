/* The control-plane HTTP API (libmicrohttpd): uploads, deployment status,
 * apps, app logs, health, and the web page's static files. It records
 * deployments in the store; builders (pipeline/, a role of their own) claim
 * them from there, and build events are read back from there. */
#ifndef API_H
#define API_H

#include <stddef.h>

struct api_config {
	const char *datadir;
	const char *store_url; /* PostgreSQL, as store_open_db() takes it; NULL: SQLite */
	int listen_fd;         /* a bound, listening TCP socket */
	const char *domain;    /* apps are served at APP.DOMAIN */
	int apps_port;         /* the runners' port, for app URLs in replies */
	const char *web_dir;   /* static files of the upload page; NULL for none */
	/* Seconds between the keep-alive comments of event streams; 0: 15. */
	unsigned keepalive_s;
	/* The largest upload accepted, in bytes; 0: VIV_UPLOAD_MAX_DEFAULT. */
	size_t upload_max;
	/* The SDK root (its examples are the page's templates); NULL: none. */
	const char *sdk_dir;
	/* Where set-up installed npm packages (the page's vendor files under
	 * node_modules/); NULL: none. */
	const char *tool_dir;
};

/* Serves the API on cfg->listen_fd until SIGTERM or SIGINT. Borrows cfg
 * for the call. Returns the process exit status. */
int api_main(const struct api_config *cfg);

#endif
