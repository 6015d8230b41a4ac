/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Activation by host-based setup, without lockout: a generated password is durable (state
 * directory on persistent storage, or accepted by a write-ahead target) before AMT is set to it,
 * and every failure says in which state AMT was left. Client control mode here; admin control
 * mode's own steps are in acm.c, chosen from here.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "password.h"
#include "session.h"
#include "state.h"
#include "wsman.h"

#define ADMIN_USER            "admin"
#define GENERATED_LENGTH      16
#define MEBX_GENERATED_LENGTH 16
#define DEFAULT_STATE_DIR     "/run/amt-enlist"
#define WSMAN_TIMEOUT_MS      30000
#define POLL_FIRST_MS         50
#define POLL_MAX_MS           1000

void prov_activate_opts_default(struct prov_activate_opts *o)
{
	*o = (struct prov_activate_opts){
		.state_dir = DEFAULT_STATE_DIR,
		.settle_ms = 60000,
		.confirm_ms = 30000,
		.lock_wait_ms = 180000,
	};
}

void prov_credentials_wipe(struct prov_credentials *c)
{
	OPENSSL_cleanse(c->password, sizeof(c->password));
	OPENSSL_cleanse(c->mebx_password, sizeof(c->mebx_password));
}

bool prov_power_policy_covers_s5(const char *policy)
{
	return strstr(policy, "S5") || strstr(policy, "S4-5") || strstr(policy, "S3-5");
}

/* ---- reading AMT's modes ---- */

int activate_read_modes(struct prov_session *s, uint32_t *mode, uint32_t *state,
			struct prov_error *err)
{
	struct mei_dev *dev;
	int r;

	*mode = *state = UINT32_MAX; /* "unknown" in a message when they cannot be read */
	r = session_amthi(s, &dev, err);
	if (r == SESSION_NO_AMTHI)
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, MEI_E_NO_CLIENT,
				 "the AMTHI client went away");
	if (r != 0)
		return r;
	if ((r = amthi_get_control_mode(dev, mode)) != 0 ||
	    (r = amthi_get_provisioning_state(dev, state)) != 0)
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "reading AMT's mode failed: %s",
				 mei_strerror(r));
	return 0;
}

int activate_wait_modes(struct prov_session *s, bool (*done)(uint32_t mode, uint32_t state),
			int bound_ms, uint32_t *mode, uint32_t *state, struct prov_error *err)
{
	long deadline = prov_now_ms() + bound_ms, delay = POLL_FIRST_MS;
	int r;

	for (;;) {
		r = activate_read_modes(s, mode, state, err);
		if (r == 0 && done(*mode, *state))
			return 0;
		if (prov_now_ms() + delay > deadline)
			return r != 0 ? r : PROV_E_ACTIVATION;
		prov_sleep_ms(delay);
		delay = delay * 2 > POLL_MAX_MS ? POLL_MAX_MS : delay * 2;
	}
}

static bool is_ccm_post(uint32_t mode, uint32_t state)
{
	return mode == AMTHI_CONTROL_CCM && state == AMTHI_PROVISIONING_POST;
}

bool activate_is_pre(uint32_t mode, uint32_t state)
{
	return mode == AMTHI_CONTROL_NONE && state == AMTHI_PROVISIONING_PRE;
}

/* ---- WS-Man over the session ---- */

static int session_apf(struct prov_session *s, struct apf_session **apf, struct prov_error *err)
{
	struct mei_opts m;
	int r = MEI_E_BUSY;

	if (!s->apf && !s->lme_busy) {
		mei_opts_from(&s->opts, &m);
		m.busy_retries = 1; /* EBUSY on LME means LMS runs: it will not let go */
		r = apf_open(s->opts.device, &m, &s->apf);
		if (r != 0)
			s->apf = NULL;
		s->lme_busy = r == MEI_E_BUSY;
	}
	if (!s->apf)
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r,
				 "cannot open the APF session over the LME client: %s",
				 mei_strerror(r));
	*apf = s->apf;
	return 0;
}

int activate_wsman_failure(const char *what, const struct wsman_error *we,
			   struct prov_error *err)
{
	return prov_fail(err, PROV_E_ACTIVATION, 0, "%s: %s", what, we->msg);
}

/*
 * LMS holds the LME client (EBUSY): reach AMT through LMS's listener on 127.0.0.1 instead.
 * wsman refuses it unless the listener belongs to root: the Setup digest is password-equivalent.
 * Without APF's forwarded ports, TLS on local ports is known from the watchdog client only.
 */
