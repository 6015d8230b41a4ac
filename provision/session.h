/* SPDX-License-Identifier: Apache-2.0 */
/* The run's session with the ME (internal to provision/). */
#pragma once

#include "provision.h"

struct prov_session {
	struct prov_opts opts;
	struct mei_dev *amthi;          /* connected once, kept for the run */
	unsigned amthi_connects_before; /* connects of AMTHI handles already dropped */
	struct apf_session *apf;        /* the LME session, made when WS-Man is first needed */
	bool lme_busy;                  /* LMS holds the LME client: WS-Man goes through LMS */
	bool si_tried;                  /* the watchdog client was asked (once per session) */
	bool si_read;                   /* ... and answered with si */
	struct amt_state_independence si;
};

/* session_amthi's "the ME has no AMTHI client" (positive: never a prov_err or an mei_err). */
#define SESSION_NO_AMTHI 1

/*
 * The session's AMTHI connection, connecting on first use. Returns 0, SESSION_NO_AMTHI (the
 * caller decides between "no AMT" and "disabled"), or a negative prov_err with ERR filled.
 */
int session_amthi(struct prov_session *s, struct mei_dev **dev, struct prov_error *err);

/* Forget the AMTHI connection (after AMT was enabled, its client list changes). */
void session_amthi_drop(struct prov_session *s);

/* Ask the watchdog client again next time (after AMT was enabled). */
void session_forget_state_independence(struct prov_session *s);

/*
 * Whether AMT's network interface (802.3) uses TLS, from AMT_TLSSettingData read as CRED's user:
 * what decides MAAS's port, 16993 or 16992.
 */
int session_network_tls(struct prov_session *s, const struct prov_activate_opts *o,
			const struct prov_credentials *cred, bool *enabled, struct prov_error *err);

/*
 * --power-policy always-on, once AMT is activated with CRED: when the current power package
 * turns the ME off in S5, make an always-on one current (AMT_SystemPowerScheme.SetPowerScheme)
 * and re-read the policy into ST. Never fails the activation: the outcome is
 * cred->power_policy ("already", "set" or "failed", with cred->power_note saying why).
 */
void power_policy_always_on(struct prov_session *s, const struct prov_activate_opts *o,
			    struct amt_state *st, struct prov_credentials *cred);

/* CLOCK_MONOTONIC in milliseconds, and a sleep that resumes after signals. */
long prov_now_ms(void);
void prov_sleep_ms(long ms);

void mei_opts_from(const struct prov_opts *o, struct mei_opts *m);
int prov_fail(struct prov_error *err, int code, int mei, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
