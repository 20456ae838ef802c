/* Private to pipeline/ (and its tests): the steps of a build, each usable on
 * its own, so that tests can drive unpacking, the manifest, detection, the
 * wasm parser, child processes and the glue without a store. */
#ifndef PIPELINE_INT_H
#define PIPELINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline.h"
#include "viv.h"
#include "viv_guest.h"

/* ---- Build context -------------------------------------------------------- */

/* What every step that runs tools gets: the configuration, the scratch
 * directory and the build log. */
struct pipe_ctx {
	const struct pipe_config *cfg; /* borrowed */
	/* Absolute path of the build folder the tools work in: HOME of every
	 * tool, TMPDIR is its tmp/ and it is the only writable place in the
	 * sandbox, where tools see it as /build (pipe_tool_path()).
	 * Borrowed. */
	const char *scratch;
	/* The commands are the language step's, which runs the tenant's
	 * code: the build limits apply to them, and they run in the launcher
	 * (as the build user) when cfg->launcher is set. Whatever they leave
	 * in scratch is hostile: it is read only beneath scratch, without
	 * following links (pipe_read_built()). */
	bool confined;
	/* The time by which the whole build must end (viv_mono_ns()); 0 for
	 * none. Each command's timeout is cut to fit. */
	uint64_t deadline_ns;
	/* scratch was handed to the build user's group (pipe_share_tree())
	 * before the first confined command. */
	bool shared;
	/* Build log text not yet handed to flush. Capped. */
	struct viv_buf log;
	/* Called with the pending log text after each command and by
	 * pipe_log_flush(); NULL keeps everything in log (tests read it). */
	void (*flush)(void *arg, const char *text);
	void *flush_arg;
	/* The platform's private cache folder (store_cache_dir()), where a
	 * toolchain may keep what it prepared from the platform's own files;
	 * NULL when there is none. Borrowed. */
	const char *cache_dir;
	/* Extra "NAME=value" entries for the environment of every tool run
	 * through ctx (not PATH, HOME, LANG or TMPDIR), NULL-terminated; NULL
	 * for none. A toolchain sets it around its own commands and clears
	 * it. Borrowed. */
	const char *const *env;
};

/* Sets up ctx; cfg and scratch are borrowed for the life of ctx. */
void pipe_ctx_init(struct pipe_ctx *ctx, const struct pipe_config *cfg, const char *scratch);
/* Frees the pending log; accepts a zeroed ctx. */
void pipe_ctx_free(struct pipe_ctx *ctx);
/* Appends a formatted line (or lines) to the build log; text past the cap
 * is dropped. */
