/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AMTHI codec: byte vectors, one valid response per command, a rejection test for every
 * validation rule, every truncation of every valid response, and the calls over a scripted
 * mei_transact (this file's definition is linked instead of device.c's, which is unused here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mei.h"
#include "wire.h"

#define MSG_CAP 4096u

/* ---- Building responses ---- */

static void set_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static size_t wrap(uint8_t *out, uint32_t command, uint32_t status, const uint8_t *payload,
		   size_t plen)
{
	struct wbuf w = wbuf_init(out, MSG_CAP);

	put_u8(&w, 1);
	put_u8(&w, 1);
	put_u16le(&w, 0);
	put_u32le(&w, command | AMTHI_RESPONSE_BIT);
	put_u32le(&w, (uint32_t)(4 + plen));
	put_u32le(&w, status);
	put_bytes(&w, payload, plen);
	assert_true(wbuf_ok(&w));
	return w.len;
}

/* S padded with NULs to N bytes. */
static void put_fixed(struct wbuf *w, const char *s, size_t n)
{
	size_t l = strlen(s);

	put_bytes(w, s, l < n ? l : n);
	if (l < n)
		put_zeros(w, n - l);
}

static void put_version_entry(struct wbuf *w, const char *desc, const char *ver)
{
	put_u16le(w, (uint16_t)strlen(desc));
	put_fixed(w, desc, AMTHI_VERSION_STRLEN);
	put_u16le(w, (uint16_t)strlen(ver));
	put_fixed(w, ver, AMTHI_VERSION_STRLEN);
}

static const char *const versions[][2] = {
	{"Flash", "11.8.50"},
	{"Netstack", "11.8.50"},
	{"AMTApps", "11.8.50"},
	{"AMT", "11.8.50"},
	{"Sku", "16392"},
	{"VendorID", "8086"},
	{"Build Number", "3399"},
	{"Recovery Version", "11.8.50"},
	{"Recovery Build Num", "3399"},
	{"Legacy Mode", "False"},
};
#define N_VERSIONS (sizeof(versions) / sizeof(versions[0]))

static size_t p_code_versions(uint8_t *p)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	put_fixed(&w, "N1EET84W (1.59 )", 65);
	put_u32le(&w, N_VERSIONS);
	for (size_t i = 0; i < N_VERSIONS; i++)
		put_version_entry(&w, versions[i][0], versions[i][1]);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_u32_two(uint8_t *p)
{
	set_u32le(p, 2);
	return 4;
}

static const uint8_t uuid_wire[16] = {0x28, 0x00, 0xf8, 0x12, 0xb7, 0xb4, 0x2d, 0x4b,
				      0xac, 0xa8, 0x46, 0xe0, 0xff, 0x65, 0x81, 0x4c};

static size_t p_uuid(uint8_t *p)
{
	memcpy(p, uuid_wire, sizeof(uuid_wire));
	return sizeof(uuid_wire);
}

/* Enabled, 192.168.1.10, DHCP on, mode active, link up, MAC 00:1b:21:aa:bb:cc */
static const uint8_t lan_payload[] = {
	0x01, 0x00, 0x00, 0x00, 0x0A, 0x01, 0xA8, 0xC0, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x01, 0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc,
};

static size_t p_lan(uint8_t *p)
{
	memcpy(p, lan_payload, sizeof(lan_payload));
	return sizeof(lan_payload);
}

static size_t counted(uint8_t *p, const char *s, size_t n)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	put_u16le(&w, (uint16_t)n);
	put_bytes(&w, s, n);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_dns(uint8_t *p)
{
	return counted(p, "example.com", 11);
}

static size_t p_remote(uint8_t *p)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	put_u32le(&w, 0);
	put_u32le(&w, 2);
	put_u32le(&w, 3);
	put_u16le(&w, 15);
	put_bytes(&w, "mps.example.com", 15);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_power(uint8_t *p)
{
	static const char name[] = "Desktop: ON in S0, ME Wake in S3, S4-5";

	return counted(p, name, sizeof(name) - 1);
}

static size_t handles_payload(uint8_t *p, unsigned n)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	put_u32le(&w, n);
	for (unsigned i = 0; i < n; i++)
		put_u32le(&w, i * 3 + 1);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_handles(uint8_t *p)
{
	return handles_payload(p, 5);
}

static size_t cert_payload(uint8_t *p, uint8_t alg, size_t digest_len, const char *name,
			   size_t name_len)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);
	uint8_t hash[64] = {0};

	for (size_t i = 0; i < digest_len; i++)
		hash[i] = (uint8_t)(0xA0 + i);
	put_u32le(&w, 1);
	put_u32le(&w, 1);
	put_bytes(&w, hash, sizeof(hash));
	put_u8(&w, alg);
	put_u16le(&w, (uint16_t)name_len);
	put_bytes(&w, name, name_len);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_cert(uint8_t *p)
{
	return cert_payload(p, AMTHI_HASH_SHA256, 32, "VeriSign Class 3 Primary CA-G5", 30);
}

static size_t account_payload(uint8_t *p, size_t field, const char *user, const char *pass)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	put_fixed(&w, user, field);
	put_fixed(&w, pass, field);
	assert_true(wbuf_ok(&w));
	return w.len;
}

static size_t p_account66(uint8_t *p)
{
	return account_payload(p, 33, "$$OsAdmin", "Jq3#kP9!vX2@mL7$");
}

/* MeshAgent's reading of 68 bytes: two 34-byte fields */
static size_t p_account68(uint8_t *p)
{
	return account_payload(p, 34, "$$OsAdmin", "Jq3#kP9!vX2@mL7$");
}

/* The other reading: user[33], pass[33], two trailing bytes */
static size_t p_account68pad(uint8_t *p)
{
	size_t n = account_payload(p, 33, "$$OsAdmin", "Jq3#kP9!vX2@mL7$");

	p[n] = 0;
	p[n + 1] = 0;
	return n + 2;
}

static size_t p_macs(uint8_t *p)
{
	static const uint8_t m[12] = {0, 0, 0, 0, 0, 0, 0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc};

	memcpy(p, m, sizeof(m));
	return sizeof(m);
}

/* ---- Decoders behind one signature ---- */

static int d_code_versions(const uint8_t *b, size_t n)
{
	struct amthi_code_versions v;

	return amthi_decode_code_versions(b, n, &v);
}

static int d_prov_state(const uint8_t *b, size_t n)
{
	uint32_t v;

	return amthi_decode_u32(AMTHI_CMD_GET_PROVISIONING_STATE, b, n, &v);
}

static int d_control_mode(const uint8_t *b, size_t n)
{
	uint32_t v;

	return amthi_decode_u32(AMTHI_CMD_GET_CONTROL_MODE, b, n, &v);
}

static int d_uuid(const uint8_t *b, size_t n)
{
	uint8_t u[16];

	return amthi_decode_uuid(b, n, u);
}

static int d_lan(const uint8_t *b, size_t n)
{
	struct amthi_lan_settings s;

	return amthi_decode_lan_settings(b, n, &s);
}

static int d_dns(const uint8_t *b, size_t n)
{
	char s[256];

	return amthi_decode_dns_suffix(b, n, s, sizeof(s));
}

static int d_remote(const uint8_t *b, size_t n)
{
	struct amthi_remote_access ra;

	return amthi_decode_remote_access(b, n, &ra);
}

static int d_power(const uint8_t *b, size_t n)
{
	char s[256];

	return amthi_decode_power_policy(b, n, s, sizeof(s));
}

static int d_handles(const uint8_t *b, size_t n)
{
	uint32_t h[AMTHI_MAX_HASHES];
	unsigned count;

	return amthi_decode_hash_handles(b, n, h, &count);
}

