/* viv's own configuration: the file of "key = value" lines, where it lives,
 * and the precedence of flags, environment, file and local token file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Copies [p, p + n) into a new string, or NULL when memory ran out. */
static char *dup_span(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* Parses one line (without its end) numbered lineno into conf. */
static enum viv_err parse_line(const char *p, size_t n, unsigned lineno, const char *name,
                               struct cli_conf *conf, unsigned *seen, char *errbuf, size_t errlen)
{
	const char *eq, *key, *val;
	size_t klen, vlen, i;
	char **slot;
	unsigned *at;

	while (n > 0 && is_space(*p)) {
		p++;
		n--;
	}
	while (n > 0 && (is_space(p[n - 1]) || p[n - 1] == '\r'))
		n--;
	if (n == 0 || p[0] == '#')
		return VIV_OK;
	for (i = 0; i < n; i++) {
		if (p[i] == '\0' || ((unsigned char)p[i] < 0x20 && p[i] != '\t')) {
			viv_errf(errbuf, errlen,
			         "%s, line %u: a control character; the file is text, \"key = "
			         "value\" lines",
			         name, lineno);
			return VIV_ERR_INVALID;
		}
	}
	eq = memchr(p, '=', n);
	if (!eq) {
		viv_errf(errbuf, errlen,
		         "%s, line %u: expected \"key = value\" (the keys are api and token)", name,
		         lineno);
		return VIV_ERR_INVALID;
	}
	key = p;
	klen = (size_t)(eq - p);
	while (klen > 0 && is_space(key[klen - 1]))
		klen--;
	val = eq + 1;
	vlen = n - (size_t)(val - p);
	while (vlen > 0 && is_space(*val)) {
		val++;
		vlen--;
	}
	if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
		val++;
		vlen -= 2;
	}
	if (klen == 3 && memcmp(key, "api", 3) == 0) {
		slot = &conf->api;
		at = &seen[0];
	} else if (klen == 5 && memcmp(key, "token", 5) == 0) {
		slot = &conf->token;
		at = &seen[1];
	} else {
		viv_errf(errbuf, errlen,
		         "%s, line %u: unknown key \"%.*s\"; the keys are api and token", name,
		         lineno, (int)(klen < 64 ? klen : 64), key);
		return VIV_ERR_INVALID;
	}
	if (*at) {
		viv_errf(errbuf, errlen,
		         "%s, line %u: %.*s is set again (first on line %u); keep one", name,
		         lineno, (int)klen, key, *at);
		return VIV_ERR_INVALID;
	}
	if (vlen == 0) {
		viv_errf(errbuf, errlen,
		         "%s, line %u: %.*s has no value; give one or remove the line", name,
		         lineno, (int)klen, key);
		return VIV_ERR_INVALID;
	}
	*slot = dup_span(val, vlen);
	if (!*slot) {
		viv_errf(errbuf, errlen, "out of memory");
		return VIV_ERR_NOMEM;
	}
	*at = lineno;
	return VIV_OK;
}

enum viv_err cli_conf_parse(const char *text, size_t len, const char *name, struct cli_conf *out,
                            char *errbuf, size_t errlen)
{
	const char *p = text, *end = text + len, *nl;
	unsigned lineno = 0, seen[2] = {0, 0};
	enum viv_err err = VIV_OK;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		lineno++;
		err = parse_line(p, (size_t)(nl - p), lineno, name, out, seen, errbuf, errlen);
		if (err)
			break;
		p = nl + 1;
	}
	if (err)
		cli_conf_free(out);
	return err;
}

char *cli_conf_path(const char *xdg, const char *home)
{
	char *path = NULL;

	/* The XDG base directory rules ignore a relative XDG_CONFIG_HOME. */
	if (xdg && xdg[0] == '/') {
		if (asprintf(&path, "%s/viv/config", xdg) < 0)
			path = NULL;
	} else if (home && home[0]) {
		if (asprintf(&path, "%s/.config/viv/config", home) < 0)
			path = NULL;
	}
	return path;
}

void cli_conf_free(struct cli_conf *conf)
{
	if (!conf)
		return;
	free(conf->api);
	free(conf->token);
	conf->api = NULL;
	conf->token = NULL;
}

const char *cli_choose(const struct cli_choice *ch, const char **from)
{
	size_t i;

	for (i = 0; i < sizeof(ch->value) / sizeof(ch->value[0]); i++) {
		if (ch->value[i] && ch->value[i][0]) {
			*from = ch->from[i];
			return ch->value[i];
		}
	}
	*from = NULL;
	return NULL;
}
