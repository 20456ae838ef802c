/* Real artifacts for runner tests; see artifact.h. */
#include "artifact.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "store.h"
#include "support.h"

static char datadir[64];

static void remove_datadir(void)
{
	if (datadir[0] && !getenv("VIV_TEST_KEEP"))
		viv_rmtree_or_log(datadir);
}

char *tsup_artifact_files(const char *const *names, const char *const *texts, size_t n)
{
	struct tsup_file files[16];
	struct pipe_config cfg;
	struct store_deployment *d = NULL;
	struct store *st = NULL;
	char err[512], *tgz, *tmp = NULL, hex[VIV_SHA256_HEX_LEN + 1], *path;
	size_t len, i;
	int64_t id = 0, claimed = 0;

	cr_assert(n > 0 && n <= 16);
	if (!datadir[0]) {
		strcpy(datadir, "/tmp/viv-art-XXXXXX");
		cr_assert_not_null(mkdtemp(datadir));
		atexit(remove_datadir);
	}
	cr_assert_eq(store_open(datadir, &st, err, sizeof(err)), VIV_OK, "%s", err);
	for (i = 0; i < n; i++)
		files[i] = (struct tsup_file){names[i], texts[i]};
	tsup_tar(files, n, true, &tgz, &len);
	cr_assert_eq(store_upload_tmp(st, &tmp), VIV_OK);
	cr_assert_eq(viv_write_file_atomic(tmp, tgz, len, 0600), VIV_OK);
	viv_sha256_hex(tgz, len, hex);
	cr_assert_eq(store_deployment_create(st, "test", tmp, hex, (int64_t)len, &id), VIV_OK);
	cr_assert_eq(store_deployment_claim(st, &claimed), VIV_OK);
	cr_assert_eq(claimed, id);
	pipe_config_defaults(&cfg);
	cfg.sandbox = pipe_sandbox_available(NULL, err, sizeof(err));
	cr_assert_eq(pipe_build(st, &cfg, NULL, id), VIV_OK);
	cr_assert_eq(store_deployment_get(st, id, &d), VIV_OK);
	cr_assert_eq(d->status, STORE_DEP_READY, "build of %s failed: %s\n%s", names[0],
	             d->error ? d->error : "", d->log);
	path = store_artifact_path(st, d->artifact, "so");
	cr_assert_not_null(path);
	store_deployment_free(d);
	store_close(st);
	free(tmp);
	free(tgz);
	return path;
}

char *tsup_artifact(const char *name, const char *source)
{
	return tsup_artifact_files(&name, &source, 1);
}
