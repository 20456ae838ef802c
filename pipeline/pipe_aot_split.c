/* A large module's C, compiled as several parts at once: wasm2c 1.0.32
 * writes one file, which one compiler process takes seconds over. */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * What wasm2c 1.0.32 writes for module "guest", top to bottom: includes,
 * macros and static inline helpers; the function type table
 * ("static u32 func_types[N];") and its initializer; a prototype for each
 * defined function ("static u32 w2c_f1(Z_guest_instance_t*, u32);"); globals,
 * data and element segments and their initializers; the definitions
 * ("static u32 w2c_f1(Z_guest_instance_t* instance, u32 w2c_p0) {" up to a
 * line that is "}"), one after another; then exports, instantiation and
 * freeing.
 *
 * Part 0 is all of it less the definitions that went to other parts; each
 * other part is the text up to the last prototype and its own definitions.
 * The functions' "static" becomes hidden visibility, so that parts can call
 * each other and the .so still exports only its contract, and the type
 * table becomes one hidden object that part 0 defines and the others
 * declare, since call_indirect checks against it. A definition that names one of the
 * segments (memory.init, table.init) stays in part 0, where they are. Any
 * other shape is left whole.
 *
 * Definitions are dealt out in order, in runs of about equal size, so that
 * a function's neighbours, often its callers and callees, stay in its
 * part: calls between parts cannot be inlined by the C compiler.
 */

#define FUNC_TYPES_DECL "static u32 func_types["
#define STATIC_KW "static "
/* What "static " becomes: the symbols stay inside the .so whatever the
 * AOT flags say about visibility. */
#define HIDDEN_KW "__attribute__((visibility(\"hidden\"))) "
#define SEGMENT_NAMES_MAX 4096

struct def {
	size_t first, last; /* line numbers */
	size_t bytes;
	unsigned part;
};

struct shape {
	struct pipe_line *lines;
	size_t n_lines;
	size_t func_types; /* line of the type table */
	size_t last_proto; /* line of the last prototype */
	struct def *defs;
	size_t n_defs;
	char **segments; /* names of the static objects between prototypes and definitions */
	size_t n_segments;
};

/* "static u32 func_types[N];" */
static bool func_types_line(const struct pipe_line *l)
{
	size_t i = strlen(FUNC_TYPES_DECL), digits = 0;

	if (!pipe_line_starts(l, FUNC_TYPES_DECL))
		return false;
	for (; i < l->n && l->p[i] >= '0' && l->p[i] <= '9'; i++)
		digits++;
	return digits > 0 && l->n - i == 2 && memcmp(l->p + i, "];", 2) == 0;
}

/* The name a top-level "static ... NAME[] = {" or "static ... NAME = ..."
 * line defines, or NULL (caller frees with free()). */
static char *object_name(const struct pipe_line *l)
{
	const char *eq, *end, *start;

	if (!pipe_line_starts(l, STATIC_KW) || memchr(l->p, '(', l->n))
		return NULL;
	eq = memmem(l->p, l->n, " =", 2);
	if (!eq)
		return NULL;
	end = eq;
	if (end - l->p >= 2 && end[-2] == '[' && end[-1] == ']')
		end -= 2;
	for (start = end; start > l->p && pipe_ident_char(start[-1]); start--)
		;
	if (start == end)
		return NULL;
	return strndup(start, (size_t)(end - start));
}

static void shape_free(struct shape *s)
{
	free(s->lines);
	free(s->defs);
	for (size_t i = 0; i < s->n_segments; i++)
		free(s->segments[i]);
	free(s->segments);
}

/* Reads the shape described above; VIV_ERR_UNSUPPORTED when the text has
 * another. */
static enum viv_err read_shape(const char *text, size_t len, struct shape *s)
{
	bool have_types = false, have_proto = false;
	size_t alloc = 0;
	enum viv_err e;

