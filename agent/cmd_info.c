/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"

static const char *or_none(const char *s)
{
	return s && s[0] ? s : "(none)";
}

static void print_adapter(const char *label, const struct prov_adapter *a)
{
	char ip[16], mac[18];

	if (!a->present) {
		printf("%-20s (none)\n", label);
		return;
	}
	amthi_ipv4_format(a->lan.ipv4, ip);
	amthi_mac_format(a->lan.mac, mac);
	printf("%-20s %s, %s, link %s, MAC %s\n", label, a->lan.enabled ? "enabled" : "disabled",
	       a->lan.dhcp_enabled ? (a->lan.dhcp_ip_mode == 2 ? "DHCP (passive)" : "DHCP (active)")
				   : "static",
	       a->lan.link_status == 1 ? "up" : "down", mac);
	printf("%-20s AMT %s; host %s%s%s\n", "", ip, or_none(a->host_ipv4),
	       a->host_ifname[0] ? " on " : "", a->host_ifname);
}

static void print_hashes(const struct amt_state *st)
{
	printf("%-20s %u\n", "Certificate hashes", st->hash_count);
	for (unsigned i = 0; i < st->hash_count; i++) {
		const struct amthi_cert_hash *h = &st->hashes[i];

		printf("  %s (%s%s%s)\n    ", h->name, amthi_hash_alg_name(h->algorithm),
		       h->is_default ? ", default" : "", h->is_active ? ", active" : "");
		for (size_t j = 0; j < h->hash_len; j++)
			printf("%02x", h->hash[j]);
		printf("\n");
	}
}

static void print_me(const struct amt_state *st)
{
	if (st->sysfs.fw_ver_count > 0)
		printf("%-20s %u.%u.%u.%u\n", "ME firmware", st->sysfs.fw_ver[0].major,
		       st->sysfs.fw_ver[0].minor, st->sysfs.fw_ver[0].hotfix,
		       st->sysfs.fw_ver[0].build);
	if (st->sysfs.dev_state[0])
		printf("%-20s %s\n", "ME device state", st->sysfs.dev_state);
}

static void print_text(const struct amt_state *st)
{
	char uuid[37];

	amthi_uuid_format(st->uuid, uuid);
	printf("%-20s %s (build %s)\n", "AMT version", or_none(st->amt_version),
	       or_none(st->build));
	printf("%-20s %u: %s\n", "SKU", st->sku, or_none(st->features));
	printf("%-20s %s\n", "UUID", uuid);
	printf("%-20s %s\n", "Control mode", prov_control_mode_name(st->control_mode));
	printf("%-20s %s\n", "Provisioning state",
	       prov_provisioning_state_name(st->provisioning_state));
	printf("%-20s %s\n", "Operational", st->operational);
	printf("%-20s %s\n", "TLS on local ports", st->tls_enforced);
	printf("%-20s %s\n", "DNS suffix", or_none(st->dns_suffix));
	printf("%-20s network %u, remote %u, trigger %u, MPS %s\n", "Remote access",
	       st->remote_access.network_status, st->remote_access.remote_status,
	       st->remote_access.trigger, or_none(st->remote_access.mps_hostname));
	printf("%-20s %s\n", "Power policy",
	       st->power_policy_read ? or_none(st->power_policy) : "(unknown)");
	print_adapter("Wired", &st->wired);
	print_adapter("Wireless", &st->wireless);
	print_hashes(st);
	print_me(st);
}

static int print_json(const struct amt_state *st)
{
	struct json_object *o = prov_state_to_json(st);
	const char *text;

	if (!o) {
		log_error("out of memory");
		return EXIT_INTERNAL;
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	printf("%s\n", text);
	json_object_put(o);
	return EXIT_OK;
}

int cmd_info(const struct agent_opts *o)
{
	struct amt_state *st = calloc(1, sizeof(*st));
	struct prov_session *s = prov_session_new(&o->prov);
	struct prov_error err;
	int r = EXIT_INTERNAL;

	if (!st || !s) {
		log_error("out of memory");
		goto out;
	}
	r = prov_discover(s, st, &err);
	log_debug("AMTHI connects: %u", prov_session_amthi_connects(s));
	if (r != 0) {
		log_error("%s", err.msg);
		r = exit_code_for(r);
		goto out;
	}
	if (o->json) {
		r = print_json(st);
	} else {
		print_text(st);
		r = EXIT_OK;
	}
out:
	prov_session_free(s);
	free(st);
	return r;
}
