/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hand-offs' HTTP (internal to provision/): one request, sent again after failures that may
 * pass (no connection, timeouts, resets, 5xx, 429) with exponential backoff and full jitter or
 * the server's Retry-After, until it succeeds, is refused or the deadline passes. post_json and
 * maas_signal both go through http_send; they differ only in how an attempt is prepared.
 */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "handoff.h"

/* A reply's body is kept up to this size; the rest is not read. */
#define HTTP_BODY_MAX 65536

struct http_reply {
	long status; /* 0 when the attempt got no answer */
	char *body;  /* NUL-terminated, at most HTTP_BODY_MAX bytes */
	size_t body_len;
	bool truncated;
	char date[64];        /* the Date header, "" if none */
	char retry_after[64]; /* the Retry-After header, "" if none */
};

struct http_request {
	const char *url;
	const char *what; /* names the hand-off in messages, e.g. "POST" */
	const struct post_opts *opts;
	/*
	 * Before every attempt: put this attempt's headers into *HEADERS and its body on CURL.
	 * Return 0, or a prov_err with ERR filled to give up.
	 */
	int (*prepare)(void *ctx, CURL *curl, struct curl_slist **headers, struct prov_error *err);
	/*
	 * A 4xx reply that would end the hand-off (not 429): return true to send again at once
	 * because the reply taught the caller something (MAAS: the clock skew). NULL: never.
	 */
	bool (*again)(void *ctx, const struct http_reply *reply);
	/*
	 * On success (2xx): take what the reply says (a GET's body). Return 0, or a prov_err with
	 * ERR filled when the body is unusable (not retried). NULL: the body does not matter.
	 */
	int (*accept)(void *ctx, const struct http_reply *reply, struct prov_error *err);
	void *ctx;
	/* Strings (the secrets in the request) never repeated from a server's message. */
	const char *redact[4];
};

/*
 * Send RQ until it succeeds (2xx: 0), is refused (3xx or 4xx: PROV_E_SERVER_REFUSED, the
 * server's message in RES and ERR), or RQ's deadline comes (PROV_E_DEADLINE, naming the last
 * failure). PROV_E_BAD_INPUT when trying again cannot help: a malformed URL or an unsupported
 * scheme, an unusable CA file, a server certificate that does not verify. PROV_E_INTERNAL when
 * libcurl cannot be set up.
 */
int http_send(const struct http_request *rq, struct post_result *res, struct prov_error *err);

/*
 * The wait before retry number RETRY (0 for the first retry): uniform in
 * [0, min(backoff_max_ms, backoff_base_ms * 2^RETRY)], drawn with RAND_bytes ("full jitter").
 */
long http_backoff_ms(const struct post_opts *o, unsigned retry);

/* A Retry-After value (delta-seconds or an HTTP-date) as seconds from NOW; -1 if unusable. */
long http_retry_after(const char *value, time_t now);

/*
 * The server's message from a reply body: the "error" or "message" string of a JSON object, else
 * the first line; printable ASCII only, at most CAP - 1 bytes, REDACT's strings replaced by
 * "[redacted]". "" when the body says nothing.
 */
void http_server_message(const char *body, size_t len, const char *const redact[4], char *out,
                         size_t cap);

/* The URL as it may appear in a message: scheme, host, port and path (no user, no query). */
void http_url_for_message(const char *url, char *out, size_t cap);

/* Free a header list whose strings may hold a secret, clearing them first. */
void http_free_headers(struct curl_slist *headers);
