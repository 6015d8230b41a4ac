/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Machine profiles: JSON data files (tests/amtsim/profiles/NAME.json), read with json-c. Every
 * object has a fixed set of keys; an unknown key or a bad value is refused with one line that
 * names the file and the key ("amt16-ccm.json: key 'amt.wired.ipv4': not an IPv4 address").
 *
 * The format (optional keys in brackets):
 *   description          what machine this is, in words
 *   clients.{amthi,lme,watchdog}   each present client: max_msg_length, protocol_version,
 *                        [busy] (every connect EBUSY); watchdog also state (the
 *                        IsChangeToAMTEnabled byte, a number or "0xC2"); lme also
 *                        [session_ends_after_close] (false: the APF session ends once a channel
 *                        is closed, as rpc-go saw) and [version_first] (false: the firmware
 *                        sends PROTOCOL_VERSION before the host does)
 *   sysfs                fw_ver ["0:16.1.25.2124", ...] (1-3), fw_status ["94000245", ...] (1-6),
 *                        hbm_ver "2.2", [kind] ("mei")
 *   [amt]                required with an AMTHI or LME client:
 *     [operational]      false: AMT disabled, its clients answer ENOTTY (default true)
 *     bios_version, code_versions [{description, version}], provisioning_state pre|in|post,
 *     control_mode none|ccm|acm, [provisioning_mode] (1), [legacy_mode] (false), uuid (text form),
 *     mac_addresses {dedicated, host}, wired and [wireless] (absent or null: no adapter)
 *     {enabled, ipv4, dhcp, dhcp_mode none|active|passive, link up|down, mac,
 *     [lease_ipv4] (with DHCP and ipv4 0.0.0.0: the address AMT's DHCP lease gives it once
 *     AMT is operational), [lease_after_ms] (how long that takes, 0)},
 *     [no_wireless_status] (the status for index 1 without a wireless adapter: 36
 *     INVALID_PARAMETER by default; 0 answers SUCCESS with zeros), [dns_suffix],
 *     remote_access {network_status, remote_status, trigger, mps_hostname}, power_policy,
 *     [power_schemes]    the power packages AMT_SystemPowerScheme offers, by name (at most 8);
 *                        default: the Desktop or Mobile set (by power_policy's first word);
 *                        power_policy is added when it is not among them
 *     cert_hashes [{[handle] (default: the index), name, algorithm 0-3, hash (hex), default,
 *     active}], local_system_account {username, password, [trailing_pad] 0|2},
 *     [network_tls]      TLS on AMT's network interface (AMT_TLSSettingData for 802.3),
 *                        what decides MAAS's port 16993; default false
 *     [tls_enforced]     TLS on local ports (WS-Man on 16993 only); default: the watchdog
 *                        state's bit 6, when its bit 7 says the bits mean something
 *     [digest_realm]     AMT_GeneralSettings.DigestRealm; default "Digest:" and the UUID's
 *                        32 hex digits in upper case
 *     [admin_password]   the admin password of a provisioned machine (tests that hold it)
 *     [settle_ms]        how long "in" lasts after Unprovision (1500)
 *     [unprovision_reply] "status" (the status alone, default) or "state" (and a u32)
 *     [commit_restart]   "after" (default with TLS enforced), "before" or "none" (default
 *                        otherwise): what CommitChanges does to AMT's network stack
 *     [tls_cert], [tls_key]  PEM files of AMT's TLS certificate and key (relative paths are
 *                        taken from the profile's directory); amtsim --tls-cert/--tls-key win
 *     [dhcp_domain]      the domain DHCP (option 15) gave AMT: with no PKI DNS suffix
 *                        (dns_suffix), what a provisioning certificate's domain must fall under
 *   [faults]             fault words as amtsim_fault takes them, e.g. ["ready-after=2000"]
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mei.h"
#include "sim.h"

struct ctx {
	const char *file;
	const char *dir; /* the profile's directory with its '/', for relative paths */
	size_t dir_len;
	char *err;
	size_t errlen;
};

/* A key's dotted path, e.g. "amt.cert_hashes[2].hash". */
struct path {
	char s[128];
};

/* Paths are short; one that does not fit is cut, which only shortens an error message. */
static struct path path_join(const struct path *parent, const char *key)
{
	struct path p;
	int n;

	if (parent && parent->s[0])
		n = snprintf(p.s, sizeof(p.s), "%s.%s", parent->s, key);
	else
		n = snprintf(p.s, sizeof(p.s), "%s", key);
	if (n < 0)
		p.s[0] = '\0';
	return p;
}

static struct path path_index(const struct path *parent, size_t i)
{
	struct path p;

	if (snprintf(p.s, sizeof(p.s), "%s[%zu]", parent->s, i) < 0)
		p.s[0] = '\0';
	return p;
}

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *x, const struct path *at,
						      const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap); /* a long message is cut */
	va_end(ap);
	snprintf(x->err, x->errlen, "%s: key '%s': %s", x->file, at->s, why);
	return -1;
}

