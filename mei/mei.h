/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mei: amt-enlist's conversation with the Intel Management Engine.
 *
 * Three parts behind this one header:
 *   - the device transport: one connection to one ME client (AMTHI, LME, watchdog) over the
 *     kernel character device (/dev/mei0) or "unix:PATH" (a SOCK_SEQPACKET socket served by the
 *     project's firmware emulator); errno is mapped to enum mei_err;
 *   - the AMTHI (PTHI) codec and its request/response calls, plus the watchdog client's
 *     state-independence query;
 *   - sysfs: fw_ver, fw_status, dev_state.
 *
 * Return convention of every int function here: 0 success, a negative enum mei_err on a
 * transport or protocol failure, and (AMTHI calls only) a positive AMTHI status code when the
 * firmware answered with a status other than SUCCESS. mei_strerror() names all of them.
 * Nothing here knows about HTTP, JSON or MAAS.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mei_err {
	MEI_OK = 0,
	MEI_E_NO_DEVICE = -1, /* open: ENOENT (no ME, or mei_me not loaded) */
	MEI_E_NOT_READY = -2, /* ENODEV at open/connect, or dev_state not ENABLED in time */
	MEI_E_NO_CLIENT = -3, /* connect: ENOTTY (client not on this ME: no AMT, or disabled) */
	MEI_E_BUSY = -4,      /* connect: EBUSY after the bounded retries */
	MEI_E_RESET = -5,     /* ENODEV on read/write, or the peer went away: firmware reset */
	MEI_E_TOO_BIG = -6,   /* EFBIG, or a message larger than the client's max_msg_length */
	MEI_E_TIMEOUT = -7,   /* no message before the deadline */
	MEI_E_PROTOCOL = -8,  /* a reply that breaks the protocol's rules */
	MEI_E_ACCESS = -9,    /* EACCES/EPERM on open */
	MEI_E_IO = -10,       /* any other errno */
	MEI_E_NOMEM = -11,
	MEI_E_REFUSED = -12, /* APF: AMT answered CHANNEL_OPEN_FAILURE (apf_last_refusal) */
};

/* A name for any return value of this layer: negative mei_err, 0, or a positive AMTHI status. */
const char *mei_strerror(int r);

/* ---- Client GUIDs, in wire (little-endian GUID) byte order ---- */

extern const uint8_t MEI_GUID_AMTHI[16];    /* 12F80028-B4B7-4B2D-ACA8-46E0FF65814C */
extern const uint8_t MEI_GUID_LME[16];      /* 6733A4DB-0476-4E7B-B3AF-BCFC29BEE7A7 */
extern const uint8_t MEI_GUID_WATCHDOG[16]; /* 05B79A6F-4628-4D7F-899D-A91514CB32AB */

/* ---- Device transport ---- */

struct mei_opts {
	const char *sysfs_root; /* NULL: "/sys"; where dev_state is read while waiting */
	int ready_ms;     /* how long the ME may take to come up (dev_state, ENODEV on open) */
	int recv_ms;      /* default deadline of one receive */
	int busy_retries; /* connect attempts after EBUSY before MEI_E_BUSY */
	int busy_base_ms; /* first backoff after EBUSY; doubles per attempt */
};

/* Defaults: sysfs "/sys", ready 20 s, recv 10 s, 5 busy retries from 50 ms. */
void mei_opts_default(struct mei_opts *o);

struct mei_dev; /* one open connection to one ME client */

/*
 * Open DEVICE ("/dev/mei0", any path of a MEI character device, or "unix:PATH") and connect to
 * the client GUID. For a character device, first waits (bounded by o->ready_ms) until
 * SYSFS_ROOT/class/mei/NAME/dev_state reads ENABLED when that file exists; then, within the same
 * bound, retries ENODEV on open and on connect. Retries EBUSY with exponential backoff. Never
 * retries MEI_E_NO_CLIENT.
 */
int mei_open(const char *device, const uint8_t guid[16], const struct mei_opts *o,
	     struct mei_dev **out);
void mei_close(struct mei_dev *dev);

/* Drop the connection and connect again (after a firmware reset). */
int mei_reconnect(struct mei_dev *dev);

uint32_t mei_max_msg_length(const struct mei_dev *dev);
uint8_t mei_protocol_version(const struct mei_dev *dev);

/* Number of successful connects made by this handle (1 after mei_open; +1 per reconnect). */
unsigned mei_connect_count(const struct mei_dev *dev);

/* Send one message (len <= max_msg_length, else MEI_E_TOO_BIG without touching the device). */
int mei_send(struct mei_dev *dev, const void *buf, size_t len);

/*
 * Receive one whole message within timeout_ms (< 0: the handle's recv_ms). The message is read
 * with a buffer of max_msg_length; one larger than cap gives MEI_E_TOO_BIG. EINTR resumes with
 * the time left.
 */
int mei_recv(struct mei_dev *dev, void *buf, size_t cap, size_t *len, int timeout_ms);

/* A file descriptor that polls readable when a message is waiting (for event loops). */
int mei_fd(const struct mei_dev *dev);

/*
 * Request/response: discard any stale message, send REQ, receive the reply into RESP. On a
 * firmware reset (MEI_E_RESET), reconnect and retry the request once.
 */
int mei_transact(struct mei_dev *dev, const void *req, size_t req_len, void *resp, size_t cap,
		 size_t *resp_len);

/* ---- AMTHI ---- */

enum amthi_status {
	AMTHI_STATUS_SUCCESS = 0,
	AMTHI_STATUS_INTERNAL_ERROR = 1,
	AMTHI_STATUS_NOT_READY = 2,
	AMTHI_STATUS_INVALID_AMT_MODE = 3,
	AMTHI_STATUS_INVALID_MESSAGE_LENGTH = 4,
	AMTHI_STATUS_NOT_PERMITTED = 16,
	AMTHI_STATUS_MAX_LIMIT_REACHED = 23,
	AMTHI_STATUS_INVALID_PARAMETER = 36,
	AMTHI_STATUS_RNG_GENERATION_IN_PROGRESS = 47,
	AMTHI_STATUS_RNG_NOT_READY = 48,
	AMTHI_STATUS_CERTIFICATE_NOT_READY = 49,
	AMTHI_STATUS_INVALID_HANDLE = 2053,
	AMTHI_STATUS_NOT_FOUND = 2068,
};

enum amthi_command {
	AMTHI_CMD_GET_PROVISIONING_MODE = 0x04000008,
	AMTHI_CMD_UNPROVISION = 0x04000010,
	AMTHI_CMD_GET_PROVISIONING_STATE = 0x04000011,
	AMTHI_CMD_GET_CODE_VERSIONS = 0x0400001A,
	AMTHI_CMD_GET_MAC_ADDRESSES = 0x04000025,
	AMTHI_CMD_START_CONFIGURATION = 0x04000029,
	AMTHI_CMD_ENUMERATE_HASH_HANDLES = 0x0400002C,
	AMTHI_CMD_GET_CERT_HASH_ENTRY = 0x0400002D,
	AMTHI_CMD_GET_DNS_SUFFIX = 0x04000036,
	AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS = 0x04000046,
	AMTHI_CMD_GET_CURRENT_POWER_POLICY = 0x04000047,
	AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS = 0x04000048,
	AMTHI_CMD_GET_FQDN = 0x04000056,
	AMTHI_CMD_GET_UUID = 0x0400005C,
	AMTHI_CMD_STOP_CONFIGURATION = 0x0400005E,
	AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT = 0x04000067,
	AMTHI_CMD_GET_CONTROL_MODE = 0x0400006B,
	AMTHI_CMD_START_CONFIGURATION_HBASED = 0x0400008B,
};

#define AMTHI_RESPONSE_BIT   0x00800000u
#define AMTHI_HEADER_LEN     12u
#define AMTHI_MAX_VERSIONS   64u
#define AMTHI_MAX_HASHES     33u
#define AMTHI_VERSION_STRLEN 20u

enum amthi_provisioning_state {
	AMTHI_PROVISIONING_PRE = 0,
	AMTHI_PROVISIONING_IN = 1,
	AMTHI_PROVISIONING_POST = 2,
};

enum amthi_control_mode {
	AMTHI_CONTROL_NONE = 0,
	AMTHI_CONTROL_CCM = 1,
	AMTHI_CONTROL_ACM = 2,
};

enum amthi_hash_alg {
	AMTHI_HASH_MD5 = 0,
	AMTHI_HASH_SHA1 = 1,
	AMTHI_HASH_SHA256 = 2,
	AMTHI_HASH_SHA384_OR_SHA512 = 3, /* sources disagree: SHA384 (rpc-go) or SHA512 (lms) */
};

struct amthi_code_versions {
	char bios[66]; /* BiosVersion[65], always NUL-terminated here */
	unsigned count;
	struct {
		char description[AMTHI_VERSION_STRLEN + 1];
		char version[AMTHI_VERSION_STRLEN + 1];
	} entry[AMTHI_MAX_VERSIONS];
};

/* The version string for DESCRIPTION ("AMT", "Sku", "Build Number", ...), or NULL. */
const char *amthi_version_get(const struct amthi_code_versions *v, const char *description);

struct amthi_lan_settings {
	bool enabled;
	uint32_t ipv4; /* host order: 192.168.1.10 == 0xC0A8010A */
	bool dhcp_enabled;
	uint8_t dhcp_ip_mode; /* 1 active, 2 passive */
	uint8_t link_status;  /* 1 up */
	uint8_t mac[6];
};

struct amthi_remote_access {
	uint32_t network_status;
	uint32_t remote_status;
	uint32_t trigger;
	char mps_hostname[256];
};

struct amthi_cert_hash {
	uint32_t handle;
	bool is_default;
	bool is_active;
	uint8_t algorithm;   /* enum amthi_hash_alg */
	uint8_t hash[64];
	size_t hash_len;     /* 16, 20, 32, 48 or 64 from the algorithm (3: 48 unless bytes 48.. set) */
	char name[256];
};

struct amthi_local_account {
	char username[33];
	char password[33]; /* a secret: callers wipe it (OPENSSL_cleanse) when done */
};

struct amthi_mac_addresses {
	uint8_t dedicated[6];
	uint8_t host[6];
};

/*
 * Pure codec, for tests and fuzzing: amthi_encode builds a request (header + payload) into OUT
 * and returns its length, or 0 if CAP is too small. amthi_decode_* validate a whole response
 * (header rules of PROTOCOL.md section 3, status, then the per-command length rule) and fill the
 * typed struct. They return 0, MEI_E_PROTOCOL, or the positive AMTHI status.
 */
size_t amthi_encode(uint32_t command, const void *payload, size_t payload_len, uint8_t *out,
		    size_t cap);
int amthi_decode_code_versions(const uint8_t *buf, size_t len, struct amthi_code_versions *out);
int amthi_decode_u32(uint32_t command, const uint8_t *buf, size_t len, uint32_t *out);
int amthi_decode_uuid(const uint8_t *buf, size_t len, uint8_t out[16]);
int amthi_decode_lan_settings(const uint8_t *buf, size_t len, struct amthi_lan_settings *out);
int amthi_decode_dns_suffix(const uint8_t *buf, size_t len, char *out, size_t cap);
int amthi_decode_remote_access(const uint8_t *buf, size_t len, struct amthi_remote_access *out);
int amthi_decode_power_policy(const uint8_t *buf, size_t len, char *out, size_t cap);
int amthi_decode_hash_handles(const uint8_t *buf, size_t len, uint32_t *handles, unsigned *count);
int amthi_decode_cert_hash(const uint8_t *buf, size_t len, struct amthi_cert_hash *out);
int amthi_decode_local_account(const uint8_t *buf, size_t len, struct amthi_local_account *out);
int amthi_decode_mac_addresses(const uint8_t *buf, size_t len, struct amthi_mac_addresses *out);

/*
 * Calls over a connected AMTHI handle (mei_open with MEI_GUID_AMTHI). A NOT_READY status is
 * retried with backoff within the handle's ready time; other statuses are returned.
 */
int amthi_get_code_versions(struct mei_dev *dev, struct amthi_code_versions *out);
int amthi_get_provisioning_state(struct mei_dev *dev, uint32_t *state);
int amthi_get_control_mode(struct mei_dev *dev, uint32_t *mode);
int amthi_get_uuid(struct mei_dev *dev, uint8_t uuid[16]);
int amthi_get_lan_settings(struct mei_dev *dev, uint32_t index, struct amthi_lan_settings *out);
int amthi_get_dns_suffix(struct mei_dev *dev, char *out, size_t cap);
int amthi_get_remote_access(struct mei_dev *dev, struct amthi_remote_access *out);
int amthi_get_power_policy(struct mei_dev *dev, char *out, size_t cap);
/* Every certificate hash: EnumerateHashHandles then GetCertHashEntry per handle. */
int amthi_get_cert_hashes(struct mei_dev *dev, struct amthi_cert_hash *out, unsigned cap,
			  unsigned *count);
int amthi_get_local_account(struct mei_dev *dev, struct amthi_local_account *out);
int amthi_get_mac_addresses(struct mei_dev *dev, struct amthi_mac_addresses *out);

/* A reply that carries only a status, or a status and one u32 (Unprovision: sources disagree). */
int amthi_decode_status_only(uint32_t command, const uint8_t *buf, size_t len);
/* Local unprovision (mode 0). Client control mode only: ACM answers INVALID_AMT_MODE. */
int amthi_unprovision(struct mei_dev *dev);

/*
 * StartConfigurationHBased (AMT 19+ with TLS on local ports): AMT enters provisioning ("in")
 * for admin control mode by mutual TLS. The request is rpc-go's layout (PROTOCOL.md section 3,
 * 390 bytes): u8 hash algorithm, Hash[64] of the provisioning (leaf) certificate, u8 HostVPN,
 * u32 SuffixListLen, List[320] (DNS suffixes, each ended by a NUL, SuffixListLen bytes used).
 * The reply is u8 algorithm and Hash[64] of AMT's TLS certificate, the one to pin; a variant
 * with one more leading byte (rpc-go's response struct reads a u8 status first) is read too.
 */
#define AMTHI_HBASED_HASH_MAX    64u
#define AMTHI_HBASED_SUFFIX_LIST 320u
#define AMTHI_HBASED_REQUEST_LEN (1u + AMTHI_HBASED_HASH_MAX + 1u + 4u + AMTHI_HBASED_SUFFIX_LIST)

struct amthi_hbased_response {
	uint8_t algorithm; /* enum amthi_hash_alg */
	uint8_t hash[AMTHI_HBASED_HASH_MAX];
	size_t hash_len; /* from the algorithm, as for certificate hashes; 0 when unknown */
};

/*
 * The whole request (header included) into OUT; 0 when HASH_LEN exceeds 64, the suffixes do
 * not fit the 320-byte list (or one is empty or holds a NUL), or CAP is too small.
 */
size_t amthi_encode_start_configuration_hbased(uint8_t algorithm, const uint8_t *hash,
					       size_t hash_len, bool host_vpn,
					       const char *const *suffixes, size_t n_suffixes,
					       uint8_t *out, size_t cap);
int amthi_decode_start_configuration_hbased(const uint8_t *buf, size_t len,
					    struct amthi_hbased_response *out);
/*
 * The call. NOT_READY, RNG_GENERATION_IN_PROGRESS and CERTIFICATE_NOT_READY (AMT still making
 * its TLS key) are retried with backoff within the handle's ready bound.
 */
int amthi_start_configuration_hbased(struct mei_dev *dev, uint8_t algorithm, const uint8_t *hash,
				     size_t hash_len, bool host_vpn, const char *const *suffixes,
				     size_t n_suffixes, struct amthi_hbased_response *out);
/* StopConfiguration: leave provisioning ("in") for pre-provisioning. 0 or the status. */
int amthi_stop_configuration(struct mei_dev *dev);

/* Text forms. */
void amthi_uuid_format(const uint8_t uuid[16], char out[37]); /* PROTOCOL.md byte order */
void amthi_ipv4_format(uint32_t ipv4, char out[16]);
void amthi_mac_format(const uint8_t mac[6], char out[18]);
const char *amthi_hash_alg_name(uint8_t alg); /* "SHA384/SHA512" for 3 */

/* ---- Watchdog client: state independence (ME 16.1+) ---- */

struct amt_state_independence {
	uint8_t raw;
	bool new_interface;      /* bit 7: the other bits mean something */
	bool transition_allowed; /* bit 0, only with new_interface */
	bool amt_operational;    /* bit 1, only with new_interface */
	bool restricted;         /* bit 5 */
	bool tls_enforced;       /* bit 6 */
	bool locked;             /* 0xE0: new + TLS + restricted: unprovision first */
};

#define WATCHDOG_IS_CHANGE_TO_AMT_ENABLED_LEN 4u
extern const uint8_t WATCHDOG_IS_CHANGE_TO_AMT_ENABLED[4]; /* 05 02 51 10 */

int watchdog_decode_state(const uint8_t *buf, size_t len, struct amt_state_independence *out);
/* SetAmtOperationalState's reply: a 4-byte echo of 05 xx 53 10, then u32 status (rpc-go). */
int watchdog_decode_set_state(const uint8_t *buf, size_t len);
/* Enable (or disable) AMT (ME 16.1+): 05 03 53 10 <u8 enable>. 0 or the positive status. */
int watchdog_set_operational(struct mei_dev *dev, bool enable);
/* Over a handle connected to MEI_GUID_WATCHDOG. */
int watchdog_get_state(struct mei_dev *dev, struct amt_state_independence *out);

/* ---- sysfs ---- */

#define MEI_FW_VER_MAX    3u
#define MEI_FW_STATUS_MAX 6u

struct mei_sysfs {
	char dev_state[32]; /* "ENABLED", ... ; "" when the file is absent */
	unsigned fw_ver_count;
	struct {
		unsigned platform, major, minor, hotfix, build;
	} fw_ver[MEI_FW_VER_MAX];
	unsigned fw_status_count;
	uint32_t fw_status[MEI_FW_STATUS_MAX];
};

/*
 * Read /sys/class/mei/NAME/{dev_state,fw_ver,fw_status} under ROOT (normally "/sys"). NAME is the
 * device's basename ("mei0"). Missing files leave their fields empty; malformed ones give
 * MEI_E_PROTOCOL; no directory gives MEI_E_NO_DEVICE.
 */
int mei_sysfs_read(const char *root, const char *name, struct mei_sysfs *out);
int mei_sysfs_read_dev_state(const char *root, const char *name, char *out, size_t cap);

/* ---- APF (port forwarding) over the LME client ---- */

/*
 * APF is SSH's connection protocol cut down (PROTOCOL.md section 4; intel/lms LMS_if.h,
 * go-wsman-messages pkg/apf). Integers are big-endian; a string is a u32 length and its bytes,
 * without a terminator.
 */
enum apf_message {
	APF_DISCONNECT = 1,
	APF_SERVICE_REQUEST = 5,
	APF_SERVICE_ACCEPT = 6,
	APF_USERAUTH_REQUEST = 50,
	APF_USERAUTH_FAILURE = 51,
	APF_USERAUTH_SUCCESS = 52,
	APF_GLOBAL_REQUEST = 80,
	APF_REQUEST_SUCCESS = 81,
	APF_REQUEST_FAILURE = 82,
	APF_CHANNEL_OPEN = 90,
	APF_CHANNEL_OPEN_CONFIRMATION = 91,
	APF_CHANNEL_OPEN_FAILURE = 92,
	APF_CHANNEL_WINDOW_ADJUST = 93,
	APF_CHANNEL_DATA = 94,
	APF_CHANNEL_CLOSE = 97,
	APF_PROTOCOL_VERSION = 192,
};

enum apf_disconnect_reason {
	APF_DISCONNECT_PROTOCOL_ERROR = 2,
	APF_DISCONNECT_SERVICE_NOT_AVAILABLE = 7,
	APF_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED = 8,
	APF_DISCONNECT_CONNECTION_LOST = 10,
	APF_DISCONNECT_BY_APPLICATION = 11,
};

enum apf_open_failure_reason {
	APF_OPEN_FAILURE_PROHIBITED = 1,
	APF_OPEN_FAILURE_CONNECT_FAILED = 2,
	APF_OPEN_FAILURE_UNKNOWN_CHANNEL_TYPE = 3,
	APF_OPEN_FAILURE_RESOURCE_SHORTAGE = 4,
};

#define APF_SERVICE_PFWD                 "pfwd@amt.intel.com"
#define APF_SERVICE_AUTH                 "auth@amt.intel.com"
#define APF_REQUEST_TCPIP_FORWARD        "tcpip-forward"
#define APF_REQUEST_CANCEL_TCPIP_FORWARD "cancel-tcpip-forward"
#define APF_CHANNEL_TYPE_FORWARDED       "forwarded-tcpip"
#define APF_CHANNEL_TYPE_DIRECT          "direct-tcpip"

#define APF_PORT_HTTP      16992u
#define APF_PORT_HTTPS     16993u
#define APF_PORT_REDIR     623u
#define APF_PORT_REDIR_TLS 664u

#define APF_PROTOCOL_VERSION_LEN 93u  /* type, major, minor, trigger, UUID[16], reserved[64] */
#define APF_DATA_HEADER_LEN      9u   /* CHANNEL_DATA: type, recipient, length; then the bytes */
#define APF_TRIGGER_LME_REQUEST  254u /* what LMS sends, and firmware answers with */
#define APF_DEFAULT_WINDOW       4096u
#define APF_MAX_PACKET_UNLIMITED 0xFFFFFFFFu /* CHANNEL_OPEN's third u32 (LMS, rpc-go) */

/* A string inside a decoded message: borrowed from the message buffer, not NUL-terminated. */
struct apf_str {
	const uint8_t *p;
	uint32_t len;
};

/* One decoded message; the member named after the type is filled, strings point into the input. */
struct apf_msg {
	uint8_t type; /* enum apf_message */
	union {
		struct {
			uint32_t reason;
		} disconnect;
		struct apf_str service; /* SERVICE_REQUEST, SERVICE_ACCEPT */
		struct {
			/* the method's data (a password) is checked, not kept */
			struct apf_str user, service, method;
		} userauth;
		struct {
			struct apf_str name;
			bool want_reply;
			bool has_forward; /* (cancel-)tcpip-forward: address and port follow; other
					     requests' bytes after want_reply are skipped */
			struct apf_str address;
			uint32_t port;
		} global;
		struct {
			bool has_port; /* the 5-byte reply to tcpip-forward; 1 byte otherwise */
			uint32_t port;
		} success;
		struct {
			struct apf_str channel_type;
			uint32_t sender, window, max_packet;
			bool has_endpoints; /* forwarded-/direct-tcpip; other types: skipped */
			struct apf_str connected_address;
			uint32_t connected_port;
			struct apf_str originator_address;
			uint32_t originator_port;
		} open;
		struct {
			uint32_t recipient, sender, window, reserved;
		} confirm;
		struct {
			uint32_t recipient, reason;
		} failure;
		struct {
			uint32_t recipient, bytes;
		} adjust;
		struct {
			uint32_t recipient;
			const uint8_t *bytes;
			uint32_t len;
		} data;
		struct {
			uint32_t recipient;
		} close;
		struct {
			uint32_t major, minor, trigger;
			uint8_t uuid[16];
		} version;
	};
};

/*
 * Decode one whole message. Every length is checked against the buffer: truncation, a string
 * running past the end, trailing bytes, a wrong fixed length, a port above 65535 or an unknown
 * type give MEI_E_PROTOCOL. out->type is the first byte even then (when there is one), so a
 * caller can tell an unknown type (apf_message_known) from a malformed known one.
 */
int apf_decode(const uint8_t *buf, size_t len, struct apf_msg *out);
bool apf_message_known(uint8_t type);
const char *apf_message_name(uint8_t type);
const char *apf_open_failure_name(uint32_t reason);
const char *apf_disconnect_name(uint32_t reason);

/*
 * Encoders: each writes one message into OUT and returns its length, or 0 when it does not fit
 * in CAP (pass max_msg_length as CAP and nothing too big for the client is ever built).
 * UUID may be NULL (zeros).
 */
size_t apf_encode_protocol_version(uint8_t *out, size_t cap, uint32_t major, uint32_t minor,
				   uint32_t trigger, const uint8_t *uuid);
size_t apf_encode_disconnect(uint8_t *out, size_t cap, uint32_t reason);
/* SERVICE_REQUEST or SERVICE_ACCEPT. */
size_t apf_encode_service(uint8_t *out, size_t cap, uint8_t type, const char *name);
/* A message that is its type alone: REQUEST_SUCCESS (the reply to cancel-tcpip-forward),
 * REQUEST_FAILURE, USERAUTH_SUCCESS. */
size_t apf_encode_bare(uint8_t *out, size_t cap, uint8_t type);
size_t apf_encode_global_request(uint8_t *out, size_t cap, const char *name, bool want_reply,
				 const char *address, uint32_t port);
size_t apf_encode_request_success_port(uint8_t *out, size_t cap, uint32_t port);
size_t apf_encode_channel_open(uint8_t *out, size_t cap, const char *channel_type,
			       uint32_t sender, uint32_t window, const char *connected_address,
			       uint32_t connected_port, const char *originator_address,
			       uint32_t originator_port);
size_t apf_encode_open_confirmation(uint8_t *out, size_t cap, uint32_t recipient,
				    uint32_t sender, uint32_t window, uint32_t reserved);
size_t apf_encode_open_failure(uint8_t *out, size_t cap, uint32_t recipient, uint32_t reason);
size_t apf_encode_window_adjust(uint8_t *out, size_t cap, uint32_t recipient, uint32_t bytes);
size_t apf_encode_channel_data(uint8_t *out, size_t cap, uint32_t recipient, const void *bytes,
			       uint32_t len);
size_t apf_encode_channel_close(uint8_t *out, size_t cap, uint32_t recipient);

struct apf_session; /* one LME connection, its handshake done */

/*
 * Connect to the LME client of DEVICE and do the APF handshake, driven by the firmware's
 * messages (no fixed waits): the host's PROTOCOL_VERSION 1.0 goes first (a firmware version
 * that arrives before it is fine too); any 1.x is accepted, another major is refused with
 * DISCONNECT and MEI_E_PROTOCOL; SERVICE_ACCEPT for "pfwd@amt.intel.com" (and
 * "auth@amt.intel.com"); REQUEST_SUCCESS for each tcpip-forward. The handshake is complete once
 * the firmware has forwarded the WS-Man port (16992 or 16993); what it has already queued behind
 * that (the second port) is answered too, and later global requests are answered whenever they
 * arrive. Bounded by o->recv_ms. A DISCONNECT or a reset fails it (MEI_E_RESET).
 * apf_open_err also writes a one-line reason into ERR (ERRLEN bytes) on failure.
 */
int apf_open(const char *device, const struct mei_opts *o, struct apf_session **out);
int apf_open_err(const char *device, const struct mei_opts *o, struct apf_session **out,
		 char *err, size_t errlen);
/* Stops a running bridge (apf_bridge_stop), says DISCONNECT (by application) to a live
 * session, disconnects. */
void apf_close(struct apf_session *s);

/* What the handshake learnt: 16993 (and 664) forwarded instead of 16992 means TLS is enforced. */
bool apf_tls_enforced(const struct apf_session *s);
uint16_t apf_wsman_port(const struct apf_session *s);
/* Counters for tests and benchmarks: handshakes done by this session (1 after apf_open; +1 per
 * transparent reconnect). */
unsigned apf_handshake_count(const struct apf_session *s);
struct mei_dev *apf_device(struct apf_session *s);

/* The receive window offered by later channel opens (default APF_DEFAULT_WINDOW; 0 keeps it). */
void apf_set_window(struct apf_session *s, uint32_t window);

/*
 * One line about the last failure (e.g. "AMT refused a channel to port 16992: resource
 * shortage (reason 4)"), or "". While a bridge runs its thread writes it: read
 * apf_bridge_status instead then.
 */
const char *apf_last_error(const struct apf_session *s);
/* The reason code of the last CHANNEL_OPEN_FAILURE (enum apf_open_failure_reason), or 0. */
uint32_t apf_last_refusal(const struct apf_session *s);

/*
 * The bridge: local stream connections carried over APF channels, for clients that want a
 * socket path (libcurl's CURLOPT_UNIX_SOCKET_PATH).
 *
 * apf_bridge_listen creates a Unix SOCK_STREAM listener at DIR/apf-<pid>-<n>.sock (mode 0600)
 * and writes its path into PATH_OUT (CAP bytes). DIR belongs to the caller, who creates it
 * (mkdtemp) and removes it after apf_bridge_stop: it must be a directory, not a symbolic link,
 * owned by the effective uid, with no group or other access (MEI_E_ACCESS otherwise), so that
 * nobody else can reach the socket. One bridge per session (MEI_E_BUSY while one runs); the
 * session's window (apf_set_window) is set before.
 *
 * A thread takes connections ONE AT A TIME. For each, it opens a fresh channel to PORT (redoing
 * the handshake first, transparently, when the firmware has ended the LME session: after a reset,
 * a DISCONNECT, or no answer to the open; at most twice per connection) and pumps bytes both
 * ways with APF flow control: never beyond AMT's window nor in frames larger than
 * max_msg_length (data frames carry at most max_msg_length - 9 bytes), crediting AMT with
 * WINDOW_ADJUST as the local side reads. When the local side closes, it sends CHANNEL_CLOSE and
 * waits (bounded by recv_ms) for AMT's; when AMT closes first, it answers, hands the local side
 * what was received and closes the connection. A DISCONNECT or reset ends the channel with an
 * error and the local side sees end of file, never a hang. Waits on AMT are bounded by recv_ms;
 * an idle channel is not timed out (the local side owns request timeouts). Then the next
 * connection is accepted; meanwhile, later ones wait in the listener's queue. Between channels
 * the thread answers what AMT says (global requests) and notes a session that ended.
 *
 * A refused channel (CHANNEL_OPEN_FAILURE) closes the accepted connection at once; like every
 * other outcome, it is recorded (apf_bridge_status) BEFORE the connection is closed, so a
 * client that sees end of file or a reset can read why.
 *
 * Returns 0, MEI_E_ACCESS, MEI_E_BUSY, or another error (apf_last_error says why).
 */
int apf_bridge_listen(struct apf_session *s, uint16_t port, const char *dir, char *path_out,
		      size_t cap);

/*
 * Unlink the socket (no new client finds it), stop accepting (clients still queued are reset),
 * end the current channel (one that is closing finishes; an open one is closed as if its client
 * had closed, its client gets end of file), within recv_ms plus the bound of an open or
 * handshake under way, join the thread and close the listener. DIR is left to the caller.
 * Nothing when no bridge runs. apf_close calls it.
 */
void apf_bridge_stop(struct apf_session *s);

/* What the current (or last) bridge did, copied under its lock: safe while it runs. */
struct apf_bridge_status {
	bool listening;
	unsigned accepted;     /* connections taken from the listener (queued ones that went
				  away before their turn are dropped and not counted) */
	unsigned completed;    /* of those, finished: their outcome is recorded below */
	unsigned channels;     /* channels AMT confirmed */
	unsigned refused;      /* CHANNEL_OPEN_FAILUREs */
	unsigned failed;       /* connections that ended with any other error */
	int last_result;       /* the last completed connection: 0, MEI_E_REFUSED, or an error */
	uint32_t last_refusal; /* its enum apf_open_failure_reason when refused, else 0 */
	char last_error[256];  /* its one-line reason when last_result != 0, else "" */
};
void apf_bridge_status(const struct apf_session *s, struct apf_bridge_status *out);