	memset(s, 0, sizeof(*s));
	e = pipe_lines_split(text, len, &s->lines, &s->n_lines);
	if (e)
		return e;
	for (size_t i = 0; i < s->n_lines; i++) {
		const struct pipe_line *l = &s->lines[i];
		size_t head_end;
		bool is_def;

		if (func_types_line(l)) {
			if (have_types || have_proto || s->n_defs)
				return VIV_ERR_UNSUPPORTED;
			have_types = true;
			s->func_types = i;
			continue;
		}
		if (!pipe_func_head(s->lines, s->n_lines, i, &is_def, &head_end))
			continue;
		if (!is_def) {
			if (s->n_defs || !have_types)
				return VIV_ERR_UNSUPPORTED;
			have_proto = true;
			s->last_proto = head_end;
			i = head_end;
			continue;
		}
		if (!have_proto)
			return VIV_ERR_UNSUPPORTED;
		/* Only blank lines between one definition and the next. */
		if (s->n_defs) {
			for (size_t j = s->defs[s->n_defs - 1].last + 1; j < i; j++) {
				if (s->lines[j].n)
					return VIV_ERR_UNSUPPORTED;
			}
		}
		if (s->n_defs == alloc) {
			size_t grow = alloc ? alloc * 2 : 256;
			struct def *d = realloc(s->defs, grow * sizeof(*d));
			if (!d)
				return VIV_ERR_NOMEM;
			s->defs = d;
			alloc = grow;
		}
		s->defs[s->n_defs].first = i;
		s->defs[s->n_defs].bytes = 0;
		s->defs[s->n_defs].part = 0;
		for (; i < s->n_lines; i++) {
			s->defs[s->n_defs].bytes += s->lines[i].n + 1;
			if (s->lines[i].n == 1 && s->lines[i].p[0] == '}')
				break;
			/* wasm2c indents every line of a body. */
			if (i > s->defs[s->n_defs].first && s->lines[i].n &&
			    s->lines[i].p[0] != ' ')
				return VIV_ERR_UNSUPPORTED;
		}
		if (i == s->n_lines)
			return VIV_ERR_UNSUPPORTED;
		s->defs[s->n_defs++].last = i;
	}
	if (s->n_defs < 2)
		return VIV_ERR_UNSUPPORTED;
	for (size_t i = s->last_proto + 1; i < s->defs[0].first; i++) {
		char *name = object_name(&s->lines[i]);

		if (!name)
			continue;
		if (s->n_segments == SEGMENT_NAMES_MAX) {
			free(name);
			return VIV_ERR_UNSUPPORTED;
		}
		if (!s->segments) {
			s->segments = calloc(SEGMENT_NAMES_MAX, sizeof(*s->segments));
			if (!s->segments) {
				free(name);
				return VIV_ERR_NOMEM;
			}
		}
		s->segments[s->n_segments++] = name;
	}
	return VIV_OK;
}

/* Whether the definition names one of the segments. */
static bool names_segment(const struct shape *s, const struct def *d)
{
	const char *p = s->lines[d->first].p;
	size_t n = (size_t)(s->lines[d->last].p - p) + s->lines[d->last].n;

	for (size_t i = 0; i < s->n_segments; i++) {
		if (memmem(p, n, s->segments[i], strlen(s->segments[i])))
			return true;
	}
	return false;
}

/* Deals the definitions out to parts by where their middle falls in the
 * whole, then numbers the parts that got any from 0 up; returns how many
 * there are. What only part 0 has (segments, initializers, exports) counts
 * at half its size, ahead of the definitions: measured on the
 * AssemblyScript hello (175 data segments), that evens out the two
 * compilers' times. */
static unsigned deal(struct shape *s, unsigned parts)
{
	unsigned number[PIPE_AOT_PARTS_MAX * 4] = {0}, used = 1;
	const char *text_end = s->lines[s->n_lines - 1].p + s->lines[s->n_lines - 1].n;
	size_t total = 0, done, own;

	if (parts > sizeof(number) / sizeof(number[0]))
		parts = sizeof(number) / sizeof(number[0]);
	for (size_t i = 0; i < s->n_defs; i++)
		total += s->defs[i].bytes;
	own = (size_t)(s->lines[s->defs[0].first].p - s->lines[s->last_proto].p) +
	      (size_t)(text_end - s->lines[s->defs[s->n_defs - 1].last].p);
	done = own / 2;
	total += done;
	for (size_t i = 0; i < s->n_defs; i++) {
		struct def *d = &s->defs[i];
		unsigned part = (unsigned)(((done + d->bytes / 2) * parts) / total);

		done += d->bytes;
		d->part = part < parts ? part : parts - 1;
		if (names_segment(s, d))
			d->part = 0;
	}
	/* Part 0 is always there: it is guest.c. */
	for (size_t i = 0; i < s->n_defs; i++) {
		struct def *d = &s->defs[i];

		if (d->part != 0 && number[d->part] == 0)
			number[d->part] = used++;
		d->part = number[d->part];
	}
	return used;
}

/* Appends line l, with HIDDEN_KW for "static " when it starts a function's
 * head. */
