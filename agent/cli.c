/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "settings.h"
#include "log.h"

struct command {
	const char *name;
	int (*run)(const struct agent_opts *o);
	const char *summary;
};

static const struct command commands[] = {
	{"info", cmd_info, "show AMT's state: versions, identity, modes, network, certificate hashes"},
	{"activate", cmd_activate,
	 "activate AMT with a password held here (client control mode; admin with --acm)"},
	{"deactivate", cmd_deactivate, "unprovision AMT locally (client control mode only)"},
	{"enlist", cmd_enlist, "activate when needed and hand the power parameters to the server"},
};

enum {
	OPT_SYSFS_ROOT = 256,
	OPT_READY_TIMEOUT,
	OPT_ME_TIMEOUT,
	OPT_JSON,
	OPT_STATE_DIR,
	OPT_PASSWORD_FILE,
	OPT_REPROVISION,
	OPT_SHOW_PASSWORD,
	OPT_AMT_CA,
	OPT_SERVER,
	OPT_CACERT,
	OPT_INSECURE,
	OPT_DEADLINE,
	OPT_BMC_CONFIG,
	OPT_MAAS,
	OPT_NO_AMT_OK,
	OPT_REPORT_UNKNOWN,
	OPT_CONFIG,
	OPT_LMS_PORT,
	OPT_KERNEL_CMDLINE,
	OPT_ACM,
	OPT_PROVISIONING_CERT,
	OPT_PROVISIONING_CERT_PASSWORD_FILE,
	OPT_MEBX_PASSWORD_FILE,
	OPT_DNS_SUFFIX,
	OPT_KEEP_USER_CONSENT,
	OPT_POWER_POLICY,
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
	{{"me-timeout", required_argument, NULL, OPT_ME_TIMEOUT}, "SECONDS",
	 "how long to wait for each reply of the ME (default 10)"},
	{{"lms-port", required_argument, NULL, OPT_LMS_PORT}, "PORT",
	 "LMS's port on 127.0.0.1, used only when LMS holds the ME (default 16992/16993)"},
	{{"sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT}, "DIR",
	 "where to read the ME's sysfs attributes (default /sys)"},
	{{"kernel-cmdline", required_argument, NULL, OPT_KERNEL_CMDLINE}, "FILE",
	 "read the kernel command line from FILE (default /proc/cmdline)"},
	{{"server", required_argument, NULL, OPT_SERVER}, "URL",
	 "POST the power-parameter document (JSON) to URL"},
	{{"cacert", required_argument, NULL, OPT_CACERT}, "FILE",
	 "CA bundle for the server's TLS certificate"},
	{{"insecure", no_argument, NULL, OPT_INSECURE}, NULL,
	 "do not verify the server's TLS certificate"},
	{{"deadline", required_argument, NULL, OPT_DEADLINE}, "SECONDS",
	 "time for the whole hand-off, retries included (default 300)"},
	{{"bmc-config", required_argument, NULL, OPT_BMC_CONFIG}, "PATH",
	 "write MAAS's bmc-config YAML to PATH (default $BMC_CONFIG_PATH)"},
	{{"maas", optional_argument, NULL, OPT_MAAS}, "[=CFG]",
	 "signal MAAS's metadata API, credentials from cloud-init's CFG"},
	{{"no-amt-ok", no_argument, NULL, OPT_NO_AMT_OK}, NULL,
	 "a machine without AMT is a success (exit 0, nothing sent)"},
	{{"report-unknown", no_argument, NULL, OPT_REPORT_UNKNOWN}, NULL,
	 "tell --server when AMT holds a password this machine does not know"},
	{{"state-dir", required_argument, NULL, OPT_STATE_DIR}, "DIR",
	 "where the admin password is kept, per AMT UUID (default /run/amt-enlist)"},
	{{"password-file", required_argument, NULL, OPT_PASSWORD_FILE}, "FILE",
	 "activate with the admin password in FILE instead of a generated one"},
	{{"reprovision", no_argument, NULL, OPT_REPROVISION}, NULL,
	 "reset client control mode whose password is not held here, then activate"},
	{{"show-password", no_argument, NULL, OPT_SHOW_PASSWORD}, NULL,
	 "print the admin (and MEBx) password (hidden otherwise)"},
	{{"acm", no_argument, NULL, OPT_ACM}, NULL,
	 "admin control mode with a provisioning certificate (also from client control mode)"},
	{{"provisioning-cert", required_argument, NULL, OPT_PROVISIONING_CERT}, "FILE",
	 "the provisioning certificate, key and chain (PKCS#12 .pfx) for --acm"},
	{{"provisioning-cert-password-file", required_argument, NULL,
	  OPT_PROVISIONING_CERT_PASSWORD_FILE},
	 "FILE", "its password (else $AMT_ENLIST_PFX_PASSWORD)"},
	{{"mebx-password-file", required_argument, NULL, OPT_MEBX_PASSWORD_FILE}, "FILE",
	 "set this MEBx password with --acm instead of a generated one"},
	{{"dns-suffix", required_argument, NULL, OPT_DNS_SUFFIX}, "SUFFIX",
	 "AMT's DNS suffix, when MEBx holds none: checked against the certificate"},
	{{"keep-user-consent", no_argument, NULL, OPT_KEEP_USER_CONSENT}, NULL,
	 "with --acm, leave user consent required (it is switched off otherwise)"},
	{{"power-policy", required_argument, NULL, OPT_POWER_POLICY}, "POLICY",
	 "always-on: keep the ME on with the host off (S5); keep (default)"},
	{{"amt-ca", required_argument, NULL, OPT_AMT_CA}, "FILE",
	 "CA certificate(s) AMT's TLS certificate must chain to"},
	{{"config", required_argument, NULL, OPT_CONFIG}, "FILE",
	 "settings file (default /etc/amt-enlist.conf; the command line wins)"},
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
		     "Reads Intel AMT's state over the Management Engine and activates it.\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nWith no command: enlist when --server, --maas or --bmc-config is given "
		     "(or $BMC_CONFIG_PATH is set), else info.\n\nOptions:\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *opt = &options[i].opt;
		const char *arg = options[i].arg ? options[i].arg : "";
		const char *sep = opt->has_arg == required_argument ? " " : "";
		char left[64];

		if (opt->val < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opt->val, opt->name, sep, arg);
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opt->name, sep, arg);
		if (strlen(left) > 28)
			fprintf(out, "  %s\n  %-28s %s\n", left, "", options[i].help);
		else
			fprintf(out, "  %-28s %s\n", left, options[i].help);
	}
	fprintf(out, "\nExit codes: 0 ok, 1 unexpected failure, 2 usage error, 3 no AMT, "
		     "4 AMT disabled,\n5 ME not ready or not answering, 6 AMT provisioned with a "
		     "password not held here,\n7 activation failed or refused, 8 server refused, "
		     "9 deadline passed,\n10 no durable place for a new password, 11 AMT has no "
		     "address.\nSee amt-enlist(8).\n");
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

