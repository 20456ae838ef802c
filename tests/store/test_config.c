/* App configuration set through the API: keys and values checked, sorted
 * JSON out, routes carrying it, and the generation moving on each change. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static struct store *st;

static void setup(void)
{
	int64_t id;

	store_test_setup();
	st = test_open();
	cr_assert_eq(store_app_ensure(st, "app", &id), VIV_OK);
}

static void teardown(void)
{
	store_close(st);
	store_test_teardown();
}

TestSuite(config, .init = setup, .fini = teardown);

/* The settings alone, and what guests see, are both want. */
static void assert_config(const char *app, const char *want)
{
	char *json = NULL;

	cr_assert_eq(store_app_settings_get(st, app, &json), VIV_OK);
	cr_assert_str_eq(json, want);
	free(json);
	cr_assert_eq(store_app_config_get(st, app, &json), VIV_OK);
	cr_assert_str_eq(json, want);
	free(json);
}

Test(config, set_get_unset)
{
	bool existed = true;

	assert_config("app", "{}");
	cr_assert_eq(store_app_config_set(st, "app", "ZED", "last"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "GREETING", "hello \"you\"\n"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "_under", "caf\xc3\xa9"), VIV_OK);
	assert_config("app", "{\"GREETING\":\"hello \\\"you\\\"\\n\",\"ZED\":\"last\","
	                     "\"_under\":\"caf\xc3\xa9\"}");
	cr_assert_eq(store_app_config_set(st, "app", "ZED", ""), VIV_OK);
	cr_assert_eq(store_app_config_unset(st, "app", "GREETING", &existed), VIV_OK);
	cr_assert(existed);
	cr_assert_eq(store_app_config_unset(st, "app", "GREETING", &existed), VIV_OK);
	cr_assert_not(existed);
	assert_config("app", "{\"ZED\":\"\",\"_under\":\"caf\xc3\xa9\"}");
}

Test(config, refuses_bad_keys_values_and_apps)
{
	char big[STORE_CONFIG_VALUE_MAX + 2];
	char long_key[STORE_CONFIG_KEY_MAX + 2];
	char *json = (char *)1;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(long_key, 'K', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	cr_assert_eq(store_app_config_set(st, "app", "", "v"), VIV_ERR_INVALID);
	cr_assert_eq(store_app_config_set(st, "app", "1ST", "v"), VIV_ERR_INVALID);
	cr_assert_eq(store_app_config_set(st, "app", "A-B", "v"), VIV_ERR_INVALID);
	cr_assert_eq(store_app_config_set(st, "app", long_key, "v"), VIV_ERR_INVALID);
	long_key[STORE_CONFIG_KEY_MAX] = '\0';
	cr_assert_eq(store_app_config_set(st, "app", long_key, "v"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "BIG", big), VIV_ERR_INVALID);
	big[STORE_CONFIG_VALUE_MAX] = '\0';
	cr_assert_eq(store_app_config_set(st, "app", "BIG", big), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "BAD", "\xff\xfe"), VIV_ERR_INVALID);
	cr_assert_eq(store_app_config_set(st, "app", "BAD", "\xed\xa0\x80"), VIV_ERR_INVALID);
	cr_assert_eq(store_app_config_set(st, "nope", "K", "v"), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_app_config_unset(st, "nope", "K", NULL), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_app_config_get(st, "nope", &json), VIV_ERR_NOT_FOUND);
	cr_assert_null(json);
	cr_assert_eq(store_app_settings_get(st, "nope", &json), VIV_ERR_NOT_FOUND);
	cr_assert_null(json);
}

