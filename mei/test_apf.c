/* SPDX-License-Identifier: Apache-2.0 */
/*
 * APF: byte-exact vectors for every message, rejection of malformed frames, and the host session
 * end to end against the emulator's firmware side (tests/amtsim/apf_fw.c) behind a small Unix
 * SOCK_SEQPACKET server that speaks the emulator's "unix:" device convention
 * (tests/helpers/fake_amt.h), with an echo service behind the WS-Man port and a greeting service
 * behind the redirection port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../tests/helpers/fake_amt.h"
#include "apf_fw.h"
#include "mei.h"

#define GREETING "hello from AMT's redirection port\n"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- vectors ---- */

static const uint8_t V_PROTOCOL_VERSION[93] = {
    0xC0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xFE, /* 1.0, trigger 254; UUID and reserved 0 */
};

static const uint8_t V_DISCONNECT[] = {0x01, 0, 0, 0, 2, 0, 0};

static const uint8_t V_SERVICE_REQUEST[] = {0x05, 0,   0,   0,   18,  'p', 'f', 'w',
                                            'd',  '@', 'a', 'm', 't', '.', 'i', 'n',
                                            't',  'e', 'l', '.', 'c', 'o', 'm'};

static const uint8_t V_SERVICE_ACCEPT[] = {0x06, 0,   0,   0,   18,  'a', 'u', 't',
                                           'h',  '@', 'a', 'm', 't', '.', 'i', 'n',
                                           't',  'e', 'l', '.', 'c', 'o', 'm'};

static const uint8_t V_USERAUTH_REQUEST[] = {
    0x32, 0,   0,   0,   1,   'u', 0,   0,   0,   18,  'p', 'f', 'w', 'd', '@', 'a',
    'm',  't', '.', 'i', 'n', 't', 'e', 'l', '.', 'c', 'o', 'm', 0,   0,   0,   8,
    'p',  'a', 's', 's', 'w', 'o', 'r', 'd', 0,   0,   0,   0,   2,   'p', 'w'};

static const uint8_t V_USERAUTH_FAILURE[] = {0x33, 0,   0,   0,   8,   'p', 'a',
                                             's',  's', 'w', 'o', 'r', 'd', 0};

static const uint8_t V_GLOBAL_REQUEST[] = {
    0x50, 0, 0, 0, 13, 't', 'c', 'p', 'i', 'p', '-', 'f', 'o', 'r', 'w', 'a', 'r',  'd',
    1,    0, 0, 0, 9,  '1', '2', '7', '.', '0', '.', '0', '.', '1', 0,   0,   0x42, 0x60};

static const uint8_t V_CANCEL_REQUEST[] = {
    0x50, 0,   0,   0,   20,  'c', 'a', 'n', 'c', 'e', 'l', '-', 't', 'c', 'p', 'i', 'p', '-', 'f',
    'o',  'r', 'w', 'a', 'r', 'd', 0,   0,   0,   0,   3,   ':', ':', '1', 0,   0,   2,   0x6F};

static const uint8_t V_REQUEST_SUCCESS_PORT[] = {0x51, 0, 0, 0x02, 0x6F};
static const uint8_t V_REQUEST_SUCCESS[] = {0x51};
static const uint8_t V_REQUEST_FAILURE[] = {0x52};
static const uint8_t V_USERAUTH_SUCCESS[] = {0x34};

static const uint8_t V_CHANNEL_OPEN[54] = {
    0x5A, 0,   0,   0, 15, 'f',  'o',  'r', 'w',  'a', 'r',  'd',  'e',  'd',  '-', 't', 'c', 'p',
    'i',  'p', 0,   0, 0,  1,    0,    0,   0x10, 0,   0xFF, 0xFF, 0xFF, 0xFF, 0,   0,   0,   3,
    ':',  ':', '1', 0, 0,  0x42, 0x60, 0,   0,    0,   3,    ':',  ':',  '1',  0,   0,   0,   123};

static const uint8_t V_OPEN_CONFIRMATION[] = {0x5B, 0, 0,    0, 1,    0,    0,    1,   0,
                                              0,    0, 0x10, 0, 0xFF, 0xFF, 0xFF, 0xFF};
