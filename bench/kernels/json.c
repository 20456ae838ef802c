/* Benchmark kernel: a recursive-descent parser for JSON text over a
 * generated document of about 32 MB (an array of records with strings,
 * escapes, integers, decimals, exponents, literals and nested values),
 * parsed PASSES times. It counts objects, arrays, numbers and strings and
 * sums the numbers, converting them itself; those figures are the check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#define DOC_BYTES ((size_t)32 << 20)
#define DOC_SLACK 4096 /* room for the last record and the closing bracket */
#define PASSES 5
#define DEPTH_MAX 64

/* ---- The document ------------------------------------------------------------ */

struct gen {
	char *p;
	uint64_t seed;
};

static unsigned pick(struct gen *g, unsigned n)
{
	return (unsigned)((kernel_rand(&g->seed) >> 32) % n);
}

static void put(struct gen *g, const char *s)
{
	size_t n = strlen(s);

	memcpy(g->p, s, n);
	g->p += n;
}

static void gen_string(struct gen *g)
{
	static const char letters[] =
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-";
	static const char *const escapes[] = {"\\\"", "\\\\", "\\n", "\\t", "\\u00e9", "\\/"};
	unsigned len = 3 + pick(g, 24);

	*g->p++ = '"';
	for (unsigned i = 0; i < len; i++) {
		if (pick(g, 32) == 0)
			put(g, escapes[pick(g, 6)]);
		else
			*g->p++ = letters[pick(g, sizeof(letters) - 1)];
	}
	*g->p++ = '"';
}

static void gen_number(struct gen *g)
{
	uint64_t r = kernel_rand(&g->seed);

	switch (pick(g, 4)) {
	case 0: /* a small integer */
		g->p += sprintf(g->p, "%d", (int)(r % 2000) - 1000);
		break;
	case 1: /* a large one */
		g->p += sprintf(g->p, "%llu", (unsigned long long)(r >> 16));
		break;
	case 2: /* a decimal */
		g->p += sprintf(g->p, "%s%u.%03u", r & 1 ? "-" : "", (unsigned)(r >> 8) % 100000,
		                (unsigned)(r >> 40) % 1000);
		break;
	default: /* with an exponent */
		g->p += sprintf(g->p, "%u.%02ue%s%u", (unsigned)(r >> 8) % 10,
		                (unsigned)(r >> 20) % 100, r & 2 ? "-" : "+",
		                (unsigned)(r >> 32) % 12);
		break;
	}
}

static void gen_value(struct gen *g, int depth);

static void gen_array(struct gen *g, int depth)
{
	unsigned n = pick(g, 6);

	*g->p++ = '[';
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			*g->p++ = ',';
		gen_value(g, depth + 1);
	}
	*g->p++ = ']';
}

static void gen_object(struct gen *g, int depth)
{
	unsigned n = 1 + pick(g, 5);

	put(g, "{\n");
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			put(g, ",\n");
		gen_string(g);
		put(g, ": ");
		gen_value(g, depth + 1);
	}
	put(g, "\n}");
}

static void gen_value(struct gen *g, int depth)
{
	unsigned k = pick(g, depth >= 4 ? 6 : 9);

	if (k < 2)
		gen_string(g);
	else if (k < 5)
		gen_number(g);
	else if (k == 5)
		put(g, (const char *const[]){"true", "false", "null"}[pick(g, 3)]);
	else if (k < 8)
		gen_array(g, depth);
	else
		gen_object(g, depth);
}

/* A top-level array of records until about DOC_BYTES; NUL-terminated. */
static char *generate(void)
{
	char *doc = malloc(DOC_BYTES + DOC_SLACK);
	struct gen g = {doc, 0x6a09e667f3bcc909ull};

	if (!doc)
		return NULL;
	put(&g, "[\n");
	for (int n = 0; (size_t)(g.p - doc) < DOC_BYTES; n++) {
		if (n > 0)
			put(&g, ",\n");
		g.p += sprintf(g.p, "{\"id\": %d, \"name\": ", n);
		gen_string(&g);
		put(&g, ", \"score\": ");
		gen_number(&g);
		put(&g, ", \"tags\": ");
		gen_array(&g, 2);
		put(&g, ", \"active\": ");
		put(&g, pick(&g, 2) ? "true" : "false");
		put(&g, ", \"extra\": ");
		gen_value(&g, 1);
		put(&g, "}");
	}
	put(&g, "\n]\n");
	*g.p = '\0';
	return doc;
}

/* ---- The parser ---------------------------------------------------------------- */

struct stats {
	uint64_t objects, arrays, numbers, strings, literals;
	double sum;
};

struct parser {
	const char *p;
	struct stats st;
};

