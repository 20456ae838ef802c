/* A small reader for the WebAssembly binary format: enough of it (types,
 * imports, functions, tables, memories, globals, exports) to decide how a
 * module is served and whether the platform provides what it imports.
 * Every read is bounds-checked; the input is hostile. */
#include "pipeline_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viv_imports.h"

#define NAME_LEN_MAX 4096
#define SHOWN_MAX 64

struct reader {
	const uint8_t *start;
	const uint8_t *p;
	const uint8_t *end;
	char *err;
	size_t errlen;
};

static enum viv_err fail(struct reader *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static enum viv_err fail(struct reader *r, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	viv_errf(r->err, r->errlen, "the module is not valid WebAssembly: at byte %zu, %s",
	         (size_t)(r->p - r->start), why);
	return VIV_ERR_INVALID;
}

static size_t left(const struct reader *r)
{
	return (size_t)(r->end - r->p);
}

static enum viv_err rd_u8(struct reader *r, uint8_t *out)
{
	*out = 0;
	if (r->p >= r->end)
		return fail(r, "the data ends early");
	*out = *r->p++;
	return VIV_OK;
}

/* Unsigned LEB128 of at most 32 bits: at most 5 bytes, and the last one
 * may not carry bits beyond the 32nd. */
static enum viv_err rd_u32(struct reader *r, uint32_t *out)
{
	int n = viv_leb_u32(r->p, left(r), out);

	if (n == 0) {
		r->p = r->end;
		return fail(r, "a number runs past the end");
	}
	if (n < 0) {
		r->p += 5;
		return fail(r, "a number does not fit in 32 bits");
	}
	r->p += n;
	return VIV_OK;
}

/* Skips a signed LEB128 of at most bits bits. */
static enum viv_err skip_sleb(struct reader *r, unsigned bits)
{
	unsigned max = (bits + 6) / 7;

	for (unsigned i = 0; i < max; i++) {
		if (r->p >= r->end)
			return fail(r, "a number runs past the end");
		if (!(*r->p++ & 0x80))
			return VIV_OK;
	}
	return fail(r, "a number is too long");
}

static enum viv_err rd_name(struct reader *r, char **out)
{
	uint32_t len;
	enum viv_err err;
	char *s;

	err = rd_u32(r, &len);
	if (err)
		return err;
	if (len > left(r))
		return fail(r, "a name of %u bytes runs past the end", len);
	if (len > NAME_LEN_MAX)
		return fail(r, "a name is longer than %d bytes", NAME_LEN_MAX);
	/* A NUL would make the C string differ from the wasm name. */
	if (memchr(r->p, '\0', len))
		return fail(r, "a name holds a NUL byte");
	s = malloc((size_t)len + 1);
	if (!s)
		return VIV_ERR_NOMEM;
	memcpy(s, r->p, len);
	s[len] = '\0';
	r->p += len;
	*out = s;
	return VIV_OK;
}

/* A count of items that each take at least one byte: more than the bytes
 * left is malformed, which also bounds what we allocate. */
static enum viv_err rd_count(struct reader *r, uint32_t *out)
{
	enum viv_err err = rd_u32(r, out);

	if (!err && *out > left(r))
		return fail(r, "a count of %u is larger than the data", *out);
	return err;
}

static enum viv_err rd_valtype(struct reader *r, char *out)
{
	uint8_t b;
	enum viv_err err = rd_u8(r, &b);

	if (err)
		return err;
	switch (b) {
	case 0x7f:
		*out = 'i';
		return VIV_OK;
	case 0x7e:
		*out = 'I';
		return VIV_OK;
	case 0x7d:
		*out = 'f';
		return VIV_OK;
	case 0x7c:
		*out = 'F';
		return VIV_OK;
	case 0x7b:
		*out = 'v';
		return VIV_OK;
	case 0x70:
		*out = 'r';
		return VIV_OK;
	case 0x6f:
		*out = 'e';
		return VIV_OK;
	}
	r->p--;
	return fail(r, "unknown value type 0x%02x", b);
}

static enum viv_err rd_limits(struct reader *r)
{
	uint8_t flags;
	uint32_t v;
	enum viv_err err = rd_u8(r, &flags);

	if (err)
		return err;
	if (flags > 1) {
		r->p--;
		return fail(r,
		            "limits with flags 0x%02x (shared or 64-bit memory), which "
		            "Vivarium does not support",
		            flags);
	}
	err = rd_u32(r, &v);
	if (!err && flags == 1)
		err = rd_u32(r, &v);
	return err;
}

static enum viv_err rd_reftype(struct reader *r)
{
	char t;
	enum viv_err err = rd_valtype(r, &t);

	if (!err && t != 'r' && t != 'e') {
		r->p--;
		return fail(r, "a table of a type other than funcref or externref");
	}
	return err;
}

/* A constant expression, as global initializers use. */
static enum viv_err skip_const_expr(struct reader *r)
{
	enum viv_err err;
	uint32_t idx;
	uint8_t op;
	char t;

	for (;;) {
		err = rd_u8(r, &op);
		if (err)
			return err;
		switch (op) {
		case 0x0b: /* end */
			return VIV_OK;
		case 0x41: /* i32.const */
			err = skip_sleb(r, 32);
			break;
		case 0x42: /* i64.const */
			err = skip_sleb(r, 64);
			break;
		case 0x43: /* f32.const */
			if (left(r) < 4)
				return fail(r, "a constant runs past the end");
			r->p += 4;
			break;
		case 0x44: /* f64.const */
			if (left(r) < 8)
				return fail(r, "a constant runs past the end");
			r->p += 8;
			break;
		case 0x23: /* global.get */
		case 0xd2: /* ref.func */
			err = rd_u32(r, &idx);
			break;
		case 0xd0: /* ref.null */
			err = rd_valtype(r, &t);
			break;
		default:
			r->p--;
			return fail(r, "unsupported instruction 0x%02x in a constant expression",
			            op);
		}
		if (err)
			return err;
	}
}

/* ---- Sections --------------------------------------------------------------------- */

/* n value types, one byte each, appended to sig at *k. */
static enum viv_err rd_valtypes(struct reader *r, uint32_t n, char *sig, size_t *k)
{
	enum viv_err err = VIV_OK;

	for (uint32_t j = 0; !err && j < n; j++)
		err = rd_valtype(r, &sig[(*k)++]);
	return err;
}

static enum viv_err sec_type(struct reader *r, struct pipe_wasm_info *w)
{
	uint32_t n, np, nr;
	enum viv_err err;

	err = rd_count(r, &n);
	if (err)
		return err;
	w->types = calloc((size_t)n + 1, sizeof(char *));
	if (!w->types)
		return VIV_ERR_NOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *params;
		uint8_t form;
		char *sig;
		size_t k = 0;

		err = rd_u8(r, &form);
		if (err)
			return err;
		if (form != 0x60) {
			r->p--;
			return fail(r, "type %u is not a function type (form 0x%02x)", i, form);
		}
		/* Value types are one byte each: look ahead for the result
		 * count so that sig is allocated at its exact size. */
		err = rd_count(r, &np);
		if (err)
			return err;
		params = r->p;
		r->p += np;
		err = rd_count(r, &nr);
		if (err)
			return err;
		sig = malloc((size_t)np + nr + 2);
		if (!sig)
			return VIV_ERR_NOMEM;
		w->types[i] = sig;
		w->n_types = i + 1;
		{
			const uint8_t *results = r->p;

			r->p = params;
			err = rd_valtypes(r, np, sig, &k);
			sig[k++] = ':';
			if (!err) {
				r->p = results;
				err = rd_valtypes(r, nr, sig, &k);
			}
		}
		if (err)
			return err;
		sig[k] = '\0';
	}
	return VIV_OK;
}