static const uint8_t V_OPEN_FAILURE[] = {0x5C, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t V_WINDOW_ADJUST[] = {0x5D, 0, 0, 1, 0, 0, 0, 0x08, 0};
static const uint8_t V_CHANNEL_DATA[] = {0x5E, 0, 0, 1, 0, 0, 0, 0, 3, 'a', 'b', 'c'};
static const uint8_t V_CHANNEL_CLOSE[] = {0x61, 0, 0, 1, 0};

struct vector {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	size_t valid_prefix; /* a shorter length that is itself a valid message (0: none) */
};

#define VECTOR(v, prefix)                                                                          \
	{                                                                                          \
#v, v, sizeof(v), prefix                                                           \
	}

static const struct vector vectors[] = {
    VECTOR(V_PROTOCOL_VERSION, 0),     VECTOR(V_DISCONNECT, 0),
    VECTOR(V_SERVICE_REQUEST, 0),      VECTOR(V_SERVICE_ACCEPT, 0),
    VECTOR(V_USERAUTH_REQUEST, 0),     VECTOR(V_USERAUTH_FAILURE, 0),
    VECTOR(V_GLOBAL_REQUEST, 0),       VECTOR(V_CANCEL_REQUEST, 0),
    VECTOR(V_REQUEST_SUCCESS_PORT, 1), VECTOR(V_REQUEST_SUCCESS, 0),
    VECTOR(V_REQUEST_FAILURE, 0),      VECTOR(V_USERAUTH_SUCCESS, 0),
    VECTOR(V_CHANNEL_OPEN, 0),         VECTOR(V_OPEN_CONFIRMATION, 0),
    VECTOR(V_OPEN_FAILURE, 0),         VECTOR(V_WINDOW_ADJUST, 0),
    VECTOR(V_CHANNEL_DATA, 0),         VECTOR(V_CHANNEL_CLOSE, 0),
};

static bool str_eq(struct apf_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void test_encoders_are_byte_exact(void **state)
{
	uint8_t b[128];
	const uint8_t uuid_zero[16] = {0};

	(void)state;
	assert_int_equal(apf_encode_protocol_version(b, sizeof(b), 1, 0, 254, NULL), 93);
	assert_memory_equal(b, V_PROTOCOL_VERSION, 93);
	assert_int_equal(apf_encode_protocol_version(b, sizeof(b), 1, 0, 254, uuid_zero), 93);
	assert_memory_equal(b, V_PROTOCOL_VERSION, 93);
	assert_int_equal(apf_encode_disconnect(b, sizeof(b), 2), sizeof(V_DISCONNECT));
	assert_memory_equal(b, V_DISCONNECT, sizeof(V_DISCONNECT));
	assert_int_equal(apf_encode_service(b, sizeof(b), APF_SERVICE_REQUEST, APF_SERVICE_PFWD),
	                 sizeof(V_SERVICE_REQUEST));
	assert_memory_equal(b, V_SERVICE_REQUEST, sizeof(V_SERVICE_REQUEST));
	assert_int_equal(apf_encode_service(b, sizeof(b), APF_SERVICE_ACCEPT, APF_SERVICE_AUTH),
	                 sizeof(V_SERVICE_ACCEPT));
	assert_memory_equal(b, V_SERVICE_ACCEPT, sizeof(V_SERVICE_ACCEPT));
	assert_int_equal(apf_encode_service(b, sizeof(b), APF_DISCONNECT, "x"), 0);
	assert_int_equal(apf_encode_global_request(b, sizeof(b), APF_REQUEST_TCPIP_FORWARD, true,
	                                           "127.0.0.1", 16992),
	                 sizeof(V_GLOBAL_REQUEST));
	assert_memory_equal(b, V_GLOBAL_REQUEST, sizeof(V_GLOBAL_REQUEST));
	assert_int_equal(apf_encode_global_request(b, sizeof(b), APF_REQUEST_CANCEL_TCPIP_FORWARD,
	                                           false, "::1", 623),
	                 sizeof(V_CANCEL_REQUEST));
	assert_memory_equal(b, V_CANCEL_REQUEST, sizeof(V_CANCEL_REQUEST));
	assert_int_equal(apf_encode_request_success_port(b, sizeof(b), 623), 5);
	assert_memory_equal(b, V_REQUEST_SUCCESS_PORT, 5);
	assert_int_equal(apf_encode_bare(b, sizeof(b), APF_REQUEST_SUCCESS), 1);
	assert_memory_equal(b, V_REQUEST_SUCCESS, 1);
	assert_int_equal(apf_encode_bare(b, sizeof(b), APF_REQUEST_FAILURE), 1);
	assert_memory_equal(b, V_REQUEST_FAILURE, 1);
	assert_int_equal(apf_encode_bare(b, sizeof(b), APF_USERAUTH_SUCCESS), 1);
	assert_memory_equal(b, V_USERAUTH_SUCCESS, 1);
	assert_int_equal(apf_encode_channel_open(b, sizeof(b), APF_CHANNEL_TYPE_FORWARDED, 1, 4096,
	                                         "::1", 16992, "::1", 123),
	                 54);
	assert_memory_equal(b, V_CHANNEL_OPEN, 54);
	assert_int_equal(apf_encode_open_confirmation(b, sizeof(b), 1, 0x100, 4096, 0xFFFFFFFF),
	                 17);
	assert_memory_equal(b, V_OPEN_CONFIRMATION, 17);
	assert_int_equal(apf_encode_open_failure(b, sizeof(b), 1, 4), 17);
	assert_memory_equal(b, V_OPEN_FAILURE, 17);
	assert_int_equal(apf_encode_window_adjust(b, sizeof(b), 0x100, 2048), 9);
	assert_memory_equal(b, V_WINDOW_ADJUST, 9);
	assert_int_equal(apf_encode_channel_data(b, sizeof(b), 0x100, "abc", 3), 12);
	assert_memory_equal(b, V_CHANNEL_DATA, 12);
	assert_int_equal(apf_encode_channel_close(b, sizeof(b), 0x100), 5);
	assert_memory_equal(b, V_CHANNEL_CLOSE, 5);
}

static void test_encoders_refuse_to_overflow(void **state)
{
	uint8_t b[128];

	(void)state;
	assert_int_equal(apf_encode_protocol_version(b, 92, 1, 0, 254, NULL), 0);
	assert_int_equal(apf_encode_channel_open(b, 53, APF_CHANNEL_TYPE_FORWARDED, 1, 4096, "::1",
	                                         16992, "::1", 123),
	                 0);
	assert_int_equal(apf_encode_channel_data(b, 11, 1, "abc", 3), 0);
	assert_int_equal(apf_encode_channel_data(b, 12, 1, "abc", 3), 12);
	assert_int_equal(apf_encode_bare(b, 0, APF_REQUEST_FAILURE), 0);
}

static void test_every_vector_decodes(void **state)
{
	struct apf_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];

		if (apf_decode(v->bytes, v->len, &m) != 0)
			fail_msg("%s does not decode", v->name);
		assert_int_equal(m.type, v->bytes[0]);
		assert_true(apf_message_known(m.type));
	}

	assert_int_equal(apf_decode(V_PROTOCOL_VERSION, 93, &m), 0);
	assert_int_equal(m.version.major, 1);
	assert_int_equal(m.version.minor, 0);
	assert_int_equal(m.version.trigger, 254);
	assert_int_equal(apf_decode(V_DISCONNECT, sizeof(V_DISCONNECT), &m), 0);
	assert_int_equal(m.disconnect.reason, 2);
	assert_int_equal(apf_decode(V_SERVICE_REQUEST, sizeof(V_SERVICE_REQUEST), &m), 0);
	assert_true(str_eq(m.service, APF_SERVICE_PFWD));
	assert_int_equal(apf_decode(V_USERAUTH_REQUEST, sizeof(V_USERAUTH_REQUEST), &m), 0);
	assert_true(str_eq(m.userauth.user, "u"));
	assert_true(str_eq(m.userauth.service, APF_SERVICE_PFWD));
	assert_true(str_eq(m.userauth.method, "password"));
	assert_int_equal(apf_decode(V_GLOBAL_REQUEST, sizeof(V_GLOBAL_REQUEST), &m), 0);
	assert_true(str_eq(m.global.name, APF_REQUEST_TCPIP_FORWARD));
	assert_true(m.global.want_reply);
	assert_true(m.global.has_forward);
	assert_true(str_eq(m.global.address, "127.0.0.1"));
	assert_int_equal(m.global.port, 16992);
	assert_int_equal(apf_decode(V_CANCEL_REQUEST, sizeof(V_CANCEL_REQUEST), &m), 0);
	assert_false(m.global.want_reply);
	assert_int_equal(m.global.port, 623);
	assert_int_equal(apf_decode(V_REQUEST_SUCCESS_PORT, 5, &m), 0);
	assert_true(m.success.has_port);
	assert_int_equal(m.success.port, 623);
	assert_int_equal(apf_decode(V_REQUEST_SUCCESS, 1, &m), 0);
	assert_false(m.success.has_port);
	assert_int_equal(apf_decode(V_CHANNEL_OPEN, 54, &m), 0);
	assert_true(str_eq(m.open.channel_type, APF_CHANNEL_TYPE_FORWARDED));
	assert_int_equal(m.open.sender, 1);
	assert_int_equal(m.open.window, 4096);
	assert_int_equal(m.open.max_packet, 0xFFFFFFFF);
	assert_true(m.open.has_endpoints);
	assert_true(str_eq(m.open.connected_address, "::1"));
	assert_int_equal(m.open.connected_port, 16992);
	assert_true(str_eq(m.open.originator_address, "::1"));
	assert_int_equal(m.open.originator_port, 123);
	assert_int_equal(apf_decode(V_OPEN_CONFIRMATION, 17, &m), 0);
	assert_int_equal(m.confirm.recipient, 1);
	assert_int_equal(m.confirm.sender, 0x100);
	assert_int_equal(m.confirm.window, 4096);
	assert_int_equal(apf_decode(V_OPEN_FAILURE, 17, &m), 0);
	assert_int_equal(m.failure.recipient, 1);
	assert_int_equal(m.failure.reason, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	assert_int_equal(apf_decode(V_WINDOW_ADJUST, 9, &m), 0);
	assert_int_equal(m.adjust.recipient, 0x100);
	assert_int_equal(m.adjust.bytes, 2048);
	assert_int_equal(apf_decode(V_CHANNEL_DATA, 12, &m), 0);
	assert_int_equal(m.data.recipient, 0x100);
	assert_int_equal(m.data.len, 3);
	assert_memory_equal(m.data.bytes, "abc", 3);
	assert_int_equal(apf_decode(V_CHANNEL_CLOSE, 5, &m), 0);
	assert_int_equal(m.close.recipient, 0x100);
}

static void test_truncated_and_trailing_bytes_are_rejected(void **state)
{
	uint8_t b[128];
	struct apf_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];

		for (size_t n = 0; n < v->len; n++) {
			if (n == v->valid_prefix && n > 0)
				continue;
			if (apf_decode(v->bytes, n, &m) != MEI_E_PROTOCOL)
				fail_msg("%s cut to %zu bytes was accepted", v->name, n);
		}
		memcpy(b, v->bytes, v->len);
		b[v->len] = 0;
		if (apf_decode(b, v->len + 1, &m) != MEI_E_PROTOCOL)
			fail_msg("%s with a trailing byte was accepted", v->name);
	}
	assert_int_equal(apf_decode(NULL, 0, &m), MEI_E_PROTOCOL);
}

