/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"

static const char *const target_names[PROV_TARGETS] = {"server", "maas", "bmc-config"};

static void print_result(const struct agent_opts *o, const struct amt_state *st,
			 const struct prov_enlist_result *res, int r)
{
	char uuid[37];

	amthi_uuid_format(st->uuid, uuid);
	if (o->json) {
		struct json_object *j = json_object_new_object();
		struct json_object *t = json_object_new_object();

		json_object_object_add(j, "uuid", json_object_new_string(uuid));
		json_object_object_add(j, "control_mode",
				       json_object_new_string(prov_control_mode_name(st->control_mode)));
		json_object_object_add(j, "activated_now",
				       json_object_new_boolean(res->cred.activated_now));
		json_object_object_add(j, "upgraded_now",
				       json_object_new_boolean(res->cred.upgraded_now));
		if (res->cred.user_consent)
			json_object_object_add(j, "user_consent",
					       json_object_new_string(res->cred.user_consent));
		power_policy_json(j, st, &res->cred);
		json_object_object_add(j, "power_address",
				       json_object_new_string(res->power_address));
		json_object_object_add(j, "address_source",
				       res->address_source
					       ? json_object_new_string(res->address_source)
					       : NULL);
		json_object_object_add(j, "port", json_object_new_string(res->port));
		for (int i = 0; i < PROV_TARGETS; i++) {
			struct json_object *x;

			if (!res->target[i].requested)
				continue;
			x = json_object_new_object();
			json_object_object_add(x, "ok", json_object_new_boolean(res->target[i].code == 0 &&
										 res->target[i].msg[0]));
			json_object_object_add(x, "message",
					       json_object_new_string(res->target[i].msg));
			json_object_object_add(t, target_names[i], x);
		}
		json_object_object_add(j, "handoff", t);
		json_object_object_add(j, "exit", json_object_new_int(exit_code_for(r)));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
		return;
	}
	if (r == 0)
		printf("%s: AMT %s in %s control mode at %s (%s), port %s, user %s\n", uuid,
		       res->cred.activated_now  ? "activated"
		       : res->cred.upgraded_now ? "upgraded"
						: "already",
		       prov_control_mode_name(st->control_mode), res->power_address,
		       res->address_source, res->port, res->cred.user);
	if (res->cred.user_consent)
		printf("user consent %s%s%s\n", res->cred.user_consent,
		       res->cred.consent_note[0] ? ": " : "", res->cred.consent_note);
	print_power_policy(st, &res->cred);
	for (int i = 0; i < PROV_TARGETS; i++)
		if (res->target[i].requested && res->target[i].msg[0])
			printf("%-11s %s: %s\n", target_names[i],
			       res->target[i].code == 0 ? "ok" : "FAILED", res->target[i].msg);
}

int cmd_enlist(const struct agent_opts *o)
{
	struct amt_state *st = calloc(1, sizeof(*st));
	struct prov_enlist_result *res = calloc(1, sizeof(*res));
	struct prov_session *s = prov_session_new(&o->prov);
	struct prov_error err = {0};
	int r = EXIT_INTERNAL;

	if (!st || !s || !res) {
		log_error("out of memory");
		goto out;
	}
	if (!o->handoff.server_url && !o->handoff.maas && !o->handoff.bmc_config_path) {
		log_error("enlist needs a hand-off: --server URL, --maas or --bmc-config PATH");
		r = EXIT_USAGE;
		goto out;
	}
	r = prov_enlist(s, &o->activate, &o->handoff, st, res, &err);
	if (r == PROV_E_NO_AMT && o->no_amt_ok) {
		log_info("%s; nothing to enlist (--no-amt-ok)", err.msg);
		r = EXIT_OK;
		goto out;
	}
	if (r != 0)
		report_activation_failure(r, &err, st);
	else
		advise_after_activation(st, &res->cred);
	if (r == 0 || res->power_address[0])
		print_result(o, st, res, r);
	r = exit_code_for(r);
out:
	if (res)
		prov_enlist_result_wipe(res);
	prov_session_free(s);
	free(res);
	free(st);
	return r;
}