static void lms_target(const struct prov_session *s, struct wsman_target *t)
{
	t->route = WSMAN_VIA_LMS;
	t->lms_host = "127.0.0.1";
	t->tls = s->si_read && s->si.new_interface && s->si.tls_enforced;
	t->port = s->opts.lms_port ? s->opts.lms_port : t->tls ? APF_PORT_HTTPS : APF_PORT_HTTP;
}

int activate_target(struct prov_session *s, const struct prov_activate_opts *o,
		    struct wsman_target *t, struct prov_error *err)
{
	int r;

	*t = (struct wsman_target){.route = WSMAN_VIA_APF, .timeout_ms = WSMAN_TIMEOUT_MS};
	r = session_apf(s, &t->apf, err);
	if (r != 0 && err->mei != MEI_E_BUSY)
		return r;
	if (r != 0) {
		memset(err, 0, sizeof(*err));
		lms_target(s, t);
	} else {
		t->port = apf_wsman_port(t->apf);
		t->tls = apf_tls_enforced(t->apf);
	}
	t->ca_file = o->amt_ca_file;
	return 0;
}

int activate_client(const struct wsman_target *t, const char *user, const char *pass,
		    struct wsman_client **c, struct prov_error *err)
{
	struct wsman_error we;

	if (wsman_client_new(t, user, pass, c, &we) != 0)
		return activate_wsman_failure("cannot set up WS-Man", &we, err);
	return 0;
}

static int wsman_open(struct prov_session *s, const struct prov_activate_opts *o, const char *user,
		      const char *pass, struct wsman_client **c, bool *tls, struct prov_error *err)
{
	struct wsman_target t;
	int r = activate_target(s, o, &t, err);

	if (r != 0)
		return r;
	*tls = t.tls;
	return activate_client(&t, user, pass, c, err);
}

/* 1: AMT accepts USER/PASS; 0: it refuses them; <0: could not tell (ERR says why). */
static int credentials_work(struct prov_session *s, const struct prov_activate_opts *o,
			    const char *user, const char *pass, struct prov_error *err)
{
	struct wsman_client *c;
	struct wsman_error we;
	xmlDocPtr doc = NULL;
	bool tls;
	int r = wsman_open(s, o, user, pass, &c, &tls, err);

	if (r != 0)
		return r;
	r = wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &we);
	wsman_client_free(c);
	xmlFreeDoc(doc);
	if (r == 0)
		return 1;
	if (r == WSMAN_E_AUTH)
		return 0;
	return activate_wsman_failure("checking the admin password with AMT failed", &we, err);
}

int session_network_tls(struct prov_session *s, const struct prov_activate_opts *o,
			const struct prov_credentials *cred, bool *enabled, struct prov_error *err)
{
	const struct wsman_param sel = {"InstanceID", "Intel(r) AMT 802.3 TLS Settings"};
	struct wsman_client *c;
	struct wsman_error we;
	xmlDocPtr doc = NULL;
	char text[16];
	bool tls;
	int r = wsman_open(s, o, cred->user, cred->password, &c, &tls, err);

	if (r != 0)
		return r;
	r = wsman_get_instance(c, AMT_URI_TLS_SETTING_DATA, &sel, &doc, &we);
	wsman_client_free(c);
	if (r == 0)
		r = wsman_body_text(doc, "Enabled", text, sizeof(text));
	xmlFreeDoc(doc);
	if (r != 0)
		return r == WSMAN_E_PARSE && !we.msg[0]
			       ? prov_fail(err, PROV_E_ACTIVATION, 0,
					   "AMT_TLSSettingData has no Enabled value")
			       : activate_wsman_failure("reading AMT's network TLS setting failed",
							&we, err);
	*enabled = strcmp(text, "true") == 0;
	return 0;
}

static const char *setup_return_name(unsigned rv)
{
	static const char *const names[] = {
		"success",      "internal error", "invalid state", "invalid parameter",
		"method disabled", "authentication failed", "flash write limit reached",
	};

	return rv < sizeof(names) / sizeof(names[0]) ? names[rv] : "unknown error";
}

int activate_invoke(struct wsman_client *c, const char *uri, const char *method,
		    const struct wsman_param *params, size_t n, unsigned *rv,
		    struct wsman_error *we, struct prov_error *err)
{
	xmlDocPtr doc = NULL;
	int r;

	*rv = UINT_MAX;
	r = wsman_invoke(c, uri, method, params, n, &doc, we);

