/* What vivd's privilege helpers leave a process with. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
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
