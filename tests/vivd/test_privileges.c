/* What vivd's privilege helpers leave a process with. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privileges.h"

static uint64_t effective_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	cr_assert_eq(syscall(SYS_capget, &h, d), 0);
	return (uint64_t)d[1].effective << 32 | d[0].effective;
}

/* A worker opens its pagemap as root before it changes user: what it reads
 * must not give the physical pages away, and root must keep its
 * capabilities until it changes user. */
Test(privileges, a_pagemap_opened_without_caps_shows_no_physical_pages)
{
	static char page[4096] __attribute__((aligned(4096)));
	uint64_t before, entry = 0;
	int fd;

	if (geteuid() != 0)
		cr_skip_test("only root has physical page numbers to hide");
	page[0] = 1;
	before = effective_caps();
	fd = vivd_open_without_caps("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(effective_caps(), before, "the capabilities in effect came back");
	cr_assert_eq(pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)page / 4096 * 8)),
	             (ssize_t)sizeof(entry));
	cr_assert(entry >> 63, "the page is present");
	cr_assert_eq(entry & (((uint64_t)1 << 55) - 1), 0, "no physical page number");
	close(fd);
}

/* Workers hold two descriptors per request in flight; the soft limit most
 * systems start a process with (1024) would cap one at about 400. */
Test(privileges, the_descriptor_limit_is_raised_for_the_sandboxes)
{
	struct rlimit rl, low;
	char why[512];
	bool ok;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048)
		cr_skip_test("the hard descriptor limit here is below 2048");
	low = rl;
	low.rlim_cur = 1024;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ok = vivd_raise_nofile(600, why, sizeof(why));
	cr_assert(ok, "%s", why);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(low.rlim_cur, rl.rlim_max, "the soft limit stayed at %lu",
	             (unsigned long)low.rlim_cur);

	/* A hard limit too low for the sandboxes is raised where the process
	 * may (CAP_SYS_RESOURCE), else named with what to set. */
	low.rlim_cur = low.rlim_max = 1000;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ok = vivd_raise_nofile(600, why, sizeof(why));
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (ok) {
		cr_assert_geq(rl.rlim_max, 600 * 2 + VIVD_WORKER_FDS);
		cr_assert_eq(rl.rlim_cur, rl.rlim_max);
	} else {
		cr_assert_eq(rl.rlim_max, 1000);
		cr_assert(strstr(why, "about 372 requests in flight"), "%s", why);
		cr_assert(strstr(why, "raise the hard limit to 1456"), "%s", why);
	}
}
