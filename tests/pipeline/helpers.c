/* Helpers for the pipeline's tests; see helpers.h. */
#include "helpers.h"

#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

char *t_tmpdir(void)
{
	char tmpl[] = "/tmp/viv-pipe-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	cr_assert_not_null(d, "mkdtemp");
	return strdup(d);
}

void t_write(const char *dir, const char *rel, const char *text)
{
	char *path = viv_path_join(dir, rel);
	char *slash;

	cr_assert_not_null(path);
	slash = strrchr(path, '/');
	*slash = '\0';
	cr_assert_eq(viv_mkdirs(path, 0755), VIV_OK, "mkdirs %s", path);
	*slash = '/';
	cr_assert_eq(viv_write_file_atomic(path, text, strlen(text), 0644), VIV_OK, "%s", path);
	free(path);
}

char *t_read(const char *path, size_t *len)
{
	char *data = NULL;
	size_t n = 0;

	if (viv_read_file(path, 512 * 1024 * 1024, &data, &n) != VIV_OK)
		return NULL;
	if (len)
		*len = n;
	return data;
}

void t_archive(const char *path, const char *format, const char *filter,
               const struct t_entry *entries, size_t n)
{
	struct archive *a = archive_write_new();

	cr_assert_not_null(a);
	if (strcmp(format, "zip") == 0)
		archive_write_set_format_zip(a);
	else if (strcmp(format, "ustar") == 0)
		archive_write_set_format_ustar(a);
	else
		archive_write_set_format_pax_restricted(a);
	if (filter && strcmp(filter, "gzip") == 0)
		archive_write_add_filter_gzip(a);
	else if (filter && strcmp(filter, "bzip2") == 0)
		archive_write_add_filter_bzip2(a);
	else if (filter && strcmp(filter, "xz") == 0)
		archive_write_add_filter_xz(a);
	else if (filter && strcmp(filter, "zstd") == 0)
		archive_write_add_filter_zstd(a);
	cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK, "%s",
	             archive_error_string(a));
	for (size_t i = 0; i < n; i++) {
		const struct t_entry *t = &entries[i];
		struct archive_entry *e = archive_entry_new();
		size_t size = 0;

		archive_entry_set_pathname(e, t->name);
		switch (t->type) {
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, t->mode ? t->mode : 0755);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, t->data);
			archive_entry_set_perm(e, 0777);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, t->data);
			archive_entry_set_perm(e, 0644);
			break;
		case 'c':
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_rdev(e, makedev(1, 3));
			archive_entry_set_perm(e, 0666);
			break;
		case 'p':
			archive_entry_set_filetype(e, AE_IFIFO);
			archive_entry_set_perm(e, 0644);
			break;
		default:
			size = t->data ? strlen(t->data) : 0;
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, t->mode ? t->mode : 0644);
			archive_entry_set_size(e, (la_int64_t)size);
			break;
		}
		cr_assert_geq(archive_write_header(a, e), ARCHIVE_WARN, "%s",
		              archive_error_string(a));
		if (size > 0)
			cr_assert_eq(archive_write_data(a, t->data, size), (la_ssize_t)size);
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

char *t_wat(const char *dir, const char *name, const char *wat)
{
	const char *argv[] = {"wat2wasm", NULL, "-o", NULL, NULL};
	struct pipe_config cfg;
	struct pipe_exit ex;
	struct viv_buf output;
	char *src, *out, err[256] = "";
	enum viv_err rc;

	cr_assert(asprintf(&src, "%s/%s.wat", dir, name) > 0);
	cr_assert(asprintf(&out, "%s/%s", dir, name) > 0);
	cr_assert_eq(viv_write_file_atomic(src, wat, strlen(wat), 0644), VIV_OK);
	argv[1] = src;
	argv[3] = out;
	/* The pipeline's own runner: an argv array and no shell, no sandbox,
	 * the default timeout and output cap, and dir as its scratch. */
	t_config(&cfg, false);
	viv_buf_init(&output, 0);
	memset(&ex, 0, sizeof(ex));
	rc = pipe_spawn(&cfg, dir, NULL, argv, &output, &ex, err, sizeof(err));
	cr_assert_eq(rc, VIV_OK, "wat2wasm: %s", err);
	cr_assert_eq(ex.code, 0, "wat2wasm failed on %s:\n%s", wat, output.data ? output.data : "");
	viv_buf_free(&output);
	free(src);
	return out;
}

