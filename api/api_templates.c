/* GET /v1/templates: the hello app of each language for the web page to
 * start from, read from the SDK's examples (cfg->sdk_dir/examples/
 * LANG-hello) on each request, and a WebAssembly text hello. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

/* Caps on what one example may bring: its tree is the platform's own, but a
 * template is a reply, and replies are bounded. */
#define TEMPLATE_FILES_MAX 32
#define TEMPLATE_FILE_MAX (64u << 10)
#define TEMPLATE_DEPTH_MAX 4

static const char wat_hello[] =
        ";; Hello, world! as a CGI program: what it writes to stdout is the response.\n"
        "(module\n"
        "  (import \"wasi_snapshot_preview1\" \"fd_write\"\n"
        "    (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
        "  (memory (export \"memory\") 1)\n"
        "  (data (i32.const 64) \"Content-Type: text/plain\\n\\nHello, world!\\n\")\n"
        "  (func (export \"_start\")\n"
        "    ;; One iovec at 0: the 40 bytes at 64.\n"
        "    (i32.store (i32.const 0) (i32.const 64))\n"
        "    (i32.store (i32.const 4) (i32.const 40))\n"
        "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))\n";

static const struct {
	const char *language;
	const char *title;
	const char *example; /* under examples/; NULL: built in */
} templates[] = {
        {"c", "C", "c-hello"},
        {"rust", "Rust", "rust-hello"},
        {"assemblyscript", "AssemblyScript", "assemblyscript-hello"},
        {"wat", "WebAssembly text", NULL},
};

static int cmp_path(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "path")),
	              json_string_value(json_object_get(*(json_t *const *)b, "path")));
}

/* Adds the regular files under the folder open at dir_fd (rel is its path in
 * the example, "" at the top) to files, leaving out READMEs, hidden files
 * and build output. Takes ownership of dir_fd. */
static enum viv_err add_tree(int dir_fd, const char *rel, int depth, json_t *files)
{
	enum viv_err err = VIV_OK;
	struct dirent *de;
	DIR *d;

	d = fdopendir(dir_fd);
	if (!d) {
		close(dir_fd);
		return VIV_ERR_IO;
	}
	while (!err && (de = readdir(d))) {
		char path[512], *text = NULL;
		struct stat sb;
		size_t len = 0;
		int fd;

		if (de->d_name[0] == '.' || strncmp(de->d_name, "README", 6) == 0 ||
		    strcmp(de->d_name, "target") == 0 || strcmp(de->d_name, "node_modules") == 0)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || fstat(fd, &sb) != 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (S_ISDIR(sb.st_mode) && depth < TEMPLATE_DEPTH_MAX) {
			err = add_tree(fd, path, depth + 1, files);
			continue;
		}
		if (!S_ISREG(sb.st_mode) || json_array_size(files) >= TEMPLATE_FILES_MAX) {
			close(fd);
			continue;
		}
		err = viv_read_fd(fd, TEMPLATE_FILE_MAX, &text, &len);
		close(fd);
		if (err == VIV_ERR_TOO_BIG) {
			err = VIV_OK;
			continue;
		}
		if (!err &&
		    json_array_append_new(files, json_pack("{s:s,s:o}", "path", path, "text",
		                                           api_json_textn(text, len))) != 0)
			err = VIV_ERR_NOMEM;
		free(text);
	}
	closedir(d);
	return err;
}

/* The files of an example, sorted by path; an empty array when the SDK has
 * no such example. New reference; NULL on failure. */
static json_t *example_files(const char *sdk_dir, const char *example)
{
	char path[4096];
	json_t *files = json_array(), **items;
	size_t n;
	int fd;

	if (!files || !sdk_dir)
		return files;
	snprintf(path, sizeof(path), "%s/examples/%s", sdk_dir, example);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return files;
	if (add_tree(fd, "", 0, files) != VIV_OK) {
		viv_log(VIV_WARN, "templates: cannot read %s", path);
		json_array_clear(files);
		return files;
	}
	n = json_array_size(files);
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		json_decref(files);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(files, i));
	qsort(items, n, sizeof(*items), cmp_path);
	json_array_clear(files);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(files, items[i]);
	free(items);
	return files;
}

enum MHD_Result api_get_templates(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < sizeof(templates) / sizeof(templates[0]); i++) {
		json_t *files =
		        templates[i].example
		                ? example_files(s->cfg->sdk_dir, templates[i].example)
		                : json_pack("[{s:s,s:s}]", "path", "hello.wat", "text", wat_hello);

		/* An SDK installed without an example has no template for it. */
		if (files && json_array_size(files) == 0) {
			json_decref(files);
			continue;
		}
		if (!files ||
		    json_array_append_new(
		            list, json_pack("{s:s,s:s,s:o}", "language", templates[i].language,
		                            "title", templates[i].title, "files", files)) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	return api_reply_json(c, r, MHD_HTTP_OK,
	                      list ? json_pack("{s:o}", "templates", list) : NULL);
}
