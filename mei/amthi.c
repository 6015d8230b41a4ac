/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AMTHI (PTHI) codec and calls. Every response is validated in the order PROTOCOL.md section 3
 * gives (size, command echo, reserved, version, status, then the per-command length rule) and
 * read field by field through a bounded cursor.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mei.h"
#include "wire.h"

#define AMTHI_MAJOR 1u
#define AMTHI_MINOR 1u

#define BIOS_VERSION_LEN    65u
#define VERSION_ENTRY_LEN   (2u + AMTHI_VERSION_STRLEN + 2u + AMTHI_VERSION_STRLEN)
#define CERT_HASH_MAX_LEN   64u
#define LOCAL_ACCOUNT_FIELD ((size_t)33) /* CFG_MAX_ACL_USER_LENGTH */
#define LOCAL_ACCOUNT_REQ   40u /* reserved bytes of the request */
#define REQUEST_CAP         (AMTHI_HEADER_LEN + AMTHI_HBASED_REQUEST_LEN) /* the longest request */
#define LAN_SETTINGS_LEN    (4u + 4u + 4u + 1u + 1u + 6u)
#define MAC_ADDRESSES_LEN   12u
#define UUID_LEN            16u

/* Large enough for every valid response (GetCodeVersions with 64 entries is 2901 bytes). */
#define RESPONSE_CAP 4096u

/* NOT_READY is retried for this long, 50 ms first, doubling up to 1 s between tries. */
#define NOT_READY_BOUND_MS 10000L
#define NOT_READY_FIRST_MS 50L
#define NOT_READY_MAX_MS   1000L

size_t amthi_encode(uint32_t command, const void *payload, size_t payload_len, uint8_t *out,
		    size_t cap)
{
	struct wbuf w = wbuf_init(out, cap);

	if (payload_len > UINT32_MAX - AMTHI_HEADER_LEN)
		return 0;
	put_u8(&w, AMTHI_MAJOR);
	put_u8(&w, AMTHI_MINOR);
	put_u16le(&w, 0);
	put_u32le(&w, command);
	put_u32le(&w, (uint32_t)payload_len);
	if (payload_len > 0)
		put_bytes(&w, payload, payload_len);
	return wbuf_ok(&w) ? w.len : 0;
}

/*
 * The common part of every response: header rules, then the status. On success BODY holds
 * the bytes after the status. A non-zero status is returned as itself (positive) whatever
 * follows it, as long as the message is whole and holds the status.
 */
static int open_response(uint32_t command, const uint8_t *buf, size_t len, struct cursor *body)
{
	struct cursor c = cursor_init(buf, len);
	uint8_t major, minor;
	uint16_t reserved;
	uint32_t echo, length, status;

	if (cur_u8(&c, &major) || cur_u8(&c, &minor) || cur_u16le(&c, &reserved) ||
	    cur_u32le(&c, &echo) || cur_u32le(&c, &length))
		return MEI_E_PROTOCOL;
	if (c.left != length)
		return MEI_E_PROTOCOL;
	if (echo != (command | AMTHI_RESPONSE_BIT))
		return MEI_E_PROTOCOL;
	if (reserved != 0 || major != AMTHI_MAJOR || minor < AMTHI_MINOR)
		return MEI_E_PROTOCOL;
	if (cur_u32le(&c, &status))
		return MEI_E_PROTOCOL;
	if (status != AMTHI_STATUS_SUCCESS)
		/* A status that does not fit a positive int cannot be told from mei_err. */
		return status <= INT_MAX ? (int)status : MEI_E_PROTOCOL;
	*body = c;
	return 0;
}

/*
 * Copy a string field of N wire bytes into DST (CAP bytes). The string ends at the first NUL
 * or at N; one that does not fit with its terminator is a protocol error, never cut short.
 */
static int copy_string(const uint8_t *src, size_t n, char *dst, size_t cap)
{
	const uint8_t *nul = n > 0 ? memchr(src, 0, n) : NULL;
	size_t slen = nul ? (size_t)(nul - src) : n;

	if (slen >= cap)
		return MEI_E_PROTOCOL;
	if (slen > 0)
		memcpy(dst, src, slen);
	dst[slen] = '\0';
	return 0;
}

/* As copy_string, but the field must hold its own NUL (fixed-size C string fields). */
static int copy_cstring(const uint8_t *src, size_t n, char *dst, size_t cap)
{
	if (memchr(src, 0, n) == NULL)
		return MEI_E_PROTOCOL;
	return copy_string(src, n, dst, cap);
}

