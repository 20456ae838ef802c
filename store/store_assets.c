/* Static assets of deployments: directory trees named by the hash of their
 * content, DATADIR/assets/HASH/, put in place whole by a rename. */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASSETS_DIR "assets"
#define ASSETS_DEPTH_MAX 64
#define ASSETS_TMP_PREFIX ".tmp-"

char *store_assets_path(const struct store *st, const char *hash)
{
	char *path;

	if (!viv_hex64_valid(hash))
		return NULL;
	if (asprintf(&path, "%s/" ASSETS_DIR "/%s", st->datadir, hash) < 0)
		return NULL;
	return path;
}

/* Copies the regular file name in src (a directory fd) to dst, then
 * fsyncs it. */
static enum viv_err copy_file(int src, int dst, const char *name)
{
	enum viv_err err;
	int in, out;

	in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return VIV_ERR_IO;
	out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return VIV_ERR_IO;
	}
	err = viv_copy_fd(in, out, UINT64_MAX, NULL);
	if (!err && fsync(out) != 0)
		err = VIV_ERR_IO;
	if (close(out) != 0 && !err)
		err = VIV_ERR_IO;
	close(in);
	return err;
}

/* Copies the tree open at src into the empty directory open at dst; closes
 * neither. Only regular files and directories are copied: anything else is
 * VIV_ERR_INVALID, so that a link can never point a runner outside the
 * tree. */
static enum viv_err copy_tree(int src, int dst, int depth)
{
	DIR *d;
	struct dirent *de;
	enum viv_err err = VIV_OK;
	int src_dup;

	if (depth > ASSETS_DEPTH_MAX)
		return VIV_ERR_INVALID;
	src_dup = dup(src);
	if (src_dup < 0)
		return VIV_ERR_IO;
	d = fdopendir(src_dup);
	if (!d) {
		close(src_dup);
		return VIV_ERR_IO;
	}
	for (de = readdir(d); !err && de; de = readdir(d)) {
		struct stat sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(src, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
			err = VIV_ERR_IO;
		} else if (S_ISREG(sb.st_mode)) {
			err = copy_file(src, dst, de->d_name);
		} else if (S_ISDIR(sb.st_mode)) {
			int s2 = -1, d2 = -1;

			if (mkdirat(dst, de->d_name, 0755) != 0)
				err = VIV_ERR_IO;
			if (!err) {
				s2 = openat(src, de->d_name,
				            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				d2 = openat(dst, de->d_name,
				            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (s2 < 0 || d2 < 0)
					err = VIV_ERR_IO;
			}
			if (!err)
				err = copy_tree(s2, d2, depth + 1);
			if (!err && fsync(d2) != 0)
				err = VIV_ERR_IO;
			if (s2 >= 0)
				close(s2);
			if (d2 >= 0)
				close(d2);
		} else {
			err = VIV_ERR_INVALID;
		}
	}
	closedir(d);
	return err;
}

enum viv_err store_assets_put(const struct store *st, const char *hash, const char *src_dir)
{
	char *root = NULL, *final = NULL, *tmp = NULL;
	char rnd[17];
	struct stat sb;
	enum viv_err err;
	int src = -1, dst = -1;

	if (!viv_hex64_valid(hash) || !src_dir)
		return VIV_ERR_INVALID;
	if (asprintf(&root, "%s/" ASSETS_DIR, st->datadir) < 0) {
		root = NULL;
		err = VIV_ERR_NOMEM;
		goto out;
	}
	final = store_assets_path(st, hash);
	err = store_random_hex(rnd, 8);
	if (err)
		goto out;
	if (!final || asprintf(&tmp, "%s/" ASSETS_TMP_PREFIX "%s-%s", root, hash, rnd) < 0) {
		tmp = NULL;
		err = VIV_ERR_NOMEM;
		goto out;
	}
	/* Content addressed: a tree already there is this tree. */
	if (lstat(final, &sb) == 0 && S_ISDIR(sb.st_mode))
		goto out;
	src = open(src_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0) {
		err = errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
		goto out;
	}
	err = viv_mkdirs(root, 0700);
	if (err)
		goto out;
	if (mkdir(tmp, 0755) != 0) {
		err = VIV_ERR_IO;
		goto out;
	}
	dst = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0) {
		err = VIV_ERR_IO;
		goto out;
	}
	err = copy_tree(src, dst, 0);
	if (!err && fsync(dst) != 0)
		err = VIV_ERR_IO;
	if (err)
		goto out;
	if (rename(tmp, final) != 0) {
		/* Another builder put the same tree in place first. */
		if ((errno == ENOTEMPTY || errno == EEXIST) && lstat(final, &sb) == 0 &&
		    S_ISDIR(sb.st_mode))
			err = VIV_OK;
		else
			err = VIV_ERR_IO;
		goto out;
	}
	free(tmp);
	tmp = NULL;
	err = store_fsync_dir(root);
out:
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	if (tmp && viv_rmtree(tmp) != VIV_OK)
		viv_log(VIV_WARN, "store: could not remove %s", tmp);
	if (err && err != VIV_ERR_NOT_FOUND && err != VIV_ERR_INVALID)
		viv_log(VIV_WARN, "store: could not store assets %s from %s: %s", hash, src_dir,
		        viv_strerror(err));
	free(root);
	free(final);
	free(tmp);
	return err;
}

/* ---- Collecting trees ------------------------------------------------------------ */

static const char sql_assets_used[] =
        "SELECT 1 FROM deployments WHERE json_type(config, '$.assets') = 'text'"
        " AND json_extract(config, '$.assets') = ?1 LIMIT 1";
static const char sql_assets_used_pg[] =
        "SELECT 1 FROM deployments WHERE config::jsonb ->> 'assets' = ?1 LIMIT 1";

/*
 * Under the write lock the tree is renamed out of its place, so that from
 * the commit on nobody finds it (store_deployment_ready() checks that a
 * deployment's tree is there under the same lock); it is emptied after.
 */
enum viv_err store_assets_collect(struct store *st, const char *hash, bool *removed_out)
{
	char *final = NULL, *gone = NULL;
	char rnd[17];
	enum viv_err err;
	bool used = false;

