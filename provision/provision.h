/* SPDX-License-Identifier: Apache-2.0 */
/*
 * provision: what amt-enlist does with AMT and with the provisioning server. It calls mei/ for
 * everything that touches the ME and knows no file descriptor itself.
 *
 * Return convention: 0 on success, a negative enum prov_err otherwise; the message that goes
 * with a failure is written into a caller's struct prov_error (one line, no secrets).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "mei.h"

enum prov_err {
	PROV_OK = 0,
	PROV_E_NO_AMT = -1,        /* no MEI device, or no AMTHI client on this ME */
	PROV_E_AMT_DISABLED = -2,  /* AMT present but not operational */
	PROV_E_ME_UNAVAILABLE = -3, /* ME not ready, not answering, or breaking the protocol */
	PROV_E_ACCESS = -4,        /* not allowed to open the device (not root?) */
	PROV_E_INTERNAL = -5,
	PROV_E_UNKNOWN_CREDENTIALS = -6, /* AMT provisioned with a password we do not hold */
	PROV_E_ACTIVATION = -7,    /* AMT refused or failed the activation */
	PROV_E_NOT_DURABLE = -8,   /* nowhere durable to keep a generated password: refused */
	PROV_E_BAD_INPUT = -9,     /* an operator's file or value is unusable */
	PROV_E_REFUSED = -10,      /* asked for something we will not do (e.g. unprovision ACM) */
	PROV_E_SERVER_REFUSED = -11, /* the provisioning server refused the hand-off (final 4xx) */
	PROV_E_DEADLINE = -12,     /* the hand-off did not succeed before its deadline */
	PROV_E_NO_ADDRESS = -13,   /* AMT has no IPv4 address to hand off */
	PROV_E_UNTRUSTED_ROOT = -14, /* the provisioning certificate's root is not among AMT's
					active hashes (the caller lists them: amt_state.hashes) */
};

struct prov_error {
	int code;        /* enum prov_err */
	int mei;         /* the mei-layer value behind it (mei_strerror), 0 if none */
	char msg[512];
};

struct prov_opts {
	const char *device;     /* "/dev/mei0" or "unix:PATH" */
	const char *sysfs_root; /* "/sys" unless tests say otherwise */
	int ready_ms;
	int recv_ms;
	uint16_t lms_port; /* where LMS listens when it holds the LME client: 0 = 16992/16993 */
};

void prov_opts_default(struct prov_opts *o);

#define PROV_MAX_HASHES AMTHI_MAX_HASHES

struct prov_adapter {
	bool present;                  /* AMT answered for this interface */
	struct amthi_lan_settings lan; /* valid when present */
	char host_ifname[32];          /* the host interface with AMT's MAC, "" if none */
	char host_ipv4[16];            /* its first IPv4, "" if none */
};

/* Everything `info` shows: AMT's state as read in one pass over one AMTHI connection. */
struct amt_state {
	bool sysfs_read;
	struct mei_sysfs sysfs;

	struct amthi_code_versions versions;
	const char *amt_version; /* points into versions, or NULL */
	const char *build;
	unsigned sku;
	char features[128]; /* SKU decoded, e.g. "AMT Pro Corporate" */

	uint8_t uuid[16];
	uint32_t provisioning_state;
	uint32_t control_mode;

	bool state_independence_read; /* the watchdog client answered */
	struct amt_state_independence si;
	const char *operational; /* "yes", "no", "unknown" */
	const char *tls_enforced; /* "yes", "no", "unknown" (the APF session tells for sure) */

	char dns_suffix[256];
	struct amthi_remote_access remote_access;
	char power_policy[256];
	bool power_policy_read;
	struct amthi_mac_addresses macs;
	bool macs_read;

	struct prov_adapter wired;
	struct prov_adapter wireless;

	unsigned hash_count;
	struct amthi_cert_hash hashes[PROV_MAX_HASHES];
};

/*
 * One run's conversation with the ME: each ME client is connected at most once and the
 * connection is kept for the whole run (discovery, activation, confirmation).
 */
struct prov_session;

struct prov_session *prov_session_new(const struct prov_opts *o);
void prov_session_free(struct prov_session *s);
/* Connects made so far to the AMTHI client (1 in a run without firmware resets). */
unsigned prov_session_amthi_connects(const struct prov_session *s);

