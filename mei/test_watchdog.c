/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Watchdog client: IsChangeToAMTEnabled request bytes, the state bits, the reply shapes, and
 * watchdog_get_state over a scripted mei_transact (linked instead of device.c's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mei.h"

static void decode1(uint8_t raw, struct amt_state_independence *s)
{
	memset(s, 0xA5, sizeof(*s));
	assert_int_equal(watchdog_decode_state(&raw, 1, s), 0);
	assert_int_equal(s->raw, raw);
}

static void test_request_bytes(void **state)
{
	(void)state;
	assert_int_equal(WATCHDOG_IS_CHANGE_TO_AMT_ENABLED_LEN, 4);
	assert_memory_equal(WATCHDOG_IS_CHANGE_TO_AMT_ENABLED, "\x05\x02\x51\x10", 4);
}

static void test_0x80_new_interface_amt_off(void **state)
{
	(void)state;
	struct amt_state_independence s;

	decode1(0x80, &s);
	assert_true(s.new_interface);
	assert_false(s.transition_allowed);
	assert_false(s.amt_operational);
	assert_false(s.restricted);
	assert_false(s.tls_enforced);
	assert_false(s.locked);
}

static void test_0x82_new_interface_amt_on(void **state)
{
	(void)state;
	struct amt_state_independence s;

	decode1(0x82, &s);
	assert_true(s.new_interface);
	assert_false(s.transition_allowed);
	assert_true(s.amt_operational);
	assert_false(s.restricted);
	assert_false(s.tls_enforced);
	assert_false(s.locked);

	decode1(0x83, &s);
	assert_true(s.transition_allowed);
	assert_true(s.amt_operational);
}

static void test_0xE0_locked(void **state)
{
	(void)state;
	struct amt_state_independence s;

	decode1(0xE0, &s);
	assert_true(s.new_interface);
	assert_true(s.restricted);
	assert_true(s.tls_enforced);
	assert_false(s.transition_allowed);
	assert_false(s.amt_operational);
	assert_true(s.locked);

	/* the same bits with the transition allowed are not the locked state (rpc-go) */
	decode1(0xE1, &s);
	assert_false(s.locked);
	/* TLS without the restriction bit: not locked */
	decode1(0xC2, &s);
	assert_true(s.tls_enforced);
	assert_false(s.restricted);
	assert_false(s.locked);
}

/* Before ME 16.1 bits 0 and 1 mean nothing (AMT may work while they read 0: rpc-go #440). */
static void test_old_firmware_bits_ignored(void **state)
{
	(void)state;
	struct amt_state_independence s;

	decode1(0x03, &s);
	assert_false(s.new_interface);
	assert_false(s.transition_allowed);
	assert_false(s.amt_operational);
	assert_false(s.locked);

	decode1(0x00, &s);
	assert_false(s.new_interface);
	assert_false(s.transition_allowed);
	assert_false(s.amt_operational);

	/* bits 5 and 6 are reported as they are; without bit 7 nothing is locked */
	decode1(0x63, &s);
	assert_false(s.new_interface);
	assert_true(s.restricted);
	assert_true(s.tls_enforced);
	assert_false(s.transition_allowed);
	assert_false(s.amt_operational);
	assert_false(s.locked);
}

static void test_reply_shapes(void **state)
{
	(void)state;
	struct amt_state_independence s;
	const uint8_t u32_form[] = {0x82, 0x00, 0x00, 0x00};
	const uint8_t echo_u8[] = {0x05, 0x02, 0x51, 0x10, 0xE0};
	const uint8_t echo_u32[] = {0x05, 0x03, 0x51, 0x10, 0x82, 0x00, 0x00, 0x00};

	assert_int_equal(watchdog_decode_state(u32_form, sizeof(u32_form), &s), 0);
	assert_int_equal(s.raw, 0x82);
	assert_true(s.amt_operational);
	assert_int_equal(watchdog_decode_state(echo_u8, sizeof(echo_u8), &s), 0);
	assert_int_equal(s.raw, 0xE0);
	assert_true(s.locked);
	assert_int_equal(watchdog_decode_state(echo_u32, sizeof(echo_u32), &s), 0);
	assert_int_equal(s.raw, 0x82);
}

static void test_reply_rejections(void **state)
{
	(void)state;
	struct amt_state_independence s;
	uint8_t buf[16] = {0x05, 0x02, 0x51, 0x10, 0x82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	static const size_t bad_lengths[] = {0, 2, 3, 6, 7, 9, 16};

	for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++)
		assert_int_equal(watchdog_decode_state(buf, bad_lengths[i], &s), MEI_E_PROTOCOL);
	/* an echo that is not of this request */
	buf[0] = 0x07;
	assert_int_equal(watchdog_decode_state(buf, 5, &s), MEI_E_PROTOCOL);
	buf[0] = 0x05;
	buf[2] = 0x53; /* SetAmtOperationalState's sub-command */
	assert_int_equal(watchdog_decode_state(buf, 5, &s), MEI_E_PROTOCOL);
	assert_int_equal(watchdog_decode_state(buf, 8, &s), MEI_E_PROTOCOL);
	buf[2] = 0x51;
	buf[3] = 0x11;
	assert_int_equal(watchdog_decode_state(buf, 5, &s), MEI_E_PROTOCOL);
	buf[3] = 0x10;
	assert_int_equal(watchdog_decode_state(buf, 5, &s), 0);
}

static void test_every_length_is_safe(void **state)
{
	(void)state;
	struct amt_state_independence s;
	uint8_t src[32];

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(0x05 + i * 37);
	src[0] = 0x05;
	src[2] = 0x51;
	src[3] = 0x10;
	for (size_t n = 0; n <= sizeof(src); n++) {
		uint8_t *copy = test_malloc(n ? n : 1);
		int r;

		memcpy(copy, src, n);
		r = watchdog_decode_state(copy, n, &s);
		assert_true(r == 0 || r == MEI_E_PROTOCOL);
		assert_int_equal(r == 0, n == 1 || n == 4 || n == 5 || n == 8);
		test_free(copy);
	}
}

/* ---- watchdog_get_state over a scripted transport ---- */

static uint8_t script_reply[16];
static size_t script_reply_len;
static int script_result;
static uint8_t sent[16];
static size_t sent_len;

int mei_transact(struct mei_dev *dev, const void *req, size_t req_len, void *resp, size_t cap,
		 size_t *resp_len)
{
	assert_non_null(dev);
	assert_true(req_len <= sizeof(sent));
	memcpy(sent, req, req_len);
	sent_len = req_len;
	if (script_result != 0)
		return script_result;
	assert_true(script_reply_len <= cap);
	memcpy(resp, script_reply, script_reply_len);
	*resp_len = script_reply_len;
	return 0;
}

static struct mei_dev *fake_dev(void)
{
	static int token;

	return (struct mei_dev *)(void *)&token;
}

static void test_get_state(void **state)
{
	(void)state;
	struct amt_state_independence s;

	script_result = 0;
	script_reply[0] = 0x82;
	script_reply_len = 1;
	assert_int_equal(watchdog_get_state(fake_dev(), &s), 0);
	assert_int_equal(sent_len, 4);
	assert_memory_equal(sent, "\x05\x02\x51\x10", 4);
	assert_true(s.new_interface);
	assert_true(s.amt_operational);

	script_reply_len = 2;
	assert_int_equal(watchdog_get_state(fake_dev(), &s), MEI_E_PROTOCOL);

	/* old firmware may not answer at all */
	script_result = MEI_E_TIMEOUT;
	assert_int_equal(watchdog_get_state(fake_dev(), &s), MEI_E_TIMEOUT);
	script_result = MEI_E_BUSY;
	assert_int_equal(watchdog_get_state(fake_dev(), &s), MEI_E_BUSY);
}

static void test_set_state_reply(void **state)
{
	(void)state;
	const uint8_t ok[] = {0x05, 0x03, 0x53, 0x10, 0, 0, 0, 0};
	const uint8_t denied[] = {0x05, 0x03, 0x53, 0x10, 16, 0, 0, 0};
	const uint8_t wrong_sub[] = {0x05, 0x03, 0x51, 0x10, 0, 0, 0, 0};
	const uint8_t short_reply[] = {0x05, 0x03, 0x53, 0x10, 0};

	assert_int_equal(watchdog_decode_set_state(ok, sizeof(ok)), 0);
	assert_int_equal(watchdog_decode_set_state(denied, sizeof(denied)), 16);
	assert_int_equal(watchdog_decode_set_state(wrong_sub, sizeof(wrong_sub)), MEI_E_PROTOCOL);
	assert_int_equal(watchdog_decode_set_state(short_reply, sizeof(short_reply)),
			 MEI_E_PROTOCOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_set_state_reply),
		cmocka_unit_test(test_0x80_new_interface_amt_off),
		cmocka_unit_test(test_0x82_new_interface_amt_on),
		cmocka_unit_test(test_0xE0_locked),
		cmocka_unit_test(test_old_firmware_bits_ignored),
		cmocka_unit_test(test_reply_shapes),
		cmocka_unit_test(test_reply_rejections),
		cmocka_unit_test(test_every_length_is_safe),
		cmocka_unit_test(test_get_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
