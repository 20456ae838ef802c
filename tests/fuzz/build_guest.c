/* Builds the fuzz target's guest (guest.c) with the real pipeline, as any
 * upload of C source is built, and puts the artifact where fuzz_hostcall
 * looks for it (VIV_FUZZ_GUEST_SO). A step of the build runs it whenever
 * guest.c or the pipeline changed. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "artifact.h"
#include "support.h"
#include "viv.h"

Test(fuzz, the_guest_builds_like_any_upload, .timeout = 300)
{
	char *src = tsup_read_file(VIV_FUZZ_GUEST_C, NULL), *so, *data = NULL;
	size_t len = 0;

	so = tsup_artifact("main.c", src);
	cr_assert_eq(viv_read_file(so, (size_t)256 << 20, &data, &len), VIV_OK);
	cr_assert_eq(viv_write_file_atomic(VIV_FUZZ_GUEST_SO, data, len, 0644), VIV_OK);
	free(data);
	free(so);
	free(src);
}
