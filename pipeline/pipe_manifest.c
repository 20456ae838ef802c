/* vivarium.json: parsing with jansson, validation per GUEST-ABI.md section
 * 4 with errors that name the field, limits resolved against the platform's
 * defaults and maxima, and the resolved configuration runners read. */
#include "pipeline_int.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF "vivarium.json: "
#define SOURCES_MAX 256
#define CFLAGS_MAX 64
#define INCLUDE_DIRS_MAX 64
#define CFLAG_LEN_MAX 256
#define PATTERN_LEN_MAX 1024
#define ENV_MAX 256
#define ENV_KEY_MAX 128
#define ENV_VALUE_MAX 4096
#define OUTBOUND_MAX 64
#define OUTBOUND_LEN_MAX 512

static const char *const languages[] = {"c", "rust", "assemblyscript", "wat", "wasm", NULL};

/* ---- build.cflags ------------------------------------------------------------ */

/* Flags with a value that names a file: the file must be in the project. */
static bool value_escapes(const char *value)
{
	return value[0] == '/' || strstr(value, "..") != NULL;
}

enum viv_err pipe_cflag_check(const char *flag, char *err, size_t errlen)
{
	/* Inside the allowed families, these reach outside the compilation:
	 * they load code into the compiler, pass options to other tools or
	 * write files of their own choosing. */
	static const char *const denied[] = {
	        "-fplugin",
	        "-fpass-plugin",
	        "-fprofile",
	        "-fcrash-diagnostics",
	        "-fmodules-cache-path",
	        "-fmodule-file",
	        "-fsanitize-blacklist",
	        "-fsanitize-ignorelist",
	        "-fsave-optimization-record",
	        "-foptimization-record-file",
	        "-fproc-stat-report",
	        "-fxray-always-instrument",
	        "-fxray-never-instrument",
	        "-fxray-attr-list",
	        "-fembed-offload-object",
	        "-Wl,",
	        "-Wa,",
	        "-Wp,",
	        "-mllvm",
	        NULL,
	};
	static const char *const allowed[] = {"-O", "-D",    "-U",        "-I",    "-W", "-f", "-g",
	                                      "-m", "-std=", "-pedantic", "-ansi", "-w", NULL};
	const char *eq;
	size_t i;

	if (strlen(flag) > CFLAG_LEN_MAX) {
		viv_errf(err, errlen, MF "build.cflags: a flag is longer than %d characters",
		         CFLAG_LEN_MAX);
		return VIV_ERR_INVALID;
	}
	for (i = 0; denied[i]; i++) {
		if (strncmp(flag, denied[i], strlen(denied[i])) == 0) {
			viv_errf(err, errlen,
			         MF "build.cflags: '%s' is not allowed: it would load code into "
			            "the compiler, pass options to another tool or write files "
			            "outside the build",
			         flag);
			return VIV_ERR_INVALID;
		}
	}
	for (i = 0; allowed[i]; i++) {
		if (strncmp(flag, allowed[i], strlen(allowed[i])) == 0)
			break;
	}
	if (!allowed[i]) {
		viv_errf(err, errlen,
		         MF "build.cflags: '%s' is not allowed; flags may set optimization, "
		            "warnings, macros, include folders and code generation (-O, -W, -D, "
		            "-U, -I, -f, -g, -m, -std=), not the target, sysroot, output, "
		            "plugins or linker",
		         flag);
		return VIV_ERR_INVALID;
	}
	/* -I, -D and -U take their value in the same argument: a lone one
	 * would swallow the next flag, whatever it is. */
	if ((strcmp(flag, "-I") == 0 || strcmp(flag, "-D") == 0 || strcmp(flag, "-U") == 0)) {
		viv_errf(err, errlen,
		         MF "build.cflags: write '%s' with its value in the same string, "
		            "e.g. \"%sNAME\"",
		         flag, flag);
		return VIV_ERR_INVALID;
	}
	if (strncmp(flag, "-I", 2) == 0 && value_escapes(flag + 2)) {
		viv_errf(err, errlen,
		         MF "build.cflags: '%s' points outside the project; include folders "
		            "must be relative paths inside it",
		         flag);
		return VIV_ERR_INVALID;
	}
	eq = strchr(flag, '=');
	if (eq && strncmp(flag, "-D", 2) != 0 && value_escapes(eq + 1)) {
		viv_errf(err, errlen,
		         MF "build.cflags: '%s' names a path outside the project; use a "
		            "relative path inside it",
		         flag);
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

/* ---- Field checks ----------------------------------------------------------------- */

static bool in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++) {
		if (strcmp(s, list[i]) == 0)
			return true;
	}
	return false;
}

