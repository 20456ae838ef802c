/* Unpacking an upload: a .wasm is copied, anything else goes through
 * libarchive with its secure extract flags and our own checks of every
 * entry's name, type, count and size (libarchive has no limits of its
 * own). */
#include "pipeline_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 1024
#define COMPONENT_MAX_LEN 255
#define SHOWN_NAME_MAX 120
#define MIB (1024.0 * 1024.0)

/* One extraction, run on its own thread (see unpack_thread). */
struct unpack_job {
	const char *upload;
	const char *dest;
	const struct pipe_config *cfg;
	size_t entries;
	uint64_t bytes;
	size_t skipped;
	enum viv_err err;
	char *errbuf;
	size_t errlen;
};

/* name as it may appear in a message: control characters become '?' and
 * long names are cut. */
static void shown_name(const char *name, char *buf, size_t len)
{
	size_t i, n = 0;

	for (i = 0; name[i] && n + 4 < len && i < SHOWN_NAME_MAX; i++) {
		unsigned char c = (unsigned char)name[i];
		buf[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (name[i] && n + 4 < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

/* Cleans an entry's name into out: "./a//b/" becomes "a/b". Refuses
 * absolute names, ".." components, control characters and names too long
 * for the file system. An empty result (the archive's "./") is allowed and
 * means "skip". */
static enum viv_err clean_name(const char *name, const char *what, char *out, size_t outlen,
                               char *err, size_t errlen)
{
	char shown[SHOWN_NAME_MAX + 8];
	const char *p = name;
	size_t n = 0;

	shown_name(name, shown, sizeof(shown));
	if (name[0] == '/') {
		viv_errf(err, errlen,
		         "the %s entry '%s' is an absolute path; paths in the %s must be "
		         "relative and stay inside it",
		         what, shown, what);
		return VIV_ERR_INVALID;
	}
	if (strlen(name) > NAME_MAX_LEN) {
		viv_errf(err, errlen, "the %s entry '%s' has a name longer than %d bytes", what,
		         shown, NAME_MAX_LEN);
		return VIV_ERR_INVALID;
	}
	for (const char *c = name; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			viv_errf(err, errlen,
			         "the %s entry '%s' has a control character in its name; "
			         "rename it",
			         what, shown);
			return VIV_ERR_INVALID;
		}
	}
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			viv_errf(err, errlen,
			         "the %s entry '%s' leaves the upload's folder; paths in the %s "
			         "must be relative and stay inside it",
			         what, shown, what);
			return VIV_ERR_INVALID;
		}
		if (len > COMPONENT_MAX_LEN) {
			viv_errf(err, errlen,
			         "the %s entry '%s' has a name part longer than %d bytes", what,
			         shown, COMPONENT_MAX_LEN);
			return VIV_ERR_INVALID;
		}
		if (len > 0 && !(len == 1 && p[0] == '.')) {
			if (n + len + 2 > outlen)
				return VIV_ERR_INVALID;
			if (n > 0)
				out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	out[n] = '\0';
	return VIV_OK;
}

/* Only regular files and directories are unpacked: links could point out
 * of the build, devices and fifos have no business in source. */
static enum viv_err check_type(struct archive_entry *e, const char *name, const char *what,
                               char *err, size_t errlen)
{
	char shown[SHOWN_NAME_MAX + 8];
	const char *kind = NULL;

	shown_name(name, shown, sizeof(shown));
	if (archive_entry_hardlink(e)) {
		kind = "a hard link";
	} else {
		switch (archive_entry_filetype(e)) {
		case AE_IFREG:
		case AE_IFDIR:
			return VIV_OK;
		case AE_IFLNK:
			kind = "a symbolic link";
			break;
		case AE_IFCHR:
		case AE_IFBLK:
			kind = "a device";
			break;
		case AE_IFIFO:
			kind = "a named pipe";
			break;
		case AE_IFSOCK:
			kind = "a socket";
			break;
		default:
			kind = "of an unknown type";
			break;
		}
	}
	viv_errf(err, errlen,
	         "the %s entry '%s' is %s; uploads may hold only regular files and folders", what,
	         shown, kind);
	return VIV_ERR_INVALID;
}

static const char *format_word(struct archive *a)
{
	return (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP ? "zip file"
	                                                                            : "tarball";
}

/* Files macOS adds to archives, which would hide the single root folder. */
static bool is_mac_litter(const char *clean)
{
	return strcmp(clean, "__MACOSX") == 0 || strncmp(clean, "__MACOSX/", 9) == 0;
}

static enum viv_err copy_data(struct unpack_job *job, struct archive *a, struct archive *w,
                              const char *name, const char *what)
{
	char shown[SHOWN_NAME_MAX + 8];
	const void *block;
	size_t size;
	la_int64_t offset;
	uint64_t written = 0; /* this entry's high-water mark */
	uint64_t max = job->cfg->unpack_max_bytes;
	int r;

	shown_name(name, shown, sizeof(shown));
	for (;;) {
		r = archive_read_data_block(a, &block, &size, &offset);
		if (r == ARCHIVE_EOF)
			return VIV_OK;
		if (r < ARCHIVE_WARN) {
			viv_errf(job->errbuf, job->errlen,
			         "the %s is damaged at '%s' (libarchive: %s); make it again and "
			         "upload it again",
			         what, shown, archive_error_string(a));
			return VIV_ERR_INVALID;
		}
		if (offset < 0 || (uint64_t)offset > max || size > max - (uint64_t)offset)
			goto too_big;
		/* Sparse holes count too: they are bytes of the file. */
		if ((uint64_t)offset + size > written) {
			uint64_t grow = (uint64_t)offset + size - written;
			if (job->bytes + grow > max)
				goto too_big;
			job->bytes += grow;
			written = (uint64_t)offset + size;
		}
		if (archive_write_data_block(w, block, size, offset) < ARCHIVE_WARN) {
			viv_errf(job->errbuf, job->errlen, "could not write '%s': %s", shown,
			         archive_error_string(w));
			return VIV_ERR_IO;
		}
	}
too_big:
	viv_errf(job->errbuf, job->errlen,
	         "the upload unpacks to more than %.0f MiB; the limit is %.0f MiB", max / MIB,
	         max / MIB);
	return VIV_ERR_TOO_BIG;
}

static enum viv_err extract(struct unpack_job *job)
{
	const int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	                  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	char clean[NAME_MAX_LEN + 2];
	char shown[SHOWN_NAME_MAX + 8];
	enum viv_err err = VIV_ERR_NOMEM;
	const char *what = "tarball";
	int r;

	a = archive_read_new();
	w = archive_write_disk_new();
	if (!a || !w)
		goto out;
	/* Named filters and formats only: "all" would also enable formats
	 * nobody uploads source in and filters that run external programs. */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	archive_write_disk_set_options(w, flags);
	if (archive_read_open_filename(a, job->upload, 65536) != ARCHIVE_OK) {
		viv_errf(job->errbuf, job->errlen,
		         "the upload is not a tarball or a .wasm module (libarchive: %s)",
		         archive_error_string(a));
		err = VIV_ERR_INVALID;
		goto out;
	}
	for (;;) {
		const char *name;
		mode_t perm;

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (job->entries == 0)
				viv_errf(job->errbuf, job->errlen,
				         "the upload is not a tarball or a .wasm module "
				         "(libarchive: %s)",
				         archive_error_string(a));
			else
				viv_errf(job->errbuf, job->errlen,
				         "the %s is damaged after %zu entries (libarchive: %s); "
				         "make it again and upload it again",
				         what, job->entries, archive_error_string(a));
			err = VIV_ERR_INVALID;
			goto out;
		}
		what = format_word(a);
		if (job->entries >= job->cfg->unpack_max_entries) {
			viv_errf(job->errbuf, job->errlen,
			         "the upload holds more than %zu files and folders; the limit is "
			         "%zu",
			         job->cfg->unpack_max_entries, job->cfg->unpack_max_entries);
			err = VIV_ERR_TOO_BIG;
			goto out;
		}
		job->entries++;
		name = archive_entry_pathname(e);
		if (!name || !*name) {
			viv_errf(job->errbuf, job->errlen,
			         "entry %zu of the %s has no name, or one that is not valid "
			         "UTF-8",
			         job->entries, what);
			err = VIV_ERR_INVALID;
			goto out;
		}
		err = clean_name(name, what, clean, sizeof(clean), job->errbuf, job->errlen);
		if (!err)
			err = check_type(e, name, what, job->errbuf, job->errlen);
		if (err)
			goto out;
		if (clean[0] == '\0' || is_mac_litter(clean)) {
			job->skipped++;
			continue;
		}
		if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size_is_set(e) &&
		    (archive_entry_size(e) < 0 ||
		     (uint64_t)archive_entry_size(e) > job->cfg->unpack_max_bytes - job->bytes)) {
			viv_errf(job->errbuf, job->errlen,
			         "the upload unpacks to more than %.0f MiB; the limit is %.0f MiB",
			         job->cfg->unpack_max_bytes / MIB,
			         job->cfg->unpack_max_bytes / MIB);
			err = VIV_ERR_TOO_BIG;
			goto out;
		}
		/* The name we checked is the name that is written. */
		archive_entry_set_pathname(e, clean);
		if (archive_entry_filetype(e) == AE_IFDIR)
			perm = 0755;
		else
			perm = (archive_entry_perm(e) & 0111) ? 0755 : 0644;
		archive_entry_set_perm(e, perm);
		r = archive_write_header(w, e);
		if (r < ARCHIVE_WARN) {
			shown_name(clean, shown, sizeof(shown));
			viv_errf(job->errbuf, job->errlen,
			         "the %s entry '%s' could not be unpacked (libarchive: %s)", what,
			         shown, archive_error_string(w));
			err = VIV_ERR_INVALID;
			goto out;
		}
		if (archive_entry_filetype(e) == AE_IFREG) {
			err = copy_data(job, a, w, clean, what);
			if (err)
				goto out;
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			shown_name(clean, shown, sizeof(shown));
			viv_errf(job->errbuf, job->errlen, "could not finish '%s' (libarchive: %s)",
			         shown, archive_error_string(w));
			err = VIV_ERR_IO;
			goto out;
		}
	}
	if (job->entries == 0) {
		viv_errf(job->errbuf, job->errlen,
		         "the upload is an empty %s; put the app's files in it", what);
		err = VIV_ERR_INVALID;
		goto out;
	}
	err = VIV_OK;
out:
	if (w) {
		archive_write_close(w);
		archive_write_free(w);
	}
	if (a)
		archive_read_free(a);
	return err;
}

/* libarchive's secure flags refuse absolute paths, so entries are written
 * relative to dest. The working directory is per process, so this thread
 * unshares its file system attributes (CLONE_FS) first and then changes
 * directory without touching any other thread's. */
static void *unpack_thread(void *arg)
{
	struct unpack_job *job = arg;

	if (unshare(CLONE_FS) != 0 || chdir(job->dest) != 0) {
		viv_errf(job->errbuf, job->errlen, "could not enter the build folder: %s",
		         strerror(errno));
		job->err = VIV_ERR_IO;
		return NULL;
	}
	job->err = extract(job);
	return NULL;
}

/* People tar their folder: when dest holds exactly one directory (and
 * nothing but files macOS adds), that directory is the project root, unless
 * its name is what marks a project's language: an AssemblyScript project
 * may be nothing but assembly/index.ts. */
static enum viv_err find_root(const char *dest, char **root_out)
{
	DIR *d;
	struct dirent *de;
	char *only = NULL;
	size_t n = 0;
	bool only_is_dir = false;
	enum viv_err err = VIV_OK;

	*root_out = NULL;
	d = opendir(dest);
	if (!d)
		return VIV_ERR_IO;
	for (de = readdir(d); de; de = readdir(d)) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, ".DS_Store") == 0)
			continue;
		n++;
		if (n > 1)
			break;
		path = viv_path_join(dest, de->d_name);
		if (!path) {
			err = VIV_ERR_NOMEM;
			break;
		}
		only_is_dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
		free(only);
		only = path;
	}
	closedir(d);
	if (err) {
		free(only);
		return err;
	}
	if (n == 1 && only_is_dir && strcmp(strrchr(only, '/') + 1, "assembly") != 0) {
		*root_out = only;
		return VIV_OK;
	}
	free(only);
	*root_out = strdup(dest);
	return *root_out ? VIV_OK : VIV_ERR_NOMEM;
}

