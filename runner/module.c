/* Loading artifacts: dlopen, the checks of their vivarium_guest record, the
 * range of their code (for the fault handler) and their guest mode. */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "runner_int.h"

struct text_search {
	uintptr_t base;
	const char *name;
	uintptr_t lo, hi;
};

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct text_search *ts = arg;
	int i;

	(void)size;
	if (info->dlpi_addr != ts->base || !info->dlpi_name || strcmp(info->dlpi_name, ts->name))
		return 0;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo, hi;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		lo = info->dlpi_addr + ph->p_vaddr;
		hi = lo + ph->p_memsz;
		if (!ts->lo || lo < ts->lo)
			ts->lo = lo;
		if (hi > ts->hi)
			ts->hi = hi;
	}
	return 1;
}

static bool hash_is_hex(const char *h)
{
	size_t i;

	for (i = 0; i < VIV_SHA256_HEX_LEN; i++) {
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	}
	return h[i] == '\0';
}

enum viv_err run_module_load(const char *path, const char *expect_hash, struct run_module **out,
                             char *err, size_t errlen)
{
	struct run_module *m = NULL;
	const struct viv_guest *g;
	struct link_map *lm = NULL;
	struct text_search ts = {0};
	enum viv_err rc = VIV_ERR_INVALID;
	void *dl;

	*out = NULL;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		viv_errf(err, errlen, "cannot load artifact: %s", dlerror());
		return VIV_ERR_IO;
	}
	g = dlsym(dl, VIV_GUEST_SYMBOL);
	if (!g) {
		viv_errf(err, errlen, "%s has no %s symbol; it is not a Vivarium artifact", path,
		         VIV_GUEST_SYMBOL);
		goto out;
	}
	if (g->abi != VIV_GUEST_ABI) {
		viv_errf(err, errlen,
		         "%s was built for guest ABI %u but this runner speaks %u; redeploy the "
		         "app",
		         path, g->abi, VIV_GUEST_ABI);
		goto out;
	}
	if (!g->hash || !hash_is_hex(g->hash) || (expect_hash && strcmp(g->hash, expect_hash))) {
		viv_errf(err, errlen, "%s does not hold artifact %s", path,
		         expect_hash ? expect_hash : "(any)");
		goto out;
	}
	if ((g->mode != VIV_GUEST_CGI && g->mode != VIV_GUEST_HOSTCALL) || !g->entry ||
	    !g->instantiate || !g->free_instance || !g->init_module || g->instance_size == 0 ||
	    g->instance_size > (1u << 20)) {
		viv_errf(err, errlen, "%s has a malformed %s record", path, VIV_GUEST_SYMBOL);
		goto out;
	}
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
		viv_errf(err, errlen, "cannot inspect %s: %s", path, dlerror());
		goto out;
	}
	ts.base = lm->l_addr;
	ts.name = lm->l_name;
	dl_iterate_phdr(find_text, &ts);
	if (!ts.lo) {
		viv_errf(err, errlen, "%s has no executable segment", path);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = VIV_ERR_NOMEM;
		goto out;
	}
	m->refs = 1;
	m->dl = dl;
	m->g = g;
	memcpy(m->hash, g->hash, sizeof(m->hash));
	m->text_lo = ts.lo;
	m->text_hi = ts.hi;
	/* The only place that knows the modes by name. */
	m->mode = g->mode == VIV_GUEST_CGI ? &run_mode_cgi : &run_mode_hostcall;
	g->init_module();
	*out = m;
	return VIV_OK;
out:
	dlclose(dl);
	return rc;
}

struct run_module *run_module_ref(struct run_module *m)
{
	m->refs++;
	return m;
}

void run_module_release(struct run_module *m)
{
	if (!m || --m->refs > 0)
		return;
	dlclose(m->dl);
	free(m);
}

const char *run_module_mode(const struct run_module *m)
{
	return m->mode->name;
}

const char *run_module_hash(const struct run_module *m)
{
	return m->hash;
}