static void test_malformed_frames_are_rejected(void **state)
{
	uint8_t b[128];
	struct apf_msg m;
	const uint8_t unknown[] = {0x00, 0x07, 0x60, 0xD0, 0xFF};
	const uint8_t data_too_long[] = {0x5E, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 'a'};
	const uint8_t big_port[] = {0x51, 0, 1, 0, 0};

	(void)state;
	for (size_t i = 0; i < sizeof(unknown); i++) {
		assert_int_equal(apf_decode(&unknown[i], 1, &m), MEI_E_PROTOCOL);
		assert_int_equal(m.type, unknown[i]);
		assert_false(apf_message_known(m.type));
	}
	/* a string length running past the end */
	memcpy(b, V_SERVICE_REQUEST, sizeof(V_SERVICE_REQUEST));
	b[4] = 19;
	assert_int_equal(apf_decode(b, sizeof(V_SERVICE_REQUEST), &m), MEI_E_PROTOCOL);
	assert_int_equal(apf_decode(data_too_long, sizeof(data_too_long), &m), MEI_E_PROTOCOL);
	memcpy(b, V_CHANNEL_OPEN, sizeof(V_CHANNEL_OPEN));
	b[35] = 4; /* connected address length one past what is there */
	assert_int_equal(apf_decode(b, sizeof(V_CHANNEL_OPEN), &m), MEI_E_PROTOCOL);
	/* wrong fixed lengths */
	memset(b, 0, sizeof(b));
	b[0] = APF_PROTOCOL_VERSION;
	assert_int_equal(apf_decode(b, 92, &m), MEI_E_PROTOCOL);
	assert_int_equal(apf_decode(b, 94, &m), MEI_E_PROTOCOL);
	assert_int_equal(apf_decode(V_OPEN_FAILURE, 13, &m), MEI_E_PROTOCOL);
	assert_int_equal(apf_decode(V_OPEN_CONFIRMATION, 13, &m), MEI_E_PROTOCOL);
	assert_int_equal(apf_decode(V_DISCONNECT, 5, &m), MEI_E_PROTOCOL);
	/* a port above 65535 */
	assert_int_equal(apf_decode(big_port, sizeof(big_port), &m), MEI_E_PROTOCOL);
	memcpy(b, V_GLOBAL_REQUEST, sizeof(V_GLOBAL_REQUEST));
	b[sizeof(V_GLOBAL_REQUEST) - 3] = 1;
	assert_int_equal(apf_decode(b, sizeof(V_GLOBAL_REQUEST), &m), MEI_E_PROTOCOL);
}

static void test_unknown_requests_and_channel_types_keep_their_bytes(void **state)
{
	uint8_t b[128];
	size_t n;
	struct apf_msg m;

	(void)state;
	/* udp-send-to carries more than a forward does; its layout is its own */
	n = apf_encode_global_request(b, sizeof(b), "udp-send-to@amt.intel.com", true, "x", 1);
	assert_int_equal(apf_decode(b, n, &m), 0);
	assert_false(m.global.has_forward);
	assert_true(m.global.want_reply);
	n = apf_encode_channel_open(b, sizeof(b), "session", 7, 10, "", 0, "", 0);
	assert_int_equal(apf_decode(b, n, &m), 0);
	assert_false(m.open.has_endpoints);
	assert_int_equal(m.open.sender, 7);
	assert_string_equal(apf_open_failure_name(APF_OPEN_FAILURE_CONNECT_FAILED),
	                    "connect failed");
	assert_string_equal(apf_message_name(APF_CHANNEL_OPEN_FAILURE), "CHANNEL_OPEN_FAILURE");
}

/* Random frames of known types: every one is decoded or refused, none read out of bounds. */
static void test_decode_survives_random_bytes(void **state)
{
	static const uint8_t types[] = {1,  5,  6,  50, 51, 52, 80, 81,
	                                82, 90, 91, 92, 93, 94, 97, 192};
	uint32_t x = 2463534242u;
	unsigned accepted = 0;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		size_t len = 1 + (x % 40);
		uint8_t *b = malloc(len); /* exact size, so ASan sees any overread */
		struct apf_msg m;

		assert_non_null(b);
		for (size_t j = 0; j < len; j++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			/* small numbers make plausible string lengths */
			b[j] = (uint8_t)(j % 4 == 3 || j == 0 ? x : (x & 0x80 ? 0 : x));
		}
		b[0] = types[b[0] % sizeof(types)];
		if (apf_decode(b, len, &m) == 0)
			accepted++;
		free(b);
	}
	assert_true(accepted > 0);
}

/* ---- the firmware side alone: slots and strictness ---- */

struct capture {
	uint8_t msg[64][256];
	size_t len[64];
	unsigned count;
	int services[16];
	unsigned service_count;
};

static int capture_send(void *ctx, const uint8_t *msg, size_t len)
{
	struct capture *c = ctx;

	if (c->count < 64 && len <= sizeof(c->msg[0])) {
		memcpy(c->msg[c->count], msg, len);
		c->len[c->count] = len;
	}
	c->count++;
	return 0;
}

