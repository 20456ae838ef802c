/* The viv command-line client: how its parts (HTTP calls to the API,
 * packing a directory, the commands) talk to each other. Only cli/ uses
 * this header; the program's interface is its command line (viv help). */
#ifndef CLI_H
#define CLI_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "viv.h"

/* Bytes of one API reply that are read; build logs are the largest. */
#define CLI_RESP_MAX (16u << 20)
/* Where the token is looked for when neither --token nor VIV_TOKEN is set. */
#define CLI_TOKEN_FILE "./vivarium-data/admin-token"
#define CLI_API_DEFAULT "http://127.0.0.1:8080"
/* Longest token file read. */
#define CLI_TOKEN_MAX 4096
/* Longest vivarium.json read to find the app name. */
#define CLI_MANIFEST_MAX (1u << 20)
/* Limits on what a packed directory may hold. */
#define CLI_PACK_MAX_ENTRIES 20000
#define CLI_PACK_MAX_DEPTH 32
#define CLI_PACK_MAX_PATH 1024
/* Milliseconds between two polls of a deployment: quick for the first
 * CLI_POLL_FAST_COUNT polls, then slower; and between two polls of --follow. */
#define CLI_POLL_MS 250
#define CLI_POLL_FAST_COUNT 40
#define CLI_POLL_SLOW_MS 1000
#define CLI_FOLLOW_MS 1000

/* Exit statuses. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* The connection to one API: set up by main, used by every command. */
struct cli {
	char *api;              /* base URL without a trailing '/'; owned */
	char *token;            /* NULL when none was found; owned */
	const char *token_from; /* where token came from, for messages; static */
	CURL *curl;             /* one easy handle, reused across calls */
};

/* Sends one request to the API and reads the reply, capped at
 * CLI_RESP_MAX. path starts with '/'; body (may be NULL) is sent raw as
 * application/octet-stream. When the reply's status is expect and its body
 * is JSON, *out is that JSON (caller frees with json_decref()). Otherwise
 * errbuf gets one sentence for the user (unreachable server, refused
 * token, the API's own "error" sentence) and the result is VIV_ERR_IO for
 * transport failures, VIV_ERR_AUTH for 401, VIV_ERR_NOT_FOUND for 404,
 * VIV_ERR_TOO_BIG for 413 and VIV_ERR_INVALID for any other reply. */
enum viv_err cli_call(struct cli *c, const char *method, const char *path, const void *body,
		      size_t len, long expect, json_t **out, char *errbuf, size_t errlen);

/* Packs the directory dir as a gzipped tar in memory, leaving out .git/,
 * target/, node_modules/, build/ and vivarium-data/ at any depth, symlinks,
 * special files and files larger than max (each skip is reported on
 * stderr). The archive holds paths relative to dir. On success *out (caller
 * frees with free()) has *len_out bytes and *files_out is how many files
 * went in. VIV_ERR_TOO_BIG when the archive would pass max or the tree
 * passes the entry, depth or path caps; errbuf says which. */
enum viv_err cli_pack_dir(const char *dir, size_t max, char **out, size_t *len_out,
			  size_t *files_out, char *errbuf, size_t errlen);

/* Turns text (a directory or file name) into an app name: lowercase, runs of
 * other characters become one '-', no '-' at either end, at most 63
 * characters. Writes into buf (at least 64 bytes); the result may still be
 * invalid (empty), which the caller checks with viv_app_name_valid(). */
void cli_name_from(const char *text, char *buf, size_t len);

/* The commands. Each prints for a human and returns the exit status. */
int cli_deploy(struct cli *c, const char *path, const char *app, bool wait);
int cli_apps(struct cli *c);
int cli_status(struct cli *c, const char *id);
int cli_logs(struct cli *c, const char *app, bool follow);

#endif
