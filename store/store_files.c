/* Files in the data directory: uploads waiting for their build, private
 * build directories, and the content-addressed artifact directory. */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A temporary upload untouched for this long is abandoned, whoever made it. */
#define STORE_UPLOAD_TMP_STALE_S (24 * 60 * 60)

#define UPLOAD_TMP_PREFIX "tmp-"

enum viv_err store_random_hex(char *hex, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char bytes[64];
	enum viv_err err;
	size_t i;

	if (n > sizeof(bytes))
		return VIV_ERR_INVALID;
	err = viv_random(bytes, n);
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	hex[2 * n] = '\0';
	return VIV_OK;
}

enum viv_err store_fsync_dir(const char *path)
{
	enum viv_err err = VIV_OK;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return VIV_ERR_IO;
	if (fsync(fd) != 0)
		err = VIV_ERR_IO;
	close(fd);
	return err;
}

/* ---- Uploads ------------------------------------------------------------------ */

/*
 * A temporary upload is named tmp-PID-RANDOM after the process that asked
 * for it. Every process on the data directory opens a store, a restarted
 * runner worker included, so store_open() must not remove uploads that a
 * live API process is still receiving: it removes those whose process is
 * gone, and any not written to for a day (which also covers a reused pid).
 * Processes in different pid namespaces must not share a data directory.
 */
enum viv_err store_upload_tmp(const struct store *st, char **path_out)
{
	char rnd[33];
	enum viv_err err;
	char *path;

	*path_out = NULL;
	err = store_random_hex(rnd, 16);
	if (err)
		return err;
	if (asprintf(&path, "%s/" UPLOAD_TMP_PREFIX "%ld-%s", st->uploads_dir, (long)getpid(),
	             rnd) < 0)
		return VIV_ERR_NOMEM;
	*path_out = path;
	return VIV_OK;
}

char *store_upload_path(const struct store *st, int64_t deployment_id)
{
	char *path;

	if (asprintf(&path, "%s/%lld", st->uploads_dir, (long long)deployment_id) < 0)
		return NULL;
	return path;
}

/* True when the temporary upload called name was left by a process that is
 * gone, or has not been written to for a day. */
static bool upload_tmp_abandoned(const char *name, const struct stat *sb)
{
	const char *end;
	uint64_t pid;

	if (time(NULL) - sb->st_mtime > STORE_UPLOAD_TMP_STALE_S)
		return true;
	if (!viv_parse_u64(name + strlen(UPLOAD_TMP_PREFIX), &end, INT32_MAX, &pid) ||
	    *end != '-' || pid == 0)
		return false;
	if (pid == (uint64_t)getpid())
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void store_uploads_sweep(struct store *st)
{
	struct dirent *de;
	struct stat sb;
	DIR *dir;

	dir = opendir(st->uploads_dir);
	if (!dir) {
		viv_log(VIV_WARN, "store: cannot list %s: %s", st->uploads_dir, strerror(errno));
		return;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		if (strncmp(de->d_name, UPLOAD_TMP_PREFIX, strlen(UPLOAD_TMP_PREFIX)) != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode) || !upload_tmp_abandoned(de->d_name, &sb))
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			viv_log(VIV_INFO, "store: removed abandoned upload %s/%s", st->uploads_dir,
			        de->d_name);
		else if (errno != ENOENT)
			viv_log(VIV_WARN, "store: cannot remove %s/%s: %s", st->uploads_dir,
			        de->d_name, strerror(errno));
	}
	closedir(dir);
}

/* ---- Build directories --------------------------------------------------------- */

const char *store_builds_dir(const struct store *st)
{
	return st->builds_dir;
}

enum viv_err store_build_dir(const struct store *st, const char *parent, int64_t deployment_id,
                             char **out)
{
	char rnd[17];
	enum viv_err err;
	char *path;

	*out = NULL;
	err = store_random_hex(rnd, 8);
	if (err)
		return err;
	if (asprintf(&path, "%s/%lld-%s", parent ? parent : st->builds_dir,
	             (long long)deployment_id, rnd) < 0)
		return VIV_ERR_NOMEM;
	/* mkdir fails on an existing path, so the directory is ours and empty. */
	if (mkdir(path, 0700) != 0) {
		viv_log(VIV_ERROR, "store: cannot create %s: %s", path, strerror(errno));
		free(path);
		return VIV_ERR_IO;
	}
	*out = path;
	return VIV_OK;
}

/* ---- Artifacts ------------------------------------------------------------------ */

/* Only checked names reach the file system, so that no hash or extension
 * can point outside the artifact directory. */
static bool artifact_name_valid(const char *hash, const char *ext)
{
	if (!viv_hex64_valid(hash) || !ext)
		return false;
	return strcmp(ext, "so") == 0 || strcmp(ext, "wasm") == 0;
}

char *store_artifact_path(const struct store *st, const char *hash, const char *ext)
{
	char *path;

	if (!artifact_name_valid(hash, ext))
		return NULL;
	if (asprintf(&path, "%s/%.2s/%s.%s", st->artifacts_dir, hash, hash, ext) < 0)
		return NULL;
	return path;
}

bool store_artifact_exists(const struct store *st, const char *hash)
{
	struct stat sb;
	char *path;
	bool found;

	path = store_artifact_path(st, hash, "so");
	if (!path)
		return false;
	found = lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
	free(path);
	return found;
}

/* Copies what in holds (from its start) to a new file tmp and makes its
 * contents durable. */
