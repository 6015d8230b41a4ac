/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The emulated machine: connections to its ME clients, their message queues, the fault switches
 * and the sysfs attributes. The firmware's answers are in amthi_fw.c and watchdog_fw.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "apf_fw.h"
#include "mei.h"
#include "sim.h"
#include "wire.h"

/* A reply buffer big enough for any answer of the emulated firmware before faults. */
#define SIM_REPLY_CAP 16384u
/* How many bytes the oversize and huge faults add beyond what they must. */
#define SIM_EXTRA_BYTES 16u
#define SIM_HUGE_EXTRA  64u

static unsigned long elapsed_ms(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (unsigned long)(now.tv_sec - t0->tv_sec) * 1000ul +
	       (unsigned long)((now.tv_nsec - t0->tv_nsec) / 1000000L);
}

void sim_sleep_ms(unsigned ms)
{
	struct timespec until;

	if (ms == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000u;
	until.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

const char *sim_client_name(enum amtsim_client client)
{
	switch (client) {
	case AMTSIM_CLIENT_AMTHI:
		return "amthi";
	case AMTSIM_CLIENT_LME:
		return "lme";
	case AMTSIM_CLIENT_WATCHDOG:
		return "watchdog";
	case AMTSIM_CLIENT_COUNT:
		break;
	}
	return "?";
}

/* ---- faults ---- */

/* How a fault word takes its value. */
enum fault_value {
	VAL_COUNT,      /* WORD=N: a setting */
	VAL_AT,         /* WORD@N: fires once, on the N-th request */
	VAL_FLAG,       /* WORD */
	VAL_FLAG_COUNT, /* WORD or WORD=N */
	VAL_TEXT,       /* WORD=TEXT */
};

enum fault_setting {
	SET_BUSY,
	SET_LME_BUSY,
	SET_NOT_READY,
	SET_LATENCY,
	SET_READY_AFTER,
	SET_CHANNEL_REFUSED,
	SET_SESSION_ENDS,
	SET_WRONG_REALM,
	SET_RESET_BEFORE_SETUP,
	SET_RESET_DURING_SETUP,
	SET_SETUP_RETURN,
	SET_SOAP_FAULT,
	SET_WSMAN_LATENCY,
	SET_SETTLE,
	SET_COMMIT_RESTART,
	SET_DNS_SUFFIX,
	SET_DHCP_DOMAIN,
	SET_STALE_NONCE,
	SET_METHOD_RETURN,
};

struct fault_word {
	const char *word;
	enum fault_value value;
	int kind; /* enum sim_fault_kind for VAL_AT, enum fault_setting otherwise */
	unsigned max;
	const char *text; /* what VAL_TEXT takes, for the error message */
};

static const struct fault_word fault_words[] = {
    {"busy", VAL_COUNT, SET_BUSY, 1000000u, NULL},
    {"lme-busy", VAL_FLAG, SET_LME_BUSY, 0, NULL},
    {"not-ready", VAL_COUNT, SET_NOT_READY, 1000000u, NULL},
    {"latency", VAL_COUNT, SET_LATENCY, 60000u, NULL},
    {"ready-after", VAL_COUNT, SET_READY_AFTER, 600000u, NULL},
    {"reset", VAL_AT, SIM_FAULT_RESET, 1000000u, NULL},
    {"no-reply", VAL_AT, SIM_FAULT_NO_REPLY, 1000000u, NULL},
    {"truncate", VAL_AT, SIM_FAULT_TRUNCATE, 1000000u, NULL},
    {"oversize", VAL_AT, SIM_FAULT_OVERSIZE, 1000000u, NULL},
    {"huge", VAL_AT, SIM_FAULT_HUGE, 1000000u, NULL},
    {"wrong-echo", VAL_AT, SIM_FAULT_WRONG_ECHO, 1000000u, NULL},
    {"channel-refused", VAL_FLAG_COUNT, SET_CHANNEL_REFUSED, 255u, NULL},
    {"session-ends-after-close", VAL_FLAG, SET_SESSION_ENDS, 0, NULL},
    {"lme-disconnect", VAL_AT, SIM_FAULT_LME_DISCONNECT, 1000000u, NULL},
    {"reset-before-setup", VAL_FLAG, SET_RESET_BEFORE_SETUP, 0, NULL},
    {"reset-during-setup", VAL_FLAG, SET_RESET_DURING_SETUP, 0, NULL},
    {"setup-return", VAL_COUNT, SET_SETUP_RETURN, 1000000u, NULL},
    {"soap-fault", VAL_TEXT, SET_SOAP_FAULT, 0, "METHOD"},
    {"wrong-realm", VAL_FLAG, SET_WRONG_REALM, 0, NULL},
    {"wsman-latency", VAL_COUNT, SET_WSMAN_LATENCY, 60000u, NULL},
    {"settle", VAL_COUNT, SET_SETTLE, 600000u, NULL},
    {"commit-restart", VAL_TEXT, SET_COMMIT_RESTART, 0, "after|before|none"},
    {"dns-suffix", VAL_TEXT, SET_DNS_SUFFIX, 0, "SUFFIX"},
    {"dhcp-domain", VAL_TEXT, SET_DHCP_DOMAIN, 0, "DOMAIN"},
    {"stale-nonce", VAL_FLAG, SET_STALE_NONCE, 0, NULL},
    {"method-return", VAL_TEXT, SET_METHOD_RETURN, 0, "METHOD:N"},
};

#define FAULT_WORDS_HELP                                                                           \
	"busy=N, lme-busy, not-ready=N, latency=MS, ready-after=MS, reset@N, no-reply@N, truncate@N, "       \
	"oversize@N, huge@N, wrong-echo@N, channel-refused[=REASON], session-ends-after-close, "   \
	"lme-disconnect@N, reset-before-setup, reset-during-setup, setup-return=N, "               \
	"soap-fault=METHOD, wrong-realm, wsman-latency=MS, settle=MS, "                            \
	"commit-restart=after|before|none, dns-suffix=SUFFIX, dhcp-domain=DOMAIN, stale-nonce, "   \
	"method-return=METHOD:N"

static int parse_number(const char *s, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10u + (unsigned long)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* A method name: letters, digits, '_' and '.', as in "Setup" or "AMT_GeneralSettings.Get". */
static bool is_method_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SIM_METHOD_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* A DNS name: letters, digits, '-' and '.', 1 to 255 characters. */
static bool is_domain(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SIM_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* "METHOD:N": the method into METHOD, N into *RV. */
static bool method_return_value(const char *s, char *method, unsigned *rv)
{
	const char *colon = strchr(s, ':');
	char name[SIM_METHOD_MAX + 1];

	if (!colon || (size_t)(colon - s) > SIM_METHOD_MAX)
		return false;
	memcpy(name, s, (size_t)(colon - s));
	name[colon - s] = '\0';
	if (!is_method_name(name) || parse_number(colon + 1, 1000000u, rv) < 0)
		return false;
	if (method)
		memcpy(method, name, strlen(name) + 1);
	return true;
}

static int commit_restart_value(const char *s)
{
	if (strcmp(s, "none") == 0)
		return SIM_COMMIT_KEEP;
	if (strcmp(s, "after") == 0)
		return SIM_COMMIT_RESTART_AFTER;
	if (strcmp(s, "before") == 0)
		return SIM_COMMIT_RESTART_BEFORE;
	return -1;
}

static const struct fault_word *find_fault_word(const char *spec, size_t wlen)
{
	for (size_t i = 0; i < sizeof(fault_words) / sizeof(fault_words[0]); i++)
		if (strlen(fault_words[i].word) == wlen &&
		    strncmp(fault_words[i].word, spec, wlen) == 0)
			return &fault_words[i];
	return NULL;
}

/* "write it as ..." for a word used with the wrong separator. */
static void fault_form(const struct fault_word *fw, char *out, size_t cap)
{
	switch (fw->value) {
	case VAL_COUNT:
		snprintf(out, cap, "%s=N", fw->word);
		break;
	case VAL_AT:
		snprintf(out, cap, "%s@N", fw->word);
		break;
	case VAL_FLAG:
		snprintf(out, cap, "%s", fw->word);
		break;
	case VAL_FLAG_COUNT:
		snprintf(out, cap, "%s or %s=N", fw->word, fw->word);
		break;
	case VAL_TEXT:
		snprintf(out, cap, "%s=%s", fw->word, fw->text);
		break;
	}
}

static bool separator_fits(const struct fault_word *fw, char sep)
{
	switch (fw->value) {
	case VAL_COUNT:
	case VAL_TEXT:
		return sep == '=';
	case VAL_AT:
		return sep == '@';
	case VAL_FLAG:
		return sep == '\0';
	case VAL_FLAG_COUNT:
		return sep == '\0' || sep == '=';
	}
	return false;
}

/* Switch setting KIND on with N (numbers) or TEXT. m->lock held. */
static void apply_setting(struct amtsim *m, int kind, unsigned n, const char *text)
{
	switch (kind) {
	case SET_BUSY:
		m->busy_left = n;
		break;
	case SET_LME_BUSY:
		m->p.client[AMTSIM_CLIENT_LME].busy = true;
		break;
	case SET_NOT_READY:
		m->not_ready_upto = n;
		break;
	case SET_LATENCY:
		m->latency_ms = n;
		break;
	case SET_READY_AFTER:
		m->ready_after_ms = n;
		break;
	case SET_CHANNEL_REFUSED:
		m->channel_refused = n ? n : APF_OPEN_FAILURE_CONNECT_FAILED;
		break;
	case SET_SESSION_ENDS:
		m->session_ends_after_close = true;
		break;
	case SET_WRONG_REALM:
		m->wrong_realm = true;
		break;
	case SET_RESET_BEFORE_SETUP:
		m->reset_before_setup = true;
		break;
	case SET_RESET_DURING_SETUP:
		m->reset_during_setup = true;
		break;
	case SET_SETUP_RETURN:
		m->setup_return_set = true;
		m->setup_return = n;
		break;
	case SET_SOAP_FAULT:
		snprintf(m->soap_faults[m->soap_fault_count++], SIM_METHOD_MAX + 1, "%s", text);
		break;
	case SET_WSMAN_LATENCY:
		m->wsman_latency_ms = n;
		break;
	case SET_SETTLE:
		m->p.settle_ms = n;
		break;
	case SET_COMMIT_RESTART:
		m->p.commit_restart = (uint32_t)commit_restart_value(text);
		break;
	case SET_DNS_SUFFIX:
		snprintf(m->p.dns_suffix, sizeof(m->p.dns_suffix), "%s", text);
		break;
	case SET_DHCP_DOMAIN:
		snprintf(m->p.dhcp_domain, sizeof(m->p.dhcp_domain), "%s", text);
		break;
	case SET_STALE_NONCE:
		m->stale_nonce = true;
		break;
	case SET_METHOD_RETURN: {
		unsigned i = m->method_return_count++;

		method_return_value(text, m->method_returns[i].method, &m->method_returns[i].rv);
		break;
	}
	default:
		break;
	}
}

int amtsim_fault(struct amtsim *m, const char *spec, char *err, size_t errlen)
{
	size_t wlen = strcspn(spec, "=@");
	const struct fault_word *fw = find_fault_word(spec, wlen);
	const char *value = spec[wlen] ? spec + wlen + 1 : "";
	char form[96];
	unsigned n = 0;

	if (!fw) {
		snprintf(err, errlen, "fault '%s': unknown (known: %s)", spec, FAULT_WORDS_HELP);
		return -1;
	}
	fault_form(fw, form, sizeof(form));
	if (!separator_fits(fw, spec[wlen])) {
		snprintf(err, errlen, "fault '%s': write it as %s", spec, form);
		return -1;
	}
	if (fw->value == VAL_TEXT) {
		if ((fw->kind == SET_SOAP_FAULT && !is_method_name(value)) ||
		    (fw->kind == SET_COMMIT_RESTART && commit_restart_value(value) < 0) ||
		    ((fw->kind == SET_DNS_SUFFIX || fw->kind == SET_DHCP_DOMAIN) &&
		     !is_domain(value)) ||
		    (fw->kind == SET_METHOD_RETURN && !method_return_value(value, NULL, &n))) {
			snprintf(err, errlen, "fault '%s': write it as %s", spec, form);
			return -1;
		}
	} else if (spec[wlen] != '\0' &&
		   (parse_number(value, fw->max, &n) < 0 ||
		    ((fw->value == VAL_AT || fw->value == VAL_FLAG_COUNT) && n == 0))) {
		snprintf(err, errlen, "fault '%s': the number must be %s%u", spec,
			 fw->value == VAL_COUNT ? "at most " : "between 1 and ", fw->max);
		return -1;
	}

	pthread_mutex_lock(&m->lock);
	if (fw->value == VAL_AT) {
		if (m->fault_count == SIM_MAX_FAULTS) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "fault '%s': more than %u request faults", spec,
				 SIM_MAX_FAULTS);
			return -1;
		}
		m->faults[m->fault_count++] = (struct sim_fault){.kind = fw->kind, .at = n};
	} else if ((fw->kind == SET_SOAP_FAULT && m->soap_fault_count == SIM_MAX_SOAP_FAULTS) ||
		   (fw->kind == SET_METHOD_RETURN &&
		    m->method_return_count == SIM_MAX_SOAP_FAULTS)) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "fault '%s': more than %u %s words", spec,
			 SIM_MAX_SOAP_FAULTS, fw->word);
		return -1;
	} else {
		apply_setting(m, fw->kind, n, value);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* Take the request fault of KIND armed for request N, if any (each fires once). */
bool sim_take_fault(struct amtsim *m, enum sim_fault_kind kind, unsigned n)
{
	for (unsigned i = 0; i < m->fault_count; i++) {
		if (m->faults[i].kind == kind && m->faults[i].at == n) {
			m->faults[i] = m->faults[--m->fault_count];
			return true;
		}
	}
	return false;
}

static bool take_fault(struct amtsim *m, enum sim_fault_kind kind, unsigned n)
{
	return sim_take_fault(m, kind, n);
}

static bool me_ready(struct amtsim *m)
{
	return m->ready_after_ms == 0 || elapsed_ms(&m->t0) >= m->ready_after_ms;
}

/* ---- machine ---- */

struct amtsim *amtsim_new(const char *profile_path, char *err, size_t errlen)
{
	struct amtsim *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sim_profile_load(profile_path, &m->p, err, errlen) < 0) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &m->t0);
	m->operational_since = m->t0;
	if (sim_wsman_init(m) < 0 || sim_acm_init(m) < 0) {
		snprintf(err, errlen, "cannot set up the WS-Man server (random source?)");
		amtsim_free(m);
		return NULL;
	}
	m->opt_in_required = SIM_OPT_IN_ALL;
	if (m->p.tls_cert[0] && m->p.tls_key[0] &&
	    amtsim_set_tls(m, m->p.tls_cert, m->p.tls_key, err, errlen) < 0) {
		amtsim_free(m);
		return NULL;
	}
	snprintf(m->admin_ha1, sizeof(m->admin_ha1), "%s", m->p.admin_ha1);
	sim_config_nonce(m->config_nonce, sizeof(m->config_nonce));
	snprintf(m->wrong_realm_text, sizeof(m->wrong_realm_text), "%s-CHALLENGE",
		 m->p.digest_realm);
	for (unsigned i = 0; i < m->p.fault_count; i++) {
		const char *slash = strrchr(profile_path, '/');
		char ferr[256];

		if (amtsim_fault(m, m->p.faults[i], ferr, sizeof(ferr)) < 0) {
			snprintf(err, errlen, "%s: key 'faults': %s",
				 slash ? slash + 1 : profile_path, ferr);
			amtsim_free(m);
			return NULL;
		}
	}
	return m;
}

