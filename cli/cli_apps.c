/* viv apps, deployments, rollback, rm and open: the apps and their
 * deployments. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* A deployment id member as text, or "-". */
static void id_text(json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}

/* ---- apps ---------------------------------------------------------------------------- */

int cli_apps(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"NAME", "STATE", "SERVING", "UPDATED", "URL", NULL};
	struct cli_reply r = {0};
	struct cli_table t;
	json_t *apps, *app;
	char dep[32], when[64];
	const char *row[5];
	enum cli_colour colours[5] = {CLI_PLAIN};
	int64_t now = viv_now_ms();
	size_t i;
	int ret = CLI_EXIT_FAIL;

	cli_table_init(&t, heads);
	if (!cli_get_list(c, a, "/v1/apps", "apps", "apps", &r, &apps, &ret))
		goto out;
	if (json_array_size(apps) == 0) {
		printf("no apps yet; deploy one with: viv deploy FOLDER\n");
		ret = CLI_EXIT_OK;
		goto out;
	}
	json_array_foreach(apps, i, app)
	{
		row[1] = cli_str(app, "state", NULL);
		if (!row[1])
			row[1] = json_is_integer(json_object_get(app, "current_deployment"))
			                 ? "serving"
			                 : "-";
		colours[1] = cli_status_colour(row[1]);
		id_text(json_object_get(app, "current_deployment"), dep, sizeof(dep));
		cli_age_text(json_object_get(app, "updated_at"), now, when, sizeof(when));
		if (strcmp(when, "-") == 0)
			cli_age_text(json_object_get(app, "created_at"), now, when, sizeof(when));
		row[0] = cli_str(app, "name", "?");
		row[2] = dep;
		row[3] = when;
		row[4] = cli_str(app, "url", "-");
		if (cli_table_add(&t, row, colours)) {
			fprintf(stderr, "viv: out of memory\n");
			goto out;
		}
	}
	ret = cli_table_print(c, &t) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	cli_table_free(&t);
	cli_reply_free(&r);
	return ret;
}

/* ---- deployments --------------------------------------------------------------------- */

int cli_deployments(struct cli *c, const struct cli_args *a)
{
	static const char *const heads[] = {"ID", "STATUS", "CREATED", "LANGUAGE",
	                                    "BY", "ERROR",  NULL};
	struct cli_reply r = {0};
	struct cli_table t;
	struct viv_buf path;
	json_t *deps, *d, *next;
	char id[32], when[64], status[48], error[256];
	const char *row[6], *st;
	enum cli_colour colours[6] = {CLI_PLAIN};
	enum viv_err err;
	int64_t now = viv_now_ms();
	size_t i;
	int ret = CLI_EXIT_FAIL;

	if (!cli_app_ok(a->arg[0]))
		return CLI_EXIT_USAGE;
	cli_table_init(&t, heads);
	viv_buf_init(&path, 256);
	err = viv_buf_printf(&path, "/v1/apps/%s/deployments", a->arg[0]);
	if (!err && (a->given & CLI_O_LIMIT))
		err = viv_buf_printf(&path, "?limit=%lld", a->limit);
	if (!err && (a->given & CLI_O_BEFORE))
		err = viv_buf_printf(&path, "%cbefore=%lld", a->given & CLI_O_LIMIT ? '&' : '?',
		                     a->before);
	if (err) {
		fprintf(stderr, "viv: %s\n", viv_strerror(err));
		goto out;
	}
	if (!cli_get_list(c, a, path.data, "deployments", "deployments", &r, &deps, &ret))
		goto out;
	if (json_array_size(deps) == 0) {
		printf("%s has no deployments%s\n", a->arg[0],
		       a->given & CLI_O_BEFORE ? " older than that" : "");
		ret = CLI_EXIT_OK;
		goto out;
	}
	json_array_foreach(deps, i, d)
	{
		st = cli_str(d, "status", "?");
		id_text(json_object_get(d, "id"), id, sizeof(id));
		cli_age_text(json_object_get(d, "created_at"), now, when, sizeof(when));
		snprintf(status, sizeof(status), "%s%s", st,
		         json_is_true(json_object_get(d, "current")) ? ", current" : "");
		cli_first_line(cli_str(d, "error", ""), error, sizeof(error));
		row[0] = id;
		row[1] = status;
		row[2] = when;
		row[3] = cli_str(d, "language", "-");
		row[4] = cli_str(d, "deployed_by", "-");
		row[5] = error;
		colours[1] = cli_status_colour(st);
		if (cli_table_add(&t, row, colours)) {
			fprintf(stderr, "viv: out of memory\n");
			goto out;
		}
	}
	if (cli_table_print(c, &t))
		goto out;
	next = json_object_get(r.json, "next_before");
	if (json_is_integer(next))
		printf("older ones: viv deployments %s --before %lld\n", a->arg[0],
		       (long long)json_integer_value(next));
	ret = CLI_EXIT_OK;
out:
	viv_buf_free(&path);
	cli_table_free(&t);
	cli_reply_free(&r);
	return ret;
}

