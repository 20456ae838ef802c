/* vivd as root: the users its roles become and how, the data folder they
 * own, the builders' folders and the launcher's socket. Nothing here runs
 * after a role has become its user. */
#include "privileges.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline.h"
#include "viv.h"

#define ADOPT_DEPTH_MAX 64

int vivd_user_lookup(const char *name, struct vivd_user *out, char *err, size_t errlen)
{
	struct passwd *pw;

	memset(out, 0, sizeof(*out));
	errno = 0;
	pw = getpwnam(name);
	if (!pw || strlen(name) >= sizeof(out->name)) {
		viv_errf(err, errlen,
		         "there is no user %s on this machine; scripts/setup.sh makes the users "
		         "vivd runs as, or name others with --user and --build-user",
		         name);
		return -1;
	}
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	out->groups[0] = pw->pw_gid;
	out->n_groups = 1;
	return 0;
}

/* The capability sets of this process, from capget. */
static int caps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	*eff = (uint64_t)d[1].effective << 32 | d[0].effective;
	*prm = (uint64_t)d[1].permitted << 32 | d[0].permitted;
	*inh = (uint64_t)d[1].inheritable << 32 | d[0].inheritable;
	return 0;
}

/* Empties the effective, permitted and inheritable sets (always allowed). */
static void caps_clear(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	syscall(SYS_capset, &h, d);
}

int vivd_open_without_caps(const char *path, int flags)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2], none[2];
	int fd, saved;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	memcpy(none, d, sizeof(none));
	none[0].effective = 0;
	none[1].effective = 0;
	if (syscall(SYS_capset, &h, none) != 0)
		return -1;
	fd = open(path, flags);
	saved = errno;
	/* Lowering only the effective set keeps the permitted one, so this
	 * is allowed. */
	syscall(SYS_capset, &h, d);
	errno = saved;
	return fd;
}

/* No capability in any set, none that exec could bring. */
static int check_no_caps(char *err, size_t errlen)
{
	uint64_t eff, prm, inh;

	if (caps_get(&eff, &prm, &inh) != 0 || eff || prm || inh) {
		viv_errf(err, errlen, "capabilities are left after dropping them");
		return -1;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		viv_errf(err, errlen, "no_new_privs is not set");
		return -1;
	}
	return 0;
}

int vivd_no_new_privs(char *err, size_t errlen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		viv_errf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	/* A non-root vivd may still have been given capabilities (file
	 * capabilities, a container's defaults): its roles keep none. */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	caps_clear();
	return check_no_caps(err, errlen);
}

int vivd_become(const struct vivd_user *u, char *err, size_t errlen)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	if (u->uid == 0) {
		viv_errf(err, errlen,
		         "the user %s is root; vivd runs tenants' code as an "
		         "unprivileged user",
		         u->name);
		return -1;
	}
	/* The bounding set is emptied while this process may still do it
	 * (CAP_SETPCAP), so no exec can give a capability back. */
	for (int cap = 0; cap <= 63; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
			viv_errf(err, errlen, "cannot drop capability %d: %s", cap,
			         strerror(errno));
			return -1;
		}
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (setgroups((size_t)u->n_groups, u->groups) != 0 ||
	    setresgid(u->gid, u->gid, u->gid) != 0 || setresuid(u->uid, u->uid, u->uid) != 0) {
		viv_errf(err, errlen, "cannot become %s: %s", u->name, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		viv_errf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	caps_clear();
	/* Changing uid from 0 cleared the permitted and effective sets;
	 * check everything rather than trust it. */
	if (getresuid(&r, &e, &s) != 0 || r != u->uid || e != u->uid || s != u->uid ||
	    getresgid(&gr, &ge, &gs) != 0 || gr != u->gid || ge != u->gid || gs != u->gid ||
	    setuid(0) == 0) {
		viv_errf(err, errlen, "still privileged after becoming %s", u->name);
		return -1;
	}
	return check_no_caps(err, errlen);
}

/* Runs fn(u, arg) in a child that becomes u first; its exit status, or -1.
 * What the child writes to the descriptor it is given comes back in msg. */
static int as_user(const struct vivd_user *u, int (*fn)(const struct vivd_user *, void *, int),
                   void *arg, char *msg, size_t msglen)
{
	int p[2], status = 0;
	pid_t pid;
	ssize_t n;

	if (msg && msglen)
		msg[0] = '\0';
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		char err[256];

		close(p[0]);
		if (vivd_become(u, err, sizeof(err)) != 0) {
			if (write(p[1], err, strlen(err)) < 0)
				_exit(2);
			_exit(2);
		}
		_exit(fn(u, arg, p[1]));
	}
	close(p[1]);
	n = msg && msglen > 1 ? read(p[0], msg, msglen - 1) : 0;
	if (msg && msglen)
		msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct access_q {
	const char *path;
	int mode;
};

static int child_access(const struct vivd_user *u, void *arg, int fd)
{
	const struct access_q *q = arg;

	(void)u;
	(void)fd;
	return access(q->path, q->mode) == 0 ? 0 : 1;
}

bool vivd_user_can(const struct vivd_user *u, const char *path, int mode)
{
	struct access_q q = {path, mode};

	return as_user(u, child_access, &q, NULL, 0) == 0;
}

static int child_sandbox(const struct vivd_user *u, void *arg, int fd)
{
	char why[512];

	(void)u;
	if (pipe_sandbox_available(arg, why, sizeof(why)))
		return 0;
	if (write(fd, why, strlen(why)) < 0)
		return 1;
	return 1;
}

bool vivd_user_sandbox(const struct vivd_user *u, const struct pipe_config *cfg, char *why,
                       size_t whylen)
{
	return as_user(u, child_sandbox, (void *)cfg, why, whylen) == 0;
}

int vivd_private_mounts(char *err, size_t errlen)
{
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		viv_errf(err, errlen, "cannot make a mount namespace of its own: %s",
		         strerror(errno));
		return -1;
	}
	return 0;
}