/*
 * S as N decimal numbers separated by exactly SEPS[0], SEPS[1], ... and nothing after:
 * "0:16.1.25.2124" with ":...". OUT gets them; false when S is anything else.
 */
static bool parse_numbers(const char *s, const char *seps, unsigned *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned long v;
		char *end;

		if (*s < '0' || *s > '9')
			return false;
		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno || v > UINT_MAX || (i + 1 < n ? *end != seps[i] : *end != '\0'))
			return false;
		out[i] = (unsigned)v;
		s = end + 1;
	}
	return true;
}

/* Refuse keys of OBJ not in ALLOWED (NULL-terminated). */
static int check_keys(struct ctx *x, const struct path *at, json_object *obj,
		      const char *const *allowed)
{
	json_object_object_foreach(obj, key, val)
	{
		bool known = false;

		(void)val;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				known = true;
		if (!known) {
			struct path p = path_join(at, key);

			return fail(x, &p, "unknown key");
		}
	}
	return 0;
}

/* The member KEY of OBJ: 0 with *out (NULL when absent and optional), or -1. */
static int member(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		  bool required, json_type type, json_object **out)
{
	struct path p = path_join(at, key);
	json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL) {
		if (required)
			return fail(x, &p, "missing");
		return 0;
	}
	if (!json_object_is_type(v, type))
		return fail(x, &p, "must be %s", json_type_to_name(type));
	*out = v;
	return 0;
}

static int get_string(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		      bool required, char *out, size_t cap)
{
	struct path p = path_join(at, key);
	json_object *v;
	const char *s;
	size_t n;

	if (member(x, at, obj, key, required, json_type_string, &v) < 0)
		return -1;
	if (!v)
		return 0;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= cap)
		return fail(x, &p, "longer than %zu characters", cap - 1);
	if (memchr(s, '\0', n))
		return fail(x, &p, "contains a NUL character");
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static int get_bool(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		    bool required, bool *out)
{
	json_object *v;

	if (member(x, at, obj, key, required, json_type_boolean, &v) < 0)
		return -1;
	if (v)
		*out = json_object_get_boolean(v);
	return 0;
}

static int parse_uint_text(const char *s, unsigned long long *out)
{
	char *end;
	int base = 10;

	if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0) {
		s += 2;
		base = 16;
	}
	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, base);
	return errno || *end ? -1 : 0;
}

/* An unsigned number in [lo, hi]: a JSON integer, or a string "0x.." for bit fields. */
static int get_uint(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		    bool required, unsigned long long lo, unsigned long long hi, uint32_t *out)
{
	struct path p = path_join(at, key);
	unsigned long long v;
	json_object *j = NULL;

	if (!json_object_object_get_ex(obj, key, &j) || j == NULL) {
		if (required)
			return fail(x, &p, "missing");
		return 0;
	}
	if (json_object_is_type(j, json_type_int)) {
		int64_t i = json_object_get_int64(j);

		if (i < 0)
			return fail(x, &p, "must be between %llu and %llu", lo, hi);
		v = (unsigned long long)i;
	} else if (json_object_is_type(j, json_type_string)) {
		if (parse_uint_text(json_object_get_string(j), &v) < 0)
			return fail(x, &p, "not a number");
	} else {
		return fail(x, &p, "must be a number");
	}
	if (v < lo || v > hi)
		return fail(x, &p, "must be between %llu and %llu", lo, hi);
	*out = (uint32_t)v;
	return 0;
}

static int get_u8(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		  bool required, uint8_t *out)
{
	uint32_t v = *out;

	if (get_uint(x, at, obj, key, required, 0, 255, &v) < 0)
		return -1;
	*out = (uint8_t)v;
	return 0;
}

/* A string that must be one of NAMES (NULL-terminated); its index into *out. */
static int get_choice(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		      bool required, const char *const *names, uint32_t *out)
{
	struct path p = path_join(at, key);
	char s[32] = "";
	char list[160] = "";

	if (get_string(x, at, obj, key, required, s, sizeof(s)) < 0)
		return -1;
	if (!s[0] && !required)
		return 0;
	for (uint32_t i = 0; names[i]; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = i;
			return 0;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
			 names[i]);
	}
	return fail(x, &p, "must be one of %s", list);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits with optional ':' separators into OUT; the byte count in *n. */
