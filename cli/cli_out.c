/* What viv prints: text made safe for a terminal and measured in columns,
 * tables laid out to the terminal's width, colour only where it is wanted,
 * an upload's progress, sizes and times for humans. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- Characters ---------------------------------------------------------------- */

/* Decodes the well-formed UTF-8 character at p (left > 0 bytes): returns
 * its length and sets *cp, or returns 1 with *cp = -1 for a byte that
 * starts no well-formed character (overlong forms and surrogates too). */
static size_t utf8_next(const unsigned char *p, size_t left, long *cp)
{
	size_t n, i;
	long v, min;

	*cp = -1;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		v = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		v = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		v = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 1;
	}
	if (left < n)
		return 1;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 1;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 1;
	*cp = v;
	return n;
}

/* Columns a character takes: -1 for one that must not reach a terminal as
 * it is (controls, C1 controls that some terminals read as escapes, bidi
 * overrides that reorder what is shown, bytes that are not UTF-8), 0 for
 * combining marks, 2 for wide characters, else 1. */
static int char_cols(long cp)
{
	static const long wide[][2] = {
	        {0x1100, 0x115f},   {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},
	        {0x4e00, 0x9fff},   {0xa000, 0xa4cf},   {0xac00, 0xd7a3},   {0xf900, 0xfaff},
	        {0xfe30, 0xfe4f},   {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f300, 0x1f64f},
	        {0x1f900, 0x1f9ff}, {0x20000, 0x2fffd}, {0x30000, 0x3fffd},
	};
	size_t i;

	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029)
		return -1;
	if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) ||
	    (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe00 && cp <= 0xfe0f) || cp == 0xfeff)
		return 0;
	for (i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
		if (cp >= wide[i][0] && cp <= wide[i][1])
			return 2;
	}
	return 1;
}

void cli_print_safe(FILE *f, const char *text, size_t len, bool keep_newlines)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	size_t n;
	long cp;

	while (p < end) {
		n = utf8_next(p, (size_t)(end - p), &cp);
		if (cp == '\t' || (cp == '\n' && keep_newlines))
			fputc((int)cp, f);
		else if (char_cols(cp) < 0)
			fputc('?', f);
		else
			fwrite(p, 1, n, f);
		p += n;
	}
}

/* The columns of the character at p in a table cell, where tabs and line
 * ends become spaces: 1 for those and for what shows as '?'. */
static int cell_cols(long cp)
{
	int w;

	if (cp == '\t' || cp == '\n' || cp == '\r')
		return 1;
	w = char_cols(cp);
	return w < 0 ? 1 : w;
}

size_t cli_text_width(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t left = strlen(text), n, cols = 0;
	long cp;

	while (left > 0) {
		n = utf8_next(p, left, &cp);
		cols += (size_t)cell_cols(cp);
		p += n;
		left -= n;
	}
	return cols;
}

/* Appends the character at p as a cell shows it. */
static enum viv_err put_cell_char(struct viv_buf *out, const unsigned char *p, size_t n, long cp)
{
	if (cp == '\t' || cp == '\n' || cp == '\r')
		return viv_buf_append(out, " ", 1);
	if (char_cols(cp) < 0)
		return viv_buf_append(out, "?", 1);
	return viv_buf_append(out, p, n);
}

enum viv_err cli_cut(const char *text, size_t width, const char *ellipsis, struct viv_buf *out,
                     size_t *used)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t left = strlen(text), n, cols = 0, room;
	bool fits = cli_text_width(text) <= width;
	enum viv_err err = VIV_OK;
	long cp;
	int w;

	*used = 0;
	if (width == 0)
		return VIV_OK;
	room = fits ? width : width - 1;
	while (left > 0) {
		n = utf8_next(p, left, &cp);
		w = cell_cols(cp);
		if (cols + (size_t)w > room)
			break;
		err = put_cell_char(out, p, n, cp);
		if (err)
			return err;
		cols += (size_t)w;
		p += n;
		left -= n;
	}
	if (!fits) {
		err = viv_buf_append(out, ellipsis, strlen(ellipsis));
		cols++;
	}
	*used = cols;
	return err;
}

