/* A build's language step is hostile: its build scripts plant links where
 * the host might write or read, leave processes behind, and eat memory,
 * processes and disk. These tests play that step and check that the host
 * never follows it anywhere and that every limit holds and is named. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* ---- Limits ------------------------------------------------------------------------ */

static char *lim_dir; /* the build folder: a 64 MiB tmpfs */
static struct pipe_config lim_cfg;

/* A private mount namespace for this test's process (Criterion runs each
 * test in one of its own), a small tmpfs as the build folder, and the build
 * cgroups, as vivd has them when it starts as root. */
static void limits_setup(void)
{
	char why[256];

	if (geteuid() != 0)
		cr_skip_test("the build limits are set up by root");
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "%s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	lim_dir = t_tmpdir();
	cr_assert_eq(mount("t", lim_dir, "tmpfs", 0, "size=64m,nr_inodes=2000"), 0, "%s",
	             strerror(errno));
	t_write(lim_dir, "tmp/.keep", "");
	t_config(&lim_cfg, t_sandbox_ok());
	lim_cfg.build_memory_mb = 64;
	lim_cfg.build_procs_max = 64;
	lim_cfg.build_disk_mb = 64;
	if (pipe_cgroups_setup(&lim_cfg.cgroups, (uid_t)-1, (gid_t)-1, why, sizeof(why)))
		cr_log_warn("no build cgroups here (%s): the rlimits are tested", why);
}

static void limits_teardown(void)
{
	if (!lim_dir)
		return;
	umount2(lim_dir, MNT_DETACH);
	viv_rmtree_or_log(lim_dir);
	free(lim_dir);
	pipe_cgroups_free(&lim_cfg.cgroups);
}

TestSuite(limits, .init = limits_setup, .fini = limits_teardown, .timeout = 120);

/* Runs a shell script as a language step's command. */
static enum viv_err confined(const char *script, struct pipe_exit *ex, char *err, size_t errlen)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct pipe_cmd cmd = {lim_dir, NULL, argv, NULL, 60000, true, -1};
	struct viv_buf out;
	enum viv_err e;

	viv_buf_init(&out, 1 << 20);
	memset(ex, 0, sizeof(*ex));
	e = pipe_spawn_cmd(&lim_cfg, &cmd, &out, ex, err, errlen);
	cr_log_info("%s: %s, exit %d signal %d, limit %d, output: %.300s", script, viv_strerror(e),
	            ex->code, ex->signal, ex->limit, out.data ? out.data : "");
	viv_buf_free(&out);
	return e;
}

Test(limits, a_step_that_eats_memory_is_stopped_and_told_so)
{
	struct pipe_exit ex;
	char err[512];

	/* A line that never ends: tail holds all of it. The step's 64 MiB
	 * are reached long before the 8 GiB it asks for. */
	cr_assert_eq(confined("head -c 8000000000 /dev/zero | tail -n 1 > /dev/null", &ex, err,
	                      sizeof(err)),
	             VIV_ERR_TOO_BIG, "%s", err);
	cr_assert_eq(ex.limit, PIPE_LIMIT_MEMORY);
	cr_assert(strstr(err, "memory limit is 64 MiB"), "%s", err);
}

Test(limits, a_step_that_forks_thousands_is_stopped_and_told_so)
{
	struct pipe_exit ex;
	char err[512];

	cr_assert_eq(confined("i=0; while [ $i -lt 5000 ]; do sleep 30 & i=$((i+1)); done; wait",
	                      &ex, err, sizeof(err)),
	             VIV_ERR_TOO_BIG, "%s", err);
	cr_assert_eq(ex.limit, PIPE_LIMIT_PROCS);
	cr_assert(strstr(err, "at most 64 processes"), "%s", err);
}

Test(limits, a_step_that_fills_the_disk_is_stopped_and_told_so)
{
	struct pipe_exit ex;
	char err[512];

	cr_assert_eq(confined("head -c 5000000000 /dev/zero > big", &ex, err, sizeof(err)),
	             VIV_ERR_TOO_BIG, "%s", err);
	cr_assert_eq(ex.limit, PIPE_LIMIT_DISK);
	cr_assert(strstr(err, "at most 64 MiB of files"), "%s", err);
	/* A step within the limits is not blamed on them. */
	cr_assert_eq(confined("rm -f big; echo fine; exit 3", &ex, err, sizeof(err)), VIV_OK);
	cr_assert_eq(ex.code, 3);
	cr_assert_eq(ex.limit, PIPE_LIMIT_NONE);
}