	if (r != 0) {
		char what[96];

		snprintf(what, sizeof(what), "%s failed", method);
		return activate_wsman_failure(what, we, err);
	}
	r = wsman_return_value(doc, rv);
	xmlFreeDoc(doc);
	if (r != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0, "%s: AMT's reply has no ReturnValue",
				 method);
	return 0;
}

static int invoke_checked(struct wsman_client *c, const char *uri, const char *method,
			  const struct wsman_param *params, size_t n, struct prov_error *err)
{
	struct wsman_error we;
	unsigned rv;
	int r = activate_invoke(c, uri, method, params, n, &rv, &we, err);

	if (r != 0)
		return r;
	if (rv != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0, "%s: AMT returned %u (%s)", method, rv,
				 setup_return_name(rv));
	return 0;
}

/*
 * CommitChanges as admin (TLS-enforcing firmware, client control mode). It restarts AMT's network
 * stack, so the reply may be lost with the connection: then the caller's confirmation over AMTHI
 * (control mode and provisioning state "post") decides, not the HTTP reply.
 */
static int commit_changes(struct prov_session *s, const struct prov_activate_opts *o,
			  struct prov_credentials *cred, struct prov_error *err)
{
	struct wsman_client *c;
	struct wsman_error we;
	xmlDocPtr doc = NULL;
	unsigned rv;
	int r = wsman_open(s, o, ADMIN_USER, cred->password, &c, &cred->tls, err);

	if (r != 0)
		return r;
	r = wsman_invoke(c, AMT_URI_SETUP_AND_CONFIG, "CommitChanges", NULL, 0, &doc, &we);
	wsman_client_free(c);
	if (r == WSMAN_E_CONNECT || r == WSMAN_E_TIMEOUT || r == WSMAN_E_HTTP) {
		xmlFreeDoc(doc);
		return 0;
	}
	if (r != 0)
		return activate_wsman_failure("CommitChanges failed", &we, err);
	r = wsman_return_value(doc, &rv);
	xmlFreeDoc(doc);
	if (r != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0,
				 "CommitChanges: AMT's reply has no ReturnValue");
	if (rv != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0, "CommitChanges: AMT returned %u (%s)",
				 rv, setup_return_name(rv));
	return 0;
}

/*
 * Client control mode whose provisioning stopped at "in" (TLS-enforcing firmware whose
 * CommitChanges failed): finish it with the password we hold, and confirm.
 */
static int finish_commit(struct prov_session *s, const struct prov_activate_opts *o,
			 struct amt_state *st, struct prov_credentials *cred,
			 struct prov_error *err)
{
	uint32_t mode, state;
	int r = commit_changes(s, o, cred, err);

	if (r == 0 && activate_wait_modes(s, is_ccm_post, o->confirm_ms, &mode, &state,
					  err) != 0)
		r = prov_fail(err, PROV_E_ACTIVATION, 0,
			      "CommitChanges did not take AMT to provisioning state post within %d "
			      "s; AMT holds the password saved in %s",
			      o->confirm_ms / 1000, o->state_dir);
	if (r == 0) {
		st->control_mode = mode;
		st->provisioning_state = state;
	}
	return r;
}

/* Setup with the local system account; CommitChanges as admin on TLS-enforcing firmware. */
static int host_based_setup(struct prov_session *s, const struct prov_activate_opts *o,
			    struct prov_credentials *cred, struct prov_error *err)
{
	struct amthi_local_account acct;
	struct wsman_client *c = NULL;
	struct wsman_error we;
	struct mei_dev *dev;
	xmlDocPtr doc = NULL;
	char realm[128], digest[33];
	int r = session_amthi(s, &dev, err);

	if (r != 0)
		return r < 0 && err->msg[0] ? r
					    : prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "AMTHI lost");
	r = amthi_get_local_account(dev, &acct);
	if (r != 0)
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "GetLocalSystemAccount failed: %s",
				 mei_strerror(r));
	r = wsman_open(s, o, acct.username, acct.password, &c, &cred->tls, err);
	OPENSSL_cleanse(&acct, sizeof(acct));
	if (r != 0)
		return r;
	r = wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &we);
	if (r == 0)
		r = wsman_body_text(doc, "DigestRealm", realm, sizeof(realm));
	xmlFreeDoc(doc);
	if (r != 0) {
		wsman_client_free(c);
		return r == WSMAN_E_PARSE && !we.msg[0]
			       ? prov_fail(err, PROV_E_ACTIVATION, 0, "AMT_GeneralSettings has no DigestRealm")
			       : activate_wsman_failure("reading AMT's Digest realm failed", &we,
							err);
	}
	if (password_digest_a1(ADMIN_USER, realm, cred->password, digest) != 0) {
		wsman_client_free(c);
		return prov_fail(err, PROV_E_INTERNAL, 0, "MD5 is not available");
	}
	const struct wsman_param setup[] = {
		{"NetAdminPassEncryptionType", "2"},
		{"NetworkAdminPassword", digest},
	};
	r = invoke_checked(c, IPS_URI_HOST_BASED_SETUP, "Setup", setup, 2, err);
	OPENSSL_cleanse(digest, sizeof(digest));
	wsman_client_free(c);
	if (r != 0 || !cred->tls)
		return r;

	return commit_changes(s, o, cred, err);
}

