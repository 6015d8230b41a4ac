/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent: the amt-enlist program. Command line, logging, exit codes and the subcommands; it
 * calls provision/ and nothing below it.
 */
#pragma once

#include <stdbool.h>

#include "provision.h"

/* The exit-code table of README.md and amt-enlist(8). */
enum exit_code {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,      /* unexpected failure, permission denied, out of memory */
	EXIT_USAGE = 2,         /* bad command line or configuration */
	EXIT_NO_AMT = 3,        /* no MEI device, or no AMT on this machine */
	EXIT_AMT_DISABLED = 4,  /* AMT present but disabled */
	EXIT_ME_UNAVAILABLE = 5, /* the ME did not come up, did not answer, or broke the protocol */
	EXIT_UNKNOWN_CREDENTIALS = 6, /* AMT provisioned with a password we do not hold */
	EXIT_ACTIVATION = 7,    /* activation or deactivation failed or was refused */
	EXIT_SERVER_REFUSED = 8, /* a provisioning server did not accept the hand-off */
	EXIT_DEADLINE = 9,      /* the hand-off did not succeed before --deadline */
	EXIT_NOT_DURABLE = 10,  /* refused to activate: nowhere durable for the password */
	EXIT_NO_ADDRESS = 11,   /* AMT has no IPv4 address to hand off */
};

struct agent_opts {
	struct prov_opts prov;
	struct prov_activate_opts activate;
	struct prov_handoff_opts handoff;
	bool no_amt_ok;
	bool json;
	bool show_password;
};

/* Run amt-enlist with ARGV; returns the process exit code. */
int agent_main(int argc, char **argv);

/* The one place where a provision/ failure becomes an exit code. */
int exit_code_for(int prov_err);

/*
 * Log an activation failure: its one line, and after it what the operator needs to act on it
 * (the certificate hashes AMT trusts, when the provisioning certificate's root is not one).
 */
void report_activation_failure(int prov_err, const struct prov_error *err,
			       const struct amt_state *st);

/* Subcommands. */
int cmd_info(const struct agent_opts *o);
int cmd_activate(const struct agent_opts *o);
int cmd_deactivate(const struct agent_opts *o);
int cmd_enlist(const struct agent_opts *o);

/* What the operator should know once AMT is activated: CCM and user consent, ACM, power policy. */
void advise_after_activation(const struct amt_state *st, const struct prov_credentials *c);

/* --power-policy's outcome: in a JSON result J, and as a line for people (only when asked). */
void power_policy_json(struct json_object *j, const struct amt_state *st,
		       const struct prov_credentials *c);
void print_power_policy(const struct amt_state *st, const struct prov_credentials *c);
