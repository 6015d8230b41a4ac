/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the emulator core: every served AMTHI command's reply bytes, the request
 * checks, the watchdog client, every fault, the counters and the profile loader's errors.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../helpers/profiles.h"
#include "amtsim.h"
#include "mei.h"
#include "wire.h"

static const char *const all_profiles[] = {
    "non-vpro",          "amt-disabled", "amt11-pre", "amt11-pre-wdt-busy",
    "amt11-pre-slow-me", "amt16-ccm",    "amt19-tls",
};

/* ---- helpers ---- */

static struct amtsim *load(const char *name)
{
	return profile_load(name, NULL);
}

static struct amtsim_conn *open_client(struct amtsim *m, const uint8_t guid[16])
{
	struct amtsim_conn *c = NULL;
	uint32_t max = 0;
	uint8_t version = 0;

	assert_int_equal(amtsim_connect(m, guid, &c, &max, &version), 0);
	assert_non_null(c);
	return c;
}

static size_t request(uint32_t command, const void *payload, size_t plen, uint8_t *out)
{
	struct wbuf w = wbuf_init(out, AMTHI_HEADER_LEN + plen); /* OUT holds that much */

	put_u8(&w, 1);
	put_u8(&w, 1);
	put_u16le(&w, 0);
	put_u32le(&w, command);
	put_u32le(&w, (uint32_t)plen);
	put_bytes(&w, payload, plen);
	assert_true(wbuf_ok(&w));
	return w.len;
}

/* Take one whole queued message. */
static size_t take(struct amtsim_conn *c, uint8_t *buf, size_t cap)
{
	size_t len = 0;
	bool more = false;

	assert_int_equal(amtsim_recv(c, buf, cap, &len, &more), 0);
	assert_false(more);
	return len;
}

static size_t transact(struct amtsim_conn *c, uint32_t command, const void *payload, size_t plen,
		       uint8_t *reply, size_t cap)
{
	uint8_t req[512];
	size_t n = request(command, payload, plen, req);

	assert_int_equal(amtsim_send(c, req, n), 0);
	return take(c, reply, cap);
}

/* Check the reply header and status; a cursor over what follows the status. */
static struct cursor expect_reply(const uint8_t *reply, size_t len, uint32_t command,
				  uint32_t status)
{
	struct cursor c = cursor_init(reply, len);
	uint8_t major, minor;
	uint16_t reserved;
	uint32_t cmd, length, st;

	assert_int_equal(cur_u8(&c, &major), 0);
	assert_int_equal(cur_u8(&c, &minor), 0);
	assert_int_equal(cur_u16le(&c, &reserved), 0);
	assert_int_equal(cur_u32le(&c, &cmd), 0);
	assert_int_equal(cur_u32le(&c, &length), 0);
	assert_int_equal(cur_u32le(&c, &st), 0);
	assert_int_equal(major, 1);
	assert_int_equal(minor, 1);
	assert_int_equal(reserved, 0);
	assert_int_equal(cmd, command | AMTHI_RESPONSE_BIT);
	assert_int_equal(length, len - AMTHI_HEADER_LEN);
	assert_int_equal(st, status);
	if (status != AMTHI_STATUS_SUCCESS)
		assert_int_equal(length, 4);
	return c;
}

static struct cursor call_ok(struct amtsim_conn *c, uint32_t command, const void *payload,
			     size_t plen, uint8_t *reply, size_t cap, size_t expect_len)
{
	size_t n = transact(c, command, payload, plen, reply, cap);

	assert_int_equal(n, expect_len);
	return expect_reply(reply, n, command, AMTHI_STATUS_SUCCESS);
}

static uint32_t u32(struct cursor *c)
{
	uint32_t v = 0;

	assert_int_equal(cur_u32le(c, &v), 0);
	return v;
}

