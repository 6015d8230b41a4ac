/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hand-offs' HTTP: the retry loop every hand-off request goes through (http.h), and the JSON
 * POST of --server.
 *
 * Retries. A request is sent again after failures that may pass by themselves: no connection,
 * a timeout, a reset, an empty reply, a TLS handshake that broke off, HTTP 5xx and 429. The wait
 * is the server's Retry-After when it gives one (never shortened; if it reaches past the
 * deadline we stop at once and say so), else exponential backoff with full jitter. Every attempt
 * gets the connect and whole-request timeouts, clamped to the time left before the deadline.
 * Final at once: 2xx (success), 3xx (redirects are not followed: the operator should use the
 * URL the server names), other 4xx (the server refused: its message is returned), and failures
 * that trying again cannot mend (bad URL, unusable CA file, a certificate that does not verify).
 *
 * Proxies. libcurl's handling of http_proxy, https_proxy, ALL_PROXY and no_proxy from the
 * environment is kept: it is what curl users expect, MAAS's own script runner (Python's urllib)
 * does the same, and a provisioning network may be reachable only through a proxy. What a proxy
 * gets is limited: the request's own headers (MAAS's OAuth Authorization) go to the server only
 * (CURLHEADER_SEPARATE: never into a CONNECT), none of our credentials is ever offered as proxy
 * credentials, and with https the proxy relays a TLS tunnel it cannot read. With plain http a
 * proxy relays the request as it is, as does every hop of that network: secrets that must not be
 * seen on the way need https.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "session.h"

#define DEFAULT_CONNECT_MS  5000
#define DEFAULT_ATTEMPT_MS  30000
#define DEFAULT_DEADLINE_MS 300000L
#define DEFAULT_BACKOFF_MS  500
#define DEFAULT_BACKOFF_MAX 30000

/* A Retry-After beyond a year is as good as "never"; the cap keeps the arithmetic in range. */
#define RETRY_AFTER_MAX_S (366L * 24 * 3600)

void post_opts_default(struct post_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = DEFAULT_CONNECT_MS;
	o->attempt_timeout_ms = DEFAULT_ATTEMPT_MS;
	o->deadline_ms = prov_now_ms() + DEFAULT_DEADLINE_MS;
	o->backoff_base_ms = DEFAULT_BACKOFF_MS;
	o->backoff_max_ms = DEFAULT_BACKOFF_MAX;
}

long http_backoff_ms(const struct post_opts *o, unsigned retry)
{
	long cap = o->backoff_base_ms > 0 ? o->backoff_base_ms : 0;
	uint64_t draw;

	for (unsigned i = 0; i < retry && cap > 0 && cap < o->backoff_max_ms; i++)
		cap *= 2;
	if (cap > o->backoff_max_ms)
		cap = o->backoff_max_ms;
	if (cap <= 0)
		return 0;
	/* Should the random source fail, waiting the longest is the cautious choice. */
	if (RAND_bytes((unsigned char *)&draw, sizeof(draw)) != 1)
		return cap;
	/* The modulo's bias is below 2^-32 for any cap a long of milliseconds can hold here. */
	return (long)(draw % ((uint64_t)cap + 1));
}

long http_retry_after(const char *value, time_t now)
{
	size_t n = strlen(value), digits = strspn(value, "0123456789");
	time_t when;

	if (n == 0)
		return -1;
	if (digits == n) {
		/* delta-seconds; more digits than a year of seconds has means "later than that" */
		long s = digits > 9 ? RETRY_AFTER_MAX_S : strtol(value, NULL, 10);

		return s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S;
	}
	when = curl_getdate(value, NULL);
	if (when == -1)
		return -1;
	if (when <= now)
		return 0;
	return when - now < RETRY_AFTER_MAX_S ? (long)(when - now) : RETRY_AFTER_MAX_S;
}

/* Copy at most CAP - 1 bytes of SRC[0..N) into OUT, each byte outside printable ASCII as '?'. */
static void copy_printable(const char *src, size_t n, char *out, size_t cap)
{
	size_t i;

	if (cap == 0)
		return;
	for (i = 0; i < n && i + 1 < cap; i++) {
		out[i] = src[i];
		if (out[i] < 0x20 || out[i] > 0x7e)
			out[i] = '?';
	}
	out[i] = '\0';
}

