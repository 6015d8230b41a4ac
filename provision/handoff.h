/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hand-offs to the provisioning server (internal to provision/): the JSON POST, MAAS's metadata
 * signal with OAuth 1.0a PLAINTEXT, and MAAS's bmc-config YAML file. HTTP by libcurl, YAML by
 * libyaml. Nothing here logs; failures come back as one line in a struct prov_error, never with
 * a secret in it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "provision.h"

/* MAAS's AMT power parameters (MAAS's AMT driver keys). */
struct power_params {
	char power_address[64];
	char power_user[33];
	char power_pass[33]; /* secret */
	char port[6];        /* "16992" or "16993" */
};

struct post_opts {
	const char *cacert;      /* CA bundle for the server's certificate; NULL: system default */
	bool insecure;           /* no TLS verification (only when the operator asks) */
	int connect_timeout_ms;  /* per attempt */
	int attempt_timeout_ms;  /* per attempt, whole request */
	long deadline_ms;        /* CLOCK_MONOTONIC ms by which the whole hand-off must end */
	int backoff_base_ms;     /* first backoff; exponential with full jitter */
	int backoff_max_ms;
};

/* 5 s connect, 30 s attempt, deadline 300 s from now (prov_now_ms), backoff 0.5 s up to 30 s. */
void post_opts_default(struct post_opts *o);

struct post_result {
	long http_status;   /* of the last attempt, 0 when none got an answer */
	unsigned attempts;
	char message[256];  /* the server's message on a final refusal (first line, sanitised) */
};

/*
 * POST BODY (application/json) to URL. Retries with exponential backoff and full jitter on
 * connection errors, timeouts, resets, 5xx and 429 (honouring Retry-After, seconds or HTTP date),
 * within the deadline; 2xx is success; 3xx (redirects are not followed) and other 4xx are final.
 * The same body on every attempt. Proxies from the environment are honoured (post.c says how).
 * O may be NULL for post_opts_default. Returns 0, PROV_E_SERVER_REFUSED (final 3xx/4xx: the
 * server's message, sanitised, in RES and ERR), PROV_E_DEADLINE (no success before the deadline,
 * or a Retry-After beyond it; ERR names the last failure), PROV_E_BAD_INPUT (trying again cannot
 * help: unusable URL, unreadable CA file, a certificate that does not verify: "TLS: ..."), or
 * PROV_E_INTERNAL.
 */
int post_json(const char *url, const char *body, const struct post_opts *o,
	      struct post_result *res, struct prov_error *err);

/* ---- MAAS ---- */

struct maas_creds {
	char metadata_url[512]; /* e.g. http://10.0.0.1:5248/MAAS/metadata/ */
	char consumer_key[128];
	char token_key[128];
	char token_secret[128]; /* secret */
};

void maas_creds_wipe(struct maas_creds *c);

/*
 * Read cloud-init's MAAS datasource config (YAML: datasource: {MAAS: {metadata_url,
 * consumer_key, token_key, token_secret}}), as written to
 * /etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg; other keys are ignored, and a flat config
 * without datasource is read as MAAS's own reader does. The enlistment variant (metadata_url
 * only) leaves the token fields empty: the caller decides. Values must be printable ASCII
 * without spaces (they go into a URL and a header). 0, or PROV_E_BAD_INPUT with ERR naming the
 * file and the missing or malformed key (never a value); at most 64 KiB, nesting bounded.
 */
int maas_creds_from_file(const char *path, struct maas_creds *c, struct prov_error *err);
/* The same from a YAML text in memory (what cloud-config-url= serves). */
int maas_creds_from_yaml(const char *text, size_t len, const char *what, struct maas_creds *c,
			 struct prov_error *err);

/*
 * GET the cloud-config that cloud-config-url= names (what MAAS serves a booting machine) and read
 * the MAAS datasource from it; retries and deadline as post_json.
 */
int maas_creds_fetch(const char *url, const struct post_opts *o, struct maas_creds *c,
		     struct prov_error *err);

/*
 * The value of cloud-config-url= on a kernel command line, or false (absent, empty, longer than
 * CAP). The last occurrence counts; double quotes are removed as the kernel does.
 */
bool cmdline_cloud_config_url(const char *cmdline, char *url, size_t cap);
/* The MAC of BOOTIF=01-aa-bb-cc-dd-ee-ff (as lower-case aa:bb:cc:dd:ee:ff), or false. */
bool cmdline_bootif(const char *cmdline, char mac[18]);

/*
 * The OAuth 1.0a PLAINTEXT Authorization header value for these credentials (pure: for tests):
 * OAuth oauth_nonce="N", oauth_timestamp="T", oauth_version="1.0",
 * oauth_signature_method="PLAINTEXT", oauth_consumer_key="CK", oauth_token="TK",
 * oauth_signature="%26TS" (consumer secret empty; values percent-encoded per RFC 5849, the
 * signature twice as in 3.4.4 and 3.5.1, byte for byte what oauthlib makes). 0, or
 * PROV_E_INTERNAL (OUT cleared) when it does not fit CAP.
 */
int maas_oauth_header(const struct maas_creds *c, const char *nonce, long timestamp, char *out,
		      size_t cap);

/*
 * MAAS metadata signal: POST <metadata_url without trailing slashes>/2012-03-01/, a
 * multipart/form-data body with op=signal, status, power_type "amt" and power_parameters (a JSON
 * object string with exactly power_address, power_user, power_pass, port), as MAAS's
 * maas_api_helper.signal() sends it. A fresh nonce per request; on 401/403 the clock skew is
 * taken from the reply's Date header and the request sent again with a corrected timestamp, once
 * per new skew (10 s or more from the last); retries, deadline and results as post_json.
 * PROV_E_BAD_INPUT before anything is sent when C has no token (enlistment credentials), P has
 * no address or no password (MAAS would replace working parameters with them), or STATUS is not
 * a MAAS status word.
 */
int maas_signal(const struct maas_creds *c, const char *status, const struct power_params *p,
		const struct post_opts *o, struct post_result *res, struct prov_error *err);

/* ---- bmc-config ---- */

/*
 * Write MAAS's flat YAML (power_type: amt, power_address, power_user, power_pass, port) to PATH
 * with libyaml's emitter (values a YAML reader would take for numbers, booleans or null, such as
 * the port, are quoted), atomically (a 0600 temp file in the same directory, fsync, then
 * renameat2 RENAME_NOREPLACE or link, so a file that appears meanwhile is never replaced, then
 * fsync of the directory). An existing PATH (even a dangling symlink) is left alone: returns 1
 * then. 0 when written; PROV_E_BAD_INPUT when P has no address or no password, or PATH is a
 * directory; PROV_E_INTERNAL with ERR on failure (no partial or temp file left).
 */
int bmc_config_write(const char *path, const struct power_params *p, struct prov_error *err);
