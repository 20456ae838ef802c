/* Hostile uploads, made by the thousand, through pipe_unpack(): path tricks
 * (absolute, "..", long names, NUL bytes in names), links pointing out,
 * devices and FIFOs, bombs in every compression libarchive reads, lying
 * sizes, truncations, huge entry counts and random damage. After each one,
 * nothing outside the build folder changed (canary files and folders around
 * it are checked), the build folder holds only regular files and folders,
 * and an upload that was refused says why in a sentence; after all of
 * them, the process's peak memory grew by less than a bound. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "helpers.h"

#define MIB (1024u * 1024u)
/* The limits under test: small, so that bombs cost the test little. */
#define MAX_BYTES (16u * MIB)
#define MAX_ENTRIES 500u
/* How much resident memory one unpacking may add, at its peak. */
#define RSS_GROWTH_MAX_KIB (32L * 1024)

static char *work, *dest, *upload, *outside, *cwd;
static char abs_target[256];
static struct pipe_config cfg;

/* What happened to the uploads. */
static struct {
	size_t tried, refused, accepted;
	size_t by_kind[16];
	long peak_kib;      /* the most resident memory one unpacking added */
	bool peak_measured; /* /proc/self/clear_refs could reset the peak */
} tally;

/* A "Vm...: N kB" line of /proc/self/status, in KiB; 0 when absent. */
static long vm_kib(const char *field)
{
	char line[256];
	long kib = 0;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kib = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

/* Resets the peak resident memory (VmHWM) to what is resident now. */
static bool reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "5", 1) == 1;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* ---- Building bytes ---------------------------------------------------------------------- */

/* One ustar header block for name (name_len bytes, which may hold NULs)
 * with a type flag, a link target and a size field written as given
 * (octal text, or anything to lie with). */
static void tar_block(struct viv_buf *b, const char *name, size_t name_len, char type,
                      const char *link, const char *size_field)
{
	unsigned char h[512];
	unsigned sum = 0;

	memset(h, 0, sizeof(h));
	memcpy(h, name, name_len > 100 ? 100 : name_len);
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 108, "0000000", 7);
	memcpy(h + 116, "0000000", 7);
	memcpy(h + 124, size_field, strlen(size_field) > 12 ? 12 : strlen(size_field));
	memcpy(h + 136, "00000000000", 11);
	h[156] = (unsigned char)type;
	if (link)
		memcpy(h + 157, link, strlen(link) > 100 ? 100 : strlen(link));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	cr_assert_eq(viv_buf_append(b, h, sizeof(h)), VIV_OK);
}

static void tar_size(char *field, uint64_t size)
{
	snprintf(field, 12, "%011llo", (unsigned long long)size);
}

/* A regular file entry with its data, padded to the block. */
static void tar_file(struct viv_buf *b, const char *name, const void *data, size_t n)
{
	char size[12];
	static const char zeros[512];

	tar_size(size, n);
	tar_block(b, name, strlen(name), '0', NULL, size);
	cr_assert_eq(viv_buf_append(b, data, n), VIV_OK);
	if (n % 512)
		cr_assert_eq(viv_buf_append(b, zeros, 512 - n % 512), VIV_OK);
}

static void tar_end(struct viv_buf *b)
{
	static const char zeros[1024];

	cr_assert_eq(viv_buf_append(b, zeros, sizeof(zeros)), VIV_OK);
}

static la_ssize_t to_buf(struct archive *a, void *ctx, const void *p, size_t n)
{
	(void)a;
	return viv_buf_append(ctx, p, n) == VIV_OK ? (la_ssize_t)n : -1;
}

static int add_filter(struct archive *a, const char *filter)
{
	if (!filter)
		return ARCHIVE_OK;
	if (strcmp(filter, "gzip") == 0)
		return archive_write_add_filter_gzip(a);
	if (strcmp(filter, "bzip2") == 0)
		return archive_write_add_filter_bzip2(a);
	if (strcmp(filter, "xz") == 0)
		return archive_write_add_filter_xz(a);
	if (strcmp(filter, "zstd") == 0)
		return archive_write_add_filter_zstd(a);
	if (strcmp(filter, "lz4") == 0)
		return archive_write_add_filter_lz4(a);
	if (strcmp(filter, "lzma") == 0)
		return archive_write_add_filter_lzma(a);
	if (strcmp(filter, "compress") == 0)
		return archive_write_add_filter_compress(a);
	return ARCHIVE_FATAL;
}