/* ---- the passwords ---- */

/* What the operator gave in files: "" for each one not given. Secrets: wiped when done. */
struct operator_secrets {
	char admin[PASSWORD_MAX + 1];
	char mebx[PASSWORD_MAX + 1];
};

static int read_password_file(const char *path, enum password_kind kind, const char *what,
			      char *out, size_t cap, struct prov_error *err)
{
	char buf[128], why[128];
	int r = password_read_line(path, buf, sizeof(buf));

	if (r != 0)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "cannot read %s %s: %s", what, path,
				 strerror(-r));
	if (!password_check(kind, buf, why, sizeof(why))) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s %s: %s", what, path, why);
	}
	snprintf(out, cap, "%s", buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static int read_operator_secrets(const struct prov_activate_opts *o, struct operator_secrets *ops,
				 struct prov_error *err)
{
	int r = 0;

	if (o->password_file)
		r = read_password_file(o->password_file, PASSWORD_ADMIN, "password file",
				       ops->admin, sizeof(ops->admin), err);
	if (r == 0 && o->acm && o->mebx_password_file)
		r = read_password_file(o->mebx_password_file, PASSWORD_MEBX, "MEBx password file",
				       ops->mebx, sizeof(ops->mebx), err);
	return r;
}

static void set_credentials(struct prov_credentials *c, const char *pw, const char *source)
{
	snprintf(c->user, sizeof(c->user), ADMIN_USER);
	snprintf(c->password, sizeof(c->password), "%s", pw);
	c->source = source;
}

static void set_mebx(struct prov_credentials *c, const char *pw, const char *source)
{
	snprintf(c->mebx_password, sizeof(c->mebx_password), "%s", pw);
	c->mebx_source = source;
}

static int save_record(const struct prov_activate_opts *o, const char *uuid,
		       const struct prov_credentials *c, const char *status, char *why, size_t cap)
{
	struct state_record rec = {0};
	int r;

	snprintf(rec.uuid, sizeof(rec.uuid), "%s", uuid);
	snprintf(rec.user, sizeof(rec.user), "%s", c->user);
	snprintf(rec.password, sizeof(rec.password), "%s", c->password);
	snprintf(rec.mebx_password, sizeof(rec.mebx_password), "%s", c->mebx_password);
	snprintf(rec.status, sizeof(rec.status), "%s", status);
	r = state_dir_prepare(o->state_dir, why, cap);
	if (r == 0)
		r = state_save(o->state_dir, &rec, why, cap);
	state_record_wipe(&rec);
	return r;
}

/* A record's MEBx password goes along with its admin password (it is lost otherwise). */
static void keep_record_mebx(struct prov_credentials *out, const struct state_record *rec)
{
	if (rec->mebx_password[0])
		set_mebx(out, rec->mebx_password, "state directory");
}

/*
 * AMT is provisioned: find the password among those we hold (password file, state directory)
 * and check it with AMT. 0 with OUT filled, or PROV_E_UNKNOWN_CREDENTIALS.
 */
static int adopt_existing(struct prov_session *s, const struct prov_activate_opts *o,
			  const struct amt_state *st, const char *uuid, const char *operator_pw,
			  struct prov_credentials *out, struct prov_error *err)
{
	struct state_record rec;
	char why[256];
	bool have_rec = state_load(o->state_dir, uuid, &rec, why, sizeof(why)) == 0;
	int r = 0;

	if (operator_pw) {
		r = credentials_work(s, o, ADMIN_USER, operator_pw, err);
		if (r == 1) {
			set_credentials(out, operator_pw, "password file");
			if (have_rec)
				keep_record_mebx(out, &rec);
			save_record(o, uuid, out, "activated", why, sizeof(why));
		}
	}
	if (r == 0 && have_rec) {
		r = credentials_work(s, o, rec.user, rec.password, err);
		if (r == 1) {
			set_credentials(out, rec.password, "state directory");
			keep_record_mebx(out, &rec);
			if (strcmp(rec.status, "activated") != 0)
				save_record(o, uuid, out, "activated", why, sizeof(why));
		}
	}
	if (have_rec)
		state_record_wipe(&rec);
	if (r != 0)
		return r < 0 ? r : 0;
	return prov_fail(err, PROV_E_UNKNOWN_CREDENTIALS, 0,
			 "AMT is already in %s control mode with a password this machine does "
			 "not hold%s",
			 prov_control_mode_name(st->control_mode),
			 st->control_mode == AMTHI_CONTROL_CCM
				 ? " (--password-file to give it, --reprovision to reset it locally)"
				 : " (admin control mode is never reset locally)");
}

/* Unprovision client control mode over AMTHI and wait for AMT to settle in pre-provisioning. */
static int unprovision_ccm(struct prov_session *s, const struct prov_activate_opts *o,
			   struct prov_error *err)
{
	struct mei_dev *dev;
	uint32_t mode, state;
	int r = session_amthi(s, &dev, err);

	if (r != 0)
		return r < 0 && err->msg[0] ? r
					    : prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "AMTHI lost");
	r = amthi_unprovision(dev);
	if (r != 0)
		return prov_fail(err, r == AMTHI_STATUS_INVALID_AMT_MODE ? PROV_E_REFUSED
									: PROV_E_ACTIVATION,
				 r, "AMT refused to unprovision: %s", mei_strerror(r));
	if (activate_wait_modes(s, activate_is_pre, o->settle_ms, &mode, &state, err) != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0,
				 "AMT did not settle in pre-provisioning within %d s after "
				 "unprovisioning (control mode %s, provisioning state %s)",
				 o->settle_ms / 1000, prov_control_mode_name(mode),
				 prov_provisioning_state_name(state));
	return 0;
}