/* ---- Colour --------------------------------------------------------------------- */

enum cli_colour cli_status_colour(const char *status)
{
	if (!status)
		return CLI_DIM;
	if (strcmp(status, "ready") == 0 || strcmp(status, "serving") == 0)
		return CLI_GREEN;
	if (strcmp(status, "queued") == 0 || strcmp(status, "building") == 0)
		return CLI_YELLOW;
	if (strcmp(status, "failed") == 0)
		return CLI_RED;
	if (strcmp(status, "empty") == 0)
		return CLI_DIM;
	return CLI_PLAIN;
}

static const char *colour_code(enum cli_colour colour)
{
	switch (colour) {
	case CLI_GREEN:
		return "\x1b[32m";
	case CLI_YELLOW:
		return "\x1b[33m";
	case CLI_RED:
		return "\x1b[31m";
	case CLI_DIM:
		return "\x1b[2m";
	case CLI_BOLD:
		return "\x1b[1m";
	case CLI_PLAIN:
		break;
	}
	return "";
}

void cli_put_colour(FILE *f, bool on, enum cli_colour colour, const char *text)
{
	if (on && colour != CLI_PLAIN)
		fprintf(f, "%s%s\x1b[0m", colour_code(colour), text);
	else
		fputs(text, f);
}

bool cli_colour_wanted(bool tty, const char *no_color_env)
{
	/* no-color.org: any non-empty NO_COLOR turns colour off. */
	return tty && !(no_color_env && no_color_env[0]);
}

size_t cli_term_width(int fd, const char *columns_env)
{
	struct winsize ws;
	char *end;
	long v;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (columns_env && columns_env[0]) {
		v = strtol(columns_env, &end, 10);
		if (*end == '\0' && v > 0 && v <= 10000)
			return (size_t)v;
	}
	return CLI_WIDTH_DEFAULT;
}

const char *cli_ellipsis(const struct cli *c)
{
	return c->utf8 ? "\xe2\x80\xa6" : "~";
}

/* ---- Tables ---------------------------------------------------------------------- */

void cli_table_init(struct cli_table *t, const char *const *heads)
{
	memset(t, 0, sizeof(*t));
	while (t->ncols < CLI_TABLE_COLS && heads[t->ncols]) {
		t->heads[t->ncols] = heads[t->ncols];
		t->ncols++;
	}
}

enum viv_err cli_table_add(struct cli_table *t, const char *const *texts,
                           const enum cli_colour *colours)
{
	struct cli_cell *grown, *row;
	size_t i, alloc;

	if (t->nrows == t->alloc) {
		alloc = t->alloc ? t->alloc * 2 : 16;
		grown = realloc(t->cells, alloc * t->ncols * sizeof(*grown));
		if (!grown)
			return VIV_ERR_NOMEM;
		t->cells = grown;
		t->alloc = alloc;
	}
	row = t->cells + t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		row[i].text = strdup(texts[i] ? texts[i] : "-");
		row[i].colour = colours ? colours[i] : CLI_PLAIN;
		if (!row[i].text) {
			while (i-- > 0)
				free(row[i].text);
			return VIV_ERR_NOMEM;
		}
	}
	t->nrows++;
	return VIV_OK;
}

void cli_table_free(struct cli_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i].text);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->alloc = 0;
}

