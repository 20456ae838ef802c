/* End to end: a guest whose manifest allows every one of them fetches
 * loopback, private, link-local, metadata, IPv4-mapped IPv6 and numeric
 * spellings of such addresses (0x7f.1, 2130706433, 017700000001 and more),
 * directly and through redirects, on the real vivd: none of them is
 * reached, which a listener on every local address at the port they name
 * counts.
 *
 * The test runs in a network namespace of its own, made for it (it needs
 * root), holding only the loopback interface with the private and
 * metadata addresses added to it: a request that got through would reach
 * the listener here and could reach nothing else. The redirector stands
 * at 198.51.100.7 (a documentation address, not a private one), so the
 * runner may reach it. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "figure.h"
#include "rawnet.h"
#include "support.h"
#include "viv.h"

#define REDIRECTOR "198.51.100.7"

/* Hosts and spellings, each with the port of the counting listener. */
static const char *const hosts[] = {
        "127.0.0.1",
        "127.0.0.2",
        "127.1",
        "0x7f.1",
        "0x7f000001",
        "2130706433",
        "017700000001",
        "0177.0.0.1",
        "0",
        "0.0.0.0",
        "localhost",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "169.254.169.254",
        "0xa9fea9fe",
        "2852039166",
        "0251.0376.0251.0376",
        "10.0.0.1",
        "012.0.0.1",
        "167772161",
        "172.16.0.1",
        "192.168.0.1",
        "3232235521",
        "100.64.0.1",
        "[fd00::1]",
        "[fe80::1]",
        "[::ffff:10.0.0.1]",
        "224.0.0.1",
        "255.255.255.255",
        /* Names that this test's own hosts file gives such addresses. */
        "mapped.proof.test",
        "v6loop.proof.test",
        "meta.proof.test",
        "ula.proof.test",
        "compat.proof.test",
        "nat64.proof.test",
        "private.proof.test",
};
#define N_HOSTS (sizeof(hosts) / sizeof(hosts[0]))

static const char guest_wat[] =
        "(module\n"
        " (import \"env\" \"hostcall_init_mm\" (func $init (param i32 i32)))\n"
        " (import \"env\" \"hostcall_req_get_path\" (func $path (param i32 i32 i32)))\n"
        " (import \"env\" \"hostcall_req_create\"\n"
        "   (func $create (param i32 i32 i32 i32) (result i32)))\n"
        " (import \"env\" \"hostcall_req_send\" (func $send (param i32) (result i32)))\n"
        " (import \"env\" \"hostcall_resp_get_response_code\"\n"
        "   (func $code (param i32) (result i32)))\n"
        " (import \"env\" \"hostcall_resp_set_response_code\"\n"
        "   (func $set_code (param i32 i32) (result i32)))\n"
        " (memory 1)\n"
        " (table 2 funcref) (elem (i32.const 0) $malloc $free)\n"
        " (global $heap (mut i32) (i32.const 4096))\n"
        " (data (i32.const 0) \"GET\")\n"
        " (func $malloc (param i32) (result i32) (local i32)\n"
        "   (local.set 1 (global.get $heap))\n"
        "   (global.set $heap (i32.add (global.get $heap)\n"
        "     (i32.and (i32.add (local.get 0) (i32.const 15)) (i32.const -16))))\n"
        "   (local.get 1))\n"
        " (func $free (param i32))\n"
        /* The URL to fetch is the request's path without its first '/'; the
         * answer is the upstream's status, 400 when the URL was refused and
         * 502 when the request failed. */
        " (func (export \"run\") (local $req i32) (local $resp i32)\n"
        "   (call $init (i32.const 0) (i32.const 1))\n"
        "   (call $path (i32.const 16) (i32.const 20) (i32.const 0))\n"
        "   (local.set $req (call $create (i32.const 0) (i32.const 3)\n"
        "     (i32.add (i32.load (i32.const 16)) (i32.const 1))\n"
        "     (i32.sub (i32.load (i32.const 20)) (i32.const 1))))\n"
        "   (if (i32.lt_s (local.get $req) (i32.const 0))\n"
        "     (then (drop (call $set_code (i32.const 0) (i32.const 400))) (return)))\n"
        "   (local.set $resp (call $send (local.get $req)))\n"
        "   (if (i32.lt_s (local.get $resp) (i32.const 0))\n"
        "     (then (drop (call $set_code (i32.const 0) (i32.const 502))))\n"
        "     (else (drop (call $set_code (i32.const 0) (call $code (local.get $resp))))))))\n";

/* ---- A listener that counts, and a redirector ---------------------------------------- */

