/* vivarium.json: valid manifests, errors that name the field, limits. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static struct pipe_config cfg;
static char err[1024];

static void setup(void)
{
	t_config(&cfg, false);
	err[0] = '\0';
}

TestSuite(manifest, .init = setup);

static struct pipe_manifest *parse_ok(const char *text)
{
	struct pipe_manifest *m = NULL;

	cr_assert_eq(pipe_manifest_parse(text, strlen(text), &cfg, &m, err, sizeof(err)), VIV_OK,
	             "%s", err);
	cr_assert_not_null(m);
	return m;
}

static void parse_bad(const char *text, const char *want)
{
	struct pipe_manifest *m = (void *)1;

	cr_assert_neq(pipe_manifest_parse(text, strlen(text), &cfg, &m, err, sizeof(err)), VIV_OK,
	              "accepted %s", text);
	cr_assert_null(m);
	cr_assert(strstr(err, want), "for %s\nwant: %s\ngot:  %s", text, want, err);
}

Test(manifest, full_example_from_the_docs)
{
	struct pipe_manifest *m = parse_ok(
	        "{\"name\": \"hello\", \"language\": \"c\","
	        " \"build\": {\"sources\": [\"src/*.c\"], \"cflags\": [\"-O2\", \"-DX=1\"]},"
	        " \"limits\": {\"memory_mb\": 64, \"cpu_ms\": 50, \"wall_ms\": 2000},"
	        " \"outbound\": [\"https://api.example.com\", \"https://*.Example.org\"],"
	        " \"env\": {\"GREETING\": \"hello\"}, \"assets\": \"assets\"}");

	cr_assert(m->present);
	cr_assert_str_eq(m->name, "hello");
	cr_assert_str_eq(m->language, "c");
	cr_assert_eq(m->n_sources, 1);
	cr_assert_str_eq(m->sources[0], "src/*.c");
	cr_assert_eq(m->n_cflags, 2);
	cr_assert_str_eq(m->cflags[1], "-DX=1");
	cr_assert_eq(m->limits.memory_mb, 64);
	cr_assert_eq(m->limits.cpu_ms, 50);
	cr_assert_eq(m->limits.wall_ms, 2000);
	cr_assert_eq(m->n_outbound, 2);
	cr_assert_str_eq(m->outbound[1], "https://*.example.org");
	cr_assert_eq(m->n_env, 1);
	cr_assert_str_eq(m->env_keys[0], "GREETING");
	cr_assert_str_eq(m->env_values[0], "hello");
	cr_assert_str_eq(m->assets, "assets");
	pipe_manifest_free(m);
}

Test(manifest, config_json_is_resolved)
{
	struct pipe_manifest *m = parse_ok("{\"limits\": {\"cpu_ms\": 50},"
	                                   " \"env\": {\"A\": \"1\", \"B\": \"two\"},"
	                                   " \"outbound\": [\"http://x.test:8080/api\"]}");
	struct store_deploy_config config;

	cr_assert_eq(pipe_manifest_config(m, NULL, &config), VIV_OK);
	cr_assert_eq(config.mode, STORE_MODE_NONE);
	cr_assert_eq(config.limits.memory_mb, VIV_LIMIT_MEMORY_MB_DEFAULT);
	cr_assert_eq(config.limits.cpu_ms, 50);
	cr_assert_eq(config.limits.wall_ms, VIV_LIMIT_WALL_MS_DEFAULT);
	cr_assert_eq(config.n_env, 2);
	cr_assert_str_eq(config.env[0].name, "A");
	cr_assert_str_eq(config.env[1].name, "B");
	cr_assert_str_eq(config.env[1].value, "two");
	cr_assert_eq(config.n_outbound, 1);
	cr_assert_str_eq(config.outbound[0], "http://x.test:8080/api");
	cr_assert_null(config.assets);
	store_deploy_config_clear(&config);
	pipe_manifest_free(m);
}

Test(manifest, absent_file_gives_defaults)
{
	char *dir = t_tmpdir();
	struct pipe_manifest *m = NULL;
	struct store_deploy_config config;

	cr_assert_eq(pipe_manifest_load(dir, &cfg, &m, err, sizeof(err)), VIV_OK);
	cr_assert_not(m->present);
	cr_assert_null(m->language);
	cr_assert_eq(m->limits.memory_mb, VIV_LIMIT_MEMORY_MB_DEFAULT);
	cr_assert_eq(pipe_manifest_config(m, NULL, &config), VIV_OK);
	cr_assert_eq(config.limits.memory_mb, 128);
	cr_assert_eq(config.limits.cpu_ms, 500);
	cr_assert_eq(config.limits.wall_ms, 10000);
	cr_assert_eq(config.n_env, 0);
	cr_assert_eq(config.n_outbound, 0);
	cr_assert_null(config.assets);
	store_deploy_config_clear(&config);
	pipe_manifest_free(m);
	t_write(dir, "vivarium.json", "{\"limits\": {\"memory_mb\": 0}}");
	cr_assert_eq(pipe_manifest_load(dir, &cfg, &m, err, sizeof(err)), VIV_ERR_INVALID);
	viv_rmtree_or_log(dir);
	free(dir);
}

Test(manifest, limits_lower_and_raise_up_to_the_maximum)
{
	struct pipe_manifest *m;

	m = parse_ok("{\"limits\": {\"memory_mb\": 1024, \"cpu_ms\": 10000, \"wall_ms\": 1}}");
	cr_assert_eq(m->limits.memory_mb, 1024);
	cr_assert_eq(m->limits.cpu_ms, 10000);
	cr_assert_eq(m->limits.wall_ms, 1);
	pipe_manifest_free(m);
	parse_bad("{\"limits\": {\"memory_mb\": 2048}}",
	          "vivarium.json: limits.memory_mb is 2048, above this server's maximum of 1024");
	parse_bad("{\"limits\": {\"wall_ms\": 60001}}", "limits.wall_ms is 60001");
	parse_bad("{\"limits\": {\"memory_mb\": 0}}",
	          "vivarium.json: limits.memory_mb must be a whole number from 1 to 1024");
	parse_bad("{\"limits\": {\"memory_mb\": 1.5}}",
	          "vivarium.json: limits.memory_mb must be a whole number from 1 to 1024");
	parse_bad("{\"limits\": {\"cpu_ms\": \"50\"}}",
	          "limits.cpu_ms must be a whole number from 1 to 10000");
	/* An operator's lower maximum is the one named. */
	cfg.limits_max.memory_mb = 256;
	parse_bad("{\"limits\": {\"memory_mb\": 512}}", "maximum of 256");
}

