/* Unpacking uploads: formats, the single root folder, and every refusal. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static char *work, *dest, *upload;
static struct pipe_config cfg;
static char err[1024];

static void setup(void)
{
	work = t_tmpdir();
	dest = viv_path_join(work, "dest");
	upload = viv_path_join(work, "upload");
	cr_assert_eq(viv_mkdirs(dest, 0755), VIV_OK);
	t_config(&cfg, false);
	err[0] = '\0';
}

static void teardown(void)
{
	viv_rmtree_or_log(work);
	free(work);
	free(dest);
	free(upload);
}

TestSuite(unpack, .init = setup, .fini = teardown);

static enum viv_err unpack(char **root)
{
	*root = NULL;
	return pipe_unpack(upload, dest, &cfg, NULL, root, err, sizeof(err));
}

static void assert_file(const char *root, const char *rel, const char *text, unsigned mode)
{
	char *path = viv_path_join(root, rel);
	struct stat st;
	char *data = t_read(path, NULL);

	cr_assert_not_null(data, "%s is missing", rel);
	cr_assert_str_eq(data, text);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, mode, "%s has mode %o", rel, st.st_mode & 07777);
	free(data);
	free(path);
}

static const struct t_entry project[] = {
        {"main.c", 'f', "int main(void) { return 0; }\n", 0},
        {"src/", 'd', NULL, 0},
        {"src/util.c", 'f', "int util;\n", 0},
        {"build.sh", 'f', "#!/bin/sh\n", 04755},
};

static void check_project(const char *root)
{
	assert_file(root, "main.c", "int main(void) { return 0; }\n", 0644);
	assert_file(root, "src/util.c", "int util;\n", 0644);
	/* setuid dropped, executable kept */
	assert_file(root, "build.sh", "#!/bin/sh\n", 0755);
}

Test(unpack, tar)
{
	char *root;

	t_archive(upload, "tar", NULL, project, 4);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	cr_assert_str_eq(root, dest);
	check_project(root);
	free(root);
}

Test(unpack, compressed_tars)
{
	static const char *const filters[] = {"gzip", "bzip2", "xz", "zstd"};

	for (size_t i = 0; i < 4; i++) {
		char *root;

		viv_rmtree_or_log(dest);
		cr_assert_eq(viv_mkdirs(dest, 0755), VIV_OK);
		t_archive(upload, "ustar", filters[i], project, 4);
		cr_assert_eq(unpack(&root), VIV_OK, "%s: %s", filters[i], err);
		check_project(root);
		free(root);
	}
}

Test(unpack, zip)
{
	char *root;

	t_archive(upload, "zip", NULL, project, 4);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	check_project(root);
	free(root);
}

Test(unpack, single_root_folder_is_the_project)
{
	static const struct t_entry e[] = {
	        {"./", 'd', NULL, 0},
	        {"./myapp/", 'd', NULL, 0},
	        {"./myapp/main.c", 'f', "x", 0},
	        {"__MACOSX/._main.c", 'f', "junk", 0},
	};
	char *root, *want = viv_path_join(dest, "myapp");

	t_archive(upload, "tar", "gzip", e, 4);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	cr_assert_str_eq(root, want);
	assert_file(root, "main.c", "x", 0644);
	free(root);
	free(want);
}

Test(unpack, a_lone_assembly_folder_is_not_the_root)
{
	static const struct t_entry e[] = {{"assembly/index.ts", 'f', "x", 0}};
	char *root;

	t_archive(upload, "tar", "gzip", e, 1);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	cr_assert_str_eq(root, dest);
	free(root);
}

Test(unpack, a_root_file_beside_the_folder_keeps_the_root)
{
	static const struct t_entry e[] = {
	        {"myapp/main.c", 'f', "x", 0},
	        {"README", 'f', "y", 0},
	};
	char *root;

	t_archive(upload, "tar", NULL, e, 2);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	cr_assert_str_eq(root, dest);
	free(root);
}

