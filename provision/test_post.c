/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON POST and the retry loop under it, against an in-process libmicrohttpd server on
 * 127.0.0.1 that follows a script (status, Retry-After, hangs) request by request: success,
 * retries, Retry-After, the deadline, refusals with the server's message, the same body on
 * every attempt, TLS with a CA made here (verified, untrusted, insecure), and the backoff's
 * jitter checked by statistics rather than by timing. No test prints a secret.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../tests/helpers/httpd.h"
#include "http.h"
#include "session.h"

#define SECRET "Zq7!x.Pw-8~k"
#define DOC                                                                                        \
	"{\"schema\":\"amt-enlist/1\",\"uuid\":\"4c4c4544-0042-3510-8052-b4c04f4a4d32\","          \
	"\"power_type\":\"amt\",\"power_parameters\":{\"power_address\":\"10.0.0.5\","             \
	"\"power_user\":\"admin\",\"power_pass\":\"" SECRET "\",\"port\":\"16992\"}}"

/* ---- a scripted server ---- */

struct step {
	unsigned status;
	const char *body;
	const char *retry_after;
	int hang_ms; /* before answering */
};

#define MAX_STEPS 8

struct server {
	struct MHD_Daemon *daemon;
	uint16_t port;
	pthread_mutex_t lock;
	struct step steps[MAX_STEPS]; /* request i gets steps[min(i, n - 1)] */
	unsigned nsteps;
	unsigned requests;
	bool stopping;
	char first_body[8192];
	bool body_differs;
	struct httpd_request last;
};

static void hang(struct server *s, int ms)
{
	for (int waited = 0; waited < ms; waited += 10) {
		bool stop;

		pthread_mutex_lock(&s->lock);
		stop = s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			return;
		usleep(10000);
	}
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct httpd_upload *up;
	struct MHD_Response *resp;
	struct step st;
	enum MHD_Result ret;

	(void)version;
	up = httpd_gather(con_cls, upload_data, upload_data_size, &ret);
	if (!up)
		return ret;
	pthread_mutex_lock(&s->lock);
	st = s->steps[s->requests < s->nsteps ? s->requests : s->nsteps - 1];
	if (s->requests == 0)
		snprintf(s->first_body, sizeof(s->first_body), "%s", up->data);
	else if (strcmp(s->first_body, up->data) != 0)
		s->body_differs = true;
	s->requests++;
	httpd_record(conn, method, url, &s->last);
	pthread_mutex_unlock(&s->lock);

	if (st.hang_ms)
		hang(s, st.hang_ms);
	resp = httpd_response(st.body ? st.body : "", strlen(st.body ? st.body : ""));
	if (st.retry_after)
		MHD_add_response_header(resp, "Retry-After", st.retry_after);
	if (st.status >= 300 && st.status < 400)
		MHD_add_response_header(resp, "Location", "/elsewhere");
	return httpd_queue(conn, st.status, resp);
}

/* Thread per connection: a hanging answer must not hold up the next attempt's. */
static void server_start_with(struct server *s, const char *key_pem, const char *cert_pem)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	struct MHD_OptionItem tls[] = {
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem},
	    {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem},
	    {MHD_OPTION_END, 0, NULL},
	};

	pthread_mutex_init(&s->lock, NULL);
	s->daemon = httpd_start(key_pem ? flags | MHD_USE_TLS : flags, serve, httpd_upload_done, s,
	                        key_pem ? tls : NULL, &s->port);
}

static void server_start(struct server *s)
{
	server_start_with(s, NULL, NULL);
}

static void server_script(struct server *s, const struct step *steps, size_t n)
{
	assert_true(n > 0 && n <= MAX_STEPS);
	pthread_mutex_lock(&s->lock);
	memcpy(s->steps, steps, n * sizeof(*steps));
	s->nsteps = (unsigned)n;
	pthread_mutex_unlock(&s->lock);
}

/* SCRIPT(&s, {.status = 500}, {.status = 200}): what the server does, request by request. */
#define SCRIPT(s, ...)                                                                             \
	server_script((s), (const struct step[]){__VA_ARGS__},                                     \
	              sizeof((const struct step[]){__VA_ARGS__}) / sizeof(struct step))

