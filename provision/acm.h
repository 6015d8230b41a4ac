/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin control mode (internal to provision/): the provisioning certificate (PKCS#12, OpenSSL)
 * and the ways AMT is taken to admin control mode with it:
 *   - AdminSetup: AddNextCertInChain (leaf first), a 20-byte McNonce, and an RSA PKCS#1 v1.5
 *     SHA-256 signature over ConfigurationNonce||McNonce, on firmware without TLS locally;
 *   - StartConfigurationHBased, mutual TLS to 16993 (AMT's certificate pinned), then
 *     SetAdminAclEntryEx, SetMEBxPassword and CommitChanges, on firmware that enforces TLS on
 *     its local ports; StopConfiguration on any failure, so AMT is not left in provisioning;
 *   - UpgradeClientToAdmin from client control mode with the admin password we hold.
 * activate.c decides when; the helpers it shares with this file are declared at the end.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "provision.h"
#include "session.h"
#include "wsman.h"

struct acm_cert;

/*
 * Read o->provisioning_cert with its password (o->provisioning_cert_password_file, else
 * o->provisioning_cert_password, else none): the RSA key, the leaf that belongs to it, and the
 * chain ordered leaf to self-signed root. The leaf must carry serverAuth and AMT's provisioning
 * usage (OID 2.16.840.1.113741.1.2.3 or OU "Intel(R) Client Setup Certificate"). 0, or
 * PROV_E_BAD_INPUT with ERR naming the file and what is wrong (never the password).
 */
int acm_cert_load(const struct prov_activate_opts *o, struct acm_cert **out,
                  struct prov_error *err);
void acm_cert_free(struct acm_cert *c);

/*
 * Before anything changes: the root must be among AMT's active certificate hashes (SHA-256,
 * SHA-384 or SHA-512 of its DER), PROV_E_UNTRUSTED_ROOT otherwise; the leaf's domain (its CN)
 * must fall under AMT's DNS suffix, the PKI DNS suffix from MEBx (ST) or else the one the
 * operator gives (DNS_SUFFIX), PROV_E_REFUSED otherwise. Neither known: AMT decides (with the
 * suffix DHCP gave it) and *DOMAIN_UNCHECKED says so.
 */
int acm_check(const struct acm_cert *c, const struct amt_state *st, const char *dns_suffix,
              bool *domain_unchecked, struct prov_error *err);

/*
 * Pre-provisioning to admin control mode with CRED's admin and MEBx passwords (already durable).
 * Confirmed over AMTHI (control mode admin, provisioning state post). On failure *ROLLED_BACK
 * tells whether this function took AMT back to pre-provisioning (StopConfiguration, or
 * Unprovision when AMT was already in admin control mode).
 */
int acm_setup(struct prov_session *s, const struct prov_activate_opts *o, const struct acm_cert *c,
              struct prov_credentials *cred, bool *rolled_back, struct prov_error *err);

/* Client to admin control mode (UpgradeClientToAdmin), then the MEBx password. */
int acm_upgrade(struct prov_session *s, const struct prov_activate_opts *o,
                const struct acm_cert *c, struct prov_credentials *cred, struct prov_error *err);

/*
 * In admin control mode: switch user consent off (IPS_OptInService, OptInRequired 0) unless
 * o->keep_user_consent, and say in CRED what it is now. Never fails the activation: a refusal
 * is noted in cred->consent_note.
 */
void acm_user_consent(struct prov_session *s, const struct prov_activate_opts *o,
                      struct prov_credentials *cred);

/* ---- activate.c's helpers, shared with this file ---- */

/* Where WS-Man reaches AMT in this session: APF (or LMS when it holds the LME client). */
int activate_target(struct prov_session *s, const struct prov_activate_opts *o,
                    struct wsman_target *t, struct prov_error *err);
/* A WS-Man client on T for USER/PASS; ERR names what failed. */
int activate_client(const struct wsman_target *t, const char *user, const char *pass,
                    struct wsman_client **c, struct prov_error *err);
/* Invoke METHOD and read its ReturnValue into *RV (transport and parse failures fill ERR). */
int activate_invoke(struct wsman_client *c, const char *uri, const char *method,
                    const struct wsman_param *params, size_t n, unsigned *rv,
                    struct wsman_error *we, struct prov_error *err);
int activate_wsman_failure(const char *what, const struct wsman_error *we, struct prov_error *err);
int activate_read_modes(struct prov_session *s, uint32_t *mode, uint32_t *state,
                        struct prov_error *err);
/* Poll the modes until DONE says so or BOUND_MS passes. */
int activate_wait_modes(struct prov_session *s, bool (*done)(uint32_t mode, uint32_t state),
                        int bound_ms, uint32_t *mode, uint32_t *state, struct prov_error *err);
bool activate_is_pre(uint32_t mode, uint32_t state);