Test(unpack, dotdot_entry_is_refused_by_name)
{
	static const struct t_entry e[] = {
	        {"ok.c", 'f', "x", 0},
	        {"../evil.c", 'f', "pwned", 0},
	};
	char *root, *evil = viv_path_join(work, "evil.c");

	t_archive(upload, "tar", "gzip", e, 2);
	cr_assert_eq(unpack(&root), VIV_ERR_INVALID);
	cr_assert_null(root);
	cr_assert_str_eq(err, "the tarball entry '../evil.c' leaves the upload's folder; paths in "
	                      "the tarball must be relative and stay inside it");
	cr_assert_neq(access(evil, F_OK), 0, "the file escaped");
	free(evil);
}

Test(unpack, dotdot_inside_a_path_is_refused)
{
	static const struct t_entry e[] = {{"src/../../x.c", 'f', "x", 0}};
	char *root;

	t_archive(upload, "zip", NULL, e, 1);
	cr_assert_eq(unpack(&root), VIV_ERR_INVALID);
	cr_assert(strstr(err, "'src/../../x.c' leaves the upload's folder"), "%s", err);
	cr_assert(strstr(err, "zip file"), "%s", err);
}

Test(unpack, absolute_path_is_refused)
{
	static const struct t_entry e[] = {{"/tmp/viv-abs-test.c", 'f', "x", 0}};
	char *root;

	unlink("/tmp/viv-abs-test.c");
	t_archive(upload, "tar", NULL, e, 1);
	cr_assert_eq(unpack(&root), VIV_ERR_INVALID);
	cr_assert(strstr(err, "'/tmp/viv-abs-test.c' is an absolute path"), "%s", err);
	cr_assert_neq(access("/tmp/viv-abs-test.c", F_OK), 0);
}

Test(unpack, links_devices_and_fifos_are_refused)
{
	static const struct {
		struct t_entry e;
		const char *want;
	} cases[] = {
	        {{"link", 'l', "/etc/passwd", 0}, "the tarball entry 'link' is a symbolic link"},
	        {{"hard", 'h', "main.c", 0}, "the tarball entry 'hard' is a hard link"},
	        {{"null", 'c', NULL, 0}, "the tarball entry 'null' is a device"},
	        {{"fifo", 'p', NULL, 0}, "the tarball entry 'fifo' is a named pipe"},
	};

	for (size_t i = 0; i < 4; i++) {
		struct t_entry e[2] = {{"main.c", 'f', "x", 0}, cases[i].e};
		char *root;
		char *bad = viv_path_join(dest, cases[i].e.name);
		struct stat st;

		viv_rmtree_or_log(dest);
		cr_assert_eq(viv_mkdirs(dest, 0755), VIV_OK);
		t_archive(upload, "tar", NULL, e, 2);
		cr_assert_eq(unpack(&root), VIV_ERR_INVALID, "%s", cases[i].e.name);
		cr_assert(strstr(err, cases[i].want), "%s", err);
		cr_assert(strstr(err, "only regular files and folders"), "%s", err);
		cr_assert_neq(lstat(bad, &st), 0, "%s was created", cases[i].e.name);
		free(bad);
	}
}

Test(unpack, entry_count_cap)
{
	struct t_entry e[12];
	char names[12][16];
	char *root;

	for (int i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d.c", i);
		e[i] = (struct t_entry){names[i], 'f', "x", 0};
	}
	cfg.unpack_max_entries = 11;
	t_archive(upload, "tar", NULL, e, 12);
	cr_assert_eq(unpack(&root), VIV_ERR_TOO_BIG);
	cr_assert_str_eq(err, "the upload holds more than 11 files and folders; the limit is 11");
	cfg.unpack_max_entries = 12;
	viv_rmtree_or_log(dest);
	cr_assert_eq(viv_mkdirs(dest, 0755), VIV_OK);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	free(root);
}