Test(limits, no_process_of_a_step_outlives_it)
{
	struct pipe_exit ex;
	char err[512];
	DIR *d;
	struct dirent *de;

	if (!lim_cfg.cgroups.memory)
		cr_skip_test("without cgroups only the sandbox's process group is killed");
	/* Without the sandbox a process can leave the group; the cgroup
	 * still holds it. */
	lim_cfg.sandbox = false;
	cr_assert_eq(confined("setsid sh -c 'sleep 77.5' < /dev/null > /dev/null 2>&1 & exit 0",
	                      &ex, err, sizeof(err)),
	             VIV_OK, "%s", err);
	usleep(100000);
	d = opendir("/proc");
	while ((de = readdir(d)) != NULL) {
		char path[300], cmd[64] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
		cmd[n] = '\0';
		cr_assert(!(strcmp(cmd, "sleep") == 0 && strcmp(cmd + 6, "77.5") == 0),
		          "process %s outlived its step", de->d_name);
	}
	closedir(d);
}

/* Exits with what f returned, in a child, and gives that back. */
static int in_child(int (*f)(void))
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0)
		_exit(f());
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int another_server_starts(void)
{
	struct pipe_cgroups other;
	char why[256];

	if (pipe_cgroups_setup(&other, (uid_t)-1, (gid_t)-1, why, sizeof(why)))
		return 1;
	pipe_cgroups_free(&other);
	return 0;
}

static struct pipe_cg *joining;

static int join(void)
{
	return pipe_cg_join(joining) == 0 ? 0 : errno;
}

Test(limits, a_server_starting_beside_another_removes_only_what_ended_processes_left)
{
	char *stale = NULL;
	struct stat st;
	pid_t dead;
	int r;

	if (!lim_cfg.cgroups.memory)
		cr_skip_test("no build cgroups here");
	/* A command's cgroup, made and not yet joined, as between the fork
	 * and the exec; then a second server on this machine starts. */
	cr_assert_eq(pipe_cg_make(&lim_cfg, &joining), VIV_OK);
	/* And one that a process since ended left behind. */
	dead = fork();
	if (dead == 0)
		_exit(0);
	cr_assert_eq(waitpid(dead, NULL, 0), dead);
	cr_assert_geq(asprintf(&stale, "%s/%ld-1", lim_cfg.cgroups.memory, (long)dead), 0);
	cr_assert_eq(mkdir(stale, 0755), 0, "%s: %s", stale, strerror(errno));
	cr_assert_eq(in_child(another_server_starts), 0);
	r = in_child(join);
	cr_assert_eq(r, 0, "the command could not join its cgroup: %s", strerror(r));
	cr_assert_neq(stat(stale, &st), 0, "%s was left", stale);
	pipe_cg_end(joining);
	free(stale);
}

/* ---- The launcher ------------------------------------------------------------------- */

static pid_t launcher_pid;
static char launcher_name[108];
static char *l_builds;
static struct pipe_config l_cfg;

static void launcher_setup(void)
{
	int fd;

	l_builds = t_tmpdir();
	t_config(&l_cfg, false);
	l_cfg.builds_dir = l_builds;
	fd = pipe_launcher_listen(launcher_name, sizeof(launcher_name));
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	launcher_pid = fork();
	if (launcher_pid == 0)
		_exit(pipe_launcher_main(&l_cfg, fd, getuid()));
	close(fd);
	l_cfg.launcher = launcher_name;
}

static void launcher_teardown(void)
{
	int status;

	kill(launcher_pid, SIGTERM);
	waitpid(launcher_pid, &status, 0);
	viv_rmtree_or_log(l_builds);
	free(l_builds);
}

TestSuite(launcher, .init = launcher_setup, .fini = launcher_teardown, .timeout = 60);