/*
 * Read AMT's state: sysfs, then every AMTHI command over the session's AMTHI connection, then
 * the watchdog client if it is free (its absence or EBUSY is not an error). Without an AMTHI
 * client the watchdog client decides between "no AMT" and "AMT disabled".
 */
int prov_discover(struct prov_session *s, struct amt_state *st, struct prov_error *err);

/* The SKU bits as words (rpc-go's decoding, by AMT major version). */
void prov_decode_features(const char *amt_version, unsigned sku, char *out, size_t cap);

/* Human words for state values. */
const char *prov_control_mode_name(uint32_t mode);         /* "none", "client", "admin" */
const char *prov_provisioning_state_name(uint32_t state); /* "pre", "in", "post" */

/* The "amt" object of the JSON contract (DESIGN.md); info --json prints it. Caller owns it. */
struct json_object *prov_state_to_json(const struct amt_state *st);

/* ---- Activation (client control mode; admin control mode with a provisioning certificate) ---- */

struct prov_credentials {
	char user[33];
	char password[33]; /* secret: wipe with prov_credentials_wipe */
	const char *source; /* "generated", "state directory", "password file" */
	/* admin control mode: the MEBx password ("" when none is known; secret) */
	char mebx_password[33];
	const char *mebx_source; /* "generated", "state directory", "MEBx password file"; or NULL */
	bool activated_now; /* this run moved AMT from pre-provisioning to CCM or ACM */
	bool upgraded_now;  /* this run moved AMT from client to admin control mode */
	bool tls;           /* WS-Man reached AMT over TLS (16993) */
	bool domain_unchecked; /* ACM: AMT's DNS suffix unknown here; AMT judged the domain */
	/* admin control mode: user consent "off" or "required"; NULL when not looked at */
	const char *user_consent;
	char consent_note[160]; /* why it stays required, "" otherwise; one line, no secret */
	/*
	 * --power-policy always-on: "already" (the ME stayed on in S5 before), "set" (an always-on
	 * package was made current now) or "failed" (power_note says why); NULL when not asked.
	 */
	const char *power_policy;
	char power_note[256];
};

/*
 * The write-ahead hook: make USER/PASSWORD (and the MEBx password, in admin control mode)
 * durable off the machine before AMT is set to them. Return 0 when a target accepted them; a
 * negative prov_err (with ERR filled) stops the activation with AMT untouched.
 */
typedef int (*prov_write_ahead_fn)(void *ctx, const struct amt_state *st,
				   const struct prov_credentials *cred, struct prov_error *err);

struct prov_activate_opts {
	const char *state_dir;     /* default /run/amt-enlist */
	const char *password_file; /* the operator's admin password, or NULL to generate one */
	bool reprovision;          /* reset client control mode whose password we do not hold */
	int settle_ms;             /* bound for AMT to settle after unprovisioning */
	int confirm_ms;            /* bound to see CCM and "post" after Setup */
	int lock_wait_ms;          /* bound to wait for another run holding the state directory */
	const char *amt_ca_file;   /* TLS to AMT: the CA its certificate must chain to, or NULL */
	prov_write_ahead_fn write_ahead;
	void *write_ahead_ctx;
	bool write_ahead_keeps_mebx; /* the hook's targets also keep the MEBx password */

	/* admin control mode */
	bool acm;
	const char *provisioning_cert;               /* PKCS#12: key, leaf, chain to the root */
	const char *provisioning_cert_password_file; /* its password, first line */
	const char *provisioning_cert_password;      /* or the password itself (the environment) */
	const char *mebx_password_file; /* the operator's MEBx password, or NULL to generate one */
	const char *dns_suffix;         /* AMT's DNS suffix as the operator knows it, or NULL */
	bool keep_user_consent;         /* leave user consent required */

	bool power_always_on; /* --power-policy always-on: see prov_credentials.power_policy */
};

void prov_activate_opts_default(struct prov_activate_opts *o);

