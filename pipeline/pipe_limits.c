/* The limits of a build's language step, the one that runs the tenant's
 * code: a cgroup per command where the machine has cgroup v1 memory and
 * pids hierarchies we may write (the kernel then counts what hit a limit),
 * rlimits otherwise; and how full the build folder is. */
#include "pipeline_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define CG_PARENT "vivarium-builds"
#define TMPFS_MAGIC_NUMBER 0x01021994
/* Less free space than this after a failed step means it filled the
 * folder: a tool that stops on ENOSPC leaves at most a page or two. */
#define DISK_FULL_SLACK (256 * 1024)

/* ---- Finding the hierarchies ---------------------------------------------------------- */

/* The mount point of the cgroup v1 hierarchy with controller name, from
 * /proc/self/mountinfo, into buf. */
static bool v1_mount(const char *name, char *buf, size_t len)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - cgroup ");
		char *opts, *mnt, *tok, *save = NULL;
		int field = 0;

		if (!sep)
			continue;
		/* The super options come last: "rw,memory". */
		opts = strrchr(sep, ' ');
		if (!opts)
			continue;
		opts++;
		opts[strcspn(opts, "\n")] = '\0';
		for (tok = strtok_r(opts, ",", &save); tok && !found;
		     tok = strtok_r(NULL, ",", &save))
			found = strcmp(tok, name) == 0;
		if (!found)
			continue;
		/* The fifth field is the mount point. */
		mnt = line;
		for (field = 0; field < 4 && mnt; field++) {
			mnt = strchr(mnt, ' ');
			if (mnt)
				mnt++;
		}
		if (!mnt || snprintf(buf, len, "%.*s", (int)strcspn(mnt, " "), mnt) >= (int)len)
			found = false;
	}
	fclose(f);
	return found;
}

/* This process's cgroup in the v1 hierarchy with controller name
 * ("/process_api/x"), from /proc/self/cgroup. */
static bool v1_own(const char *name, char *buf, size_t len)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/cgroup", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *ctrl = strchr(line, ':'), *path, *tok, *save = NULL;

		if (!ctrl)
			continue;
		ctrl++;
		path = strchr(ctrl, ':');
		if (!path)
			continue;
		*path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		for (tok = strtok_r(ctrl, ",", &save); tok && !found;
		     tok = strtok_r(NULL, ",", &save))
			found = strcmp(tok, name) == 0;
		if (found && snprintf(buf, len, "%s", path) >= (int)len)
			found = false;
	}
	fclose(f);
	return found;
}

/* The process a command's cgroup is named after (see cg_dir), 0 when the
 * name is not of that form. */
static pid_t cg_owner(const char *name)
{
	const char *end;
	uint64_t pid;

	if (!viv_parse_u64(name, &end, INT32_MAX, &pid) || *end != '-' || pid == 0)
		return 0;
	return (pid_t)pid;
}

/* Removes the commands' cgroups that processes since ended left in dir.
 * Another server on this machine shares dir: a cgroup whose process lives
 * may be one it has just made and not yet joined, and removing it would
 * fail that command (the kernel refuses the join with ENODEV). A cgroup
 * someone is in is refused by rmdir anyway. */
static void remove_stale(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d)) != NULL) {
		pid_t owner;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		owner = cg_owner(de->d_name);
		if (owner > 0 && owner != getpid() && kill(owner, 0) != 0 && errno == ESRCH)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	if (d)
		closedir(d);
}

/* Makes (or finds) DIR/CG_PARENT under this process's cgroup in the
 * hierarchy of controller name, owned by owner so that a process running
 * as owner can make cgroups in it and move its own children there. */
static enum viv_err v1_parent(const char *name, uid_t owner, gid_t group, char **out, char *why,
                              size_t whylen)
{
	char mnt[512], own[512], *dir = NULL;
	enum viv_err err = VIV_ERR_UNSUPPORTED;

	*out = NULL;
	if (!v1_mount(name, mnt, sizeof(mnt)) || !v1_own(name, own, sizeof(own))) {
		viv_errf(why, whylen, "no cgroup v1 %s hierarchy", name);
		return err;
	}
	if (asprintf(&dir, "%s%s/" CG_PARENT, mnt, strcmp(own, "/") ? own : "") < 0)
		return VIV_ERR_NOMEM;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		viv_errf(why, whylen, "cannot make %s: %s", dir, strerror(errno));
		goto out;
	}
	remove_stale(dir);
	if (owner != (uid_t)-1) {
		static const char *const files[] = {"", "/cgroup.procs", "/tasks"};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			char path[1100];
			snprintf(path, sizeof(path), "%s%s", dir, files[i]);
			if (chown(path, owner, group) != 0) {
				viv_errf(why, whylen, "cannot hand %s to the build user: %s", path,
				         strerror(errno));
				goto out;
			}
		}
	} else if (access(dir, W_OK) != 0) {
		viv_errf(why, whylen, "cannot write %s", dir);
		goto out;
	}
	*out = dir;
	dir = NULL;
	err = VIV_OK;