/*
 * The secrets in OUT must outlive a reboot before AMT is set to them: the state directory on
 * persistent storage, or a write-ahead target that accepted them, or the operator's own files.
 */
static int make_durable(const struct prov_activate_opts *o, const struct amt_state *st,
			const char *uuid, const char *status, bool admin_supplied, bool mebx_supplied,
			struct prov_credentials *out, struct prov_error *err)
{
	char why[256];
	int r = save_record(o, uuid, out, status, why, sizeof(why));
	bool kept = r == 0 && state_dir_is_persistent(o->state_dir);
	const char *where = r == 0 ? "is erased by a reboot (tmpfs)" : "cannot be written";

	/* MAAS's power parameters have no place for a MEBx password: only --server carries it. */
	if (out->mebx_password[0] && !mebx_supplied && !kept &&
	    !(o->write_ahead && o->write_ahead_keeps_mebx))
		return prov_fail(err, PROV_E_NOT_DURABLE, 0,
				 "refusing to activate: the new MEBx password would live only in %s, "
				 "which %s, and MAAS's power parameters have no place for it; name "
				 "--server (its document carries it), a --state-dir on persistent "
				 "storage, or a --mebx-password-file",
				 o->state_dir, where);
	if (o->write_ahead) {
		r = o->write_ahead(o->write_ahead_ctx, st, out, err);
		if (r != 0)
			return r;
		kept = true;
	}
	if (!kept && !admin_supplied)
		return prov_fail(err, PROV_E_NOT_DURABLE, 0,
				 "refusing to activate: the new password%s would live only in %s, "
				 "which %s; name a hand-off target (--server, --maas), a --state-dir "
				 "on persistent storage, or a --password-file%s",
				 o->acm ? "s" : "", o->state_dir, where,
				 o->acm ? " and a --mebx-password-file" : "");
	return 0;
}

/* A new MEBx password: the operator's, a pending one from the record, or a generated one. */
static int choose_mebx(const struct operator_secrets *ops, const struct state_record *rec,
		       struct prov_credentials *out, struct prov_error *err)
{
	char pw[PASSWORD_MAX + 1];

	if (ops->mebx[0]) {
		set_mebx(out, ops->mebx, "MEBx password file");
		return 0;
	}
	if (rec && rec->mebx_password[0]) {
		set_mebx(out, rec->mebx_password, "state directory");
		return 0;
	}
	if (password_generate(PASSWORD_MEBX, MEBX_GENERATED_LENGTH, pw) != 0)
		return prov_fail(err, PROV_E_INTERNAL, 0,
				 "the random source failed: no MEBx password generated");
	set_mebx(out, pw, "generated");
	OPENSSL_cleanse(pw, sizeof(pw));
	return 0;
}

