/* viv kv, config and secret: an app's key-value data, settings and
 * secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Pages of keys that kv ls reads at most. */
#define CLI_KV_PAGES 1000

/* "/v1/apps/APP/KIND/KEY" with KEY percent-encoded, or NULL when memory
 * ran out (said on stderr). Caller frees with free(). */
static char *item_path(struct cli *c, const char *app, const char *kind, const char *key)
{
	char *esc = cli_escape(c, key, strlen(key)), *path = NULL;

	if (esc && asprintf(&path, "/v1/apps/%s/%s/%s", app, kind, esc) < 0)
		path = NULL;
	curl_free(esc);
	if (!path)
		fprintf(stderr, "viv: out of memory\n");
	return path;
}

/* Checks the app and the key or name arguments of a command. */
static bool args_ok(const struct cli_args *a, const char *what)
{
	if (!cli_app_ok(a->arg[0]))
		return false;
	if (a->argc > 1 && a->arg[1][0] == '\0') {
		fprintf(stderr, "viv: the %s is empty; give one\n", what);
		return false;
	}
	return true;
}

/* Prints text for a human: "KEY" as it shows safely. */
static void put_name(const char *s)
{
	cli_print_safe(stdout, s, strlen(s), false);
}

/* PUTs value (from the argument: text, @FILE or -) to path and reports
 * it; created and replaced complete "KEY ... in APP". */
static int put_value(struct cli *c, const char *path, const char *value, size_t len,
                     const char *created, const char *replaced, const struct cli_args *a)
{
	struct cli_request rq = {
	        .method = "PUT", .path = path, .body = value, .len = len, .has_body = true};
	struct cli_reply r = {0};
	char errbuf[1024];
	enum viv_err err;

	err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
	if (err)
		return cli_fail(err, errbuf);
	put_name(a->arg[1]);
	printf(" %s %s\n", r.status == 201 ? created : replaced, a->arg[0]);
	cli_reply_free(&r);
	return CLI_EXIT_OK;
}

/* DELETEs the item and reports it. */
static int delete_item(struct cli *c, const struct cli_args *a, const char *kind, const char *done)
{
	char errbuf[1024], *path;
	json_t *j = NULL;
	enum viv_err err;

	if (!args_ok(a, "name"))
		return CLI_EXIT_USAGE;
	path = item_path(c, a->arg[0], kind, a->arg[1]);
	if (!path)
		return CLI_EXIT_FAIL;
	err = cli_call(c, "DELETE", path, NULL, 0, &j, errbuf, sizeof(errbuf));
	free(path);
	json_decref(j);
	if (err)
		return cli_fail(err, errbuf);
	put_name(a->arg[1]);
	printf(" %s %s\n", done, a->arg[0]);
	return CLI_EXIT_OK;
}

/* Reads the VALUE argument and PUTs it to the item. */
static int set_item(struct cli *c, const struct cli_args *a, const char *kind, const char *created,
                    const char *replaced)
{
	char *value = NULL, *path = NULL;
	size_t len = 0;
	int ret = CLI_EXIT_FAIL;

	if (!args_ok(a, "key"))
		return CLI_EXIT_USAGE;
	if (cli_read_value(a->arg[2], &value, &len))
		return CLI_EXIT_FAIL;
	path = item_path(c, a->arg[0], kind, a->arg[1]);
	if (path)
		ret = put_value(c, path, value, len, created, replaced, a);
	free(path);
	free(value);
	return ret;
}

/* ---- kv ------------------------------------------------------------------------------------ */

/* Appends one page of keys to all and to the table. */
static enum viv_err add_keys(json_t *keys, json_t *all, struct cli_table *t)
{
	const char *row[2];
	char size[32];
	struct viv_buf shown;
	json_t *k;
	size_t i;
	enum viv_err err = VIV_OK;

	viv_buf_init(&shown, 0);
	json_array_foreach(keys, i, k)
	{
		shown.len = 0;
		if (cli_str(k, "key", NULL))
			err = viv_buf_printf(&shown, "%s", cli_str(k, "key", ""));
		else
			err = viv_buf_printf(&shown, "base64:%s", cli_str(k, "key_base64", "?"));
		snprintf(size, sizeof(size), "%lld",
		         (long long)json_integer_value(json_object_get(k, "size")));
		row[0] = shown.data;
		row[1] = size;
		if (!err)
			err = cli_table_add(t, row, NULL);
		if (!err && json_array_append(all, k))
			err = VIV_ERR_NOMEM;
		if (err)
			break;
	}
	viv_buf_free(&shown);
	return err;
}

/* Appends "&name=VALUE" to path with value percent-encoded. */
static enum viv_err add_query(struct cli *c, struct viv_buf *path, const char *name,
                              const char *value, size_t len)
{
	char *esc = cli_escape(c, value, len);
	enum viv_err err = esc ? viv_buf_printf(path, "&%s=%s", name, esc) : VIV_ERR_NOMEM;

	curl_free(esc);
	return err;
}

