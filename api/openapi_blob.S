/* The OpenAPI document of the API, api/openapi.json, embedded at build time
 * (OPENAPI_JSON is its path); api_openapi.c serves it. */
	.section .rodata
	.global api_openapi_json
	.type api_openapi_json, @object
api_openapi_json:
	.incbin OPENAPI_JSON
	.global api_openapi_json_end
	.type api_openapi_json_end, @object
api_openapi_json_end:
	.byte 0
	.section .note.GNU-stack, "", @progbits
