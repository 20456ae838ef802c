/* The build pipeline: from an uploaded tarball or .wasm to an artifact .so.
 * Steps: unpack (libarchive, with caps), manifest, static assets (hashed
 * and stored), language detection, the language's toolchain (C and C++,
 * Rust, AssemblyScript, WAT, or a prebuilt .wasm), wasm-opt, validation and
 * the import check of GUEST-ABI.md, wasm2c, glue, and the C compiler. Every
 * step is a child process with an argv array, a timeout and an output cap,
 * optionally inside a bubblewrap sandbox; its output goes to the
 * deployment's build log and its duration to the deployment's timings, both
 * through store/. */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"
#include "viv.h"

/* The cgroup v1 folders under which each command of a build's language
 * step gets a memory and a pids cgroup of its own (pipe_cgroups_setup()).
 * Both NULL: there are none, and rlimits bound those commands instead. */
struct pipe_cgroups {
	char *memory;
	char *pids;
};

struct pipe_config {
	/* The builders' store: PostgreSQL, as store_open_db() takes it; NULL:
	 * SQLite in the data directory. */
	const char *store_url;
	/* How long a builder's claim holds without its heartbeat, which renews
	 * it every third of that (0: STORE_LEASE_MS_DEFAULT). */
	unsigned lease_ms;
	/* Directory holding wasm-rt.h's companions for artifact builds:
	 * common/ (viv_guest.h). */
	const char *include_dir;
	/* The SDK root (sdk/); sdk/c is on the include path of C builds. */
	const char *sdk_dir;
	/* Where set-up installed extra toolchains (npm packages). */
	const char *tool_dir;
	size_t upload_max;         /* bytes of one upload */
	size_t unpack_max_bytes;   /* bytes written when unpacking */
	size_t unpack_max_entries; /* entries in one archive */
	size_t assets_max_entries; /* files and folders of static assets */
	uint64_t assets_max_bytes; /* bytes of static assets */
	unsigned step_timeout_ms;  /* each child process */
	size_t step_output_cap;    /* bytes of output kept per step */
	bool sandbox;              /* run toolchains under bubblewrap */
	/* A large module's C is compiled in parts at once: one part per this
	 * many bytes of wasm2c output (0: PIPE_AOT_PART_BYTES), at most
	 * aot_parts_max of them (the defaults: one per CPU, at most 4; 1
	 * compiles every module whole). */
	size_t aot_part_bytes;
	unsigned aot_parts_max;
	struct viv_limits limits_default;
	struct viv_limits limits_max;

	/* What the language step of a build (the one that runs the
	 * tenant's code: build scripts, compiler plugins) may use. Memory
	 * and processes are a cgroup's limits where cgroups are set (the
	 * memory limit is build_memory_mb plus build_disk_mb, as the kernel
	 * charges the files of the build folder's tmpfs as memory), else
	 * RLIMIT_DATA per process and RLIMIT_NPROC per user; 0 is no limit.
	 * The folder a build writes is as large as the operator made it
	 * (vivd mounts a tmpfs of build_disk_mb per builder when it starts
	 * as root); build_disk_mb names it in messages. */
	unsigned build_memory_mb;
	unsigned build_procs_max;
	unsigned build_disk_mb;
	/* A whole build's wall time, every step included. */
	unsigned build_timeout_ms;
	struct pipe_cgroups cgroups; /* borrowed */
	/* The abstract unix socket name of the launcher (pipe_launcher_main)
	 * that runs the language steps as the build user; NULL runs them in
	 * this process, as this user. */
	const char *launcher;
	/* The group of the build user, which this process's user belongs
	 * to: the folder a language step writes is given to it. -1: none
	 * (both run as the same user). */
	gid_t build_gid;
	/* Where builds make their folders: builder k of pipe_builder_start()
	 * uses builds_dir/k (made when missing). NULL: the store's builds
	 * folder. */
	const char *builds_dir;
	/* How many builds run at once (pipe_builder_start()). */
	unsigned builders;
};

/* The C that one compiler process takes in a module compiled in parts: the
 * Rust hello's 610 KiB took 1.45 s of CPU whole or in two parts, so two
 * compilers at once on two idle cores save 0.6 s; below this a part costs
 * more in process start and linking than it saves. */
#define PIPE_AOT_PART_BYTES (96 * 1024)
#define PIPE_AOT_PARTS_MAX 4

/* Fills cfg with the platform defaults; the paths are the folders of
 * viv_share_dir() (NULL when it found none). */