static int d_cert(const uint8_t *b, size_t n)
{
	struct amthi_cert_hash ch;

	return amthi_decode_cert_hash(b, n, &ch);
}

static int d_account(const uint8_t *b, size_t n)
{
	struct amthi_local_account a;

	return amthi_decode_local_account(b, n, &a);
}

static int d_macs(const uint8_t *b, size_t n)
{
	struct amthi_mac_addresses m;

	return amthi_decode_mac_addresses(b, n, &m);
}

struct vec {
	const char *name;
	uint32_t command;
	size_t (*payload)(uint8_t *p);
	int (*decode)(const uint8_t *b, size_t n);
};

static const struct vec vecs[] = {
	{"GetCodeVersions", AMTHI_CMD_GET_CODE_VERSIONS, p_code_versions, d_code_versions},
	{"GetProvisioningState", AMTHI_CMD_GET_PROVISIONING_STATE, p_u32_two, d_prov_state},
	{"GetControlMode", AMTHI_CMD_GET_CONTROL_MODE, p_u32_two, d_control_mode},
	{"GetUUID", AMTHI_CMD_GET_UUID, p_uuid, d_uuid},
	{"GetLANInterfaceSettings", AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, p_lan, d_lan},
	{"GetDnsSuffix", AMTHI_CMD_GET_DNS_SUFFIX, p_dns, d_dns},
	{"GetRemoteAccessConnectionStatus", AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS,
	 p_remote, d_remote},
	{"GetCurrentPowerPolicy", AMTHI_CMD_GET_CURRENT_POWER_POLICY, p_power, d_power},
	{"EnumerateHashHandles", AMTHI_CMD_ENUMERATE_HASH_HANDLES, p_handles, d_handles},
	{"GetCertHashEntry", AMTHI_CMD_GET_CERT_HASH_ENTRY, p_cert, d_cert},
	{"GetLocalSystemAccount/66", AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, p_account66, d_account},
	{"GetLocalSystemAccount/68", AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, p_account68, d_account},
	{"GetLocalSystemAccount/68pad", AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, p_account68pad,
	 d_account},
	{"GetMacAddresses", AMTHI_CMD_GET_MAC_ADDRESSES, p_macs, d_macs},
};
#define N_VECS (sizeof(vecs) / sizeof(vecs[0]))

static size_t build_valid(const struct vec *v, uint8_t *msg)
{
	uint8_t payload[MSG_CAP];
	size_t plen = v->payload(payload);

	return wrap(msg, v->command, 0, payload, plen);
}

/* ---- Encoding and text forms ---- */

static void test_encode_get_code_versions(void **state)
{
	(void)state;
	static const uint8_t expect[] = {0x01, 0x01, 0x00, 0x00, 0x1A, 0x00,
					 0x00, 0x04, 0x00, 0x00, 0x00, 0x00};
	uint8_t out[16];

	assert_int_equal(amthi_encode(AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, out, sizeof(out)), 12);
	assert_memory_equal(out, expect, sizeof(expect));
	assert_int_equal(amthi_encode(AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, out, 11), 0);
}

static void test_encode_with_payload(void **state)
{
	(void)state;
	static const uint8_t expect[] = {0x01, 0x01, 0x00, 0x00, 0x48, 0x00, 0x00, 0x04,
					 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
	const uint8_t index[4] = {1, 0, 0, 0};
	uint8_t out[16];

	assert_int_equal(amthi_encode(AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, index, 4, out,
				      sizeof(out)),
			 16);
	assert_memory_equal(out, expect, sizeof(expect));
	assert_int_equal(amthi_encode(AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, index, 4, out, 15),
			 0);
}

static void test_ipv4_example(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];
	struct amthi_lan_settings s;
	char ip[16], mac[18];
	size_t n = wrap(msg, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, 0, lan_payload,
			sizeof(lan_payload));

	/* 192.168.1.10 is 0A 01 A8 C0 on the wire */
	assert_memory_equal(msg + 20, "\x0A\x01\xA8\xC0", 4);
	assert_int_equal(amthi_decode_lan_settings(msg, n, &s), 0);
	assert_int_equal(s.ipv4, 0xC0A8010A);
	amthi_ipv4_format(s.ipv4, ip);
	assert_string_equal(ip, "192.168.1.10");
	assert_true(s.enabled);
	assert_true(s.dhcp_enabled);
	assert_int_equal(s.dhcp_ip_mode, 1);
	assert_int_equal(s.link_status, 1);
	amthi_mac_format(s.mac, mac);
	assert_string_equal(mac, "00:1b:21:aa:bb:cc");
	amthi_ipv4_format(0xFFFFFFFF, ip);
	assert_string_equal(ip, "255.255.255.255");
	amthi_ipv4_format(0, ip);
	assert_string_equal(ip, "0.0.0.0");
}

static void test_uuid_example(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP], u[16];
	char text[37];
	size_t n = wrap(msg, AMTHI_CMD_GET_UUID, 0, uuid_wire, sizeof(uuid_wire));
	static const uint8_t mixed[16] = {0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66,
					  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

	assert_int_equal(amthi_decode_uuid(msg, n, u), 0);
	assert_memory_equal(u, uuid_wire, 16);
	amthi_uuid_format(u, text);
	assert_string_equal(text, "12f80028-b4b7-4b2d-aca8-46e0ff65814c");
	amthi_uuid_format(mixed, text);
	assert_string_equal(text, "00112233-4455-6677-8899-aabbccddeeff");
}

static void test_hash_alg_names(void **state)
{
	(void)state;
	assert_string_equal(amthi_hash_alg_name(0), "MD5");
	assert_string_equal(amthi_hash_alg_name(1), "SHA1");
	assert_string_equal(amthi_hash_alg_name(2), "SHA256");
	assert_string_equal(amthi_hash_alg_name(3), "SHA384/SHA512");
	assert_string_equal(amthi_hash_alg_name(200), "unknown");
}

/* ---- Valid vectors, decoded ---- */

static void test_every_valid_vector_decodes(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		size_t n = build_valid(&vecs[i], msg);

		if (vecs[i].decode(msg, n) != 0)
			fail_msg("%s: valid vector rejected", vecs[i].name);
	}
}

static void test_code_versions_realistic(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_code_versions v;
	size_t plen = p_code_versions(payload);
	size_t n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);

	assert_int_equal(plen, 65 + 4 + 44 * N_VERSIONS);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), 0);
	assert_string_equal(v.bios, "N1EET84W (1.59 )");
	assert_int_equal(v.count, N_VERSIONS);
	assert_string_equal(amthi_version_get(&v, "AMT"), "11.8.50");
	assert_string_equal(amthi_version_get(&v, "Sku"), "16392");
	assert_string_equal(amthi_version_get(&v, "Build Number"), "3399");
	assert_string_equal(amthi_version_get(&v, "Recovery Build Num"), "3399");
	assert_string_equal(amthi_version_get(&v, "Legacy Mode"), "False");
	assert_null(amthi_version_get(&v, "Nonexistent"));
	assert_null(amthi_version_get(&v, "AM"));
}

static void test_code_versions_full_width_strings(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	struct amthi_code_versions v;
	size_t n;

	/* a 65-byte BIOS field with no NUL and 20-character strings still fit */
	put_fixed(&w, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", 65);
	put_u32le(&w, 1);
	put_version_entry(&w, "DDDDDDDDDDDDDDDDDDDD", "VVVVVVVVVVVVVVVVVVVV");
	assert_true(wbuf_ok(&w));
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, w.len);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), 0);
	assert_int_equal(strlen(v.bios), 65);
	assert_string_equal(amthi_version_get(&v, "DDDDDDDDDDDDDDDDDDDD"), "VVVVVVVVVVVVVVVVVVVV");
}