static const double pow10_table[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static void skip_space(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')
		ps->p++;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_digit(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* At the opening quote; leaves p after the closing one. */
static int parse_string(struct parser *ps)
{
	const char *p = ps->p + 1;

	for (;;) {
		unsigned char c = (unsigned char)*p++;

		if (c == '"')
			break;
		if (c < 0x20)
			return 0;
		if (c != '\\')
			continue;
		c = (unsigned char)*p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++) {
				if (!hex_digit(*p++))
					return 0;
			}
		} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
			return 0;
		}
	}
	ps->p = p;
	ps->st.strings++;
	return 1;
}

/* Converts the number at p: at most 19 significant digits are kept, then
 * the decimal exponent is applied with exact powers of ten. */
static int parse_number(struct parser *ps)
{
	const char *p = ps->p;
	uint64_t mant = 0;
	int exp10 = 0, digits = 0, neg = 0;
	double v;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (!is_digit(*p))
		return 0;
	for (; is_digit(*p); p++) {
		if (digits < 19) {
			mant = mant * 10 + (uint64_t)(*p - '0');
			if (mant)
				digits++;
		} else {
			exp10++;
		}
	}
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return 0;
		for (; is_digit(*p); p++) {
			if (digits < 19) {
				mant = mant * 10 + (uint64_t)(*p - '0');
				exp10--;
				if (mant)
					digits++;
			}
		}
	}
	if (*p == 'e' || *p == 'E') {
		int eneg = 0, e = 0;

		p++;
		if (*p == '+' || *p == '-')
			eneg = *p++ == '-';
		if (!is_digit(*p))
			return 0;
		for (; is_digit(*p); p++) {
			if (e < 10000)
				e = e * 10 + (*p - '0');
		}
		exp10 += eneg ? -e : e;
	}
	v = (double)mant;
	for (; exp10 > 22; exp10 -= 22)
		v *= 1e22;
	for (; exp10 < -22; exp10 += 22)
		v /= 1e22;
	v = exp10 >= 0 ? v * pow10_table[exp10] : v / pow10_table[-exp10];
	ps->st.sum += neg ? -v : v;
	ps->st.numbers++;
	ps->p = p;
	return 1;
}

static int parse_literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(ps->p, word, n) != 0)
		return 0;
	ps->p += n;
	ps->st.literals++;
	return 1;
}

static int parse_value(struct parser *ps, int depth);

/* At '[' or '{'; leaves p after the closing bracket. */
static int parse_container(struct parser *ps, int depth, char close)
{
	if (depth >= DEPTH_MAX)
		return 0;
	ps->p++;
	skip_space(ps);
	if (*ps->p == close) {
		ps->p++;
		return 1;
	}
	for (;;) {
		if (close == '}') {
			if (*ps->p != '"' || !parse_string(ps))
				return 0;
			skip_space(ps);
			if (*ps->p++ != ':')
				return 0;
			skip_space(ps);
		}
		if (!parse_value(ps, depth + 1))
			return 0;
		skip_space(ps);
		if (*ps->p == ',') {
			ps->p++;
			skip_space(ps);
			continue;
		}
		if (*ps->p++ != close)
			return 0;
		return 1;
	}
}

static int parse_value(struct parser *ps, int depth)
{
	switch (*ps->p) {
	case '{':
		ps->st.objects++;
		return parse_container(ps, depth, '}');
	case '[':
		ps->st.arrays++;
		return parse_container(ps, depth, ']');
	case '"':
		return parse_string(ps);
	case 't':
		return parse_literal(ps, "true");
	case 'f':
		return parse_literal(ps, "false");
	case 'n':
		return parse_literal(ps, "null");
	default:
		return parse_number(ps);
	}
}

/* Parses one whole document into st; 0 when it is not JSON. */
static int parse_document(const char *doc, struct stats *st)
{
	struct parser ps = {doc, {0, 0, 0, 0, 0, 0}};

	skip_space(&ps);
	if (!parse_value(&ps, 0))
		return 0;
	skip_space(&ps);
	if (*ps.p != '\0')
		return 0;
	*st = ps.st;
	return 1;
}

int main(void)
{
	char *doc = generate(), check[160];
	struct stats st = {0, 0, 0, 0, 0, 0}, total = st;
	uint64_t t0, t1;
	int ok = doc != NULL;

	t0 = kernel_now_ns();
	for (int pass = 0; ok && pass < PASSES; pass++) {
		ok = parse_document(doc, &st);
		total.objects += st.objects;
		total.arrays += st.arrays;
		total.numbers += st.numbers;
		total.strings += st.strings;
		total.literals += st.literals;
		total.sum += st.sum;
	}
	t1 = kernel_now_ns();

	if (!ok) {
		printf("Status: 500\nContent-Type: text/plain\n\nthe document did not parse\n");
		return 1;
	}
	snprintf(check, sizeof(check), "o%llu/a%llu/n%llu/s%llu/l%llu/%.6e",
	         (unsigned long long)total.objects, (unsigned long long)total.arrays,
	         (unsigned long long)total.numbers, (unsigned long long)total.strings,
	         (unsigned long long)total.literals, total.sum);
	kernel_report("json", t1 - t0, check);
	free(doc);
	return 0;
}
