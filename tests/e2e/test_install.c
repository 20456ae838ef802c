/* cmake --install: the installed vivd finds the SDKs, the headers and the
 * page where it was installed, with no path of the source or build tree
 * in the program, and builds and serves an app from there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "viv.h"

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

Test(install, the_installed_vivd_builds_and_serves_from_its_prefix, .timeout = 300)
{
	char prefix[] = "/tmp/viv-install-XXXXXX", bin[300], *data, *out = NULL, *tgz;
	const char *install[] = {"cmake", "--install", VIV_BUILD_DIR, "--prefix",
	                         prefix,  "--strip",   NULL};
	const char *const trees[] = {VIV_SOURCE_DIR, VIV_BUILD_DIR};
	struct tsup_vivd v;
	struct tsup_resp r;
	struct stat st;
	size_t len, tlen;
	json_t *d;

	cr_assert_not_null(mkdtemp(prefix));
	cr_assert_eq(chmod(prefix, 0755), 0);
	cr_assert_eq(tsup_run(install, NULL, &out), 0, "cmake --install failed:\n%s", out);
	free(out);
	snprintf(bin, sizeof(bin), "%s/bin/vivd", prefix);
	data = tsup_read_file(bin, &len);
	for (size_t i = 0; i < 2; i++)
		cr_assert_null(memmem(data, len, trees[i], strlen(trees[i])),
		               "the installed vivd names %s", trees[i]);
	free(data);
	{
		char path[400];
		snprintf(path, sizeof(path), "%s/share/vivarium/sdk/c/vivarium.h", prefix);
		cr_assert_eq(stat(path, &st), 0, "no %s", path);
		snprintf(path, sizeof(path), "%s/lib/systemd/system/vivd.service", prefix);
		cr_assert_eq(stat(path, &st), 0, "no %s", path);
		snprintf(path, sizeof(path), "%s/etc/vivarium/vivd.conf", prefix);
		cr_assert_eq(stat(path, &st), 0, "no %s", path);
	}
	tsup_vivd_start_bin(&v, bin, NULL);
	tsup_tar_dir(VIV_SOURCE_DIR "/sdk/examples/c-hello", NULL, 0, true, &tgz, &tlen);
	d = tsup_deploy_wait(&v, "hello", tgz, tlen);
	free(tgz);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s\n%s", jstr(d, "error"), jstr(d, "log"));
	json_decref(d);
	cr_assert(tsup_app_get(&v, "hello", "/", &r), "%s", r.error);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "Hello, world!"), "%s", r.body);
	tsup_resp_free(&r);
	tsup_vivd_stop(&v);
	viv_rmtree_or_log(prefix);
}