/* A service whose far end the test keeps (and closes at the end). */
static int capture_service(void *ctx, uint16_t port)
{
	struct capture *c = ctx;
	int sv[2];

	(void)port;
	if (c->service_count >= 16 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	c->services[c->service_count++] = sv[1];
	return sv[0];
}

static void capture_close_services(struct capture *c)
{
	for (unsigned i = 0; i < c->service_count; i++)
		close(c->services[i]);
}

static const struct apf_msg *last_msg(struct capture *c, struct apf_msg *m)
{
	assert_true(c->count > 0 && c->count <= 64);
	assert_int_equal(apf_decode(c->msg[c->count - 1], c->len[c->count - 1], m), 0);
	return m;
}

static int host_says(struct apf_fw *fw, size_t (*build)(uint8_t *, size_t))
{
	uint8_t b[128];

	return apf_fw_input(fw, b, build(b, sizeof(b)));
}

static size_t host_version(uint8_t *b, size_t cap)
{
	return apf_encode_protocol_version(b, cap, 1, 0, 254, NULL);
}

static size_t host_accept(uint8_t *b, size_t cap)
{
	return apf_encode_service(b, cap, APF_SERVICE_ACCEPT, APF_SERVICE_PFWD);
}

/* Drive the firmware through the handshake as a host would. */
static void fw_handshake(struct apf_fw *fw, struct capture *c)
{
	uint8_t b[64];
	struct apf_msg m;

	assert_int_equal(host_says(fw, host_version), 0);
	assert_int_equal(c->count, 2); /* PROTOCOL_VERSION, SERVICE_REQUEST */
	assert_int_equal(last_msg(c, &m)->type, APF_SERVICE_REQUEST);
	assert_int_equal(host_says(fw, host_accept), 0);
	assert_int_equal(c->count, 4); /* two tcpip-forward requests */
	assert_int_equal(apf_fw_input(fw, b, apf_encode_request_success_port(b, sizeof(b), 16992)),
	                 0);
	assert_int_equal(apf_fw_input(fw, b, apf_encode_request_success_port(b, sizeof(b), 623)),
	                 0);
}

static int fw_open(struct apf_fw *fw, uint32_t host_id)
{
	uint8_t b[128];

	return apf_fw_input(fw, b,
	                    apf_encode_channel_open(b, sizeof(b), APF_CHANNEL_TYPE_FORWARDED,
	                                            host_id, 4096, "::1", 16992, "::1", 123));
}

static void test_firmware_has_eight_slots_freed_by_close(void **state)
{
	struct capture c = {0};
	struct apf_fw_ops ops = {
	    .ctx = &c, .send_to_host = capture_send, .open_service = capture_service};
	struct apf_fw *fw = apf_fw_new(NULL, &ops);
	struct apf_fw_stats st;
	struct apf_msg m;
	uint32_t first_id = 0;
	uint8_t b[16];

	(void)state;
	assert_non_null(fw);
	fw_handshake(fw, &c);
	for (uint32_t i = 1; i <= 8; i++) {
		assert_int_equal(fw_open(fw, i), 0);
		assert_int_equal(last_msg(&c, &m)->type, APF_CHANNEL_OPEN_CONFIRMATION);
		assert_int_equal(m.confirm.recipient, i);
		if (i == 1)
			first_id = m.confirm.sender;
	}
	assert_int_equal(fw_open(fw, 9), 0);
	assert_int_equal(last_msg(&c, &m)->type, APF_CHANNEL_OPEN_FAILURE);
	assert_int_equal(m.failure.recipient, 9);
	assert_int_equal(m.failure.reason, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);

	assert_int_equal(apf_fw_input(fw, b, apf_encode_channel_close(b, sizeof(b), first_id)), 0);
	assert_int_equal(last_msg(&c, &m)->type, APF_CHANNEL_CLOSE);
	assert_int_equal(m.close.recipient, 1);
	assert_int_equal(fw_open(fw, 10), 0);
	assert_int_equal(last_msg(&c, &m)->type, APF_CHANNEL_OPEN_CONFIRMATION);
	assert_int_equal(m.confirm.recipient, 10);

	apf_fw_get_stats(fw, &st);
	assert_int_equal(st.channels_opened, 9);
	assert_int_equal(st.channels_refused, 1);
	assert_int_equal(st.channels_closed, 1);
	assert_int_equal(st.channels_in_use, 8);
	assert_int_equal(st.ports_forwarded, 2);
	assert_true(st.handshake_done);
	apf_fw_free(fw);
	capture_close_services(&c);
}

static void test_firmware_rejects_bad_host_frames(void **state)
{
	struct capture c = {0};
	struct apf_fw_ops ops = {
	    .ctx = &c, .send_to_host = capture_send, .open_service = capture_service};
	struct apf_fw *fw;
	struct apf_fw_config small = {.window = 16};
	struct apf_msg m;
	uint8_t b[128];
	uint8_t junk[32] = {0};

	(void)state;
	/* a channel before the handshake */
	fw = apf_fw_new(NULL, &ops);
	assert_int_equal(fw_open(fw, 1), MEI_E_PROTOCOL);
	assert_int_equal(last_msg(&c, &m)->type, APF_DISCONNECT);
	assert_int_equal(m.disconnect.reason, APF_DISCONNECT_PROTOCOL_ERROR);
	assert_int_equal(fw_open(fw, 1), APF_FW_END); /* over is over */
	apf_fw_free(fw);

	/* a truncated frame */
	c = (struct capture){0};
	fw = apf_fw_new(NULL, &ops);
	assert_int_equal(apf_fw_input(fw, V_PROTOCOL_VERSION, 92), MEI_E_PROTOCOL);
	assert_int_equal(last_msg(&c, &m)->type, APF_DISCONNECT);
	apf_fw_free(fw);

	/* data for a channel that is not open, and data beyond the window */
	c = (struct capture){0};
	fw = apf_fw_new(&small, &ops);
	fw_handshake(fw, &c);
	assert_int_equal(apf_fw_input(fw, b, apf_encode_channel_data(b, sizeof(b), 0x999, "x", 1)),
	                 MEI_E_PROTOCOL);
	apf_fw_free(fw);
	capture_close_services(&c);

	c = (struct capture){0};
	fw = apf_fw_new(&small, &ops);
	fw_handshake(fw, &c);
	assert_int_equal(fw_open(fw, 1), 0);
	assert_int_equal(last_msg(&c, &m)->confirm.window, 16);
	assert_int_equal(
	    apf_fw_input(fw, b, apf_encode_channel_data(b, sizeof(b), m.confirm.sender, junk, 17)),
	    MEI_E_PROTOCOL);
	assert_int_equal(last_msg(&c, &m)->type, APF_DISCONNECT);
	apf_fw_free(fw);
	capture_close_services(&c);

	/* a version it does not speak is answered with its own, and nothing more */
	c = (struct capture){0};
	fw = apf_fw_new(NULL, &ops);
	assert_int_equal(
	    apf_fw_input(fw, b, apf_encode_protocol_version(b, sizeof(b), 2, 0, 0, NULL)), 0);
	assert_int_equal(c.count, 1);
	assert_int_equal(last_msg(&c, &m)->type, APF_PROTOCOL_VERSION);
	apf_fw_free(fw);
}

/* ---- a fake AMT on a Unix socket (tests/helpers/fake_amt.h) ---- */

#define MAX_SERVICES 256

/* The fake AMT with an echo service behind the WS-Man ports and a greeting service behind the
 * redirection ports, each channel served by a thread of its own. */
struct amt {
	struct fake_amt fw;
	pthread_t services[MAX_SERVICES];
	int service_fds[MAX_SERVICES]; /* each service thread's end of its socket pair */
	unsigned service_count;
};

static void *echo_service(void *arg)
{
	int fd = *(const int *)arg;
	uint8_t buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	close(fd);
	return NULL;
}

static void *greeting_service(void *arg)
{
	int fd = *(const int *)arg;
	ssize_t n = send(fd, GREETING, strlen(GREETING), MSG_NOSIGNAL);

	(void)n; /* the test reads what arrived */
	close(fd);
	return NULL;
}

/* Under the fake's lock (fake_amt_service_fn). */
static int open_service(void *ctx, uint16_t port)
{
	struct amt *a = ctx;
	void *(*fn)(void *);
	int sv[2];

	if (port == APF_PORT_HTTP || port == APF_PORT_HTTPS)
		fn = echo_service;
	else if (port == APF_PORT_REDIR || port == APF_PORT_REDIR_TLS)
		fn = greeting_service;
	else
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	if (a->service_count < MAX_SERVICES) {
		unsigned i = a->service_count;

		a->service_fds[i] = sv[1];
		if (pthread_create(&a->services[i], NULL, fn, &a->service_fds[i]) == 0) {
			a->service_count++;
			return sv[0];
		}
	}
	close(sv[0]);
	close(sv[1]);
	return -1;
}

static struct amt *amt_start(const struct apf_fw_config *cfg)
{
	struct amt *a = calloc(1, sizeof(*a));

	assert_non_null(a);
	fake_amt_start(&a->fw, "test-apf", cfg, open_service, a);
	return a;
}

struct amt_totals {
	struct apf_fw_stats st;
	unsigned sessions;
};

/* Stop serving (a session in progress ends as a reset would), join everything, and say what
 * the firmware saw over all sessions. */
static struct amt_totals amt_stop_totals(struct amt *a)
{
	struct amt_totals t;

	fake_amt_stop(&a->fw);
	t.st = a->fw.total;
	t.sessions = a->fw.sessions;
	for (unsigned i = 0; i < a->service_count; i++)
		pthread_join(a->services[i], NULL);
	free(a);
	return t;
}

static void amt_stop(struct amt *a)
{
	struct amt_totals t = amt_stop_totals(a);

	assert_int_equal(t.st.protocol_errors, 0);
}

/*
 * Push LEN bytes through FD and read back until LEN bytes have come, end of file, or the time
 * is up. Returns the bytes read.
 */
static size_t echo_through(int fd, const uint8_t *out, uint8_t *in, size_t len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t sent = 0, got = 0;

	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((p.revents & POLLOUT) && sent < len) {
			size_t chunk = len - sent > 65536 ? 65536 : len - sent;

			n = send(fd, out + sent, chunk, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				break;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, in + got, len - got, 0);
			if (n > 0)
				got += (size_t)n;
			else if (n == 0 || errno != EAGAIN)
				break;
		}
	}
	return got;
}