static enum viv_err check_keys(json_t *obj, const char *where, const char *const *known, char *err,
                               size_t errlen)
{
	const char *key;
	json_t *v;
	char list[256] = "";
	size_t used = 0;

	json_object_foreach(obj, key, v)
	{
		(void)v;
		if (in_list(key, known))
			continue;
		for (size_t i = 0; known[i]; i++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
			                 known[i]);
			if (n < 0 || (size_t)n >= sizeof(list) - used)
				break;
			used += (size_t)n;
		}
		viv_errf(err, errlen, MF "unknown field '%s%s%.100s' (known fields: %s)", where,
		         *where ? "." : "", key, list);
		return VIV_ERR_INVALID;
	}
	return VIV_OK;
}

static enum viv_err dup_string(json_t *v, const char *field, size_t max, char **out, char *err,
                               size_t errlen)
{
	if (!json_is_string(v)) {
		viv_errf(err, errlen, MF "%s must be a string", field);
		return VIV_ERR_INVALID;
	}
	if (json_string_length(v) > max) {
		viv_errf(err, errlen, MF "%s is longer than %zu characters", field, max);
		return VIV_ERR_INVALID;
	}
	*out = strdup(json_string_value(v));
	return *out ? VIV_OK : VIV_ERR_NOMEM;
}

/* An array of at most max strings, each at most len_max long. */
static enum viv_err string_array(json_t *v, const char *field, size_t max, size_t len_max,
                                 char ***out, size_t *n_out, char *err, size_t errlen)
{
	char **items = NULL;
	size_t n, i;
	enum viv_err e = VIV_OK;

	if (!json_is_array(v)) {
		viv_errf(err, errlen, MF "%s must be an array of strings", field);
		return VIV_ERR_INVALID;
	}
	n = json_array_size(v);
	if (n > max) {
		viv_errf(err, errlen, MF "%s has %zu entries; at most %zu are allowed", field, n,
		         max);
		return VIV_ERR_INVALID;
	}
	items = calloc(n + 1, sizeof(*items));
	if (!items)
		return VIV_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		e = dup_string(json_array_get(v, i), name, len_max, &items[i], err, errlen);
		if (e)
			break;
	}
	if (e) {
		pipe_strv_free(items, n);
		return e;
	}
	*out = items;
	*n_out = n;
	return VIV_OK;
}

static enum viv_err parse_build(json_t *v, struct pipe_manifest *m, char *err, size_t errlen)
{
	static const char *const known[] = {"sources", "cflags", "cxxflags", "include_dirs", NULL};
	json_t *f;
	enum viv_err e;

	if (!json_is_object(v)) {
		viv_errf(err, errlen, MF "build must be an object");
		return VIV_ERR_INVALID;
	}
	e = check_keys(v, "build", known, err, errlen);
	if (e)
		return e;
	f = json_object_get(v, "sources");
	if (f) {
		e = string_array(f, "build.sources", SOURCES_MAX, PATTERN_LEN_MAX, &m->sources,
		                 &m->n_sources, err, errlen);
		if (e)
			return e;
		if (m->n_sources == 0) {
			viv_errf(err, errlen,
			         MF "build.sources is empty; list source files or patterns, or "
			            "leave it out");
			return VIV_ERR_INVALID;
		}
		for (size_t i = 0; i < m->n_sources; i++) {
			if (!pipe_relpath_safe(m->sources[i])) {
				viv_errf(err, errlen,
				         MF "build.sources[%zu] ('%.100s') must be a relative path "
				            "inside the project, without '..'",
				         i, m->sources[i]);
				return VIV_ERR_INVALID;
			}
		}
	}
	f = json_object_get(v, "cflags");
	if (f) {
		e = string_array(f, "build.cflags", CFLAGS_MAX, CFLAG_LEN_MAX, &m->cflags,
		                 &m->n_cflags, err, errlen);
		if (e)
			return e;
		for (size_t i = 0; i < m->n_cflags; i++) {
			e = pipe_cflag_check(m->cflags[i], err, errlen);
			if (e)
				return e;
		}
	}
	f = json_object_get(v, "cxxflags");
	if (f) {
		e = string_array(f, "build.cxxflags", CFLAGS_MAX, CFLAG_LEN_MAX, &m->cxxflags,
		                 &m->n_cxxflags, err, errlen);
		if (e)
			return e;
		for (size_t i = 0; i < m->n_cxxflags; i++) {
			e = pipe_cflag_check(m->cxxflags[i], err, errlen);
			if (e)
				return e;
		}
	}
	f = json_object_get(v, "include_dirs");
	if (f) {
		e = string_array(f, "build.include_dirs", INCLUDE_DIRS_MAX, PATTERN_LEN_MAX,
		                 &m->include_dirs, &m->n_include_dirs, err, errlen);
		if (e)
			return e;
		for (size_t i = 0; i < m->n_include_dirs; i++) {
			if (!pipe_relpath_safe(m->include_dirs[i]) ||
			    strpbrk(m->include_dirs[i], "*?[")) {
				viv_errf(err, errlen,
				         MF "build.include_dirs[%zu] ('%.100s') must be a folder "
				            "inside the project, as a relative path without '..'",
				         i, m->include_dirs[i]);
				return VIV_ERR_INVALID;
			}
		}
	}
	return VIV_OK;
}

