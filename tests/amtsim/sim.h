/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the emulator core, shared by sim.c (machine, connections, faults), profile.c
 * (loading), machine.c (the provisioning state and its file), amthi_fw.c (the AMTHI firmware
 * side), watchdog_fw.c, wsman_fw.c (the WS-Man server behind APF channels) and stats.c. Not for
 * front ends: they use amtsim.h only.
 *
 * Locks, in the order they may be taken: m->lock (the machine), then an APF session's own lock
 * (apf_fw.c), then conn->lock (a queue). The WS-Man server's lock (wsman_fw.c) is taken only
 * under an APF session's lock (open_service) or alone, never with m->lock held.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "amtsim.h"

struct apf_fw;
struct sim_wsman;
struct sim_acm;

#define SIM_MAX_VERSIONS   50u /* rpc-go's table holds 50 */
#define SIM_MAX_HASHES     33u
#define SIM_MAX_SCHEMES    8u  /* AMT_SystemPowerScheme instances */
#define SIM_MAX_FW_VER     3u
#define SIM_MAX_FW_STATUS  6u
#define SIM_MAX_FAULTS     64u
#define SIM_MAX_COMMANDS   64u /* distinct AMTHI command codes counted */
#define SIM_NAME_MAX       255u
#define SIM_FAULT_SPEC_MAX 64u
#define SIM_REALM_MAX      127u
#define SIM_HA1_HEX        32u /* MD5 in lower-case hex */
#define SIM_MAX_SOAP_FAULTS 8u
#define SIM_METHOD_MAX     63u
#define SIM_MAX_METHODS    32u /* distinct WS-Man methods counted */

struct sim_client_cfg {
	bool present;
	bool busy; /* connect always answers EBUSY: held by mei_wdt, LMS, ... */
	uint32_t max_msg_length;
	uint8_t protocol_version;
};

struct sim_lan {
	bool present;
	bool enabled;
	uint32_t ipv4; /* host order: 192.0.2.10 == 0xC000020A */
	bool dhcp;
	uint8_t dhcp_mode; /* 0 none (static), 1 active, 2 passive */
	uint8_t link;      /* 1 up, 0 down */
	uint8_t mac[6];
	uint32_t lease_ipv4;     /* with DHCP and no address: what AMT gets once operational */
	uint32_t lease_after_ms; /* ... this long after it became operational */
};

struct sim_cert_hash {
	uint32_t handle;
	bool is_default;
	bool is_active;
	uint8_t algorithm;
	uint8_t hash[64];
	size_t hash_len;
	char name[SIM_NAME_MAX + 1];
};

/* What the firmware does to its network stack after CommitChanges (TLS-enforcing firmware). */
enum sim_commit_restart {
	SIM_COMMIT_KEEP,           /* nothing: the connection closes as any other */
	SIM_COMMIT_RESTART_AFTER,  /* the reply goes out, then the LME sessions are reset */
	SIM_COMMIT_RESTART_BEFORE, /* the LME sessions are reset before the reply is sent */
};

/* Unprovision's SUCCESS reply: the status alone, or the status and a u32 (sources disagree). */
enum sim_unprovision_reply {
	SIM_UNPROVISION_STATUS,
	SIM_UNPROVISION_STATE,
};

/*
 * A machine as loaded from its profile. The emulator keeps one copy per machine and changes it
 * as firmware would (operational state, control mode, provisioning state).
 */
struct sim_profile {
	char description[512];
	struct sim_client_cfg client[AMTSIM_CLIENT_COUNT];
	uint8_t watchdog_state; /* IsChangeToAMTEnabled reply byte */

	/* sysfs */
	unsigned fw_ver_count;
	unsigned fw_ver[SIM_MAX_FW_VER][5]; /* platform, major, minor, hotfix, build */
	unsigned fw_status_count;
	uint32_t fw_status[SIM_MAX_FW_STATUS];
	unsigned hbm_major, hbm_minor;
	char kind[32];

