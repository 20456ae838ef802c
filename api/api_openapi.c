/* GET /v1/openapi.json: the OpenAPI 3.1 document of every route, written as
 * api/openapi.json and embedded at build time (openapi_blob.S). A test holds
 * it and the route table (api_router.c) together. */
#include "api_int.h"

/* The document's bytes, from openapi_blob.S. */
extern const char api_openapi_json[];
extern const char api_openapi_json_end[];

enum MHD_Result api_get_openapi(struct api_server *s, struct MHD_Connection *c, struct api_req *r)
{
	(void)s;
	return api_reply_bytes(c, r, MHD_HTTP_OK, "application/json", api_openapi_json,
	                       (size_t)(api_openapi_json_end - api_openapi_json));
}