/* in compressed with filter into out (appended), through libarchive's raw
 * format. */
static void compress(const char *filter, const void *in, size_t n, struct viv_buf *out)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	cr_assert_eq(archive_write_set_format_raw(a), ARCHIVE_OK);
	cr_assert_eq(add_filter(a, filter), ARCHIVE_OK, "%s: %s", filter, archive_error_string(a));
	archive_write_set_filter_option(a, NULL, "compression-level", "1");
	archive_write_set_bytes_in_last_block(a, 1);
	cr_assert_eq(archive_write_open(a, out, NULL, to_buf, NULL), ARCHIVE_OK);
	archive_entry_set_pathname(e, "raw");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)n);
	cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK);
	cr_assert_eq(archive_write_data(a, in, n), (la_ssize_t)n);
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_entry_free(e);
	archive_write_free(a);
}

/* One entry for archive(): a file ('f'), folder ('d'), symbolic link ('l'),
 * hard link ('h'), character or block device ('c', 'b'), FIFO ('p') or
 * socket ('s'); data is the contents or the link target. */
struct ent {
	const char *name;
	char type;
	const char *data;
};

/* An archive of the entries in format ("ustar", "pax", "gnutar", "zip",
 * "cpio", "7zip", "iso9660", "shar") with filter (NULL: none), into out.
 * Returns how many entries the format could hold. */
static size_t archive_of(const char *format, const char *filter, const struct ent *es, size_t n,
                         struct viv_buf *out)
{
	struct archive *a = archive_write_new();
	size_t written = 0;

	cr_assert_eq(archive_write_set_format_by_name(a, format), ARCHIVE_OK, "%s", format);
	cr_assert_eq(add_filter(a, filter), ARCHIVE_OK);
	archive_write_set_bytes_in_last_block(a, 1);
	cr_assert_eq(archive_write_open(a, out, NULL, to_buf, NULL), ARCHIVE_OK, "%s",
	             archive_error_string(a));
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = es[i].type == 'f' && es[i].data ? strlen(es[i].data) : 0;

		archive_entry_set_pathname(e, es[i].name);
		archive_entry_set_perm(e, 0644);
		switch (es[i].type) {
		case 'f':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)len);
			break;
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, es[i].data);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, es[i].data);
			break;
		case 'c':
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_rdev(e, makedev(1, 3));
			break;
		case 'b':
			archive_entry_set_filetype(e, AE_IFBLK);
			archive_entry_set_rdev(e, makedev(8, 0));
			break;
		case 'p':
			archive_entry_set_filetype(e, AE_IFIFO);
			break;
		case 's':
			archive_entry_set_filetype(e, AE_IFSOCK);
			break;
		}
		/* Some formats cannot hold some types; those entries are left
		 * out, which the caller's count of cases allows for. */
		if (archive_write_header(a, e) == ARCHIVE_OK) {
			written++;
			if (len)
				archive_write_data(a, es[i].data, len);
		}
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return written;
}

/* ---- Running one upload and checking around it ------------------------------------------ */

static bool only_files_and_folders(const char *dir, char *why, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool ok = true;

	if (!d)
		return true;
	while (ok && (de = readdir(d)) != NULL) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		path = viv_path_join(dir, de->d_name);
		if (lstat(path, &st) != 0) {
			ok = false;
		} else if (S_ISDIR(st.st_mode)) {
			ok = only_files_and_folders(path, why, len);
		} else if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (st.st_mode & 07000) != 0) {
			snprintf(why, len, "%s has mode %o and %lu links", path,
			         (unsigned)st.st_mode, (unsigned long)st.st_nlink);
			ok = false;
		}
		free(path);
	}
	closedir(d);
	return ok;
}

/* The names in dir, sorted and joined, for comparing before and after. */
static char *listing(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	struct viv_buf b;

	viv_buf_init(&b, 1 << 20);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(viv_buf_printf(&b, "%s\n", names[i]->d_name), VIV_OK);
		free(names[i]);
	}
	free(names);
	return viv_buf_steal(&b);
}