void cli_table_layout(const struct cli_table *t, size_t width, size_t *widths)
{
	size_t total = 0, i, r, w, widest, min;

	for (i = 0; i < t->ncols; i++) {
		widths[i] = cli_text_width(t->heads[i]);
		for (r = 0; r < t->nrows; r++) {
			w = cli_text_width(t->cells[r * t->ncols + i].text);
			if (w > widths[i])
				widths[i] = w;
		}
		total += widths[i] + (i > 0 ? 2 : 0);
	}
	/* Narrow the widest column by one until the rows fit; long names and
	 * addresses give way first, and short columns keep what they need. */
	while (total > width) {
		widest = t->ncols;
		for (i = 0; i < t->ncols; i++) {
			min = CLI_COL_MIN;
			if (widths[i] > min && (widest == t->ncols || widths[i] > widths[widest]))
				widest = i;
		}
		if (widest == t->ncols)
			break;
		widths[widest]--;
		total--;
	}
}

/* Appends one row (heads when cells is NULL) as a line. */
static enum viv_err render_row(const struct cli_table *t, const struct cli_cell *cells,
                               const size_t *widths, bool colour, const char *ellipsis,
                               struct viv_buf *out)
{
	const char *text;
	enum cli_colour col;
	size_t i, used, start = out->len;
	enum viv_err err = VIV_OK;

	for (i = 0; i < t->ncols && !err; i++) {
		text = cells ? cells[i].text : t->heads[i];
		col = cells ? cells[i].colour : CLI_BOLD;
		if (i > 0)
			err = viv_buf_append(out, "  ", 2);
		if (!err && colour && col != CLI_PLAIN && text[0])
			err = viv_buf_printf(out, "%s", colour_code(col));
		if (!err)
			err = cli_cut(text, widths[i], ellipsis, out, &used);
		if (!err && colour && col != CLI_PLAIN && text[0])
			err = viv_buf_append(out, "\x1b[0m", 4);
		while (!err && used < widths[i] && i + 1 < t->ncols) {
			err = viv_buf_append(out, " ", 1);
			used++;
		}
	}
	/* Padding before empty cells at the end would be trailing blanks. */
	while (!err && out->len > start && out->data[out->len - 1] == ' ')
		out->data[--out->len] = '\0';
	if (!err)
		err = viv_buf_append(out, "\n", 1);
	return err;
}

enum viv_err cli_table_render(const struct cli_table *t, size_t width, bool colour,
                              const char *ellipsis, struct viv_buf *out)
{
	size_t widths[CLI_TABLE_COLS], r;
	enum viv_err err;

	cli_table_layout(t, width, widths);
	err = render_row(t, NULL, widths, colour, ellipsis, out);
	for (r = 0; r < t->nrows && !err; r++)
		err = render_row(t, t->cells + r * t->ncols, widths, colour, ellipsis, out);
	return err;
}

enum viv_err cli_table_print(struct cli *c, const struct cli_table *t)
{
	struct viv_buf out;
	enum viv_err err;

	viv_buf_init(&out, 0);
	err = cli_table_render(t, c->width, c->colour, cli_ellipsis(c), &out);
	if (!err)
		fwrite(out.data, 1, out.len, stdout);
	else
		fprintf(stderr, "viv: out of memory\n");
	viv_buf_free(&out);
	return err;
}

/* ---- Numbers, times, sizes --------------------------------------------------------- */

void cli_size_text(uint64_t n, char *buf, size_t len)
{
	if (n < 1024)
		snprintf(buf, len, "%llu bytes", (unsigned long long)n);
	else if (n < (1u << 20))
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
}

void cli_progress_line(uint64_t done, uint64_t total, size_t width, char *buf, size_t len)
{
	char a[32], b[32], tail[96];
	size_t bar, fill, i, n;
	unsigned pct;

	if (done > total)
		done = total;
	pct = total ? (unsigned)(done * 100 / total) : 100;
	cli_size_text(done, a, sizeof(a));
	cli_size_text(total, b, sizeof(b));
	n = (size_t)snprintf(tail, sizeof(tail), " %3u%%  %s of %s", pct, a, b);
	/* Without room for a bar of ten, the figures alone. */
	if (width < n + 2 + 10 || len < n + 2 + 10 + 1) {
		snprintf(buf, len, "%s", tail + 1);
		return;
	}
	bar = width - n - 2 > 40 ? 40 : width - n - 2;
	if (bar + n + 3 > len)
		bar = len - n - 3;
	fill = total ? (size_t)((double)bar * (double)done / (double)total) : bar;
	buf[0] = '[';
	for (i = 0; i < bar; i++)
		buf[1 + i] = i < fill ? '#' : '.';
	buf[1 + bar] = ']';
	snprintf(buf + 2 + bar, len - 2 - bar, "%s", tail);
}