static void test_code_versions_max_count(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_code_versions v;

	for (unsigned count = AMTHI_MAX_VERSIONS; count <= AMTHI_MAX_VERSIONS + 1; count++) {
		struct wbuf w = wbuf_init(payload, sizeof(payload));
		size_t n;

		put_fixed(&w, "BIOS", 65);
		put_u32le(&w, count);
		for (unsigned i = 0; i < count; i++)
			put_version_entry(&w, "X", "1");
		assert_true(wbuf_ok(&w));
		n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, w.len);
		assert_int_equal(amthi_decode_code_versions(msg, n, &v),
				 count <= AMTHI_MAX_VERSIONS ? 0 : MEI_E_PROTOCOL);
	}
}

static void test_u32_values(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP], p[4];
	uint32_t v;

	for (uint32_t val = 0; val <= 3; val++) {
		int expect = val <= 2 ? 0 : MEI_E_PROTOCOL;
		size_t n;

		set_u32le(p, val);
		n = wrap(msg, AMTHI_CMD_GET_PROVISIONING_STATE, 0, p, 4);
		v = 99;
		assert_int_equal(amthi_decode_u32(AMTHI_CMD_GET_PROVISIONING_STATE, msg, n, &v),
				 expect);
		if (expect == 0)
			assert_int_equal(v, val);
		n = wrap(msg, AMTHI_CMD_GET_CONTROL_MODE, 0, p, 4);
		assert_int_equal(amthi_decode_u32(AMTHI_CMD_GET_CONTROL_MODE, msg, n, &v),
				 expect);
	}
	/* the command argument picks the rule; others are not u32 responses */
	set_u32le(p, 0);
	assert_int_equal(amthi_decode_u32(AMTHI_CMD_GET_UUID,
					  msg, wrap(msg, AMTHI_CMD_GET_UUID, 0, p, 4), &v),
			 MEI_E_PROTOCOL);
	/* a control-mode reply handed in as provisioning state: wrong echo */
	assert_int_equal(amthi_decode_u32(AMTHI_CMD_GET_PROVISIONING_STATE, msg,
					  wrap(msg, AMTHI_CMD_GET_CONTROL_MODE, 0, p, 4), &v),
			 MEI_E_PROTOCOL);
}

static void test_remote_access_values(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_remote_access ra;
	size_t n = wrap(msg, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, 0, payload,
			p_remote(payload));

	assert_int_equal(amthi_decode_remote_access(msg, n, &ra), 0);
	assert_int_equal(ra.network_status, 0);
	assert_int_equal(ra.remote_status, 2);
	assert_int_equal(ra.trigger, 3);
	assert_string_equal(ra.mps_hostname, "mps.example.com");
}

static void test_power_policy_value(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	char name[64];
	size_t n = wrap(msg, AMTHI_CMD_GET_CURRENT_POWER_POLICY, 0, payload, p_power(payload));

	assert_int_equal(amthi_decode_power_policy(msg, n, name, sizeof(name)), 0);
	assert_string_equal(name, "Desktop: ON in S0, ME Wake in S3, S4-5");
	/* intel/lms counts a trailing NUL in the length: tolerated */
	n = wrap(msg, AMTHI_CMD_GET_CURRENT_POWER_POLICY, 0, payload,
		 counted(payload, "Mobile: ON in S0\0", 17));
	assert_int_equal(amthi_decode_power_policy(msg, n, name, sizeof(name)), 0);
	assert_string_equal(name, "Mobile: ON in S0");
}

static void test_mac_addresses_values(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_mac_addresses m;
	char text[18];
	size_t n = wrap(msg, AMTHI_CMD_GET_MAC_ADDRESSES, 0, payload, p_macs(payload));

	assert_int_equal(amthi_decode_mac_addresses(msg, n, &m), 0);
	amthi_mac_format(m.dedicated, text);
	assert_string_equal(text, "00:00:00:00:00:00");
	amthi_mac_format(m.host, text);
	assert_string_equal(text, "00:1b:21:aa:bb:cc");
}

/* ---- Header rules, over every command ---- */

static void expect_reject_all(uint8_t *msg, size_t n, const struct vec *v, const char *rule)
{
	int r = v->decode(msg, n);

	if (r != MEI_E_PROTOCOL)
		fail_msg("%s: %s gave %d, expected MEI_E_PROTOCOL", v->name, rule, r);
}

static void test_header_rules(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		const struct vec *v = &vecs[i];
		size_t n = build_valid(v, msg);

		/* more bytes than length + 12 */
		msg[n] = 0;
		expect_reject_all(msg, n + 1, v, "trailing byte");
		/* fewer bytes than length + 12 */
		expect_reject_all(msg, n - 1, v, "missing byte");
		set_u32le(msg + 8, (uint32_t)(n - 12 + 1));
		expect_reject_all(msg, n, v, "length says one more");
		set_u32le(msg + 8, (uint32_t)(n - 12 - 1));
		expect_reject_all(msg, n, v, "length says one less");
		set_u32le(msg + 8, 0xFFFFFFFFu);
		expect_reject_all(msg, n, v, "huge length");

		n = build_valid(v, msg);
		set_u32le(msg + 4, v->command);
		expect_reject_all(msg, n, v, "echo without the response bit");
		set_u32le(msg + 4, (v->command ^ 0x1u) | AMTHI_RESPONSE_BIT);
		expect_reject_all(msg, n, v, "echo of another command");
		set_u32le(msg + 4, v->command | AMTHI_RESPONSE_BIT | 0x00400000u);
		expect_reject_all(msg, n, v, "echo with extra bits");

		n = build_valid(v, msg);
		msg[2] = 1;
		expect_reject_all(msg, n, v, "reserved low byte");
		msg[2] = 0;
		msg[3] = 0x80;
		expect_reject_all(msg, n, v, "reserved high byte");
		msg[3] = 0;

		msg[0] = 0;
		expect_reject_all(msg, n, v, "major 0");
		msg[0] = 2;
		expect_reject_all(msg, n, v, "major 2");
		msg[0] = 1;

		msg[1] = 0;
		expect_reject_all(msg, n, v, "minor 0");
		msg[1] = 2;
		if (v->decode(msg, n) != 0)
			fail_msg("%s: minor 2 rejected", v->name);
	}
}

static void test_status_before_payload(void **state)
{
	(void)state;
	static const uint32_t statuses[] = {
		AMTHI_STATUS_INTERNAL_ERROR, AMTHI_STATUS_NOT_READY,
		AMTHI_STATUS_INVALID_AMT_MODE, AMTHI_STATUS_NOT_PERMITTED,
		AMTHI_STATUS_INVALID_PARAMETER, AMTHI_STATUS_INVALID_HANDLE,
		AMTHI_STATUS_NOT_FOUND,
	};
	uint8_t payload[MSG_CAP], msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		const struct vec *v = &vecs[i];
		size_t plen = v->payload(payload);

		for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
			/* status only: the payload rule must not be applied */
			size_t n = wrap(msg, v->command, statuses[s], NULL, 0);

			if (v->decode(msg, n) != (int)statuses[s])
				fail_msg("%s: status %u with no payload", v->name, statuses[s]);
			/* status with a whole payload, and with half of one */
			n = wrap(msg, v->command, statuses[s], payload, plen);
			assert_int_equal(v->decode(msg, n), (int)statuses[s]);
			n = wrap(msg, v->command, statuses[s], payload, plen / 2);
			assert_int_equal(v->decode(msg, n), (int)statuses[s]);
		}
		/* a status beyond INT_MAX cannot be told from an error code */
		assert_int_equal(v->decode(msg, wrap(msg, v->command, 0x80000000u, NULL, 0)),
				 MEI_E_PROTOCOL);
	}
}