static enum viv_err copy_file_synced(int in, const char *tmp)
{
	enum viv_err err = VIV_ERR_IO;
	int out;

	if (lseek(in, 0, SEEK_SET) != 0)
		return VIV_ERR_IO;
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return err;
	err = viv_copy_fd(in, out, UINT64_MAX, NULL);
	if (!err && fsync(out) != 0)
		err = VIV_ERR_IO;
	if (close(out) != 0 && !err)
		err = VIV_ERR_IO;
	return err;
}

/* Moves tmp to dst unless dst exists; either way tmp is gone afterwards. An
 * existing dst has the same contents (the name is their hash), and leaving
 * it alone keeps it the same file for a worker that has it open. */
static enum viv_err publish(const char *tmp, const char *dst, bool *placed)
{
	int rc;

	*placed = false;
	rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE);
	if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
		/* The file system cannot refuse to replace; the contents are
		 * the same, so replacing is still correct. */
		rc = rename(tmp, dst);
	}
	if (rc == 0) {
		*placed = true;
		return VIV_OK;
	}
	if (errno == EEXIST) {
		unlink(tmp);
		return VIV_OK;
	}
	return VIV_ERR_IO;
}

enum viv_err store_artifact_put(const struct store *st, const char *hash, const char *ext,
                                const char *src)
{
	enum viv_err err;
	int fd;

	if (!src)
		return VIV_ERR_INVALID;
	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VIV_ERR_NOT_FOUND : VIV_ERR_IO;
	err = store_artifact_put_fd(st, hash, ext, fd);
	close(fd);
	return err;
}

enum viv_err store_artifact_put_fd(const struct store *st, const char *hash, const char *ext,
                                   int src_fd)
{
	char *dst = NULL, *dir = NULL, *tmp = NULL;
	char rnd[17];
	enum viv_err err;
	struct stat sb;
	bool placed;

	if (!artifact_name_valid(hash, ext) || src_fd < 0)
		return VIV_ERR_INVALID;
	err = VIV_ERR_NOMEM;
	dst = store_artifact_path(st, hash, ext);
	if (!dst || asprintf(&dir, "%s/%.2s", st->artifacts_dir, hash) < 0) {
		dir = NULL;
		goto out;
	}
	if (stat(dst, &sb) == 0) {
		err = VIV_OK;
		goto out;
	}
	err = VIV_ERR_IO;
	if (mkdir(dir, 0700) == 0) {
		if (store_fsync_dir(st->artifacts_dir))
			goto out;
	} else if (errno != EEXIST) {
		goto out;
	}
	err = store_random_hex(rnd, 8);
	if (err)
		goto out;
	if (asprintf(&tmp, "%s.tmp-%s", dst, rnd) < 0) {
		tmp = NULL;
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = copy_file_synced(src_fd, tmp);
	if (!err)
		err = publish(tmp, dst, &placed);
	if (!err && placed)
		err = store_fsync_dir(dir);
out:
	if (err) {
		viv_log(VIV_ERROR, "store: cannot put artifact %s.%s: %s", hash, ext,
		        err == VIV_ERR_IO ? strerror(errno) : viv_strerror(err));
		if (tmp)
			unlink(tmp);
	}
	free(tmp);
	free(dir);
	free(dst);
	return err;
}

void store_upload_remove(struct store *st, int64_t deployment_id)
{
	char *path = store_upload_path(st, deployment_id);

	if (path && unlink(path) != 0 && errno != ENOENT)
		viv_log(VIV_WARN, "store: cannot remove %s: %s", path, strerror(errno));
	free(path);
}

/* ---- Collecting artifacts --------------------------------------------------------- */

static const char sql_artifact_used[] = "SELECT 1 FROM deployments WHERE artifact = ?1 LIMIT 1";
static const char sql_artifact_delete[] = "DELETE FROM artifacts WHERE hash = ?1";

/* Unlinks HASH.EXT; true when it was there. */
static bool artifact_unlink(const struct store *st, const char *hash, const char *ext)
{
	char *path = store_artifact_path(st, hash, ext);
	bool gone = false;

	if (!path)
		return false;
	if (unlink(path) == 0)
		gone = true;
	else if (errno != ENOENT)
		viv_log(VIV_WARN, "store: cannot remove %s: %s", path, strerror(errno));
	free(path);
	return gone;
}

/*
 * The files go while the write lock is held: store_deployment_ready()
 * checks under that lock that the .so is there, so a deployment never
 * becomes ready with an artifact removed here, whichever comes first.
 */
enum viv_err store_artifact_collect(struct store *st, const char *hash, bool *removed_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool used = false, so, wasm;

	*removed_out = false;
	if (!viv_hex64_valid(hash))
		return VIV_ERR_INVALID;
	err = store_begin(st);
	if (err)
		return err;
	err = store_lock(st, STORE_LOCK_FILES, 0);
	if (!err)
		err = store_text_exists(st, sql_artifact_used, hash, &used);
	if (err || used)
		goto out;
	err = store_prepare(st, sql_artifact_delete, &stmt);
	if (err)
		goto out;
	store_bind_text(st, stmt, 1, hash);
	err = store_run(st, stmt);
	store_release(st, stmt);
	if (err)
		goto out;
	so = artifact_unlink(st, hash, "so");
	wasm = artifact_unlink(st, hash, "wasm");
	err = store_commit(st);
	*removed_out = so || wasm;
	if (*removed_out)
		viv_log(VIV_INFO, "store: removed artifact %s, which no deployment uses", hash);
out:
	store_rollback(st);
	return err;
}