/* Copies a single-file upload into dest as name. */
static enum viv_err copy_single(const char *upload, const char *dest, const char *name, size_t max,
                                char *errbuf, size_t errlen)
{
	char *data = NULL;
	char *path = NULL;
	size_t len = 0;
	enum viv_err err;

	err = viv_read_file(upload, max, &data, &len);
	if (err == VIV_ERR_TOO_BIG)
		viv_errf(errbuf, errlen, "the upload is larger than %.0f MiB, the limit",
		         max / MIB);
	else if (err)
		viv_errf(errbuf, errlen, "could not read the upload: %s", viv_strerror(err));
	if (err)
		goto out;
	path = viv_path_join(dest, name);
	if (!path) {
		err = VIV_ERR_NOMEM;
		goto out;
	}
	err = viv_write_file_atomic(path, data, len, 0644);
	if (err)
		viv_errf(errbuf, errlen, "could not write the module: %s", viv_strerror(err));
out:
	free(data);
	free(path);
	return err;
}

enum viv_err pipe_unpack(const char *upload, const char *dest, const struct pipe_config *cfg,
                         struct viv_buf *log, char **root_out, char *errbuf, size_t errlen)
{
	struct unpack_job job;
	struct stat st;
	unsigned char head[VIV_UPLOAD_SNIFF_MAX];
	ssize_t n = 0;
	enum viv_upload_kind kind;
	pthread_t th;
	enum viv_err err;
	int fd;

