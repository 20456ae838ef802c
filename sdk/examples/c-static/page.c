/* Files in assets/ are served at the app's root (assets/style.css at
 * /style.css) without running the app; the app answers every other path. */
#include <vivarium.h>

void run(void)
{
	viv_respond(200, "text/html",
	            "<!doctype html>\n"
	            "<link rel=\"stylesheet\" href=\"/style.css\">\n"
	            "<h1>Hello, world!</h1>\n"
	            "<p>This page comes from the app; its style sheet is a static file.</p>\n");
}