/* Replace every SECRET in S (capacity CAP) with a mark. */
static void redact(char *s, size_t cap, const char *secret)
{
	static const char mark[] = "[redacted]";
	size_t sl = secret ? strlen(secret) : 0, o = 0;
	char buf[1024];

	if (sl == 0 || cap > sizeof(buf) || !strstr(s, secret))
		return;
	for (const char *p = s; *p && o + 1 < cap;) {
		if (strncmp(p, secret, sl) == 0) {
			size_t room = cap - 1 - o;
			size_t m = room < sizeof(mark) - 1 ? room : sizeof(mark) - 1;

			memcpy(buf + o, mark, m);
			o += m;
			p += sl;
		} else {
			buf[o++] = *p++;
		}
	}
	buf[o] = '\0';
	memcpy(s, buf, o + 1);
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* The "error" or "message" string of a JSON object body, or NULL. DOC is set for the caller. */
static const char *json_message(const char *body, size_t len, struct json_object **doc)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *v;

	*doc = NULL;
	if (!tok)
		return NULL;
	*doc = json_tokener_parse_ex(tok, body, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(*doc);
		*doc = NULL;
	}
	json_tokener_free(tok);
	if (!*doc || !json_object_is_type(*doc, json_type_object))
		return NULL;
	if (json_object_object_get_ex(*doc, "error", &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	if (json_object_object_get_ex(*doc, "message", &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

void http_server_message(const char *body, size_t len, const char *const redact_list[4], char *out,
                         size_t cap)
{
	struct json_object *doc = NULL;
	const char *text;
	char work[1024];
	size_t n;

	if (cap == 0)
		return;
	out[0] = '\0';
	if (!body || len == 0)
		return;
	if (len > HTTP_BODY_MAX)
		len = HTTP_BODY_MAX;
	text = json_message(body, len, &doc);
	if (text) {
		n = strlen(text);
	} else {
		text = body;
		while (len > 0 && isspace((unsigned char)*text)) {
			text++;
			len--;
		}
		for (n = 0; n < len && text[n] != '\n' && text[n] != '\r'; n++)
			;
	}
	/* Redacted before it is cut to CAP, so no secret is left half in the message. */
	copy_printable(text, n, work, sizeof(work));
	json_object_put(doc);
	for (int i = 0; redact_list && i < 4; i++)
		redact(work, sizeof(work), redact_list[i]);
	n = strlen(work);
	while (n > 0 && work[n - 1] == ' ')
		n--;
	copy_printable(work, n, out, cap);
	OPENSSL_cleanse(work, sizeof(work));
}

void http_url_for_message(const char *url, char *out, size_t cap)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;

	if (u && url && curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
			port = NULL;
		if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
			path = NULL;
		snprintf(out, cap, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
		         path ? path : "");
		for (char *p = out; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				*p = '?';
	} else {
		snprintf(out, cap, "(an unusable URL)");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

void http_free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

/* ---- one attempt ---- */

struct attempt {
	struct http_reply reply;
	char curl_msg[CURL_ERROR_SIZE];
};

static size_t collect_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t len = size * nmemb, room = HTTP_BODY_MAX - r->body_len;

	if (len > room) {
		memcpy(r->body + r->body_len, data, room);
		r->body_len += room;
		r->body[r->body_len] = '\0';
		r->truncated = true;
		return 0; /* stop reading: the status line and headers are already in */
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), start, end;

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return;
	for (start = nl + 1; start < len && (line[start] == ' ' || line[start] == '\t'); start++)
		;
	for (end = len; end > start && isspace((unsigned char)line[end - 1]); end--)
		;
	if (end - start < cap)
		copy_printable(line + start, end - start, out, cap);
}

static size_t collect_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t len = size * nmemb;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new response (the final one after a 1xx): forget the previous one's headers */
		r->date[0] = '\0';
		r->retry_after[0] = '\0';
		return len;
	}
	header_value(data, len, "Date", r->date, sizeof(r->date));
	header_value(data, len, "Retry-After", r->retry_after, sizeof(r->retry_after));
	return len;
}

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (curl_easy_setopt(curl, opt, val) != CURLE_OK)                                  \
			return false;                                                              \
	} while (0)

static bool configure(CURL *curl, const struct http_request *rq, struct attempt *a)
{
	const struct post_opts *o = rq->opts;

	SET(CURLOPT_URL, rq->url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else /* Ubuntu 22.04 has 7.81 */
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_VERBOSE, 0L);
	SET(CURLOPT_USERAGENT, "amt-enlist/" AMT_ENLIST_VERSION);
	/* Proxies from the environment stay on; our headers never go to one (see the top). */
	SET(CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
	SET(CURLOPT_ERRORBUFFER, a->curl_msg);
	SET(CURLOPT_WRITEFUNCTION, collect_body);
	SET(CURLOPT_WRITEDATA, &a->reply);
	SET(CURLOPT_HEADERFUNCTION, collect_header);
	SET(CURLOPT_HEADERDATA, &a->reply);
	if (o->insecure) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
		if (o->cacert) {
			/* The operator's CA alone vouches for the server, as with AMT's. */
			SET(CURLOPT_CAINFO, o->cacert);
			SET(CURLOPT_CAPATH, (char *)NULL);
		}
	}
	return true;
}

static bool set_timeouts(CURL *curl, const struct post_opts *o, long left)
{
	long whole = o->attempt_timeout_ms > 0 && o->attempt_timeout_ms < left
	                 ? o->attempt_timeout_ms
	                 : left;
	long connect = o->connect_timeout_ms > 0 && o->connect_timeout_ms < whole
	                   ? o->connect_timeout_ms
	                   : whole;

	SET(CURLOPT_TIMEOUT_MS, whole > 0 ? whole : 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, connect > 0 ? connect : 1L);
	return true;
}

#undef SET

/* Prepare, send and receive once. Returns 0 with RC set, or a prov_err from the preparation. */
static int attempt_once(CURL *curl, const struct http_request *rq, struct attempt *a, long left,
                        CURLcode *rc, struct prov_error *err)
{
	struct curl_slist *headers = NULL, *h;
	int r;

	a->reply.status = 0;
	a->reply.body_len = 0;
	a->reply.body[0] = '\0';
	a->reply.truncated = false;
	a->reply.date[0] = '\0';
	a->reply.retry_after[0] = '\0';
	a->curl_msg[0] = '\0';
	if (!set_timeouts(curl, rq->opts, left))
		return prov_fail(err, PROV_E_INTERNAL, 0, "%s: cannot set libcurl's timeouts",
		                 rq->what);
	r = rq->prepare(rq->ctx, curl, &headers, err);
	if (r < 0) {
		http_free_headers(headers);
		return r;
	}
	/* "Expect: 100-continue" would only cost a round trip (or a second with some servers). */
	h = curl_slist_append(headers, "Expect:");
	if (!h) {
		http_free_headers(headers);
		return prov_fail(err, PROV_E_INTERNAL, 0, "%s: out of memory", rq->what);
	}
	headers = h;
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	*rc = curl_easy_perform(curl);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	http_free_headers(headers);
	if (*rc == CURLE_OK || (*rc == CURLE_WRITE_ERROR && a->reply.truncated))
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->reply.status);
	return 0;
}

enum outcome {
	OUTCOME_SUCCESS,
	OUTCOME_RETRY, /* LAST says why */
	OUTCOME_AGAIN, /* at once, without waiting */
	OUTCOME_FINAL, /* ERR says why */
};

static const char *curl_detail(const struct attempt *a, CURLcode rc, char *buf, size_t cap)
{
	const char *m = a->curl_msg[0] ? a->curl_msg : curl_easy_strerror(rc);

	copy_printable(m, strcspn(m, "\n"), buf, cap);
	return buf;
}

/* A transport failure: retried unless trying again cannot help. */
static enum outcome judge_transport(const struct http_request *rq, const char *where,
                                    const struct attempt *a, CURLcode rc, char *last,
                                    size_t last_cap, struct prov_error *err)
{
	char detail[CURL_ERROR_SIZE];

	curl_detail(a, rc, detail, sizeof(detail));
	/*
	 * libcurl 7.88 also says "unsupported protocol" for a reply whose status line is
	 * malformed; with an http(s) URL that is the server's fault, so it may pass.
	 */
	if (rc == CURLE_UNSUPPORTED_PROTOCOL && (strncasecmp(rq->url, "http://", 7) == 0 ||
						 strncasecmp(rq->url, "https://", 8) == 0)) {
		snprintf(last, last_cap, "a malformed reply: %s", detail);
		return OUTCOME_RETRY;
	}
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
		prov_fail(err, PROV_E_BAD_INPUT, 0, "%s %s: unusable URL: %s", rq->what, where,
		          detail);
		return OUTCOME_FINAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		prov_fail(err, PROV_E_BAD_INPUT, 0, "%s %s: TLS: %s", rq->what, where, detail);
		return OUTCOME_FINAL;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
		prov_fail(err, PROV_E_INTERNAL, 0, "%s %s: %s", rq->what, where, detail);
		return OUTCOME_FINAL;
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(last, last_cap, "TLS: %s", detail);
		return OUTCOME_RETRY;
	default:
		snprintf(last, last_cap, "%s", detail);
		return OUTCOME_RETRY;
	}
}

static enum outcome judge(const struct http_request *rq, const char *where, const struct attempt *a,
                          CURLcode rc, struct post_result *res, char *last, size_t last_cap,
                          struct prov_error *err)
{
	long status = a->reply.status;
	char msg[sizeof(res->message)];

	if (status == 0)
		return judge_transport(rq, where, a, rc, last, last_cap, err);
	if (status >= 200 && status < 300)
		return OUTCOME_SUCCESS;
	http_server_message(a->reply.body, a->reply.body_len, rq->redact, msg, sizeof(msg));
	if (status == 429 || status >= 500 || status < 200) {
		snprintf(last, last_cap, "HTTP %ld%s%s", status, msg[0] ? ": " : "", msg);
		return OUTCOME_RETRY;
	}
	if (status < 400) {
		snprintf(res->message, sizeof(res->message), "%s", msg);
		prov_fail(err, PROV_E_SERVER_REFUSED, 0,
		          "%s %s: redirected (HTTP %ld), and redirects are not followed: use the "
		          "URL the server names",
		          rq->what, where, status);
		return OUTCOME_FINAL;
	}
	if (rq->again && rq->again(rq->ctx, &a->reply))
		return OUTCOME_AGAIN;
	snprintf(res->message, sizeof(res->message), "%s", msg);
	prov_fail(err, PROV_E_SERVER_REFUSED, 0, "%s %s: refused (HTTP %ld)%s%s", rq->what, where,
	          status, msg[0] ? ": " : "", msg);
	return OUTCOME_FINAL;
}

/* The wait before the next attempt, or -1 (ERR filled) when the server's exceeds the deadline. */
static long next_wait(const struct http_request *rq, const char *where, const struct attempt *a,
                      unsigned retry, long left, const char *last, struct prov_error *err)
{
	long after = a->reply.status ? http_retry_after(a->reply.retry_after, time(NULL)) : -1;

	if (after < 0)
		return http_backoff_ms(rq->opts, retry);
	if (after > 0 && after * 1000 > left) {
		prov_fail(err, PROV_E_DEADLINE, 0,
		          "%s %s: the server asks to retry after %ld s, past the deadline (%ld s "
		          "left; last: %s)",
		          rq->what, where, after, left / 1000, last);
		return -1;
	}
	return after * 1000;
}

int http_send(const struct http_request *rq, struct post_result *res, struct prov_error *err)
{
	struct attempt a;
	char where[256], last[192] = "";
	unsigned retries = 0;
	CURL *curl;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&a, 0, sizeof(a));
	http_url_for_message(rq->url, where, sizeof(where));
	a.reply.body = malloc(HTTP_BODY_MAX + 1);
	curl = curl_easy_init();
	/* A CA file that cannot be read would only show once TLS starts, maybe minutes later. */
	if (rq->opts->cacert && !rq->opts->insecure && access(rq->opts->cacert, R_OK) < 0) {
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "%s %s: TLS: cannot read the CA file %s: %s", rq->what, where,
		              rq->opts->cacert, strerror(errno));
		goto out;
	}
	if (!a.reply.body || !curl || !configure(curl, rq, &a)) {
		r = prov_fail(err, PROV_E_INTERNAL, 0, "%s %s: cannot set up libcurl", rq->what,
		              where);
		goto out;
	}
	for (;;) {
		long left = rq->opts->deadline_ms - prov_now_ms(), wait;
		CURLcode rc = CURLE_OK;

		if (left <= 0) {
			if (res->attempts == 0)
				r = prov_fail(err, PROV_E_DEADLINE, 0,
				              "%s %s: the deadline passed before the first attempt",
				              rq->what, where);
			else
				r = prov_fail(err, PROV_E_DEADLINE, 0,
				              "%s %s: no success before the deadline (%u attempts; "
				              "last: %s)",
				              rq->what, where, res->attempts, last);
			goto out;
		}
		r = attempt_once(curl, rq, &a, left, &rc, err);
		if (r < 0)
			goto out;
		res->attempts++;
		res->http_status = a.reply.status;
		switch (judge(rq, where, &a, rc, res, last, sizeof(last), err)) {
		case OUTCOME_SUCCESS:
			r = rq->accept ? rq->accept(rq->ctx, &a.reply, err) : 0;
			goto out;
		case OUTCOME_FINAL:
			r = err->code;
			goto out;
		case OUTCOME_AGAIN:
			continue;
		case OUTCOME_RETRY:
			break;
		}
		left = rq->opts->deadline_ms - prov_now_ms();
		wait = next_wait(rq, where, &a, retries++, left, last, err);
		if (wait < 0) {
			r = PROV_E_DEADLINE;
			goto out;
		}
		prov_sleep_ms(wait < left ? wait : left);
	}