/* Choose the passwords for a pre-provisioned AMT and make them durable before anything else. */
static int choose_password(const struct prov_activate_opts *o, const struct amt_state *st,
			   const char *uuid, const struct operator_secrets *ops,
			   struct prov_credentials *out, struct prov_error *err)
{
	struct state_record rec;
	char pw[PASSWORD_MAX + 1], why[256];
	bool have_rec = state_load(o->state_dir, uuid, &rec, why, sizeof(why)) == 0;
	int r = 0;

	if (ops->admin[0]) {
		set_credentials(out, ops->admin, "password file");
	} else if (have_rec) {
		/* a run that stopped before AMT took its password: reuse it */
		set_credentials(out, rec.password, "state directory");
	} else if (password_generate(PASSWORD_ADMIN, GENERATED_LENGTH, pw) != 0) {
		r = prov_fail(err, PROV_E_INTERNAL, 0,
			      "the random source failed: no password generated");
	} else {
		set_credentials(out, pw, "generated");
		OPENSSL_cleanse(pw, sizeof(pw));
	}
	if (r == 0 && o->acm)
		r = choose_mebx(ops, have_rec ? &rec : NULL, out, err);
	if (have_rec)
		state_record_wipe(&rec);
	if (r != 0)
		return r;
	return make_durable(o, st, uuid, "pending", ops->admin[0] != '\0', ops->mebx[0] != '\0',
			    out, err);
}

/*
 * After a failure: say whether AMT was left untouched, taken back to pre-provisioning
 * (UNDONE_BY names how), or left activated with the saved password.
 */
static int explain_failure(struct prov_session *s, const struct prov_activate_opts *o,
			   const char *uuid, const char *undone_by, int r, struct prov_error *err)
{
	struct prov_error probe = {0};
	uint32_t mode = 0, state = 0;
	char msg[sizeof(err->msg)];
	size_t len = strlen(err->msg);

	if (len > sizeof(err->msg) - 80)
		len = sizeof(err->msg) - 80;
	memcpy(msg, err->msg, len);
	msg[len] = '\0';
	if (activate_read_modes(s, &mode, &state, &probe) != 0)
		snprintf(err->msg, sizeof(err->msg), "%s; AMT's state is unknown, the password is "
			 "saved in %s/%s.json", msg, o->state_dir, uuid);
	else if (activate_is_pre(mode, state) && undone_by)
		snprintf(err->msg, sizeof(err->msg), "%s; %s took AMT back to pre-provisioning",
			 msg, undone_by);
	else if (activate_is_pre(mode, state))
		snprintf(err->msg, sizeof(err->msg), "%s; AMT is left untouched", msg);
	else if (mode == AMTHI_CONTROL_NONE)
		snprintf(err->msg, sizeof(err->msg), "%s; AMT is left in provisioning state %s, "
			 "the password saved in %s/%s.json", msg,
			 prov_provisioning_state_name(state), o->state_dir, uuid);
	else
		snprintf(err->msg, sizeof(err->msg), "%s; AMT is in %s control mode with the "
			 "password saved in %s/%s.json", msg, prov_control_mode_name(mode),
			 o->state_dir, uuid);
	return r;
}

static int activate_pre(struct prov_session *s, const struct prov_activate_opts *o,
			struct amt_state *st, const char *uuid, const struct operator_secrets *ops,
			struct prov_credentials *out, struct prov_error *err)
{
	uint32_t mode, state;
	char why[256];
	int r = choose_password(o, st, uuid, ops, out, err);

	if (r != 0)
		return r;
	r = host_based_setup(s, o, out, err);
	if (r == 0 && activate_wait_modes(s, is_ccm_post, o->confirm_ms, &mode, &state, err) != 0)
		r = prov_fail(err, PROV_E_ACTIVATION, 0,
			      "AMT accepted Setup but did not reach client control mode and "
			      "provisioning state post within %d s (now %s, %s)",
			      o->confirm_ms / 1000, prov_control_mode_name(mode),
			      prov_provisioning_state_name(state));
	if (r != 0)
		return explain_failure(s, o, uuid, NULL, r, err);
	out->activated_now = true;
	st->control_mode = mode;
	st->provisioning_state = state;
	save_record(o, uuid, out, "activated", why, sizeof(why));
	return 0;
}

/* ---- admin control mode (acm.c does the talking) ---- */

/* The certificate against this AMT, before any change. */
static int acm_precheck(const struct acm_cert *cert, const struct prov_activate_opts *o,
			const struct amt_state *st, struct prov_credentials *out,
			struct prov_error *err)
{
	return acm_check(cert, st, o->dns_suffix, &out->domain_unchecked, err);
}