static enum viv_err parse_limit(json_t *v, const char *field, uint32_t max, uint32_t *out,
                                char *err, size_t errlen)
{
	json_int_t n;

	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		viv_errf(err, errlen, MF "limits.%s must be a whole number from 1 to %u", field,
		         max);
		return VIV_ERR_INVALID;
	}
	n = json_integer_value(v);
	if (n > (json_int_t)max) {
		viv_errf(err, errlen,
		         MF "limits.%s is %lld, above this server's maximum of %u; lower it", field,
		         (long long)n, max);
		return VIV_ERR_INVALID;
	}
	*out = (uint32_t)n;
	return VIV_OK;
}

static enum viv_err parse_limits(json_t *v, const struct pipe_config *cfg, struct pipe_manifest *m,
                                 char *err, size_t errlen)
{
	static const char *const known[] = {"memory_mb", "cpu_ms", "wall_ms", NULL};
	json_t *f;
	enum viv_err e;

	if (!json_is_object(v)) {
		viv_errf(err, errlen, MF "limits must be an object");
		return VIV_ERR_INVALID;
	}
	e = check_keys(v, "limits", known, err, errlen);
	if (e)
		return e;
	f = json_object_get(v, "memory_mb");
	if (f) {
		e = parse_limit(f, "memory_mb", cfg->limits_max.memory_mb, &m->limits.memory_mb,
		                err, errlen);
		if (e)
			return e;
	}
	f = json_object_get(v, "cpu_ms");
	if (f) {
		e = parse_limit(f, "cpu_ms", cfg->limits_max.cpu_ms, &m->limits.cpu_ms, err,
		                errlen);
		if (e)
			return e;
	}
	f = json_object_get(v, "wall_ms");
	if (f) {
		e = parse_limit(f, "wall_ms", cfg->limits_max.wall_ms, &m->limits.wall_ms, err,
		                errlen);
		if (e)
			return e;
	}
	return VIV_OK;
}

/* Names that CGI sets for every request (GUEST-ABI.md section 2). */
static bool env_reserved(const char *key)
{
	static const char *const cgi[] = {
	        "REQUEST_METHOD",
	        "PATH_INFO",
	        "QUERY_STRING",
	        "SERVER_NAME",
	        "SERVER_PORT",
	        "SERVER_PROTOCOL",
	        "REMOTE_ADDR",
	        "CONTENT_TYPE",
	        "CONTENT_LENGTH",
	        "GATEWAY_INTERFACE",
	        "SCRIPT_NAME",
	        "SERVER_SOFTWARE",
	        NULL,
	};
	return in_list(key, cgi) || strncmp(key, "HTTP_", 5) == 0;
}

static bool env_key_valid(const char *key)
{
	size_t i;

	if (!(isalpha((unsigned char)key[0]) || key[0] == '_'))
		return false;
	for (i = 1; key[i]; i++) {
		if (!(isalnum((unsigned char)key[i]) || key[i] == '_'))
			return false;
	}
	return i <= ENV_KEY_MAX;
}

