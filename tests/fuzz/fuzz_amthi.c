/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AMTHI replies: the input is one message from the ME, handed to every decoder (each checks the
 * command echo first, so a seed reaches the decoder of its command), then to what discovery
 * does with the decoded fields. Outputs live on the heap at their exact size, so a decoder that
 * writes past a caller's buffer is caught. Properties: the documented return values only
 * (0, MEI_E_PROTOCOL, a positive status); strings NUL-terminated within their arrays; counts
 * and lengths within their bounds; a failed GetLocalSystemAccount leaves no byte of a secret.
 */
#include "fuzz.h"
#include "mei.h"
#include "provision.h"

static const uint32_t all_commands[] = {
    AMTHI_CMD_GET_PROVISIONING_MODE,
    AMTHI_CMD_UNPROVISION,
    AMTHI_CMD_GET_PROVISIONING_STATE,
    AMTHI_CMD_GET_CODE_VERSIONS,
    AMTHI_CMD_GET_MAC_ADDRESSES,
    AMTHI_CMD_START_CONFIGURATION,
    AMTHI_CMD_ENUMERATE_HASH_HANDLES,
    AMTHI_CMD_GET_CERT_HASH_ENTRY,
    AMTHI_CMD_GET_DNS_SUFFIX,
    AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS,
    AMTHI_CMD_GET_CURRENT_POWER_POLICY,
    AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS,
    AMTHI_CMD_GET_FQDN,
    AMTHI_CMD_GET_UUID,
    AMTHI_CMD_STOP_CONFIGURATION,
    AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT,
    AMTHI_CMD_GET_CONTROL_MODE,
    AMTHI_CMD_START_CONFIGURATION_HBASED,
};

static void check_result(int r)
{
	FUZZ_CHECK(r == 0 || r == MEI_E_PROTOCOL || r > 0);
	FUZZ_CHECK(mei_strerror(r) != NULL);
}

/* What prov_discover does with GetCodeVersions. */
static void code_versions(const uint8_t *data, size_t size)
{
	struct amthi_code_versions *v = fuzz_alloc(sizeof(*v));
	int r = amthi_decode_code_versions(data, size, v);

	check_result(r);
	if (r == 0) {
		const char *amt, *sku;
		char *features = fuzz_alloc(128);

		FUZZ_CHECK(v->count <= AMTHI_MAX_VERSIONS);
		FUZZ_CHECK(fuzz_terminated(v->bios, sizeof(v->bios)));
		for (unsigned i = 0; i < v->count; i++) {
			FUZZ_CHECK(fuzz_terminated(v->entry[i].description,
			                           sizeof(v->entry[i].description)));
			FUZZ_CHECK(
			    fuzz_terminated(v->entry[i].version, sizeof(v->entry[i].version)));
		}
		amt = amthi_version_get(v, "AMT");
		sku = amthi_version_get(v, "Sku");
		(void)amthi_version_get(v, "Build Number");
		prov_decode_features(amt, sku ? (unsigned)strtoul(sku, NULL, 0) : 0, features, 128);
		FUZZ_CHECK(fuzz_terminated(features, 128));
		free(features);
	}
	free(v);
}

static void scalars(const uint8_t *data, size_t size)
{
	uint32_t v;
	uint8_t *uuid = fuzz_alloc(16);
	char *text = fuzz_alloc(37);
	struct amthi_lan_settings *lan = fuzz_alloc(sizeof(*lan));
	struct amthi_mac_addresses *mac = fuzz_alloc(sizeof(*mac));
	int r;

	r = amthi_decode_u32(AMTHI_CMD_GET_PROVISIONING_STATE, data, size, &v);
	check_result(r);
	FUZZ_CHECK(r != 0 || v <= AMTHI_PROVISIONING_POST);
	r = amthi_decode_u32(AMTHI_CMD_GET_CONTROL_MODE, data, size, &v);
	check_result(r);
	FUZZ_CHECK(r != 0 || v <= AMTHI_CONTROL_ACM);
	/* a command without a u32 reply is refused, whatever the bytes */
	FUZZ_CHECK(amthi_decode_u32(AMTHI_CMD_GET_UUID, data, size, &v) == MEI_E_PROTOCOL);

	r = amthi_decode_uuid(data, size, uuid);
	check_result(r);
	if (r == 0)
		amthi_uuid_format(uuid, text);

	r = amthi_decode_lan_settings(data, size, lan);
	check_result(r);
	if (r == 0) {
		amthi_ipv4_format(lan->ipv4, text);
		amthi_mac_format(lan->mac, text);
	}

	r = amthi_decode_mac_addresses(data, size, mac);
	check_result(r);
	if (r == 0)
		amthi_mac_format(mac->host, text);

	for (size_t i = 0; i < sizeof(all_commands) / sizeof(all_commands[0]); i++)
		check_result(amthi_decode_status_only(all_commands[i], data, size));
	free(uuid);
	free(text);
	free(lan);
	free(mac);
}