static enum viv_err push_func(struct reader *r, struct pipe_wasm_info *w, uint32_t type,
                              uint32_t *alloc)
{
	if (type >= w->n_types)
		return fail(r, "a function uses type %u, but there are %u types", type, w->n_types);
	if (w->n_funcs == UINT32_MAX)
		return fail(r, "too many functions");
	if (w->n_funcs >= *alloc) {
		uint32_t na = *alloc ? *alloc * 2 : 64;
		uint32_t *v = realloc(w->func_types, (size_t)na * sizeof(uint32_t));
		if (!v)
			return VIV_ERR_NOMEM;
		w->func_types = v;
		*alloc = na;
	}
	w->func_types[w->n_funcs++] = type;
	return VIV_OK;
}

static enum viv_err sec_import(struct reader *r, struct pipe_wasm_info *w, uint32_t *falloc)
{
	uint32_t n, idx;
	enum viv_err err;
	uint8_t kind, b;
	char t;

	err = rd_count(r, &n);
	if (err)
		return err;
	w->imports = calloc((size_t)n + 1, sizeof(*w->imports));
	if (!w->imports)
		return VIV_ERR_NOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct pipe_wasm_import *imp = &w->imports[i];

		w->n_imports = i + 1;
		err = rd_name(r, &imp->module);
		if (!err)
			err = rd_name(r, &imp->name);
		if (!err)
			err = rd_u8(r, &kind);
		if (err)
			return err;
		imp->kind = (enum pipe_wasm_kind)kind;
		switch (kind) {
		case PIPE_WASM_FUNC:
			err = rd_u32(r, &idx);
			if (!err)
				err = push_func(r, w, idx, falloc);
			if (!err)
				imp->type = w->types[idx];
			break;
		case PIPE_WASM_TABLE:
			err = rd_reftype(r);
			if (!err)
				err = rd_limits(r);
			w->n_tables++;
			break;
		case PIPE_WASM_MEMORY:
			err = rd_limits(r);
			w->n_memories++;
			break;
		case PIPE_WASM_GLOBAL:
			err = rd_valtype(r, &t);
			if (!err)
				err = rd_u8(r, &b);
			w->n_globals++;
			break;
		case PIPE_WASM_TAG:
			err = rd_u8(r, &b);
			if (!err)
				err = rd_u32(r, &idx);
			break;
		default:
			r->p--;
			return fail(r, "import %u has unknown kind 0x%02x", i, kind);
		}
		if (err)
			return err;
	}
	return VIV_OK;
}

