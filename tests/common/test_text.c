/* The shared readers of outside bytes: UTF-8, numbers, LEB128, copying
 * between descriptors, outbound URL patterns, and upload sniffing. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "viv.h"

Test(utf8, sequences_and_validity)
{
	cr_assert_eq(viv_utf8_seq("a", 1), 1);
	cr_assert_eq(viv_utf8_seq("\xc3\xa9", 2), 2);
	cr_assert_eq(viv_utf8_seq("\xe2\x82\xac", 3), 3);
	cr_assert_eq(viv_utf8_seq("\xf0\x9f\x98\x80", 4), 4);
	/* Cut short, overlong, a surrogate, past U+10FFFF, a stray byte. */
	cr_assert_eq(viv_utf8_seq("\xe2\x82", 2), 0);
	cr_assert_eq(viv_utf8_seq("\xc0\xaf", 2), 0);
	cr_assert_eq(viv_utf8_seq("\xe0\x80\xaf", 3), 0);
	cr_assert_eq(viv_utf8_seq("\xed\xa0\x80", 3), 0);
	cr_assert_eq(viv_utf8_seq("\xf4\x90\x80\x80", 4), 0);
	cr_assert_eq(viv_utf8_seq("\x80", 1), 0);
	cr_assert_eq(viv_utf8_seq("", 0), 0);
	cr_assert(viv_utf8_valid("caf\xc3\xa9", 5));
	cr_assert(viv_utf8_valid("a\0b", 3));
	cr_assert_not(viv_utf8_valid("caf\xc3", 4));
	cr_assert_eq(viv_utf8_cut("ab\xc3\xa9", 3), 2);
	cr_assert_eq(viv_utf8_cut("abc", 2), 2);
}

Test(numbers, digits_only_in_range)
{
	const char *end = NULL;
	uint64_t v = 7;

	cr_assert(viv_parse_u64("0", NULL, 10, &v));
	cr_assert_eq(v, 0);
	cr_assert(viv_parse_u64("18446744073709551615", NULL, UINT64_MAX, &v));
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_not(viv_parse_u64("18446744073709551616", NULL, UINT64_MAX, &v));
	cr_assert_not(viv_parse_u64("65536", NULL, 65535, &v));
	cr_assert_not(viv_parse_u64("", NULL, 10, &v));
	cr_assert_not(viv_parse_u64("-1", NULL, 10, &v));
	cr_assert_not(viv_parse_u64(" 1", NULL, 10, &v));
	cr_assert_not(viv_parse_u64("+1", NULL, 10, &v));
	cr_assert_not(viv_parse_u64("1x", NULL, 10, &v));
	cr_assert_not(viv_parse_u64(NULL, NULL, 10, &v));
	cr_assert(viv_parse_u64("42-rest", &end, 100, &v));
	cr_assert_eq(v, 42);
	cr_assert_str_eq(end, "-rest");
}

Test(leb, u32_as_webassembly_writes_it)
{
	uint32_t v;

	cr_assert_eq(viv_leb_u32("\x05", 1, &v), 1);
	cr_assert_eq(v, 5);
	cr_assert_eq(viv_leb_u32("\xe5\x8e\x26", 3, &v), 3);
	cr_assert_eq(v, 624485);
	cr_assert_eq(viv_leb_u32("\xff\xff\xff\xff\x0f", 5, &v), 5);
	cr_assert_eq(v, UINT32_MAX);
	cr_assert_eq(viv_leb_u32("\xff\xff\xff\xff\x1f", 5, &v), -1);
	cr_assert_eq(viv_leb_u32("\xff\xff\xff\xff\x8f", 5, &v), -1);
	cr_assert_eq(viv_leb_u32("\x80\x80", 2, &v), 0);
	cr_assert_eq(viv_leb_u32("", 0, &v), 0);
}

