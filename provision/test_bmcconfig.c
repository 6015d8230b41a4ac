/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bmc-config: the file parses back (libyaml's parser, as a reader would) to exactly MAAS's five
 * keys with the values written, for passwords with every symbol AMT allows; mode 0600; values a
 * YAML 1.1 reader would take for numbers are quoted; an existing file is left alone; nothing
 * half-written or temporary is left behind. No test prints a secret.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <yaml.h>

#include "handoff.h"

/* AMT's password characters: printable ASCII but : , " (PROTOCOL.md section 6). */
static const char *amt_allowed(void)
{
	static char set[100];

	if (!set[0]) {
		size_t n = 0;

		for (int ch = 0x20; ch <= 0x7e; ch++)
			if (ch != ':' && ch != ',' && ch != '"')
				set[n++] = (char)ch;
		set[n] = '\0';
	}
	return set;
}

struct parsed {
	unsigned count;
	char key[8][32];
	char value[8][128];
	yaml_scalar_style_t style[8];
	bool flat; /* one mapping of scalars, nothing else */
};

/* Read PATH back with libyaml's parser: a single flat mapping of scalars. */
static void parse_back(const char *path, struct parsed *out)
{
	FILE *f = fopen(path, "rb");
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0;
	bool is_key = true, done = false;

	memset(out, 0, sizeof(*out));
	out->flat = true;
	assert_non_null(f);
	assert_int_equal(yaml_parser_initialize(&parser), 1);
	yaml_parser_set_input_file(&parser, f);
	while (!done) {
		assert_int_equal(yaml_parser_parse(&parser, &ev), 1);
		switch (ev.type) {
		case YAML_MAPPING_START_EVENT:
			if (++depth > 1)
				out->flat = false;
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_ALIAS_EVENT:
			out->flat = false;
			break;
		case YAML_SCALAR_EVENT:
			if (depth != 1 || out->count >= 8 ||
			    ev.data.scalar.length >= sizeof(out->value[0])) {
				out->flat = false;
			} else if (is_key) {
				memcpy(out->key[out->count], ev.data.scalar.value,
				       ev.data.scalar.length);
			} else {
				memcpy(out->value[out->count], ev.data.scalar.value,
				       ev.data.scalar.length);
				out->style[out->count] = ev.data.scalar.style;
				out->count++;
			}
			is_key = !is_key;
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	assert_int_equal(fclose(f), 0);
}

static const char *value_of(const struct parsed *p, const char *key)
{
	for (unsigned i = 0; i < p->count; i++)
		if (strcmp(p->key[i], key) == 0)
			return p->value[i];
	return NULL;
}

static yaml_scalar_style_t style_of(const struct parsed *p, const char *key)
{
	for (unsigned i = 0; i < p->count; i++)
		if (strcmp(p->key[i], key) == 0)
			return p->style[i];
	fail_msg("no key %s", key);
	return YAML_ANY_SCALAR_STYLE;
}

static void params(struct power_params *p, const char *pass)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->power_address, sizeof(p->power_address), "10.0.0.5");
	snprintf(p->power_user, sizeof(p->power_user), "admin");
	snprintf(p->power_pass, sizeof(p->power_pass), "%s", pass);
	snprintf(p->port, sizeof(p->port), "16992");
}

static unsigned entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static int make_dir(void **state)
{
	char *dir = strdup("/tmp/amt-enlist-bmc.XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int remove_dir(void **state)
{
	char *dir = *state, path[512];
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
	return 0;
}

/* Write P to a fresh DIR/NAME and read it back: the five keys, exactly, with P's values. */
static void write_and_check(const char *dir, const char *name, const struct power_params *p)
{
	struct prov_error err = {0};
	struct parsed back;
	struct stat st;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(bmc_config_write(path, p, &err), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	parse_back(path, &back);
	assert_true(back.flat);
	assert_int_equal(back.count, 5);
	assert_string_equal(value_of(&back, "power_type"), "amt");
	assert_string_equal(value_of(&back, "power_address"), p->power_address);
	assert_string_equal(value_of(&back, "power_user"), p->power_user);
	assert_non_null(value_of(&back, "power_pass"));
	/* compared, never printed */
	if (strcmp(value_of(&back, "power_pass"), p->power_pass) != 0)
		fail_msg("power_pass did not survive (length %zu)", strlen(p->power_pass));
	assert_string_equal(value_of(&back, "port"), p->port);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(entries(dir), 0); /* no temporary file left */
}

static void test_written_parses_back(void **state)
{
	const char *dir = *state;
	struct power_params p;
	struct parsed back;
	struct prov_error err = {0};
	char path[512];

	params(&p, "Ab1!*-.~+=xyZ");
	write_and_check(dir, "bmc-config.yaml", &p);
	/* the port is quoted: a YAML 1.1 reader (PyYAML, MAAS's) must read a string */
	snprintf(path, sizeof(path), "%s/bmc-config.yaml", dir);
	assert_int_equal(bmc_config_write(path, &p, &err), 0);
	parse_back(path, &back);
	assert_true(style_of(&back, "port") != YAML_PLAIN_SCALAR_STYLE);
	assert_int_equal(style_of(&back, "power_address"), YAML_PLAIN_SCALAR_STYLE);
	assert_int_equal(style_of(&back, "power_type"), YAML_PLAIN_SCALAR_STYLE);
	assert_int_equal(entries(dir), 1);
}

static void test_every_allowed_symbol(void **state)
{
	const char *dir = *state, *set = amt_allowed();
	static const char maas_symbols[] = "!*-.~+=";
	struct power_params p;
	char pass[33];
	size_t n = strlen(set);

	/* each of MAAS's symbols first, last, alone and doubled */
	for (const char *c = maas_symbols; *c; c++) {
		snprintf(pass, sizeof(pass), "%cAb1cdefg%c", *c, *c);
		params(&p, pass);
		write_and_check(dir, "bmc-config.yaml", &p);
		snprintf(pass, sizeof(pass), "%c%cZy9", *c, *c);
		params(&p, pass);
		write_and_check(dir, "bmc-config.yaml", &p);
	}
	/* to be safe: every character AMT allows, first, last and in the middle */
	for (size_t i = 0; i < n; i++) {
		snprintf(pass, sizeof(pass), "%cQr5s%ct%c", set[i], set[i], set[i]);
		params(&p, pass);
		write_and_check(dir, "bmc-config.yaml", &p);
	}
	/* and the whole set in 32-character passwords, in two orders */
	for (size_t off = 0; off < n; off += 32) {
		snprintf(pass, sizeof(pass), "%.*s", 32, set + off);
		params(&p, pass);
		write_and_check(dir, "bmc-config.yaml", &p);
		for (size_t i = 0; i < strlen(pass) / 2; i++) {
			char t = pass[i];

			pass[i] = pass[strlen(pass) - 1 - i];
			pass[strlen(pass) - 1 - i] = t;
		}
		params(&p, pass);
		write_and_check(dir, "bmc-config.yaml", &p);
	}
}

static void test_typed_looking_values(void **state)
{
	static const char *const typed[] = {"16992", "yes",   "No",        "on",  "null",
	                                    "~",     "0x1f",  "1.5",       "1e3", "-12",
	                                    ".inf",  "12:30", "2024-01-02"};
	const char *dir = *state;
	struct power_params p;
	struct parsed back;
	struct prov_error err = {0};
	char path[512];

	snprintf(path, sizeof(path), "%s/bmc-config.yaml", dir);
	for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		params(&p, "Ab1!cdef");
		snprintf(p.power_user, sizeof(p.power_user), "%s", typed[i]);
		assert_int_equal(bmc_config_write(path, &p, &err), 0);
		parse_back(path, &back);
		assert_string_equal(value_of(&back, "power_user"), typed[i]);
		if (style_of(&back, "power_user") == YAML_PLAIN_SCALAR_STYLE)
			fail_msg("%s was written plain", typed[i]);
		unlink(path);
	}
	/* an empty user is written, as '' */
	params(&p, "Ab1!cdef");
	p.power_user[0] = '\0';
	assert_int_equal(bmc_config_write(path, &p, &err), 0);
	parse_back(path, &back);
	assert_int_equal(back.count, 5);
	assert_string_equal(value_of(&back, "power_user"), "");
	unlink(path);
}

static void test_existing_file_untouched(void **state)
{
	const char *dir = *state;
	struct power_params p;
	struct prov_error err = {0};
	char path[512], link_path[512], buf[64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/bmc-config.yaml", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "power_type: ipmi\n", 17), 17);
	close(fd);
	params(&p, "Ab1!cdef");
	assert_int_equal(bmc_config_write(path, &p, &err), 1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, 17);
	buf[n] = '\0';
	assert_string_equal(buf, "power_type: ipmi\n");
	assert_int_equal(entries(dir), 1);
	/* a dangling symbolic link is a name taken too: nothing is written through it */
	snprintf(link_path, sizeof(link_path), "%s/link.yaml", dir);
	assert_int_equal(symlink("/nonexistent/amt-enlist-target", link_path), 0);
	assert_int_equal(bmc_config_write(link_path, &p, &err), 1);
	assert_int_equal(access("/nonexistent/amt-enlist-target", F_OK), -1);
	assert_int_equal(entries(dir), 2);
	/* a directory is not a file to leave alone */
	assert_int_equal(bmc_config_write(dir, &p, &err), PROV_E_BAD_INPUT);
}

static void test_unwritable_places(void **state)
{
	const char *dir = *state;
	struct power_params p;
	struct prov_error err = {0};
	char path[512];

	params(&p, "Ab1!cdef");
	/* a directory that does not exist */
	snprintf(path, sizeof(path), "%s/missing/bmc-config.yaml", dir);
	assert_int_equal(bmc_config_write(path, &p, &err), PROV_E_INTERNAL);
	assert_non_null(strstr(err.msg, "missing"));
	assert_int_equal(entries(dir), 0);
	/* a read-only place, even for root (the tests run as root) */
	memset(&err, 0, sizeof(err));
	assert_true(bmc_config_write("/proc/amt-enlist-bmc-config.yaml", &p, &err) < 0);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(access("/proc/amt-enlist-bmc-config.yaml", F_OK), -1);
	/* no message carries the password */
	assert_null(strstr(err.msg, "Ab1!cdef"));
}

static void test_refuses_without_password(void **state)
{
	const char *dir = *state;
	struct power_params p;
	struct prov_error err = {0};
	char path[512];

	snprintf(path, sizeof(path), "%s/bmc-config.yaml", dir);
	params(&p, "");
	assert_int_equal(bmc_config_write(path, &p, &err), PROV_E_BAD_INPUT);
	assert_non_null(strstr(err.msg, "password"));
	params(&p, "Ab1!cdef");
	p.power_address[0] = '\0';
	assert_int_equal(bmc_config_write(path, &p, &err), PROV_E_BAD_INPUT);
	assert_int_equal(bmc_config_write("", &p, &err), PROV_E_BAD_INPUT);
	assert_int_equal(entries(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_written_parses_back, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_every_allowed_symbol, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_typed_looking_values, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_existing_file_untouched, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_unwritable_places, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_refuses_without_password, make_dir, remove_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