/*
 * One option with its VALUE: getopt's arg, or a settings file's value (NULL for options
 * without one, and for --maas without "=CFG").
 */
static int parse_option(int c, const char *value, struct agent_opts *o, int *verbosity)
{
	const char *arg = value ? value : "";

	switch (c) {
	case 'd':
		o->prov.device = arg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_READY_TIMEOUT:
		return parse_seconds("ready-timeout", arg, &o->prov.ready_ms);
	case OPT_ME_TIMEOUT:
		if (parse_seconds("me-timeout", arg, &o->prov.recv_ms) < 0)
			return -1;
		if (o->prov.recv_ms == 0) {
			log_error("--me-timeout: must be at least 1 second");
			return -1;
		}
		return 0;
	case OPT_LMS_PORT: {
		char *end;
		long v = strtol(arg, &end, 10);

		if (end == arg || *end || v < 1 || v > 65535) {
			log_error("--lms-port: '%s' is not a port number", arg);
			return -1;
		}
		o->prov.lms_port = (uint16_t)v;
		return 0;
	}
	case OPT_SYSFS_ROOT:
		o->prov.sysfs_root = arg;
		return 0;
	case OPT_KERNEL_CMDLINE:
		o->handoff.cmdline_path = arg;
		return 0;
	case OPT_STATE_DIR:
		o->activate.state_dir = arg;
		return 0;
	case OPT_PASSWORD_FILE:
		o->activate.password_file = arg;
		return 0;
	case OPT_REPROVISION:
		o->activate.reprovision = true;
		return 0;
	case OPT_SHOW_PASSWORD:
		o->show_password = true;
		return 0;
	case OPT_AMT_CA:
		o->activate.amt_ca_file = arg;
		return 0;
	case OPT_ACM:
		o->activate.acm = true;
		return 0;
	case OPT_PROVISIONING_CERT:
		o->activate.provisioning_cert = arg;
		return 0;
	case OPT_PROVISIONING_CERT_PASSWORD_FILE:
		o->activate.provisioning_cert_password_file = arg;
		return 0;
	case OPT_MEBX_PASSWORD_FILE:
		o->activate.mebx_password_file = arg;
		return 0;
	case OPT_DNS_SUFFIX:
		if (!*arg || strlen(arg) > 255 || strchr(arg, ' ')) {
			log_error("--dns-suffix: '%s' is not a DNS suffix", arg);
			return -1;
		}
		o->activate.dns_suffix = arg;
		return 0;
	case OPT_KEEP_USER_CONSENT:
		o->activate.keep_user_consent = true;
		return 0;
	case OPT_POWER_POLICY:
		if (strcmp(arg, "always-on") != 0 && strcmp(arg, "keep") != 0) {
			log_error("--power-policy: '%s' is not always-on or keep", arg);
			return -1;
		}
		o->activate.power_always_on = strcmp(arg, "always-on") == 0;
		return 0;
	case OPT_SERVER:
		o->handoff.server_url = arg;
		return 0;
	case OPT_CACERT:
		o->handoff.cacert = arg;
		return 0;
	case OPT_INSECURE:
		o->handoff.insecure = true;
		return 0;
	case OPT_DEADLINE:
		return parse_seconds("deadline", arg, &o->handoff.deadline_ms);
	case OPT_BMC_CONFIG:
		o->handoff.bmc_config_path = arg;
		return 0;
	case OPT_MAAS:
		o->handoff.maas = true;
		if (value)
			o->handoff.maas_config = value;
		return 0;
	case OPT_NO_AMT_OK:
		o->no_amt_ok = true;
		return 0;
	case OPT_REPORT_UNKNOWN:
		o->handoff.report_unknown = true;
		return 0;
	case OPT_CONFIG: /* read before the command line, by read_settings() */
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

/* What a settings file gives: values copied, since options keep pointers to them. */
struct settings_ctx {
	struct agent_opts *o;
	int *verbosity;
	const char *path;
	char *values[64];
	unsigned n_values;
};

static const struct option_help *find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].opt.name, name) == 0)
			return &options[i];
	return NULL;
}