	/* AMT (valid when has_amt) */
	bool has_amt;
	bool operational; /* false: AMTHI and LME answer ENOTTY, as with AMT disabled in MEBx */
	char bios_version[65];
	unsigned version_count;
	struct {
		char description[21];
		char version[21];
	} versions[SIM_MAX_VERSIONS];
	uint32_t provisioning_state;
	uint32_t control_mode;
	uint32_t provisioning_mode;
	uint32_t legacy_mode;
	uint8_t uuid[16]; /* wire order */
	uint8_t mac_dedicated[6];
	uint8_t mac_host[6];
	struct sim_lan lan[2];       /* 0 wired, 1 wireless */
	uint32_t no_wireless_status; /* status for index 1 without a wireless adapter; 0: zeros */
	char dns_suffix[SIM_NAME_MAX + 1];
	uint32_t ras_network_status, ras_remote_status, ras_trigger;
	char ras_mps_hostname[SIM_NAME_MAX + 1];
	char power_policy[SIM_NAME_MAX + 1]; /* the current package (SetPowerScheme changes it) */
	unsigned power_scheme_count;          /* the packages offered (AMT_SystemPowerScheme) */
	char power_schemes[SIM_MAX_SCHEMES][SIM_NAME_MAX + 1];
	unsigned hash_count;
	struct sim_cert_hash hashes[SIM_MAX_HASHES];
	char lsa_username[33];
	char lsa_password[33];
	unsigned lsa_trailing_pad; /* 0 or 2 bytes after user[33] pass[33] (sources disagree) */

	/* LME (APF): clients.lme */
	bool lme_session_ends_after_close; /* end the APF session when a channel is closed */
	bool lme_version_first;            /* PROTOCOL_VERSION is sent before the host's */

	/* WS-Man and provisioning */
	bool tls_enforced; /* TLS on local ports: amt.tls_enforced, else watchdog bit 6 */
	bool network_tls;  /* TLS on AMT's network interface (AMT_TLSSettingData, 802.3) */
	char digest_realm[SIM_REALM_MAX + 1];
	char admin_ha1[SIM_HA1_HEX + 1]; /* from amt.admin_password; "" when none */
	uint32_t settle_ms;              /* "in" after Unprovision, before "pre" */
	uint32_t unprovision_reply;      /* enum sim_unprovision_reply */
	uint32_t commit_restart;         /* enum sim_commit_restart */
	char tls_cert[4096];             /* PEM files (paths), "" when not in the profile */
	char tls_key[4096];
	char dhcp_domain[SIM_NAME_MAX + 1]; /* DHCP option 15, "" when none */

	unsigned fault_count;
	char faults[SIM_MAX_FAULTS][SIM_FAULT_SPEC_MAX];
};

/* Fill P from the JSON file at PATH. 0, or -1 with a one-line ERR naming the key. */
int sim_profile_load(const char *path, struct sim_profile *p, char *err, size_t errlen);

enum sim_fault_kind {
	SIM_FAULT_RESET,
	SIM_FAULT_NO_REPLY,
	SIM_FAULT_TRUNCATE,
	SIM_FAULT_OVERSIZE,
	SIM_FAULT_HUGE,
	SIM_FAULT_WRONG_ECHO,
	SIM_FAULT_LME_DISCONNECT, /* counts authenticated WS-Man requests, not AMTHI ones */
};

struct sim_fault {
	enum sim_fault_kind kind;
	unsigned at; /* the request number it fires on (1-based) */
};

/* One message queued for the host, read in parts when the reader's buffer is short. */
struct sim_msg {
	struct sim_msg *next;
	size_t len;
	size_t off;
	uint8_t data[];
};

struct amtsim_conn {
	struct amtsim *m;
	struct amtsim_conn *next; /* in m->conns, under m->lock */
	enum amtsim_client client;
	uint32_t max_msg_length;