Test(files, copy_fd_holds_to_its_cap)
{
	char path[] = "/tmp/viv-copy-XXXXXX", back[16] = "";
	int p[2], out;
	uint64_t copied = 0;

	out = mkstemp(path);
	cr_assert_geq(out, 0);
	unlink(path);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(viv_write_all(p[1], "0123456789", 10), VIV_OK);
	close(p[1]);
	cr_assert_eq(viv_copy_fd(p[0], out, 4, &copied), VIV_ERR_TOO_BIG);
	cr_assert_eq(copied, 4);
	cr_assert_eq(pread(out, back, sizeof(back), 0), 4);
	cr_assert_str_eq(back, "0123");
	close(p[0]);

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(viv_write_all(p[1], "abc", 3), VIV_OK);
	close(p[1]);
	cr_assert_eq(viv_copy_fd(p[0], out, UINT64_MAX, &copied), VIV_OK);
	cr_assert_eq(copied, 3);
	close(p[0]);
	close(out);
}

static void origin_ok(const char *text, const char *scheme, bool wild, const char *host,
                      unsigned port, const char *path)
{
	struct viv_origin o;

	cr_assert_eq(viv_origin_parse(text, true, &o), VIV_OK, "%s", text);
	cr_assert_str_eq(o.scheme, scheme, "%s", text);
	cr_assert_eq(o.wildcard, wild, "%s", text);
	cr_assert_str_eq(o.host, host, "%s", text);
	cr_assert_eq(o.port, port, "%s", text);
	cr_assert_str_eq(o.path, path, "%s", text);
	viv_origin_clear(&o);
}

Test(origin, patterns_as_manifests_write_them)
{
	static const char *const bad[] = {
	        "ftp://x.test",
	        "https://",
	        "https://a..b",
	        "https://a.test:99999",
	        "https://a.test:0",
	        "HTTPS://a.test",
	        "https://.a.test",
	        "https://a.test.",
	        "https://-a.test",
	        "https://u@a.test",
	        "https://a.test/?q",
	        "https://a.test/#f",
	        "https://a test",
	        "https://a.test/\xc3\xa9",
	        "https://[::1]/",
	        "https:/a.test",
	        "https://*.",
	        "https://a.*.test",
	        NULL,
	};
	struct viv_origin o;

	origin_ok("https://api.example.com", "https", false, "api.example.com", 443, "/");
	origin_ok("https://*.Example.org", "https", true, "example.org", 443, "/");
	origin_ok("http://x.test:8080/api", "http", false, "x.test", 8080, "/api");
	origin_ok("http://1.2.3.4", "http", false, "1.2.3.4", 80, "/");
	for (size_t i = 0; bad[i]; i++) {
		cr_assert_eq(viv_origin_parse(bad[i], true, &o), VIV_ERR_INVALID, "%s", bad[i]);
		cr_assert_null(o.path);
	}
	viv_origin_clear(NULL);
}

static bool allows(const char *pattern, const char *url)
{
	struct viv_origin p, u;
	bool ok;

	cr_assert_eq(viv_origin_parse(pattern, true, &p), VIV_OK, "%s", pattern);
	cr_assert_eq(viv_origin_parse(url, false, &u), VIV_OK, "%s", url);
	ok = viv_origin_allows(&p, &u);
	viv_origin_clear(&p);
	viv_origin_clear(&u);
	return ok;
}

Test(origin, allows_compares_scheme_host_port_and_path)
{
	cr_assert(allows("https://api.example.com", "https://API.example.com/v1?x=1"));
	cr_assert(allows("https://api.example.com", "https://api.example.com:443/"));
	cr_assert_not(allows("https://api.example.com", "http://api.example.com/"));
	cr_assert_not(allows("https://api.example.com", "https://api.example.com:8443/"));
	cr_assert(allows("https://*.example.org", "https://a.b.example.org/"));
	cr_assert_not(allows("https://*.example.org", "https://example.org/"));
	cr_assert_not(allows("https://*.example.org", "https://badexample.org/"));
	cr_assert(allows("http://x.test:8080/api", "http://x.test:8080/api/v1"));
	cr_assert(allows("http://x.test:8080/api", "http://x.test:8080/api"));
	cr_assert_not(allows("http://x.test:8080/api", "http://x.test:8080/apix"));
}