static void test_too_short_for_status(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		const struct vec *v = &vecs[i];

		for (uint32_t len = 0; len < 4; len++) {
			struct wbuf w = wbuf_init(msg, sizeof(msg));

			put_u8(&w, 1);
			put_u8(&w, 1);
			put_u16le(&w, 0);
			put_u32le(&w, v->command | AMTHI_RESPONSE_BIT);
			put_u32le(&w, len);
			put_bytes(&w, "\x02\x00\x00", len); /* a NOT_READY cut short */
			assert_true(wbuf_ok(&w));
			expect_reject_all(msg, w.len, v, "no room for the status");
		}
		expect_reject_all(msg, 0, v, "empty message");
		expect_reject_all(msg, 11, v, "short header");
	}
}

/* One byte more in the payload, with the length field agreeing: every per-command rule. */
static void test_payload_one_byte_long(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		const struct vec *v = &vecs[i];
		size_t plen = v->payload(payload);
		size_t n;

		payload[plen] = 0;
		n = wrap(msg, v->command, 0, payload, plen + 1);
		expect_reject_all(msg, n, v, "payload one byte long");
		n = wrap(msg, v->command, 0, payload, plen - 1);
		expect_reject_all(msg, n, v, "payload one byte short");
	}
}

/* ---- Per-command length rules ---- */

static void test_code_versions_rules(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_code_versions v;
	size_t plen = p_code_versions(payload);
	size_t n;

	/* count says one more / one less than the entries sent */
	set_u32le(payload + 65, N_VERSIONS + 1);
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	set_u32le(payload + 65, N_VERSIONS - 1);
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	set_u32le(payload + 65, 0xFFFFFFFFu);
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	set_u32le(payload + 65, N_VERSIONS);

	/* entries that are not a whole number of 44 bytes */
	for (size_t extra = 1; extra < 44; extra += 7) {
		memset(payload + plen, 0, extra);
		n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen + extra);
		assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	}

	/* description length 21, then version length 21 (entry 3, "AMT") */
	payload[69 + 3 * 44] = 21;
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	payload[69 + 3 * 44] = 3;
	payload[69 + 3 * 44 + 22] = 21;
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	payload[69 + 3 * 44 + 22] = 0xFF;
	payload[69 + 3 * 44 + 23] = 0xFF;
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	payload[69 + 3 * 44 + 22] = 7;
	payload[69 + 3 * 44 + 23] = 0;
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, plen);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), 0);

	/* too short to hold BiosVersion and the count */
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, 68);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), MEI_E_PROTOCOL);
	set_u32le(payload + 65, 0);
	n = wrap(msg, AMTHI_CMD_GET_CODE_VERSIONS, 0, payload, 69);
	assert_int_equal(amthi_decode_code_versions(msg, n, &v), 0);
	assert_int_equal(v.count, 0);
}

static void test_counted_string_rules(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	char s[12], big[64];
	size_t n;

	/* exact fit: 11 characters and the NUL in 12 bytes */
	n = wrap(msg, AMTHI_CMD_GET_DNS_SUFFIX, 0, payload, counted(payload, "example.com", 11));
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, sizeof(s)), 0);
	assert_string_equal(s, "example.com");
	/* one byte too small a destination: refused, not cut */
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, 11), MEI_E_PROTOCOL);
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, 0), MEI_E_PROTOCOL);
	/* the u16 length disagrees with the bytes sent */
	payload[0] = 12;
	n = wrap(msg, AMTHI_CMD_GET_DNS_SUFFIX, 0, payload, 13);
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, sizeof(s)), MEI_E_PROTOCOL);
	payload[0] = 10;
	n = wrap(msg, AMTHI_CMD_GET_DNS_SUFFIX, 0, payload, 13);
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, sizeof(s)), MEI_E_PROTOCOL);
	/* empty suffix */
	n = wrap(msg, AMTHI_CMD_GET_DNS_SUFFIX, 0, payload, counted(payload, "", 0));
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	/* no length field at all */
	n = wrap(msg, AMTHI_CMD_GET_DNS_SUFFIX, 0, payload, 1);
	assert_int_equal(amthi_decode_dns_suffix(msg, n, s, sizeof(s)), MEI_E_PROTOCOL);

	/* power policy: same rules */
	n = wrap(msg, AMTHI_CMD_GET_CURRENT_POWER_POLICY, 0, payload,
		 counted(payload, "Desktop: ON in S0", 17));
	assert_int_equal(amthi_decode_power_policy(msg, n, big, sizeof(big)), 0);
	assert_string_equal(big, "Desktop: ON in S0");
	assert_int_equal(amthi_decode_power_policy(msg, n, s, sizeof(s)), MEI_E_PROTOCOL);
	payload[0] = 18;
	n = wrap(msg, AMTHI_CMD_GET_CURRENT_POWER_POLICY, 0, payload, 19);
	assert_int_equal(amthi_decode_power_policy(msg, n, big, sizeof(big)), MEI_E_PROTOCOL);
	payload[0] = 16;
	n = wrap(msg, AMTHI_CMD_GET_CURRENT_POWER_POLICY, 0, payload, 19);
	assert_int_equal(amthi_decode_power_policy(msg, n, big, sizeof(big)), MEI_E_PROTOCOL);
}

static void test_remote_access_rules(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	char host[300];
	struct amthi_remote_access ra;
	struct wbuf w;
	size_t n;

	memset(host, 'h', sizeof(host));
	for (size_t len = 254; len <= 257; len++) {
		w = wbuf_init(payload, sizeof(payload));
		put_u32le(&w, 1);
		put_u32le(&w, 0);
		put_u32le(&w, 2);
		put_u16le(&w, (uint16_t)len);
		put_bytes(&w, host, len);
		assert_true(wbuf_ok(&w));
		n = wrap(msg, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, 0, payload, w.len);
		/* mps_hostname[256] holds 255 characters */
		assert_int_equal(amthi_decode_remote_access(msg, n, &ra),
				 len <= 255 ? 0 : MEI_E_PROTOCOL);
	}
	/* hostname length one more than sent */
	payload[12] = 16;
	payload[13] = 0;
	memcpy(payload + 14, "mps.example.com", 15);
	n = wrap(msg, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, 0, payload, 29);
	assert_int_equal(amthi_decode_remote_access(msg, n, &ra), MEI_E_PROTOCOL);
	payload[12] = 15;
	n = wrap(msg, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, 0, payload, 29);
	assert_int_equal(amthi_decode_remote_access(msg, n, &ra), 0);
}

static void test_hash_handles_rules(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	uint32_t h[AMTHI_MAX_HASHES];
	unsigned count = 0;
	size_t plen, n;

	/* 33 handles: all of them, including those above 23 */
	plen = handles_payload(payload, 33);
	n = wrap(msg, AMTHI_CMD_ENUMERATE_HASH_HANDLES, 0, payload, plen);
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), 0);
	assert_int_equal(count, 33);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[24], 73);
	assert_int_equal(h[32], 97);
	/* 34: over the limit even though the length agrees */
	plen = handles_payload(payload, 34);
	n = wrap(msg, AMTHI_CMD_ENUMERATE_HASH_HANDLES, 0, payload, plen);
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), MEI_E_PROTOCOL);
	/* count disagrees with the handles sent */
	plen = handles_payload(payload, 5);
	set_u32le(payload, 6);
	n = wrap(msg, AMTHI_CMD_ENUMERATE_HASH_HANDLES, 0, payload, plen);
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), MEI_E_PROTOCOL);
	set_u32le(payload, 4);
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), MEI_E_PROTOCOL);
	set_u32le(payload, 0x40000001u); /* 4 * count wraps a 32-bit size */
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), MEI_E_PROTOCOL);
	/* none */
	plen = handles_payload(payload, 0);
	n = wrap(msg, AMTHI_CMD_ENUMERATE_HASH_HANDLES, 0, payload, plen);
	assert_int_equal(amthi_decode_hash_handles(msg, n, h, &count), 0);
	assert_int_equal(count, 0);
}

