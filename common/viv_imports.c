/* The list of imports guests may use; see viv_imports.h. */
#include "viv_imports.h"

#include <stdio.h>
#include <string.h>

#define WASI "wasi_snapshot_preview1"

const struct viv_import viv_imports[] = {
        /* WASI preview 1, every function (GUEST-ABI.md section 3). */
        {WASI, "args_get", "ii:i"},
        {WASI, "args_sizes_get", "ii:i"},
        {WASI, "environ_get", "ii:i"},
        {WASI, "environ_sizes_get", "ii:i"},
        {WASI, "clock_res_get", "ii:i"},
        {WASI, "clock_time_get", "iIi:i"},
        {WASI, "fd_advise", "iIIi:i"},
        {WASI, "fd_allocate", "iII:i"},
        {WASI, "fd_close", "i:i"},
        {WASI, "fd_datasync", "i:i"},
        {WASI, "fd_fdstat_get", "ii:i"},
        {WASI, "fd_fdstat_set_flags", "ii:i"},
        {WASI, "fd_fdstat_set_rights", "iII:i"},
        {WASI, "fd_filestat_get", "ii:i"},
        {WASI, "fd_filestat_set_size", "iI:i"},
        {WASI, "fd_filestat_set_times", "iIIi:i"},
        {WASI, "fd_pread", "iiiIi:i"},
        {WASI, "fd_prestat_get", "ii:i"},
        {WASI, "fd_prestat_dir_name", "iii:i"},
        {WASI, "fd_pwrite", "iiiIi:i"},
        {WASI, "fd_read", "iiii:i"},
        {WASI, "fd_readdir", "iiiIi:i"},
        {WASI, "fd_renumber", "ii:i"},
        {WASI, "fd_seek", "iIii:i"},
        {WASI, "fd_sync", "i:i"},
        {WASI, "fd_tell", "ii:i"},
        {WASI, "fd_write", "iiii:i"},
        {WASI, "path_create_directory", "iii:i"},
        {WASI, "path_filestat_get", "iiiii:i"},
        {WASI, "path_filestat_set_times", "iiiiIIi:i"},
        {WASI, "path_link", "iiiiiii:i"},
        {WASI, "path_open", "iiiiiIIii:i"},
        {WASI, "path_readlink", "iiiiii:i"},
        {WASI, "path_remove_directory", "iii:i"},
        {WASI, "path_rename", "iiiiii:i"},
        {WASI, "path_symlink", "iiiii:i"},
        {WASI, "path_unlink_file", "iii:i"},
        {WASI, "poll_oneoff", "iiii:i"},
        {WASI, "proc_exit", "i:"},
        {WASI, "proc_raise", "i:i"},
        {WASI, "sched_yield", ":i"},
        {WASI, "random_get", "ii:i"},
        {WASI, "sock_accept", "iii:i"},
        {WASI, "sock_recv", "iiiiii:i"},
        {WASI, "sock_send", "iiiii:i"},
        {WASI, "sock_shutdown", "ii:i"},

        /* The Terrarium host-call ABI (GUEST-ABI.md section 1), and
         * Vivarium's config_get. Pointers, sizes and bools are i32. */
        {"env", "hostcall_init_mm", "ii:"},
        {"env", "hostcall_req_get_method", "iii:"},
        {"env", "hostcall_req_get_path", "iii:"},
        {"env", "hostcall_req_get_body", "iii:"},
        {"env", "hostcall_req_get_headers", "iii:"},
        {"env", "hostcall_req_get_header", "iiiii:"},
        {"env", "hostcall_req_create", "iiii:i"},
        {"env", "hostcall_req_set_header", "iiiii:i"},
        {"env", "hostcall_req_set_body", "iii:i"},
        {"env", "hostcall_req_send", "i:i"},
        {"env", "hostcall_req_send_async", "i:i"},
        {"env", "hostcall_pending_req_wait", "i:i"},
        {"env", "hostcall_pending_req_poll", "i:i"},
        {"env", "hostcall_pending_req_select", "iii:i"},
        {"env", "hostcall_resp_get_headers", "iii:"},
        {"env", "hostcall_resp_get_header", "iiiii:"},
        {"env", "hostcall_resp_get_body", "iii:"},
        {"env", "hostcall_resp_get_response_code", "i:i"},
        {"env", "hostcall_resp_set_header", "iiiii:i"},
        {"env", "hostcall_resp_set_body", "iii:i"},
        {"env", "hostcall_resp_set_response_code", "ii:i"},
        {"env", "hostcall_kvstore_insert", "iiii:i"},
        {"env", "hostcall_kvstore_upsert", "iiii:i"},
        {"env", "hostcall_kvstore_append", "iiii:i"},
        {"env", "hostcall_kvstore_get", "iiii:i"},
        {"env", "hostcall_kvstore_remove", "ii:i"},
        {"env", "hostcall_rng_next_u64", ":I"},
        {"env", "hostcall_time_now", "i:I"},
        {"env", "hostcall_dns_query_raw", "iiii:i"},
        {"env", "hostcall_dns_query_ip", "iiiii:i"},
        {"env", "hostcall_debug", "ii:"},
        {"env", "hostcall_panic_hook", "ii:"},
        {"env", "hostcall_config_get", "iiii:i"},
        {NULL, NULL, NULL},
};

const struct viv_import *viv_import_find(const char *module, const char *name)
{
	const struct viv_import *imp;

	for (imp = viv_imports; imp->module; imp++) {
		if (strcmp(imp->module, module) == 0 && strcmp(imp->name, name) == 0)
			return imp;
	}
	return NULL;
}

/* wasm2c keeps letters other than 'Z', digits and '_', and writes every
 * other byte as 'Z' and two upper-case hex digits. */
static bool mangle(const char *s, char *buf, size_t len, size_t *pos)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Y') ||
		            (c >= '0' && c <= '9') || c == '_';
		if (keep) {
			if (*pos + 1 >= len)
				return false;
			buf[(*pos)++] = (char)c;
		} else {
			if (*pos + 3 >= len)
				return false;
			buf[(*pos)++] = 'Z';
			buf[(*pos)++] = hex[c >> 4];
			buf[(*pos)++] = hex[c & 15];
		}
	}
	buf[*pos] = '\0';
	return true;
}

bool viv_import_symbol(const char *module, const char *name, char *buf, size_t len)
{
	size_t pos = 0;

	if (len < 3)
		return false;
	buf[pos++] = 'Z';
	buf[pos++] = '_';
	if (!mangle(module, buf, len, &pos) || pos + 2 >= len)
		return false;
	buf[pos++] = 'Z';
	buf[pos++] = '_';
	return mangle(name, buf, len, &pos);
}
