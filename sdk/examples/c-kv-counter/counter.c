/* A visit counter kept in the app's key-value store, which outlives
 * requests, deploys and restarts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vivarium.h>

void run(void)
{
	char *value = viv_kv_get("visits", NULL);
	unsigned long visits = value ? strtoul(value, NULL, 10) : 0;
	char text[32];

	free(value);
	visits++;
	snprintf(text, sizeof(text), "%lu", visits);
	viv_kv_set("visits", text, strlen(text));
	viv_respondf(200, "text/plain", "visits: %lu\n", visits);
}