static void test_cert_hash_rules(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_cert_hash ch;
	char name[300];
	size_t plen, n;

	plen = p_cert(payload);
	assert_int_equal(plen, 75 + 30); /* length == 79 + NameLen with the status */
	n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, plen);
	assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), 0);
	assert_true(ch.is_default);
	assert_true(ch.is_active);
	assert_int_equal(ch.algorithm, AMTHI_HASH_SHA256);
	assert_int_equal(ch.hash_len, 32);
	assert_int_equal(ch.hash[0], 0xA0);
	assert_int_equal(ch.hash[31], 0xA0 + 31);
	assert_string_equal(ch.name, "VeriSign Class 3 Primary CA-G5");

	/* NameLen one more, one less than the bytes sent */
	payload[73] = 31;
	assert_int_equal(amthi_decode_cert_hash(msg, wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0,
							  payload, plen),
						&ch),
			 MEI_E_PROTOCOL);
	payload[73] = 29;
	assert_int_equal(amthi_decode_cert_hash(msg, wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0,
							  payload, plen),
						&ch),
			 MEI_E_PROTOCOL);

	/* a name longer than name[256] */
	memset(name, 'n', sizeof(name));
	plen = cert_payload(payload, AMTHI_HASH_SHA256, 32, name, 256);
	n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, plen);
	assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), MEI_E_PROTOCOL);
	plen = cert_payload(payload, AMTHI_HASH_SHA256, 32, name, 255);
	n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, plen);
	assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), 0);
	assert_int_equal(strlen(ch.name), 255);

	/* too short for the fixed part */
	n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, 74);
	assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), MEI_E_PROTOCOL);
}

static void test_cert_hash_algorithm_3_both_variants(void **state)
{
	(void)state;
	static const struct {
		uint8_t alg;
		size_t digest, expect;
	} cases[] = {
		{AMTHI_HASH_MD5, 16, 16},
		{AMTHI_HASH_SHA1, 20, 20},
		{AMTHI_HASH_SHA256, 32, 32},
		{AMTHI_HASH_SHA384_OR_SHA512, 48, 48}, /* rpc-go: SHA384 */
		{AMTHI_HASH_SHA384_OR_SHA512, 64, 64}, /* lms, MeshAgent: SHA512 */
		{AMTHI_HASH_SHA384_OR_SHA512, 49, 64}, /* any byte past 48 makes it SHA512 */
		{5, 64, 64},
		{77, 64, 0},
	};
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_cert_hash ch;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t plen = cert_payload(payload, cases[i].alg, cases[i].digest, "CA", 2);
		size_t n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, plen);

		assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), 0);
		assert_int_equal(ch.algorithm, cases[i].alg);
		assert_int_equal(ch.hash_len, cases[i].expect);
	}
	/* a SHA512 digest whose only non-zero tail byte is the last one */
	{
		size_t plen = cert_payload(payload, 3, 48, "CA", 2);
		size_t n;

		payload[8 + 63] = 1;
		n = wrap(msg, AMTHI_CMD_GET_CERT_HASH_ENTRY, 0, payload, plen);
		assert_int_equal(amthi_decode_cert_hash(msg, n, &ch), 0);
		assert_int_equal(ch.hash_len, 64);
	}
}

static void test_local_account_variants(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_local_account a;
	size_t plen, n;

	plen = p_account66(payload);
	assert_int_equal(plen, 66);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.username, "$$OsAdmin");
	assert_string_equal(a.password, "Jq3#kP9!vX2@mL7$");

	plen = p_account68(payload);
	assert_int_equal(plen, 68);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen);
	memset(&a, 0, sizeof(a));
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.username, "$$OsAdmin");
	assert_string_equal(a.password, "Jq3#kP9!vX2@mL7$");

	plen = p_account68pad(payload);
	assert_int_equal(plen, 68);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen);
	memset(&a, 0, sizeof(a));
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.username, "$$OsAdmin");
	assert_string_equal(a.password, "Jq3#kP9!vX2@mL7$");

	/* a 32-character password in either 68-byte reading */
	plen = account_payload(payload, 34, "$$OsAdmin", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.password, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	plen = account_payload(payload, 33, "$$OsAdmin", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	memset(payload + plen, 0xEE, 2); /* whatever the trailing bytes hold */
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen + 2);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.password, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");

	/* an empty password reads the same in both */
	plen = account_payload(payload, 34, "$$OsAdmin", "");
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, plen);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_string_equal(a.username, "$$OsAdmin");
	assert_string_equal(a.password, "");

	/* 67 bytes: neither layout */
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 67);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 65);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 69);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
}

static void test_local_account_strings_must_fit(void **state)
{
	(void)state;
	uint8_t payload[MSG_CAP], msg[MSG_CAP];
	struct amthi_local_account a;
	size_t n;

	/* 66: a 33-byte user field with no NUL */
	memset(payload, 'u', 33);
	memset(payload + 33, 0, 33);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 66);
	memset(&a, 0x5A, sizeof(a));
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	/* a failed decode leaves nothing of the account behind */
	for (size_t i = 0; i < sizeof(a.password); i++)
		assert_int_equal(a.password[i], 0);
	/* 66: a password field with no NUL */
	account_payload(payload, 33, "$$OsAdmin", "");
	memset(payload + 33, 'p', 33);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 66);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	/* 68: a 33-character password (NUL in the 34th byte) does not fit password[33] */
	account_payload(payload, 34, "$$OsAdmin", "");
	memset(payload + 34, 'p', 33);
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 68);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	/* 68, user[33] pass[33] reading: a password field with no NUL in its 33 bytes */
	account_payload(payload, 33, "$$OsAdmin", "");
	memset(payload + 33, 'p', 33);
	payload[66] = 0;
	payload[67] = 0;
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 68);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), MEI_E_PROTOCOL);
	/* 68, 34-byte reading: 32 characters fit */
	account_payload(payload, 34, "$$OsAdmin", "");
	memset(payload + 34, 'p', 33);
	payload[34 + 32] = 0;
	n = wrap(msg, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, 0, payload, 68);
	assert_int_equal(amthi_decode_local_account(msg, n, &a), 0);
	assert_int_equal(strlen(a.password), 32);
}

/* ---- Robustness: every truncation of every valid response ---- */

static void test_every_truncation_is_rejected(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];

	for (size_t i = 0; i < N_VECS; i++) {
		const struct vec *v = &vecs[i];
		size_t full = build_valid(v, msg);

		for (size_t n = 0; n < full; n++) {
			/* a heap copy of exactly N bytes, so ASan sees any over-read */
			uint8_t *cut = test_malloc(n ? n : 1);
			int r;

			memcpy(cut, msg, n);
			r = v->decode(cut, n);
			if (r == 0)
				fail_msg("%s: truncation to %zu bytes accepted", v->name, n);
			/* the length field made to agree with the cut: must not crash */
			if (n >= 12) {
				set_u32le(cut + 8, (uint32_t)(n - 12));
				(void)v->decode(cut, n);
			}
			test_free(cut);
		}
	}
}

