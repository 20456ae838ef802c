/* Tests of the shared helpers: capped buffers, files, hashing, names. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "viv.h"

Test(buf, append_respects_cap)
{
	struct viv_buf b;

	viv_buf_init(&b, 8);
	cr_assert_eq(viv_buf_append(&b, "12345", 5), VIV_OK);
	cr_assert_eq(viv_buf_append(&b, "6789", 4), VIV_ERR_TOO_BIG);
	cr_assert_str_eq(b.data, "12345");
	cr_assert_not(viv_buf_append_trunc(&b, "6789", 4));
	cr_assert_str_eq(b.data, "12345678");
	cr_assert_eq(b.len, 8);
	viv_buf_free(&b);
}

Test(buf, printf_grows_past_small_buffer)
{
	struct viv_buf b;
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	viv_buf_init(&b, 0);
	cr_assert_eq(viv_buf_printf(&b, "%s-%d", big, 7), VIV_OK);
	cr_assert_eq(b.len, sizeof(big) - 1 + 2);
	cr_assert_str_eq(b.data + b.len - 2, "-7");
	char *s = viv_buf_steal(&b);
	cr_assert_null(b.data);
	free(s);
}

Test(buf, steal_of_empty_is_empty_string)
{
	struct viv_buf b;

	viv_buf_init(&b, 0);
	char *s = viv_buf_steal(&b);
	cr_assert_str_eq(s, "");
	free(s);
}

Test(files, atomic_write_then_read_and_cap)
{
	char dir[] = "/tmp/viv-test-XXXXXX";
	char *path, *data = NULL;
	size_t len = 0;

	cr_assert_not_null(mkdtemp(dir));
	path = viv_path_join(dir, "/a/b/../file");
	cr_assert_str_eq(path + strlen(dir), "/a/b/../file");
	free(path);
	cr_assert_eq(viv_mkdirs(dir, 0700), VIV_OK);
	path = viv_path_join(dir, "f.txt");
	cr_assert_eq(viv_write_file_atomic(path, "hello", 5, 0600), VIV_OK);
	cr_assert_eq(viv_read_file(path, 100, &data, &len), VIV_OK);
	cr_assert_eq(len, 5);
	cr_assert_str_eq(data, "hello");
	free(data);
	cr_assert_eq(viv_read_file(path, 4, &data, &len), VIV_ERR_TOO_BIG);
	cr_assert_null(data);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	free(path);
	path = viv_path_join(dir, "missing");
	cr_assert_eq(viv_read_file(path, 4, &data, &len), VIV_ERR_NOT_FOUND);
	free(path);
	cr_assert_eq(viv_rmtree(dir), VIV_OK);
	cr_assert_neq(access(dir, F_OK), 0);
}

Test(hash, sha256_known_vector)
{
	char hex[VIV_SHA256_HEX_LEN + 1];
	struct viv_sha256 h;

	viv_sha256_hex("abc", 3, hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cr_assert_eq(viv_sha256_begin(&h), VIV_OK);
	viv_sha256_update(&h, "a", 1);
	viv_sha256_update(&h, "bc", 2);
	viv_sha256_end(&h, hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(names, app_names_are_dns_labels)
{
	char long_name[65];

	cr_assert(viv_app_name_valid("hello"));
	cr_assert(viv_app_name_valid("a-1"));
	cr_assert(viv_app_name_valid("9"));
	cr_assert_not(viv_app_name_valid(""));
	cr_assert_not(viv_app_name_valid("-a"));
	cr_assert_not(viv_app_name_valid("a-"));
	cr_assert_not(viv_app_name_valid("Hello"));
	cr_assert_not(viv_app_name_valid("a.b"));
	cr_assert_not(viv_app_name_valid("a_b"));
	cr_assert_not(viv_app_name_valid("../x"));
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	cr_assert_not(viv_app_name_valid(long_name));
	long_name[63] = '\0';
	cr_assert(viv_app_name_valid(long_name));
}

Test(errors, every_status_has_a_phrase)
{
	for (int e = VIV_OK; e <= VIV_ERR_INTERNAL; e++)
		cr_assert_neq(strcmp(viv_strerror((enum viv_err)e), "unknown error"), 0);
}
