/* Packs a source directory into a gzipped tar in memory (libarchive) for
 * `viv deploy DIR`, leaving out version control, build output and
 * dependencies, in a stable order so that the same tree packs the same; and
 * makes app names out of folder and file names. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Directory names never packed, at any depth: version control, build
 * output, dependencies, and a Vivarium data directory (which holds the
 * admin token). */
static const char *const cli_skip_dirs[] = {
        ".git", "target", "node_modules", "build", "vivarium-data",
};

struct cli_pack {
	struct archive *a;
	struct viv_buf out; /* the archive so far, capped at the upload size */
	bool over;          /* out reached its cap */
	size_t max;         /* the upload size: larger files are skipped */
	size_t entries;     /* entries written */
	size_t files;       /* of which regular files */
	char *errbuf;
	size_t errlen;
};

static la_ssize_t pack_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct cli_pack *p = ctx;

	if (viv_buf_append(&p->out, buf, n)) {
		p->over = true;
		archive_set_error(a, EFBIG, "the archive reached the upload limit");
		return -1;
	}
	return (la_ssize_t)n;
}

/* The error of a failed libarchive call, as the pack's result. */
static enum viv_err pack_fail(struct cli_pack *p, const char *rel)
{
	if (p->over) {
		viv_errf(p->errbuf, p->errlen,
		         "the packed directory is larger than the server's upload limit of %zu "
		         "bytes; leave large files out of it",
		         p->max);
		return VIV_ERR_TOO_BIG;
	}
	viv_errf(p->errbuf, p->errlen, "cannot pack %s: %s", rel[0] ? rel : ".",
	         archive_error_string(p->a) ? archive_error_string(p->a) : "libarchive failed");
	return VIV_ERR_IO;
}

