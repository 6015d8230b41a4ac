/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mei.h"
#include "wire.h"

static void test_cursor_reads_both_endians(void **state)
{
	(void)state;
	const uint8_t b[] = {0x0A, 0x01, 0xA8, 0xC0, 0x00, 0x00, 0x00, 0x05, 0x34, 0x12};
	struct cursor c = cursor_init(b, sizeof(b));
	uint32_t le, be;
	uint16_t s;

	assert_int_equal(cur_u32le(&c, &le), 0);
	assert_int_equal(le, 0xC0A8010A);
	assert_int_equal(cur_u32be(&c, &be), 0);
	assert_int_equal(be, 5);
	assert_int_equal(cur_u16le(&c, &s), 0);
	assert_int_equal(s, 0x1234);
	assert_int_equal(cur_end(&c), 0);
}

static void test_cursor_refuses_to_read_past_end(void **state)
{
	(void)state;
	const uint8_t b[] = {1, 2, 3};
	struct cursor c = cursor_init(b, sizeof(b));
	uint32_t v = 0xdeadbeef;

	assert_int_equal(cur_u32le(&c, &v), MEI_E_PROTOCOL);
	assert_int_equal(v, 0xdeadbeef);
	assert_int_equal(c.left, 3);
	assert_int_equal(cur_end(&c), MEI_E_PROTOCOL);
}

static void test_apf_string_length_is_bounded(void **state)
{
	(void)state;
	/* length 0xFFFFFFF0 with 2 bytes behind it must not be accepted */
	const uint8_t bad[] = {0xFF, 0xFF, 0xFF, 0xF0, 'a', 'b'};
	const uint8_t good[] = {0, 0, 0, 2, 'a', 'b'};
	struct cursor c = cursor_init(bad, sizeof(bad));
	const uint8_t *p;
	uint32_t n;

	assert_int_equal(cur_string_be(&c, &p, &n), MEI_E_PROTOCOL);
	c = cursor_init(good, sizeof(good));
	assert_int_equal(cur_string_be(&c, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "ab", 2);
}

static void test_writer_overflow_is_sticky(void **state)
{
	(void)state;
	uint8_t b[6];
	struct wbuf w = wbuf_init(b, sizeof(b));

	put_u32be(&w, 0x01020304);
	assert_true(wbuf_ok(&w));
	assert_memory_equal(b, "\x01\x02\x03\x04", 4);
	put_u32le(&w, 7);
	assert_false(wbuf_ok(&w));
	put_u8(&w, 1);
	assert_false(wbuf_ok(&w));
	assert_int_equal(w.len, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cursor_reads_both_endians),
		cmocka_unit_test(test_cursor_refuses_to_read_past_end),
		cmocka_unit_test(test_apf_string_length_is_bounded),
		cmocka_unit_test(test_writer_overflow_is_sticky),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