static int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	*n = 0;
	while (*s) {
		int hi, lo;

		if (*s == ':') {
			s++;
			continue;
		}
		hi = hex_digit(s[0]);
		lo = hi < 0 ? -1 : hex_digit(s[1]);
		if (lo < 0 || *n == cap)
			return -1;
		out[(*n)++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return 0;
}

static int get_mac(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		   uint8_t mac[6])
{
	struct path p = path_join(at, key);
	char s[32] = "";
	size_t n;

	if (get_string(x, at, obj, key, true, s, sizeof(s)) < 0)
		return -1;
	if (strlen(s) != 17 || parse_hex(s, mac, 6, &n) < 0 || n != 6)
		return fail(x, &p, "not a MAC address (aa:bb:cc:dd:ee:ff)");
	return 0;
}

static int get_ipv4(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		    uint32_t *out)
{
	struct path p = path_join(at, key);
	unsigned v[4];
	char s[32] = "";

	if (get_string(x, at, obj, key, true, s, sizeof(s)) < 0)
		return -1;
	if (!parse_numbers(s, "...", v, 4) || v[0] > 255 || v[1] > 255 || v[2] > 255 || v[3] > 255)
		return fail(x, &p, "not an IPv4 address");
	*out = v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3];
	return 0;
}

/* Text form (PROTOCOL.md: bytes 3,2,1,0-5,4-7,6-8,9-10..15) to wire order. */
static int get_uuid(struct ctx *x, const struct path *at, json_object *obj, const char *key,
		    uint8_t uuid[16])
{
	static const int wire_at[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	struct path p = path_join(at, key);
	uint8_t text[16];
	char s[40] = "";
	size_t n = 0;

	if (get_string(x, at, obj, key, true, s, sizeof(s)) < 0)
		return -1;
	if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
		return fail(x, &p, "not a UUID (8-4-4-4-12 hex digits)");
	for (size_t i = 0; i < 36; i++) {
		int hi, lo;

		if (s[i] == '-')
			continue;
		hi = hex_digit(s[i]);
		lo = hi < 0 ? -1 : hex_digit(s[i + 1]);
		if (lo < 0 || n == 16)
			return fail(x, &p, "not a UUID (8-4-4-4-12 hex digits)");
		text[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	for (size_t i = 0; i < 16; i++)
		uuid[wire_at[i]] = text[i];
	return 0;
}

/* ---- sections ---- */

static int load_client(struct ctx *x, const struct path *at, json_object *clients, const char *name,
		       struct sim_profile *pr, enum amtsim_client id)
{
	static const char *const keys[] = {"max_msg_length", "protocol_version", "busy", NULL};
	static const char *const wd_keys[] = {"max_msg_length", "protocol_version", "busy", "state",
					      NULL};
	static const char *const lme_keys[] = {"max_msg_length", "protocol_version", "busy",
					       "session_ends_after_close", "version_first", NULL};
	struct sim_client_cfg *cfg = &pr->client[id];
	struct path p = path_join(at, name);
	const char *const *allowed = id == AMTSIM_CLIENT_WATCHDOG ? wd_keys
				     : id == AMTSIM_CLIENT_LME    ? lme_keys
								  : keys;
	json_object *o;

	if (member(x, at, clients, name, false, json_type_object, &o) < 0)
		return -1;
	if (!o)
		return 0;
	if (id == AMTSIM_CLIENT_LME &&
	    (get_bool(x, &p, o, "session_ends_after_close", false,
		      &pr->lme_session_ends_after_close) < 0 ||
	     get_bool(x, &p, o, "version_first", false, &pr->lme_version_first) < 0))
		return -1;
	if (check_keys(x, &p, o, allowed) < 0 ||
	    get_uint(x, &p, o, "max_msg_length", true, 1, 1u << 20, &cfg->max_msg_length) < 0 ||
	    get_u8(x, &p, o, "protocol_version", true, &cfg->protocol_version) < 0 ||
	    get_bool(x, &p, o, "busy", false, &cfg->busy) < 0)
		return -1;
	if (id == AMTSIM_CLIENT_WATCHDOG &&
	    get_u8(x, &p, o, "state", true, &pr->watchdog_state) < 0)
		return -1;
	cfg->present = true;
	return 0;
}

static int load_clients(struct ctx *x, json_object *root, struct sim_profile *pr)
{
	static const char *const keys[] = {"amthi", "lme", "watchdog", NULL};
	struct path p = path_join(NULL, "clients");
	json_object *o;

	if (member(x, NULL, root, "clients", true, json_type_object, &o) < 0 ||
	    check_keys(x, &p, o, keys) < 0 ||
	    load_client(x, &p, o, "amthi", pr, AMTSIM_CLIENT_AMTHI) < 0 ||
	    load_client(x, &p, o, "lme", pr, AMTSIM_CLIENT_LME) < 0 ||
	    load_client(x, &p, o, "watchdog", pr, AMTSIM_CLIENT_WATCHDOG) < 0)
		return -1;
	return 0;
}

static int load_fw_ver(struct ctx *x, const struct path *at, json_object *sysfs,
		       struct sim_profile *pr)
{
	struct path p = path_join(at, "fw_ver");
	json_object *a;
	size_t n;

	if (member(x, at, sysfs, "fw_ver", true, json_type_array, &a) < 0)
		return -1;
	n = json_object_array_length(a);
	if (n < 1 || n > SIM_MAX_FW_VER)
		return fail(x, &p, "must list 1 to %u versions", SIM_MAX_FW_VER);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		struct path pi = path_index(&p, i);
		unsigned *v = pr->fw_ver[i];

		if (!json_object_is_type(e, json_type_string) ||
		    !parse_numbers(json_object_get_string(e), ":...", v, 5) ||
		    v[0] > 255 || v[1] > 65535 || v[2] > 65535 || v[3] > 65535 || v[4] > 65535)
			return fail(x, &pi, "not a version \"PLATFORM:MAJOR.MINOR.HOTFIX.BUILD\"");
	}
	pr->fw_ver_count = (unsigned)n;
	return 0;
}

static int load_fw_status(struct ctx *x, const struct path *at, json_object *sysfs,
			  struct sim_profile *pr)
{
	struct path p = path_join(at, "fw_status");
	json_object *a;
	size_t n;

	if (member(x, at, sysfs, "fw_status", true, json_type_array, &a) < 0)
		return -1;
	n = json_object_array_length(a);
	if (n < 1 || n > SIM_MAX_FW_STATUS)
		return fail(x, &p, "must list 1 to %u registers", SIM_MAX_FW_STATUS);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		struct path pi = path_index(&p, i);
		uint8_t b[4];
		size_t got;

		if (!json_object_is_type(e, json_type_string) ||
		    json_object_get_string_len(e) != 8 ||
		    parse_hex(json_object_get_string(e), b, sizeof(b), &got) < 0 || got != 4)
			return fail(x, &pi, "not a register (8 hex digits)");
		pr->fw_status[i] =
		    (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	}
	pr->fw_status_count = (unsigned)n;
	return 0;
}

static int load_sysfs(struct ctx *x, json_object *root, struct sim_profile *pr)
{
	static const char *const keys[] = {"fw_ver", "fw_status", "hbm_ver", "kind", NULL};
	struct path p = path_join(NULL, "sysfs");
	struct path ph = path_join(&p, "hbm_ver");
	char hbm[16] = "";
	unsigned hbm_v[2];
	json_object *o;

	snprintf(pr->kind, sizeof(pr->kind), "mei");
	if (member(x, NULL, root, "sysfs", true, json_type_object, &o) < 0 ||
	    check_keys(x, &p, o, keys) < 0 || load_fw_ver(x, &p, o, pr) < 0 ||
	    load_fw_status(x, &p, o, pr) < 0 ||
	    get_string(x, &p, o, "hbm_ver", true, hbm, sizeof(hbm)) < 0 ||
	    get_string(x, &p, o, "kind", false, pr->kind, sizeof(pr->kind)) < 0)
		return -1;
	if (!parse_numbers(hbm, ".", hbm_v, 2) || hbm_v[0] > 255 || hbm_v[1] > 255)
		return fail(x, &ph, "not a version \"MAJOR.MINOR\"");
	pr->hbm_major = hbm_v[0];
	pr->hbm_minor = hbm_v[1];
	return 0;
}

static int load_versions(struct ctx *x, const struct path *at, json_object *amt,
			 struct sim_profile *pr)
{
	static const char *const keys[] = {"description", "version", NULL};
	struct path p = path_join(at, "code_versions");
	json_object *a;
	size_t n;

	if (member(x, at, amt, "code_versions", true, json_type_array, &a) < 0)
		return -1;
	n = json_object_array_length(a);
	if (n > SIM_MAX_VERSIONS)
		return fail(x, &p, "more than %u entries", SIM_MAX_VERSIONS);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		struct path pi = path_index(&p, i);

		if (!json_object_is_type(e, json_type_object))
			return fail(x, &pi, "must be an object");
		if (check_keys(x, &pi, e, keys) < 0 ||
		    get_string(x, &pi, e, "description", true, pr->versions[i].description,
			       sizeof(pr->versions[i].description)) < 0 ||
		    get_string(x, &pi, e, "version", true, pr->versions[i].version,
			       sizeof(pr->versions[i].version)) < 0)
			return -1;
	}
	pr->version_count = (unsigned)n;
	return 0;
}

static int load_lan(struct ctx *x, const struct path *at, json_object *amt, const char *key,
		    struct sim_lan *lan)
{
	static const char *const keys[] = {"enabled", "ipv4", "dhcp",       "dhcp_mode",     "link",
					   "mac",     "lease_ipv4", "lease_after_ms", NULL};
	static const char *const modes[] = {"none", "active", "passive", NULL};
	static const char *const links[] = {"down", "up", NULL};
	struct path p = path_join(at, key);
	uint32_t mode = 0, link = 0;
	json_object *o;

	if (json_object_object_get_ex(amt, key, &o) && o == NULL)
		return 0; /* "wireless": null, no such adapter */
	if (member(x, at, amt, key, false, json_type_object, &o) < 0)
		return -1;
	if (!o)
		return 0;
	if (check_keys(x, &p, o, keys) < 0 ||
	    get_bool(x, &p, o, "enabled", true, &lan->enabled) < 0 ||
	    get_ipv4(x, &p, o, "ipv4", &lan->ipv4) < 0 ||
	    get_bool(x, &p, o, "dhcp", true, &lan->dhcp) < 0 ||
	    get_choice(x, &p, o, "dhcp_mode", true, modes, &mode) < 0 ||
	    get_choice(x, &p, o, "link", true, links, &link) < 0 ||
	    get_mac(x, &p, o, "mac", lan->mac) < 0 ||
	    get_uint(x, &p, o, "lease_after_ms", false, 0, 600000, &lan->lease_after_ms) < 0)
		return -1;
	if (json_object_object_get_ex(o, "lease_ipv4", NULL) &&
	    get_ipv4(x, &p, o, "lease_ipv4", &lan->lease_ipv4) < 0)
		return -1;
	lan->dhcp_mode = (uint8_t)mode;
	lan->link = (uint8_t)link;
	lan->present = true;
	return 0;
}

static size_t hash_len_for(uint8_t alg, size_t given)
{
	switch (alg) {
	case AMTHI_HASH_MD5:
		return 16;
	case AMTHI_HASH_SHA1:
		return 20;
	case AMTHI_HASH_SHA256:
		return 32;
	case AMTHI_HASH_SHA384_OR_SHA512: /* SHA384 (rpc-go) or SHA512 (lms): both accepted */
		return given == 64 ? 64 : 48;
	default:
		return 0;
	}
}

static int load_hash(struct ctx *x, const struct path *at, json_object *e, unsigned index,
		     struct sim_cert_hash *h)
{
	static const char *const keys[] = {"handle",  "name",   "algorithm", "hash",
					   "default", "active", NULL};
	struct path ph = path_join(at, "hash");
	char hex[160] = "";
	uint32_t alg = 0;
	size_t n;

	h->handle = index;
	if (!json_object_is_type(e, json_type_object))
		return fail(x, at, "must be an object");
	if (check_keys(x, at, e, keys) < 0 ||
	    get_uint(x, at, e, "handle", false, 0, 255, &h->handle) < 0 ||
	    get_string(x, at, e, "name", true, h->name, sizeof(h->name)) < 0 ||
	    get_uint(x, at, e, "algorithm", true, 0, 3, &alg) < 0 ||
	    get_string(x, at, e, "hash", true, hex, sizeof(hex)) < 0 ||
	    get_bool(x, at, e, "default", true, &h->is_default) < 0 ||
	    get_bool(x, at, e, "active", true, &h->is_active) < 0)
		return -1;
	h->algorithm = (uint8_t)alg;
	if (parse_hex(hex, h->hash, sizeof(h->hash), &n) < 0 || n != hash_len_for(h->algorithm, n))
		return fail(x, &ph, "not a hash of %zu bytes in hex for algorithm %u",
			    hash_len_for(h->algorithm, n), alg);
	h->hash_len = n;
	return 0;
}

static int load_hashes(struct ctx *x, const struct path *at, json_object *amt,
		       struct sim_profile *pr)
{
	struct path p = path_join(at, "cert_hashes");
	json_object *a;
	size_t n;

	if (member(x, at, amt, "cert_hashes", true, json_type_array, &a) < 0)
		return -1;
	n = json_object_array_length(a);
	if (n > SIM_MAX_HASHES)
		return fail(x, &p, "more than %u entries", SIM_MAX_HASHES);
	for (size_t i = 0; i < n; i++) {
		struct path pi = path_index(&p, i);

		if (load_hash(x, &pi, json_object_array_get_idx(a, i), (unsigned)i,
			      &pr->hashes[i]) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (pr->hashes[j].handle == pr->hashes[i].handle) {
				struct path hp = path_join(&pi, "handle");

				return fail(x, &hp, "handle %u used twice",
					    (unsigned)pr->hashes[i].handle);
			}
		}
	}
	pr->hash_count = (unsigned)n;
	return 0;
}

static int load_mac_addresses(struct ctx *x, const struct path *at, json_object *amt,
			      struct sim_profile *pr)
{
	static const char *const keys[] = {"dedicated", "host", NULL};
	struct path p = path_join(at, "mac_addresses");
	json_object *o;

	if (member(x, at, amt, "mac_addresses", true, json_type_object, &o) < 0 ||
	    check_keys(x, &p, o, keys) < 0 ||
	    get_mac(x, &p, o, "dedicated", pr->mac_dedicated) < 0 ||
	    get_mac(x, &p, o, "host", pr->mac_host) < 0)
		return -1;
	return 0;
}

static int load_remote_access(struct ctx *x, const struct path *at, json_object *amt,
			      struct sim_profile *pr)
{
	static const char *const keys[] = {"network_status", "remote_status", "trigger",
					   "mps_hostname", NULL};
	struct path p = path_join(at, "remote_access");
	json_object *o;

	if (member(x, at, amt, "remote_access", true, json_type_object, &o) < 0 ||
	    check_keys(x, &p, o, keys) < 0 ||
	    get_uint(x, &p, o, "network_status", true, 0, UINT32_MAX, &pr->ras_network_status) <
		0 ||
	    get_uint(x, &p, o, "remote_status", true, 0, UINT32_MAX, &pr->ras_remote_status) < 0 ||
	    get_uint(x, &p, o, "trigger", true, 0, UINT32_MAX, &pr->ras_trigger) < 0 ||
	    get_string(x, &p, o, "mps_hostname", true, pr->ras_mps_hostname,
		       sizeof(pr->ras_mps_hostname)) < 0)
		return -1;
	return 0;
}

static int load_local_account(struct ctx *x, const struct path *at, json_object *amt,
			      struct sim_profile *pr)
{
	static const char *const keys[] = {"username", "password", "trailing_pad", NULL};
	struct path p = path_join(at, "local_system_account");
	struct path pp = path_join(&p, "trailing_pad");
	json_object *o;
	uint32_t pad = 0;

	if (member(x, at, amt, "local_system_account", true, json_type_object, &o) < 0 ||
	    check_keys(x, &p, o, keys) < 0 ||
	    get_string(x, &p, o, "username", true, pr->lsa_username, sizeof(pr->lsa_username)) <
		0 ||
	    get_string(x, &p, o, "password", true, pr->lsa_password, sizeof(pr->lsa_password)) <
		0 ||
	    get_uint(x, &p, o, "trailing_pad", false, 0, 2, &pad) < 0)
		return -1;
	if (pad == 1)
		return fail(x, &pp, "must be 0 or 2");
	pr->lsa_trailing_pad = pad;
	return 0;
}

/* "Digest:" and the UUID's hex digits in upper case, as AMT's realms look. */
static void default_realm(const uint8_t uuid[16], char *out, size_t cap)
{
	static const int text_at[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	size_t n = (size_t)snprintf(out, cap, "Digest:");

	for (size_t i = 0; i < 16 && n + 2 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%02X", uuid[text_at[i]]);
}

/* A file named in the profile: relative to the profile's directory. */
static int get_file(struct ctx *x, const struct path *at, json_object *amt, const char *key,
		    char *out, size_t cap)
{
	struct path p = path_join(at, key);
	char name[2048] = "";
	int n;

	if (get_string(x, at, amt, key, false, name, sizeof(name)) < 0)
		return -1;
	if (!name[0])
		return 0;
	if (name[0] == '/')
		n = snprintf(out, cap, "%s", name);
	else
		n = snprintf(out, cap, "%.*s%s", (int)x->dir_len, x->dir, name);
	if (n < 0 || (size_t)n >= cap)
		return fail(x, &p, "path too long");
	return 0;
}

/* What activation needs: realm, admin password, TLS, and the firmware's variants. */
static int load_provisioning(struct ctx *x, const struct path *at, json_object *amt,
			     struct sim_profile *pr)
{
	static const char *const replies[] = {"status", "state", NULL};
	static const char *const restarts[] = {"none", "after", "before", NULL};
	struct path pa = path_join(at, "admin_password");
	struct path pr_ = path_join(at, "digest_realm");
	uint8_t wd = pr->watchdog_state;
	char admin[33] = "";

	/* Bit 6 of the watchdog's byte means TLS on local ports, when bit 7 says bits mean. */
	pr->tls_enforced = pr->client[AMTSIM_CLIENT_WATCHDOG].present && (wd & 0x80) && (wd & 0x40);
	pr->settle_ms = 1500;
	if (get_bool(x, at, amt, "tls_enforced", false, &pr->tls_enforced) < 0 ||
	    get_bool(x, at, amt, "network_tls", false, &pr->network_tls) < 0)
		return -1;
	pr->commit_restart = pr->tls_enforced ? SIM_COMMIT_RESTART_AFTER : SIM_COMMIT_KEEP;
	if (get_string(x, at, amt, "digest_realm", false, pr->digest_realm,
		       sizeof(pr->digest_realm)) < 0 ||
	    get_string(x, at, amt, "admin_password", false, admin, sizeof(admin)) < 0 ||
	    get_uint(x, at, amt, "settle_ms", false, 0, 600000, &pr->settle_ms) < 0 ||
	    get_choice(x, at, amt, "unprovision_reply", false, replies, &pr->unprovision_reply) <
		0 ||
	    get_choice(x, at, amt, "commit_restart", false, restarts, &pr->commit_restart) < 0 ||
	    get_file(x, at, amt, "tls_cert", pr->tls_cert, sizeof(pr->tls_cert)) < 0 ||
	    get_file(x, at, amt, "tls_key", pr->tls_key, sizeof(pr->tls_key)) < 0 ||
	    get_string(x, at, amt, "dhcp_domain", false, pr->dhcp_domain,
		       sizeof(pr->dhcp_domain)) < 0)
		return -1;
	if (!pr->tls_cert[0] != !pr->tls_key[0]) {
		struct path pm = path_join(at, pr->tls_cert[0] ? "tls_key" : "tls_cert");

		return fail(x, &pm, "missing (amt.tls_cert and amt.tls_key go together)");
	}
	if (!pr->digest_realm[0])
		default_realm(pr->uuid, pr->digest_realm, sizeof(pr->digest_realm));
	else if (strpbrk(pr->digest_realm, "\"\\\r\n"))
		return fail(x, &pr_, "must not contain quotes, backslashes or line breaks");
	if (admin[0]) {
		if (pr->control_mode == AMTHI_CONTROL_NONE)
			return fail(x, &pa, "only for a provisioned machine (control_mode ccm or acm)");
		sim_digest_ha1("admin", pr->digest_realm, admin, pr->admin_ha1);
	}
	return 0;
}

/* Names as AMT firmware gives them (GetCurrentPowerPolicy, AMT_SystemPowerScheme). */
static const char *const desktop_schemes[] = {
    "Desktop: ON in S0",
    "Desktop: ON in S0, S3, S4-5",
    "Desktop: ON in S0, ME Wake in S3, S4-5",
    NULL,
};
static const char *const mobile_schemes[] = {
    "Mobile: ON in S0",
    "Mobile: ON in S0, S3/AC",
    "Mobile: ON in S0, S3/AC, S4-5/AC",
    "Mobile: ON in S0, ME Wake in S3/AC",
    "Mobile: ON in S0, ME Wake in S3, S4-5/AC",
    NULL,
};

static bool add_scheme(struct sim_profile *pr, const char *name)
{
	for (unsigned i = 0; i < pr->power_scheme_count; i++)
		if (strcmp(pr->power_schemes[i], name) == 0)
			return true;
	if (pr->power_scheme_count == SIM_MAX_SCHEMES)
		return false;
	snprintf(pr->power_schemes[pr->power_scheme_count++], sizeof(pr->power_schemes[0]), "%s",
		 name);
	return true;
}

static int load_power_schemes(struct ctx *x, const struct path *at, json_object *o,
			      struct sim_profile *pr)
{
	struct path p = path_join(at, "power_schemes");
	json_object *a;

	if (member(x, at, o, "power_schemes", false, json_type_array, &a) < 0)
		return -1;
	if (!a) {
		const char *const *set =
		    strncmp(pr->power_policy, "Mobile", 6) == 0 ? mobile_schemes : desktop_schemes;

		for (; *set; set++)
			add_scheme(pr, *set);
	}
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		struct path pi = path_index(&p, i);

		if (!json_object_is_type(e, json_type_string) ||
		    (size_t)json_object_get_string_len(e) > SIM_NAME_MAX)
			return fail(x, &pi, "must be a power package's name");
		if (!add_scheme(pr, json_object_get_string(e)))
			return fail(x, &p, "more than %u packages", SIM_MAX_SCHEMES);
	}
	if (!add_scheme(pr, pr->power_policy))
		return fail(x, &p, "no room for power_policy among %u packages", SIM_MAX_SCHEMES);
	return 0;
}

static int load_amt(struct ctx *x, json_object *root, struct sim_profile *pr)
{
	static const char *const keys[] = {"operational",
					   "bios_version",
					   "code_versions",
					   "provisioning_state",
					   "control_mode",
					   "provisioning_mode",
					   "legacy_mode",
					   "uuid",
					   "mac_addresses",
					   "wired",
					   "wireless",
					   "no_wireless_status",
					   "dns_suffix",
					   "remote_access",
					   "power_policy",
					   "power_schemes",
					   "cert_hashes",
					   "local_system_account",
					   "tls_enforced",
					   "network_tls",
					   "digest_realm",
					   "admin_password",
					   "settle_ms",
					   "unprovision_reply",
					   "commit_restart",
					   "tls_cert",
					   "tls_key",
					   "dhcp_domain",
					   NULL};
	static const char *const states[] = {"pre", "in", "post", NULL};
	static const char *const modes[] = {"none", "ccm", "acm", NULL};
	struct path p = path_join(NULL, "amt");
	struct path pw = path_join(&p, "wired");
	bool legacy = false;
	json_object *o;

	if (member(x, NULL, root, "amt", false, json_type_object, &o) < 0)
		return -1;
	if (!o) {
		if (pr->client[AMTSIM_CLIENT_AMTHI].present ||
		    pr->client[AMTSIM_CLIENT_LME].present)
			return fail(x, &p, "missing (the profile has AMT clients)");
		return 0;
	}
	pr->has_amt = true;
	pr->operational = true;
	pr->provisioning_mode = 1;
	pr->no_wireless_status = AMTHI_STATUS_INVALID_PARAMETER;
	if (check_keys(x, &p, o, keys) < 0 ||
	    get_bool(x, &p, o, "operational", false, &pr->operational) < 0 ||
	    get_string(x, &p, o, "bios_version", true, pr->bios_version, sizeof(pr->bios_version)) <
		0 ||
	    load_versions(x, &p, o, pr) < 0 ||
	    get_choice(x, &p, o, "provisioning_state", true, states, &pr->provisioning_state) < 0 ||
	    get_choice(x, &p, o, "control_mode", true, modes, &pr->control_mode) < 0 ||
	    get_uint(x, &p, o, "provisioning_mode", false, 0, UINT32_MAX, &pr->provisioning_mode) <
		0 ||
	    get_bool(x, &p, o, "legacy_mode", false, &legacy) < 0 ||
	    get_uuid(x, &p, o, "uuid", pr->uuid) < 0 || load_mac_addresses(x, &p, o, pr) < 0 ||
	    load_lan(x, &p, o, "wired", &pr->lan[0]) < 0 ||
	    load_lan(x, &p, o, "wireless", &pr->lan[1]) < 0 ||
	    get_uint(x, &p, o, "no_wireless_status", false, 0, UINT32_MAX,
		     &pr->no_wireless_status) < 0 ||
	    get_string(x, &p, o, "dns_suffix", false, pr->dns_suffix, sizeof(pr->dns_suffix)) < 0 ||
	    load_remote_access(x, &p, o, pr) < 0 ||
	    get_string(x, &p, o, "power_policy", true, pr->power_policy, sizeof(pr->power_policy)) <
		0 ||
	    load_power_schemes(x, &p, o, pr) < 0 ||
	    load_hashes(x, &p, o, pr) < 0 || load_local_account(x, &p, o, pr) < 0)
		return -1;
	if (!pr->lan[0].present)
		return fail(x, &pw, "missing");
	pr->legacy_mode = legacy;
	return load_provisioning(x, &p, o, pr);
}

static int load_faults(struct ctx *x, json_object *root, struct sim_profile *pr)
{
	struct path p = path_join(NULL, "faults");
	json_object *a;
	size_t n;

	if (member(x, NULL, root, "faults", false, json_type_array, &a) < 0)
		return -1;
	if (!a)
		return 0;
	n = json_object_array_length(a);
	if (n > SIM_MAX_FAULTS)
		return fail(x, &p, "more than %u faults", SIM_MAX_FAULTS);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		struct path pi = path_index(&p, i);

		if (!json_object_is_type(e, json_type_string) ||
		    (size_t)json_object_get_string_len(e) >= SIM_FAULT_SPEC_MAX)
			return fail(x, &pi, "must be a fault word such as \"busy=2\"");
		snprintf(pr->faults[i], SIM_FAULT_SPEC_MAX, "%s", json_object_get_string(e));
	}
	pr->fault_count = (unsigned)n;
	return 0;
}

static json_object *parse_file(struct ctx *x, const char *path)
{
	struct json_tokener *tok;
	json_object *root = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		snprintf(x->err, x->errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	{
		char buf[4096];
		size_t n;

		while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
			char *t = realloc(text, len + n + 1);

			if (!t || len + n > (1u << 20)) {
				free(t ? t : text);
				(void)fclose(f); /* read only */
				snprintf(x->err, x->errlen, "%s: too large", path);
				return NULL;
			}
			text = t;
			memcpy(text + len, buf, n);
			len += n;
		}
	}
	(void)fclose(f); /* read only */
	if (!text) {
		snprintf(x->err, x->errlen, "%s: empty file", path);
		return NULL;
	}
	text[len] = '\0';

	tok = json_tokener_new();
	if (tok) {
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		root = json_tokener_parse_ex(tok, text, (int)len);
		if (!root || json_tokener_get_parse_end(tok) != len) {
			snprintf(x->err, x->errlen, "%s: not valid JSON near byte %zu: %s", path,
				 json_tokener_get_parse_end(tok),
				 json_tokener_error_desc(json_tokener_get_error(tok)));
			json_object_put(root);
			root = NULL;
		}
		json_tokener_free(tok);
	}
	free(text);
	return root;
}

int sim_profile_load(const char *path, struct sim_profile *pr, char *err, size_t errlen)
{
	static const char *const keys[] = {"description", "clients", "sysfs",
					   "amt",         "faults",  NULL};
	const char *slash = strrchr(path, '/');
	struct ctx x = {.file = path,
			.dir = path,
			.dir_len = slash ? (size_t)(slash - path) + 1 : 0,
			.err = err,
			.errlen = errlen};
	json_object *root;
	int r = -1;

	memset(pr, 0, sizeof(*pr));
	root = parse_file(&x, path);
	if (!root)
		return -1;
	x.file = slash ? slash + 1 : path;
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "%s: the top level must be an object", x.file);
	} else if (check_keys(&x, &(struct path){""}, root, keys) == 0 &&
		   get_string(&x, NULL, root, "description", true, pr->description,
			      sizeof(pr->description)) == 0 &&
		   load_clients(&x, root, pr) == 0 && load_sysfs(&x, root, pr) == 0 &&
		   load_amt(&x, root, pr) == 0 && load_faults(&x, root, pr) == 0) {
		r = 0;
	}
	json_object_put(root);
	return r;
}