/* ---- rollback ------------------------------------------------------------------------- */

int cli_rollback(struct cli *c, const struct cli_args *a)
{
	struct cli_request rq = {.method = "POST", .content_type = "application/json"};
	struct cli_reply r = {0};
	char path[128], body[64], errbuf[1024], now[32], before[32];
	long long id = 0;
	enum viv_err err;

	if (!cli_app_ok(a->arg[0]))
		return CLI_EXIT_USAGE;
	if (a->argc > 1 && !cli_id_ok(a->arg[1], &id)) {
		fprintf(stderr,
		        "viv: \"%s\" is not a deployment id; viv deployments %s lists "
		        "them\n",
		        a->arg[1], a->arg[0]);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/rollback", a->arg[0]);
	rq.path = path;
	if (id) {
		snprintf(body, sizeof(body), "{\"deployment\": %lld}", id);
		rq.body = body;
		rq.len = strlen(body);
		rq.has_body = true;
	}
	err = cli_send(c, &rq, &r, errbuf, sizeof(errbuf));
	if (err)
		return cli_fail(err, errbuf);
	id_text(json_object_get(r.json, "current_deployment"), now, sizeof(now));
	id_text(json_object_get(r.json, "previous_deployment"), before, sizeof(before));
	printf("%s now serves deployment %s (it served %s)\n", a->arg[0], now, before);
	cli_reply_free(&r);
	return CLI_EXIT_OK;
}

/* ---- rm ---------------------------------------------------------------------------------- */

int cli_rm(struct cli *c, const struct cli_args *a)
{
	const char *app = a->arg[0];
	char path[128], errbuf[1024], question[256];
	json_t *j = NULL;
	enum viv_err err;

	if (!cli_app_ok(app))
		return CLI_EXIT_USAGE;
	if (!(a->given & CLI_O_YES)) {
		if (!isatty(0)) {
			fprintf(stderr,
			        "viv: rm deletes %s with everything it holds; pass --yes "
			        "to do so without a terminal to ask on\n",
			        app);
			return CLI_EXIT_USAGE;
		}
		snprintf(question, sizeof(question),
		         "Delete the app %s with its deployments, KV data, settings, secrets "
		         "and logs? Type its name to confirm: ",
		         app);
		if (!cli_confirm(question, app)) {
			fprintf(stderr, "viv: %s was not deleted\n", app);
			return CLI_EXIT_FAIL;
		}
	}
	snprintf(path, sizeof(path), "/v1/apps/%s", app);
	err = cli_call(c, "DELETE", path, NULL, 0, &j, errbuf, sizeof(errbuf));
	if (err)
		return cli_fail(err, errbuf);
	printf("deleted %s: %lld deployment%s, %lld artifact%s removed from disk\n", app,
	       (long long)json_integer_value(json_object_get(j, "deployments")),
	       json_integer_value(json_object_get(j, "deployments")) == 1 ? "" : "s",
	       (long long)json_integer_value(json_object_get(j, "artifacts_removed")),
	       json_integer_value(json_object_get(j, "artifacts_removed")) == 1 ? "" : "s");
	json_decref(j);
	return CLI_EXIT_OK;
}

/* ---- open ----------------------------------------------------------------------------------- */

/* Opens url with xdg-open, its output kept off viv's stdout. */
static void open_in_browser(const char *url)
{
	const char *argv[] = {"xdg-open", url, NULL};
	posix_spawn_file_actions_t fa;
	int status = 0, rc;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, "xdg-open", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr,
		        "viv: cannot start xdg-open (%s); open the address above in a "
		        "browser\n",
		        strerror(rc));
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "viv: xdg-open could not open it; open the address above in a "
		                "browser\n");
}

int cli_open(struct cli *c, const struct cli_args *a)
{
	const char *app = a->arg[0], *url, *display = getenv("DISPLAY");
	const char *wayland = getenv("WAYLAND_DISPLAY");
	char path[128], errbuf[1024];
	json_t *j = NULL;
	enum viv_err err;
	int ret = CLI_EXIT_FAIL;

	if (!cli_app_ok(app))
		return CLI_EXIT_USAGE;
	snprintf(path, sizeof(path), "/v1/apps/%s", app);
	err = cli_call(c, "GET", path, NULL, 0, &j, errbuf, sizeof(errbuf));
	if (err)
		return cli_fail(err, errbuf);
	url = cli_str(j, "url", NULL);
	if (!url) {
		fprintf(stderr,
		        "viv: %s serves nothing yet (it is %s); viv deployments %s says "
		        "why\n",
		        app, cli_str(j, "state", "not serving"), app);
		goto out;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "viv: the API gave %s an address that is not http(s)\n", app);
		goto out;
	}
	printf("%s\n", url);
	cli_localhost_hint(url);
	fflush(stdout);
	if ((display && display[0]) || (wayland && wayland[0]))
		open_in_browser(url);
	ret = CLI_EXIT_OK;
out:
	json_decref(j);
	return ret;
}