static char *work_listing, *outside_listing;

/* Whether a refusal's message is a sentence a person can read. */
static bool clear_message(const char *err)
{
	size_t n = strlen(err);

	if (n < 12 || n > 600)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			return false;
	return strchr(err, ' ') != NULL;
}

/* Unpacks data as an upload into a fresh build folder and checks the
 * surroundings. must_refuse: the upload has no harmless reading. */
static void run_upload(const char *label, const void *data, size_t n, bool must_refuse,
                       unsigned kind)
{
	char err[1024] = "", why[512] = "", *root = NULL, *text, *after;
	enum viv_err e;
	long rss, peak;
	bool measured;

	cr_assert_eq(viv_rmtree(dest), VIV_OK);
	cr_assert_eq(mkdir(dest, 0755), 0);
	cr_assert_eq(viv_write_file_atomic(upload, data, n, 0644), VIV_OK);
	measured = reset_peak();
	rss = vm_kib("VmRSS");
	e = pipe_unpack(upload, dest, &cfg, NULL, &root, err, sizeof(err));
	peak = vm_kib("VmHWM") - rss;
	if (measured && peak > tally.peak_kib)
		tally.peak_kib = peak;
	tally.peak_measured = tally.peak_measured || measured;
	tally.tried++;
	tally.by_kind[kind]++;
	if (e) {
		tally.refused++;
		cr_assert(clear_message(err), "%s: refused with an unclear message '%s' (%s)",
		          label, err, viv_strerror(e));
	} else {
		tally.accepted++;
		cr_assert_not(must_refuse, "%s was accepted", label);
		cr_assert_not_null(root);
		cr_assert(strncmp(root, dest, strlen(dest)) == 0, "%s: root %s", label, root);
	}
	free(root);
	/* Nothing but files and folders inside; nothing new or changed
	 * outside. */
	cr_assert(only_files_and_folders(dest, why, sizeof(why)), "%s: %s", label, why);
	after = listing(work);
	cr_assert_str_eq(after, work_listing, "%s changed the folder around the build", label);
	free(after);
	after = listing(outside);
	cr_assert_str_eq(after, outside_listing, "%s wrote beside the canary", label);
	free(after);
	text = t_read(abs_target, NULL);
	cr_assert_null(text, "%s wrote the absolute path %s", label, abs_target);
	{
		char *canary = viv_path_join(outside, "canary");
		struct stat st;

		text = t_read(canary, NULL);
		cr_assert_str_eq(text, "canary", "%s changed the canary", label);
		cr_assert_eq(lstat(canary, &st), 0);
		cr_assert(S_ISREG(st.st_mode) && st.st_nlink == 1 && (st.st_mode & 0777) == 0600,
		          "%s changed the canary's mode or links", label);
		free(text);
		free(canary);
	}
	after = listing(cwd);
	cr_assert_str_eq(after, ".\n..\n", "%s wrote into the working directory", label);
	free(after);
}

/* ---- The cases ------------------------------------------------------------------------------ */

enum kind {
	K_PATH,
	K_LINK,
	K_SPECIAL,
	K_BOMB,
	K_LYING,
	K_TRUNCATED,
	K_COUNT,
	K_FORMAT,
	K_DAMAGE,
	K_KINDS
};

static const char *const kind_names[K_KINDS] = {
        "path tricks", "links out",    "devices and FIFOs", "bombs",         "lying sizes",
        "truncations", "entry counts", "other formats",     "random damage",
};

static const char *const formats[] = {"ustar", "pax", "gnutar", "zip"};
static const char *const filters[] = {NULL, "gzip", "bzip2", "xz", "zstd"};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))
#define N_FILTERS (sizeof(filters) / sizeof(filters[0]))

