/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Preloaded by "amtsim --run" after libumockdev-preload.so.0. umockdev 0.17.16 intercepts read()
 * but not __read_chk(), which a client built with _FORTIFY_SOURCE calls when the buffer's size is
 * known at compile time; such a read would bypass the emulated /dev/mei0 and read the PTY behind
 * it. This sends __read_chk() through read(), which binds to umockdev's wrapper.
 *
 * Built without FORTIFY (the read() below must stay a read()) and without sanitizers (it is
 * loaded into any program, instrumented or not).
 */
#undef _FORTIFY_SOURCE
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

/* glibc's own internal names: interposing them is the point of this file. */
/* NOLINTBEGIN(bugprone-reserved-identifier,cert-dcl37-c) */
extern void __chk_fail(void) __attribute__((noreturn));
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);

ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen)
{
	if (nbytes > buflen)
		__chk_fail();
	return read(fd, buf, nbytes);
}
/* NOLINTEND(bugprone-reserved-identifier,cert-dcl37-c) */