void pipe_logf(struct pipe_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the pending log text to ctx->flush, if there is one, and empties it. */
void pipe_log_flush(struct pipe_ctx *ctx);

/* ---- Child processes (pipe_spawn.c) ---------------------------------------------- */

/* A build limit a command ran into. */
enum pipe_limit {
	PIPE_LIMIT_NONE = 0,
	PIPE_LIMIT_MEMORY,    /* the cgroup's memory limit: the kernel killed a process */
	PIPE_LIMIT_PROCS,     /* the cgroup's process limit: a fork failed */
	PIPE_LIMIT_DISK,      /* the build folder (a tmpfs) is full */
	PIPE_LIMIT_FILES,     /* the build folder has no inodes left */
	PIPE_LIMIT_FILE_SIZE, /* RLIMIT_FSIZE: SIGXFSZ */
	PIPE_LIMIT_CPU,       /* RLIMIT_CPU: SIGXCPU */
};

/* How a child process ended. */
struct pipe_exit {
	int code;              /* exit status, or -1 when a signal ended it */
	int signal;            /* the signal that ended it, else 0 */
	bool truncated;        /* its output went past cfg->step_output_cap */
	int64_t ms;            /* wall time from start to end */
	enum pipe_limit limit; /* a limit it ran into and failed by */
};

/* One command to run. */
struct pipe_cmd {
	const char *scratch;     /* the build folder (pipe_ctx.scratch) */
	const char *cwd;         /* a folder in it, NULL: scratch */
	const char *const *argv; /* NULL-terminated */
	const char *const *env;  /* extra entries as pipe_ctx.env, may be NULL */
	unsigned timeout_ms;     /* 0: cfg->step_timeout_ms */
	bool confined;           /* as pipe_ctx.confined */
	int abort_fd;            /* readable or closed: stop the command; -1 none */
};

/* Runs cmd as pipe_spawn() describes, here, whatever cmd->confined says
 * (the launcher calls it for the commands it is sent). A confined
 * command gets a cgroup of its own under cfg->cgroups with the build
 * limits, or RLIMIT_DATA and RLIMIT_NPROC without; one that fails after
 * running into a limit is VIV_ERR_TOO_BIG with a sentence naming the
 * limit in err (exit_out->limit says which). Results otherwise as
 * pipe_spawn(). */
VIV_MUST_CHECK enum viv_err pipe_spawn_cmd(const struct pipe_config *cfg,
                                           const struct pipe_cmd *cmd, struct viv_buf *output,
                                           struct pipe_exit *exit_out, char *err, size_t errlen);

/* A child process in its three stages, so that one loop can drive many:
 * started, pumped (its output read into its buffer, its end, timeout or
 * abort noted) and reaped. */
struct pipe_proc;

/* Forks and execs cmd as pipe_spawn_cmd() describes, its output going
 * into output. cmd and output are borrowed until pipe_proc_finish(). On
 * failure nothing is left running and err says why (VIV_ERR_NOT_FOUND for
 * a program that is not installed, else as pipe_spawn()). Caller ends *out
 * with pipe_proc_finish(). */
VIV_MUST_CHECK enum viv_err pipe_proc_start(const struct pipe_config *cfg,
                                            const struct pipe_cmd *cmd, struct viv_buf *output,
                                            struct pipe_proc **out, char *err, size_t errlen);

/* One loop for n children: polls their output pipes, pidfds and abort
 * descriptors together, reads their output (each capped at
 * cfg->step_output_cap), and returns when every one has ended (and its
 * pipe closed), timed out or been aborted. VIV_ERR_IO when polling itself
 * failed (each child still running then ends with that error, killed),
 * VIV_ERR_NOMEM when there was no room for the poll set. */
VIV_MUST_CHECK enum viv_err pipe_procs_wait(struct pipe_proc *const *procs, size_t n);

/* Kills what is left of p's process group, reaps it, removes its cgroups
 * and says how it ended, as pipe_spawn_cmd() does; VIV_ERR_IO with "waiting
 * for TOOL failed: REASON" in err when pipe_procs_wait() failed. Frees p. */
VIV_MUST_CHECK enum viv_err pipe_proc_finish(struct pipe_proc *p, struct pipe_exit *exit_out,
                                             char *err, size_t errlen);

/* pipe_spawn_cmd in the launcher at cfg->launcher: the same results,
 * and VIV_ERR_IO with the reason in err when the launcher cannot be
 * reached or stops answering. */
VIV_MUST_CHECK enum viv_err pipe_launcher_run(const struct pipe_config *cfg,
                                              const struct pipe_cmd *cmd, struct viv_buf *output,
                                              struct pipe_exit *exit_out, char *err, size_t errlen);

/* Empties the folder dir (a build's language-step folder) through the
 * launcher at cfg->launcher, whose user owns what that step made, or here
 * when there is none. */
VIV_MUST_CHECK enum viv_err pipe_launcher_empty(const struct pipe_config *cfg, const char *dir);

/* The path at which the tools of ctx see the host path path: inside the
 * sandbox the build folder (ctx->scratch) is /build and the platform's
 * folders are /vivarium/include, /vivarium/sdk and /vivarium/tools, and
 * the system's paths are themselves; without the sandbox every path is
 * itself. Caller frees with free(); NULL when out of memory. */
char *pipe_tool_path(const struct pipe_ctx *ctx, const char *path);

/* Reads rel, a file a confined command may have written, beneath
 * ctx->scratch: never through a link, only a regular file with one name,
 * at most cap bytes. Errors have a sentence naming what (e.g. "the
 * module cargo built") in err. Caller frees *out with free(). */
VIV_MUST_CHECK enum viv_err pipe_read_built(const struct pipe_ctx *ctx, const char *rel,
                                            const char *what, size_t cap, char **out,
                                            size_t *len_out, char *err, size_t errlen);

/* ---- Limits (pipe_limits.c) --------------------------------------------------------- */

struct pipe_cg;

/* Makes the cgroups of one confined command under cfg->cgroups, with the
 * build's memory and process limits. VIV_ERR_UNSUPPORTED when cfg has
 * none. Caller ends them with pipe_cg_end(). */
VIV_MUST_CHECK enum viv_err pipe_cg_make(const struct pipe_config *cfg, struct pipe_cg **out);
/* In the child, between fork and exec: moves it into cg.
 * Async-signal-safe; -1 on failure. */
int pipe_cg_join(const struct pipe_cg *cg);
/* After the command: the limit it hit, if any; kills what is left in the
 * cgroups and removes them. Accepts NULL. */
enum pipe_limit pipe_cg_end(struct pipe_cg *cg);
/* In the child of a confined command without cgroups: RLIMIT_DATA and
 * RLIMIT_NPROC from cfg's build limits. Async-signal-safe. */
void pipe_limits_rlimit(const struct pipe_config *cfg);
/* Whether the folder dir, a tmpfs, is full (of bytes or of inodes). */
enum pipe_limit pipe_disk_check(const char *dir);
/* A sentence for the user: tool ran into limit. */
void pipe_limit_text(const struct pipe_config *cfg, enum pipe_limit limit, const char *tool,
                     char *buf, size_t len);

/* Runs argv (argv[0] is looked up in /usr/bin and /bin unless it holds a
 * '/') in cwd (NULL: scratch), never through a shell: stdin is /dev/null,
 * stdout and stderr go into output (at most cfg->step_output_cap bytes are
 * kept; the rest is read and dropped, and "[output truncated]" noted), the
 * environment is PATH, HOME=scratch, LANG and TMPDIR=scratch/tmp only, the
 * child gets its own process group and rlimits (CPU from the timeout, file
 * size, no core files), and runs inside bubblewrap when cfg->sandbox, which
 * shows it scratch as /build and the platform's folders as pipe_tool_path()
 * says (cwd and paths in argv are as the tool sees them there: relative,
 * or made by pipe_tool_path()). After cfg->step_timeout_ms the whole
 * group is killed.
 *
 * VIV_OK when the child ran and ended, whatever its exit status (see
 * *exit_out); VIV_ERR_TIMEOUT when it was killed for taking too long
 * ("TOOL took longer than N s and was stopped" in err); VIV_ERR_NOT_FOUND
 * when the program does not exist; VIV_ERR_IO when the process could not be
 * started, or waiting for it failed ("waiting for TOOL failed: REASON"; it
 * is killed). output receives what the child wrote whatever the result;
 * *exit_out is set on VIV_OK and VIV_ERR_TIMEOUT. */
VIV_MUST_CHECK enum viv_err pipe_spawn(const struct pipe_config *cfg, const char *scratch,
                                       const char *cwd, const char *const *argv,
                                       struct viv_buf *output, struct pipe_exit *exit_out,
                                       char *err, size_t errlen);

/* pipe_spawn with the build log: appends "$ cmd args" (quoted as a shell
 * would need, for reading only), the output, and a line with the exit
 * status and duration to ctx's log, then flushes it. Same results as
 * pipe_spawn. */
VIV_MUST_CHECK enum viv_err pipe_run(struct pipe_ctx *ctx, const char *cwd, const char *const *argv,
                                     struct pipe_exit *exit_out, char *err, size_t errlen);

/* pipe_run that also hands back what the tool wrote, for a toolchain that
 * turns a known complaint into a sentence for the user: on VIV_OK and
 * VIV_ERR_TIMEOUT, *output_out (may be NULL; caller frees with free()) is
 * the output as it went to the log, at most cfg->step_output_cap bytes. */
VIV_MUST_CHECK enum viv_err pipe_run_output(struct pipe_ctx *ctx, const char *cwd,
                                            const char *const *argv, struct pipe_exit *exit_out,
                                            char **output_out, char *err, size_t errlen);

/* pipe_run for tools that must succeed: a non-zero exit becomes
 * VIV_ERR_BUILD with "TOOL failed (exit status N)" in err. */
VIV_MUST_CHECK enum viv_err pipe_run_ok(struct pipe_ctx *ctx, const char *cwd,
                                        const char *const *argv, char *err, size_t errlen);

/* pipe_run_ok for n commands at once, each with everything pipe_spawn
 * gives one command (sandbox, limits, timeout, output cap), all waited for
 * in one loop (pipe_procs_wait()); commands for the launcher go to it one
 * after another. The log then has each command line, output and status in
 * the order given.
 * VIV_OK when every one ran and exited 0; otherwise the error of the first
 * in that order that did not, as pipe_run_ok would have it. */
VIV_MUST_CHECK enum viv_err pipe_run_all(struct pipe_ctx *ctx, const char *cwd,
                                         const char *const *const *argvs, size_t n, char *err,
                                         size_t errlen);

/* ---- Unpacking (pipe_unpack.c) ------------------------------------------------------ */

/* Unpacks the upload at path upload into the existing empty directory dest.
 * A WebAssembly binary is copied as dest/upload.wasm. Anything else is read
 * with libarchive (tar in any variant, gzip, bzip2, xz or zstd compressed,
 * zip): only regular files and directories, relative paths with no ".."
 * component, at most cfg->unpack_max_entries entries and
 * cfg->unpack_max_bytes bytes, modes 0644/0755. When the archive's root
 * holds exactly one directory and nothing else, that directory is the
 * project root. A line saying what was unpacked goes to log (may be NULL).
 *
 * On success *root_out (caller frees with free()) is the absolute project
 * root. VIV_ERR_INVALID, VIV_ERR_TOO_BIG or VIV_ERR_UNSUPPORTED with a
 * sentence for the user in err when the upload is refused; VIV_ERR_IO or
 * VIV_ERR_NOMEM otherwise. dest may hold part of the upload on failure. */
VIV_MUST_CHECK enum viv_err pipe_unpack(const char *upload, const char *dest,
                                        const struct pipe_config *cfg, struct viv_buf *log,
                                        char **root_out, char *err, size_t errlen);

/* ---- The manifest (pipe_manifest.c) ---------------------------------------------------- */

#define PIPE_MANIFEST_FILE "vivarium.json"
#define PIPE_MANIFEST_MAX (64 * 1024)

/* A validated vivarium.json (GUEST-ABI.md section 4) with the limits
 * resolved against the platform's defaults and maxima. */
struct pipe_manifest {
	bool present;   /* false: there was no vivarium.json */
	char *name;     /* NULL when absent */
	char *language; /* NULL: detect it */
	char **sources; /* build.sources globs, relative to the root */
	size_t n_sources;
	char **cflags; /* build.cflags, each one argv entry */
	size_t n_cflags;
	char **cxxflags; /* build.cxxflags: C++ sources only, after cflags */
	size_t n_cxxflags;
	char **include_dirs; /* build.include_dirs: relative folders */
	size_t n_include_dirs;
	struct viv_limits limits; /* resolved */
	char **env_keys;          /* env, in file order */
	char **env_values;
	size_t n_env;
	char **outbound; /* URL patterns */
	size_t n_outbound;
	char *assets; /* relative folder, NULL when absent */
};

/* Parses and validates manifest text (len bytes). Errors are
 * VIV_ERR_INVALID with a sentence naming the field in err, e.g.
 * "vivarium.json: limits.memory_mb must be a whole number from 1 to 1024".
 * Caller frees *out with pipe_manifest_free(). */
VIV_MUST_CHECK enum viv_err pipe_manifest_parse(const char *text, size_t len,
                                                const struct pipe_config *cfg,
                                                struct pipe_manifest **out, char *err,
                                                size_t errlen);

/* Reads root/vivarium.json if there is one, else returns the defaults
 * (present false). Same errors as pipe_manifest_parse, plus VIV_ERR_TOO_BIG
 * past PIPE_MANIFEST_MAX. Caller frees *out with pipe_manifest_free(). */
VIV_MUST_CHECK enum viv_err pipe_manifest_load(const char *root, const struct pipe_config *cfg,
                                               struct pipe_manifest **out, char *err,
                                               size_t errlen);

/* The configuration a deployment is served with, as far as the manifest
 * says: its resolved limits, env and outbound patterns, and assets_hash,
 * the stored static files (store_assets_path()), or none when NULL. The
 * mode is the build's to set. Caller clears *out with
 * store_deploy_config_clear() whatever the result. */
VIV_MUST_CHECK enum viv_err pipe_manifest_config(const struct pipe_manifest *m,
                                                 const char *assets_hash,
                                                 struct store_deploy_config *out);

/* Accepts NULL. */
void pipe_manifest_free(struct pipe_manifest *m);

/* VIV_OK when flag may be passed to the C compiler from build.cflags; else
 * VIV_ERR_INVALID with the reason in err. Flags that load plugins, change
 * the target, sysroot or output, pass options to other tools, or read
 * response files would let a build escape, and are refused. */
VIV_MUST_CHECK enum viv_err pipe_cflag_check(const char *flag, char *err, size_t errlen);

/* ---- Files of a project (pipe_files.c) ---------------------------------------------- */

struct stat;

/* One walk of a folder tree (pipe_walk()): what it calls, and what it does
 * with what it will not or cannot look into. */
struct pipe_walk {
	/* Called for each entry: rel is its path below the folder walked
	 * ("src/main.c"), name its last component, both borrowed for the call;
	 * st is what lstat says. A result other than VIV_OK ends the walk with
	 * it. */
	enum viv_err (*visit)(void *ctx, const char *rel, const char *name, const struct stat *st);
	/* Called instead of reading the folder rel, nested more than depth_max
	 * folders deep; a result other than VIV_OK ends the walk with it. NULL
	 * passes such folders over. */
	enum viv_err (*too_deep)(void *ctx, const char *rel);
	void *ctx;
	int depth_max;
	/* An entry lstat cannot examine is VIV_ERR_IO, rather than passed over. */
	bool unreadable_is_error;
};

/* Walks the folder open at dirfd depth first, in directory order, calling
 * w->visit for every entry, a folder before what it holds. Symbolic links
 * are not followed. A folder that cannot be read is VIV_ERR_IO; otherwise
 * VIV_ERR_NOMEM or what a callback returned. Takes ownership of dirfd
 * whatever the result. */
VIV_MUST_CHECK enum viv_err pipe_walk(const struct pipe_walk *w, int dirfd);

/* Relative paths ("src/main.c") of the regular files under root, at most
 * 64 folders deep, whose names end with one of the suffixes (NULL-terminated
 * list; NULL: every file), sorted bytewise so that builds are reproducible.
 * At most max files (VIV_ERR_TOO_BIG beyond). Caller frees with pipe_strv_free(). */
VIV_MUST_CHECK enum viv_err pipe_find_files(const char *root, const char *const *suffixes,
                                            size_t max, char ***out, size_t *n_out);

/* Relative paths of the regular files under root matched by the glob
 * patterns (relative, no ".."), deduplicated, in pattern order and sorted
 * within each pattern. A pattern that matches nothing is VIV_ERR_INVALID
 * naming it in err. Caller frees with pipe_strv_free(). */
VIV_MUST_CHECK enum viv_err pipe_glob(const char *root, char *const *patterns, size_t n_patterns,
                                      char ***out, size_t *n_out, char *err, size_t errlen);

/* The path of to relative to the directory from (both absolute), e.g.
 * "../../obj/0.o", so that command lines in the build log read short and
 * do not show where the server keeps its data. Caller frees *out with
 * free(). */
VIV_MUST_CHECK enum viv_err pipe_relpath(const char *from, const char *to, char **out);

/* Frees n strings and the array; accepts NULL. */
void pipe_strv_free(char **v, size_t n);

/* Copies the tree at src (regular files and folders only; anything else is
 * VIV_ERR_INVALID) to dest, which must not exist yet. Copies get fresh times
 * and modes 0644 and 0755. At most max_entries entries and max_bytes bytes
 * (VIV_ERR_TOO_BIG beyond). dest may hold part of the tree on failure. */
VIV_MUST_CHECK enum viv_err pipe_copy_tree(const char *src, const char *dest, size_t max_entries,
                                           uint64_t max_bytes);

/* True when root/rel is a folder (want_dir) or a regular file, not
 * following a symbolic link at the end. */
/* Hands the tree at dir, which only this process has written, to the
 * group gid: every entry gets the group, and the group gets what the owner
 * may do; folders get the setgid bit, so that what is made in them later
 * has the group too. Follows no link; a special file is VIV_ERR_INVALID.
 * Done once before the first command of a language step that runs as the
 * build user. */
VIV_MUST_CHECK enum viv_err pipe_share_tree(const char *dir, gid_t gid);

bool pipe_exists(const char *root, const char *rel, bool want_dir);

/* True when rel is a relative path with no empty, "." or ".." component
 * (glob characters allowed). */
bool pipe_relpath_safe(const char *rel);

/* ---- Static assets (pipe_assets.c) -------------------------------------------------- */

struct pipe_assets_stats {
	size_t files;
	size_t dirs;
	uint64_t bytes;
};

/* Walks the assets folder dir (label is how the user named it, for
 * messages) and hashes it: sha256 over every entry in bytewise order of
 * relative paths, each entry its kind, path, size and contents. Only regular
 * files and folders are allowed: a symbolic link or special file is
 * VIV_ERR_INVALID naming it. More than max_entries files and folders, or
 * max_bytes bytes, is VIV_ERR_TOO_BIG. Errors have a sentence in err. On
 * success hex is the hash and *stats_out what was found. */
VIV_MUST_CHECK enum viv_err pipe_assets_hash(const char *dir, const char *label, size_t max_entries,
                                             uint64_t max_bytes, char hex[VIV_SHA256_HEX_LEN + 1],
                                             struct pipe_assets_stats *stats_out, char *err,
                                             size_t errlen);

/* ---- Languages (pipe_toolchain.c and pipe_toolchain_{c,rust,as}.c) ------------------------ */

/* What a toolchain's build gets. */
struct pipe_project {
	struct pipe_ctx *ctx;
	const char *root; /* absolute project root, in ctx->scratch */
	const struct pipe_manifest *manifest;
	const char *out_dir; /* absolute, existing: where to write */
};

/* A language plug point: one per language, in detection order. */
struct pipe_toolchain_ops {
	const char *name; /* the manifest's "language" value */
	/* True when the project at root looks like this language. */
	bool (*detect)(void *tctx, const char *root);
	/* Builds the project into one WebAssembly module, through
	 * p->ctx, whose commands are the language step's (ctx->confined):
	 * the toolchain writes what it prepares before its first command,
	 * and after it reads only with pipe_read_built() (or descriptors
	 * beneath the build folder). On success *wasm_out (caller frees with
	 * free()) is the module's path relative to p->ctx->scratch. Errors:
	 * VIV_ERR_BUILD or VIV_ERR_INVALID with one sentence for the user in
	 * err (the details are in the build log), VIV_ERR_UNSUPPORTED when
	 * this server cannot build the language, VIV_ERR_TIMEOUT. */
	enum viv_err (*build)(void *tctx, const struct pipe_project *p, char **wasm_out, char *err,
	                      size_t errlen);
};

struct pipe_toolchain {
	const struct pipe_toolchain_ops *ops;
	void *ctx;
};

/* Every language, in detection order, ended by an entry with ops NULL. */
extern const struct pipe_toolchain pipe_toolchains[];

/* The toolchain named name, or NULL. */
const struct pipe_toolchain *pipe_toolchain_find(const char *name);

/* The toolchain for the project: the manifest's language when it names
 * one, else the first whose detect() accepts root. VIV_ERR_INVALID with a
 * sentence in err when nothing fits. *out points into pipe_toolchains. */
VIV_MUST_CHECK enum viv_err pipe_detect(const char *root, const struct pipe_manifest *m,
                                        const struct pipe_toolchain **out, char *err,
                                        size_t errlen);

extern const struct pipe_toolchain_ops pipe_toolchain_c;
extern const struct pipe_toolchain_ops pipe_toolchain_rust;
extern const struct pipe_toolchain_ops pipe_toolchain_as;

/* The pinned AssemblyScript compiler that scripts/setup.sh installs under
 * cfg->tool_dir; the toolchain refuses any other version, because its
 * flags and its output's features are known for this one only. */
#define PIPE_ASC_VERSION "0.27.37"

/* ---- The WebAssembly binary (pipe_wasm.c) ---------------------------------------------- */

enum pipe_wasm_kind {
	PIPE_WASM_FUNC = 0,
	PIPE_WASM_TABLE = 1,
	PIPE_WASM_MEMORY = 2,
	PIPE_WASM_GLOBAL = 3,
	PIPE_WASM_TAG = 4,
};

/* Function types are text, as in viv_imports.h: parameter letters, ':',
 * result letters; i i32, I i64, f f32, F f64, and here also v v128,
 * r funcref, e externref. */
struct pipe_wasm_import {
	char *module;
	char *name;
	enum pipe_wasm_kind kind;
	const char *type; /* functions only, else NULL; points into types */
};

struct pipe_wasm_export {
	char *name;
	enum pipe_wasm_kind kind;
	uint32_t index;
	const char *type; /* functions only, else NULL; points into types */
};

struct pipe_wasm_info {
	char **types; /* the type section */
	uint32_t n_types;
	struct pipe_wasm_import *imports;
	uint32_t n_imports;
	struct pipe_wasm_export *exports;
	uint32_t n_exports;
	uint32_t n_funcs;     /* imported and defined */
	uint32_t *func_types; /* type index of each function, n_funcs of them */
	uint32_t n_tables;
	uint32_t n_memories;
	uint32_t n_globals;
};

/* Parses the sections of a WebAssembly binary that say what it imports and
 * exports (type, import, function, table, memory, global, export), with
 * every read bounds-checked: hostile bytes give VIV_ERR_INVALID with the
 * offset and reason in err, never a crash. Caller frees *out with
 * pipe_wasm_free(). */
VIV_MUST_CHECK enum viv_err pipe_wasm_parse(const void *data, size_t len,
                                            struct pipe_wasm_info **out, char *err, size_t errlen);

/* Accepts NULL. */
void pipe_wasm_free(struct pipe_wasm_info *w);

/* The export named name of that kind, or NULL. */
const struct pipe_wasm_export *pipe_wasm_export_find(const struct pipe_wasm_info *w,
                                                     const char *name, enum pipe_wasm_kind kind);

/* Writes a function type ("ii:i") as people read it: "(i32, i32) -> i32". */
void pipe_wasm_type_text(const char *type, char *buf, size_t len);

/* Decides how the module is served (GUEST-ABI.md): hostcall when it exports
 * run: [] -> [], else cgi when it exports _start: [] -> []. Then checks
 * every import against viv_imports: each must be a function the platform
 * provides, with exactly that type. VIV_ERR_INVALID or VIV_ERR_UNSUPPORTED
 * with one sentence in err, naming each unknown import with its type. */
VIV_MUST_CHECK enum viv_err pipe_wasm_check(const struct pipe_wasm_info *w,
                                            enum viv_guest_mode *mode_out, char *err,
                                            size_t errlen);

/* The names under which pipe_wasm_expose() exports a module's memory and
 * table. */
#define PIPE_WASM_EXPOSED_MEMORY "__vivarium_memory"
#define PIPE_WASM_EXPOSED_TABLE "__vivarium_table"

/* The host reads and writes a guest's memory and calls functions through
 * its table, which WebAssembly's own rules call private when the module
 * does not export them: an optimizer may then drop data segments and
 * stores only the host reads, and table entries only the host calls. A
 * module that exports neither its memory 0 nor its table 0 gets them
 * exported under the reserved names above before any optimizer sees it.
 * When something was added, *out (caller frees with free()) is the new
 * module, *len_out its size and *added_out what it gained
 * (PIPE_EXPOSED_MEMORY, PIPE_EXPOSED_TABLE); with nothing to add, *out is
 * NULL and *added_out 0. Errors as pipe_wasm_parse(). */
#define PIPE_EXPOSED_MEMORY 1u
#define PIPE_EXPOSED_TABLE 2u
VIV_MUST_CHECK enum viv_err pipe_wasm_expose(const void *data, size_t len, char **out,
                                             size_t *len_out, unsigned *added_out, char *errbuf,
                                             size_t errlen);

/* Which of names (NULL-terminated) a relocatable WebAssembly object, as
 * clang writes it, defines as functions visible to other objects (neither
 * local nor weak): found[i] for names[i]. VIV_ERR_UNSUPPORTED when data is
 * not WebAssembly at all (LLVM bitcode, say), VIV_ERR_INVALID when it is
 * malformed or a linked module; the reason in err. */
VIV_MUST_CHECK enum viv_err pipe_wasm_object_defines(const void *data, size_t len,
                                                     const char *const *names, bool *found,
                                                     char *err, size_t errlen);

/* ---- wasm2c's C, line by line (pipe_aot_text.c) --------------------------------------- */

/* One line of a text, without its newline. Borrowed from the text. */
struct pipe_line {
	const char *p;
	size_t n;
};

/* The lines of text (len bytes); a last line without a newline counts, an
 * empty text has none. Caller frees *out with free(). */
VIV_MUST_CHECK enum viv_err pipe_lines_split(const char *text, size_t len, struct pipe_line **out,
                                             size_t *n_out);

/* Whether the line starts with, ends with, or is exactly s. */
bool pipe_line_starts(const struct pipe_line *l, const char *s);
bool pipe_line_ends(const struct pipe_line *l, const char *s);
bool pipe_line_is(const struct pipe_line *l, const char *s);

/* Whether c may be part of a C identifier. */
bool pipe_ident_char(char c);

/* Whether the line starts the head of a module function as wasm2c 1.0.32
 * writes them: "static TYPE w2c_NAME(Z_guest_instance_t*", TYPE made of
 * identifier characters and spaces. */
bool pipe_func_start(const struct pipe_line *l);

/* Whether lines[i] starts a prototype (*is_def false) or a definition of a
 * module function: a pipe_func_start() line, and the parameters on it and
 * on the indented lines wasm2c wraps long lists onto, up to the line
 * (*last_out, i itself when it is one line) that ends with ");" or ") {". */
bool pipe_func_head(const struct pipe_line *lines, size_t n, size_t i, bool *is_def,
                    size_t *last_out);

/* ---- Ahead-of-time compilation (pipe_aot.c) ---------------------------------------- */

/* The tools that make an artifact, found once per process. */
struct pipe_tools {
	const char *cc; /* $VIV_CC, else the default */
	bool cc_is_gcc;
	const char *cc_version;     /* first line of `cc --version` */
	const char *wasm2c_version; /* output of `wasm2c --version` */
	const char *const *cflags;  /* the AOT flags, NULL-terminated */
};

/* The tools, probed on the first call and cached for the process (static
 * storage, never freed). Errors: VIV_ERR_NOT_FOUND or VIV_ERR_BUILD when a
 * tool is missing or fails, with the reason in err. */
VIV_MUST_CHECK enum viv_err pipe_tools_get(struct pipe_ctx *ctx, const struct pipe_tools **out,
                                           char *err, size_t errlen);

/* The artifact hash: sha256 over a header ("vivarium-artifact", the guest
 * ABI, wasm2c's version, the C compiler's version, the AOT flags,
 * PIPE_GUEST_REWRITE_VERSION, the mode) followed by the optimized wasm. */
VIV_MUST_CHECK enum viv_err pipe_artifact_hash(const struct pipe_tools *t, enum viv_guest_mode mode,
                                               const void *wasm, size_t len,
                                               char hex[VIV_SHA256_HEX_LEN + 1]);

/* Splits guest.c as wasm2c 1.0.32 writes it (len bytes) into parts, at
 * most as many as asked (2 or more) and no more than it has function
 * definitions: (*out)[0] replaces guest.c, (*out)[k] is guest_partk.c,
 * compiled on its own and linked with the others. The functions' "static"
 * becomes hidden visibility. VIV_ERR_UNSUPPORTED when
 * the text is not shaped as expected or there is nothing to move out of
 * part 0 (it is then compiled whole), VIV_ERR_INVALID for fewer than 2
 * parts asked. Caller frees with
 * pipe_strv_free(*out, *n_out). */
VIV_MUST_CHECK enum viv_err pipe_guest_split(const char *guest_c, size_t len, unsigned parts,
                                             char ***out, size_t *n_out);

/* What pipe_guest_rewrite() changed. */
struct pipe_rewrite_stats {
	size_t functions; /* definitions given a copy of the memory's struct */
	size_t calls;     /* load and store helper calls that now take it */
};

/* Rewrites guest.c as wasm2c 1.0.32 writes it (len bytes, no NUL) so that
 * its memory accesses cost less (pipe_aot_rewrite.c says how, and why it is
 * exact): each module function hands the load and store helpers a local
 * copy of the memory's struct, and float loads stay in float registers.
 * *out (caller frees with free()) is the new text, a C string; *stats_out
 * (may be NULL) what changed. VIV_ERR_UNSUPPORTED, with nothing made, when
 * the text has any other shape: it is then compiled as it is. */
VIV_MUST_CHECK enum viv_err pipe_guest_rewrite(const char *guest_c, size_t len, char **out,
                                               struct pipe_rewrite_stats *stats_out);

/* Bumped whenever pipe_guest_rewrite() changes what it writes: the artifact
 * hash covers it, as it decides the artifact's code. */
#define PIPE_GUEST_REWRITE_VERSION 1

/* The most of wasm2c's C the pipeline reads back to reshape it. */
#define PIPE_GUEST_C_MAX (512u * 1024 * 1024)

/* How many parts a module whose wasm2c output is guest_c_len bytes is
 * compiled in: one per cfg->aot_part_bytes, at most cfg->aot_parts_max,
 * at least 1. */
unsigned pipe_guest_parts(const struct pipe_config *cfg, size_t guest_c_len);

/* Compiles guest.c in the build folder (with glue.c, which includes it)
 * in the given number of parts at once and links them into guest.so,
 * with the AOT flags. VIV_ERR_UNSUPPORTED, with nothing changed, when
 * guest.c cannot be split; otherwise as compiling it whole would fail,
 * with a sentence in err. */
VIV_MUST_CHECK enum viv_err pipe_cc_parts(struct pipe_ctx *ctx, const struct pipe_tools *t,
                                          unsigned parts, char *err, size_t errlen);

/* "-I" and the platform's include folder as the compiler sees it
 * (pipe_tool_path()). Caller frees with free(); NULL when out of memory. */
char *pipe_include_flag(const struct pipe_ctx *ctx);

/* What glue.c needs to know about the wasm2c output. */
struct pipe_guest_shape {
	unsigned n_import_instances; /* parameters of Z_guest_instantiate after the instance */
	char memory_field[128];      /* first wasm_rt_memory_t member, "" when none */
	char table_field[128];       /* first wasm_rt_funcref_table_t member, "" when none */
};

/* Reads guest.h as wasm2c 1.0.32 writes it for module name "guest".
 * VIV_ERR_INTERNAL with the reason in err when it is not shaped as
 * expected. */
VIV_MUST_CHECK enum viv_err
pipe_guest_shape_parse(const char *guest_h, struct pipe_guest_shape *out, char *err, size_t errlen);

/* What the artifact is. */
struct pipe_glue_spec {
	enum viv_guest_mode mode;
	bool has_initialize; /* the module exports _initialize */
	const char *hash;    /* the artifact hash */
	bool has_malloc;     /* exports default_malloc_impl: [i32] -> [i32] */
	bool has_free;       /* exports default_free_impl: [i32] -> [] */
};

/* The text of glue.c: includes guest.c and viv_guest.h and defines
 * vivarium_guest for guest.h's text. Checks that each symbol it refers to
 * is declared in guest.h. Caller frees *out with free(). */
VIV_MUST_CHECK enum viv_err pipe_glue_generate(const char *guest_h,
                                               const struct pipe_glue_spec *spec, char **out,
                                               char *err, size_t errlen);

/* Runs wasm2c on wasm (a path relative to the build folder,
 * ctx->scratch) into guest.c and guest.h there, rewrites guest.c
 * (pipe_guest_rewrite(); another shape is noted in the build log and left
 * as it is), writes glue.c and compiles it into guest.so with the tools'
 * AOT flags, recording the "wasm2c", "glue" (which includes the rewrite)
 * and "cc" timings through timing (may be NULL). What wasm2c wrote is read
 * as pipe_read_built() reads. Errors have a sentence for the user in
 * err. */
VIV_MUST_CHECK enum viv_err pipe_aot(struct pipe_ctx *ctx, const struct pipe_tools *t,
                                     const char *wasm, const struct pipe_glue_spec *spec,
                                     void (*timing)(void *arg, const char *step, int64_t ms),
                                     void *timing_arg, char *err, size_t errlen);

/* ---- The build key (pipe_buildkey.c) --------------------------------------------------- */

/* The build key of an upload whose bytes have the sha256 upload_sha256 (64
 * hex digits): a sha256 over it and a fingerprint of everything on this
 * server that decides what a build makes of the upload: this program's own
 * file (the pipeline's code, the flags it passes, the guest ABI), the AOT
 * tools' versions and flags, the size, times and inode of every program a
 * build runs and of Debian's package database, the npm toolchain's
 * package.json files, the contents of the SDK folders and the artifact
 * include folder, the environment that picks tools, and cfg's paths, limits
 * and caps. An upload with the key of an earlier successful build would
 * build the same, so it may take that build over. Costs a few stat calls and
 * hashing the SDK (about 150 KB) per call; this program's file is hashed
 * once per process and the AOT tools are probed once (pipe_tools_get()).
 * On failure err says why (a folder too large to hash, a tool that does not
 * run). */
VIV_MUST_CHECK enum viv_err pipe_build_key(struct pipe_ctx *ctx, const char *upload_sha256,
                                           char hex[VIV_SHA256_HEX_LEN + 1], char *err,
                                           size_t errlen);

/* Appends one line to b naming what is at path: "WHAT PATH" and its mode,
 * device, inode, size, modification and change times (a package upgrade
 * writes new files), or "none". stat follows symbolic links, so a link
 * moved to another target shows too. VIV_ERR_TOO_BIG or VIV_ERR_NOMEM from
 * the buffer. */
VIV_MUST_CHECK enum viv_err pipe_key_identity(struct viv_buf *b, const char *what,
                                              const char *path);

/* Appends one line to b naming the contents of the folder dir (its
 * pipe_assets_hash()), or "none" when it is not a folder: contents rather
 * than identity, since editing a file leaves a folder's times alone. A tree
 * of more than 2000 entries or 16 MiB, or holding anything but files and
 * folders, is an error with the reason in err. */
VIV_MUST_CHECK enum viv_err pipe_key_tree(struct viv_buf *b, const char *dir, char *err,
                                          size_t errlen);

/* ---- Shared constants ------------------------------------------------------- */

/* wasm-opt's feature flags: exactly what wasm2c 1.0.32 translates, except
 * SIMD (it needs simde, which artifacts are not built with). */
extern const char *const pipe_wasm_opt_features[];

#endif