static void path_tricks(void)
{
	char longc[400], longname[2200], deep[3000], absname[300];
	const char *names[] = {
	        absname,
	        "/etc/passwd",
	        "../escape",
	        "a/../../escape",
	        "./../escape",
	        "a/b/../../..",
	        "..",
	        "a/..",
	        "..\\..\\escape",
	        "a/./../../escape",
	        "//escape",
	        longc,
	        longname,
	        deep,
	        "a\x01"
	        "b",
	        "a\x7f",
	        "a\nb",
	        "\x1b[31mred",
	        ".",
	        "./",
	        "a//b///c",
	        "__MACOSX/../../escape",
	};
	size_t n = 0;

	snprintf(absname, sizeof(absname), "%s", abs_target);
	memset(longc, 'c', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	for (size_t i = 0; i + 2 < sizeof(longname); i += 2)
		memcpy(longname + i, "d/", 2);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 0; i + 3 < sizeof(deep); i += 3)
		memcpy(deep + i, "../", 3);
	deep[sizeof(deep) - 1] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		bool harmless0 = strcmp(names[i], ".") == 0 || strcmp(names[i], "./") == 0 ||
		                 strcmp(names[i], "a//b///c") == 0 ||
		                 /* a backslash is a character of a file name here */
		                 strchr(names[i], '\\') != NULL;

		for (size_t f = 0; f < N_FORMATS; f++) {
			struct ent es[] = {{"ok.c", 'f', "int x;\n"}, {names[i], 'f', "pwned\n"}};
			struct viv_buf b;
			char label[128];
			bool harmless = harmless0;

			viv_buf_init(&b, 64 * MIB);
			/* An entry the format cannot hold is left out. */
			harmless = archive_of(formats[f], f % 2 ? "gzip" : NULL, es, 2, &b) < 2 ||
			           harmless;
			snprintf(label, sizeof(label), "path trick %zu in %s", i, formats[f]);
			run_upload(label, b.data, b.len, !harmless, K_PATH);
			viv_buf_free(&b);
			n++;
		}
	}
	/* NUL bytes inside names, written by hand: what follows a NUL must
	 * never be the name used. */
	{
		const char nul_names[][32] = {"evil\0/../../escape", "a\0/etc/passwd",
		                              "\0../escape", "ok.c\0\0\0../x"};
		const size_t nul_lens[] = {18, 13, 10, 12};

		for (size_t i = 0; i < 4; i++) {
			for (size_t f = 0; f < N_FILTERS; f++) {
				struct viv_buf raw, b;
				char label[64];

				viv_buf_init(&raw, 64 * MIB);
				viv_buf_init(&b, 64 * MIB);
				tar_block(&raw, nul_names[i], nul_lens[i], '0', NULL,
				          "00000000006");
				cr_assert_eq(viv_buf_append(&raw, "pwned\n", 6), VIV_OK);
				cr_assert_eq(viv_buf_append(&raw, (char[506]){0}, 506), VIV_OK);
				tar_end(&raw);
				if (filters[f])
					compress(filters[f], raw.data, raw.len, &b);
				else
					cr_assert_eq(viv_buf_append(&b, raw.data, raw.len), VIV_OK);
				snprintf(label, sizeof(label), "NUL name %zu, %s", i,
				         filters[f] ? filters[f] : "plain");
				run_upload(label, b.data, b.len, false, K_PATH);
				viv_buf_free(&raw);
				viv_buf_free(&b);
				n++;
			}
		}
	}
	cr_log_info("path tricks: %zu uploads", n);
}

