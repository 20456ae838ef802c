/* A deployment's configuration: the struct everyone else reads, and the
 * store's own encoding of it, the only place that knows it. The encoding is
 * the mode's name in deployments.mode and a JSON object in
 * deployments.config:
 *   {"limits":{"memory_mb":N,"cpu_ms":N,"wall_ms":N},"env":{NAME:VALUE,...},
 *    "outbound":[PATTERN,...],"assets":HASH or null}
 * as every earlier version wrote it, so that databases need no migration. */
#include "store_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- The struct -------------------------------------------------------------- */

const char *store_mode_name(enum store_mode mode)
{
	switch (mode) {
	case STORE_MODE_HOSTCALL:
		return "hostcall";
	case STORE_MODE_CGI:
		return "cgi";
	case STORE_MODE_NONE:
		break;
	}
	return NULL;
}

enum store_mode store_mode_parse(const char *name)
{
	if (name && strcmp(name, "hostcall") == 0)
		return STORE_MODE_HOSTCALL;
	if (name && strcmp(name, "cgi") == 0)
		return STORE_MODE_CGI;
	return STORE_MODE_NONE;
}

void store_env_free(struct store_env_var *env, size_t n)
{
	for (size_t i = 0; env && i < n; i++) {
		free(env[i].name);
		free(env[i].value);
	}
	free(env);
}

void store_deploy_config_clear(struct store_deploy_config *c)
{
	if (!c)
		return;
	store_env_free(c->env, c->n_env);
	for (size_t i = 0; c->outbound && i < c->n_outbound; i++)
		free(c->outbound[i]);
	free(c->outbound);
	free(c->assets);
	memset(c, 0, sizeof(*c));
}

/* Appends name=value to the array *env of *n entries. */
static enum viv_err env_push(struct store_env_var **env, size_t *n, const char *name,
                             const char *value)
{
	struct store_env_var *grown;
	char *nc, *vc;

	if (!name || !value)
		return VIV_ERR_INVALID;
	grown = realloc(*env, (*n + 1) * sizeof(**env));
	if (!grown)
		return VIV_ERR_NOMEM;
	*env = grown;
	nc = strdup(name);
	vc = strdup(value);
	if (!nc || !vc) {
		free(nc);
		free(vc);
		return VIV_ERR_NOMEM;
	}
	grown[*n].name = nc;
	grown[*n].value = vc;
	(*n)++;
	return VIV_OK;
}

enum viv_err store_deploy_config_add_env(struct store_deploy_config *c, const char *name,
                                         const char *value)
{
	return env_push(&c->env, &c->n_env, name, value);
}

enum viv_err store_deploy_config_add_outbound(struct store_deploy_config *c, const char *pattern)
{
	char **grown, *copy;

	if (!pattern)
		return VIV_ERR_INVALID;
	grown = realloc(c->outbound, (c->n_outbound + 1) * sizeof(*c->outbound));
	if (!grown)
		return VIV_ERR_NOMEM;
	c->outbound = grown;
	copy = strdup(pattern);
	if (!copy)
		return VIV_ERR_NOMEM;
	grown[c->n_outbound++] = copy;
	return VIV_OK;
}

const char *store_deploy_config_env(const struct store_deploy_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_env; i++) {
		if (strcmp(c->env[i].name, name) == 0)
			return c->env[i].value;
	}
	return NULL;
}

enum viv_err store_deploy_config_copy(struct store_deploy_config *dst,
                                      const struct store_deploy_config *src)
{
	enum viv_err err = VIV_OK;

	memset(dst, 0, sizeof(*dst));
	dst->mode = src->mode;
	dst->limits = src->limits;
	for (size_t i = 0; !err && i < src->n_env; i++)
		err = store_deploy_config_add_env(dst, src->env[i].name, src->env[i].value);
	for (size_t i = 0; !err && i < src->n_outbound; i++)
		err = store_deploy_config_add_outbound(dst, src->outbound[i]);
	if (!err && src->assets) {
		dst->assets = strdup(src->assets);
		if (!dst->assets)
			err = VIV_ERR_NOMEM;
	}
	return err;
}

void store_deploy_config_defaults(struct store_deploy_config *c)
{
	memset(c, 0, sizeof(*c));
	c->limits.memory_mb = VIV_LIMIT_MEMORY_MB_DEFAULT;
	c->limits.cpu_ms = VIV_LIMIT_CPU_MS_DEFAULT;
	c->limits.wall_ms = VIV_LIMIT_WALL_MS_DEFAULT;
}

bool store_deploy_config_valid(const struct store_deploy_config *c)
{
	if (!c || !store_mode_name(c->mode))
		return false;
	if ((c->n_env && !c->env) || (c->n_outbound && !c->outbound))
		return false;
	for (size_t i = 0; i < c->n_env; i++) {
		if (!c->env[i].name || !c->env[i].name[0] || !c->env[i].value)
			return false;
	}
	for (size_t i = 0; i < c->n_outbound; i++) {
		if (!c->outbound[i])
			return false;
	}
	return !c->assets || viv_hex64_valid(c->assets);
}

