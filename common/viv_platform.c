/* What an artifact needs of the host that loads it: the CPU architecture
 * and the C library it was linked against, both of this machine. */
#include <gnu/libc-version.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "viv.h"

void viv_platform(char buf[VIV_PLATFORM_MAX])
{
	struct utsname u;

	if (uname(&u) != 0)
		snprintf(u.machine, sizeof(u.machine), "unknown");
	snprintf(buf, VIV_PLATFORM_MAX, "%s-linux-gnu glibc %s", u.machine, gnu_get_libc_version());
}

/* "X.Y" into its two numbers; false when it is not of that form. */
static bool glibc_version(const char *s, unsigned long *major, unsigned long *minor)
{
	const char *end;
	uint64_t a, b;

	if (!viv_parse_u64(s, &end, 1000, &a) || *end != '.' ||
	    !viv_parse_u64(end + 1, &end, 1000, &b))
		return false;
	*major = (unsigned long)a;
	*minor = (unsigned long)b;
	return true;
}

bool viv_platform_runs(const char *built, const char *host, char *why, size_t whylen)
{
	const char *bv = built ? strstr(built, " glibc ") : NULL;
	const char *hv = host ? strstr(host, " glibc ") : NULL;
	unsigned long bmaj, bmin, hmaj, hmin;

	if (!bv || !hv || (size_t)(bv - built) != (size_t)(hv - host) ||
	    strncmp(built, host, (size_t)(bv - built)) != 0 ||
	    !glibc_version(bv + 7, &bmaj, &bmin) || !glibc_version(hv + 7, &hmaj, &hmin)) {
		viv_errf(why, whylen, "it was built for %s and this host is %s",
		         built ? built : "an unknown platform", host ? host : "unknown");
		return false;
	}
	/* glibc runs what was linked against an older version of itself. */
	if (bmaj > hmaj || (bmaj == hmaj && bmin > hmin)) {
		viv_errf(why, whylen, "it was built against %s, newer than this host's %s", bv + 1,
		         hv + 1);
		return false;
	}
	return true;
}
