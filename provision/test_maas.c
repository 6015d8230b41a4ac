/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MAAS: the credentials file (the real shapes, the enlistment variant, broken ones), the kernel
 * command line, the OAuth PLAINTEXT header (vectors checked against oauthlib, which MAAS uses),
 * and the metadata signal against an in-process libmicrohttpd server that takes the multipart
 * form apart, checks the OAuth header and plays clock skew. No test prints a secret.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>

#include "../tests/helpers/httpd.h"
#include "handoff.h"
#include "session.h"

#define TOKEN_SECRET "Tq9aXbYcZd8eWf7gVh6iUj5k"
#define POWER_PASS   "Zq7!x.Pw-8~k"

/* ---- credentials ---- */

/* What cloud-init writes from MAAS's cloud-config-url (block style, other keys around). */
static const char real_config[] =
    "#cloud-config\n"
    "apt:\n"
    "  preserve_sources_list: false\n"
    "  proxy: http://10.0.0.1:8000/\n"
    "datasource:\n"
    "  MAAS:\n"
    "    consumer_key: CKey1abc\n"
    "    metadata_url: http://10.0.0.1:5248/MAAS/metadata/\n"
    "    token_key: TKey2def\n"
    "    token_secret: " TOKEN_SECRET "\n"
    "reporting:\n"
    "  maas: {consumer_key: CKey1abc, endpoint: 'http://10.0.0.1:5248/MAAS/metadata/status/"
    "abc123', token_key: TKey2def, token_secret: " TOKEN_SECRET ", type: webhook}\n"
    "system_info:\n"
    "  package_mirrors:\n"
    "  - arches: [i386, amd64]\n"
    "    search: {primary: ['http://archive.ubuntu.com/ubuntu']}\n";

/* PyYAML's default flow style for the leaf mapping. */
static const char flow_config[] =
    "datasource:\n"
    "  MAAS: {consumer_key: CKey1abc, metadata_url: 'http://10.0.0.1:5248/MAAS/metadata/',\n"
    "    token_key: TKey2def, token_secret: " TOKEN_SECRET "}\n";

static const char enlist_config[] = "#cloud-config\n"
                                    "datasource:\n"
                                    "  MAAS:\n"
                                    "    metadata_url: http://10.0.0.1:5248/MAAS/metadata/\n";

static void expect_full(const struct maas_creds *c)
{
	assert_string_equal(c->metadata_url, "http://10.0.0.1:5248/MAAS/metadata/");
	assert_string_equal(c->consumer_key, "CKey1abc");
	assert_string_equal(c->token_key, "TKey2def");
	assert_true(strcmp(c->token_secret, TOKEN_SECRET) == 0);
}

static int yaml_creds(const char *text, struct maas_creds *c, struct prov_error *err)
{
	memset(err, 0, sizeof(*err));
	return maas_creds_from_yaml(text, strlen(text), "test.cfg", c, err);
}

static void test_creds_real_file(void **state)
{
	char path[] = "/tmp/amt-enlist-creds.XXXXXX";
	struct maas_creds c;
	struct prov_error err = {0};
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, real_config, strlen(real_config)), (ssize_t)strlen(real_config));
	close(fd);
	assert_int_equal(maas_creds_from_file(path, &c, &err), 0);
	expect_full(&c);
	maas_creds_wipe(&c);
	assert_int_equal(c.token_secret[0], 0);
	unlink(path);
	/* a missing file names itself */
	assert_int_equal(maas_creds_from_file(path, &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, path));
}

static void test_creds_shapes(void **state)
{
	struct maas_creds c;
	struct prov_error err;

	(void)state;
	assert_int_equal(yaml_creds(flow_config, &c, &err), 0);
	expect_full(&c);
	/* a flat config, as MAAS's reader also takes */
	assert_int_equal(yaml_creds("metadata_url: https://m/MAAS/metadata/\nconsumer_key: a\n"
	                            "token_key: b\ntoken_secret: c\n",
	                            &c, &err),
	                 0);
	assert_string_equal(c.metadata_url, "https://m/MAAS/metadata/");
	assert_string_equal(c.token_key, "b");
	/* anchors and aliases, quoted values, a repeated key (the last counts) */
	assert_int_equal(yaml_creds("base: &m {metadata_url: \"http://a/\", consumer_key: x, "
	                            "token_key: y, token_secret: z}\n"
	                            "datasource: {MAAS: *m}\n",
	                            &c, &err),
	                 0);
	assert_string_equal(c.metadata_url, "http://a/");
	assert_string_equal(c.consumer_key, "x");
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: http://old/\n"
	                            "    metadata_url: http://new/\n",
	                            &c, &err),
	                 0);
	assert_string_equal(c.metadata_url, "http://new/");
}

