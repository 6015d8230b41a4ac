/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "settings.h"

struct seen {
	char keys[8][32];
	char values[8][128];
	unsigned lines[8];
	unsigned n;
	int fail_on;
};

static int record(void *ctx, const char *key, const char *value, unsigned line)
{
	struct seen *s = ctx;

	if (s->fail_on && (int)line == s->fail_on)
		return -1;
	assert_true(s->n < 8);
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	snprintf(s->values[s->n], sizeof(s->values[0]), "%s", value);
	s->lines[s->n++] = line;
	return 0;
}

static int parse(const char *text, struct seen *s, char *why)
{
	return settings_parse(text, strlen(text), record, s, why, 256);
}

static void test_settings_lines(void **state)
{
	(void)state;
	struct seen s = {0};
	char why[256] = "";
	const char *text = "# amt-enlist settings\n"
			   "\n"
			   "server = https://maas.example/enlist\n"
			   "  deadline=60  \r\n"
			   "no-amt-ok = yes\n"
			   "state-dir = \"/var/lib/amt enlist\"\n"
			   "maas =";

	assert_int_equal(parse(text, &s, why), 0);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.keys[0], "server");
	assert_string_equal(s.values[0], "https://maas.example/enlist");
	assert_int_equal(s.lines[0], 3);
	assert_string_equal(s.keys[1], "deadline");
	assert_string_equal(s.values[1], "60");
	assert_string_equal(s.values[3], "/var/lib/amt enlist");
	assert_string_equal(s.keys[4], "maas");
	assert_string_equal(s.values[4], "");
	assert_int_equal(s.lines[4], 7);
}

static void test_settings_errors_name_the_line(void **state)
{
	(void)state;
	struct seen s = {0};
	char why[256] = "";
	char big[5000];

	assert_int_equal(parse("server https://x\n", &s, why), -1);
	assert_non_null(strstr(why, "line 1"));
	assert_int_equal(parse("ok = 1\nServer = x\n", &s, why), -1);
	assert_non_null(strstr(why, "line 2"));
	assert_int_equal(parse("server = \"x\n", &s, why), -1);
	assert_non_null(strstr(why, "quotes"));
	assert_int_equal(settings_parse("a = b\0c", 7, record, &s, why, sizeof(why)), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "server = ", 9);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(big, &s, why), -1);
	assert_non_null(strstr(why, "longer than"));
}

static void test_callback_can_stop(void **state)
{
	(void)state;
	struct seen s = {.fail_on = 2};
	char why[256] = "";

	assert_int_equal(parse("a = 1\nb = 2\nc = 3\n", &s, why), -1);
	assert_int_equal(s.n, 1);
}

static void test_booleans(void **state)
{
	(void)state;
	assert_int_equal(settings_bool("yes"), 1);
	assert_int_equal(settings_bool("TRUE"), 1);
	assert_int_equal(settings_bool("1"), 1);
	assert_int_equal(settings_bool("no"), 0);
	assert_int_equal(settings_bool("False"), 0);
	assert_int_equal(settings_bool("0"), 0);
	assert_int_equal(settings_bool("maybe"), -1);
	assert_int_equal(settings_bool(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_lines),
		cmocka_unit_test(test_settings_errors_name_the_line),
		cmocka_unit_test(test_callback_can_stop),
		cmocka_unit_test(test_booleans),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