static enum viv_err parse_env(json_t *v, struct pipe_manifest *m, char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	size_t n, i = 0;
	enum viv_err e;

	if (!json_is_object(v)) {
		viv_errf(err, errlen, MF "env must be an object of names to string values");
		return VIV_ERR_INVALID;
	}
	n = json_object_size(v);
	if (n > ENV_MAX) {
		viv_errf(err, errlen, MF "env has %zu variables; at most %d are allowed", n,
		         ENV_MAX);
		return VIV_ERR_INVALID;
	}
	m->env_keys = calloc(n + 1, sizeof(char *));
	m->env_values = calloc(n + 1, sizeof(char *));
	if (!m->env_keys || !m->env_values)
		return VIV_ERR_NOMEM;
	json_object_foreach(v, key, val)
	{
		char field[ENV_KEY_MAX + 16];

		if (!env_key_valid(key)) {
			viv_errf(err, errlen,
			         MF "env: '%.100s' is not a valid variable name (letters, digits "
			            "and '_', not starting with a digit, at most %d)",
			         key, ENV_KEY_MAX);
			return VIV_ERR_INVALID;
		}
		if (env_reserved(key)) {
			viv_errf(err, errlen,
			         MF "env.%s is set by Vivarium for each request (CGI); choose "
			            "another name",
			         key);
			return VIV_ERR_INVALID;
		}
		snprintf(field, sizeof(field), "env.%s", key);
		m->env_keys[i] = strdup(key);
		if (!m->env_keys[i])
			return VIV_ERR_NOMEM;
		m->n_env = i + 1;
		e = dup_string(val, field, ENV_VALUE_MAX, &m->env_values[i], err, errlen);
		if (e)
			return e;
		i++;
	}
	return VIV_OK;
}

/* scheme://host[:port][/path], host optionally starting with "*." for any
 * subdomain: a pattern as viv_origin_parse() takes it. */
static enum viv_err outbound_check(const char *s)
{
	struct viv_origin o;
	enum viv_err e = viv_origin_parse(s, true, &o);

	viv_origin_clear(&o);
	return e;
}

static enum viv_err parse_outbound(json_t *v, struct pipe_manifest *m, char *err, size_t errlen)
{
	enum viv_err e;

	e = string_array(v, "outbound", OUTBOUND_MAX, OUTBOUND_LEN_MAX, &m->outbound,
	                 &m->n_outbound, err, errlen);
	if (e)
		return e;
	for (size_t i = 0; i < m->n_outbound; i++) {
		char *s = m->outbound[i];

		e = outbound_check(s);
		if (e == VIV_ERR_NOMEM)
			return e;
		if (e) {
			viv_errf(err, errlen,
			         MF "outbound[%zu] ('%.100s') must be a URL pattern like "
			            "\"https://api.example.com\" or \"https://*.example.org\"",
			         i, s);
			return VIV_ERR_INVALID;
		}
		/* Scheme and host compare case-insensitively: keep them lower. */
		for (char *c = s; *c && *c != '/'; c++)
			*c = (char)tolower((unsigned char)*c);
		for (char *c = strstr(s, "://") + 3; *c && *c != '/'; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	return VIV_OK;
}

/* ---- The manifest ---------------------------------------------------------------- */

static struct pipe_manifest *manifest_new(const struct pipe_config *cfg)
{
	struct pipe_manifest *m = calloc(1, sizeof(*m));

	if (m)
		m->limits = cfg->limits_default;
	return m;
}

static enum viv_err parse_root(json_t *root, const struct pipe_config *cfg, struct pipe_manifest *m,
                               char *err, size_t errlen)
{
	static const char *const known[] = {"name",     "language", "build",  "limits",
	                                    "outbound", "env",      "assets", NULL};
	json_t *v;
	enum viv_err e;

	if (!json_is_object(root)) {
		viv_errf(err, errlen, MF "the file must hold one JSON object");
		return VIV_ERR_INVALID;
	}
	e = check_keys(root, "", known, err, errlen);
	if (e)
		return e;
	v = json_object_get(root, "name");
	if (v) {
		e = dup_string(v, "name", 63, &m->name, err, errlen);
		if (e)
			return e;
		if (!viv_app_name_valid(m->name)) {
			viv_errf(err, errlen,
			         MF "name must be 1 to 63 lowercase letters, digits and '-', not "
			            "starting or ending with '-'");
			return VIV_ERR_INVALID;
		}
	}
	v = json_object_get(root, "language");
	if (v) {
		e = dup_string(v, "language", 32, &m->language, err, errlen);
		if (e)
			return e;
		if (!in_list(m->language, languages)) {
			viv_errf(err, errlen,
			         MF "language must be one of c, rust, assemblyscript, wat or wasm "
			            "(or left out to detect it)");
			return VIV_ERR_INVALID;
		}
	}
	v = json_object_get(root, "build");
	if (v) {
		e = parse_build(v, m, err, errlen);
		if (e)
			return e;
	}
	v = json_object_get(root, "limits");
	if (v) {
		e = parse_limits(v, cfg, m, err, errlen);
		if (e)
			return e;
	}
	v = json_object_get(root, "outbound");
	if (v) {
		e = parse_outbound(v, m, err, errlen);
		if (e)
			return e;
	}
	v = json_object_get(root, "env");
	if (v) {
		e = parse_env(v, m, err, errlen);
		if (e)
			return e;
	}
	v = json_object_get(root, "assets");
	if (v) {
		e = dup_string(v, "assets", PATTERN_LEN_MAX, &m->assets, err, errlen);
		if (e)
			return e;
		if (!pipe_relpath_safe(m->assets) || strpbrk(m->assets, "*?[")) {
			viv_errf(err, errlen,
			         MF "assets must be a folder inside the project, as a relative "
			            "path without '..'");
			return VIV_ERR_INVALID;
		}
	}
	return VIV_OK;
}

enum viv_err pipe_manifest_parse(const char *text, size_t len, const struct pipe_config *cfg,
                                 struct pipe_manifest **out, char *err, size_t errlen)
{
	struct pipe_manifest *m = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	enum viv_err e;

	*out = NULL;
	if (len > PIPE_MANIFEST_MAX) {
		viv_errf(err, errlen, MF "the file is larger than %d KiB",
		         PIPE_MANIFEST_MAX / 1024);
		return VIV_ERR_TOO_BIG;
	}
	m = manifest_new(cfg);
	if (!m)
		return VIV_ERR_NOMEM;
	m->present = true;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		viv_errf(err, errlen, MF "not valid JSON: %s (line %d, column %d)", jerr.text,
		         jerr.line, jerr.column);
		e = VIV_ERR_INVALID;
		goto out;
	}
	e = parse_root(root, cfg, m, err, errlen);
out:
	json_decref(root);
	if (e) {
		pipe_manifest_free(m);
		return e;
	}
	*out = m;
	return VIV_OK;
}

enum viv_err pipe_manifest_load(const char *root, const struct pipe_config *cfg,
                                struct pipe_manifest **out, char *err, size_t errlen)
{
	char *path = NULL, *text = NULL;
	size_t len = 0;
	enum viv_err e;

