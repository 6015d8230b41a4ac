/* SPDX-License-Identifier: Apache-2.0 */
#include "settings.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_LEN 4096

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static char *trim(char *s)
{
	size_t n;

	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-'))
			return false;
	return true;
}

/* Strip one pair of double quotes; a lone quote is an error. */
static int unquote(char **value)
{
	char *v = *value;
	size_t n = strlen(v);

	if (n == 0 || (v[0] != '"' && v[n - 1] != '"'))
		return 0;
	if (n < 2 || v[0] != '"' || v[n - 1] != '"' || memchr(v + 1, '"', n - 2))
		return -1;
	v[n - 1] = '\0';
	*value = v + 1;
	return 0;
}

static int parse_line(char *line, unsigned no, settings_apply_fn apply, void *ctx, char *why,
		      size_t why_cap)
{
	char *s = trim(line), *eq, *key, *value;

	if (*s == '\0' || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		snprintf(why, why_cap, "line %u: expected 'key = value'", no);
		return -1;
	}
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (!valid_key(key)) {
		snprintf(why, why_cap, "line %u: the setting's name has characters other than a-z, "
			 "0-9 and '-'", no);
		return -1;
	}
	if (unquote(&value) < 0) {
		snprintf(why, why_cap, "line %u: unbalanced quotes in the value of '%s'", no, key);
		return -1;
	}
	return apply(ctx, key, value, no);
}

int settings_parse(const char *text, size_t len, settings_apply_fn apply, void *ctx, char *why,
		 size_t why_cap)
{
	char line[LINE_MAX_LEN + 1];
	unsigned no = 0;
	size_t pos = 0;

	if (len > SETTINGS_MAX_SIZE) {
		snprintf(why, why_cap, "larger than %d bytes", SETTINGS_MAX_SIZE);
		return -1;
	}
	if (memchr(text, '\0', len)) {
		snprintf(why, why_cap, "contains a NUL byte");
		return -1;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		no++;
		if (n > LINE_MAX_LEN) {
			snprintf(why, why_cap, "line %u: longer than %d characters", no, LINE_MAX_LEN);
			return -1;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (parse_line(line, no, apply, ctx, why, why_cap) < 0)
			return -1;
		pos += n + (nl ? 1 : 0);
	}
	return 0;
}

int settings_bool(const char *value)
{
	if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
		return 1;
	if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
		return 0;
	return -1;
}