/* ---- the bridge, from its client's side ---- */

struct bridge {
	struct apf_session *s;
	char dir[64];
	char path[108];
};

static void bridge_start(struct bridge *b, struct apf_session *s, uint16_t port)
{
	int r;

	b->s = s;
	snprintf(b->dir, sizeof(b->dir), "/tmp/test-apf-bridge.XXXXXX");
	assert_non_null(mkdtemp(b->dir));
	r = apf_bridge_listen(s, port, b->dir, b->path, sizeof(b->path));
	if (r != 0)
		fail_msg("apf_bridge_listen: %s: %s", mei_strerror(r), apf_last_error(s));
	assert_int_equal(strncmp(b->path, b->dir, strlen(b->dir)), 0);
}

static void bridge_end(struct bridge *b)
{
	struct stat st;

	apf_bridge_stop(b->s);
	assert_int_equal(lstat(b->path, &st), -1); /* the socket is gone */
	assert_int_equal(rmdir(b->dir), 0);        /* and nothing else was left behind */
}

static int bridge_connect(const struct bridge *b)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, b->path, strlen(b->path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect %s: %s", b->path, strerror(errno));
	return fd;
}

static struct apf_bridge_status bridge_status(struct apf_session *s)
{
	struct apf_bridge_status st;

	apf_bridge_status(s, &st);
	return st;
}

/* Wait (5 s at most) until the bridge has finished N connections. */
static struct apf_bridge_status wait_completed(struct apf_session *s, unsigned n)
{
	int64_t deadline = now_ms() + 5000;
	struct apf_bridge_status st = bridge_status(s);

	while (st.completed < n && now_ms() < deadline) {
		struct timespec ts = {0, 2L * 1000 * 1000};

		nanosleep(&ts, NULL);
		st = bridge_status(s);
	}
	if (st.completed < n)
		fail_msg("the bridge finished %u of %u connections", st.completed, n);
	return st;
}

/* One connection: MSG goes out and must come back whole; then a clean close of its channel. */
static void echo_once(struct bridge *b, const char *msg)
{
	unsigned before = bridge_status(b->s).completed;
	struct apf_bridge_status st;
	size_t len = strlen(msg);
	uint8_t back[256];
	int fd = bridge_connect(b);

	assert_int_equal(echo_through(fd, (const uint8_t *)msg, back, len, 5000), len);
	assert_memory_equal(back, msg, len);
	close(fd);
	st = wait_completed(b->s, before + 1);
	if (st.last_result != 0)
		fail_msg("the channel ended with %s: %s", mei_strerror(st.last_result),
		         st.last_error);
}

/* Read until end of file (or a reset), within TIMEOUT_MS. Returns the bytes read. */
static size_t read_to_end(int fd, char *buf, size_t cap, int timeout_ms, bool *eof)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t got = 0;

	*eof = false;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return got;
		n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			if (got == cap)
				return got;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			continue;
		*eof = true; /* end of file, or a reset */
		return got;
	}
}

/* ---- end to end ---- */

/* The fake AMT with CFG, a session with it, and a bridge to its WS-Man port. */
struct e2e {
	struct amt *a;
	struct apf_session *s;
	struct bridge b;
};

static void e2e_start(struct e2e *e, const struct apf_fw_config *cfg)
{
	e->a = amt_start(cfg);
	e->s = fake_amt_session(&e->a->fw);
	bridge_start(&e->b, e->s, APF_PORT_HTTP);
}