/* A u16 length and that many bytes, which must be exactly what is left. */
static int read_counted_string(struct cursor *c, char *dst, size_t cap)
{
	const uint8_t *p;
	uint16_t n;

	if (cur_u16le(c, &n) || c->left != n || cur_ref(c, &p, n))
		return MEI_E_PROTOCOL;
	return copy_string(p, n, dst, cap);
}

static int read_version_string(struct cursor *c, char *dst, size_t cap)
{
	const uint8_t *p;
	uint16_t n;

	if (cur_u16le(c, &n) || cur_ref(c, &p, AMTHI_VERSION_STRLEN))
		return MEI_E_PROTOCOL;
	if (n > AMTHI_VERSION_STRLEN)
		return MEI_E_PROTOCOL;
	return copy_string(p, n, dst, cap);
}

int amthi_decode_code_versions(const uint8_t *buf, size_t len, struct amthi_code_versions *out)
{
	struct cursor c;
	const uint8_t *bios;
	uint32_t count;
	int r = open_response(AMTHI_CMD_GET_CODE_VERSIONS, buf, len, &c);

	if (r != 0)
		return r;
	memset(out, 0, sizeof(*out));
	if (cur_ref(&c, &bios, BIOS_VERSION_LEN) || cur_u32le(&c, &count))
		return MEI_E_PROTOCOL;
	if (c.left % VERSION_ENTRY_LEN != 0 || c.left / VERSION_ENTRY_LEN != count ||
	    count > AMTHI_MAX_VERSIONS)
		return MEI_E_PROTOCOL;
	r = copy_string(bios, BIOS_VERSION_LEN, out->bios, sizeof(out->bios));
	for (uint32_t i = 0; r == 0 && i < count; i++) {
		r = read_version_string(&c, out->entry[i].description,
					sizeof(out->entry[i].description));
		if (r == 0)
			r = read_version_string(&c, out->entry[i].version,
						sizeof(out->entry[i].version));
	}
	if (r == 0)
		r = cur_end(&c);
	if (r == 0)
		out->count = count;
	return r;
}

const char *amthi_version_get(const struct amthi_code_versions *v, const char *description)
{
	for (unsigned i = 0; i < v->count && i < AMTHI_MAX_VERSIONS; i++)
		if (strcmp(v->entry[i].description, description) == 0)
			return v->entry[i].version;
	return NULL;
}

int amthi_decode_u32(uint32_t command, const uint8_t *buf, size_t len, uint32_t *out)
{
	struct cursor c;
	uint32_t v, max;
	int r;

	switch (command) {
	case AMTHI_CMD_GET_PROVISIONING_STATE:
		max = AMTHI_PROVISIONING_POST;
		break;
	case AMTHI_CMD_GET_CONTROL_MODE:
		max = AMTHI_CONTROL_ACM;
		break;
	default:
		return MEI_E_PROTOCOL;
	}
	r = open_response(command, buf, len, &c);
	if (r != 0)
		return r;
	if (c.left != 4 || cur_u32le(&c, &v) || v > max)
		return MEI_E_PROTOCOL;
	*out = v;
	return 0;
}

int amthi_decode_uuid(const uint8_t *buf, size_t len, uint8_t out[16])
{
	struct cursor c;
	int r = open_response(AMTHI_CMD_GET_UUID, buf, len, &c);

	if (r != 0)
		return r;
	if (c.left != UUID_LEN)
		return MEI_E_PROTOCOL;
	return cur_bytes(&c, out, UUID_LEN);
}

int amthi_decode_lan_settings(const uint8_t *buf, size_t len, struct amthi_lan_settings *out)
{
	struct cursor c;
	uint32_t enabled, ipv4, dhcp;
	uint8_t mode, link;
	int r = open_response(AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, buf, len, &c);

	if (r != 0)
		return r;
	if (c.left != LAN_SETTINGS_LEN)
		return MEI_E_PROTOCOL;
	if (cur_u32le(&c, &enabled) || cur_u32le(&c, &ipv4) || cur_u32le(&c, &dhcp) ||
	    cur_u8(&c, &mode) || cur_u8(&c, &link) || cur_bytes(&c, out->mac, sizeof(out->mac)))
		return MEI_E_PROTOCOL;
	out->enabled = enabled != 0;
	out->ipv4 = ipv4;
	out->dhcp_enabled = dhcp != 0;
	out->dhcp_ip_mode = mode;
	out->link_status = link;
	return 0;
}