/* Every connection must have been closed with amtsim_disconnect first. */
void amtsim_free(struct amtsim *m)
{
	if (!m)
		return;
	sim_wsman_stop(m);
	sim_acm_free(m);
	pthread_mutex_destroy(&m->lock);
	free(m->state_path);
	free(m->tls_cert_pem);
	free(m->tls_key_pem);
	free(m->trust_ca_pem);
	free(m);
}

/* ---- sysfs ---- */

const char *amtsim_sysfs_attr(struct amtsim *m, const char *attr)
{
	const struct sim_profile *p = &m->p;
	const char *ret = NULL;

	pthread_mutex_lock(&m->lock);
	if (strcmp(attr, "fw_ver") == 0) {
		size_t off = 0;

		m->attr_fw_ver[0] = '\0';
		for (unsigned i = 0; i < p->fw_ver_count; i++)
			off +=
			    (size_t)snprintf(m->attr_fw_ver + off, sizeof(m->attr_fw_ver) - off,
					     "%u:%u.%u.%u.%u\n", p->fw_ver[i][0], p->fw_ver[i][1],
					     p->fw_ver[i][2], p->fw_ver[i][3], p->fw_ver[i][4]);
		ret = m->attr_fw_ver;
	} else if (strcmp(attr, "fw_status") == 0) {
		size_t off = 0;

		m->attr_fw_status[0] = '\0';
		for (unsigned i = 0; i < p->fw_status_count; i++)
			off += (size_t)snprintf(m->attr_fw_status + off,
						sizeof(m->attr_fw_status) - off, "%08X\n",
						(unsigned)p->fw_status[i]);
		ret = m->attr_fw_status;
	} else if (strcmp(attr, "hbm_ver") == 0) {
		snprintf(m->attr_hbm_ver, sizeof(m->attr_hbm_ver), "%u.%u\n", p->hbm_major,
			 p->hbm_minor);
		ret = m->attr_hbm_ver;
	} else if (strcmp(attr, "kind") == 0) {
		snprintf(m->attr_kind, sizeof(m->attr_kind), "%s\n", p->kind);
		ret = m->attr_kind;
	} else if (strcmp(attr, "dev_state") == 0) {
		snprintf(m->attr_dev_state, sizeof(m->attr_dev_state), "%s",
			 me_ready(m) ? "ENABLED" : "INITIALIZING");
		ret = m->attr_dev_state;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* ---- connections ---- */

/* Keep efd readable exactly while there is something for the reader. c->lock held. */
static void conn_update_fd(struct amtsim_conn *c)
{
	bool want = c->head != NULL || c->reset || c->ending;
	uint64_t v = 1;

	if (want && !c->signalled) {
		if (write(c->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			c->signalled = true;
	} else if (!want && c->signalled) {
		if (read(c->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			c->signalled = false;
	}
}

static void conn_clear_queue(struct amtsim_conn *c)
{
	while (c->head) {
		struct sim_msg *next = c->head->next;

		free(c->head);
		c->head = next;
	}
	c->tail = NULL;
}

int sim_conn_push(struct amtsim_conn *c, const uint8_t *buf, size_t len)
{
	struct sim_msg *msg = malloc(sizeof(*msg) + len);

	if (!msg)
		return ENOMEM;
	msg->next = NULL;
	msg->len = len;
	msg->off = 0;
	memcpy(msg->data, buf, len);

	pthread_mutex_lock(&c->lock);
	if (c->reset || c->ending) {
		free(msg);
	} else {
		if (c->tail)
			c->tail->next = msg;
		else
			c->head = msg;
		c->tail = msg;
		conn_update_fd(c);
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void sim_reset_conns(struct amtsim *m, enum amtsim_client client)
{
	for (struct amtsim_conn *c = m->conns; c; c = c->next) {
		if (client != AMTSIM_CLIENT_COUNT && c->client != client)
			continue;
		pthread_mutex_lock(&c->lock);
		c->reset = true;
		conn_clear_queue(c);
		conn_update_fd(c);
		pthread_mutex_unlock(&c->lock);
	}
}

/* No more messages on C: what is queued is delivered, then C reads as reset. */
static void conn_end(struct amtsim_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->ending = true;
	if (!c->head)
		c->reset = true;
	conn_update_fd(c);
	pthread_mutex_unlock(&c->lock);
}

void sim_disconnect_lme(struct amtsim *m, uint32_t reason)
{
	uint8_t msg[16];
	size_t len = apf_encode_disconnect(msg, sizeof(msg), reason);

	for (struct amtsim_conn *c = m->conns; c; c = c->next) {
		if (c->client != AMTSIM_CLIENT_LME)
			continue;
		pthread_mutex_lock(&c->lock);
		if (!c->reset && !c->ending) {
			m->stats.apf_disconnects++;
			pthread_mutex_unlock(&c->lock);
			(void)sim_conn_push(c, msg, len);
			conn_end(c);
			continue;
		}
		pthread_mutex_unlock(&c->lock);
	}
}

static bool client_from_guid(const uint8_t guid[16], enum amtsim_client *out)
{
	if (memcmp(guid, MEI_GUID_AMTHI, 16) == 0)
		*out = AMTSIM_CLIENT_AMTHI;
	else if (memcmp(guid, MEI_GUID_LME, 16) == 0)
		*out = AMTSIM_CLIENT_LME;
	else if (memcmp(guid, MEI_GUID_WATCHDOG, 16) == 0)
		*out = AMTSIM_CLIENT_WATCHDOG;
	else
		return false;
	return true;
}

/* Why a connect to CLIENT is refused right now (0: it is not). m->lock held. */
static int connect_refusal(struct amtsim *m, enum amtsim_client client)
{
	const struct sim_client_cfg *cfg = &m->p.client[client];

	if (!me_ready(m))
		return ENODEV;
	if (!cfg->present)
		return ENOTTY;
	/* AMT disabled (MEBx, or SetAmtOperationalState): its clients are not enumerated. */
	if (client != AMTSIM_CLIENT_WATCHDOG && !m->p.operational)
		return ENOTTY;
	if (cfg->busy)
		return EBUSY;
	if (client == AMTSIM_CLIENT_AMTHI && m->busy_left > 0) {
		m->busy_left--;
		return EBUSY;
	}
	return 0;
}

/* ---- LME: one APF session per connection ---- */

static int lme_send_to_host(void *ctx, const uint8_t *msg, size_t len)
{
	return sim_conn_push(ctx, msg, len);
}

static int lme_open_service(void *ctx, uint16_t port)
{
	struct amtsim_conn *c = ctx;

	return sim_wsman_open_channel(c->m, port);
}

/* The firmware's APF configuration for a new session. m->lock held. */
static void lme_config(struct amtsim *m, const struct amtsim_conn *c, struct apf_fw_config *cfg)
{
	*cfg = (struct apf_fw_config){
	    .tls_enforced = m->p.tls_enforced,
	    .close_session_after_channel_close =
		m->p.lme_session_ends_after_close || m->session_ends_after_close,
	    .version_first = m->p.lme_version_first,
	    .max_msg_length = c->max_msg_length,
	    .refuse_open_reason = m->channel_refused,
	};
	memcpy(cfg->uuid, m->p.uuid, sizeof(cfg->uuid));
}

/* Add the counters of an APF session to S. */
static void add_apf_stats(struct amtsim_stats *s, const struct apf_fw_stats *a)
{
	s->apf_handshakes += a->handshake_done ? 1u : 0u;
	s->apf_channels += a->channels_opened;
	s->apf_channels_refused += a->channels_refused;
	s->apf_protocol_errors += a->protocol_errors;
}

/* Stop C's APF session (its pump joined) and keep its counters. Not under m->lock. */
static void lme_retire(struct amtsim_conn *c)
{
	struct amtsim *m = c->m;
	struct apf_fw_stats st;
	struct apf_fw *fw;

	pthread_mutex_lock(&m->lock);
	fw = c->apf;
	c->apf = NULL;
	if (fw) {
		apf_fw_get_stats(fw, &st);
		add_apf_stats(&m->stats, &st);
	}
	pthread_mutex_unlock(&m->lock);
	apf_fw_free(fw);
}

void sim_live_apf_stats(struct amtsim *m, struct amtsim_stats *out)
{
	for (struct amtsim_conn *c = m->conns; c; c = c->next) {
		struct apf_fw_stats st;

		if (!c->apf)
			continue;
		apf_fw_get_stats(c->apf, &st);
		add_apf_stats(out, &st);
	}
}

int amtsim_connect(struct amtsim *m, const uint8_t guid[16], struct amtsim_conn **out,
		   uint32_t *max_msg_length, uint8_t *protocol_version)
{
	enum amtsim_client client;
	struct amtsim_conn *c;
	int r;

	*out = NULL;
	if (!client_from_guid(guid, &client)) {
		pthread_mutex_lock(&m->lock);
		r = me_ready(m) ? ENOTTY : ENODEV;
		pthread_mutex_unlock(&m->lock);
		return r;
	}

	c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		r = errno;
		free(c);
		return r;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->m = m;
	c->client = client;

	pthread_mutex_lock(&m->lock);
	r = connect_refusal(m, client);
	if (r != 0) {
		m->stats.refused[client]++;
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_destroy(&c->lock);
		close(c->efd);
		free(c);
		return r;
	}
	c->max_msg_length = m->p.client[client].max_msg_length;
	if (client == AMTSIM_CLIENT_LME) {
		struct apf_fw_config cfg;
		const struct apf_fw_ops ops = {
		    .ctx = c, .send_to_host = lme_send_to_host, .open_service = lme_open_service};

		lme_config(m, c, &cfg);
		c->apf = apf_fw_new(&cfg, &ops);
		if (!c->apf) {
			m->stats.refused[client]++;
			pthread_mutex_unlock(&m->lock);
			pthread_mutex_destroy(&c->lock);
			close(c->efd);
			free(c);
			return ENOMEM;
		}
	}
	m->stats.connects[client]++;
	*max_msg_length = c->max_msg_length;
	*protocol_version = m->p.client[client].protocol_version;
	c->next = m->conns;
	m->conns = c;
	pthread_mutex_unlock(&m->lock);
	if (c->apf && apf_fw_start(c->apf) != 0)
		conn_end(c);
	*out = c;
	return 0;
}

void amtsim_disconnect(struct amtsim_conn *c)
{
	struct amtsim *m;

	if (!c)
		return;
	m = c->m;
	pthread_mutex_lock(&m->lock);
	for (struct amtsim_conn **pp = &m->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	/* The pump may be pushing to C right now: it is joined before C goes. */
	lme_retire(c);
	conn_clear_queue(c);
	pthread_mutex_destroy(&c->lock);
	close(c->efd);
	free(c);
}

enum amtsim_client amtsim_conn_client(const struct amtsim_conn *c)
{
	return c->client;
}

int amtsim_conn_fd(const struct amtsim_conn *c)
{
	return c->efd;
}

/* Reset, or ending: the firmware takes nothing more on C. */
static bool conn_is_reset(struct amtsim_conn *c)
{
	bool reset;

	pthread_mutex_lock(&c->lock);
	reset = c->reset || c->ending;
	pthread_mutex_unlock(&c->lock);
	return reset;
}

static void count_command(struct amtsim *m, uint32_t code)
{
	for (unsigned i = 0; i < m->command_kinds; i++) {
		if (m->commands[i].code == code) {
			m->commands[i].count++;
			return;
		}
	}
	if (m->command_kinds < SIM_MAX_COMMANDS)
		m->commands[m->command_kinds++] = (struct sim_command_count){code, 1};
}

/* Queue REPLY as the firmware meant it, or as the fault armed for request N bends it. */
static int push_amthi_reply(struct amtsim *m, struct amtsim_conn *c, unsigned n, uint8_t *reply,
			    size_t len)
{
	if (take_fault(m, SIM_FAULT_WRONG_ECHO, n) && len >= 8) {
		/* The echo of another command: bit 23 set, but the code is off by one. */
		uint32_t cmd = sim_amthi_request_command(reply, len) + 1u;
		struct wbuf w = wbuf_init(reply + 4, 4);

		put_u32le(&w, cmd);
	}
	if (take_fault(m, SIM_FAULT_TRUNCATE, n) && len > 1) {
		/* Keep the header and half the body; the header still claims the whole. */
		size_t body = len > AMTHI_HEADER_LEN ? len - AMTHI_HEADER_LEN : 0;
		size_t cut = body >= 2 ? body - body / 2 : 1;

		len -= cut;
	}
	if (take_fault(m, SIM_FAULT_OVERSIZE, n)) {
		uint8_t *big = calloc(1, len + SIM_EXTRA_BYTES);
		int r;

		if (!big)
			return ENOMEM;
		memcpy(big, reply, len);
		r = sim_conn_push(c, big, len + SIM_EXTRA_BYTES);
		free(big);
		return r;
	}
	if (take_fault(m, SIM_FAULT_HUGE, n)) {
		/* Well formed (the header counts every byte) but longer than max_msg_length. */
		size_t total = (size_t)c->max_msg_length + SIM_HUGE_EXTRA;
		uint8_t *big = calloc(1, total);
		struct wbuf w;
		int r;

		if (!big)
			return ENOMEM;
		memcpy(big, reply, len < total ? len : total);
		w = wbuf_init(big + 8, 4);
		put_u32le(&w, (uint32_t)(total - AMTHI_HEADER_LEN));
		r = sim_conn_push(c, big, total);
		free(big);
		return r;
	}
	return sim_conn_push(c, reply, len);
}

static int amthi_message(struct amtsim *m, struct amtsim_conn *c, const uint8_t *buf, size_t len)
{
	static const size_t cap = SIM_REPLY_CAP;
	unsigned n = ++m->amthi_requests;
	uint8_t *reply;
	size_t rlen;
	int r;

	if (len >= 8)
		count_command(m, sim_amthi_request_command(buf, len));
	if (take_fault(m, SIM_FAULT_RESET, n)) {
		sim_reset_conns(m, AMTSIM_CLIENT_COUNT);
		return 0;
	}
	if (take_fault(m, SIM_FAULT_NO_REPLY, n))
		return 0;

	reply = malloc(cap);
	if (!reply)
		return ENOMEM;
	rlen = sim_amthi_answer(m, n, buf, len, reply, cap);
	r = rlen > 0 ? push_amthi_reply(m, c, n, reply, rlen) : 0;
	free(reply);
	return r;
}

/*
 * One host message for the APF session. The session lives on this connection's thread alone,
 * so it is used without m->lock (its counters are read under m->lock, with its own lock).
 */
static int lme_message(struct amtsim_conn *c, const uint8_t *buf, size_t len)
{
	struct amtsim *m = c->m;
	bool restart = false;
	int r;

	pthread_mutex_lock(&m->lock);
	if (conn_is_reset(c)) {
		pthread_mutex_unlock(&m->lock);
		return ENODEV;
	}
	/* After CommitChanges: the host closing its channel finds the network stack restarted. */
	if (m->restart_lme_on_close && buf[0] == APF_CHANNEL_CLOSE) {
		m->restart_lme_on_close = false;
		sim_reset_conns(m, AMTSIM_CLIENT_LME);
		restart = true;
	}
	pthread_mutex_unlock(&m->lock);
	if (restart || !c->apf)
		return restart ? 0 : ENODEV;

	r = apf_fw_input(c->apf, buf, len);
	if (r != 0) {
		/* The session is over: what it queued (DISCONNECT, CHANNEL_CLOSE) goes out first. */
		conn_end(c);
		lme_retire(c);
	}
	return 0;
}

int amtsim_send(struct amtsim_conn *c, const uint8_t *buf, size_t len)
{
	struct amtsim *m = c->m;
	unsigned latency;
	int r = 0;

	if (conn_is_reset(c))
		return ENODEV;
	if (len > c->max_msg_length)
		return EFBIG;
	if (len == 0)
		return 0;

	pthread_mutex_lock(&m->lock);
	m->stats.messages[c->client]++;
	latency = m->latency_ms;
	m->stats.firmware_us += (unsigned long)latency * 1000ul;
	pthread_mutex_unlock(&m->lock);

	sim_sleep_ms(latency);
	if (c->client == AMTSIM_CLIENT_LME)
		return lme_message(c, buf, len);

	pthread_mutex_lock(&m->lock);
	if (conn_is_reset(c)) {
		r = ENODEV;
	} else if (c->client == AMTSIM_CLIENT_AMTHI) {
		r = amthi_message(m, c, buf, len);
	} else if (c->client == AMTSIM_CLIENT_WATCHDOG) {
		uint8_t reply[64];
		size_t rlen = sim_watchdog_answer(m, buf, len, reply, sizeof(reply));

		if (rlen > 0)
			r = sim_conn_push(c, reply, rlen);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

int amtsim_recv(struct amtsim_conn *c, uint8_t *buf, size_t cap, size_t *len, bool *more)
{
	struct sim_msg *msg;
	size_t n;
	int r = 0;

	*len = 0;
	*more = false;
	pthread_mutex_lock(&c->lock);
	msg = c->head;
	if (!msg && c->ending)
		c->reset = true;
	if (c->reset) {
		r = ENODEV;
	} else if (!msg) {
		r = EAGAIN;
	} else {
		n = msg->len - msg->off;
		if (n > cap)
			n = cap;
		if (n > 0)
			memcpy(buf, msg->data + msg->off, n);
		msg->off += n;
		*len = n;
		if (msg->off < msg->len) {
			*more = true;
		} else {
			c->head = msg->next;
			if (!c->head) {
				c->tail = NULL;
				c->reset = c->ending;
			}
			free(msg);
		}
		conn_update_fd(c);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}