Test(unpack, byte_cap_counts_what_is_written)
{
	char *big = malloc(3 * 1024 * 1024 + 1);
	struct t_entry e[3];
	char *root;
	struct stat st;
	char *third = viv_path_join(dest, "c.bin");

	memset(big, 'a', 3 * 1024 * 1024);
	big[3 * 1024 * 1024] = '\0';
	e[0] = (struct t_entry){"a.bin", 'f', big, 0};
	e[1] = (struct t_entry){"b.bin", 'f', big, 0};
	e[2] = (struct t_entry){"c.bin", 'f', big, 0};
	cfg.unpack_max_bytes = 8 * 1024 * 1024;
	/* gzip makes the upload tiny: the cap is on what is written. */
	t_archive(upload, "tar", "gzip", e, 3);
	cr_assert_eq(unpack(&root), VIV_ERR_TOO_BIG);
	cr_assert_str_eq(err, "the upload unpacks to more than 8 MiB; the limit is 8 MiB");
	cr_assert_neq(stat(third, &st), 0);
	free(third);
	free(big);
}

Test(unpack, byte_cap_without_sizes_in_headers)
{
	/* Zip entries written by streaming have no size up front, so only
	 * the count of written bytes can stop them. */
	char *big = malloc(2 * 1024 * 1024 + 1);
	struct t_entry e[1];
	char *root;

	memset(big, 'b', 2 * 1024 * 1024);
	big[2 * 1024 * 1024] = '\0';
	e[0] = (struct t_entry){"a.bin", 'f', big, 0};
	cfg.unpack_max_bytes = 1024 * 1024;
	t_archive(upload, "zip", NULL, e, 1);
	cr_assert_eq(unpack(&root), VIV_ERR_TOO_BIG, "%s", err);
	free(big);
}

Test(unpack, upload_size_cap)
{
	char *root;

	t_archive(upload, "tar", NULL, project, 4);
	cfg.upload_max = 100;
	cr_assert_eq(unpack(&root), VIV_ERR_TOO_BIG);
	cr_assert(strstr(err, "the upload is"), "%s", err);
}

Test(unpack, garbage_is_refused)
{
	char *root;

	cr_assert_eq(viv_write_file_atomic(upload, "hello, this is not an archive\n", 30, 0644),
	             VIV_OK);
	cr_assert_eq(unpack(&root), VIV_ERR_INVALID);
	cr_assert(strncmp(err, "the upload is not a tarball or a .wasm module (libarchive: ", 59) ==
	                  0,
	          "%s", err);
}

Test(unpack, truncated_gzip_is_refused)
{
	char *data;
	size_t len;
	char *root;

	t_archive(upload, "tar", "gzip", project, 4);
	data = t_read(upload, &len);
	cr_assert_eq(viv_write_file_atomic(upload, data, len / 2, 0644), VIV_OK);
	cr_assert_neq(unpack(&root), VIV_OK);
	cr_assert_null(root);
	free(data);
}

Test(unpack, empty_archive_is_refused)
{
	char *root;

	t_archive(upload, "tar", NULL, NULL, 0);
	cr_assert_eq(unpack(&root), VIV_ERR_INVALID);
	cr_assert(strstr(err, "empty"), "%s", err);
}

Test(unpack, wasm_is_copied)
{
	char *root, *copy, *data;
	size_t len;

	cr_assert_eq(viv_write_file_atomic(upload, "\0asm\1\0\0\0", 8, 0644), VIV_OK);
	cr_assert_eq(unpack(&root), VIV_OK, "%s", err);
	cr_assert_str_eq(root, dest);
	copy = viv_path_join(dest, "upload.wasm");
	data = t_read(copy, &len);
	cr_assert_eq(len, 8);
	cr_assert_eq(memcmp(data, "\0asm\1\0\0\0", 8), 0);
	free(data);
	free(copy);
	free(root);
}

