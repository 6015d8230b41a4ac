/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amtsim: the firmware emulator's command line.
 *   amtsim --profile FILE [OPTIONS] --listen PATH
 *   amtsim --profile FILE [OPTIONS] --run -- CMD [ARGS...]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amtsim.h"

#define EXIT_USAGE 2
#define MAX_FAULTS 64

static void usage(FILE *to)
{
	(void)fputs(
	    "Usage: amtsim --profile FILE [OPTIONS] --listen PATH\n"
	    "       amtsim --profile FILE [OPTIONS] --run -- CMD [ARGS...]\n"
	    "\n"
	    "Plays the Intel ME firmware of the machine described by a profile\n"
	    "(tests/amtsim/profiles/*.json).\n"
	    "\n"
	    "  --profile FILE  the machine profile (JSON)\n"
	    "  --fault SPEC    switch a fault on; repeatable. SPEC is one of\n"
	    "                  busy=N         the first N AMTHI connects answer EBUSY\n"
	    "                  not-ready=N    the first N AMTHI requests answer NOT_READY\n"
	    "                  latency=MS     each message takes MS milliseconds\n"
	    "                  ready-after=MS the ME comes up MS milliseconds after start\n"
	    "                  reset@N        firmware reset on the N-th AMTHI request\n"
	    "                  no-reply@N     no reply to the N-th AMTHI request\n"
	    "                  truncate@N     reply N is cut short\n"
	    "                  oversize@N     reply N carries 16 bytes beyond its length\n"
	    "                  huge@N         reply N is longer than max_msg_length\n"
	    "                  wrong-echo@N   reply N names another command\n"
	    "                  channel-refused[=REASON]  every APF CHANNEL_OPEN fails\n"
	    "                  session-ends-after-close  the APF session ends with a channel\n"
	    "                  lme-disconnect@N  DISCONNECT instead of answering the N-th\n"
	    "                                 authenticated WS-Man request\n"
	    "                  reset-before-setup  firmware reset when Setup arrives\n"
	    "                  reset-during-setup  Setup applied, then a reset before the reply\n"
	    "                  setup-return=N Setup answers ReturnValue N, changes nothing\n"
	    "                  soap-fault=METHOD  METHOD (Setup, Get, ...) answers a SOAP fault\n"
	    "                  wrong-realm    the 401 challenge names another realm while AMT is\n"
	    "                                 unprovisioned\n"
	    "                  wsman-latency=MS  every WS-Man reply waits MS milliseconds\n"
	    "                  settle=MS      Unprovision leaves \"in\" after MS milliseconds\n"
	    "                  commit-restart=after|before|none  what CommitChanges does to\n"
	    "                                 the LME sessions (network stack restart)\n"
	    "                  dns-suffix=SUFFIX  the PKI DNS suffix set in MEBx\n"
	    "                  dhcp-domain=DOMAIN the domain DHCP gave AMT (a provisioning\n"
	    "                                 certificate's domain is checked against it\n"
	    "                                 when there is no PKI DNS suffix)\n"
	    "                  stale-nonce    the ConfigurationNonce changes once before\n"
	    "                                 AdminSetup/UpgradeClientToAdmin checks it\n"
	    "                  method-return=METHOD:N  METHOD answers ReturnValue N and\n"
	    "                                 changes nothing\n"
	    "  --tls-cert FILE AMT's TLS certificate (PEM), for machines enforcing TLS locally\n"
	    "  --tls-key FILE  its private key (PEM)\n"
	    "  --trust-ca PEM  trust this provisioning root CA: its SHA-256 becomes an active\n"
	    "                  certificate hash, and TLS asks for client certificates\n"
	    "  --state FILE    keep the machine's provisioning state in FILE across runs\n"
	    "  --lms PORT      also serve WS-Man on 127.0.0.1:PORT, as LMS would\n"
	    "  --stats FILE    write the counters (JSON) after every connection and at exit\n"
	    "  --listen PATH   serve a SOCK_SEQPACKET socket (the agent's unix:PATH device)\n"
	    "                  until SIGTERM or SIGINT\n"
	    "  --run -- CMD    run CMD with /dev/mei0 and its sysfs emulated by umockdev\n"
	    "  --help          show this help\n",
	    to);
}

static int usage_error(const char *msg, const char *arg)
{
	if (arg)
		fprintf(stderr, "amtsim: %s: %s (see amtsim --help)\n", msg, arg);
	else
		fprintf(stderr, "amtsim: %s (see amtsim --help)\n", msg);
	return EXIT_USAGE;
}

struct args {
	const char *profile;
	const char *stats;
	const char *listen;
	const char *tls_cert;
	const char *tls_key;
	const char *state;
	const char *trust_ca;
	unsigned lms_port;
	bool run;
	unsigned fault_count;
	const char *faults[MAX_FAULTS];
	char *const *command;
};

