/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The machine's provisioning state as firmware keeps it: control mode, provisioning state, the
 * admin password (as the HA1 that Setup hands over), the MEBx password (its SHA-256), user
 * consent, and whether AMT is operational. AMTHI and WS-Man change and read the same state under
 * m->lock, so a Setup is visible to the next GetControlMode at once.
 *
 * With --state FILE the state outlives the emulator process (an agent rerun under "amtsim
 * --run" is a new process each time). The file is JSON, written atomically after every change:
 *   {"control_mode": "none|ccm|acm", "provisioning_state": "pre|in|post",
 *    "admin_ha1": "32 hex digits" or null, "operational": true,
 *    "settles_at": wall-clock milliseconds when "in" becomes "pre" (after Unprovision), or 0,
 *    "mebx_sha256": "64 hex digits" or null, "opt_in_required": 4294967295 (user consent)}
 * (the last two optional when read). A host-based configuration under way is not kept: the
 * next process finds AMT "in" provisioning, as firmware that lost the TLS session would be.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mei.h"
#include "sim.h"

#define STATE_FILE_MAX         (64u * 1024u)
#define WATCHDOG_NEW_INTERFACE 0x80u
#define WATCHDOG_OPERATIONAL   0x02u

static const char *const control_names[] = {"none", "ccm", "acm", NULL};
static const char *const state_names[] = {"pre", "in", "post", NULL};

void sim_digest_ha1(const char *user, const char *realm, const char *password, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	out[0] = '\0';
	if (!ctx)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, user, strlen(user)) == 1 && EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	    EVP_DigestUpdate(ctx, realm, strlen(realm)) == 1 &&
	    EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	    EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 16) {
		for (size_t i = 0; i < 16; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 15];
		}
		out[32] = '\0';
	}
	EVP_MD_CTX_free(ctx);
}

/* A fresh ConfigurationNonce: 20 random bytes in base64, as AMT gives it. */
void sim_config_nonce(char *out, size_t cap)
{
	unsigned char raw[20] = {0};

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(raw, &ts, sizeof(ts) < sizeof(raw) ? sizeof(ts) : sizeof(raw));
	}
	if (cap >= 29)
		EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	else if (cap > 0)
		out[0] = '\0';
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds until the settle time is over (<= 0: over). */
static long long settle_left_ms(const struct amtsim *m)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(m->settle_at.tv_sec - now.tv_sec) * 1000 +
	       (m->settle_at.tv_nsec - now.tv_nsec) / 1000000;
}

void sim_machine_refresh(struct amtsim *m)
{
	if (!m->settling || settle_left_ms(m) > 0)
		return;
	m->settling = false;
	if (m->p.provisioning_state == AMTHI_PROVISIONING_IN &&
	    m->p.control_mode == AMTHI_CONTROL_NONE)
		m->p.provisioning_state = AMTHI_PROVISIONING_PRE;
	sim_machine_save(m);
}

void sim_machine_setup(struct amtsim *m, const char *ha1)
{
	snprintf(m->admin_ha1, sizeof(m->admin_ha1), "%s", ha1);
	m->p.control_mode = AMTHI_CONTROL_CCM;
	/* TLS-enforcing firmware stays "in" until CommitChanges (rpc-go commitCCMChanges). */
	m->p.provisioning_state =
	    m->p.tls_enforced ? AMTHI_PROVISIONING_IN : AMTHI_PROVISIONING_POST;
	m->settling = false;
	sim_machine_save(m);
}

#define RV_DATA_MISSING 2057u /* PT_STATUS_DATA_MISSING (0x809) */

unsigned sim_machine_commit(struct amtsim *m)
{
	if (m->hbased) {
		if (!m->admin_ha1[0] || !m->mebx_sha256[0])
			return RV_DATA_MISSING;
		m->hbased = false;
		m->p.control_mode = AMTHI_CONTROL_ACM;
		m->p.provisioning_state = AMTHI_PROVISIONING_POST;
		sim_machine_save(m);
	} else if (m->p.provisioning_state == AMTHI_PROVISIONING_IN &&
		   m->p.control_mode != AMTHI_CONTROL_NONE) {
		m->p.provisioning_state = AMTHI_PROVISIONING_POST;
		sim_machine_save(m);
	}
	return 0;
}

