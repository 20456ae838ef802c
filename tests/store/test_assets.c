/* Static assets in the data directory: trees named by hash, copied whole,
 * left alone once there, and never holding a link. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static struct store *st;
static char src[PATH_MAX];
static const char hash[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void setup(void)
{
	store_test_setup();
	st = test_open();
	snprintf(src, sizeof(src), "%s/src", test_datadir);
	cr_assert_eq(viv_mkdirs(src, 0755), VIV_OK);
}

static void teardown(void)
{
	store_close(st);
	store_test_teardown();
}

TestSuite(assets, .init = setup, .fini = teardown);

static char *at(const char *dir, const char *rel)
{
	static char path[2 * PATH_MAX + 2];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return path;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

Test(assets, path_is_named_by_the_hash)
{
	char *p = store_assets_path(st, hash);
	char want[PATH_MAX];

	snprintf(want, sizeof(want), "%s/assets/%s", store_datadir(st), hash);
	cr_assert_str_eq(p, want);
	free(p);
	cr_assert_null(store_assets_path(st, "../etc"));
	cr_assert_null(store_assets_path(st, "00112233445566778899AABBCCDDEEFF00112233445566778899"
	                                     "aabbccddeeff"));
}

Test(assets, copies_the_tree)
{
	char *dst, *text;
	struct stat sb;

	test_write(at(src, "index.html"), "<h1>hi</h1>");
	cr_assert_eq(viv_mkdirs(at(src, "img/icons"), 0755), VIV_OK);
	test_write(at(src, "img/icons/cat.svg"), "<svg/>");
	cr_assert_eq(viv_mkdirs(at(src, "empty"), 0755), VIV_OK);

	cr_assert_eq(store_assets_put(st, hash, src), VIV_OK);
	dst = store_assets_path(st, hash);
	text = test_read(at(dst, "index.html"));
	cr_assert_str_eq(text, "<h1>hi</h1>");
	free(text);
	text = test_read(at(dst, "img/icons/cat.svg"));
	cr_assert_str_eq(text, "<svg/>");
	free(text);
	cr_assert_eq(stat(at(dst, "empty"), &sb), 0);
	cr_assert(S_ISDIR(sb.st_mode));
	cr_assert_eq(stat(at(dst, "index.html"), &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0644);
	/* No temporary directory is left beside it. */
	cr_assert_eq(count_entries(at(store_datadir(st), "assets")), 1);
	free(dst);
}

Test(assets, an_existing_tree_is_left_alone)
{
	char *dst, *text;

	test_write(at(src, "a.txt"), "first");
	cr_assert_eq(store_assets_put(st, hash, src), VIV_OK);
	test_write(at(src, "a.txt"), "second");
	cr_assert_eq(store_assets_put(st, hash, src), VIV_OK);
	dst = store_assets_path(st, hash);
	text = test_read(at(dst, "a.txt"));
	cr_assert_str_eq(text, "first");
	free(text);
	free(dst);
}

Test(assets, refuses_links_and_bad_arguments)
{
	char *dst;

	test_write(at(src, "a.txt"), "x");
	cr_assert_eq(symlink("/etc/passwd", at(src, "passwd")), 0);
	cr_assert_eq(store_assets_put(st, hash, src), VIV_ERR_INVALID);
	dst = store_assets_path(st, hash);
	cr_assert_neq(access(dst, F_OK), 0, "a partial tree was left in place");
	free(dst);
	cr_assert_eq(store_assets_put(st, "nothex", src), VIV_ERR_INVALID);
	cr_assert_eq(store_assets_put(st, hash, at(test_datadir, "missing")), VIV_ERR_NOT_FOUND);
}