static unsigned server_requests(struct server *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void server_stop(struct server *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	MHD_stop_daemon(s->daemon);
	pthread_mutex_destroy(&s->lock);
}

static void url_of(const struct server *s, const char *scheme, char *url, size_t cap)
{
	snprintf(url, cap, "%s://127.0.0.1:%u/api/enlist", scheme, s->port);
}

/* Quick retries for tests: the deadline DEADLINE_MS from now. */
static void test_opts(struct post_opts *o, long deadline_ms)
{
	post_opts_default(o);
	o->connect_timeout_ms = 1000;
	o->attempt_timeout_ms = 2000;
	o->backoff_base_ms = 20;
	o->backoff_max_ms = 100;
	o->deadline_ms = prov_now_ms() + deadline_ms;
}

/* ---- the POST against the scripted server ---- */

/*
 * One POST against the scripted server: the server started, plain HTTP, quick retries with the
 * deadline DEADLINE_MS from now. The test scripts the server (SCRIPT(&c.s, ...)) and posts DOC.
 */
struct post_case {
	struct server s;
	struct post_opts o;
	struct post_result res;
	struct prov_error err;
	char url[128];
};

static void case_start(struct post_case *c, long deadline_ms)
{
	server_start(&c->s);
	url_of(&c->s, "http", c->url, sizeof(c->url));
	test_opts(&c->o, deadline_ms);
}

static int case_post(struct post_case *c)
{
	return post_json(c->url, DOC, &c->o, &c->res, &c->err);
}

static void test_success(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 201, .body = "{\"ok\":true}"});
	assert_int_equal(case_post(&c), 0);
	assert_int_equal(c.res.attempts, 1);
	assert_int_equal(c.res.http_status, 201);
	assert_string_equal(c.s.last.method, "POST");
	assert_string_equal(c.s.last.url, "/api/enlist");
	assert_string_equal(c.s.last.content_type, "application/json");
	assert_true(strcmp(c.s.first_body, DOC) == 0); /* not printed: it holds the password */
	server_stop(&c.s);
}

static void test_500_then_200(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 500, .body = "oops"}, {.status = 200});
	assert_int_equal(case_post(&c), 0);
	assert_int_equal(c.res.attempts, 2);
	assert_int_equal(c.res.http_status, 200);
	assert_int_equal(server_requests(&c.s), 2);
	server_stop(&c.s);
}

static void test_429_retry_after_seconds(void **state)
{
	struct post_case c = {0};
	long t0;

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 429, .retry_after = "1"}, {.status = 200});
	t0 = prov_now_ms();
	assert_int_equal(case_post(&c), 0);
	assert_true(prov_now_ms() - t0 >= 1000);
	assert_true(prov_now_ms() - t0 < 3000);
	assert_int_equal(c.res.attempts, 2);
	server_stop(&c.s);
}

static void test_503_retry_after_date(void **state)
{
	struct post_case c = {0};
	char date[64];
	time_t when = time(NULL) + 2;
	struct tm tm;
	long t0;

	(void)state;
	gmtime_r(&when, &tm);
	assert_int_not_equal(strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm), 0);
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 503, .retry_after = date}, {.status = 200});
	t0 = prov_now_ms();
	assert_int_equal(case_post(&c), 0);
	/* the date has whole seconds: between 1 and 2 s from when the reply came */
	assert_true(prov_now_ms() - t0 >= 900);
	assert_true(prov_now_ms() - t0 < 4000);
	assert_int_equal(c.res.attempts, 2);
	server_stop(&c.s);
}

static void test_retry_after_past_deadline(void **state)
{
	struct post_case c = {0};
	long t0;

	(void)state;
	case_start(&c, 5000);
	SCRIPT(&c.s, {.status = 503, .retry_after = "3600"});
	t0 = prov_now_ms();
	assert_int_equal(case_post(&c), PROV_E_DEADLINE);
	assert_true(prov_now_ms() - t0 < 1000);
	assert_int_equal(c.err.code, PROV_E_DEADLINE);
	assert_non_null(strstr(c.err.msg, "retry after 3600 s"));
	assert_non_null(strstr(c.err.msg, "deadline"));
	assert_int_equal(c.res.attempts, 1);
	assert_int_equal(c.res.http_status, 503);
	server_stop(&c.s);
}