void sim_machine_admin_setup(struct amtsim *m, const char *ha1)
{
	snprintf(m->admin_ha1, sizeof(m->admin_ha1), "%s", ha1);
	m->p.control_mode = AMTHI_CONTROL_ACM;
	m->p.provisioning_state = AMTHI_PROVISIONING_POST;
	m->settling = false;
	sim_machine_save(m);
}

void sim_machine_upgrade(struct amtsim *m)
{
	m->p.control_mode = AMTHI_CONTROL_ACM;
	sim_machine_save(m);
}

void sim_machine_start_hbased(struct amtsim *m)
{
	m->hbased = true;
	m->p.provisioning_state = AMTHI_PROVISIONING_IN;
	m->settling = false;
	sim_machine_save(m);
}

void sim_machine_stop_configuration(struct amtsim *m)
{
	m->hbased = false;
	m->admin_ha1[0] = '\0';
	m->mebx_sha256[0] = '\0';
	m->p.control_mode = AMTHI_CONTROL_NONE;
	m->p.provisioning_state = AMTHI_PROVISIONING_PRE;
	m->settling = false;
	sim_machine_save(m);
}

void sim_machine_set_admin(struct amtsim *m, const char *ha1)
{
	snprintf(m->admin_ha1, sizeof(m->admin_ha1), "%s", ha1);
	sim_machine_save(m);
}

void sim_machine_set_mebx(struct amtsim *m, const char *password)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	m->mebx_sha256[0] = '\0';
	if (EVP_Digest(password, strlen(password), md, &n, EVP_sha256(), NULL) == 1 && n == 32) {
		for (size_t i = 0; i < 32; i++) {
			m->mebx_sha256[2 * i] = hex[md[i] >> 4];
			m->mebx_sha256[2 * i + 1] = hex[md[i] & 15];
		}
		m->mebx_sha256[64] = '\0';
	}
	OPENSSL_cleanse(md, sizeof(md));
	sim_machine_save(m);
}

void sim_machine_unprovision(struct amtsim *m)
{
	m->admin_ha1[0] = '\0';
	m->mebx_sha256[0] = '\0';
	m->opt_in_required = SIM_OPT_IN_ALL;
	m->hbased = false;
	m->p.control_mode = AMTHI_CONTROL_NONE;
	if (m->p.settle_ms == 0) {
		m->p.provisioning_state = AMTHI_PROVISIONING_PRE;
		m->settling = false;
	} else {
		m->p.provisioning_state = AMTHI_PROVISIONING_IN;
		m->settling = true;
		clock_gettime(CLOCK_MONOTONIC, &m->settle_at);
		m->settle_at.tv_sec += m->p.settle_ms / 1000u;
		m->settle_at.tv_nsec += (long)(m->p.settle_ms % 1000u) * 1000000L;
		if (m->settle_at.tv_nsec >= 1000000000L) {
			m->settle_at.tv_sec++;
			m->settle_at.tv_nsec -= 1000000000L;
		}
	}
	sim_machine_save(m);
}

void sim_machine_set_operational(struct amtsim *m, bool on)
{
	m->p.operational = on;
	if (on)
		clock_gettime(CLOCK_MONOTONIC, &m->operational_since);
	sim_machine_save(m);
}

uint32_t sim_lan_ipv4(const struct amtsim *m, const struct sim_lan *lan)
{
	struct timespec now;
	long long up_ms;

	if (lan->ipv4 != 0 || !lan->dhcp || lan->lease_ipv4 == 0 || !m->p.operational)
		return lan->ipv4;
	clock_gettime(CLOCK_MONOTONIC, &now);
	up_ms = (long long)(now.tv_sec - m->operational_since.tv_sec) * 1000 +
	        (now.tv_nsec - m->operational_since.tv_nsec) / 1000000;
	return up_ms >= (long long)lan->lease_after_ms ? lan->lease_ipv4 : lan->ipv4;
}

const char *sim_challenge_realm(const struct amtsim *m)
{
	if (!m->wrong_realm || m->p.provisioning_state != AMTHI_PROVISIONING_PRE)
		return m->p.digest_realm;
	return m->wrong_realm_text;
}

/* ---- the state file ---- */