	/*
	 * Replies are queued here by whichever thread produces them (today the sender's, inside
	 * amtsim_send; later an APF handler pushing on its own), and efd polls readable while the
	 * queue is not empty or the connection was reset. Guarded by lock.
	 */
	pthread_mutex_t lock;
	struct sim_msg *head, *tail;
	bool reset;
	bool ending;    /* no more messages: what is queued is delivered, then it is reset */
	bool signalled; /* efd's counter is non-zero */
	int efd;

	/*
	 * LME: the APF session the firmware plays on this connection (NULL once it ended). Set
	 * and cleared under m->lock; used without it only by the connection's own thread.
	 */
	struct apf_fw *apf;
};

struct sim_command_count {
	uint32_t code;
	unsigned count;
};

struct sim_method_count {
	char name[SIM_METHOD_MAX + 1];
	unsigned count;
};

struct amtsim {
	pthread_mutex_t lock; /* everything below; taken before any conn->lock */
	struct sim_profile p;
	struct timespec t0;
	struct amtsim_conn *conns;

	/* provisioning state beyond m->p's control_mode and provisioning_state (machine.c) */
	char admin_ha1[SIM_HA1_HEX + 1]; /* "" when no admin password is set */
	bool settling;                   /* "in" after Unprovision, until settle_at */
	struct timespec settle_at;       /* CLOCK_MONOTONIC */
	char *state_path;                /* --state FILE, or NULL */
	char config_nonce[32];           /* IPS_HostBasedSetupService.ConfigurationNonce (base64) */
	char wrong_realm_text[SIM_REALM_MAX + 16]; /* the challenge's realm under wrong-realm */
	struct timespec operational_since;         /* CLOCK_MONOTONIC: AMT came up (DHCP lease) */

	/* TLS material for the WS-Man server on TLS-enforcing machines (PEM text) */
	char *tls_cert_pem;
	char *tls_key_pem;
	/* --trust-ca: the provisioning root(s) the TLS server asks client certificates against */
	char *trust_ca_pem;

	/* admin control mode (acm_fw.c); the chain and nonces live in acm */
	struct sim_acm *acm;
	bool hbased;                  /* StartConfigurationHBased: provisioning by mutual TLS */
	char mebx_sha256[65];         /* SHA-256 of the MEBx password in hex, "" when unset */
	uint32_t opt_in_required;     /* IPS_OptInService.OptInRequired */
	bool stale_nonce;             /* fault: the nonce changes once before it is checked */

	/* the WS-Man server (wsman_fw.c); its own lock */
	struct sim_wsman *wsman;
	/* commit_restart "after": the host's next CHANNEL_CLOSE on LME resets the sessions */
	bool restart_lme_on_close;

	/* faults */
	unsigned busy_left;      /* AMTHI connects still to refuse with EBUSY */
	unsigned not_ready_upto; /* AMTHI requests 1..N answer NOT_READY */
	unsigned latency_ms;
	unsigned ready_after_ms;
	unsigned fault_count;
	struct sim_fault faults[SIM_MAX_FAULTS];
	uint32_t channel_refused;       /* CHANNEL_OPEN_FAILURE reason for every open, or 0 */
	bool session_ends_after_close;  /* on top of the profile's */
	bool wrong_realm;               /* the 401 challenge's realm differs (pre-provisioning) */
	bool reset_before_setup;        /* one-shot */
	bool reset_during_setup;        /* one-shot */
	bool setup_return_set;
	uint32_t setup_return;
	unsigned soap_fault_count;
	char soap_faults[SIM_MAX_SOAP_FAULTS][SIM_METHOD_MAX + 1];
	unsigned method_return_count; /* method-return=METHOD:N */
	struct {
		char method[SIM_METHOD_MAX + 1];
		unsigned rv;
	} method_returns[SIM_MAX_SOAP_FAULTS];
	unsigned wsman_latency_ms;

	/* counters */
	unsigned amthi_requests;
	struct amtsim_stats stats;
	unsigned command_kinds;
	struct sim_command_count commands[SIM_MAX_COMMANDS];
	unsigned method_kinds;
	struct sim_method_count methods[SIM_MAX_METHODS];

