/* Greets with the app's GREETING setting: the manifest's "env", or a value
 * set through the API, which wins. */
#include <stdlib.h>
#include <vivarium.h>

void run(void)
{
	char *greeting = viv_config("GREETING");

	viv_respondf(200, "text/plain", "%s, world!\n", greeting ? greeting : "Hello");
	free(greeting);
}
