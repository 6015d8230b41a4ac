/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handoff.h"
#include "host.h"
#include "provision.h"

const char *prov_control_mode_name(uint32_t mode)
{
	switch (mode) {
	case AMTHI_CONTROL_NONE:
		return "none";
	case AMTHI_CONTROL_CCM:
		return "client";
	case AMTHI_CONTROL_ACM:
		return "admin";
	default:
		return "unknown";
	}
}

const char *prov_provisioning_state_name(uint32_t state)
{
	switch (state) {
	case AMTHI_PROVISIONING_PRE:
		return "pre";
	case AMTHI_PROVISIONING_IN:
		return "in";
	case AMTHI_PROVISIONING_POST:
		return "post";
	default:
		return "unknown";
	}
}

static void add_word(char *out, size_t cap, const char *word)
{
	size_t len = strlen(out);

	snprintf(out + len, cap - len, "%s%s", len ? " " : "", word);
}

void prov_decode_features(const char *amt_version, unsigned sku, char *out, size_t cap)
{
	static const struct {
		unsigned bit;
		int below_major; /* shown only on AMT older than this; 0: always */
		const char *word;
	} bits[] = {
		{0x0002, 7, "iQST"},         {0x0004, 6, "ASF"},
		{0x0008, 0, "AMT Pro"},      {0x0010, 0, "Intel Standard Manageability"},
		{0x0020, 6, "TPM"},          {0x0100, 6, "Home IT"},
		{0x0400, 6, "WOX"},          {0x2000, 0, "AT-p"},
		{0x4000, 0, "Corporate"},    {0x8000, 8, "L3 Mgt Upgrade"},
	};
	long major = amt_version ? strtol(amt_version, NULL, 10) : 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if ((sku & bits[i].bit) && (bits[i].below_major == 0 || major < bits[i].below_major))
			add_word(out, cap, bits[i].word);
}