Test(upload, sniffing_names_the_kind)
{
	cr_assert_eq(viv_upload_sniff("\0asm\1\0\0\0", 8), VIV_UPLOAD_WASM);
	cr_assert_str_eq(viv_upload_kind_name(VIV_UPLOAD_WASM), "wasm");
	cr_assert_str_eq(viv_upload_kind_name(VIV_UPLOAD_ARCHIVE), "archive");
	cr_assert_str_eq(viv_upload_kind_name(VIV_UPLOAD_WAT), "wat");
	cr_assert_null(viv_upload_kind_name(VIV_UPLOAD_UNKNOWN));
	cr_assert_eq(viv_upload_sniff(NULL, 0), VIV_UPLOAD_UNKNOWN);
}

/* ---- Platforms ------------------------------------------------------------------ */

Test(platform, this_host_runs_what_it_builds)
{
	char here[VIV_PLATFORM_MAX], why[256];

	viv_platform(here);
	cr_assert(strstr(here, "-linux-gnu glibc 2."), "%s", here);
	cr_assert(viv_platform_runs(here, here, why, sizeof(why)), "%s", why);
}

Test(platform, another_architecture_or_a_newer_glibc_is_refused_and_named)
{
	const char *host = "x86_64-linux-gnu glibc 2.36";
	char why[256];

	cr_assert(viv_platform_runs("x86_64-linux-gnu glibc 2.31", host, why, sizeof(why)));
	cr_assert(viv_platform_runs("x86_64-linux-gnu glibc 2.36", host, why, sizeof(why)));
	cr_assert_not(viv_platform_runs("aarch64-linux-gnu glibc 2.36", host, why, sizeof(why)));
	cr_assert(strstr(why, "aarch64-linux-gnu glibc 2.36") && strstr(why, host), "%s", why);
	cr_assert_not(viv_platform_runs("x86_64-linux-gnu glibc 2.38", host, why, sizeof(why)));
	cr_assert(strstr(why, "glibc 2.38") && strstr(why, "newer"), "%s", why);
	cr_assert_not(viv_platform_runs("x86_64-linux-gnu glibc 3.1", host, why, sizeof(why)));
	cr_assert_not(viv_platform_runs("x86_64-linux-musl", host, why, sizeof(why)));
	cr_assert_not(viv_platform_runs("", host, why, sizeof(why)));
	cr_assert_not(viv_platform_runs(NULL, host, why, sizeof(why)));
	cr_assert_not(viv_platform_runs("x86_64-linux-gnu glibc 2.36", NULL, why, sizeof(why)));
	cr_assert_not(viv_platform_runs("x86_64-linux-gnu glibc x.y", host, why, sizeof(why)));
}

Test(text, a_header_line_gives_its_value_to_whoever_names_it)
{
	char v[16];

	cr_assert(viv_header_take("ETag: \"abc\"\r\n", 13, "etag", v, sizeof(v)));
	cr_assert_str_eq(v, "\"abc\"");
	cr_assert(viv_header_take("X-A:\tb c \r\n", 11, "X-A", v, sizeof(v)));
	cr_assert_str_eq(v, "b c");
	cr_assert(viv_header_take("X-A: 0123456789abcdefgh\r\n", 25, "X-A", v, sizeof(v)));
	cr_assert_str_eq(v, "0123456789abcde");
	cr_assert_not(viv_header_take("X-AB: b\r\n", 9, "X-A", v, sizeof(v)));
	cr_assert_not(viv_header_take("X-A", 3, "X-A", v, sizeof(v)));
	cr_assert_not(viv_header_take("HTTP/1.1 200 OK\r\n", 17, "X-A", v, sizeof(v)));
}