/* Random payload bytes under a consistent header: no crash, no over-read. */
static void test_random_payloads_do_not_crash(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP], payload[MSG_CAP];
	uint32_t seed = 12345;

	for (size_t i = 0; i < N_VECS; i++) {
		for (int round = 0; round < 300; round++) {
			size_t plen = (size_t)(round % 120);
			uint8_t *copy;
			size_t n;

			for (size_t k = 0; k < plen; k++) {
				seed = seed * 1103515245u + 12345u;
				payload[k] = (uint8_t)(seed >> 16);
			}
			if (round % 3 == 0 && plen >= 4)
				set_u32le(payload, (uint32_t)(round % 40)); /* small counts */
			n = wrap(msg, vecs[i].command, 0, payload, plen);
			copy = test_malloc(n);
			memcpy(copy, msg, n);
			(void)vecs[i].decode(copy, n);
			test_free(copy);
		}
	}
}

/* ---- Calls, over a scripted transport ---- */

typedef int (*responder_fn)(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
			    size_t *resp_len);

static responder_fn responder;
static unsigned transactions;
static uint8_t last_req[512];
static size_t last_req_len;

int mei_transact(struct mei_dev *dev, const void *req, size_t req_len, void *resp, size_t cap,
		 size_t *resp_len)
{
	assert_non_null(dev);
	assert_true(req_len <= sizeof(last_req));
	memcpy(last_req, req, req_len);
	last_req_len = req_len;
	transactions++;
	return responder(req, req_len, resp, cap, resp_len);
}

static struct mei_dev *fake_dev(void)
{
	static int token;

	return (struct mei_dev *)(void *)&token;
}

static uint32_t req_command(const uint8_t *req)
{
	return (uint32_t)req[4] | (uint32_t)req[5] << 8 | (uint32_t)req[6] << 16 |
	       (uint32_t)req[7] << 24;
}

static int reply(uint8_t *resp, size_t cap, size_t *resp_len, uint32_t command,
		 uint32_t status, const uint8_t *payload, size_t plen)
{
	uint8_t msg[MSG_CAP];
	size_t n = wrap(msg, command, status, payload, plen);

	assert_true(n <= cap);
	memcpy(resp, msg, n);
	*resp_len = n;
	return 0;
}

/* Answers every command in vecs[] with its valid vector. */
static int respond_valid(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
			 size_t *resp_len)
{
	uint32_t command = req_command(req);
	uint8_t payload[MSG_CAP];

	assert_true(req_len >= 12);
	for (size_t i = 0; i < N_VECS; i++)
		if (vecs[i].command == command)
			return reply(resp, cap, resp_len, command, 0, payload,
				     vecs[i].payload(payload));
	fail_msg("unexpected command %08x", command);
	return MEI_E_PROTOCOL;
}

static unsigned not_ready_left;

static int respond_not_ready_then_valid(const uint8_t *req, size_t req_len, uint8_t *resp,
					size_t cap, size_t *resp_len)
{
	if (not_ready_left > 0) {
		not_ready_left--;
		return reply(resp, cap, resp_len, req_command(req), AMTHI_STATUS_NOT_READY, NULL,
			     0);
	}
	return respond_valid(req, req_len, resp, cap, resp_len);
}

static int respond_invalid_mode(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
				size_t *resp_len)
{
	(void)req_len;
	return reply(resp, cap, resp_len, req_command(req), AMTHI_STATUS_INVALID_AMT_MODE, NULL,
		     0);
}

static int respond_timeout(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
			   size_t *resp_len)
{
	(void)req;
	(void)req_len;
	(void)resp;
	(void)cap;
	(void)resp_len;
	return MEI_E_TIMEOUT;
}

static int setup_calls(void **state)
{
	(void)state;
	transactions = 0;
	last_req_len = 0;
	not_ready_left = 0;
	responder = respond_valid;
	return 0;
}

static void test_calls_decode_each_command(void **state)
{
	(void)state;
	struct amthi_code_versions cv;
	struct amthi_lan_settings lan;
	struct amthi_remote_access ra;
	struct amthi_mac_addresses macs;
	uint8_t uuid[16];
	uint32_t v;
	char text[256];

	assert_int_equal(amthi_get_code_versions(fake_dev(), &cv), 0);
	assert_string_equal(amthi_version_get(&cv, "AMT"), "11.8.50");
	assert_int_equal(last_req_len, 12);
	assert_memory_equal(last_req, "\x01\x01\x00\x00\x1A\x00\x00\x04\x00\x00\x00\x00", 12);

	assert_int_equal(amthi_get_provisioning_state(fake_dev(), &v), 0);
	assert_int_equal(v, AMTHI_PROVISIONING_POST);
	assert_int_equal(amthi_get_control_mode(fake_dev(), &v), 0);
	assert_int_equal(v, AMTHI_CONTROL_ACM);
	assert_int_equal(amthi_get_uuid(fake_dev(), uuid), 0);
	assert_memory_equal(uuid, uuid_wire, 16);

	assert_int_equal(amthi_get_lan_settings(fake_dev(), 1, &lan), 0);
	assert_int_equal(lan.ipv4, 0xC0A8010A);
	assert_int_equal(last_req_len, 16);
	assert_memory_equal(last_req + 8, "\x04\x00\x00\x00\x01\x00\x00\x00", 8);

	assert_int_equal(amthi_get_dns_suffix(fake_dev(), text, sizeof(text)), 0);
	assert_string_equal(text, "example.com");
	assert_int_equal(amthi_get_remote_access(fake_dev(), &ra), 0);
	assert_string_equal(ra.mps_hostname, "mps.example.com");
	assert_int_equal(amthi_get_power_policy(fake_dev(), text, sizeof(text)), 0);
	assert_string_equal(text, "Desktop: ON in S0, ME Wake in S3, S4-5");
	assert_int_equal(amthi_get_mac_addresses(fake_dev(), &macs), 0);
	assert_int_equal(macs.host[5], 0xcc);
}

static void test_call_local_account_request(void **state)
{
	(void)state;
	struct amthi_local_account a;
	static const uint8_t zeros[40] = {0};

	assert_int_equal(amthi_get_local_account(fake_dev(), &a), 0);
	assert_string_equal(a.username, "$$OsAdmin");
	assert_string_equal(a.password, "Jq3#kP9!vX2@mL7$");
	/* header length 40 and 40 reserved zero bytes */
	assert_int_equal(last_req_len, 52);
	assert_memory_equal(last_req, "\x01\x01\x00\x00\x67\x00\x00\x04\x28\x00\x00\x00", 12);
	assert_memory_equal(last_req + 12, zeros, 40);
}

static int respond_cert_hashes(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
			       size_t *resp_len)
{
	uint8_t payload[MSG_CAP];
	uint32_t command = req_command(req);
	char name[16];

	if (command == AMTHI_CMD_ENUMERATE_HASH_HANDLES) {
		assert_int_equal(req_len, 12);
		return reply(resp, cap, resp_len, command, 0, payload,
			     handles_payload(payload, AMTHI_MAX_HASHES));
	}
	assert_int_equal(command, AMTHI_CMD_GET_CERT_HASH_ENTRY);
	assert_int_equal(req_len, 16);
	assert_int_equal(req[8], 4);
	/* the name tells which handle was asked for */
	snprintf(name, sizeof(name), "CA %u", (unsigned)req[12] | (unsigned)req[13] << 8);
	return reply(resp, cap, resp_len, command, 0, payload,
		     cert_payload(payload, AMTHI_HASH_SHA256, 32, name, strlen(name)));
}

