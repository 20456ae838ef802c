/* libFuzzer target for the WebAssembly reader (pipeline/wasm.c): each input
 * is a module as uploaded. It is parsed (pipe_wasm_parse()), checked for
 * its mode and imports (pipe_wasm_check()), given its memory and table
 * (pipe_wasm_expose(), whose output must parse again with the same imports
 * and one or two more exports), and read as a relocatable object
 * (pipe_wasm_object_defines()). Every refusal has a sentence; nothing reads
 * past the input, which sits in a buffer of exactly its size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_wasm: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"main", "run", "_start", NULL};
	struct pipe_wasm_info *w = NULL, *w2 = NULL;
	enum viv_guest_mode mode;
	char err[512] = "", *bytes = malloc(size ? size : 1), *out = NULL, text[256];
	size_t out_len = 0;
	unsigned added = 0;
	bool found[3];
	enum viv_err e;

	memcpy(bytes, data, size);
	e = pipe_wasm_parse(bytes, size, &w, err, sizeof(err));
	if (e) {
		check(w == NULL && err[0], "a refusal without a sentence");
	} else {
		err[0] = '\0';
		if (pipe_wasm_check(w, &mode, err, sizeof(err)) != VIV_OK)
			check(err[0] != '\0', "a check failed without a sentence");
		for (uint32_t i = 0; i < w->n_imports; i++)
			if (w->imports[i].type)
				pipe_wasm_type_text(w->imports[i].type, text, sizeof(text));
		for (uint32_t i = 0; i < w->n_exports; i++)
			pipe_wasm_export_find(w, w->exports[i].name, w->exports[i].kind);
		err[0] = '\0';
		e = pipe_wasm_expose(bytes, size, &out, &out_len, &added, err, sizeof(err));
		if (e == VIV_OK && out) {
			e = pipe_wasm_parse(out, out_len, &w2, err, sizeof(err));
			check(e == VIV_OK, "the exposed module does not parse");
			check(w2->n_imports == w->n_imports, "exposing changed the imports");
			check(w2->n_exports > w->n_exports, "exposing added no export");
		}
	}
	if (pipe_wasm_object_defines(bytes, size, names, found, err, sizeof(err)) != VIV_OK)
		check(err[0] != '\0', "an object refused without a reason");
	pipe_wasm_free(w);
	pipe_wasm_free(w2);
	free(out);
	free(bytes);
	return 0;
}