	*root_out = NULL;
	fd = open(upload, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		viv_errf(errbuf, errlen, "the upload could not be read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return VIV_ERR_IO;
	}
	if ((uint64_t)st.st_size > cfg->upload_max) {
		close(fd);
		viv_errf(errbuf, errlen, "the upload is %.1f MiB; the limit is %.0f MiB",
		         st.st_size / MIB, cfg->upload_max / MIB);
		return VIV_ERR_TOO_BIG;
	}
	do {
		n = read(fd, head, sizeof(head));
	} while (n < 0 && errno == EINTR);
	close(fd);
	kind = viv_upload_sniff(head, n > 0 ? (size_t)n : 0);
	if (kind == VIV_UPLOAD_WASM || kind == VIV_UPLOAD_WAT) {
		bool text = kind == VIV_UPLOAD_WAT;

		err = copy_single(upload, dest, text ? "app.wat" : "upload.wasm", cfg->upload_max,
		                  errbuf, errlen);
		if (err)
			return err;
		if (log)
			viv_buf_printf_trunc(log, "the upload is a WebAssembly %s (%lld bytes)%s\n",
			                     text ? "text file" : "module", (long long)st.st_size,
			                     text ? ", built as app.wat" : "");
		*root_out = strdup(dest);
		return *root_out ? VIV_OK : VIV_ERR_NOMEM;
	}

	memset(&job, 0, sizeof(job));
	job.upload = upload;
	job.dest = dest;
	job.cfg = cfg;
	job.errbuf = errbuf;
	job.errlen = errlen;
	if (pthread_create(&th, NULL, unpack_thread, &job) != 0) {
		viv_errf(errbuf, errlen, "could not start unpacking: %s", strerror(errno));
		return VIV_ERR_IO;
	}
	pthread_join(th, NULL);
	if (job.err)
		return job.err;
	err = find_root(dest, root_out);
	if (err) {
		viv_errf(errbuf, errlen, "could not read the unpacked upload: %s",
		         viv_strerror(err));
		return err;
	}
	if (log)
		viv_buf_printf_trunc(log, "unpacked %zu entries, %.1f KiB%s%s%s\n", job.entries,
		                     job.bytes / 1024.0,
		                     strcmp(*root_out, dest) ? "; project root is " : "",
		                     strcmp(*root_out, dest) ? strrchr(*root_out, '/') + 1 : "",
		                     strcmp(*root_out, dest) ? "/" : "");
	return VIV_OK;
}