static void expect_counted(struct cursor *c, const char *s)
{
	uint16_t n = 0;
	const uint8_t *p;

	assert_int_equal(cur_u16le(c, &n), 0);
	assert_int_equal(n, strlen(s));
	assert_int_equal(cur_ref(c, &p, n), 0);
	assert_memory_equal(p, s, n);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- AMTHI replies ---- */

static void test_request_bytes_match_protocol(void **state)
{
	static const uint8_t wire[] = {0x01, 0x01, 0x00, 0x00, 0x1A, 0x00,
				       0x00, 0x04, 0x00, 0x00, 0x00, 0x00};
	uint8_t req[512];

	(void)state;
	assert_int_equal(request(AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, req), sizeof(wire));
	assert_memory_equal(req, wire, sizeof(wire));
}

static void test_code_versions(void **state)
{
	static const char *const table[][2] = {
	    {"Flash", "16.1.25"},
	    {"Netstack", "16.1.25"},
	    {"AMTApps", "16.1.25"},
	    {"AMT", "16.1.25"},
	    {"Sku", "16392"},
	    {"VendorID", "8086"},
	    {"Build Number", "2124"},
	    {"Recovery Version", "16.1.25"},
	    {"Recovery Build Num", "2124"},
	    {"Legacy Mode", "False"},
	};
	struct amtsim *m = load("amt16-ccm");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t reply[4096], bios[65] = {0}, field[20];
	struct cursor cur;

	(void)state;
	cur = call_ok(c, AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, reply, sizeof(reply),
		      12 + 4 + 65 + 4 + 10 * 44);
	assert_int_equal(cur_bytes(&cur, bios, sizeof(bios)), 0);
	assert_string_equal((char *)bios, "M4BKT3FA");
	assert_int_equal(u32(&cur), 10);
	for (size_t i = 0; i < 10; i++) {
		for (int k = 0; k < 2; k++) {
			uint16_t n = 0;
			size_t want = strlen(table[i][k]);

			assert_int_equal(cur_u16le(&cur, &n), 0);
			assert_int_equal(n, want);
			assert_int_equal(cur_bytes(&cur, field, sizeof(field)), 0);
			assert_memory_equal(field, table[i][k], want);
			for (size_t z = want; z < sizeof(field); z++)
				assert_int_equal(field[z], 0);
		}
	}
	assert_int_equal(cur_end(&cur), 0);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void expect_u32_answer(struct amtsim_conn *c, uint32_t command, uint32_t want)
{
	uint8_t reply[64];
	struct cursor cur = call_ok(c, command, NULL, 0, reply, sizeof(reply), 20);

	assert_int_equal(u32(&cur), want);
	assert_int_equal(cur_end(&cur), 0);
}

static void test_states_and_modes(void **state)
{
	struct amtsim *ccm = load("amt16-ccm");
	struct amtsim *pre = load("amt11-pre");
	struct amtsim_conn *a = open_client(ccm, MEI_GUID_AMTHI);
	struct amtsim_conn *b = open_client(pre, MEI_GUID_AMTHI);
	uint8_t reply[64];
	struct cursor cur;

	(void)state;
	expect_u32_answer(a, AMTHI_CMD_GET_PROVISIONING_STATE, AMTHI_PROVISIONING_POST);
	expect_u32_answer(a, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_CCM);
	expect_u32_answer(b, AMTHI_CMD_GET_PROVISIONING_STATE, AMTHI_PROVISIONING_PRE);
	expect_u32_answer(b, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);

	cur = call_ok(a, AMTHI_CMD_GET_PROVISIONING_MODE, NULL, 0, reply, sizeof(reply), 24);
	assert_int_equal(u32(&cur), 1);
	assert_int_equal(u32(&cur), 0);
	assert_int_equal(cur_end(&cur), 0);

	amtsim_disconnect(a);
	amtsim_disconnect(b);
	amtsim_free(ccm);
	amtsim_free(pre);
}

static void test_uuid_and_macs(void **state)
{
	/* b549bcd5-e05c-4a87-b302-2076a8a5c8e4 in PROTOCOL.md's wire order */
	static const uint8_t uuid[16] = {0xd5, 0xbc, 0x49, 0xb5, 0x5c, 0xe0, 0x87, 0x4a,
					 0xb3, 0x02, 0x20, 0x76, 0xa8, 0xa5, 0xc8, 0xe4};
	static const uint8_t mac[6] = {0xa0, 0x36, 0x9f, 0xb7, 0x31, 0x5c};
	struct amtsim *m = load("amt16-ccm");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t reply[64];
	const uint8_t *p;
	struct cursor cur;

	(void)state;
	cur = call_ok(c, AMTHI_CMD_GET_UUID, NULL, 0, reply, sizeof(reply), 32);
	assert_int_equal(cur_ref(&cur, &p, 16), 0);
	assert_memory_equal(p, uuid, 16);
	assert_int_equal(cur_end(&cur), 0);

	cur = call_ok(c, AMTHI_CMD_GET_MAC_ADDRESSES, NULL, 0, reply, sizeof(reply), 28);
	assert_int_equal(cur_ref(&cur, &p, 6), 0);
	assert_memory_equal(p, mac, 6);
	assert_int_equal(cur_ref(&cur, &p, 6), 0);
	assert_memory_equal(p, mac, 6);
	assert_int_equal(cur_end(&cur), 0);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void expect_lan(struct amtsim_conn *c, uint32_t index, uint32_t enabled, uint32_t ipv4,
		       uint32_t dhcp, uint8_t mode, uint8_t link, const uint8_t mac[6])
{
	uint8_t payload[4], reply[64], b;
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	const uint8_t *p;
	struct cursor cur;

	put_u32le(&w, index);
	cur = call_ok(c, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, payload, 4, reply, sizeof(reply),
		      12 + 4 + 20);
	assert_int_equal(u32(&cur), enabled);
	assert_int_equal(u32(&cur), ipv4);
	assert_int_equal(u32(&cur), dhcp);
	assert_int_equal(cur_u8(&cur, &b), 0);
	assert_int_equal(b, mode);
	assert_int_equal(cur_u8(&cur, &b), 0);
	assert_int_equal(b, link);
	assert_int_equal(cur_ref(&cur, &p, 6), 0);
	assert_memory_equal(p, mac, 6);
	assert_int_equal(cur_end(&cur), 0);
}

static void expect_status(struct amtsim_conn *c, uint32_t command, const void *payload, size_t plen,
			  uint32_t status)
{
	uint8_t reply[64];
	size_t n = transact(c, command, payload, plen, reply, sizeof(reply));
	struct cursor cur = expect_reply(reply, n, command, status);

	assert_int_equal(cur_end(&cur), 0);
}

static void test_lan_settings(void **state)
{
	static const uint8_t mac16[6] = {0xa0, 0x36, 0x9f, 0xb7, 0x31, 0x5c};
	static const uint8_t wired19[6] = {0x3c, 0xfd, 0xfe, 0x9b, 0xd9, 0x53};
	static const uint8_t wireless19[6] = {0x8c, 0x8d, 0x28, 0xbd, 0x30, 0xdb};
	static const uint8_t one[4] = {1, 0, 0, 0}, two[4] = {2, 0, 0, 0};
	static const uint8_t static_ip_wire[4] = {0x17, 0x64, 0x33, 0xC6}; /* 198.51.100.23 */
	struct amtsim *m16 = load("amt16-ccm");
	struct amtsim *m19 = load("amt19-tls");
	struct amtsim_conn *a = open_client(m16, MEI_GUID_AMTHI);
	struct amtsim_conn *b = open_client(m19, MEI_GUID_AMTHI);
	uint8_t reply[64];
	size_t n;

	(void)state;
	expect_lan(a, 0, 1, 0xC6336417, 0, 0, 1, mac16);
	n = transact(a, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, "\0\0\0\0", 4, reply, sizeof(reply));
	assert_memory_equal(reply + 16 + 4, static_ip_wire, 4); /* little-endian on the wire */
	assert_int_equal(n, 36);
	/* no wireless adapter here, and no third interface anywhere */
	expect_status(a, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, one, 4,
		      AMTHI_STATUS_INVALID_PARAMETER);
	expect_status(a, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, two, 4,
		      AMTHI_STATUS_INVALID_PARAMETER);
	/* the index is required */
	expect_status(a, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, NULL, 0,
		      AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	expect_lan(b, 0, 1, 0xC0000258, 1, 2, 1, wired19);
	expect_lan(b, 1, 1, 0xC000028E, 1, 2, 1, wireless19);

	amtsim_disconnect(a);
	amtsim_disconnect(b);
	amtsim_free(m16);
	amtsim_free(m19);
}

static void test_strings(void **state)
{
	struct amtsim *m16 = load("amt16-ccm");
	struct amtsim *m11 = load("amt11-pre");
	struct amtsim_conn *a = open_client(m16, MEI_GUID_AMTHI);
	struct amtsim_conn *b = open_client(m11, MEI_GUID_AMTHI);
	uint8_t reply[512];
	struct cursor cur;

	(void)state;
	cur = call_ok(a, AMTHI_CMD_GET_DNS_SUFFIX, NULL, 0, reply, sizeof(reply), 12 + 6 + 15);
	expect_counted(&cur, "lab.example.com");
	assert_int_equal(cur_end(&cur), 0);
	cur = call_ok(b, AMTHI_CMD_GET_DNS_SUFFIX, NULL, 0, reply, sizeof(reply), 12 + 6);
	expect_counted(&cur, "");

	cur = call_ok(a, AMTHI_CMD_GET_CURRENT_POWER_POLICY, NULL, 0, reply, sizeof(reply),
		      12 + 6 + 38);
	expect_counted(&cur, "Desktop: ON in S0, ME Wake in S3, S4-5");
	assert_int_equal(cur_end(&cur), 0);
	cur = call_ok(b, AMTHI_CMD_GET_CURRENT_POWER_POLICY, NULL, 0, reply, sizeof(reply),
		      12 + 6 + 17);
	expect_counted(&cur, "Desktop: ON in S0");

	cur = call_ok(b, AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, NULL, 0, reply,
		      sizeof(reply), 12 + 4 + 12 + 2);
	assert_int_equal(u32(&cur), 2);
	assert_int_equal(u32(&cur), 0);
	assert_int_equal(u32(&cur), 0);
	expect_counted(&cur, "");
	assert_int_equal(cur_end(&cur), 0);

	amtsim_disconnect(a);
	amtsim_disconnect(b);
	amtsim_free(m16);
	amtsim_free(m11);
}

static void test_cert_hashes(void **state)
{
	static const uint32_t handles[] = {0, 1, 2, 3, 4, 5, 6, 7, 24, 32};
	static const char g3[] = "DigiCert Global Root G3";
	static const uint8_t g3_head[4] = {0x44, 0x4e, 0x0e, 0x95};
	struct amtsim *m = load("amt19-tls");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t reply[512], payload[4], hash[64], alg = 0;
	struct wbuf w = wbuf_init(payload, sizeof(payload));
	struct cursor cur;

	(void)state;
	cur = call_ok(c, AMTHI_CMD_ENUMERATE_HASH_HANDLES, NULL, 0, reply, sizeof(reply),
		      12 + 8 + 4 * 10);
	assert_int_equal(u32(&cur), 10);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(u32(&cur), handles[i]);
	assert_int_equal(cur_end(&cur), 0);

	put_u32le(&w, 24);
	cur = call_ok(c, AMTHI_CMD_GET_CERT_HASH_ENTRY, payload, 4, reply, sizeof(reply),
		      12 + 79 + strlen(g3));
	assert_int_equal(u32(&cur), 1); /* IsDefault */
	assert_int_equal(u32(&cur), 1); /* IsActive */
	assert_int_equal(cur_bytes(&cur, hash, sizeof(hash)), 0);
	assert_memory_equal(hash, g3_head, sizeof(g3_head));
	for (size_t z = 48; z < 64; z++)
		assert_int_equal(hash[z], 0);
	assert_int_equal(cur_u8(&cur, &alg), 0);
	assert_int_equal(alg, AMTHI_HASH_SHA384_OR_SHA512);
	expect_counted(&cur, g3);
	assert_int_equal(cur_end(&cur), 0);

	payload[0] = 8;
	expect_status(c, AMTHI_CMD_GET_CERT_HASH_ENTRY, payload, 4, AMTHI_STATUS_INVALID_HANDLE);
	expect_status(c, AMTHI_CMD_GET_CERT_HASH_ENTRY, NULL, 0,
		      AMTHI_STATUS_INVALID_MESSAGE_LENGTH);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void test_local_account(void **state)
{
	static const uint8_t zeros[40];
	struct amtsim *m16 = load("amt16-ccm");
	struct amtsim *m11 = load("amt11-pre");
	struct amtsim_conn *a = open_client(m16, MEI_GUID_AMTHI);
	struct amtsim_conn *b = open_client(m11, MEI_GUID_AMTHI);
	uint8_t reply[256], user[33], pass[33];
	struct cursor cur;

	(void)state;
	/* user[33] pass[33], and 2 trailing bytes on this one (MeshAgent's 68) */
	cur = call_ok(a, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, zeros, 40, reply, sizeof(reply),
		      12 + 4 + 68);
	assert_int_equal(cur_bytes(&cur, user, 33), 0);
	assert_int_equal(cur_bytes(&cur, pass, 33), 0);
	assert_string_equal((char *)user, "$$OsAdmin");
	assert_string_equal((char *)pass, "okwKb8lf6NKPL2q3vrKfmQjeIjf7E2Ri");
	assert_int_equal(cur_skip(&cur, 2), 0);
	assert_int_equal(cur_end(&cur), 0);

	cur = call_ok(b, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, zeros, 40, reply, sizeof(reply),
		      12 + 4 + 66);
	assert_int_equal(cur_bytes(&cur, user, 33), 0);
	assert_string_equal((char *)user, "$$OsAdmin");
	/* the request's 40 bytes are required */
	expect_status(b, AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, NULL, 0,
		      AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	amtsim_disconnect(a);
	amtsim_disconnect(b);
	amtsim_free(m16);
	amtsim_free(m11);
}

static void test_request_checks(void **state)
{
	struct amtsim *m = load("amt11-pre");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t req[64], reply[64];
	size_t n;

	(void)state;
	/* the header says 4 payload bytes, none follow */
	n = request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	req[8] = 4;
	assert_int_equal(amtsim_send(c, req, n), 0);
	n = take(c, reply, sizeof(reply));
	expect_reply(reply, n, AMTHI_CMD_GET_UUID, AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	/* a payload where the command takes none */
	expect_status(c, AMTHI_CMD_GET_UUID, "\1\2\3\4", 4, AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	/* major version 2 */
	n = request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	req[0] = 2;
	assert_int_equal(amtsim_send(c, req, n), 0);
	n = take(c, reply, sizeof(reply));
	expect_reply(reply, n, AMTHI_CMD_GET_UUID, AMTHI_STATUS_NOT_PERMITTED);

	/* reserved bytes set */
	n = request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	req[2] = 1;
	assert_int_equal(amtsim_send(c, req, n), 0);
	n = take(c, reply, sizeof(reply));
	expect_reply(reply, n, AMTHI_CMD_GET_UUID, AMTHI_STATUS_NOT_PERMITTED);

	/* a response code sent as a request */
	expect_status(c, AMTHI_CMD_GET_UUID | AMTHI_RESPONSE_BIT, NULL, 0,
		      AMTHI_STATUS_NOT_PERMITTED);
	/* an unknown command, and a known one not served yet */
	expect_status(c, 0x04000099, NULL, 0, AMTHI_STATUS_NOT_PERMITTED);
	expect_status(c, AMTHI_CMD_START_CONFIGURATION, NULL, 0, AMTHI_STATUS_NOT_PERMITTED);
	/* StopConfiguration with nothing to stop; StartConfigurationHBased of a wrong length */
	expect_status(c, AMTHI_CMD_STOP_CONFIGURATION, NULL, 0, AMTHI_STATUS_INVALID_AMT_MODE);
	expect_status(c, AMTHI_CMD_START_CONFIGURATION_HBASED, NULL, 0,
		      AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	/* shorter than a header: the status still comes back in a whole header */
	(void)request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	assert_int_equal(amtsim_send(c, req, 9), 0);
	n = take(c, reply, sizeof(reply));
	expect_reply(reply, n, AMTHI_CMD_GET_UUID, AMTHI_STATUS_INVALID_MESSAGE_LENGTH);

	assert_int_equal(amtsim_command_count(m, AMTHI_CMD_GET_UUID), 5);
	assert_int_equal(amtsim_command_count(m, 0x04000099), 1);
	amtsim_disconnect(c);
	amtsim_free(m);
}

/* ---- connects, other clients ---- */

static void expect_refused(struct amtsim *m, const uint8_t guid[16], int err)
{
	struct amtsim_conn *c = (struct amtsim_conn *)1;
	uint32_t max = 0;
	uint8_t version = 0;

	assert_int_equal(amtsim_connect(m, guid, &c, &max, &version), err);
	assert_null(c);
}

static void test_connects(void **state)
{
	static const uint8_t mkhi[16] = {0x15, 0x67, 0x6A, 0x8E, 0xBC, 0x9A, 0x43, 0x40,
					 0x88, 0xEF, 0x9E, 0x39, 0xC6, 0xF6, 0x3E, 0x0F};
	struct amtsim *nv = load("non-vpro");
	struct amtsim *dis = load("amt-disabled");
	struct amtsim *busy = load("amt11-pre-wdt-busy");
	struct amtsim *m16 = load("amt16-ccm");
	struct amtsim_conn *c = NULL;
	struct amtsim_stats st;
	uint32_t max = 0;
	uint8_t version = 0, buf[64];
	size_t len;
	bool more;

	(void)state;
	expect_refused(nv, MEI_GUID_AMTHI, ENOTTY);
	expect_refused(nv, MEI_GUID_LME, ENOTTY);
	expect_refused(dis, MEI_GUID_AMTHI, ENOTTY);
	expect_refused(dis, MEI_GUID_LME, ENOTTY);
	expect_refused(busy, MEI_GUID_WATCHDOG, EBUSY);
	expect_refused(busy, MEI_GUID_WATCHDOG, EBUSY);
	expect_refused(m16, mkhi, ENOTTY);

	assert_int_equal(amtsim_connect(m16, MEI_GUID_AMTHI, &c, &max, &version), 0);
	assert_int_equal(max, 5120);
	assert_int_equal(version, 1);
	assert_int_equal(amtsim_conn_client(c), AMTSIM_CLIENT_AMTHI);
	amtsim_disconnect(c);

	/* LME: connected, silent until the host speaks APF; a broken frame ends the session */
	assert_int_equal(amtsim_connect(m16, MEI_GUID_LME, &c, &max, &version), 0);
	assert_int_equal(max, 8192);
	assert_int_equal(version, 4);
	assert_int_equal(amtsim_conn_client(c), AMTSIM_CLIENT_LME);
	assert_false(readable(amtsim_conn_fd(c)));
	assert_int_equal(amtsim_send(c, (const uint8_t *)"\xc0", 1), 0);
	assert_true(readable(amtsim_conn_fd(c)));
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "\x01\x00\x00\x00\x02\x00\x00", 7); /* DISCONNECT, protocol error */
	assert_true(readable(amtsim_conn_fd(c)));
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), ENODEV);
	assert_int_equal(amtsim_send(c, (const uint8_t *)"\xc0", 1), ENODEV);
	amtsim_disconnect(c);

	amtsim_get_stats(nv, &st);
	assert_int_equal(st.refused[AMTSIM_CLIENT_AMTHI], 1);
	assert_int_equal(st.refused[AMTSIM_CLIENT_LME], 1);
	amtsim_get_stats(busy, &st);
	assert_int_equal(st.refused[AMTSIM_CLIENT_WATCHDOG], 2);
	amtsim_get_stats(m16, &st);
	assert_int_equal(st.connects[AMTSIM_CLIENT_AMTHI], 1);
	assert_int_equal(st.connects[AMTSIM_CLIENT_LME], 1);
	assert_int_equal(st.messages[AMTSIM_CLIENT_LME], 1);
	assert_int_equal(st.apf_protocol_errors, 1);

	amtsim_free(nv);
	amtsim_free(dis);
	amtsim_free(busy);
	amtsim_free(m16);
}

static uint8_t watchdog_state(struct amtsim *m)
{
	struct amtsim_conn *c = open_client(m, MEI_GUID_WATCHDOG);
	uint8_t reply[16];
	size_t n;

	assert_int_equal(amtsim_send(c, WATCHDOG_IS_CHANGE_TO_AMT_ENABLED, 4), 0);
	assert_true(readable(amtsim_conn_fd(c)));
	n = take(c, reply, sizeof(reply));
	assert_int_equal(n, 1);
	assert_false(readable(amtsim_conn_fd(c)));
	amtsim_disconnect(c);
	return reply[0];
}

static void test_watchdog_states(void **state)
{
	static const struct {
		const char *profile;
		uint8_t state;
	} cases[] = {
	    {"non-vpro", 0x80},  {"amt-disabled", 0x81}, {"amt11-pre", 0x01},
	    {"amt16-ccm", 0x82}, {"amt19-tls", 0xC2},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct amtsim *m = load(cases[i].profile);

		assert_int_equal(watchdog_state(m), cases[i].state);
		amtsim_free(m);
	}
}

static uint32_t set_operational(struct amtsim *m, uint8_t enable)
{
	const uint8_t req[5] = {0x05, 0x03, 0x53, 0x10, enable};
	struct amtsim_conn *c = open_client(m, MEI_GUID_WATCHDOG);
	uint8_t reply[16];
	struct cursor cur;
	size_t n;

	assert_int_equal(amtsim_send(c, req, sizeof(req)), 0);
	n = take(c, reply, sizeof(reply));
	assert_int_equal(n, 8);
	assert_memory_equal(reply, req, 4);
	cur = cursor_init(reply + 4, 4);
	amtsim_disconnect(c);
	return u32(&cur);
}

static void test_watchdog_enables_amt(void **state)
{
	struct amtsim *dis = load("amt-disabled");
	struct amtsim *nv = load("non-vpro");
	struct amtsim_conn *c, *w;
	uint8_t buf[16];
	size_t len;
	bool more;

	(void)state;
	expect_refused(dis, MEI_GUID_AMTHI, ENOTTY);
	assert_int_equal(set_operational(dis, 1), AMTHI_STATUS_SUCCESS);
	assert_int_equal(watchdog_state(dis), 0x83);
	c = open_client(dis, MEI_GUID_AMTHI);
	expect_u32_answer(c, AMTHI_CMD_GET_PROVISIONING_STATE, AMTHI_PROVISIONING_PRE);

	/* disabling again restarts AMT: the open AMTHI connection is reset */
	assert_int_equal(set_operational(dis, 0), AMTHI_STATUS_SUCCESS);
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), ENODEV);
	amtsim_disconnect(c);
	expect_refused(dis, MEI_GUID_AMTHI, ENOTTY);
	assert_int_equal(set_operational(dis, 7), AMTHI_STATUS_INVALID_PARAMETER);

	/* no transition on a machine without AMT */
	assert_int_equal(set_operational(nv, 1), AMTHI_STATUS_NOT_PERMITTED);

	/* anything else on the watchdog client goes unanswered */
	w = open_client(nv, MEI_GUID_WATCHDOG);
	assert_int_equal(amtsim_send(w, (const uint8_t *)"\x02\x12\x13\x10\x78\x00", 6), 0);
	assert_int_equal(amtsim_recv(w, buf, sizeof(buf), &len, &more), EAGAIN);
	amtsim_disconnect(w);

	amtsim_free(dis);
	amtsim_free(nv);
}

static void test_partial_reads_and_efbig(void **state)
{
	struct amtsim *m = load("amt16-ccm");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t req[32], part[100], whole[1024];
	size_t n, len, got = 0;
	bool more = true;
	static uint8_t big[5121];

	(void)state;
	n = request(AMTHI_CMD_GET_CODE_VERSIONS, NULL, 0, req);
	assert_int_equal(amtsim_send(c, req, n), 0);
	while (more) {
		assert_int_equal(amtsim_recv(c, part, sizeof(part), &len, &more), 0);
		assert_true(len == sizeof(part) || !more);
		memcpy(whole + got, part, len);
		got += len;
	}
	assert_int_equal(got, 12 + 4 + 65 + 4 + 440);
	expect_reply(whole, got, AMTHI_CMD_GET_CODE_VERSIONS, AMTHI_STATUS_SUCCESS);
	assert_int_equal(amtsim_recv(c, part, sizeof(part), &len, &more), EAGAIN);

	assert_int_equal(amtsim_send(c, big, sizeof(big)), EFBIG);
	assert_int_equal(amtsim_send(c, big, 0), 0);
	assert_false(readable(amtsim_conn_fd(c)));
	amtsim_disconnect(c);
	amtsim_free(m);
}

/* ---- faults ---- */

static struct amtsim *load_with(const char *profile, const char *fault)
{
	struct amtsim *m = load(profile);
	char err[256] = "";

	if (amtsim_fault(m, fault, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return m;
}

static void test_fault_busy(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "busy=2");
	struct amtsim_conn *c;
	struct amtsim_stats st;

	(void)state;
	expect_refused(m, MEI_GUID_AMTHI, EBUSY);
	expect_refused(m, MEI_GUID_AMTHI, EBUSY);
	c = open_client(m, MEI_GUID_AMTHI);
	amtsim_disconnect(c);
	/* only AMTHI is affected */
	c = open_client(m, MEI_GUID_WATCHDOG);
	amtsim_disconnect(c);
	amtsim_get_stats(m, &st);
	assert_int_equal(st.refused[AMTSIM_CLIENT_AMTHI], 2);
	assert_int_equal(st.connects[AMTSIM_CLIENT_AMTHI], 1);
	amtsim_free(m);
}

static void test_fault_reset(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "reset@2");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	struct amtsim_conn *wd = open_client(m, MEI_GUID_WATCHDOG);
	uint8_t req[32], buf[64];
	size_t n, len;
	bool more;

	(void)state;
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	n = request(AMTHI_CMD_GET_CONTROL_MODE, NULL, 0, req);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_true(readable(amtsim_conn_fd(c)));
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), ENODEV);
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), ENODEV);
	assert_int_equal(amtsim_send(c, req, n), ENODEV);
	/* a firmware reset drops every client's connection */
	assert_true(readable(amtsim_conn_fd(wd)));
	assert_int_equal(amtsim_recv(wd, buf, sizeof(buf), &len, &more), ENODEV);
	amtsim_disconnect(c);
	amtsim_disconnect(wd);

	/* one-shot: reconnect and retry */
	c = open_client(m, MEI_GUID_AMTHI);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void test_fault_no_reply(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "no-reply@1");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t req[32], buf[64];
	size_t n, len;
	bool more;

	(void)state;
	n = request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_false(readable(amtsim_conn_fd(c)));
	assert_int_equal(amtsim_recv(c, buf, sizeof(buf), &len, &more), EAGAIN);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	amtsim_disconnect(c);
	amtsim_free(m);
}

