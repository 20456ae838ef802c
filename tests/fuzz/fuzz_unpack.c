/* libFuzzer target for unpacking (pipe_unpack()): each input is an upload,
 * written to a file and unpacked into an empty folder with small limits.
 * Whatever it is, unpacking refuses it with a sentence or leaves only
 * regular files and folders inside the folder, and nothing beside it. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pipe_config cfg;
static char work[64], dest[96], upload[96], canary[96];

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_unpack: %s\n", what);
		abort();
	}
}

/* Whether dir holds only regular files with one name, and folders; counts
 * what it holds in *n. */
static bool tidy(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool ok = true;

	if (!d)
		return false;
	while (ok && (de = readdir(d)) != NULL) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		(*n)++;
		path = viv_path_join(dir, de->d_name);
		ok = path && lstat(path, &st) == 0 &&
		     (S_ISDIR(st.st_mode) ? tidy(path, n)
		                          : S_ISREG(st.st_mode) && st.st_nlink == 1);
		free(path);
	}
	closedir(d);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024] = "", *root = NULL;
	size_t n = 0;
	enum viv_err e;

	if (!work[0]) {
		snprintf(work, sizeof(work), "/tmp/viv-fuzz-unpack-%d", (int)getpid());
		snprintf(dest, sizeof(dest), "%s/build", work);
		snprintf(upload, sizeof(upload), "%s/upload", work);
		snprintf(canary, sizeof(canary), "%s/canary", work);
		viv_rmtree_or_log(work);
		check(viv_mkdirs(work, 0755) == VIV_OK, "cannot make the work folder");
		check(viv_write_file_atomic(canary, "canary", 6, 0600) == VIV_OK,
		      "cannot write the canary");
		pipe_config_defaults(&cfg);
		cfg.unpack_max_bytes = 4u << 20;
		cfg.unpack_max_entries = 200;
	}
	viv_rmtree_or_log(dest);
	check(mkdir(dest, 0755) == 0, "cannot make the build folder");
	check(viv_write_file_atomic(upload, data, size, 0644) == VIV_OK, "cannot write");
	e = pipe_unpack(upload, dest, &cfg, NULL, &root, err, sizeof(err));
	if (e)
		check(err[0] != '\0', "refused without a sentence");
	else
		check(root && strncmp(root, dest, strlen(dest)) == 0, "the root is outside");
	free(root);
	check(tidy(dest, &n), "something other than a file or folder was unpacked");
	{
		DIR *d = opendir(work);
		struct dirent *de;

		check(d != NULL, "the work folder is gone");
		while ((de = readdir(d)) != NULL)
			check(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			              strcmp(de->d_name, "build") == 0 ||
			              strcmp(de->d_name, "upload") == 0 ||
			              strcmp(de->d_name, "canary") == 0,
			      "something appeared beside the build folder");
		closedir(d);
	}
	{
		char *text = NULL;
		size_t len = 0;

		check(viv_read_file(canary, 64, &text, &len) == VIV_OK && len == 6 &&
		              memcmp(text, "canary", 6) == 0,
		      "the canary changed");
		free(text);
	}
	return 0;
}