Test(manifest, unknown_fields_are_named)
{
	parse_bad("{\"lmits\": {}}", "vivarium.json: unknown field 'lmits'");
	parse_bad("{\"limits\": {\"memory\": 5}}", "unknown field 'limits.memory'");
	parse_bad("{\"build\": {\"source\": []}}", "unknown field 'build.source'");
}

Test(manifest, bad_values_name_their_field)
{
	parse_bad("not json", "vivarium.json: not valid JSON");
	parse_bad("[1]", "must hold one JSON object");
	parse_bad("{\"a\": 1, \"a\": 2}", "not valid JSON");
	parse_bad("{\"name\": \"Bad_Name\"}", "vivarium.json: name must be");
	parse_bad("{\"language\": \"cobol\"}", "vivarium.json: language must be one of");
	parse_bad("{\"build\": {\"sources\": \"main.c\"}}", "build.sources must be an array");
	parse_bad("{\"build\": {\"sources\": []}}", "build.sources is empty");
	parse_bad("{\"build\": {\"sources\": [\"../x.c\"]}}", "build.sources[0]");
	parse_bad("{\"build\": {\"sources\": [\"/etc/*.c\"]}}", "build.sources[0]");
	parse_bad("{\"build\": {\"sources\": [\"a.c\", 3]}}", "build.sources[1] must be a string");
	parse_bad("{\"env\": {\"1X\": \"y\"}}", "env: '1X' is not a valid variable name");
	parse_bad("{\"env\": {\"X\": 1}}", "env.X must be a string");
	parse_bad("{\"env\": {\"HTTP_HOST\": \"y\"}}", "env.HTTP_HOST is set by Vivarium");
	parse_bad("{\"env\": []}", "env must be an object");
	parse_bad("{\"outbound\": [\"ftp://x.test\"]}", "outbound[0] ('ftp://x.test') must be");
	parse_bad("{\"outbound\": [\"https://\"]}", "outbound[0]");
	parse_bad("{\"outbound\": [\"https://a..b\"]}", "outbound[0]");
	parse_bad("{\"outbound\": [\"https://a.test:99999\"]}", "outbound[0]");
	parse_bad("{\"assets\": \"../up\"}", "assets must be a folder inside the project");
	parse_bad("{\"assets\": 5}", "assets must be a string");
}

Test(manifest, cflags_that_escape_the_build_are_refused)
{
	static const char *const bad[] = {
	        "-fplugin=./x.so",
	        "-fpass-plugin=x.so",
	        "-B/tmp",
	        "--sysroot=/",
	        "-o",
	        "-o/tmp/x",
	        "-Xlinker",
	        "-Xclang",
	        "-Wl,--export-all",
	        "-Wp,-MF,/tmp/x",
	        "@args.txt",
	        "-include/etc/passwd",
	        "--target=x86_64",
	        "-target",
	        "-mllvm",
	        "-I/etc",
	        "-I../..",
	        "-I",
	        "-D",
	        "-fprofile-generate=/tmp",
	        "-c",
	        "-E",
	        "-isystem/usr",
	        "-MF/tmp/deps",
	};
	static const char *const good[] = {
	        "-O3",
	        "-Os",
	        "-Wall",
	        "-Werror",
	        "-DNAME=\"value with spaces\"",
	        "-UNDEBUG",
	        "-Isrc/include",
	        "-std=c11",
	        "-g",
	        "-fno-builtin",
	        "-mbulk-memory",
	        "-pedantic",
	        "-w",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(pipe_cflag_check(bad[i], err, sizeof(err)), VIV_ERR_INVALID, "%s",
		             bad[i]);
		cr_assert(strstr(err, "build.cflags"), "%s", err);
		cr_assert(strstr(err, bad[i]) || strlen(bad[i]) <= 2, "%s: %s", bad[i], err);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(pipe_cflag_check(good[i], err, sizeof(err)), VIV_OK, "%s: %s", good[i],
		             err);
	parse_bad("{\"build\": {\"cflags\": [\"-O2\", \"-fplugin=evil.so\"]}}",
	          "vivarium.json: build.cflags: '-fplugin=evil.so' is not allowed");
}

Test(manifest, size_cap)
{
	size_t n = PIPE_MANIFEST_MAX + 10;
	char *big = malloc(n + 1);
	struct pipe_manifest *m = NULL;

	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	cr_assert_eq(pipe_manifest_parse(big, n, &cfg, &m, err, sizeof(err)), VIV_ERR_TOO_BIG);
	free(big);
}
