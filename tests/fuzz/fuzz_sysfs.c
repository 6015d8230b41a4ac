/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mei class attributes: the input is three files, ROOT/class/mei/mei0/{dev_state, fw_ver,
 * fw_status}, as mei_sysfs_read reads them. Layout: byte 0 says which files exist (bit 0
 * dev_state, bit 1 fw_ver, bit 2 fw_status); the rest is their contents in that order,
 * separated by NUL bytes (a NUL inside a file is as wrong as any other byte there; a missing
 * part is an empty file). Properties: 0, MEI_E_PROTOCOL or MEI_E_IO only; on success the counts
 * are within bounds and dev_state terminated; on failure OUT is all zero; dev_state read alone
 * agrees with the whole read.
 */
#include <sys/stat.h>

#include "fuzz.h"
#include "mei.h"

static const char *const attrs[] = {"dev_state", "fw_ver", "fw_status"};
static char dev_dir[128];

static void remove_tree(void)
{
	char path[192];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dev_dir, attrs[i]);
		unlink(path);
	}
	rmdir(dev_dir);
	snprintf(path, sizeof(path), "%s/class/mei", fuzz_scratch_dir());
	rmdir(path);
	snprintf(path, sizeof(path), "%s/class", fuzz_scratch_dir());
	rmdir(path);
	rmdir(fuzz_scratch_dir());
}

static void make_tree(void)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/class", fuzz_scratch_dir());
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/class/mei", fuzz_scratch_dir());
	mkdir(path, 0700);
	snprintf(dev_dir, sizeof(dev_dir), "%s/class/mei/mei0", fuzz_scratch_dir());
	if (mkdir(dev_dir, 0700) < 0 && errno != EEXIST)
		abort();
	if (atexit(remove_tree) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mei_sysfs *s = fuzz_alloc(sizeof(*s));
	char state[32];
	const uint8_t *p = data + (size ? 1 : 0), *end = data + size;
	int r, r2;

	if (!dev_dir[0])
		make_tree();
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
		bool present = size > 0 && (data[0] >> i & 1);
		char path[192];

		snprintf(path, sizeof(path), "%s/%s", dev_dir, attrs[i]);
		fuzz_put_file(path, present ? (const void *)p : NULL, present ? n : 0);
		p = nul ? nul + 1 : end;
	}
	memset(s, 0x55, sizeof(*s));
	r = mei_sysfs_read(fuzz_scratch_dir(), "mei0", s);
	FUZZ_CHECK(r == 0 || r == MEI_E_PROTOCOL);
	if (r == 0) {
		FUZZ_CHECK(s->fw_ver_count <= MEI_FW_VER_MAX);
		FUZZ_CHECK(s->fw_status_count <= MEI_FW_STATUS_MAX);
		FUZZ_CHECK(fuzz_terminated(s->dev_state, sizeof(s->dev_state)));
	} else {
		FUZZ_CHECK(fuzz_all_zero(s, sizeof(*s)));
	}
	r2 = mei_sysfs_read_dev_state(fuzz_scratch_dir(), "mei0", state, sizeof(state));
	FUZZ_CHECK(r2 == 0 || r2 == MEI_E_PROTOCOL || r2 == MEI_E_NO_DEVICE);
	FUZZ_CHECK(fuzz_terminated(state, sizeof(state)));
	if (r == 0)
		FUZZ_CHECK(strcmp(state, s->dev_state) == 0);
	free(s);
	return 0;
}
