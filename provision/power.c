/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ME's power package (--power-policy always-on). A package that keeps the ME on only in S0
 * leaves AMT unreachable with the host off, and MAAS's power-on fails. AMT_SystemPowerScheme
 * lists the packages the platform offers, named (ElementName) as GetCurrentPowerPolicy names
 * the current one; SetPowerScheme on an instance makes it current. Done as AMT's admin, after
 * activation; AMTHI's GetCurrentPowerPolicy confirms it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "acm.h"
#include "session.h"
#include "wsman.h"

#define SCHEME_TEXT_MAX 128

struct scheme_choice {
	unsigned offered;             /* instances AMT listed */
	int rank;                     /* of the best one so far (scheme_rank) */
	char instance[SCHEME_TEXT_MAX];
	char name[SCHEME_TEXT_MAX];
};

/*
 * 2: the ME stays on in S5 ("ON in S0, S3, S4-5"); 1: it wakes in S5 on network traffic
 * ("ME Wake in S3, S4-5"), reachable too; 0: off in S5.
 */
static int scheme_rank(const char *name)
{
	if (!prov_power_policy_covers_s5(name))
		return 0;
	return strstr(name, "Wake") ? 1 : 2;
}

static void consider(xmlNodePtr item, void *ctx)
{
	struct scheme_choice *c = ctx;
	char name[SCHEME_TEXT_MAX], instance[SCHEME_TEXT_MAX];
	int rank;

	c->offered++;
	if (wsman_node_text(item, "ElementName", name, sizeof(name)) != 0 ||
	    wsman_node_text(item, "InstanceID", instance, sizeof(instance)) != 0 || !instance[0])
		return;
	rank = scheme_rank(name);
	if (rank > c->rank) {
		c->rank = rank;
		memcpy(c->instance, instance, sizeof(c->instance));
		memcpy(c->name, name, sizeof(c->name));
	}
}

__attribute__((format(printf, 2, 3))) static void power_failed(struct prov_credentials *cred,
								const char *fmt, ...)
{
	va_list ap;

	cred->power_policy = "failed";
	va_start(ap, fmt);
	(void)vsnprintf(cred->power_note, sizeof(cred->power_note), fmt, ap); /* cut if long */
	va_end(ap);
}

/* SetPowerScheme on the chosen instance, then AMTHI's word on what is current now. */
static void set_scheme(struct prov_session *s, struct wsman_client *wc,
		       const struct scheme_choice *choice, struct amt_state *st,
		       struct prov_credentials *cred)
{
	const struct wsman_param sel = {"InstanceID", choice->instance};
	struct prov_error err = {0};
	struct wsman_error we = {0};
	struct mei_dev *dev;
	xmlDocPtr doc = NULL;
	unsigned rv = 0;
	int r;

	r = wsman_invoke_instance(wc, AMT_URI_POWER_SCHEME, &sel, "SetPowerScheme", NULL, 0, &doc,
				  &we);
	if (r == 0 && wsman_return_value(doc, &rv) != 0)
		snprintf(we.msg, sizeof(we.msg), "%s", "the reply has no ReturnValue");
	xmlFreeDoc(doc);
	if (r != 0 || we.msg[0]) {
		power_failed(cred, "SetPowerScheme \"%s\" failed: %s", choice->name, we.msg);
		return;
	}
	if (rv != 0) {
		power_failed(cred, "SetPowerScheme \"%s\": AMT returned %u", choice->name, rv);
		return;
	}
	r = session_amthi(s, &dev, &err);
	if (r == 0)
		r = amthi_get_power_policy(dev, st->power_policy, sizeof(st->power_policy));
	st->power_policy_read = r == 0;
	if (r != 0)
		power_failed(cred, "AMT took \"%s\" but its power policy could not be read back",
			     choice->name);
	else if (!prov_power_policy_covers_s5(st->power_policy))
		power_failed(cred, "AMT took \"%s\" but still reports \"%s\"", choice->name,
			     st->power_policy);
	else
		cred->power_policy = "set";
}

void power_policy_always_on(struct prov_session *s, const struct prov_activate_opts *o,
			    struct amt_state *st, struct prov_credentials *cred)
{
	struct scheme_choice choice = {0};
	struct prov_error err = {0};
	struct wsman_error we = {0};
	struct wsman_client *wc = NULL;
	struct wsman_target t;

	cred->power_note[0] = '\0';
	if (st->power_policy_read && prov_power_policy_covers_s5(st->power_policy)) {
		cred->power_policy = "already";
		return;
	}
	if (activate_target(s, o, &t, &err) != 0 ||
	    activate_client(&t, cred->user, cred->password, &wc, &err) != 0) {
		power_failed(cred, "%s", err.msg);
		return;
	}
	if (wsman_enumerate(wc, AMT_URI_POWER_SCHEME, consider, &choice, &we) != 0)
		power_failed(cred, "listing AMT_SystemPowerScheme failed: %s", we.msg);
	else if (choice.rank == 0)
		power_failed(cred, "none of the %u power packages AMT offers keeps the ME on in S5",
			     choice.offered);
	else
		set_scheme(s, wc, &choice, st, cred);
	wsman_client_free(wc);
}