int cli_kv_ls(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"KEY", "SIZE", NULL};
	struct cli_request rq = {.method = "GET"};
	struct cli_reply r = {0};
	struct cli_table t;
	struct viv_buf path;
	json_t *all = json_array(), *keys, *next, *out = NULL;
	char errbuf[1024], *text;
	unsigned page;
	enum viv_err err = VIV_OK;
	int ret = CLI_EXIT_FAIL;

	if (!cli_app_ok(a->arg[0])) {
		json_decref(all);
		return CLI_EXIT_USAGE;
	}
	cli_table_init(&t, heads);
	viv_buf_init(&path, 0);
	for (page = 0; page < CLI_KV_PAGES; page++) {
		path.len = 0;
		err = viv_buf_printf(&path, "/v1/apps/%s/kv?limit=1000", a->arg[0]);
		if (!err && a->argc > 1)
			err = add_query(c, &path, "prefix", a->arg[1], strlen(a->arg[1]));
		next = r.json ? json_object_get(r.json, "next_after") : NULL;
		if (!err && json_is_string(next))
			err = add_query(c, &path, "after", json_string_value(next),
			                json_string_length(next));
		if (err || !all) {
			fprintf(stderr, "viv: out of memory\n");
			goto out;
		}
		cli_reply_free(&r);
		rq.path = path.data;
		err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
		if (err) {
			ret = cli_fail(err, errbuf);
			goto out;
		}
		keys = json_object_get(r.json, "keys");
		if (!json_is_array(keys)) {
			fprintf(stderr, "viv: the API's reply has no list of keys\n");
			goto out;
		}
		if (add_keys(keys, all, &t)) {
			fprintf(stderr, "viv: out of memory\n");
			goto out;
		}
		if (!json_is_string(json_object_get(r.json, "next_after")))
			break;
	}
	if (a->given & CLI_O_JSON) {
		/* Every page in one object of the API's own shape. */
		out = json_pack("{s:O,s:n}", "keys", all, "next_after");
		text = out ? json_dumps(out, JSON_COMPACT) : NULL;
		if (text)
			printf("%s\n", text);
		free(text);
		ret = text ? CLI_EXIT_OK : CLI_EXIT_FAIL;
		goto out;
	}
	if (t.nrows == 0) {
		printf("%s has no keys%s\n", a->arg[0], a->argc > 1 ? " with that prefix" : "");
		ret = CLI_EXIT_OK;
		goto out;
	}
	ret = cli_table_print(c, &t) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	json_decref(out);
	json_decref(all);
	cli_table_free(&t);
	viv_buf_free(&path);
	cli_reply_free(&r);
	return ret;
}

int cli_kv_get(struct cli *c, const struct cli_args *a)
{
	struct cli_request rq = {.method = "GET"};
	struct cli_reply r = {0};
	char errbuf[1024], *path;
	enum viv_err err;

	if (!args_ok(a, "key"))
		return CLI_EXIT_USAGE;
	path = item_path(c, a->arg[0], "kv", a->arg[1]);
	if (!path)
		return CLI_EXIT_FAIL;
	rq.path = path;
	err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
	free(path);
	if (err)
		return cli_fail(err, errbuf);
	if (c->tty) {
		/* A value is bytes; a terminal gets them made safe to show. */
		cli_print_safe(stdout, r.body, r.len, true);
		if (r.len == 0 || r.body[r.len - 1] != '\n')
			fputc('\n', stdout);
	} else {
		fwrite(r.body, 1, r.len, stdout);
	}
	cli_reply_free(&r);
	return CLI_EXIT_OK;
}

int cli_kv_set(struct cli *c, const struct cli_args *a)
{
	return set_item(c, a, "kv", "created in", "replaced in");
}

int cli_kv_rm(struct cli *c, const struct cli_args *a)
{
	return delete_item(c, a, "kv", "removed from");
}

/* ---- config ------------------------------------------------------------------------------ */

/* GETs the app's settings; errors are printed, with *exit_out. */
static json_t *get_config(struct cli *c, const struct cli_args *a, struct cli_reply *r,
                          int *exit_out)
{
	struct cli_request rq = {.method = "GET"};
	char path[128], errbuf[1024];
	enum viv_err err;

	*exit_out = CLI_EXIT_FAIL;
	if (!cli_app_ok(a->arg[0])) {
		*exit_out = CLI_EXIT_USAGE;
		return NULL;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/config", a->arg[0]);
	rq.path = path;
	err = cli_send(c, &rq, r, errbuf, sizeof(errbuf));
	if (err) {
		*exit_out = cli_fail(err, errbuf);
		return NULL;
	}
	if (!json_is_object(json_object_get(r->json, "config"))) {
		fprintf(stderr, "viv: the API's reply has no settings\n");
		return NULL;
	}
	return r->json;
}

int cli_config_ls(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"KEY", "VALUE", "SOURCE", NULL};
	const char *row[3], *key;
	struct cli_reply r = {0};
	struct cli_table t;
	json_t *j, *v, *secrets;
	size_t i;
	int ret = CLI_EXIT_FAIL;

	cli_table_init(&t, heads);
	j = get_config(c, a, &r, &ret);
	if (!j)
		goto out;
	if (a->given & CLI_O_JSON) {
		cli_print_json(&r);
		ret = CLI_EXIT_OK;
		goto out;
	}
	ret = CLI_EXIT_FAIL;
	json_object_foreach(json_object_get(j, "config"), key, v)
	{
		row[0] = key;
		row[1] = json_is_string(v) ? json_string_value(v) : "?";
		row[2] = cli_str(json_object_get(j, "sources"), key, "-");
		if (cli_table_add(&t, row, NULL))
			goto out;
	}
	secrets = json_object_get(j, "secrets");
	json_array_foreach(secrets, i, v)
	{
		row[0] = json_is_string(v) ? json_string_value(v) : "?";
		row[1] = "(not shown)";
		row[2] = "secret";
		if (cli_table_add(&t, row, NULL))
			goto out;
	}
	if (t.nrows == 0) {
		printf("%s has no settings\n", a->arg[0]);
		ret = CLI_EXIT_OK;
		goto out;
	}
	ret = cli_table_print(c, &t) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	cli_table_free(&t);
	cli_reply_free(&r);
	return ret;
}

