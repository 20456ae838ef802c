/* Requests in flight in one worker: starts vivd serve with one worker,
 * deploys a guest that makes one outbound request per request (the C SDK's
 * fetch example) to a slow upstream on loopback that holds every request,
 * and a plain hello; opens N client connections to the fetch app and waits
 * until the upstream holds all N, so that N guests are suspended in the
 * worker at once. While they wait it measures the worker's memory (from
 * /proc/PID/smaps, split into the guests' linear memories, their native
 * stacks and the rest) and the hello app's latency on fresh connections,
 * which it compares with the same measured before the N were opened. Then
 * it releases the upstream and counts the clients answered 200 with the
 * right body. It prints figures; it asserts nothing.
 *
 *   bench_inflight --vivd PATH [--count N] [--hello-requests N] [--json FILE]
 *
 * Run as root, it raises the descriptor limit and vm.max_map_count where
 * they are too low for N (and puts max_map_count back when it ends);
 * otherwise it says what they must be. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_vivd.h"
#include "inflight.h"
#include "machine.h"
#include "runner_int.h"

#define UPSTREAM_BODY "held, then released\n"
#define WANT_BODY "upstream answered 200 (text/plain): " UPSTREAM_BODY
#define HELLO_BODY "Hello, world!\n"
/* What the worker may map per slot: its memory (read-write part and the
 * rest), its stack and the stack's guard; and what else it maps. */
#define MAPS_PER_SLOT 4
#define MAPS_OTHER 4096

struct opts {
	const char *vivd;
	unsigned n;
	unsigned hello;
	const char *json;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- The worker's memory, from smaps ---------------------------------------------------- */

/* Resident kilobytes of a worker, by what holds them. */
struct mem {
	long total;  /* every mapping */
	long guest;  /* guests' linear memories */
	long stacks; /* guests' native stacks */
	long maps;   /* mappings */
};

struct vma {
	uintptr_t lo, hi;
	char perm[5];
	bool anon;
	long rss;
};

/* Reads /proc/PID/smaps. A slot's linear memory is the read-write anonymous
 * mapping followed at once by the inaccessible rest of its reservation
 * (RUN_SLOT_RESERVE, at least 4 GiB of it past a wasm32 memory); a slot's
 * native stack is the read-write anonymous mapping right above its
 * RUN_STACK_GUARD guard. Everything else is the host's. */
static bool worker_mem(pid_t pid, struct mem *m)
{
	char path[64], line[512];
	struct vma *v = NULL;
	size_t n = 0, alloc = 0, i;
	FILE *f;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off, inode;
		char perm[5], dev[16];
		int used = 0;
		long kb;

		if (sscanf(line, "%lx-%lx %4s %lx %15s %lu %n", &lo, &hi, perm, &off, dev, &inode,
		           &used) >= 6 &&
		    used > 0) {
			if (n == alloc) {
				struct vma *nv;

				alloc = alloc ? alloc * 2 : 4096;
				nv = realloc(v, alloc * sizeof(*v));
				if (!nv) {
					free(v);
					fclose(f);
					return false;
				}
				v = nv;
			}
			v[n].lo = lo;
			v[n].hi = hi;
			memcpy(v[n].perm, perm, 5);
			v[n].anon = inode == 0 && (line[used] == '\0' || line[used] == '\n');
			v[n].rss = 0;
			n++;
		} else if (n && sscanf(line, "Rss: %ld kB", &kb) == 1) {
			v[n - 1].rss = kb;
		}
	}
	fclose(f);
	for (i = 0; i < n; i++) {
		bool rw = v[i].anon && strcmp(v[i].perm, "rw-p") == 0;

		m->total += v[i].rss;
		if (rw && i + 1 < n && v[i + 1].lo == v[i].hi && v[i + 1].anon &&
		    strcmp(v[i + 1].perm, "---p") == 0 && v[i + 1].hi - v[i + 1].lo >= (4ul << 30))
			m->guest += v[i].rss;
		else if (rw && i > 0 && v[i - 1].hi == v[i].lo && v[i - 1].anon &&
		         strcmp(v[i - 1].perm, "---p") == 0 &&
		         v[i - 1].hi - v[i - 1].lo == RUN_STACK_GUARD)
			m->stacks += v[i].rss;
	}
	m->maps = (long)n;
	free(v);
	return true;
}

/* ---- Limits -------------------------------------------------------------------------------- */

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static long old_max_map_count = -1;

static void restore_max_map_count(void)
{
	if (old_max_map_count > 0 && write_long("/proc/sys/vm/max_map_count", old_max_map_count))
		fprintf(stderr, "bench_inflight: vm.max_map_count back to %ld\n",
		        old_max_map_count);
}