int amthi_decode_dns_suffix(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	struct cursor c;
	int r = open_response(AMTHI_CMD_GET_DNS_SUFFIX, buf, len, &c);

	if (r != 0)
		return r;
	return read_counted_string(&c, out, cap);
}

int amthi_decode_remote_access(const uint8_t *buf, size_t len, struct amthi_remote_access *out)
{
	struct cursor c;
	int r = open_response(AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, buf, len, &c);

	if (r != 0)
		return r;
	if (cur_u32le(&c, &out->network_status) || cur_u32le(&c, &out->remote_status) ||
	    cur_u32le(&c, &out->trigger))
		return MEI_E_PROTOCOL;
	return read_counted_string(&c, out->mps_hostname, sizeof(out->mps_hostname));
}

/* intel/lms GetCurrentPowerPolicyCommand: an AmtAnsiString, u16 length then the name. */
int amthi_decode_power_policy(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	struct cursor c;
	int r = open_response(AMTHI_CMD_GET_CURRENT_POWER_POLICY, buf, len, &c);

	if (r != 0)
		return r;
	return read_counted_string(&c, out, cap);
}

/* HANDLES must hold AMTHI_MAX_HASHES entries. */
int amthi_decode_hash_handles(const uint8_t *buf, size_t len, uint32_t *handles, unsigned *count)
{
	struct cursor c;
	uint32_t n;
	int r = open_response(AMTHI_CMD_ENUMERATE_HASH_HANDLES, buf, len, &c);

	if (r != 0)
		return r;
	if (cur_u32le(&c, &n) || n > AMTHI_MAX_HASHES || c.left != (size_t)n * 4u)
		return MEI_E_PROTOCOL;
	for (uint32_t i = 0; i < n; i++)
		if (cur_u32le(&c, &handles[i]))
			return MEI_E_PROTOCOL;
	*count = n;
	return 0;
}

/*
 * Algorithm 3 is SHA384 to rpc-go and SHA512 to lms and MeshAgent: a SHA384 digest leaves bytes
 * 48..63 of the 64-byte field zero. Newer rpc-go also names 4 SHA224 and 5 SHA512. An unknown
 * algorithm keeps the entry with hash_len 0, so that one odd entry does not hide the others.
 */
static size_t hash_length(uint8_t alg, const uint8_t hash[CERT_HASH_MAX_LEN])
{
	static const uint8_t zero[CERT_HASH_MAX_LEN - 48] = {0};

	switch (alg) {
	case AMTHI_HASH_MD5:
		return 16;
	case AMTHI_HASH_SHA1:
		return 20;
	case AMTHI_HASH_SHA256:
		return 32;
	case AMTHI_HASH_SHA384_OR_SHA512:
		return memcmp(hash + 48, zero, sizeof(zero)) == 0 ? 48 : 64;
	case 4:
		return 28;
	case 5:
		return 64;
	default:
		return 0;
	}
}

int amthi_decode_cert_hash(const uint8_t *buf, size_t len, struct amthi_cert_hash *out)
{
	struct cursor c;
	uint32_t is_default, is_active;
	int r = open_response(AMTHI_CMD_GET_CERT_HASH_ENTRY, buf, len, &c);

	if (r != 0)
		return r;
	if (cur_u32le(&c, &is_default) || cur_u32le(&c, &is_active) ||
	    cur_bytes(&c, out->hash, CERT_HASH_MAX_LEN) || cur_u8(&c, &out->algorithm))
		return MEI_E_PROTOCOL;
	r = read_counted_string(&c, out->name, sizeof(out->name));
	if (r != 0)
		return r;
	out->is_default = is_default != 0;
	out->is_active = is_active != 0;
	out->hash_len = hash_length(out->algorithm, out->hash);
	return 0;
}

/*
 * 66 bytes: user[33], pass[33] (rpc-go, lms). 68 bytes come in two readings: MeshAgent reads
 * two 34-byte fields (pass from byte 34); others read user[33], pass[33] and two trailing bytes.
 * Byte 33 tells them apart: the user field's padding (NUL) in the first, pass[0] in the second,
 * which is not NUL for any non-empty password (and an empty one decodes the same either way).
 * Each field must hold its NUL. The password is a secret: a failed decode leaves nothing behind.
 */
