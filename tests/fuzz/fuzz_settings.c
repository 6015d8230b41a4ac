/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /etc/amt-enlist.conf (agent/settings.c): the input is the file's text. Properties: 0 or -1;
 * every setting handed over has a valid key ([a-z0-9-]+), a value without the line's
 * surrounding blanks, newline or NUL, and line numbers that only grow; on -1, WHY is one
 * terminated line that does not repeat the failing line's value (it may name a secret's path).
 */
#include <ctype.h>
#include <limits.h>

#include "fuzz.h"
#include "settings.h"

struct seen {
	unsigned last_line;
	unsigned count;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int apply(void *opaque, const char *key, const char *value, unsigned line)
{
	struct seen *s = opaque;

	FUZZ_CHECK(*key);
	for (const char *k = key; *k; k++)
		FUZZ_CHECK((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-');
	FUZZ_CHECK(strchr(value, '\n') == NULL);
	FUZZ_CHECK(line > s->last_line);
	s->last_line = line;
	s->count++;
	(void)settings_bool(value);
	/* stop on a key the fuzzer can find, to cover the callback's refusal */
	return strcmp(key, "stop") == 0 ? -1 : 0;
}

/*
 * The value part of line NO of TEXT (after the first '=', blanks trimmed) into OUT; "" when
 * there is none, or when it also occurs in the key part (the message may name the key).
 */
static void value_of_line(const char *text, size_t len, unsigned no, char *out, size_t cap)
{
	const char *p = text, *end = text + len, *eol, *eq, *v;
	char key[256];
	size_t n;

	out[0] = '\0';
	for (unsigned i = 1; i < no && p < end; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		p = nl ? nl + 1 : end;
	}
	eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol)
		eol = end;
	eq = memchr(p, '=', (size_t)(eol - p));
	if (!eq)
		return;
	for (v = eq + 1; v < eol && is_blank(*v); v++)
		;
	while (eol > v && is_blank(eol[-1]))
		eol--;
	n = (size_t)(eol - v) < cap ? (size_t)(eol - v) : cap - 1;
	memcpy(out, v, n);
	out[n] = '\0';
	n = (size_t)(eq - p) < sizeof(key) ? (size_t)(eq - p) : sizeof(key) - 1;
	memcpy(key, p, n);
	key[n] = '\0';
	if (strstr(key, out))
		out[0] = '\0';
}

/* N of a message "line N: ...", or 0. */
static unsigned line_of(const char *why)
{
	char *end;
	unsigned long no;

	if (strncmp(why, "line ", 5) != 0 || !isdigit((unsigned char)why[5]))
		return 0;
	no = strtoul(why + 5, &end, 10);
	return *end == ':' && no <= UINT_MAX ? (unsigned)no : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct seen s = {0};
	char why[256], value[64];
	unsigned no;
	int r;

	why[0] = '\0';
	r = settings_parse(text, size, apply, &s, why, sizeof(why));
	FUZZ_CHECK(r == 0 || r == -1);
	if (r == 0 || why[0] == '\0') /* the callback stopped it: it says why itself */
		return 0;
	FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && fuzz_one_line(why));
	/* A value long enough not to be a word of the message itself must not be repeated. */
	no = line_of(why);
	if (no > 0 && !memchr(text, '\0', size)) {
		value_of_line(text, size, no, value, sizeof(value));
		if (strlen(value) >= 12)
			FUZZ_CHECK(strstr(why, value) == NULL);
	}
	return 0;
}
