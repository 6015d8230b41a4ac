/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The emulator's machine profiles (tests/amtsim/profiles/NAME.json) for tests that run the
 * emulator in-process. AMTSIM_PROFILES_DIR comes from meson (c_args). Header-only, like
 * tests/fixture.h.
 */
#ifndef AMT_ENLIST_TESTS_HELPERS_PROFILES_H
#define AMT_ENLIST_TESTS_HELPERS_PROFILES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "../amtsim/amtsim.h"

#ifndef AMTSIM_PROFILES_DIR
#error "AMTSIM_PROFILES_DIR must name tests/amtsim/profiles"
#endif

static inline void profile_path(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s.json", AMTSIM_PROFILES_DIR, name);
}

/* Profile NAME with FAULTS switched on (NULL-terminated; NULL: none); the test fails with the
 * emulator's reason when either is refused. */
static inline struct amtsim *profile_load(const char *name, const char *const *faults)
{
	char path[512], err[512] = "";
	struct amtsim *m;

	profile_path(name, path, sizeof(path));
	m = amtsim_new(path, err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	for (; faults && *faults; faults++)
		if (amtsim_fault(m, *faults, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	return m;
}

#endif
