/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amtsim: an emulator of the Intel ME firmware as seen from the host, for tests on machines
 * without AMT. The core here is transport-free and thread-safe; front ends serve it:
 *   - in-process (unit tests call amtsim_connect/amtsim_send/amtsim_recv directly);
 *   - "listen": a Unix SOCK_SEQPACKET socket, the agent's "unix:PATH" device (see the wire
 *     convention below);
 *   - "run": a umockdev testbed whose /dev/mei0 and sysfs tree are served by the core, for any
 *     unmodified MEI client.
 *
 * Besides AMTHI and the watchdog client, the core plays LME: every LME connection is an APF
 * session (apf_fw.c) whose channels to AMT's WS-Man port (16992, or 16993 with TLS on TLS-
 * enforcing machines) are served by an HTTP server (libmicrohttpd, wsman_fw.c) with Digest
 * auth and the WS-Man methods of activation. Setup, CommitChanges and Unprovision change the
 * machine as AMTHI sees it; --state keeps that across emulator processes.
 *
 * Unix socket convention (one socket connection == one MEI client connection, like one open fd
 * of /dev/mei0): the client's first message is the 16-byte client GUID (wire order); the server
 * answers one 12-byte message: u32le errno (0 on success; ENOTTY, EBUSY, ENODEV, ...),
 * u32le max_msg_length, u8 protocol_version, 3 reserved zero bytes, and closes the socket if
 * errno != 0. After that, every SEQPACKET message is one MEI message. A firmware reset is the
 * server closing the socket (the client then sees end of file).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMTSIM_UNIX_CONNECT_REPLY_LEN 12u

enum amtsim_client {
	AMTSIM_CLIENT_AMTHI,
	AMTSIM_CLIENT_LME,
	AMTSIM_CLIENT_WATCHDOG,
	AMTSIM_CLIENT_COUNT,
};

struct amtsim;      /* one emulated machine */
struct amtsim_conn; /* one host connection to one of its ME clients */

/* Load a machine profile (JSON, tests/amtsim/profiles/). On failure NULL and a one-line ERR. */
struct amtsim *amtsim_new(const char *profile_path, char *err, size_t errlen);
/* Every connection must have been closed with amtsim_disconnect first. */
void amtsim_free(struct amtsim *m);

/*
 * Switch on a fault, e.g. "busy=3", "reset@2", "no-reply@1", "truncate@4", "oversize@1",
 * "huge@1", "wrong-echo@3", "not-ready=2", "latency=20", "ready-after=1500". "@N" means the
 * N-th request to the AMTHI client (1-based, counted over the machine's life); faults fire once.
 * The same words are accepted in a profile's "faults" array. Returns 0, or -1 with ERR set.
 * reset@N is a firmware reset: every open connection of the machine (all clients) is reset.
 *
 * LME and WS-Man (WORD=VALUE are settings for the machine's life; WORD@N and the reset words
 * fire once):
 *   channel-refused[=REASON]   every CHANNEL_OPEN fails (reason 2, connect failed, by default)
 *   session-ends-after-close   the APF session ends once a channel is closed (as rpc-go saw)
 *   lme-disconnect@N           the N-th authenticated WS-Man request is never answered: every
 *                              LME session gets DISCONNECT (connection lost) instead
 *   reset-before-setup         a firmware reset when Setup arrives, before it is applied
 *   reset-during-setup         Setup is applied, then a firmware reset before the reply
 *   setup-return=N             Setup answers ReturnValue N and changes nothing
 *   soap-fault=METHOD          METHOD ("Setup", "Get", "CommitChanges", ...) answers a SOAP fault
 *   wrong-realm                in pre-provisioning the 401 challenge names a realm other than
 *                              AMT_GeneralSettings.DigestRealm
 *   wsman-latency=MS           every WS-Man reply is held back MS milliseconds
 *   settle=MS                  "in" lasts MS after Unprovision (profile's amt.settle_ms)
 *   commit-restart=after|before|none   CommitChanges restarts AMT's network stack: the LME
 *                              sessions are reset after the reply went out, before it is sent,
 *                              or not at all (profile's amt.commit_restart)
 *   dns-suffix=SUFFIX          the PKI DNS suffix set in MEBx (GetDnsSuffix answers it)
 *   dhcp-domain=DOMAIN         the domain DHCP gave AMT (profile's amt.dhcp_domain)
 *   stale-nonce                the ConfigurationNonce changes once between the host's Get and
 *                              its AdminSetup/UpgradeClientToAdmin (another tool asked for one)
 *   method-return=METHOD:N     METHOD ("SetMEBxPassword", "CommitChanges", ...) answers
 *                              ReturnValue N and changes nothing
 */