static void links_and_specials(void)
{
	char target_abs[300];
	const struct ent cases[][3] = {
	        {{"link", 'l', "../outside/canary"}, {"link", 'f', "through\n"}, {NULL, 0, NULL}},
	        {{"link", 'l', target_abs}, {"link", 'f', "through\n"}, {NULL, 0, NULL}},
	        {{"dir", 'l', "../outside"}, {"dir/new", 'f', "through\n"}, {NULL, 0, NULL}},
	        {{"dir", 'l', "/tmp"}, {"dir/viv-unpack-planted", 'f', "x\n"}, {NULL, 0, NULL}},
	        {{"hard", 'h', "../outside/canary"}, {"hard", 'f', "through\n"}, {NULL, 0, NULL}},
	        {{"hard", 'h', target_abs}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"a", 'f', "x\n"}, {"b", 'h', "a"}, {NULL, 0, NULL}},
	        {{"self", 'l', "self"}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"dot", 'l', "."}, {"dot/dot/x", 'f', "x\n"}, {NULL, 0, NULL}},
	        {{"null", 'c', NULL}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"sda", 'b', NULL}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"fifo", 'p', NULL}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"sock", 's', NULL}, {NULL, 0, NULL}, {NULL, 0, NULL}},
	        {{"src/", 'd', NULL}, {"src/x", 'c', NULL}, {NULL, 0, NULL}},
	};
	size_t n = 0;

	snprintf(target_abs, sizeof(target_abs), "%s/canary", outside);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t k = 0;

		while (k < 3 && cases[i][k].name)
			k++;
		for (size_t f = 0; f < N_FORMATS; f++) {
			for (size_t z = 0; z < 2; z++) {
				struct viv_buf b;
				char label[128];
				unsigned kind = cases[i][0].type == 'l' ||
				                                cases[i][0].type == 'h' ||
				                                (k > 1 && cases[i][1].type == 'h')
				                        ? K_LINK
				                        : K_SPECIAL;

				size_t held;

				viv_buf_init(&b, 64 * MIB);
				held = archive_of(formats[f], z ? "xz" : NULL, cases[i], k, &b);
				snprintf(label, sizeof(label), "link or special %zu in %s%s", i,
				         formats[f], z ? ".xz" : "");
				/* Some formats cannot hold devices, FIFOs or sockets;
				 * what is left of those archives may be harmless. A
				 * zip read as a stream (inside xz) shows no types,
				 * which live in its central directory: a link is
				 * then a regular file holding its target. */
				bool zip = strcmp(formats[f], "zip") == 0;

				run_upload(label, b.data, b.len,
				           zip ? !z && cases[i][0].type == 'l' : held == k, kind);
				viv_buf_free(&b);
				n++;
			}
		}
	}
	cr_log_info("links and special files: %zu uploads", n);
}

/* Bombs: in every compression unpack reads, one file far past the limit
 * (its size told honestly), many files of 1 MiB each past it in total,
 * the same through zip's deflate with sizes only after the data, and
 * compressions nested in each other; plus a gzip stream of 1 GiB made of
 * concatenated members. */
static void bombs(void)
{
	char *zeros = calloc(1, MIB);
	size_t n = 0;

	for (size_t f = 0; f < N_FILTERS; f++) {
		struct viv_buf raw, b;
		char label[64], size[12], name[32];

		/* One file of 64 MiB. */
		viv_buf_init(&raw, 128 * MIB);
		tar_size(size, 64ull * MIB);
		tar_block(&raw, "big", 3, '0', NULL, size);
		for (int i = 0; i < 64; i++)
			cr_assert_eq(viv_buf_append(&raw, zeros, MIB), VIV_OK);
		tar_end(&raw);
		viv_buf_init(&b, 128 * MIB);
		if (filters[f])
			compress(filters[f], raw.data, raw.len, &b);
		else
			cr_assert_eq(viv_buf_append(&b, raw.data, raw.len), VIV_OK);
		snprintf(label, sizeof(label), "64 MiB file, %s",
		         filters[f] ? filters[f] : "plain");
		run_upload(label, b.data, b.len, true, K_BOMB);
		viv_buf_free(&b);
		viv_buf_free(&raw);
		n++;

		/* 40 files of 1 MiB. */
		viv_buf_init(&raw, 128 * MIB);
		for (int i = 0; i < 40; i++) {
			snprintf(name, sizeof(name), "part%02d", i);
			tar_file(&raw, name, zeros, MIB);
		}
		tar_end(&raw);
		viv_buf_init(&b, 128 * MIB);
		if (filters[f])
			compress(filters[f], raw.data, raw.len, &b);
		else
			cr_assert_eq(viv_buf_append(&b, raw.data, raw.len), VIV_OK);
		snprintf(label, sizeof(label), "40 x 1 MiB, %s", filters[f] ? filters[f] : "plain");
		run_upload(label, b.data, b.len, true, K_BOMB);
		viv_buf_free(&raw);

		/* Compressed again, with each other filter. */
		for (size_t g = 1; g < N_FILTERS && filters[f]; g++) {
			struct viv_buf twice;

			viv_buf_init(&twice, 128 * MIB);
			compress(filters[g], b.data, b.len, &twice);
			snprintf(label, sizeof(label), "40 x 1 MiB, %s in %s", filters[f],
			         filters[g]);
			run_upload(label, twice.data, twice.len, true, K_BOMB);
			viv_buf_free(&twice);
			n++;
		}
		viv_buf_free(&b);
		n++;
	}
	/* zip: deflate with the sizes after the data (a streamed entry). */
	{
		struct archive *a = archive_write_new();
		struct archive_entry *e = archive_entry_new();
		struct viv_buf b;

		viv_buf_init(&b, 128 * MIB);
		archive_write_set_format_zip(a);
		archive_write_set_bytes_in_last_block(a, 1);
		cr_assert_eq(archive_write_open(a, &b, NULL, to_buf, NULL), ARCHIVE_OK);
		archive_entry_set_pathname(e, "big");
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_write_header(a, e);
		for (int i = 0; i < 64; i++)
			archive_write_data(a, zeros, MIB);
		archive_write_close(a);
		archive_write_free(a);
		archive_entry_free(e);
		run_upload("zip, 64 MiB streamed", b.data, b.len, true, K_BOMB);
		viv_buf_free(&b);
		n++;
	}
	/* 1 GiB through gzip members of one 1 MiB file each, the same name
	 * again and again: about 1 MiB uploaded. */
	{
		struct viv_buf raw, member, b;

		viv_buf_init(&raw, 4 * MIB);
		tar_file(&raw, "again", zeros, MIB);
		viv_buf_init(&member, 4 * MIB);
		compress("gzip", raw.data, raw.len, &member);
		viv_buf_init(&b, 64 * MIB);
		for (int i = 0; i < 1024; i++)
			cr_assert_eq(viv_buf_append(&b, member.data, member.len), VIV_OK);
		run_upload("1 GiB of gzip members", b.data, b.len, true, K_BOMB);
		cr_log_info("1 GiB bomb: %zu bytes uploaded", b.len);
		viv_buf_free(&raw);
		viv_buf_free(&member);
		viv_buf_free(&b);
		n++;
	}
	free(zeros);
	cr_log_info("bombs: %zu uploads", n);
}

