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

void post_opts_default(struct post_opts *o); /* 5 s connect, 30 s attempt, 300 s deadline */

struct post_result {
	long http_status;   /* of the last attempt, 0 when none got an answer */
	unsigned attempts;
	char message[256];  /* the server's message on a final refusal (first line, sanitised) */
};

/*
 * POST BODY (application/json) to URL. Retries with exponential backoff and full jitter on
 * connection errors, timeouts, 5xx and 429 (honouring Retry-After, seconds or HTTP date), within
 * the deadline; 2xx is success; another 4xx is final. The same body on every attempt.
 * Returns 0, PROV_E_SERVER_REFUSED (final 4xx: the server's message in ERR), or
 * PROV_E_DEADLINE (no success before the deadline; ERR names the last failure).
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
 * /etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg. 0, or PROV_E_BAD_INPUT with ERR naming
 * the file and the missing or malformed key.
 */
int maas_creds_from_file(const char *path, struct maas_creds *c, struct prov_error *err);
/* The same from a YAML text in memory (what cloud-config-url= serves). */
int maas_creds_from_yaml(const char *yaml, size_t len, const char *what, struct maas_creds *c,
			 struct prov_error *err);

/* The value of cloud-config-url= on a kernel command line, or false. */
bool cmdline_cloud_config_url(const char *cmdline, char *url, size_t cap);
/* The MAC of BOOTIF=01-aa-bb-cc-dd-ee-ff (as aa:bb:cc:dd:ee:ff), or false. */
bool cmdline_bootif(const char *cmdline, char mac[18]);

/*
 * The OAuth 1.0a PLAINTEXT Authorization header value for these credentials (pure: for tests):
 * OAuth oauth_nonce="N", oauth_timestamp="T", oauth_version="1.0",
 * oauth_signature_method="PLAINTEXT", oauth_consumer_key="CK", oauth_token="TK",
 * oauth_signature="%26TS" (consumer secret empty; values percent-encoded).
 */
int maas_oauth_header(const struct maas_creds *c, const char *nonce, long timestamp, char *out,
		      size_t cap);

/*
 * MAAS metadata signal: POST <metadata_url>/2012-03-01/ op=signal, multipart/form-data fields
 * status, power_type "amt", power_parameters (a JSON string of P). A fresh nonce per request; on
 * 401/403 the clock skew is taken from the reply's Date header and the request retried once
 * with a corrected timestamp; retries and deadline as post_json.
 */
int maas_signal(const struct maas_creds *c, const char *status, const struct power_params *p,
		const struct post_opts *o, struct post_result *res, struct prov_error *err);

/* ---- bmc-config ---- */

/*
 * Write MAAS's flat YAML (power_type: amt, power_address, power_user, power_pass, port) to PATH
 * with libyaml's emitter, atomically (temp file in the same directory, fsync, rename), mode
 * 0600. An existing PATH is left alone: returns 1 then. 0 when written; PROV_E_INTERNAL with ERR
 * on failure (no partial file left).
 */
int bmc_config_write(const char *path, const struct power_params *p, struct prov_error *err);
