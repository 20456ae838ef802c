/* End to end, as an attacker would try it, against the real vivd started
 * (as CI starts it) as root: build scripts that plant links for the host
 * to follow, that eat memory, processes and disk, or that never end; and
 * what runs as whom while they do. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"
#include "viv.h"

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

/* A Rust crate named name whose build script is build_rs and whose binary
 * prints text as a CGI response. */
static void crate_tar(const char *name, const char *build_rs, const char *text, char **tgz,
                      size_t *len)
{
	char cargo[256], main_rs[256];

	snprintf(cargo, sizeof(cargo),
	         "[package]\nname = \"%s\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"
	         "build = \"build.rs\"\n",
	         name);
	snprintf(main_rs, sizeof(main_rs),
	         "fn main() { print!(\"Content-Type: text/plain\\n\\n%s\\n\"); }\n", text);
	{
		const struct tsup_file files[] = {
		        {"Cargo.toml", cargo},
		        {"build.rs", build_rs},
		        {"src/main.rs", main_rs},
		};
		tsup_tar(files, 3, true, tgz, len);
	}
}

static long deploy_crate(const struct tsup_vivd *v, const char *app, const char *build_rs)
{
	char *tgz;
	size_t len;
	long id = 0;

	crate_tar(app, build_rs, app, &tgz, &len);
	cr_assert_eq(tsup_deploy(v, app, tgz, len, &id, NULL), 202);
	free(tgz);
	return id;
}

static const char c_hello[] =
        "#include <stdio.h>\n"
        "int main(void) { printf(\"Content-Type: text/plain\\n\\nquick\\n\"); return 0; }\n";

/* ---- Processes, as /proc shows them -------------------------------------------------- */

struct proc {
	pid_t pid, ppid;
	char comm[64];
	char state;
	uid_t uid[4]; /* real, effective, saved, file system */
	unsigned long long cap_eff, cap_prm, cap_bnd;
	int no_new_privs;
};

static bool proc_read(pid_t pid, struct proc *p)
{
	char path[64], line[512];
	FILE *f;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->no_new_privs = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long u[4];

		if (sscanf(line, "Name:\t%63s", p->comm) == 1)
			continue;
		if (sscanf(line, "State:\t%c", &p->state) == 1)
			continue;
		if (sscanf(line, "PPid:\t%d", &p->ppid) == 1)
			continue;
		if (sscanf(line, "Uid:\t%lu\t%lu\t%lu\t%lu", &u[0], &u[1], &u[2], &u[3]) == 4) {
			for (int i = 0; i < 4; i++)
				p->uid[i] = (uid_t)u[i];
			continue;
		}
		if (sscanf(line, "CapEff:\t%llx", &p->cap_eff) == 1 ||
		    sscanf(line, "CapPrm:\t%llx", &p->cap_prm) == 1 ||
		    sscanf(line, "CapBnd:\t%llx", &p->cap_bnd) == 1 ||
		    sscanf(line, "NoNewPrivs:\t%d", &p->no_new_privs) == 1)
			continue;
	}
	fclose(f);
	return true;
}

/* Every process below root's pid (itself excluded); caller frees. */
static struct proc *descendants(pid_t root, size_t *n_out)
{
	struct proc *all = NULL, *out = NULL;
	size_t n = 0, k = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		struct proc p;

		if (pid <= 0 || !proc_read(pid, &p))
			continue;
		all = realloc(all, (n + 1) * sizeof(*all));
		all[n++] = p;
	}
	closedir(d);
	out = calloc(n + 1, sizeof(*out));
	/* Repeated passes add children of what was found, until none. */
	for (bool more = true; more;) {
		more = false;
		for (size_t i = 0; i < n; i++) {
			bool in = all[i].ppid == root, dup = false;

			for (size_t j = 0; !in && j < k; j++)
				in = all[i].ppid == out[j].pid;
			for (size_t j = 0; in && j < k; j++)
				dup = dup || out[j].pid == all[i].pid;
			if (in && !dup) {
				out[k++] = all[i];
				more = true;
			}
		}
	}
	free(all);
	*n_out = k;
	return out;
}

static uid_t uid_of(const char *user)
{
	struct passwd *pw = getpwnam(user);

	cr_assert_not_null(pw, "no user %s: scripts/setup.sh makes it", user);
	return pw->pw_uid;
}

/* Whether user may open path with flags, asked by a child that becomes it. */
static bool user_may_open(uid_t uid, gid_t gid, const char *path, int flags)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
			_exit(3);
		_exit(open(path, flags | O_CLOEXEC, 0600) >= 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 3);
	return WEXITSTATUS(status) == 0;
}

/* ---- Builds that never end, and who runs what ------------------------------------------ */

