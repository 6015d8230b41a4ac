/* SPDX-License-Identifier: Apache-2.0 */
/* Password generation, checking and the Digest A1. No test prints a password, even failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "password.h"

#define UPPER  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define LOWER  "abcdefghijklmnopqrstuvwxyz"
#define DIGITS "0123456789"

static void test_digest_setup_vector(void **state)
{
	char a1[33];

	(void)state;
	/* PROTOCOL.md §5: the NetworkAdminPassword of Setup_INPUT. */
	assert_int_equal(password_digest_a1("admin", "Digest:Realm",
					    "bebb3497d69b544c732651365cc3462d", a1),
			 0);
	assert_string_equal(a1, "f73b2c17b1ecbd7a235ec37d66cbed71");
}

static void test_digest_rfc2617_vector(void **state)
{
	char a1[33];

	(void)state;
	/* RFC 2617 §3.5: HA1 of Mufasa / testrealm@host.com / "Circle Of Life". */
	assert_int_equal(password_digest_a1("Mufasa", "testrealm@host.com", "Circle Of Life", a1),
			 0);
	assert_string_equal(a1, "939e7578ed9e3c518a452acee763bce9");
	assert_int_equal(password_digest_a1(NULL, "r", "p", a1), -1);
}

struct property {
	enum password_kind kind;
	const char *alphabet;
	const char *classes[4];
};

static const struct property admin_property = {
	PASSWORD_ADMIN,
	UPPER LOWER DIGITS PASSWORD_ADMIN_SYMBOLS,
	{UPPER, LOWER, DIGITS, PASSWORD_ADMIN_SYMBOLS},
};

static const struct property mebx_property = {
	PASSWORD_MEBX,
	UPPER LOWER DIGITS PASSWORD_MEBX_SYMBOLS,
	{UPPER, LOWER, DIGITS, PASSWORD_MEBX_SYMBOLS},
};

#define SAMPLES 10000

/*
 * 10,000 passwords, their lengths cycling through every allowed one: every one passes
 * password_check, uses only the kind's alphabet, every allowed character and every length shows
 * up, and within a class the characters are equally frequent (modulo bias would make some 4/3 as
 * frequent as others).
 */
static void run_property(const struct property *p)
{
	unsigned long count[256] = {0};
	bool length_seen[PASSWORD_MAX + 1] = {false};
	char pw[PASSWORD_MAX + 1], why[160];

	for (int i = 0; i < SAMPLES; i++) {
		size_t len = PASSWORD_MIN + (size_t)i % (PASSWORD_MAX - PASSWORD_MIN + 1);

		assert_int_equal(password_generate(p->kind, len, pw), 0);
		assert_int_equal(strlen(pw), len);
		why[0] = '\0';
		if (!password_check(p->kind, pw, why, sizeof(why)))
			fail_msg("generated password rejected: %s", why);
		for (size_t k = 0; k < len; k++) {
			unsigned char ch = (unsigned char)pw[k];

			if (!strchr(p->alphabet, ch))
				fail_msg("generated password holds a character outside its alphabet");
			count[ch]++;
		}
		length_seen[len] = true;
	}
	memset(pw, 0, sizeof(pw));
	for (size_t len = PASSWORD_MIN; len <= PASSWORD_MAX; len++)
		if (!length_seen[len])
			fail_msg("length %zu never generated", len);
	for (const char *a = p->alphabet; *a; a++)
		if (count[(unsigned char)*a] == 0)
			fail_msg("an allowed character (index %td) never appeared", a - p->alphabet);
	for (int c = 0; c < 4; c++) {
		unsigned long lo = ~0ul, hi = 0;

		for (const char *a = p->classes[c]; *a; a++) {
			unsigned long n = count[(unsigned char)*a];

			lo = n < lo ? n : lo;
			hi = n > hi ? n : hi;
		}
		if (hi * 100 > lo * 120)
			fail_msg("class %d is not uniform: counts from %lu to %lu", c, lo, hi);
	}
}

static void test_generate_admin_property(void **state)
{
	(void)state;
	run_property(&admin_property);
}

static void test_generate_mebx_property(void **state)
{
	(void)state;
	run_property(&mebx_property);
}

static void test_generate_bounds(void **state)
{
	char pw[64];

	(void)state;
	assert_int_equal(password_generate(PASSWORD_ADMIN, PASSWORD_MIN - 1, pw), -1);
	assert_int_equal(password_generate(PASSWORD_ADMIN, PASSWORD_MAX + 1, pw), -1);
	assert_int_equal(password_generate(PASSWORD_MEBX, 0, pw), -1);
	assert_int_equal(password_generate(PASSWORD_ADMIN, PASSWORD_MIN, pw), 0);
	assert_int_equal(strlen(pw), PASSWORD_MIN);
	assert_int_equal(password_generate(PASSWORD_MEBX, PASSWORD_MAX, pw), 0);
	assert_int_equal(strlen(pw), PASSWORD_MAX);
	memset(pw, 0, sizeof(pw));
}