static void test_creds_enlistment_variant(void **state)
{
	struct maas_creds c;
	struct prov_error err;

	(void)state;
	assert_int_equal(yaml_creds(enlist_config, &c, &err), 0);
	assert_string_equal(c.metadata_url, "http://10.0.0.1:5248/MAAS/metadata/");
	assert_string_equal(c.consumer_key, "");
	assert_string_equal(c.token_key, "");
	assert_string_equal(c.token_secret, "");
	/* null values are absent values */
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: http://m/\n"
	                            "    consumer_key:\n    token_key: ~\n    token_secret: null\n",
	                            &c, &err),
	                 0);
	assert_string_equal(c.token_secret, "");
}

static void test_creds_missing_key(void **state)
{
	struct maas_creds c;
	struct prov_error err;

	(void)state;
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    consumer_key: a\n    token_key: b\n"
	                            "    token_secret: " TOKEN_SECRET "\n",
	                            &c, &err),
	                 PROV_E_BAD_INPUT);
	assert_int_equal(err.code, PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "test.cfg"));
	assert_non_null(strstr(err.msg, "datasource.MAAS.metadata_url"));
	assert_null(strstr(err.msg, TOKEN_SECRET));
	assert_string_equal(c.token_secret, ""); /* nothing half-read is left */
	assert_int_equal(yaml_creds("datasource:\n  other: {}\n", &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "datasource.MAAS"));
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: ftp://m/\n", &c, &err),
	                 PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "http"));
	assert_int_equal(yaml_creds("", &c, &err), PROV_E_BAD_INPUT);
	assert_int_equal(yaml_creds("# only a comment\n", &c, &err), PROV_E_BAD_INPUT);
}

static void test_creds_non_scalar(void **state)
{
	struct maas_creds c;
	struct prov_error err;

	(void)state;
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: http://m/\n"
	                            "    token_secret: [" TOKEN_SECRET ", two]\n",
	                            &c, &err),
	                 PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "datasource.MAAS.token_secret is not a string"));
	assert_null(strstr(err.msg, TOKEN_SECRET));
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: {a: b}\n", &c, &err),
	                 PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "metadata_url is not a string"));
	assert_int_equal(yaml_creds("datasource: [MAAS]\n", &c, &err), PROV_E_BAD_INPUT);
	assert_int_equal(yaml_creds("datasource:\n  MAAS: text\n", &c, &err), PROV_E_BAD_INPUT);
	assert_int_equal(yaml_creds("- a\n- b\n", &c, &err), PROV_E_BAD_INPUT);
	/* a value that could inject a header line, and its text stays out of the message */
	assert_int_equal(yaml_creds("datasource:\n  MAAS:\n    metadata_url: http://m/\n"
	                            "    token_secret: \"" TOKEN_SECRET "\\r\\nX-Evil: 1\"\n",
	                            &c, &err),
	                 PROV_E_BAD_INPUT);
	assert_null(strstr(err.msg, TOKEN_SECRET));
	assert_null(strstr(err.msg, "Evil"));
}

