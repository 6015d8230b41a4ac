/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the hand-offs read from a provisioning server's (or MAAS's) reply: the message of a
 * refusal (a JSON body's "error" or "message", else the first line), and Retry-After. The input
 * is the body; its first 63 bytes, as a C string, are also a Retry-After value (the header is
 * kept in 64 bytes). Properties: the message is printable ASCII, fits its buffer, has no
 * trailing space unless it was cut to fit, and never holds a secret of the request in full (the
 * redaction list); Retry-After is -1 or 0..366 days.
 */
#include <time.h>

#include "fuzz.h"
#include "http.h"

#define RETRY_AFTER_MAX_S (366L * 24 * 3600)
#define NOW               ((time_t)1700000000)

/* Secrets a request could carry (a password, a token secret): none hold '?' or a space. */
static const char *const secrets[4] = {"P4ss-w0rd!x", "q8ZkT0kenSecret", "ab", NULL};

static void message(const char *body, size_t len, size_t cap)
{
	char *out = fuzz_alloc(cap);

	http_server_message(body, len, secrets, out, cap);
	FUZZ_CHECK(fuzz_terminated(out, cap));
	FUZZ_CHECK(fuzz_printable(out));
	FUZZ_CHECK(strlen(out) == cap - 1 || out[0] == '\0' || out[strlen(out) - 1] != ' ');
	for (int i = 0; i < 3; i++)
		FUZZ_CHECK(strstr(out, secrets[i]) == NULL);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[64];
	size_t n = size < sizeof(value) - 1 ? size : sizeof(value) - 1;
	long s;

	message((const char *)data, size, 256); /* struct post_result's message */
	message((const char *)data, size, 12);
	memcpy(value, data, n);
	value[n] = '\0';
	s = http_retry_after(value, NOW);
	FUZZ_CHECK(s == -1 || (s >= 0 && s <= RETRY_AFTER_MAX_S));
	return 0;
}