static json_object *state_json(const struct amtsim *m)
{
	json_object *o = json_object_new_object();
	long long settles_at = 0;

	if (m->settling) {
		long long left = settle_left_ms(m);

		settles_at = wall_ms() + (left > 0 ? left : 0);
	}
	json_object_object_add(o, "control_mode",
	                       json_object_new_string(control_names[m->p.control_mode % 3]));
	json_object_object_add(o, "provisioning_state",
	                       json_object_new_string(state_names[m->p.provisioning_state % 3]));
	json_object_object_add(o, "admin_ha1",
	                       m->admin_ha1[0] ? json_object_new_string(m->admin_ha1) : NULL);
	json_object_object_add(o, "operational", json_object_new_boolean(m->p.operational));
	json_object_object_add(o, "settles_at", json_object_new_int64(settles_at));
	json_object_object_add(o, "mebx_sha256",
	                       m->mebx_sha256[0] ? json_object_new_string(m->mebx_sha256) : NULL);
	json_object_object_add(o, "opt_in_required", json_object_new_int64(m->opt_in_required));
	json_object_object_add(o, "power_policy", json_object_new_string(m->p.power_policy));
	return o;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_state(const char *path, const char *text)
{
	size_t tlen = strlen(path) + sizeof(".XXXXXX");
	char *tmp = malloc(tlen);
	int fd = -1, r = -1;

	if (!tmp)
		return -1;
	snprintf(tmp, tlen, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd >= 0) {
		if (write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 &&
		    fchmod(fd, 0600) == 0 && fsync(fd) == 0) {
			int closed = close(fd);

			fd = -1;
			if (closed == 0 && rename(tmp, path) == 0)
				r = 0;
		}
		if (fd >= 0)
			close(fd);
		if (r < 0)
			unlink(tmp);
	}
	free(tmp);
	return r;
}

void sim_machine_save(struct amtsim *m)
{
	json_object *o;

	if (!m->state_path)
		return;
	o = state_json(m);
	if (write_state(m->state_path,
	                json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                      JSON_C_TO_STRING_SPACED)) < 0)
		fprintf(stderr, "amtsim: %s: cannot write the machine state: %s\n", m->state_path,
		        strerror(errno));
	json_object_put(o);
}