int amthi_decode_local_account(const uint8_t *buf, size_t len, struct amthi_local_account *out)
{
	struct cursor c;
	const uint8_t *body;
	size_t n, field;
	int r = open_response(AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, buf, len, &c);

	if (r != 0)
		return r;
	n = c.left;
	if (cur_ref(&c, &body, n))
		return MEI_E_PROTOCOL;
	if (n == 2 * LOCAL_ACCOUNT_FIELD)
		field = LOCAL_ACCOUNT_FIELD;
	else if (n == 2 * (LOCAL_ACCOUNT_FIELD + 1))
		field = body[LOCAL_ACCOUNT_FIELD] == 0 ? LOCAL_ACCOUNT_FIELD + 1 : LOCAL_ACCOUNT_FIELD;
	else
		return MEI_E_PROTOCOL;
	/* both fields lie within the N bytes borrowed: 2 * field <= n */
	r = copy_cstring(body, field, out->username, sizeof(out->username));
	if (r == 0)
		r = copy_cstring(body + field, field, out->password, sizeof(out->password));
	if (r != 0)
		explicit_bzero(out, sizeof(*out));
	return r;
}

int amthi_decode_mac_addresses(const uint8_t *buf, size_t len, struct amthi_mac_addresses *out)
{
	struct cursor c;
	int r = open_response(AMTHI_CMD_GET_MAC_ADDRESSES, buf, len, &c);

	if (r != 0)
		return r;
	if (c.left != MAC_ADDRESSES_LEN)
		return MEI_E_PROTOCOL;
	if (cur_bytes(&c, out->dedicated, sizeof(out->dedicated)) ||
	    cur_bytes(&c, out->host, sizeof(out->host)))
		return MEI_E_PROTOCOL;
	return 0;
}

/* ---- Calls ---- */

static long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * A status that says "not yet": NOT_READY for every command; StartConfigurationHBased also
 * answers RNG_GENERATION_IN_PROGRESS and CERTIFICATE_NOT_READY while AMT makes its TLS key.
 */
static bool is_transient(uint32_t command, int r)
{
	if (r == AMTHI_STATUS_NOT_READY)
		return true;
	return command == AMTHI_CMD_START_CONFIGURATION_HBASED &&
	       (r == AMTHI_STATUS_RNG_GENERATION_IN_PROGRESS ||
		r == AMTHI_STATUS_CERTIFICATE_NOT_READY);
}

/*
 * Send REQ and receive the reply into RESP. The reply's header and status are checked here so
 * that a transient status can be retried with backoff; callers decode the payload afterwards.
 */
static int exchange(struct mei_dev *dev, uint32_t command, const uint8_t *req, size_t req_len,
		    uint8_t *resp, size_t cap, size_t *resp_len)
{
	long start = monotonic_ms();
	long delay = NOT_READY_FIRST_MS;

	for (;;) {
		struct cursor body;
		long left;
		int r = mei_transact(dev, req, req_len, resp, cap, resp_len);

		if (r != 0)
			return r;
		r = open_response(command, resp, *resp_len, &body);
		if (!is_transient(command, r))
			return r;
		left = NOT_READY_BOUND_MS - (monotonic_ms() - start);
		if (left <= 0)
			return r;
		sleep_ms(delay < left ? delay : left);
		delay = delay * 2 < NOT_READY_MAX_MS ? delay * 2 : NOT_READY_MAX_MS;
	}
}

/* One request with PAYLOAD; the whole reply lands in RESP. */
static int call(struct mei_dev *dev, uint32_t command, const void *payload, size_t payload_len,
		uint8_t *resp, size_t *resp_len)
{
	uint8_t req[REQUEST_CAP];
	size_t req_len = amthi_encode(command, payload, payload_len, req, sizeof(req));

	if (req_len == 0)
		return MEI_E_TOO_BIG;
	return exchange(dev, command, req, req_len, resp, RESPONSE_CAP, resp_len);
}

int amthi_get_code_versions(struct mei_dev *dev, struct amthi_code_versions *out)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_code_versions(resp, len, out);
}

static int get_u32(struct mei_dev *dev, uint32_t command, uint32_t *out)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, command, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_u32(command, resp, len, out);
}

int amthi_get_provisioning_state(struct mei_dev *dev, uint32_t *state)
{
	return get_u32(dev, AMTHI_CMD_GET_PROVISIONING_STATE, state);
}

