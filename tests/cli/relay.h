/* A TCP relay for the CLI's tests: it forwards every connection to the real
 * API, keeps the head of each request it saw, and can cut the first
 * response to a chosen path after its first complete event, so that a test
 * sees viv reconnect to the real server. */
#ifndef TESTS_CLI_RELAY_H
#define TESTS_CLI_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct relay {
	int listen_fd;
	int target_port;
	char base[64];        /* http://127.0.0.1:PORT of the relay */
	const char *cut_path; /* cut the first response to a request for this path */
	bool cut_done;
	pthread_t thread;
	pthread_mutex_t lock;
	char heads[16384]; /* request heads seen, one after another */
	size_t heads_len;
	int stop_pipe[2];
};

/* Starts relaying to 127.0.0.1:target_port; cut_path may be NULL. Asserts
 * on failure. */
void relay_start(struct relay *r, int target_port, const char *cut_path);

/* Whether the first response to cut_path was cut. */
bool relay_cut_done(struct relay *r);

/* A copy of the request heads seen so far (caller frees). */
char *relay_heads(struct relay *r);

/* Stops the relay and closes every connection. */
void relay_stop(struct relay *r);

#endif