static int pick(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static bool is_lower_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Apply the parsed file O to the machine. 0, or -1 with ERR naming the key. */
/* The admin control mode keys, optional. 0, or -1 with ERR naming the key. */
static int apply_acm_state(struct amtsim *m, json_object *o, const char *path, char *err,
                           size_t errlen)
{
	json_object *mebx, *opt_in;

	m->mebx_sha256[0] = '\0';
	if (json_object_object_get_ex(o, "mebx_sha256", &mebx) && mebx) {
		if (!json_object_is_type(mebx, json_type_string) ||
		    !is_lower_hex(json_object_get_string(mebx), 64)) {
			snprintf(err, errlen, "%s: key 'mebx_sha256': not 64 lower-case hex digits",
			         path);
			return -1;
		}
		snprintf(m->mebx_sha256, sizeof(m->mebx_sha256), "%s",
		         json_object_get_string(mebx));
	}
	if (json_object_object_get_ex(o, "opt_in_required", &opt_in)) {
		int64_t v = json_object_get_int64(opt_in);

		if (!json_object_is_type(opt_in, json_type_int) || v < 0 || v > SIM_OPT_IN_ALL) {
			snprintf(err, errlen, "%s: key 'opt_in_required': not a u32", path);
			return -1;
		}
		m->opt_in_required = (uint32_t)v;
	}
	return 0;
}

static int apply_state(struct amtsim *m, json_object *o, const char *path, char *err, size_t errlen)
{
	json_object *cm, *ps, *ha1, *op, *settle, *policy;
	int mode, state;
	long long settles_at = 0;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "control_mode", &cm) ||
	    !json_object_object_get_ex(o, "provisioning_state", &ps) ||
	    !json_object_is_type(cm, json_type_string) ||
	    !json_object_is_type(ps, json_type_string)) {
		snprintf(err, errlen, "%s: not a machine state (control_mode, provisioning_state)",
		         path);
		return -1;
	}
	mode = pick(control_names, json_object_get_string(cm));
	state = pick(state_names, json_object_get_string(ps));
	if (mode < 0 || state < 0) {
		snprintf(err, errlen, "%s: key '%s': unknown value", path,
		         mode < 0 ? "control_mode" : "provisioning_state");
		return -1;
	}
	m->admin_ha1[0] = '\0';
	if (json_object_object_get_ex(o, "admin_ha1", &ha1) && ha1) {
		if (!json_object_is_type(ha1, json_type_string) ||
		    !is_lower_hex(json_object_get_string(ha1), SIM_HA1_HEX)) {
			snprintf(err, errlen, "%s: key 'admin_ha1': not 32 lower-case hex digits",
			         path);
			return -1;
		}
		snprintf(m->admin_ha1, sizeof(m->admin_ha1), "%s", json_object_get_string(ha1));
	}
	if (apply_acm_state(m, o, path, err, errlen) < 0)
		return -1;
	if (json_object_object_get_ex(o, "operational", &op) &&
	    json_object_is_type(op, json_type_boolean)) {
		m->p.operational = json_object_get_boolean(op);
		/* the watchdog's IsChangeToAMTEnabled byte says the same (bit 1) */
		if (m->p.watchdog_state & WATCHDOG_NEW_INTERFACE)
			m->p.watchdog_state =
			    (uint8_t)((m->p.watchdog_state & ~WATCHDOG_OPERATIONAL) |
			              (m->p.operational ? WATCHDOG_OPERATIONAL : 0));
	}
	if (json_object_object_get_ex(o, "power_policy", &policy)) {
		bool offered = false;

		for (unsigned i = 0; i < m->p.power_scheme_count; i++)
			offered |= json_object_is_type(policy, json_type_string) &&
			           strcmp(m->p.power_schemes[i], json_object_get_string(policy)) == 0;
		if (!offered) {
			snprintf(err, errlen, "%s: key 'power_policy': not a package the profile offers",
			         path);
			return -1;
		}
		snprintf(m->p.power_policy, sizeof(m->p.power_policy), "%s",
		         json_object_get_string(policy));
	}
	if (json_object_object_get_ex(o, "settles_at", &settle) &&
	    json_object_is_type(settle, json_type_int))
		settles_at = json_object_get_int64(settle);
	m->p.control_mode = (uint32_t)mode;
	m->p.provisioning_state = (uint32_t)state;
	m->settling = false;
	if (settles_at > 0 && state == AMTHI_PROVISIONING_IN && mode == AMTHI_CONTROL_NONE) {
		long long left = settles_at - wall_ms();

		m->settling = true;
		clock_gettime(CLOCK_MONOTONIC, &m->settle_at);
		if (left > 0) {
			m->settle_at.tv_sec += left / 1000;
			m->settle_at.tv_nsec += (left % 1000) * 1000000L;
			if (m->settle_at.tv_nsec >= 1000000000L) {
				m->settle_at.tv_sec++;
				m->settle_at.tv_nsec -= 1000000000L;
			}
		}
	}
	return 0;
}

int sim_machine_load(struct amtsim *m, const char *path, char *err, size_t errlen)
{
	struct stat st;
	json_object *o;
	int r;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)STATE_FILE_MAX) {
		snprintf(err, errlen, "%s: not a machine state file", path);
		return -1;
	}
	o = json_object_from_file(path);
	if (!o) {
		snprintf(err, errlen, "%s: not valid JSON", path);
		return -1;
	}
	r = apply_state(m, o, path, err, errlen);
	json_object_put(o);
	return r;
}

int amtsim_set_state_file(struct amtsim *m, const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int r;

	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	r = sim_machine_load(m, path, err, errlen);
	if (r == 0) {
		free(m->state_path);
		m->state_path = copy;
		copy = NULL;
		sim_machine_refresh(m);
	}
	pthread_mutex_unlock(&m->lock);
	free(copy);
	return r;
}

void amtsim_get_machine(struct amtsim *m, struct amtsim_machine *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	out->control_mode = m->p.control_mode;
	out->provisioning_state = m->p.provisioning_state;
	out->operational = m->p.operational;
	out->admin_set = m->admin_ha1[0] != '\0';
	snprintf(out->admin_ha1, sizeof(out->admin_ha1), "%s", m->admin_ha1);
	snprintf(out->digest_realm, sizeof(out->digest_realm), "%s", m->p.digest_realm);
	snprintf(out->mebx_sha256, sizeof(out->mebx_sha256), "%s", m->mebx_sha256);
	out->opt_in_required = m->opt_in_required;
	out->configuring = m->hbased;
	pthread_mutex_unlock(&m->lock);
}