/* Adds one directory (data NULL) or regular file entry named rel. */
static enum viv_err pack_entry(struct cli_pack *p, const char *rel, const struct stat *sb,
                               const char *data, size_t len)
{
	struct archive_entry *e;
	enum viv_err err = VIV_OK;

	if (p->entries >= CLI_PACK_MAX_ENTRIES) {
		viv_errf(p->errbuf, p->errlen,
		         "the directory holds more than %d files and folders; deploy the app's "
		         "own folder, not a parent of it",
		         CLI_PACK_MAX_ENTRIES);
		return VIV_ERR_TOO_BIG;
	}
	e = archive_entry_new();
	if (!e) {
		viv_errf(p->errbuf, p->errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	archive_entry_set_pathname(e, rel);
	archive_entry_set_mtime(e, sb->st_mtime, 0);
	if (data) {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, (sb->st_mode & 0111) ? 0755 : 0644);
		archive_entry_set_size(e, (la_int64_t)len);
	} else {
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
	}
	if (archive_write_header(p->a, e) != ARCHIVE_OK) {
		err = pack_fail(p, rel);
		goto out;
	}
	if (data && len > 0 && archive_write_data(p->a, data, len) != (la_ssize_t)len) {
		err = pack_fail(p, rel);
		goto out;
	}
	p->entries++;
	if (data)
		p->files++;
out:
	archive_entry_free(e);
	return err;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool skipped_dir(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(cli_skip_dirs) / sizeof(cli_skip_dirs[0]); i++) {
		if (strcmp(name, cli_skip_dirs[i]) == 0)
			return true;
	}
	return false;
}

/* The sorted names in directory path (without "." and ".."). On success
 * *names_out (caller frees each and the array with free()) has *n_out. */
static enum viv_err read_names(struct cli_pack *p, const char *path, char ***names_out,
                               size_t *n_out)
{
	struct dirent *de;
	char **names = NULL, **grown;
	size_t n = 0, alloc = 0, i;
	DIR *d;
	enum viv_err err = VIV_OK;

	d = opendir(path);
	if (!d) {
		viv_errf(p->errbuf, p->errlen, "cannot read the folder %s: %s", path,
		         strerror(errno));
		return VIV_ERR_IO;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				viv_errf(p->errbuf, p->errlen, "cannot read the folder %s: %s",
				         path, strerror(errno));
				err = VIV_ERR_IO;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n >= CLI_PACK_MAX_ENTRIES) {
			viv_errf(p->errbuf, p->errlen,
			         "the folder %s holds more than %d entries; deploy the app's own "
			         "folder",
			         path, CLI_PACK_MAX_ENTRIES);
			err = VIV_ERR_TOO_BIG;
			break;
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 32;
			grown = realloc(names, alloc * sizeof(*names));
			if (!grown) {
				err = VIV_ERR_NOMEM;
				break;
			}
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			err = VIV_ERR_NOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (err) {
		if (err == VIV_ERR_NOMEM)
			viv_errf(p->errbuf, p->errlen, "out of memory");
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return err;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*names_out = names;
	*n_out = n;
	return VIV_OK;
}

/* Packs the folder root/rel (rel is "" for root itself) and everything
 * under it. */
static enum viv_err pack_tree(struct cli_pack *p, const char *root, const char *rel, unsigned depth)
{
	char **names = NULL;
	size_t n = 0, i;
	struct stat sb;
	struct viv_buf child, full;
	char *data = NULL;
	size_t len = 0;
	enum viv_err err;

	viv_buf_init(&child, CLI_PACK_MAX_PATH);
	viv_buf_init(&full, 0);
	if (depth > CLI_PACK_MAX_DEPTH) {
		viv_errf(p->errbuf, p->errlen, "%s is nested more than %d folders deep", rel,
		         CLI_PACK_MAX_DEPTH);
		err = VIV_ERR_TOO_BIG;
		goto out;
	}
	err = viv_buf_printf(&full, "%s%s%s", root, rel[0] ? "/" : "", rel);
	if (err)
		goto out;
	err = read_names(p, full.data, &names, &n);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		child.len = 0;
		full.len = 0;
		err = viv_buf_printf(&child, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
		if (err == VIV_ERR_TOO_BIG) {
			viv_errf(p->errbuf, p->errlen, "a path under %s is longer than %d bytes",
			         rel[0] ? rel : "the folder", CLI_PACK_MAX_PATH);
			goto out;
		}
		if (!err)
			err = viv_buf_printf(&full, "%s/%s", root, child.data);
		if (err)
			goto out;
		if (lstat(full.data, &sb) != 0) {
			viv_errf(p->errbuf, p->errlen, "cannot read %s: %s", full.data,
			         strerror(errno));
			err = VIV_ERR_IO;
			goto out;
		}
		if (S_ISDIR(sb.st_mode)) {
			if (skipped_dir(names[i]))
				continue;
			err = pack_entry(p, child.data, &sb, NULL, 0);
			if (!err)
				err = pack_tree(p, root, child.data, depth + 1);
			if (err)
				goto out;
			continue;
		}
		if (S_ISLNK(sb.st_mode)) {
			fprintf(stderr, "viv: leaving out %s: symbolic links are not uploaded\n",
			        child.data);
			continue;
		}
		if (!S_ISREG(sb.st_mode)) {
			fprintf(stderr, "viv: leaving out %s: not a regular file\n", child.data);
			continue;
		}
		if ((uint64_t)sb.st_size > p->max) {
			fprintf(stderr,
			        "viv: leaving out %s: %lld bytes is over the upload limit of %zu\n",
			        child.data, (long long)sb.st_size, p->max);
			continue;
		}
		err = viv_read_file(full.data, p->max, &data, &len);
		if (err == VIV_ERR_TOO_BIG) {
			fprintf(stderr, "viv: leaving out %s: it grew over the upload limit\n",
			        child.data);
			err = VIV_OK;
			continue;
		}
		if (err) {
			viv_errf(p->errbuf, p->errlen, "cannot read %s: %s", full.data,
			         viv_strerror(err));
			goto out;
		}
		err = pack_entry(p, child.data, &sb, data, len);
		free(data);
		data = NULL;
		if (err)
			goto out;
	}
out:
	if (err == VIV_ERR_NOMEM)
		viv_errf(p->errbuf, p->errlen, "out of memory");
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	viv_buf_free(&child);
	viv_buf_free(&full);
	return err;
}

enum viv_err cli_pack_dir(const char *dir, size_t max, char **out, size_t *len_out,
                          size_t *files_out, char *errbuf, size_t errlen)
{
	struct cli_pack p = {.max = max, .errbuf = errbuf, .errlen = errlen};
	enum viv_err err = VIV_OK;
	size_t len;
	char *data;

	*out = NULL;
	*len_out = 0;
	*files_out = 0;
	viv_buf_init(&p.out, max);
	p.a = archive_write_new();
	if (!p.a) {
		viv_errf(errbuf, errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	if (archive_write_add_filter_gzip(p.a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(p.a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(p.a, 1) != ARCHIVE_OK ||
	    archive_write_open2(p.a, &p, NULL, pack_write, NULL, NULL) != ARCHIVE_OK) {
		err = pack_fail(&p, "");
		goto out;
	}
	err = pack_tree(&p, dir, "", 0);
	if (err)
		goto out;
	if (archive_write_close(p.a) != ARCHIVE_OK) {
		err = pack_fail(&p, "");
		goto out;
	}
	len = p.out.len;
	data = viv_buf_steal(&p.out);
	if (!data) {
		err = VIV_ERR_NOMEM;
		viv_errf(errbuf, errlen, "out of memory");
		goto out;
	}
	*out = data;
	*len_out = len;
	*files_out = p.files;
out:
	/* archive_write_free closes the archive first if that is still due. */
	archive_write_free(p.a);
	viv_buf_free(&p.out);
	return err;
}

void cli_name_from(const char *text, char *buf, size_t len)
{
	size_t n = 0, max = len - 1 < 63 ? len - 1 : 63;
	bool dash = false;

	for (; *text && n < max; text++) {
		char ch = *text;

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) {
			dash = true;
			continue;
		}
		if (dash && n > 0) {
			if (n + 1 >= max)
				break; /* no room for the dash and a character after it */
			buf[n++] = '-';
		}
		dash = false;
		buf[n++] = ch;
	}
	buf[n] = '\0';
}