/* Descriptors the worker needs beside two per request in flight (its
 * client's and its upstream's): listeners, the store, the loop, logs. */
#define WORKER_FDS 256

/* The worker needs two descriptors per request in flight, and vivd gives it
 * its own limit (it raises the soft one to the hard one); this process and
 * the upstream's need one per request. The worker needs mappings for every
 * slot. Returns how many requests fit, at most n, or 0. */
static unsigned raise_limits(unsigned n, unsigned slots)
{
	rlim_t want = (rlim_t)n * 2 + WORKER_FDS;
	struct rlimit rl;
	long maps = read_long("/proc/sys/vm/max_map_count");
	long want_maps = (long)slots * MAPS_PER_SLOT + MAPS_OTHER;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < want) {
		struct rlimit up = {want, want};

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			fprintf(stderr, "bench_inflight: RLIMIT_NOFILE raised from %lu to %lu\n",
			        (unsigned long)rl.rlim_max, (unsigned long)want);
			rl = up;
		} else {
			unsigned fit = rl.rlim_max > WORKER_FDS
			                       ? (unsigned)((rl.rlim_max - WORKER_FDS) / 2)
			                       : 0;

			fprintf(stderr,
			        "bench_inflight: %u requests in flight need %lu descriptors in "
			        "vivd's "
			        "worker; the hard limit RLIMIT_NOFILE is %lu here and cannot be "
			        "raised "
			        "(it takes CAP_SYS_RESOURCE): %u requests instead\n",
			        n, (unsigned long)want, (unsigned long)rl.rlim_max, fit);
			n = fit;
		}
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (maps >= 0 && maps < want_maps) {
		if (geteuid() != 0 || !write_long("/proc/sys/vm/max_map_count", want_maps)) {
			fprintf(stderr,
			        "bench_inflight: %u sandboxes need up to %ld mappings in the "
			        "worker; "
			        "vm.max_map_count is %ld (sysctl -w vm.max_map_count=%ld)\n",
			        slots, want_maps, maps, want_maps);
			return 0;
		}
		old_max_map_count = maps;
		atexit(restore_max_map_count);
		fprintf(stderr, "bench_inflight: vm.max_map_count raised from %ld to %ld\n", maps,
		        want_maps);
	}
	return n;
}

/* ---- The hello app's latency ------------------------------------------------------------- */

struct lat {
	double p50_us, p99_us;
	unsigned failed;
};

/* n requests to the hello app, one after another, each on a fresh
 * connection. */
static void hello_latency(unsigned port, unsigned n, struct lat *out)
{
	uint64_t *t = calloc(n, sizeof(*t));
	unsigned i, got = 0;
	char body[256];

	memset(out, 0, sizeof(*out));
	for (i = 0; t && i < n; i++) {
		unsigned status;
		uint64_t ns = infl_get(port, "hello.localhost", "/", &status, body, sizeof(body));

		if (ns && status == 200 && strcmp(body, HELLO_BODY) == 0)
			t[got++] = ns;
		else
			out->failed++;
	}
	out->p50_us = (double)infl_quantile(t, got, 0.50) / 1000;
	out->p99_us = (double)infl_quantile(t, got, 0.99) / 1000;
	free(t);
}

/* ---- The apps ------------------------------------------------------------------------------ */

static bool deploy_apps(const struct bench_vivd *v, unsigned upstream_port)
{
	char *fetch_c = NULL, *hello_c = NULL, *tar = NULL, manifest[512];
	size_t fetch_len = 0, hello_len = 0, tar_len = 0;
	bool ok;

	if (viv_read_file(VIV_SOURCE_DIR "/sdk/examples/c-fetch/fetch.c", 1 << 20, &fetch_c,
	                  &fetch_len) ||
	    viv_read_file(VIV_SOURCE_DIR "/sdk/examples/c-hello/hello.c", 1 << 20, &hello_c,
	                  &hello_len)) {
		fprintf(stderr, "bench_inflight: cannot read the examples under %s/sdk\n",
		        VIV_SOURCE_DIR);
		free(fetch_c);
		return false;
	}
	/* Its guests wait as long as the platform allows (limits.wall_ms). */
	snprintf(manifest, sizeof(manifest),
	         "{\"outbound\": [\"http://127.0.0.1:%u\"],"
	         " \"env\": {\"UPSTREAM\": \"http://127.0.0.1:%u/held\"},"
	         " \"limits\": {\"wall_ms\": %u}}",
	         upstream_port, upstream_port, VIV_LIMIT_WALL_MS_MAX);
	{
		struct bench_file f[] = {{"fetch.c", fetch_c, fetch_len},
		                         {"vivarium.json", manifest, strlen(manifest)}};
		ok = bench_tar(f, 2, &tar, &tar_len) && bench_deploy(v, "fetch", tar, tar_len, 600);
		free(tar);
	}
	if (ok) {
		struct bench_file f[] = {{"hello.c", hello_c, hello_len}};
		ok = bench_tar(f, 1, &tar, &tar_len) && bench_deploy(v, "hello", tar, tar_len, 600);
		free(tar);
	}
	free(fetch_c);
	free(hello_c);
	return ok;
}