struct server {
	int fd;
	unsigned port;
	volatile int stop;
	volatile unsigned accepted;
	bool redirect; /* answer with redirects to the targets */
	unsigned target_port;
	pthread_t th;
};

static void serve_redirect(struct server *s, int c)
{
	char req[2048], resp[512];
	ssize_t n = recv(c, req, sizeof(req) - 1, 0);
	unsigned i;

	if (n <= 0)
		return;
	req[n] = '\0';
	if (sscanf(req, "GET /to/%u ", &i) == 1 && i < N_HOSTS)
		snprintf(resp, sizeof(resp),
		         "HTTP/1.1 302 Found\r\nLocation: http://%s:%u/reached\r\n"
		         "Content-Length: 0\r\nConnection: close\r\n\r\n",
		         hosts[i], s->target_port);
	else if (strncmp(req, "GET /ok ", 8) == 0)
		snprintf(resp, sizeof(resp),
		         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
	else
		snprintf(
		        resp, sizeof(resp),
		        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	if (send(c, resp, strlen(resp), MSG_NOSIGNAL) < 0)
		return;
}

static void *server_thread(void *arg)
{
	struct server *s = arg;

	while (!s->stop) {
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		int c;

		if (poll(&p, 1, 100) <= 0)
			continue;
		c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		s->accepted++;
		if (s->redirect)
			serve_redirect(s, c);
		close(c);
	}
	return NULL;
}

/* Starts s listening on every address (v6 and v4) when addr is NULL, else
 * on the IPv4 address addr, at a free port. */
static void server_start(struct server *s, const char *addr)
{
	int one = 1, zero = 0;
	socklen_t len;

	if (addr) {
		struct sockaddr_in a = {.sin_family = AF_INET};

		s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(inet_pton(AF_INET, addr, &a.sin_addr), 1);
		setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s",
		             strerror(errno));
		len = sizeof(a);
		getsockname(s->fd, (struct sockaddr *)&a, &len);
		s->port = ntohs(a.sin_port);
	} else {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};

		s->fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s",
		             strerror(errno));
		len = sizeof(a);
		getsockname(s->fd, (struct sockaddr *)&a, &len);
		s->port = ntohs(a.sin6_port);
	}
	cr_assert_eq(listen(s->fd, 64), 0);
	cr_assert_eq(pthread_create(&s->th, NULL, server_thread, s), 0);
}

static void server_stop(struct server *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->fd);
}

/* ---- The namespace -------------------------------------------------------------------- */

static void ip(const char *const *argv)
{
	char *out = NULL;
	int rc = tsup_run(argv, NULL, &out);

	cr_assert_eq(rc, 0, "%s %s %s: %s", argv[0], argv[1], argv[2], out);
	free(out);
}

/* A network namespace with loopback up and the addresses the hosts name
 * on it. */
static void private_network(void)
{
	static const char *const v4[] = {"169.254.169.254/32", "10.0.0.1/32",   "172.16.0.1/32",
	                                 "192.168.0.1/32",     "100.64.0.1/32", REDIRECTOR "/32"};

	if (geteuid() != 0)
		cr_skip_test("needs root to make a network namespace of its own");
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("cannot make a network namespace: %s", strerror(errno));
	ip((const char *const[]){"ip", "link", "set", "lo", "up", NULL});
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
		ip((const char *const[]){"ip", "addr", "add", v4[i], "dev", "lo", NULL});
	ip((const char *const[]){"ip", "-6", "addr", "add", "fd00::1/128", "dev", "lo", NULL});
	ip((const char *const[]){"ip", "-6", "addr", "add", "fe80::1/128", "dev", "lo", NULL});
}

/* The names above in a hosts file of this test's own, over /etc/hosts in a
 * mount namespace of its own (the runner resolves through the system). */
static void private_names(void)
{
	static const char entries[] = "\n::ffff:127.0.0.1 mapped.proof.test\n"
	                              "::1 v6loop.proof.test\n"
	                              "169.254.169.254 meta.proof.test\n"
	                              "fd00::1 ula.proof.test\n"
	                              "::127.0.0.1 compat.proof.test\n"
	                              "64:ff9b::7f00:1 nat64.proof.test\n"
	                              "10.0.0.1 private.proof.test\n";
	char path[] = "/tmp/viv-proof-hosts-XXXXXX", *orig = NULL;
	size_t len = 0;
	int fd = mkstemp(path);
	FILE *f;

	cr_assert_geq(fd, 0);
	close(fd);
	if (viv_read_file("/etc/hosts", 1 << 20, &orig, &len) != VIV_OK)
		orig = strdup("127.0.0.1 localhost\n");
	f = fopen(path, "w");
	fputs(orig, f);
	fputs(entries, f);
	fclose(f);
	chmod(path, 0644);
	free(orig);
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "%s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(mount(path, "/etc/hosts", NULL, MS_BIND, NULL), 0, "%s", strerror(errno));
	unlink(path);
}