/* Size fields that lie: larger than the data (the archive ends early),
 * smaller (the rest reads as headers), not octal, negative or huge in
 * base-256, and a checksum that does not match. */
static void lying_sizes(void)
{
	const char *fields[] = {"00000001750",
	                        "00000000001",
	                        "77777777777",
	                        "zzzzzzzzzzz",
	                        "-0000000001",
	                        "",
	                        "0000000000 9",
	                        "\x80\x00\x00\x00\x00\x00\x00\x00"
	                        "\x00\x01\x00\x00",
	                        "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	                        "00000000000"};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		for (size_t f = 0; f < N_FILTERS; f++) {
			struct viv_buf raw, b;
			char label[64], field[13];

			memset(field, 0, sizeof(field));
			memcpy(field, fields[i], i == 7 || i == 8 ? 12 : strlen(fields[i]));
			viv_buf_init(&raw, 64 * MIB);
			viv_buf_init(&b, 64 * MIB);
			tar_block(&raw, "liar.c", 6, '0', NULL, field);
			cr_assert_eq(viv_buf_append(&raw, "int liar;\n", 10), VIV_OK);
			cr_assert_eq(viv_buf_append(&raw, (char[502]){0}, 502), VIV_OK);
			/* A second header after it, as the smaller size would
			 * read it. */
			tar_block(&raw, "../escape", 9, '0', NULL, "00000000006");
			cr_assert_eq(viv_buf_append(&raw, "pwned\n", 6), VIV_OK);
			cr_assert_eq(viv_buf_append(&raw, (char[506]){0}, 506), VIV_OK);
			if (i % 2)
				tar_end(&raw);
			if (filters[f])
				compress(filters[f], raw.data, raw.len, &b);
			else
				cr_assert_eq(viv_buf_append(&b, raw.data, raw.len), VIV_OK);
			snprintf(label, sizeof(label), "size field %zu, %s", i,
			         filters[f] ? filters[f] : "plain");
			run_upload(label, b.data, b.len, true, K_LYING);
			viv_buf_free(&raw);
			viv_buf_free(&b);
			n++;
		}
	}
	/* A bad checksum. */
	{
		struct viv_buf raw;

		viv_buf_init(&raw, MIB);
		tar_file(&raw, "sum.c", "int s;\n", 7);
		tar_end(&raw);
		((char *)raw.data)[149] ^= 7;
		run_upload("bad checksum", raw.data, raw.len, true, K_LYING);
		viv_buf_free(&raw);
		n++;
	}
	cr_log_info("lying sizes: %zu uploads", n);
}

