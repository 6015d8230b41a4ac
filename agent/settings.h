/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /etc/amt-enlist.conf: one setting per line, "key = value", where key is a long option's name
 * without its dashes ("server", "deadline", "no-amt-ok"); booleans are yes/no/true/false/1/0;
 * '#' starts a comment line; a value may be put in double quotes. The command line wins.
 */
#pragma once

#include <stddef.h>

#define SETTINGS_DEFAULT_PATH "/etc/amt-enlist.conf"
#define SETTINGS_MAX_SIZE     65536

/* Called for each setting; returns 0, or -1 to stop (the callback has said why). */
typedef int (*settings_apply_fn)(void *ctx, const char *key, const char *value, unsigned line);

/*
 * Parse TEXT (LEN bytes; NUL bytes are an error). Returns 0, or -1 with WHY naming the line and
 * the problem (never the value: it may be a path to a secret, but it is not one itself).
 */
int settings_parse(const char *text, size_t len, settings_apply_fn apply, void *ctx, char *why,
		 size_t why_cap);

/* 1 for yes/true/1, 0 for no/false/0, -1 otherwise. */
int settings_bool(const char *value);
