/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the tests' libmicrohttpd servers share: a daemon on 127.0.0.1 at a port the kernel picks
 * (never a fixed port: tests run in parallel), a request body gathered over the calls of the
 * access handler, what a request looked like, and canned replies.
 *
 * Header-only, like tests/fixture.h; the test executable brings libmicrohttpd.
 */
#ifndef AMT_ENLIST_TESTS_HELPERS_HTTPD_H
#define AMT_ENLIST_TESTS_HELPERS_HTTPD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * MHD_start_daemon(FLAGS) on 127.0.0.1, port 0; *PORT says which port it got. SERVE and DONE
 * (the request-completed callback, may be NULL) get CLS; MORE are further options
 * (MHD_OPTION_ARRAY items ending with MHD_OPTION_END), or NULL.
 */
static inline struct MHD_Daemon *httpd_start(unsigned flags, MHD_AccessHandlerCallback serve,
                                             MHD_RequestCompletedCallback done, void *cls,
                                             const struct MHD_OptionItem *more, uint16_t *port)
{
	static const struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;

	d = MHD_start_daemon(flags, 0, NULL, NULL, serve, cls, MHD_OPTION_SOCK_ADDR, &sin,
	                     MHD_OPTION_NOTIFY_COMPLETED, done, cls, MHD_OPTION_ARRAY,
	                     more ? more : none, MHD_OPTION_END);
	assert_non_null(d);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	*port = info->port;
	assert_true(*port != 0);
	return d;
}

/* A request's body, NUL-terminated; what does not fit is dropped. */
struct httpd_upload {
	char data[16384];
	size_t len;
};

/*
 * For an access handler: gathers the body in *CON_CLS over the handler's calls. Returns the
 * whole body once it is all there; NULL while it is still coming, with *RET what the handler
 * returns now. httpd_upload_done frees it.
 */
static inline struct httpd_upload *httpd_gather(void **con_cls, const char *upload_data,
                                                size_t *upload_data_size, enum MHD_Result *ret)
{
	struct httpd_upload *up = *con_cls;

	*ret = MHD_YES;
	if (!up) {
		up = calloc(1, sizeof(*up));
		*con_cls = up;
		if (!up)
			*ret = MHD_NO;
		return NULL;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		if (n > sizeof(up->data) - 1 - up->len)
			n = sizeof(up->data) - 1 - up->len;
		memcpy(up->data + up->len, upload_data, n);
		up->len += n;
		*upload_data_size = 0;
		return NULL;
	}
	up->data[up->len] = '\0';
	return up;
}

/* The request-completed callback for httpd_gather's uploads. */
static inline void httpd_upload_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                                     enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* What a request looked like, for the test to check. */
struct httpd_request {
	char method[16];
	char url[256];
	char content_type[128];
};

static inline void httpd_record(struct MHD_Connection *conn, const char *method, const char *url,
                                struct httpd_request *r)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");

	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->url, sizeof(r->url), "%s", url);
	snprintf(r->content_type, sizeof(r->content_type), "%s", ct ? ct : "");
}

/* A response with a copy of BODY (LEN bytes), for headers to be added before httpd_queue. */
static inline struct MHD_Response *httpd_response(const char *body, size_t len)
{
	return MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
}

/* Queue RESP with STATUS and let go of it: what the access handler returns. */
static inline enum MHD_Result httpd_queue(struct MHD_Connection *conn, unsigned status,
                                          struct MHD_Response *resp)
{
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);

	MHD_destroy_response(resp);
	return ret;
}

#endif