static void test_creds_garbage(void **state)
{
	static const char binary[] = "\x00\xff\xfe\x01"
	                             "datasource:\x80\x81";
	struct maas_creds c;
	struct prov_error err = {0};
	char *deep;
	size_t n = 60000;
	long t0;

	(void)state;
	assert_int_equal(yaml_creds("datasource: {MAAS: [unclosed\n", &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "not YAML"));
	assert_int_equal(yaml_creds(": : :\n\t- ]]\n", &c, &err), PROV_E_BAD_INPUT);
	assert_int_equal(maas_creds_from_yaml(binary, sizeof(binary) - 1, "bin", &c, &err),
	                 PROV_E_BAD_INPUT);
	/* deep nesting within the size bound: refused, not a crash */
	deep = malloc(n + 1);
	assert_non_null(deep);
	memset(deep, '[', n);
	deep[n] = '\0';
	t0 = prov_now_ms();
	assert_int_equal(yaml_creds(deep, &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "nested"));
	assert_true(prov_now_ms() - t0 < 1000);
	for (size_t i = 0; i < n; i += 2) {
		deep[i] = '{';
		deep[i + 1] = i % 4 ? 'a' : ':';
	}
	t0 = prov_now_ms();
	assert_int_equal(yaml_creds(deep, &c, &err), PROV_E_BAD_INPUT);
	assert_true(prov_now_ms() - t0 < 1000);
	free(deep);
}

static void test_creds_huge(void **state)
{
	size_t n = 200000;
	char *big = malloc(n + 1);
	char path[] = "/tmp/amt-enlist-creds.XXXXXX";
	struct maas_creds c;
	struct prov_error err = {0};
	int fd;

	(void)state;
	assert_non_null(big);
	memset(big, '#', n);
	memcpy(big + n - strlen(enlist_config), enlist_config, strlen(enlist_config));
	big[n] = '\0';
	assert_int_equal(yaml_creds(big, &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "too large"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, n), (ssize_t)n);
	close(fd);
	assert_int_equal(maas_creds_from_file(path, &c, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "too large"));
	assert_non_null(strstr(err.msg, path));
	unlink(path);
	free(big);
}

/* ---- the kernel command line ---- */

static void test_cmdline_cloud_config_url(void **state)
{
	char url[256];

	(void)state;
	assert_true(cmdline_cloud_config_url(
	    "BOOT_IMAGE=/vmlinuz ro root=squash:http://10.0.0.1:5248/images/x ip=::::h:BOOTIF "
	    "ip6=off cloud-config-url=http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/"
	    "?op=get_preseed apparmor=0 log_host=10.0.0.1 log_port=5247 --- "
	    "BOOTIF=01-52-54-00-12-34-56\n",
	    url, sizeof(url)));
	assert_string_equal(url, "http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/"
	                         "?op=get_preseed");
	/* MAAS does not quote, but the kernel allows it */
	assert_true(
	    cmdline_cloud_config_url("a=1 \"cloud-config-url=http://x/y z\" b", url, sizeof(url)));
	assert_string_equal(url, "http://x/y z");
	assert_true(cmdline_cloud_config_url("cloud-config-url=\"http://q/\"", url, sizeof(url)));
	assert_string_equal(url, "http://q/");
	/* the last one counts */
	assert_true(cmdline_cloud_config_url(
	    "cloud-config-url=http://a/ cloud-config-url=http://b/", url, sizeof(url)));
	assert_string_equal(url, "http://b/");
	/* absent, empty, similar names, too long for the buffer */
	assert_false(cmdline_cloud_config_url("ro quiet", url, sizeof(url)));
	assert_false(cmdline_cloud_config_url("cloud-config-url=", url, sizeof(url)));
	assert_false(cmdline_cloud_config_url("cloud-config-url", url, sizeof(url)));
	assert_false(cmdline_cloud_config_url("xcloud-config-url=http://a/ cloud-config-urls=b",
	                                      url, sizeof(url)));
	assert_false(cmdline_cloud_config_url("cloud-config-url=http://a-long-url/", url, 8));
	assert_false(cmdline_cloud_config_url("", url, sizeof(url)));
	assert_false(cmdline_cloud_config_url(NULL, url, sizeof(url)));
}