/* A counted string into buffers of the size discovery uses and of one byte. */
static void strings(const uint8_t *data, size_t size)
{
	struct amthi_remote_access *ra = fuzz_alloc(sizeof(*ra));
	char *big = fuzz_alloc(256), *tiny = fuzz_alloc(1);
	int r;

	r = amthi_decode_dns_suffix(data, size, big, 256);
	check_result(r);
	FUZZ_CHECK(r != 0 || fuzz_terminated(big, 256));
	r = amthi_decode_dns_suffix(data, size, tiny, 1);
	check_result(r);
	FUZZ_CHECK(r != 0 || tiny[0] == '\0');

	r = amthi_decode_power_policy(data, size, big, 256);
	check_result(r);
	FUZZ_CHECK(r != 0 || fuzz_terminated(big, 256));
	r = amthi_decode_power_policy(data, size, tiny, 1);
	check_result(r);

	r = amthi_decode_remote_access(data, size, ra);
	check_result(r);
	FUZZ_CHECK(r != 0 || fuzz_terminated(ra->mps_hostname, sizeof(ra->mps_hostname)));
	free(ra);
	free(big);
	free(tiny);
}

static void hashes(const uint8_t *data, size_t size)
{
	uint32_t *handles = fuzz_alloc(AMTHI_MAX_HASHES * sizeof(uint32_t));
	struct amthi_cert_hash *h = fuzz_alloc(sizeof(*h));
	unsigned count = 0;
	int r;

	r = amthi_decode_hash_handles(data, size, handles, &count);
	check_result(r);
	FUZZ_CHECK(r != 0 || count <= AMTHI_MAX_HASHES);

	r = amthi_decode_cert_hash(data, size, h);
	check_result(r);
	if (r == 0) {
		FUZZ_CHECK(h->hash_len <= sizeof(h->hash));
		FUZZ_CHECK(fuzz_terminated(h->name, sizeof(h->name)));
		FUZZ_CHECK(amthi_hash_alg_name(h->algorithm) != NULL);
	}
	free(handles);
	free(h);
}

static void hbased(const uint8_t *data, size_t size)
{
	struct amthi_hbased_response *h = fuzz_alloc(sizeof(*h));
	int r = amthi_decode_start_configuration_hbased(data, size, h);

	check_result(r);
	FUZZ_CHECK(r != 0 || h->hash_len <= sizeof(h->hash));
	free(h);
}

static void local_account(const uint8_t *data, size_t size)
{
	struct amthi_local_account *a = fuzz_alloc(sizeof(*a));
	int r;

	memset(a, 0, sizeof(*a));
	r = amthi_decode_local_account(data, size, a);
	check_result(r);
	if (r == 0) {
		FUZZ_CHECK(fuzz_terminated(a->username, sizeof(a->username)));
		FUZZ_CHECK(fuzz_terminated(a->password, sizeof(a->password)));
	} else {
		FUZZ_CHECK(fuzz_all_zero(a, sizeof(*a)));
	}
	free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	code_versions(data, size);
	scalars(data, size);
	strings(data, size);
	hashes(data, size);
	hbased(data, size);
	local_account(data, size);
	return 0;
}