static int parse_args(int argc, char *argv[], struct args *a)
{
	enum {
		OPT_PROFILE = 256,
		OPT_FAULT,
		OPT_STATS,
		OPT_LISTEN,
		OPT_RUN,
		OPT_HELP,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_STATE,
		OPT_LMS,
		OPT_TRUST_CA,
	};
	static const struct option opts[] = {
	    {"profile", required_argument, NULL, OPT_PROFILE},
	    {"fault", required_argument, NULL, OPT_FAULT},
	    {"stats", required_argument, NULL, OPT_STATS},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"state", required_argument, NULL, OPT_STATE},
	    {"trust-ca", required_argument, NULL, OPT_TRUST_CA},
	    {"lms", required_argument, NULL, OPT_LMS},
	    {"run", no_argument, NULL, OPT_RUN},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	opterr = 0;
	/* "+": stop at the first non-option, so CMD's own options are left alone. */
	while ((opt = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_PROFILE:
			a->profile = optarg;
			break;
		case OPT_FAULT:
			if (a->fault_count == MAX_FAULTS)
				return usage_error("too many --fault options", NULL);
			a->faults[a->fault_count++] = optarg;
			break;
		case OPT_STATS:
			a->stats = optarg;
			break;
		case OPT_LISTEN:
			a->listen = optarg;
			break;
		case OPT_RUN:
			a->run = true;
			break;
		case OPT_TLS_CERT:
			a->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			a->tls_key = optarg;
			break;
		case OPT_STATE:
			a->state = optarg;
			break;
		case OPT_TRUST_CA:
			a->trust_ca = optarg;
			break;
		case OPT_LMS: {
			char *end;
			unsigned long port = strtoul(optarg, &end, 10);

			if (*optarg < '0' || *optarg > '9' || *end || port == 0 || port > 65535)
				return usage_error("--lms needs a port number (1-65535)", optarg);
			a->lms_port = (unsigned)port;
			break;
		}
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case ':':
			return usage_error("option needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (!a->profile)
		return usage_error("--profile is required", NULL);
	if (!a->tls_cert != !a->tls_key)
		return usage_error("give --tls-cert and --tls-key together", NULL);
	if (!!a->listen == a->run)
		return usage_error("give exactly one of --listen PATH and --run -- CMD", NULL);
	if (a->listen && optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (a->run) {
		if (optind == argc)
			return usage_error("--run needs a command after --", NULL);
		if (strcmp(argv[optind - 1], "--") != 0)
			return usage_error("put -- between --run and the command", argv[optind]);
		a->command = &argv[optind];
	}
	return 0;
}

/* TLS material, the state file and the LMS stand-in. 0, or an exit code. */
static int setup_machine(struct amtsim *m, const struct args *a)
{
	char err[512];

	if (a->tls_cert && amtsim_set_tls(m, a->tls_cert, a->tls_key, err, sizeof(err)) < 0) {
		fprintf(stderr, "amtsim: %s\n", err);
		return 1;
	}
	if (a->trust_ca && amtsim_trust_ca(m, a->trust_ca, err, sizeof(err)) < 0) {
		fprintf(stderr, "amtsim: --trust-ca %s\n", err);
		return 1;
	}
	if (a->state && amtsim_set_state_file(m, a->state, err, sizeof(err)) < 0) {
		fprintf(stderr, "amtsim: %s\n", err);
		return 1;
	}
	if (amtsim_check_tls(m, err, sizeof(err)) < 0) {
		/* AMTHI still works (info); APF channels to 16993 will be refused. */
		if (a->lms_port) {
			fprintf(stderr, "amtsim: %s: %s\n", a->profile, err);
			return 1;
		}
		fprintf(stderr, "amtsim: warning: %s: %s; APF channels to it will be refused\n",
			a->profile, err);
	}
	if (a->lms_port &&
	    amtsim_serve_lms(m, (uint16_t)a->lms_port, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "amtsim: 127.0.0.1:%u: %s\n", a->lms_port, err);
		return 1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	struct args a = {0};
	struct amtsim *m;
	char err[512];
	int r = parse_args(argc, argv, &a);

	if (r != 0)
		return r;
	m = amtsim_new(a.profile, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "amtsim: %s\n", err);
		return 1;
	}
	for (unsigned i = 0; i < a.fault_count; i++) {
		if (amtsim_fault(m, a.faults[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "amtsim: %s\n", err);
			amtsim_free(m);
			return EXIT_USAGE;
		}
	}
	r = setup_machine(m, &a);
	if (r != 0) {
		amtsim_free(m);
		return r;
	}
	if (a.listen)
		r = amtsim_serve_unix(m, a.listen, a.stats);
	else
		r = amtsim_run_umockdev(m, a.command, a.stats);
	amtsim_free(m);
	return r;
}
