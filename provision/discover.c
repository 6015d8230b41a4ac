/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "session.h"

#define WATCHDOG_RECV_MS 2000

void prov_opts_default(struct prov_opts *o)
{
	struct mei_opts m;

	mei_opts_default(&m);
	*o = (struct prov_opts){
		.device = "/dev/mei0",
		.sysfs_root = "/sys",
		.ready_ms = m.ready_ms,
		.recv_ms = m.recv_ms,
	};
}

int prov_fail(struct prov_error *err, int code, int mei, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	err->mei = mei;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap); /* a cut message is still the error */
	va_end(ap);
	return code;
}

static bool is_unix_device(const char *device)
{
	return strncmp(device, "unix:", 5) == 0;
}

static const char *device_name(const char *device)
{
	const char *slash = strrchr(device, '/');

	return slash ? slash + 1 : device;
}

void mei_opts_from(const struct prov_opts *o, struct mei_opts *m)
{
	mei_opts_default(m);
	m->sysfs_root = o->sysfs_root;
	m->ready_ms = o->ready_ms;
	m->recv_ms = o->recv_ms;
}

/* A failure to open the AMTHI client, in words an operator can act on. */
static int open_failure(const struct prov_opts *o, int r, struct prov_error *err)
{
	switch (r) {
	case MEI_E_NO_DEVICE:
		return prov_fail(err, PROV_E_NO_AMT, r,
			    "no MEI device %s: this machine has no Intel ME, or the mei_me driver "
			    "is not loaded (modprobe mei_me)",
			    o->device);
	case MEI_E_ACCESS:
		return prov_fail(err, PROV_E_ACCESS, r, "permission denied opening %s (run as root)",
			    o->device);
	case MEI_E_NOT_READY:
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r,
			    "the ME at %s did not become ready within %d ms", o->device,
			    o->ready_ms);
	case MEI_E_BUSY:
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r,
			    "the AMTHI client of %s stays busy: another program holds it", o->device);
	default:
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "cannot connect to AMTHI on %s: %s",
			    o->device, mei_strerror(r));
	}
}

/*
 * The watchdog client, when it is free: it is optional, so every failure just means "unread".
 * Read once per session (the state changes only when we enable AMT, which forgets it). Older
 * firmware may not answer at all: a short deadline keeps that from costing the run seconds.
 */
static bool read_state_independence(struct prov_session *s, struct amt_state_independence *si)
{
	struct mei_opts m;
	struct mei_dev *dev;

	if (!s->si_tried) {
		s->si_tried = true;
		mei_opts_from(&s->opts, &m);
		m.busy_retries = 0;
		if (m.recv_ms > WATCHDOG_RECV_MS)
			m.recv_ms = WATCHDOG_RECV_MS;
		if (mei_open(s->opts.device, MEI_GUID_WATCHDOG, &m, &dev) == 0) {
			s->si_read = watchdog_get_state(dev, &s->si) == 0;
			mei_close(dev);
		}
	}
	*si = s->si;
	return s->si_read;
}

/* Without an AMTHI client, the watchdog client tells "AMT disabled" from "no AMT". */
static int no_amthi_client(struct prov_session *s, struct amt_state *st, struct prov_error *err)
{
	const struct prov_opts *o = &s->opts;

	st->state_independence_read = read_state_independence(s, &st->si);
	/* Consumer firmware answers "not operational" too; only an allowed transition says AMT. */
	if (st->state_independence_read && st->si.transition_allowed && !st->si.amt_operational)
		return prov_fail(err, PROV_E_AMT_DISABLED, MEI_E_NO_CLIENT,
				 "AMT is disabled on this machine; the ME allows enabling it "
				 "in-band (amt-enlist activate does)");
	return prov_fail(err, PROV_E_NO_AMT, MEI_E_NO_CLIENT,
		    "no AMT on this machine: the ME at %s has no AMTHI client (not a vPro "
		    "machine, or AMT disabled in the BIOS)",
		    o->device);
}

static int command_failure(const char *what, int r, struct prov_error *err)
{
	return prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "AMTHI %s failed: %s", what, mei_strerror(r));
}

/* Optional facts: a firmware status means "not available here", a transport error is fatal. */
static bool optional(int r, bool *read)
{
	*read = r == 0;
	return r >= 0;
}

static void find_host_side(struct prov_adapter *a)
{
	if (a->present)
		host_iface_by_mac(a->lan.mac, a->host_ifname, sizeof(a->host_ifname),
				  a->host_ipv4, sizeof(a->host_ipv4));
}