int amtsim_fault(struct amtsim *m, const char *spec, char *err, size_t errlen);

/*
 * The TLS certificate (chain) and key, PEM files, of AMT's WS-Man server on machines that
 * enforce TLS on local ports. 0, or -1 with ERR set (unreadable file).
 */
int amtsim_set_tls(struct amtsim *m, const char *cert_file, const char *key_file, char *err,
		   size_t errlen);

/*
 * Trust the provisioning root CA in PEM_FILE: its SHA-256 becomes an active certificate hash
 * ("amtsim trusted CA"), and the TLS server asks client certificates (mutual TLS during
 * host-based configuration). 0, or -1 with ERR set.
 */
int amtsim_trust_ca(struct amtsim *m, const char *pem_file, char *err, size_t errlen);

/* True when the machine enforces TLS on local ports (WS-Man on 16993 only). */
bool amtsim_tls_enforced(struct amtsim *m);

/*
 * Ready to serve? On a TLS-enforcing machine with an LME client, the TLS material must be
 * there (amtsim_set_tls or the profile's amt.tls_cert/amt.tls_key). 0, or -1 with ERR set.
 */
int amtsim_check_tls(struct amtsim *m, char *err, size_t errlen);

/*
 * Keep the machine's control mode, provisioning state, admin password (HA1) and operational
 * state in PATH: read it now when it exists (it overrides the profile), and write it atomically
 * after every change. 0, or -1 with ERR set.
 */
int amtsim_set_state_file(struct amtsim *m, const char *path, char *err, size_t errlen);

/*
 * The loopback LMS stand-in: the same WS-Man server on 127.0.0.1:PORT (TLS on TLS-enforcing
 * machines), as LMS would serve it. PORT 0 takes any free port; the port is in *BOUND (may be
 * NULL). Stopped by amtsim_free. 0, or -1 with ERR set.
 */
int amtsim_serve_lms(struct amtsim *m, uint16_t port, uint16_t *bound, char *err, size_t errlen);

/* The machine as AMTHI would report it, and whether an admin password is set. */
struct amtsim_machine {
	uint32_t control_mode;       /* 0 none, 1 CCM, 2 ACM */
	uint32_t provisioning_state; /* 0 pre, 1 in, 2 post */
	bool operational;
	bool admin_set;
	char admin_ha1[33]; /* lower-case hex MD5("admin:REALM:PASSWORD"), "" when not set */
	char digest_realm[128];
	char mebx_sha256[65];     /* SHA-256 of the MEBx password in hex, "" when not set */
	uint32_t opt_in_required; /* user consent: 0 none, 0xFFFFFFFF all */
	bool configuring;         /* StartConfigurationHBased, not yet committed or stopped */
};
void amtsim_get_machine(struct amtsim *m, struct amtsim_machine *out);

/*
 * sysfs attributes of the emulated mei0, as the kernel prints them: "fw_ver", "fw_status",
 * "hbm_ver", "kind", "dev_state" (no trailing newline; INITIALIZING until ready-after has
 * passed since amtsim_new, then ENABLED). Returns a pointer valid until the next call for the
 * same attribute, or NULL for an unknown one.
 */