/* A good project in every format and compression, cut at CUTS places. */
#define CUTS 25
static void truncations(void)
{
	const struct ent project[] = {
	        {"src/", 'd', NULL},
	        {"src/main.c", 'f', "#include <stdio.h>\nint main(void) { puts(\"hi\"); }\n"},
	        {"vivarium.json", 'f', "{\"name\": \"cut\"}\n"},
	        {"README", 'f', "A project cut short.\n"},
	};
	size_t n = 0;

	for (size_t f = 0; f < N_FORMATS; f++) {
		for (size_t z = 0; z < N_FILTERS; z++) {
			struct viv_buf b;

			if (strcmp(formats[f], "zip") == 0 && filters[z])
				continue;
			viv_buf_init(&b, 64 * MIB);
			archive_of(formats[f], filters[z], project, 4, &b);
			for (size_t k = 1; k <= CUTS; k++) {
				size_t cut = b.len * k / (CUTS + 1);
				char label[64];

				snprintf(label, sizeof(label), "%s%s%s cut at %zu of %zu",
				         formats[f], filters[z] ? "." : "",
				         filters[z] ? filters[z] : "", cut, b.len);
				/* A tar cut inside its trailing zero blocks is
				 * whole; anything else must be refused. */
				run_upload(label, b.data, cut, false, K_TRUNCATED);
				n++;
			}
			viv_buf_free(&b);
		}
	}
	cr_log_info("truncations: %zu uploads", n);
}

/* More entries than the limit: empty files, folders, and names nested
 * deep. */
static void entry_counts(void)
{
	size_t n = 0;

	for (size_t f = 0; f < N_FILTERS; f++) {
		for (int shape = 0; shape < 2; shape++) {
			struct viv_buf raw, b;
			char name[64], label[64];

			viv_buf_init(&raw, 64 * MIB);
			viv_buf_init(&b, 64 * MIB);
			for (unsigned i = 0; i < MAX_ENTRIES * 20; i++) {
				snprintf(name, sizeof(name), shape ? "d%u/" : "f%u", i);
				tar_block(&raw, name, strlen(name), shape ? '5' : '0', NULL,
				          "00000000000");
			}
			tar_end(&raw);
			if (filters[f])
				compress(filters[f], raw.data, raw.len, &b);
			else
				cr_assert_eq(viv_buf_append(&b, raw.data, raw.len), VIV_OK);
			snprintf(label, sizeof(label), "%u %s, %s", MAX_ENTRIES * 20,
			         shape ? "folders" : "files", filters[f] ? filters[f] : "plain");
			run_upload(label, b.data, b.len, true, K_COUNT);
			viv_buf_free(&raw);
			viv_buf_free(&b);
			n++;
		}
	}
	cr_log_info("entry counts: %zu uploads", n);
}

/* Compressions and formats unpack does not read. */
static void other_formats(void)
{
	const struct ent es[] = {{"a.c", 'f', "int a;\n"}};
	const char *fmts[] = {"cpio", "7zip", "iso9660", "shar", "ar", "mtree", "xar"};
	const char *fls[] = {"lz4", "lzma", "compress"};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct viv_buf b;
		struct archive *probe = archive_write_new();
		bool can = archive_write_set_format_by_name(probe, fmts[i]) == ARCHIVE_OK;

		archive_write_free(probe);
		if (!can)
			continue;
		viv_buf_init(&b, 64 * MIB);
		archive_of(fmts[i], NULL, es, 1, &b);
		run_upload(fmts[i], b.data, b.len, true, K_FORMAT);
		viv_buf_free(&b);
		n++;
	}
	for (size_t i = 0; i < sizeof(fls) / sizeof(fls[0]); i++) {
		struct viv_buf b;

		viv_buf_init(&b, 64 * MIB);
		archive_of("ustar", fls[i], es, 1, &b);
		run_upload(fls[i], b.data, b.len, true, K_FORMAT);
		viv_buf_free(&b);
		n++;
	}
	cr_log_info("other formats: %zu uploads", n);
}

