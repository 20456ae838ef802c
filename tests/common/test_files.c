/* Tests of the file helpers used on folders that hostile processes wrote:
 * writing that never goes through a planted link, opening beneath a
 * folder, refusing links and special files, removing hostile trees. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "viv.h"

static char dir[64];
static int dfd = -1;

static void setup(void)
{
	strcpy(dir, "/tmp/viv-files-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
}

static void teardown(void)
{
	close(dfd);
	viv_rmtree_or_log(dir);
}

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void sub(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "%s: %s", path, strerror(errno));
}

static void link_at(const char *target, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	cr_assert_eq(symlink(target, path), 0);
}

TestSuite(files, .init = setup, .fini = teardown);

Test(files, write_replaces_a_planted_link_and_never_writes_through_it)
{
	char canary[600], *data = NULL;
	struct stat st;
	size_t len;

	/* The name written is a link to a file outside: the link is
	 * replaced, the file it points to keeps its contents. */
	snprintf(canary, sizeof(canary), "%s-canary", dir);
	cr_assert_eq(viv_write_file_atomic(canary, "untouched", 9, 0600), VIV_OK);
	link_at(canary, "glue.c");
	cr_assert_eq(viv_write_file_at(dfd, "glue.c", "int x;\n", 7, 0644), VIV_OK);
	cr_assert_eq(fstatat(dfd, "glue.c", &st, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(viv_read_file(canary, 100, &data, &len), VIV_OK);
	cr_assert_str_eq(data, "untouched");
	free(data);
	unlink(canary);
	cr_assert_eq(viv_write_file_at(dfd, "../escape", "x", 1, 0644), VIV_ERR_INVALID);
	cr_assert_eq(viv_write_file_at(dfd, "..", "x", 1, 0644), VIV_ERR_INVALID);
}

/* The temporary names a writer used to derive from the path and its pid
 * were sprayed with links by a build script: none is written through. */
Test(files, write_never_goes_through_links_at_temporary_names)
{
	char victim[600], name[128], *data = NULL;
	size_t len;

	snprintf(victim, sizeof(victim), "%s-victim", dir);
	cr_assert_eq(viv_write_file_atomic(victim, "victim", 6, 0600), VIV_OK);
	for (long pid = getpid() - 50; pid <= getpid() + 50; pid++) {
		snprintf(name, sizeof(name), "glue.c.tmp.%ld", pid);
		link_at(victim, name);
		snprintf(name, sizeof(name), ".glue.c.tmp.%ld", pid);
		link_at(victim, name);
	}
	cr_assert_eq(viv_write_file_at(dfd, "glue.c", "int y;\n", 7, 0644), VIV_OK);
	cr_assert_eq(viv_read_file(victim, 100, &data, &len), VIV_OK);
	cr_assert_str_eq(data, "victim");
	free(data);
	unlink(victim);
}

Test(files, open_beneath_refuses_links_and_escapes)
{
	char *data = NULL, why[200];
	size_t len;
	int fd;

	sub("a");
	put("a/ok.txt", "fine");
	link_at("/etc/passwd", "a/abs");
	link_at("ok.txt", "a/rel");
	link_at("a", "alink");
	cr_assert_eq(viv_read_beneath(dfd, "a/ok.txt", 100, &data, &len, why, sizeof(why)), VIV_OK);
	cr_assert_str_eq(data, "fine");
	free(data);
	/* A link anywhere on the way is refused, even one that stays
	 * inside. */
	cr_assert_eq(viv_read_beneath(dfd, "a/abs", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(why, "symbolic link"), "%s", why);
	cr_assert_eq(viv_read_beneath(dfd, "a/rel", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert_eq(viv_read_beneath(dfd, "alink/ok.txt", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert_eq(viv_read_beneath(dfd, "../x", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert_eq(viv_read_beneath(dfd, "/etc/passwd", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert_eq(viv_read_beneath(dfd, "a/none", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_NOT_FOUND);
	cr_assert_eq(viv_read_beneath(dfd, "a/ok.txt", 3, &data, &len, why, sizeof(why)),
	             VIV_ERR_TOO_BIG);
	fd = viv_open_beneath(dfd, "a", O_RDONLY | O_DIRECTORY, 0);
	cr_assert_geq(fd, 0);
	close(fd);
}

Test(files, read_beneath_refuses_special_files_and_hard_links)
{
	char path[512], *data = NULL, why[200];
	size_t len;

	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0644), 0);
	/* A FIFO with no writer must not block the reader. */
	cr_assert_eq(viv_read_beneath(dfd, "fifo", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(why, "not a regular file"), "%s", why);
	sub("d");
	cr_assert_eq(viv_read_beneath(dfd, "d", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	put("one", "1");
	cr_assert_eq(linkat(dfd, "one", dfd, "two", 0), 0);
	cr_assert_eq(viv_read_beneath(dfd, "two", 100, &data, &len, why, sizeof(why)),
	             VIV_ERR_INVALID);
	cr_assert(strstr(why, "hard link"), "%s", why);
}

Test(files, rmtree_removes_a_hostile_tree_and_nothing_outside)
{
	char outside[600], path[4096];
	struct stat st;
	size_t n;

	snprintf(outside, sizeof(outside), "%s-outside", dir);
	cr_assert_eq(mkdir(outside, 0755), 0);
	snprintf(path, sizeof(path), "%s/keep", outside);
	cr_assert_eq(viv_write_file_atomic(path, "k", 1, 0644), VIV_OK);
	sub("t");
	link_at(outside, "t/to-outside");
	snprintf(path, sizeof(path), "%s/keep", outside);
	link_at(path, "t/to-file");
	/* Folders closed to their owner, and nesting deeper than any stack. */
	sub("t/closed");
	put("t/closed/f", "x");
	snprintf(path, sizeof(path), "%s/t/closed", dir);
	cr_assert_eq(chmod(path, 0), 0);
	n = snprintf(path, sizeof(path), "t");
	for (int i = 0; i < 300; i++) {
		int fd;
		n += (size_t)snprintf(path + n, sizeof(path) - n, "/d");
		if (n + 4 >= sizeof(path))
			break;
		fd = mkdirat(dfd, path, 0755);
		cr_assert_eq(fd, 0);
	}
	cr_assert_eq(viv_rmtree_at(dfd, "t"), VIV_OK);
	cr_assert_neq(fstatat(dfd, "t", &st, AT_SYMLINK_NOFOLLOW), 0);
	snprintf(path, sizeof(path), "%s/keep", outside);
	cr_assert_eq(stat(path, &st), 0, "the file outside the tree was removed");
	cr_assert_eq(viv_rmtree(outside), VIV_OK);
}
