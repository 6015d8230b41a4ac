/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WS-Management for AMT (internal to provision/): SOAP 1.2 envelopes built and replies parsed
 * with libxml2; HTTP with Digest auth by libcurl. The HTTP connection rides on an APF channel
 * (libcurl connects to the Unix socket of mei's APF bridge, CURLOPT_UNIX_SOCKET_PATH, and each
 * connection becomes one channel) or on LMS at 127.0.0.1.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>
#include <openssl/x509.h>

#include "mei.h"

#define WSMAN_NS_SOAP   "http://www.w3.org/2003/05/soap-envelope"
#define WSMAN_NS_ADDR   "http://schemas.xmlsoap.org/ws/2004/08/addressing"
#define WSMAN_NS_WSMAN  "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
#define WSMAN_ACTION_GET "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
#define WSMAN_ACTION_PUT "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
#define WSMAN_NS_ENUM   "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
#define WSMAN_ACTION_ENUMERATE WSMAN_NS_ENUM "/Enumerate"
#define WSMAN_ACTION_PULL      WSMAN_NS_ENUM "/Pull"

/* An enumeration: items per Pull, Pulls at most (AMT's classes have a handful of instances). */
#define WSMAN_PULL_ELEMENTS 32
#define WSMAN_PULLS_MAX     16
#define WSMAN_CONTEXT_MAX   256

#define AMT_URI_GENERAL_SETTINGS  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"
#define AMT_URI_SETUP_AND_CONFIG  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService"
#define AMT_URI_AUTHORIZATION     "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_AuthorizationService"
#define AMT_URI_TLS_SETTING_DATA  "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSSettingData"
#define AMT_URI_POWER_SCHEME      "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SystemPowerScheme"
#define IPS_URI_HOST_BASED_SETUP  "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService"
#define IPS_URI_OPT_IN            "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_OptInService"

enum wsman_err {
	WSMAN_OK = 0,
	WSMAN_E_CONNECT = -1,   /* could not reach AMT's WS-Man port (channel refused, LMS down) */
	WSMAN_E_AUTH = -2,      /* 401 after Digest: the credentials are wrong */
	WSMAN_E_HTTP = -3,      /* another HTTP status */
	WSMAN_E_FAULT = -4,     /* a SOAP fault; the reason is in the error text */
	WSMAN_E_PARSE = -5,     /* the reply is not the XML we expect */
	WSMAN_E_TIMEOUT = -6,
	WSMAN_E_TLS = -7,       /* TLS handshake or verification failed */
	WSMAN_E_INTERNAL = -8,
};

struct wsman_error {
	int code;       /* enum wsman_err */
	long http_status;
	char msg[256];  /* one line, never a credential */
};

/*
 * Mutual TLS: the certificate (chain) and key the client presents, for AMT's admin control mode
 * activation over TLS (the provisioning certificate). Borrowed: the client takes references.
 */
struct wsman_tls_identity {
	X509 *cert;            /* the client (leaf) certificate */
	EVP_PKEY *key;         /* its private key */
	STACK_OF(X509) *chain; /* sent after it, its issuer first; NULL for none */
};

#define WSMAN_PIN_MAX 48 /* a SHA-384 */

enum wsman_route {
	WSMAN_VIA_APF, /* an APF channel over the LME client (no LMS needed) */
	WSMAN_VIA_LMS, /* LMS's listener on 127.0.0.1, only when it belongs to root */
};

struct wsman_target {
	enum wsman_route route;
	struct apf_session *apf; /* WSMAN_VIA_APF */
	const char *lms_host;    /* WSMAN_VIA_LMS: "127.0.0.1", "localhost" or NULL; nothing else */
	uint16_t port;           /* 16992, or 16993 with TLS */
	bool tls;
	/*
	 * TLS: the CA that AMT's certificate must chain to (the system CAs are not used; the host
	 * name is not checked, as AMT's certificate never names 127.0.0.1). NULL: not verified,
	 * for the TLS that AMT enforces on its local ports, whose bytes stay on this machine.
	 */
	const char *ca_file;
	/*
	 * TLS: AMT's certificate must be the one whose SHA-256 (32 bytes) or SHA-384 (48 bytes)
	 * this is, as StartConfigurationHBased names it; nothing else of it is checked. Overrides
	 * ca_file. pin_len 0: no pin.
	 */
	uint8_t pin[WSMAN_PIN_MAX];
	size_t pin_len;
	const struct wsman_tls_identity *identity; /* TLS: present this client certificate */
	int timeout_ms;          /* per request; <= 0: 60 s */
	/*
	 * WSMAN_VIA_APF: where the client makes its private directory for the bridge's socket
	 * (see wsman_client_new). NULL: /run when it is writable, else $TMPDIR, else /tmp.
	 */
	const char *socket_dir;
};

struct wsman_client;