bool cli_parse_time(const char *s, int64_t *ms_out)
{
	struct tm tm = {0};
	int ms = 0;
	time_t t;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms_out = (int64_t)t * 1000 + ms;
	return true;
}

void cli_time_text(json_t *v, bool with_ms, char *buf, size_t len)
{
	struct tm tm;
	int64_t ms;
	time_t t;
	size_t n;

	if (!cli_parse_time(json_string_value(v), &ms)) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)(ms / 1000);
	localtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	if (with_ms && n > 0)
		snprintf(buf + n, len - n, ".%03d", (int)(ms % 1000));
}

void cli_age_text(json_t *v, int64_t now_ms, char *buf, size_t len)
{
	int64_t ms, secs;
	struct tm tm;
	time_t t;

	if (!cli_parse_time(json_string_value(v), &ms)) {
		snprintf(buf, len, "-");
		return;
	}
	secs = (now_ms - ms) / 1000;
	if (secs < 10)
		snprintf(buf, len, "just now");
	else if (secs < 60)
		snprintf(buf, len, "%lld s ago", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lld min ago", (long long)(secs / 60));
	else if (secs < 48 * 3600)
		snprintf(buf, len, "%lld h ago", (long long)(secs / 3600));
	else if (secs < 30 * 86400)
		snprintf(buf, len, "%lld days ago", (long long)(secs / 86400));
	else {
		t = (time_t)(ms / 1000);
		localtime_r(&t, &tm);
		strftime(buf, len, "%Y-%m-%d", &tm);
	}
}

const char *cli_str(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

void cli_first_line(const char *text, char *buf, size_t len)
{
	size_t n = strcspn(text, "\r\n");

	if (n >= len)
		n = len - 1;
	memcpy(buf, text, n);
	buf[n] = '\0';
}

void cli_print_json(const struct cli_reply *r)
{
	fwrite(r->body, 1, r->len, stdout);
	if (r->len == 0 || r->body[r->len - 1] != '\n')
		fputc('\n', stdout);
}

/* ---- Addresses ------------------------------------------------------------------- */

void cli_localhost_hint(const char *url)
{
	static const char suffix[] = ".localhost";
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256], port[8] = "80";
	const char *p, *end;
	size_t n, i;

	if (!url || strncmp(url, "http://", 7) != 0)
		return;
	p = url + 7;
	n = strcspn(p, ":/");
	if (n == 0 || n >= sizeof(host))
		return;
	memcpy(host, p, n);
	host[n] = '\0';
	for (i = 0; i < n; i++) {
		/* Only a host name goes into the shell line shown. */
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= '0' && host[i] <= '9') ||
		      host[i] == '-' || host[i] == '.'))
			return;
	}
	if (n <= sizeof(suffix) - 1 || strcmp(host + n - (sizeof(suffix) - 1), suffix) != 0)
		return;
	if (p[n] == ':') {
		end = p + n + 1;
		i = strspn(end, "0123456789");
		if (i == 0 || i >= sizeof(port))
			return;
		memcpy(port, end, i);
		port[i] = '\0';
	}
	if (getaddrinfo(host, port, &hints, &res) == 0) {
		freeaddrinfo(res);
		return;
	}
	fflush(stdout);
	fprintf(stderr,
	        "This machine's resolver cannot find %s (wget and Python use it); reach the "
	        "app with\n  curl -H 'Host: %s' http://127.0.0.1:%s/\nor start vivd with "
	        "--domain NAME, where NAME is a wildcard DNS name (*.NAME) for this machine.\n",
	        host, host, port);
}