static void test_hang_then_retry(void **state)
{
	struct post_case c = {0};
	long t0;

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 200, .hang_ms = 5000}, {.status = 200});
	c.o.attempt_timeout_ms = 500;
	t0 = prov_now_ms();
	assert_int_equal(case_post(&c), 0);
	assert_true(prov_now_ms() - t0 >= 500);
	assert_true(prov_now_ms() - t0 < 2500);
	assert_int_equal(c.res.attempts, 2);
	server_stop(&c.s);
}

/* A bound socket that does not listen: connecting to it is refused. */
static int refusing_port(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void test_connection_refused_until_deadline(void **state)
{
	struct post_opts o;
	struct post_result res;
	struct prov_error err = {0};
	char url[128];
	uint16_t port;
	int fd = refusing_port(&port);
	long t0, took;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/enlist", port);
	test_opts(&o, 1500);
	t0 = prov_now_ms();
	assert_int_equal(post_json(url, DOC, &o, &res, &err), PROV_E_DEADLINE);
	took = prov_now_ms() - t0;
	assert_true(took >= 1400);
	assert_true(took < 2000);
	assert_true(res.attempts > 3);
	assert_int_equal(res.http_status, 0);
	assert_non_null(strstr(err.msg, "deadline"));
	assert_non_null(strstr(err.msg, "127.0.0.1"));
	close(fd);
}

static void test_deadline_already_passed(void **state)
{
	struct post_opts o;
	struct post_result res;
	struct prov_error err = {0};

	(void)state;
	test_opts(&o, -1);
	assert_int_equal(post_json("http://127.0.0.1:9/x", DOC, &o, &res, &err), PROV_E_DEADLINE);
	assert_int_equal(res.attempts, 0);
}

static void test_refused_with_json_error(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 400, .body = "{\"error\":\"bad uuid\"}"});
	assert_int_equal(case_post(&c), PROV_E_SERVER_REFUSED);
	assert_int_equal(c.err.code, PROV_E_SERVER_REFUSED);
	assert_non_null(strstr(c.err.msg, "bad uuid"));
	assert_non_null(strstr(c.err.msg, "400"));
	assert_string_equal(c.res.message, "bad uuid");
	assert_int_equal(c.res.attempts, 1);
	assert_int_equal(c.res.http_status, 400);
	assert_int_equal(server_requests(&c.s), 1);
	server_stop(&c.s);
}

static void test_refused_with_text_and_echoed_secret(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 422, .body = "\n  bad power_pass " SECRET " \x01\x7f!\nline 2"});
	assert_int_equal(case_post(&c), PROV_E_SERVER_REFUSED);
	assert_null(strstr(c.err.msg, SECRET));
	assert_null(strstr(c.res.message, SECRET));
	assert_string_equal(c.res.message, "bad power_pass [redacted] ?"
	                                   "?!");
	assert_null(strstr(c.err.msg, "line 2"));
	server_stop(&c.s);
}

static void test_redirect_not_followed(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 302});
	assert_int_equal(case_post(&c), PROV_E_SERVER_REFUSED);
	assert_non_null(strstr(c.err.msg, "redirect"));
	assert_int_equal(server_requests(&c.s), 1);
	server_stop(&c.s);
}

static void test_same_body_every_attempt(void **state)
{
	struct post_case c = {0};

	(void)state;
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 500}, {.status = 502}, {.status = 429}, {.status = 503},
	       {.status = 200});
	assert_int_equal(case_post(&c), 0);
	assert_int_equal(c.res.attempts, 5);
	assert_int_equal(server_requests(&c.s), 5);
	assert_false(c.s.body_differs);
	assert_true(strcmp(c.s.first_body, DOC) == 0);
	server_stop(&c.s);
}

static void test_huge_reply_is_capped(void **state)
{
	struct post_case c = {0};
	size_t big_len = (size_t)4 * HTTP_BODY_MAX;
	char *big = malloc(big_len);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', big_len - 1);
	big[big_len - 1] = '\0';
	case_start(&c, 10000);
	SCRIPT(&c.s, {.status = 400, .body = big});
	assert_int_equal(case_post(&c), PROV_E_SERVER_REFUSED);
	assert_true(strlen(c.res.message) < sizeof(c.res.message));
	assert_int_equal(c.res.attempts, 1);
	server_stop(&c.s);
	free(big);
}

