/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "log.h"

struct command {
	const char *name;
	int (*run)(const struct agent_opts *o);
	const char *summary;
};

static const struct command commands[] = {
	{"info", cmd_info, "show AMT's state: versions, identity, modes, network, certificate hashes"},
};

enum {
	OPT_SYSFS_ROOT = 256,
	OPT_READY_TIMEOUT,
	OPT_JSON,
};

struct option_help {
	struct option opt;
	const char *arg;
	const char *help;
};

static const struct option_help options[] = {
	{{"device", required_argument, NULL, 'd'}, "PATH",
	 "MEI device, or unix:PATH for the emulator (default /dev/mei0)"},
	{{"json", no_argument, NULL, OPT_JSON}, NULL, "print for programs (JSON) instead of people"},
	{{"ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT}, "SECONDS",
	 "how long the ME may take to come up (default 20)"},
	{{"sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT}, "DIR",
	 "where to read the ME's sysfs attributes (default /sys)"},
	{{"verbose", no_argument, NULL, 'v'}, NULL, "say more (repeat for debug)"},
	{{"quiet", no_argument, NULL, 'q'}, NULL, "errors only"},
	{{"help", no_argument, NULL, 'h'}, NULL, "show this help"},
	{{"version", no_argument, NULL, 'V'}, NULL, "show the version"},
};

#define N_OPTIONS  (sizeof(options) / sizeof(options[0]))
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_help(FILE *out)
{
	fprintf(out, "Usage: amt-enlist [OPTIONS] [COMMAND] [OPTIONS]\n\n"
		     "Reads Intel AMT's state over the Management Engine.\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nWith no command: info.\n\nOptions:\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char left[64];
		const struct option *opt = &options[i].opt;

		if (opt->val < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opt->val, opt->name,
				 options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opt->name,
				 options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
		fprintf(out, "  %-28s %s\n", left, options[i].help);
	}
	fprintf(out, "\nExit codes: 0 ok, 1 unexpected failure, 2 usage error, 3 no AMT, "
		     "4 AMT disabled,\n5 ME not ready or not answering. See amt-enlist(8).\n");
}

static int parse_seconds(const char *name, const char *text, int *ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 0 || v > INT_MAX / 1000) {
		log_error("--%s: '%s' is not a number of seconds (0 to %d)", name, text,
			  INT_MAX / 1000);
		return -1;
	}
	*ms = (int)(v * 1000);
	return 0;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int parse_option(int c, struct agent_opts *o, int *verbosity)
{
	switch (c) {
	case 'd':
		o->prov.device = optarg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_READY_TIMEOUT:
		return parse_seconds("ready-timeout", optarg, &o->prov.ready_ms);
	case OPT_SYSFS_ROOT:
		o->prov.sysfs_root = optarg;
		return 0;
	case 'v':
		(*verbosity)++;
		return 0;
	case 'q':
		*verbosity = -1;
		return 0;
	default:
		return -1;
	}
}

static void usage_error_for(int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		log_error("option '%s' needs a value (see --help)", arg);
	else
		log_error("unknown option '%s' (see --help)", arg);
}

int agent_main(int argc, char **argv)
{
	struct option longopts[N_OPTIONS + 1];
	struct agent_opts o = {0};
	const struct command *cmd = &commands[0];
	int verbosity = 0, c;

	for (size_t i = 0; i < N_OPTIONS; i++)
		longopts[i] = options[i].opt;
	memset(&longopts[N_OPTIONS], 0, sizeof(longopts[N_OPTIONS]));
	prov_opts_default(&o.prov);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:vqhV", longopts, NULL)) != -1) {
		if (c == 'h') {
			print_help(stdout);
			return EXIT_OK;
		}
		if (c == 'V') {
			printf("amt-enlist %s\n", AMT_ENLIST_VERSION);
			return EXIT_OK;
		}
		if (c == '?' || c == ':') {
			usage_error_for(c, argv);
			return EXIT_USAGE;
		}
		if (parse_option(c, &o, &verbosity) < 0)
			return EXIT_USAGE;
	}
	log_set_level(verbosity < 0 ? LOG_ERROR : verbosity == 0 ? LOG_INFO : LOG_DEBUG);
	if (optind < argc) {
		cmd = find_command(argv[optind]);
		if (!cmd) {
			log_error("unknown command '%s' (see --help)", argv[optind]);
			return EXIT_USAGE;
		}
		if (optind + 1 < argc) {
			log_error("unexpected argument '%s' after '%s'", argv[optind + 1],
				  argv[optind]);
			return EXIT_USAGE;
		}
	}
	return cmd->run(&o);
}

int exit_code_for(int prov_err)
{
	switch (prov_err) {
	case PROV_OK:
		return EXIT_OK;
	case PROV_E_NO_AMT:
		return EXIT_NO_AMT;
	case PROV_E_AMT_DISABLED:
		return EXIT_AMT_DISABLED;
	case PROV_E_ME_UNAVAILABLE:
		return EXIT_ME_UNAVAILABLE;
	default:
		return EXIT_INTERNAL;
	}
}