static int apply_setting(void *opaque, const char *key, const char *value, unsigned line)
{
	struct settings_ctx *ctx = opaque;
	const struct option_help *h = find_option(key);
	int on;

	if (!h || h->opt.val == 'h' || h->opt.val == 'V' || h->opt.val == OPT_CONFIG) {
		log_error("%s: line %u: unknown setting '%s'", ctx->path, line, key);
		return -1;
	}
	on = settings_bool(value);
	if (h->opt.has_arg == no_argument || (h->opt.has_arg == optional_argument && on >= 0)) {
		if (on < 0) {
			log_error("%s: line %u: '%s' takes yes or no", ctx->path, line, key);
			return -1;
		}
		return on ? parse_option(h->opt.val, NULL, ctx->o, ctx->verbosity) : 0;
	}
	if (!*value || ctx->n_values == sizeof(ctx->values) / sizeof(ctx->values[0])) {
		log_error("%s: line %u: '%s' needs a value", ctx->path, line, key);
		return -1;
	}
	value = ctx->values[ctx->n_values++] = strdup(value);
	return value ? parse_option(h->opt.val, value, ctx->o, ctx->verbosity) : -1;
}

/* --config FILE or --config=FILE on the command line, before getopt sees it. */
static const char *settings_path(int argc, char **argv, bool *explicit)
{
	*explicit = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		/* --help and --version answer whatever the settings file holds. */
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-V") ||
		    !strcmp(argv[i], "--version"))
			return NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			*explicit = true;
			return argv[i + 1];
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			*explicit = true;
			return argv[i] + 9;
		}
	}
	return SETTINGS_DEFAULT_PATH;
}