/* ---- The test -------------------------------------------------------------------------- */

static long fetch(const struct tsup_vivd *v, const char *url)
{
	char path[512];
	struct tsup_resp r;
	long status;

	snprintf(path, sizeof(path), "/%s", url);
	cr_assert(tsup_app_get(v, "fetcher", path, &r), "%s", r.error);
	status = r.status;
	tsup_resp_free(&r);
	return status;
}

Test(outbound, private_addresses_are_never_reached_directly_or_by_redirect, .timeout = 300)
{
	struct server target = {0}, redirector = {.redirect = true};
	struct tsup_vivd v;
	struct viv_buf manifest;
	char *tgz, url[256];
	size_t len, refused = 0, by_list = 0, by_address = 0, other = 0;
	json_t *d;
	long status;

	private_network();
	private_names();
	server_start(&target, NULL);
	redirector.target_port = target.port;
	server_start(&redirector, REDIRECTOR);
	/* The manifest allows every target, so that only the address rule
	 * stands between the guest and them. */
	viv_buf_init(&manifest, 0);
	cr_assert_eq(viv_buf_printf(&manifest,
	                            "{\"language\": \"wat\", \"outbound\": [\"http://%s:%u\"",
	                            REDIRECTOR, redirector.port),
	             VIV_OK);
	/* Patterns take no IPv6 literals: those are refused by the URL
	 * check, the rest only by the address rule. */
	for (size_t i = 0; i < N_HOSTS; i++)
		if (hosts[i][0] != '[')
			cr_assert_eq(viv_buf_printf(&manifest, ", \"http://%s:%u\"", hosts[i],
			                            target.port),
			             VIV_OK);
	cr_assert_eq(viv_buf_printf(&manifest, "]}\n"), VIV_OK);
	{
		const struct tsup_file files[] = {{"app.wat", guest_wat},
		                                  {"vivarium.json", manifest.data}};

		tsup_tar(files, 2, true, &tgz, &len);
	}
	tsup_vivd_start(&v, NULL);
	d = tsup_deploy_wait(&v, "fetcher", tgz, len);
	cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "ready", "%s\n%s",
	                 json_string_value(json_object_get(d, "error")),
	                 json_string_value(json_object_get(d, "log")));
	json_decref(d);
	free(tgz);

	/* The way out works: the redirector answers. */
	snprintf(url, sizeof(url), "http://%s:%u/ok", REDIRECTOR, redirector.port);
	cr_assert_eq(fetch(&v, url), 200, "the guest cannot reach the redirector");
	for (size_t i = 0; i < N_HOSTS; i++) {
		snprintf(url, sizeof(url), "http://%s:%u/direct", hosts[i], target.port);
		status = fetch(&v, url);
		cr_assert(status == 502 || status == 400, "%s answered %ld", url, status);
		refused++;
		snprintf(url, sizeof(url), "http://%s:%u/to/%zu", REDIRECTOR, redirector.port, i);
		status = fetch(&v, url);
		cr_assert(status == 502 || status == 400, "a redirect to %s answered %ld", hosts[i],
		          status);
		refused++;
	}
	usleep(200000);
	/* Why each was refused, from the app's log (written in batches). */
	usleep(500000);
	{
		char logs[256];
		struct tsup_resp r;

		snprintf(logs, sizeof(logs), "%s/v1/apps/fetcher/logs?limit=1000", v.api);
		cr_assert(tsup_http("GET", logs, NULL, v.token, NULL, 0, &r), "%s", r.error);
		by_address = rawnet_count(r.body, "a private or local address");
		by_list = rawnet_count(r.body, "outbound list");
		other = rawnet_count(r.body, "outbound request to ");
		tsup_resp_free(&r);
	}
	FIGURE("outbound: %zu requests to %zu spellings of loopback, private, link-local, "
	       "metadata and mapped addresses, half through redirects (%u redirects served); "
	       "refused: %zu at connect for the address, %zu by the outbound list (IPv6 "
	       "literals, which patterns cannot name), %zu otherwise failed; %u connections "
	       "reached the listener",
	       refused, N_HOSTS, redirector.accepted - 1, by_address, by_list, other,
	       target.accepted);
	cr_assert_eq(target.accepted, 0, "%u connections reached a private address",
	             target.accepted);
	cr_assert_geq(redirector.accepted, N_HOSTS + 1, "the redirects were not followed");
	tsup_vivd_stop(&v);
	server_stop(&target);
	server_stop(&redirector);
	viv_buf_free(&manifest);
}