struct rejection {
	enum password_kind kind;
	const char *pw;
	const char *rule; /* a word the reason must contain */
};

static const struct rejection rejections[] = {
	{PASSWORD_ADMIN, "Ab1!xyz", "shorter"},
	{PASSWORD_ADMIN, "", "shorter"},
	{PASSWORD_ADMIN, "Ab1!xyzAb1!xyzAb1!xyzAb1!xyzAb1!x", "longer"},
	{PASSWORD_ADMIN, "Ab1!xyz\x7f", "printable"},
	{PASSWORD_ADMIN, "Ab1!xy\tz", "printable"},
	{PASSWORD_ADMIN, "Ab1!xy\xc3\xa9z", "printable"},
	{PASSWORD_ADMIN, "Ab1!xy:z", "AMT refuses"},
	{PASSWORD_ADMIN, "Ab1!xy,z", "AMT refuses"},
	{PASSWORD_ADMIN, "Ab1!xy\"z", "AMT refuses"},
	{PASSWORD_ADMIN, "Ab1!xy@z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy/z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy?z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy#z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy%z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy^z", "MAAS"},
	{PASSWORD_ADMIN, "Ab1!xy z", "MAAS"},
	{PASSWORD_ADMIN, "Abc!xyzw", "digit"},
	{PASSWORD_ADMIN, "ab1!xyzw", "upper-case"},
	{PASSWORD_ADMIN, "AB1!XYZW", "lower-case"},
	{PASSWORD_ADMIN, "Ab1cxyzw", "symbol"},
	{PASSWORD_ADMIN, "Ab1_xyzw", "symbol"}, /* '_' is no symbol to AMT */
	{PASSWORD_MEBX, "Ab1 xyzw", "MEBx"},    /* nor is a space, and MEBx has none */
	{PASSWORD_MEBX, "Ab1*xyzw", "MEBx"},
	{PASSWORD_MEBX, "Ab1~xyzw", "MEBx"},
	{PASSWORD_MEBX, "Ab1_xyzw", "MEBx"},
	{PASSWORD_MEBX, "Ab1@xyzw", "MEBx"},
	{PASSWORD_MEBX, "Ab1,xyzw", "AMT refuses"},
	{PASSWORD_MEBX, "Ab1cxyzw", "symbol"},
};

static void test_check_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rejections) / sizeof(rejections[0]); i++) {
		const struct rejection *r = &rejections[i];
		char why[200] = "";

		if (password_check(r->kind, r->pw, why, sizeof(why)))
			fail_msg("case %zu accepted", i);
		if (!strstr(why, r->rule))
			fail_msg("case %zu: reason \"%s\" does not name the rule \"%s\"", i, why,
				 r->rule);
		if (strlen(r->pw) > 2 && strstr(why, r->pw))
			fail_msg("case %zu: the reason holds the password", i);
	}
	assert_false(password_check(PASSWORD_ADMIN, NULL, NULL, 0));
}

static void test_check_accepts(void **state)
{
	static const char *const admin_ok[] = {
		"Ab1!xyzw", "Ab1*xyzw", "Ab1$xyzw", "Zz9~.+=-", "Ab1&<>xyzABCDEFGHIJKLMNOPQRSTUVW",
	};
	static const char *const mebx_ok[] = {"Ab1!xyzw", "Ab1-xyzw", "Ab1.xyzw"};

	(void)state;
	for (size_t i = 0; i < sizeof(admin_ok) / sizeof(admin_ok[0]); i++)
		if (!password_check(PASSWORD_ADMIN, admin_ok[i], NULL, 0))
			fail_msg("admin case %zu rejected", i);
	for (size_t i = 0; i < sizeof(mebx_ok) / sizeof(mebx_ok[0]); i++)
		if (!password_check(PASSWORD_MEBX, mebx_ok[i], NULL, 0))
			fail_msg("MEBx case %zu rejected", i);
}

/* The first line of a secret file, bounded by the buffer. */
static void test_read_line(void **state)
{
	char path[] = "/tmp/amt-enlist-pw-XXXXXX", out[16];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Se-cret9\r\nsecond line\n", 22), 22);
	close(fd);
	assert_int_equal(password_read_line(path, out, sizeof(out)), 0);
	assert_string_equal(out, "Se-cret9");
	/* no line break within the bound: what fits */
	assert_int_equal(password_read_line(path, out, 5), 0);
	assert_string_equal(out, "Se-c");
	unlink(path);
	assert_int_equal(password_read_line(path, out, sizeof(out)), -ENOENT);
	assert_int_equal(password_read_line("/", out, sizeof(out)), -EISDIR);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_setup_vector),
		cmocka_unit_test(test_digest_rfc2617_vector),
		cmocka_unit_test(test_generate_admin_property),
		cmocka_unit_test(test_generate_mebx_property),
		cmocka_unit_test(test_generate_bounds),
		cmocka_unit_test(test_check_rejections),
		cmocka_unit_test(test_check_accepts),
		cmocka_unit_test(test_read_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