/* The raw reply to request REQ_NO with FAULT armed, after REQ_NO - 1 good ones. */
static size_t faulty_reply(const char *fault, uint32_t command, uint8_t *buf, size_t cap,
			   uint32_t *declared)
{
	struct amtsim *m = load_with("amt16-ccm", fault);
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t req[32];
	struct cursor cur;
	size_t n = request(command, NULL, 0, req), len = 0, got;
	bool more = true;

	assert_int_equal(amtsim_send(c, req, n), 0);
	while (more) {
		assert_true(len < cap);
		assert_int_equal(amtsim_recv(c, buf + len, cap - len, &got, &more), 0);
		len += got;
	}
	cur = cursor_init(buf + 8, 4);
	*declared = u32(&cur);
	amtsim_disconnect(c);
	amtsim_free(m);
	return len;
}

static void test_fault_reply_shapes(void **state)
{
	static uint8_t buf[16384];
	uint32_t declared = 0;
	struct cursor cur;
	size_t n;

	(void)state;
	n = faulty_reply("truncate@1", AMTHI_CMD_GET_UUID, buf, sizeof(buf), &declared);
	assert_int_equal(declared, 20);
	assert_true(n < 32 && n > AMTHI_HEADER_LEN);

	n = faulty_reply("oversize@1", AMTHI_CMD_GET_UUID, buf, sizeof(buf), &declared);
	assert_int_equal(declared, 20);
	assert_int_equal(n, 32 + 16);

	n = faulty_reply("huge@1", AMTHI_CMD_GET_UUID, buf, sizeof(buf), &declared);
	assert_true(n > 5120);
	assert_int_equal(declared, n - AMTHI_HEADER_LEN);

	n = faulty_reply("wrong-echo@1", AMTHI_CMD_GET_UUID, buf, sizeof(buf), &declared);
	assert_int_equal(n, 32);
	cur = cursor_init(buf + 4, 4);
	{
		uint32_t cmd = u32(&cur);

		assert_true(cmd != (AMTHI_CMD_GET_UUID | AMTHI_RESPONSE_BIT));
		assert_true(cmd & AMTHI_RESPONSE_BIT);
	}
}

