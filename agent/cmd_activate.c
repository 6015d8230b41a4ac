/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"

static void advise_admin_control(const struct amt_state *st, const struct prov_credentials *c)
{
	if (st->control_mode == AMTHI_CONTROL_ACM && c->user_consent &&
	    strcmp(c->user_consent, "off") != 0)
		log_info("admin control mode with user consent still required (%s): forcing a PXE "
			 "boot remotely asks for a code shown on the machine's screen",
			 c->consent_note[0] ? c->consent_note : "unknown why");
	if (c->domain_unchecked)
		log_info("AMT's DNS suffix is not known here (MEBx holds no PKI DNS suffix, no "
			 "--dns-suffix): AMT checked the certificate's domain against the one DHCP "
			 "gave it");
}

void advise_after_activation(const struct amt_state *st, const struct prov_credentials *c)
{
	if (st->control_mode == AMTHI_CONTROL_CCM)
		log_info("client control mode: AMT asks for user consent before changing the boot "
			 "source, so forcing a PXE boot remotely does not work; put network boot "
			 "first in the BIOS boot order");
	advise_admin_control(st, c);
	if (c->power_policy && strcmp(c->power_policy, "set") == 0)
		log_info("power policy is now \"%s\": the ME stays reachable with the host off",
			 st->power_policy);
	else if (c->power_policy && strcmp(c->power_policy, "failed") == 0)
		log_error("--power-policy always-on: %s", c->power_note);
	if (st->power_policy_read && !prov_power_policy_covers_s5(st->power_policy))
		log_info("power policy \"%s\": the ME is off while the host is off (S5), so a "
			 "power-on over the network fails; %s",
			 st->power_policy,
			 c->power_policy ? "choose an always-on power package in the BIOS/MEBx"
					 : "--power-policy always-on sets an always-on package, "
					   "or choose one in the BIOS/MEBx");
}

void report_activation_failure(int prov_err, const struct prov_error *err,
			       const struct amt_state *st)
{
	log_error("%s", err->msg);
	if (prov_err != PROV_E_UNTRUSTED_ROOT)
		return;
	log_error("AMT's certificate hashes (the provisioning certificate's root must be an "
		  "active one; MEBx can add one):");
	for (unsigned i = 0; i < st->hash_count; i++) {
		const struct amthi_cert_hash *h = &st->hashes[i];
		char hex[2 * sizeof(h->hash) + 1];

		for (size_t j = 0; j < h->hash_len; j++)
			snprintf(hex + 2 * j, 3, "%02x", h->hash[j]);
		hex[2 * h->hash_len] = '\0';
		log_error("  %s %s %s (%s)", amthi_hash_alg_name(h->algorithm), hex, h->name,
			  h->is_active ? "active" : "inactive");
	}
}

void power_policy_json(struct json_object *j, const struct amt_state *st,
		       const struct prov_credentials *c)
{
	if (st->power_policy_read)
		json_object_object_add(j, "power_policy",
				       json_object_new_string(st->power_policy));
	if (c->power_policy)
		json_object_object_add(j, "power_policy_change",
				       json_object_new_string(c->power_policy));
	if (c->power_note[0])
		json_object_object_add(j, "power_policy_note",
				       json_object_new_string(c->power_note));
}

void print_power_policy(const struct amt_state *st, const struct prov_credentials *c)
{
	if (!c->power_policy)
		return;
	printf("power policy \"%s\" (%s)\n", st->power_policy_read ? st->power_policy : "unknown",
	       strcmp(c->power_policy, "set") == 0       ? "set now"
	       : strcmp(c->power_policy, "already") == 0 ? "already on in S5"
							 : "not changed");
}

/* Admin control mode: the MEBx password is shown, like the admin password, only when asked. */
static bool has_mebx(const struct amt_state *st, const struct prov_credentials *c)
{
	return st->control_mode == AMTHI_CONTROL_ACM && c->mebx_password[0];
}

static const char *outcome(const struct prov_credentials *c)
{
	if (c->activated_now)
		return "activated";
	return c->upgraded_now ? "upgraded" : "already";
}