static void test_cmdline_bootif(void **state)
{
	char mac[18];

	(void)state;
	assert_true(cmdline_bootif("ro BOOTIF=01-aa-bb-cc-dd-ee-ff quiet", mac));
	assert_string_equal(mac, "aa:bb:cc:dd:ee:ff");
	assert_true(cmdline_bootif("BOOTIF=01-52-54-00-AB-cD-0f\n", mac));
	assert_string_equal(mac, "52:54:00:ab:cd:0f");
	assert_true(cmdline_bootif("BOOTIF=01-00-00-00-00-00-01 BOOTIF=01-00-00-00-00-00-02", mac));
	assert_string_equal(mac, "00:00:00:00:00:02");
	assert_false(cmdline_bootif("BOOTIF=aa-bb-cc-dd-ee-ff", mac));       /* no type */
	assert_false(cmdline_bootif("BOOTIF=06-aa-bb-cc-dd-ee-ff", mac));    /* not Ethernet */
	assert_false(cmdline_bootif("BOOTIF=01-aa-bb-cc-dd-ee", mac));       /* short */
	assert_false(cmdline_bootif("BOOTIF=01-aa-bb-cc-dd-ee-ff-00", mac)); /* long */
	assert_false(cmdline_bootif("BOOTIF=01-aa:bb:cc:dd:ee:ff", mac));    /* colons */
	assert_false(cmdline_bootif("BOOTIF=01-ag-bb-cc-dd-ee-ff", mac));    /* not hex */
	assert_false(cmdline_bootif("BOOTIF=01-aabb-cc-dd-ee-ff-", mac));    /* misplaced */
	assert_false(cmdline_bootif("XBOOTIF=01-aa-bb-cc-dd-ee-ff", mac));
	assert_false(cmdline_bootif("BOOTIF=", mac));
	assert_false(cmdline_bootif("ro quiet", mac));
	assert_string_equal(mac, "");
}

/* ---- OAuth ---- */

static void test_oauth_header_vectors(void **state)
{
	/* expected strings from oauthlib's Client.sign (PLAINTEXT), as maas_api_helper uses it */
	struct maas_creds c = {
	    .consumer_key = "CKey1", .token_key = "TKey2", .token_secret = "S3cr3tS3cr3t"};
	struct maas_creds odd = {.consumer_key = "k&y=1 \xc3\xa9",
	                         .token_key = "x+y~z_-.",
	                         .token_secret = "p&q=r s/t%u"};
	char out[1024];

	(void)state;
	assert_int_equal(maas_oauth_header(&c, "n0nce", 1700000000, out, sizeof(out)), 0);
	assert_true(strcmp(out, "OAuth oauth_nonce=\"n0nce\", oauth_timestamp=\"1700000000\", "
	                        "oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", "
	                        "oauth_consumer_key=\"CKey1\", oauth_token=\"TKey2\", "
	                        "oauth_signature=\"%26S3cr3tS3cr3t\"") == 0);
	assert_int_equal(maas_oauth_header(&odd, "a/b", 1700000001, out, sizeof(out)), 0);
	assert_true(strcmp(out, "OAuth oauth_nonce=\"a%2Fb\", oauth_timestamp=\"1700000001\", "
	                        "oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", "
	                        "oauth_consumer_key=\"k%26y%3D1%20%C3%A9\", "
	                        "oauth_token=\"x%2By~z_-.\", "
	                        "oauth_signature=\"%26p%2526q%253Dr%2520s%252Ft%2525u\"") == 0);
	/* too small: an error, and nothing of the secret left in the buffer */
	assert_int_equal(maas_oauth_header(&c, "n0nce", 1700000000, out, 100), PROV_E_INTERNAL);
	assert_null(memmem(out, 100, "S3cr3t", 6));
}

/* ---- the signal against a MAAS stand-in ---- */

#define MAX_SEEN 8

enum maas_mode {
	MAAS_OK,        /* 200 "OK" */
	MAAS_SKEWED,    /* 401 with a Date an hour ahead until the timestamp agrees */
	MAAS_DENY,      /* 401, Date as it is */
	MAAS_FLAKY,     /* 503 once, then OK */
	MAAS_FORBIDDEN, /* 403 without a Date */
};

struct seen {
	struct httpd_request req;
	char auth[1024];
	char op[32], status[32], power_type[32], power_parameters[1024];
	unsigned other_fields;
};

struct maas_server {
	struct MHD_Daemon *daemon;
	uint16_t port;
	pthread_mutex_t lock;
	enum maas_mode mode;
	unsigned requests;
	struct seen seen[MAX_SEEN];
};

struct form {
	struct MHD_PostProcessor *pp;
	struct seen fields;
};

static void append(char *dst, size_t cap, uint64_t off, const char *data, size_t size)
{
	if (off + size >= cap)
		return;
	memcpy(dst + off, data, size);
	dst[off + size] = '\0';
}

