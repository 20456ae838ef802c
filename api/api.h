/* The control-plane HTTP API (libmicrohttpd): uploads, deployment status,
 * apps, app logs, health, and the web page's static files. It also owns the
 * background builder of pipeline/. */
#ifndef API_H
#define API_H

#include "pipeline.h"

struct api_config {
	const char *datadir;
	int listen_fd;       /* a bound, listening TCP socket */
	const char *domain;  /* apps are served at APP.DOMAIN */
	int apps_port;       /* the runners' port, for app URLs in replies */
	const char *web_dir; /* static files of the upload page; NULL for none */
	/* Seconds between the keep-alive comments of event streams; 0: 15. */
	unsigned keepalive_s;
	struct pipe_config pipe;
};

/* Serves the API on cfg->listen_fd until SIGTERM or SIGINT, with a builder
 * thread running beside it. Returns the process exit status. */
int api_main(const struct api_config *cfg);

#endif
