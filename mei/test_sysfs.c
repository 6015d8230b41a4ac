/* SPDX-License-Identifier: Apache-2.0 */
/* sysfs parsing against temporary trees laid out as the kernel lays out /sys/class/mei. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../tests/fixture.h"
#include "mei.h"

/* As read on a Skylake machine with ME 11.8 (fw_ver) and a typical 6-register fw_status. */
#define REAL_FW_VER    "0:11.8.50.3399\n0:11.8.50.3399\n0:11.0.0.1205\n"
#define REAL_FW_STATUS "94000245\n09F10506\n00000020\n00004000\n00041F03\nC7E003CB\n"

struct tree {
	char root[64];
	char dev[160]; /* ROOT/class/mei/mei0 */
};

static int setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	char p[160];

	if (!t)
		return -1;
	*state = t;
	snprintf(t->root, sizeof(t->root), "/tmp/mei-sysfs-XXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	snprintf(p, sizeof(p), "%s/class", t->root);
	if (mkdir(p, 0700) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/class/mei", t->root);
	if (mkdir(p, 0700) != 0)
		return -1;
	snprintf(t->dev, sizeof(t->dev), "%s/class/mei/mei0", t->root);
	return mkdir(t->dev, 0700);
}

static int teardown(void **state)
{
	struct tree *t = *state;
	int r = fixture_remove_tree(t->root);

	free(t);
	return r;
}

static void put_bytes(const struct tree *t, const char *attr, const char *content, size_t n)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", t->dev, attr);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void put(const struct tree *t, const char *attr, const char *content)
{
	put_bytes(t, attr, content, strlen(content));
}

static void assert_empty(const struct mei_sysfs *s)
{
	assert_string_equal(s->dev_state, "");
	assert_int_equal(s->fw_ver_count, 0);
	assert_int_equal(s->fw_status_count, 0);
}

static void test_reads_a_real_tree(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;

	put(t, "dev_state", "ENABLED");
	put(t, "fw_ver", REAL_FW_VER);
	put(t, "fw_status", REAL_FW_STATUS);
	put(t, "hbm_ver", "2.2\n");
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);

	assert_string_equal(s.dev_state, "ENABLED");
	assert_int_equal(s.fw_ver_count, 3);
	assert_int_equal(s.fw_ver[0].platform, 0);
	assert_int_equal(s.fw_ver[0].major, 11);
	assert_int_equal(s.fw_ver[0].minor, 8);
	assert_int_equal(s.fw_ver[0].hotfix, 50);
	assert_int_equal(s.fw_ver[0].build, 3399);
	assert_int_equal(s.fw_ver[2].major, 11);
	assert_int_equal(s.fw_ver[2].minor, 0);
	assert_int_equal(s.fw_ver[2].hotfix, 0);
	assert_int_equal(s.fw_ver[2].build, 1205);

	assert_int_equal(s.fw_status_count, 6);
	assert_int_equal(s.fw_status[0], 0x94000245);
	assert_int_equal(s.fw_status[1], 0x09F10506);
	assert_int_equal(s.fw_status[5], 0xC7E003CB);
}

static void test_one_line_files_and_tolerated_variants(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;

	put(t, "dev_state", "INIT_CLIENTS\n"); /* one newline is tolerated */
	put(t, "fw_ver", "6:16.1.25.1885");    /* so is a last line without one */
	put(t, "fw_status", "90000255\n");
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);
	assert_string_equal(s.dev_state, "INIT_CLIENTS");
	assert_int_equal(s.fw_ver_count, 1);
	assert_int_equal(s.fw_ver[0].platform, 6);
	assert_int_equal(s.fw_ver[0].major, 16);
	assert_int_equal(s.fw_ver[0].build, 1885);
	assert_int_equal(s.fw_status_count, 1);
	assert_int_equal(s.fw_status[0], 0x90000255);

	put(t, "fw_status", "c7e003cb\n"); /* lower-case hex */
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);
	assert_int_equal(s.fw_status[0], 0xC7E003CB);

	put(t, "fw_ver", "0:4294967295.0.0.0\n"); /* the largest value that fits */
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);
	assert_int_equal(s.fw_ver[0].major, 4294967295u);
}

static void test_missing_files_leave_fields_empty(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;

	memset(&s, 0x55, sizeof(s));
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);
	assert_empty(&s);

	put(t, "fw_ver", REAL_FW_VER);
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), 0);
	assert_string_equal(s.dev_state, "");
	assert_int_equal(s.fw_ver_count, 3);
	assert_int_equal(s.fw_status_count, 0);
}

static void test_absent_device_is_no_device(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;
	char st[32] = "x";

	assert_int_equal(mei_sysfs_read(t->root, "mei1", &s), MEI_E_NO_DEVICE);
	assert_empty(&s);
	assert_int_equal(mei_sysfs_read("/nonexistent-root", "mei0", &s), MEI_E_NO_DEVICE);
	assert_int_equal(mei_sysfs_read_dev_state(t->root, "mei1", st, sizeof(st)),
	                 MEI_E_NO_DEVICE);
	assert_string_equal(st, "");
	/* the directory without the attribute: absent as well */
	assert_int_equal(mei_sysfs_read_dev_state(t->root, "mei0", st, sizeof(st)),
	                 MEI_E_NO_DEVICE);
	assert_string_equal(st, "");
}