static enum viv_err sec_function(struct reader *r, struct pipe_wasm_info *w, uint32_t *falloc)
{
	uint32_t n, idx;
	enum viv_err err;

	err = rd_count(r, &n);
	for (uint32_t i = 0; !err && i < n; i++) {
		err = rd_u32(r, &idx);
		if (!err)
			err = push_func(r, w, idx, falloc);
	}
	return err;
}

static enum viv_err sec_table(struct reader *r, struct pipe_wasm_info *w)
{
	uint32_t n;
	enum viv_err err = rd_count(r, &n);

	for (uint32_t i = 0; !err && i < n; i++) {
		err = rd_reftype(r);
		if (!err)
			err = rd_limits(r);
		w->n_tables++;
	}
	return err;
}

static enum viv_err sec_memory(struct reader *r, struct pipe_wasm_info *w)
{
	uint32_t n;
	enum viv_err err = rd_count(r, &n);

	for (uint32_t i = 0; !err && i < n; i++) {
		err = rd_limits(r);
		w->n_memories++;
	}
	return err;
}

static enum viv_err sec_global(struct reader *r, struct pipe_wasm_info *w)
{
	uint32_t n;
	uint8_t mut;
	char t;
	enum viv_err err = rd_count(r, &n);

	for (uint32_t i = 0; !err && i < n; i++) {
		err = rd_valtype(r, &t);
		if (!err)
			err = rd_u8(r, &mut);
		if (!err && mut > 1)
			err = fail(r, "global %u has mutability 0x%02x", i, mut);
		if (!err)
			err = skip_const_expr(r);
		w->n_globals++;
	}
	return err;
}

static enum viv_err sec_export(struct reader *r, struct pipe_wasm_info *w)
{
	uint32_t n, limit;
	enum viv_err err;
	uint8_t kind;

	err = rd_count(r, &n);
	if (err)
		return err;
	w->exports = calloc((size_t)n + 1, sizeof(*w->exports));
	if (!w->exports)
		return VIV_ERR_NOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct pipe_wasm_export *ex = &w->exports[i];