out:
	free(dir);
	return err;
}

enum viv_err pipe_cgroups_setup(struct pipe_cgroups *cg, uid_t owner, gid_t group, char *why,
                                size_t whylen)
{
	enum viv_err err;

	memset(cg, 0, sizeof(*cg));
	err = v1_parent("memory", owner, group, &cg->memory, why, whylen);
	if (!err)
		err = v1_parent("pids", owner, group, &cg->pids, why, whylen);
	if (err) {
		free(cg->memory);
		free(cg->pids);
		memset(cg, 0, sizeof(*cg));
	}
	return err;
}

void pipe_cgroups_free(struct pipe_cgroups *cg)
{
	if (!cg)
		return;
	free(cg->memory);
	free(cg->pids);
	memset(cg, 0, sizeof(*cg));
}

/* ---- One command's cgroups ------------------------------------------------------------ */

struct pipe_cg {
	char *mem;     /* its memory cgroup's folder, NULL when none */
	char *pids;    /* its pids cgroup's folder */
	int mem_procs; /* cgroup.procs of each, open for the child to join */
	int pids_procs;
};

static enum viv_err write_text(const char *dir, const char *file, const char *text)
{
	char path[1100];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return VIV_ERR_IO;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? VIV_OK : VIV_ERR_IO;
}

/* The number after key in a "key value" file, 0 when absent. */
static long long read_key(const char *dir, const char *file, const char *key)
{
	char path[1100], *text = NULL, *p;
	size_t len = 0, k = strlen(key);
	uint64_t n = 0;
	long long v = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (viv_read_file(path, 64 * 1024, &text, &len) != VIV_OK)
		return 0;
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, k) == 0 && p[k] == ' ') {
			const char *end;

			if (viv_parse_u64(p + k + 1, &end, INT64_MAX, &n) &&
			    (*end == '\n' || *end == '\0'))
				v = (long long)n;
			break;
		}
	}
	free(text);
	return v;
}

/* A new cgroup folder under parent, named after this process and a
 * counter. */
static enum viv_err cg_dir(const char *parent, char **out)
{
	static unsigned long counter;
	unsigned long n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	if (asprintf(out, "%s/%ld-%lu", parent, (long)getpid(), n) < 0) {
		*out = NULL;
		return VIV_ERR_NOMEM;
	}
	/* A folder of this name was left by an earlier process with this
	 * pid, which has ended: it is stale, and removed when empty. */
	if (mkdir(*out, 0755) != 0 &&
	    (errno != EEXIST || rmdir(*out) != 0 || mkdir(*out, 0755) != 0)) {
		free(*out);
		*out = NULL;
		return VIV_ERR_IO;
	}
	return VIV_OK;
}

static int open_procs(const char *dir)
{
	char path[1100];

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	return open(path, O_WRONLY | O_CLOEXEC);
}

enum viv_err pipe_cg_make(const struct pipe_config *cfg, struct pipe_cg **out)
{
	struct pipe_cg *cg;
	char num[32];
	enum viv_err err;

	*out = NULL;
	if (!cfg->cgroups.memory || !cfg->cgroups.pids)
		return VIV_ERR_UNSUPPORTED;
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return VIV_ERR_NOMEM;
	cg->mem_procs = cg->pids_procs = -1;
	err = cg_dir(cfg->cgroups.memory, &cg->mem);
	if (!err)
		err = cg_dir(cfg->cgroups.pids, &cg->pids);
	if (err)
		goto fail;
	if (cfg->build_memory_mb) {
		/* The kernel charges a tmpfs's files to the memory of whoever
		 * wrote them: the build folder's size comes on top, so that a
		 * full folder is told as such and not as an out-of-memory
		 * kill. */
		snprintf(num, sizeof(num), "%llu",
		         ((unsigned long long)cfg->build_memory_mb + cfg->build_disk_mb) * 1024 *
		                 1024);
		err = write_text(cg->mem, "memory.limit_in_bytes", num);
		/* With swap accounting, swap counts too (it may be off). */
		if (!err)
			write_text(cg->mem, "memory.memsw.limit_in_bytes", num);
	}
	if (!err && cfg->build_procs_max) {
		snprintf(num, sizeof(num), "%u", cfg->build_procs_max);
		err = write_text(cg->pids, "pids.max", num);
	}
	if (err)
		goto fail;
	cg->mem_procs = open_procs(cg->mem);
	cg->pids_procs = open_procs(cg->pids);
	if (cg->mem_procs < 0 || cg->pids_procs < 0) {
		err = VIV_ERR_IO;
		goto fail;
	}
	*out = cg;
	return VIV_OK;
fail:
	pipe_cg_end(cg);
	return err;
}

