/* SPDX-License-Identifier: Apache-2.0 */
/* AMT passwords (internal to provision/): generation, checking, the Digest A1 (PROTOCOL.md §6). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MIN 8
#define PASSWORD_MAX 32

/* The symbols a generated admin password draws from: MAAS puts it unescaped into a URL. */
#define PASSWORD_ADMIN_SYMBOLS "!*-.~+="
/* A MEBx password may be typed by a person on a US layout at the BIOS. */
#define PASSWORD_MEBX_SYMBOLS "!-."

enum password_kind { PASSWORD_ADMIN, PASSWORD_MEBX };

/*
 * Generate a password of LEN characters (8..32) with OpenSSL's RAND_bytes, uniform over the
 * allowed set with at least one digit, upper, lower and symbol (rejection sampling, no modulo
 * bias). OUT must hold LEN+1. Returns 0, or -1 when the random source fails.
 */
int password_generate(enum password_kind kind, size_t len, char *out);

/* Check an operator's password against AMT's rules and the kind's character set. On failure,
 * WHY names the broken rule (never the password). */
bool password_check(enum password_kind kind, const char *pw, char *why, size_t why_cap);

/*
 * The first line of the file at PATH (a secret: the operator's password, a PKCS#12 password)
 * into OUT, without its line break; at most CAP-1 bytes of the file are read. 0, or -errno
 * (OUT wiped).
 */
int password_read_line(const char *path, char *out, size_t cap);

/* lower-hex MD5(USER ":" REALM ":" PASSWORD) into OUT[33]. 0 or -1. */
int password_digest_a1(const char *user, const char *realm, const char *pw, char out[33]);