static void add_string(struct json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

static void add_bool(struct json_object *o, const char *key, bool value)
{
	json_object_object_add(o, key, json_object_new_boolean(value));
}

static void add_int(struct json_object *o, const char *key, int64_t value)
{
	json_object_object_add(o, key, json_object_new_int64(value));
}

static struct json_object *adapter_json(const struct prov_adapter *a)
{
	struct json_object *o = json_object_new_object();
	char ip[16], mac[18];

	amthi_ipv4_format(a->lan.ipv4, ip);
	amthi_mac_format(a->lan.mac, mac);
	add_bool(o, "enabled", a->lan.enabled);
	add_bool(o, "dhcp", a->lan.dhcp_enabled);
	add_string(o, "dhcp_mode",
		   a->lan.dhcp_ip_mode == 1 ? "active"
		   : a->lan.dhcp_ip_mode == 2 ? "passive"
					      : "unknown");
	add_bool(o, "link_up", a->lan.link_status == 1);
	add_string(o, "ipv4", ip);
	add_string(o, "mac", mac);
	add_string(o, "host_interface", a->host_ifname[0] ? a->host_ifname : NULL);
	add_string(o, "host_ipv4", a->host_ipv4[0] ? a->host_ipv4 : NULL);
	return o;
}

static struct json_object *hashes_json(const struct amt_state *st)
{
	struct json_object *arr = json_object_new_array();

	for (unsigned i = 0; i < st->hash_count; i++) {
		const struct amthi_cert_hash *h = &st->hashes[i];
		struct json_object *o = json_object_new_object();
		char hex[2 * sizeof(h->hash) + 1];

		for (size_t j = 0; j < h->hash_len; j++)
			snprintf(hex + 2 * j, 3, "%02x", h->hash[j]);
		hex[2 * h->hash_len] = '\0';
		add_string(o, "name", h->name);
		add_string(o, "algorithm", amthi_hash_alg_name(h->algorithm));
		add_bool(o, "default", h->is_default);
		add_bool(o, "active", h->is_active);
		add_string(o, "hash", hex);
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *versions_json(const struct amthi_code_versions *v)
{
	struct json_object *o = json_object_new_object();

	for (unsigned i = 0; i < v->count; i++)
		add_string(o, v->entry[i].description, v->entry[i].version);
	return o;
}

static struct json_object *me_json(const struct amt_state *st)
{
	struct json_object *o = json_object_new_object();
	struct json_object *fw = json_object_new_array();
	struct json_object *status = json_object_new_array();
	char buf[64];

	for (unsigned i = 0; i < st->sysfs.fw_ver_count; i++) {
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u", st->sysfs.fw_ver[i].major,
			 st->sysfs.fw_ver[i].minor, st->sysfs.fw_ver[i].hotfix,
			 st->sysfs.fw_ver[i].build);
		json_object_array_add(fw, json_object_new_string(buf));
	}
	for (unsigned i = 0; i < st->sysfs.fw_status_count; i++) {
		snprintf(buf, sizeof(buf), "%08X", st->sysfs.fw_status[i]);
		json_object_array_add(status, json_object_new_string(buf));
	}
	json_object_object_add(o, "fw_version", fw);
	json_object_object_add(o, "fw_status", status);
	add_string(o, "dev_state", st->sysfs.dev_state[0] ? st->sysfs.dev_state : NULL);
	return o;
}

struct json_object *prov_state_to_json(const struct amt_state *st)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ra = json_object_new_object();
	char uuid[37], mac[18];

	amthi_uuid_format(st->uuid, uuid);
	add_string(o, "version", st->amt_version);
	add_string(o, "build", st->build);
	add_int(o, "sku", st->sku);
	add_string(o, "features", st->features);
	add_string(o, "bios_version", st->versions.bios);
	json_object_object_add(o, "code_versions", versions_json(&st->versions));
	add_string(o, "uuid", uuid);
	add_string(o, "control_mode", prov_control_mode_name(st->control_mode));
	add_string(o, "provisioning_state", prov_provisioning_state_name(st->provisioning_state));
	add_string(o, "operational", st->operational);
	add_string(o, "tls_enforced", st->tls_enforced);
	if (st->state_independence_read) {
		snprintf(mac, sizeof(mac), "0x%02X", st->si.raw);
		add_string(o, "state_independence", mac);
	} else {
		add_string(o, "state_independence", NULL);
	}
	add_string(o, "dns_suffix", st->dns_suffix);
	add_int(ra, "network_status", st->remote_access.network_status);
	add_int(ra, "remote_status", st->remote_access.remote_status);
	add_int(ra, "trigger", st->remote_access.trigger);
	add_string(ra, "mps_hostname", st->remote_access.mps_hostname);
	json_object_object_add(o, "remote_access", ra);
	add_string(o, "power_policy", st->power_policy_read ? st->power_policy : NULL);
	json_object_object_add(o, "wired", adapter_json(&st->wired));
	json_object_object_add(o, "wireless",
			       st->wireless.present ? adapter_json(&st->wireless) : NULL);
	if (st->macs_read) {
		amthi_mac_format(st->macs.host, mac);
		add_string(o, "host_mac", mac);
		amthi_mac_format(st->macs.dedicated, mac);
		add_string(o, "dedicated_mac", mac);
	}
	json_object_object_add(o, "certificate_hashes", hashes_json(st));
	json_object_object_add(o, "me", me_json(st));
	return o;
}

static struct json_object *host_json(const struct host_facts *h)
{
	struct json_object *o = json_object_new_object();
	struct json_object *macs = json_object_new_array();

	add_string(o, "hostname", h->hostname);
	add_string(o, "architecture", h->architecture);
	for (unsigned i = 0; i < h->mac_count; i++)
		json_object_array_add(macs, json_object_new_string(h->macs[i]));
	json_object_object_add(o, "mac_addresses", macs);
	return o;
}

struct json_object *prov_document(const struct amt_state *st, const struct host_facts *h,
				  const struct power_params *p, const char *address_source,
				  const char *state, bool credentials_unknown,
				  const char *mebx_password)
{
	struct json_object *o = json_object_new_object();
	struct json_object *pp = json_object_new_object();
	char uuid[37];

	amthi_uuid_format(st->uuid, uuid);
	add_string(o, "schema", "amt-enlist/1");
	add_string(o, "uuid", uuid);
	if (state)
		add_string(o, "state", state);
	add_string(o, "power_type", "amt");
	add_string(pp, "power_address", p->power_address);
	add_string(pp, "power_user", p->power_user);
	if (credentials_unknown)
		add_string(o, "credentials", "unknown");
	else
		add_string(pp, "power_pass", p->power_pass);
	add_string(pp, "port", p->port);
	json_object_object_add(o, "power_parameters", pp);
	if (!credentials_unknown && mebx_password && mebx_password[0])
		add_string(o, "mebx_password", mebx_password);
	add_string(o, "address_source", address_source);
	json_object_object_add(o, "host", host_json(h));
	json_object_object_add(o, "amt", prov_state_to_json(st));
	return o;
}