static void print_json(const struct agent_opts *o, const struct amt_state *st,
		       const struct prov_credentials *c, const char *uuid)
{
	struct json_object *j = json_object_new_object();

	json_object_object_add(j, "uuid", json_object_new_string(uuid));
	json_object_object_add(j, "control_mode",
			       json_object_new_string(prov_control_mode_name(st->control_mode)));
	json_object_object_add(
		j, "provisioning_state",
		json_object_new_string(prov_provisioning_state_name(st->provisioning_state)));
	json_object_object_add(j, "activated_now", json_object_new_boolean(c->activated_now));
	json_object_object_add(j, "upgraded_now", json_object_new_boolean(c->upgraded_now));
	json_object_object_add(j, "password_source", json_object_new_string(c->source));
	json_object_object_add(j, "tls", json_object_new_boolean(c->tls));
	if (o->show_password)
		json_object_object_add(j, "password", json_object_new_string(c->password));
	if (has_mebx(st, c)) {
		json_object_object_add(j, "mebx_password_source",
				       json_object_new_string(c->mebx_source));
		if (o->show_password)
			json_object_object_add(j, "mebx_password",
					       json_object_new_string(c->mebx_password));
	}
	if (c->user_consent)
		json_object_object_add(j, "user_consent", json_object_new_string(c->user_consent));
	if (c->consent_note[0])
		json_object_object_add(j, "user_consent_note",
				       json_object_new_string(c->consent_note));
	power_policy_json(j, st, c);
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
	json_object_put(j);
}

static void print_result(const struct agent_opts *o, const struct amt_state *st,
			 const struct prov_credentials *c)
{
	char uuid[37];

	amthi_uuid_format(st->uuid, uuid);
	if (o->json) {
		print_json(o, st, c, uuid);
		return;
	}
	printf("%s: AMT %s in %s control mode, provisioning state %s\n", uuid, outcome(c),
	       prov_control_mode_name(st->control_mode),
	       prov_provisioning_state_name(st->provisioning_state));
	printf("user %s, password from %s (%s)\n", c->user, c->source,
	       o->show_password ? c->password : "hidden; --show-password prints it");
	if (has_mebx(st, c))
		printf("MEBx password from %s (%s)\n", c->mebx_source,
		       o->show_password ? c->mebx_password : "hidden; --show-password prints it");
	if (c->user_consent)
		printf("user consent %s%s%s\n", c->user_consent, c->consent_note[0] ? ": " : "",
		       c->consent_note);
	print_power_policy(st, c);
}

int cmd_activate(const struct agent_opts *o)
{
	struct amt_state *st = calloc(1, sizeof(*st));
	struct prov_session *s = prov_session_new(&o->prov);
	struct prov_credentials cred;
	struct prov_error err = {0};
	int r = EXIT_INTERNAL;

	if (!st || !s) {
		log_error("out of memory");
		goto out;
	}
	r = prov_activate(s, &o->activate, st, &cred, &err);
	if (r != 0) {
		report_activation_failure(r, &err, st);
		r = exit_code_for(r);
		goto out;
	}
	print_result(o, st, &cred);
	advise_after_activation(st, &cred);
	prov_credentials_wipe(&cred);
	r = EXIT_OK;
out:
	prov_session_free(s);
	free(st);
	return r;
}

int cmd_deactivate(const struct agent_opts *o)
{
	struct amt_state *st = calloc(1, sizeof(*st));
	struct prov_session *s = prov_session_new(&o->prov);
	struct prov_error err = {0};
	int r = EXIT_INTERNAL;

	if (!st || !s) {
		log_error("out of memory");
		goto out;
	}
	r = prov_deactivate(s, &o->activate, st, &err);
	if (r != 0) {
		log_error("%s", err.msg);
		r = exit_code_for(r);
		goto out;
	}
	printf("AMT unprovisioned: control mode %s, provisioning state %s\n",
	       prov_control_mode_name(st->control_mode),
	       prov_provisioning_state_name(st->provisioning_state));
	r = EXIT_OK;
out:
	prov_session_free(s);
	free(st);
	return r;
}