Test(launcher, runs_a_command_and_reaps_what_it_leaves)
{
	const char *argv[] = {"sh", "-c", "sleep 300 & echo $! > left; echo hello; exit 4", NULL};
	char *scratch = viv_path_join(l_builds, "1-x"), err[256] = "", *pid_text;
	struct pipe_cmd cmd = {scratch, NULL, argv, NULL, 10000, true, -1};
	struct viv_buf out;
	struct pipe_exit ex;
	pid_t left;
	int tries;

	cr_assert_eq(mkdir(scratch, 0700), 0);
	viv_buf_init(&out, 4096);
	cr_assert_eq(pipe_launcher_run(&l_cfg, &cmd, &out, &ex, err, sizeof(err)), VIV_OK, "%s",
	             err);
	cr_assert_eq(ex.code, 4);
	cr_assert_str_eq(out.data, "hello\n");
	viv_buf_free(&out);
	/* The background process was killed and reaped, not left to init or
	 * as a zombie. */
	{
		char *path = viv_path_join(scratch, "left");
		pid_text = t_read(path, NULL);
		free(path);
	}
	cr_assert_not_null(pid_text);
	left = (pid_t)atol(pid_text);
	cr_assert_gt(left, 0);
	for (tries = 0; tries < 200 && kill(left, 0) == 0; tries++)
		usleep(10000);
	cr_assert_eq(kill(left, 0), -1, "pid %d is still there", (int)left);
	cr_assert_eq(errno, ESRCH);
	free(pid_text);
	free(scratch);
}

Test(launcher, refuses_what_is_not_a_build_folder)
{
	const char *argv[] = {"true", NULL};
	struct pipe_cmd cmd = {"/etc", NULL, argv, NULL, 10000, true, -1};
	struct viv_buf out;
	struct pipe_exit ex;
	char err[256];

	viv_buf_init(&out, 4096);
	cr_assert_eq(pipe_launcher_run(&l_cfg, &cmd, &out, &ex, err, sizeof(err)), VIV_ERR_INVALID);
	cmd.scratch = "/tmp/../etc";
	cr_assert_eq(pipe_launcher_run(&l_cfg, &cmd, &out, &ex, err, sizeof(err)), VIV_ERR_INVALID);
	viv_buf_free(&out);
	cr_assert_neq(pipe_launcher_empty(&l_cfg, "/etc"), VIV_OK);
	cr_assert(access("/etc/passwd", F_OK) == 0);
}

Test(launcher, empties_a_hostile_folder_and_nothing_outside)
{
	char *dir = viv_path_join(l_builds, "2-y"), *outside = t_tmpdir(), path[600];

	t_write(outside, "keep", "k");
	t_write(dir, "tenant/a/b/c", "x");
	snprintf(path, sizeof(path), "%s/tenant/link", dir);
	cr_assert_eq(symlink(outside, path), 0);
	snprintf(path, sizeof(path), "%s/tenant/a", dir);
	cr_assert_eq(chmod(path, 0), 0);
	snprintf(path, sizeof(path), "%s/tenant", dir);
	cr_assert_eq(pipe_launcher_empty(&l_cfg, path), VIV_OK);
	snprintf(path, sizeof(path), "%s/tenant/a", dir);
	cr_assert_neq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/keep", outside);
	cr_assert_eq(access(path, F_OK), 0);
	viv_rmtree_or_log(outside);
	free(outside);
	free(dir);
}

/* ---- Interrupted builds --------------------------------------------------------------- */

TestSuite(leftovers, .init = t_store_setup, .fini = t_store_teardown, .timeout = 60);