/*
 * Make sure AMT is activated with credentials this run holds. Already activated with a password
 * we hold (state directory or password file, checked with an authenticated WS-Man call): no
 * change. Pre-provisioning: choose the password (password file, a pending one from the state
 * directory, or a new one), make it durable first (state directory, write-ahead hook), then
 * IPS_HostBasedSetupService.Setup (+ CommitChanges on TLS-enforcing firmware) and confirm CCM and
 * "post" over AMTHI. ST is refreshed to AMT's state at the end.
 *
 * With o->acm, admin control mode instead: the provisioning certificate is loaded and checked
 * first (its root among AMT's active hashes, its domain against AMT's DNS suffix), the admin and
 * MEBx passwords are made durable together, then AdminSetup with the certificate chain and a
 * signed nonce (StartConfigurationHBased and mutual TLS on firmware that enforces TLS locally;
 * StopConfiguration on any failure), or UpgradeClientToAdmin from client control mode with a
 * password we hold; then user consent is switched off unless o->keep_user_consent.
 *
 * With o->power_always_on, once AMT holds our password: an always-on power package when the
 * current one turns the ME off in S5 (out->power_policy says how it went; it never fails the
 * activation).
 */
int prov_activate(struct prov_session *s, const struct prov_activate_opts *o, struct amt_state *st,
		  struct prov_credentials *out, struct prov_error *err);

/* Local unprovision of client control mode (admin control mode is refused). */
int prov_deactivate(struct prov_session *s, const struct prov_activate_opts *o,
		    struct amt_state *st, struct prov_error *err);

void prov_credentials_wipe(struct prov_credentials *c);

/* True when the power policy keeps the ME reachable with the host off (S5). */
bool prov_power_policy_covers_s5(const char *policy);

/* ---- Enlistment: discover, activate when needed, hand off ---- */

struct prov_handoff_opts {
	const char *server_url;      /* --server: JSON POST */
	const char *cacert;          /* CA bundle for the server's certificate */
	bool insecure;               /* no TLS verification of the server (only when asked) */
	const char *bmc_config_path; /* --bmc-config: MAAS's YAML hand-off file */
	bool maas;                   /* --maas: MAAS metadata signal */
	const char *maas_config;     /* cloud-init's MAAS datasource file */
	const char *cmdline_path;    /* /proc/cmdline (BOOTIF=, cloud-config-url=) */
	int deadline_ms;             /* for the whole hand-off */
	int address_wait_ms;         /* how long to wait for AMT's IPv4 */
	bool report_unknown;         /* post "credentials": "unknown" to --server */
};

void prov_handoff_opts_default(struct prov_handoff_opts *o);

enum prov_target { PROV_TARGET_SERVER, PROV_TARGET_MAAS, PROV_TARGET_BMC_CONFIG, PROV_TARGETS };

struct prov_target_result {
	bool requested;
	int code;       /* 0 or a prov_err */
	char msg[256];  /* what happened, one line, no secret */
};

struct prov_enlist_result {
	struct prov_credentials cred;
	char power_address[64];
	const char *address_source; /* "amt" or "host" */
	char port[6];
	struct prov_target_result target[PROV_TARGETS];
};

/*
 * The whole job: discover; activate when AMT is unprovisioned, with the write-ahead rule (the
 * generated password goes to --server as a "pending" document and to MAAS as a WORKING signal
 * before Setup, and a target that refuses stops the activation); wait for AMT's address; hand
 * the final document to every requested target. Returns 0 only when every requested hand-off
 * succeeded, otherwise the first failure's code (each target's outcome is in RES).
 */
int prov_enlist(struct prov_session *s, const struct prov_activate_opts *ao,
		const struct prov_handoff_opts *ho, struct amt_state *st,
		struct prov_enlist_result *res, struct prov_error *err);

void prov_enlist_result_wipe(struct prov_enlist_result *r);

/* The JSON document of DESIGN.md's contract (schema "amt-enlist/1"). Caller owns it. */
struct power_params;
struct host_facts;
/*
 * MEBX_PASSWORD (admin control mode; NULL or "" for none) goes at the top level as
 * "mebx_password", never into power_parameters.
 */
struct json_object *prov_document(const struct amt_state *st, const struct host_facts *h,
				  const struct power_params *p, const char *address_source,
				  const char *state, bool credentials_unknown,
				  const char *mebx_password);