static const char hang_rs[] = "fn main() {\n"
                              "    std::thread::sleep(std::time::Duration::from_secs(600));\n"
                              "}\n";

/* While app "hang"'s build script sleeps, another app deploys as if
 * nothing were building; the hung build ends at the build time limit with
 * that limit named, and while it runs, every role and the build itself run
 * as the users the README names, with no privileges. */
Test(builds, a_hung_build_holds_no_one_and_runs_unprivileged, .timeout = 240)
{
	const char *extra[] = {"--build-timeout", "25", NULL};
	struct tsup_vivd v;
	const struct tsup_file hello[] = {{"hello.c", c_hello}};
	char *tgz;
	size_t len, n = 0;
	long hang_id, quick_id;
	json_t *d;
	struct proc *ps = NULL;
	double t0;
	bool saw_script = false;

	tsup_vivd_start(&v, extra);
	hang_id = deploy_crate(&v, "hang", hang_rs);
	/* Wait for the build script to be running. */
	for (t0 = tsup_now_ms(); !saw_script && tsup_now_ms() - t0 < 60000;) {
		free(ps);
		ps = descendants(v.pid, &n);
		for (size_t i = 0; i < n; i++)
			saw_script = saw_script || strncmp(ps[i].comm, "build-script", 12) == 0;
		if (!saw_script)
			usleep(100000);
	}
	cr_assert(saw_script, "the build script never ran:\n%s", tsup_vivd_log_tail(&v, 3000));

	if (geteuid() == 0) {
		uid_t user = uid_of("vivarium"), build = uid_of("vivarium-build");
		struct proc self;
		char path[400];
		int base_nice, prio;

		cr_assert(proc_read(v.pid, &self));
		errno = 0;
		base_nice = getpriority(PRIO_PROCESS, (id_t)v.pid);
		cr_assert_eq(errno, 0);
		cr_assert_eq(self.uid[1], 0, "the supervisor is the one process left as root");
		for (size_t i = 0; i < n; i++) {
			const struct proc *p = &ps[i], *top = p;
			bool role = p->ppid == v.pid;
			uid_t want;

			/* The role a process belongs to is its ancestor that the
			 * supervisor started. */
			for (size_t hops = 0; top->ppid != v.pid && hops < n; hops++) {
				for (size_t j = 0; j < n; j++) {
					if (ps[j].pid == top->ppid) {
						top = &ps[j];
						break;
					}
				}
			}
			want = strcmp(top->comm, "launcher") == 0 ? build : user;
			/* Serving first: the API, and builds below it. */
			errno = 0;
			prio = getpriority(PRIO_PROCESS, (id_t)p->pid);
			if (errno == 0) {
				int want_nice = strncmp(top->comm, "worker", 6) == 0 ? 0
				                : strcmp(top->comm, "api") == 0      ? 5
				                                                     : 10;

				cr_assert_eq(prio - base_nice, want_nice,
				             "%s (pid %d, of %s) has nice %d over the supervisor's",
				             p->comm, (int)p->pid, top->comm, prio - base_nice);
			}
			for (int k = 0; k < 4; k++)
				cr_assert_eq(p->uid[k], want, "%s (pid %d) runs as uid %d, not %d",
				             p->comm, (int)p->pid, (int)p->uid[k], (int)want);
			cr_assert_eq(p->cap_eff, 0, "%s has capabilities", p->comm);
			cr_assert_eq(p->cap_prm, 0, "%s has capabilities", p->comm);
			if (role) {
				cr_assert_eq(p->cap_bnd, 0, "%s could regain capabilities",
				             p->comm);
				cr_assert_eq(p->no_new_privs, 1, "%s lacks no_new_privs", p->comm);
			}
		}
		/* The build user can touch neither the database nor the
		 * artifacts. */
		snprintf(path, sizeof(path), "%s/vivarium.db", v.data);
		cr_assert_not(user_may_open(build, build, path, O_RDWR));
		cr_assert_not(user_may_open(build, build, path, O_RDONLY));
		snprintf(path, sizeof(path), "%s/artifacts/planted", v.data);
		cr_assert_not(user_may_open(build, build, path, O_WRONLY | O_CREAT));
		snprintf(path, sizeof(path), "%s/admin-token", v.data);
		cr_assert_not(user_may_open(build, build, path, O_RDONLY));
	}
	free(ps);

	/* Another app is not held behind it. */
	t0 = tsup_now_ms();
	tsup_tar(hello, 1, true, &tgz, &len);
	cr_assert_eq(tsup_deploy(&v, "quick", tgz, len, &quick_id, NULL), 202);
	free(tgz);
	d = tsup_wait_deployment(&v, quick_id, 20000);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s\n%s", jstr(d, "error"), jstr(d, "log"));
	cr_log_info("another app was ready %.0f ms after its upload, with a build hung",
	            tsup_now_ms() - t0);
	json_decref(d);
	d = tsup_wait_deployment(&v, hang_id, 1);
	cr_assert_str_eq(jstr(d, "status"), "building");
	json_decref(d);

	/* The hung build ends at the build time limit, which it names. */
	d = tsup_wait_deployment(&v, hang_id, 60000);
	cr_assert_str_eq(jstr(d, "status"), "failed");
	cr_assert(strstr(jstr(d, "error"), "longer than"), "%s", jstr(d, "error"));
	json_decref(d);

	/* Nothing it started is left, not even as a zombie. */
	usleep(500000);
	ps = descendants(v.pid, &n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_neq(ps[i].state, 'Z', "zombie %s (pid %d)", ps[i].comm, (int)ps[i].pid);
		cr_assert(strncmp(ps[i].comm, "build-script", 12) != 0 &&
		                  strcmp(ps[i].comm, "cargo") != 0,
		          "%s (pid %d) outlived its build", ps[i].comm, (int)ps[i].pid);
	}
	free(ps);
	tsup_vivd_stop(&v);
}

