/* libFuzzer target for the manifest parser (pipe_manifest_parse()): each
 * input is the text of a vivarium.json. It is either refused with a
 * sentence, or its limits lie within the platform's maxima, every list has
 * as many entries as it says, and the configuration runners read can be
 * made from it. The text sits in a buffer of exactly its size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pipe_config cfg;
static bool ready;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_manifest: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pipe_manifest *m = NULL;
	char err[512] = "", *text = malloc(size ? size : 1);
	struct store_deploy_config config = {0};
	enum viv_err e;

	if (!ready) {
		pipe_config_defaults(&cfg);
		ready = true;
	}
	memcpy(text, data, size);
	e = pipe_manifest_parse(text, size, &cfg, &m, err, sizeof(err));
	if (e) {
		check(m == NULL, "a refused manifest came back");
		check(err[0] != '\0', "refused without a sentence");
	} else {
		check(m != NULL, "no manifest");
		check(m->limits.memory_mb <= cfg.limits_max.memory_mb, "memory above the maximum");
		check(m->limits.cpu_ms <= cfg.limits_max.cpu_ms, "CPU above the maximum");
		check(m->limits.wall_ms <= cfg.limits_max.wall_ms, "wall time above the maximum");
		for (size_t i = 0; i < m->n_sources; i++)
			check(m->sources[i] != NULL, "a missing source");
		for (size_t i = 0; i < m->n_cflags; i++)
			check(pipe_cflag_check(m->cflags[i], err, sizeof(err)) == VIV_OK,
			      "a refused cflag was kept");
		for (size_t i = 0; i < m->n_env; i++)
			check(m->env_keys[i] && m->env_values[i], "a missing env entry");
		for (size_t i = 0; i < m->n_outbound; i++)
			check(m->outbound[i] != NULL, "a missing outbound entry");
		e = pipe_manifest_config(m, NULL, &config);
		check(e == VIV_OK || e == VIV_ERR_NOMEM, "no configuration from a manifest");
	}
	store_deploy_config_clear(&config);
	pipe_manifest_free(m);
	free(text);
	return 0;
}
