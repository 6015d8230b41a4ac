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
	       (unsigned long)((now.tv_nsec - t0->tv_nsec) / 1000000l);
}

static void sleep_ms(unsigned ms)
{
	struct timespec until;

	if (ms == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000u;
	until.tv_nsec += (long)(ms % 1000u) * 1000000l;
	if (until.tv_nsec >= 1000000000l) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000l;
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

struct fault_word {
	const char *word;
	char sep; /* '=' for counts and times, '@' for the N-th AMTHI request */
	int kind; /* enum sim_fault_kind for '@'; an index into the setters for '=' */
	unsigned max;
};

enum { SET_BUSY, SET_NOT_READY, SET_LATENCY, SET_READY_AFTER };

static const struct fault_word fault_words[] = {
    {"busy", '=', SET_BUSY, 1000000u},
    {"not-ready", '=', SET_NOT_READY, 1000000u},
    {"latency", '=', SET_LATENCY, 60000u},
    {"ready-after", '=', SET_READY_AFTER, 600000u},
    {"reset", '@', SIM_FAULT_RESET, 1000000u},
    {"no-reply", '@', SIM_FAULT_NO_REPLY, 1000000u},
    {"truncate", '@', SIM_FAULT_TRUNCATE, 1000000u},
    {"oversize", '@', SIM_FAULT_OVERSIZE, 1000000u},
    {"huge", '@', SIM_FAULT_HUGE, 1000000u},
    {"wrong-echo", '@', SIM_FAULT_WRONG_ECHO, 1000000u},
};

#define FAULT_WORDS_HELP                                                                           \
	"busy=N, not-ready=N, latency=MS, ready-after=MS, reset@N, no-reply@N, truncate@N, "       \
	"oversize@N, huge@N, wrong-echo@N"

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

int amtsim_fault(struct amtsim *m, const char *spec, char *err, size_t errlen)
{
	size_t wlen = strcspn(spec, "=@");
	const struct fault_word *fw = NULL;
	unsigned n;

	for (size_t i = 0; i < sizeof(fault_words) / sizeof(fault_words[0]); i++) {
		if (strlen(fault_words[i].word) == wlen &&
		    strncmp(fault_words[i].word, spec, wlen) == 0) {
			fw = &fault_words[i];
			break;
		}
	}
	if (!fw) {
		snprintf(err, errlen, "fault '%s': unknown (known: %s)", spec, FAULT_WORDS_HELP);
		return -1;
	}
	if (spec[wlen] != fw->sep) {
		snprintf(err, errlen, "fault '%s': write it as %s%cN", spec, fw->word, fw->sep);
		return -1;
	}
	if (parse_number(spec + wlen + 1, fw->max, &n) < 0 || (fw->sep == '@' && n == 0)) {
		snprintf(err, errlen, "fault '%s': the number must be %s%u", spec,
			 fw->sep == '@' ? "between 1 and " : "at most ", fw->max);
		return -1;
	}

	pthread_mutex_lock(&m->lock);
	if (fw->sep == '@') {
		if (m->fault_count == SIM_MAX_FAULTS) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "fault '%s': more than %u request faults", spec,
				 SIM_MAX_FAULTS);
			return -1;
		}
		m->faults[m->fault_count++] = (struct sim_fault){.kind = fw->kind, .at = n};
	} else {
		switch (fw->kind) {
		case SET_BUSY:
			m->busy_left = n;
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
		default:
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* Take the request fault of KIND armed for request N, if any (each fires once). */
static bool take_fault(struct amtsim *m, enum sim_fault_kind kind, unsigned n)
{
	for (unsigned i = 0; i < m->fault_count; i++) {
		if (m->faults[i].kind == kind && m->faults[i].at == n) {
			m->faults[i] = m->faults[--m->fault_count];
			return true;
		}
	}
	return false;
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
	pthread_mutex_destroy(&m->lock);
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
	bool want = c->head != NULL || c->reset;
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
	if (c->reset) {
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
	m->stats.connects[client]++;
	c->max_msg_length = m->p.client[client].max_msg_length;
	*max_msg_length = c->max_msg_length;
	*protocol_version = m->p.client[client].protocol_version;
	c->next = m->conns;
	m->conns = c;
	pthread_mutex_unlock(&m->lock);
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

static bool conn_is_reset(struct amtsim_conn *c)
{
	bool reset;

	pthread_mutex_lock(&c->lock);
	reset = c->reset;
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

	sleep_ms(latency);

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
	/*
	 * LME: the connect is accepted and messages are taken without an answer. APF comes later:
	 * a session handler will push its messages with sim_conn_push, from its own thread when
	 * the firmware speaks first.
	 */
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
			if (!c->head)
				c->tail = NULL;
			free(msg);
		}
		conn_update_fd(c);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}
