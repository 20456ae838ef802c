/* Access lines: the agreed shape, times rounded to hundredths of a
 * millisecond, and requests that try to forge or stretch a line. */
#include <criterion/criterion.h>
#include <string.h>

#include "runner_int.h"

static char line[RUN_ACCESS_LINE_MAX];

static const char *format(const char *method, const char *target, size_t target_len,
                          unsigned status, uint64_t total_ns, uint64_t instance_ns,
                          enum run_access_by by)
{
	struct run_access a = {
	        .method = method,
	        .method_len = strlen(method),
	        .target = target,
	        .target_len = target_len,
	        .status = status,
	        .total_ns = total_ns,
	        .instance_ns = instance_ns,
	        .by = by,
	};
	size_t n = run_access_line(line, &a);

	cr_assert_eq(n, strlen(line));
	cr_assert_lt(n, sizeof(line));
	return line;
}

Test(access, a_request_an_instance_answered)
{
	cr_assert_str_eq(format("GET", "/a?x=1", 6, 200, 1830000, 410000, RUN_ACCESS_INSTANCE),
	                 "GET /a?x=1 200 1.83 ms (instance 0.41 ms)");
}

Test(access, times_round_to_hundredths_of_a_millisecond)
{
	cr_assert_str_eq(format("POST", "/", 1, 503, 4999, 5000, RUN_ACCESS_INSTANCE),
	                 "POST / 503 0.00 ms (instance 0.01 ms)");
	cr_assert_str_eq(
	        format("GET", "/", 1, 504, 60000004999ull, 59999995000ull, RUN_ACCESS_INSTANCE),
	        "GET / 504 60000.00 ms (instance 60000.00 ms)");
	cr_assert_str_eq(format("GET", "/", 1, 200, 1095000, 0, RUN_ACCESS_INSTANCE),
	                 "GET / 200 1.10 ms (instance 0.00 ms)");
}

Test(access, static_files_and_requests_no_instance_ran)
{
	cr_assert_str_eq(format("GET", "/cat.jpg", 8, 200, 120000, 0, RUN_ACCESS_STATIC),
	                 "GET /cat.jpg 200 0.12 ms (static file)");
	cr_assert_str_eq(format("GET", "/", 1, 503, 20000, 0, RUN_ACCESS_NONE),
	                 "GET / 503 0.02 ms (no instance)");
}

Test(access, control_bytes_spaces_and_backslashes_cannot_forge_a_line)
{
	static const char target[] = "/x\nGET /admin 200 0.01 ms (instance 0.01 ms)\r\t\\\x7f\x01";

	format("GET", target, sizeof(target) - 1, 404, 10000, 10000, RUN_ACCESS_INSTANCE);
	cr_assert_str_eq(line,
	                 "GET /x\\x0aGET\\x20/admin\\x20200\\x200.01\\x20ms\\x20(instance\\x200.01"
	                 "\\x20ms)\\x0d\\x09\\\\\\x7f\\x01 404 0.01 ms (instance 0.01 ms)");
	cr_assert_null(strchr(line, '\n'));
	cr_assert_null(strchr(line, '\r'));
}

Test(access, bytes_past_ascii_are_escaped_so_the_line_stays_valid_text)
{
	/* "é" in UTF-8, and a lone continuation byte that no decoder accepts. */
	format("GET", "/caf\xc3\xa9\x80", 7, 200, 0, 0, RUN_ACCESS_INSTANCE);
	cr_assert_str_eq(line, "GET /caf\\xc3\\xa9\\x80 200 0.00 ms (instance 0.00 ms)");
}

Test(access, a_nul_in_the_target_does_not_end_the_line)
{
	format("GET", "/a\0b", 4, 200, 0, 0, RUN_ACCESS_INSTANCE);
	cr_assert_str_eq(line, "GET /a\\x00b 200 0.00 ms (instance 0.00 ms)");
}

Test(access, empty_fields_are_a_dash)
{
	cr_assert_str_eq(format("", "", 0, 400, 0, 0, RUN_ACCESS_NONE),
	                 "- - 400 0.00 ms (no instance)");
}

Test(access, a_long_target_is_cut_and_says_so)
{
	static char target[10000];
	const char *tail = " 200 0.00 ms (instance 0.00 ms)";
	size_t n;

	memset(target, 'a', sizeof(target));
	format("GET", target, sizeof(target), 200, 0, 0, RUN_ACCESS_INSTANCE);
	n = strlen(line);
	cr_assert_lt(n, RUN_ACCESS_LINE_MAX);
	cr_assert_eq(strncmp(line, "GET /", 4), 0);
	cr_assert_str_eq(line + n - strlen(tail) - 3, "... 200 0.00 ms (instance 0.00 ms)");
	/* 2048 bytes of target, then the mark. */
	cr_assert_eq(n, 4 + 2048 + 3 + strlen(tail));
}

Test(access, a_long_escaped_target_never_splits_an_escape)
{
	static char target[3000];
	const char *tail = "... 200 0.00 ms (instance 0.00 ms)";
	size_t n, i;

	memset(target, '\n', sizeof(target));
	format("GET", target, sizeof(target), 200, 0, 0, RUN_ACCESS_INSTANCE);
	n = strlen(line);
	cr_assert_str_eq(line + n - strlen(tail), tail);
	/* Whole escapes only: 512 of them fill the 2048 bytes. */
	for (i = 4; i < 4 + 2048; i += 4)
		cr_assert_eq(memcmp(line + i, "\\x0a", 4), 0, "at %zu: %.8s", i, line + i);
	cr_assert_eq(line[4 + 2048], '.');
}

Test(access, a_hostile_method_is_cut_and_escaped_too)
{
	static char method[200];

	memset(method, '\x1b', sizeof(method) - 1);
	format(method, "/", 1, 400, 0, 0, RUN_ACCESS_NONE);
	/* 16 escapes of 4 bytes fill the method's 64. */
	cr_assert_eq(strncmp(line + 64, "... / 400", 9), 0, "%s", line);
	cr_assert_null(strchr(line, '\x1b'));
}
