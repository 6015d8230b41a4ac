/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloud-init's MAAS datasource config (YAML), as written to
 * /etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg or served at cloud-config-url=. Properties:
 * 0 or PROV_E_BAD_INPUT only; on success metadata_url is an http(s) URL and every field is
 * terminated, printable ASCII without spaces; on failure the credentials hold no byte (the token
 * secret) and the message is one printable line.
 */
#include "fuzz.h"
#include "handoff.h"

static bool token(const char *s, size_t cap)
{
	if (!fuzz_terminated(s, cap))
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maas_creds *c = fuzz_alloc(sizeof(*c));
	struct prov_error err;
	int r;

	memset(c, 0x55, sizeof(*c));
	memset(&err, 0, sizeof(err));
	r = maas_creds_from_yaml((const char *)data, size, "fuzz", c, &err);
	FUZZ_CHECK(r == 0 || r == PROV_E_BAD_INPUT);
	if (r == 0) {
		FUZZ_CHECK(strncmp(c->metadata_url, "http://", 7) == 0 ||
		           strncmp(c->metadata_url, "https://", 8) == 0);
		FUZZ_CHECK(token(c->metadata_url, sizeof(c->metadata_url)));
		FUZZ_CHECK(token(c->consumer_key, sizeof(c->consumer_key)));
		FUZZ_CHECK(token(c->token_key, sizeof(c->token_key)));
		FUZZ_CHECK(token(c->token_secret, sizeof(c->token_secret)));
	} else {
		FUZZ_CHECK(fuzz_all_zero(c, sizeof(*c)));
		FUZZ_CHECK(err.code == r);
		FUZZ_CHECK(fuzz_terminated(err.msg, sizeof(err.msg)) && fuzz_printable(err.msg));
	}
	maas_creds_wipe(c);
	free(c);
	return 0;
}