Test(leftovers, interrupted_builds_are_removed_at_start)
{
	char *builds = viv_path_join(t_fx.datadir, "builds"), *outside = t_tmpdir(), path[700];
	struct pipe_builder *b = NULL;
	struct pipe_config cfg = t_fx.cfg;

	t_write(outside, "keep", "k");
	/* One folder in a builder's own, one left by an older layout. */
	t_write(builds, "0/7-abc/tenant/src/main.c", "int main(void){return 0;}");
	t_write(builds, "0/7-abc/trusted/guest.c", "x");
	t_write(builds, "9-def/tenant/deep/er/file", "x");
	snprintf(path, sizeof(path), "%s/0/7-abc/tenant/escape", builds);
	cr_assert_eq(symlink(outside, path), 0);
	snprintf(path, sizeof(path), "%s/9-def/tenant/deep", builds);
	cr_assert_eq(chmod(path, 0), 0);
	cfg.builders = 1;
	cr_assert_eq(pipe_builder_start(t_fx.datadir, &cfg, &b), VIV_OK);
	pipe_builder_stop(b);
	snprintf(path, sizeof(path), "%s/0/7-abc", builds);
	cr_assert_neq(access(path, F_OK), 0, "%s was left", path);
	snprintf(path, sizeof(path), "%s/9-def", builds);
	cr_assert_neq(access(path, F_OK), 0, "%s was left", path);
	snprintf(path, sizeof(path), "%s/0", builds);
	cr_assert_eq(access(path, F_OK), 0, "the builder's own folder stays");
	snprintf(path, sizeof(path), "%s/keep", outside);
	cr_assert_eq(access(path, F_OK), 0);
	viv_rmtree_or_log(outside);
	free(outside);
	free(builds);
}

/* ---- Build scripts that plant links ---------------------------------------------------- */

TestSuite(hostile, .init = t_store_setup, .fini = t_store_teardown, .timeout = 300);

/* A crate whose build script, run during the language step, plants links
 * at every name the host might read or write after that step, in every
 * folder it can reach from where it runs: the artifact (guest.so), the C
 * the host writes (glue.c, guest.c and their temporary names for every
 * pid up to 4096), the modules (app.wasm, module.wasm, opt.wasm). The
 * links point at a file outside that must keep its contents, a name
 * outside that must not appear, and a shared object outside whose
 * constructor would leave a mark if it were ever loaded. */
static const char planting_build_rs[] =
        "use std::os::unix::fs::symlink;\n"
        "use std::path::{Path, PathBuf};\n"
        "fn plant(dir: &Path, victim: &str, created: &str, evil: &str) {\n"
        "    let _ = std::fs::create_dir_all(dir);\n"
        "    let names = [\"guest.so\", \"guest.c\", \"guest.h\", \"glue.c\", \"app.wasm\",\n"
        "                 \"module.wasm\", \"opt.wasm\", \"guest_part1.c\"];\n"
        "    for n in names.iter() {\n"
        "        let target = if *n == \"guest.so\" { evil } else { victim };\n"
        "        let _ = std::fs::remove_file(dir.join(n));\n"
        "        let _ = symlink(target, dir.join(n));\n"
        "    }\n"
        "    for pid in 1..=4096 {\n"
        "        for n in [\"glue.c\", \"guest.c\"].iter() {\n"
        "            let _ = symlink(created, dir.join(format!(\"{}.tmp.{}\", n, pid)));\n"
        "        }\n"
        "    }\n"
        "}\n"
        "fn main() {\n"
        "    let victim = \"@VICTIM@\";\n"
        "    let created = \"@CREATED@\";\n"
        "    let evil = \"@EVIL@\";\n"
        "    let mut dirs: Vec<PathBuf> = Vec::new();\n"
        "    let mut at = std::env::current_dir().unwrap();\n"
        "    loop {\n"
        "        dirs.push(at.clone());\n"
        "        for sub in [\"aot\", \"out\", \"trusted\", \"tenant\", \"obj\", \"tmp\"]\n"
        "            .iter() {\n"
        "            dirs.push(at.join(sub));\n"
        "        }\n"
        "        if !at.pop() { break; }\n"
        "    }\n"
        "    if let Ok(out) = std::env::var(\"OUT_DIR\") { dirs.push(PathBuf::from(out)); }\n"
        "    for d in dirs.iter() { plant(d, victim, created, evil); }\n"
        "}\n";

static const char planting_cargo_toml[] = "[package]\n"
                                          "name = \"planter\"\n"
                                          "version = \"0.1.0\"\n"
                                          "edition = \"2021\"\n"
                                          "build = \"build.rs\"\n";

static const char planting_main_rs[] = "fn main() {\n"
                                       "    print!(\"Content-Type: text/plain\\n\\nplanted\\n\");\n"
                                       "}\n";

