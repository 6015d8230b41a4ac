/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amtsim: the firmware emulator's command line.
 *   amtsim --profile FILE [--fault SPEC]... [--stats FILE] --listen PATH
 *   amtsim --profile FILE [--fault SPEC]... [--stats FILE] --run -- CMD [ARGS...]
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
	fputs(
	    "Usage: amtsim --profile FILE [--fault SPEC]... [--stats FILE] --listen PATH\n"
	    "       amtsim --profile FILE [--fault SPEC]... [--stats FILE] --run -- CMD [ARGS...]\n"
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
	bool run;
	unsigned fault_count;
	const char *faults[MAX_FAULTS];
	char *const *command;
};

static int parse_args(int argc, char *argv[], struct args *a)
{
	enum { OPT_PROFILE = 256, OPT_FAULT, OPT_STATS, OPT_LISTEN, OPT_RUN, OPT_HELP };
	static const struct option opts[] = {
	    {"profile", required_argument, NULL, OPT_PROFILE},
	    {"fault", required_argument, NULL, OPT_FAULT},
	    {"stats", required_argument, NULL, OPT_STATS},
	    {"listen", required_argument, NULL, OPT_LISTEN},
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
	if (a.listen)
		r = amtsim_serve_unix(m, a.listen, a.stats);
	else
		r = amtsim_run_umockdev(m, a.command, a.stats);
	amtsim_free(m);
	return r;
}