static int read_settings(int argc, char **argv, struct settings_ctx *ctx)
{
	bool explicit;
	char text[SETTINGS_MAX_SIZE + 1], why[256] = "";
	size_t len;
	FILE *f;

	ctx->path = settings_path(argc, argv, &explicit);
	if (!ctx->path)
		return 0;
	f = fopen(ctx->path, "re");
	if (!f) {
		if (!explicit && errno == ENOENT)
			return 0;
		log_error("cannot read settings file %s: %s", ctx->path, strerror(errno));
		return -1;
	}
	len = fread(text, 1, sizeof(text), f);
	(void)fclose(f); /* read only: nothing to lose */
	if (settings_parse(text, len, apply_setting, ctx, why, sizeof(why)) < 0) {
		if (why[0])
			log_error("%s: %s", ctx->path, why);
		return -1;
	}
	return 0;
}

static void free_settings(struct settings_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_values; i++)
		free(ctx->values[i]);
}

static int run(int argc, char **argv, struct settings_ctx *settings)
{
	struct option longopts[N_OPTIONS + 1];
	struct agent_opts *o = settings->o;
	const struct command *cmd = &commands[0];
	int c;

	for (size_t i = 0; i < N_OPTIONS; i++)
		longopts[i] = options[i].opt;
	longopts[N_OPTIONS] = (struct option){0};
	opterr = 0;
	optind = 1;
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
		if (parse_option(c, optarg, o, settings->verbosity) < 0)
			return EXIT_USAGE;
	}
	log_set_level(*settings->verbosity < 0    ? LOG_ERROR
		      : *settings->verbosity == 0 ? LOG_INFO
						  : LOG_DEBUG);
	if (!o->handoff.bmc_config_path && getenv("BMC_CONFIG_PATH") &&
	    *getenv("BMC_CONFIG_PATH"))
		o->handoff.bmc_config_path = getenv("BMC_CONFIG_PATH");
	if (o->handoff.server_url || o->handoff.maas || o->handoff.bmc_config_path)
		cmd = find_command("enlist");
	if (o->activate.acm && !o->activate.provisioning_cert) {
		log_error("--acm needs --provisioning-cert FILE.pfx");
		return EXIT_USAGE;
	}
	/* the PKCS#12 password never comes from the command line */
	if (!o->activate.provisioning_cert_password_file)
		o->activate.provisioning_cert_password = secure_getenv("AMT_ENLIST_PFX_PASSWORD");
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
	return cmd->run(o);
}

int agent_main(int argc, char **argv)
{
	struct agent_opts o = {0};
	int verbosity = 0, r;
	struct settings_ctx settings = {.o = &o, .verbosity = &verbosity};

	prov_opts_default(&o.prov);
	prov_activate_opts_default(&o.activate);
	prov_handoff_opts_default(&o.handoff);
	r = read_settings(argc, argv, &settings) < 0 ? EXIT_USAGE : run(argc, argv, &settings);
	free_settings(&settings);
	return r;
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
	case PROV_E_UNKNOWN_CREDENTIALS:
		return EXIT_UNKNOWN_CREDENTIALS;
	case PROV_E_ACTIVATION:
	case PROV_E_REFUSED:
	case PROV_E_UNTRUSTED_ROOT:
		return EXIT_ACTIVATION;
	case PROV_E_NOT_DURABLE:
		return EXIT_NOT_DURABLE;
	case PROV_E_BAD_INPUT:
		return EXIT_USAGE;
	case PROV_E_SERVER_REFUSED:
		return EXIT_SERVER_REFUSED;
	case PROV_E_DEADLINE:
		return EXIT_DEADLINE;
	case PROV_E_NO_ADDRESS:
		return EXIT_NO_ADDRESS;
	default:
		return EXIT_INTERNAL;
	}
}