/* Replaces every @KEY@ in text. Caller frees. */
static char *fill(const char *text, const char *const *kv)
{
	struct viv_buf b;

	viv_buf_init(&b, 0);
	for (const char *p = text; *p;) {
		bool done = false;
		for (size_t i = 0; kv[i]; i += 2) {
			size_t k = strlen(kv[i]);
			if (strncmp(p, kv[i], k) == 0) {
				cr_assert_eq(viv_buf_append(&b, kv[i + 1], strlen(kv[i + 1])),
				             VIV_OK);
				p += k;
				done = true;
				break;
			}
		}
		if (!done)
			cr_assert_eq(viv_buf_append(&b, p++, 1), VIV_OK);
	}
	return viv_buf_steal(&b);
}

Test(hostile, links_a_build_script_plants_never_reach_the_host)
{
	char *outside, victim[600], created[600], evil[600], mark[600], src[1400], *rs, *so;
	char *text;
	struct store_deployment *d;
	struct stat st;
	size_t len;

	if (!t_fx.cfg.sandbox)
		cr_skip_test("the language step runs in bubblewrap, which cannot run here");
	outside = t_tmpdir();
	snprintf(victim, sizeof(victim), "%s/victim", outside);
	snprintf(created, sizeof(created), "%s/created", outside);
	snprintf(evil, sizeof(evil), "%s/evil.so", outside);
	snprintf(mark, sizeof(mark), "%s/loaded", outside);
	t_write(outside, "victim", "victim");
	t_write(outside, "evil.c", "");
	snprintf(src, sizeof(src),
	         "#include <stdio.h>\n"
	         "__attribute__((constructor)) static void mark(void)\n"
	         "{ FILE *f = fopen(\"%s\", \"w\"); if (f) fclose(f); }\n",
	         mark);
	t_write(outside, "evil.c", src);
	{
		char src_path[600];
		const char *cc[] = {"cc", "-shared", "-fPIC", "-o", evil, src_path, NULL};
		int status = 0;
		pid_t pid;

		snprintf(src_path, sizeof(src_path), "%s/evil.c", outside);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			execvp(cc[0], (char *const *)cc);
			_exit(127);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cc failed");
	}
	{
		const char *kv[] = {"@VICTIM@", victim, "@CREATED@", created, "@EVIL@", evil, NULL};
		rs = fill(planting_build_rs, kv);
	}
	{
		const struct t_entry e[] = {
		        {"Cargo.toml", 'f', planting_cargo_toml, 0},
		        {"build.rs", 'f', rs, 0},
		        {"src/main.rs", 'f', planting_main_rs, 0},
		};
		d = t_build_entries("planter", e, 3);
	}
	free(rs);
	cr_assert_eq(d->status, STORE_DEP_READY, "%s\n%s", d->error ? d->error : "", d->log);
	/* Nothing outside was written, made or loaded. */
	text = t_read(victim, NULL);
	cr_assert_str_eq(text, "victim");
	free(text);
	cr_assert_neq(access(created, F_OK), 0, "a planted temporary name was written through");
	/* The artifact is the trusted steps' own: a file, not a link, whose
	 * guest names this artifact. */
	so = store_artifact_path(t_fx.st, d->artifact, "so");
	cr_assert_eq(lstat(so, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	text = t_read(so, &len);
	cr_assert_not_null(memmem(text, len, d->artifact, strlen(d->artifact)),
	                   "the stored .so is not the one the glue made");
	cr_assert_null(memmem(text, len, mark, strlen(mark)), "the planted .so was stored");
	cr_assert_neq(access(mark, F_OK), 0, "the planted shared object was loaded");
	free(text);
	free(so);
	store_deployment_free(d);
	viv_rmtree_or_log(outside);
	free(outside);
}

/* Where the machine has no cgroups to use, rlimits hold instead and the
 * tools' own complaints name the limit. */
Test(limits, without_cgroups_the_rlimits_hold_and_are_named)
{
	struct pipe_exit ex;
	char err[512];

	pipe_cgroups_free(&lim_cfg.cgroups);
	cr_assert_eq(confined("head -c 8000000000 /dev/zero | tail -n 1 > /dev/null", &ex, err,
	                      sizeof(err)),
	             VIV_ERR_TOO_BIG, "%s", err);
	cr_assert_eq(ex.limit, PIPE_LIMIT_MEMORY);
	/* RLIMIT_NPROC does not bind root, which these tests run as (bwrap
	 * makes no user namespace for root); vivd's build user is never
	 * root. */
}