/*
 * USER and PASS are copied (and wiped on free); PASS never reaches a log or an error text.
 *
 * WSMAN_VIA_APF: the client owns the bridge. wsman_client_new makes a private directory
 * (mkdtemp, mode 0700) SOCKET_DIR/amt-enlist.XXXXXX and starts the session's bridge to PORT
 * there (apf_bridge_listen); wsman_client_free stops the bridge (apf_bridge_stop: the channel
 * in use closes, within the session's receive timeout) and removes the directory. A session has
 * one bridge, so it serves one APF client at a time: a second wsman_client_new on the same
 * session fails (WSMAN_E_INTERNAL) until the first is freed. Free the client before apf_close.
 * Every request is one connection (and so one channel); the Digest challenge costs one more,
 * once per client. A channel AMT refuses fails the request with WSMAN_E_CONNECT and "AMT refused
 * the channel: <reason>".
 */
int wsman_client_new(const struct wsman_target *t, const char *user, const char *pass,
		     struct wsman_client **out, struct wsman_error *err);
void wsman_client_free(struct wsman_client *c);

struct wsman_param {
	const char *name;
	const char *value;
};

/* Envelopes (pure, for tests): a Transfer Get, and a method call with flat parameters. */
xmlDocPtr wsman_envelope_get(const char *resource_uri, unsigned message_id);
/* A Get of one instance, named by a selector (e.g. InstanceID), or of the singleton (NULL). */
xmlDocPtr wsman_envelope_get_instance(const char *resource_uri,
				      const struct wsman_param *selector, unsigned message_id);
xmlDocPtr wsman_envelope_invoke(const char *resource_uri, const char *method,
				const struct wsman_param *params, size_t n_params,
				unsigned message_id);
/* A method call on the instance SELECTOR names (NULL: the singleton, as wsman_envelope_invoke). */
xmlDocPtr wsman_envelope_invoke_instance(const char *resource_uri,
					 const struct wsman_param *selector, const char *method,
					 const struct wsman_param *params, size_t n_params,
					 unsigned message_id);
/* WS-Enumeration: Enumerate RESOURCE; Pull up to MAX_ELEMENTS items with CONTEXT. */
xmlDocPtr wsman_envelope_enumerate(const char *resource_uri, unsigned message_id);
xmlDocPtr wsman_envelope_pull(const char *resource_uri, const char *context,
			      unsigned max_elements, unsigned message_id);
/* A Transfer Put of the singleton instance: <h:CLASS> with PARAMS as its properties. */
xmlDocPtr wsman_envelope_put(const char *resource_uri, const char *class_name,
			     const struct wsman_param *params, size_t n_params,
			     unsigned message_id);

/*
 * Parse a reply (pure, for tests): a SOAP fault becomes WSMAN_E_FAULT with its Reason text (and
 * subcode) in err->msg; otherwise *doc owns the parsed reply.
 */
int wsman_parse_reply(const char *body, size_t len, xmlDocPtr *doc, struct wsman_error *err);

/*
 * The text, trimmed, of the first element named LOCAL_NAME (in any namespace) inside the
 * reply's Body. WSMAN_E_PARSE when there is none, or when the text does not fit CAP.
 */
int wsman_body_text(xmlDocPtr doc, const char *local_name, char *out, size_t cap);
/* The same inside the element PARENT (an enumerated item, say). */
int wsman_node_text(xmlNodePtr parent, const char *local_name, char *out, size_t cap);
/* <ReturnValue> as a number; WSMAN_E_PARSE when absent. */
int wsman_return_value(xmlDocPtr doc, unsigned *rv);

/* Called for each item of an enumeration (an element: <g:CLASS> with its properties). */
typedef void (*wsman_item_fn)(xmlNodePtr item, void *ctx);
/* The EnumerationContext of an EnumerateResponse or PullResponse; WSMAN_E_PARSE without one. */
int wsman_enumeration_context(xmlDocPtr doc, char *out, size_t cap);
/* EACH for every item of a PullResponse; *END: it carries EndOfSequence. */
int wsman_pull_items(xmlDocPtr doc, wsman_item_fn each, void *ctx, bool *end);

/* One request over the client: Get RESOURCE, or invoke METHOD on it. *reply is the caller's. */
int wsman_get(struct wsman_client *c, const char *resource_uri, xmlDocPtr *reply,
	      struct wsman_error *err);
int wsman_get_instance(struct wsman_client *c, const char *resource_uri,
		       const struct wsman_param *selector, xmlDocPtr *reply,
		       struct wsman_error *err);
int wsman_invoke(struct wsman_client *c, const char *resource_uri, const char *method,
		 const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
		 struct wsman_error *err);
int wsman_invoke_instance(struct wsman_client *c, const char *resource_uri,
			  const struct wsman_param *selector, const char *method,
			  const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
			  struct wsman_error *err);
int wsman_put(struct wsman_client *c, const char *resource_uri, const char *class_name,
	      const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
	      struct wsman_error *err);
/*
 * Every instance of RESOURCE: Enumerate, then Pull until EndOfSequence, EACH called for every
 * item. An enumeration that does not end within WSMAN_PULLS_MAX Pulls is WSMAN_E_PARSE.
 */
int wsman_enumerate(struct wsman_client *c, const char *resource_uri, wsman_item_fn each,
		    void *ctx, struct wsman_error *err);

/*
 * LMS safety: true only when the socket listening on 127.0.0.1:PORT belongs to uid 0 (read from
 * /proc/net/tcp; PROC_ROOT is "/proc" unless tests say otherwise).
 */
bool wsman_lms_listener_is_root(const char *proc_root, uint16_t port);