static enum MHD_Result field(void *cls, enum MHD_ValueKind kind, const char *key,
                             const char *filename, const char *content_type,
                             const char *transfer_encoding, const char *data, uint64_t off,
                             size_t size)
{
	struct seen *f = cls;

	(void)kind;
	(void)filename;
	(void)content_type;
	(void)transfer_encoding;
	if (strcmp(key, "op") == 0)
		append(f->op, sizeof(f->op), off, data, size);
	else if (strcmp(key, "status") == 0)
		append(f->status, sizeof(f->status), off, data, size);
	else if (strcmp(key, "power_type") == 0)
		append(f->power_type, sizeof(f->power_type), off, data, size);
	else if (strcmp(key, "power_parameters") == 0)
		append(f->power_parameters, sizeof(f->power_parameters), off, data, size);
	else if (off == 0)
		f->other_fields++;
	return MHD_YES;
}

/* The oauth_timestamp of an Authorization header, or 0. */
static long header_timestamp(const char *auth)
{
	const char *t = strstr(auth, "oauth_timestamp=\"");

	return t ? strtol(t + strlen("oauth_timestamp=\""), NULL, 10) : 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             time_t date)
{
	struct MHD_Response *resp = httpd_response(body, strlen(body));

	if (date) {
		char when[64];
		struct tm tm;

		gmtime_r(&date, &tm);
		if (strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
			MHD_add_response_header(resp, "Date", when);
	}
	return httpd_queue(conn, status, resp);
}

static enum MHD_Result serve_maas(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct maas_server *s = cls;
	struct form *f = *con_cls;
	const char *v;
	unsigned n;
	enum maas_mode mode;

	(void)version;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return MHD_NO;
		f->pp = MHD_create_post_processor(conn, 4096, field, &f->fields);
		*con_cls = f;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (f->pp)
			MHD_post_process(f->pp, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	httpd_record(conn, method, url, &f->fields.req);
	v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	snprintf(f->fields.auth, sizeof(f->fields.auth), "%s", v ? v : "");
	pthread_mutex_lock(&s->lock);
	n = s->requests++;
	if (n < MAX_SEEN)
		s->seen[n] = f->fields;
	mode = s->mode;
	pthread_mutex_unlock(&s->lock);

	switch (mode) {
	case MAAS_SKEWED:
		if (labs(header_timestamp(f->fields.auth) - (long)(time(NULL) + 3600)) > 60)
			return reply(conn, 401, "Authorization Error: 'Expired timestamp'",
			             time(NULL) + 3600);
		break;
	case MAAS_DENY:
		return reply(conn, 401, "Authorization Error: token is not valid", time(NULL));
	case MAAS_FORBIDDEN:
		return reply(conn, 403, "nope", 0);
	case MAAS_FLAKY:
		if (n == 0)
			return reply(conn, 503, "busy", 0);
		break;
	case MAAS_OK:
		break;
	}
	return reply(conn, 200, "OK", 0);
}

static void form_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	struct form *f = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (f) {
		if (f->pp)
			MHD_destroy_post_processor(f->pp);
		free(f);
	}
	*con_cls = NULL;
}

static void maas_start(struct maas_server *s, enum maas_mode mode)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->mode = mode;
	s->daemon = httpd_start(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, serve_maas, form_done,
	                        s, NULL, &s->port);
}

static void maas_stop(struct maas_server *s)
{
	MHD_stop_daemon(s->daemon);
	pthread_mutex_destroy(&s->lock);
}

static void creds_for(const struct maas_server *s, struct maas_creds *c, bool trailing_slash)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->metadata_url, sizeof(c->metadata_url), "http://127.0.0.1:%u/MAAS/metadata%s",
	         s->port, trailing_slash ? "/" : "");
	snprintf(c->consumer_key, sizeof(c->consumer_key), "CKey1abc");
	snprintf(c->token_key, sizeof(c->token_key), "TKey2def");
	snprintf(c->token_secret, sizeof(c->token_secret), TOKEN_SECRET);
}

static void params(struct power_params *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->power_address, sizeof(p->power_address), "10.0.0.5");
	snprintf(p->power_user, sizeof(p->power_user), "admin");
	snprintf(p->power_pass, sizeof(p->power_pass), POWER_PASS);
	snprintf(p->port, sizeof(p->port), "16992");
}

