/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The enlistment flow: discover, activate when needed (write-ahead: the generated password
 * leaves the machine before AMT is set to it), wait for AMT's address, hand the final document
 * to every requested target.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"
#include "host.h"
#include "session.h"

#define PORT_HTTP  "16992"
#define PORT_HTTPS "16993"

void prov_handoff_opts_default(struct prov_handoff_opts *o)
{
	*o = (struct prov_handoff_opts){
		.maas_config = "/etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg",
		.cmdline_path = "/proc/cmdline",
		.deadline_ms = 300000,
		.address_wait_ms = 30000,
	};
}

void prov_enlist_result_wipe(struct prov_enlist_result *r)
{
	prov_credentials_wipe(&r->cred);
}

struct enlist_ctx {
	struct prov_session *s;
	const struct prov_handoff_opts *ho;
	struct prov_enlist_result *res;
	struct host_facts host;
	struct post_opts post;
	struct maas_creds maas;
};

/*
 * AMT's own wired IPv4, polled (bounded) until it is not 0.0.0.0; only then the host's IPv4 on
 * the interface with AMT's MAC. Never the wireless address.
 */
static int resolve_address(struct enlist_ctx *ctx, struct amt_state *st, struct prov_error *err)
{
	struct prov_enlist_result *res = ctx->res;
	long deadline = prov_now_ms() + ctx->ho->address_wait_ms, delay = 100;
	struct mei_dev *dev;
	char ifname[32], ip[16];
	int r;

	while (st->wired.lan.ipv4 == 0 && prov_now_ms() + delay <= deadline) {
		prov_sleep_ms(delay);
		delay = delay * 2 > 1000 ? 1000 : delay * 2;
		r = session_amthi(ctx->s, &dev, err);
		if (r == 0)
			r = amthi_get_lan_settings(dev, 0, &st->wired.lan);
		if (r != 0)
			return r < 0 && err->msg[0]
				       ? r
				       : prov_fail(err, PROV_E_ME_UNAVAILABLE, r,
						   "reading AMT's address failed: %s", mei_strerror(r));
	}
	if (st->wired.lan.ipv4 != 0) {
		amthi_ipv4_format(st->wired.lan.ipv4, ip);
		snprintf(res->power_address, sizeof(res->power_address), "%s", ip);
		res->address_source = "amt";
		return 0;
	}
	if (host_iface_by_mac(st->wired.lan.mac, ifname, sizeof(ifname), ip, sizeof(ip)) == 0 &&
	    ip[0]) {
		snprintf(res->power_address, sizeof(res->power_address), "%s", ip);
		res->address_source = "host";
		return 0;
	}
	return prov_fail(err, PROV_E_NO_ADDRESS, 0,
			 "AMT reports no IPv4 address on its wired interface after %d s, and no "
			 "host interface with its MAC has one",
			 ctx->ho->address_wait_ms / 1000);
}

static void params_from(const struct enlist_ctx *ctx, const struct prov_credentials *c,
			struct power_params *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->power_address, sizeof(p->power_address), "%s", ctx->res->power_address);
	snprintf(p->power_user, sizeof(p->power_user), "%s", c->user[0] ? c->user : "admin");
	snprintf(p->power_pass, sizeof(p->power_pass), "%s", c->password);
	snprintf(p->port, sizeof(p->port), "%s", ctx->res->port);
}

static void note(struct prov_target_result *t, int code, const char *msg)
{
	t->code = code;
	snprintf(t->msg, sizeof(t->msg), "%s", msg);
}