static void test_call_cert_hashes_all_handles(void **state)
{
	(void)state;
	struct amthi_cert_hash out[AMTHI_MAX_HASHES];
	unsigned count = 99;
	char name[16];

	responder = respond_cert_hashes;
	assert_int_equal(amthi_get_cert_hashes(fake_dev(), out, AMTHI_MAX_HASHES, &count), 0);
	assert_int_equal(count, AMTHI_MAX_HASHES);
	assert_int_equal(transactions, 1 + AMTHI_MAX_HASHES);
	for (unsigned i = 0; i < count; i++) {
		assert_int_equal(out[i].handle, i * 3 + 1);
		snprintf(name, sizeof(name), "CA %u", i * 3 + 1);
		assert_string_equal(out[i].name, name);
		assert_int_equal(out[i].hash_len, 32);
	}
}

static void test_call_cert_hashes_cap(void **state)
{
	(void)state;
	struct amthi_cert_hash out[4];
	unsigned count = 0;

	responder = respond_cert_hashes;
	assert_int_equal(amthi_get_cert_hashes(fake_dev(), out, 4, &count), MEI_E_TOO_BIG);
	assert_int_equal(count, AMTHI_MAX_HASHES);
	assert_int_equal(transactions, 1);
}

static void test_call_not_ready_is_retried(void **state)
{
	(void)state;
	uint32_t mode = 9;

	responder = respond_not_ready_then_valid;
	not_ready_left = 3;
	assert_int_equal(amthi_get_control_mode(fake_dev(), &mode), 0);
	assert_int_equal(mode, AMTHI_CONTROL_ACM);
	assert_int_equal(transactions, 4);
}

static void test_call_not_ready_is_bounded(void **state)
{
	(void)state;
	struct timespec a, b;
	uint32_t mode;
	long ms;

	responder = respond_not_ready_then_valid;
	not_ready_left = 1000000;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(amthi_get_control_mode(fake_dev(), &mode), AMTHI_STATUS_NOT_READY);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000L + (b.tv_nsec - a.tv_nsec) / 1000000L;
	assert_true(ms >= 9000 && ms < 12000);
	/* backoff, not a busy loop */
	assert_true(transactions > 5 && transactions < 30);
}

static void test_call_other_status_not_retried(void **state)
{
	(void)state;
	uint32_t mode;

	responder = respond_invalid_mode;
	assert_int_equal(amthi_get_control_mode(fake_dev(), &mode),
			 AMTHI_STATUS_INVALID_AMT_MODE);
	assert_int_equal(transactions, 1);
}

static void test_call_transport_error_passes_through(void **state)
{
	(void)state;
	struct amthi_local_account a;
	struct amthi_cert_hash out[AMTHI_MAX_HASHES];
	unsigned count = 7;

	responder = respond_timeout;
	assert_int_equal(amthi_get_local_account(fake_dev(), &a), MEI_E_TIMEOUT);
	assert_int_equal(amthi_get_cert_hashes(fake_dev(), out, AMTHI_MAX_HASHES, &count),
			 MEI_E_TIMEOUT);
	assert_int_equal(count, 0);
	assert_int_equal(transactions, 2);
}

/* ---- StartConfigurationHBased and StopConfiguration ---- */

static void test_encode_hbased_layout(void **state)
{
	(void)state;
	uint8_t out[512], hash[32];
	const char *const suffixes[] = {"example.test", "corp.example"};
	size_t n;

	for (size_t i = 0; i < sizeof(hash); i++)
		hash[i] = (uint8_t)(0xA0 + i);
	n = amthi_encode_start_configuration_hbased(AMTHI_HASH_SHA256, hash, sizeof(hash), false,
						    suffixes, 2, out, sizeof(out));
	/* header with length 390, then alg, hash padded to 64, HostVPN, SuffixListLen, List[320] */
	assert_int_equal(n, 12 + 390);
	assert_memory_equal(out, "\x01\x01\x00\x00\x8B\x00\x00\x04\x86\x01\x00\x00", 12);
	assert_int_equal(out[12], AMTHI_HASH_SHA256);
	assert_memory_equal(out + 13, hash, 32);
	for (size_t i = 13 + 32; i < 13 + 64; i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(out[77], 0);
	/* "example.test\0corp.example\0" is 26 bytes */
	assert_memory_equal(out + 78, "\x1A\x00\x00\x00", 4);
	assert_memory_equal(out + 82, "example.test\0corp.example\0", 26);
	for (size_t i = 82 + 26; i < n; i++)
		assert_int_equal(out[i], 0);

	n = amthi_encode_start_configuration_hbased(AMTHI_HASH_SHA256, hash, sizeof(hash), true,
						    NULL, 0, out, sizeof(out));
	assert_int_equal(n, 402);
	assert_int_equal(out[77], 1);
	assert_memory_equal(out + 78, "\x00\x00\x00\x00", 4);
}

static void test_encode_hbased_limits(void **state)
{
	(void)state;
	uint8_t out[512], hash[65] = {0};
	char long_suffix[330];
	const char *one[1] = {long_suffix};
	const char *empty[1] = {""};

	memset(long_suffix, 'a', sizeof(long_suffix) - 1);
	long_suffix[sizeof(long_suffix) - 1] = '\0';
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 65, false, NULL, 0, out,
								 sizeof(out)),
			 0);
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 32, false, one, 1, out,
								 sizeof(out)),
			 0);
	/* 319 characters and the NUL fill the list exactly */
	long_suffix[319] = '\0';
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 32, false, one, 1, out,
								 sizeof(out)),
			 402);
	long_suffix[319] = 'a';
	long_suffix[320] = '\0';
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 32, false, one, 1, out,
								 sizeof(out)),
			 0);
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 32, false, empty, 1, out,
								 sizeof(out)),
			 0);
	assert_int_equal(amthi_encode_start_configuration_hbased(2, hash, 32, false, NULL, 0, out,
								 401),
			 0);
}

static size_t hbased_payload(uint8_t *p, bool lead, uint8_t alg, uint8_t fill)
{
	struct wbuf w = wbuf_init(p, MSG_CAP);

	if (lead)
		put_u8(&w, 0);
	put_u8(&w, alg);
	for (unsigned i = 0; i < 64; i++)
		put_u8(&w, alg == AMTHI_HASH_SHA256 && i >= 32 ? 0 : (uint8_t)(fill + i));
	return w.len;
}

static void test_decode_hbased_variants(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP], payload[MSG_CAP];
	struct amthi_hbased_response r;
	size_t n, plen;

	/* PROTOCOL.md: u8 algorithm, Hash[64] */
	plen = hbased_payload(payload, false, AMTHI_HASH_SHA256, 0x10);
	n = wrap(msg, AMTHI_CMD_START_CONFIGURATION_HBASED, 0, payload, plen);
	assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r), 0);
	assert_int_equal(r.algorithm, AMTHI_HASH_SHA256);
	assert_int_equal(r.hash_len, 32);
	assert_int_equal(r.hash[0], 0x10);
	assert_int_equal(r.hash[31], 0x10 + 31);

	/* rpc-go's struct: one more byte first */
	plen = hbased_payload(payload, true, AMTHI_HASH_SHA384_OR_SHA512, 0x20);
	n = wrap(msg, AMTHI_CMD_START_CONFIGURATION_HBASED, 0, payload, plen);
	assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r), 0);
	assert_int_equal(r.algorithm, AMTHI_HASH_SHA384_OR_SHA512);
	assert_int_equal(r.hash_len, 64);
	assert_int_equal(r.hash[0], 0x20);

	/* ... whose extra byte must be zero */
	payload[0] = 1;
	n = wrap(msg, AMTHI_CMD_START_CONFIGURATION_HBASED, 0, payload, plen);
	assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r), MEI_E_PROTOCOL);

	/* any other length is wrong; a status comes back as itself */
	for (size_t len = 0; len < 70; len++) {
		if (len == 65 || len == 66)
			continue;
		memset(payload, 0, sizeof(payload));
		n = wrap(msg, AMTHI_CMD_START_CONFIGURATION_HBASED, 0, payload, len);
		assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r),
				 MEI_E_PROTOCOL);
	}
	n = wrap(msg, AMTHI_CMD_START_CONFIGURATION_HBASED, AMTHI_STATUS_INVALID_AMT_MODE, NULL, 0);
	assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r),
			 AMTHI_STATUS_INVALID_AMT_MODE);
	/* the echo names the command */
	plen = hbased_payload(payload, false, AMTHI_HASH_SHA256, 0);
	n = wrap(msg, AMTHI_CMD_STOP_CONFIGURATION, 0, payload, plen);
	assert_int_equal(amthi_decode_start_configuration_hbased(msg, n, &r), MEI_E_PROTOCOL);
}