/* ---- The run ------------------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: bench_inflight --vivd PATH [--count N] [--hello-requests N] "
	                "[--json FILE]\n");
	return 2;
}

static void print_mem(const char *when, const struct mem *m)
{
	printf("  worker memory %-8s %9.1f MiB resident: guests' memories %.1f MiB, their "
	       "stacks %.1f MiB, the rest %.1f MiB (%ld mappings)\n",
	       when, (double)m->total / 1024, (double)m->guest / 1024, (double)m->stacks / 1024,
	       (double)(m->total - m->guest - m->stacks) / 1024, m->maps);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	        {"vivd", required_argument, NULL, 'v'},
	        {"count", required_argument, NULL, 'n'},
	        {"hello-requests", required_argument, NULL, 'h'},
	        {"json", required_argument, NULL, 'j'},
	        {NULL, 0, NULL, 0},
	};
	struct opts o = {.n = 10000, .hello = 300};
	struct bench_vivd v;
	struct infl_upstream *up = NULL;
	struct infl_crowd *crowd = NULL;
	struct infl_crowd_config cc;
	struct infl_crowd_stats cs;
	struct mem m0, m1, m2;
	struct lat before, during;
	char sandboxes[16], machine[320];
	unsigned slots, held = 0, i, status, goal;
	struct rlimit nofile;
	double getppid, t0, t_held = 0;
	pid_t worker;
	int ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'v':
			o.vivd = optarg;
			break;
		case 'n':
			o.n = (unsigned)atoi(optarg);
			break;
		case 'h':
			o.hello = (unsigned)atoi(optarg);
			break;
		case 'j':
			o.json = optarg;
			break;
		default:
			return usage();
		}
	}
	if (!o.vivd || !o.n || !o.hello)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	/* Every client's guest holds a slot; the hello app's requests need a
	 * few more. */
	slots = o.n + 64;
	goal = o.n;
	o.n = raise_limits(o.n, slots);
	if (!o.n)
		return 1;
	getrlimit(RLIMIT_NOFILE, &nofile);
	bench_machine(machine, sizeof(machine));
	getppid = bench_getppid_ns();
	snprintf(sandboxes, sizeof(sandboxes), "%u", slots);
	{
		const char *extra[] = {
		        "--workers", "1", "--sandboxes", sandboxes, "--outbound-allow-private",
		        NULL};

		up = infl_upstream_start(UPSTREAM_BODY);
		if (!up) {
			perror("bench_inflight: upstream");
			return 1;
		}
		if (!bench_vivd_start(&v, o.vivd, extra)) {
			infl_upstream_stop(up);
			return 1;
		}
	}
	if (bench_workers(v.pid, &worker, 1) != 1) {
		fprintf(stderr, "bench_inflight: no worker under vivd %d\n", (int)v.pid);
		goto out;
	}
	if (!deploy_apps(&v, infl_upstream_port(up)))
		goto out;

	/* Warm up both apps with the upstream answering at once, then the
	 * reference: the hello app's latency with nothing else in flight. */
	for (i = 0; i < 50; i++) {
		char body[512];

		infl_get(v.apps_port, "fetch.localhost", "/", &status, body, sizeof(body));
		if (status != 200 || strcmp(body, WANT_BODY) != 0) {
			fprintf(stderr, "bench_inflight: the fetch app answered %u: %s\n", status,
			        body);
			goto out;
		}
		infl_get(v.apps_port, "hello.localhost", "/", &status, body, sizeof(body));
	}
	hello_latency(v.apps_port, o.hello, &before);
	if (!worker_mem(worker, &m0)) {
		fprintf(stderr, "bench_inflight: cannot read the worker's smaps\n");
		goto out;
	}

	/* N guests suspended on the upstream. */
	infl_upstream_hold(up);
	memset(&cc, 0, sizeof(cc));
	cc.port = v.apps_port;
	cc.host = "fetch.localhost";
	cc.path = "/";
	cc.want = WANT_BODY;
	cc.n = o.n;
	cc.sources = 16;
	cc.timeout_ms = 120000;
	t0 = now_s();
	crowd = infl_crowd_start(&cc);
	if (!crowd)
		goto out;
	for (;;) {
		held = infl_upstream_held(up);
		infl_crowd_stats(crowd, &cs);
		if (held >= o.n || cs.done + held >= o.n)
			break;
		/* Well inside the outbound timeout (30 s), which counts from
		 * each request's start. */
		if (now_s() - t0 > 20) {
			fprintf(stderr, "bench_inflight: after 20 s the upstream holds %u\n", held);
			break;
		}
		usleep(20000);
	}
	t_held = now_s() - t0;
	held = infl_upstream_held(up);
	fprintf(stderr, "bench_inflight: %u held after %.2f s (%u connections, %u failed)\n", held,
	        t_held, cs.opened, cs.done);
	worker_mem(worker, &m1);
	hello_latency(v.apps_port, o.hello, &during);

	/* Release them, and count the answers. */
	infl_upstream_release(up);
	infl_crowd_wait(crowd, 60000);
	infl_crowd_stats(crowd, &cs);
	worker_mem(worker, &m2);

	{
		double host = (double)((m1.total - m1.guest) - (m0.total - m0.guest)) / held;
		double guest = (double)(m1.guest - m0.guest) / held;
		double stacks = (double)(m1.stacks - m0.stacks) / held;
		unsigned failed = o.n - cs.ok;

		printf("requests in flight in one worker (%s; getppid %.1f ns)\n", machine,
		       getppid);
		printf("  held by the upstream    %u of %u, after %.2f s (goal %u; RLIMIT_NOFILE "
		       "%lu)\n",
		       held, o.n, t_held, goal, (unsigned long)nofile.rlim_max);
		printf("  answered 200, right     %u of %u (failed %u: wrong body %u, 503 %u, "
		       "other status %u, no answer %u)\n",
		       cs.ok, o.n, failed, cs.wrong_body, cs.busy, cs.other, cs.no_answer);
		print_mem("before", &m0);
		print_mem("held", &m1);
		print_mem("after", &m2);
		printf("  per suspended instance  %.1f KiB of host memory beyond the guest's "
		       "pages (native stack %.1f KiB, the rest %.1f KiB); guest pages %.1f KiB\n",
		       host, stacks, host - stacks, guest);
		printf("  hello app, %u requests on fresh connections: p50 %.0f us, p99 %.0f us "
		       "before; p50 %.0f us, p99 %.0f us while %u are held (%u and %u failed)\n",
		       o.hello, before.p50_us, before.p99_us, during.p50_us, during.p99_us, held,
		       before.failed, during.failed);
		if (o.json) {
			FILE *f = fopen(o.json, "w");

			if (!f)
				goto out;
			fprintf(f,
			        "{\"goal\": %u, \"nofile\": %lu, \"count\": %u, \"held\": %u, "
			        "\"held_after_s\": %.2f, \"ok\": %u, "
			        "\"failed\": %u, \"wrong_body\": %u, \"busy\": %u, \"other\": %u, "
			        "\"no_answer\": %u, \"sandboxes\": %u, "
			        "\"rss_kb\": {\"before\": %ld, \"held\": %ld, \"after\": %ld}, "
			        "\"guest_kb\": {\"before\": %ld, \"held\": %ld, \"after\": %ld}, "
			        "\"stacks_kb\": {\"before\": %ld, \"held\": %ld, \"after\": %ld}, "
			        "\"maps_held\": %ld, \"host_kib_per_instance\": %.2f, "
			        "\"stack_kib_per_instance\": %.2f, \"guest_kib_per_instance\": "
			        "%.2f, "
			        "\"hello_requests\": %u, "
			        "\"hello_before\": {\"p50_us\": %.1f, \"p99_us\": %.1f, "
			        "\"failed\": %u}, "
			        "\"hello_during\": {\"p50_us\": %.1f, \"p99_us\": %.1f, "
			        "\"failed\": %u}, "
			        "\"getppid_ns\": %.1f, \"machine\": \"%s\"}\n",
			        goal, (unsigned long)nofile.rlim_max, o.n, held, t_held, cs.ok,
			        failed, cs.wrong_body, cs.busy, cs.other, cs.no_answer, slots,
			        m0.total, m1.total, m2.total, m0.guest, m1.guest, m2.guest,
			        m0.stacks, m1.stacks, m2.stacks, m1.maps, host, stacks, guest,
			        o.hello, before.p50_us, before.p99_us, before.failed, during.p50_us,
			        during.p99_us, during.failed, getppid, machine);
			fclose(f);
		}
	}
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench_inflight: vivd's log is %s/vivd.log (kept)\n", v.dir);
	infl_crowd_stop(crowd);
	infl_upstream_stop(up);
	if (rc) {
		/* Keep the log for whoever reads the message above. */
		kill(v.pid, SIGTERM);
		return rc;
	}
	bench_vivd_stop(&v);
	return rc;
}