		w->n_exports = i + 1;
		err = rd_name(r, &ex->name);
		if (!err)
			err = rd_u8(r, &kind);
		if (!err)
			err = rd_u32(r, &ex->index);
		if (err)
			return err;
		ex->kind = (enum pipe_wasm_kind)kind;
		switch (kind) {
		case PIPE_WASM_FUNC:
			limit = w->n_funcs;
			break;
		case PIPE_WASM_TABLE:
			limit = w->n_tables;
			break;
		case PIPE_WASM_MEMORY:
			limit = w->n_memories;
			break;
		case PIPE_WASM_GLOBAL:
			limit = w->n_globals;
			break;
		case PIPE_WASM_TAG:
			limit = UINT32_MAX;
			break;
		default:
			return fail(r, "export %u has unknown kind 0x%02x", i, kind);
		}
		if (ex->index >= limit)
			return fail(r, "export %u refers to item %u, which does not exist", i,
			            ex->index);
		if (kind == PIPE_WASM_FUNC)
			ex->type = w->types[w->func_types[ex->index]];
	}
	return VIV_OK;
}

/* Where each known section may appear: the spec's order, with tag (13)
 * between memory and global and data count (12) before code. */
static int section_rank(uint8_t id)
{
	static const int rank[] = {
	        [1] = 1, [2] = 2, [3] = 3,  [4] = 4,   [5] = 5,   [13] = 6,  [6] = 7,
	        [7] = 8, [8] = 9, [9] = 10, [12] = 11, [10] = 12, [11] = 13,
	};
	return id < sizeof(rank) / sizeof(rank[0]) ? rank[id] : 0;
}

