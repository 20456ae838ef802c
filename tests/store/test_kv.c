/* Apps' KV data: the Terrarium semantics of each call, caps, and one
 * namespace per app. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static struct store *st;
static int64_t a, b;

static void setup(void)
{
	store_test_setup();
	st = test_open();
	cr_assert_eq(store_app_ensure(st, "a", &a), VIV_OK);
	cr_assert_eq(store_app_ensure(st, "b", &b), VIV_OK);
}

static void teardown(void)
{
	store_close(st);
	store_test_teardown();
}

TestSuite(kv, .init = setup, .fini = teardown);

static char *get(int64_t app, const char *key, size_t *len)
{
	char *v = NULL;
	size_t n = 0;
	enum viv_err err = store_kv_get(st, app, key, strlen(key), &v, &n);

	if (err == VIV_ERR_NOT_FOUND)
		return NULL;
	cr_assert_eq(err, VIV_OK);
	if (len)
		*len = n;
	return v;
}

Test(kv, insert_upsert_append_remove)
{
	bool yes = false;
	char *v;

	cr_assert_eq(store_kv_put_new(st, a, "k", 1, "one", 3, &yes), VIV_OK);
	cr_assert(yes);
	cr_assert_eq(store_kv_put_new(st, a, "k", 1, "two", 3, &yes), VIV_OK);
	cr_assert_not(yes, "insert must not replace");
	v = get(a, "k", NULL);
	cr_assert_str_eq(v, "one");
	free(v);
	cr_assert_eq(store_kv_put(st, a, "k", 1, "uno", 3, &yes), VIV_OK);
	cr_assert_not(yes, "the key was not new");
	cr_assert_eq(store_kv_append(st, a, "k", 1, "+", 1, &yes), VIV_OK);
	cr_assert_not(yes);
	cr_assert_eq(store_kv_append(st, a, "fresh", 5, "x", 1, &yes), VIV_OK);
	cr_assert(yes);
	v = get(a, "k", NULL);
	cr_assert_str_eq(v, "uno+");
	free(v);
	cr_assert_eq(store_kv_remove(st, a, "k", 1, &yes), VIV_OK);
	cr_assert(yes);
	cr_assert_eq(store_kv_remove(st, a, "k", 1, &yes), VIV_OK);
	cr_assert_not(yes);
	cr_assert_null(get(a, "k", NULL));
}

Test(kv, binary_keys_and_values)
{
	const char key[] = {0, 1, 2, (char)0xff};
	const char val[] = {'a', 0, 'b'};
	char *v = NULL;
	size_t n = 0;
	bool yes;

	cr_assert_eq(store_kv_put(st, a, key, sizeof(key), val, sizeof(val), &yes), VIV_OK);
	cr_assert_eq(store_kv_get(st, a, key, sizeof(key), &v, &n), VIV_OK);
	cr_assert_eq(n, 3);
	cr_assert_eq(memcmp(v, val, 3), 0);
	cr_assert_eq(v[3], '\0');
	free(v);
}

Test(kv, apps_do_not_see_each_other)
{
	bool yes;
	char *v;

	cr_assert_eq(store_kv_put(st, a, "shared", 6, "from a", 6, &yes), VIV_OK);
	cr_assert_null(get(b, "shared", NULL));
	cr_assert_eq(store_kv_put(st, b, "shared", 6, "from b", 6, &yes), VIV_OK);
	cr_assert(yes);
	v = get(a, "shared", NULL);
	cr_assert_str_eq(v, "from a");
	free(v);
}

Test(kv, caps)
{
	char *big = calloc(1, STORE_KV_VALUE_MAX + 1);
	char key[STORE_KV_KEY_MAX + 1];
	bool yes = true;

	memset(key, 'k', sizeof(key));
	cr_assert_eq(store_kv_put(st, a, key, sizeof(key), "v", 1, &yes), VIV_ERR_INVALID);
	cr_assert_eq(store_kv_put(st, a, "", 0, "v", 1, &yes), VIV_ERR_INVALID);
	cr_assert_eq(store_kv_put(st, a, "k", 1, big, STORE_KV_VALUE_MAX + 1, &yes),
	             VIV_ERR_TOO_BIG);
	cr_assert_eq(store_kv_put(st, a, "k", 1, big, STORE_KV_VALUE_MAX, &yes), VIV_OK);
	cr_assert_eq(store_kv_append(st, a, "k", 1, "x", 1, &yes), VIV_ERR_TOO_BIG);
	free(big);
}

Test(kv, survives_reopening_with_relaxed_sync)
{
	bool yes;
	char *v;

	cr_assert_eq(store_sync_relaxed(st), VIV_OK);
	cr_assert_eq(store_kv_put(st, a, "keep", 4, "me", 2, &yes), VIV_OK);
	store_close(st);
	st = test_open();
	v = get(a, "keep", NULL);
	cr_assert_str_eq(v, "me");
	free(v);
}
