/* A parser of Server-Sent Events (text/event-stream), as the HTML standard
 * specifies the format, fed with whatever pieces the network delivers. */
#include <string.h>

#include "cli.h"

void cli_sse_init(struct cli_sse *p, cli_sse_fn fn, void *ctx)
{
	memset(p, 0, sizeof(*p));
	viv_buf_init(&p->line, CLI_SSE_LINE_MAX);
	viv_buf_init(&p->data, CLI_SSE_DATA_MAX);
	viv_buf_init(&p->type, CLI_SSE_FIELD_MAX);
	viv_buf_init(&p->id, CLI_SSE_FIELD_MAX);
	p->retry_ms = -1;
	p->fn = fn;
	p->ctx = ctx;
}

void cli_sse_free(struct cli_sse *p)
{
	viv_buf_free(&p->line);
	viv_buf_free(&p->data);
	viv_buf_free(&p->type);
	viv_buf_free(&p->id);
}

/* Replaces the contents of b with n bytes at v. A value past the field cap
 * is refused whole, leaving b as it was, rather than cut into a different
 * value. */
static enum viv_err set_field(struct viv_buf *b, const char *v, size_t n)
{
	if (b->cap && n > b->cap)
		return VIV_ERR_TOO_BIG;
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
	return viv_buf_append(b, v, n);
}

/* The blank line: hands the event over, then starts the next one. */
static enum viv_err dispatch(struct cli_sse *p)
{
	struct cli_sse_event ev;
	bool go_on = true;

	if (p->data.len > 0) {
		/* Each data line added a '\n'; the last one is not data. */
		p->data.data[--p->data.len] = '\0';
		ev.type = p->type.len > 0 ? p->type.data : "message";
		ev.data = p->data.data;
		ev.len = p->data.len;
		ev.id = p->id.data ? p->id.data : "";
		p->events++;
		go_on = p->fn(p->ctx, &ev);
	}
	set_field(&p->data, "", 0);
	set_field(&p->type, "", 0);
	return go_on ? VIV_OK : VIV_ERR_BUSY;
}

/* One complete line, without its end. */
static enum viv_err take_line(struct cli_sse *p, const char *line, size_t n)
{
	const char *colon, *value;
	size_t flen, vlen, i;
	long retry = 0;
	enum viv_err err;

	if (!p->started) {
		p->started = true;
		if (n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
			line += 3;
			n -= 3;
		}
	}
	if (n == 0)
		return dispatch(p);
	if (line[0] == ':') {
		p->comments++;
		return VIV_OK;
	}
	colon = memchr(line, ':', n);
	flen = colon ? (size_t)(colon - line) : n;
	value = colon ? colon + 1 : line + n;
	vlen = n - (size_t)(value - line);
	if (vlen > 0 && value[0] == ' ') {
		value++;
		vlen--;
	}
	if (flen == 5 && memcmp(line, "event", 5) == 0) {
		/* An overlong type matches nothing the client knows. */
		if (set_field(&p->type, value, vlen))
			set_field(&p->type, "?", 1);
		return VIV_OK;
	}
	if (flen == 4 && memcmp(line, "data", 4) == 0) {
		err = viv_buf_append(&p->data, value, vlen);
		if (!err)
			err = viv_buf_append(&p->data, "\n", 1);
		return err;
	}
	if (flen == 2 && memcmp(line, "id", 2) == 0) {
		if (memchr(value, '\0', vlen))
			return VIV_OK;
		return set_field(&p->id, value, vlen) == VIV_ERR_NOMEM ? VIV_ERR_NOMEM : VIV_OK;
	}
	if (flen == 5 && memcmp(line, "retry", 5) == 0) {
		for (i = 0; i < vlen && i < 9; i++) {
			if (value[i] < '0' || value[i] > '9')
				return VIV_OK;
			retry = retry * 10 + (value[i] - '0');
		}
		if (vlen > 0 && i == vlen)
			p->retry_ms = retry;
		return VIV_OK;
	}
	/* Other fields are ignored, as the standard says. */
	return VIV_OK;
}

enum viv_err cli_sse_feed(struct cli_sse *p, const char *buf, size_t n)
{
	const char *end = buf + n, *cr, *lf, *stop;
	enum viv_err err;

	while (buf < end) {
		if (p->after_cr) {
			/* CRLF is one line end, even split across two pieces. */
			p->after_cr = false;
			if (*buf == '\n') {
				buf++;
				continue;
			}
		}
		cr = memchr(buf, '\r', (size_t)(end - buf));
		lf = memchr(buf, '\n', cr ? (size_t)(cr - buf) : (size_t)(end - buf));
		stop = lf ? lf : cr;
		if (!stop)
			return viv_buf_append(&p->line, buf, (size_t)(end - buf));
		err = viv_buf_append(&p->line, buf, (size_t)(stop - buf));
		if (err)
			return err;
		p->after_cr = *stop == '\r';
		buf = stop + 1;
		err = take_line(p, p->line.data ? p->line.data : "", p->line.len);
		p->line.len = 0;
		if (err)
			return err;
	}
	return VIV_OK;
}
