/* What vivd does as root before anything touches a tenant: the users its
 * roles become, the data folder they own, the mounts and sockets they
 * share. Private to vivd/. */
#ifndef VIVD_PRIVILEGES_H
#define VIVD_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A user a role runs as: its ids and the supplementary groups it keeps. */
struct vivd_user {
	char name[64];
	uid_t uid;
	gid_t gid;
	gid_t groups[2];
	int n_groups;
};

/* Looks name up in the user database. -1 with a sentence in err when there
 * is no such user. */
int vivd_user_lookup(const char *name, struct vivd_user *out, char *err, size_t errlen);

/* Becomes u for the rest of the process: its supplementary groups, group
 * and user (real, effective and saved), with no capabilities left (the
 * bounding and ambient sets emptied, so none can come back through exec)
 * and PR_SET_NO_NEW_PRIVS. Checks the result and returns -1 with a
 * sentence in err when anything is left; the caller must not go on. */
int vivd_become(const struct vivd_user *u, char *err, size_t errlen);

/* Sets PR_SET_NO_NEW_PRIVS and checks that the process has no
 * capabilities: what a role does when vivd did not start as root. */
int vivd_no_new_privs(char *err, size_t errlen);

/* open(path, flags) with no capability in effect for it: a file that looks
 * at its opener's capabilities when read (/proc/self/pagemap shows
 * physical page numbers only to one that had CAP_SYS_ADMIN) sees none. The
 * capabilities in effect before are back on return. -1 with errno on
 * failure. */
int vivd_open_without_caps(const char *path, int flags);

/* Whether u may reach path with access(2)'s mode, asked by a child process
 * that becomes u. */
bool vivd_user_can(const struct vivd_user *u, const char *path, int mode);

struct pipe_config;

/* Whether bubblewrap can make a sandbox as u with cfg's folders (a child
 * that becomes u runs pipe_sandbox_available()); why says what is wrong
 * otherwise. */
bool vivd_user_sandbox(const struct vivd_user *u, const struct pipe_config *cfg, char *why,
                       size_t whylen);

/* Gives this process (and the children it starts) a mount namespace of
 * its own whose mounts do not reach the host's, so that the builders'
 * folders vanish with vivd. Root only. */
int vivd_private_mounts(char *err, size_t errlen);

/* Shows the folder src, read-only, at dst (made when missing), a bind
 * mount in vivd's own mount namespace: for folders its users could not
 * reach where they are (a checkout in root's home). */
int vivd_bind_readonly(const char *src, const char *dst, char *err, size_t errlen);

/* Mounts a tmpfs of size_mb MiB (and one inode per 4 KiB of it) on the
 * existing folder dir, its root owned by uid and gid with mode 0710. */
int vivd_mount_tmpfs(const char *dir, unsigned size_mb, uid_t uid, gid_t gid, char *err,
                     size_t errlen);

/* Makes dir (mode 0711) owned by uid and gid when it is missing. A folder
 * that root owns (one an earlier vivd made while it ran everything as
 * root) is handed over with everything in it, by descriptor and without
 * following links; files with several names are left alone. Then dir is
 * made mode 0711, so that the build user can pass through it to the build
 * folders and no further. */
int vivd_datadir_prepare(const char *dir, uid_t uid, gid_t gid, char *err, size_t errlen);

/* Descriptors a runner worker needs beside two per request in flight (its
 * client's connection and one outbound connection): listeners, the store,
 * its loop, logs. */
#define VIVD_WORKER_FDS 256

/* Raises this process's descriptor limit, which every role inherits, for
 * workers that each run up to sandboxes instances at once, each with its
 * client's connection and an outbound one: the soft limit to the hard one,
 * and the hard one to 2 * sandboxes + VIVD_WORKER_FDS where the process may
 * (CAP_SYS_RESOURCE). false, with a sentence in why saying how many
 * requests a worker can then hold in flight and what to raise, when the
 * limit stays below that; the limits are raised as far as they go either
 * way. */
bool vivd_raise_nofile(unsigned sandboxes, char *why, size_t whylen);

/* Whether vm.max_map_count leaves room for a worker with sandboxes slots
 * (up to four mappings each: its memory's accessible part and the rest, its
 * stack and the stack's guard). false with a sentence in why when it does
 * not; true when it does or cannot be read. */
bool vivd_map_count_fits(unsigned sandboxes, char *why, size_t whylen);

#endif