static void acm_done(struct prov_session *s, const struct prov_activate_opts *o,
		     struct amt_state *st, struct prov_credentials *out)
{
	st->control_mode = AMTHI_CONTROL_ACM;
	st->provisioning_state = AMTHI_PROVISIONING_POST;
	acm_user_consent(s, o, out);
}

static int activate_pre_acm(struct prov_session *s, const struct prov_activate_opts *o,
			    const struct acm_cert *cert, struct amt_state *st, const char *uuid,
			    const struct operator_secrets *ops, struct prov_credentials *out,
			    struct prov_error *err)
{
	char why[256];
	bool rolled_back;
	int r = acm_precheck(cert, o, st, out, err);

	if (r == 0)
		r = choose_password(o, st, uuid, ops, out, err);
	if (r != 0)
		return r;
	r = acm_setup(s, o, cert, out, &rolled_back, err);
	if (r != 0)
		return explain_failure(s, o, uuid,
				       rolled_back ? out->tls ? "StopConfiguration" : "Unprovision"
						   : NULL,
				       r, err);
	out->activated_now = true;
	save_record(o, uuid, out, "activated", why, sizeof(why));
	acm_done(s, o, st, out);
	return 0;
}

/* Client to admin control mode: a MEBx password made durable first, then the upgrade. */
static int upgrade_to_acm(struct prov_session *s, const struct prov_activate_opts *o,
			  const struct acm_cert *cert, struct amt_state *st, const char *uuid,
			  const struct operator_secrets *ops, struct prov_credentials *out,
			  struct prov_error *err)
{
	int r = acm_precheck(cert, o, st, out, err);

	if (r == 0 && (ops->mebx[0] || !out->mebx_password[0]))
		r = choose_mebx(ops, NULL, out, err);
	if (r == 0)
		r = make_durable(o, st, uuid, "activated", true, ops->mebx[0] != '\0', out, err);
	if (r != 0)
		return r;
	r = acm_upgrade(s, o, cert, out, err);
	if (r != 0)
		return explain_failure(s, o, uuid, NULL, r, err);
	out->upgraded_now = true;
	acm_done(s, o, st, out);
	return 0;
}

static bool has_address(const struct amt_state *st)
{
	return !st->wired.lan.dhcp_enabled || st->wired.lan.ipv4 != 0;
}

/*
 * AMT disabled, but the ME allows the transition (ME 16.1+): enable it over the watchdog
 * client, then wait (bounded) for the AMTHI client to appear and for AMT's DHCP address.
 */
static int enable_amt(struct prov_session *s, const struct prov_activate_opts *o,
		      struct amt_state *st, struct prov_error *err)
{
	struct mei_opts m;
	struct mei_dev *dev;
	long deadline;
	int r;

	mei_opts_from(&s->opts, &m);
	r = mei_open(s->opts.device, MEI_GUID_WATCHDOG, &m, &dev);
	if (r != 0)
		return prov_fail(err, PROV_E_AMT_DISABLED, r,
				 "AMT is disabled and the ME's watchdog client cannot be reached to "
				 "enable it: %s",
				 mei_strerror(r));
	r = watchdog_set_operational(dev, true);
	mei_close(dev);
	if (r != 0)
		return prov_fail(err, PROV_E_AMT_DISABLED, r, "the ME refused to enable AMT: %s",
				 mei_strerror(r));
	session_amthi_drop(s);
	session_forget_state_independence(s);
	deadline = prov_now_ms() + o->settle_ms;
	for (long delay = POLL_FIRST_MS;; delay = delay * 2 > POLL_MAX_MS ? POLL_MAX_MS : delay * 2) {
		r = prov_discover(s, st, err);
		if (r == 0 && has_address(st))
			return 0;
		if (r != 0 && r != PROV_E_AMT_DISABLED && r != PROV_E_NO_AMT)
			return r;
		if (prov_now_ms() + delay > deadline)
			break;
		prov_sleep_ms(delay);
		if (r != 0)
			session_forget_state_independence(s);
	}
	if (r != 0)
		return prov_fail(err, PROV_E_AMT_DISABLED, 0,
				 "AMT was enabled but its AMTHI client did not appear within %d s",
				 o->settle_ms / 1000);
	return 0; /* enabled, no DHCP lease yet: activation does not need one */
}

/*
 * One activation at a time per state directory: a second run waits for the first, then finds
 * AMT activated with the saved password. A directory that cannot be made or locked does not
 * stop the run (make_durable decides whether a password can be kept there).
 */