static void test_unusable_url(void **state)
{
	struct post_opts o;
	struct post_result res;
	struct prov_error err = {0};

	(void)state;
	test_opts(&o, 5000);
	assert_int_equal(post_json("ftp://127.0.0.1/x", DOC, &o, &res, &err), PROV_E_BAD_INPUT);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(post_json("", DOC, &o, &res, &err), PROV_E_BAD_INPUT);
	/* an unreadable CA file fails at once, before any connection */
	o.cacert = "/nonexistent/amt-enlist-ca.pem";
	assert_int_equal(post_json("https://127.0.0.1:9/x", DOC, &o, &res, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "CA file"));
	assert_int_equal(res.attempts, 0);
}

/* ---- TLS with a CA made here ---- */

struct pki {
	char dir[64];
	char ca_file[128];       /* the CA that signed the server's certificate */
	char other_ca_file[128]; /* a CA that did not */
	char *key_pem, *cert_pem;
};

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name;
	unsigned char serial[8];
	uint64_t n;

	assert_non_null(x);
	assert_int_equal(RAND_bytes(serial, sizeof(serial)), 1);
	serial[0] &= 0x7f;
	assert_int_equal(X509_set_version(x, 2), 1);
	memcpy(&n, serial, sizeof(n));
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (issuer) {
		add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
		add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
		add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
		add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1");
	} else {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static char *pem_of(X509 *cert, EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *copy;
	long n;

	assert_non_null(b);
	if (cert)
		assert_int_equal(PEM_write_bio_X509(b, cert), 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	copy = calloc(1, (size_t)n + 1);
	assert_non_null(copy);
	memcpy(copy, data, (size_t)n);
	BIO_free(b);
	return copy;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void pki_make(struct pki *p)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *ca, *other, *cert;
	char *pem;

	assert_non_null(ca_key);
	assert_non_null(other_key);
	assert_non_null(key);
	snprintf(p->dir, sizeof(p->dir), "/tmp/amt-enlist-pki.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	ca = make_cert(ca_key, "amt-enlist test CA", NULL, NULL);
	other = make_cert(other_key, "amt-enlist other CA", NULL, NULL);
	cert = make_cert(key, "127.0.0.1", ca, ca_key);
	snprintf(p->ca_file, sizeof(p->ca_file), "%s/ca.pem", p->dir);
	snprintf(p->other_ca_file, sizeof(p->other_ca_file), "%s/other.pem", p->dir);
	pem = pem_of(ca, NULL);
	write_text(p->ca_file, pem);
	free(pem);
	pem = pem_of(other, NULL);
	write_text(p->other_ca_file, pem);
	free(pem);
	p->cert_pem = pem_of(cert, NULL);
	p->key_pem = pem_of(NULL, key);
	X509_free(ca);
	X509_free(other);
	X509_free(cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(key);
}

static void pki_free(struct pki *p)
{
	unlink(p->ca_file);
	unlink(p->other_ca_file);
	rmdir(p->dir);
	free(p->cert_pem);
	free(p->key_pem);
}

static int tls_setup(void **state)
{
	struct pki *p = calloc(1, sizeof(*p));

	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		free(p);
		*state = NULL;
		return 0;
	}
	pki_make(p);
	*state = p;
	return 0;
}

static int tls_teardown(void **state)
{
	if (*state) {
		pki_free(*state);
		free(*state);
	}
	return 0;
}

/* tls_setup's PKI; without TLS in libmicrohttpd the test is skipped. */
static struct pki *tls_pki(void **state)
{
	if (!*state) {
		skip();
		abort(); /* not reached (skip() leaves the test), but the analyzers cannot know */
	}
	return *state;
}

static void tls_post(void **state, const char *cacert, bool insecure, int expect,
                     struct prov_error *err, struct post_result *res)
{
	struct pki *p = *state;
	struct server s = {0};
	struct post_opts o;
	char url[128];

	server_start_with(&s, p->key_pem, p->cert_pem);
	SCRIPT(&s, {.status = 200, .body = "{}"});
	url_of(&s, "https", url, sizeof(url));
	test_opts(&o, 5000);
	o.cacert = cacert;
	o.insecure = insecure;
	assert_int_equal(post_json(url, DOC, &o, res, err), expect);
	server_stop(&s);
}

static void test_tls_verified(void **state)
{
	struct pki *p = tls_pki(state);
	struct prov_error err = {0};
	struct post_result res;

	tls_post(state, p->ca_file, false, 0, &err, &res);
	assert_int_equal(res.attempts, 1);
}

static void test_tls_untrusted(void **state)
{
	struct pki *p = tls_pki(state);
	struct prov_error err = {0};
	struct post_result res;

	tls_post(state, p->other_ca_file, false, PROV_E_BAD_INPUT, &err, &res);
	assert_non_null(strstr(err.msg, "TLS"));
	assert_int_equal(res.attempts, 1); /* retrying would not make it verify */
	/* the system's CAs do not vouch for it either */
	memset(&err, 0, sizeof(err));
	tls_post(state, NULL, false, PROV_E_BAD_INPUT, &err, &res);
	assert_non_null(strstr(err.msg, "TLS"));
}

static void test_tls_insecure(void **state)
{
	struct pki *p = tls_pki(state);
	struct prov_error err = {0};
	struct post_result res;

	tls_post(state, p->other_ca_file, true, 0, &err, &res);
	assert_int_equal(res.attempts, 1);
}

/* ---- the pieces ---- */

/* Full jitter: every draw within [0, min(max, base * 2^n)], spread evenly over it. */
static void test_backoff_jitter(void **state)
{
	struct post_opts o;
	enum { DRAWS = 20000, BINS = 10 };

	(void)state;
	post_opts_default(&o);
	o.backoff_base_ms = 100;
	o.backoff_max_ms = 5000;
	for (unsigned retry = 0; retry < 12; retry++) {
		long cap = 100L << retry < 5000 ? 100L << retry : 5000;
		unsigned bins[BINS] = {0}, values[BINS] = {0};
		double sum = 0, chi2 = 0;
		long lo = cap, hi = 0;

		for (int i = 0; i < DRAWS; i++) {
			long d = http_backoff_ms(&o, retry);

			assert_true(d >= 0 && d <= cap);
			sum += (double)d;
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			bins[d * BINS / (cap + 1)]++;
		}
		/*
		 * Mean cap/2 within 3%; both ends reached; chi-square over 10 bins against the
		 * share of the cap + 1 values each bin holds (9 degrees of freedom: 40 is about
		 * p = 1e-6, so a correct draw fails this once in a million runs).
		 */
		assert_true(sum / DRAWS > cap * 0.47 && sum / DRAWS < cap * 0.53);
		assert_true(lo < cap / 50 + 1);
		assert_true(hi > cap - cap / 50 - 1);
		for (long v = 0; v <= cap; v++)
			values[v * BINS / (cap + 1)]++;
		for (int b = 0; b < BINS; b++) {
			double expected = (double)DRAWS * values[b] / (double)(cap + 1);

			chi2 += (bins[b] - expected) * (bins[b] - expected) / expected;
		}
		assert_true(chi2 < 40.0);
	}
	/* no overflow, whatever the retry count; no base: no wait */
	for (unsigned retry = 30; retry < 5000; retry += 97)
		assert_true(http_backoff_ms(&o, retry) <= 5000);
	o.backoff_base_ms = 0;
	assert_int_equal(http_backoff_ms(&o, 3), 0);
}

static void test_retry_after_values(void **state)
{
	time_t now = 1700000000;
	char date[64];
	time_t later = now + 30, earlier = now - 30;
	struct tm tm;

	(void)state;
	assert_int_equal(http_retry_after("0", now), 0);
	assert_int_equal(http_retry_after("120", now), 120);
	assert_int_equal(http_retry_after("99999999999999", now), 366L * 24 * 3600);
	assert_int_equal(http_retry_after("", now), -1);
	assert_int_equal(http_retry_after("soon", now), -1);
	assert_int_equal(http_retry_after("-5", now), -1);
	gmtime_r(&later, &tm);
	assert_int_not_equal(strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm), 0);
	assert_int_equal(http_retry_after(date, now), 30);
	gmtime_r(&earlier, &tm);
	assert_int_not_equal(strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm), 0);
	assert_int_equal(http_retry_after(date, now), 0);
}

static void test_server_messages(void **state)
{
	const char *const none[4] = {0};
	const char *const secret[4] = {"hunter2!", NULL};
	static const char secret_bytes[8] = "hunter2!"; /* put in BIG: bytes, not a string */
	char out[64], big[3000];
	const char *b;

	(void)state;
	b = "{\"error\":\"bad uuid\",\"message\":\"other\"}";
	http_server_message(b, strlen(b), none, out, sizeof(out));
	assert_string_equal(out, "bad uuid");
	b = "{\"message\":\"no such machine\"}";
	http_server_message(b, strlen(b), none, out, sizeof(out));
	assert_string_equal(out, "no such machine");
	b = "{\"error\":{\"code\":3}}\nsecond";
	http_server_message(b, strlen(b), none, out, sizeof(out));
	assert_string_equal(out, "{\"error\":{\"code\":3}}");
	b = "\r\n Not Found\r\n<html>";
	http_server_message(b, strlen(b), none, out, sizeof(out));
	assert_string_equal(out, "Not Found");
	b = "tab\there \xc3\xa9";
	http_server_message(b, strlen(b), none, out, sizeof(out));
	assert_string_equal(out, "tab?here ??");
	b = "{\"error\":\"wrong hunter2! given\"}";
	http_server_message(b, strlen(b), secret, out, sizeof(out));
	assert_string_equal(out, "wrong [redacted] given");
	http_server_message("", 0, none, out, sizeof(out));
	assert_string_equal(out, "");
	memset(big, 'a', sizeof(big));
	http_server_message(big, sizeof(big), none, out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
	/* a secret cut in half by the bound is still not shown in part */
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(out) - 4, secret_bytes, sizeof(secret_bytes));
	http_server_message(big, sizeof(big), secret, out, sizeof(out));
	assert_null(strstr(out, "hunt"));
}

static void test_url_for_messages(void **state)
{
	char out[128];

	(void)state;
	http_url_for_message("https://user:pw@maas.example:5443/MAAS/x/?token=abc#f", out,
	                     sizeof(out));
	assert_string_equal(out, "https://maas.example:5443/MAAS/x/");
	http_url_for_message("http://10.0.0.1/", out, sizeof(out));
	assert_string_equal(out, "http://10.0.0.1/");
	http_url_for_message("::::", out, sizeof(out));
	assert_string_equal(out, "(an unusable URL)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_success),
	    cmocka_unit_test(test_500_then_200),
	    cmocka_unit_test(test_429_retry_after_seconds),
	    cmocka_unit_test(test_503_retry_after_date),
	    cmocka_unit_test(test_retry_after_past_deadline),
	    cmocka_unit_test(test_hang_then_retry),
	    cmocka_unit_test(test_connection_refused_until_deadline),
	    cmocka_unit_test(test_deadline_already_passed),
	    cmocka_unit_test(test_refused_with_json_error),
	    cmocka_unit_test(test_refused_with_text_and_echoed_secret),
	    cmocka_unit_test(test_redirect_not_followed),
	    cmocka_unit_test(test_same_body_every_attempt),
	    cmocka_unit_test(test_huge_reply_is_capped),
	    cmocka_unit_test(test_unusable_url),
	    cmocka_unit_test_setup_teardown(test_tls_verified, tls_setup, tls_teardown),
	    cmocka_unit_test_setup_teardown(test_tls_untrusted, tls_setup, tls_teardown),
	    cmocka_unit_test_setup_teardown(test_tls_insecure, tls_setup, tls_teardown),
	    cmocka_unit_test(test_backoff_jitter),
	    cmocka_unit_test(test_retry_after_values),
	    cmocka_unit_test(test_server_messages),
	    cmocka_unit_test(test_url_for_messages),
	};
	int r;

	/* proxies from the environment are honoured by design; these tests talk to 127.0.0.1 */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
