/* Fetches the URL in the app's UPSTREAM setting and reports what came back.
 * The manifest's "outbound" list says where the app may connect; a request
 * anywhere else fails as if the server were unreachable. */
#include <stdlib.h>
#include <vivarium.h>

void run(void)
{
	char *upstream = viv_config("UPSTREAM");
	char *type, *body;
	request_t req;
	response_t resp;

	if (!upstream) {
		viv_respond(500, "text/plain", "UPSTREAM is not set\n");
		return;
	}
	req = viv_request("GET", upstream);
	viv_request_header(req, "Accept", "text/plain");
	resp = viv_send(req);
	if (resp < 0) {
		viv_log("fetching %s failed", upstream);
		viv_respondf(502, "text/plain", "could not fetch %s\n", upstream);
		free(upstream);
		return;
	}
	type = viv_response_header(resp, "Content-Type");
	body = viv_response_body(resp, NULL);
	viv_respondf(200, "text/plain", "upstream answered %u (%s): %s", viv_response_status(resp),
	             type ? type : "no type", body);
	free(body);
	free(type);
	free(upstream);
}
