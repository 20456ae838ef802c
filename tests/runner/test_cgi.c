/* CGI response parsing and environment, on hand-made instances. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "runner_int.h"

static struct run_pool fake_pool;
static struct run_instance in;
static struct viv_buf out; /* what the program wrote to stdout */

static void with_output(const char *text)
{
	memset(&in, 0, sizeof(in));
	fake_pool.cfg.log_line_max = 4096;
	fake_pool.cfg.log_bytes_max = 65536;
	in.pool = &fake_pool;
	viv_buf_init(&out, 0);
	cr_assert_eq(viv_buf_append(&out, text, strlen(text)), VIV_OK);
}

/* Parses the output as the CGI mode does when the program ends. */
static bool parse(void)
{
	return run_cgi_response(&in, out.data, out.len);
}

static void done(void)
{
	for (size_t i = 0; i < in.n_logs; i++)
		free(in.logs[i].message);
	for (size_t i = 0; i < in.n_envp; i++)
		free(in.envp[i]);
	free(in.envp);
	free(in.resp.headers);
	viv_buf_free(&out);
}

static bool header(const char *name, const char *value)
{
	for (size_t i = 0; i < in.resp.n_headers; i++) {
		const struct run_header *h = &in.resp.headers[i];
		if (h->name_len == strlen(name) && !strncmp(h->name, name, h->name_len) &&
		    h->value_len == strlen(value) && !strncmp(h->value, value, h->value_len))
			return true;
	}
	return false;
}

TestSuite(cgi, .fini = done);

Test(cgi, status_header_sets_the_code)
{
	with_output("Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<p>gone</p>");
	cr_assert(parse());
	cr_assert_eq(in.resp.status, 404);
	cr_assert_eq(in.resp.n_headers, 1);
	cr_assert(header("Content-Type", "text/html"));
	cr_assert_eq(in.resp.body_len, 11);
	cr_assert_eq(strncmp(in.resp.body, "<p>gone</p>", 11), 0);
}

/* Found by the host-call fuzz target: the NUL byte passed for a token
 * character. */
Test(cgi, a_nul_byte_in_a_header_name_is_refused)
{
	with_output("X#A: v\n\nbody");
	out.data[1] = '\0';
	cr_assert_not(parse());
}

Test(cgi, location_without_status_redirects)
{
	with_output("Location: /elsewhere\n\n");
	cr_assert(parse());
	cr_assert_eq(in.resp.status, 302);
	cr_assert(header("Location", "/elsewhere"));
	cr_assert_eq(in.resp.body_len, 0);
}

Test(cgi, server_owned_headers_are_dropped)
{
	with_output("Content-Type: text/plain\nContent-Length: 999\nConnection: close\n"
	            "Transfer-Encoding: chunked\nX-Kept:   padded value\n\nbody");
	cr_assert(parse());
	cr_assert_eq(in.resp.status, 200);
	cr_assert_eq(in.resp.n_headers, 2);
	cr_assert(header("X-Kept", "padded value"));
	cr_assert_eq(in.resp.body_len, 4);
}

Test(cgi, output_without_a_blank_line_is_refused)
{
	with_output("Content-Type: text/plain\nno blank line follows");
	cr_assert_not(parse());
	cr_assert_eq(in.n_logs, 1);
	cr_assert_not_null(strstr(in.logs[0].message, "no empty line"));
}

Test(cgi, body_without_headers_is_refused)
{
	with_output("Hello, world!\n\n");
	cr_assert_not(parse());
	cr_assert_not_null(strstr(in.logs[0].message, "'Name:'"));
}

Test(cgi, bad_header_name_and_bad_status_are_refused)
{
	with_output("Bad Name: x\n\n");
	cr_assert_not(parse());
	done();
	with_output("Status: 99 Too Low\n\n");
	cr_assert_not(parse());
	done();
	with_output("Status: abc\n\n");
	cr_assert_not(parse());
	done();
	with_output("X-Evil: a\x01z\n\n");
	cr_assert_not(parse());
}

Test(cgi, folded_lines_and_delete_characters_are_refused)
{
	with_output("X-A: one\n two\n\nbody");
	cr_assert_not(parse());
	cr_assert_not_null(strstr(in.logs[0].message, "'Name:'"), "%s", in.logs[0].message);
	done();
	with_output("X-A: a\x7fz\n\n");
	cr_assert_not(parse());
	cr_assert_not_null(strstr(in.logs[0].message, "control character"), "%s",
	                   in.logs[0].message);
}

Test(cgi, crlf_and_lf_lines_mix)
{
	with_output("Status: 201 Created\r\nX-A: 1\nX-B:2\r\n\nbody\r\n");
	cr_assert(parse());
	cr_assert_eq(in.resp.status, 201);
	cr_assert(header("X-A", "1"));
	cr_assert(header("X-B", "2"));
	cr_assert_eq(in.resp.body_len, 6);
}

Test(cgi, environment_follows_rfc_3875)
{
	struct run_header hs[] = {{"Content-Type", 12, "application/json", 16},
	                          {"X-Custom-Thing", 14, "v", 1},
	                          {"Content-Length", 14, "2", 1}};
	const char *app_env[] = {"GREETING=hello", "REQUEST_METHOD=spoofed"};
	struct run_app app = {
	        .name = "myapp", .limits = {16, 100, 1000}, .env = app_env, .n_env = 2};
	struct run_request req = {0};
	const char *want[] = {"REQUEST_METHOD=POST",
	                      "PATH_INFO=/a b",
	                      "QUERY_STRING=q=1",
	                      "X_RAW_PATH_INFO=/a%20b",
	                      "SERVER_NAME=myapp.localhost",
	                      "SERVER_PORT=8000",
	                      "REMOTE_ADDR=198.51.100.1",
	                      "CONTENT_TYPE=application/json",
	                      "CONTENT_LENGTH=2",
	                      "HTTP_X_CUSTOM_THING=v",
	                      "GATEWAY_INTERFACE=CGI/1.1",
	                      "SERVER_PROTOCOL=HTTP/1.1",
	                      "GREETING=hello"};

	with_output("");
	req.method = "POST";
	req.method_len = 4;
	req.target = "/a%20b?q=1";
	req.target_len = strlen(req.target);
	req.headers = hs;
	req.n_headers = 3;
	req.body = "{}";
	req.body_len = 2;
	req.client_addr = "198.51.100.1";
	req.server_name = "myapp.localhost";
	req.server_port = 8000;
	req.protocol = "HTTP/1.1";
	in.req = &req;
	in.app = &app;
	cr_assert_eq(run_cgi_env(&in), VIV_OK);
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < in.n_envp && !found; i++)
			found = strcmp(in.envp[i], want[w]) == 0;
		cr_assert(found, "missing %s", want[w]);
	}
	for (size_t i = 0; i < in.n_envp; i++) {
		cr_assert_neq(strcmp(in.envp[i], "REQUEST_METHOD=spoofed"), 0);
		cr_assert_neq(strcmp(in.envp[i], "HTTP_CONTENT_LENGTH=2"), 0);
	}
}
