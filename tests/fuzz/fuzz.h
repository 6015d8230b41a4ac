/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every fuzz target shares. A target is one file that defines LLVMFuzzerTestOneInput; it
 * is linked with libFuzzer (-Dfuzz=true, clang) or with replay.c, which runs it over the
 * committed corpus as a unit test. Targets keep no state between inputs except what they set up
 * once (a scratch directory), so an input that fails in one build fails in the other.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A property of the code under test that did not hold: a finding, reported and aborted on like
 * a sanitizer's, so that libFuzzer saves the input.
 */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__, __LINE__, \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static inline void *fuzz_alloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

/* The input as a C string (a NUL-terminated heap copy; an embedded NUL ends it early). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = fuzz_alloc(size + 1);

	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* An exact-size heap copy: reading one byte past SIZE is a heap overflow ASan reports. */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_alloc(size);

	if (size)
		memcpy(p, data, size);
	return p;
}

/* True when the N bytes at P are all zero: what a failed call must leave in its output. */
static inline bool fuzz_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* True when S (within CAP bytes) is NUL-terminated. */
static inline bool fuzz_terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* True when S holds printable ASCII only (a one-line message). */
static inline bool fuzz_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* True when S has no control characters (bytes of UTF-8 above 0x7f are allowed). */
static inline bool fuzz_one_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- Targets that parse files: a scratch directory, made once, removed at exit ---- */

static char fuzz_dir_path[64];

/*
 * A private directory under $TMPDIR (or /tmp), made on first use. The target removes what it
 * wrote there, and the directory, with its own atexit handler: it knows its files.
 */
static inline const char *fuzz_scratch_dir(void)
{
	if (!fuzz_dir_path[0]) {
		const char *tmp = getenv("TMPDIR");

		snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/amt-fuzz.XXXXXX",
		         tmp && tmp[0] && strlen(tmp) < 32 ? tmp : "/tmp");
		if (!mkdtemp(fuzz_dir_path)) {
			perror("mkdtemp");
			abort();
		}
	}
	return fuzz_dir_path;
}

/* Write (or, with DATA NULL, remove) PATH. */
static inline void fuzz_put_file(const char *path, const void *data, size_t len)
{
	int fd;

	if (!data) {
		if (unlink(path) < 0 && errno != ENOENT)
			abort();
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		abort();
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n <= 0) {
			perror(path);
			abort();
		}
		done += (size_t)n;
	}
	close(fd);
}