static void quick_opts(struct post_opts *o)
{
	post_opts_default(o);
	o->backoff_base_ms = 20;
	o->backoff_max_ms = 100;
	o->deadline_ms = prov_now_ms() + 10000;
}

static const char *json_string_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* The form and the OAuth header of one request as MAAS would see them. */
static void check_request(const struct seen *r)
{
	struct json_object *pp;
	const char *nonce;

	assert_string_equal(r->req.method, "POST");
	assert_string_equal(r->req.url, "/MAAS/metadata/2012-03-01/");
	assert_true(strncmp(r->req.content_type, "multipart/form-data", 19) == 0);
	assert_string_equal(r->op, "signal");
	assert_string_equal(r->status, "WORKING");
	assert_string_equal(r->power_type, "amt");
	assert_int_equal(r->other_fields, 0);
	pp = json_tokener_parse(r->power_parameters);
	assert_non_null(pp);
	assert_true(json_object_is_type(pp, json_type_object));
	assert_int_equal(json_object_object_length(pp), 4);
	assert_string_equal(json_string_of(pp, "power_address"), "10.0.0.5");
	assert_string_equal(json_string_of(pp, "power_user"), "admin");
	assert_true(strcmp(json_string_of(pp, "power_pass"), POWER_PASS) == 0);
	assert_string_equal(json_string_of(pp, "port"), "16992");
	json_object_put(pp);
	assert_true(strncmp(r->auth, "OAuth ", 6) == 0);
	assert_non_null(strstr(r->auth, "oauth_signature_method=\"PLAINTEXT\""));
	assert_non_null(strstr(r->auth, "oauth_consumer_key=\"CKey1abc\""));
	assert_non_null(strstr(r->auth, "oauth_token=\"TKey2def\""));
	assert_non_null(strstr(r->auth, "oauth_signature=\"%26" TOKEN_SECRET "\""));
	nonce = strstr(r->auth, "oauth_nonce=\"");
	assert_non_null(nonce);
	assert_int_equal(strspn(nonce + 13, "0123456789abcdef"), 32);
}

static const char *nonce_of(const struct seen *r)
{
	return strstr(r->auth, "oauth_nonce=\"") + 13;
}

/* One signal to the MAAS stand-in: the server, credentials for it, the power parameters. */
struct signal_case {
	struct maas_server s;
	struct maas_creds c;
	struct power_params p;
	struct post_opts o;
	struct post_result res;
	struct prov_error err;
};

/* The server in MODE, credentials with its URL (a trailing slash), quick retries. */
static void signal_start(struct signal_case *sig, enum maas_mode mode)
{
	maas_start(&sig->s, mode);
	creds_for(&sig->s, &sig->c, true);
	params(&sig->p);
	quick_opts(&sig->o);
}

static int signal_send(struct signal_case *sig)
{
	return maas_signal(&sig->c, "WORKING", &sig->p, &sig->o, &sig->res, &sig->err);
}

static void test_signal_fields(void **state)
{
	struct signal_case sig = {0};
	long now = (long)time(NULL);

	(void)state;
	maas_start(&sig.s, MAAS_OK);
	for (int slash = 0; slash < 2; slash++) {
		sig.s.requests = 0;
		creds_for(&sig.s, &sig.c, slash);
		params(&sig.p);
		quick_opts(&sig.o);
		assert_int_equal(signal_send(&sig), 0);
		assert_int_equal(sig.res.attempts, 1);
		assert_int_equal(sig.res.http_status, 200);
		assert_int_equal(sig.s.requests, 1);
		check_request(&sig.s.seen[0]);
		assert_true(labs(header_timestamp(sig.s.seen[0].auth) - now) < 5);
	}
	maas_stop(&sig.s);
}

static void test_signal_clock_skew(void **state)
{
	struct signal_case sig = {0};
	long t1, t2;

	(void)state;
	signal_start(&sig, MAAS_SKEWED);
	assert_int_equal(signal_send(&sig), 0);
	assert_int_equal(sig.res.attempts, 2);
	assert_int_equal(sig.s.requests, 2);
	check_request(&sig.s.seen[0]);
	check_request(&sig.s.seen[1]);
	t1 = header_timestamp(sig.s.seen[0].auth);
	t2 = header_timestamp(sig.s.seen[1].auth);
	assert_true(labs(t2 - t1 - 3600) <= 5);
	assert_true(strncmp(nonce_of(&sig.s.seen[0]), nonce_of(&sig.s.seen[1]), 32) != 0);
	maas_stop(&sig.s);
}