	*removed_out = false;
	final = store_assets_path(st, hash);
	if (!final)
		return viv_hex64_valid(hash) ? VIV_ERR_NOMEM : VIV_ERR_INVALID;
	err = store_random_hex(rnd, 8);
	if (!err && asprintf(&gone, "%s/" ASSETS_DIR "/" ASSETS_TMP_PREFIX "gone-%s-%s",
	                     st->datadir, hash, rnd) < 0) {
		gone = NULL;
		err = VIV_ERR_NOMEM;
	}
	if (!err)
		err = store_begin(st);
	if (err)
		goto out;
	err = store_lock(st, STORE_LOCK_FILES, 0);
	if (!err)
		err = store_text_exists(st, store_sql(st, sql_assets_used, sql_assets_used_pg),
		                        hash, &used);
	if (!err && !used) {
		if (rename(final, gone) == 0)
			*removed_out = true;
		else if (errno != ENOENT)
			viv_log(VIV_WARN, "store: cannot remove %s: %s", final, strerror(errno));
	}
	if (!err)
		err = store_commit(st);
	store_rollback(st);
	if (*removed_out) {
		if (viv_rmtree(gone) != VIV_OK)
			viv_log(VIV_WARN, "store: could not remove %s", gone);
		else
			viv_log(VIV_INFO,
			        "store: removed static files %s, which no deployment uses", hash);
	}
out:
	free(final);
	free(gone);
	return err;
}

bool store_assets_exists(const struct store *st, const char *hash)
{
	char *path = store_assets_path(st, hash);
	struct stat sb;
	bool here = path && lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);

	free(path);
	return here;
}