void pipe_config_defaults(struct pipe_config *cfg);

/* Builds one deployment that store_deployment_claim() moved to building,
 * in a folder of its own under builds_dir (NULL: the store's builds
 * folder): reads its upload from store_upload_path(), and records the log,
 * timings and outcome (store_deployment_ready or store_deployment_failed)
 * through st. An upload whose build key (its sha256 and this server's build tools
 * and settings) is that of an earlier ready deployment whose artifact is
 * still stored takes that build over, without unpacking or compiling. A
 * failed build is an outcome, not an error: the result is VIV_OK whenever
 * the outcome was recorded. The upload and the scratch directory are
 * removed at the end. */
VIV_MUST_CHECK enum viv_err pipe_build(struct store *st, const struct pipe_config *cfg,
                                       const char *builds_dir, int64_t deployment_id);

/* The builders: cfg->builders threads (at most 64), each with its own
 * store connection, that requeue interrupted builds at start, then claim
 * and build queued deployments until stopped. An idle thread waits on the
 * store's queue notification (store_queue_wait()), so a deployment queued
 * by any process on this data directory starts at once. cfg is copied.
 * On failure the reason goes to the operator log. Caller stops and frees
 * it with pipe_builder_stop(). */
struct pipe_builder;
VIV_MUST_CHECK enum viv_err pipe_builder_start(const char *datadir, const struct pipe_config *cfg,
                                               struct pipe_builder **out);
/* Wakes the idle threads to look at the queue now. */
void pipe_builder_wake(struct pipe_builder *b);
/* Lets the current builds finish, stops the threads and frees b; accepts
 * NULL. */
void pipe_builder_stop(struct pipe_builder *b);

/* The builder role's process (`vivd builder`, and a process of its own in
 * `vivd serve`): runs the builders until SIGTERM or SIGINT, then lets the
 * builds in progress finish. cfg is borrowed for the call. Returns the
 * process exit status. */
int pipe_builder_main(const char *datadir, const struct pipe_config *cfg);

/* Static files that a runner host fetched (GET /v1/assets/{hash}): unpacks
 * the tar at path tar into the empty folder scratch as an upload is
 * unpacked (regular files and folders only, within cfg's limits), and checks
 * that the tree is the one hash names, its content hash. On success
 * *root_out (caller frees) is the tree's folder, for store_assets_put().
 * VIV_ERR_INVALID with a sentence in why when it is not. */
VIV_MUST_CHECK enum viv_err pipe_assets_fetched(const struct pipe_config *cfg, const char *tar,
                                                const char *scratch, const char *hash,
                                                char **root_out, char *why, size_t whylen);

/* Checks that bubblewrap can run a command here with the folders of cfg
 * (NULL: the defaults) mounted as builds have them; on failure errbuf says
 * why. Called once at startup to decide cfg->sandbox. */
bool pipe_sandbox_available(const struct pipe_config *cfg, char *errbuf, size_t errlen);

/* Makes (or finds) the folders "vivarium-builds" under this process's own
 * cgroups in the cgroup v1 memory and pids hierarchies, given to owner
 * and group ((uid_t)-1: left as they are, and they must be writable), so
 * that a launcher running as owner can make a cgroup per command in them.
 * VIV_ERR_UNSUPPORTED with the reason in why when the machine has no such
 * hierarchies or they cannot be written (rlimits are then the limits).
 * Caller frees with pipe_cgroups_free(). */
VIV_MUST_CHECK enum viv_err pipe_cgroups_setup(struct pipe_cgroups *cg, uid_t owner, gid_t group,
                                               char *why, size_t whylen);
/* Frees the paths; accepts a zeroed struct. */
void pipe_cgroups_free(struct pipe_cgroups *cg);

/* The launcher: serves builders' requests on listen_fd (a listening unix
 * stream socket) until SIGTERM, each in a process of its own: run one
 * command of a build's language step, as pipe_spawn() would with the
 * build limits, and answer with how it ended and what it printed; or
 * empty a build's folder (the files its commands made belong to this
 * user). Only peers running as client_uid, root or this user are served.
 * Runs as the build user; returns the process's exit status. */
int pipe_launcher_main(const struct pipe_config *cfg, int listen_fd, uid_t client_uid);

/* A listening unix stream socket for a launcher, with a fresh abstract
 * name (written to name, at most len bytes: cfg->launcher). -1 with errno
 * on failure. */
int pipe_launcher_listen(char *name, size_t len);

#endif