/* MEBX: the MEBx password for the document (admin control mode), or NULL. */
static int send_document(struct enlist_ctx *ctx, const struct amt_state *st,
			 const struct power_params *p, const char *state, bool unknown,
			 const char *mebx, struct prov_error *err)
{
	struct json_object *doc;

	/*
	 * A host that shows no Ethernet interface (its driver not in the ramdisk) still has the
	 * NIC AMT shares: AMT's own MAC names the machine to the server.
	 */
	if (ctx->host.mac_count == 0 && st->wired.present) {
		amthi_mac_format(st->wired.lan.mac, ctx->host.macs[0]);
		ctx->host.mac_count = 1;
	}
	doc =
		prov_document(st, &ctx->host, p, ctx->res->address_source, state, unknown,
			      mebx);
	struct post_result pr = {0};
	const char *body;
	int r;

	if (!doc)
		return prov_fail(err, PROV_E_INTERNAL, 0, "out of memory");
	body = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE);
	r = post_json(ctx->ho->server_url, body, &ctx->post, &pr, err);
	OPENSSL_cleanse((void *)body, strlen(body));
	json_object_put(doc);
	return r;
}

static int signal_maas(struct enlist_ctx *ctx, const struct power_params *p,
		       struct prov_error *err)
{
	struct post_result pr = {0};

	return maas_signal(&ctx->maas, "WORKING", p, &ctx->post, &pr, err);
}

/*
 * The write-ahead hook: every requested network target must accept the password (and the MEBx
 * password, to --server only) first. AMT's network interface has no TLS configured by us yet:
 * port 16992.
 */
static int write_ahead(void *opaque, const struct amt_state *st,
		       const struct prov_credentials *cred, struct prov_error *err)
{
	struct enlist_ctx *ctx = opaque;
	struct amt_state *mst = (struct amt_state *)st;
	struct power_params p;
	int r = resolve_address(ctx, mst, err);

	if (r != 0)
		return r;
	snprintf(ctx->res->port, sizeof(ctx->res->port), PORT_HTTP);
	params_from(ctx, cred, &p);
	if (ctx->ho->server_url) {
		r = send_document(ctx, st, &p, "pending", false, cred->mebx_password, err);
		if (r != 0) {
			note(&ctx->res->target[PROV_TARGET_SERVER], r, err->msg);
			goto out;
		}
	}
	if (ctx->ho->maas) {
		r = signal_maas(ctx, &p, err);
		if (r != 0)
			note(&ctx->res->target[PROV_TARGET_MAAS], r, err->msg);
	}
out:
	OPENSSL_cleanse(&p, sizeof(p));
	return r;
}

/*
 * MAAS's credentials: cloud-init's datasource file; where there is none (a ramdisk without
 * cloud-init), the cloud-config that cloud-config-url= on the kernel command line names.
 */
static int load_maas_creds(struct enlist_ctx *ctx, struct prov_error *err)
{
	char cmdline[4096], url[1024];
	size_t n = 0;
	FILE *f;

	if (access(ctx->ho->maas_config, F_OK) == 0)
		return maas_creds_from_file(ctx->ho->maas_config, &ctx->maas, err);
	f = fopen(ctx->ho->cmdline_path, "re");
	if (f) {
		n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
		(void)fclose(f); /* read-only: nothing to lose */
	}
	cmdline[n] = '\0';
	if (!cmdline_cloud_config_url(cmdline, url, sizeof(url)))
		return maas_creds_from_file(ctx->ho->maas_config, &ctx->maas, err);
	return maas_creds_fetch(url, &ctx->post, &ctx->maas, err);
}