int amthi_get_control_mode(struct mei_dev *dev, uint32_t *mode)
{
	return get_u32(dev, AMTHI_CMD_GET_CONTROL_MODE, mode);
}

int amthi_get_uuid(struct mei_dev *dev, uint8_t uuid[16])
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_UUID, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_uuid(resp, len, uuid);
}

int amthi_get_lan_settings(struct mei_dev *dev, uint32_t index, struct amthi_lan_settings *out)
{
	uint8_t payload[4];
	uint8_t resp[RESPONSE_CAP];
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	size_t len;
	int r;

	put_u32le(&w, index);
	r = call(dev, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, payload, w.len, resp, &len);
	return r != 0 ? r : amthi_decode_lan_settings(resp, len, out);
}

int amthi_get_dns_suffix(struct mei_dev *dev, char *out, size_t cap)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_DNS_SUFFIX, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_dns_suffix(resp, len, out, cap);
}

int amthi_get_remote_access(struct mei_dev *dev, struct amthi_remote_access *out)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_remote_access(resp, len, out);
}

int amthi_get_power_policy(struct mei_dev *dev, char *out, size_t cap)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_CURRENT_POWER_POLICY, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_power_policy(resp, len, out, cap);
}

static int get_cert_hash(struct mei_dev *dev, uint32_t handle, struct amthi_cert_hash *out)
{
	uint8_t payload[4];
	uint8_t resp[RESPONSE_CAP];
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	size_t len;
	int r;

	put_u32le(&w, handle);
	r = call(dev, AMTHI_CMD_GET_CERT_HASH_ENTRY, payload, w.len, resp, &len);
	if (r == 0)
		r = amthi_decode_cert_hash(resp, len, out);
	if (r == 0)
		out->handle = handle;
	return r;
}

/*
 * Every handle the firmware lists is fetched (up to AMTHI_MAX_HASHES). More entries than CAP
 * gives MEI_E_TOO_BIG with *count set to how many there are.
 */
int amthi_get_cert_hashes(struct mei_dev *dev, struct amthi_cert_hash *out, unsigned cap,
			  unsigned *count)
{
	uint32_t handles[AMTHI_MAX_HASHES];
	uint8_t resp[RESPONSE_CAP];
	unsigned n = 0;
	size_t len;
	int r;

	*count = 0;
	r = call(dev, AMTHI_CMD_ENUMERATE_HASH_HANDLES, NULL, 0, resp, &len);
	if (r == 0)
		r = amthi_decode_hash_handles(resp, len, handles, &n);
	if (r != 0)
		return r;
	if (n > cap) {
		*count = n;
		return MEI_E_TOO_BIG;
	}
	for (unsigned i = 0; i < n; i++) {
		r = get_cert_hash(dev, handles[i], &out[i]);
		if (r != 0)
			return r;
	}
	*count = n;
	return 0;
}

int amthi_get_local_account(struct mei_dev *dev, struct amthi_local_account *out)
{
	static const uint8_t reserved[LOCAL_ACCOUNT_REQ] = {0};
	uint8_t resp[RESPONSE_CAP];
	size_t len = 0;
	int r = call(dev, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, reserved, sizeof(reserved), resp,
		     &len);

	if (r == 0)
		r = amthi_decode_local_account(resp, len, out);
	explicit_bzero(resp, sizeof(resp));
	return r;
}

int amthi_get_mac_addresses(struct mei_dev *dev, struct amthi_mac_addresses *out)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_GET_MAC_ADDRESSES, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_mac_addresses(resp, len, out);
}

/* ---- Text forms ---- */

int amthi_decode_status_only(uint32_t command, const uint8_t *buf, size_t len)
{
	struct cursor c;
	int r = open_response(command, buf, len, &c);

	if (r != 0)
		return r;
	return c.left == 0 || c.left == 4 ? 0 : MEI_E_PROTOCOL;
}

int amthi_unprovision(struct mei_dev *dev)
{
	const uint8_t mode[4] = {0, 0, 0, 0};
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_UNPROVISION, mode, sizeof(mode), resp, &len);

	return r != 0 ? r : amthi_decode_status_only(AMTHI_CMD_UNPROVISION, resp, len);
}

/* ---- Host-based configuration with TLS (AMT 19+) ---- */

