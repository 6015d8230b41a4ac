/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LMS safety check: /proc/net/tcp and /proc/net/tcp6, read to learn who owns the listener
 * on 127.0.0.1:16992 before the admin digest goes there. The input is tcp, then (after a NUL
 * byte, when there is one) tcp6; without a NUL there is no tcp6 file, as with IPv6 off.
 * Property: the answer is the same for the same files (no state, no uninitialised reads that
 * happen to differ), and a file the kernel could not have written is "no" rather than a crash.
 */
#include <sys/stat.h>

#include "fuzz.h"
#include "wsman.h"

static char net_dir[128], tcp_path[160], tcp6_path[160];

static void remove_tree(void)
{
	unlink(tcp_path);
	unlink(tcp6_path);
	rmdir(net_dir);
	rmdir(fuzz_scratch_dir());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = size ? memchr(data, '\0', size) : NULL;
	size_t n = nul ? (size_t)(nul - data) : size;
	bool a, b;

	if (!net_dir[0]) {
		snprintf(net_dir, sizeof(net_dir), "%s/net", fuzz_scratch_dir());
		if (mkdir(net_dir, 0700) < 0 && errno != EEXIST)
			abort();
		snprintf(tcp_path, sizeof(tcp_path), "%s/tcp", net_dir);
		snprintf(tcp6_path, sizeof(tcp6_path), "%s/tcp6", net_dir);
		if (atexit(remove_tree) != 0)
			abort();
	}
	fuzz_put_file(tcp_path, data, n);
	fuzz_put_file(tcp6_path, nul ? nul + 1 : NULL, nul ? size - n - 1 : 0);
	a = wsman_lms_listener_is_root(fuzz_scratch_dir(), 16992);
	b = wsman_lms_listener_is_root(fuzz_scratch_dir(), 16992);
	FUZZ_CHECK(a == b);
	(void)wsman_lms_listener_is_root(fuzz_scratch_dir(), 16993);
	return 0;
}