	/* amtsim_sysfs_attr's answers */
	char attr_fw_ver[128];
	char attr_fw_status[128];
	char attr_hbm_ver[32];
	char attr_kind[40];
	char attr_dev_state[32];
};

/* Queue a message for the host on C (any thread). 0 or ENOMEM. Dropped once C is ending. */
int sim_conn_push(struct amtsim_conn *c, const uint8_t *buf, size_t len);

/* Drop every connection of CLIENT (AMTSIM_CLIENT_COUNT: all): a firmware reset. m->lock held. */
void sim_reset_conns(struct amtsim *m, enum amtsim_client client);

/*
 * The firmware ends every LME session with DISCONNECT (REASON): the message is delivered, then
 * the connection is reset, and nothing else is sent. m->lock held.
 */
void sim_disconnect_lme(struct amtsim *m, uint32_t reason);

/* Take the one-shot fault of KIND armed for request N, if any. m->lock held. */
bool sim_take_fault(struct amtsim *m, enum sim_fault_kind kind, unsigned n);

void sim_sleep_ms(unsigned ms);

/* ---- machine.c: provisioning state, shared by AMTHI and WS-Man; m->lock held ---- */

/* Let time pass: "in" after Unprovision becomes "pre" once the settle time is over. */
void sim_machine_refresh(struct amtsim *m);
/* Host-based setup to client control mode with the admin password's HA1 (lower-case hex). */
void sim_machine_setup(struct amtsim *m, const char *ha1);
/* AdminSetup: admin control mode, "post", with the admin password's HA1. */
void sim_machine_admin_setup(struct amtsim *m, const char *ha1);
/* UpgradeClientToAdmin: client control mode becomes admin control mode. */
void sim_machine_upgrade(struct amtsim *m);
/* StartConfigurationHBased: "in", provisioning by mutual TLS. */
void sim_machine_start_hbased(struct amtsim *m);
/* StopConfiguration: "in" (not yet committed) back to "pre"; everything set since, forgotten. */
void sim_machine_stop_configuration(struct amtsim *m);
/* The admin password (SetAdminAclEntryEx), the MEBx password (SetMEBxPassword). */
void sim_machine_set_admin(struct amtsim *m, const char *ha1);
void sim_machine_set_mebx(struct amtsim *m, const char *password);
/*
 * CommitChanges: "in" becomes "post" (and, in host-based configuration with TLS, admin control
 * mode). Returns the ReturnValue: 2057 (DATA_MISSING) when that configuration lacks the admin or
 * the MEBx password.
 */
unsigned sim_machine_commit(struct amtsim *m);
/* Unprovision (client or admin control mode): none, "in" for the settle time, then "pre". */
void sim_machine_unprovision(struct amtsim *m);
/* AMT enabled or disabled (SetAmtOperationalState). */
void sim_machine_set_operational(struct amtsim *m, bool on);
/* The IPv4 address LAN reports now: its lease once AMT has been up long enough. */
uint32_t sim_lan_ipv4(const struct amtsim *m, const struct sim_lan *lan);
/* The realm the 401 challenge names now (the wrong-realm fault bends it). */
const char *sim_challenge_realm(const struct amtsim *m);
/* Write --state FILE, if any (atomically); a failure is reported on stderr. */
void sim_machine_save(struct amtsim *m);
/* Read FILE into the machine. 0, or -1 with ERR set; a missing file is not an error. */
int sim_machine_load(struct amtsim *m, const char *path, char *err, size_t errlen);
/* Lower-case hex MD5 of "USER:REALM:PASSWORD" into OUT[33]. */
void sim_digest_ha1(const char *user, const char *realm, const char *password, char out[33]);
/* A fresh ConfigurationNonce (20 random bytes, base64) into OUT (at least 29 bytes). */
void sim_config_nonce(char *out, size_t cap);

/* ---- acm_fw.c: admin control mode (OpenSSL); m->lock held unless said ---- */

#define SIM_OPT_IN_ALL     0xFFFFFFFFu
#define SIM_RV_CERT_VERIFY 4u /* AddNextCertInChain: CertVerifyFailed */
#define SIM_RV_AUTH_FAILED 5u /* AdminSetup, UpgradeClientToAdmin: AuthFailed */