/* Hand the final parameters to every requested target; the first failure's code. */
static int hand_off(struct enlist_ctx *ctx, const struct amt_state *st, struct prov_error *err)
{
	struct prov_enlist_result *res = ctx->res;
	struct prov_error e;
	struct power_params p;
	int first = 0, r;

	params_from(ctx, &res->cred, &p);
	if (ctx->ho->server_url) {
		memset(&e, 0, sizeof(e));
		r = send_document(ctx, st, &p, "final", false,
				  st->control_mode == AMTHI_CONTROL_ACM ? res->cred.mebx_password
									: NULL,
				  &e);
		note(&res->target[PROV_TARGET_SERVER], r, r ? e.msg : "document accepted");
		if (r && !first) {
			first = r;
			*err = e;
		}
	}
	if (ctx->ho->maas) {
		memset(&e, 0, sizeof(e));
		r = signal_maas(ctx, &p, &e);
		note(&res->target[PROV_TARGET_MAAS], r, r ? e.msg : "signal accepted");
		if (r && !first) {
			first = r;
			*err = e;
		}
	}
	if (ctx->ho->bmc_config_path) {
		memset(&e, 0, sizeof(e));
		r = bmc_config_write(ctx->ho->bmc_config_path, &p, &e);
		note(&res->target[PROV_TARGET_BMC_CONFIG], r < 0 ? r : 0,
		     r < 0 ? e.msg : r == 1 ? "file exists already: left alone" : "written");
		if (r < 0 && !first) {
			first = r;
			*err = e;
		}
	}
	OPENSSL_cleanse(&p, sizeof(p));
	return first;
}

/* AMT holds a password we do not: only --report-unknown sends anything, and never to MAAS. */
static int report_unknown(struct enlist_ctx *ctx, const struct amt_state *st)
{
	struct power_params p = {0};
	struct prov_error e = {0};
	struct amt_state *mst = (struct amt_state *)st;
	int r;

	if (!ctx->ho->report_unknown || !ctx->ho->server_url)
		return 0;
	if (resolve_address(ctx, mst, &e) != 0)
		return 0;
	snprintf(ctx->res->port, sizeof(ctx->res->port), PORT_HTTP);
	params_from(ctx, &ctx->res->cred, &p);
	r = send_document(ctx, st, &p, NULL, true, NULL, &e);
	note(&ctx->res->target[PROV_TARGET_SERVER], r,
	     r ? e.msg : "reported credentials unknown");
	return r;
}

int prov_enlist(struct prov_session *s, const struct prov_activate_opts *ao,
		const struct prov_handoff_opts *ho, struct amt_state *st,
		struct prov_enlist_result *res, struct prov_error *err)
{
	struct enlist_ctx ctx = {.s = s, .ho = ho, .res = res};
	struct prov_activate_opts a = *ao;
	int r;

	memset(res, 0, sizeof(*res));
	res->target[PROV_TARGET_SERVER].requested = ho->server_url != NULL;
	res->target[PROV_TARGET_MAAS].requested = ho->maas;
	res->target[PROV_TARGET_BMC_CONFIG].requested = ho->bmc_config_path != NULL;
	post_opts_default(&ctx.post);
	ctx.post.cacert = ho->cacert;
	ctx.post.insecure = ho->insecure;
	ctx.post.deadline_ms = prov_now_ms() + ho->deadline_ms;
	host_facts_read(ho->cmdline_path, &ctx.host);
	if (ho->maas && (r = load_maas_creds(&ctx, err)) != 0)
		return r;
	if (ho->server_url || ho->maas) {
		a.write_ahead = write_ahead;
		a.write_ahead_ctx = &ctx;
		a.write_ahead_keeps_mebx = ho->server_url != NULL; /* a MAAS signal cannot */
	}

	r = prov_activate(s, &a, st, &res->cred, err);
	if (r == PROV_E_UNKNOWN_CREDENTIALS)
		report_unknown(&ctx, st);
	if (r == 0 && !res->address_source)
		r = resolve_address(&ctx, st, err);
	if (r == 0 && res->cred.activated_now) {
		/* Just provisioned: TLS on AMT's network interface is not configured yet. */
		snprintf(res->port, sizeof(res->port), PORT_HTTP);
	} else if (r == 0) {
		bool tls = false;

		r = session_network_tls(s, ao, &res->cred, &tls, err);
		if (r == 0)
			snprintf(res->port, sizeof(res->port), "%s", tls ? PORT_HTTPS : PORT_HTTP);
		else
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
				 "; AMT holds the password saved in %s: a rerun hands it off",
				 ao->state_dir);
	}
	if (r == 0)
		r = hand_off(&ctx, st, err);
	maas_creds_wipe(&ctx.maas);
	return r;
}
