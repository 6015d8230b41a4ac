/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark helper, preloaded into the agent (LD_PRELOAD): at exit, copy /proc/self/status and
 * /proc/self/smaps to $SMAPS_OUT. VmHWM there is the peak RSS of the agent's own address space
 * (wait4's ru_maxrss is not: Linux carries the pre-exec peak of the forking parent into it, and the
 * parent here is the Python benchmark), and smaps tells the private part from the shared pages of
 * the library closure. Built by tests/bench/bench.py with the system's cc; never installed.
 */
#include <stdio.h>
#include <stdlib.h>

static void copy(const char *from, FILE *out)
{
	FILE *in = fopen(from, "r");
	char buf[8192];
	size_t n;

	if (!in)
		return;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
}

__attribute__((destructor)) static void smaps_at_exit(void)
{
	const char *path = getenv("SMAPS_OUT");
	FILE *out;

	if (!path || !(out = fopen(path, "w")))
		return;
	copy("/proc/self/status", out);
	copy("/proc/self/smaps", out);
	fclose(out);
}
