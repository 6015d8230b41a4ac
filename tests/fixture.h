/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test fixtures' chores without a shell: run a program from its argument vector (no command
 * processor, so no path is ever quoted into shell code; CERT ENV33-C) and remove a directory
 * tree. Header-only, so that the tests of every directory can use it without a library.
 */
#ifndef AMT_ENLIST_TESTS_FIXTURE_H
#define AMT_ENLIST_TESTS_FIXTURE_H

#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h> /* environ, with _GNU_SOURCE */

/* Run ARGV[0], looked up on PATH, with ARGV (NULL-terminated); 0 when it exits with status 0. */
static inline int fixture_run(const char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static inline int fixture_remove_entry(const char *path, const struct stat *st, int type,
				       struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* rm -rf DIR: 0, or -1 when something could not be removed. */
static inline int fixture_remove_tree(const char *dir)
{
	return nftw(dir, fixture_remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

#endif
