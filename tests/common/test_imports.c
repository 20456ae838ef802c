/* Tests of the provided-imports table and wasm2c's symbol names. */
#include <criterion/criterion.h>
#include <string.h>

#include "viv_imports.h"

Test(imports, symbol_names_match_wasm2c)
{
	char buf[128];

	/* Names as wasm2c 1.0.32 writes them for these imports. */
	cr_assert(viv_import_symbol("env", "hostcall_debug", buf, sizeof(buf)));
	cr_assert_str_eq(buf, "Z_envZ_hostcall_debug");
	cr_assert(viv_import_symbol("m_Z", "a_b1$Zz\xc3\xa9", buf, sizeof(buf)));
	cr_assert_str_eq(buf, "Z_m_Z5AZ_a_b1Z24Z5AzZC3ZA9");
	cr_assert_not(viv_import_symbol("env", "hostcall_debug", buf, 10));
}

Test(imports, table_types_are_well_formed)
{
	size_t n = 0;

	for (const struct viv_import *imp = viv_imports; imp->module; imp++, n++) {
		const char *colon = strchr(imp->type, ':');
		cr_assert_not_null(colon, "%s has no ':'", imp->name);
		cr_assert(strspn(imp->type, "iIfF:") == strlen(imp->type), "%s", imp->name);
		cr_assert(strlen(colon + 1) <= 1, "%s has several results", imp->name);
		cr_assert_eq(viv_import_find(imp->module, imp->name), imp);
	}
	cr_assert_geq(n, 46 + 33);
	cr_assert_null(viv_import_find("env", "nope"));
}