size_t amthi_encode_start_configuration_hbased(uint8_t algorithm, const uint8_t *hash,
					       size_t hash_len, bool host_vpn,
					       const char *const *suffixes, size_t n_suffixes,
					       uint8_t *out, size_t cap)
{
	uint8_t payload[AMTHI_HBASED_REQUEST_LEN];
	uint8_t list[AMTHI_HBASED_SUFFIX_LIST] = {0};
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	size_t used = 0;

	if (hash_len > AMTHI_HBASED_HASH_MAX || (hash_len > 0 && !hash) ||
	    (n_suffixes > 0 && !suffixes))
		return 0;
	for (size_t i = 0; i < n_suffixes; i++) {
		size_t n = suffixes[i] ? strlen(suffixes[i]) : 0;

		if (n == 0 || n + 1 > sizeof(list) - used)
			return 0;
		memcpy(list + used, suffixes[i], n);
		used += n + 1; /* the NUL that ends it is already there */
	}
	put_u8(&w, algorithm);
	if (hash_len > 0)
		put_bytes(&w, hash, hash_len);
	put_zeros(&w, AMTHI_HBASED_HASH_MAX - hash_len);
	put_u8(&w, host_vpn ? 1 : 0);
	put_u32le(&w, (uint32_t)used);
	put_bytes(&w, list, sizeof(list));
	if (!wbuf_ok(&w) || w.len != AMTHI_HBASED_REQUEST_LEN)
		return 0;
	return amthi_encode(AMTHI_CMD_START_CONFIGURATION_HBASED, payload, w.len, out, cap);
}

int amthi_decode_start_configuration_hbased(const uint8_t *buf, size_t len,
					    struct amthi_hbased_response *out)
{
	struct cursor c;
	uint8_t lead;
	int r = open_response(AMTHI_CMD_START_CONFIGURATION_HBASED, buf, len, &c);

	if (r != 0)
		return r;
	if (c.left == 2 + AMTHI_HBASED_HASH_MAX) {
		if (cur_u8(&c, &lead) || lead != 0)
			return MEI_E_PROTOCOL;
	} else if (c.left != 1 + AMTHI_HBASED_HASH_MAX) {
		return MEI_E_PROTOCOL;
	}
	if (cur_u8(&c, &out->algorithm) || cur_bytes(&c, out->hash, AMTHI_HBASED_HASH_MAX))
		return MEI_E_PROTOCOL;
	out->hash_len = hash_length(out->algorithm, out->hash);
	return 0;
}

int amthi_start_configuration_hbased(struct mei_dev *dev, uint8_t algorithm, const uint8_t *hash,
				     size_t hash_len, bool host_vpn, const char *const *suffixes,
				     size_t n_suffixes, struct amthi_hbased_response *out)
{
	uint8_t req[REQUEST_CAP], resp[RESPONSE_CAP];
	size_t req_len = amthi_encode_start_configuration_hbased(
		algorithm, hash, hash_len, host_vpn, suffixes, n_suffixes, req, sizeof(req));
	size_t len;
	int r;

	if (req_len == 0)
		return MEI_E_TOO_BIG;
	r = exchange(dev, AMTHI_CMD_START_CONFIGURATION_HBASED, req, req_len, resp, sizeof(resp),
		     &len);
	return r != 0 ? r : amthi_decode_start_configuration_hbased(resp, len, out);
}

int amthi_stop_configuration(struct mei_dev *dev)
{
	uint8_t resp[RESPONSE_CAP];
	size_t len;
	int r = call(dev, AMTHI_CMD_STOP_CONFIGURATION, NULL, 0, resp, &len);

	return r != 0 ? r : amthi_decode_status_only(AMTHI_CMD_STOP_CONFIGURATION, resp, len);
}

void amthi_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

void amthi_ipv4_format(uint32_t ipv4, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", (unsigned)(ipv4 >> 24) & 0xFFu,
		 (unsigned)(ipv4 >> 16) & 0xFFu, (unsigned)(ipv4 >> 8) & 0xFFu,
		 (unsigned)ipv4 & 0xFFu);
}

void amthi_mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

const char *amthi_hash_alg_name(uint8_t alg)
{
	switch (alg) {
	case AMTHI_HASH_MD5:
		return "MD5";
	case AMTHI_HASH_SHA1:
		return "SHA1";
	case AMTHI_HASH_SHA256:
		return "SHA256";
	case AMTHI_HASH_SHA384_OR_SHA512:
		return "SHA384/SHA512";
	case 4:
		return "SHA224";
	case 5:
		return "SHA512";
	default:
		return "unknown";
	}
}