/* Stop the bridge and close the session; the AMT is the test's to stop. */
static void e2e_close(struct e2e *e)
{
	bridge_end(&e->b);
	apf_close(e->s);
}

static void test_handshake_is_driven_by_messages(void **state)
{
	struct amt *a = amt_start(NULL);
	struct amt_totals t;
	struct apf_session *s;
	struct bridge b;
	int64_t t0 = now_ms(), took;

	(void)state;
	s = fake_amt_session(&a->fw);
	took = now_ms() - t0;
	if (took >= 100)
		fail_msg("the handshake took %lld ms", (long long)took);
	assert_int_equal(apf_handshake_count(s), 1);
	assert_int_equal(apf_wsman_port(s), APF_PORT_HTTP);
	assert_false(apf_tls_enforced(s));
	assert_string_equal(apf_last_error(s), "");
	assert_non_null(apf_device(s));
	/* the redirection port's forward is answered when it comes, here by the next reads */
	bridge_start(&b, s, APF_PORT_HTTP);
	assert_true(bridge_status(s).listening);
	echo_once(&b, "GET /");
	bridge_end(&b);
	assert_false(bridge_status(s).listening);
	apf_close(s);
	t = amt_stop_totals(a);
	assert_int_equal(t.sessions, 1);
	assert_int_equal(t.st.ports_forwarded, 2);
	assert_int_equal(t.st.protocol_errors, 0);
}

static void test_firmware_version_first_is_fine(void **state)
{
	struct apf_fw_config cfg = {.version_first = true};
	struct amt *a = amt_start(&cfg);
	struct apf_session *s;
	struct bridge b;

	(void)state;
	s = fake_amt_session(&a->fw);
	assert_int_equal(apf_wsman_port(s), APF_PORT_HTTP);
	bridge_start(&b, s, APF_PORT_HTTP);
	echo_once(&b, "GET /wsman");
	bridge_end(&b);
	apf_close(s);
	amt_stop(a);
}

/* A refused channel: the client's connection is closed at once, the refusal recorded first. */
static void expect_refusal(struct bridge *b, uint32_t reason)
{
	unsigned before = bridge_status(b->s).completed;
	struct apf_bridge_status st;
	char buf[64];
	int64_t t0 = now_ms();
	bool eof;
	int fd = bridge_connect(b);
	ssize_t n = send(fd, "GET /", 5, MSG_NOSIGNAL);

	(void)n; /* the bridge may have closed already */
	assert_int_equal(read_to_end(fd, buf, sizeof(buf), 2000, &eof), 0);
	assert_true(eof);
	if (now_ms() - t0 > 1000)
		fail_msg("the refusal took %lld ms to reach the client",
		         (long long)(now_ms() - t0));
	/* recorded before the close: no waiting needed */
	st = bridge_status(b->s);
	assert_int_equal(st.completed, before + 1);
	assert_int_equal(st.last_result, MEI_E_REFUSED);
	assert_int_equal(st.last_refusal, reason);
	assert_non_null(strstr(st.last_error, apf_open_failure_name(reason)));
	close(fd);
}

static void test_tls_enforcing_firmware(void **state)
{
	struct apf_fw_config cfg = {.tls_enforced = true};
	struct amt *a = amt_start(&cfg);
	struct amt_totals t;
	struct apf_session *s;
	struct bridge b;

	(void)state;
	s = fake_amt_session(&a->fw);
	assert_true(apf_tls_enforced(s));
	assert_int_equal(apf_wsman_port(s), APF_PORT_HTTPS);
	bridge_start(&b, s, APF_PORT_HTTPS);
	echo_once(&b, "\x16\x03\x01 client hello");
	bridge_end(&b);
	/* 16992 is not forwarded on such firmware: a clear refusal */
	bridge_start(&b, s, APF_PORT_HTTP);
	expect_refusal(&b, APF_OPEN_FAILURE_PROHIBITED);
	assert_int_equal(apf_last_refusal(s), APF_OPEN_FAILURE_PROHIBITED);
	bridge_end(&b);
	apf_close(s);
	t = amt_stop_totals(a);
	assert_int_equal(t.st.ports_forwarded, 2);
}

static void test_channels_in_sequence_share_one_session(void **state)
{
	struct apf_bridge_status st;
	struct amt_totals t;
	struct e2e e;
	char msg[64];

	(void)state;
	e2e_start(&e, NULL);
	for (int i = 0; i < 12; i++) { /* more than the 8 slots: each is freed by its close */
		snprintf(msg, sizeof(msg), "request %d", i);
		echo_once(&e.b, msg);
	}
	st = bridge_status(e.s);
	assert_int_equal(st.accepted, 12);
	assert_int_equal(st.channels, 12);
	assert_int_equal(st.refused + st.failed, 0);
	assert_int_equal(apf_handshake_count(e.s), 1);
	e2e_close(&e);
	t = amt_stop_totals(e.a);
	assert_int_equal(t.sessions, 1);
	assert_int_equal(t.st.channels_opened, 12);
	assert_int_equal(t.st.channels_closed, 12);
	assert_int_equal(t.st.protocol_errors, 0);
}

static void test_session_ending_after_each_close_is_redone(void **state)
{
	struct apf_fw_config cfg = {.close_session_after_channel_close = true};
	struct amt_totals t;
	struct e2e e;

	(void)state;
	e2e_start(&e, &cfg);
	echo_once(&e.b, "first");
	echo_once(&e.b, "second");
	echo_once(&e.b, "third");
	assert_int_equal(apf_handshake_count(e.s), 3);
	assert_int_equal(bridge_status(e.s).failed, 0);
	e2e_close(&e);
	t = amt_stop_totals(e.a);
	assert_int_equal(t.st.channels_opened, 3);
	assert_int_equal(t.st.protocol_errors, 0);
}

static void test_firmware_closes_first(void **state)
{
	struct apf_bridge_status st;
	struct e2e e;
	char buf[128];
	bool eof;
	size_t got;
	int fd;

	(void)state;
	/* by the end of one exchange the redirection port's forward has been answered too */
	e2e_start(&e, NULL);
	echo_once(&e.b, "before");
	bridge_end(&e.b);
	bridge_start(&e.b, e.s, APF_PORT_REDIR);
	fd = bridge_connect(&e.b);
	got = read_to_end(fd, buf, sizeof(buf), 5000, &eof);
	assert_true(eof);
	assert_int_equal(got, strlen(GREETING));
	assert_memory_equal(buf, GREETING, got);
	close(fd);
	st = wait_completed(e.s, 1);
	assert_int_equal(st.last_result, 0);
	bridge_end(&e.b);
	bridge_start(&e.b, e.s, APF_PORT_HTTP);
	echo_once(&e.b, "after");
	bridge_end(&e.b);
	assert_int_equal(apf_handshake_count(e.s), 1);
	apf_close(e.s);
	amt_stop(e.a);
}