/* A good project with random bytes changed: a fixed seed, 1 to 8 bytes
 * each time, in every format and compression. */
static void random_damage(size_t count)
{
	const struct ent project[] = {
	        {"src/", 'd', NULL},
	        {"src/main.c", 'f', "int main(void) { return 0; }\n"},
	        {"src/util.c", 'f', "int util(int x) { return x * 2; }\n"},
	        {"vivarium.json", 'f', "{\"name\": \"damaged\"}\n"},
	};
	unsigned seed = 13;
	size_t n = 0;

	for (size_t i = 0; i < count; i++) {
		size_t f = i % N_FORMATS, z = (i / N_FORMATS) % N_FILTERS;
		struct viv_buf b;
		char label[64];
		int flips = 1 + rand_r(&seed) % 8;

		viv_buf_init(&b, 64 * MIB);
		archive_of(formats[f], strcmp(formats[f], "zip") ? filters[z] : NULL, project, 4,
		           &b);
		for (int k = 0; k < flips; k++)
			((unsigned char *)b.data)[(size_t)rand_r(&seed) % b.len] =
			        (unsigned char)rand_r(&seed);
		snprintf(label, sizeof(label), "damage %zu (%s)", i, formats[f]);
		run_upload(label, b.data, b.len, false, K_DAMAGE);
		viv_buf_free(&b);
		n++;
	}
	cr_log_info("random damage: %zu uploads", n);
}

static void setup(void)
{
	char *canary;

	work = t_tmpdir();
	dest = viv_path_join(work, "build");
	upload = viv_path_join(work, "upload");
	outside = viv_path_join(work, "outside");
	cwd = viv_path_join(work, "cwd");
	cr_assert_eq(viv_mkdirs(dest, 0755), VIV_OK);
	cr_assert_eq(viv_mkdirs(outside, 0755), VIV_OK);
	cr_assert_eq(viv_mkdirs(cwd, 0755), VIV_OK);
	canary = viv_path_join(outside, "canary");
	cr_assert_eq(viv_write_file_atomic(canary, "canary", 6, 0600), VIV_OK);
	free(canary);
	snprintf(abs_target, sizeof(abs_target), "/tmp/viv-unpack-abs-%d", (int)getpid());
	cr_assert_eq(chdir(cwd), 0);
	t_config(&cfg, false);
	cfg.unpack_max_bytes = MAX_BYTES;
	cfg.unpack_max_entries = MAX_ENTRIES;
	/* The folder around the build as it will be checked: the upload
	 * file is there from the first case on. */
	cr_assert_eq(viv_write_file_atomic(upload, "", 0, 0644), VIV_OK);
	work_listing = listing(work);
	outside_listing = listing(outside);
}

static void teardown(void)
{
	if (chdir("/") != 0)
		return;
	unlink(abs_target);
	viv_rmtree_or_log(work);
	free(work);
	free(dest);
	free(upload);
	free(outside);
	free(cwd);
	free(work_listing);
	free(outside_listing);
}

Test(unpack_hostile, a_thousand_hostile_uploads_stay_in_the_build_folder, .init = setup,
     .fini = teardown, .timeout = 300)
{
	const char *env = getenv("VIV_PROOF_DAMAGE");
	size_t damage = env ? strtoul(env, NULL, 10) : 300;

	path_tricks();
	links_and_specials();
	bombs();
	lying_sizes();
	truncations();
	entry_counts();
	other_formats();
	random_damage(damage);
	for (size_t k = 0; k < K_KINDS; k++)
		fprintf(stderr, "figure: unpack %s: %zu uploads\n", kind_names[k],
		        tally.by_kind[k]);
	fprintf(stderr,
	        "figure: unpack: %zu hostile uploads tried, %zu refused with a message, %zu "
	        "accepted harmlessly, 0 writes outside the build folder; one unpacking added at "
	        "most %ld KiB of resident memory%s\n",
	        tally.tried, tally.refused, tally.accepted, tally.peak_kib,
	        tally.peak_measured ? "" : " (not measured: no /proc/self/clear_refs)");
	cr_assert_geq(tally.tried, 1000);
	cr_assert_lt(tally.peak_kib, RSS_GROWTH_MAX_KIB, "one unpacking added %ld KiB",
	             tally.peak_kib);
}