int vivd_bind_readonly(const char *src, const char *dst, char *err, size_t errlen)
{
	if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
		viv_errf(err, errlen, "cannot make %s: %s", dst, strerror(errno));
		return -1;
	}
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0 ||
	    mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) !=
	            0) {
		viv_errf(err, errlen, "cannot show %s at %s: %s", src, dst, strerror(errno));
		return -1;
	}
	return 0;
}

int vivd_mount_tmpfs(const char *dir, unsigned size_mb, uid_t uid, gid_t gid, char *err,
                     size_t errlen)
{
	char opts[200];

	snprintf(opts, sizeof(opts), "size=%um,nr_inodes=%u,mode=0710,uid=%ld,gid=%ld", size_mb,
	         size_mb * 256u, (long)uid, (long)gid);
	if (mount("vivarium-build", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		viv_errf(err, errlen, "cannot mount a %u MiB tmpfs on %s: %s", size_mb, dir,
		         strerror(errno));
		return -1;
	}
	return 0;
}

/* Hands what the folder open at dfd holds to uid and gid. */
static int adopt_contents(int dfd, uid_t uid, gid_t gid, int depth)
{
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (depth > ADOPT_DEPTH_MAX)
		return -1;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		/* A second name could be a file outside the data folder. */
		if (!S_ISDIR(st.st_mode) && st.st_nlink != 1)
			continue;
		if (fchownat(dirfd(d), de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
			rc = -1;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || adopt_contents(sub, uid, gid, depth + 1) != 0)
				rc = -1;
		}
	}
	closedir(d);
	return rc;
}

int vivd_datadir_prepare(const char *dir, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (mkdir(dir, 0711) != 0 && errno != EEXIST) {
		viv_errf(err, errlen, "cannot make the data folder %s: %s", dir, strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		viv_errf(err, errlen, "cannot open the data folder %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid == 0) {
		int walk = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (fchown(fd, uid, gid) != 0 || walk < 0 || adopt_contents(walk, uid, gid, 0) != 0)
			viv_log(VIV_WARN, "could not hand all of %s to uid %ld", dir, (long)uid);
		else
			viv_log(VIV_INFO, "handed %s to uid %ld", dir, (long)uid);
	} else if (st.st_uid != uid) {
		viv_errf(err, errlen,
		         "the data folder %s belongs to uid %ld, not to the user vivd runs as "
		         "(uid %ld); give it to that user or pick another folder",
		         dir, (long)st.st_uid, (long)uid);
		close(fd);
		return -1;
	}
	if (fchmod(fd, 0711) != 0) {
		viv_errf(err, errlen, "cannot set the mode of %s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

bool vivd_raise_nofile(unsigned sandboxes, char *why, size_t whylen)
{
	rlim_t want = (rlim_t)sandboxes * 2 + VIVD_WORKER_FDS;
	struct rlimit rl;

	if (whylen)
		why[0] = '\0';
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return true;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit up = {want, want};

		/* Only a process with CAP_SYS_RESOURCE may raise the hard limit. */
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	/* Workers watch their descriptors with epoll, never select(), so
	 * numbers past 1024 are fine; the soft limit of 1024 that most
	 * systems start processes with would cap a worker at about 400
	 * requests in flight. */
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		viv_errf(why, whylen,
		         "the descriptor limit (RLIMIT_NOFILE) is %lu, so a worker can hold about "
		         "%lu "
		         "requests in flight, fewer than its %u sandboxes: raise the hard limit to "
		         "%lu (LimitNOFILE= in its systemd unit, or ulimit -Hn as root)",
		         (unsigned long)rl.rlim_max,
		         rl.rlim_max > VIVD_WORKER_FDS
		                 ? (unsigned long)(rl.rlim_max - VIVD_WORKER_FDS) / 2
		                 : 0ul,
		         sandboxes, (unsigned long)want);
		return false;
	}
	return true;
}

bool vivd_map_count_fits(unsigned sandboxes, char *why, size_t whylen)
{
	long have = -1, want = (long)sandboxes * 4 + 4096;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	if (whylen)
		why[0] = '\0';
	if (!f)
		return true;
	if (fscanf(f, "%ld", &have) != 1)
		have = -1;
	fclose(f);
	if (have < 0 || have >= want)
		return true;
	viv_errf(why, whylen,
	         "vm.max_map_count is %ld and a worker with %u sandboxes may need %ld mappings: "
	         "when it runs out, instances fail to start (sysctl -w vm.max_map_count=%ld)",
	         have, sandboxes, want, want);
	return false;
}