static unsigned cert_not_ready_left;

static int respond_hbased(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
			  size_t *resp_len)
{
	uint8_t payload[MSG_CAP];
	uint32_t command = req_command(req);

	if (command == AMTHI_CMD_STOP_CONFIGURATION) {
		assert_int_equal(req_len, 12);
		return reply(resp, cap, resp_len, command, 0, NULL, 0);
	}
	assert_int_equal(command, AMTHI_CMD_START_CONFIGURATION_HBASED);
	assert_int_equal(req_len, 402);
	if (cert_not_ready_left > 0) {
		cert_not_ready_left--;
		return reply(resp, cap, resp_len, command, AMTHI_STATUS_CERTIFICATE_NOT_READY, NULL,
			     0);
	}
	return reply(resp, cap, resp_len, command, 0, payload,
		     hbased_payload(payload, false, AMTHI_HASH_SHA256, 0x40));
}

static void test_call_hbased_and_stop(void **state)
{
	(void)state;
	struct amthi_hbased_response r;
	const uint8_t hash[32] = {1, 2, 3};
	const char *const suffixes[] = {"example.test"};

	responder = respond_hbased;
	cert_not_ready_left = 2;
	assert_int_equal(amthi_start_configuration_hbased(fake_dev(), AMTHI_HASH_SHA256, hash, 32,
							  false, suffixes, 1, &r),
			 0);
	assert_int_equal(transactions, 3); /* CERTIFICATE_NOT_READY is retried */
	assert_int_equal(r.hash_len, 32);
	assert_int_equal(r.hash[0], 0x40);
	assert_memory_equal(last_req + 13, hash, 3);
	assert_memory_equal(last_req + 82, "example.test", 13);

	assert_int_equal(amthi_stop_configuration(fake_dev()), 0);
	assert_int_equal(transactions, 4);
	assert_memory_equal(last_req, "\x01\x01\x00\x00\x5E\x00\x00\x04\x00\x00\x00\x00", 12);

	responder = respond_invalid_mode;
	assert_int_equal(amthi_stop_configuration(fake_dev()), AMTHI_STATUS_INVALID_AMT_MODE);
	assert_int_equal(amthi_start_configuration_hbased(fake_dev(), AMTHI_HASH_SHA256, hash, 32,
							  false, NULL, 0, &r),
			 AMTHI_STATUS_INVALID_AMT_MODE);
	/* a request that cannot be encoded never reaches the ME */
	transactions = 0;
	assert_int_equal(amthi_start_configuration_hbased(fake_dev(), AMTHI_HASH_SHA256, hash, 80,
							  false, NULL, 0, &r),
			 MEI_E_TOO_BIG);
	assert_int_equal(transactions, 0);
}

#define CALL_TEST(f) cmocka_unit_test_setup(f, setup_calls)

static void test_status_only_replies(void **state)
{
	(void)state;
	uint8_t msg[MSG_CAP];
	const uint8_t four[4] = {0, 0, 0, 0};
	const uint8_t three[3] = {0, 0, 0};
	size_t n;

	n = wrap(msg, AMTHI_CMD_UNPROVISION, 0, NULL, 0);
	assert_int_equal(amthi_decode_status_only(AMTHI_CMD_UNPROVISION, msg, n), 0);
	n = wrap(msg, AMTHI_CMD_UNPROVISION, 0, four, sizeof(four));
	assert_int_equal(amthi_decode_status_only(AMTHI_CMD_UNPROVISION, msg, n), 0);
	n = wrap(msg, AMTHI_CMD_UNPROVISION, 0, three, sizeof(three));
	assert_int_equal(amthi_decode_status_only(AMTHI_CMD_UNPROVISION, msg, n), MEI_E_PROTOCOL);
	n = wrap(msg, AMTHI_CMD_UNPROVISION, AMTHI_STATUS_INVALID_AMT_MODE, NULL, 0);
	assert_int_equal(amthi_decode_status_only(AMTHI_CMD_UNPROVISION, msg, n),
			 AMTHI_STATUS_INVALID_AMT_MODE);
	n = wrap(msg, AMTHI_CMD_STOP_CONFIGURATION, 0, NULL, 0);
	assert_int_equal(amthi_decode_status_only(AMTHI_CMD_UNPROVISION, msg, n), MEI_E_PROTOCOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_only_replies),
		cmocka_unit_test(test_encode_hbased_layout),
		cmocka_unit_test(test_encode_hbased_limits),
		cmocka_unit_test(test_decode_hbased_variants),
		CALL_TEST(test_call_hbased_and_stop),
		cmocka_unit_test(test_encode_get_code_versions),
		cmocka_unit_test(test_encode_with_payload),
		cmocka_unit_test(test_ipv4_example),
		cmocka_unit_test(test_uuid_example),
		cmocka_unit_test(test_hash_alg_names),
		cmocka_unit_test(test_every_valid_vector_decodes),
		cmocka_unit_test(test_code_versions_realistic),
		cmocka_unit_test(test_code_versions_full_width_strings),
		cmocka_unit_test(test_code_versions_max_count),
		cmocka_unit_test(test_u32_values),
		cmocka_unit_test(test_remote_access_values),
		cmocka_unit_test(test_power_policy_value),
		cmocka_unit_test(test_mac_addresses_values),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_status_before_payload),
		cmocka_unit_test(test_too_short_for_status),
		cmocka_unit_test(test_payload_one_byte_long),
		cmocka_unit_test(test_code_versions_rules),
		cmocka_unit_test(test_counted_string_rules),
		cmocka_unit_test(test_remote_access_rules),
		cmocka_unit_test(test_hash_handles_rules),
		cmocka_unit_test(test_cert_hash_rules),
		cmocka_unit_test(test_cert_hash_algorithm_3_both_variants),
		cmocka_unit_test(test_local_account_variants),
		cmocka_unit_test(test_local_account_strings_must_fit),
		cmocka_unit_test(test_every_truncation_is_rejected),
		cmocka_unit_test(test_random_payloads_do_not_crash),
		CALL_TEST(test_calls_decode_each_command),
		CALL_TEST(test_call_local_account_request),
		CALL_TEST(test_call_cert_hashes_all_handles),
		CALL_TEST(test_call_cert_hashes_cap),
		CALL_TEST(test_call_not_ready_is_retried),
		CALL_TEST(test_call_not_ready_is_bounded),
		CALL_TEST(test_call_other_status_not_retried),
		CALL_TEST(test_call_transport_error_passes_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