static enum viv_err put_line(struct viv_buf *b, const struct pipe_line *l)
{
	size_t skip = 0;
	enum viv_err e = VIV_OK;

	if (pipe_func_start(l)) {
		skip = strlen(STATIC_KW);
		e = viv_buf_append(b, HIDDEN_KW, strlen(HIDDEN_KW));
	}
	if (!e)
		e = viv_buf_append(b, l->p + skip, l->n - skip);
	if (!e)
		e = viv_buf_append(b, "\n", 1);
	return e;
}

/* The type table's line as part 0 (a definition) or another part (a
 * declaration) has it. */
static enum viv_err put_func_types(struct viv_buf *b, const struct pipe_line *l, bool define)
{
	size_t skip = strlen(STATIC_KW);

	return viv_buf_printf(b, "%s" HIDDEN_KW "%.*s\n", define ? "" : "extern ",
	                      (int)(l->n - skip), l->p + skip);
}

static enum viv_err write_main(const struct shape *s, struct viv_buf *b)
{
	size_t d = 0;
	enum viv_err e = VIV_OK;

	for (size_t i = 0; !e && i < s->n_lines; i++) {
		if (d < s->n_defs && i == s->defs[d].first && s->defs[d].part != 0) {
			i = s->defs[d].last;
			d++;
			continue;
		}
		if (d < s->n_defs && i == s->defs[d].last)
			d++;
		if (i == s->func_types)
			e = put_func_types(b, &s->lines[i], true);
		else
			e = put_line(b, &s->lines[i]);
	}
	return e;
}

static enum viv_err write_part(const struct shape *s, unsigned part, struct viv_buf *b)
{
	enum viv_err e =
	        viv_buf_printf(b, "/* Part %u of the module, split by Vivarium. */\n", part);

	for (size_t i = 0; !e && i <= s->last_proto; i++) {
		if (i == s->func_types)
			e = put_func_types(b, &s->lines[i], false);
		else
			e = put_line(b, &s->lines[i]);
	}
	for (size_t d = 0; !e && d < s->n_defs; d++) {
		if (s->defs[d].part != part)
			continue;
		for (size_t i = s->defs[d].first; !e && i <= s->defs[d].last; i++)
			e = put_line(b, &s->lines[i]);
	}
	return e;
}

enum viv_err pipe_guest_split(const char *guest_c, size_t len, unsigned parts, char ***out,
                              size_t *n_out)
{
	struct shape s;
	struct viv_buf b;
	char **texts = NULL;
	enum viv_err e;

	*out = NULL;
	*n_out = 0;
	if (parts < 2)
		return VIV_ERR_INVALID;
	e = read_shape(guest_c, len, &s);
	if (e)
		goto out;
	if (s.n_defs < parts)
		parts = (unsigned)s.n_defs;
	parts = deal(&s, parts);
	if (parts < 2) {
		e = VIV_ERR_UNSUPPORTED;
		goto out;
	}
	texts = calloc(parts + 1, sizeof(*texts));
	if (!texts) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	for (unsigned p = 0; !e && p < parts; p++) {
		viv_buf_init(&b, 0);
		e = p == 0 ? write_main(&s, &b) : write_part(&s, p, &b);
		if (!e) {
			texts[p] = viv_buf_steal(&b);
			if (!texts[p])
				e = VIV_ERR_NOMEM;
		}
		viv_buf_free(&b);
	}
	if (e)
		goto out;
	*out = texts;
	*n_out = parts;
	texts = NULL;
out:
	pipe_strv_free(texts, parts);
	shape_free(&s);
	return e;
}

unsigned pipe_guest_parts(const struct pipe_config *cfg, size_t guest_c_len)
{
	size_t per = cfg->aot_part_bytes ? cfg->aot_part_bytes : PIPE_AOT_PART_BYTES;
	size_t parts = guest_c_len / per;

	if (parts > cfg->aot_parts_max)
		parts = cfg->aot_parts_max;
	return parts < 1 ? 1 : (unsigned)parts;
}

/* ---- Compiling the parts ---------------------------------------------------------------- */

/* The compile command of one part: the AOT flags without -shared, which is
 * the link's. Caller frees the array with free(); the strings are t's, src's
 * and obj's. */
static const char **compile_argv(const struct pipe_tools *t, const char *inc, const char *src,
                                 const char *obj)
{
	size_t n = 0, k = 0;
	const char **argv;

	while (t->cflags[n])
		n++;
	argv = calloc(n + 9, sizeof(*argv));
	if (!argv)
		return NULL;
	argv[k++] = t->cc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t->cflags[i], "-shared") != 0)
			argv[k++] = t->cflags[i];
	}
	argv[k++] = "-I.";
	argv[k++] = inc;
	argv[k++] = "-c";
	argv[k++] = src;
	argv[k++] = "-o";
	argv[k++] = obj;
	return argv;
}