out:
	curl_easy_cleanup(curl);
	if (a.reply.body) {
		OPENSSL_cleanse(a.reply.body, a.reply.body_len);
		free(a.reply.body);
	}
	return r;
}

/* ---- the JSON POST ---- */

static int prepare_json(void *ctx, CURL *curl, struct curl_slist **headers, struct prov_error *err)
{
	const char *body = ctx;

	*headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!*headers ||
	    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) !=
	        CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body) != CURLE_OK)
		return prov_fail(err, PROV_E_INTERNAL, 0, "POST: cannot set up the request");
	return 0;
}

/* The document's power_pass, so a server that echoes it back does not get it into a message. */
static void find_power_pass(const char *body, char *pass, size_t cap)
{
	struct json_object *doc = json_tokener_parse(body), *pp, *v;

	pass[0] = '\0';
	if (doc && json_object_object_get_ex(doc, "power_parameters", &pp) &&
	    json_object_object_get_ex(pp, "power_pass", &v) &&
	    json_object_is_type(v, json_type_string)) {
		snprintf(pass, cap, "%s", json_object_get_string(v));
		OPENSSL_cleanse((void *)json_object_get_string(v),
		                (size_t)json_object_get_string_len(v));
	}
	json_object_put(doc);
}

int post_json(const char *url, const char *body, const struct post_opts *o, struct post_result *res,
              struct prov_error *err)
{
	struct post_opts defaults;
	char pass[64];
	struct http_request rq = {
	    .url = url,
	    .what = "POST",
	    .opts = o,
	    .prepare = prepare_json,
	    .ctx = (void *)body,
	};
	int r;

	if (!url || !*url || !body) {
		memset(res, 0, sizeof(*res));
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "POST: no URL or no document");
	}
	if (!o) {
		post_opts_default(&defaults);
		rq.opts = &defaults;
	}
	find_power_pass(body, pass, sizeof(pass));
	rq.redact[0] = pass;
	r = http_send(&rq, res, err);
	OPENSSL_cleanse(pass, sizeof(pass));
	return r;
}