enum viv_err pipe_wasm_parse(const void *data, size_t len, struct pipe_wasm_info **out,
                             char *errbuf, size_t errlen)
{
	static const uint8_t magic[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
	struct reader r = {data, data, (const uint8_t *)data + len, errbuf, errlen};
	struct pipe_wasm_info *w;
	uint32_t falloc = 0;
	int last = 0;
	enum viv_err err = VIV_OK;

	*out = NULL;
	if (len < 8 || memcmp(data, magic, 4) != 0) {
		viv_errf(errbuf, errlen,
		         "the module is not a WebAssembly binary (no \\0asm at "
		         "its start)");
		return VIV_ERR_INVALID;
	}
	if (memcmp(data, magic, 8) != 0) {
		viv_errf(errbuf, errlen,
		         "the module is WebAssembly of a version other than 1, which Vivarium "
		         "does not support");
		return VIV_ERR_UNSUPPORTED;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return VIV_ERR_NOMEM;
	r.p += 8;
	while (!err && r.p < r.end) {
		struct reader s;
		uint8_t id;
		uint32_t size;
		int rank;

		err = rd_u8(&r, &id);
		if (!err)
			err = rd_u32(&r, &size);
		if (err)
			break;
		if (size > left(&r)) {
			err = fail(&r, "section %u of %u bytes runs past the end", id, size);
			break;
		}
		s = r;
		s.end = r.p + size;
		r.p += size;
		if (id == 0)
			continue;
		rank = section_rank(id);
		if (rank == 0) {
			err = fail(&s, "unknown section %u", id);
			break;
		}
		if (rank <= last) {
			err = fail(&s, "section %u is out of order or repeated", id);
			break;
		}
		last = rank;
		switch (id) {
		case 1:
			err = sec_type(&s, w);
			break;
		case 2:
			err = sec_import(&s, w, &falloc);
			break;
		case 3:
			err = sec_function(&s, w, &falloc);
			break;
		case 4:
			err = sec_table(&s, w);
			break;
		case 5:
			err = sec_memory(&s, w);
			break;
		case 6:
			err = sec_global(&s, w);
			break;
		case 7:
			err = sec_export(&s, w);
			break;
		default:
			/* Sections after the exports say nothing we need. */
			s.p = s.end;
			break;
		}
		if (!err && s.p != s.end)
			err = fail(&s, "section %u has %zu bytes left over", id, left(&s));
	}
	if (err) {
		pipe_wasm_free(w);
		return err;
	}
	*out = w;
	return VIV_OK;
}

void pipe_wasm_free(struct pipe_wasm_info *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->n_types; i++)
		free(w->types[i]);
	free(w->types);
	for (uint32_t i = 0; i < w->n_imports; i++) {
		free(w->imports[i].module);
		free(w->imports[i].name);
	}
	free(w->imports);
	for (uint32_t i = 0; i < w->n_exports; i++)
		free(w->exports[i].name);
	free(w->exports);
	free(w->func_types);
	free(w);
}

const struct pipe_wasm_export *pipe_wasm_export_find(const struct pipe_wasm_info *w,
                                                     const char *name, enum pipe_wasm_kind kind)
{
	for (uint32_t i = 0; i < w->n_exports; i++) {
		if (w->exports[i].kind == kind && strcmp(w->exports[i].name, name) == 0)
			return &w->exports[i];
	}
	return NULL;
}

/* ---- Types as text ---------------------------------------------------------------- */

static const char *valtype_name(char c)
{
	switch (c) {
	case 'i':
		return "i32";
	case 'I':
		return "i64";
	case 'f':
		return "f32";
	case 'F':
		return "f64";
	case 'v':
		return "v128";
	case 'r':
		return "funcref";
	case 'e':
		return "externref";
	}
	return "?";
}

static void append(char *buf, size_t len, size_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (*pos >= len)
		return;
	if (n > len - *pos - 1)
		n = len - *pos - 1;
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
}

void pipe_wasm_type_text(const char *type, char *buf, size_t len)
{
	const char *colon = strchr(type, ':');
	size_t pos = 0, np, nr;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (!colon)
		return;
	np = (size_t)(colon - type);
	nr = strlen(colon + 1);
	append(buf, len, &pos, "(");
	for (size_t i = 0; i < np; i++) {
		if (i)
			append(buf, len, &pos, ", ");
		append(buf, len, &pos, valtype_name(type[i]));
	}
	append(buf, len, &pos, ") -> ");
	if (nr == 1) {
		append(buf, len, &pos, valtype_name(colon[1]));
		return;
	}
	append(buf, len, &pos, "(");
	for (size_t i = 0; i < nr; i++) {
		if (i)
			append(buf, len, &pos, ", ");
		append(buf, len, &pos, valtype_name(colon[1 + i]));
	}
	append(buf, len, &pos, ")");
}

/* ---- Mode and imports --------------------------------------------------------------- */

/* A wasm name for a message: printable ASCII kept, anything else '?', cut
 * at SHOWN_MAX. */
static void shown(const char *name, char *buf, size_t len)
{
	size_t i, n = 0;

	for (i = 0; name[i] && n + 4 < len && i < SHOWN_MAX; i++) {
		unsigned char c = (unsigned char)name[i];
		buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (name[i] && n + 4 < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

static const char *kind_name(enum pipe_wasm_kind k)
{
	switch (k) {
	case PIPE_WASM_TABLE:
		return "a table";
	case PIPE_WASM_MEMORY:
		return "a memory";
	case PIPE_WASM_GLOBAL:
		return "a global";
	case PIPE_WASM_TAG:
		return "an exception tag";
	default:
		return "a function";
	}
}

static enum viv_err check_mode(const struct pipe_wasm_info *w, enum viv_guest_mode *mode,
                               char *errbuf, size_t errlen)
{
	const struct pipe_wasm_export *run = pipe_wasm_export_find(w, "run", PIPE_WASM_FUNC);
	const struct pipe_wasm_export *start = pipe_wasm_export_find(w, "_start", PIPE_WASM_FUNC);
	char t[128];

	if (run && strcmp(run->type, ":") == 0) {
		*mode = VIV_GUEST_HOSTCALL;
		return VIV_OK;
	}
	if (start && strcmp(start->type, ":") == 0) {
		*mode = VIV_GUEST_CGI;
		return VIV_OK;
	}
	if (run || start) {
		pipe_wasm_type_text(run ? run->type : start->type, t, sizeof(t));
		viv_errf(errbuf, errlen,
		         "the module exports %s with type %s, but it must take no parameters "
		         "and return nothing",
		         run ? "run" : "_start", t);
		return VIV_ERR_INVALID;
	}
	viv_errf(errbuf, errlen,
	         "the module exports neither a function run (a Terrarium-style handler) nor "
	         "_start (a WASI command, served as CGI); export one of them");
	return VIV_ERR_INVALID;
}

enum viv_err pipe_wasm_check(const struct pipe_wasm_info *w, enum viv_guest_mode *mode_out,
                             char *errbuf, size_t errlen)
{
	static const char head[] = "the module imports what Vivarium does not provide: ";
	enum viv_guest_mode mode = VIV_GUEST_CGI;
	struct viv_buf list;
	size_t bad = 0, listed = 0;
	enum viv_err err;

	err = check_mode(w, &mode, errbuf, errlen);
	if (err)
		return err;
	/* The sentence must fit the caller's buffer with room for "and N
	 * more", so the list is capped below it. */
	viv_buf_init(&list, errlen > sizeof(head) + 32 ? errlen - sizeof(head) - 32 : 1);
	for (uint32_t i = 0; i < w->n_imports; i++) {
		const struct pipe_wasm_import *imp = &w->imports[i];
		const struct viv_import *known = NULL;
		char mod[SHOWN_MAX + 8], name[SHOWN_MAX + 8], t[256], have[256], item[700];

		if (imp->kind == PIPE_WASM_FUNC) {
			known = viv_import_find(imp->module, imp->name);
			if (known && strcmp(known->type, imp->type) == 0)
				continue;
		}
		bad++;
		shown(imp->module, mod, sizeof(mod));
		shown(imp->name, name, sizeof(name));
		if (imp->kind != PIPE_WASM_FUNC) {
			snprintf(item, sizeof(item), "%s.%s (%s)", mod, name, kind_name(imp->kind));
		} else {
			pipe_wasm_type_text(imp->type, t, sizeof(t));
			if (known) {
				pipe_wasm_type_text(known->type, have, sizeof(have));
				snprintf(item, sizeof(item), "%s.%s %s (Vivarium's is %s)", mod,
				         name, t, have);
			} else {
				snprintf(item, sizeof(item), "%s.%s %s", mod, name, t);
			}
		}
		if (viv_buf_printf(&list, "%s%s", listed ? ", " : "", item) == VIV_OK)
			listed++;
	}
	if (bad > 0) {
		if (bad > listed)
			viv_errf(errbuf, errlen, "%s%s and %zu more", head,
			         list.data ? list.data : "", bad - listed);
		else
			viv_errf(errbuf, errlen, "%s%s", head, list.data);
		viv_buf_free(&list);
		return VIV_ERR_UNSUPPORTED;
	}
	viv_buf_free(&list);
	*mode_out = mode;
	return VIV_OK;
}

/* ---- Relocatable objects: what they define ------------------------------------------ */

/* The symbol table of clang's WebAssembly objects: the "linking" custom
 * section (version 2), subsection 8, as LLVM's object format documents it. */
#define LINKING_VERSION 2
#define LINKING_SYMBOL_TABLE 8
enum { SYM_FUNCTION, SYM_DATA, SYM_GLOBAL, SYM_SECTION, SYM_TAG, SYM_TABLE };
#define SYM_WEAK 0x01u
#define SYM_LOCAL 0x02u
#define SYM_UNDEFINED 0x10u
#define SYM_EXPLICIT_NAME 0x40u

/* A name read in place: symbol names (C++ ones above all) may be long, and
 * only a few are looked at. */
static enum viv_err rd_name_view(struct reader *r, const uint8_t **p, uint32_t *len)
{
	enum viv_err err = rd_u32(r, len);

	if (!err && *len > left(r))
		return fail(r, "a name of %u bytes runs past the end", *len);
	if (!err) {
		*p = r->p;
		r->p += *len;
	}
	return err;
}

static void mark_defined(const uint8_t *p, uint32_t len, const char *const *names, bool *found)
{
	for (size_t i = 0; names[i]; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0)
			found[i] = true;
	}
}

static enum viv_err symbol_table(struct reader *r, const char *const *names, bool *found)
{
	uint32_t n, flags, x;
	enum viv_err err = rd_count(r, &n);

	for (uint32_t i = 0; !err && i < n; i++) {
		const uint8_t *name = NULL;
		uint32_t name_len = 0;
		uint8_t kind;

		err = rd_u8(r, &kind);
		if (!err)
			err = rd_u32(r, &flags);
		if (err)
			break;
		switch (kind) {
		case SYM_FUNCTION:
		case SYM_GLOBAL:
		case SYM_TAG:
		case SYM_TABLE:
			err = rd_u32(r, &x);
			/* An undefined symbol takes its import's name unless it has its own. */
			if (!err && (!(flags & SYM_UNDEFINED) || (flags & SYM_EXPLICIT_NAME)))
				err = rd_name_view(r, &name, &name_len);
			break;
		case SYM_DATA:
			err = rd_name_view(r, &name, &name_len);
			/* Segment, offset and size of a defined one. */
			for (int k = 0; !err && !(flags & SYM_UNDEFINED) && k < 3; k++)
				err = rd_u32(r, &x);
			break;
		case SYM_SECTION:
			err = rd_u32(r, &x);
			break;
		default:
			err = fail(r, "symbol %u is of unknown kind %u", i, kind);
			break;
		}
		if (!err && name && kind == SYM_FUNCTION &&
		    !(flags & (SYM_UNDEFINED | SYM_LOCAL | SYM_WEAK)))
			mark_defined(name, name_len, names, found);
	}
	return err;
}

static enum viv_err linking_section(struct reader *r, const char *const *names, bool *found)
{
	uint32_t version;
	enum viv_err err = rd_u32(r, &version);

	if (!err && version != LINKING_VERSION)
		return fail(r, "the linking section is of version %u, not %d", version,
		            LINKING_VERSION);
	while (!err && r->p < r->end) {
		struct reader s;
		uint8_t type;
		uint32_t size;

		err = rd_u8(r, &type);
		if (!err)
			err = rd_u32(r, &size);
		if (!err && size > left(r))
			err = fail(r, "linking subsection %u runs past the end", type);
		if (err)
			break;
		s = *r;
		s.end = r->p + size;
		r->p += size;
		if (type == LINKING_SYMBOL_TABLE) {
			err = symbol_table(&s, names, found);
			if (!err && s.p != s.end)
				err = fail(&s, "the symbol table has %zu bytes left over",
				           left(&s));
		}
	}
	return err;
}

enum viv_err pipe_wasm_object_defines(const void *data, size_t len, const char *const *names,
                                      bool *found, char *errbuf, size_t errlen)
{
	static const uint8_t magic[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
	static const char linking[] = "linking";
	struct reader r = {data, data, (const uint8_t *)data + len, errbuf, errlen};
	bool seen = false;
	enum viv_err err = VIV_OK;

	for (size_t i = 0; names[i]; i++)
		found[i] = false;
	if (len < 8 || memcmp(data, magic, 8) != 0) {
		viv_errf(errbuf, errlen, "it is not a WebAssembly object file");
		return VIV_ERR_UNSUPPORTED;
	}
	r.p += 8;
	while (!err && r.p < r.end) {
		const uint8_t *name = NULL;
		struct reader s;
		uint32_t size, name_len = 0;
		uint8_t id;

		err = rd_u8(&r, &id);
		if (!err)
			err = rd_u32(&r, &size);
		if (!err && size > left(&r))
			err = fail(&r, "section %u of %u bytes runs past the end", id, size);
		if (err)
			break;
		s = r;
		s.end = r.p + size;
		r.p += size;
		if (id != 0)
			continue;
		err = rd_name_view(&s, &name, &name_len);
		if (err || name_len != sizeof(linking) - 1 || memcmp(name, linking, name_len))
			continue;
		seen = true;
		err = linking_section(&s, names, found);
	}
	if (!err && !seen) {
		viv_errf(errbuf, errlen,
		         "it is a linked module, not an object file (no linking "
		         "section)");
		err = VIV_ERR_INVALID;
	}
	return err;
}

/* ---- Showing the memory and the table to the optimizer ---------------------------- */

/* Unsigned LEB128 of v into out (at least 5 bytes); returns its length. */
static size_t leb_u32(uint32_t v, uint8_t *out)
{
	size_t n = 0;

	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		out[n++] = b | (v ? 0x80 : 0);
	} while (v);
	return n;
}

/* One export entry: name, kind, index 0. */
static enum viv_err put_export(struct viv_buf *b, const char *name, uint8_t kind)
{
	uint8_t leb[5];
	size_t n = leb_u32((uint32_t)strlen(name), leb);
	enum viv_err err = viv_buf_append(b, leb, n);

	if (!err)
		err = viv_buf_append(b, name, strlen(name));
	if (!err)
		err = viv_buf_append(b, &kind, 1);
	if (!err)
		err = viv_buf_append(b, "\0", 1);
	return err;
}

/* Whether the module exports its memory or table (kind) 0, by any name. */
static bool exports_index0(const struct pipe_wasm_info *w, enum pipe_wasm_kind kind)
{
	for (uint32_t i = 0; i < w->n_exports; i++) {
		if (w->exports[i].kind == kind && w->exports[i].index == 0)
			return true;
	}
	return false;
}

enum viv_err pipe_wasm_expose(const void *data, size_t len, char **out, size_t *len_out,
                              unsigned *added_out, char *errbuf, size_t errlen)
{
	const uint8_t *bytes = data;
	struct pipe_wasm_info *w = NULL;
	struct reader r = {data, data, (const uint8_t *)data + len, errbuf, errlen};
	const uint8_t *exp_start = NULL, *exp_end = NULL, *insert_at = NULL;
	struct viv_buf entries, b;
	uint32_t old_count = 0;
	unsigned added = 0;
	uint8_t leb[5];
	enum viv_err err;

	*out = NULL;
	*len_out = 0;
	*added_out = 0;
	err = pipe_wasm_parse(data, len, &w, errbuf, errlen);
	if (err)
		return err;
	viv_buf_init(&entries, 0);
	viv_buf_init(&b, 0);
	if (w->n_memories > 0 && !exports_index0(w, PIPE_WASM_MEMORY)) {
		err = put_export(&entries, PIPE_WASM_EXPOSED_MEMORY, PIPE_WASM_MEMORY);
		added |= PIPE_EXPOSED_MEMORY;
	}
	if (!err && w->n_tables > 0 && !exports_index0(w, PIPE_WASM_TABLE)) {
		err = put_export(&entries, PIPE_WASM_EXPOSED_TABLE, PIPE_WASM_TABLE);
		added |= PIPE_EXPOSED_TABLE;
	}
	pipe_wasm_free(w);
	if (err || added == 0)
		goto out;
	/* Where the export section is, or where one goes: before the first
	 * section that must come after it. The parse above checked the
	 * layout, so these reads cannot fail. */
	r.p += 8;
	while (r.p < r.end) {
		const uint8_t *head = r.p;
		uint8_t id;
		uint32_t size;

		rd_u8(&r, &id);
		rd_u32(&r, &size);
		if (id == 7) {
			struct reader s = {data, r.p, r.p + size, errbuf, errlen};
			exp_start = head;
			exp_end = r.p + size;
			rd_u32(&s, &old_count);
			err = viv_buf_append(&b, s.p, (size_t)(exp_end - s.p));
			if (err)
				goto out;
		} else if (!insert_at && !exp_start && id != 0 &&
		           section_rank(id) > section_rank(7)) {
			insert_at = head;
		}
		r.p += size;
	}
	/* b holds the old entries; the section is written whole below. */
	{
		struct viv_buf sec;
		size_t n;

		viv_buf_init(&sec, 0);
		n = leb_u32(old_count + (added & PIPE_EXPOSED_MEMORY ? 1 : 0) +
		                    (added & PIPE_EXPOSED_TABLE ? 1 : 0),
		            leb);
		err = viv_buf_append(&sec, leb, n);
		if (!err)
			err = viv_buf_append(&sec, b.data ? b.data : "", b.len);
		if (!err)
			err = viv_buf_append(&sec, entries.data, entries.len);
		viv_buf_free(&b);
		viv_buf_init(&b, 0);
		if (!err) {
			const uint8_t *cut = exp_start   ? exp_start
			                     : insert_at ? insert_at
			                                 : bytes + len;
			const uint8_t *resume = exp_start ? exp_end : cut;
			uint8_t id = 7;

			err = viv_buf_append(&b, bytes, (size_t)(cut - bytes));
			if (!err)
				err = viv_buf_append(&b, &id, 1);
			n = leb_u32((uint32_t)sec.len, leb);
			if (!err)
				err = viv_buf_append(&b, leb, n);
			if (!err)
				err = viv_buf_append(&b, sec.data, sec.len);
			if (!err)
				err = viv_buf_append(&b, resume, (size_t)(bytes + len - resume));
		}
		viv_buf_free(&sec);
	}
	if (!err) {
		*len_out = b.len;
		*out = viv_buf_steal(&b);
		*added_out = added;
		if (!*out)
			err = VIV_ERR_NOMEM;
	}
out:
	viv_buf_free(&entries);
	viv_buf_free(&b);
	return err;
}