/* ---- Build scripts that eat what they may ---------------------------------------------------- */

static const char memory_rs[] = "fn main() {\n"
                                "    let v = vec![1u8; 8usize << 30];\n"
                                "    println!(\"cargo:warning=allocated {}\", v[v.len() - 1]);\n"
                                "}\n";

static const char fork_rs[] =
        "fn main() {\n"
        "    let mut kids = Vec::new();\n"
        "    for _ in 0..5000 {\n"
        "        kids.push(std::process::Command::new(\"sleep\").arg(\"30\")\n"
        "            .spawn().expect(\"spawn\"));\n"
        "    }\n"
        "}\n";

static const char disk_rs[] =
        "use std::io::Write;\n"
        "fn main() {\n"
        "    let out = std::env::var(\"OUT_DIR\").unwrap();\n"
        "    let mut f = std::fs::File::create(format!(\"{}/big\", out)).unwrap();\n"
        "    let block = vec![7u8; 1 << 20];\n"
        "    for _ in 0..5120 { f.write_all(&block).expect(\"write\"); }\n"
        "}\n";

/* A build script that allocates 8 GB, one that starts 5,000 processes and
 * one that writes 5 GB each fail with the limit named, and the next app
 * builds as usual. */
Test(builds, limits_of_build_scripts_hold_and_are_named, .timeout = 300)
{
	const char *extra[] = {
	        "--build-memory", "256", "--build-disk", "128", "--build-procs", "64", NULL};
	const struct {
		const char *app, *rs, *want;
	} cases[] = {
	        {"eats-memory", memory_rs, "ran out of memory: the build memory limit is 256 MiB"},
	        {"forks", fork_rs, "at most 64 processes"},
	        {"fills-disk", disk_rs, "at most 128 MiB of files"},
	};
	const struct tsup_file hello[] = {{"hello.c", c_hello}};
	struct tsup_vivd v;
	long ids[3];
	json_t *d;
	char *tgz;
	size_t len;

	tsup_vivd_start(&v, extra);
	for (size_t i = 0; i < 3; i++)
		ids[i] = deploy_crate(&v, cases[i].app, cases[i].rs);
	for (size_t i = 0; i < 3; i++) {
		d = tsup_wait_deployment(&v, ids[i], 120000);
		cr_assert_str_eq(jstr(d, "status"), "failed", "%s: %s", cases[i].app,
		                 jstr(d, "log"));
		cr_assert(strstr(jstr(d, "error"), cases[i].want), "%s: %s\n%s", cases[i].app,
		          jstr(d, "error"), jstr(d, "log"));
		cr_log_info("%s: %s", cases[i].app, jstr(d, "error"));
		json_decref(d);
	}
	tsup_tar(hello, 1, true, &tgz, &len);
	d = tsup_deploy_wait(&v, "after", tgz, len);
	free(tgz);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s", jstr(d, "error"));
	json_decref(d);
	tsup_vivd_stop(&v);
}

/* ---- A build script that plants links ----------------------------------------------------- */

/* Plants links at every name the host might read or write after the
 * language step (the artifact, the C it writes, the modules), in every
 * folder it can reach from where it runs and in any it makes, and the
 * temporary names of glue.c for every pid up to 32768 in the folders where
 * the host makes the artifact (aot/ before, trusted/ now): to a file outside that must keep its
 * contents, a name outside that must not appear, and a shared object
 * whose constructor would leave a mark if a worker ever loaded it. */