static void test_fault_counts_requests(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "oversize@3");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	uint8_t req[32], buf[128];
	size_t n;

	(void)state;
	n = request(AMTHI_CMD_GET_UUID, NULL, 0, req);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_int_equal(take(c, buf, sizeof(buf)), 32);
	/* requests on a second connection count too */
	amtsim_disconnect(c);
	c = open_client(m, MEI_GUID_AMTHI);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_int_equal(take(c, buf, sizeof(buf)), 32);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_int_equal(take(c, buf, sizeof(buf)), 48);
	assert_int_equal(amtsim_send(c, req, n), 0);
	assert_int_equal(take(c, buf, sizeof(buf)), 32);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void test_fault_not_ready(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "not-ready=2");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);

	(void)state;
	expect_status(c, AMTHI_CMD_GET_CONTROL_MODE, NULL, 0, AMTHI_STATUS_NOT_READY);
	expect_status(c, AMTHI_CMD_GET_UUID, NULL, 0, AMTHI_STATUS_NOT_READY);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_fault_latency(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "latency=30");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	struct amtsim_stats st;
	struct timespec t0;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	assert_true(ms_since(&t0) >= 60);
	amtsim_get_stats(m, &st);
	assert_int_equal(st.firmware_us, 60000);
	assert_int_equal(st.messages[AMTSIM_CLIENT_AMTHI], 2);
	amtsim_disconnect(c);
	amtsim_free(m);
}

