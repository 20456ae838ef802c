/* viv token: API tokens made, listed and revoked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The apps of a token as "a, b, c", or "-" (into b). */
static enum viv_err apps_text(json_t *apps, struct viv_buf *b)
{
	json_t *v;
	size_t i;
	enum viv_err err = VIV_OK;

	b->len = 0;
	json_array_foreach(apps, i, v)
	{
		err = viv_buf_printf(b, "%s%s", i ? ", " : "",
		                     json_is_string(v) ? json_string_value(v) : "?");
		if (err)
			return err;
	}
	return b->len ? VIV_OK : viv_buf_printf(b, "-");
}

int cli_token_create(struct cli *c, const struct cli_args *a)
{
	struct cli_request rq = {.method = "POST",
	                         .path = "/v1/tokens",
	                         .content_type = "application/json",
	                         .has_body = true};
	struct cli_reply r = {0};
	struct viv_buf apps;
	json_t *body = NULL, *list = NULL;
	char errbuf[1024], *text = NULL;
	const char *token;
	size_t i;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	viv_buf_init(&apps, 0);
	if (a->arg[0][0] == '\0') {
		fprintf(stderr, "viv: a token needs a name that says what it is for\n");
		return CLI_EXIT_USAGE;
	}
	for (i = 0; i < a->napps; i++) {
		if (!cli_app_ok(a->apps[i]))
			return CLI_EXIT_USAGE;
	}
	list = json_array();
	for (i = 0; list && i < a->napps; i++) {
		if (json_array_append_new(list, json_string(a->apps[i]))) {
			json_decref(list);
			list = NULL;
		}
	}
	if (list && a->napps > 0)
		body = json_pack("{s:s,s:s,s:O}", "name", a->arg[0], "scope", "apps", "apps", list);
	else if (list)
		body = json_pack("{s:s,s:s}", "name", a->arg[0], "scope", "admin");
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!text) {
		fprintf(stderr, "viv: the token's name must be UTF-8 text\n");
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	rq.body = text;
	rq.len = strlen(text);
	err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
	if (err) {
		ret = cli_fail(err, errbuf);
		goto out;
	}
	if (a->given & CLI_O_JSON) {
		cli_print_json(&r);
		ret = CLI_EXIT_OK;
		goto out;
	}
	token = cli_str(r.json, "token", NULL);
	if (!token || apps_text(json_object_get(r.json, "apps"), &apps)) {
		fprintf(stderr, "viv: the API made the token but did not show it\n");
		goto out;
	}
	/* The explanation goes to stderr, so that stdout is the token alone. */
	fprintf(stderr, "token %lld \"",
	        (long long)json_integer_value(json_object_get(r.json, "id")));
	cli_print_safe(stderr, cli_str(r.json, "name", "?"), strlen(cli_str(r.json, "name", "?")),
	               false);
	fprintf(stderr, "\" (%s%s%s) made; it is shown only now:\n", cli_str(r.json, "scope", "?"),
	        a->napps ? ": " : "", a->napps ? apps.data : "");
	printf("%s\n", token);
	ret = CLI_EXIT_OK;
out:
	viv_buf_free(&apps);
	free(text);
	json_decref(body);
	json_decref(list);
	cli_reply_free(&r);
	return ret;
}

int cli_token_ls(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"ID",      "NAME",      "SCOPE", "APPS",
	                                    "CREATED", "LAST USED", NULL};
	struct cli_reply r = {0};
	struct cli_table t;
	struct viv_buf apps;
	char id[32], made[64], used[64];
	const char *row[6];
	json_t *list, *tok;
	size_t i;
	int ret = CLI_EXIT_FAIL;

	cli_table_init(&t, heads);
	viv_buf_init(&apps, 0);
	if (!cli_get_list(c, a, "/v1/tokens", "tokens", "tokens", &r, &list, &ret))
		goto out;
	json_array_foreach(list, i, tok)
	{
		if (json_is_integer(json_object_get(tok, "id")))
			snprintf(id, sizeof(id), "%lld",
			         (long long)json_integer_value(json_object_get(tok, "id")));
		else
			snprintf(id, sizeof(id), "-");
		cli_age_text(json_object_get(tok, "created_at"), viv_now_ms(), made, sizeof(made));
		cli_age_text(json_object_get(tok, "last_used_at"), viv_now_ms(), used,
		             sizeof(used));
		if (strcmp(used, "-") == 0)
			snprintf(used, sizeof(used), "never");
		if (apps_text(json_object_get(tok, "apps"), &apps))
			goto out;
		row[0] = id;
		row[1] = cli_str(tok, "name", "?");
		row[2] = cli_str(tok, "scope", "?");
		row[3] = apps.data;
		row[4] = made;
		row[5] = used;
		if (cli_table_add(&t, row, NULL))
			goto out;
	}
	ret = cli_table_print(c, &t) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	viv_buf_free(&apps);
	cli_table_free(&t);
	cli_reply_free(&r);
	return ret;
}

int cli_token_revoke(struct cli *c, const struct cli_args *a)
{
	char path[64], errbuf[1024];
	json_t *j = NULL;
	long long id;
	enum viv_err err;

	if (!cli_id_ok(a->arg[0], &id)) {
		fprintf(stderr, "viv: \"%s\" is not a token id; viv token ls lists them\n",
		        a->arg[0]);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/tokens/%lld", id);
	err = cli_call(c, "DELETE", path, NULL, 0, &j, errbuf, sizeof(errbuf));
	json_decref(j);
	if (err)
		return cli_fail(err, errbuf);
	printf("token %lld revoked; it opens nothing any more\n", id);
	return CLI_EXIT_OK;
}