int cli_config_get(struct cli *c, const struct cli_args *a)
{
	struct cli_reply r = {0};
	const char *v;
	json_t *j, *s;
	size_t i;
	int ret = CLI_EXIT_FAIL;

	j = get_config(c, a, &r, &ret);
	if (!j)
		goto out;
	v = cli_str(json_object_get(j, "config"), a->arg[1], NULL);
	json_array_foreach(json_object_get(j, "secrets"), i, s)
	{
		if (json_is_string(s) && strcmp(json_string_value(s), a->arg[1]) == 0) {
			fprintf(stderr,
			        "viv: %s is a secret of %s, and no command shows a "
			        "secret's value\n",
			        a->arg[1], a->arg[0]);
			ret = CLI_EXIT_FAIL;
			goto out;
		}
	}
	if (!v) {
		fprintf(stderr, "viv: %s has no setting ", a->arg[0]);
		cli_print_safe(stderr, a->arg[1], strlen(a->arg[1]), false);
		fprintf(stderr, "; viv config %s ls lists them\n", a->arg[0]);
		ret = CLI_EXIT_NOT_FOUND;
		goto out;
	}
	if (c->tty)
		cli_print_safe(stdout, v, strlen(v), true);
	else
		fputs(v, stdout);
	fputc('\n', stdout);
	ret = CLI_EXIT_OK;
out:
	cli_reply_free(&r);
	return ret;
}

int cli_config_set(struct cli *c, const struct cli_args *a)
{
	return set_item(c, a, "config", "set for", "set for");
}

int cli_config_rm(struct cli *c, const struct cli_args *a)
{
	return delete_item(c, a, "config", "removed from the settings of");
}

/* ---- secret ------------------------------------------------------------------------------ */

int cli_secret_ls(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"NAME", "UPDATED", NULL};
	struct cli_reply r = {0};
	struct cli_table t;
	char path[128], when[64];
	const char *row[2];
	json_t *list, *s;
	size_t i;
	int ret = CLI_EXIT_FAIL;

	if (!cli_app_ok(a->arg[0]))
		return CLI_EXIT_USAGE;
	cli_table_init(&t, heads);
	snprintf(path, sizeof(path), "/v1/apps/%s/secrets", a->arg[0]);
	if (!cli_get_list(c, a, path, "secrets", "secrets", &r, &list, &ret))
		goto out;
	json_array_foreach(list, i, s)
	{
		cli_age_text(json_object_get(s, "updated_at"), viv_now_ms(), when, sizeof(when));
		row[0] = cli_str(s, "name", "?");
		row[1] = when;
		if (cli_table_add(&t, row, NULL))
			goto out;
	}
	if (t.nrows == 0) {
		printf("%s has no secrets\n", a->arg[0]);
		ret = CLI_EXIT_OK;
		goto out;
	}
	ret = cli_table_print(c, &t) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	cli_table_free(&t);
	cli_reply_free(&r);
	return ret;
}

int cli_secret_set(struct cli *c, const struct cli_args *a)
{
	char prompt[256], *value = NULL, *path = NULL;
	size_t len = 0;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	if (!args_ok(a, "name"))
		return CLI_EXIT_USAGE;
	if (a->argc > 2) {
		err = cli_read_value(a->arg[2], &value, &len);
	} else {
		snprintf(prompt, sizeof(prompt), "value of %.128s for %s (not shown): ", a->arg[1],
		         a->arg[0]);
		err = cli_read_secret(prompt, &value, &len);
	}
	if (err)
		goto out;
	if (len == 0) {
		fprintf(stderr, "viv: the value is empty; nothing was set\n");
		goto out;
	}
	path = item_path(c, a->arg[0], "secrets", a->arg[1]);
	if (path)
		ret = put_value(c, path, value, len, "set for", "set for", a);
out:
	/* The secret does not linger in memory that is freed. */
	if (value)
		explicit_bzero(value, len);
	free(value);
	free(path);
	return ret;
}

int cli_secret_rm(struct cli *c, const struct cli_args *a)
{
	return delete_item(c, a, "secrets", "removed from the secrets of");
}