static void test_fault_ready_after(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "ready-after=150");
	struct amtsim *slow = load("amt11-pre-slow-me");
	struct amtsim_conn *c;
	struct amtsim_stats st;

	(void)state;
	assert_string_equal(amtsim_sysfs_attr(m, "dev_state"), "INITIALIZING");
	expect_refused(m, MEI_GUID_AMTHI, ENODEV);
	expect_refused(m, MEI_GUID_WATCHDOG, ENODEV);
	usleep(200 * 1000);
	assert_string_equal(amtsim_sysfs_attr(m, "dev_state"), "ENABLED");
	c = open_client(m, MEI_GUID_AMTHI);
	amtsim_disconnect(c);
	amtsim_get_stats(m, &st);
	assert_int_equal(st.refused[AMTSIM_CLIENT_AMTHI], 1);

	/* the slow-ME profile switches the same fault on by itself (2 s) */
	assert_string_equal(amtsim_sysfs_attr(slow, "dev_state"), "INITIALIZING");
	expect_refused(slow, MEI_GUID_AMTHI, ENODEV);
	amtsim_free(slow);
	amtsim_free(m);
}

static void test_fault_specs(void **state)
{
	static const struct {
		const char *spec;
		const char *says;
	} bad[] = {
	    {"bogus=1", "unknown"},     {"reset=1", "reset@N"},
	    {"busy@1", "busy=N"},       {"reset@0", "between 1"},
	    {"busy=x", "at most"},      {"latency=99999999", "at most"},
	    {"no-reply@", "between 1"}, {"truncate@-1", "between 1"},
	};
	struct amtsim *m = load("amt11-pre");
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(amtsim_fault(m, bad[i].spec, err, sizeof(err)), -1);
		assert_non_null(strstr(err, bad[i].spec));
		assert_non_null(strstr(err, bad[i].says));
		assert_null(strchr(err, '\n'));
	}
	amtsim_free(m);
}