/* Writes the parts: guest_partK.c first, guest.c last, so that a failure
 * before the end leaves guest.c whole. */
static enum viv_err write_parts(const char *dir, char **texts, size_t n)
{
	enum viv_err e = VIV_OK;

	for (size_t k = n; !e && k-- > 0;) {
		char name[64], *path;

		if (k == 0)
			snprintf(name, sizeof(name), "guest.c");
		else
			snprintf(name, sizeof(name), "guest_part%zu.c", k);
		path = viv_path_join(dir, name);
		if (!path)
			return VIV_ERR_NOMEM;
		e = viv_write_file_atomic(path, texts[k], strlen(texts[k]), 0644);
		free(path);
	}
	return e;
}

enum viv_err pipe_cc_parts(struct pipe_ctx *ctx, const struct pipe_tools *t, unsigned parts,
                           char *err, size_t errlen)
{
	char *guest = NULL, *text = NULL, *inc = NULL, **texts = NULL;
	char **srcs = NULL, **objs = NULL;
	const char ***argvs = NULL;
	const char **link = NULL;
	const char *dir = ctx->scratch;
	size_t len = 0, n = 0, n_flags = 0, k = 0;
	char why[256];
	enum viv_err e;

	guest = viv_path_join(dir, "guest.c");
	if (!guest)
		return VIV_ERR_NOMEM;
	e = pipe_read_built(ctx, "guest.c", "wasm2c's guest.c", PIPE_GUEST_C_MAX, &text, &len, why,
	                    sizeof(why));
	if (e == VIV_ERR_TOO_BIG)
		e = VIV_ERR_UNSUPPORTED;
	else if (e)
		viv_errf(err, errlen, "%s", why);
	if (!e)
		e = pipe_guest_split(text, len, parts, &texts, &n);
	if (e)
		goto out;
	inc = pipe_include_flag(ctx);
	if (!inc) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	srcs = calloc(n, sizeof(*srcs));
	objs = calloc(n, sizeof(*objs));
	argvs = calloc(n, sizeof(*argvs));
	while (t->cflags[n_flags])
		n_flags++;
	link = calloc(n_flags + n + 4, sizeof(*link));
	if (!srcs || !objs || !argvs || !link) {
		e = VIV_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		/* Part 0 is compiled through glue.c, which includes guest.c. */
		if (i == 0) {
			srcs[i] = strdup("glue.c");
			objs[i] = strdup("glue.o");
		} else {
			if (asprintf(&srcs[i], "guest_part%zu.c", i) < 0)
				srcs[i] = NULL;
			if (asprintf(&objs[i], "guest_part%zu.o", i) < 0)
				objs[i] = NULL;
		}
		argvs[i] = srcs[i] && objs[i] ? compile_argv(t, inc, srcs[i], objs[i]) : NULL;
		if (!argvs[i]) {
			e = VIV_ERR_NOMEM;
			goto out;
		}
	}
	e = write_parts(dir, texts, n);
	if (e) {
		viv_errf(err, errlen, "could not write the module's C in parts: %s",
		         viv_strerror(e));
		goto out;
	}
	pipe_logf(ctx, "the module's C is %zu KiB: compiling it in %zu parts at once\n", len / 1024,
	          n);
	e = pipe_run_all(ctx, dir, (const char *const *const *)argvs, n, err, errlen);
	if (!e) {
		link[k++] = t->cc;
		for (size_t i = 0; i < n_flags; i++)
			link[k++] = t->cflags[i];
		for (size_t i = 0; i < n; i++)
			link[k++] = objs[i];
		link[k++] = "-o";
		link[k++] = "guest.so";
		e = pipe_run_ok(ctx, dir, link, err, errlen);
	}
	if (e == VIV_ERR_BUILD)
		viv_errf(err, errlen,
		         "compiling the module to native code failed; this is a bug in "
		         "Vivarium, please report it with the build log");
out:
	for (size_t i = 0; argvs && i < n; i++)
		free(argvs[i]);
	free(argvs);
	free(link);
	pipe_strv_free(srcs, n);
	pipe_strv_free(objs, n);
	pipe_strv_free(texts, n);
	free(inc);
	free(text);
	free(guest);
	return e;
}
