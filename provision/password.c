/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "password.h"

#define UPPER  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define LOWER  "abcdefghijklmnopqrstuvwxyz"
#define DIGITS "0123456789"

/* Redraws of a whole password before giving up: each try succeeds with p > 0.3 even at 8. */
#define GENERATE_MAX_TRIES 1000

static const char *alphabet(enum password_kind kind)
{
	return kind == PASSWORD_MEBX ? UPPER LOWER DIGITS PASSWORD_MEBX_SYMBOLS
				     : UPPER LOWER DIGITS PASSWORD_ADMIN_SYMBOLS;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_upper(char ch)
{
	return ch >= 'A' && ch <= 'Z';
}

static bool is_lower(char ch)
{
	return ch >= 'a' && ch <= 'z';
}

/* AMT's notion of a symbol: printable, not alphanumeric, and neither '_' nor space. */
static bool is_symbol(char ch)
{
	return ch > ' ' && ch <= '~' && ch != '_' && !is_digit(ch) && !is_upper(ch) &&
	       !is_lower(ch);
}

static bool has_every_class(const char *pw, size_t len)
{
	bool digit = false, upper = false, lower = false, symbol = false;

	for (size_t i = 0; i < len; i++) {
		digit |= is_digit(pw[i]);
		upper |= is_upper(pw[i]);
		lower |= is_lower(pw[i]);
		symbol |= is_symbol(pw[i]);
	}
	return digit && upper && lower && symbol;
}

int password_read_line(const char *path, char *out, size_t cap)
{
	size_t got = 0;
	int e = 0, fd;

	if (cap == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got + 1 < cap) {
		ssize_t n = read(fd, out + got, cap - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			e = -errno;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	out[got] = '\0';
	if (e != 0)
		OPENSSL_cleanse(out, cap);
	else
		out[strcspn(out, "\r\n")] = '\0';
	return e;
}

/* Random bytes handed out one at a time from a block that is wiped when used up. */
struct random_pool {
	unsigned char buf[64];
	size_t used;
};

static int pool_byte(struct random_pool *p, unsigned char *out)
{
	if (p->used == sizeof(p->buf)) {
		if (RAND_bytes(p->buf, sizeof(p->buf)) != 1)
			return -1;
		p->used = 0;
	}
	*out = p->buf[p->used];
	p->buf[p->used++] = 0;
	return 0;
}

/* A uniform index below N (N <= 256): bytes at or above the largest multiple of N are redrawn. */
static int uniform_index(struct random_pool *p, size_t n, size_t *out)
{
	size_t limit = 256 / n * n;
	unsigned char b;

	do {
		if (pool_byte(p, &b) != 0)
			return -1;
	} while (b >= limit);
	*out = b % n;
	return 0;
}

/*
 * Drawing every character uniformly and redrawing the whole password until it has all four
 * classes gives the uniform distribution over the valid passwords; fixing one position per
 * class would not.
 */
int password_generate(enum password_kind kind, size_t len, char *out)
{
	const char *set = alphabet(kind);
	size_t n = strlen(set);
	struct random_pool pool = {.used = sizeof(pool.buf)};
	int r = -1;

	if (!out || len < PASSWORD_MIN || len > PASSWORD_MAX)
		return -1;
	for (int tries = 0; tries < GENERATE_MAX_TRIES && r != 0; tries++) {
		size_t i, k;

		for (i = 0; i < len; i++) {
			if (uniform_index(&pool, n, &k) != 0)
				break;
			out[i] = set[k];
		}
		if (i < len)
			break;
		out[len] = '\0';
		if (has_every_class(out, len))
			r = 0;
	}
	OPENSSL_cleanse(&pool, sizeof(pool));
	if (r != 0)
		OPENSSL_cleanse(out, len + 1);
	return r;
}

static bool reject(char *why, size_t why_cap, const char *rule)
{
	if (why && why_cap > 0)
		snprintf(why, why_cap, "%s", rule);
	return false;
}

static bool in_set(char ch, const char *set)
{
	return ch != '\0' && strchr(set, ch) != NULL;
}

bool password_check(enum password_kind kind, const char *pw, char *why, size_t why_cap)
{
	size_t len;

	if (!pw)
		return reject(why, why_cap, "no password given");
	len = strnlen(pw, PASSWORD_MAX + 1);
	if (len < PASSWORD_MIN)
		return reject(why, why_cap, "shorter than 8 characters");
	if (len > PASSWORD_MAX)
		return reject(why, why_cap, "longer than 32 characters");
	for (size_t i = 0; i < len; i++) {
		char ch = pw[i];

		if (ch < ' ' || ch > '~')
			return reject(why, why_cap,
				      "contains a character outside printable ASCII (32-126)");
		if (in_set(ch, ":,\""))
			return reject(why, why_cap, "contains ':', ',' or '\"', which AMT refuses");
		if (kind == PASSWORD_ADMIN && in_set(ch, "@/?#%^ "))
			return reject(why, why_cap,
				      "contains a space or one of @ / ? # % ^, which MAAS cannot put "
				      "into its AMT URL");
		if (kind == PASSWORD_MEBX && !is_digit(ch) && !is_upper(ch) && !is_lower(ch) &&
		    !in_set(ch, PASSWORD_MEBX_SYMBOLS))
			return reject(why, why_cap,
				      "a MEBx password may hold only letters, digits and ! - . "
				      "(it is typed at the BIOS on a US layout)");
	}
	if (!has_every_class(pw, len))
		return reject(why, why_cap,
			      "needs at least one digit, one upper-case letter, one lower-case "
			      "letter and one symbol ('_' and space do not count)");
	return true;
}

int password_digest_a1(const char *user, const char *realm, const char *pw, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (!user || !realm || !pw || !out)
		return -1;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -1;
	/* Fed in pieces so that no buffer holds the joined secret. */
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, user, strlen(user)) == 1 &&
	     EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	     EVP_DigestUpdate(ctx, realm, strlen(realm)) == 1 &&
	     EVP_DigestUpdate(ctx, ":", 1) == 1 && EVP_DigestUpdate(ctx, pw, strlen(pw)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		OPENSSL_cleanse(md, sizeof(md));
		return -1;
	}
	for (size_t i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[32] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}