char *t_wat_bytes(const char *wat, size_t *len)
{
	char *dir = t_tmpdir();
	char *path = t_wat(dir, "m.wasm", wat);
	char *data = t_read(path, len);

	cr_assert_not_null(data);
	viv_rmtree_or_log(dir);
	free(dir);
	free(path);
	return data;
}

struct t_ctx_fixture t_cx;

void t_ctx_setup(void)
{
	char *tmp;

	memset(&t_cx, 0, sizeof(t_cx));
	t_cx.dir = t_tmpdir();
	tmp = viv_path_join(t_cx.dir, "tmp");
	cr_assert_eq(viv_mkdirs(tmp, 0755), VIV_OK);
	free(tmp);
	t_config(&t_cx.cfg, false);
	pipe_ctx_init(&t_cx.ctx, &t_cx.cfg, t_cx.dir);
}

void t_ctx_teardown(void)
{
	pipe_ctx_free(&t_cx.ctx);
	viv_rmtree_or_log(t_cx.dir);
	free(t_cx.dir);
}

void t_config(struct pipe_config *cfg, bool sandbox)
{
	pipe_config_defaults(cfg);
	cfg->sandbox = sandbox;
}

bool t_sandbox_ok(void)
{
	char why[256];

	return pipe_sandbox_available(NULL, why, sizeof(why));
}

struct t_store_fixture t_fx;

void t_store_setup(void)
{
	char errbuf[256];

	t_fx.work = t_tmpdir();
	t_fx.datadir = viv_path_join(t_fx.work, "data");
	cr_assert_eq(store_open(t_fx.datadir, &t_fx.st, errbuf, sizeof(errbuf)), VIV_OK, "%s",
	             errbuf);
	/* Builds run sandboxed wherever bubblewrap works, as in production. */
	t_config(&t_fx.cfg, t_sandbox_ok());
}

void t_store_teardown(void)
{
	store_close(t_fx.st);
	viv_rmtree_or_log(t_fx.work);
	free(t_fx.work);
	free(t_fx.datadir);
}

int64_t t_queue(const char *app, const char *path)
{
	char *tmp = NULL, *data;
	char sha[VIV_SHA256_HEX_LEN + 1];
	size_t len = 0;
	int64_t id = 0;

	data = t_read(path, &len);
	cr_assert_not_null(data, "%s", path);
	viv_sha256_hex(data, len, sha);
	cr_assert_eq(store_upload_tmp(t_fx.st, &tmp), VIV_OK);
	cr_assert_eq(viv_write_file_atomic(tmp, data, len, 0600), VIV_OK);
	cr_assert_eq(store_deployment_create(t_fx.st, app, tmp, sha, (int64_t)len, &id), VIV_OK);
	free(tmp);
	free(data);
	return id;
}

struct store_deployment *t_build(int64_t want)
{
	struct store_deployment *d = NULL;
	int64_t id = 0;
	char *upload;

	cr_assert_eq(store_deployment_claim(t_fx.st, &id), VIV_OK);
	cr_assert_eq(id, want);
	cr_assert_eq(pipe_build(t_fx.st, &t_fx.cfg, NULL, id), VIV_OK);
	cr_assert_eq(store_deployment_get(t_fx.st, id, &d), VIV_OK);
	/* The upload is gone either way. */
	upload = store_upload_path(t_fx.st, id);
	cr_assert_neq(access(upload, F_OK), 0, "the upload was left behind");
	free(upload);
	return d;
}

struct store_deployment *t_build_entries(const char *app, const struct t_entry *entries, size_t n)
{
	struct store_deployment *d;
	char *path;

	cr_assert(asprintf(&path, "%s/%s.tar.gz", t_fx.work, app) > 0);
	t_archive(path, "tar", "gzip", entries, n);
	d = t_build(t_queue(app, path));
	free(path);
	return d;
}