	*out = NULL;
	path = viv_path_join(root, PIPE_MANIFEST_FILE);
	if (!path)
		return VIV_ERR_NOMEM;
	e = viv_read_file(path, PIPE_MANIFEST_MAX, &text, &len);
	free(path);
	if (e == VIV_ERR_NOT_FOUND) {
		*out = manifest_new(cfg);
		return *out ? VIV_OK : VIV_ERR_NOMEM;
	}
	if (e == VIV_ERR_TOO_BIG) {
		viv_errf(err, errlen, MF "the file is larger than %d KiB",
		         PIPE_MANIFEST_MAX / 1024);
		return e;
	}
	if (e) {
		viv_errf(err, errlen, MF "could not be read (%s)", viv_strerror(e));
		return e;
	}
	e = pipe_manifest_parse(text, len, cfg, out, err, errlen);
	free(text);
	return e;
}

enum viv_err pipe_manifest_config(const struct pipe_manifest *m, const char *assets_hash,
                                  struct store_deploy_config *out)
{
	enum viv_err e = VIV_OK;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->limits = m->limits;
	for (i = 0; !e && i < m->n_env; i++)
		e = store_deploy_config_add_env(out, m->env_keys[i], m->env_values[i]);
	for (i = 0; !e && i < m->n_outbound; i++)
		e = store_deploy_config_add_outbound(out, m->outbound[i]);
	if (!e && assets_hash) {
		out->assets = strdup(assets_hash);
		if (!out->assets)
			e = VIV_ERR_NOMEM;
	}
	return e;
}

void pipe_manifest_free(struct pipe_manifest *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->language);
	pipe_strv_free(m->sources, m->n_sources);
	pipe_strv_free(m->cflags, m->n_cflags);
	pipe_strv_free(m->cxxflags, m->n_cxxflags);
	pipe_strv_free(m->include_dirs, m->n_include_dirs);
	pipe_strv_free(m->env_keys, m->n_env);
	pipe_strv_free(m->env_values, m->n_env);
	pipe_strv_free(m->outbound, m->n_outbound);
	free(m->assets);
	free(m);
}