static void test_signal_refused(void **state)
{
	struct signal_case sig = {0};

	(void)state;
	/* our clock agrees with MAAS's: the credentials are wrong, no retry */
	signal_start(&sig, MAAS_DENY);
	assert_int_equal(signal_send(&sig), PROV_E_SERVER_REFUSED);
	assert_int_equal(sig.res.attempts, 1);
	assert_int_equal(sig.res.http_status, 401);
	assert_non_null(strstr(sig.err.msg, "token is not valid"));
	assert_null(strstr(sig.err.msg, TOKEN_SECRET));
	assert_null(strstr(sig.err.msg, POWER_PASS));
	maas_stop(&sig.s);
	/* no Date to learn from */
	signal_start(&sig, MAAS_FORBIDDEN);
	assert_int_equal(signal_send(&sig), PROV_E_SERVER_REFUSED);
	assert_int_equal(sig.res.attempts, 1);
	maas_stop(&sig.s);
}

static void test_signal_retries(void **state)
{
	struct signal_case sig = {0};

	(void)state;
	signal_start(&sig, MAAS_FLAKY);
	assert_int_equal(signal_send(&sig), 0);
	assert_int_equal(sig.res.attempts, 2);
	check_request(&sig.s.seen[0]);
	check_request(&sig.s.seen[1]);
	assert_true(strcmp(sig.s.seen[0].power_parameters, sig.s.seen[1].power_parameters) == 0);
	assert_true(strncmp(nonce_of(&sig.s.seen[0]), nonce_of(&sig.s.seen[1]), 32) != 0);
	maas_stop(&sig.s);
}

static void test_signal_refuses_bad_input(void **state)
{
	struct maas_creds c;
	struct power_params p;
	struct post_opts o;
	struct post_result res;
	struct prov_error err = {0};

	(void)state;
	quick_opts(&o);
	params(&p);
	/* enlistment credentials: no token */
	memset(&c, 0, sizeof(c));
	snprintf(c.metadata_url, sizeof(c.metadata_url), "http://127.0.0.1:9/MAAS/metadata/");
	assert_int_equal(maas_signal(&c, "WORKING", &p, &o, &res, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "token"));
	assert_int_equal(res.attempts, 0);
	/* no password: MAAS would replace a working one with nothing */
	snprintf(c.consumer_key, sizeof(c.consumer_key), "a");
	snprintf(c.token_key, sizeof(c.token_key), "b");
	snprintf(c.token_secret, sizeof(c.token_secret), "c");
	p.power_pass[0] = '\0';
	assert_int_equal(maas_signal(&c, "WORKING", &p, &o, &res, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "password"));
	params(&p);
	assert_int_equal(maas_signal(&c, "working; x", &p, &o, &res, &err), PROV_E_BAD_INPUT);
	c.metadata_url[0] = '\0';
	assert_int_equal(maas_signal(&c, "WORKING", &p, &o, &res, &err), PROV_E_BAD_INPUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_creds_real_file),
	    cmocka_unit_test(test_creds_shapes),
	    cmocka_unit_test(test_creds_enlistment_variant),
	    cmocka_unit_test(test_creds_missing_key),
	    cmocka_unit_test(test_creds_non_scalar),
	    cmocka_unit_test(test_creds_garbage),
	    cmocka_unit_test(test_creds_huge),
	    cmocka_unit_test(test_cmdline_cloud_config_url),
	    cmocka_unit_test(test_cmdline_bootif),
	    cmocka_unit_test(test_oauth_header_vectors),
	    cmocka_unit_test(test_signal_fields),
	    cmocka_unit_test(test_signal_clock_skew),
	    cmocka_unit_test(test_signal_refused),
	    cmocka_unit_test(test_signal_retries),
	    cmocka_unit_test(test_signal_refuses_bad_input),
	};
	int r;

	unsetenv("http_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