static int read_amthi(struct mei_dev *dev, struct amt_state *st, struct prov_error *err)
{
	bool read;
	int r;

	if ((r = amthi_get_code_versions(dev, &st->versions)) != 0)
		return command_failure("GetCodeVersions", r, err);
	if ((r = amthi_get_provisioning_state(dev, &st->provisioning_state)) != 0)
		return command_failure("GetProvisioningState", r, err);
	if ((r = amthi_get_control_mode(dev, &st->control_mode)) != 0)
		return command_failure("GetControlMode", r, err);
	if ((r = amthi_get_uuid(dev, st->uuid)) != 0)
		return command_failure("GetUUID", r, err);
	if ((r = amthi_get_lan_settings(dev, 0, &st->wired.lan)) != 0)
		return command_failure("GetLANInterfaceSettings (wired)", r, err);
	st->wired.present = true;
	r = amthi_get_lan_settings(dev, 1, &st->wireless.lan);
	if (!optional(r, &st->wireless.present))
		return command_failure("GetLANInterfaceSettings (wireless)", r, err);
	r = amthi_get_dns_suffix(dev, st->dns_suffix, sizeof(st->dns_suffix));
	if (!optional(r, &read))
		return command_failure("GetDnsSuffix", r, err);
	r = amthi_get_remote_access(dev, &st->remote_access);
	if (!optional(r, &read))
		return command_failure("GetRemoteAccessConnectionStatus", r, err);
	r = amthi_get_power_policy(dev, st->power_policy, sizeof(st->power_policy));
	if (!optional(r, &st->power_policy_read))
		return command_failure("GetCurrentPowerPolicy", r, err);
	r = amthi_get_mac_addresses(dev, &st->macs);
	if (!optional(r, &st->macs_read))
		return command_failure("GetMacAddresses", r, err);
	r = amthi_get_cert_hashes(dev, st->hashes, PROV_MAX_HASHES, &st->hash_count);
	if (!optional(r, &read))
		return command_failure("certificate hashes", r, err);
	return 0;
}

static void derive(struct amt_state *st)
{
	const char *sku = amthi_version_get(&st->versions, "Sku");

	st->amt_version = amthi_version_get(&st->versions, "AMT");
	st->build = amthi_version_get(&st->versions, "Build Number");
	st->sku = sku ? (unsigned)strtoul(sku, NULL, 0) : 0;
	prov_decode_features(st->amt_version, st->sku, st->features, sizeof(st->features));

	st->operational = "yes"; /* the AMTHI client answered */
	st->tls_enforced = "unknown";
	if (st->state_independence_read && st->si.new_interface) {
		st->operational = st->si.amt_operational ? "yes" : "no";
		st->tls_enforced = st->si.tls_enforced ? "yes" : "no";
	}
	find_host_side(&st->wired);
	find_host_side(&st->wireless);
}

struct prov_session *prov_session_new(const struct prov_opts *o)
{
	struct prov_session *s = calloc(1, sizeof(*s));

	if (s)
		s->opts = *o;
	return s;
}

void prov_session_free(struct prov_session *s)
{
	if (!s)
		return;
	if (s->apf)
		apf_close(s->apf);
	if (s->amthi)
		mei_close(s->amthi);
	free(s);
}

unsigned prov_session_amthi_connects(const struct prov_session *s)
{
	return s->amthi_connects_before + (s->amthi ? mei_connect_count(s->amthi) : 0);
}

int session_amthi(struct prov_session *s, struct mei_dev **dev, struct prov_error *err)
{
	struct mei_opts m;
	int r;

	*dev = NULL;
	if (!s->amthi) {
		mei_opts_from(&s->opts, &m);
		r = mei_open(s->opts.device, MEI_GUID_AMTHI, &m, &s->amthi);
		if (r != 0) {
			s->amthi = NULL;
			return r == MEI_E_NO_CLIENT ? SESSION_NO_AMTHI
						    : open_failure(&s->opts, r, err);
		}
	}
	*dev = s->amthi;
	return 0;
}

void session_forget_state_independence(struct prov_session *s)
{
	s->si_tried = false;
	s->si_read = false;
}

void session_amthi_drop(struct prov_session *s)
{
	if (s->amthi) {
		s->amthi_connects_before += mei_connect_count(s->amthi);
		mei_close(s->amthi);
		s->amthi = NULL;
	}
}

int prov_discover(struct prov_session *s, struct amt_state *st, struct prov_error *err)
{
	const struct prov_opts *o = &s->opts;
	struct mei_dev *dev;
	int r;

	memset(st, 0, sizeof(*st));
	memset(err, 0, sizeof(*err));
	if (!is_unix_device(o->device))
		st->sysfs_read =
			mei_sysfs_read(o->sysfs_root, device_name(o->device), &st->sysfs) == 0;

	r = session_amthi(s, &dev, err);
	if (r == SESSION_NO_AMTHI)
		return no_amthi_client(s, st, err);
	if (r != 0)
		return r;
	r = read_amthi(dev, st, err);
	if (r != 0)
		return r;

	st->state_independence_read = read_state_independence(s, &st->si);
	derive(st);
	return 0;
}