/* ---- sysfs, counters, profiles ---- */

static void test_sysfs(void **state)
{
	struct amtsim *m = load("amt16-ccm");

	(void)state;
	assert_string_equal(amtsim_sysfs_attr(m, "fw_ver"),
			    "0:16.1.25.2124\n0:16.1.25.2124\n0:16.0.15.1810\n");
	assert_string_equal(amtsim_sysfs_attr(m, "fw_status"),
			    "94000245\n09F10506\n00000020\n00004000\n00041F03\nC7E003CB\n");
	assert_string_equal(amtsim_sysfs_attr(m, "hbm_ver"), "2.2\n");
	assert_string_equal(amtsim_sysfs_attr(m, "kind"), "mei\n");
	assert_string_equal(amtsim_sysfs_attr(m, "dev_state"), "ENABLED");
	assert_null(amtsim_sysfs_attr(m, "trc"));
	amtsim_free(m);
}

static json_object *get_path(json_object *o, const char *a, const char *b, const char *c,
			     const char *d)
{
	const char *keys[] = {a, b, c, d};

	for (size_t i = 0; i < 4 && keys[i]; i++)
		if (!json_object_object_get_ex(o, keys[i], &o))
			return NULL;
	return o;
}

static void test_stats_file(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "latency=1");
	struct amtsim_conn *c = open_client(m, MEI_GUID_AMTHI);
	char path[] = "/tmp/amtsim-stats-XXXXXX";
	int fd = mkstemp(path);
	json_object *root, *v;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	expect_u32_answer(c, AMTHI_CMD_GET_CONTROL_MODE, AMTHI_CONTROL_NONE);
	expect_status(c, 0x04000099, NULL, 0, AMTHI_STATUS_NOT_PERMITTED);
	amtsim_disconnect(c);
	assert_int_equal(amtsim_write_stats(m, path), 0);

	root = json_object_from_file(path);
	assert_non_null(root);
	v = get_path(root, "clients", "amthi", "commands", "GetControlMode");
	assert_non_null(v);
	assert_int_equal(json_object_get_int(v), 2);
	v = get_path(root, "clients", "amthi", "commands", "0x04000099");
	assert_non_null(v);
	assert_int_equal(json_object_get_int(v), 1);
	v = get_path(root, "clients", "amthi", "messages", NULL);
	assert_int_equal(json_object_get_int(v), 3);
	v = get_path(root, "clients", "amthi", "connects", NULL);
	assert_int_equal(json_object_get_int(v), 1);
	v = get_path(root, "clients", "lme", "refused", NULL);
	assert_non_null(v);
	v = get_path(root, "clients", "watchdog", "messages", NULL);
	assert_non_null(v);
	v = get_path(root, "firmware_ms", NULL, NULL, NULL);
	assert_non_null(v);
	assert_true(json_object_get_double(v) > 2.9 && json_object_get_double(v) < 3.1);
	json_object_put(root);
	unlink(path);
	amtsim_free(m);
}