int pipe_cg_join(const struct pipe_cg *cg)
{
	/* "0" is the writing process itself. */
	if (write(cg->mem_procs, "0", 1) != 1 || write(cg->pids_procs, "0", 1) != 1)
		return -1;
	return 0;
}

/* Kills whatever is left in the cgroup folder dir until it is empty, then
 * removes it. */
static void cg_drain(const char *dir)
{
	char path[1100];

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	for (int round = 0; round < 100; round++) {
		char *text = NULL;
		const char *p;
		uint64_t pid;
		size_t len = 0;
		bool any = false;

		if (viv_read_file(path, 1 << 20, &text, &len) != VIV_OK)
			break;
		/* One pid a line. */
		for (p = text + strspn(text, "\n"); viv_parse_u64(p, &p, INT32_MAX, &pid);
		     p += strspn(p, "\n")) {
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				any = true;
			}
		}
		free(text);
		if (!any)
			break;
		usleep(2000);
	}
	for (int tries = 0; tries < 200 && rmdir(dir) != 0 && errno == EBUSY; tries++)
		usleep(5000);
}

enum pipe_limit pipe_cg_end(struct pipe_cg *cg)
{
	enum pipe_limit hit = PIPE_LIMIT_NONE;

	if (!cg)
		return hit;
	if (cg->mem) {
		/* Not memory.failcnt: reaching the limit and reclaiming page
		 * cache counts there too, and the step may well succeed. */
		if (read_key(cg->mem, "memory.oom_control", "oom_kill") > 0)
			hit = PIPE_LIMIT_MEMORY;
	}
	if (cg->pids && hit == PIPE_LIMIT_NONE && read_key(cg->pids, "pids.events", "max") > 0)
		hit = PIPE_LIMIT_PROCS;
	if (cg->mem_procs >= 0)
		close(cg->mem_procs);
	if (cg->pids_procs >= 0)
		close(cg->pids_procs);
	if (cg->mem)
		cg_drain(cg->mem);
	if (cg->pids)
		cg_drain(cg->pids);
	free(cg->mem);
	free(cg->pids);
	free(cg);
	return hit;
}

/* ---- Without cgroups -------------------------------------------------------------------- */

void pipe_limits_rlimit(const struct pipe_config *cfg)
{
	struct rlimit rl;

	/* Private writable memory, not address space: V8 (AssemblyScript's
	 * node) reserves far more address space than it ever uses. */
	if (cfg->build_memory_mb) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)cfg->build_memory_mb * 1024 * 1024;
		setrlimit(RLIMIT_DATA, &rl);
	}
	/* Counted per user: with a build user of its own, across the builds
	 * running at once. */
	if (cfg->build_procs_max) {
		rl.rlim_cur = rl.rlim_max = cfg->build_procs_max;
		setrlimit(RLIMIT_NPROC, &rl);
	}
}

/* ---- The build folder --------------------------------------------------------------------- */

enum pipe_limit pipe_disk_check(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) != 0 || (unsigned long)sf.f_type != TMPFS_MAGIC_NUMBER)
		return PIPE_LIMIT_NONE;
	if (sf.f_blocks > 0 && (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize < DISK_FULL_SLACK)
		return PIPE_LIMIT_DISK;
	if (sf.f_files > 0 && sf.f_ffree == 0)
		return PIPE_LIMIT_FILES;
	return PIPE_LIMIT_NONE;
}

void pipe_limit_text(const struct pipe_config *cfg, enum pipe_limit limit, const char *tool,
                     char *buf, size_t len)
{
	switch (limit) {
	case PIPE_LIMIT_MEMORY:
		viv_errf(buf, len,
		         "%s ran out of memory: the build memory limit is %u MiB; make the "
		         "build use less",
		         tool, cfg->build_memory_mb);
		break;
	case PIPE_LIMIT_PROCS:
		viv_errf(buf, len,
		         "%s could not start another process: a build may run at most %u "
		         "processes and threads at once",
		         tool, cfg->build_procs_max);
		break;
	case PIPE_LIMIT_DISK:
		viv_errf(buf, len,
		         "%s failed because the build folder is full: a build may write at "
		         "most %u MiB of files",
		         tool, cfg->build_disk_mb);
		break;
	case PIPE_LIMIT_FILES:
		viv_errf(buf, len,
		         "%s failed because the build folder holds as many files as it may", tool);
		break;
	case PIPE_LIMIT_CPU:
		viv_errf(buf, len,
		         "%s was stopped by the build's CPU time limit (%u s for one command)",
		         tool, cfg->step_timeout_ms / 1000 + 2);
		break;
	case PIPE_LIMIT_FILE_SIZE:
		viv_errf(buf, len,
		         "%s was stopped for writing a file larger than the build's limit for "
		         "one file",
		         tool);
		break;
	case PIPE_LIMIT_NONE:
		viv_errf(buf, len, "%s", "");
		break;
	}
}
