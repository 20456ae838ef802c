/* Artifacts by hash for a runner host that does not share the builders' data
 * folder: the store says which artifacts the routes need and what each one's
 * bytes hash to; the API (GET /v1/artifacts/{hash}) gives the bytes. Nothing
 * is put in the artifact folder before it has been checked, so a worker
 * never loads what the network or a wrong host delivered. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "pipeline.h"
#include "store.h"
#include "viv.h"

/* The largest artifact taken: far above any guest's .so. */
#define FETCH_MAX ((curl_off_t)1 << 30)
/* How often the routes are looked at without a new generation, and how
 * long an artifact that could not be had waits before it is tried again. */
#define FETCH_LOOK_NS (5000ull * 1000u * 1000u)
#define FETCH_RETRY_NS (10000ull * 1000u * 1000u)
/* How often the routes generation is read. */
#define FETCH_POLL_US 50000

/* What the transfer writes to and checks as it goes. */
struct transfer {
	int fd; /* a memfd */
	curl_off_t got;
	struct viv_sha256 sum;
	char sha256[VIV_SHA256_HEX_LEN + 1]; /* X-Vivarium-Sha256 */
	char platform[VIV_PLATFORM_MAX];     /* X-Vivarium-Platform */
	char error[256];                     /* the start of the body, for a refusal */
	size_t error_len;
	long status;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct transfer *t = ctx;
	size_t len = size * n;

	if (t->got + (curl_off_t)len > FETCH_MAX)
		return 0;
	viv_sha256_update(&t->sum, p, len);
	if (viv_write_all(t->fd, p, len) != VIV_OK)
		return 0;
	if (t->error_len < sizeof(t->error) - 1) {
		size_t take = sizeof(t->error) - 1 - t->error_len;

		take = take < len ? take : len;
		memcpy(t->error + t->error_len, p, take);
		t->error_len += take;
		t->error[t->error_len] = '\0';
	}
	t->got += (curl_off_t)len;
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct transfer *t = ctx;

	viv_header_take(p, size * n, "X-Vivarium-Sha256", t->sha256, sizeof(t->sha256));
	viv_header_take(p, size * n, "X-Vivarium-Platform", t->platform, sizeof(t->platform));
	return size * n;
}

/* GETs /v1/KIND/HASH into t; false, with why, when no 200 came. */
static bool download(const struct vivd_fetch_config *cfg, const char *kind, const char *hash,
                     struct transfer *t, char *why, size_t whylen)
{
	struct curl_slist *hdrs = NULL;
	char url[1024], auth[512];
	CURLcode rc;
	CURL *c;

	size_t base = strlen(cfg->api);

	while (base > 0 && cfg->api[base - 1] == '/')
		base--;
	snprintf(url, sizeof(url), "%.*s/v1/%s/%s", (int)base, cfg->api, kind, hash);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->token ? cfg->token : "");
	c = curl_easy_init();
	hdrs = c ? curl_slist_append(NULL, auth) : NULL;
	if (!c || !hdrs) {
		viv_errf(why, whylen, "out of memory");
		curl_slist_free_all(hdrs);
		if (c)
			curl_easy_cleanup(c);
		return false;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, FETCH_MAX);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		viv_errf(why, whylen, "could not fetch it from %s: %s", url,
		         curl_easy_strerror(rc));
		return false;
	}
	if (t->status != 200) {
		viv_errf(why, whylen, "%s answered %ld: %.200s", url, t->status, t->error);
		return false;
	}
	return true;
}

/* download() into a memfd of t's own (t->fd, which the caller closes). */
static bool fetch(const struct vivd_fetch_config *cfg, const char *kind, const char *hash,
                  struct transfer *t, char *why, size_t whylen)
{
	t->fd = memfd_create(kind, MFD_CLOEXEC);
	if (t->fd < 0 || viv_sha256_begin(&t->sum) != VIV_OK) {
		viv_errf(why, whylen, "cannot make room for it: %s", strerror(errno));
		return false;
	}
	return download(cfg, kind, hash, t, why, whylen);
}

bool vivd_fetch_artifact(const struct vivd_fetch_config *cfg, struct store *st, const char *hash,
                         char *why, size_t whylen)
{
	struct store_artifact_info info;
	struct transfer t;
	char here[VIV_PLATFORM_MAX], sum[VIV_SHA256_HEX_LEN + 1], what[256];
	const char *want, *platform;
	enum viv_err err;
	bool ok = false;

	memset(&t, 0, sizeof(t));
	t.fd = -1;
	err = store_artifact_info(st, hash, &info);
	if (err) {
		viv_errf(why, whylen, "the store has no record of it: %s", viv_strerror(err));
		return false;
	}
	viv_platform(here);
	/* Refused before the transfer when the store already tells. */
	if (info.platform[0] && !viv_platform_runs(info.platform, here, what, sizeof(what))) {
		viv_errf(why, whylen, "this host cannot load it: %s", what);
		return false;
	}
	if (!fetch(cfg, "artifacts", hash, &t, why, whylen))
		goto out;
	viv_sha256_end(&t.sum, sum);
	/* The store's record is what counts; the API's header only for
	 * artifacts built before the store kept the sum. */
	want = info.so_sha256[0] ? info.so_sha256 : t.sha256;
	if (!viv_hex64_valid(want)) {
		viv_errf(why, whylen, "neither the store nor the API gave the sha256 of its bytes");
		goto out;
	}
	if (strcmp(sum, want) != 0) {
		viv_errf(why, whylen,
		         "the %lld bytes that came have sha256 %s, not %s as %s recorded; not used",
		         (long long)t.got, sum, want, info.so_sha256[0] ? "the store" : "the API");
		goto out;
	}
	platform = info.platform[0] ? info.platform : t.platform;
	if (platform[0] && !viv_platform_runs(platform, here, what, sizeof(what))) {
		viv_errf(why, whylen, "this host cannot load it: %s", what);
		goto out;
	}
	if (lseek(t.fd, 0, SEEK_SET) != 0 ||
	    (err = store_artifact_put_fd(st, hash, "so", t.fd)) != VIV_OK) {
		viv_errf(why, whylen, "could not put it in the artifact folder");
		goto out;
	}
	viv_log(VIV_INFO, "artifact %s: fetched from %s, %lld bytes, sha256 checked", hash,
	        cfg->api, (long long)t.got);
	ok = true;
out:
	if (t.fd >= 0)
		close(t.fd);
	return ok;
}