/* ---- The encoding ------------------------------------------------------------ */

enum viv_err store_deploy_config_encode(const struct store_deploy_config *c, char **out)
{
	json_t *root, *env, *outbound, *assets;
	enum viv_err err = VIV_ERR_NOMEM;

	*out = NULL;
	env = json_object();
	outbound = json_array();
	assets = c->assets ? json_string(c->assets) : json_null();
	root = json_pack("{s:{s:I,s:I,s:I},s:o,s:o,s:o}", "limits", "memory_mb",
	                 (json_int_t)c->limits.memory_mb, "cpu_ms", (json_int_t)c->limits.cpu_ms,
	                 "wall_ms", (json_int_t)c->limits.wall_ms, "env", env, "outbound", outbound,
	                 "assets", assets);
	/* json_pack's "o" took the references, whatever the result. */
	if (!root)
		return VIV_ERR_NOMEM;
	for (size_t i = 0; i < c->n_env; i++) {
		if (json_object_set_new(env, c->env[i].name, json_string(c->env[i].value)) != 0)
			goto out;
	}
	for (size_t i = 0; i < c->n_outbound; i++) {
		if (json_array_append_new(outbound, json_string(c->outbound[i])) != 0)
			goto out;
	}
	*out = json_dumps(root, JSON_COMPACT);
	if (*out)
		err = VIV_OK;
out:
	json_decref(root);
	return err;
}

/* A limit as stored, or dflt when it is missing or out of range (as every
 * earlier runner read it). */
static uint32_t limit_of(json_t *limits, const char *key, uint32_t dflt)
{
	json_t *v = json_object_get(limits, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > UINT32_MAX)
		return dflt;
	return (uint32_t)json_integer_value(v);
}

/* The string members of a JSON object, in its order; others are passed
 * over. */
static enum viv_err env_from_object(json_t *obj, struct store_env_var **env, size_t *n)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		enum viv_err err;

		if (!json_is_string(v))
			continue;
		err = env_push(env, n, key, json_string_value(v));
		if (err)
			return err;
	}
	return VIV_OK;
}

enum viv_err store_deploy_config_decode(const char *mode, const char *json,
                                        struct store_deploy_config *out)
{
	json_t *root, *limits, *outbound, *assets;
	enum viv_err err;
	size_t i;

	store_deploy_config_defaults(out);
	out->mode = store_mode_parse(mode);
	if (!json || !*json)
		return VIV_OK;
	root = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return VIV_ERR_INVALID;
	}
	limits = json_object_get(root, "limits");
	out->limits.memory_mb = limit_of(limits, "memory_mb", VIV_LIMIT_MEMORY_MB_DEFAULT);
	out->limits.cpu_ms = limit_of(limits, "cpu_ms", VIV_LIMIT_CPU_MS_DEFAULT);
	out->limits.wall_ms = limit_of(limits, "wall_ms", VIV_LIMIT_WALL_MS_DEFAULT);
	err = env_from_object(json_object_get(root, "env"), &out->env, &out->n_env);
	outbound = json_object_get(root, "outbound");
	for (i = 0; !err && i < json_array_size(outbound); i++) {
		const char *pat = json_string_value(json_array_get(outbound, i));

		if (pat)
			err = store_deploy_config_add_outbound(out, pat);
	}
	assets = json_object_get(root, "assets");
	if (!err && json_is_string(assets) && viv_hex64_valid(json_string_value(assets))) {
		out->assets = strdup(json_string_value(assets));
		if (!out->assets)
			err = VIV_ERR_NOMEM;
	}
	json_decref(root);
	if (err)
		store_deploy_config_clear(out);
	return err;
}

enum viv_err store_deploy_config_read(int64_t deployment_id, const char *mode, const char *json,
                                      struct store_deploy_config *out)
{
	enum viv_err err = store_deploy_config_decode(mode, json, out);

	if (err == VIV_ERR_INVALID) {
		/* Served with the defaults rather than not at all. */
		viv_log(VIV_ERROR, "store: deployment %lld has a malformed configuration",
		        (long long)deployment_id);
		store_deploy_config_defaults(out);
		out->mode = store_mode_parse(mode);
		err = VIV_OK;
	}
	return err;
}

enum viv_err store_env_decode(const char *json, struct store_env_var **out, size_t *n_out)
{
	json_t *root;
	enum viv_err err;

	*out = NULL;
	*n_out = 0;
	if (!json || !*json)
		return VIV_OK;
	root = json_loads(json, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return VIV_ERR_INVALID;
	}
	err = env_from_object(root, out, n_out);
	json_decref(root);
	if (err) {
		store_env_free(*out, *n_out);
		*out = NULL;
		*n_out = 0;
	}
	return err;
}
