/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"

static void advise(const struct amt_state *st)
{
	if (st->control_mode == AMTHI_CONTROL_CCM)
		log_info("client control mode: AMT asks for user consent before changing the boot "
			 "source, so forcing a PXE boot remotely does not work; put network boot "
			 "first in the BIOS boot order");
	if (st->power_policy_read && !prov_power_policy_covers_s5(st->power_policy))
		log_info("power policy \"%s\": the ME is off while the host is off (S5), so a "
			 "power-on over the network fails; choose an always-on power package in "
			 "the BIOS/MEBx",
			 st->power_policy);
}

static void print_result(const struct agent_opts *o, const struct amt_state *st,
			 const struct prov_credentials *c)
{
	char uuid[37];

	amthi_uuid_format(st->uuid, uuid);
	if (o->json) {
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "uuid", json_object_new_string(uuid));
		json_object_object_add(j, "control_mode",
				       json_object_new_string(prov_control_mode_name(st->control_mode)));
		json_object_object_add(j, "provisioning_state",
				       json_object_new_string(prov_provisioning_state_name(
					       st->provisioning_state)));
		json_object_object_add(j, "activated_now", json_object_new_boolean(c->activated_now));
		json_object_object_add(j, "password_source", json_object_new_string(c->source));
		json_object_object_add(j, "tls", json_object_new_boolean(c->tls));
		if (o->show_password)
			json_object_object_add(j, "password", json_object_new_string(c->password));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
		return;
	}
	printf("%s: AMT %s in %s control mode, provisioning state %s\n", uuid,
	       c->activated_now ? "activated" : "already", prov_control_mode_name(st->control_mode),
	       prov_provisioning_state_name(st->provisioning_state));
	printf("user %s, password from %s (%s)\n", c->user, c->source,
	       o->show_password ? c->password : "hidden; --show-password prints it");
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
		log_error("%s", err.msg);
		r = exit_code_for(r);
		goto out;
	}
	print_result(o, st, &cred);
	advise(st);
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