bool vivd_fetch_assets(const struct vivd_fetch_config *cfg, struct store *st, const char *hash,
                       char *why, size_t whylen)
{
	struct transfer t;
	char tar[64], *scratch = NULL, *root = NULL;
	bool ok = false;

	memset(&t, 0, sizeof(t));
	t.fd = -1;
	if (!fetch(cfg, "assets", hash, &t, why, whylen))
		goto out;
	if (store_build_dir(st, NULL, 0, &scratch) != VIV_OK) {
		viv_errf(why, whylen, "cannot make a folder to unpack them in");
		goto out;
	}
	/* The tar is unpacked as an upload is, and the tree must be the one
	 * its hash names: the hash is of its content. */
	snprintf(tar, sizeof(tar), "/proc/self/fd/%d", t.fd);
	if (pipe_assets_fetched(cfg->pipe, tar, scratch, hash, &root, why, whylen) != VIV_OK)
		goto out;
	if (store_assets_put(st, hash, root) != VIV_OK) {
		viv_errf(why, whylen, "could not put them in the static files folder");
		goto out;
	}
	viv_log(VIV_INFO, "static files %s: fetched from %s, %lld bytes, hash checked", hash,
	        cfg->api, (long long)t.got);
	ok = true;
out:
	if (scratch)
		viv_rmtree_or_log(scratch);
	free(scratch);
	free(root);
	if (t.fd >= 0)
		close(t.fd);
	return ok;
}

/* ---- The role ------------------------------------------------------------------ */

/* Artifacts that could not be had, and when they may be tried again. */
struct failed {
	char hash[VIV_SHA256_HEX_LEN + 1];
	uint64_t retry_at;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static bool failed_recently(const struct failed *f, size_t n, const char *hash, uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(f[i].hash, hash) == 0 && now < f[i].retry_at)
			return true;
	}
	return false;
}

/* Fetches what the routes need and this host lacks; whether all is here. */
static bool fetch_missing(const struct vivd_fetch_config *cfg, struct store *st,
                          struct failed **failed, size_t *n_failed)
{
	struct store_route *routes = NULL;
	size_t n = 0, kept = 0;
	uint64_t now = viv_mono_ns();
	bool all = true;
	char why[512];

	if (store_routes_load(st, &routes, &n) != VIV_OK) {
		viv_log(VIV_WARN, "fetcher: cannot read the routes; trying again");
		return false;
	}
	/* Forget the failures whose wait is over. */
	for (size_t i = 0; i < *n_failed; i++) {
		if (now < (*failed)[i].retry_at)
			(*failed)[kept++] = (*failed)[i];
	}
	*n_failed = kept;
	for (size_t i = 0; i < n && !stopping; i++) {
		const char *hash = routes[i].artifact;
		struct failed *more;

		const char *assets = routes[i].config.assets;
		bool need_so = !store_artifact_exists(st, hash);
		bool need_assets = assets && !store_assets_exists(st, assets);

		if ((!need_so && !need_assets) || failed_recently(*failed, *n_failed, hash, now))
			continue;
		if ((!need_so || vivd_fetch_artifact(cfg, st, hash, why, sizeof(why))) &&
		    (!need_assets || vivd_fetch_assets(cfg, st, assets, why, sizeof(why))))
			continue;
		all = false;
		viv_log(VIV_ERROR,
		        "app %s: deployment %lld: %s; the app keeps its last deployment here",
		        routes[i].app, (long long)routes[i].deployment_id, why);
		more = realloc(*failed, (*n_failed + 1) * sizeof(**failed));
		if (!more)
			continue;
		*failed = more;
		snprintf(more[*n_failed].hash, sizeof(more[*n_failed].hash), "%s", hash);
		more[*n_failed].retry_at = now + FETCH_RETRY_NS;
		(*n_failed)++;
	}
	store_routes_free(routes, n);
	return all;
}

int vivd_fetch_main(const struct vivd_fetch_config *cfg)
{
	struct failed *failed = NULL;
	struct store *st = NULL;
	struct sigaction sa;
	size_t n_failed = 0;
	uint64_t seen = 0, look_at = 0;
	char err[512];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (store_open_db(cfg->datadir, cfg->store_url, &st, err, sizeof(err)) != VIV_OK) {
		viv_log(VIV_ERROR, "fetcher: cannot open the store: %s", err);
		return 1;
	}
	viv_log(VIV_INFO, "fetching the artifacts the routes need from %s", cfg->api);
	while (!stopping) {
		uint64_t gen = store_routes_generation(st), now = viv_mono_ns();

		if (gen != seen || now >= look_at) {
			seen = gen;
			look_at = now + FETCH_LOOK_NS;
			fetch_missing(cfg, st, &failed, &n_failed);
		}
		usleep(FETCH_POLL_US);
	}
	free(failed);
	store_close(st);
	viv_log(VIV_INFO, "fetcher: stopped");
	return 0;
}