static void test_megabyte_with_small_windows_and_messages(void **state)
{
	struct apf_fw_config cfg = {.max_msg_length = 128, .window = 300};
	struct amt *a = amt_start(&cfg);
	const size_t len = 1u << 20;
	uint8_t *out = malloc(len), *in = malloc(len);
	struct amt_totals t;
	struct apf_session *s;
	struct bridge b;
	int fd;

	(void)state;
	assert_non_null(out);
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(i * 7 + (i >> 11));
	s = fake_amt_session(&a->fw);
	apf_set_window(s, 500);
	bridge_start(&b, s, APF_PORT_HTTP);
	fd = bridge_connect(&b);
	assert_int_equal(echo_through(fd, out, in, len, 60000), len);
	assert_memory_equal(in, out, len);
	close(fd);
	assert_int_equal(wait_completed(s, 1).last_result, 0);
	bridge_end(&b);
	apf_close(s);
	t = amt_stop_totals(a);
	assert_int_equal(t.st.host_data_bytes, len);
	assert_int_equal(t.st.fw_data_bytes, len);
	assert_true(t.st.host_data_max <= 128 - APF_DATA_HEADER_LEN);
	assert_true(t.st.fw_data_max <= 128 - APF_DATA_HEADER_LEN);
	assert_true(t.st.host_data_max == 128 - APF_DATA_HEADER_LEN); /* frames were filled */
	assert_true(t.st.window_adjusts_sent > 1000);     /* the host waited for credit */
	assert_true(t.st.window_adjusts_received > 1000); /* and gave credit */
	assert_int_equal(t.st.protocol_errors, 0);
	free(out);
	free(in);
}

static void test_refused_channel_is_a_clear_error(void **state)
{
	struct apf_fw_config cfg = {.refuse_open_reason = APF_OPEN_FAILURE_RESOURCE_SHORTAGE};
	struct apf_bridge_status st;
	struct e2e e;

	(void)state;
	e2e_start(&e, &cfg);
	expect_refusal(&e.b, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	st = bridge_status(e.s);
	assert_non_null(strstr(st.last_error, "16992"));
	/* the bridge goes on: the next connection is refused just as clearly */
	expect_refusal(&e.b, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	st = bridge_status(e.s);
	assert_int_equal(st.accepted, 2);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.channels + st.failed, 0);
	assert_int_equal(apf_handshake_count(e.s), 1); /* a refusal is not a dead session */
	bridge_end(&e.b);
	assert_int_equal(apf_last_refusal(e.s), APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	apf_close(e.s);
	amt_stop(e.a);
}

/* The firmware goes away mid-transfer: an error soon, end of file locally, then recovery. */
static void transfer_is_cut(const struct apf_fw_config *cfg, const char *why)
{
	const size_t len = 256u << 10;
	uint8_t *out = calloc(1, len), *in = malloc(len);
	struct apf_bridge_status st;
	struct e2e e;
	int64_t t0;
	int fd;

	assert_non_null(out);
	assert_non_null(in);
	e2e_start(&e, cfg);
	fd = bridge_connect(&e.b);
	t0 = now_ms();
	assert_true(echo_through(fd, out, in, len, 5000) < len);
	if (now_ms() - t0 > 1000)
		fail_msg("noticing the cut took %lld ms", (long long)(now_ms() - t0));
	/* recorded before the client's end of file */
	st = bridge_status(e.s);
	assert_int_equal(st.completed, 1);
	assert_int_equal(st.last_result, MEI_E_RESET);
	assert_int_equal(st.failed, 1);
	if (!strstr(st.last_error, why))
		fail_msg("unclear error: %s", st.last_error);
	close(fd);
	/* the next connection's channel starts over on a fresh session */
	echo_once(&e.b, "again");
	assert_int_equal(apf_handshake_count(e.s), 2);
	e2e_close(&e);
	amt_stop(e.a);
	free(out);
	free(in);
}

static void test_disconnect_mid_transfer_is_an_error(void **state)
{
	struct apf_fw_config cfg = {.disconnect_after_data = 5, .max_msg_length = 512};

	(void)state;
	transfer_is_cut(&cfg, "DISCONNECT");
}

static void test_reset_mid_transfer_is_an_error(void **state)
{
	struct apf_fw_config cfg = {.reset_after_data = 5, .max_msg_length = 512};

	(void)state;
	transfer_is_cut(&cfg, "reset");
}

static void test_other_major_version_is_refused(void **state)
{
	struct apf_fw_config cfg = {.protocol_major = 2, .protocol_minor = 1};
	struct amt *a = amt_start(&cfg);
	struct apf_session *s = NULL;
	struct mei_opts o;
	char err[256];

	(void)state;
	fake_amt_host_opts(&o);
	assert_int_equal(apf_open_err(a->fw.device, &o, &s, err, sizeof(err)), MEI_E_PROTOCOL);
	assert_null(s);
	if (!strstr(err, "2.1"))
		fail_msg("unclear error: %s", err);
	amt_stop(a);
}

/* Nothing arrives on FD within MS. */
static void assert_quiet(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_int_equal(poll(&p, 1, ms), 0);
}

static void test_one_channel_at_a_time(void **state)
{
	struct apf_bridge_status st;
	struct amt_totals t;
	struct e2e e;
	uint8_t back[16];
	char buf[8];
	bool eof;
	int first, second, gone;

	(void)state;
	e2e_start(&e, NULL);
	first = bridge_connect(&e.b);
	assert_int_equal(echo_through(first, (const uint8_t *)"one", back, 3, 5000), 3);
	/* later clients wait their turn in the listener's queue */
	second = bridge_connect(&e.b);
	assert_int_equal(send(second, "two", 3, MSG_NOSIGNAL), 3);
	gone = bridge_connect(&e.b); /* and one that gives up before its turn costs no channel */
	assert_quiet(second, 200);
	close(gone);
	st = bridge_status(e.s);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.completed, 0);
	close(first);
	/* its turn comes once the first is done */
	assert_int_equal(read_to_end(second, buf, 3, 5000, &eof), 3);
	assert_memory_equal(buf, "two", 3);
	assert_false(eof);
	close(second);
	echo_once(&e.b, "next");
	st = wait_completed(e.s, 3);
	assert_int_equal(st.accepted, 3);
	assert_int_equal(st.channels, 3);
	assert_int_equal(st.failed + st.refused, 0);
	e2e_close(&e);
	t = amt_stop_totals(e.a);
	assert_int_equal(t.st.channels_opened, 3);
	assert_int_equal(t.st.channels_closed, 3);
}

/*
 * apf_bridge_stop with a client in the middle of a channel: bounded, the client gets end of
 * file, the channel is closed on both sides, the socket is gone, and the session serves again.
 */
static void test_stop_while_a_client_is_connected(void **state)
{
	struct apf_bridge_status st;
	struct amt_totals t;
	struct e2e e;
	uint8_t back[16];
	char buf[16];
	int64_t t0;
	bool eof;
	int fd, queued;

	(void)state;
	e2e_start(&e, NULL);
	fd = bridge_connect(&e.b);
	assert_int_equal(echo_through(fd, (const uint8_t *)"busy", back, 4, 5000), 4);
	queued = bridge_connect(&e.b);
	t0 = now_ms();
	bridge_end(&e.b);
	if (now_ms() - t0 > 1000)
		fail_msg("stopping took %lld ms", (long long)(now_ms() - t0));
	assert_int_equal(read_to_end(fd, buf, sizeof(buf), 1000, &eof), 0);
	assert_true(eof);
	assert_int_equal(read_to_end(queued, buf, sizeof(buf), 1000, &eof), 0);
	assert_true(eof); /* reset with the listener */
	close(fd);
	close(queued);
	st = bridge_status(e.s);
	assert_false(st.listening);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.last_result, MEI_E_IO);
	assert_non_null(strstr(st.last_error, "stopped"));
	/* the firmware got its CHANNEL_CLOSE: the session is clean and serves again */
	bridge_start(&e.b, e.s, APF_PORT_HTTP);
	echo_once(&e.b, "again");
	bridge_end(&e.b);
	assert_int_equal(apf_handshake_count(e.s), 1);
	/* and apf_close with a client connected does not hang either */
	bridge_start(&e.b, e.s, APF_PORT_HTTP);
	fd = bridge_connect(&e.b);
	assert_int_equal(echo_through(fd, (const uint8_t *)"x", back, 1, 5000), 1);
	apf_close(e.s);
	close(fd);
	assert_int_equal(rmdir(e.b.dir), 0); /* the socket went with the session */
	t = amt_stop_totals(e.a);
	assert_int_equal(t.sessions, 1);
	assert_int_equal(t.st.channels_opened, 3);
	assert_true(t.st.channels_closed >= 2);
	assert_int_equal(t.st.protocol_errors, 0);
}