const char *amtsim_sysfs_attr(struct amtsim *m, const char *attr);

/*
 * Connect to the client with GUID. Returns 0, or a positive errno as the kernel's ioctl would:
 * ENOTTY (no such client on this machine), EBUSY (held elsewhere, or the busy fault), ENODEV
 * (ME not ready yet).
 */
int amtsim_connect(struct amtsim *m, const uint8_t guid[16], struct amtsim_conn **out,
		   uint32_t *max_msg_length, uint8_t *protocol_version);
void amtsim_disconnect(struct amtsim_conn *c);
enum amtsim_client amtsim_conn_client(const struct amtsim_conn *c);

/*
 * One message from the host. Returns 0, EFBIG (longer than max_msg_length), or ENODEV (the
 * connection was reset by a firmware reset). The reply, if any, is queued for amtsim_recv; the
 * per-message latency is spent inside this call.
 */
int amtsim_send(struct amtsim_conn *c, const uint8_t *buf, size_t len);

/*
 * Take the next queued message for the host. Returns 0 with *len set, EAGAIN when nothing is
 * queued, ENODEV once the connection was reset. A message longer than CAP is returned in parts,
 * the rest on the next call (as the kernel's read does); *more tells whether bytes remain.
 */
int amtsim_recv(struct amtsim_conn *c, uint8_t *buf, size_t cap, size_t *len, bool *more);

/* A descriptor that polls readable while a message is queued or the connection was reset. */
int amtsim_conn_fd(const struct amtsim_conn *c);

/* Counters, for tests and benchmarks. */
struct amtsim_stats {
	unsigned connects[AMTSIM_CLIENT_COUNT]; /* successful connects */
	unsigned refused[AMTSIM_CLIENT_COUNT];  /* connects answered with an errno */
	unsigned messages[AMTSIM_CLIENT_COUNT]; /* messages from the host */
	unsigned long firmware_us;              /* time the emulated firmware spent (latency) */

	/* APF over LME, summed over the sessions (live ones included) */
	unsigned apf_handshakes;       /* sessions whose WS-Man port forward was acknowledged */
	unsigned apf_channels;         /* channels opened */
	unsigned apf_channels_refused; /* CHANNEL_OPEN_FAILURE sent */
	unsigned apf_protocol_errors;  /* host messages that broke APF (DISCONNECT sent) */
	unsigned apf_disconnects;      /* sessions the firmware ended with DISCONNECT by a fault */

	/* WS-Man */
	unsigned wsman_requests;      /* HTTP requests answered or dropped */
	unsigned wsman_authenticated; /* requests that passed Digest auth (lme-disconnect@N) */
	unsigned wsman_unauthorized;  /* 401 challenges */
	unsigned wsman_faults;        /* SOAP faults */
};
void amtsim_get_stats(struct amtsim *m, struct amtsim_stats *out);

/* Count of requests with this AMTHI command code seen so far. */
unsigned amtsim_command_count(struct amtsim *m, uint32_t command);

/* Count of authenticated WS-Man requests for METHOD ("Get", "Setup", ...) so far. */
unsigned amtsim_wsman_count(struct amtsim *m, const char *method);

/* Write the counters as JSON to PATH, atomically (temp file + rename). 0 or -1. */
int amtsim_write_stats(struct amtsim *m, const char *path);

/* Front ends (main.c parses the command line and calls one of these). */
int amtsim_serve_unix(struct amtsim *m, const char *path, const char *stats_path);
int amtsim_run_umockdev(struct amtsim *m, char *const argv[], const char *stats_path);

/*
 * The Unix socket front end without the signal handling, for tests: serve PATH from a thread
 * until amtsim_unix_server_stop (which shuts open connections down and joins every thread).
 */
struct amtsim_unix_server;
int amtsim_unix_server_start(struct amtsim *m, const char *path, const char *stats_path,
			     struct amtsim_unix_server **out);
void amtsim_unix_server_stop(struct amtsim_unix_server *u);
