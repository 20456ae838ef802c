/* The fetcher role of a runner host that does not share the builders' data
 * folder: the routes are in the shared store, the artifacts and static files
 * come from the API by hash. Private to vivd/. */
#ifndef VIVD_FETCH_H
#define VIVD_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct store;
struct pipe_config;

/* A runner host that does not share the builders' data folder: the routes
 * are in the shared store, the artifacts come from the API by hash. */
struct vivd_fetch_config {
	const char *datadir;   /* this host's own: its artifact folder is the cache */
	const char *store_url; /* the shared store, as store_open_db() takes it */
	const char *api;       /* the API's base URL, "http://HOST:PORT" */
	const char *token;     /* an admin token for it */
	/* The limits static files are unpacked within. Borrowed. */
	const struct pipe_config *pipe;
};

/* Fetches artifact hash from the API into st's artifact folder: its bytes
 * must match the sha256 the store recorded for it (the API's word only for
 * artifacts built before that was recorded), and its platform must be one
 * this host loads (viv_platform_runs); only then is it put in place, where
 * the workers' routes take it up (a route waits for its artifact). false,
 * with a sentence in why, when it was not put. */
bool vivd_fetch_artifact(const struct vivd_fetch_config *cfg, struct store *st, const char *hash,
                         char *why, size_t whylen);

/* Fetches the static files that hash names (GET /v1/assets/{hash}) into
 * st's static files folder, once the tree that came, unpacked as an upload
 * is, hashes to hash. false, with a sentence in why, when they were not put. */
bool vivd_fetch_assets(const struct vivd_fetch_config *cfg, struct store *st, const char *hash,
                       char *why, size_t whylen);

/* The fetcher role: fetches the artifact and the static files of every route the store names
 * that this host lacks, when the routes generation moves and every few
 * seconds, until SIGTERM. Returns the process exit status. */
int vivd_fetch_main(const struct vivd_fetch_config *cfg);

#endif