Test(unpack, sniff)
{
	char tar[512];

	cr_assert_eq(viv_upload_sniff("\0asm\1\0\0\0", 8), VIV_UPLOAD_WASM);
	cr_assert_eq(viv_upload_sniff("\x1f\x8b\x08", 3), VIV_UPLOAD_ARCHIVE);
	cr_assert_eq(viv_upload_sniff("BZh91AY", 7), VIV_UPLOAD_ARCHIVE);
	cr_assert_eq(viv_upload_sniff("\xfd"
	                              "7zXZ\0",
	                              6),
	             VIV_UPLOAD_ARCHIVE);
	cr_assert_eq(viv_upload_sniff("\x28\xb5\x2f\xfd", 4), VIV_UPLOAD_ARCHIVE);
	cr_assert_eq(viv_upload_sniff("PK\3\4", 4), VIV_UPLOAD_ARCHIVE);
	cr_assert_eq(viv_upload_sniff("\0as", 3), VIV_UPLOAD_UNKNOWN);
	cr_assert_eq(viv_upload_sniff("hello", 5), VIV_UPLOAD_UNKNOWN);
	cr_assert_eq(viv_upload_sniff("", 0), VIV_UPLOAD_UNKNOWN);
	memset(tar, 0, sizeof(tar));
	memcpy(tar + 257, "ustar", 5);
	cr_assert_eq(viv_upload_sniff(tar, sizeof(tar)), VIV_UPLOAD_ARCHIVE);
	/* A real tar's first block. */
	t_archive(upload, "ustar", NULL, project, 4);
	{
		char *data = t_read(upload, NULL);
		cr_assert_eq(viv_upload_sniff(data, 512), VIV_UPLOAD_ARCHIVE);
		free(data);
	}
}

Test(unpack, sniff_webassembly_text)
{
	static const char *const wat[] = {
	        "(module)",
	        "(module $hello (func))",
	        "\n\t  (module\n",
	        ";; a comment\n;; another (module\n(module (memory 1))",
	        "(; a block (; nested ;) comment ;)(module)",
	        "\xef\xbb\xbf(module)",
	};
	static const char *const not_wat[] = {
	        "(modulex)",
	        "module",
	        "(func)",
	        "(; never closed (module)",
	        ";; only a comment (module)",
	        "(modul",
	        "  ",
	};

	for (size_t i = 0; i < sizeof(wat) / sizeof(wat[0]); i++)
		cr_assert_eq(viv_upload_sniff(wat[i], strlen(wat[i])), VIV_UPLOAD_WAT, "%s",
		             wat[i]);
	for (size_t i = 0; i < sizeof(not_wat) / sizeof(not_wat[0]); i++)
		cr_assert_eq(viv_upload_sniff(not_wat[i], strlen(not_wat[i])), VIV_UPLOAD_UNKNOWN,
		             "%s", not_wat[i]);
}

Test(unpack, webassembly_text_upload_is_app_wat)
{
	static const char text[] = ";; hello\n(module (func (export \"_start\")))\n";
	char *root = NULL, *copy, *data;
	struct viv_buf log;
	size_t len = 0;

	viv_buf_init(&log, 0);
	cr_assert_eq(viv_write_file_atomic(upload, text, strlen(text), 0644), VIV_OK);
	cr_assert_eq(pipe_unpack(upload, dest, &cfg, &log, &root, err, sizeof(err)), VIV_OK, "%s",
	             err);
	cr_assert_str_eq(root, dest);
	copy = viv_path_join(dest, "app.wat");
	data = t_read(copy, &len);
	cr_assert_eq(len, strlen(text));
	cr_assert_eq(memcmp(data, text, len), 0);
	free(data);
	free(copy);
	free(root);
	cr_assert_not_null(strstr(log.data, "WebAssembly text file"), "%s", log.data);
	viv_buf_free(&log);
}