static void test_device_link_is_followed(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;
	char target[200], link[200];

	/* in /sys, class/mei/mei0 is a symbolic link into the PCI device's directory */
	snprintf(target, sizeof(target), "%s/mei0", t->root);
	assert_int_equal(mkdir(target, 0700), 0);
	snprintf(link, sizeof(link), "%s/class/mei/mei9", t->root);
	assert_int_equal(symlink(target, link), 0);
	snprintf(target, sizeof(target), "%s/mei0/dev_state", t->root);
	FILE *f = fopen(target, "w");
	assert_non_null(f);
	assert_int_not_equal(fputs("ENABLED", f), EOF);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mei_sysfs_read(t->root, "mei9", &s), 0);
	assert_string_equal(s.dev_state, "ENABLED");
}

static void test_dev_state_alone(void **state)
{
	struct tree *t = *state;
	char st[32];
	char small[4] = "abc";

	put(t, "dev_state", "RESETTING");
	assert_int_equal(mei_sysfs_read_dev_state(t->root, "mei0", st, sizeof(st)), 0);
	assert_string_equal(st, "RESETTING");
	assert_int_equal(mei_sysfs_read_dev_state(t->root, "mei0", small, sizeof(small)),
	                 MEI_E_PROTOCOL);
	assert_string_equal(small, "");
}

static void assert_rejected(struct tree *t, const char *attr, const char *content)
{
	struct mei_sysfs s;

	put(t, attr, content);
	memset(&s, 0x55, sizeof(s));
	if (mei_sysfs_read(t->root, "mei0", &s) != MEI_E_PROTOCOL)
		fail_msg("%s \"%s\" was accepted", attr, content);
	assert_empty(&s);
}

static void test_malformed_fw_ver_is_rejected(void **state)
{
	struct tree *t = *state;
	static const char *const bad[] = {
	    "",
	    "\n",
	    "0:11.8.50\n",
	    "0:11.8.50.3399 \n",
	    " 0:11.8.50.3399\n",
	    "0:11.8.50.3399\n\n",
	    "0-11.8.50.3399\n",
	    "x:11.8.50.3399\n",
	    "-1:11.8.50.3399\n",
	    "+0:11.8.50.3399\n",
	    "0:11.8.50.4294967296\n",
	    "0:11.8.50.99999999999\n",
	    "0:11.8..3399\n",
	    "0:11.8.50.3399\r\n",
	    "0:1.2.3.4\n0:1.2.3.4\n0:1.2.3.4\n0:1.2.3.4\n", /* four lines */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(t, "fw_ver", bad[i]);
}

static void test_malformed_fw_status_is_rejected(void **state)
{
	struct tree *t = *state;
	static const char *const bad[] = {
	    "",
	    "\n",
	    "9400024\n",
	    "940002455\n",
	    "9400024G\n",
	    "0x940002\n",
	    "94000245 \n",
	    "94000245\n\n",
	    "00000001\n00000002\n00000003\n00000004\n00000005\n00000006\n00000007\n", /* seven */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(t, "fw_status", bad[i]);
}

static void test_malformed_dev_state_is_rejected(void **state)
{
	struct tree *t = *state;
	static const char *const bad[] = {
	    "",         "\n",      "ENABLED\n\n",
	    "EN ABLED", "enabled", "AN_IMPROBABLY_LONG_STATE_NAME_OF_MANY_WORDS",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(t, "dev_state", bad[i]);
}

static void test_nul_bytes_are_rejected(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;

	put_bytes(t, "dev_state", "ENABLED\0X", 9);
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), MEI_E_PROTOCOL);
	put(t, "dev_state", "ENABLED");
	put_bytes(t, "fw_status", "94000245\0", 9);
	assert_int_equal(mei_sysfs_read(t->root, "mei0", &s), MEI_E_PROTOCOL);
}

static void test_oversized_file_is_rejected(void **state)
{
	struct tree *t = *state;
	size_t n = 8192;
	char *big = malloc(n + 1);

	assert_non_null(big);
	for (size_t i = 0; i + 15 <= n; i += 15)
		memcpy(big + i, "0:1.2.3.456789\n", 15);
	big[n - n % 15] = '\0';
	assert_rejected(t, "fw_ver", big);
	free(big);
}

static void test_bad_names_are_refused(void **state)
{
	struct tree *t = *state;
	struct mei_sysfs s;
	char st[32];

	assert_true(mei_sysfs_read(t->root, "", &s) < 0);
	assert_true(mei_sysfs_read(t->root, "..", &s) < 0);
	assert_true(mei_sysfs_read(t->root, "../mei/mei0", &s) < 0);
	assert_true(mei_sysfs_read_dev_state(t->root, NULL, st, sizeof(st)) < 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_reads_a_real_tree),
	    T(test_one_line_files_and_tolerated_variants),
	    T(test_missing_files_leave_fields_empty),
	    T(test_absent_device_is_no_device),
	    T(test_device_link_is_followed),
	    T(test_dev_state_alone),
	    T(test_malformed_fw_ver_is_rejected),
	    T(test_malformed_fw_status_is_rejected),
	    T(test_malformed_dev_state_is_rejected),
	    T(test_nul_bytes_are_rejected),
	    T(test_oversized_file_is_rejected),
	    T(test_bad_names_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
