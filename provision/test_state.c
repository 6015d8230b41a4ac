/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tests/fixture.h"
#include "state.h"

#define UUID "88c2d5cc-6ad9-11e9-8b77-8c0f6f72d7a9"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/amt-enlist-state-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(fixture_remove_tree(f->dir), 0);
	free(f);
	return 0;
}

static struct state_record record(const char *status)
{
	struct state_record r = {0};

	snprintf(r.uuid, sizeof(r.uuid), "%s", UUID);
	snprintf(r.user, sizeof(r.user), "admin");
	snprintf(r.password, sizeof(r.password), "Xy7!kq.Lm*9=zT");
	snprintf(r.status, sizeof(r.status), "%s", status);
	return r;
}

static unsigned count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_save_then_load_round_trips(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("pending"), out;
	char why[256], path[256];
	struct stat st;

	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/%s.json", f->dir, UUID);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_entries(f->dir), 1); /* no temp file left behind */
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 0);
	assert_string_equal(out.password, in.password);
	assert_string_equal(out.user, "admin");
	assert_string_equal(out.status, "pending");

	in = record("activated");
	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 0);
	assert_string_equal(out.status, "activated");
	assert_int_equal(count_entries(f->dir), 1);
}

/* Admin control mode records carry the MEBx password too; older records do not. */
static void test_mebx_password_round_trips(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("pending"), out;
	char why[256], path[256], text[1024];
	FILE *fp;
	size_t n;

	snprintf(in.mebx_password, sizeof(in.mebx_password), "Mebx.Pass-9w");
	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 0);
	assert_string_equal(out.mebx_password, "Mebx.Pass-9w");
	assert_string_equal(out.password, in.password);

	/* without one, the key is not written, and a record without it loads with "" */
	in = record("activated");
	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/%s.json", f->dir, UUID);
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	assert_int_equal(fclose(fp), 0);
	assert_null(strstr(text, "mebx_password"));
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 0);
	assert_string_equal(out.mebx_password, "");

	/* one that is not a string (or too long) makes the record malformed */
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_not_equal(fputs("{\"uuid\": \"" UUID "\", \"user\": \"admin\", "
	                           "\"password\": \"Secret!9aA\", \"mebx_password\": 7, "
	                           "\"status\": \"activated\"}",
	                           fp),
	                     EOF);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), -1);
	assert_string_equal(out.password, "");
	assert_string_equal(out.mebx_password, "");
}

static void test_temp_file_of_a_killed_writer_is_removed(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("pending");
	char why[256], stale[256], other[256];
	FILE *fp;

	/* a writer killed mid-write leaves NAME.tmp.PID behind; PID 4194304 is past pid_max */
	snprintf(stale, sizeof(stale), "%s/%s.json.tmp.4194304", f->dir, UUID);
	snprintf(other, sizeof(other), "%s/unrelated.tmp.4194304", f->dir);
	fp = fopen(stale, "w");
	assert_non_null(fp);
	assert_int_not_equal(fputs("{\"password\": \"Left8!behind\"}", fp), EOF);
	assert_int_equal(fclose(fp), 0);
	fp = fopen(other, "w");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(count_entries(f->dir), 2);
}

static void test_missing_record_is_not_an_error(void **state)
{
	struct fixture *f = *state;
	struct state_record out;
	char why[256];

	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 1);
	assert_int_equal(state_remove(f->dir, UUID, why, sizeof(why)), 0);
}

static void test_malformed_file_is_refused_without_leaking(void **state)
{
	struct fixture *f = *state;
	struct state_record out;
	char why[256], path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s.json", f->dir, UUID);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_not_equal(fputs("{\"uuid\": \"" UUID "\", \"password\": \"Secret!9aA\"", fp),
	                     EOF);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "malformed"));
	assert_null(strstr(why, "Secret"));
	assert_string_equal(out.password, "");
}

static void test_record_for_another_uuid_is_refused(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("pending"), out;
	char why[256], from[256], to[256];
	const char *other = "00000000-0000-0000-0000-000000000001";

	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	snprintf(from, sizeof(from), "%s/%s.json", f->dir, UUID);
	snprintf(to, sizeof(to), "%s/%s.json", f->dir, other);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(state_load(f->dir, other, &out, why, sizeof(why)), -1);
}

static void test_path_tricks_in_uuid_are_refused(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("pending"), out;
	char why[256];

	snprintf(in.uuid, sizeof(in.uuid), "../../etc/passwd");
	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), -1);
	assert_int_equal(state_load(f->dir, "../x", &out, why, sizeof(why)), -1);
}

static void test_remove_deletes_record(void **state)
{
	struct fixture *f = *state;
	struct state_record in = record("activated"), out;
	char why[256];

	assert_int_equal(state_save(f->dir, &in, why, sizeof(why)), 0);
	assert_int_equal(state_remove(f->dir, UUID, why, sizeof(why)), 0);
	assert_int_equal(state_load(f->dir, UUID, &out, why, sizeof(why)), 1);
}

static void test_tmpfs_is_not_persistent(void **state)
{
	(void)state;
	/* /dev/shm is tmpfs on every Linux this runs on; /proc is neither tmpfs nor ramfs. */
	assert_false(state_dir_is_persistent("/dev/shm"));
	assert_true(state_dir_is_persistent("/proc"));
	assert_false(state_dir_is_persistent("/nonexistent/dir"));
}

static void test_prepare_creates_private_directory(void **state)
{
	struct fixture *f = *state;
	char dir[128], why[256];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/sub", f->dir);
	assert_int_equal(state_dir_prepare(dir, why, sizeof(why)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(state_dir_prepare("/proc/version", why, sizeof(why)), -1);
}

static void test_lock_is_exclusive(void **state)
{
	struct fixture *f = *state;
	char path[128], why[256] = "";
	struct stat st;
	int a = -1, b = -1;

	assert_int_equal(state_lock(f->dir, 0, &a, why, sizeof(why)), 0);
	assert_true(a >= 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir, STATE_LOCK_NAME);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second holder (another open file, as another process would have) waits, then gives up */
	assert_int_equal(state_lock(f->dir, 150, &b, why, sizeof(why)), 1);
	assert_int_equal(b, -1);
	state_unlock(a);
	assert_int_equal(state_lock(f->dir, 0, &b, why, sizeof(why)), 0);
	state_unlock(b);
	/* the lock is no record: the directory holds none */
	assert_int_equal(count_entries(f->dir), 0);
	assert_int_equal(state_lock("/nonexistent/dir", 0, &a, why, sizeof(why)), -1);
	assert_int_equal(a, -1);
	assert_non_null(strstr(why, "/nonexistent/dir/.lock"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_then_load_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mebx_password_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_record_is_not_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_temp_file_of_a_killed_writer_is_removed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_file_is_refused_without_leaking, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_record_for_another_uuid_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_path_tricks_in_uuid_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_deletes_record, setup, teardown),
		cmocka_unit_test(test_tmpfs_is_not_persistent),
		cmocka_unit_test_setup_teardown(test_prepare_creates_private_directory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_is_exclusive, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