static void test_bridge_directory_must_be_private(void **state)
{
	struct amt *a = amt_start(NULL);
	struct apf_session *s;
	struct bridge b;
	char dir[64], link[80], file[80], path[108], longdir[200];

	(void)state;
	s = fake_amt_session(&a->fw);
	snprintf(dir, sizeof(dir), "/tmp/test-apf-dir.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, dir, path, sizeof(path)),
	                 MEI_E_ACCESS);
	assert_string_equal(path, "");
	assert_non_null(strstr(apf_last_error(s), "refusing"));
	assert_int_equal(chmod(dir, 0701), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, dir, path, sizeof(path)),
	                 MEI_E_ACCESS);
	assert_int_equal(chmod(dir, 0700), 0);
	if (geteuid() == 0) { /* somebody else's directory */
		assert_int_equal(chown(dir, 65534, 65534), 0);
		assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, dir, path, sizeof(path)),
		                 MEI_E_ACCESS);
		assert_int_equal(chown(dir, 0, 0), 0);
	}
	/* a link to a private directory is not one */
	snprintf(link, sizeof(link), "%s.link", dir);
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, link, path, sizeof(path)),
	                 MEI_E_ACCESS);
	assert_int_equal(unlink(link), 0);
	snprintf(file, sizeof(file), "%s/file", dir);
	assert_int_equal(close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, file, path, sizeof(path)),
	                 MEI_E_ACCESS);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(
	    apf_bridge_listen(s, APF_PORT_HTTP, "/nonexistent/amt", path, sizeof(path)), MEI_E_IO);
	/* a path too long for sun_path, and a caller's buffer too small */
	memset(longdir, 'd', sizeof(longdir));
	snprintf(longdir, sizeof(longdir), "%s/%0100d", dir, 0);
	assert_int_equal(mkdir(longdir, 0700), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, longdir, path, sizeof(path)),
	                 MEI_E_IO);
	assert_non_null(strstr(apf_last_error(s), "too long"));
	assert_int_equal(rmdir(longdir), 0);
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, dir, path, 10), MEI_E_IO);
	assert_false(bridge_status(s).listening);
	assert_int_equal(rmdir(dir), 0); /* nothing was left in it */
	/* the private one works; a second bridge on the same session does not */
	bridge_start(&b, s, APF_PORT_HTTP);
	snprintf(dir, sizeof(dir), "/tmp/test-apf-dir.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(apf_bridge_listen(s, APF_PORT_HTTP, dir, path, sizeof(path)), MEI_E_BUSY);
	assert_int_equal(rmdir(dir), 0);
	echo_once(&b, "private");
	bridge_end(&b);
	apf_close(s);
	amt_stop(a);
}

static void test_no_answer_is_bounded(void **state)
{
	struct apf_fw_config cfg = {.max_msg_length = 64}; /* too small for PROTOCOL_VERSION */
	struct amt *a = amt_start(&cfg);
	struct apf_session *s = NULL;
	struct mei_opts o;
	char err[256];
	int64_t t0 = now_ms();

	(void)state;
	fake_amt_host_opts(&o);
	assert_int_equal(apf_open_err(a->fw.device, &o, &s, err, sizeof(err)), MEI_E_TOO_BIG);
	assert_true(now_ms() - t0 < 1000);
	assert_non_null(strstr(err, "max_msg_length"));
	amt_stop(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encoders_are_byte_exact),
	    cmocka_unit_test(test_encoders_refuse_to_overflow),
	    cmocka_unit_test(test_every_vector_decodes),
	    cmocka_unit_test(test_truncated_and_trailing_bytes_are_rejected),
	    cmocka_unit_test(test_malformed_frames_are_rejected),
	    cmocka_unit_test(test_unknown_requests_and_channel_types_keep_their_bytes),
	    cmocka_unit_test(test_decode_survives_random_bytes),
	    cmocka_unit_test(test_firmware_has_eight_slots_freed_by_close),
	    cmocka_unit_test(test_firmware_rejects_bad_host_frames),
	    cmocka_unit_test(test_handshake_is_driven_by_messages),
	    cmocka_unit_test(test_firmware_version_first_is_fine),
	    cmocka_unit_test(test_tls_enforcing_firmware),
	    cmocka_unit_test(test_channels_in_sequence_share_one_session),
	    cmocka_unit_test(test_session_ending_after_each_close_is_redone),
	    cmocka_unit_test(test_firmware_closes_first),
	    cmocka_unit_test(test_megabyte_with_small_windows_and_messages),
	    cmocka_unit_test(test_refused_channel_is_a_clear_error),
	    cmocka_unit_test(test_disconnect_mid_transfer_is_an_error),
	    cmocka_unit_test(test_reset_mid_transfer_is_an_error),
	    cmocka_unit_test(test_other_major_version_is_refused),
	    cmocka_unit_test(test_one_channel_at_a_time),
	    cmocka_unit_test(test_stop_while_a_client_is_connected),
	    cmocka_unit_test(test_bridge_directory_must_be_private),
	    cmocka_unit_test(test_no_answer_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