static int lock_state_dir(const struct prov_activate_opts *o, int *fd, struct prov_error *err)
{
	char why[256];

	*fd = -1;
	if (state_dir_prepare(o->state_dir, why, sizeof(why)) != 0 ||
	    state_lock(o->state_dir, o->lock_wait_ms, fd, why, sizeof(why)) != 1)
		return 0;
	return prov_fail(err, PROV_E_REFUSED, 0,
			 "another amt-enlist is working on this machine: %s/%s stayed locked for "
			 "%d s; AMT is left untouched by this run",
			 o->state_dir, STATE_LOCK_NAME, o->lock_wait_ms / 1000);
}

int prov_activate(struct prov_session *s, const struct prov_activate_opts *o, struct amt_state *st,
		  struct prov_credentials *out, struct prov_error *err)
{
	struct operator_secrets ops = {0};
	struct acm_cert *cert = NULL;
	char uuid[37];
	int lock = -1;
	int r;

	memset(out, 0, sizeof(*out));
	r = lock_state_dir(o, &lock, err);
	if (r == 0)
		r = read_operator_secrets(o, &ops, err);
	if (r == 0 && o->acm)
		r = acm_cert_load(o, &cert, err);
	if (r == 0)
		r = prov_discover(s, st, err);
	if (r == PROV_E_AMT_DISABLED)
		r = enable_amt(s, o, st, err);
	if (r != 0)
		goto done;
	amthi_uuid_format(st->uuid, uuid);

	if (st->control_mode != AMTHI_CONTROL_NONE ||
	    st->provisioning_state == AMTHI_PROVISIONING_POST) {
		r = adopt_existing(s, o, st, uuid, ops.admin[0] ? ops.admin : NULL, out, err);
		if (r == 0 && st->control_mode == AMTHI_CONTROL_CCM &&
		    st->provisioning_state == AMTHI_PROVISIONING_IN)
			r = finish_commit(s, o, st, out, err);
		if (r == 0 && cert && st->control_mode == AMTHI_CONTROL_CCM)
			r = upgrade_to_acm(s, o, cert, st, uuid, &ops, out, err);
		else if (r == 0 && cert && st->control_mode == AMTHI_CONTROL_ACM)
			acm_user_consent(s, o, out);
		if (r != PROV_E_UNKNOWN_CREDENTIALS || !o->reprovision ||
		    st->control_mode != AMTHI_CONTROL_CCM)
			goto done;
		r = unprovision_ccm(s, o, err);
		if (r != 0)
			goto done;
	} else if (st->provisioning_state == AMTHI_PROVISIONING_IN) {
		uint32_t mode, state;

		if (activate_wait_modes(s, activate_is_pre, o->settle_ms, &mode, &state, err) !=
		    0) {
			r = prov_fail(err, PROV_E_ACTIVATION, 0,
				      "AMT stays in provisioning state 'in' (another tool is "
				      "provisioning it?)");
			goto done;
		}
	}
	if (cert)
		r = activate_pre_acm(s, o, cert, st, uuid, &ops, out, err);
	else
		r = activate_pre(s, o, st, uuid, &ops, out, err);
done:
	if (r == 0 && o->power_always_on)
		power_policy_always_on(s, o, st, out);
	acm_cert_free(cert);
	OPENSSL_cleanse(&ops, sizeof(ops));
	state_unlock(lock);
	if (r != 0)
		prov_credentials_wipe(out);
	return r;
}

int prov_deactivate(struct prov_session *s, const struct prov_activate_opts *o,
		    struct amt_state *st, struct prov_error *err)
{
	char uuid[37], why[256];
	int lock, r = lock_state_dir(o, &lock, err);

	if (r == 0)
		r = prov_discover(s, st, err);
	if (r == 0 && st->control_mode == AMTHI_CONTROL_ACM)
		r = prov_fail(err, PROV_E_REFUSED, 0,
			      "AMT is in admin control mode: amt-enlist unprovisions only client "
			      "control mode locally; use a management console with AMT's admin "
			      "password");
	amthi_uuid_format(st->uuid, uuid);
	if (r == 0 && st->control_mode == AMTHI_CONTROL_CCM)
		r = unprovision_ccm(s, o, err);
	if (r == 0 && state_remove(o->state_dir, uuid, why, sizeof(why)) != 0)
		r = prov_fail(err, PROV_E_INTERNAL, 0, "%s", why);
	if (r == 0)
		r = prov_discover(s, st, err);
	state_unlock(lock);
	return r;
}