int sim_acm_init(struct amtsim *m);
void sim_acm_free(struct amtsim *m);
/* AddNextCertInChain: its ReturnValue. The chain is checked when its root arrives. */
unsigned sim_acm_add_cert(struct amtsim *m, const char *b64, bool leaf, bool root);
/*
 * AdminSetup and UpgradeClientToAdmin: the chain complete, McNonce (20 bytes, never seen
 * before), SigningAlgorithm 2, and an RSA PKCS#1 v1.5 SHA-256 signature by the leaf's key over
 * the current ConfigurationNonce and McNonce. Its ReturnValue.
 */
unsigned sim_acm_check_signature(struct amtsim *m, const char *mc_nonce, const char *algorithm,
				 const char *signature);
/* A fresh ConfigurationNonce: every Get gives one, and a used one is gone. */
void sim_acm_new_nonce(struct amtsim *m);
/*
 * StartConfigurationHBased: the request's payload (390 bytes). An AMTHI status; on SUCCESS the
 * algorithm and hash (64 bytes, zero-padded) of AMT's TLS certificate.
 */
uint32_t sim_acm_start_hbased(struct amtsim *m, const uint8_t *payload, size_t len,
			      uint8_t *alg, uint8_t hash[64]);
/*
 * The client certificates (DER, leaf first) of a TLS connection during host-based configuration:
 * the leaf StartConfigurationHBased named, chaining to an active hash, fit for provisioning,
 * under the DNS suffix. m->lock NOT held.
 */
bool sim_acm_client_ok(struct amtsim *m, const uint8_t *const *der, const size_t *len,
		       unsigned n);
/* AMT's MEBx password rules: 8-32 of ASCII 32-126 but : , " with digit, upper, lower, symbol. */
bool sim_mebx_password_ok(const char *pw);

/* Add the counters of the APF sessions still running to OUT. m->lock held. */
void sim_live_apf_stats(struct amtsim *m, struct amtsim_stats *out);

/* ---- wsman_fw.c: the WS-Man HTTP server ---- */

/* Set up m->wsman (no daemon runs until a channel or the LMS stand-in needs one). 0 or -1. */
int sim_wsman_init(struct amtsim *m);

/*
 * The service behind an APF channel to PORT: a connected stream socket whose other end the
 * WS-Man server serves (TLS on TLS-enforcing machines), or -1 (refused). Called from inside an
 * APF session (its lock held): takes neither m->lock nor a connection's.
 */
int sim_wsman_open_channel(struct amtsim *m, uint16_t port);
/* The loopback LMS stand-in on 127.0.0.1:PORT (0: any); the port bound in *BOUND. */
int sim_wsman_serve_lms(struct amtsim *m, uint16_t port, uint16_t *bound, char *err,
			size_t errlen);
/* Stop every daemon (their threads are joined). m->lock not held. */
void sim_wsman_stop(struct amtsim *m);
/* Count an authenticated request for METHOD. m->lock held. */
void sim_count_method(struct amtsim *m, const char *method);

/*
 * The AMTHI firmware: answer one request into OUT (the reply before faults are applied).
 * m->lock held. Returns the reply length, 0 when OUT is too small.
 */
size_t sim_amthi_answer(struct amtsim *m, unsigned request_no, const uint8_t *buf, size_t len,
			uint8_t *out, size_t cap);

/* The AMTHI command a request carries (0 when it is shorter than the field). */
uint32_t sim_amthi_request_command(const uint8_t *req, size_t len);

/* The name of an AMTHI command code, or NULL when the emulator does not know it. */
const char *sim_amthi_command_name(uint32_t code);

/* The watchdog client: answer one message into OUT; 0 when it gets no reply. m->lock held. */
size_t sim_watchdog_answer(struct amtsim *m, const uint8_t *req, size_t len, uint8_t *out,
			   size_t cap);

const char *sim_client_name(enum amtsim_client client);