static void test_all_profiles_load(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(all_profiles) / sizeof(all_profiles[0]); i++) {
		struct amtsim *m = load(all_profiles[i]);

		assert_non_null(amtsim_sysfs_attr(m, "fw_ver"));
		amtsim_free(m);
	}
}

/*
 * Load amt16-ccm with one change: the value at the dotted PATH ("amt.wired.ipv4") replaced by
 * the JSON text VALUE, or removed when VALUE is NULL. Returns the loader's error ("" if none).
 */
static void load_changed(const char *path, const char *value, char *err, size_t errlen)
{
	char src[512], tmp[] = "/tmp/amtsim-profile-XXXXXX";
	json_object *root, *parent;
	char keys[128], *key, *next;
	struct amtsim *m;
	int fd;

	profile_path("amt16-ccm", src, sizeof(src));
	root = json_object_from_file(src);
	assert_non_null(root);
	snprintf(keys, sizeof(keys), "%s", path);
	parent = root;
	key = keys;
	while ((next = strchr(key, '.'))) {
		*next = '\0';
		assert_true(json_object_object_get_ex(parent, key, &parent));
		key = next + 1;
	}
	if (value)
		json_object_object_add(parent, key, json_tokener_parse(value));
	else
		json_object_object_del(parent, key);
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(json_object_to_file(tmp, root), 0);
	json_object_put(root);

	err[0] = '\0';
	m = amtsim_new(tmp, err, errlen);
	amtsim_free(m);
	unlink(tmp);
	if (m)
		err[0] = '\0';
}