static const char planting_rs[] =
        "use std::os::unix::fs::symlink;\n"
        "use std::path::{Path, PathBuf};\n"
        "fn plant(dir: &Path, spray: bool) {\n"
        "    let _ = std::fs::create_dir_all(dir);\n"
        "    for n in [\"guest.so\", \"guest.c\", \"guest.h\", \"glue.c\", \"app.wasm\",\n"
        "              \"module.wasm\", \"opt.wasm\"].iter() {\n"
        "        let t = if *n == \"guest.so\" { \"@EVIL@\" } else { \"@VICTIM@\" };\n"
        "        let _ = std::fs::remove_file(dir.join(n));\n"
        "        let _ = symlink(t, dir.join(n));\n"
        "    }\n"
        "    if !spray { return; }\n"
        "    for pid in 1..=32768 {\n"
        "        let _ = symlink(\"@CREATED@\", dir.join(format!(\"glue.c.tmp.{}\", pid)));\n"
        "    }\n"
        "}\n"
        "fn main() {\n"
        "    let mut at = std::env::current_dir().unwrap();\n"
        "    let mut dirs: Vec<PathBuf> = Vec::new();\n"
        "    loop {\n"
        "        for s in [\"\", \"aot\", \"trusted\", \"out\"].iter() { dirs.push(at.join(s)); }\n"
        "        if !at.pop() { break; }\n"
        "    }\n"
        "    for d in dirs.iter() {\n"
        "        let n = d.file_name().map(|n| n.to_string_lossy().into_owned());\n"
        "        plant(d, n.as_deref() == Some(\"aot\") || n.as_deref() == Some(\"trusted\"));\n"
        "    }\n"
        "}\n";

Test(attack, links_planted_by_a_build_script_never_reach_the_host, .timeout = 300)
{
	struct tsup_vivd v;
	char outside[] = "/tmp/viv-e2e-outside-XXXXXX", victim[200], created[200], evil[200];
	char mark[200], cmd[1200], evil_c[240], *rs, *text, *p;
	struct tsup_resp r;
	json_t *d;
	long id;
	FILE *f;

	cr_assert_not_null(mkdtemp(outside));
	cr_assert_eq(chmod(outside, 0755), 0);
	snprintf(victim, sizeof(victim), "%s/victim", outside);
	snprintf(created, sizeof(created), "%s/created", outside);
	snprintf(evil, sizeof(evil), "%s/evil.so", outside);
	snprintf(mark, sizeof(mark), "%s/loaded", outside);
	f = fopen(victim, "w");
	fputs("victim", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	         "#include <stdio.h>\n__attribute__((constructor)) static void m(void)"
	         "{ FILE *f = fopen(\"%s\", \"w\"); if (f) fclose(f); }\n",
	         mark);
	snprintf(evil_c, sizeof(evil_c), "%s/evil.c", outside);
	cr_assert_eq(viv_write_file_atomic(evil_c, cmd, strlen(cmd), 0644), VIV_OK);
	{
		const char *cc[] = {"cc", "-shared", "-fPIC", "-o", evil, evil_c, NULL};
		char *out = NULL;

		cr_assert_eq(tsup_run(cc, NULL, &out), 0, "%s", out ? out : "");
		free(out);
	}
	rs = strdup(planting_rs);
	for (const char *const *kv = (const char *const[]){"@EVIL@", evil, "@VICTIM@", victim,
	                                                   "@CREATED@", created, NULL};
	     *kv; kv += 2) {
		while ((p = strstr(rs, kv[0])) != NULL) {
			char *next = NULL;
			cr_assert(asprintf(&next, "%.*s%s%s", (int)(p - rs), rs, kv[1],
			                   p + strlen(kv[0])) > 0);
			free(rs);
			rs = next;
		}
	}
	tsup_vivd_start(&v, NULL);
	id = deploy_crate(&v, "planter", rs);
	free(rs);
	d = tsup_wait_deployment(&v, id, 180000);
	cr_assert_str_eq(jstr(d, "status"), "ready", "%s\n%s", jstr(d, "error"), jstr(d, "log"));
	json_decref(d);
	cr_assert(tsup_app_get(&v, "planter", "/", &r), "%s", r.error);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "planter"), "%s", r.body);
	tsup_resp_free(&r);
	text = tsup_read_file(victim, NULL);
	cr_assert_str_eq(text, "victim", "a planted link was written through");
	free(text);
	cr_assert_neq(access(created, F_OK), 0, "a planted temporary name was written through");
	cr_assert_neq(access(mark, F_OK), 0, "a worker loaded the planted shared object");
	tsup_vivd_stop(&v);
	viv_rmtree_or_log(outside);
}