Test(config, routes_carry_it_and_the_generation_moves)
{
	struct store_route *routes = NULL;
	size_t n = 0;
	char hash[65];
	uint64_t gen;

	test_hash("artifact", hash);
	test_put_so(st, hash);
	test_deploy(st, "app", hash);
	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(routes[0].n_app_env, 0);
	store_routes_free(routes, n);

	gen = store_routes_generation(st);
	cr_assert_eq(store_app_config_set(st, "app", "B", "2"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "A", "1"), VIV_OK);
	cr_assert_eq(store_routes_generation(st), gen + 2);
	/* The same value again changes nothing. */
	cr_assert_eq(store_app_config_set(st, "app", "A", "1"), VIV_OK);
	cr_assert_eq(store_routes_generation(st), gen + 2);
	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(routes[0].n_app_env, 2);
	cr_assert_str_eq(routes[0].app_env[0].name, "A");
	cr_assert_str_eq(routes[0].app_env[0].value, "1");
	cr_assert_str_eq(routes[0].app_env[1].name, "B");
	cr_assert_str_eq(routes[0].app_env[1].value, "2");
	store_routes_free(routes, n);
	cr_assert_eq(store_app_config_unset(st, "app", "A", NULL), VIV_OK);
	cr_assert_eq(store_routes_generation(st), gen + 3);
	cr_assert_eq(store_app_config_unset(st, "app", "A", NULL), VIV_OK);
	cr_assert_eq(store_routes_generation(st), gen + 3);
}

Test(config, secrets_win_for_guests_and_stay_out_of_settings)
{
	struct store_secret *list = NULL;
	struct store_route *routes = NULL;
	char hash[65], *json = NULL;
	size_t n = 0;
	uint64_t gen;
	bool existed = false;

	test_hash("artifact", hash);
	test_put_so(st, hash);
	test_deploy(st, "app", hash);
	cr_assert_eq(store_app_config_set(st, "app", "GREETING", "plain"), VIV_OK);
	cr_assert_eq(store_app_config_set(st, "app", "OTHER", "o"), VIV_OK);
	gen = store_routes_generation(st);
	cr_assert_eq(store_secret_set(st, "app", "GREETING", "s3cret"), VIV_OK);
	cr_assert_eq(store_secret_set(st, "app", "API_KEY", "k3y"), VIV_OK);
	cr_assert_eq(store_routes_generation(st), gen + 2);

	cr_assert_eq(store_app_settings_get(st, "app", &json), VIV_OK);
	cr_assert_str_eq(json, "{\"GREETING\":\"plain\",\"OTHER\":\"o\"}");
	free(json);
	cr_assert_eq(store_app_config_get(st, "app", &json), VIV_OK);
	cr_assert_str_eq(json, "{\"API_KEY\":\"k3y\",\"GREETING\":\"s3cret\",\"OTHER\":\"o\"}");
	free(json);
	cr_assert_eq(store_routes_load(st, &routes, &n), VIV_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(routes[0].n_app_env, 3);
	cr_assert_str_eq(routes[0].app_env[0].name, "API_KEY");
	cr_assert_str_eq(routes[0].app_env[0].value, "k3y");
	cr_assert_str_eq(routes[0].app_env[1].name, "GREETING");
	cr_assert_str_eq(routes[0].app_env[1].value, "s3cret");
	cr_assert_str_eq(routes[0].app_env[2].name, "OTHER");
	cr_assert_str_eq(routes[0].app_env[2].value, "o");
	store_routes_free(routes, n);

	cr_assert_eq(store_secret_list(st, "app", &list, &n), VIV_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(list[0].name, "API_KEY");
	cr_assert_str_eq(list[1].name, "GREETING");
	cr_assert_gt(list[1].updated_at, 0);
	store_secret_list_free(list, n);

	cr_assert_eq(store_secret_unset(st, "app", "GREETING", &existed), VIV_OK);
	cr_assert(existed);
	cr_assert_eq(store_secret_unset(st, "app", "GREETING", &existed), VIV_OK);
	cr_assert_not(existed);
	cr_assert_eq(store_app_config_get(st, "app", &json), VIV_OK);
	cr_assert_str_eq(json, "{\"API_KEY\":\"k3y\",\"GREETING\":\"plain\",\"OTHER\":\"o\"}");
	free(json);

	cr_assert_eq(store_secret_set(st, "app", "1BAD", "v"), VIV_ERR_INVALID);
	cr_assert_eq(store_secret_set(st, "app", "BAD", "\xff"), VIV_ERR_INVALID);
	cr_assert_eq(store_secret_set(st, "nope", "K", "v"), VIV_ERR_NOT_FOUND);
	cr_assert_eq(store_secret_list(st, "nope", &list, &n), VIV_ERR_NOT_FOUND);
	cr_assert_null(list);
}