static void test_profile_errors(void **state)
{
	static const struct {
		const char *path, *value, *says;
	} cases[] = {
	    {"colour", "\"blue\"", "key 'colour': unknown key"},
	    {"amt.wired.speed", "1000", "key 'amt.wired.speed': unknown key"},
	    {"description", NULL, "key 'description': missing"},
	    {"amt.wired.ipv4", "\"300.1.1.1\"", "key 'amt.wired.ipv4': not an IPv4"},
	    {"amt.wired.ipv4", "7", "key 'amt.wired.ipv4': must be"},
	    {"amt.wired.mac", "\"a0:36:9f:b7:31\"", "key 'amt.wired.mac': not a MAC"},
	    {"amt.wired", NULL, "key 'amt.wired': missing"},
	    {"amt.uuid", "\"b549bcd5-e05c-4a87-b302-2076a8a5c8e\"", "key 'amt.uuid'"},
	    {"amt.control_mode", "\"admin\"", "key 'amt.control_mode': must be one of"},
	    {"amt.provisioning_state", "2", "key 'amt.provisioning_state': must be"},
	    {"amt.cert_hashes",
	     "[{\"name\":\"x\",\"algorithm\":2,\"hash\":\"00ff\","
	     "\"default\":true,\"active\":true}]",
	     "key 'amt.cert_hashes[0].hash'"},
	    {"amt.cert_hashes",
	     "[{\"name\":\"x\",\"algorithm\":9,\"hash\":\"00ff\","
	     "\"default\":true,\"active\":true}]",
	     "key 'amt.cert_hashes[0].algorithm'"},
	    {"amt.cert_hashes",
	     "[{\"handle\":3,\"name\":\"x\",\"algorithm\":1,\"hash\":"
	     "\"00112233445566778899aabbccddeeff00112233\",\"default\":true,"
	     "\"active\":true},{\"handle\":3,\"name\":\"y\",\"algorithm\":1,"
	     "\"hash\":\"00112233445566778899aabbccddeeff00112233\","
	     "\"default\":true,\"active\":true}]",
	     "key 'amt.cert_hashes[1].handle': handle 3 used twice"},
	    {"clients.watchdog.state", "300", "key 'clients.watchdog.state': must be between"},
	    {"clients.watchdog.state", "\"0xZZ\"", "key 'clients.watchdog.state': not a number"},
	    {"clients.amthi.max_msg_length", "0", "key 'clients.amthi.max_msg_length'"},
	    {"clients.amthi.busy", "\"yes\"", "key 'clients.amthi.busy': must be boolean"},
	    {"clients.mkhi", "{}", "key 'clients.mkhi': unknown key"},
	    {"amt", NULL, "key 'amt': missing"},
	    {"sysfs.fw_ver", "[\"16.1.25.2124\"]", "key 'sysfs.fw_ver[0]'"},
	    {"sysfs.fw_status", "[\"9400024\"]", "key 'sysfs.fw_status[0]'"},
	    {"sysfs.hbm_ver", "\"2\"", "key 'sysfs.hbm_ver'"},
	    {"amt.local_system_account.password", "\"0123456789012345678901234567890123\"",
	     "key 'amt.local_system_account.password': longer than 32"},
	    {"amt.local_system_account.trailing_pad", "1",
	     "key 'amt.local_system_account.trailing_pad'"},
	    {"faults", "[\"nope=1\"]", "key 'faults': fault 'nope=1': unknown"},
	    {"faults", "[3]", "key 'faults[0]'"},
	    {"amt.digest_realm", "\"Digest:\\\"x\"", "key 'amt.digest_realm': must not contain"},
	    {"amt.unprovision_reply", "\"u32\"", "key 'amt.unprovision_reply': must be one of"},
	    {"amt.commit_restart", "\"later\"", "key 'amt.commit_restart': must be one of"},
	    {"amt.settle_ms", "600001", "key 'amt.settle_ms': must be between"},
	    {"amt.tls_enforced", "1", "key 'amt.tls_enforced': must be boolean"},
	    {"amt.tls_cert", "\"amt.pem\"", "key 'amt.tls_key': missing"},
	    {"amt.tls_key", "\"amt.key\"", "key 'amt.tls_cert': missing"},
	    {"amt.wired.lease_ipv4", "\"1.2.3\"", "key 'amt.wired.lease_ipv4': not an IPv4"},
	    {"clients.lme.session_ends_after_close", "\"yes\"",
	     "key 'clients.lme.session_ends_after_close': must be boolean"},
	    {"clients.amthi.version_first", "true", "key 'clients.amthi.version_first': unknown"},
	    {"faults", "[\"commit-restart=soon\"]", "fault 'commit-restart=soon'"},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		load_changed(cases[i].path, cases[i].value, err, sizeof(err));
		if (!strstr(err, cases[i].says))
			fail_msg("%s=%s: got \"%s\", want \"%s\"", cases[i].path,
				 cases[i].value ? cases[i].value : "(removed)", err, cases[i].says);
		assert_null(strchr(err, '\n'));
	}
	/* and the unchanged copy loads */
	load_changed("description", "\"the same machine\"", err, sizeof(err));
	assert_string_equal(err, "");
	/* wireless may be null: no adapter */
	load_changed("amt.wireless", "null", err, sizeof(err));
	assert_string_equal(err, "");
	/* a provisioned machine's admin password */
	load_changed("amt.admin_password", "\"Adm1n!Pass\"", err, sizeof(err));
	assert_string_equal(err, "");
}

static void test_profile_file_errors(void **state)
{
	char tmp[] = "/tmp/amtsim-profile-XXXXXX", err[512];
	int fd = mkstemp(tmp);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"description\": \"x\",", 20), 20);
	close(fd);
	assert_null(amtsim_new(tmp, err, sizeof(err)));
	assert_non_null(strstr(err, "not valid JSON"));
	unlink(tmp);

	assert_null(amtsim_new("/nonexistent/amtsim.json", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/amtsim.json: No such file"));
}

/* ---- threads ---- */

struct hammer {
	struct amtsim *m;
	int rounds;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct amtsim_conn *c = NULL;
	uint32_t max;
	uint8_t version, req[32], buf[64];
	size_t n = request(AMTHI_CMD_GET_CONTROL_MODE, NULL, 0, req), len;
	bool more;

	if (amtsim_connect(h->m, MEI_GUID_AMTHI, &c, &max, &version) != 0)
		return (void *)1;
	for (int i = 0; i < h->rounds; i++) {
		if (amtsim_send(c, req, n) != 0 || amtsim_recv(c, buf, sizeof(buf), &len, &more) ||
		    len != 20) {
			amtsim_disconnect(c);
			return (void *)1;
		}
	}
	amtsim_disconnect(c);
	return NULL;
}

static void test_threads(void **state)
{
	struct hammer h = {.m = load("amt16-ccm"), .rounds = 500};
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h), 0);
	for (int i = 0; i < 4; i++) {
		void *ret = (void *)1;

		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(amtsim_command_count(h.m, AMTHI_CMD_GET_CONTROL_MODE), 2000);
	amtsim_free(h.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_bytes_match_protocol),
	    cmocka_unit_test(test_code_versions),
	    cmocka_unit_test(test_states_and_modes),
	    cmocka_unit_test(test_uuid_and_macs),
	    cmocka_unit_test(test_lan_settings),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_cert_hashes),
	    cmocka_unit_test(test_local_account),
	    cmocka_unit_test(test_request_checks),
	    cmocka_unit_test(test_connects),
	    cmocka_unit_test(test_watchdog_states),
	    cmocka_unit_test(test_watchdog_enables_amt),
	    cmocka_unit_test(test_partial_reads_and_efbig),
	    cmocka_unit_test(test_fault_busy),
	    cmocka_unit_test(test_fault_reset),
	    cmocka_unit_test(test_fault_no_reply),
	    cmocka_unit_test(test_fault_reply_shapes),
	    cmocka_unit_test(test_fault_counts_requests),
	    cmocka_unit_test(test_fault_not_ready),
	    cmocka_unit_test(test_fault_latency),
	    cmocka_unit_test(test_fault_ready_after),
	    cmocka_unit_test(test_fault_specs),
	    cmocka_unit_test(test_sysfs),
	    cmocka_unit_test(test_stats_file),
	    cmocka_unit_test(test_all_profiles_load),
	    cmocka_unit_test(test_profile_errors),
	    cmocka_unit_test(test_profile_file_errors),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
